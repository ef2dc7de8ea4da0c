//! `kubectl ferrolb version`: this plugin's version and, when the cluster answers, the API
//! server's and the images the allocator Deployment and the agent DaemonSet run.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::table;

/// The label the chart puts on each component's workload (`allocator`, `agent`); the names
/// follow `fullnameOverride`, this label does not.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// The chart's appVersion, on every object it renders.
pub const VERSION_LABEL: &str = "app.kubernetes.io/version";

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionReport {
    pub client: ClientVersion,
    /// Absent with `--client`, or when the cluster could not be reached.
    pub server: Option<ServerVersion>,
    /// The allocator and the agent as installed, from their Deployment and DaemonSet.
    pub components: Vec<Component>,
    /// Why the cluster's side is missing or partial (the table shows them on standard error).
    pub errors: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientVersion {
    pub version: String,
    /// `git describe` of the checkout it was built from, when built from one.
    pub git: Option<String>,
}

impl ClientVersion {
    pub fn this_binary() -> Self {
        ClientVersion {
            version: env!("CARGO_PKG_VERSION").to_string(),
            git: option_env!("FERROLB_GIT_DESCRIBE").map(str::to_string),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerVersion {
    /// The API server's `gitVersion` (`v1.36.0`).
    pub version: String,
    pub platform: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// `allocator` or `agent`.
    pub component: String,
    /// `Deployment/<name>` or `DaemonSet/<name>`.
    pub workload: String,
    /// The image of each container, `container=image`.
    pub images: Vec<String>,
    /// The tags of those images, deduplicated (what "the version running" means to a person).
    pub versions: Vec<String>,
    /// `ready/desired` pods.
    pub ready: String,
    /// Pods not yet on the current template (a rollout in progress).
    pub outdated: i32,
}

/// The tag of an image reference (`repo/name:tag`, `name@sha256:...` gives the digest's first
/// 12 hex digits), or `latest` when it names none, as the container runtime would pull it.
pub fn image_tag(image: &str) -> String {
    if let Some((_, digest)) = image.split_once('@') {
        let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
        return format!("@{}", &hex[..hex.len().min(12)]);
    }
    let name = image.rsplit('/').next().unwrap_or(image);
    match name.split_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag.to_string(),
        _ => "latest".to_string(),
    }
}

fn images(template: &PodTemplateSpec) -> (Vec<String>, Vec<String>) {
    let containers = template
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let images: Vec<String> = containers
        .iter()
        .map(|c| format!("{}={}", c.name, c.image.as_deref().unwrap_or("?")))
        .collect();
    let mut versions: Vec<String> = Vec::new();
    for c in containers {
        let tag = image_tag(c.image.as_deref().unwrap_or_default());
        if !versions.contains(&tag) {
            versions.push(tag);
        }
    }
    (images, versions)
}

fn component_of(labels: Option<&std::collections::BTreeMap<String, String>>) -> String {
    labels
        .and_then(|l| l.get(COMPONENT_LABEL))
        .cloned()
        .unwrap_or_default()
}

/// The components, allocator first, from the Deployments and DaemonSets the chart labelled.
pub fn components(deployments: &[Deployment], daemonsets: &[DaemonSet]) -> Vec<Component> {
    let deployments = deployments.iter().map(|d| {
        let status = d.status.clone().unwrap_or_default();
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        component(
            "Deployment",
            &d.metadata,
            d.spec.as_ref().map(|s| &s.template),
            (status.ready_replicas.unwrap_or(0), desired),
            status.replicas.unwrap_or(0) - status.updated_replicas.unwrap_or(0),
        )
    });
    let daemonsets = daemonsets.iter().map(|d| {
        let status = d.status.clone().unwrap_or_default();
        component(
            "DaemonSet",
            &d.metadata,
            d.spec.as_ref().map(|s| &s.template),
            (status.number_ready, status.desired_number_scheduled),
            status.desired_number_scheduled - status.updated_number_scheduled.unwrap_or(0),
        )
    });
    deployments.chain(daemonsets).collect()
}

/// One workload as a component: (ready, desired) pods, and how many are not yet on its
/// current template.
fn component(
    kind: &str,
    meta: &ObjectMeta,
    template: Option<&PodTemplateSpec>,
    (ready, desired): (i32, i32),
    outdated: i32,
) -> Component {
    let (images, versions) = images(&template.cloned().unwrap_or_default());
    Component {
        component: component_of(meta.labels.as_ref()),
        workload: format!("{kind}/{}", meta.name.as_deref().unwrap_or("?")),
        images,
        versions,
        ready: format!("{ready}/{desired}"),
        outdated: outdated.max(0),
    }
}

pub fn render(r: &VersionReport) -> String {
    let mut out = format!("Client Version: {}", r.client.version);
    if let Some(git) = &r.client.git {
        out.push_str(&format!(" ({git})"));
    }
    out.push('\n');
    if let Some(s) = &r.server {
        out.push_str(&format!("Server Version: {} ({})\n", s.version, s.platform));
    }
    if !r.components.is_empty() {
        let rows: Vec<Vec<String>> = r
            .components
            .iter()
            .map(|c| {
                let mut ready = c.ready.clone();
                if c.outdated > 0 {
                    ready.push_str(&format!(" ({} outdated)", c.outdated));
                }
                vec![
                    c.component.clone(),
                    c.workload.clone(),
                    c.versions.join(","),
                    ready,
                    c.images.join(" "),
                ]
            })
            .collect();
        out.push_str(&table::render(
            &["COMPONENT", "WORKLOAD", "VERSION", "READY", "IMAGES"],
            &rows,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DaemonSetStatus, DeploymentStatus};

    use super::*;

    #[test]
    fn image_tags() {
        let cases = [
            ("plain tag", "ghcr.io/ferrolb/allocator:0.1.0", "0.1.0"),
            (
                "registry port, no tag",
                "localhost:5000/ferrolb/agent",
                "latest",
            ),
            ("registry port and tag", "localhost:5000/agent:dev", "dev"),
            ("no tag", "ferrolb-agent", "latest"),
            (
                "digest",
                "ghcr.io/ferrolb/agent@sha256:0123456789abcdef0123",
                "@0123456789ab",
            ),
        ];
        for (name, image, want) in cases {
            assert_eq!(image_tag(image), want, "{name}");
        }
    }

    fn workload_json(
        kind: &str,
        name: &str,
        component: &str,
        images: &[&str],
    ) -> serde_json::Value {
        let containers: Vec<serde_json::Value> = images
            .iter()
            .enumerate()
            .map(|(i, img)| serde_json::json!({ "name": format!("c{i}"), "image": img }))
            .collect();
        serde_json::json!({
            "apiVersion": "apps/v1", "kind": kind,
            "metadata": { "name": name, "labels": { COMPONENT_LABEL: component } },
            "spec": { "selector": {}, "template": { "spec": { "containers": containers } } },
        })
    }

    #[test]
    fn components_show_versions_readiness_and_rollouts() {
        let mut d: Deployment = serde_json::from_value(workload_json(
            "Deployment",
            "lb-allocator",
            "allocator",
            &["r/allocator:0.2.0"],
        ))
        .expect("a Deployment");
        d.spec.as_mut().expect("spec").replicas = Some(2);
        d.status = Some(DeploymentStatus {
            replicas: Some(3),
            updated_replicas: Some(2),
            ready_replicas: Some(2),
            ..Default::default()
        });
        let mut ds: DaemonSet = serde_json::from_value(workload_json(
            "DaemonSet",
            "lb-agent",
            "agent",
            &["r/agent:0.2.0", "r/agent:0.2.0"],
        ))
        .expect("a DaemonSet");
        ds.status = Some(DaemonSetStatus {
            desired_number_scheduled: 3,
            number_ready: 3,
            updated_number_scheduled: Some(3),
            ..Default::default()
        });
        let c = components(&[d], &[ds]);
        assert_eq!(c[0].component, "allocator");
        assert_eq!(c[0].workload, "Deployment/lb-allocator");
        assert_eq!(c[0].versions, ["0.2.0"]);
        assert_eq!((c[0].ready.as_str(), c[0].outdated), ("2/2", 1));
        assert_eq!(c[1].versions, ["0.2.0"], "one version for both containers");
        assert_eq!(c[1].images, ["c0=r/agent:0.2.0", "c1=r/agent:0.2.0"]);
        assert_eq!((c[1].ready.as_str(), c[1].outdated), ("3/3", 0));
        let text = render(&VersionReport {
            client: ClientVersion {
                version: "0.1.0".into(),
                git: Some("v0.1.0-3-gabc".into()),
            },
            server: Some(ServerVersion {
                version: "v1.36.0".into(),
                platform: "linux/amd64".into(),
            }),
            components: c,
            errors: vec![],
        });
        assert!(text.starts_with("Client Version: 0.1.0 (v0.1.0-3-gabc)\nServer Version: v1.36.0 (linux/amd64)\nCOMPONENT"), "{text}");
        assert!(text.contains("2/2 (1 outdated)"), "{text}");
    }
}
