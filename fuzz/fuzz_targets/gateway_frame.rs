//! The gateway's WebSocket text frames (`types::protocol::gateway`) on
//! arbitrary text, parsed the way the gateway parses a client's frame
//! (`serde_json::from_str::<GatewayClientFrame>`), the way clients parse the
//! server's messages, and the way clients read the endpoint file.
//!
//! Invariants: nothing panics; every frame that parses re-serialises and
//! parses back to the same value (what a reconnecting client or the replay
//! outbox relies on); a validated id stays valid through the round trip.

#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use types::protocol::gateway::{GatewayClientFrame, GatewayEndpoint, GatewayServerMessage};

fn round_trip<T>(text: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Ok(value) = serde_json::from_str::<T>(text) else {
        return;
    };
    let json = serde_json::to_string(&value).expect("a parsed frame serialises");
    let back: T = serde_json::from_str(&json).expect("a serialised frame parses");
    assert_eq!(back, value, "round trip changed the frame: {json}");
}

fuzz_target!(|data: &[u8]| {
    // WebSocket text frames are UTF-8 by the protocol (tungstenite checks).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    round_trip::<GatewayClientFrame>(text);
    round_trip::<GatewayServerMessage>(text);
    if let Ok(endpoint) = GatewayEndpoint::parse(text) {
        let back = GatewayEndpoint::parse(&endpoint.to_line()).expect("to_line parses back");
        assert_eq!(back, endpoint);
    }
});
