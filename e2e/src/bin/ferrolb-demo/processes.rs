//! `ferrolb-demo --processes`: the earlier demo, without kubelets: ferrolb's binaries run as
//! processes (the allocator on the host, agent and bird-sidecar with BIRD in each node
//! namespace) and a TCP responder in each node stands in for kube-proxy and a pod. It starts in
//! seconds and needs no images.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_e2e::world::{RESPONDER_PORT, World};

use crate::{heading, show_cmd};

pub async fn run() -> anyhow::Result<()> {
    heading("1. A real control plane, 3 node namespaces on a LAN, an FRR ToR and a client");
    let started = Instant::now();
    let world = World::start("demo", 3).await?;
    println!(
        "ready in {:.1} s: kube-apiserver on https://198.18.0.1:{}; nodes {}; ferrolb-allocator on the host; ferrolb-agent, bird-sidecar and BIRD in each node namespace",
        started.elapsed().as_secs_f64(),
        world.cp.port(),
        world.names.join(", ")
    );

    heading("2. Address pools (ServiceGroups) and two Services");
    show_cmd("kubectl apply -f docs/examples/servicegroups.yaml -f docs/examples/services.yaml");
    print!(
        "{}",
        world.kubectl(&[
            "apply",
            "-f",
            "docs/examples/servicegroups.yaml",
            "-f",
            "docs/examples/services.yaml"
        ])
    );
    let web = addresses(&world, "web").await?;
    let api = addresses(&world, "api").await?;
    show_cmd("kubectl get servicegroups");
    print!("{}", world.kubectl(&["get", "servicegroups"]));
    show_cmd("kubectl get services");
    print!("{}", world.kubectl(&["get", "services"]));

    heading("3. Where each address lives, as ferrolb explains it");
    println!(
        "kubectl ferrolb where reads only the Kubernetes API (Services, ServiceGroups, Nodes, the\n\
         agents' per-node Leases) and runs the agents' own election to say who holds a local\n\
         address and why every other node does not; a virtual address is on every eligible node."
    );
    let web_v4 = web[0];
    world
        .wait(
            "the local address on a node",
            Duration::from_secs(30),
            |w| (!w.holders(web_v4).is_empty()).then_some(()),
        )
        .await?;
    settled(&world, "web", None).await;
    for svc in ["web", "api"] {
        show_cmd(&format!("kubectl ferrolb where {svc}"));
        print!("{}", world.ferrolb(&["where", svc]));
    }
    show_cmd("kubectl ferrolb nodes");
    print!("{}", world.ferrolb(&["nodes"]));

    heading("4. A local address is a secondary address on the holder's LAN interface");
    let mut shown = Vec::new();
    for &addr in &web {
        for i in world.holders(addr) {
            if shown.contains(&i) {
                continue;
            }
            shown.push(i);
            let ns = world.topo.node(i).ns_name().to_string();
            show_cmd(&format!(
                "ip -n {ns} addr show dev eth0    # {}, holder of {addr}",
                world.names[i]
            ));
            print!(
                "{}",
                world.in_ns(&ns, &["ip", "addr", "show", "dev", "eth0"])
            );
        }
    }

    heading("5. Virtual addresses: kube-lb0 on every node, exported by BIRD, ECMP on the ToR");
    println!(
        "Each node carries the routed addresses on kube-lb0 with the group's aggregation mask;\n\
         BIRD exports the prefix over BGP and the ToR (FRR) spreads traffic over all nodes."
    );
    for i in 0..world.names.len() {
        let ns = world.topo.node(i).ns_name().to_string();
        show_cmd(&format!(
            "ip -n {ns} addr show dev kube-lb0    # {}",
            world.names[i]
        ));
        print!(
            "{}",
            world.in_ns(&ns, &["ip", "addr", "show", "dev", "kube-lb0"])
        );
    }
    let first = world.topo.node(0).ns_name().to_string();
    let socket = world.bird_socket(0).display().to_string();
    show_cmd(&format!(
        "ip netns exec {first} birdc -s {socket} show route"
    ));
    print!(
        "{}",
        world.in_ns(&first, &["birdc", "-s", &socket, "show", "route"])
    );
    let agg = "203.0.113.0/28";
    world
        .wait("the ToR's ECMP route", Duration::from_secs(30), |w| {
            (w.frr.route_nexthops(agg).ok()?.len() == w.names.len()).then_some(())
        })
        .await
        .ok();
    for (show, prefix) in [("ip", agg), ("ipv6", "2001:db8:5::/64")] {
        show_cmd(&format!(
            "vtysh -c 'show {show} route {prefix}'    # on the ToR"
        ));
        print!(
            "{}",
            world
                .frr
                .vtysh(&[&format!("show {show} route {prefix}")])
                .unwrap_or_default()
        );
    }

    heading("6. Requests from the client namespace, through each address");
    println!("Every node runs a tiny HTTP responder standing in for kube-proxy and a pod.");
    let client = world.topo.client_ns().unwrap_or_default().to_string();
    for (svc, addr) in web
        .iter()
        .map(|a| ("web", *a))
        .chain(api.iter().map(|a| ("api", *a)))
    {
        let url = url(addr);
        show_cmd(&format!("ip netns exec {client} curl -s {url}    # {svc}"));
        print!(
            "{}",
            world.in_ns(&client, &["curl", "-s", "--max-time", "3", &url])
        );
    }

    heading("7. Failover: the holder's agent is killed (SIGKILL)");
    failover(world, web_v4).await
}

async fn failover(mut world: World, addr: IpAddr) -> anyhow::Result<()> {
    let holders = world.holders(addr);
    let Some(&old) = holders.first() else {
        anyhow::bail!("{addr} is on no node");
    };
    println!("{addr} is on {}; killing its agent", world.names[old]);
    let killed = Instant::now();
    if let Some(mut agent) = world.agents[old].take() {
        agent.stop(Duration::ZERO);
    }
    let others = world
        .wait(
            "another node to take the address",
            Duration::from_secs(30),
            |w| {
                let h: Vec<usize> = w.holders(addr).into_iter().filter(|i| *i != old).collect();
                (!h.is_empty()).then_some(h)
            },
        )
        .await?;
    let took = killed.elapsed();
    println!(
        "{} took over {addr} {:.0} ms after the kill; {}'s own copy lingers until its lifetime (5 s) ends",
        world.names[others[0]],
        took.as_secs_f64() * 1e3,
        world.names[old]
    );
    let client = world.topo.client_ns().unwrap_or_default().to_string();
    show_cmd(&format!("ip netns exec {client} curl -s {}", url(addr)));
    print!(
        "{}",
        world.in_ns(&client, &["curl", "-s", "--max-time", "3", &url(addr)])
    );
    println!(
        "\nThe dead agent's per-node Lease stays fresh for up to 15 s, so until it expires the\n\
         Kubernetes API still shows {} as alive; kubectl ferrolb where then shows the new holder:",
        world.names[old]
    );
    settled(&world, "web", Some(&world.names[old])).await;
    show_cmd("kubectl ferrolb where web");
    print!("{}", world.ferrolb(&["where", "web"]));
    if let Some(secs) = std::env::var("FERROLB_DEMO_PAUSE")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        println!("pausing {secs} s before teardown (FERROLB_DEMO_PAUSE)");
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    heading("Done: tearing everything down");
    drop(world);
    Ok(())
}

/// Waits (bounded, 30 s) until `kubectl ferrolb where` finds every local address of `svc` held
/// by exactly the node the election picks, and not by `not` (a node whose agent was killed).
async fn settled(world: &World, svc: &str, not: Option<&str>) {
    let ok = world
        .wait("the Leases to settle", Duration::from_secs(30), |w| {
            let json: serde_json::Value =
                serde_json::from_str(&w.ferrolb(&["where", svc, "-o", "json"])).ok()?;
            crate::settled(&json, not).then_some(())
        })
        .await;
    if let Err(e) = ok {
        println!("(not settled: {e})");
    }
}

/// Waits for a Service's addresses (bounded) and returns them.
async fn addresses(world: &World, svc: &str) -> anyhow::Result<Vec<IpAddr>> {
    world
        .wait(
            &format!("addresses for Service {svc}"),
            Duration::from_secs(30),
            |w| {
                let text = w.kubectl(&[
                    "get",
                    "service",
                    svc,
                    "-o",
                    "jsonpath={.status.loadBalancer.ingress[*].ip}",
                ]);
                let ips: Vec<IpAddr> = text
                    .split_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .collect();
                (ips.len() == 2).then_some(ips)
            },
        )
        .await
}

fn url(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => format!("http://{a}:{RESPONDER_PORT}/"),
        IpAddr::V6(a) => format!("http://[{a}]:{RESPONDER_PORT}/"),
    }
}
