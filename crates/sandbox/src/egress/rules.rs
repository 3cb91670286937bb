//! [`EgressRules`]: the validated egress policy, and its two decisions —
//! may this URL host be contacted, and may this name's resolved addresses.

use std::fmt;
use std::net::IpAddr;

use thiserror::Error;
use types::protocol::bootstrap::EgressPolicy;
use url::Url;

use super::address::{BlockReason, is_blocked};
use super::exceptions::EgressException;
use super::host::{TargetHost, normalise_name, parse_host};

/// How many allowlist entries a refusal quotes before "and N more".
const MAX_QUOTED_ENTRIES: usize = 10;

/// The validated form of [`EgressPolicy`], plus the operator's exceptions.
///
/// The web tools ask it twice per connection: [`check_target`] with the
/// URL's host and port before every request and redirect hop, and
/// [`check_resolved`] with every address a name resolved to, before the
/// connection is made to exactly those addresses.
///
/// - **Default safe**: IP-literal hosts in a blocked range
///   ([`is_blocked`](super::is_blocked)) are refused, names pass the URL
///   check and are refused when *any* of their addresses is blocked.
///   Operator exceptions ([`EgressException`]) open chosen internal hosts.
/// - **Strict allowlist proxy**: only hosts on the allowlist (exactly, or
///   a subdomain of an entry) are allowed, and every request goes through
///   the proxy, which resolves the names; locally only the proxy's own
///   name is ever resolved. Exceptions play no part.
///
/// [`check_target`]: Self::check_target
/// [`check_resolved`]: Self::check_resolved
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRules {
    mode: Mode,
    exceptions: Vec<EgressException>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    DefaultSafe,
    StrictAllowlistProxy {
        /// Domains (matching themselves and their subdomains) or IP
        /// literals (matching exactly).
        allowed: Vec<TargetHost>,
        proxy: ProxyUrl,
    },
}

/// The proxy URL, whose `Debug` hides a password.
#[derive(Clone, PartialEq, Eq)]
struct ProxyUrl(Url);

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.clone();
        if shown.password().is_some() {
            // Only fails for URLs that cannot carry credentials at all.
            let _ = shown.set_password(Some("****"));
        }
        f.debug_tuple("ProxyUrl").field(&shown.as_str()).finish()
    }
}

/// A configuration the rules cannot be built from.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EgressConfigError {
    #[error("egress mode strict_allowlist_proxy needs at least one entry in allowed_domains")]
    EmptyAllowlist,
    #[error("allowed_domains entry {entry:?} is invalid: {why}")]
    InvalidAllowedDomain { entry: String, why: String },
    /// The URL itself is not quoted: it may carry the proxy's password.
    #[error("egress proxy_url is not a valid URL ({why}); write it as http://host:port")]
    InvalidProxyUrl { why: String },
    #[error("egress proxy_url must use http:// or https://, not {scheme}://")]
    UnsupportedProxyScheme { scheme: String },
    #[error("egress exception {entry:?} is invalid: {why}")]
    InvalidException { entry: String, why: String },
}

/// Why a host may not be contacted. The `Display` text is shown to the
/// model verbatim, so it says what was refused and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EgressRefusal {
    /// An IP-literal host in a blocked range.
    #[error("{0}; the web tools never contact internal or special-purpose addresses")]
    BlockedAddress(BlockReason),
    /// A name with at least one blocked address among those it resolved to.
    #[error(
        "{host} resolves to {}; {reason}, and the web tools never contact internal or special-purpose addresses",
        join(.addresses, usize::MAX)
    )]
    BlockedResolution {
        host: String,
        addresses: Vec<IpAddr>,
        reason: BlockReason,
    },
    /// An IPv6 literal with a zone id (`fe80::1%eth0`).
    #[error(
        "{host} carries an IPv6 zone id; scoped addresses name a local network interface and are never contacted"
    )]
    ScopedAddress { host: String },
    /// Strict mode: the host is not on the allowlist.
    #[error(
        "{host} is not on the egress allowlist; only {} (and their subdomains) may be contacted",
        join(.allowed, MAX_QUOTED_ENTRIES)
    )]
    NotAllowlisted { host: String, allowed: Vec<String> },
    /// A name the operator excepted for other ports only.
    #[error(
        "{host} is an operator exception for port {} only, so port {port} may not be contacted",
        join(.allowed_ports, usize::MAX)
    )]
    PortNotExcepted {
        host: String,
        port: u16,
        allowed_ports: Vec<u16>,
    },
    /// Strict mode: a name other than the proxy's reached local resolution.
    #[error(
        "{host} would be resolved and contacted directly, but in strict allowlist mode only the proxy is"
    )]
    DirectConnectionInStrictMode { host: String },
}

impl EgressRefusal {
    /// The blocked address behind the refusal, if an address decided it.
    pub fn block_reason(&self) -> Option<&BlockReason> {
        match self {
            Self::BlockedAddress(reason) | Self::BlockedResolution { reason, .. } => Some(reason),
            Self::ScopedAddress { .. }
            | Self::NotAllowlisted { .. }
            | Self::PortNotExcepted { .. }
            | Self::DirectConnectionInStrictMode { .. } => None,
        }
    }
}

fn join<T: fmt::Display>(items: &[T], max: usize) -> String {
    let mut shown: Vec<String> = items.iter().take(max).map(ToString::to_string).collect();
    if items.len() > max {
        shown.push(format!("and {} more", items.len() - max));
    }
    shown.join(", ")
}

impl Default for EgressRules {
    fn default() -> Self {
        Self::default_safe()
    }
}

impl EgressRules {
    /// Block internal addresses, allow the rest; no exceptions.
    pub fn default_safe() -> Self {
        Self {
            mode: Mode::DefaultSafe,
            exceptions: Vec::new(),
        }
    }

    /// Validates the wire policy.
    pub fn from_policy(policy: &EgressPolicy) -> Result<Self, EgressConfigError> {
        match policy {
            EgressPolicy::DefaultSafe => Ok(Self::default_safe()),
            EgressPolicy::StrictAllowlistProxy {
                allowed_domains,
                proxy_url,
            } => {
                if allowed_domains.is_empty() {
                    return Err(EgressConfigError::EmptyAllowlist);
                }
                let allowed = allowed_domains
                    .iter()
                    .map(|entry| parse_allowed(entry))
                    .collect::<Result<Vec<_>, _>>()?;
                let proxy = Url::parse(proxy_url.trim()).map_err(|error| {
                    EgressConfigError::InvalidProxyUrl {
                        why: error.to_string(),
                    }
                })?;
                if !matches!(proxy.scheme(), "http" | "https") {
                    return Err(EgressConfigError::UnsupportedProxyScheme {
                        scheme: proxy.scheme().to_owned(),
                    });
                }
                if proxy.host().is_none() {
                    return Err(EgressConfigError::InvalidProxyUrl {
                        why: "it has no host".to_owned(),
                    });
                }
                Ok(Self {
                    mode: Mode::StrictAllowlistProxy {
                        allowed,
                        proxy: ProxyUrl(proxy),
                    },
                    exceptions: Vec::new(),
                })
            }
        }
    }

    /// Adds operator exceptions (they only matter in default-safe mode).
    pub fn with_exceptions(
        mut self,
        exceptions: impl IntoIterator<Item = EgressException>,
    ) -> Self {
        self.exceptions.extend(exceptions);
        self
    }

    pub fn exceptions(&self) -> &[EgressException] {
        &self.exceptions
    }

    /// The mandatory proxy of strict mode; `None` means connect directly.
    pub fn proxy(&self) -> Option<&Url> {
        match &self.mode {
            Mode::DefaultSafe => None,
            Mode::StrictAllowlistProxy { proxy, .. } => Some(&proxy.0),
        }
    }

    /// May a URL with this host and port be requested? Names are allowed
    /// here in default-safe mode; their addresses are decided by
    /// [`check_resolved`](Self::check_resolved).
    pub fn check_target(&self, host: &TargetHost, port: u16) -> Result<(), EgressRefusal> {
        if let TargetHost::Ip { zone: Some(_), .. } = host {
            return Err(EgressRefusal::ScopedAddress {
                host: host.to_string(),
            });
        }
        match &self.mode {
            Mode::StrictAllowlistProxy { allowed, .. } => {
                if allowed.iter().any(|entry| allowlist_matches(entry, host)) {
                    Ok(())
                } else {
                    Err(EgressRefusal::NotAllowlisted {
                        host: host.to_string(),
                        allowed: allowed.iter().map(ToString::to_string).collect(),
                    })
                }
            }
            Mode::DefaultSafe => match host {
                TargetHost::Ip { addr, .. } => match is_blocked(*addr) {
                    None => Ok(()),
                    Some(reason)
                        if reason.kind().is_overridable()
                            && self
                                .exceptions
                                .iter()
                                .any(|e| e.covers_literal(*addr, port)) =>
                    {
                        Ok(())
                    }
                    Some(reason) => Err(EgressRefusal::BlockedAddress(reason)),
                },
                TargetHost::Domain(name) => self.check_excepted_port(name, port),
            },
        }
    }

    /// An excepted name may be scoped to ports; the resolver cannot see the
    /// port, so the scope is enforced here.
    fn check_excepted_port(&self, name: &str, port: u16) -> Result<(), EgressRefusal> {
        let mut allowed_ports = Vec::new();
        for exception in self.exceptions.iter().filter(|e| e.names(name)) {
            match exception.port() {
                None => return Ok(()),
                Some(own) if own == port => return Ok(()),
                Some(own) => allowed_ports.push(own),
            }
        }
        if allowed_ports.is_empty() {
            Ok(())
        } else {
            Err(EgressRefusal::PortNotExcepted {
                host: name.to_owned(),
                port,
                allowed_ports,
            })
        }
    }

    /// May a connection go to the addresses `name` resolved to? All of them
    /// are judged, and one blocked address refuses the name: the HTTP stack
    /// may try any of them.
    pub fn check_resolved(&self, name: &str, addrs: &[IpAddr]) -> Result<(), EgressRefusal> {
        let name = normalise_name(name);
        match &self.mode {
            Mode::StrictAllowlistProxy { proxy, .. } => {
                // The proxy is the operator's own and usually internal.
                let proxy_host = proxy.0.host().map(TargetHost::from_url_host);
                if proxy_host == Some(TargetHost::Domain(name.clone())) {
                    Ok(())
                } else {
                    Err(EgressRefusal::DirectConnectionInStrictMode { host: name })
                }
            }
            Mode::DefaultSafe => {
                let excepted_name = self.exceptions.iter().any(|e| e.names(&name));
                for &addr in addrs {
                    let Some(reason) = is_blocked(addr) else {
                        continue;
                    };
                    let excepted =
                        excepted_name || self.exceptions.iter().any(|e| e.covers_resolved(addr));
                    if !(reason.kind().is_overridable() && excepted) {
                        return Err(EgressRefusal::BlockedResolution {
                            host: name,
                            addresses: addrs.to_vec(),
                            reason,
                        });
                    }
                }
                Ok(())
            }
        }
    }
}

/// An allowlist entry: a domain (covering its subdomains) or an IP literal.
fn parse_allowed(entry: &str) -> Result<TargetHost, EgressConfigError> {
    let invalid = |why: &str| EgressConfigError::InvalidAllowedDomain {
        entry: entry.to_owned(),
        why: why.to_owned(),
    };
    let trimmed = entry.trim();
    if let Some(rest) = trimmed
        .strip_prefix("*.")
        .or_else(|| trimmed.strip_prefix('.'))
    {
        return Err(invalid(&format!(
            "write {rest}: an entry already covers its subdomains"
        )));
    }
    match parse_host(trimmed) {
        Ok(TargetHost::Ip { zone: Some(_), .. }) => Err(invalid("IPv6 zone ids are not supported")),
        Ok(host) => Ok(host),
        Err(error) => Err(invalid(&error.to_string())),
    }
}

fn allowlist_matches(entry: &TargetHost, host: &TargetHost) -> bool {
    match (entry, host) {
        (TargetHost::Domain(entry), TargetHost::Domain(host)) => {
            host == entry
                || host
                    .strip_suffix(entry.as_str())
                    .is_some_and(|prefix| prefix.ends_with('.'))
        }
        (TargetHost::Ip { addr: entry, .. }, TargetHost::Ip { addr: host, .. }) => {
            entry.to_canonical() == host.to_canonical()
        }
        (TargetHost::Domain(_), TargetHost::Ip { .. })
        | (TargetHost::Ip { .. }, TargetHost::Domain(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(domains: &[&str]) -> EgressRules {
        EgressRules::from_policy(&EgressPolicy::StrictAllowlistProxy {
            allowed_domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            proxy_url: "http://user:hunter2@proxy.internal:3128".to_owned(),
        })
        .unwrap()
    }

    fn domain(name: &str) -> TargetHost {
        parse_host(name).unwrap()
    }

    #[test]
    fn strict_mode_matches_exact_names_and_subdomains_only() {
        let rules = strict(&["Example.COM.", "203.0.113.7"]);
        for ok in [
            "example.com",
            "api.example.com",
            "a.b.example.com.",
            "203.0.113.7",
        ] {
            assert_eq!(rules.check_target(&domain(ok), 443), Ok(()), "{ok}");
        }
        for refused in ["badexample.com", "example.com.evil.net", "com", "127.0.0.1"] {
            let err = rules.check_target(&domain(refused), 443).unwrap_err();
            assert!(
                err.to_string().contains("only example.com, 203.0.113.7"),
                "{err}"
            );
        }
        assert_eq!(rules.check_resolved("Proxy.Internal.", &[]), Ok(()));
        assert!(rules.check_resolved("example.com", &[]).is_err());
        assert!(!format!("{rules:?}").contains("hunter2"));
    }

    #[test]
    fn strict_mode_configuration_errors() {
        let build = |domains: Vec<String>, proxy: &str| {
            EgressRules::from_policy(&EgressPolicy::StrictAllowlistProxy {
                allowed_domains: domains,
                proxy_url: proxy.to_owned(),
            })
        };
        let ok = || vec!["example.com".to_owned()];
        assert_eq!(
            build(vec![], "http://p:1"),
            Err(EgressConfigError::EmptyAllowlist)
        );
        let err = build(vec!["*.example.com".into()], "http://p:1").unwrap_err();
        assert!(err.to_string().contains("write example.com"), "{err}");
        assert!(matches!(
            build(ok(), "socks5://p:1"),
            Err(EgressConfigError::UnsupportedProxyScheme { .. })
        ));
        let err = build(ok(), "http://u:secret@[bad").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn port_scoped_name_exceptions() {
        let rules =
            EgressRules::default_safe().with_exceptions(["searx.lan:8888".parse().unwrap()]);
        assert_eq!(rules.check_target(&domain("searx.lan"), 8888), Ok(()));
        let err = rules.check_target(&domain("SEARX.lan"), 22).unwrap_err();
        assert_eq!(
            err.to_string(),
            "searx.lan is an operator exception for port 8888 only, so port 22 may not be contacted"
        );
        let loopback = ["127.0.0.1".parse().unwrap()];
        assert_eq!(rules.check_resolved("searx.lan.", &loopback), Ok(()));
        assert!(rules.check_resolved("other.lan", &loopback).is_err());
        let metadata = ["169.254.169.254".parse().unwrap()];
        assert!(rules.check_resolved("searx.lan", &metadata).is_err());
    }
}
