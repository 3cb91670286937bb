//! SSE decoding throughput (spec 09, B8): decoder alone, and decoder plus
//! the OpenAI chunk parser, over a realistic streamed answer fed in
//! TCP-sized pieces. Prints a table and a JSON line.
//!
//! `cargo bench -p provider --bench sse_decode` runs the full measurement;
//! under `cargo test` (no `--bench` argument) it runs one quick pass so the
//! harness stays compiled and working.

use std::hint::black_box;
use std::time::{Duration, Instant};

use provider::EventParser;
use provider::openai::ChatStreamParser;
use provider::sse::SseDecoder;

/// Bytes per `push`, like a typical TCP read.
const CHUNK: usize = 1400;

fn transcript(events: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..events {
        let text = if i % 7 == 0 {
            "héllo wörld 👋 "
        } else {
            "token "
        };
        let chunk = serde_json::json!({
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4.1",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]
        });
        out.push_str(&format!("data: {chunk}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

fn decode_only(bytes: &[u8]) -> usize {
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    let mut count = 0;
    for piece in bytes.chunks(CHUNK) {
        decoder.push(piece, &mut events);
        count += events.len();
        events.clear();
    }
    count
}

fn decode_and_parse(bytes: &[u8]) -> usize {
    let mut decoder = SseDecoder::new();
    let mut parser = ChatStreamParser;
    let mut events = Vec::new();
    let mut items = Vec::new();
    for piece in bytes.chunks(CHUNK) {
        decoder.push(piece, &mut events);
        for event in events.drain(..) {
            // The transcript is well-formed; a parse error would be a bug.
            if parser.on_event(event, &mut items).is_err() {
                return 0;
            }
        }
    }
    items.len()
}

struct Figures {
    name: &'static str,
    mb_per_s: f64,
    ns_per_event: f64,
    runs: usize,
}

fn measure(
    name: &'static str,
    bytes: &[u8],
    events: usize,
    runs: usize,
    f: fn(&[u8]) -> usize,
) -> Figures {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(f(black_box(bytes)));
            start.elapsed()
        })
        .collect();
    times.sort();
    let p50 = times[times.len() / 2].as_secs_f64();
    Figures {
        name,
        mb_per_s: bytes.len() as f64 / p50 / 1e6,
        ns_per_event: p50 * 1e9 / events as f64,
        runs,
    }
}

fn main() {
    let full = test_support::bench::full_run();
    let (events, runs) = if full { (20_000, 30) } else { (200, 2) };
    let bytes = transcript(events);
    assert_eq!(decode_only(&bytes), events + 1, "decoder lost events");
    assert_eq!(decode_and_parse(&bytes), events, "parser lost items");
    let results = [
        measure("sse_decode", &bytes, events + 1, runs, decode_only),
        measure(
            "sse_decode_openai_parse",
            &bytes,
            events + 1,
            runs,
            decode_and_parse,
        ),
    ];
    println!(
        "{:<26} {:>10} {:>12} {:>6}",
        "benchmark", "MB/s", "ns/event", "runs"
    );
    for r in &results {
        println!(
            "{:<26} {:>10.1} {:>12.0} {:>6}",
            r.name, r.mb_per_s, r.ns_per_event, r.runs
        );
    }
    let json: Vec<_> = results
        .iter()
        .map(|r| {
            serde_json::json!({"id": "B8", "name": r.name, "mb_per_s": r.mb_per_s,
                                     "ns_per_event": r.ns_per_event, "runs": r.runs,
                                     "bytes": bytes.len(), "events": events + 1})
        })
        .collect();
    println!("{}", serde_json::Value::Array(json));
}
