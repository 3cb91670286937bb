//! A command's output: an append-only log of UTF-8 chunks, capped per
//! stream, that any number of readers follow from the start (so a
//! `StreamOutput` that arrives late still sees everything), plus the final
//! result.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::watch;
use types::protocol::shell::StreamType;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandResult {
    /// The exit status; `128 + signal` when a signal ended it.
    pub exit_code: i32,
    /// The timeout fired and the process group was killed.
    pub timed_out: bool,
    /// `KillSession` (or the client going away) ended it.
    pub killed: bool,
    /// When it ended (for idle expiry).
    pub finished_at: Instant,
}

/// One thing a reader of the log sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputEvent {
    Chunk { stream: StreamType, data: String },
    Finished(CommandResult),
}

#[derive(Debug, Default)]
struct LogState {
    chunks: Vec<(StreamType, String)>,
    stdout_bytes: usize,
    stderr_bytes: usize,
    truncated: bool,
    result: Option<CommandResult>,
}

/// The shared output of one command.
#[derive(Debug)]
pub struct OutputLog {
    state: Mutex<LogState>,
    cap: usize,
    version: watch::Sender<u64>,
}

impl OutputLog {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(LogState::default()),
            cap,
            version: watch::Sender::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // The lock is never held across an await or user code, so a poisoned
        // lock only means a panic elsewhere; the data is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Appends decoded text, cutting it at the stream's cap.
    pub fn push(&self, stream: StreamType, text: &str) {
        if text.is_empty() {
            return;
        }
        {
            let mut state = self.lock();
            let used = match stream {
                StreamType::Stdout => state.stdout_bytes,
                StreamType::Stderr => state.stderr_bytes,
            };
            let room = self.cap.saturating_sub(used);
            let kept = if text.len() <= room {
                text
            } else {
                state.truncated = true;
                &text[..text.floor_char_boundary(room)]
            };
            if kept.is_empty() {
                return;
            }
            match stream {
                StreamType::Stdout => state.stdout_bytes += kept.len(),
                StreamType::Stderr => state.stderr_bytes += kept.len(),
            }
            state.chunks.push((stream, kept.to_owned()));
        }
        self.bump();
    }

    /// Records the end of the command; later calls are ignored.
    pub fn finish(&self, result: CommandResult) {
        {
            let mut state = self.lock();
            if state.result.is_some() {
                return;
            }
            state.result = Some(result);
        }
        self.bump();
    }

    pub fn result(&self) -> Option<CommandResult> {
        self.lock().result
    }

    /// Everything kept so far: (stdout, stderr, truncated).
    pub fn collected(&self) -> (String, String, bool) {
        let state = self.lock();
        let mut stdout = String::with_capacity(state.stdout_bytes);
        let mut stderr = String::with_capacity(state.stderr_bytes);
        for (stream, data) in &state.chunks {
            match stream {
                StreamType::Stdout => stdout.push_str(data),
                StreamType::Stderr => stderr.push_str(data),
            }
        }
        (stdout, stderr, state.truncated)
    }

    /// Waits for the command's end.
    pub async fn wait(self: &Arc<Self>) -> CommandResult {
        let mut rx = self.version.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(result) = self.result() {
                return result;
            }
            if rx.changed().await.is_err() {
                // Unreachable while `self` (which owns the sender) is alive;
                // fall back to the current state rather than spinning.
                return self.result().unwrap_or(CommandResult {
                    exit_code: -1,
                    timed_out: false,
                    killed: true,
                    finished_at: Instant::now(),
                });
            }
        }
    }

    /// A reader positioned at the first chunk.
    pub fn cursor(self: &Arc<Self>) -> OutputCursor {
        OutputCursor {
            rx: self.version.subscribe(),
            log: Arc::clone(self),
            next: 0,
            done: false,
        }
    }
}

/// Follows an `OutputLog` from the start. `next` is cancel-safe: a dropped
/// call loses nothing.
#[derive(Debug)]
pub struct OutputCursor {
    log: Arc<OutputLog>,
    rx: watch::Receiver<u64>,
    next: usize,
    done: bool,
}

impl OutputCursor {
    /// The next chunk, then `Finished`, then `None` forever.
    pub async fn next(&mut self) -> Option<OutputEvent> {
        if self.done {
            return None;
        }
        loop {
            self.rx.borrow_and_update();
            {
                let state = self.log.lock();
                if let Some((stream, data)) = state.chunks.get(self.next) {
                    self.next += 1;
                    return Some(OutputEvent::Chunk {
                        stream: *stream,
                        data: data.clone(),
                    });
                }
                if let Some(result) = state.result {
                    self.done = true;
                    return Some(OutputEvent::Finished(result));
                }
            }
            if self.rx.changed().await.is_err() {
                self.done = true;
                return None;
            }
        }
    }
}

/// Turns a byte stream into text without splitting characters across
/// chunks: an incomplete sequence at the end waits for the next bytes;
/// invalid bytes become U+FFFD.
#[derive(Debug, Default)]
pub struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(error) => {
                    let valid = error.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match error.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                    }
                }
            }
        }
    }

    /// Whatever is left at the end of the stream.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> CommandResult {
        CommandResult {
            exit_code: 0,
            timed_out: false,
            killed: false,
            finished_at: Instant::now(),
        }
    }

    #[test]
    fn decoder_keeps_split_characters_whole() {
        let text = "héllo → wörld";
        let bytes = text.as_bytes();
        for split in 0..=bytes.len() {
            let mut decoder = Utf8Decoder::default();
            let mut out = decoder.push(&bytes[..split]);
            out.push_str(&decoder.push(&bytes[split..]));
            out.push_str(&decoder.finish());
            assert_eq!(out, text, "split at {split}");
        }
    }

    #[test]
    fn decoder_replaces_invalid_bytes() {
        let mut decoder = Utf8Decoder::default();
        assert_eq!(decoder.push(b"a\xffb\xc3"), "a\u{fffd}b");
        assert_eq!(decoder.finish(), "\u{fffd}");
    }

    #[test]
    fn log_caps_each_stream_on_a_char_boundary() {
        let log = OutputLog::new(5);
        log.push(StreamType::Stdout, "abcé");
        log.push(StreamType::Stdout, "zzz");
        log.push(StreamType::Stderr, "12345678");
        let (stdout, stderr, truncated) = log.collected();
        assert_eq!(stdout, "abcé");
        assert_eq!(stderr, "12345");
        assert!(truncated);
    }

    #[tokio::test]
    async fn late_cursors_replay_everything_then_finish() {
        let log = OutputLog::new(100);
        log.push(StreamType::Stdout, "one");
        log.push(StreamType::Stderr, "two");
        log.finish(result());
        let mut cursor = log.cursor();
        assert_eq!(
            cursor.next().await,
            Some(OutputEvent::Chunk {
                stream: StreamType::Stdout,
                data: "one".into()
            })
        );
        assert!(matches!(
            cursor.next().await,
            Some(OutputEvent::Chunk { .. })
        ));
        assert!(matches!(
            cursor.next().await,
            Some(OutputEvent::Finished(_))
        ));
        assert_eq!(cursor.next().await, None);
    }

    #[tokio::test]
    async fn cursors_wake_on_new_chunks() {
        let log = OutputLog::new(100);
        let mut cursor = log.cursor();
        let writer = Arc::clone(&log);
        let task = tokio::spawn(async move {
            writer.push(StreamType::Stdout, "late");
            writer.finish(result());
        });
        assert!(matches!(
            cursor.next().await,
            Some(OutputEvent::Chunk { data, .. }) if data == "late"
        ));
        task.await.unwrap();
        assert!(matches!(
            cursor.next().await,
            Some(OutputEvent::Finished(_))
        ));
        assert_eq!(log.wait().await.exit_code, 0);
    }
}
