//! Turns the `[tools]` configuration into the settings the tools take.

use std::time::Duration;

use sandbox::egress::{EgressConfigError, EgressException};
use sandbox::shell_policy::{ShellPolicy, ShellSyntax, ShellWorkspace};
use types::config::{SearchConfig, ShellToolConfig, WebToolConfig};
use types::protocol::bootstrap::EgressPolicy;
use types::{SecretString, ToolError};

use crate::shell::ShellBackend;
use crate::web::{SearchBackend, SsrfGuard, WebConfig};

/// The shell policy in front of `backend`: the configured allowlist (or
/// the built-in one) and syntax, where `workspace` says where `cd` and
/// redirections of compound lines may lead.
pub fn shell_policy(
    config: &ShellToolConfig,
    backend: &ShellBackend,
    workspace: ShellWorkspace,
) -> ShellPolicy {
    let policy = match &config.allowlist {
        Some(allowlist) => ShellPolicy::new(allowlist.iter().cloned()),
        None => ShellPolicy::default(),
    };
    match config
        .syntax
        .unwrap_or_else(|| default_shell_syntax(backend))
    {
        ShellSyntax::Strict => policy,
        ShellSyntax::Compound => policy.compound(workspace),
    }
}

/// The syntax when `tools.shell.syntax` is unset. A shell-daemon session
/// runs in the sandbox (a container sidecar or a microVM), which contains
/// whatever a command does, so models get the pipelines and lists they
/// write anyway. The host shell of development mode has nothing around it
/// but the policy, so it keeps one program per call unless the operator
/// asks for more.
fn default_shell_syntax(backend: &ShellBackend) -> ShellSyntax {
    match backend {
        ShellBackend::Session(_) => ShellSyntax::Compound,
        ShellBackend::Host(_) | ShellBackend::Disabled => ShellSyntax::Strict,
    }
}

/// The web tools' limits.
pub fn web_config(config: &WebToolConfig) -> WebConfig {
    WebConfig {
        timeout: Duration::from_secs(config.timeout_secs.max(1)),
        max_response_bytes: config.max_response_bytes.max(1),
        ..WebConfig::default()
    }
}

/// The SSRF guard for the runner's egress policy, with the operator's
/// `allow_internal` exceptions and the SearXNG host (usually on the LAN or
/// loopback) opened.
pub fn egress_guard(
    policy: &EgressPolicy,
    config: &WebToolConfig,
) -> Result<SsrfGuard, EgressConfigError> {
    let mut exceptions = config
        .allow_internal
        .iter()
        .map(|entry| entry.parse::<EgressException>())
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(SearchConfig::Searxng { base_url }) = &config.search
        && let Some(exception) = url::Url::parse(base_url)
            .ok()
            .as_ref()
            .and_then(EgressException::for_url)
    {
        exceptions.push(exception);
    }
    SsrfGuard::from_policy(policy, exceptions)
}

/// The search backend, reading a Brave key through `lookup` (the process
/// environment, or the bootstrap envelope's credentials).
pub fn search_backend(
    config: &SearchConfig,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<SearchBackend, ToolError> {
    match config {
        SearchConfig::Searxng { base_url } => Ok(SearchBackend::Searxng {
            base_url: base_url.clone(),
        }),
        SearchConfig::Brave {
            base_url,
            api_key_env,
        } => {
            let key = lookup(api_key_env)
                .filter(|key| !key.trim().is_empty())
                .ok_or_else(|| {
                    ToolError::Execution(format!(
                        "web search uses Brave but the environment variable {api_key_env} holding its API key is not set"
                    ))
                })?;
            Ok(SearchBackend::Brave {
                base_url: base_url
                    .clone()
                    .unwrap_or_else(|| SearchBackend::BRAVE_BASE_URL.to_owned()),
                api_key: SecretString::new(key),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> ShellWorkspace {
        ShellWorkspace::new("/workspace", "/workspace/shared")
    }

    #[test]
    fn shell_allowlist_defaults_and_overrides() {
        let host = ShellBackend::Host("/workspace/shared".into());
        let default = shell_policy(&ShellToolConfig::default(), &host, workspace());
        assert!(default.allowed_programs().any(|p| p == "grep"));
        let custom = shell_policy(
            &ShellToolConfig {
                allowlist: Some(vec!["ls".into()]),
                ..ShellToolConfig::default()
            },
            &host,
            workspace(),
        );
        assert_eq!(custom.allowed_programs().collect::<Vec<_>>(), ["ls"]);
        assert!(custom.check("cat x").is_err());
    }

    #[test]
    fn shell_syntax_defaults_to_compound_only_in_the_sandbox() {
        let session = ShellBackend::Session(std::sync::Arc::new(
            crate::shell::HostShellSession::new("/workspace/shared".into()),
        ));
        let host = ShellBackend::Host("/workspace/shared".into());
        let syntax = |backend: &ShellBackend, configured| {
            let config = ShellToolConfig {
                syntax: configured,
                ..ShellToolConfig::default()
            };
            shell_policy(&config, backend, workspace()).syntax()
        };
        assert_eq!(syntax(&session, None), ShellSyntax::Compound);
        assert_eq!(syntax(&host, None), ShellSyntax::Strict);
        assert_eq!(syntax(&ShellBackend::Disabled, None), ShellSyntax::Strict);
        // The operator's choice wins either way.
        assert_eq!(
            syntax(&session, Some(ShellSyntax::Strict)),
            ShellSyntax::Strict
        );
        assert_eq!(
            syntax(&host, Some(ShellSyntax::Compound)),
            ShellSyntax::Compound
        );
        let compound = shell_policy(&ShellToolConfig::default(), &session, workspace());
        assert!(compound.check("cd /workspace && ls | wc -l").is_ok());
        assert_eq!(
            compound.workspace().map(ShellWorkspace::root),
            Some(std::path::Path::new("/workspace"))
        );
    }

    #[test]
    fn web_limits_come_from_config() {
        let config = web_config(&WebToolConfig {
            timeout_secs: 7,
            max_response_bytes: 1000,
            ..WebToolConfig::default()
        });
        assert_eq!(config.timeout, Duration::from_secs(7));
        assert_eq!(config.max_response_bytes, 1000);
    }

    #[test]
    fn egress_guard_opens_configured_internal_hosts_only() {
        use crate::web::EgressGuard;
        let config = WebToolConfig {
            allow_internal: vec!["10.1.2.3:8080".into()],
            search: Some(SearchConfig::Searxng {
                base_url: "http://127.0.0.1:8888/".into(),
            }),
            ..WebToolConfig::default()
        };
        let guard = egress_guard(&EgressPolicy::DefaultSafe, &config).unwrap();
        let check = |url: &str| guard.check_url(&url::Url::parse(url).unwrap());
        assert!(check("http://10.1.2.3:8080/x").is_ok());
        assert!(check("http://127.0.0.1:8888/search").is_ok());
        assert!(check("http://127.0.0.1:9999/").is_err());
        assert!(check("http://169.254.169.254/latest/meta-data").is_err());
        let bad = WebToolConfig {
            allow_internal: vec!["*.internal".into()],
            ..WebToolConfig::default()
        };
        assert!(egress_guard(&EgressPolicy::DefaultSafe, &bad).is_err());
    }

    #[test]
    fn brave_needs_its_key_and_never_shows_it() {
        let brave = SearchConfig::Brave {
            base_url: None,
            api_key_env: "BRAVE_API_KEY".into(),
        };
        let err = search_backend(&brave, |_| None).unwrap_err();
        assert!(err.to_string().contains("BRAVE_API_KEY"), "{err}");
        let backend = search_backend(&brave, |_| Some("brv-secret".into())).unwrap();
        assert!(!format!("{backend:?}").contains("brv-secret"));
        let searx = search_backend(
            &SearchConfig::Searxng {
                base_url: "http://127.0.0.1:8888".into(),
            },
            |_| None,
        )
        .unwrap();
        assert!(matches!(searx, SearchBackend::Searxng { .. }));
    }
}
