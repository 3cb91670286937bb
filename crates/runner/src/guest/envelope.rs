//! Reading the bootstrap envelope: one length-prefixed frame on stdin
//! (process tier) or the JSON file `OXYDRA_BOOTSTRAP_FILE` names
//! (container tier). Every failure says what was wrong with the input.

use std::io::Read;
use std::path::Path;

use types::protocol::bootstrap::{MAX_ENVELOPE_BYTES, RunnerBootstrapEnvelope};
use types::protocol::framing::{FrameError, read_json_frame};

use super::GuestError;

/// Reads the envelope frame from `reader` (the guest's stdin).
pub fn read_from_stream<R: Read>(reader: &mut R) -> Result<RunnerBootstrapEnvelope, GuestError> {
    read_json_frame(reader, MAX_ENVELOPE_BYTES).map_err(|error| {
        GuestError::Envelope(match error {
            FrameError::Json(json) => format!("the bootstrap envelope on stdin is invalid: {json}"),
            other => format!("cannot read the bootstrap envelope from stdin: {other}"),
        })
    })
}

/// Reads the envelope from its file (at most `MAX_ENVELOPE_BYTES`).
pub fn read_from_file(path: &Path) -> Result<RunnerBootstrapEnvelope, GuestError> {
    let failed = |why: String| {
        GuestError::Envelope(format!(
            "cannot read the bootstrap envelope file {}: {why}",
            path.display()
        ))
    };
    let len = std::fs::metadata(path)
        .map_err(|e| failed(e.to_string()))?
        .len();
    if len > MAX_ENVELOPE_BYTES as u64 {
        return Err(failed(format!(
            "it is {len} bytes, over the limit of {MAX_ENVELOPE_BYTES}"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        GuestError::Envelope(format!(
            "the bootstrap envelope file {} is invalid: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::protocol::framing::encode_frame;

    #[test]
    fn framing_errors_are_named() {
        let cases: [(Vec<u8>, &str); 4] = [
            (vec![0, 0], "after 2 of the 4 length-prefix bytes"),
            (
                [&10u32.to_be_bytes()[..], b"{}"].concat(),
                "expected 10 payload bytes, received 2",
            ),
            (
                (MAX_ENVELOPE_BYTES as u32 + 1).to_be_bytes().to_vec(),
                "exceeds the limit of 1048576 bytes",
            ),
            (
                encode_frame(b"{\"user_id\": 7}", 100).unwrap(),
                "the bootstrap envelope on stdin is invalid",
            ),
        ];
        for (input, expected) in cases {
            let err = read_from_stream(&mut input.as_slice()).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
            assert_eq!(err.exit_code(), 2);
        }
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.json");
        let err = read_from_file(&missing).unwrap_err().to_string();
        assert!(err.contains("absent.json"), "{err}");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{not json").unwrap();
        let err = read_from_file(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.json is invalid"), "{err}");
    }
}
