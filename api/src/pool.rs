//! Pool syntax: what a `pool`, `subnet` and `aggregation` string means, as plain values.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnetwork::IpNetwork;

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Width of an address of this family in bits.
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// The name Kubernetes uses in `spec.ipFamilies`.
    pub fn k8s_name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.k8s_name())
    }
}

/// An address as an integer of its family, so ranges of both families share one arithmetic.
pub fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The inverse of [`to_u128`]; `None` when `value` does not fit the family.
pub fn from_u128(family: Family, value: u128) -> Option<IpAddr> {
    match family {
        Family::V4 => u32::try_from(value)
            .ok()
            .map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        Family::V6 => Some(IpAddr::V6(Ipv6Addr::from(value))),
    }
}

/// An inclusive range of addresses of one family. `start <= end` is not implied by the type:
/// [`AddrRange::parse`] accepts a reversed range so that the semantic check can name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrRange {
    pub start: IpAddr,
    pub end: IpAddr,
}

/// Why a pool, subnet or aggregation string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("{0:?} is neither an address range \"a-b\" nor a CIDR")]
    NotARangeOrCidr(String),
    #[error("{0:?} is not a CIDR")]
    NotACidr(String),
    #[error("{0:?} mixes IPv4 and IPv6")]
    MixedFamilies(String),
    #[error("{0:?} has host bits set; the network is {1}")]
    HostBitsSet(String, String),
    #[error("{0:?} is neither \"default\" nor \"/N\"")]
    NotAnAggregation(String),
}

impl AddrRange {
    pub fn new(start: IpAddr, end: IpAddr) -> Self {
        Self { start, end }
    }

    /// A range `a-b` or a CIDR, with no spaces (as the CRD's rule). A CIDR with host bits set
    /// is refused: `192.0.2.5/24` is almost always a typo for something else.
    pub fn parse(s: &str) -> Result<Self, SyntaxError> {
        if let Some((a, b)) = s.split_once('-') {
            let start =
                IpAddr::from_str(a).map_err(|_| SyntaxError::NotARangeOrCidr(s.to_string()))?;
            let end =
                IpAddr::from_str(b).map_err(|_| SyntaxError::NotARangeOrCidr(s.to_string()))?;
            if Family::of(start) != Family::of(end) {
                return Err(SyntaxError::MixedFamilies(s.to_string()));
            }
            return Ok(Self { start, end });
        }
        let net = parse_cidr(s).map_err(|e| match e {
            SyntaxError::NotACidr(_) => SyntaxError::NotARangeOrCidr(s.to_string()),
            other => other,
        })?;
        Ok(Self::of_network(net))
    }

    /// Every address of a network, network and broadcast address included.
    pub fn of_network(net: IpNetwork) -> Self {
        let family = Family::of(net.ip());
        let bits = u32::from(family.bits());
        let host_bits = bits - u32::from(net.prefix());
        let start = to_u128(net.network());
        let span = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let end =
            from_u128(family, start | span).expect("a network's last address is in its family");
        Self {
            start: net.network(),
            end,
        }
    }

    pub fn family(&self) -> Family {
        Family::of(self.start)
    }

    /// `start <= end`.
    pub fn is_ordered(&self) -> bool {
        to_u128(self.start) <= to_u128(self.end)
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        Family::of(addr) == self.family()
            && to_u128(self.start) <= to_u128(addr)
            && to_u128(addr) <= to_u128(self.end)
    }

    /// Number of addresses, saturating at `u128::MAX` (only `::/0` would need one more).
    pub fn len(&self) -> u128 {
        if !self.is_ordered() {
            return 0;
        }
        (to_u128(self.end) - to_u128(self.start)).saturating_add(1)
    }

    pub fn is_empty(&self) -> bool {
        !self.is_ordered()
    }

    pub fn overlaps(&self, other: &AddrRange) -> bool {
        self.family() == other.family()
            && self.is_ordered()
            && other.is_ordered()
            && to_u128(self.start) <= to_u128(other.end)
            && to_u128(other.start) <= to_u128(self.end)
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A CIDR whose host bits are zero.
pub fn parse_cidr(s: &str) -> Result<IpNetwork, SyntaxError> {
    if !s.contains('/') {
        return Err(SyntaxError::NotACidr(s.to_string()));
    }
    let net = IpNetwork::from_str(s).map_err(|_| SyntaxError::NotACidr(s.to_string()))?;
    if net.ip() != net.network() {
        let canonical = IpNetwork::new(net.network(), net.prefix())
            .expect("the network of a valid CIDR is valid");
        return Err(SyntaxError::HostBitsSet(
            s.to_string(),
            canonical.to_string(),
        ));
    }
    Ok(net)
}

/// The `aggregation` of a virtual pool: the prefix length its addresses get on `kube-lb0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregation {
    /// The subnet's own prefix length.
    Default,
    /// `/N`.
    Prefix(u8),
}

impl Aggregation {
    pub fn parse(s: &str) -> Result<Self, SyntaxError> {
        if s == "default" {
            return Ok(Aggregation::Default);
        }
        s.strip_prefix('/')
            .filter(|n| !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u8>().ok())
            .map(Aggregation::Prefix)
            .ok_or_else(|| SyntaxError::NotAnAggregation(s.to_string()))
    }

    /// The prefix length an address of `subnet` gets.
    pub fn prefix_for(self, subnet: IpNetwork) -> u8 {
        match self {
            Aggregation::Default => subnet.prefix(),
            Aggregation::Prefix(n) => n,
        }
    }
}

/// Addresses of a subnet that are never a host's: an IPv4 subnet's network and broadcast
/// addresses (prefix shorter than /31, RFC 3021), and an IPv6 subnet's Subnet-Router anycast
/// address (prefix shorter than /127, RFC 4291 2.6.1, RFC 6164), which a forwarding Linux node
/// claims for itself.
pub fn non_host_addresses(subnet: IpNetwork) -> Vec<IpAddr> {
    match subnet {
        IpNetwork::V4(n) if n.prefix() < 31 => vec![n.network().into(), n.broadcast().into()],
        IpNetwork::V6(n) if n.prefix() < 127 => vec![n.network().into()],
        _ => Vec::new(),
    }
}

/// The canonical text of an address (RFC 5952 for IPv6), as used in keys and hashes.
pub fn canonical(addr: IpAddr) -> String {
    addr.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn parses_pool_syntax() {
        let cases: &[(&str, &str, Result<(&str, &str), ()>)] = &[
            (
                "range",
                "192.0.2.10-192.0.2.20",
                Ok(("192.0.2.10", "192.0.2.20")),
            ),
            ("range with spaces", "192.0.2.10 - 192.0.2.20", Err(())),
            (
                "single address range",
                "192.0.2.7-192.0.2.7",
                Ok(("192.0.2.7", "192.0.2.7")),
            ),
            ("cidr", "192.0.2.0/30", Ok(("192.0.2.0", "192.0.2.3"))),
            ("host cidr", "192.0.2.9/32", Ok(("192.0.2.9", "192.0.2.9"))),
            (
                "v6 cidr",
                "2001:db8::/126",
                Ok(("2001:db8::", "2001:db8::3")),
            ),
            (
                "v6 /128",
                "2001:db8::5/128",
                Ok(("2001:db8::5", "2001:db8::5")),
            ),
            (
                "v6 range",
                "2001:db8::1-2001:db8::ff",
                Ok(("2001:db8::1", "2001:db8::ff")),
            ),
            (
                "reversed range parses",
                "192.0.2.20-192.0.2.10",
                Ok(("192.0.2.20", "192.0.2.10")),
            ),
            ("mixed families", "192.0.2.1-2001:db8::1", Err(())),
            ("comma list", "192.0.2.1,192.0.2.2", Err(())),
            ("bare address", "192.0.2.1", Err(())),
            ("host bits", "192.0.2.1/24", Err(())),
            ("garbage", "pool", Err(())),
            ("empty", "", Err(())),
        ];
        for (name, input, want) in cases {
            let got = AddrRange::parse(input).map(|r| (r.start, r.end));
            let want = want.map(|(a, b)| (ip(a), ip(b)));
            assert_eq!(got.is_ok(), want.is_ok(), "{name}: {got:?}");
            if let (Ok(g), Ok(w)) = (got, want) {
                assert_eq!(g, w, "{name}");
            }
        }
    }

    #[test]
    fn range_length_and_overlap() {
        let a = AddrRange::parse("192.0.2.0/24").expect("valid");
        assert_eq!(a.len(), 256);
        let whole_v6 = AddrRange::parse("::/0").expect("valid");
        assert_eq!(whole_v6.len(), u128::MAX);
        let slash64 = AddrRange::parse("2001:db8::/64").expect("valid");
        assert_eq!(slash64.len(), 1u128 << 64);
        let b = AddrRange::parse("192.0.2.255-192.0.3.4").expect("valid");
        assert!(a.overlaps(&b));
        let c = AddrRange::parse("192.0.3.0/24").expect("valid");
        assert!(!a.overlaps(&c));
        assert!(!a.overlaps(&slash64));
        let reversed = AddrRange::parse("192.0.2.9-192.0.2.1").expect("parses");
        assert!(reversed.is_empty());
        assert_eq!(reversed.len(), 0);
    }

    #[test]
    fn subnets_keep_their_non_host_addresses() {
        let cases: &[(&str, &[&str])] = &[
            ("192.0.2.0/24", &["192.0.2.0", "192.0.2.255"]),
            ("192.0.2.0/30", &["192.0.2.0", "192.0.2.3"]),
            ("192.0.2.0/31", &[]),
            ("192.0.2.7/32", &[]),
            ("2001:db8:1::/64", &["2001:db8:1::"]),
            ("2001:db8:1::/127", &[]),
        ];
        for (subnet, want) in cases {
            let got = non_host_addresses(subnet.parse().expect("cidr"));
            let want: Vec<IpAddr> = want.iter().map(|a| ip(a)).collect();
            assert_eq!(got, want, "{subnet}");
        }
    }

    #[test]
    fn parses_aggregation() {
        let cases: &[(&str, Option<Aggregation>)] = &[
            ("default", Some(Aggregation::Default)),
            ("/28", Some(Aggregation::Prefix(28))),
            ("/128", Some(Aggregation::Prefix(128))),
            ("28", None),
            ("/", None),
            ("/2a", None),
            ("/1000", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(Aggregation::parse(input).ok(), *want, "{input:?}");
        }
    }
}
