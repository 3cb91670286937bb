//! `GatewayFileCourier`: the `tools::send_file::FileCourier` that tells a
//! conversation's clients about a file the agent sends, as a `FileSent`
//! frame in order with the turn's other frames. Like the approval gate it
//! finds the turn through the task-local the turn runner sets; a call
//! outside an interactive turn (a background run) has nobody to send to.

use std::sync::Arc;

use async_trait::async_trait;
use tools::send_file::{FileCourier, OutgoingFile};
use types::ToolContext;
use types::protocol::gateway::GatewayServerFrame;

use crate::approval::current_turn;

/// The gateway's courier; give it to `tools::send_file::register_send_file_tool`.
#[derive(Debug, Default)]
pub struct GatewayFileCourier;

impl GatewayFileCourier {
    pub fn new() -> Arc<Self> {
        Arc::new(Self)
    }
}

#[async_trait]
impl FileCourier for GatewayFileCourier {
    async fn deliver(&self, file: OutgoingFile, _context: &ToolContext) -> Result<(), String> {
        let turn = current_turn().ok_or(
            "this run has no conversation to send it to (a background run); save it in /shared instead",
        )?;
        let frame = GatewayServerFrame::FileSent {
            path: file.path,
            file_name: file.file_name,
            size_bytes: file.size_bytes,
            caption: file.caption,
        };
        turn.frames
            .send(frame)
            .await
            .map_err(|_| "the turn ended before the file could be sent".to_owned())
    }
}
