//! `oxydra-runner logs`: the end of a user's log file, and following it as
//! it grows. Reads the file directly, so it works while no supervisor runs
//! (the log of the last run stays).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::HostError;

/// How much is read at a time while looking for the last lines.
const BLOCK: u64 = 64 * 1024;
/// How often a followed file is checked for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// The last `lines` lines of `path` and the file's length at that moment
/// (where following starts).
pub fn tail(path: &Path, lines: usize) -> Result<(Vec<u8>, u64), HostError> {
    let mut file =
        File::open(path).map_err(|e| HostError::io("cannot open the log file", path, e))?;
    let read_error = |e: std::io::Error| HostError::io("cannot read the log file", path, e);
    let len = file.seek(SeekFrom::End(0)).map_err(read_error)?;
    let mut start = len;
    let mut buffer = Vec::new();
    if lines == 0 {
        return Ok((Vec::new(), len));
    }
    // Read backwards block by block until the buffer holds `lines` line
    // breaks (not counting a final one), or the whole file.
    while start > 0 && count_breaks(&buffer) < lines {
        let size = BLOCK.min(start);
        start -= size;
        file.seek(SeekFrom::Start(start)).map_err(read_error)?;
        let mut block = vec![0u8; usize::try_from(size).unwrap_or(0)];
        file.read_exact(&mut block).map_err(read_error)?;
        block.extend_from_slice(&buffer);
        buffer = block;
    }
    let body = buffer.strip_suffix(b"\n").unwrap_or(&buffer);
    let cut = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, byte)| **byte == b'\n')
        .nth(lines - 1)
        .map_or(0, |(index, _)| index + 1);
    Ok((buffer[cut..].to_vec(), len))
}

/// Line breaks in `buffer`, not counting a final one.
fn count_breaks(buffer: &[u8]) -> usize {
    let body = buffer.strip_suffix(b"\n").unwrap_or(buffer);
    body.iter().filter(|&&b| b == b'\n').count()
}

/// Copies what is appended to `path` after `offset` to `out`, until `out`
/// fails or the future is dropped. A truncated file is read from its start.
pub async fn follow<W: AsyncWrite + Unpin>(
    path: &Path,
    mut offset: u64,
    out: &mut W,
) -> Result<(), HostError> {
    let read_error = |e: std::io::Error| HostError::io("cannot read the log file", path, e);
    loop {
        let len = tokio::fs::metadata(path).await.map_err(read_error)?.len();
        if len < offset {
            offset = 0;
        }
        if len > offset {
            let mut file = File::open(path).map_err(read_error)?;
            file.seek(SeekFrom::Start(offset)).map_err(read_error)?;
            let mut chunk = Vec::new();
            file.take(len - offset)
                .read_to_end(&mut chunk)
                .map_err(read_error)?;
            offset += chunk.len() as u64;
            out.write_all(&chunk).await.map_err(read_error)?;
            out.flush().await.map_err(read_error)?;
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: usize) -> String {
        (1..=n).map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, numbered(5)).unwrap();
        let text = |n| String::from_utf8(tail(&path, n).unwrap().0).unwrap();
        assert_eq!(text(2), "line 4\nline 5\n");
        assert_eq!(text(5), numbered(5));
        assert_eq!(text(50), numbered(5));
        assert_eq!(text(0), "");
        assert_eq!(tail(&path, 1).unwrap().1, numbered(5).len() as u64);
        // Without a final newline, and across several blocks.
        std::fs::write(&path, "a\nb").unwrap();
        assert_eq!(text(1), "b");
        let big = numbered(30_000);
        std::fs::write(&path, &big).unwrap();
        assert_eq!(text(3), "line 29998\nline 29999\nline 30000\n");
        assert_eq!(text(30_000), big);
    }

    #[tokio::test]
    async fn follow_copies_what_is_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "old\n").unwrap();
        let (_, offset) = tail(&path, 10).unwrap();
        let (mut reader, mut writer) = tokio::io::duplex(1024);
        let follow_path = path.clone();
        let task = tokio::spawn(async move { follow(&follow_path, offset, &mut writer).await });
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, b"new line\n").unwrap();
        let mut got = vec![0u8; 9];
        tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::AsyncReadExt::read_exact(&mut reader, &mut got),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(got, b"new line\n");
        task.abort();
    }
}
