//! The budgets of a turn, from `[runtime]` configuration.

use std::time::Duration;

use types::config::{RuntimeConfig, SummarizationConfig};

/// Limits that bound one user turn.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeLimits {
    /// Provider calls per user turn.
    pub max_turns: u32,
    /// Cost budget per session (USD), if any.
    pub max_cost: Option<f64>,
    /// Bound on each provider call and each tool run.
    pub turn_timeout: Duration,
    /// Capacity of the provider stream channel.
    pub stream_buffer_size: usize,
    /// Share of the model's input window kept free, because token counts
    /// are `cl100k_base` estimates for non-OpenAI models.
    pub context_safety_margin: f64,
    pub summarization: SummarizationConfig,
}

impl RuntimeLimits {
    pub fn from_config(config: &RuntimeConfig) -> Self {
        Self {
            max_turns: config.max_turns,
            max_cost: config.max_cost,
            turn_timeout: Duration::from_secs(config.turn_timeout_secs),
            stream_buffer_size: config.stream_buffer_size,
            context_safety_margin: config.context_safety_margin.clamp(0.0, 0.9),
            summarization: config.summarization.clone(),
        }
    }
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        Self::from_config(&RuntimeConfig::default())
    }
}
