//! The provider's SSE decoder and the four vendor stream parsers on
//! arbitrary bytes, as `pump_sse` drives them.
//!
//! Input layout: byte 0 picks how many of the following bytes (0–7) are
//! chunk sizes; the rest is the body, cut into chunks of those sizes in turn
//! (a size of 0 is an empty read, which must not split a `\r\n` pair).
//!
//! Invariants: nothing panics; the events and the partial-event state do
//! not depend on how the body was chunked; every parser either continues,
//! finishes or returns an error, and what it emits can be collected.

#![no_main]

use libfuzzer_sys::fuzz_target;
use provider::anthropic::MessagesWire;
use provider::gemini::GeminiWire;
use provider::openai::ChatStreamParser;
use provider::responses::ResponsesWire;
use provider::sse::{SseDecoder, SseEvent};
use provider::{EventParser, StreamCollector, StreamStep, WireApi};
use types::{Context, ModelId, ProviderId};

/// Splits `body` into chunks whose sizes cycle through `sizes`.
fn chunks<'a>(body: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    if sizes.is_empty() {
        return vec![body];
    }
    let mut out = Vec::new();
    let mut rest = body;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let take = usize::from(size % 17).min(rest.len());
        let (chunk, tail) = rest.split_at(take);
        out.push(chunk);
        rest = tail;
        if out.len() > body.len() * 4 + 8 {
            // Only zero sizes: every chunk is empty. Deliver the rest at once.
            out.push(rest);
            break;
        }
    }
    out
}

/// Feeds `events` to `parser` the way `pump_sse` does: stop at the terminal
/// event or the first error. Collects the items like the runtime does.
fn drive(mut parser: impl EventParser, events: &[SseEvent]) {
    let mut collector = StreamCollector::new();
    let mut items = Vec::new();
    for event in events {
        let step = parser.on_event(event.clone(), &mut items);
        for item in items.drain(..) {
            collector.push(item);
        }
        match step {
            Ok(StreamStep::Continue) => {}
            Ok(StreamStep::Done) => break,
            Err(error) => {
                // The message reaches the user through `ConnectionLost`.
                assert!(!error.to_string().is_empty());
                break;
            }
        }
    }
    // A collection either finishes or says why it cannot; both are fine.
    let _outcome = collector.finish();
}

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 8).min(rest.len());
    let (sizes, body) = rest.split_at(count);

    let mut whole = SseDecoder::new();
    let expected = whole.decode_all(body);

    let mut split = SseDecoder::new();
    let mut events = Vec::new();
    for chunk in chunks(body, sizes) {
        split.push(chunk, &mut events);
    }
    assert_eq!(events, expected, "chunking changed the decoded events");
    assert_eq!(split.has_partial_event(), whole.has_partial_event());

    // The body itself as one event's data as well, so JSON structure reaches
    // the parsers even when the input is not SSE-framed.
    let mut with_raw = events;
    with_raw.push(SseEvent {
        event: None,
        data: String::from_utf8_lossy(body).into_owned(),
        id: None,
    });

    let context = Context {
        provider: ProviderId::new("fuzz"),
        model: ModelId::new("fuzz-model"),
        messages: Vec::new(),
        tools: Vec::new(),
        settings: None,
    };
    drive(ChatStreamParser, &with_raw);
    drive(MessagesWire.stream_parser(&context), &with_raw);
    drive(GeminiWire.stream_parser(&context), &with_raw);
    drive(ResponsesWire::default().stream_parser(&context), &with_raw);
});
