//! The test control plane itself: it starts, serves the CRDs, deletes namespaces, and refuses
//! every catalogued bad object with a message naming the field.

use ferrolb_e2e::catalogue;
use ferrolb_e2e::controlplane::{ControlPlane, delete_namespace};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, PostParams};

#[tokio::test]
async fn serves_dual_stack_services_and_ferrolb_crds() {
    let Some(cp) = ControlPlane::shared().await else { return };
    let ns = cp.namespace("dual-stack").await.expect("namespace");
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "web" },
        "spec": { "type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack",
                  "ports": [ { "port": 80 } ] }
    }))
    .expect("service");
    let api: Api<Service> = Api::namespaced(ns.client(), ns.name());
    let created = api.create(&PostParams::default(), &svc).await.expect("create");
    let ips = created.spec.and_then(|s| s.cluster_ips).unwrap_or_default();
    assert_eq!(ips.len(), 2, "a dual-stack Service gets two cluster IPs: {ips:?}");
    assert!(ips[0].starts_with("198.19."), "{ips:?}");
    assert!(ips[1].starts_with("fd00:198:19::"), "{ips:?}");
    let out = cp.kubectl().args(["get", "servicegroups,lbnodeagents"]).output().expect("kubectl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn deletes_namespaces_with_their_contents() {
    let Some(cp) = ControlPlane::shared().await else { return };
    let client = cp.client().await.expect("client");
    let ns = cp.namespace("ns-delete").await.expect("namespace");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns.name());
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("x".into());
    cms.create(&PostParams::default(), &cm).await.expect("configmap");
    delete_namespace(&client, ns.name()).await.expect("the namespace controller deletes it");
}

#[tokio::test]
async fn refuses_every_catalogued_bad_object_naming_the_field() {
    let Some(cp) = ControlPlane::shared().await else { return };
    let mut failures = Vec::new();
    for (i, case) in catalogue::bad().iter().enumerate().filter(|(_, c)| c.refused_by_server()) {
        let name = format!("bad-{}-{i}", std::process::id());
        let object = serde_json::to_string(&case.object(&name)).expect("json");
        let out = kubectl_create(cp, &object);
        let expect = case.expect.as_deref().expect("expect");
        if out.0 {
            failures.push(format!("{}: accepted", case.name));
            let _ = cp.kubectl().args(["delete", &case.kind.to_lowercase(), &name]).output();
        } else if !out.1.contains(expect) {
            failures.push(format!("{}: want {expect:?} in {:?}", case.name, out.1));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[tokio::test]
async fn accepts_every_catalogued_good_object() {
    let Some(cp) = ControlPlane::shared().await else { return };
    for (i, case) in catalogue::good().iter().enumerate() {
        let name = format!("good-{}-{i}", std::process::id());
        let object = serde_json::to_string(&case.object(&name)).expect("json");
        let (ok, stderr) = kubectl_create(cp, &object);
        assert!(ok, "{}: {stderr}", case.name);
        let _ = cp.kubectl().args(["delete", &case.kind.to_lowercase(), &name]).output();
    }
}

/// `kubectl create -f -` (strict field validation, as users get it): (accepted, stderr).
fn kubectl_create(cp: &ControlPlane, object: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = cp
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    child.stdin.take().expect("stdin").write_all(object.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("kubectl");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
}
