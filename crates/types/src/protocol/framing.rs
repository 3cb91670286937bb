//! The 4-byte big-endian length-prefixed frame format shared by the runner
//! bootstrap envelope (on `oxydra-vm`'s stdin) and the shell-daemon socket.
//!
//! A frame is `len: u32 (big-endian)` followed by `len` bytes of payload
//! (JSON in both protocols). Hand-written instead of tokio-util's
//! `LengthDelimitedCodec` because we need typed errors that say how many
//! bytes were expected and received, a blocking reader for stdin, and the
//! same limit check on both sides.

use std::io::{ErrorKind, Read};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;
use tokio_util::codec::{Decoder, Encoder};

/// Size of the length prefix.
pub const FRAME_HEADER_LEN: usize = 4;
/// The default cap on one frame's payload (1 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1024 * 1024;

/// A frame that cannot be read or written.
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error(
        "truncated frame: input ended after {received} of the {FRAME_HEADER_LEN} length-prefix bytes"
    )]
    TruncatedHeader { received: usize },
    #[error("truncated frame: expected {expected} payload bytes, received {received}")]
    TruncatedPayload { expected: usize, received: usize },
    #[error("frame payload is not valid JSON for this protocol: {0}")]
    Json(#[from] serde_json::Error),
    #[error("frame I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

fn check_len(len: usize, max: usize) -> Result<(), FrameError> {
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(())
}

/// The payload length announced by a header.
fn payload_len(header: [u8; FRAME_HEADER_LEN], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    check_len(len, max)?;
    Ok(len)
}

/// Encodes `payload` as one frame.
pub fn encode_frame(payload: &[u8], max: usize) -> Result<Vec<u8>, FrameError> {
    check_len(payload.len(), max.min(u32::MAX as usize))?;
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    Ok(frame)
}

/// Serialises `value` to JSON and encodes it as one frame.
pub fn encode_json_frame<T: Serialize>(value: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    encode_frame(&serde_json::to_vec(value)?, max)
}

/// Reads exactly one frame from a blocking reader (the envelope on stdin).
pub fn read_frame<R: Read>(reader: &mut R, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    let received = read_up_to(reader, &mut header)?;
    if received < FRAME_HEADER_LEN {
        return Err(FrameError::TruncatedHeader { received });
    }
    let len = payload_len(header, max)?;
    let mut payload = vec![0u8; len];
    let received = read_up_to(reader, &mut payload)?;
    if received < len {
        return Err(FrameError::TruncatedPayload {
            expected: len,
            received,
        });
    }
    Ok(payload)
}

/// Reads one frame and deserialises its JSON payload.
pub fn read_json_frame<T: DeserializeOwned, R: Read>(
    reader: &mut R,
    max: usize,
) -> Result<T, FrameError> {
    Ok(serde_json::from_slice(&read_frame(reader, max)?)?)
}

/// Fills `buf` as far as the reader allows; returns how many bytes arrived.
fn read_up_to<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<usize, FrameError> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}

/// A tokio codec for the frame format: decodes payloads, encodes payloads.
/// JSON is left to the caller (`serde_json::from_slice`) so that a
/// well-framed but malformed message can be answered with an error while
/// the connection stays usable; framing errors end the connection.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max: usize,
}

impl FrameCodec {
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            max: max_frame_bytes,
        }
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(header) = src.first_chunk::<FRAME_HEADER_LEN>() else {
            return Ok(None);
        };
        // Oversized frames fail as soon as the header arrives, before any
        // payload is buffered.
        let len = payload_len(*header, self.max)?;
        if src.len() < FRAME_HEADER_LEN + len {
            src.reserve(FRAME_HEADER_LEN + len - src.len());
            return Ok(None);
        }
        src.advance(FRAME_HEADER_LEN);
        Ok(Some(src.split_to(len).freeze()))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        match src.len() {
            0 => Ok(None),
            received if received < FRAME_HEADER_LEN => {
                Err(FrameError::TruncatedHeader { received })
            }
            received => {
                let mut header = [0u8; FRAME_HEADER_LEN];
                header.copy_from_slice(&src[..FRAME_HEADER_LEN]);
                Err(FrameError::TruncatedPayload {
                    expected: u32::from_be_bytes(header) as usize,
                    received: received - FRAME_HEADER_LEN,
                })
            }
        }
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        check_len(payload.len(), self.max.min(u32::MAX as usize))?;
        dst.reserve(FRAME_HEADER_LEN + payload.len());
        dst.put_u32(payload.len() as u32);
        dst.put_slice(&payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{SinkExt, StreamExt};
    use tokio_util::codec::{FramedRead, FramedWrite};

    #[test]
    fn blocking_round_trip() {
        let frame = encode_frame(b"{\"a\":1}", 64).unwrap();
        assert_eq!(&frame[..4], &[0, 0, 0, 7]);
        assert_eq!(read_frame(&mut frame.as_slice(), 64).unwrap(), b"{\"a\":1}");
    }

    #[test]
    fn empty_payload_is_a_valid_frame() {
        let frame = encode_frame(b"", 64).unwrap();
        assert_eq!(read_frame(&mut frame.as_slice(), 64).unwrap(), b"");
    }

    #[test]
    fn truncated_header_is_reported() {
        for cut in 0..FRAME_HEADER_LEN {
            let err = read_frame(&mut &[0u8, 0, 0, 5][..cut], 64).unwrap_err();
            assert!(
                matches!(err, FrameError::TruncatedHeader { received } if received == cut),
                "{err}"
            );
        }
        let err = read_frame(&mut &[0u8][..], 64).unwrap_err();
        assert_eq!(
            err.to_string(),
            "truncated frame: input ended after 1 of the 4 length-prefix bytes"
        );
    }

    #[test]
    fn truncated_payload_is_reported() {
        let mut frame = encode_frame(b"hello", 64).unwrap();
        frame.truncate(6);
        let err = read_frame(&mut frame.as_slice(), 64).unwrap_err();
        assert_eq!(
            err.to_string(),
            "truncated frame: expected 5 payload bytes, received 2"
        );
    }

    #[test]
    fn oversized_frames_are_refused_on_both_sides() {
        let err = encode_frame(&[b'x'; 65], 64).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len: 65, max: 64 }));
        // A hostile header announcing 4 GiB is refused without allocating.
        let err = read_frame(&mut &[0xff, 0xff, 0xff, 0xff][..], 1024).unwrap_err();
        assert_eq!(
            err.to_string(),
            "frame of 4294967295 bytes exceeds the limit of 1024 bytes"
        );
    }

    #[test]
    fn json_frames_round_trip_and_reject_garbage() {
        let frame = encode_json_frame(&vec![1, 2, 3], 64).unwrap();
        let back: Vec<i32> = read_json_frame(&mut frame.as_slice(), 64).unwrap();
        assert_eq!(back, vec![1, 2, 3]);
        let garbage = encode_frame(b"{not json", 64).unwrap();
        let err = read_json_frame::<Vec<i32>, _>(&mut garbage.as_slice(), 64).unwrap_err();
        assert!(matches!(err, FrameError::Json(_)), "{err}");
    }

    #[tokio::test]
    async fn codec_decodes_frames_split_at_every_byte() {
        let mut stream = Vec::new();
        for payload in [&b"first"[..], b"", b"third frame"] {
            stream.extend(encode_frame(payload, 64).unwrap());
        }
        for split in 0..=stream.len() {
            let mut codec = FrameCodec::new(64);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                buf.extend_from_slice(part);
                while let Some(frame) = codec.decode(&mut buf).unwrap() {
                    out.push(frame);
                }
            }
            assert!(codec.decode_eof(&mut buf).unwrap().is_none());
            assert_eq!(
                out,
                vec![&b"first"[..], b"", b"third frame"],
                "split at {split}"
            );
        }
    }

    #[tokio::test]
    async fn codec_reports_truncation_at_eof() {
        let mut frame = encode_frame(b"abcdef", 64).unwrap();
        frame.truncate(7);
        let mut reader = FramedRead::new(frame.as_slice(), FrameCodec::new(64));
        let err = reader.next().await.unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            "truncated frame: expected 6 payload bytes, received 3"
        );
    }

    #[tokio::test]
    async fn codec_refuses_oversized_header_immediately() {
        let mut codec = FrameCodec::new(8);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 9][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge { len: 9, max: 8 })
        ));
    }

    #[tokio::test]
    async fn codec_writer_and_reader_agree() {
        let (client, server) = tokio::io::duplex(64);
        let mut writer = FramedWrite::new(client, FrameCodec::new(1024));
        let mut reader = FramedRead::new(server, FrameCodec::new(1024));
        writer.send(Bytes::from_static(b"ping")).await.unwrap();
        assert!(
            writer.send(Bytes::from(vec![0u8; 2048])).await.is_err(),
            "oversized payload must not be written"
        );
        drop(writer);
        assert_eq!(reader.next().await.unwrap().unwrap(), &b"ping"[..]);
        assert!(reader.next().await.is_none());
    }
}
