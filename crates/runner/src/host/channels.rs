//! The user's chat channels, run by the runner on the host (spec 07): the
//! adapters hold platform secrets (a bot token never enters the guest) and
//! reach the guest only through its gateway, like any other client.
//! `plan` resolves the `[channels]` tables at start (a missing token is an
//! error then, not later); `RunnerChannels::start` runs the adapters for
//! as long as the runner runs, across guest restarts.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use channels::EndpointSource;
use channels::telegram::{
    CHANNEL_ID as TELEGRAM, ChannelAudit, DEFAULT_EDIT_INTERVAL, DEFAULT_MAX_INBOUND_BYTES,
    HealthProbe, TelegramAdapter, TelegramSettings,
};
use types::channel::ChannelHealthStatus;
use types::config::Environment;
use types::{AgentConfig, AuditRecord};

use super::HostError;
use super::context::RunnerContext;

/// The channels to start, with their secrets resolved.
#[derive(Debug, Clone, Default)]
pub struct ChannelPlan {
    pub telegram: Option<TelegramSettings>,
}

/// Resolves the user's `[channels]` tables (already validated when the
/// file was read).
pub fn plan(
    context: &RunnerContext,
    agent: &AgentConfig,
    env: &Environment,
) -> Result<ChannelPlan, HostError> {
    let Some(telegram) = &context.user_config.channels.telegram else {
        return Ok(ChannelPlan::default());
    };
    let lists = telegram.validate().map_err(|message| {
        HostError::RunnerConfig(types::error::RunnerConfigError::Parse {
            path: context.user_config_path.clone(),
            message,
        })
    })?;
    let bot_token =
        context.resolve_credential("channels.telegram.bot_token", &telegram.bot_token, env)?;
    Ok(ChannelPlan {
        telegram: Some(TelegramSettings {
            user_id: context.user.clone(),
            bot_token,
            allowed_sender_ids: lists.senders,
            allowed_chat_ids: lists.chats,
            api_base_url: telegram.api_base_url.trim().to_owned(),
            reject_message: telegram.reject_message.clone(),
            state_file: state_file(&context.paths.runner_dir, context.user.as_str(), TELEGRAM),
            endpoint: EndpointSource::File(context.paths.endpoint_file.clone()),
            edit_interval: DEFAULT_EDIT_INTERVAL,
            shared_dir: shared_dir(context),
            max_inbound_bytes: DEFAULT_MAX_INBOUND_BYTES,
            approval_timeout: Duration::from_secs(agent.gateway.approval_timeout_secs),
        }),
    })
}

/// The host directory the guest sees as `/shared`: `[mounts] shared`
/// (relative to the user's file) or the workspace's own.
fn shared_dir(context: &RunnerContext) -> PathBuf {
    match &context.user_config.mounts.shared {
        Some(path) => context
            .user_config_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(path),
        None => context.paths.user_workspace.join("shared"),
    }
}

/// `<workspace_root>/.runner/channels/<user>/<channel>.json`: outside
/// every workspace, so no guest can rewrite which chat maps to which
/// session.
pub fn state_file(runner_dir: &Path, user: &str, channel: &str) -> PathBuf {
    runner_dir
        .join("channels")
        .join(user)
        .join(format!("{channel}.json"))
}

/// The running adapters.
#[derive(Debug, Default)]
pub struct RunnerChannels {
    telegram: Option<TelegramAdapter>,
}

impl RunnerChannels {
    /// Starts every planned adapter.
    pub fn start(plan: &ChannelPlan, audit_file: &Path) -> Result<Self, HostError> {
        let audit: Arc<dyn ChannelAudit> = Arc::new(AuditFile::new(audit_file));
        let telegram = match &plan.telegram {
            Some(settings) => Some(
                TelegramAdapter::start(settings.clone(), Arc::clone(&audit)).map_err(
                    |message| HostError::Io {
                        what: "cannot start the Telegram channel with its state file",
                        path: settings.state_file.clone(),
                        message,
                    },
                )?,
            ),
            None => None,
        };
        Ok(Self { telegram })
    }

    /// Where each channel's health can be read, by id.
    pub fn health(&self) -> ChannelHealth {
        ChannelHealth(
            self.telegram
                .iter()
                .map(|adapter| (TELEGRAM.to_owned(), adapter.health_probe()))
                .collect(),
        )
    }

    pub async fn shutdown(self) {
        if let Some(adapter) = self.telegram {
            adapter.shutdown().await;
        }
    }
}

/// The channels' health, readable while they run.
#[derive(Debug, Clone, Default)]
pub struct ChannelHealth(BTreeMap<String, HealthProbe>);

impl ChannelHealth {
    /// Each channel's health now, by id.
    pub fn snapshot(&self) -> BTreeMap<String, ChannelHealthStatus> {
        self.0
            .iter()
            .map(|(id, probe)| (id.clone(), probe.get()))
            .collect()
    }
}

/// The runner's audit file (`.runner/audit/<user>.jsonl`): one JSON
/// record per line, appended and synced.
#[derive(Debug)]
struct AuditFile {
    path: PathBuf,
    /// Serialises appends from several tasks.
    lock: Mutex<()>,
}

impl AuditFile {
    fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            lock: Mutex::new(()),
        }
    }
}

impl ChannelAudit for AuditFile {
    fn record(&self, record: &AuditRecord) -> Result<(), String> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let describe = |e: std::io::Error| format!("{}: {e}", self.path.display());
        if let Some(dir) = self.path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(describe)?;
        }
        let mut line = serde_json::to_vec(record).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(describe)?;
        file.write_all(&line).map_err(describe)?;
        file.sync_data().map_err(describe)
    }
}
