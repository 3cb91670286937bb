//! Command-line arguments and how they become a `GatewayClientConfig`.

use std::path::PathBuf;

use channels::{EndpointSource, GatewayClientConfig, endpoint_file_in};
use clap::Parser;
use types::ids::{SessionId, UserId};
use types::protocol::gateway::GatewayEndpoint;
use types::runner::RunnerGlobalConfig;

/// oxydra-tui: chat with your Oxydra agent in the terminal.
#[derive(Debug, Clone, Parser)]
#[command(name = "oxydra-tui", version)]
pub struct Args {
    /// The gateway endpoint file to read (default:
    /// `<workspace_root>/<user>/tmp/gateway-endpoint`, from --config).
    #[arg(long, conflicts_with = "url")]
    pub endpoint_file: Option<PathBuf>,
    /// The runner configuration that names the workspace root.
    #[arg(long, default_value = "runner.toml")]
    pub config: PathBuf,
    /// Connect to this WebSocket URL instead of reading an endpoint file
    /// (needs --token).
    #[arg(long, requires = "token")]
    pub url: Option<String>,
    /// The gateway access token (with --url).
    #[arg(long, requires = "url")]
    pub token: Option<String>,
    /// Your user id (default: the only user in --config, or the workspace
    /// directory that holds --endpoint-file).
    #[arg(long)]
    pub user: Option<String>,
    /// Attach to this session instead of the latest one.
    #[arg(long)]
    pub session: Option<String>,
}

/// Where to connect, after the arguments were checked.
#[derive(Debug, Clone)]
pub struct Target {
    pub config: GatewayClientConfig,
    /// The endpoint file, when one is used (for the "not running" message).
    pub endpoint_file: Option<PathBuf>,
}

impl Args {
    /// Resolves the user and the endpoint source.
    pub fn target(&self) -> anyhow::Result<Target> {
        let (source, endpoint_file, user) = match (&self.url, &self.token, &self.endpoint_file) {
            (Some(url), Some(token), _) => {
                let user = self.user.clone().ok_or_else(|| {
                    anyhow::anyhow!("--url needs --user to say which user you are")
                })?;
                let endpoint = GatewayEndpoint {
                    url: url.clone(),
                    token: token.clone().into(),
                };
                (EndpointSource::Fixed(endpoint), None, user)
            }
            (_, _, Some(path)) => {
                let user = match &self.user {
                    Some(user) => user.clone(),
                    None => user_of_endpoint_file(path).ok_or_else(|| {
                        anyhow::anyhow!("cannot tell the user from {}: pass --user", path.display())
                    })?,
                };
                (EndpointSource::File(path.clone()), Some(path.clone()), user)
            }
            (_, _, None) => {
                let runner = RunnerGlobalConfig::load(&self.config).map_err(|err| {
                    anyhow::anyhow!(
                        "{err}\nPass --endpoint-file <workspace>/tmp/gateway-endpoint, or --url and --token, or --config <runner.toml>."
                    )
                })?;
                let user = runner.select_user(self.user.as_deref())?.clone();
                let path = endpoint_file_in(&runner.user_workspace(&user));
                (
                    EndpointSource::File(path.clone()),
                    Some(path),
                    user.to_string(),
                )
            }
        };
        let user = UserId::parse(user)?;
        let mut config = GatewayClientConfig::new(source, user);
        config.session_id = self.session.clone().map(SessionId::from);
        Ok(Target {
            config,
            endpoint_file,
        })
    }

    /// The command that starts the guest, for the "not running" message.
    pub fn start_command(&self, user: &UserId) -> String {
        format!(
            "oxydra-runner --config {} --user {user} start",
            self.config.display()
        )
    }
}

/// `<root>/<user>/tmp/gateway-endpoint` → `<user>`.
fn user_of_endpoint_file(path: &std::path::Path) -> Option<String> {
    let tmp = path.parent()?;
    if tmp.file_name()? != "tmp" {
        return None;
    }
    let user = tmp.parent()?.file_name()?.to_str()?.to_owned();
    UserId::parse(user.clone()).ok().map(|_| user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("oxydra-tui").chain(args.iter().copied()))
    }

    #[test]
    fn url_needs_token_and_user() {
        assert!(parse(&["--url", "ws://127.0.0.1:1/ws"]).is_err());
        let args = parse(&["--url", "ws://127.0.0.1:1/ws", "--token", "t"]).unwrap();
        let err = args.target().unwrap_err();
        assert!(err.to_string().contains("--user"), "{err}");
        let args = parse(&[
            "--url",
            "ws://127.0.0.1:1/ws",
            "--token",
            "t",
            "--user",
            "alice",
        ])
        .unwrap();
        let target = args.target().unwrap();
        assert_eq!(target.config.user_id.as_str(), "alice");
        assert!(target.endpoint_file.is_none());
        assert!(parse(&["--url", "u", "--token", "t", "--endpoint-file", "f"]).is_err());
    }

    #[test]
    fn the_user_comes_from_the_workspace_directory() {
        let args = parse(&["--endpoint-file", "/w/bob/tmp/gateway-endpoint"]).unwrap();
        let target = args.target().unwrap();
        assert_eq!(target.config.user_id.as_str(), "bob");
        assert_eq!(
            target.config.endpoint,
            EndpointSource::File("/w/bob/tmp/gateway-endpoint".into())
        );
        let args = parse(&["--endpoint-file", "/elsewhere/endpoint"]).unwrap();
        assert!(args.target().unwrap_err().to_string().contains("--user"));
    }

    #[test]
    fn the_default_endpoint_is_in_the_runner_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("runner.toml");
        std::fs::write(
            &config,
            "workspace_root = \"ws\"\n[users.carol]\nconfig_path = \"carol.toml\"\n",
        )
        .unwrap();
        let args = parse(&["--config", config.to_str().unwrap(), "--session", "s-9"]).unwrap();
        let target = args.target().unwrap();
        assert_eq!(
            target.endpoint_file.unwrap(),
            dir.path().join("ws/carol/tmp/gateway-endpoint")
        );
        assert_eq!(target.config.session_id, Some("s-9".into()));
        let missing = parse(&["--config", "/nonexistent/runner.toml"]).unwrap();
        let err = missing.target().unwrap_err().to_string();
        assert!(err.contains("--endpoint-file"), "{err}");
    }
}
