//! Listen addresses as the binaries take them from flags and the environment.

use std::net::{IpAddr, SocketAddr};

/// `address:port`, or, for what the downward API gives an IPv6 node (`$(HOST_IP):9471` with no
/// brackets), `v6address:port` read with the last colon as the port's.
pub fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>().or_else(|e| {
        text.rsplit_once(':')
            .and_then(|(ip, port)| {
                Some(SocketAddr::new(
                    ip.parse::<IpAddr>().ok().filter(IpAddr::is_ipv6)?,
                    port.parse().ok()?,
                ))
            })
            .ok_or_else(|| format!("{text:?} is not address:port ({e})"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_families_with_and_without_brackets() {
        let cases = [
            ("IPv4", "192.0.2.10:9471", Some("192.0.2.10:9471")),
            (
                "IPv6 bracketed",
                "[2001:db8:1::a]:9471",
                Some("[2001:db8:1::a]:9471"),
            ),
            (
                "IPv6 from the downward API",
                "2001:db8:1::a:9471",
                Some("[2001:db8:1::a]:9471"),
            ),
            ("no port", "192.0.2.10", None),
            ("IPv4 read as IPv6 never", "192.0.2.10:x", None),
        ];
        for (name, text, want) in cases {
            assert_eq!(
                listen_addr(text).ok().map(|a| a.to_string()).as_deref(),
                want,
                "{name}"
            );
        }
    }
}
