//! Parses real `birdc show protocols all` output captured from BIRD 2.0.12 (the default
//! template's config, peering with a BIRD ToR in a namespace; see tests/fixtures).

use super::*;

const ESTABLISHED: &str = include_str!("../../tests/fixtures/show-protocols-all-established.txt");
const DISABLED: &str = include_str!("../../tests/fixtures/show-protocols-all-disabled.txt");

/// (name, proto, state, bgp state, neighbor, exported, imported)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    u64,
    u64,
);

#[test]
fn parses_captured_bird_output() {
    let cases: &[(&str, &str, &[Row])] = &[
        (
            "sessions established, one peer unreachable",
            ESTABLISHED,
            &[
                ("device1", "Device", "up", None, None, 0, 0),
                ("ferrolb_direct", "Direct", "up", None, None, 0, 3),
                ("ferrolb_kernel4", "Kernel", "up", None, None, 0, 0),
                ("ferrolb_kernel6", "Kernel", "up", None, None, 0, 0),
                ("ferrolb_bfd", "BFD", "up", None, None, 0, 0),
                (
                    "peer_192_0_2_1",
                    "BGP",
                    "up",
                    Some("Established"),
                    Some("192.0.2.1"),
                    1,
                    0,
                ),
                (
                    "peer_2001_db8_1__1",
                    "BGP",
                    "up",
                    Some("Established"),
                    Some("2001:db8:1::1"),
                    1,
                    0,
                ),
                (
                    "peer_192_0_2_77",
                    "BGP",
                    "start",
                    Some("Active"),
                    Some("192.0.2.77"),
                    0,
                    0,
                ),
                ("ferrolb_ospf", "OSPF", "up", None, None, 1, 0),
            ],
        ),
        (
            "disabled protocols",
            DISABLED,
            &[
                (
                    "peer_192_0_2_1",
                    "BGP",
                    "down",
                    Some("Down"),
                    Some("192.0.2.1"),
                    0,
                    0,
                ),
                ("ferrolb_ospf", "OSPF", "down", None, None, 0, 0),
            ],
        ),
    ];
    for (name, text, rows) in cases {
        let got = parse_protocols(text);
        for (proto_name, proto, state, bgp, neighbor, exported, imported) in rows.iter() {
            let p = got
                .iter()
                .find(|p| p.name == *proto_name)
                .unwrap_or_else(|| panic!("{name}: no {proto_name} in {got:#?}"));
            assert_eq!(p.proto, *proto, "{name}: {proto_name}");
            assert_eq!(p.state, *state, "{name}: {proto_name}");
            assert_eq!(p.bgp_state.as_deref(), *bgp, "{name}: {proto_name}");
            assert_eq!(
                p.neighbor_address.as_deref(),
                *neighbor,
                "{name}: {proto_name}"
            );
            assert_eq!(p.exported(), *exported, "{name}: {proto_name} exported");
            assert_eq!(p.imported(), *imported, "{name}: {proto_name} imported");
        }
    }
    let all = parse_protocols(ESTABLISHED);
    assert_eq!(all.len(), 9, "{all:#?}");
    let up = all
        .iter()
        .find(|p| p.name == "peer_192_0_2_1")
        .expect("parsed");
    assert!(up.is_up() && up.is_established());
    assert_eq!(up.info, "Established");
    assert_eq!(up.neighbor_as, Some(64512));
    assert_eq!(up.channels.len(), 1);
    assert_eq!(up.channels[0].state, "UP");
    let down = all
        .iter()
        .find(|p| p.name == "peer_192_0_2_77")
        .expect("parsed");
    assert_eq!(down.info, "Active Socket: No route to host");
    assert!(!down.is_established());
}

#[test]
fn parses_edge_cases() {
    let cases: &[(&str, &str, usize)] = &[
        ("empty", "", 0),
        ("banner only", "BIRD 2.0.12 ready.\n", 0),
        (
            "header only",
            "BIRD 2.0.12 ready.\nName       Proto      Table      State  Since         Info\n",
            0,
        ),
        (
            "reply codes (birdc -v) and a dated Since",
            "0001 BIRD 2.0.12 ready.\n2002-Name       Proto      Table      State  Since         Info\n1002-device1    Device     ---        up     2024-01-02 11:07:47  \n",
            1,
        ),
        (
            "detail before any protocol is ignored",
            "  BGP state: Established\n",
            0,
        ),
    ];
    for (name, text, want) in cases {
        assert_eq!(parse_protocols(text).len(), *want, "{name}");
    }
    let dated = parse_protocols(cases[3].1);
    assert_eq!(dated[0].info, "", "a dated Since is not Info");
}
