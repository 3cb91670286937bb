//! The interactive program: connect, take over the terminal, link the
//! terminal's `TuiChannel` to the gateway with `channels::bridge`, and run
//! the event loop (keys, frames and link news → `TuiUiState::update` →
//! commands → redraw). The terminal is restored on every exit path, panics
//! included.

use std::io::stdout;

use channels::{ChannelsError, ClientEvents, GatewayClient, LinkEvent};
use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste, Event, EventStream};
use crossterm::execute;
use futures::StreamExt;
use ratatui::DefaultTerminal;
use tokio::sync::mpsc;
use types::Channel;
use types::channel::InboundPayload;

use crate::channel::TuiChannel;
use crate::cli::Args;
use crate::render::render;
use crate::state::{Command, TuiUiState, UiEvent};

/// Actions waiting to be written; more than this means the connection is
/// stuck, and further actions are reported as not sent.
const SEND_QUEUE: usize = 64;
/// Frames and link news waiting for the event loop.
const SCREEN_QUEUE: usize = 256;

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
    let (channel, screen) = TuiChannel::new(user, SCREEN_QUEUE);
    let (guard, terminal) = TerminalGuard::enter()?;
    let result = linked(terminal, &channel, screen, &client, events).await;
    drop(guard);
    client.shutdown().await;
    result
}

/// Runs the event loop while the bridge carries the channel's traffic;
/// the bridge ends with it.
async fn linked(
    terminal: DefaultTerminal,
    channel: &TuiChannel,
    screen: mpsc::Receiver<UiEvent>,
    client: &GatewayClient,
    events: ClientEvents,
) -> anyhow::Result<()> {
    let actions = channel.listen(SEND_QUEUE).await?;
    let bridge = channels::bridge(channel, actions, client, events);
    tokio::pin!(bridge);
    let event_loop = event_loop(terminal, channel, screen);
    tokio::pin!(event_loop);
    tokio::select! {
        result = &mut event_loop => result,
        // The bridge fails only when the screen is gone (the event loop's
        // end), and ends when the client stops for good, after the closed
        // state reached the screen: it stays until the user quits.
        _ = &mut bridge => event_loop.await,
    }
}

async fn event_loop(
    mut terminal: DefaultTerminal,
    channel: &TuiChannel,
    mut screen: mpsc::Receiver<UiEvent>,
) -> anyhow::Result<()> {
    let mut state = TuiUiState::new();
    let mut keys = EventStream::new();
    send(&mut state, channel, InboundPayload::HealthCheck);
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
            Some(event) = screen.recv() => event,
        };
        for command in state.update(event) {
            match command {
                Command::Quit => return Ok(()),
                Command::Send(payload) => send(&mut state, channel, payload),
            }
        }
    }
}

/// Hands an action to the channel; one it refuses is shown as not sent.
fn send(state: &mut TuiUiState, channel: &TuiChannel, payload: InboundPayload) {
    if let Err(error) = channel.submit(payload.clone()) {
        state.update(UiEvent::Link(LinkEvent::NotSent { payload, error }));
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
