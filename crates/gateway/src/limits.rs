//! The gateway's capacities and timeouts.

use std::time::Duration;

use crate::error::GatewayError;

/// Capacities and timeouts of one gateway. Every queue is bounded; what
/// happens when one is full is part of the protocol (a `busy` error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayLimits {
    /// WebSocket connections served at once; more get HTTP 503.
    pub max_connections: usize,
    /// Largest text frame a client may send, in bytes. A larger frame (up
    /// to four times this) gets a `frame_too_large` error and the
    /// connection lives on; beyond that the transport refuses it and the
    /// connection is closed (code 1009).
    pub max_frame_bytes: usize,
    /// Turns that may wait in one session's lane behind the active one;
    /// the next `SendTurn` gets a `busy` error.
    pub lane_depth: usize,
    /// Runs that may wait in the background lane.
    pub background_lane_depth: usize,
    /// Recent frames kept per session for reconnecting clients.
    pub replay_frames: usize,
    /// How long a privileged tool call waits for the human's answer before
    /// it is denied.
    pub approval_timeout: Duration,
    /// How long a new connection has to send its `Hello`.
    pub hello_timeout: Duration,
    /// How long a session stays loaded with no client attached and no
    /// turn running or waiting; then its lane and replay buffer are freed
    /// (only its latest terminal frame is kept for resuming clients).
    pub idle_session: Duration,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_frame_bytes: 256 * 1024,
            lane_depth: 16,
            background_lane_depth: 64,
            replay_frames: 1024,
            approval_timeout: Duration::from_secs(300),
            hello_timeout: Duration::from_secs(10),
            idle_session: Duration::from_secs(900),
        }
    }
}

impl GatewayLimits {
    /// The transport's own cap: frames beyond it are not even buffered.
    pub(crate) fn transport_max_bytes(&self) -> usize {
        self.max_frame_bytes.saturating_mul(4).max(64 * 1024)
    }

    pub(crate) fn validate(&self) -> Result<(), GatewayError> {
        let counts = [
            ("max_connections", self.max_connections),
            ("max_frame_bytes", self.max_frame_bytes),
            ("lane_depth", self.lane_depth),
            ("background_lane_depth", self.background_lane_depth),
            ("replay_frames", self.replay_frames),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, value)| *value == 0) {
            return Err(GatewayError::InvalidConfig(format!(
                "gateway limit `{name}` must be at least 1"
            )));
        }
        for (name, value) in [
            ("approval_timeout", self.approval_timeout),
            ("hello_timeout", self.hello_timeout),
            ("idle_session", self.idle_session),
        ] {
            if value.is_zero() {
                return Err(GatewayError::InvalidConfig(format!(
                    "gateway limit `{name}` must be longer than zero"
                )));
            }
        }
        Ok(())
    }
}
