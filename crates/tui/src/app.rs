//! The interactive program: connect, take over the terminal, and run the
//! event loop (keys, gateway events, send failures → `TuiUiState::update`
//! → commands → redraw). The terminal is restored on every exit path,
//! panics included.

use std::io::stdout;
use std::sync::Arc;

use channels::{ChannelsError, ClientEvents, GatewayClient};
use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste, Event, EventStream};
use crossterm::execute;
use futures::StreamExt;
use ratatui::DefaultTerminal;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use types::protocol::gateway::GatewayClientFrame;

use crate::cli::Args;
use crate::render::render;
use crate::state::{Command, TuiUiState, UiEvent};

/// Frames waiting to be written; more than this means the connection is
/// stuck, and further frames are reported as not sent.
const SEND_QUEUE: usize = 64;

/// Connects (printing a plain error if that fails, before the terminal is
/// touched), then runs the interactive session until the user quits.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let target = args.target()?;
    let user = target.config.user_id.clone();
    let (client, events) = match GatewayClient::connect(target.config).await {
        Ok(connected) => connected,
        Err(ChannelsError::EndpointMissing { path }) => {
            anyhow::bail!(
                "the Oxydra guest for user '{user}' is not running (no gateway endpoint file at {}).\nStart it with: {}",
                path.display(),
                args.start_command(&user)
            );
        }
        Err(err) => return Err(err.into()),
    };
    let client = Arc::new(client);
    let (guard, terminal) = TerminalGuard::enter()?;
    let result = event_loop(terminal, Arc::clone(&client), events).await;
    drop(guard);
    if let Ok(client) = Arc::try_unwrap(client) {
        client.shutdown().await;
    }
    result
}

async fn event_loop(
    mut terminal: DefaultTerminal,
    client: Arc<GatewayClient>,
    mut events: ClientEvents,
) -> anyhow::Result<()> {
    let mut state = TuiUiState::new();
    let mut keys = EventStream::new();
    let (frames, mut frames_rx) = mpsc::channel::<GatewayClientFrame>(SEND_QUEUE);
    let (failures_tx, mut failures) = mpsc::channel::<UiEvent>(SEND_QUEUE);
    // One writer keeps frames in the order the user produced them.
    let mut writer = JoinSet::new();
    let writer_client = Arc::clone(&client);
    writer.spawn(async move {
        while let Some(frame) = frames_rx.recv().await {
            if let Err(err) = writer_client.send_frame(frame.clone()).await {
                let failure = UiEvent::SendFailed {
                    frame,
                    error: err.to_string(),
                };
                if failures_tx.send(failure).await.is_err() {
                    return;
                }
            }
        }
    });
    let _ = frames.try_send(GatewayClientFrame::HealthCheck);
    let mut client_open = true;
    loop {
        terminal.draw(|frame| render(&state, frame))?;
        let event = tokio::select! {
            input = keys.next() => match input {
                Some(Ok(Event::Key(key))) => UiEvent::Key(key),
                Some(Ok(Event::Paste(text))) => UiEvent::Paste(text),
                // A resize only needs the redraw at the top of the loop.
                Some(Ok(Event::Resize(..) | Event::FocusGained | Event::FocusLost | Event::Mouse(_))) => continue,
                Some(Err(err)) => return Err(err.into()),
                None => return Ok(()),
            },
            event = events.recv(), if client_open => match event {
                Some(event) => UiEvent::Client(event),
                None => {
                    client_open = false;
                    continue;
                }
            },
            Some(failure) = failures.recv() => failure,
        };
        for command in state.update(event) {
            match command {
                Command::Quit => return Ok(()),
                Command::Send(frame) => {
                    if let Err(err) = frames.try_send(frame) {
                        let frame = match err {
                            mpsc::error::TrySendError::Full(frame)
                            | mpsc::error::TrySendError::Closed(frame) => frame,
                        };
                        state.update(UiEvent::SendFailed {
                            frame,
                            error: "the connection is not taking frames; try again".to_owned(),
                        });
                    }
                }
            }
        }
    }
}

/// Owns the terminal's raw mode and alternate screen; dropping it (or a
/// panic) gives the terminal back as it was.
#[derive(Debug)]
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> std::io::Result<(Self, DefaultTerminal)> {
        // `try_init` installs a panic hook that leaves raw mode and the
        // alternate screen before the panic message is printed.
        let terminal = ratatui::try_init()?;
        let guard = Self;
        execute!(stdout(), EnableBracketedPaste)?;
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = execute!(stdout(), DisableBracketedPaste);
            previous(info);
        }));
        Ok((guard, terminal))
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = execute!(stdout(), DisableBracketedPaste);
        ratatui::restore();
    }
}
