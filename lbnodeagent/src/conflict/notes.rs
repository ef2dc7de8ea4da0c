//! What an `AddressConflict` Event says: who answered, who keeps the address, and what the
//! operator should do next. Each note starts with the address.

use std::net::IpAddr;
use std::time::Duration;

use super::rules::Wait;

/// This node waits for `address` (it does not have it) and `by` answered for it; `other` is
/// the agent's node, `None` for a host that is no agent; `interval`: `conflictProbe`;
/// `waited`: since the first answer.
pub fn waiting(
    address: IpAddr,
    by: &str,
    other: Option<&str>,
    why: Wait,
    interval: Duration,
    waited: Duration,
) -> String {
    let waited = Duration::from_secs(waited.as_secs());
    match (other, why) {
        (None, _) => format!(
            "{address} is answered on the LAN by {by}, which is no ferrolb agent: this node, \
             elected to hold it, does not take it and probes again every {interval:?}; it takes \
             it once nobody answers. Find that host and remove the address, or take the address \
             out of the ServiceGroup's pool."
        ),
        (Some(node), Wait::Lingering) => format!(
            "{address} is still answered by {by} (node {node}, not live in gossip) after \
             {waited:?}, longer than a crashed agent's copy lasts; this node, elected to hold \
             it, waits until nobody answers. Is node {node}'s agent running but cut off from \
             gossip (UDP 7947)?"
        ),
        (Some(node), Wait::New | Wait::Yielded) => format!(
            "{address} is still answered by {by} (node {node}) after {waited:?}; this node, \
             elected to hold it, waits until nobody answers. Gossip between the nodes is \
             probably blocked (UDP 7947)."
        ),
    }
}

/// This node held `address` and gave it up to `other`, which the election hash prefers.
pub fn yielded(address: IpAddr, by: &str, other: &str) -> String {
    format!(
        "{address} is also on node {other} ({by}), which the election hash prefers: this node \
         removed it and probes until nobody answers. Gossip between the nodes is probably blocked \
         (UDP 7947)."
    )
}

/// This node holds `address` and keeps it; `other` is the agent's node (it yields), `None` for
/// a host that is no agent.
pub fn kept(address: IpAddr, by: &str, other: Option<&str>) -> String {
    match other {
        Some(other) => format!(
            "{address} is also on node {other} ({by}); this node keeps it (lower election hash) \
             and the other yields. Gossip between the nodes is probably blocked (UDP 7947)."
        ),
        None => format!(
            "{address} is also claimed on the LAN by {by}, which is no ferrolb agent; this node \
             keeps it. Find that host and remove the address, or take the address out of the \
             ServiceGroup's pool."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests and the CLI find notes by their first word.
    #[test]
    fn every_note_starts_with_the_address() {
        let a: IpAddr = "2001:db8:1::130".parse().expect("ip");
        let second = Duration::from_secs(1);
        let notes = [
            waiting(a, "02:00:00:00:00:0f", None, Wait::New, second, second),
            waiting(
                a,
                "02:00:00:00:00:0b",
                Some("n-b"),
                Wait::Lingering,
                second,
                12 * second,
            ),
            waiting(
                a,
                "02:00:00:00:00:0b",
                Some("n-b"),
                Wait::Yielded,
                second,
                12 * second,
            ),
            yielded(a, "02:00:00:00:00:0b", "n-b"),
            kept(a, "02:00:00:00:00:0b", Some("n-b")),
            kept(a, "02:00:00:00:00:0f", None),
        ];
        for note in notes {
            assert_eq!(
                note.split_whitespace().next(),
                Some("2001:db8:1::130"),
                "{note}"
            );
        }
        assert!(waiting(a, "x", None, Wait::New, second, second).contains("does not take it"));
        assert!(waiting(a, "x", None, Wait::New, second, second).contains("every 1s"));
        let late = waiting(a, "x", Some("n-b"), Wait::New, second, second * 12);
        assert!(
            late.contains("still answered by x (node n-b) after 12s"),
            "{late}"
        );
    }
}
