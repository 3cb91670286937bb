//! Server-sent events decoding.
//!
//! Hand-written rather than `eventsource-stream`: we need exact control over
//! a `\r\n` pair split across two chunks (it must not read as a blank line
//! and dispatch an event early), multi-byte UTF-8 characters split across
//! chunks, and a plain byte-level API that benchmarks and fuzzers can drive.
//!
//! Lines are split on raw bytes (`\n`, `\r\n` or `\r`, all ASCII), so a
//! complete line never ends inside a UTF-8 sequence; each line is decoded on
//! its own (invalid bytes become U+FFFD, as the SSE standard says).

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, when present.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, when present.
    pub id: Option<String>,
}

/// Incremental decoder: feed byte chunks, collect events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The previous chunk ended with `\r`: a leading `\n` is its pair.
    pending_cr: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `chunk`, appending every completed event to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        let mut rest = chunk;
        // An empty read between `\r` and `\n` must keep the pair together.
        if self.pending_cr && !rest.is_empty() {
            self.pending_cr = false;
            if let Some(tail) = rest.strip_prefix(b"\n") {
                rest = tail;
            }
        }
        while let Some(pos) = rest.iter().position(|b| *b == b'\n' || *b == b'\r') {
            self.line.extend_from_slice(&rest[..pos]);
            let terminator = rest[pos];
            rest = &rest[pos + 1..];
            if terminator == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.pending_cr = true,
                }
            }
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out);
        }
        self.line.extend_from_slice(rest);
    }

    /// Convenience for tests and one-shot decoding.
    pub fn decode_all(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        self.push(chunk, &mut out);
        out
    }

    /// Whether bytes of an unfinished line or event are buffered (a stream
    /// that ends now was cut mid-event).
    pub fn has_partial_event(&self) -> bool {
        !self.line.is_empty() || self.has_data
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return; // comment
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            // The standard ignores ids containing NUL.
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            // `retry` and unknown fields do not affect decoding.
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if !self.has_data {
            return;
        }
        self.has_data = false;
        out.push(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
            id: self.id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &str) -> Vec<SseEvent> {
        SseDecoder::new().decode_all(input.as_bytes())
    }

    fn data(input: &str) -> Vec<String> {
        decode(input).into_iter().map(|e| e.data).collect()
    }

    #[test]
    fn basic_events_and_done() {
        assert_eq!(
            data("data: {\"a\":1}\n\ndata: [DONE]\n\n"),
            ["{\"a\":1}", "[DONE]"]
        );
    }

    #[test]
    fn named_events_ids_and_comments() {
        let events = decode(": keep-alive\nevent: message_start\nid: 7\ndata: x\n\n");
        assert_eq!(
            events,
            [SseEvent {
                event: Some("message_start".into()),
                data: "x".into(),
                id: Some("7".into())
            }]
        );
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        assert_eq!(data("data: a\ndata:b\ndata:  c\n\n"), ["a\nb\n c"]);
    }

    #[test]
    fn crlf_and_cr_line_endings() {
        assert_eq!(
            data("data: a\r\n\r\ndata: b\r\rdata: c\n\n"),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn blank_lines_without_data_dispatch_nothing() {
        assert!(decode("\n\n\nevent: ping\n\n").is_empty());
        // The event name does not leak into the next event.
        assert_eq!(decode("event: ping\n\ndata: x\n\n")[0].event, None);
    }

    #[test]
    fn field_without_colon_and_unknown_fields() {
        assert_eq!(data("data\n\nretry: 10\nfoo: bar\ndata: y\n\n"), ["", "y"]);
    }

    #[test]
    fn unterminated_event_is_not_dispatched() {
        let mut decoder = SseDecoder::new();
        assert!(decoder.decode_all(b"data: partial").is_empty());
        assert!(decoder.has_partial_event());
        let mut decoder = SseDecoder::new();
        assert!(decoder.decode_all(b"data: complete line\n").is_empty());
        assert!(decoder.has_partial_event());
        let mut decoder = SseDecoder::new();
        decoder.decode_all(b"data: x\n\n");
        assert!(!decoder.has_partial_event());
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(
            SseDecoder::new().decode_all(b"data: a\xffb\n\n")[0].data,
            "a\u{fffd}b"
        );
    }

    /// The same events come out wherever the byte stream is cut — inside
    /// `\r\n`, inside a multi-byte character, inside a field name.
    #[test]
    fn every_split_point_gives_identical_events() {
        let stream = "event: delta\r\ndata: {\"t\":\"héllo 👋 世界\"}\r\n\r\n: c\r\ndata: a\ndata: b\r\rdata: [DONE]\n\n";
        let expected = decode(stream);
        assert_eq!(expected.len(), 3);
        let bytes = stream.as_bytes();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let mut decoder = SseDecoder::new();
                let mut out = Vec::new();
                decoder.push(&bytes[..i], &mut out);
                decoder.push(&bytes[i..j], &mut out);
                decoder.push(&bytes[j..], &mut out);
                assert_eq!(out, expected, "split at {i} and {j}");
            }
        }
    }

    /// Regression: an empty chunk between `\r` and `\n` used to reset the
    /// pending carriage return, so the `\n` read as a blank line and the
    /// event name was lost.
    #[test]
    fn empty_chunk_inside_crlf_keeps_the_pair() {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        for piece in [&b"event: delta\r"[..], b"", b"\ndata: x\r\n\r\n"] {
            decoder.push(piece, &mut out);
        }
        assert_eq!(out[0].event.as_deref(), Some("delta"));
    }

    #[test]
    fn byte_at_a_time_feeding() {
        let stream = "data: one\r\n\r\ndata: two\n\n";
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        for byte in stream.as_bytes() {
            decoder.push(std::slice::from_ref(byte), &mut out);
        }
        assert_eq!(
            out.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
            ["one", "two"]
        );
    }
}
