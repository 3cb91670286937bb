//! Oxydra's LLM provider adapters. Each vendor's wire format (OpenAI chat
//! completions, the OpenAI Responses API, Anthropic messages, Gemini) is
//! mapped to and from the neutral `types` message model, with real SSE
//! streaming. `ReliableProvider` adds retries and fallbacks on top.
//!
//! This is the only crate that knows vendor wire formats. It knows nothing
//! about sessions, tools' behaviour, storage or the gateway.

pub mod accumulate;
pub mod anthropic;
mod factory;
pub mod gemini;
mod http;
pub mod openai;
pub mod reliable;
pub mod responses;
pub mod sse;
#[cfg(test)]
mod stream_test;
mod wire;

pub use accumulate::{StreamCollector, ToolCallAccumulator, collect_stream};
pub use factory::{build_provider, build_selected};
pub use http::{EventParser, StreamStep};
pub use reliable::{Fallback, ReliableProvider, RetryPolicy};
pub use wire::{HttpProvider, WireApi, WireRequest};

/// OpenAI chat completions (and compatible servers).
pub type OpenAiProvider = HttpProvider<openai::ChatWire>;
/// The OpenAI Responses API.
pub type ResponsesProvider = HttpProvider<responses::ResponsesWire>;
/// Anthropic messages.
pub type AnthropicProvider = HttpProvider<anthropic::MessagesWire>;
/// Gemini generateContent.
pub type GeminiProvider = HttpProvider<gemini::GeminiWire>;
