//! Test fakes for Oxydra. This crate owns the scriptable fake LLM servers:
//! each speaks one real vendor wire format (OpenAI chat, the Responses API,
//! Anthropic, Gemini) over real HTTP/SSE on 127.0.0.1, follows a script of
//! replies and faults, and records every request. It also ships the
//! `oxydra-fake-llm` binary to run Oxydra offline against a scripted
//! conversation.
//!
//! `fake_telegram::FakeTelegram` is a fake Telegram Bot API (long
//! polling, sends and edits checked as Telegram checks them, faults).
//!
//! It also holds `openai_agent_config` (a configuration pointing at a fake
//! LLM), `process_envelope` (a process-tier bootstrap envelope) and `RecordingMemory`, an in-memory implementation of the
//! `Memory` and `MemoryRetrieval` traits that records every operation.
//!
//! It is a dev-only crate. The fake LLM servers never use Oxydra's provider
//! code or message types: they check providers against the vendors' wire
//! formats, not against the provider code's idea of them.

pub mod bench;
mod config;
pub mod fake_llm;
pub mod fake_telegram;
pub mod memory;

pub use config::{openai_agent_config, process_envelope};
pub use fake_llm::{
    Chunking, FakeLlm, Fault, RecordedRequest, ReplyBody, Script, ScriptedReply, ScriptedToolCall,
    WhenExhausted, WireFormat,
};
pub use fake_telegram::{FakeTelegram, SentDocument, SentMessage, TelegramCall};
pub use memory::{MemoryOp, RecordingMemory};
