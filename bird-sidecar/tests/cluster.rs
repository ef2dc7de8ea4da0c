//! The sidecar against the test API server, from a node namespace: it renders the virtual
//! ServiceGroups it watches with its Node's address, re-renders when a group changes, and
//! records `RouterConfigApplied` / `RouterConfigRejected` Events on its Node.

mod common;

use std::time::Duration;

use common::write;
use ferrolb_api::ServiceGroup;
use ferrolb_api::contracts::{CLUSTER_EVENTS_NAMESPACE, reason};
use ferrolb_api::servicegroup::{BgpAttributes, Pool, ServiceGroupSpec, VirtualSpec};
use ferrolb_bird_sidecar::decide::DEFAULT_TEMPLATE;
use ferrolb_e2e::controlplane::{ControlPlane, unique_name};
use ferrolb_e2e::env::require_root;
use ferrolb_e2e::kubelet::create_node;
use ferrolb_e2e::topology::{Process, Topology, wait_for};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

const WAIT: Duration = Duration::from_secs(30);

fn group(name: &str, community: &str) -> ServiceGroup {
    ServiceGroup::new(
        name,
        ServiceGroupSpec {
            virtual_: Some(VirtualSpec {
                v4pools: vec![Pool {
                    subnet: "203.0.113.0/25".into(),
                    pool: "203.0.113.0/26".into(),
                    aggregation: Some("/28".into()),
                }],
                v6pools: vec![],
                bgp: Some(BgpAttributes {
                    communities: vec![community.into()],
                    ..BgpAttributes::default()
                }),
            }),
            auto_assign: Some(true),
            ..ServiceGroupSpec::default()
        },
    )
}

/// Notes of the Events with `reason` about Node `node`.
async fn events(client: &Client, node: &str, reason: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), CLUSTER_EVENTS_NAMESPACE);
    let list = api
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    list.into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter(|e| {
            // As `kubectl describe node` looks for them: by name and uid, no namespace.
            e.regarding.as_ref().is_some_and(|r| {
                r.name.as_deref() == Some(node) && r.uid.is_some() && r.namespace.is_none()
            })
        })
        .map(|e| e.note.unwrap_or_default())
        .collect()
}

/// Polls (async) until `probe` yields, at most `WAIT`.
async fn until<T, Fut: Future<Output = Option<T>>>(
    what: &str,
    sidecar: &Process,
    mut probe: impl FnMut() -> Fut,
) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            start.elapsed() < WAIT,
            "timed out waiting for {what}\n{}",
            sidecar.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renders_watched_groups_and_records_events_on_its_node() {
    if !require_root() {
        return;
    }
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    let client = cp.client().await.expect("client");
    let topo = Topology::builder("kcl")
        .nodes(1)
        .management(true)
        .build()
        .expect("build");
    let node = topo.node(0);
    let node_name = unique_name("bsc-node");
    create_node(&client, &node_name, &[node.lan_v4().into()], &[], true)
        .await
        .expect("create Node");
    let group_name = unique_name("bsc-web");
    let groups: Api<ServiceGroup> = Api::all(client.clone());
    groups
        .create(&PostParams::default(), &group(&group_name, "64520:100"))
        .await
        .expect("create ServiceGroup");

    let dir = topo.dir().join("sidecar");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let template = dir.join("bird.conf.tmpl");
    write(&template, DEFAULT_TEMPLATE);
    let config = dir.join("bird.conf");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bird-sidecar"));
    cmd.arg("--node-name")
        .arg(&node_name)
        .arg("--kubeconfig")
        .arg(cp.management_kubeconfig())
        .arg("--template")
        .arg(&template)
        .arg("--config-path")
        .arg(&config)
        .arg("--socket")
        .arg(dir.join("bird.ctl"))
        .arg("--drain")
        .arg("200ms")
        .arg("--poll-interval")
        .arg("500ms")
        .arg("--metrics-addr")
        .arg("127.0.0.1:9472");
    let mut sidecar = topo
        .spawn_in(node.ns_name(), &cmd)
        .expect("start bird-sidecar");

    let read = || std::fs::read_to_string(&config).unwrap_or_default();
    until("the group's config", &sidecar, || async {
        let c = read();
        (c.contains("203.0.113.0/25{28,28}") && c.contains("(64520,100)")).then_some(())
    })
    .await;
    assert!(
        read().contains(&format!("router id {};", node.lan_v4())),
        "{}",
        read()
    );
    until(
        "a RouterConfigApplied Event on the Node",
        &sidecar,
        || async {
            let notes = events(&client, &node_name, reason::ROUTER_CONFIG_APPLIED).await;
            (!notes.is_empty()).then_some(())
        },
    )
    .await;

    let patch = serde_json::json!({"spec": {"virtual": {"bgp": {"communities": ["64520:300"]}}}});
    groups
        .patch(&group_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch ServiceGroup");
    until("the changed community in the config", &sidecar, || async {
        read().contains("(64520,300)").then_some(())
    })
    .await;

    let applied = read();
    write(&template, "router id {{ no_such_fact }};\n");
    let note = until(
        "a RouterConfigRejected Event on the Node",
        &sidecar,
        || async {
            events(&client, &node_name, reason::ROUTER_CONFIG_REJECTED)
                .await
                .pop()
        },
    )
    .await;
    assert!(
        note.contains("no_such_fact") || note.contains("undefined"),
        "{note}"
    );
    assert!(
        note.contains("previous config"),
        "the note says what happens next: {note}"
    );
    assert_eq!(read(), applied, "a rejected config is never written");

    sidecar.signal("TERM").expect("SIGTERM");
    let status = wait_for("the sidecar to exit", WAIT, || Ok(sidecar.exit_status()))
        .unwrap_or_else(|e| panic!("{e}\n{}", sidecar.log()));
    assert!(status.success(), "{status}\n{}", sidecar.log());

    let _ = groups.delete(&group_name, &DeleteParams::default()).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let _ = nodes.delete(&node_name, &DeleteParams::default()).await;
}
