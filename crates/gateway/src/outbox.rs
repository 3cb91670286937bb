//! A session's outgoing stream: sequence numbers, a bounded replay buffer
//! and the broadcast that fans frames out to every attached client.
//!
//! Numbering, buffering and broadcasting happen under one lock, so every
//! subscriber sees frames in sequence order, and attaching (replay +
//! subscribe) under the same lock can neither miss nor repeat a frame.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;
use types::protocol::gateway::{GatewayErrorCode, GatewayServerFrame, GatewayServerMessage};

/// Broadcast slots per session. Kept small because they are allocated up
/// front; a client that falls further behind catches up from the replay
/// buffer instead.
const BROADCAST_SLOTS: usize = 128;

/// One numbered frame, encoded once for every client.
#[derive(Debug)]
pub(crate) struct Published {
    pub seq: u64,
    /// Whether the frame ends a turn.
    pub terminal: bool,
    pub text: Utf8Bytes,
}

pub(crate) type Frame = Arc<Published>;

/// What a client gets when it attaches.
#[derive(Debug)]
pub(crate) struct Attachment {
    /// Frames to send first, oldest first.
    pub replay: Vec<Frame>,
    /// Everything published after `replay`.
    pub live: broadcast::Receiver<Frame>,
    /// The newest sequence number at attach time: where the client is
    /// once it has the replay.
    pub head: u64,
}

#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    sender: broadcast::Sender<Frame>,
}

#[derive(Debug)]
struct State {
    /// The last sequence number given out (0: none yet).
    head: u64,
    recent: VecDeque<Frame>,
    capacity: usize,
    /// The latest frame that ended a turn, kept even after it leaves
    /// `recent`: a client resuming from too far back gets it instead.
    last_terminal: Option<Frame>,
}

/// Encodes a message for the wire.
pub(crate) fn encode(message: &GatewayServerMessage) -> Utf8Bytes {
    match serde_json::to_string(message) {
        Ok(text) => Utf8Bytes::from(text),
        // Server frames hold only strings, numbers and lists; serde_json
        // cannot fail on them. Should that ever change, clients get a
        // clear internal error rather than nothing.
        Err(error) => {
            let fallback = GatewayServerMessage {
                seq: message.seq,
                frame: GatewayServerFrame::Error {
                    code: GatewayErrorCode::Internal,
                    message: format!("a frame could not be encoded: {error}"),
                },
            };
            Utf8Bytes::from(serde_json::to_string(&fallback).unwrap_or_default())
        }
    }
}

/// Where a new outbox starts numbering: the microseconds since the Unix
/// epoch. A session's outbox is rebuilt when the gateway restarts or
/// reloads an idle session, and a client keeps the highest number it saw
/// (dropping lower ones as duplicates): starting from the clock keeps the
/// new numbers above the old ones, since no session sends a frame per
/// microsecond over its life. (Below 2^53 until 2255, so exact in
/// JavaScript clients too.)
pub(crate) fn clock_seq() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl Outbox {
    /// An outbox whose first frame gets `after + 1`, and whose latest
    /// terminal state (for clients resuming from too far back) is `last_terminal`.
    pub fn new(capacity: usize, after: u64, last_terminal: Option<Frame>) -> Self {
        let (sender, _) = broadcast::channel(BROADCAST_SLOTS);
        Self {
            state: Mutex::new(State {
                head: after,
                recent: VecDeque::new(),
                capacity,
                last_terminal,
            }),
            sender,
        }
    }

    /// The latest frame that ended a turn.
    pub fn last_terminal(&self) -> Option<Frame> {
        self.lock().last_terminal.clone()
    }

    /// Whether any client is attached.
    pub fn has_clients(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Numbers `frame`, keeps it for replay and sends it to every attached
    /// client. Returns its sequence number.
    pub fn publish(&self, frame: GatewayServerFrame) -> u64 {
        let terminal = frame.is_turn_terminal();
        let mut state = self.lock();
        state.head += 1;
        let seq = state.head;
        let published = Arc::new(Published {
            seq,
            terminal,
            text: encode(&GatewayServerMessage { seq, frame }),
        });
        if state.recent.len() == state.capacity {
            state.recent.pop_front();
        }
        state.recent.push_back(Arc::clone(&published));
        if terminal {
            state.last_terminal = Some(Arc::clone(&published));
        }
        // Sent while holding the lock (a non-blocking call) so that
        // subscribers receive frames in sequence order. No receiver is
        // fine: the frame waits in `recent` for a reconnecting client.
        let _ = self.sender.send(published);
        seq
    }

    /// Subscribes a client. `resume_from` is the last sequence number it
    /// saw: it gets every later frame still buffered, or — when some fell
    /// out of the buffer — the latest terminal frame followed by the
    /// buffered frames after it (an in-flight turn continues). `None`
    /// means live frames only.
    pub fn attach(&self, resume_from: Option<u64>) -> Attachment {
        let state = self.lock();
        let live = self.sender.subscribe();
        let replay = match resume_from {
            None => Vec::new(),
            Some(seen) => state.replay_after(seen),
        };
        Attachment {
            replay,
            live,
            head: state.head,
        }
    }
}

impl State {
    fn replay_after(&self, seen: u64) -> Vec<Frame> {
        if seen >= self.head {
            // Up to date, or numbers from an earlier gateway process.
            return Vec::new();
        }
        let oldest = self.recent.front().map_or(self.head + 1, |f| f.seq);
        if seen + 1 >= oldest {
            return self
                .recent
                .iter()
                .filter(|f| f.seq > seen)
                .cloned()
                .collect();
        }
        let mut replay = Vec::new();
        let mut after = seen;
        if let Some(terminal) = self.last_terminal.as_ref().filter(|t| t.seq > seen) {
            replay.push(Arc::clone(terminal));
            after = terminal.seq;
        }
        replay.extend(self.recent.iter().filter(|f| f.seq > after).cloned());
        replay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::protocol::gateway::TurnUsage;

    fn delta(text: &str) -> GatewayServerFrame {
        GatewayServerFrame::AssistantDelta { text: text.into() }
    }

    fn completed(text: &str) -> GatewayServerFrame {
        GatewayServerFrame::TurnCompleted {
            turn_id: "t".into(),
            final_message: text.into(),
            usage: TurnUsage::default(),
        }
    }

    fn seqs(frames: &[Frame]) -> Vec<u64> {
        frames.iter().map(|f| f.seq).collect()
    }

    #[test]
    fn frames_are_numbered_and_encoded_once() {
        let outbox = Outbox::new(8, 0, None);
        assert_eq!(outbox.publish(delta("a")), 1);
        assert_eq!(outbox.publish(delta("b")), 2);
        let replay = outbox.attach(Some(0)).replay;
        let message: GatewayServerMessage = serde_json::from_str(replay[1].text.as_str()).unwrap();
        assert_eq!(message.seq, 2);
        assert_eq!(message.frame, delta("b"));
    }

    #[test]
    fn resume_replays_exactly_the_missed_frames_then_goes_live() {
        let outbox = Outbox::new(8, 0, None);
        for text in ["a", "b", "c"] {
            outbox.publish(delta(text));
        }
        let mut attachment = outbox.attach(Some(1));
        assert_eq!(seqs(&attachment.replay), [2, 3]);
        outbox.publish(delta("d"));
        assert_eq!(attachment.live.try_recv().unwrap().seq, 4);
        assert!(outbox.attach(Some(4)).replay.is_empty());
        assert!(outbox.attach(None).replay.is_empty());
        // A number from an earlier gateway process replays nothing.
        assert!(outbox.attach(Some(99)).replay.is_empty());
    }

    #[test]
    fn a_rebuilt_outbox_numbers_on_and_keeps_the_terminal_state() {
        let old = Outbox::new(8, clock_seq(), None);
        old.publish(delta("a"));
        let last = old.publish(completed("a"));
        let rebuilt = Outbox::new(8, clock_seq(), old.last_terminal());
        let first = rebuilt.publish(delta("b"));
        assert!(first > last, "{first} after {last}");
        // A client that saw the old frames up to the terminal one gets the
        // new frames only; one from before it gets it first.
        assert_eq!(seqs(&rebuilt.attach(Some(last)).replay), [first]);
        assert_eq!(seqs(&rebuilt.attach(Some(last - 1)).replay), [last, first]);
        assert!(!rebuilt.has_clients());
        let _attached = rebuilt.attach(None);
        assert!(rebuilt.has_clients());
    }

    #[test]
    fn resume_from_too_far_back_gets_the_latest_terminal_state() {
        let outbox = Outbox::new(3, 0, None);
        outbox.publish(delta("a")); // 1
        outbox.publish(completed("a")); // 2
        outbox.publish(delta("b")); // 3
        outbox.publish(delta("c")); // 4
        outbox.publish(delta("d")); // 5: seq 2 has left the buffer
        let replay = outbox.attach(Some(0)).replay;
        assert_eq!(seqs(&replay), [2, 3, 4, 5]);
        // Without any terminal frame, the buffered frames are all there is.
        let outbox = Outbox::new(2, 0, None);
        for text in ["a", "b", "c", "d"] {
            outbox.publish(delta(text));
        }
        assert_eq!(seqs(&outbox.attach(Some(0)).replay), [3, 4]);
    }
}
