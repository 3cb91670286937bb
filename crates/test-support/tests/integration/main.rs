//! Integration tests of the fake LLM servers and the `oxydra-fake-llm`
//! binary, all over real HTTP on 127.0.0.1.

mod anthropic;
mod binary;
mod delivery;
mod gemini;
mod openai;
mod responses;
mod script;
mod support;
