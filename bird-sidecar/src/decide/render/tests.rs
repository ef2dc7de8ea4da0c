//! Table tests of the default template: what it says, and that BIRD 2 itself accepts it.

use std::net::IpAddr;
use std::process::Command;

use ferrolb_api::ServiceGroup;
use ferrolb_api::servicegroup::{BgpAttributes, Pool, ServiceGroupSpec, VirtualSpec};

use crate::decide::{NodeFacts, Snapshot, desired};
use crate::values::Values;

/// A virtual ServiceGroup under construction.
pub(crate) struct GroupBuilder(ServiceGroup);

pub(crate) fn virtual_group(name: &str) -> GroupBuilder {
    let spec = ServiceGroupSpec {
        virtual_: Some(VirtualSpec::default()),
        ..ServiceGroupSpec::default()
    };
    GroupBuilder(ServiceGroup::new(name, spec))
}

impl GroupBuilder {
    fn spec(&mut self) -> &mut VirtualSpec {
        self.0.spec.virtual_.as_mut().expect("built as virtual")
    }
    pub(crate) fn pool(mut self, subnet: &str, pool: &str, aggregation: Option<&str>) -> Self {
        let p = Pool {
            subnet: subnet.into(),
            pool: pool.into(),
            aggregation: aggregation.map(str::to_string),
        };
        if subnet.contains(':') {
            self.spec().v6pools.push(p);
        } else {
            self.spec().v4pools.push(p);
        }
        self
    }
    pub(crate) fn bgp(mut self, communities: &[&str], large: &[&str], pref: Option<u32>) -> Self {
        self.spec().bgp = Some(BgpAttributes {
            communities: communities.iter().map(|s| s.to_string()).collect(),
            large_communities: large.iter().map(|s| s.to_string()).collect(),
            local_preference: pref,
        });
        self
    }
    pub(crate) fn build(self) -> ServiceGroup {
        self.0
    }
}

pub(crate) fn node() -> NodeFacts {
    NodeFacts {
        name: "worker-1".into(),
        addresses: ["192.0.2.10", "2001:db8:1::10"]
            .iter()
            .map(|a| a.parse::<IpAddr>().expect("literal"))
            .collect(),
    }
}

fn snapshot(values: &str, groups: Vec<ServiceGroup>) -> Snapshot {
    Snapshot {
        node: node(),
        values: Values::from_yaml(values).expect("test values parse"),
        groups,
        template: crate::decide::DEFAULT_TEMPLATE.to_string(),
    }
}

/// `bird -p -c <config>`: `Err(BIRD's message)` when BIRD refuses it.
pub(crate) fn bird_parses(config: &str, name: &str) -> Result<(), String> {
    let path = std::env::temp_dir().join(format!(
        "ferrolb-render-{}-{}.conf",
        std::process::id(),
        name.replace(' ', "_")
    ));
    std::fs::write(&path, config).expect("write config");
    let out = Command::new("bird")
        .arg("-p")
        .arg("-c")
        .arg(&path)
        .output()
        .expect("bird is installed (Debian bird2)");
    let _ = std::fs::remove_file(&path);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

const EBGP_BFD: &str = "localASN: 64520
peers:
  - address: 192.0.2.1
    asn: 64512
    bfd: true
    connectRetryTime: 1s
";

#[test]
fn default_template_renders_and_bird_accepts_it() {
    let two_groups = || {
        vec![
            virtual_group("web")
                .pool("203.0.113.0/25", "203.0.113.0/26", Some("/28"))
                .pool("2001:db8:3::/64", "2001:db8:3::/120", Some("/120"))
                .bgp(&["64520:100", "65000:7"], &["64520:1:2"], Some(200))
                .build(),
            virtual_group("db")
                .pool("198.51.100.0/24", "198.51.100.10-198.51.100.20", None)
                .bgp(&["64520:200"], &[], None)
                .build(),
        ]
    };
    let cases: Vec<(&str, &str, Vec<ServiceGroup>, bool, Vec<&str>, Vec<&str>)> = vec![
        (
            "no peers",
            "",
            vec![],
            false,
            vec![
                "router id 192.0.2.10;",
                "protocol direct ferrolb_direct {\n  ipv4;\n  ipv6;\n  interface \"kube-lb0\";\n}",
                "protocol kernel ferrolb_kernel4 {\n  ipv4 { import none; export none; };",
                "protocol kernel ferrolb_kernel6 {\n  ipv6 { import none; export none; };",
                "  if !ferrolb_virtual_ipv4() then reject;\n  reject;\n}",
            ],
            vec!["protocol bgp", "protocol bfd", "protocol ospf", "\n\n\n"],
        ),
        (
            "ebgp peer with bfd",
            EBGP_BFD,
            two_groups(),
            false,
            vec![
                "protocol bfd ferrolb_bfd {\n  interface \"*\" {\n    min rx interval 100 ms;\n    min tx interval 100 ms;",
                "    multiplier 3;",
                "protocol bgp peer_192_0_2_1 {\n  description \"ferrolb eBGP peer 192.0.2.1\";\n  local 192.0.2.10 as 64520;\n  neighbor 192.0.2.1 as 64512;\n  direct;\n  bfd on;\n",
                "  connect retry time 1;\n  error wait time 1, 5;\n",
                "  ipv4 {\n    import none;\n    export filter ferrolb_export_ipv4;\n  };\n}",
            ],
            vec!["next hop self", "65535,0"],
        ),
        (
            "ibgp peer",
            "localASN: 64520\npeers:\n  - address: 192.0.2.2\n    asn: 64520\n    holdTime: 9s\n    keepaliveTime: 3s\n",
            two_groups(),
            false,
            vec![
                "description \"ferrolb iBGP peer 192.0.2.2\"",
                "  hold time 9;\n  keepalive time 3;\n",
                "    next hop self;\n",
            ],
            vec!["bfd on", "protocol bfd"],
        ),
        (
            "ipv6 peer",
            "localASN: 64520\npeers:\n  - address: 2001:db8:1::1\n    asn: 64512\n    bfd: true\n",
            two_groups(),
            false,
            vec![
                "protocol bgp peer_2001_db8_1__1 {",
                "  local 2001:db8:1::10 as 64520;\n  neighbor 2001:db8:1::1 as 64512;",
                "  ipv6 {\n    import none;\n    export filter ferrolb_export_ipv6;",
                "  if net ~ [ 2001:db8:3::/64{120,120} ] then {\n    bgp_community.add((64520,100));",
            ],
            vec![],
        ),
        (
            "multihop peer with bfd",
            "localASN: 64520\npeers:\n  - address: 198.51.100.1\n    asn: 64512\n    multihop: 3\n    bfd: true\n    name: upstream\n",
            vec![],
            false,
            vec![
                "protocol bgp upstream {",
                "  multihop 3;\n",
                "  multihop {\n",
            ],
            vec!["  direct;"],
        ),
        (
            "ospf variant",
            "ospf:\n  enabled: true\n  interfaces: [eth0]\n  hello: 1s\n  dead: 3s\n  bfd: true\n",
            two_groups(),
            false,
            vec![
                "protocol ospf v2 ferrolb_ospf {\n  ipv4 {\n    import none;\n    export where ferrolb_virtual_ipv4();",
                "  area 0 {\n    interface \"kube-lb0\" {\n      stub yes;\n      cost 10;\n    };",
                "    interface \"eth0\" {\n      hello 1;\n      dead 3;\n      bfd yes;\n    };",
                "protocol bfd ferrolb_bfd",
            ],
            vec!["protocol bgp"],
        ),
        (
            "several groups with communities, large communities and local pref",
            EBGP_BFD,
            two_groups(),
            false,
            vec![
                // Sorted by name: db before web.
                "  # ServiceGroup db\n  if net ~ [ 198.51.100.0/24{24,24} ] then {\n    bgp_community.add((64520,200));\n    accept;\n  }\n  # ServiceGroup web\n",
                "  if net ~ [ 203.0.113.0/25{28,28} ] then {\n    bgp_community.add((64520,100));\n    bgp_community.add((65000,7));\n    bgp_large_community.add((64520,1,2));\n    bgp_local_pref = 200;\n    accept;\n  }",
                "  if source != RTS_DEVICE || ifname != \"kube-lb0\" then return false;\n  if net ~ [ 198.51.100.0/24{24,24} ] then return true;\n  if net ~ [ 203.0.113.0/25{28,28} ] then return true;\n  return false;",
            ],
            vec![],
        ),
        (
            "draining adds the graceful-shutdown community to every export",
            EBGP_BFD,
            two_groups(),
            true,
            vec![
                "    bgp_community.add((64520,200));\n    bgp_community.add((65535,0));\n    bgp_local_pref = 0;\n    accept;",
                "    bgp_local_pref = 200;\n    bgp_community.add((65535,0));\n    bgp_local_pref = 0;\n    accept;",
            ],
            vec![],
        ),
    ];
    for (name, values, groups, draining, want, not_want) in cases {
        let got =
            desired(&snapshot(values, groups), draining).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(got.warnings.is_empty(), "{name}: {:?}", got.warnings);
        for w in want {
            assert!(
                got.config.contains(w),
                "{name}: {w:?} not in\n{}",
                got.config
            );
        }
        for w in not_want {
            assert!(!got.config.contains(w), "{name}: {w:?} in\n{}", got.config);
        }
        if let Err(e) = bird_parses(&got.config, name) {
            panic!("{name}: bird -p refused:\n{e}\n{}", got.config);
        }
    }
}

#[test]
fn bad_inputs_are_errors_or_warnings() {
    let bad_group = virtual_group("bad")
        .pool("203.0.113.5/24", "203.0.113.5/32", None)
        .pool("203.0.113.0/24", "203.0.113.0/28", Some("/20"))
        .pool("198.51.100.0/24", "198.51.100.0/28", Some("/28"))
        .bgp(&["70000:1", "1:2"], &["1:2"], None)
        .build();
    let got = desired(&snapshot("", vec![bad_group]), false).expect("renders without them");
    assert_eq!(got.warnings.len(), 4, "{:?}", got.warnings);
    assert!(
        got.config.contains("bgp_community.add((1,2));"),
        "{}",
        got.config
    );
    assert!(!got.config.contains("203.0.113"), "{}", got.config);

    let errors: &[(&str, &str, &str, &str)] = &[
        (
            "peer without an AS of our own",
            "peers: [{address: 192.0.2.1, asn: 1}]",
            crate::decide::DEFAULT_TEMPLATE,
            "localASN",
        ),
        (
            "bad peer name",
            "localASN: 1\npeers: [{address: 192.0.2.1, asn: 1, name: 'a-b'}]",
            crate::decide::DEFAULT_TEMPLATE,
            "name",
        ),
        (
            "ospf without interfaces",
            "ospf: {enabled: true}",
            crate::decide::DEFAULT_TEMPLATE,
            "ospf.interfaces",
        ),
        (
            "template syntax",
            "",
            "router id {{ router_id ;\n",
            "template",
        ),
        (
            "unknown variable",
            "",
            "router id {{ routerid }};\n",
            "undefined",
        ),
    ];
    for (name, values, template, needle) in errors {
        let mut s = snapshot(values, vec![]);
        s.template = template.to_string();
        let err = desired(&s, false).expect_err(name).to_string();
        assert!(err.contains(needle), "{name}: {err}");
    }
    let mut v6_only = snapshot("", vec![]);
    v6_only.node.addresses.retain(IpAddr::is_ipv6);
    let err = desired(&v6_only, false)
        .expect_err("no router id")
        .to_string();
    assert!(err.contains("routerID"), "{err}");
}
