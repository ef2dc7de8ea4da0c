//! The order of a graceful stop: graceful-shutdown community first, withdraw after half the
//! drain, BIRD last.

use std::time::Duration;

use crate::status::Protocol;

/// One step of a drain, done in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Re-render with `graceful_shutdown` and `birdc configure`: routes stay, but carry
    /// 65535:0 so RFC 8326 routers move traffic elsewhere first.
    GracefulShutdown,
    /// Let the routers act on it.
    Wait(Duration),
    /// `birdc disable` these protocols: their routes are withdrawn.
    Disable(Vec<String>),
    /// SIGTERM to BIRD, SIGKILL after a grace period.
    StopBird,
}

/// The steps of a drain of length `drain`, given BIRD's protocols (from `show protocols`).
/// Only routing protocols towards peers are disabled (BGP and OSPF); the others go with BIRD.
pub fn plan(drain: Duration, protocols: &[Protocol]) -> Vec<Step> {
    let routing: Vec<String> = protocols
        .iter()
        .filter(|p| matches!(p.proto.as_str(), "BGP" | "OSPF"))
        .map(|p| p.name.clone())
        .collect();
    let mut steps = vec![Step::GracefulShutdown, Step::Wait(drain / 2)];
    if !routing.is_empty() {
        steps.push(Step::Disable(routing));
    }
    steps.push(Step::StopBird);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(name: &str, proto: &str) -> Protocol {
        Protocol {
            name: name.into(),
            proto: proto.into(),
            ..Protocol::default()
        }
    }

    #[test]
    fn drains_in_order() {
        let five = Duration::from_secs(5);
        let half = Duration::from_millis(2500);
        let cases: &[(&str, Vec<Protocol>, Vec<Step>)] = &[
            (
                "no protocols: mark, wait, stop",
                vec![],
                vec![Step::GracefulShutdown, Step::Wait(half), Step::StopBird],
            ),
            (
                "bgp and ospf are disabled, device/direct/kernel/bfd are not",
                vec![
                    proto("device1", "Device"),
                    proto("ferrolb_direct", "Direct"),
                    proto("ferrolb_kernel4", "Kernel"),
                    proto("ferrolb_bfd", "BFD"),
                    proto("peer_192_0_2_1", "BGP"),
                    proto("ferrolb_ospf", "OSPF"),
                ],
                vec![
                    Step::GracefulShutdown,
                    Step::Wait(half),
                    Step::Disable(vec!["peer_192_0_2_1".into(), "ferrolb_ospf".into()]),
                    Step::StopBird,
                ],
            ),
        ];
        for (name, protocols, want) in cases {
            assert_eq!(&plan(five, protocols), want, "{name}");
        }
    }
}
