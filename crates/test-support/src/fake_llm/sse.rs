//! Turns rendered events or a JSON document into an HTTP body, applying the
//! reply's chunking, inter-chunk delay and fault.
//!
//! Every wait in here races the server's shutdown token, so dropping the
//! [`FakeLlm`](super::FakeLlm) ends even a hung stream.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::script::{Chunking, Fault, ScriptedReply};

/// A payload that no JSON parser accepts, used by [`Fault::InvalidJsonChunk`].
const INVALID_JSON: &str = "{\"fake_llm\": this is not json";

/// What part an event plays in a stream; faults are placed by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventRole {
    /// Structure around the content (start, stop, ping, finish reasons).
    Frame,
    /// Carries text or tool-call content.
    Content,
    /// Marks the clean end of the stream; withheld by cut and hang faults.
    Terminal,
}

/// One server-sent event before encoding.
#[derive(Debug, Clone)]
pub(super) struct SseEvent {
    name: Option<&'static str>,
    data: String,
    role: EventRole,
}

impl SseEvent {
    /// A `data:`-only event carrying `value`.
    pub(super) fn data(role: EventRole, value: &Value) -> Self {
        Self {
            name: None,
            data: value.to_string(),
            role,
        }
    }

    /// A `data:`-only event with a non-JSON payload such as `[DONE]`.
    pub(super) fn raw(role: EventRole, data: &str) -> Self {
        Self {
            name: None,
            data: data.to_owned(),
            role,
        }
    }

    /// An `event: <kind>` event whose JSON payload is `fields` plus
    /// `"type": <kind>`, the convention of the Anthropic and Responses APIs.
    pub(super) fn typed(kind: &'static str, role: EventRole, fields: Value) -> Self {
        let mut payload = serde_json::Map::new();
        payload.insert("type".to_owned(), Value::from(kind));
        if let Value::Object(fields) = fields {
            payload.extend(fields);
        }
        Self {
            name: Some(kind),
            data: Value::Object(payload).to_string(),
            role,
        }
    }

    fn encode(&self, line_end: &str) -> Bytes {
        let mut text = String::with_capacity(self.data.len() + 32);
        if let Some(name) = self.name {
            text.push_str("event: ");
            text.push_str(name);
            text.push_str(line_end);
        }
        text.push_str("data: ");
        text.push_str(&self.data);
        text.push_str(line_end);
        text.push_str(line_end);
        Bytes::from(text)
    }
}

/// How a reply's body is delivered, taken from the [`ScriptedReply`].
#[derive(Debug, Clone)]
pub(super) struct Delivery {
    chunking: Chunking,
    chunk_delay: Duration,
    fault: Option<Fault>,
}

impl Delivery {
    pub(super) fn of(reply: &ScriptedReply) -> Self {
        Self {
            chunking: reply.chunking.clone(),
            chunk_delay: Duration::from_millis(reply.chunk_delay_ms),
            fault: reply.fault.clone(),
        }
    }

    /// One write, no delay, no fault: how internal errors are sent.
    pub(super) fn plain() -> Self {
        Self {
            chunking: Chunking::PerEvent,
            chunk_delay: Duration::ZERO,
            fault: None,
        }
    }
}

/// What happens after the last write.
#[derive(Debug, Clone, Copy)]
enum Tail {
    /// The body ends cleanly.
    End,
    /// The body fails, so hyper aborts the connection mid-body.
    Abort,
    /// The body never ends until the server shuts down.
    Hang,
}

/// The body of a streamed reply: `events` encoded as SSE with `line_end`.
pub(super) fn event_body(
    mut events: Vec<SseEvent>,
    line_end: &str,
    delivery: &Delivery,
    shutdown: CancellationToken,
) -> Body {
    let (tail, limit) = match &delivery.fault {
        None => (Tail::End, None),
        Some(Fault::InvalidJsonChunk) => {
            insert_invalid_event(&mut events);
            (Tail::End, None)
        }
        Some(Fault::NeverEnd) => {
            events.retain(|event| event.role != EventRole::Terminal);
            (Tail::Hang, None)
        }
        Some(Fault::CutAfterBytes(limit)) => {
            events.retain(|event| event.role != EventRole::Terminal);
            (Tail::Abort, Some(*limit))
        }
    };
    let segments = events.iter().map(|event| event.encode(line_end)).collect();
    into_body(segments, delivery, tail, limit, shutdown)
}

/// The body of a non-streamed reply: `value` as one JSON document.
pub(super) fn json_body(value: &Value, delivery: &Delivery, shutdown: CancellationToken) -> Body {
    let mut json = Bytes::from(value.to_string());
    let (tail, limit) = match &delivery.fault {
        None => (Tail::End, None),
        Some(Fault::InvalidJsonChunk) => {
            // A JSON object or array without its closing bracket never parses.
            json.truncate(json.len().saturating_sub(1));
            (Tail::End, None)
        }
        Some(Fault::NeverEnd) => (Tail::Hang, None),
        Some(Fault::CutAfterBytes(limit)) => (Tail::Abort, Some(*limit)),
    };
    into_body(vec![json], delivery, tail, limit, shutdown)
}

/// Places an invalid-JSON event right after the first content event, or
/// before the terminal events when there is no content at all. Named events
/// keep the name of the event they follow, so a decoder dispatching on the
/// name still has to parse the broken payload.
fn insert_invalid_event(events: &mut Vec<SseEvent>) {
    let after = events
        .iter()
        .position(|event| event.role == EventRole::Content)
        .or_else(|| {
            events
                .iter()
                .rposition(|event| event.role != EventRole::Terminal)
        });
    let (index, name) = match after {
        Some(index) => (index + 1, events[index].name),
        None => (0, None),
    };
    events.insert(
        index,
        SseEvent {
            name,
            data: INVALID_JSON.to_owned(),
            role: EventRole::Content,
        },
    );
}

fn into_body(
    segments: Vec<Bytes>,
    delivery: &Delivery,
    tail: Tail,
    limit: Option<usize>,
    shutdown: CancellationToken,
) -> Body {
    let mut writes = split(segments, &delivery.chunking);
    if let Some(limit) = limit {
        truncate(&mut writes, limit);
    }
    if let (Tail::End, [single]) = (tail, writes.as_slice()) {
        // Nothing to pace or break: send it with a content-length like a real
        // API's JSON answer.
        return Body::from(single.clone());
    }
    let writer = Writer {
        writes: writes.into(),
        delay: delivery.chunk_delay,
        started: false,
        tail,
        shutdown,
    };
    Body::from_stream(futures::stream::unfold(writer, Writer::advance))
}

/// Splits the logical segments (one per event) into the writes `chunking`
/// asks for. Never produces an empty write: hyper would take it for the end
/// of a chunked body.
fn split(segments: Vec<Bytes>, chunking: &Chunking) -> Vec<Bytes> {
    let whole = |segments: Vec<Bytes>| {
        let mut all = BytesMut::new();
        for segment in segments {
            all.extend_from_slice(&segment);
        }
        all.freeze()
    };
    let mut writes = match chunking {
        Chunking::PerEvent => segments,
        Chunking::Bytes(size) => {
            let all = whole(segments);
            let size = (*size).max(1);
            (0..all.len())
                .step_by(size)
                .map(|start| all.slice(start..(start + size).min(all.len())))
                .collect()
        }
        Chunking::SplitAt(offsets) => {
            let all = whole(segments);
            let mut cuts: Vec<usize> = offsets
                .iter()
                .copied()
                .filter(|offset| *offset > 0 && *offset < all.len())
                .collect();
            cuts.sort_unstable();
            cuts.dedup();
            cuts.push(all.len());
            let mut start = 0;
            cuts.into_iter()
                .map(|end| {
                    let piece = all.slice(start..end);
                    start = end;
                    piece
                })
                .collect()
        }
    };
    writes.retain(|write| !write.is_empty());
    writes
}

/// Keeps only the first `limit` bytes of `writes`.
fn truncate(writes: &mut Vec<Bytes>, limit: usize) {
    let mut remaining = limit;
    let mut kept = 0;
    for write in writes.iter_mut() {
        if remaining == 0 {
            break;
        }
        if write.len() > remaining {
            write.truncate(remaining);
        }
        remaining -= write.len();
        kept += 1;
    }
    writes.truncate(kept);
}

/// The state of a body being written.
#[derive(Debug)]
struct Writer {
    writes: VecDeque<Bytes>,
    delay: Duration,
    started: bool,
    tail: Tail,
    shutdown: CancellationToken,
}

impl Writer {
    async fn advance(mut self) -> Option<(io::Result<Bytes>, Self)> {
        if self.started || self.writes.is_empty() {
            // Returning `Pending` once makes hyper flush what it holds, so
            // every write leaves as its own send and a cut or hang never
            // swallows bytes (or headers) that were already written.
            let delay = if self.writes.is_empty() {
                Duration::ZERO
            } else {
                self.delay
            };
            if !self.pause(delay).await {
                return Some((Err(self.shut_down()), self));
            }
        }
        if let Some(write) = self.writes.pop_front() {
            self.started = true;
            return Some((Ok(write), self));
        }
        match self.tail {
            Tail::End => None,
            Tail::Abort => {
                self.tail = Tail::End;
                let cut = io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "fake LLM fault: connection cut mid-body",
                );
                Some((Err(cut), self))
            }
            Tail::Hang => {
                self.shutdown.cancelled().await;
                Some((Err(self.shut_down()), self))
            }
        }
    }

    /// Waits `delay`, or just yields once when it is zero. Returns false when
    /// the server shuts down first.
    async fn pause(&self, delay: Duration) -> bool {
        if delay.is_zero() {
            tokio::task::yield_now().await;
            return true;
        }
        self.shutdown
            .run_until_cancelled(tokio::time::sleep(delay))
            .await
            .is_some()
    }

    /// Ends the body with an error because the server is going away.
    fn shut_down(&mut self) -> io::Error {
        self.writes.clear();
        self.tail = Tail::End;
        io::Error::other("fake LLM server shut down")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn segments(parts: &[&'static str]) -> Vec<Bytes> {
        parts
            .iter()
            .map(|part| Bytes::from_static(part.as_bytes()))
            .collect()
    }

    #[test]
    fn split_at_ignores_out_of_range_and_repeated_offsets() {
        let writes = split(
            segments(&["abc", "defg"]),
            &Chunking::SplitAt(vec![5, 0, 2, 2, 99]),
        );
        assert_eq!(writes, segments(&["ab", "cde", "fg"]));
    }

    #[test]
    fn byte_chunking_of_zero_is_one_byte() {
        let writes = split(segments(&["ab", "c"]), &Chunking::Bytes(0));
        assert_eq!(writes, segments(&["a", "b", "c"]));
    }

    #[test]
    fn truncate_cuts_inside_a_write() {
        let mut writes = segments(&["abc", "def", "ghi"]);
        truncate(&mut writes, 5);
        assert_eq!(writes, segments(&["abc", "de"]));
    }

    #[test]
    fn invalid_event_goes_before_the_terminal_events_when_there_is_no_content() {
        let mut events = vec![
            SseEvent::typed("message_start", EventRole::Frame, json!({})),
            SseEvent::typed("message_stop", EventRole::Terminal, json!({})),
        ];
        insert_invalid_event(&mut events);
        assert_eq!(events[1].data, INVALID_JSON);
        assert_eq!(events[1].name, Some("message_start"));
        assert_eq!(events[2].role, EventRole::Terminal);
    }

    #[test]
    fn named_events_encode_with_the_requested_line_end() {
        let event = SseEvent::typed("ping", EventRole::Frame, json!({}));
        assert_eq!(
            event.encode("\r\n"),
            "event: ping\r\ndata: {\"type\":\"ping\"}\r\n\r\n"
        );
        let done = SseEvent::raw(EventRole::Terminal, "[DONE]");
        assert_eq!(done.encode("\n"), "data: [DONE]\n\n");
    }
}
