//! Egress control for the web tools: SSRF protection as pure decisions, no
//! networking.
//!
//! - [`is_blocked`] says whether an IP address is internal or
//!   special-purpose (loopback, private, link-local, cloud metadata, CGNAT,
//!   unique-local, multicast, reserved, …), unwrapping IPv6 forms that
//!   carry an IPv4 address (mapped, compatible, NAT64, 6to4).
//! - [`parse_host`] and [`parse_ipv4_loose`] normalise every legal spelling
//!   of a numeric host (`2130706433`, `0177.0.0.1`, `0x7f.1`, `[::1]`, …)
//!   before anything is decided.
//! - [`EgressRules`] is the validated [`EgressPolicy`] (default-safe or
//!   strict allowlist through a proxy) plus the operator's
//!   [`EgressException`]s, and makes the two decisions the HTTP client
//!   needs: may this URL host be requested ([`EgressRules::check_target`]),
//!   and may a connection go to the addresses this name resolved to
//!   ([`EgressRules::check_resolved`]).
//!
//! Resolving names, connecting only to the checked addresses and asking on
//! every redirect hop is the job of the web tools' HTTP client, which calls
//! into these rules.
//!
//! ```
//! use sandbox::egress::{EgressRules, parse_host};
//!
//! let rules = EgressRules::default_safe();
//! let refusal = rules.check_target(&parse_host("0x7f.1").unwrap(), 80).unwrap_err();
//! assert!(refusal.to_string().starts_with("127.0.0.1 is a loopback address"));
//! let public = ["93.184.215.14".parse().unwrap()];
//! assert!(rules.check_resolved("example.com", &public).is_ok());
//! let rebound = ["93.184.215.14".parse().unwrap(), "10.0.0.1".parse().unwrap()];
//! assert!(rules.check_resolved("evil.test", &rebound).is_err());
//! ```
//!
//! [`EgressPolicy`]: types::protocol::bootstrap::EgressPolicy

mod address;
mod exceptions;
mod host;
mod rules;

pub use address::{BlockReason, BlockedKind, Embedding, is_blocked};
pub use exceptions::{EgressException, ExceptionTarget, IpNetwork};
pub use host::{HostError, TargetHost, parse_host, parse_ipv4_loose};
pub use rules::{EgressConfigError, EgressRefusal, EgressRules};
