//! Operator exceptions: internal hosts the web tools may reach anyway, such
//! as a self-hosted SearXNG on `127.0.0.1:8888` or a LAN address.
//!
//! The list is empty unless the operator writes it. An exception is narrow
//! by design:
//!
//! - a **name** (`searx.lan`, `searx.lan:8888`) matches that exact name
//!   (case-insensitive, trailing dot ignored), never its subdomains; the
//!   addresses it resolves to may then be internal;
//! - a **network** (`127.0.0.1:8888`, `192.168.1.0/24`, `[fd12::5]:80`,
//!   `fd12::/16`) matches IP-literal URLs inside it and, when it has no
//!   port, any name that resolves inside it;
//! - with a **port**, the exception holds on that port only. Resolution
//!   does not know the port, so a port is enforced at the URL check, which
//!   every request and every redirect hop passes: an excepted name used on
//!   another port is refused there, and a port-scoped network never covers
//!   what a name resolves to.
//!
//! No exception opens cloud metadata endpoints or unspecified, multicast and
//! broadcast addresses ([`BlockedKind::is_overridable`](super::BlockedKind::is_overridable)).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use url::Url;

use super::address::prefix_matches;
use super::host::{TargetHost, parse_host};
use super::rules::EgressConfigError;

/// An IP network `addr/len`, e.g. `10.0.0.0/8` or `fd12::/16`; a single
/// address is a network of full length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    addr: IpAddr,
    len: u8,
}

impl IpNetwork {
    /// The network of `addr` with a `len`-bit prefix; host bits are
    /// cleared (`192.168.1.5/24` is `192.168.1.0/24`). `None` when `len`
    /// exceeds the address width.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        let (bits, width) = bits_of(addr);
        if u32::from(len) > width {
            return None;
        }
        let host_mask = u128::MAX
            .checked_shr(128 - width + u32::from(len))
            .unwrap_or(0);
        let network = bits & !host_mask;
        let addr = match addr {
            // `network` came from a 32-bit address and only lost bits.
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(network as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(network)),
        };
        Some(Self { addr, len })
    }

    /// The network holding exactly `addr`.
    pub fn host(addr: IpAddr) -> Self {
        let len = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        Self { addr, len }
    }

    /// Whether `ip` lies inside. An IPv4-mapped IPv6 address counts as its
    /// IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let (ip, width) = bits_of(ip);
        let (network, _) = bits_of(self.addr);
        prefix_matches(ip, network, width, self.len)
    }

    fn is_single_address(&self) -> bool {
        u32::from(self.len) == bits_of(self.addr).1
    }
}

fn bits_of(addr: IpAddr) -> (u128, u32) {
    match addr {
        IpAddr::V4(v4) => (u32::from(v4).into(), 32),
        IpAddr::V6(v6) => (v6.into(), 128),
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single_address() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

impl FromStr for IpNetwork {
    type Err = String;

    /// `addr` or `addr/len`, the address in its standard spelling.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match text.split_once('/') {
            None => (text, None),
            Some((addr, len)) => (addr, Some(len)),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{addr} is not an IP address"))?;
        match len {
            None => Ok(Self::host(addr)),
            Some(len) => len
                .parse()
                .ok()
                .and_then(|len| Self::new(addr, len))
                .ok_or_else(|| format!("/{len} is not a valid prefix length for {addr}")),
        }
    }
}

/// What an exception names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExceptionTarget {
    /// A DNS name, lower-case, without a trailing dot; matched exactly.
    Name(String),
    Network(IpNetwork),
}

/// One operator exception; see the [module docs](self) for the rules.
/// Written as `name[:port]`, `addr[/len][:port]` or `[v6addr[/len]]:port`.
///
/// ```
/// use sandbox::egress::EgressException;
///
/// let searx: EgressException = "127.0.0.1:8888".parse().unwrap();
/// assert_eq!(searx.port(), Some(8888));
/// let lan: EgressException = "192.168.1.0/24".parse().unwrap();
/// assert_eq!(lan.to_string(), "192.168.1.0/24");
/// assert!("*.lan".parse::<EgressException>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EgressException {
    target: ExceptionTarget,
    port: Option<u16>,
}

impl EgressException {
    /// An exception for `target`, on every port or only on `port`.
    pub fn new(target: ExceptionTarget, port: Option<u16>) -> Self {
        let target = match target {
            ExceptionTarget::Name(name) => {
                ExceptionTarget::Name(super::host::normalise_name(&name))
            }
            network @ ExceptionTarget::Network(_) => network,
        };
        Self { target, port }
    }

    /// The host and port of `url` (the scheme's default port when none is
    /// written), e.g. for the operator's configured search endpoint. `None`
    /// when the URL has no host or no known port.
    pub fn for_url(url: &Url) -> Option<Self> {
        let port = url.port_or_known_default()?;
        let target = match TargetHost::from_url_host(url.host()?) {
            TargetHost::Domain(name) => ExceptionTarget::Name(name),
            TargetHost::Ip { addr, .. } => ExceptionTarget::Network(IpNetwork::host(addr)),
        };
        Some(Self::new(target, Some(port)))
    }

    pub fn target(&self) -> &ExceptionTarget {
        &self.target
    }

    /// `None`: every port.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether this is an exception for exactly the (normalised) `name`.
    pub(super) fn names(&self, name: &str) -> bool {
        matches!(&self.target, ExceptionTarget::Name(own) if own == name)
    }

    /// Whether an IP-literal URL host `ip` on `port` is covered.
    pub(super) fn covers_literal(&self, ip: IpAddr, port: u16) -> bool {
        matches!(&self.target, ExceptionTarget::Network(net) if net.contains(ip))
            && self.port.is_none_or(|own| own == port)
    }

    /// Whether an address some name resolved to is covered; the port is
    /// unknown there, so port-scoped exceptions never are.
    pub(super) fn covers_resolved(&self, ip: IpAddr) -> bool {
        self.port.is_none()
            && matches!(&self.target, ExceptionTarget::Network(net) if net.contains(ip))
    }
}

impl fmt::Display for EgressException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.target, self.port) {
            (ExceptionTarget::Name(name), None) => f.write_str(name),
            (ExceptionTarget::Name(name), Some(port)) => write!(f, "{name}:{port}"),
            (ExceptionTarget::Network(net), None) => write!(f, "{net}"),
            (ExceptionTarget::Network(net), Some(port)) if net.addr.is_ipv6() => {
                write!(f, "[{net}]:{port}")
            }
            (ExceptionTarget::Network(net), Some(port)) => write!(f, "{net}:{port}"),
        }
    }
}

impl FromStr for EgressException {
    type Err = EgressConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |why: String| EgressConfigError::InvalidException {
            entry: text.to_owned(),
            why,
        };
        let text = text.trim();
        let (host, port) = split_port(text).map_err(invalid)?;
        let port = port
            .map(|port| {
                port.parse::<u16>()
                    .map_err(|_| invalid(format!("{port} is not a port number")))
            })
            .transpose()?;
        if host.starts_with('*') || host.starts_with('.') {
            return Err(invalid(
                "wildcards are not supported; an exception names one host or network".to_owned(),
            ));
        }
        let target = if host.contains('/') {
            ExceptionTarget::Network(host.parse().map_err(invalid)?)
        } else {
            match parse_host(host).map_err(|error| invalid(error.to_string()))? {
                TargetHost::Domain(name) => ExceptionTarget::Name(name),
                TargetHost::Ip { zone: Some(_), .. } => {
                    return Err(invalid("IPv6 zone ids are not supported".to_owned()));
                }
                TargetHost::Ip { addr, zone: None } => {
                    ExceptionTarget::Network(IpNetwork::host(addr))
                }
            }
        };
        Ok(Self::new(target, port))
    }
}

/// `host` and the optional port of `host[:port]` / `[v6][:port]`; an IPv6
/// network without brackets (`fd12::/16`) has no port.
fn split_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| "a '[' without its ']'".to_owned())?;
        return match after {
            "" => Ok((inside, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((inside, Some(port))),
                None => Err(format!("unexpected {after:?} after ']'")),
            },
        };
    }
    match text.matches(':').count() {
        0 => Ok((text, None)),
        1 => Ok(text
            .split_once(':')
            .map_or((text, None), |(host, port)| (host, Some(port)))),
        _ => Ok((text, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> EgressException {
        text.parse().unwrap()
    }

    #[test]
    fn spellings_round_trip() {
        for text in [
            "searx.lan",
            "searx.lan:8888",
            "127.0.0.1:8888",
            "10.0.0.0/8",
            "192.168.1.0/24:80",
            "fd12::/16",
            "[fd12::5]:80",
            "[fd12::/16]:443",
            "::1",
        ] {
            assert_eq!(parse(text).to_string(), text);
        }
        assert_eq!(parse("SEARX.lan.").to_string(), "searx.lan");
        assert_eq!(parse("192.168.1.5/24").to_string(), "192.168.1.0/24");
        for bad in [
            "*.lan",
            ".lan",
            "host:99999",
            "10.0.0.0/33",
            "[::1",
            "fe80::1%eth0",
            "a b",
        ] {
            assert!(bad.parse::<EgressException>().is_err(), "{bad}");
        }
    }

    #[test]
    fn coverage() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let lan = parse("192.168.1.0/24");
        assert!(lan.covers_literal(ip("192.168.1.77"), 1));
        assert!(lan.covers_resolved(ip("::ffff:192.168.1.77")));
        assert!(!lan.covers_resolved(ip("192.168.2.1")));
        let searx = parse("127.0.0.1:8888");
        assert!(searx.covers_literal(ip("127.0.0.1"), 8888));
        assert!(!searx.covers_literal(ip("127.0.0.1"), 22));
        assert!(!searx.covers_resolved(ip("127.0.0.1")));
        let url = Url::parse("http://Searx.LAN./search").unwrap();
        assert_eq!(EgressException::for_url(&url), Some(parse("searx.lan:80")));
    }
}
