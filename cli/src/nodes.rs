//! `kubectl ferrolb nodes`: per node, whether its agent is alive (per-node Lease fresh), its
//! local interfaces and subnets, whether it may hold local addresses, and what it holds.

use serde::Serialize;

use crate::cluster::Cluster;
use crate::locate::reason_text;
use crate::table;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRow {
    pub node: String,
    pub alive: bool,
    /// `renewed 3s ago`, `Lease expired 1m2s ago`, `no Lease`, `no Node object`.
    pub liveness: String,
    pub lbnodeagent: Option<String>,
    pub interface_v4: Option<String>,
    pub interface_v6: Option<String>,
    pub subnets: Vec<String>,
    /// `yes`, or `no: <reason> (<cause>)`, as the agent publishes it.
    pub eligible: String,
    pub holding: Vec<String>,
    pub holding_truncated: bool,
    pub virtual_count: Option<u64>,
}

pub fn report(cluster: &Cluster) -> Vec<NodeRow> {
    cluster
        .node_names()
        .into_iter()
        .map(|name| {
            let node = cluster.nodes.get(name);
            let lease = cluster.leases.get(name);
            let liveness = match (node, lease) {
                (None, _) => "no Node object".to_string(),
                (Some(_), Some(l)) if l.alive(cluster.now) => match l.renewed {
                    Some(r) if r > cluster.now => "renewed just now".to_string(),
                    Some(r) => format!(
                        "renewed {} ago",
                        crate::cluster::human(cluster.now.duration_since(r))
                    ),
                    None => "alive".to_string(),
                },
                (Some(_), _) => cluster.not_alive_why(name),
            };
            let eligible = match lease {
                None => "-".to_string(),
                Some(l) => match (l.ineligible, &l.eligible_text) {
                    (_, None) => "not published".to_string(),
                    (None, Some(_)) => "yes".to_string(),
                    (Some(r), Some(_)) => format!("no: {}", reason_text(r)),
                },
            };
            NodeRow {
                node: name.to_string(),
                alive: cluster.alive(name),
                liveness,
                lbnodeagent: node
                    .and_then(|n| cluster.agent_for(n))
                    .map(|(a, selected)| {
                        if selected {
                            a.to_string()
                        } else {
                            format!("{a} (not selected)")
                        }
                    }),
                interface_v4: lease.and_then(|l| l.interface_v4.clone()),
                interface_v6: lease.and_then(|l| l.interface_v6.clone()),
                subnets: lease
                    .map(|l| l.subnets.iter().map(|s| s.to_string()).collect())
                    .unwrap_or_default(),
                eligible,
                holding: lease
                    .map(|l| l.holding.iter().map(|a| a.to_string()).collect())
                    .unwrap_or_default(),
                holding_truncated: lease.is_some_and(|l| l.holding_truncated),
                virtual_count: lease.and_then(|l| l.virtual_count),
            }
        })
        .collect()
}

pub fn render(rows: &[NodeRow]) -> String {
    if rows.is_empty() {
        return "no Nodes and no per-node Leases\n".into();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let ifaces = match (&r.interface_v4, &r.interface_v6) {
                (None, None) => "-".to_string(),
                (Some(a), Some(b)) if a == b => a.clone(),
                (Some(a), None) => format!("v4 {a}"),
                (None, Some(b)) => format!("v6 {b}"),
                (Some(a), Some(b)) => format!("v4 {a} v6 {b}"),
            };
            let mut holding = if r.holding.is_empty() {
                "-".to_string()
            } else {
                r.holding.join(" ")
            };
            if r.holding_truncated {
                holding.push_str(" ...(truncated)");
            }
            vec![
                r.node.clone(),
                if r.alive { "yes" } else { "no" }.to_string(),
                r.liveness.clone(),
                r.eligible.clone(),
                r.lbnodeagent.clone().unwrap_or_else(|| "-".into()),
                ifaces,
                if r.subnets.is_empty() {
                    "-".into()
                } else {
                    r.subnets.join(" ")
                },
                holding,
                r.virtual_count.map_or("-".into(), |v| v.to_string()),
            ]
        })
        .collect();
    table::render(
        &[
            "NODE",
            "ALIVE",
            "LEASE",
            "ELIGIBLE",
            "LBNODEAGENT",
            "INTERFACE",
            "SUBNETS",
            "HOLDS (LOCAL)",
            "VIRTUAL",
        ],
        &cells,
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::SignedDuration;

    use super::*;
    use crate::testkit::*;

    #[test]
    fn liveness_eligibility_and_holdings_per_node() {
        let mut dead = node("b", "false,not-ready", &[]);
        dead.1.expires = Some(now() - SignedDuration::from_secs(65));
        let mut c = cluster(vec![], vec![node("a", "true", &["192.0.2.100"]), dead]);
        c.nodes.insert(
            "c".into(),
            crate::cluster::NodeInfo {
                name: "c".into(),
                ..Default::default()
            },
        );
        let rows = report(&c);
        let names: Vec<&str> = rows.iter().map(|r| r.node.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(rows[0].alive);
        assert_eq!(rows[0].liveness, "renewed 2s ago");
        assert_eq!(rows[0].holding, ["192.0.2.100"]);
        assert!(!rows[1].alive);
        assert_eq!(rows[1].liveness, "Lease expired 1m5s ago");
        assert!(rows[1].eligible.starts_with("no: not-ready"));
        assert_eq!(rows[2].liveness, "no per-node Lease (no agent)");
        let text = render(&rows);
        assert!(text.starts_with("NODE  ALIVE"), "{text}");
    }
}
