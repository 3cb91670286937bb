//! The runner's control socket: `oxydra-runner stop|status` (and any other
//! client) ↔ the `--daemon` supervisor of one user. JSON requests and
//! responses, one per length-prefixed frame (`protocol::framing`), over the
//! Unix socket `<workspace_root>/.runner/<user>.sock`.
//!
//! A malformed request is answered with `ControlResponse::Error` and the
//! connection stays open; only a framing error ends it. The status never
//! carries the gateway token.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::channel::ChannelHealthStatus;
use crate::ids::UserId;
use crate::protocol::bootstrap::StartupDegradedReason;
use crate::runner::SandboxTier;

/// Cap on one control frame; requests and responses are small.
pub const MAX_CONTROL_FRAME_BYTES: usize = 64 * 1024;

/// A request to the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlRequest {
    /// Is the supervisor alive, and is its guest serving?
    Health,
    /// Everything an operator wants to know about the user's guest.
    Status,
    /// Stop the guest and the supervisor. Answered with `ShuttingDown`
    /// before the supervisor starts stopping.
    Shutdown,
}

/// The supervisor's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlResponse {
    Health(HealthReport),
    Status(SupervisorStatus),
    /// The shutdown has begun; the socket disappears when it is done.
    ShuttingDown,
    /// The request could not be understood (not valid JSON for
    /// `ControlRequest`); the connection stays usable.
    Error {
        message: String,
    },
}

/// Liveness of the supervisor and its guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The supervisor's own process id.
    pub supervisor_pid: u32,
    /// The guest is serving (its gateway endpoint file was written).
    pub guest_ready: bool,
}

/// What the guest process is doing right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GuestState {
    /// Launched, not yet serving.
    Starting { pid: u32 },
    /// Serving at `endpoint_url` since `uptime_secs` seconds.
    Running {
        pid: u32,
        uptime_secs: u64,
        endpoint_url: String,
    },
    /// Exited unexpectedly; the next start is scheduled.
    Restarting { retry_in_ms: u64 },
    /// Being stopped by a shutdown.
    Stopping,
}

impl GuestState {
    /// The guest's process id while one exists.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Self::Starting { pid } | Self::Running { pid, .. } => Some(*pid),
            Self::Restarting { .. } | Self::Stopping => None,
        }
    }
}

/// The supervisor's report of one user's guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorStatus {
    pub user_id: UserId,
    pub tier: SandboxTier,
    pub supervisor_pid: u32,
    /// Seconds since the supervisor started.
    pub supervisor_uptime_secs: u64,
    pub guest: GuestState,
    /// How many times a crashed guest was started again.
    pub restarts: u32,
    /// How the previous guest ended (`exit status 1`, `killed by SIGKILL`),
    /// when one has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    /// The file the guest's stdout and stderr are appended to.
    pub log_file: PathBuf,
    /// Why the running guest has less than full capability (e.g. its shell
    /// sidecar did not start), as handed to it in its startup status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub degraded_reasons: Vec<StartupDegradedReason>,
    /// Each chat channel's health (`telegram` → healthy, or why not).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channels: BTreeMap<String, ChannelHealthStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::framing::{encode_json_frame, read_json_frame};
    use crate::test_support::round_trip;
    use serde_json::json;

    fn status() -> SupervisorStatus {
        SupervisorStatus {
            user_id: UserId::parse("alice").unwrap(),
            tier: SandboxTier::Process,
            supervisor_pid: 10,
            supervisor_uptime_secs: 5,
            guest: GuestState::Running {
                pid: 11,
                uptime_secs: 4,
                endpoint_url: "ws://127.0.0.1:4000/ws".into(),
            },
            restarts: 1,
            last_exit: Some("killed by SIGKILL".into()),
            log_file: "/w/.runner/logs/alice.log".into(),
            degraded_reasons: vec![StartupDegradedReason::SidecarUnavailable],
            channels: BTreeMap::from([(
                "telegram".to_owned(),
                ChannelHealthStatus::Unhealthy {
                    reason: "Telegram refused the bot token".to_owned(),
                },
            )]),
        }
    }

    #[test]
    fn request_wire_shape() {
        for (request, name) in [
            (ControlRequest::Health, "health"),
            (ControlRequest::Status, "status"),
            (ControlRequest::Shutdown, "shutdown"),
        ] {
            assert_eq!(
                serde_json::to_value(request).unwrap(),
                json!({"type": name})
            );
            round_trip(&request);
        }
    }

    #[test]
    fn status_wire_shape() {
        assert_eq!(
            serde_json::to_value(ControlResponse::Status(status())).unwrap(),
            json!({
                "type": "status",
                "user_id": "alice",
                "tier": "process",
                "supervisor_pid": 10,
                "supervisor_uptime_secs": 5,
                "guest": {
                    "state": "running",
                    "pid": 11,
                    "uptime_secs": 4,
                    "endpoint_url": "ws://127.0.0.1:4000/ws"
                },
                "restarts": 1,
                "last_exit": "killed by SIGKILL",
                "log_file": "/w/.runner/logs/alice.log",
                "degraded_reasons": [{"reason": "sidecar_unavailable"}],
                "channels": {
                    "telegram": {"status": "unhealthy", "reason": "Telegram refused the bot token"}
                }
            })
        );
        round_trip(&ControlResponse::Status(status()));
    }

    #[test]
    fn other_responses_wire_shape() {
        assert_eq!(
            serde_json::to_value(ControlResponse::Health(HealthReport {
                supervisor_pid: 3,
                guest_ready: true
            }))
            .unwrap(),
            json!({"type": "health", "supervisor_pid": 3, "guest_ready": true})
        );
        assert_eq!(
            serde_json::to_value(ControlResponse::ShuttingDown).unwrap(),
            json!({"type": "shutting_down"})
        );
        assert_eq!(
            serde_json::to_value(ControlResponse::Error {
                message: "bad".into()
            })
            .unwrap(),
            json!({"type": "error", "message": "bad"})
        );
        for guest in [
            GuestState::Starting { pid: 1 },
            GuestState::Restarting { retry_in_ms: 500 },
            GuestState::Stopping,
        ] {
            round_trip(&guest);
        }
        assert_eq!(
            serde_json::to_value(GuestState::Restarting { retry_in_ms: 500 }).unwrap(),
            json!({"state": "restarting", "retry_in_ms": 500})
        );
    }

    #[test]
    fn guest_pid_only_while_a_process_exists() {
        assert_eq!(GuestState::Starting { pid: 7 }.pid(), Some(7));
        assert_eq!(status().guest.pid(), Some(11));
        assert_eq!(GuestState::Restarting { retry_in_ms: 1 }.pid(), None);
        assert_eq!(GuestState::Stopping.pid(), None);
    }

    #[test]
    fn requests_travel_in_frames_and_unknown_ones_are_named() {
        let frame = encode_json_frame(&ControlRequest::Status, MAX_CONTROL_FRAME_BYTES).unwrap();
        let back: ControlRequest =
            read_json_frame(&mut frame.as_slice(), MAX_CONTROL_FRAME_BYTES).unwrap();
        assert_eq!(back, ControlRequest::Status);
        let err = serde_json::from_value::<ControlRequest>(json!({"type": "reboot"})).unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `reboot`"),
            "{err}"
        );
    }
}
