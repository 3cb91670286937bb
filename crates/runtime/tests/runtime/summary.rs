//! Rolling summarisation: the trigger, the model-written condensation, the
//! deterministic fallback, a lost compare-and-swap race, the summary's own
//! budget, and the accounting of every model call (summaries included)
//! across restarts.

use crate::support::{Harness, Options, roles};
use runtime::context::{count_tokens, input_budget};
use runtime::{RuntimeEvent, RuntimeLimits};
use test_support::{ScriptedReply, WhenExhausted};
use types::catalog::DeprecationState;
use types::error::BudgetKind;
use types::{MemorySummaryState, ModelDescriptor, ProviderType, RuntimeError, UsageUpdate};

/// A model with a 1,000-token window and no tools, so a few long prompts
/// cross the 80 % trigger.
fn tiny_model() -> ModelDescriptor {
    ModelDescriptor {
        id: "tiny".into(),
        provider: ProviderType::Openai,
        display_name: "tiny".into(),
        supports_tools: false,
        supports_streaming: true,
        supports_reasoning_traces: false,
        supports_json_mode: false,
        max_input_tokens: 1000,
        max_output_tokens: 100,
        input_price_per_million: 1.0,
        output_price_per_million: 1.0,
        cache_read_price_per_million: None,
        cache_write_price_per_million: None,
        deprecation_state: DeprecationState::Active,
    }
}

fn prompt(n: usize) -> String {
    format!("turn {n}: {}", "alpha ".repeat(150))
}

/// Three short answers, then `condensation` for the summary request, then
/// the fourth answer.
async fn harness(condensation: ScriptedReply) -> Harness {
    let replies = vec![
        ScriptedReply::text("ok 1"),
        ScriptedReply::text("ok 2"),
        ScriptedReply::text("ok 3"),
        condensation,
        ScriptedReply::text("ok 4"),
    ];
    Harness::new(
        replies,
        Options {
            model: tiny_model(),
            ..Options::default()
        },
    )
    .await
}

async fn four_turns(harness: &Harness) {
    for n in 1..=4 {
        harness.turn(&prompt(n)).await.0.unwrap();
    }
}

#[tokio::test]
async fn crossing_the_trigger_condenses_the_oldest_messages() {
    let harness = harness(ScriptedReply::text("- the user repeated alpha a lot")).await;
    four_turns(&harness).await;
    let bodies = harness.bodies();
    assert_eq!(bodies.len(), 5);
    // Request 4 is the condensation: no streaming, the instruction, the transcript.
    let condense = &bodies[3];
    assert_eq!(condense["stream"], false);
    assert!(
        condense["messages"][0]["content"]
            .as_str()
            .unwrap()
            .starts_with("Condense")
    );
    assert!(
        condense["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("user: turn 1:")
    );
    // The fourth turn's request carries the summary instead of the oldest history.
    let last = &bodies[4];
    assert_eq!(
        last["messages"][1]["content"],
        "Rolling session summary: - the user repeated alpha a lot"
    );
    let text = last.to_string();
    assert!(
        !text.contains("turn 1:") && text.contains("turn 4:"),
        "{text}"
    );
    let summary = harness.memory.summary("session-1").unwrap();
    assert_eq!(summary.epoch, 1);
    assert!(summary.upper_sequence >= 1);
    // Condensation works on whole units and the request stays valid.
    assert_eq!(roles(last)[0..2], ["system", "system"]);
}

#[tokio::test]
async fn a_failed_condensation_falls_back_to_a_bulleted_list() {
    let harness = harness(ScriptedReply::error(400, "no summaries today")).await;
    four_turns(&harness).await;
    let summary = harness.memory.summary("session-1").unwrap().summary_text;
    assert!(
        summary.starts_with("- user: turn 1: alpha alpha"),
        "{summary}"
    );
    assert!(
        summary.lines().all(|line| line.starts_with("- ")),
        "{summary}"
    );
}

#[tokio::test]
async fn a_writer_that_loses_the_race_uses_the_stored_summary() {
    let harness = harness(ScriptedReply::text("- mine")).await;
    harness.memory.race_next_summary_write(
        "session-1",
        MemorySummaryState {
            summary_text: "- theirs".into(),
            upper_sequence: 2,
            epoch: 1,
        },
    );
    four_turns(&harness).await;
    let stored = harness.memory.summary("session-1").unwrap();
    assert_eq!(
        stored.summary_text, "- theirs",
        "the stale write changed nothing"
    );
    assert_eq!(
        harness.bodies()[4]["messages"][1]["content"],
        "Rolling session summary: - theirs"
    );
}

/// A model whose every answer is far too long for a summary (it repeats
/// the request back): the summary is condensed again, and cut to its
/// newest lines when even that does not fit — it never grows past its
/// share of the window, however long the session.
#[tokio::test]
async fn the_summary_stays_within_its_budget_across_200_turns() {
    let harness = Harness::new(
        Vec::new(),
        Options {
            model: tiny_model(),
            when_exhausted: WhenExhausted::Echo,
            ..Options::default()
        },
    )
    .await;
    let limits = RuntimeLimits::default();
    let budget = (input_budget(&tiny_model(), &limits) as f64
        * limits.summarization.max_summary_ratio) as usize;
    let mut condensed = 0;
    for n in 1..=200 {
        harness
            .turn(&format!("turn {n}: {}", "alpha beta ".repeat(40)))
            .await
            .0
            .unwrap();
        if let Some(summary) = harness.memory.summary("session-1") {
            condensed = summary.epoch;
            let tokens = count_tokens(&summary.summary_text);
            assert!(tokens <= budget, "turn {n}: {tokens} > {budget} tokens");
        }
    }
    assert!(
        condensed > 20,
        "the summary was rewritten {condensed} times"
    );
    // The newest condensed turns are what the summary keeps.
    let summary = harness.memory.summary("session-1").unwrap().summary_text;
    assert!(!summary.contains("turn 1:"), "{summary}");
}

/// Summarising is a model call like any other: its tokens and cost count
/// toward the turn (and so toward `max_cost`).
#[tokio::test]
async fn the_summarisers_usage_counts_toward_the_turn() {
    let harness = harness(ScriptedReply::text("- the user repeated alpha a lot")).await;
    for n in 1..=3 {
        harness.turn(&prompt(n)).await.0.unwrap();
    }
    let (outcome, events) = harness.turn(&prompt(4)).await;
    let outcome = outcome.unwrap();
    let calls: Vec<(UsageUpdate, f64)> = events
        .iter()
        .filter_map(|event| match event {
            RuntimeEvent::Usage { usage, cost_usd } => Some((*usage, *cost_usd)),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 2, "the condensation and the answer: {calls:?}");
    let mut total = UsageUpdate::default();
    calls.iter().for_each(|(usage, _)| total.accumulate(usage));
    assert_eq!(outcome.usage, total);
    let cost: f64 = calls.iter().map(|(_, cost)| cost).sum();
    assert!((outcome.cost_usd - cost).abs() < 1e-12);
    // The condensation read the long transcript: it was the larger call.
    assert!(
        calls[0].0.input_tokens > calls[1].0.input_tokens,
        "{calls:?}"
    );
    let totals = harness
        .runtime
        .session_totals(&harness.session)
        .await
        .unwrap();
    assert!(totals.cost_usd >= outcome.cost_usd);
}

/// A restarted agent knows what a session already cost: the totals are
/// kept with the stored messages, and the cost budget still holds.
#[tokio::test]
async fn a_sessions_cost_and_tokens_survive_a_restart() {
    let harness = Harness::new(
        vec![ScriptedReply::text("one"), ScriptedReply::text("two")],
        Options::default(),
    )
    .await;
    harness.turn("first").await.0.unwrap();
    harness.turn("second").await.0.unwrap();
    let before = harness
        .runtime
        .session_totals(&harness.session)
        .await
        .unwrap();
    assert!(before.cost_usd > 0.0 && before.usage.input_tokens > 0);

    // A new runtime over the same storage, as after a guest restart, with
    // a budget the session has already spent.
    let restarted = harness.restarted(RuntimeLimits {
        max_cost: Some(before.cost_usd * 0.99),
        ..RuntimeLimits::default()
    });
    let after = restarted.session_totals(&harness.session).await.unwrap();
    assert_eq!(after, before);
    let requests = harness.server.requests().len();
    let (tx, _rx) = tokio::sync::mpsc::channel(64);
    let error = restarted
        .run_session(
            &harness.session,
            "third",
            &tokio_util::sync::CancellationToken::new(),
            &tx,
        )
        .await
        .unwrap_err();
    assert_eq!(
        error,
        RuntimeError::BudgetExceeded {
            kind: BudgetKind::Cost
        }
    );
    assert_eq!(harness.server.requests().len(), requests, "no model call");
}
