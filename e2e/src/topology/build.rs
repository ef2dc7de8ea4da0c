//! Building a topology (namespaces, bridges, veths, addresses, routes) and tearing it down.

use std::sync::Mutex;

use super::exec::{ip_batch, run, sysctl};
use super::node::{Node, mac};
use super::{
    CLIENT_IF, CLIENT_V4, CLIENT_V6, Error, LAN_BRIDGE, LAN_V4_PREFIX_LEN, LAN_V6_PREFIX_LEN,
    MAX_NODES, MGMT_BRIDGE, MGMT_HOST_V4, MGMT_PREFIX_LEN, NODE_LAN_IF, NODE_MGMT_IF, Result,
    TOR_CLIENT_IF, TOR_CLIENT_V4, TOR_CLIENT_V6, TOR_LAN_IF, TOR_LAN_V4, TOR_LAN_V6, TOR_PORT,
    Topology, claim,
};

/// The management bridge's own MAC (locally administered, outside the topologies' 02:fb:<slot>).
pub const MGMT_BRIDGE_MAC: &str = "02:fb:00:00:00:01";

/// Creates the shared management bridge `flbmgmt0` with 198.18.0.1/16 in the host namespace if
/// it is missing. Idempotent and safe when several processes call it at once.
pub fn ensure_management_bridge() -> Result<()> {
    let add = ip_batch(
        None,
        &[format!(
            "link add name {MGMT_BRIDGE} type bridge stp_state 0 mcast_snooping 0"
        )],
    );
    match add {
        Ok(_) => {}
        Err(Error::Command { output, .. }) if output.contains("File exists") => {}
        Err(e) => return Err(e),
    }
    // Management is IPv4 only; keep the host namespace free of link-local noise on it.
    disable_host_ipv6(MGMT_BRIDGE);
    let addr = format!("{MGMT_HOST_V4}/{MGMT_PREFIX_LEN}");
    run(&["ip", "addr", "replace", &addr, "dev", MGMT_BRIDGE])?;
    // A bridge without an address of its own takes the lowest MAC of its ports, which changes
    // whenever a topology comes or goes: the nodes' ARP entries for the API server would then
    // point at a MAC that is gone. A fixed MAC (no topology uses 02:fb:00:…) keeps them valid.
    run(&[
        "ip",
        "link",
        "set",
        "dev",
        MGMT_BRIDGE,
        "address",
        MGMT_BRIDGE_MAC,
    ])?;
    run(&["ip", "link", "set", "dev", MGMT_BRIDGE, "up"])?;
    Ok(())
}

fn disable_host_ipv6(ifname: &str) {
    let _ = std::fs::write(
        format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
        "1",
    );
}

/// What to build; see [`Topology::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    tag: String,
    nodes: usize,
    tor: bool,
    client: bool,
    management: bool,
}

impl Builder {
    pub(super) fn new(tag: &str) -> Builder {
        Builder {
            tag: tag.to_string(),
            nodes: 1,
            tor: false,
            client: false,
            management: false,
        }
    }

    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// A ToR namespace on the LAN (192.0.2.1 / 2001:db8:1::1) that forwards; run FRR in it with
    /// [`Topology::run_frr`].
    pub fn tor(mut self, on: bool) -> Self {
        self.tor = on;
        self
    }

    /// A client namespace behind the ToR (implies the ToR).
    pub fn client(mut self, on: bool) -> Self {
        self.client = on;
        self
    }

    /// A veth from every node to the shared management bridge.
    pub fn management(mut self, on: bool) -> Self {
        self.management = on;
        self
    }

    /// Removes leftovers of dead runs, claims a slot and builds. On error, whatever was built is
    /// removed again.
    pub fn build(self) -> Result<Topology> {
        if self.tag.len() > 4
            || !self
                .tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(Error::Invalid(format!(
                "topology tag {:?}: at most 4 characters of [a-z0-9] (interface names have 15)",
                self.tag
            )));
        }
        if self.nodes > MAX_NODES {
            return Err(Error::Invalid(format!(
                "{} nodes: at most {MAX_NODES}",
                self.nodes
            )));
        }
        let claim = claim::claim(&self.tag)?;
        let prefix = claim.prefix.clone();
        let slot = claim.slot;
        let dir = claim::tmp_dir(&prefix);
        let nodes = (0..self.nodes)
            .map(|i| Node::new(&prefix, slot, i, self.management))
            .collect();
        let with_tor = self.tor || self.client;
        let topo = Topology {
            lan_ns: format!("{prefix}-lan"),
            tor_ns: with_tor.then(|| format!("{prefix}-tor")),
            client_ns: self.client.then(|| format!("{prefix}-client")),
            prefix,
            slot,
            dir,
            nodes,
            partitioned: Mutex::new(Vec::new()),
            spawned: Mutex::new(0),
            claim: Some(claim),
        };
        topo.create()?;
        Ok(topo)
    }
}

impl Topology {
    fn create(&self) -> Result<()> {
        std::fs::create_dir_all(self.dir.join("logs")).map_err(|source| Error::Io {
            what: format!("creating {}", self.dir.display()),
            source,
        })?;
        if self.nodes.iter().any(|n| n.mgmt.is_some()) {
            ensure_management_bridge()?;
        }
        let mut add = vec![];
        for ns in self.namespaces() {
            add.push(format!("netns add {ns}"));
        }
        ip_batch(None, &add)?;

        // Sysctls first: `default` settings apply to interfaces created afterwards.
        const NO_DAD: [&str; 2] = [
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ];
        sysctl(
            &self.lan_ns,
            &[
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        )?;
        for node in &self.nodes {
            sysctl(&node.ns, &NO_DAD)?;
        }
        if let Some(tor) = &self.tor_ns {
            let mut settings = NO_DAD.to_vec();
            settings.extend(["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
            sysctl(tor, &settings)?;
        }
        if let Some(client) = &self.client_ns {
            sysctl(client, &NO_DAD)?;
        }

        self.create_lan()?;
        self.create_management()?;
        self.address_nodes()?;
        self.address_tor_and_client()
    }

    /// Addresses and routes inside the node namespaces: the default routes point at the ToR's
    /// LAN address whether or not a ToR runs; management gets its prefix route only.
    fn address_nodes(&self) -> Result<()> {
        for node in &self.nodes {
            let mut lines = vec![
                "link set dev lo up".to_string(),
                format!("link set dev {NODE_LAN_IF} up"),
                format!(
                    "addr add {}/{LAN_V4_PREFIX_LEN} dev {NODE_LAN_IF}",
                    node.lan_v4
                ),
                format!(
                    "addr add {}/{LAN_V6_PREFIX_LEN} dev {NODE_LAN_IF} nodad",
                    node.lan_v6
                ),
                format!("route add default via {TOR_LAN_V4} dev {NODE_LAN_IF}"),
                format!("route add default via {TOR_LAN_V6} dev {NODE_LAN_IF}"),
            ];
            if let Some((addr, _)) = &node.mgmt {
                lines.push(format!("link set dev {NODE_MGMT_IF} up"));
                lines.push(format!(
                    "addr add {addr}/{MGMT_PREFIX_LEN} dev {NODE_MGMT_IF}"
                ));
            }
            ip_batch(Some(&node.ns), &lines)?;
        }
        Ok(())
    }

    /// The ToR's LAN side, its link to the client, and the client's addresses and routes.
    fn address_tor_and_client(&self) -> Result<()> {
        let Some(tor) = &self.tor_ns else {
            return Ok(());
        };
        let mut lines = vec![
            "link set dev lo up".to_string(),
            format!("link set dev {TOR_LAN_IF} up"),
            format!("addr add {TOR_LAN_V4}/{LAN_V4_PREFIX_LEN} dev {TOR_LAN_IF}"),
            format!("addr add {TOR_LAN_V6}/{LAN_V6_PREFIX_LEN} dev {TOR_LAN_IF} nodad"),
        ];
        if let Some(client) = &self.client_ns {
            lines.extend([
                format!(
                    "link add name {TOR_CLIENT_IF} address {} type veth peer name {CLIENT_IF} \
                     address {} netns {client}",
                    mac(self.slot, 3, 2),
                    mac(self.slot, 4, 10)
                ),
                format!("link set dev {TOR_CLIENT_IF} up"),
                format!("addr add {TOR_CLIENT_V4}/24 dev {TOR_CLIENT_IF}"),
                format!("addr add {TOR_CLIENT_V6}/64 dev {TOR_CLIENT_IF} nodad"),
            ]);
        }
        ip_batch(Some(tor), &lines)?;
        let Some(client) = &self.client_ns else {
            return Ok(());
        };
        ip_batch(
            Some(client),
            &[
                "link set dev lo up".to_string(),
                format!("link set dev {CLIENT_IF} up"),
                format!("addr add {CLIENT_V4}/24 dev {CLIENT_IF}"),
                format!("addr add {CLIENT_V6}/64 dev {CLIENT_IF} nodad"),
                format!("route add default via {TOR_CLIENT_V4} dev {CLIENT_IF}"),
                format!("route add default via {TOR_CLIENT_V6} dev {CLIENT_IF}"),
            ],
        )
    }

    /// The LAN bridge and one veth per node (and the ToR), bridge ends in the LAN namespace.
    fn create_lan(&self) -> Result<()> {
        let mut lines = vec![
            format!("link add name {LAN_BRIDGE} type bridge stp_state 0 mcast_snooping 0"),
            format!("link set dev {LAN_BRIDGE} up"),
            "link set dev lo up".to_string(),
        ];
        let mut port = |name: &str, peer: &str, peer_mac: &str, ns: &str| {
            lines.push(format!(
                "link add name {name} type veth peer name {peer} address {peer_mac} netns {ns}"
            ));
            lines.push(format!("link set dev {name} master {LAN_BRIDGE}"));
            lines.push(format!("link set dev {name} up"));
        };
        for node in &self.nodes {
            port(
                &format!("n{}", node.index),
                NODE_LAN_IF,
                &node.mac,
                &node.ns,
            );
        }
        if let Some(tor) = &self.tor_ns {
            port(TOR_PORT, TOR_LAN_IF, &mac(self.slot, 3, 1), tor);
        }
        ip_batch(Some(&self.lan_ns), &lines)
    }

    /// One veth per node from the shared management bridge in the host namespace.
    fn create_management(&self) -> Result<()> {
        let with_mgmt: Vec<(&Node, &str)> = self
            .nodes
            .iter()
            .filter_map(|n| n.mgmt.as_ref().map(|(_, link)| (n, link.as_str())))
            .collect();
        let created: Vec<String> = with_mgmt
            .iter()
            .map(|(node, link)| {
                let host = u8::try_from(10 + node.index).expect("at most MAX_NODES nodes");
                format!(
                    "link add name {link} type veth peer name {NODE_MGMT_IF} address {} netns {}",
                    mac(self.slot, 2, host),
                    node.ns
                )
            })
            .collect();
        ip_batch(None, &created)?;
        let mut attach = vec![];
        for (_, link) in &with_mgmt {
            disable_host_ipv6(link);
            attach.push(format!("link set dev {link} master {MGMT_BRIDGE}"));
            attach.push(format!("link set dev {link} up"));
        }
        ip_batch(None, &attach)
    }

    fn teardown(&mut self) {
        if !self.claim.as_ref().is_some_and(|c| c.still_ours()) {
            eprintln!(
                "topology {}: its PID file no longer names this process; leaving its names alone",
                self.prefix
            );
            self.claim.take();
            return;
        }
        let namespaces: Vec<String> = self.namespaces().into_iter().map(str::to_string).collect();
        let existing = claim::list_namespaces().unwrap_or_default();
        // Containers of real nodes run in pod namespaces, from root filesystems under the dir.
        super::rooted::kill_processes_under(&self.dir);
        for ns in namespaces.iter().filter(|ns| existing.contains(ns)) {
            claim::kill_namespace_processes(ns);
        }
        // Deleting a veth end deletes its peer at once; a namespace is destroyed asynchronously,
        // so the host ends go first and explicitly.
        for node in &self.nodes {
            if let Some((_, link)) = &node.mgmt {
                claim::delete_link(link);
            }
        }
        for ns in namespaces.iter().filter(|ns| existing.contains(ns)) {
            if let Err(e) = run(&["ip", "netns", "del", ns]) {
                eprintln!("topology {}: {e}", self.prefix);
            }
        }
        if let Err(e) = super::rooted::release_dir(&self.dir) {
            eprintln!(
                "topology {}: removing {}: {e}",
                self.prefix,
                self.dir.display()
            );
        }
        // Last: only now may another run take the slot.
        self.claim.take();
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.teardown();
    }
}
