//! The runtime end to end: a real provider talking HTTP to the fake LLM
//! server, real tools in a temporary workspace, a recording memory.

mod summary;
mod support;
mod timeouts;
mod turns;
