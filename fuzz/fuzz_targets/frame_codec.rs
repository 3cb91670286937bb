//! The length-prefixed frame format (`types::protocol::framing`) on
//! arbitrary bytes, through all three readers, with the shell-daemon
//! protocol and the bootstrap envelope as payloads.
//!
//! Input layout: byte 0 picks the frame size limit (small limits exercise
//! `TooLarge`) and how the stream is chunked for the tokio codec; the rest
//! is the byte stream as a socket or stdin would deliver it.
//!
//! Invariants: nothing panics; the blocking reader and the tokio codec
//! agree frame for frame and on the error that ends the stream; a decoded
//! frame re-encodes to exactly the bytes it was read from; a payload that
//! parses as a protocol message re-encodes and decodes to the same value.

#![no_main]

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::{Decoder, Encoder};
use types::protocol::bootstrap::{RunnerBootstrapEnvelope, StartupStatusReport};
use types::protocol::framing::{
    DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_LEN, FrameCodec, FrameError, encode_frame,
    encode_json_frame, read_frame, read_json_frame,
};
use types::protocol::shell::{ShellDaemonRequest, ShellDaemonResponse};

/// Size limits byte 0 chooses from.
const LIMITS: [usize; 4] = [0, 16, 4096, DEFAULT_MAX_FRAME_BYTES];

/// How a stream ended, comparable across the two readers.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Clean,
    TooLarge { len: usize, max: usize },
    TruncatedHeader { received: usize },
    TruncatedPayload { expected: usize, received: usize },
}

fn end_of(error: FrameError) -> End {
    match error {
        FrameError::TooLarge { len, max } => End::TooLarge { len, max },
        FrameError::TruncatedHeader { received } => End::TruncatedHeader { received },
        FrameError::TruncatedPayload { expected, received } => {
            End::TruncatedPayload { expected, received }
        }
        // Reading a byte slice cannot fail, and no JSON is parsed here.
        other => panic!("unexpected framing error on in-memory input: {other}"),
    }
}

/// All frames of `stream` through the blocking reader.
fn blocking_frames(stream: &[u8], max: usize) -> (Vec<Vec<u8>>, End) {
    let mut reader = stream;
    let mut frames = Vec::new();
    loop {
        if reader.is_empty() {
            return (frames, End::Clean);
        }
        match read_frame(&mut reader, max) {
            Ok(frame) => frames.push(frame),
            Err(error) => return (frames, end_of(error)),
        }
    }
}

/// All frames of `stream` through the tokio codec, delivered in chunks of
/// `chunk` bytes as `FramedRead` would (decode after every read, then
/// `decode_eof` at the end).
fn codec_frames(stream: &[u8], max: usize, chunk: usize) -> (Vec<Vec<u8>>, End) {
    let mut codec = FrameCodec::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for part in stream.chunks(chunk.max(1)) {
        buf.extend_from_slice(part);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame.to_vec()),
                Ok(None) => break,
                Err(error) => return (frames, end_of(error)),
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => frames.push(frame.to_vec()),
            Ok(None) => return (frames, End::Clean),
            Err(error) => return (frames, end_of(error)),
        }
    }
}

/// If `payload` parses as a `T`, its re-encoded frame decodes to the same
/// value through both readers.
fn json_round_trip<T>(payload: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Ok(value) = serde_json::from_slice::<T>(payload) else {
        return;
    };
    let frame = encode_json_frame(&value, DEFAULT_MAX_FRAME_BYTES)
        .expect("a decoded value re-encodes within the default limit");
    let back: T = read_json_frame(&mut frame.as_slice(), DEFAULT_MAX_FRAME_BYTES)
        .expect("a re-encoded frame decodes");
    assert_eq!(back, value, "JSON round trip changed the value");
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::from(frame.as_slice());
    let payload = codec
        .decode(&mut buf)
        .expect("the codec reads a valid frame")
        .expect("the frame is complete");
    let back: T = serde_json::from_slice(&payload).expect("the codec payload is the same JSON");
    assert_eq!(back, value);
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let max = LIMITS[usize::from(control & 3)];
    let chunk = usize::from(control >> 2) + 1;

    let (frames, end) = blocking_frames(stream, max);
    let (codec_frames, codec_end) = codec_frames(stream, max, chunk);
    assert_eq!(codec_frames, frames, "codec and blocking reader disagree");
    assert_eq!(codec_end, end, "codec and blocking reader end differently");

    // The frames re-encode to exactly the bytes they were read from.
    let mut consumed = Vec::new();
    let mut encoder = FrameCodec::new(max);
    let mut encoded = BytesMut::new();
    for frame in &frames {
        assert!(frame.len() <= max);
        consumed.extend(encode_frame(frame, max).expect("a decoded frame re-encodes"));
        encoder
            .encode(Bytes::from(frame.clone()), &mut encoded)
            .expect("the codec re-encodes a decoded frame");
    }
    assert_eq!(&stream[..consumed.len()], consumed.as_slice());
    assert_eq!(&encoded[..], consumed.as_slice());
    if let End::TooLarge { len, .. } = end {
        let header = &stream[consumed.len()..consumed.len() + FRAME_HEADER_LEN];
        let announced = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        assert_eq!(announced as usize, len);
    }

    for frame in &frames {
        json_round_trip::<ShellDaemonRequest>(frame);
        json_round_trip::<ShellDaemonResponse>(frame);
        json_round_trip::<RunnerBootstrapEnvelope>(frame);
        json_round_trip::<StartupStatusReport>(frame);
    }
    // The typed readers on the raw stream: errors are values, never panics.
    let _request = read_json_frame::<ShellDaemonRequest, _>(&mut &stream[..], max);
    let _envelope =
        read_json_frame::<RunnerBootstrapEnvelope, _>(&mut &stream[..], DEFAULT_MAX_FRAME_BYTES);
});
