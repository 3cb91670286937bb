//! The gateway's protocol over a real WebSocket, with the real runtime
//! talking to the fake LLM server over HTTP.

mod approval;
mod protocol;
mod reconnect;
mod support;
mod turns;
