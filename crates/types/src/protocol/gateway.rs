//! The gateway's WebSocket protocol: typed JSON text frames at `/ws`.
//! Clients send `GatewayClientFrame`s; the server sends
//! `GatewayServerMessage`s, each a `GatewayServerFrame` stamped with the
//! session's sequence number so a reconnecting client can resume.

use serde::{Deserialize, Serialize};

use crate::ids::{ModelId, SessionId, TurnId, UserId};
use crate::protocol::bootstrap::StartupDegradedReason;
use crate::runner::SandboxTier;
use crate::secret::SecretString;
use crate::tool::SafetyTier;

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GatewayClientFrame {
    /// The first frame of every connection. `session_id` attaches to an
    /// existing session (else the user's latest, or a new one when there
    /// is none or `new_session` asks for it);
    /// `resume_from` is the last sequence number the client saw.
    Hello {
        user_id: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<SessionId>,
        /// The access token from the endpoint file.
        token: SecretString,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_from: Option<u64>,
        /// Without `session_id`: start a new session instead of attaching
        /// to the latest (a chat channel's first contact from a new chat).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        new_session: bool,
    },
    /// A user message; queued in the session's lane.
    SendTurn {
        content: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_turn_id: Option<String>,
    },
    /// Cancels the session's active turn (never the agent itself).
    CancelActiveTurn,
    /// Starts a new conversation; old sessions stay stored.
    NewSession,
    /// The human's answer to an `ApprovalRequest`.
    ApprovalResponse {
        request_id: String,
        approved: bool,
    },
    HealthCheck,
    /// Asks for the user's sessions, most recently updated first.
    ListSessions,
}

/// A server frame with its per-session sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayServerMessage {
    /// Increases by one per frame within a session's stream (the frames
    /// every attached client sees and a resuming client can replay). 0
    /// marks a frame addressed to this connection only and never replayed:
    /// `HelloAck`, errors about the connection's own frames (authentication,
    /// malformed, busy, …), `HealthStatus` and `Sessions`. A client keeps
    /// the highest non-zero `seq` it saw as its `resume_from`.
    pub seq: u64,
    #[serde(flatten)]
    pub frame: GatewayServerFrame,
}

/// The sequence number of frames addressed to one connection only.
pub const CONNECTION_SEQ: u64 = 0;

/// The contents of `<workspace>/tmp/gateway-endpoint`: one line of JSON,
/// `{"url":"ws://127.0.0.1:PORT/ws","token":"…"}`, written atomically by
/// the guest with mode 0600 once the gateway listens, and removed when it
/// stops. Clients send `token` in their `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayEndpoint {
    /// The WebSocket URL (`ws://127.0.0.1:PORT/ws`).
    pub url: String,
    /// The access token every `Hello` must carry.
    pub token: SecretString,
}

impl GatewayEndpoint {
    /// The file's name inside the workspace's `tmp/` directory.
    pub const FILE_NAME: &'static str = "gateway-endpoint";

    /// Parses the file's text (surrounding whitespace is ignored).
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text.trim())
    }

    /// The file's text: one line of JSON ending with a newline.
    pub fn to_line(&self) -> String {
        // Serialising two strings cannot fail; the fallback keeps the
        // function total without a panic path.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

/// Token usage and estimated cost of one turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TurnUsage {
    /// Every prompt token, cached or not (see `types::UsageUpdate`).
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    /// Catalog list prices × tokens: an estimate, not billing.
    pub cost_usd: f64,
    /// Of `input_tokens`, those read from the provider's prompt cache.
    /// Absent in frames from gateways that predate it.
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Of `input_tokens`, those written to the provider's prompt cache.
    #[serde(default)]
    pub cache_write_input_tokens: u64,
}

/// Why the server sent an `Error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayErrorCode {
    /// Missing or wrong token; the connection is closed after this frame.
    Unauthorized,
    /// A frame other than `Hello` arrived before authentication.
    HelloRequired,
    /// The frame was not valid JSON or not a known frame type.
    MalformedFrame,
    /// The frame exceeded the size cap.
    FrameTooLarge,
    /// The session's lane is full; try again later.
    Busy,
    /// `CancelActiveTurn` with no active turn.
    NoActiveTurn,
    /// An `ApprovalResponse` for an unknown or expired request.
    UnknownApproval,
    /// The session does not exist or belongs to someone else.
    UnknownSession,
    /// The turn failed (provider error, budget exceeded, …).
    TurnFailed,
    Internal,
}

/// One of the user's sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    pub session_id: SessionId,
    /// Milliseconds since the Unix epoch.
    pub updated_at_ms: i64,
    /// Whether this connection is attached to it.
    pub current: bool,
}

/// Frames the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GatewayServerFrame {
    HelloAck {
        runtime_session_id: SessionId,
        tier: SandboxTier,
        degraded_reasons: Vec<StartupDegradedReason>,
        model: ModelId,
    },
    TurnStarted {
        turn_id: TurnId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_turn_id: Option<String>,
    },
    AssistantDelta {
        text: String,
    },
    /// A fragment of the model's reasoning, streamed as it thinks: not part
    /// of the answer (clients show it apart, or not at all).
    ReasoningDelta {
        text: String,
    },
    ToolCallStarted {
        call_id: String,
        name: String,
        /// A short, scrubbed description of the arguments.
        summary: String,
    },
    ToolCallFinished {
        call_id: String,
        name: String,
        ok: bool,
    },
    /// A privileged tool call waits for the human's yes or no.
    ApprovalRequest {
        request_id: String,
        tool: String,
        /// The arguments, scrubbed and cut to one line's worth.
        arguments_summary: String,
        /// The complete arguments (JSON as the model wrote them), scrubbed
        /// of credentials: what the person actually approves.
        arguments: String,
        safety_tier: SafetyTier,
    },
    /// The agent sends a file from the user's workspace (`send_file`):
    /// a chat channel delivers it, a terminal shows where it is.
    FileSent {
        /// The file as the agent sees it (`/shared/…`).
        path: String,
        file_name: String,
        size_bytes: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
    },
    TurnCompleted {
        turn_id: TurnId,
        final_message: String,
        usage: TurnUsage,
    },
    TurnCancelled {
        turn_id: TurnId,
    },
    Error {
        code: GatewayErrorCode,
        message: String,
    },
    HealthStatus {
        healthy: bool,
        tier: SandboxTier,
        degraded_reasons: Vec<StartupDegradedReason>,
        active_sessions: usize,
        uptime_secs: u64,
    },
    Sessions {
        sessions: Vec<SessionSummary>,
    },
}

impl GatewayServerFrame {
    /// Frames that end a turn: what a client resuming from too far back
    /// gets instead of the frames it missed.
    pub fn is_turn_terminal(&self) -> bool {
        match self {
            Self::TurnCompleted { .. } | Self::TurnCancelled { .. } => true,
            Self::Error { code, .. } => *code == GatewayErrorCode::TurnFailed,
            Self::HelloAck { .. }
            | Self::TurnStarted { .. }
            | Self::AssistantDelta { .. }
            | Self::ReasoningDelta { .. }
            | Self::ToolCallStarted { .. }
            | Self::ToolCallFinished { .. }
            | Self::ApprovalRequest { .. }
            | Self::FileSent { .. }
            | Self::HealthStatus { .. }
            | Self::Sessions { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::round_trip;
    use serde_json::json;

    fn client_frames() -> Vec<GatewayClientFrame> {
        vec![
            GatewayClientFrame::Hello {
                user_id: UserId::parse("alice").unwrap(),
                session_id: Some("s-1".into()),
                token: "secret-token".into(),
                resume_from: Some(41),
                new_session: false,
            },
            GatewayClientFrame::SendTurn {
                content: "list /shared".into(),
                client_turn_id: Some("c-1".into()),
            },
            GatewayClientFrame::CancelActiveTurn,
            GatewayClientFrame::NewSession,
            GatewayClientFrame::ApprovalResponse {
                request_id: "r-1".into(),
                approved: false,
            },
            GatewayClientFrame::HealthCheck,
            GatewayClientFrame::ListSessions,
        ]
    }

    fn server_frames() -> Vec<GatewayServerFrame> {
        vec![
            GatewayServerFrame::HelloAck {
                runtime_session_id: "s-1".into(),
                tier: SandboxTier::Process,
                degraded_reasons: vec![StartupDegradedReason::InsecureProcessTier],
                model: "gpt-4.1".into(),
            },
            GatewayServerFrame::TurnStarted {
                turn_id: "t-1".into(),
                client_turn_id: None,
            },
            GatewayServerFrame::AssistantDelta { text: "Hel".into() },
            GatewayServerFrame::ReasoningDelta {
                text: "The user wants".into(),
            },
            GatewayServerFrame::ToolCallStarted {
                call_id: "call_1".into(),
                name: "file_list".into(),
                summary: "/shared".into(),
            },
            GatewayServerFrame::ToolCallFinished {
                call_id: "call_1".into(),
                name: "file_list".into(),
                ok: true,
            },
            GatewayServerFrame::ApprovalRequest {
                request_id: "r-1".into(),
                tool: "shell_exec".into(),
                arguments_summary: "{\"command\":\"ls\"}".into(),
                arguments: "{\"command\":\"ls\"}".into(),
                safety_tier: SafetyTier::Privileged,
            },
            GatewayServerFrame::FileSent {
                path: "/shared/report.pdf".into(),
                file_name: "report.pdf".into(),
                size_bytes: 2048,
                caption: Some("the report".into()),
            },
            GatewayServerFrame::TurnCompleted {
                turn_id: "t-1".into(),
                final_message: "Hello".into(),
                usage: TurnUsage {
                    input_tokens: 10,
                    output_tokens: 2,
                    total_tokens: 12,
                    cost_usd: 0.000036,
                    cached_input_tokens: 6,
                    cache_write_input_tokens: 4,
                },
            },
            GatewayServerFrame::TurnCancelled {
                turn_id: "t-2".into(),
            },
            GatewayServerFrame::Error {
                code: GatewayErrorCode::Busy,
                message: "session lane is full".into(),
            },
            GatewayServerFrame::HealthStatus {
                healthy: true,
                tier: SandboxTier::Container,
                degraded_reasons: vec![],
                active_sessions: 3,
                uptime_secs: 60,
            },
            GatewayServerFrame::Sessions {
                sessions: vec![SessionSummary {
                    session_id: "s-1".into(),
                    updated_at_ms: 1_700_000_000_000,
                    current: true,
                }],
            },
        ]
    }

    #[test]
    fn every_client_frame_round_trips() {
        for frame in client_frames() {
            round_trip(&frame);
        }
    }

    #[test]
    fn every_server_frame_round_trips_with_its_sequence() {
        for (seq, frame) in server_frames().into_iter().enumerate() {
            round_trip(&GatewayServerMessage {
                seq: seq as u64,
                frame,
            });
        }
    }

    #[test]
    fn wire_shapes_are_flat_and_tagged() {
        let hello = serde_json::to_value(&client_frames()[0]).unwrap();
        assert_eq!(
            hello,
            json!({"type": "hello", "user_id": "alice", "session_id": "s-1",
                   "token": "secret-token", "resume_from": 41})
        );
        assert_eq!(
            serde_json::to_value(GatewayClientFrame::CancelActiveTurn).unwrap(),
            json!({"type": "cancel_active_turn"})
        );
        let delta = GatewayServerMessage {
            seq: 7,
            frame: GatewayServerFrame::AssistantDelta { text: "hi".into() },
        };
        assert_eq!(
            serde_json::to_value(&delta).unwrap(),
            json!({"seq": 7, "type": "assistant_delta", "text": "hi"})
        );
        let reasoning = GatewayServerMessage {
            seq: 8,
            frame: GatewayServerFrame::ReasoningDelta { text: "hm".into() },
        };
        assert_eq!(
            serde_json::to_value(&reasoning).unwrap(),
            json!({"seq": 8, "type": "reasoning_delta", "text": "hm"})
        );
    }

    /// Clients parse `TurnCompleted` frames from gateways older than the
    /// cache counts: the counts default to 0.
    #[test]
    fn turn_usage_without_cache_counts_still_parses() {
        let frame: GatewayServerMessage = serde_json::from_value(json!({
            "seq": 3, "type": "turn_completed", "turn_id": "t-1", "final_message": "ok",
            "usage": {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12, "cost_usd": 0.5}
        }))
        .unwrap();
        let GatewayServerFrame::TurnCompleted { usage, .. } = frame.frame else {
            panic!("{frame:?}");
        };
        assert_eq!(usage.cached_input_tokens, 0);
        assert_eq!(usage.cache_write_input_tokens, 0);
        assert_eq!(usage.input_tokens, 10);
    }

    #[test]
    fn hello_debug_masks_the_token() {
        let debug = format!("{:?}", client_frames()[0]);
        assert!(!debug.contains("secret-token"), "{debug}");
    }

    #[test]
    fn malformed_and_unknown_frames_are_clear_errors() {
        let cases = [
            (
                r#"{"type":"launch_missiles"}"#,
                "unknown variant `launch_missiles`",
            ),
            (r#"{"type":"send_turn"}"#, "missing field `content`"),
            (r#"{"content":"hi"}"#, "missing field `type`"),
            (
                r#"{"type":"hello","user_id":"../x","token":"t"}"#,
                "invalid user id",
            ),
            (r#"{"type":"send_turn","content":42}"#, "invalid type"),
            ("not json", "expected ident"),
        ];
        for (text, expected) in cases {
            let err = serde_json::from_str::<GatewayClientFrame>(text).unwrap_err();
            assert!(err.to_string().contains(expected), "{text}: {err}");
        }
        let err = serde_json::from_str::<GatewayServerMessage>(r#"{"type":"turn_cancelled"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
    }

    #[test]
    fn endpoint_file_is_one_line_of_json() {
        let endpoint = GatewayEndpoint {
            url: "ws://127.0.0.1:4100/ws".into(),
            token: "tok-1".into(),
        };
        let line = endpoint.to_line();
        assert_eq!(
            line,
            "{\"url\":\"ws://127.0.0.1:4100/ws\",\"token\":\"tok-1\"}\n"
        );
        assert_eq!(GatewayEndpoint::parse(&line).unwrap(), endpoint);
        assert!(!format!("{endpoint:?}").contains("tok-1"));
        let err = GatewayEndpoint::parse(r#"{"url":"ws://x/ws"}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `token`"), "{err}");
        let err = GatewayEndpoint::parse("ws://127.0.0.1:1/ws").unwrap_err();
        assert!(err.is_syntax(), "{err}");
    }

    #[test]
    fn terminal_frames() {
        let terminal: Vec<_> = server_frames()
            .into_iter()
            .filter(GatewayServerFrame::is_turn_terminal)
            .collect();
        assert_eq!(terminal.len(), 2);
        assert!(
            GatewayServerFrame::Error {
                code: GatewayErrorCode::TurnFailed,
                message: "x".into()
            }
            .is_turn_terminal()
        );
    }
}
