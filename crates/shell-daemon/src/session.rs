//! `SessionManager`: the live sessions, each with its own working
//! directory, environment and lifetime. A session runs one command at a
//! time; it ends on `KillSession`, after being idle too long, or when the
//! daemon shuts down — and its running command's process group dies with
//! it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::task::TaskTracker;

use crate::command::{self, CommandSpec, RunningCommand};
use crate::config::{DEFAULT_PATH, DaemonConfig, SESSION_ENV};
use crate::error::ShellDaemonError;

/// Longest accepted session id.
pub const MAX_SESSION_ID_LEN: usize = 128;

#[derive(Debug)]
struct Session {
    working_dir: PathBuf,
    env: Vec<(String, String)>,
    created_at: Instant,
    running: Option<Arc<RunningCommand>>,
}

impl Session {
    fn busy(&self) -> bool {
        self.running.as_ref().is_some_and(|c| !c.is_finished())
    }

    /// When the session last did anything.
    fn last_active(&self) -> Instant {
        match &self.running {
            None => self.created_at,
            Some(command) => match command.log().result() {
                Some(result) => result.finished_at,
                None => Instant::now(),
            },
        }
    }
}

/// The daemon's sessions. Cheap to share (`Arc`); every method is
/// synchronous and never blocks on a command.
#[derive(Debug)]
pub struct SessionManager {
    config: Arc<DaemonConfig>,
    sessions: Mutex<HashMap<String, Session>>,
    tasks: TaskTracker,
}

fn check_session_id(session_id: &str) -> Result<(), ShellDaemonError> {
    let reason = if session_id.is_empty() {
        Some("it is empty")
    } else if session_id.len() > MAX_SESSION_ID_LEN {
        Some("it is longer than 128 bytes")
    } else if !session_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        Some("use only ASCII letters, digits, '-', '_', '.' and ':'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ShellDaemonError::InvalidSessionId {
            session_id: session_id.chars().take(MAX_SESSION_ID_LEN).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

impl SessionManager {
    pub fn new(config: DaemonConfig) -> Arc<Self> {
        Arc::new(Self {
            config: Arc::new(config),
            sessions: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
        })
    }

    pub fn config(&self) -> &DaemonConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        // Never held across an await or a spawn that can panic halfway; a
        // poisoned map is still a consistent map.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn resolve_working_dir(&self, requested: Option<&Path>) -> Result<PathBuf, ShellDaemonError> {
        let base = &self.config.default_working_dir;
        let path = match requested {
            None => base.clone(),
            Some(path) => base.join(path),
        };
        let invalid = |reason: String| ShellDaemonError::InvalidWorkingDir {
            path: path.clone(),
            reason,
        };
        let canonical = path.canonicalize().map_err(|e| invalid(e.to_string()))?;
        if !canonical.is_dir() {
            return Err(invalid("it is not a directory".into()));
        }
        Ok(canonical)
    }

    /// Creates a session, or confirms an existing one with the same working
    /// directory (so a client can re-spawn before every command without
    /// tracking whether the session expired).
    pub fn spawn_session(
        &self,
        session_id: &str,
        working_dir: Option<&Path>,
    ) -> Result<PathBuf, ShellDaemonError> {
        check_session_id(session_id)?;
        let working_dir = self.resolve_working_dir(working_dir)?;
        let mut sessions = self.lock();
        if let Some(existing) = sessions.get(session_id) {
            if existing.working_dir == working_dir {
                return Ok(working_dir);
            }
            return Err(ShellDaemonError::SessionExists {
                session_id: session_id.to_owned(),
                existing: existing.working_dir.clone(),
            });
        }
        if sessions.len() >= self.config.max_sessions {
            return Err(ShellDaemonError::TooManySessions {
                max: self.config.max_sessions,
            });
        }
        let dir = working_dir.to_string_lossy().into_owned();
        let mut env = vec![
            ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
            ("HOME".to_owned(), dir.clone()),
            ("PWD".to_owned(), dir),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
            ("TERM".to_owned(), "dumb".to_owned()),
            (SESSION_ENV.to_owned(), session_id.to_owned()),
        ];
        for (key, value) in &self.config.extra_env {
            env.retain(|(k, _)| k != key);
            env.push((key.clone(), value.clone()));
        }
        sessions.insert(
            session_id.to_owned(),
            Session {
                working_dir: working_dir.clone(),
                env,
                created_at: Instant::now(),
                running: None,
            },
        );
        tracing::info!(session_id, working_dir = %working_dir.display(), "session spawned");
        Ok(working_dir)
    }

    /// Starts `command` in the session. The returned handle's log carries
    /// the output and the result.
    pub fn exec(
        &self,
        session_id: &str,
        command: &str,
        timeout_ms: Option<u64>,
    ) -> Result<Arc<RunningCommand>, ShellDaemonError> {
        let max = self.config.max_timeout;
        let timeout = match timeout_ms {
            None => self.config.default_timeout,
            Some(ms) if ms == 0 || Duration::from_millis(ms) > max => {
                return Err(ShellDaemonError::InvalidTimeout {
                    timeout_ms: ms,
                    max_ms: u64::try_from(max.as_millis()).unwrap_or(u64::MAX),
                });
            }
            Some(ms) => Duration::from_millis(ms),
        };
        if command.trim().is_empty() {
            return Err(ShellDaemonError::EmptyCommand);
        }
        let mut sessions = self.lock();
        let session =
            sessions
                .get_mut(session_id)
                .ok_or_else(|| ShellDaemonError::UnknownSession {
                    session_id: session_id.to_owned(),
                })?;
        if session.busy() {
            return Err(ShellDaemonError::SessionBusy {
                session_id: session_id.to_owned(),
            });
        }
        let spec = CommandSpec {
            command: command.to_owned(),
            working_dir: session.working_dir.clone(),
            env: session.env.clone(),
            timeout,
            output_cap: self.config.output_cap,
            drain_grace: self.config.drain_grace,
        };
        // Spawning under the lock keeps "not busy" and "now running" one
        // step, so two clients cannot both start a command in the session.
        let running = command::start(spec, &self.tasks)?;
        tracing::debug!(session_id, pgid = running.pgid(), "command started");
        session.running = Some(Arc::clone(&running));
        Ok(running)
    }

    /// The session's command while it runs (for `StreamOutput`).
    pub fn running_command(
        &self,
        session_id: &str,
    ) -> Result<Arc<RunningCommand>, ShellDaemonError> {
        let sessions = self.lock();
        let session = sessions
            .get(session_id)
            .ok_or_else(|| ShellDaemonError::UnknownSession {
                session_id: session_id.to_owned(),
            })?;
        match &session.running {
            Some(command) if !command.is_finished() => Ok(Arc::clone(command)),
            _ => Err(ShellDaemonError::NoRunningCommand {
                session_id: session_id.to_owned(),
            }),
        }
    }

    /// Ends the session and kills its running command's process group.
    pub fn kill_session(&self, session_id: &str) -> Result<(), ShellDaemonError> {
        let session =
            self.lock()
                .remove(session_id)
                .ok_or_else(|| ShellDaemonError::UnknownSession {
                    session_id: session_id.to_owned(),
                })?;
        if let Some(command) = session.running {
            command.kill();
        }
        tracing::info!(session_id, "session killed");
        Ok(())
    }

    /// Removes sessions idle (no running command) for longer than the idle
    /// timeout; returns their ids.
    pub fn expire_idle(&self, now: Instant) -> Vec<String> {
        let idle = self.config.idle_timeout;
        let mut expired = Vec::new();
        self.lock().retain(|id, session| {
            let keep =
                session.busy() || now.saturating_duration_since(session.last_active()) < idle;
            if !keep {
                expired.push(id.clone());
            }
            keep
        });
        for id in &expired {
            tracing::info!(session_id = %id, "idle session expired");
        }
        expired
    }

    pub fn session_count(&self) -> usize {
        self.lock().len()
    }

    /// Kills every session and waits until every command's supervisor has
    /// finished (so every process group is gone).
    pub async fn shutdown(&self) {
        let sessions: Vec<Session> = self.lock().drain().map(|(_, s)| s).collect();
        for command in sessions.into_iter().filter_map(|s| s.running) {
            command.kill();
        }
        self.tasks.close();
        self.tasks.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(dir: &Path) -> Arc<SessionManager> {
        SessionManager::new(DaemonConfig {
            default_working_dir: dir.to_path_buf(),
            idle_timeout: Duration::from_secs(60),
            max_sessions: 2,
            ..DaemonConfig::default()
        })
    }

    #[test]
    fn session_ids_are_checked() {
        for bad in ["", "a b", "../x", "x/y", &"a".repeat(129)] {
            assert!(
                matches!(
                    check_session_id(bad),
                    Err(ShellDaemonError::InvalidSessionId { .. })
                ),
                "{bad:?}"
            );
        }
        check_session_id("turn-1:shell_exec.2_a").unwrap();
    }

    #[tokio::test]
    async fn spawn_is_idempotent_for_the_same_directory_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let manager = manager(dir.path());
        manager.spawn_session("a", None).unwrap();
        manager.spawn_session("a", None).unwrap();
        let err = manager
            .spawn_session("a", Some(Path::new("sub")))
            .unwrap_err();
        assert!(
            matches!(err, ShellDaemonError::SessionExists { .. }),
            "{err}"
        );
        manager.spawn_session("b", Some(Path::new("sub"))).unwrap();
        let err = manager.spawn_session("c", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the daemon already holds its maximum of 2 sessions; kill one first"
        );
        let err = manager
            .spawn_session("d", Some(Path::new("missing")))
            .unwrap_err();
        assert!(
            matches!(err, ShellDaemonError::InvalidWorkingDir { .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn idle_sessions_expire_but_busy_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let manager = manager(dir.path());
        manager.spawn_session("idle", None).unwrap();
        manager.spawn_session("busy", None).unwrap();
        let command = manager.exec("busy", "sleep 30", None).unwrap();
        let later = Instant::now() + Duration::from_secs(120);
        assert_eq!(manager.expire_idle(later), vec!["idle".to_owned()]);
        assert_eq!(manager.session_count(), 1);
        let err = manager.exec("busy", "true", None).unwrap_err();
        assert!(matches!(err, ShellDaemonError::SessionBusy { .. }), "{err}");
        manager.kill_session("busy").unwrap();
        assert!(command.log().wait().await.killed);
        manager.shutdown().await;
    }

    #[tokio::test]
    async fn bad_timeouts_and_empty_commands_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let manager = manager(dir.path());
        manager.spawn_session("s", None).unwrap();
        for ms in [0, 3_600_001] {
            let err = manager.exec("s", "true", Some(ms)).unwrap_err();
            assert!(
                matches!(err, ShellDaemonError::InvalidTimeout { .. }),
                "{err}"
            );
        }
        let err = manager.exec("s", "  ", None).unwrap_err();
        assert!(matches!(err, ShellDaemonError::EmptyCommand), "{err}");
        let err = manager.exec("nope", "true", None).unwrap_err();
        assert!(
            matches!(err, ShellDaemonError::UnknownSession { .. }),
            "{err}"
        );
    }
}
