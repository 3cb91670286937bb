//! The web clients' DNS resolver, which closes the DNS-rebinding window.
//!
//! A guard that resolved a name to check it, and then let the HTTP stack
//! resolve it again to connect, would judge one answer and connect to
//! another: an attacker's DNS server answers a public address first and
//! 127.0.0.1 second. Here there is only one resolution per connection:
//! [`GuardedResolver`] looks the name up once, hands *all* its addresses to
//! [`EgressGuard::check_resolved`] (one blocked address refuses the name),
//! and returns exactly those addresses to the connector. Nothing else in
//! the client resolves names; IP-literal hosts skip resolution and are
//! decided by [`EgressGuard::check_url`].

use std::fmt::Debug;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::EgressGuard;

/// Turns a host name into addresses. Production uses [`SystemLookup`];
/// tests inject a stub so that no real DNS query is ever made.
#[async_trait]
pub trait HostLookup: Send + Sync + Debug {
    /// Every address of `host` (a name, never an IP literal), in the
    /// resolver's order.
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo`, on the blocking pool,
/// as `tokio::net::lookup_host` does).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

#[async_trait]
impl HostLookup for SystemLookup {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        let host = host.to_owned();
        tokio::task::spawn_blocking(move || {
            (host.as_str(), 0)
                .to_socket_addrs()
                .map(|addrs| addrs.map(|addr| addr.ip()).collect())
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// A `reqwest` resolver that checks what it answers: see the module docs.
///
/// A refusal fails the connection with the guard's
/// `ToolError::PolicyViolation` as the error's source, which the web tools
/// find in reqwest's error chain and return unchanged.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    guard: Arc<dyn EgressGuard>,
    lookup: Arc<dyn HostLookup>,
}

impl GuardedResolver {
    pub fn new(guard: Arc<dyn EgressGuard>, lookup: Arc<dyn HostLookup>) -> Self {
        Self { guard, lookup }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let Self { guard, lookup } = self.clone();
        Box::pin(async move {
            let host = name.as_str();
            let mut addrs = lookup.lookup(host).await?;
            let mut seen = Vec::with_capacity(addrs.len());
            addrs.retain(|addr| {
                let new = !seen.contains(addr);
                seen.push(*addr);
                new
            });
            if addrs.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{host} has no addresses"),
                )
                .into());
            }
            guard.check_resolved(host, &addrs)?;
            // Port 0 is replaced by the URL's port (or the scheme's default).
            let checked: Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(checked)
        })
    }
}
