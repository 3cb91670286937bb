//! Host names as the egress policy sees them: every legal spelling of a
//! numeric host normalised to one address before anything is decided.
//!
//! `url::Url` already applies the WHATWG host parser (`http://0x7f.1/` has
//! the host `Host::Ipv4(127.0.0.1)`); [`TargetHost::from_url_host`] takes
//! that result as it is. [`parse_host`] is for hosts that arrive outside a
//! URL (configuration, a resolver's name) and applies the same IPv4 rules
//! (which are also those of `inet_aton`), so both paths reach the same
//! decision.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

/// A host, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TargetHost {
    /// An IP literal. `zone` is an IPv6 zone id (`fe80::1%eth0`), kept so
    /// the policy can refuse it: a zone names a local network interface.
    Ip { addr: IpAddr, zone: Option<String> },
    /// A DNS name: lower-case ASCII, without a trailing dot.
    Domain(String),
}

impl TargetHost {
    /// The host of a parsed URL. `url` has already normalised numeric IPv4
    /// spellings, lower-cased the name and applied IDNA; only the trailing
    /// dot of a fully qualified name is left to remove.
    pub fn from_url_host(host: url::Host<&str>) -> Self {
        match host {
            url::Host::Domain(name) => Self::Domain(normalise_name(name)),
            url::Host::Ipv4(addr) => Self::Ip {
                addr: addr.into(),
                zone: None,
            },
            url::Host::Ipv6(addr) => Self::Ip {
                addr: addr.into(),
                zone: None,
            },
        }
    }
}

impl fmt::Display for TargetHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip {
                addr: IpAddr::V6(addr),
                zone: Some(zone),
            } => write!(f, "{addr}%{zone}"),
            Self::Ip { addr, .. } => write!(f, "{addr}"),
            Self::Domain(name) => f.write_str(name),
        }
    }
}

/// Why a host could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HostError {
    #[error("the host is empty")]
    Empty,
    /// The host ends in a number, so resolvers would read it as an IPv4
    /// address, but it is not a valid one (`1.2.3.256`, `0x1g`).
    #[error("it ends in a number but is not a valid IPv4 address")]
    InvalidIpv4,
    #[error("it is not a valid IPv6 address")]
    InvalidIpv6,
    /// Non-ASCII names must be given in their punycode (`xn--`) form.
    #[error("it is not an ASCII host name (use the xn-- form of international names)")]
    NotAscii,
    #[error(
        "it is not a valid host name (letters, digits, '-', '_' and '.' only, no empty labels)"
    )]
    InvalidName,
}

/// Parses a host as it may appear outside a URL: an IPv4 address in any
/// spelling [`parse_ipv4_loose`] accepts, an IPv6 address with or without
/// brackets and with an optional zone id (`%eth0`, or `%25eth0` as URLs
/// encode it), or a DNS name (lower-cased, one trailing dot removed).
///
/// ```
/// use sandbox::egress::{TargetHost, parse_host};
///
/// let loopback = TargetHost::Ip { addr: "127.0.0.1".parse().unwrap(), zone: None };
/// for spelling in ["127.0.0.1", "2130706433", "0177.0.0.1", "0x7f.1", "127.1."] {
///     assert_eq!(parse_host(spelling).unwrap(), loopback);
/// }
/// assert_eq!(parse_host("Example.COM.").unwrap(), TargetHost::Domain("example.com".into()));
/// ```
pub fn parse_host(raw: &str) -> Result<TargetHost, HostError> {
    if raw.is_empty() {
        return Err(HostError::Empty);
    }
    if let Some(inner) = raw.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(HostError::InvalidIpv6)?;
        return parse_ipv6_with_zone(inner);
    }
    if raw.contains(':') {
        return parse_ipv6_with_zone(raw);
    }
    if !raw.is_ascii() {
        return Err(HostError::NotAscii);
    }
    let name = normalise_name(raw);
    if ends_in_a_number(&name) {
        let addr = parse_ipv4_loose(&name).ok_or(HostError::InvalidIpv4)?;
        return Ok(TargetHost::Ip {
            addr: addr.into(),
            zone: None,
        });
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(HostError::InvalidName);
    }
    Ok(TargetHost::Domain(name))
}

/// Parses IPv4 the way the WHATWG URL standard and `inet_aton` do: one to
/// four dot-separated parts, each decimal, octal (leading `0`) or hex
/// (`0x`); the last part fills all remaining bytes (`127.1` is
/// `127.0.0.1`, `2130706433` is `127.0.0.1`); one trailing dot is allowed.
/// `None` when the text is not such an address.
///
/// ```
/// use std::net::Ipv4Addr;
/// use sandbox::egress::parse_ipv4_loose;
///
/// assert_eq!(parse_ipv4_loose("0x7f000001"), Some(Ipv4Addr::LOCALHOST));
/// assert_eq!(parse_ipv4_loose("0177.0.1"), Some(Ipv4Addr::LOCALHOST));
/// assert_eq!(parse_ipv4_loose("1.2.3.256"), None);
/// ```
pub fn parse_ipv4_loose(raw: &str) -> Option<Ipv4Addr> {
    let raw = raw.strip_suffix('.').unwrap_or(raw);
    let parts: Vec<&str> = raw.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let numbers = parts
        .iter()
        .map(|part| parse_ipv4_number(part))
        .collect::<Option<Vec<u32>>>()?;
    let (&last, leading) = numbers.split_last()?;
    if leading.iter().any(|&n| n > 255) {
        return None;
    }
    // The last part fills the bytes the leading parts left: 32 bits after
    // no leading part, 24 after one, and so on.
    let room = 32 - 8 * u32::try_from(leading.len()).ok()?;
    if room < 32 && last >> room != 0 {
        return None;
    }
    let high = leading
        .iter()
        .enumerate()
        .fold(0_u32, |acc, (i, &n)| acc | (n << (24 - 8 * i)));
    Some(Ipv4Addr::from(high | last))
}

/// One part of a loose IPv4 address. Empty parts are invalid, but `0x`
/// alone is zero, as in the WHATWG parser.
fn parse_ipv4_number(part: &str) -> Option<u32> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        return (radix == 16).then_some(0);
    }
    // `from_str_radix` would accept a leading '+'.
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

/// The WHATWG "ends in a number" test: such a host must be an IPv4
/// address or nothing, never a name to look up.
fn ends_in_a_number(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or_default();
    !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit()) || parse_ipv4_number(last).is_some())
}

fn parse_ipv6_with_zone(text: &str) -> Result<TargetHost, HostError> {
    let (addr, zone) = match text.split_once('%') {
        None => (text, None),
        Some((addr, zone)) => {
            // In URLs the '%' itself is percent-encoded (RFC 6874).
            let zone = match zone.strip_prefix("25") {
                Some(decoded) if !decoded.is_empty() => decoded,
                _ => zone,
            };
            if zone.is_empty() {
                return Err(HostError::InvalidIpv6);
            }
            (addr, Some(zone.to_owned()))
        }
    };
    let addr: Ipv6Addr = addr.parse().map_err(|_| HostError::InvalidIpv6)?;
    Ok(TargetHost::Ip {
        addr: addr.into(),
        zone,
    })
}

/// Lower-case, without the one trailing dot of a fully qualified name.
pub(super) fn normalise_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_ipv4_spellings() {
        let localhost = Some(Ipv4Addr::LOCALHOST);
        for spelling in [
            "127.0.0.1",
            "127.1",
            "127.0.1",
            "2130706433",
            "0x7f000001",
            "0X7F000001",
            "017700000001",
            "0177.0.0.1",
            "0x7f.0.0.1",
            "0x7f.1",
            "0177.0x0.00.1",
            "127.0.0.1.",
        ] {
            assert_eq!(parse_ipv4_loose(spelling), localhost, "{spelling}");
        }
        assert_eq!(parse_ipv4_loose("0"), Some(Ipv4Addr::UNSPECIFIED));
        assert_eq!(parse_ipv4_loose("0x"), Some(Ipv4Addr::UNSPECIFIED));
        assert_eq!(parse_ipv4_loose("4294967295"), Some(Ipv4Addr::BROADCAST));
        for invalid in [
            "",
            ".",
            "1..2",
            "1.2.3.4.5",
            "4294967296",
            "1.16777216",
            "256.1",
            "1.2.3.256",
            "08",
            "0x1g",
            "+1",
            "1.+2",
            "1.2.3.4..",
            "a.b",
        ] {
            assert_eq!(parse_ipv4_loose(invalid), None, "{invalid:?}");
        }
    }

    #[test]
    fn hosts_ending_in_a_number_are_addresses_or_errors() {
        assert_eq!(parse_host("1.2.3.256"), Err(HostError::InvalidIpv4));
        assert_eq!(parse_host("foo.0x"), Err(HostError::InvalidIpv4));
        assert_eq!(parse_host("foo.123"), Err(HostError::InvalidIpv4));
        assert_eq!(
            parse_host("123.foo").unwrap(),
            TargetHost::Domain("123.foo".into())
        );
    }

    #[test]
    fn ipv6_brackets_and_zones() {
        let zoned = TargetHost::Ip {
            addr: "fe80::1".parse().unwrap(),
            zone: Some("eth0".into()),
        };
        assert_eq!(parse_host("[fe80::1%25eth0]").unwrap(), zoned);
        assert_eq!(parse_host("fe80::1%eth0").unwrap(), zoned);
        assert_eq!(zoned.to_string(), "fe80::1%eth0");
        assert_eq!(parse_host("[::1"), Err(HostError::InvalidIpv6));
        assert_eq!(parse_host("[fe80::1%]"), Err(HostError::InvalidIpv6));
        assert_eq!(parse_host("ex ample.com"), Err(HostError::InvalidName));
        assert_eq!(parse_host("exämple.com"), Err(HostError::NotAscii));
        assert_eq!(parse_host("a..b"), Err(HostError::InvalidName));
    }
}
