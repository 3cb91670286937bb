//! Chunking, delays and faults, checked for every wire format.

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::join_all;
use test_support::{
    Chunking, FakeLlm, Fault, ReplyBody, ScriptedReply, ScriptedToolCall, WireFormat,
};

use crate::support::{
    ALL_FORMATS, BodyEnd, Mode, PENDING, STUCK, body_text, events, read_until_stuck, send,
};

/// Text and two tool calls, with multi-byte characters so that byte-wise
/// chunking splits UTF-8 sequences.
fn rich_reply() -> ScriptedReply {
    ScriptedReply {
        body: ReplyBody::ToolCalls {
            text: Some("Grüße aus Zürich — two calls ✓".to_owned()),
            calls: vec![
                ScriptedToolCall::new("file_list", r#"{"path": "/shared/ünïcode"}"#),
                ScriptedToolCall::new("web_search", r#"{"query": "météo"}"#),
            ],
        },
        ..ScriptedReply::text("")
    }
}

/// The terminal marker of a streamed answer in each format.
fn terminal_marker(format: WireFormat) -> &'static str {
    match format {
        WireFormat::Openai => "[DONE]",
        WireFormat::OpenaiResponses => "response.completed",
        WireFormat::Anthropic => "message_stop",
        WireFormat::Gemini => "finishReason",
    }
}

/// The answer to one request on a fresh server, so ids are the same in every
/// run.
async fn fresh_body(
    format: WireFormat,
    mode: Mode,
    reply: ScriptedReply,
) -> (Vec<Vec<u8>>, Vec<u8>) {
    let fake = FakeLlm::start(format).await.unwrap();
    fake.push(reply);
    let mut stream = send(&fake, format, mode, "hello there")
        .await
        .bytes_stream();
    let mut frames = Vec::new();
    while let Some(frame) = stream.next().await {
        frames.push(frame.expect("a clean body").to_vec());
    }
    let body = frames.concat();
    (frames, body)
}

#[tokio::test]
async fn byte_and_offset_chunking_are_byte_identical_to_per_event() {
    for format in ALL_FORMATS {
        for mode in [Mode::Stream, Mode::Complete] {
            let (_, per_event) = fresh_body(format, mode, rich_reply()).await;
            let (frames, bytewise) =
                fresh_body(format, mode, rich_reply().with_chunking(Chunking::Bytes(1))).await;
            let (_, split) = fresh_body(
                format,
                mode,
                rich_reply().with_chunking(Chunking::SplitAt(vec![40, 3, 3, 0, 1_000_000])),
            )
            .await;

            assert!(std::str::from_utf8(&per_event).is_ok());
            assert_eq!(bytewise, per_event, "{format:?} {mode:?}");
            assert_eq!(split, per_event, "{format:?} {mode:?}");
            assert!(frames.len() > 1, "{format:?} {mode:?} arrived in one frame");
        }
    }
}

#[tokio::test]
async fn cut_after_bytes_fails_the_body_read_after_exactly_that_prefix() {
    for format in ALL_FORMATS {
        for mode in [Mode::Stream, Mode::Complete] {
            let (_, full) = fresh_body(format, mode, rich_reply()).await;
            let cut = full.len() / 2;
            let fake = FakeLlm::start(format).await.unwrap();
            fake.push(
                rich_reply()
                    .with_chunking(Chunking::Bytes(7))
                    .with_fault(Fault::CutAfterBytes(cut)),
            );

            let (received, end) =
                read_until_stuck(send(&fake, format, mode, "hello there").await, STUCK).await;

            assert!(
                matches!(end, BodyEnd::Failed),
                "{format:?} {mode:?}: {end:?}"
            );
            assert_eq!(
                String::from_utf8_lossy(&received),
                String::from_utf8_lossy(&full[..cut]),
                "{format:?} {mode:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_cut_beyond_the_content_still_withholds_the_terminal_event() {
    for format in ALL_FORMATS {
        let fake = FakeLlm::start(format).await.unwrap();
        fake.push(rich_reply().with_fault(Fault::CutAfterBytes(usize::MAX)));

        let (received, end) =
            read_until_stuck(send(&fake, format, Mode::Stream, "hi").await, STUCK).await;

        assert!(matches!(end, BodyEnd::Failed), "{format:?}: {end:?}");
        let received = String::from_utf8(received).unwrap();
        assert!(received.contains("file_list"), "{format:?}");
        assert!(
            !received.contains(terminal_marker(format)),
            "{format:?}: {received}"
        );
    }
}

#[tokio::test]
async fn never_end_leaves_the_body_pending_until_the_server_is_dropped() {
    let checks = ALL_FORMATS.into_iter().flat_map(|format| {
        [Mode::Stream, Mode::Complete]
            .into_iter()
            .map(move |mode| async move {
                let fake = FakeLlm::start(format).await.unwrap();
                fake.push(rich_reply().with_fault(Fault::NeverEnd));

                let (received, end) =
                    read_until_stuck(send(&fake, format, mode, "hi").await, PENDING).await;

                let BodyEnd::Pending(mut rest) = end else {
                    panic!("{format:?} {mode:?}: body ended: {end:?}");
                };
                let received = String::from_utf8(received).unwrap();
                assert!(
                    received.contains("web_search"),
                    "{format:?} {mode:?}: {received}"
                );
                if mode == Mode::Stream {
                    assert!(
                        !received.contains(terminal_marker(format)),
                        "{format:?}: {received}"
                    );
                }
                drop(fake);
                let after_drop = tokio::time::timeout(Duration::from_secs(5), rest.next())
                    .await
                    .expect("dropping the server ends a hung body");
                assert!(
                    !matches!(after_drop, Some(Ok(_))),
                    "{format:?} {mode:?}: {after_drop:?}"
                );
            })
    });
    join_all(checks).await;
}

#[tokio::test]
async fn invalid_json_chunk_follows_the_first_content_event() {
    for format in ALL_FORMATS {
        let fake = FakeLlm::start(format).await.unwrap();
        fake.push_all([
            rich_reply().with_fault(Fault::InvalidJsonChunk),
            rich_reply().with_fault(Fault::InvalidJsonChunk),
        ]);

        let events = events(&body_text(&fake, format, Mode::Stream, "hi").await);
        let plain = body_text(&fake, format, Mode::Complete, "hi").await;

        let invalid: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, event)| {
                event.data != "[DONE]"
                    && serde_json::from_str::<serde_json::Value>(&event.data).is_err()
            })
            .map(|(index, _)| index)
            .collect();
        assert_eq!(invalid.len(), 1, "{format:?}: {events:?}");
        let before = &events[invalid[0] - 1];
        assert_eq!(events[invalid[0]].name, before.name, "{format:?}");
        assert!(
            before.data.contains("Gr"),
            "{format:?}: the event before the broken one carries the first text piece: {before:?}"
        );
        assert!(
            events
                .last()
                .unwrap()
                .data
                .contains(terminal_marker(format)),
            "{format:?}"
        );
        assert!(
            serde_json::from_str::<serde_json::Value>(&plain).is_err(),
            "{format:?}: {plain}"
        );
    }
}

#[tokio::test]
async fn delay_holds_back_the_headers_but_not_the_recording() {
    let fake = FakeLlm::start(WireFormat::Openai).await.unwrap();
    fake.push(ScriptedReply::text("late").with_delay_ms(60_000));

    let answer = tokio::time::timeout(
        PENDING,
        send(&fake, WireFormat::Openai, Mode::Complete, "hi"),
    )
    .await;

    assert!(answer.is_err(), "headers arrived despite the delay");
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(fake.remaining(), 0);
}

#[tokio::test]
async fn chunk_delay_paces_the_writes() {
    let fake = FakeLlm::start(WireFormat::Anthropic).await.unwrap();
    fake.push(ScriptedReply::text("one two").with_chunk_delay_ms(20));
    let started = Instant::now();

    let events = events(&body_text(&fake, WireFormat::Anthropic, Mode::Stream, "hi").await);

    // message_start, block start, ping, two deltas, block stop, message
    // delta, message stop: seven gaps of 20 ms.
    assert_eq!(events.len(), 8);
    assert!(
        started.elapsed() >= Duration::from_millis(140),
        "{:?}",
        started.elapsed()
    );
}
