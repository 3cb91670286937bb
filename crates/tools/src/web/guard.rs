//! The egress guards: the one hook through which the web tools ask whether
//! a URL may be requested, and then whether the addresses its host resolved
//! to may be connected to.
//!
//! [`SsrfGuard`] is the production guard, applying `sandbox`'s
//! [`EgressRules`]. [`SchemeOnlyGuard`] checks the URL's shape only and
//! exists for tests that must reach servers on 127.0.0.1.

use std::fmt::Debug;
use std::net::IpAddr;

use sandbox::egress::{EgressConfigError, EgressException, EgressRefusal, EgressRules, TargetHost};
use types::ToolError;
use types::protocol::bootstrap::EgressPolicy;
use url::Url;

/// Decides whether a URL may be fetched and where its connection may go.
///
/// The HTTP client asks [`check_url`](Self::check_url) before the first
/// request and on every redirect hop, and
/// [`check_resolved`](Self::check_resolved) from its resolver each time a
/// host name is resolved for a new connection; the connection then goes only
/// to the addresses that were checked. A refusal is
/// `ToolError::PolicyViolation { reason }`, where `reason` tells the model
/// why (it is shown verbatim).
pub trait EgressGuard: Send + Sync + Debug {
    /// Whether `url` may be requested. IP-literal hosts are decided here;
    /// they never reach the resolver.
    fn check_url(&self, url: &Url) -> Result<(), ToolError>;

    /// Whether a connection may go to `addrs`, every address the name
    /// `host` resolved to. The port is not known at resolution time.
    /// Default: any address.
    fn check_resolved(&self, _host: &str, _addrs: &[IpAddr]) -> Result<(), ToolError> {
        Ok(())
    }

    /// A proxy every request must go through (which then resolves names
    /// itself); `None` connects directly. Default: `None`.
    fn proxy(&self) -> Option<&Url> {
        None
    }
}

/// Only `http`/`https`, a host present, no credentials in the URL
/// (`user:pass@`). No address checks: for tests against local servers.
#[derive(Debug, Clone, Default)]
pub struct SchemeOnlyGuard;

impl EgressGuard for SchemeOnlyGuard {
    fn check_url(&self, url: &Url) -> Result<(), ToolError> {
        let refuse = |reason: String| Err(ToolError::PolicyViolation { reason });
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return refuse(format!(
                    "only http:// and https:// URLs may be fetched, not {other}: URLs"
                ));
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return refuse("the URL has no host name".to_owned());
        }
        // The credentials themselves are never echoed back.
        if !url.username().is_empty() || url.password().is_some() {
            return refuse(
                "URLs with embedded credentials (user:password@host) are refused; remove them"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

/// The SSRF guard: [`SchemeOnlyGuard`]'s URL rules, then the egress rules —
/// IP-literal hosts and (in strict mode) the domain allowlist at the URL
/// check, every resolved address of a name at resolution. In strict mode
/// it also names the mandatory proxy.
///
/// ```
/// use tools::web::{EgressGuard, SsrfGuard};
/// use url::Url;
///
/// let guard = SsrfGuard::default();
/// assert!(guard.check_url(&Url::parse("http://0x7f.1/").unwrap()).is_err());
/// assert!(guard.check_url(&Url::parse("https://example.com/").unwrap()).is_ok());
/// ```
#[derive(Debug, Clone, Default)]
pub struct SsrfGuard {
    rules: EgressRules,
}

impl SsrfGuard {
    pub fn new(rules: EgressRules) -> Self {
        Self { rules }
    }

    /// The guard for the runner's egress policy plus the operator's
    /// exceptions (e.g. [`EgressException::for_url`] of a self-hosted
    /// SearXNG endpoint).
    pub fn from_policy(
        policy: &EgressPolicy,
        exceptions: impl IntoIterator<Item = EgressException>,
    ) -> Result<Self, EgressConfigError> {
        Ok(Self::new(
            EgressRules::from_policy(policy)?.with_exceptions(exceptions),
        ))
    }

    pub fn rules(&self) -> &EgressRules {
        &self.rules
    }
}

impl EgressGuard for SsrfGuard {
    fn check_url(&self, url: &Url) -> Result<(), ToolError> {
        SchemeOnlyGuard.check_url(url)?;
        // Both exist for every URL SchemeOnlyGuard accepts (http(s) with a
        // host); refusing is the safe answer should that ever change.
        let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) else {
            return Err(ToolError::PolicyViolation {
                reason: "the URL has no host name or port".to_owned(),
            });
        };
        self.rules
            .check_target(&TargetHost::from_url_host(host), port)
            .map_err(policy_violation)
    }

    fn check_resolved(&self, host: &str, addrs: &[IpAddr]) -> Result<(), ToolError> {
        self.rules
            .check_resolved(host, addrs)
            .map_err(policy_violation)
    }

    fn proxy(&self) -> Option<&Url> {
        self.rules.proxy()
    }
}

fn policy_violation(refusal: EgressRefusal) -> ToolError {
    ToolError::PolicyViolation {
        reason: refusal.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_guard(url: &str) -> Result<(), ToolError> {
        SchemeOnlyGuard.check_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn scheme_only_guard_accepts_plain_http_and_https() {
        assert_eq!(check_guard("http://example.com/a?b=c"), Ok(()));
        assert_eq!(check_guard("https://127.0.0.1:8080/"), Ok(()));
    }

    #[test]
    fn scheme_only_guard_refuses_credentials_without_echoing_them() {
        let err = check_guard("https://alice:hunter2@example.com/").unwrap_err();
        assert!(matches!(err, ToolError::PolicyViolation { .. }), "{err:?}");
        assert!(err.to_string().contains("credentials"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(check_guard("https://alice@example.com/").is_err());
    }

    #[test]
    fn scheme_only_guard_refuses_other_schemes() {
        for url in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "data:text/plain,hi",
        ] {
            let err = check_guard(url).unwrap_err();
            assert!(
                err.to_string().contains("only http:// and https://"),
                "{err}"
            );
        }
    }

    #[test]
    fn ssrf_guard_applies_the_url_rules_first() {
        let guard = SsrfGuard::default();
        let url = Url::parse("ftp://10.0.0.1/").unwrap();
        let err = guard.check_url(&url).unwrap_err();
        assert!(err.to_string().contains("only http://"), "{err}");
        let url = Url::parse("http://[::ffff:a9fe:a9fe]/latest/meta-data/").unwrap();
        let err = guard.check_url(&url).unwrap_err();
        assert!(err.to_string().contains("cloud instance metadata"), "{err}");
    }
}
