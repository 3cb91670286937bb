//! Which IP addresses the web tools never contact, and why.
//!
//! The decision is table-driven: one ordered list of networks per address
//! family, first match wins, each entry naming the registry (IANA special
//! purpose registries, RFC 6890 and successors) it comes from. IPv6 forms
//! that carry an IPv4 address are unwrapped first and decided by the IPv4
//! table, so `::ffff:127.0.0.1` is exactly as blocked as `127.0.0.1`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is blocked. Its `Display` is a sentence for the model,
/// e.g. `127.0.0.1 is a loopback address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockReason {
    address: IpAddr,
    kind: BlockedKind,
    embedded: Option<(Embedding, Ipv4Addr)>,
}

impl BlockReason {
    /// The address that was checked, as given.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// What kind of address decided the refusal (for an IPv6 form carrying
    /// an IPv4 address: the kind of that IPv4 address).
    pub fn kind(&self) -> BlockedKind {
        self.kind
    }

    /// How an IPv4 address was carried inside the IPv6 address, if it was.
    pub fn embedded(&self) -> Option<(Embedding, Ipv4Addr)> {
        self.embedded
    }
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            None => write!(f, "{} is {}", self.address, self.kind),
            Some((embedding, v4)) => write!(
                f,
                "{} is {embedding} of {v4}, which is {}",
                self.address, self.kind
            ),
        }
    }
}

/// The kinds of blocked address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockedKind {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 0.0.0.0/8 ("this network"; Linux connects 0.0.0.0 to the local
    /// host), ::.
    Unspecified,
    /// 10/8, 172.16/12, 192.168/16.
    Private,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// Instance metadata services (169.254.169.254, fd00:ec2::254, …),
    /// which hand out cloud credentials.
    CloudMetadata,
    /// 100.64/10, carrier-grade NAT.
    SharedAddressSpace,
    /// fc00::/7.
    UniqueLocal,
    /// fec0::/10, deprecated but still routed as private on some networks.
    SiteLocal,
    /// 224/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18/15, 2001:2::/48.
    Benchmarking,
    /// 2001::/32. The real endpoint of a Teredo address is an obfuscated
    /// IPv4 address behind a relay, which cannot be verified from here.
    Teredo,
    /// Everything else set aside for special purposes: 240/4, 192.0.0/24,
    /// the deprecated 6to4 relay anycast, local-use NAT64, IPv6 outside
    /// 2000::/3, …
    Reserved,
}

impl BlockedKind {
    /// Whether an operator exception may open this kind of address. Cloud
    /// metadata endpoints hand out credentials, and unspecified, multicast
    /// and broadcast addresses are never a web server, so no exception
    /// covers them.
    pub fn is_overridable(self) -> bool {
        match self {
            Self::CloudMetadata | Self::Unspecified | Self::Multicast | Self::Broadcast => false,
            Self::Loopback
            | Self::Private
            | Self::LinkLocal
            | Self::SharedAddressSpace
            | Self::UniqueLocal
            | Self::SiteLocal
            | Self::Documentation
            | Self::Benchmarking
            | Self::Teredo
            | Self::Reserved => true,
        }
    }
}

impl fmt::Display for BlockedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Loopback => "a loopback address",
            Self::Unspecified => "an unspecified (\"this host\") address",
            Self::Private => "a private-network address",
            Self::LinkLocal => "a link-local address",
            Self::CloudMetadata => "a cloud instance metadata endpoint",
            Self::SharedAddressSpace => "a carrier-grade NAT (shared address space) address",
            Self::UniqueLocal => "a unique-local (private) IPv6 address",
            Self::SiteLocal => "a site-local (private) IPv6 address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::Documentation => "a documentation-only address",
            Self::Benchmarking => "a benchmarking address",
            Self::Teredo => "a Teredo tunnel address, whose real endpoint cannot be verified",
            Self::Reserved => "a reserved special-purpose address",
        })
    }
}

/// How an IPv6 address carries an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Embedding {
    /// `::ffff:a.b.c.d`; a dual-stack socket connects to `a.b.c.d`.
    Ipv4Mapped,
    /// `::a.b.c.d` (deprecated).
    Ipv4Compatible,
    /// `::ffff:0:a.b.c.d` (SIIT, RFC 7915).
    Ipv4Translated,
    /// `64:ff9b::a.b.c.d`, the well-known NAT64 prefix (RFC 6052).
    Nat64,
    /// `2002:aabb:ccdd::/48`, 6to4 (RFC 3056).
    SixToFour,
}

impl fmt::Display for Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ipv4Mapped => "the IPv4-mapped IPv6 form",
            Self::Ipv4Compatible => "the IPv4-compatible IPv6 form",
            Self::Ipv4Translated => "the IPv4-translated IPv6 form",
            Self::Nat64 => "the NAT64 (64:ff9b::/96) form",
            Self::SixToFour => "a 6to4 (2002::/16) address",
        })
    }
}

/// Why `ip` must not be contacted, or `None` when it is an ordinary public
/// address.
///
/// ```
/// use sandbox::egress::{BlockedKind, is_blocked};
///
/// let reason = is_blocked("127.0.0.1".parse().unwrap()).unwrap();
/// assert_eq!(reason.to_string(), "127.0.0.1 is a loopback address");
/// let mapped = is_blocked("::ffff:169.254.169.254".parse().unwrap()).unwrap();
/// assert_eq!(mapped.kind(), BlockedKind::CloudMetadata);
/// assert!(is_blocked("8.8.8.8".parse().unwrap()).is_none());
/// ```
pub fn is_blocked(ip: IpAddr) -> Option<BlockReason> {
    let block = |kind, embedded| BlockReason {
        address: ip,
        kind,
        embedded,
    };
    match ip {
        IpAddr::V4(v4) => ipv4_kind(v4).map(|kind| block(kind, None)),
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some((embedding, v4)) => ipv4_kind(v4).map(|kind| block(kind, Some((embedding, v4)))),
            None => ipv6_kind(v6).map(|kind| block(kind, None)),
        },
    }
}

/// IPv4 networks never contacted, most specific first.
const IPV4_BLOCKED: &[([u8; 4], u8, BlockedKind)] = &[
    // AWS, GCP, Azure, Oracle, DigitalOcean instance metadata; AWS DNS and
    // time sync next to it; ECS task metadata; EKS pod identity; Alibaba
    // Cloud metadata (inside 100.64/10).
    ([169, 254, 169, 254], 32, BlockedKind::CloudMetadata),
    ([169, 254, 169, 253], 32, BlockedKind::CloudMetadata),
    ([169, 254, 169, 123], 32, BlockedKind::CloudMetadata),
    ([169, 254, 170, 2], 32, BlockedKind::CloudMetadata),
    ([169, 254, 170, 23], 32, BlockedKind::CloudMetadata),
    ([100, 100, 100, 200], 32, BlockedKind::CloudMetadata),
    ([255, 255, 255, 255], 32, BlockedKind::Broadcast),
    ([0, 0, 0, 0], 8, BlockedKind::Unspecified),
    ([10, 0, 0, 0], 8, BlockedKind::Private),
    ([100, 64, 0, 0], 10, BlockedKind::SharedAddressSpace),
    ([127, 0, 0, 0], 8, BlockedKind::Loopback),
    ([169, 254, 0, 0], 16, BlockedKind::LinkLocal),
    ([172, 16, 0, 0], 12, BlockedKind::Private),
    // IETF protocol assignments (RFC 6890), including the NAT64 discovery
    // and DS-Lite addresses.
    ([192, 0, 0, 0], 24, BlockedKind::Reserved),
    ([192, 0, 2, 0], 24, BlockedKind::Documentation),
    // Deprecated 6to4 relay anycast (RFC 7526).
    ([192, 88, 99, 0], 24, BlockedKind::Reserved),
    ([192, 168, 0, 0], 16, BlockedKind::Private),
    ([198, 18, 0, 0], 15, BlockedKind::Benchmarking),
    ([198, 51, 100, 0], 24, BlockedKind::Documentation),
    ([203, 0, 113, 0], 24, BlockedKind::Documentation),
    ([224, 0, 0, 0], 4, BlockedKind::Multicast),
    ([240, 0, 0, 0], 4, BlockedKind::Reserved),
];

/// IPv6 networks never contacted, most specific first; anything outside
/// 2000::/3 (global unicast) is reserved as well. The forms that embed an
/// IPv4 address are handled by [`embedded_ipv4`] before this table.
const IPV6_BLOCKED: &[(Ipv6Addr, u8, BlockedKind)] = &[
    (Ipv6Addr::UNSPECIFIED, 128, BlockedKind::Unspecified),
    (Ipv6Addr::LOCALHOST, 128, BlockedKind::Loopback),
    // AWS instance metadata, DNS, time sync and EKS pod identity over IPv6
    // (inside fc00::/7).
    (
        v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254]),
        128,
        BlockedKind::CloudMetadata,
    ),
    (
        v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x253]),
        128,
        BlockedKind::CloudMetadata,
    ),
    (
        v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x123]),
        128,
        BlockedKind::CloudMetadata,
    ),
    (
        v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23]),
        128,
        BlockedKind::CloudMetadata,
    ),
    // Local-use NAT64 (RFC 8215): the prefix length, and so where the IPv4
    // address sits, is a local choice we cannot know.
    (
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0]),
        48,
        BlockedKind::Reserved,
    ),
    // Discard-only (RFC 6666).
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0]), 64, BlockedKind::Reserved),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 32, BlockedKind::Teredo),
    (
        v6([0x2001, 2, 0, 0, 0, 0, 0, 0]),
        48,
        BlockedKind::Benchmarking,
    ),
    // The rest of the IETF protocol assignments (ORCHID, AMT, AS112, …):
    // none of it serves web pages.
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 23, BlockedKind::Reserved),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]),
        32,
        BlockedKind::Documentation,
    ),
    (
        v6([0x3fff, 0, 0, 0, 0, 0, 0, 0]),
        20,
        BlockedKind::Documentation,
    ),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0]),
        7,
        BlockedKind::UniqueLocal,
    ),
    (
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0]),
        10,
        BlockedKind::LinkLocal,
    ),
    (
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0]),
        10,
        BlockedKind::SiteLocal,
    ),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0]), 8, BlockedKind::Multicast),
];

const fn v6(segments: [u16; 8]) -> Ipv6Addr {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Addr::new(a, b, c, d, e, f, g, h)
}

fn ipv4_kind(ip: Ipv4Addr) -> Option<BlockedKind> {
    let ip = u32::from(ip);
    IPV4_BLOCKED
        .iter()
        .find(|(network, len, _)| {
            prefix_matches(ip.into(), u32::from_be_bytes(*network).into(), 32, *len)
        })
        .map(|(_, _, kind)| *kind)
}

fn ipv6_kind(ip: Ipv6Addr) -> Option<BlockedKind> {
    let bits = u128::from(ip);
    let listed = IPV6_BLOCKED
        .iter()
        .find(|(network, len, _)| prefix_matches(bits, u128::from(*network), 128, *len))
        .map(|(_, _, kind)| *kind);
    // Only 2000::/3 is allocated for global unicast.
    let global_unicast = prefix_matches(bits, 0x2000_u128 << 112, 128, 3);
    listed.or((!global_unicast).then_some(BlockedKind::Reserved))
}

/// Whether the top `len` of `width` bits of `ip` and `network` agree.
pub(super) fn prefix_matches(ip: u128, network: u128, width: u32, len: u8) -> bool {
    let len = u32::from(len).min(width);
    if len == 0 {
        return true;
    }
    let shift = width - len;
    ip >> shift == network >> shift
}

/// The IPv4 address inside `ip`, for the IPv6 forms that route to (or
/// stand for) an IPv4 destination. `::` and `::1` are IPv6's own
/// unspecified and loopback addresses, not IPv4-compatible forms.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<(Embedding, Ipv4Addr)> {
    let bits = u128::from(ip);
    // The low 32 bits; truncation is the point.
    let low = Ipv4Addr::from(bits as u32);
    let high96 = bits >> 32;
    let embedding = match high96 {
        0 if bits > 1 => Embedding::Ipv4Compatible,
        0xffff => Embedding::Ipv4Mapped,
        0xffff_0000 => Embedding::Ipv4Translated,
        _ if high96 == 0x0064_ff9b_u128 << 64 => Embedding::Nat64,
        _ if bits >> 112 == 0x2002 => {
            // 2002:AABB:CCDD::/48 carries AA.BB.CC.DD in bits 16..48.
            let v4 = Ipv4Addr::from((bits >> 80) as u32);
            return Some((Embedding::SixToFour, v4));
        }
        _ => return None,
    };
    Some((embedding, low))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(ip: &str) -> Option<BlockedKind> {
        is_blocked(ip.parse().unwrap()).map(|reason| reason.kind())
    }

    #[test]
    fn every_table_entry_is_a_network_address() {
        for (network, len, _) in IPV4_BLOCKED {
            let bits = u32::from_be_bytes(*network);
            assert_eq!(
                bits & !(u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0)),
                0
            );
        }
        for (network, len, _) in IPV6_BLOCKED {
            let bits = u128::from(*network);
            let host_bits = u128::MAX.checked_shr(u32::from(*len)).unwrap_or(0);
            assert_eq!(bits & host_bits, 0, "{network}/{len}");
        }
    }

    #[test]
    fn range_edges() {
        assert_eq!(kind("172.15.255.255"), None);
        assert_eq!(kind("172.16.0.0"), Some(BlockedKind::Private));
        assert_eq!(kind("172.31.255.255"), Some(BlockedKind::Private));
        assert_eq!(kind("172.32.0.0"), None);
        assert_eq!(kind("100.63.255.255"), None);
        assert_eq!(
            kind("100.127.255.255"),
            Some(BlockedKind::SharedAddressSpace)
        );
        assert_eq!(kind("100.128.0.0"), None);
        assert_eq!(kind("223.255.255.255"), None);
        assert_eq!(kind("1.0.0.0"), None);
        assert_eq!(kind("1fff:ffff::1"), Some(BlockedKind::Reserved));
        assert_eq!(kind("2001:200::1"), None);
        assert_eq!(kind("2001:1ff::1"), Some(BlockedKind::Reserved));
    }

    #[test]
    fn embedded_forms_are_unwrapped() {
        assert_eq!(kind("::ffff:8.8.8.8"), None);
        assert_eq!(kind("64:ff9b::8.8.8.8"), None);
        assert_eq!(kind("2002:808:808::1"), None);
        let reason = is_blocked("2002:a00:1::".parse().unwrap()).unwrap();
        assert_eq!(
            reason.to_string(),
            "2002:a00:1:: is a 6to4 (2002::/16) address of 10.0.0.1, which is a private-network address"
        );
        assert_eq!(kind("::2"), Some(BlockedKind::Unspecified));
        assert_eq!(kind("::1"), Some(BlockedKind::Loopback));
        assert_eq!(kind("::"), Some(BlockedKind::Unspecified));
    }
}
