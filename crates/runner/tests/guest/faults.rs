//! Provider faults through the whole guest: client → gateway → runtime →
//! `ReliableProvider` → the fake LLM over HTTP. Each scenario checks the
//! documented outcome (docs/faults.md), the message the client gets, that
//! the streamed deltas never repeat text, that every wait is bounded, and
//! that the guest is alive and serving afterwards (a normal turn on the
//! same connection completes, and nothing panicked).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use channels::{ClientEvent, ClientEvents, GatewayClient};
use test_support::{Chunking, FakeLlm, Fault, Script, ScriptedReply, WhenExhausted, WireFormat};
use tokio::io::AsyncReadExt;
use tokio::process::Child;
use types::AgentConfig;
use types::protocol::gateway::{GatewayClientFrame, GatewayErrorCode, GatewayServerFrame};

use crate::{PATIENCE, agent_config, connect, envelope, frame, spawn_vm, wait_for_endpoint};

/// A long answer: its stream has one content event per word, so a cut
/// after a few hundred bytes lands after some tokens but long before the
/// end.
const LONG_ANSWER: &str = "Streaming answers arrive word by word so that a person watching the \
     screen sees progress early and can stop a turn that goes the wrong way before it finishes \
     and costs more than it should";

/// A running guest with one attached client; its stderr is collected so
/// the test can check nothing panicked.
struct Guest {
    _home: tempfile::TempDir,
    child: Child,
    client: GatewayClient,
    events: ClientEvents,
    stderr: Arc<Mutex<String>>,
}

/// How a turn ended.
#[derive(Debug, PartialEq)]
enum End {
    Completed(String),
    Failed(String),
    Cancelled,
}

/// Everything the client saw of one turn.
#[derive(Debug)]
struct Outcome {
    /// The `AssistantDelta` texts, concatenated in arrival order.
    deltas: String,
    end: End,
    elapsed: Duration,
}

/// Starts a guest on `llm` with fast retries, then `tune`s the config.
async fn start(llm: &FakeLlm, tune: impl FnOnce(&mut AgentConfig)) -> Guest {
    let mut config = agent_config(llm);
    config.reliability.max_attempts = 3;
    config.reliability.backoff_base_ms = 10;
    config.reliability.backoff_max_ms = 40;
    tune(&mut config);
    let home = tempfile::tempdir().unwrap();
    let workspace = home.path().join("alice");
    let mut child = spawn_vm(home.path(), &frame(&envelope(&workspace, config))).await;
    // Drained all along, so the guest never blocks on a full pipe and the
    // test can read what it logged.
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().unwrap();
    let sink = Arc::clone(&stderr);
    tokio::spawn(async move {
        let mut buffer = [0u8; 4096];
        while let Ok(read) = pipe.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buffer[..read]));
        }
    });
    let endpoint_file = wait_for_endpoint(&workspace, &mut child).await;
    let (client, events, _) = connect(endpoint_file, None).await;
    Guest {
        _home: home,
        child,
        client,
        events,
        stderr,
    }
}

/// A fake LLM that plays `replies`, then echoes.
async fn llm(replies: Vec<ScriptedReply>) -> FakeLlm {
    FakeLlm::start_script(Script {
        format: WireFormat::Openai,
        when_exhausted: WhenExhausted::Echo,
        replies,
    })
    .await
    .unwrap()
}

impl Guest {
    /// Sends `text` and collects the turn until its terminal frame.
    async fn turn(&mut self, text: &str) -> Outcome {
        self.send(GatewayClientFrame::SendTurn {
            content: text.into(),
            client_turn_id: None,
        })
        .await;
        self.outcome(Instant::now()).await
    }

    async fn send(&self, frame: GatewayClientFrame) {
        self.client.send_frame(frame).await.unwrap();
    }

    /// Collects the running turn until its terminal frame.
    async fn outcome(&mut self, started: Instant) -> Outcome {
        let mut deltas = String::new();
        loop {
            let event = tokio::time::timeout(PATIENCE, self.events.recv())
                .await
                .expect("the turn ended in time")
                .expect("the client is open");
            let ClientEvent::Frame(message) = event else {
                continue;
            };
            let end = match message.frame {
                GatewayServerFrame::AssistantDelta { text } => {
                    deltas.push_str(&text);
                    continue;
                }
                GatewayServerFrame::TurnCompleted { final_message, .. } => {
                    End::Completed(final_message)
                }
                GatewayServerFrame::Error {
                    code: GatewayErrorCode::TurnFailed,
                    message,
                } => End::Failed(message),
                GatewayServerFrame::TurnCancelled { .. } => End::Cancelled,
                GatewayServerFrame::Error { code, message } => {
                    panic!("unexpected {code:?} error: {message}")
                }
                _ => continue,
            };
            return Outcome {
                deltas,
                end,
                elapsed: started.elapsed(),
            };
        }
    }

    /// The guest survived: a normal turn on the same connection completes
    /// with exactly the echoed text, the process runs, nothing panicked.
    async fn still_serves(&mut self) {
        let outcome = self.turn("are you still there?").await;
        assert_eq!(
            outcome.end,
            End::Completed("You said: are you still there?".into())
        );
        assert_eq!(outcome.deltas, "You said: are you still there?");
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "oxydra-vm is still running"
        );
        let stderr = self.stderr.lock().unwrap().clone();
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// Whether request `index` asked for a stream.
fn streamed(llm: &FakeLlm, index: usize) -> bool {
    llm.requests()[index].body["stream"] == serde_json::Value::Bool(true)
}

/// The deltas of a turn that failed part-way: a non-empty strict prefix of
/// what the model said, each word once.
fn assert_cut_prefix(deltas: &str, of: &str) {
    assert!(!deltas.is_empty(), "no text arrived before the fault");
    assert!(of.starts_with(deltas), "deltas {deltas:?} repeat or garble");
    assert!(deltas.len() < of.len(), "the whole answer arrived");
}

#[tokio::test]
async fn rate_limited_with_retry_after_waits_then_succeeds_once() {
    let llm = llm(vec![
        ScriptedReply::error(429, "slow down").with_retry_after(1),
        ScriptedReply::text("Answer after the wait"),
    ])
    .await;
    // A Retry-After is waited for up to backoff_max.
    let mut guest = start(&llm, |config| config.reliability.backoff_max_ms = 2000).await;

    let outcome = guest.turn("hello").await;
    assert_eq!(outcome.end, End::Completed("Answer after the wait".into()));
    assert_eq!(outcome.deltas, "Answer after the wait", "no repeated text");
    // Two requests, the same body twice: one retry of the same call.
    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body, requests[1].body);
    assert!(streamed(&llm, 1));
    // The backoff is 5-10 ms; only the server's Retry-After explains a
    // pause of a second (a lower bound, which cannot flake).
    assert!(outcome.elapsed >= Duration::from_millis(950), "{outcome:?}");
    guest.still_serves().await;
}

#[tokio::test]
async fn a_burst_of_server_errors_is_retried_up_to_max_attempts() {
    let llm = llm(vec![
        ScriptedReply::error(500, "internal hiccup"),
        ScriptedReply::error(503, "overloaded"),
        ScriptedReply::text("Third time lucky"),
    ])
    .await;
    let mut guest = start(&llm, |config| config.reliability.max_attempts = 3).await;

    let outcome = guest.turn("hello").await;
    assert_eq!(outcome.end, End::Completed("Third time lucky".into()));
    assert_eq!(outcome.deltas, "Third time lucky");
    let requests = llm.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.body == requests[0].body));
    guest.still_serves().await;
}

#[tokio::test]
async fn server_errors_past_max_attempts_fail_the_turn_naming_the_status() {
    let llm = llm(vec![
        ScriptedReply::error(500, "upstream overloaded"),
        ScriptedReply::error(500, "upstream overloaded"),
        ScriptedReply::error(500, "upstream overloaded"),
        ScriptedReply::error(500, "upstream overloaded"),
    ])
    .await;
    let mut guest = start(&llm, |config| config.reliability.max_attempts = 2).await;

    let outcome = guest.turn("hello").await;
    let End::Failed(message) = &outcome.end else {
        panic!("the turn should fail: {outcome:?}");
    };
    assert!(message.contains("HTTP 500"), "{message}");
    assert!(message.contains("upstream overloaded"), "{message}");
    assert_eq!(outcome.deltas, "");
    // `max_attempts` stream requests, then the runtime's fallback to a
    // plain completion, retried the same way.
    assert_eq!(llm.requests().len(), 4);
    assert!(streamed(&llm, 0) && streamed(&llm, 1));
    assert!(!streamed(&llm, 2) && !streamed(&llm, 3));
    guest.still_serves().await;
}

#[tokio::test]
async fn a_connection_reset_before_the_first_token_is_retried_transparently() {
    // One reset with no bytes at all, one cut inside the first event (a
    // truncated SSE line): both before any content reached the client.
    let llm = llm(vec![
        ScriptedReply::text("never seen").with_fault(Fault::CutAfterBytes(0)),
        ScriptedReply::text("never seen either")
            .with_chunking(Chunking::Bytes(5))
            .with_fault(Fault::CutAfterBytes(12)),
        ScriptedReply::text("The answer, once"),
    ])
    .await;
    let mut guest = start(&llm, |config| config.reliability.max_attempts = 3).await;

    let outcome = guest.turn("hello").await;
    assert_eq!(outcome.end, End::Completed("The answer, once".into()));
    assert_eq!(outcome.deltas, "The answer, once");
    assert_eq!(llm.requests().len(), 3);
    assert!((0..3).all(|i| streamed(&llm, i)), "reconnected as streams");
    guest.still_serves().await;
}

#[tokio::test]
async fn a_connection_reset_after_some_tokens_fails_the_turn_without_repeating_them() {
    let llm = llm(vec![
        // Cut inside an event, a few words in.
        ScriptedReply::text(LONG_ANSWER).with_fault(Fault::CutAfterBytes(1100)),
    ])
    .await;
    let mut guest = start(&llm, |_| {}).await;

    let outcome = guest.turn("hello").await;
    let End::Failed(message) = &outcome.end else {
        panic!("the turn should fail: {outcome:?}");
    };
    assert!(message.contains("stream ended early"), "{message}");
    assert_cut_prefix(&outcome.deltas, LONG_ANSWER);
    // No retry once text was shown: it would show that text again.
    assert_eq!(llm.requests().len(), 1);

    // The partial answer is kept in the history exactly once.
    guest.still_serves().await;
    let next = llm.requests().pop().unwrap().body.to_string();
    assert_eq!(next.matches(outcome.deltas.as_str()).count(), 1, "{next}");
}

#[tokio::test]
async fn invalid_json_inside_a_stream_fails_the_turn_with_a_parse_message() {
    let llm = llm(vec![
        ScriptedReply::text(LONG_ANSWER).with_fault(Fault::InvalidJsonChunk),
    ])
    .await;
    let mut guest = start(&llm, |_| {}).await;

    let outcome = guest.turn("hello").await;
    let End::Failed(message) = &outcome.end else {
        panic!("the turn should fail: {outcome:?}");
    };
    assert!(
        message.contains("could not parse the provider response"),
        "{message}"
    );
    assert_cut_prefix(&outcome.deltas, LONG_ANSWER);
    assert_eq!(llm.requests().len(), 1);
    guest.still_serves().await;
}

#[tokio::test]
async fn a_truncated_json_body_on_the_completion_fallback_fails_clearly() {
    // The stream breaks before content and no retry is left, so the
    // runtime falls back to a plain completion, whose JSON is cut short.
    let llm = llm(vec![
        ScriptedReply::text("never seen").with_fault(Fault::CutAfterBytes(0)),
        ScriptedReply::text("never parsed").with_fault(Fault::InvalidJsonChunk),
    ])
    .await;
    let mut guest = start(&llm, |config| config.reliability.max_attempts = 1).await;

    let outcome = guest.turn("hello").await;
    let End::Failed(message) = &outcome.end else {
        panic!("the turn should fail: {outcome:?}");
    };
    assert!(
        message.contains("could not parse the provider response"),
        "{message}"
    );
    assert_eq!(outcome.deltas, "");
    assert_eq!(llm.requests().len(), 2);
    assert!(streamed(&llm, 0) && !streamed(&llm, 1));
    guest.still_serves().await;
}

/// The turn's wall clock caps a stream that never ends. (A first turn
/// loads the tokenizer, which in a debug build takes a good part of the
/// one-second cap; the timed turn is the second.)
#[tokio::test]
async fn a_stream_that_never_ends_times_out_within_the_turn_timeout() {
    let llm = llm(vec![
        ScriptedReply::text("warm"),
        ScriptedReply::text("Thinking very slowly").with_fault(Fault::NeverEnd),
    ])
    .await;
    let mut guest = start(&llm, |config| config.runtime.turn_timeout_secs = 1).await;
    assert_eq!(
        guest.turn("warm up").await.end,
        End::Completed("warm".into())
    );

    let outcome = guest.turn("hello").await;
    let End::Failed(message) = &outcome.end else {
        panic!("the turn should fail: {outcome:?}");
    };
    assert!(message.contains("wall-clock limit"), "{message}");
    assert!(message.contains("turn_timeout_secs"), "{message}");
    // The words arrived before the hang, each once.
    assert_eq!(outcome.deltas, "Thinking very slowly");
    assert!(outcome.elapsed >= Duration::from_millis(950), "{outcome:?}");
    assert_eq!(llm.requests().len(), 2);
    guest.still_serves().await;
}

#[tokio::test]
async fn cancelling_during_a_reconnect_backoff_makes_no_further_request() {
    // The stream breaks before content; the reconnect waits 400-800 ms.
    let llm = llm(vec![
        ScriptedReply::text("never seen").with_fault(Fault::CutAfterBytes(0)),
    ])
    .await;
    let mut guest = start(&llm, |config| {
        config.reliability.backoff_base_ms = 800;
        config.reliability.backoff_max_ms = 800;
    })
    .await;

    let started = Instant::now();
    guest
        .send(GatewayClientFrame::SendTurn {
            content: "hello".into(),
            client_turn_id: None,
        })
        .await;
    let deadline = Instant::now() + PATIENCE;
    while llm.requests().is_empty() {
        assert!(Instant::now() < deadline, "the provider was never called");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    guest.send(GatewayClientFrame::CancelActiveTurn).await;
    let outcome = guest.outcome(started).await;
    assert_eq!(outcome.end, End::Cancelled);
    assert_eq!(outcome.deltas, "");
    guest.still_serves().await;

    // Past the longest backoff: the abandoned reconnect never called the
    // provider (one request for the cut stream, one for the next turn).
    tokio::time::sleep(Duration::from_millis(900)).await;
    let paths: Vec<String> = llm.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
}

#[tokio::test]
async fn a_retry_after_longer_than_the_turn_timeout_ends_at_the_timeout() {
    let llm = llm(vec![
        ScriptedReply::text("warm"),
        ScriptedReply::error(429, "come back in an hour").with_retry_after(3600),
    ])
    .await;
    let mut guest = start(&llm, |config| {
        config.runtime.turn_timeout_secs = 1;
        config.reliability.backoff_max_ms = 7_200_000;
    })
    .await;
    // See above: the timed turn is the second.
    assert_eq!(
        guest.turn("warm up").await.end,
        End::Completed("warm".into())
    );

    let outcome = guest.turn("hello").await;
    let End::Failed(message) = &outcome.end else {
        panic!("the turn should fail: {outcome:?}");
    };
    assert!(message.contains("turn_timeout_secs"), "{message}");
    assert_eq!(outcome.deltas, "");
    assert_eq!(llm.requests().len(), 2, "no request while waiting");
    guest.still_serves().await;
    assert_eq!(llm.requests().len(), 3);
}

#[tokio::test]
async fn a_retry_after_longer_than_backoff_max_fails_the_turn_at_once() {
    let llm = llm(vec![
        ScriptedReply::error(429, "daily quota used up").with_retry_after(3600),
    ])
    .await;
    // The turn timeout is long: a wait would end there, with another message.
    let mut guest = start(&llm, |config| config.runtime.turn_timeout_secs = 60).await;

    let outcome = guest.turn("hello").await;
    let End::Failed(message) = &outcome.end else {
        panic!("the turn should fail: {outcome:?}");
    };
    assert!(
        message.contains("rate limit") && message.contains("daily quota used up"),
        "{message}"
    );
    assert!(message.contains("retry after 3600"), "{message}");
    // No complete() fallback either: the limit is the account's.
    assert_eq!(llm.requests().len(), 1);
    guest.still_serves().await;
}
