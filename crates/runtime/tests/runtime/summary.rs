//! Rolling summarisation: the trigger, the model-written condensation, the
//! deterministic fallback and a lost compare-and-swap race.

use crate::support::{Harness, Options, roles};
use test_support::ScriptedReply;
use types::catalog::DeprecationState;
use types::{MemorySummaryState, ModelDescriptor, ProviderType};

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
