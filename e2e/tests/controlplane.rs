//! The test control plane itself: it starts, serves the CRDs, deletes namespaces, and refuses
//! every catalogued bad object with a message naming the field.

use ferrolb_e2e::catalogue;
use ferrolb_e2e::controlplane::{ControlPlane, delete_namespace};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, PostParams};

#[tokio::test]
async fn serves_dual_stack_services_and_ferrolb_crds() {
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    let ns = cp.namespace("dual-stack").await.expect("namespace");
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "web" },
        "spec": { "type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack",
                  "ports": [ { "port": 80 } ] }
    }))
    .expect("service");
    let api: Api<Service> = Api::namespaced(ns.client(), ns.name());
    let created = api
        .create(&PostParams::default(), &svc)
        .await
        .expect("create");
    let ips = created.spec.and_then(|s| s.cluster_ips).unwrap_or_default();
    assert_eq!(
        ips.len(),
        2,
        "a dual-stack Service gets two cluster IPs: {ips:?}"
    );
    assert!(ips[0].starts_with("198.19."), "{ips:?}");
    assert!(ips[1].starts_with("fd00:198:19::"), "{ips:?}");
    let out = cp
        .kubectl()
        .args(["get", "servicegroups,lbnodeagents"])
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn deletes_namespaces_with_their_contents() {
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    let client = cp.client().await.expect("client");
    let ns = cp.namespace("ns-delete").await.expect("namespace");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns.name());
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("x".into());
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("configmap");
    delete_namespace(&client, ns.name())
        .await
        .expect("the namespace controller deletes it");
}

#[tokio::test]
async fn refuses_every_catalogued_bad_object_naming_the_field() {
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    let mut failures = Vec::new();
    for (i, case) in catalogue::bad()
        .iter()
        .enumerate()
        .filter(|(_, c)| c.refused_by_server())
    {
        let name = format!("bad-{}-{i}", std::process::id());
        let object = serde_json::to_string(&case.object(&name)).expect("json");
        let out = kubectl_create(cp, &object);
        let expect = case.expect.as_deref().expect("expect");
        if out.0 {
            failures.push(format!("{}: accepted", case.name));
            let _ = cp
                .kubectl()
                .args(["delete", &case.kind.to_lowercase(), &name])
                .output();
        } else if !out.1.contains(expect) {
            failures.push(format!("{}: want {expect:?} in {:?}", case.name, out.1));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[tokio::test]
async fn accepts_every_catalogued_good_object() {
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    for (i, case) in catalogue::good().iter().enumerate() {
        let name = format!("good-{}-{i}", std::process::id());
        let object = serde_json::to_string(&case.object(&name)).expect("json");
        let (ok, stderr) = kubectl_create(cp, &object);
        assert!(ok, "{}: {stderr}", case.name);
        let _ = cp
            .kubectl()
            .args(["delete", &case.kind.to_lowercase(), &name])
            .output();
    }
}

/// `kubectl create -f -` (strict field validation, as users get it): (accepted, output).
fn kubectl_create(cp: &ControlPlane, object: &str) -> (bool, String) {
    cp.kubectl_with_input(&["create", "-f", "-"], object)
}

#[tokio::test]
async fn kubelet_helpers_write_nodes_and_endpoint_slices() {
    use ferrolb_e2e::kubelet::{Backend, create_node, set_node_ready, write_endpoints};
    use k8s_openapi::api::core::v1::Node;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    let ns = cp.namespace("kubelet").await.expect("namespace");
    let client = ns.client();
    let node = format!("{}-n0", ns.name());
    let addrs = [
        "192.0.2.10".parse().expect("ip"),
        "2001:db8:1::a".parse().expect("ip"),
    ];
    create_node(&client, &node, &addrs, &[("role", "edge")], true)
        .await
        .expect("node");
    let ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| {
                c.iter()
                    .find(|c| c.type_ == "Ready")
                    .map(|c| c.status.clone())
            })
    };
    let nodes: Api<Node> = Api::all(client.clone());
    let got = nodes.get(&node).await.expect("get node");
    assert_eq!(ready(&got).as_deref(), Some("True"));
    let internal: Vec<String> = got
        .status
        .and_then(|s| s.addresses)
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.type_ == "InternalIP")
        .map(|a| a.address)
        .collect();
    assert_eq!(internal, vec!["192.0.2.10", "2001:db8:1::a"]);
    set_node_ready(&client, &node, false)
        .await
        .expect("not ready");
    assert_eq!(
        ready(&nodes.get(&node).await.expect("get")).as_deref(),
        Some("False")
    );

    write_endpoints(
        &client,
        ns.name(),
        "web",
        8080,
        &[
            Backend::ready(&node, "10.244.0.5"),
            Backend::ready(&node, "fd00:10:244::5"),
        ],
    )
    .await
    .expect("endpoints");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns.name());
    let list = slices
        .list(&kube::api::ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .expect("list");
    assert_eq!(list.items.len(), 2);
    assert!(list.items.iter().all(|s| {
        s.endpoints
            .as_ref()
            .is_some_and(|e| e[0].node_name.as_deref() == Some(node.as_str()))
    }));
    nodes
        .delete(&node, &Default::default())
        .await
        .expect("delete node");
}
