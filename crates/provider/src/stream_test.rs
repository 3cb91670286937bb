//! Test helpers shared by the wire formats' stream tests.

use types::StreamItem;

use crate::http::{EventParser, StreamStep};
use crate::sse::SseDecoder;

/// Feeds `pieces` through an SSE decoder and `parser`. Returns the items
/// and whether the terminal event was seen; panics on a parse error or on
/// any event after the terminal one.
pub(crate) fn run_stream(
    mut parser: impl EventParser,
    pieces: &[&[u8]],
) -> (Vec<StreamItem>, bool) {
    let mut decoder = SseDecoder::new();
    let mut items = Vec::new();
    let mut done = false;
    for piece in pieces {
        for event in decoder.decode_all(piece) {
            assert!(!done, "event after the terminal event: {event:?}");
            done = parser.on_event(event, &mut items).unwrap() == StreamStep::Done;
        }
    }
    (items, done)
}

/// Asserts that cutting `transcript` at every byte — inside a line, an
/// event name or a multi-byte character — gives the same result as
/// feeding it whole.
pub(crate) fn assert_every_split_matches<T: PartialEq + std::fmt::Debug>(
    transcript: &str,
    run: impl Fn(&[&[u8]]) -> T,
) {
    let bytes = transcript.as_bytes();
    let expected = run(&[bytes]);
    for split in 0..=bytes.len() {
        assert_eq!(
            run(&[&bytes[..split], &bytes[split..]]),
            expected,
            "split at {split}"
        );
    }
}
