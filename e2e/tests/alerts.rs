//! The chart's alerts and dashboard against what the binaries export (issue 20 item 2): the
//! PrometheusRule the chart renders passes `promtool check rules` and the unit tests in
//! `tests/alerts/rules_test.yaml` (each alert fires on its series and not on others), and every
//! metric name the rules and the dashboard use is one the three registries really expose, so a
//! rename cannot silently break an alert.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ferrolb_e2e::env;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e lives in the workspace")
        .to_path_buf()
}

fn promtool() -> PathBuf {
    env::tool("promtool")
}

fn missing_promtool() -> Option<String> {
    env::missing_tool("promtool")
}

/// `(succeeded, stdout + stderr)`.
fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `helm template` of the chart with `args` (helm's own config and cache directories).
fn template(args: &[&str]) -> String {
    let mut cmd = env::helm(None);
    cmd.args(["template", "ferrolb"])
        .arg(env::chart_dir())
        .args(["--namespace", "ferrolb-system"]);
    cmd.args(args);
    let (ok, out) = run(&mut cmd);
    assert!(ok, "helm template {args:?}:\n{out}");
    out
}

fn objects(rendered: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(rendered)
        .unwrap_or_else(|e| panic!("helm rendered YAML that does not parse: {e}\n{rendered}"))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ferrolb-alerts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// The sample names of an OpenMetrics exposition, from its `# TYPE` lines (so a family with
/// no series yet counts too): a counter's `_total`, a histogram's `_bucket`/`_sum`/`_count`.
fn sample_names(exposition: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        out.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    out
}

/// Every sample name the three binaries export, from their own registries' encoders (each
/// with a series in every family: an empty family is not encoded).
fn exported() -> BTreeSet<String> {
    let expositions = [
        ferrolb_allocator::metrics::specimen(),
        ferrolb_lbnodeagent::metrics::specimen(),
        ferrolb_bird_sidecar::metrics::specimen(),
    ];
    expositions.iter().flat_map(|e| sample_names(e)).collect()
}

/// The `ferrolb_*` words of a text: the metric names a PromQL expression (or a message) uses.
fn ferrolb_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("ferrolb_"))
        .map(str::to_string)
        .collect()
}

fn dashboard() -> Value {
    let path = env::chart_dir().join("files/dashboard.json");
    let text = std::fs::read_to_string(&path).expect("files/dashboard.json");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `expr` of the dashboard's panels, with the panel's title.
fn dashboard_queries() -> Vec<(String, String)> {
    let d = dashboard();
    let panels = d["panels"].as_array().expect("dashboard panels");
    panels
        .iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |t| Some((title.clone(), t["expr"].as_str()?.to_string())))
        })
        .collect()
}

#[test]
fn the_registries_export_one_naming_scheme() {
    let names = exported();
    assert!(
        names.len() > 20,
        "the registries export too few names: {names:?}"
    );
    for name in &names {
        let ok = ["ferrolb_allocator_", "ferrolb_agent_", "ferrolb_router_"]
            .iter()
            .any(|p| name.starts_with(p));
        assert!(ok, "{name} is not ferrolb_<allocator|agent|router>_<what>");
    }
}

#[test]
fn every_metric_the_alerts_and_the_dashboard_use_is_exported() {
    let exported = exported();
    // The rules file as written (names are literal in it; thresholds are helm values).
    let rules =
        std::fs::read_to_string(env::chart_dir().join("files/alerts.yaml")).expect("alerts.yaml");
    let used_by_rules = ferrolb_names(&rules);
    assert!(
        used_by_rules.len() >= 8,
        "too few metric names found in the rules: {used_by_rules:?}"
    );
    let unknown: Vec<&String> = used_by_rules.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "files/alerts.yaml uses metrics no binary exports: {unknown:?}\nexported: {exported:?}"
    );
    let queries = dashboard_queries();
    assert!(
        queries.len() >= 10,
        "too few dashboard queries: {queries:?}"
    );
    for (panel, expr) in &queries {
        let names = ferrolb_names(expr);
        assert!(
            !names.is_empty(),
            "panel {panel:?} queries no ferrolb metric: {expr}"
        );
        let unknown: Vec<&String> = names.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "dashboard panel {panel:?} uses metrics no binary exports: {unknown:?} in {expr}"
        );
    }
}

#[test]
fn the_rendered_rules_pass_promtool_check_and_their_unit_tests() {
    if !env::require("helm", env::missing_tool("helm"))
        || !env::require("promtool", missing_promtool())
    {
        return;
    }
    let rendered = template(&[
        "--set",
        "prometheusRule.enabled=true",
        "--show-only",
        "templates/prometheusrule.yaml",
    ]);
    let rule = objects(&rendered)
        .into_iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .unwrap_or_else(|| panic!("no PrometheusRule rendered:\n{rendered}"));
    let dir = scratch("promtool");
    // JSON is YAML: promtool reads the spec (`groups`) as a rules file.
    std::fs::write(dir.join("rules.yaml"), rule["spec"].to_string()).expect("write rules.yaml");
    std::fs::copy(
        repo().join("e2e/tests/alerts/rules_test.yaml"),
        dir.join("rules_test.yaml"),
    )
    .expect("copy rules_test.yaml");

    let (ok, out) =
        run(Command::new(promtool())
            .current_dir(&dir)
            .args(["check", "rules", "rules.yaml"]));
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) =
        run(Command::new(promtool())
            .current_dir(&dir)
            .args(["test", "rules", "rules_test.yaml"]));
    assert!(ok, "promtool test rules:\n{out}");

    // Every alert of the rules has a unit test.
    let tests = std::fs::read_to_string(dir.join("rules_test.yaml")).expect("rules_test.yaml");
    let alerts: Vec<&str> = rule["spec"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert!(alerts.len() >= 8, "{alerts:?}");
    for alert in alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "{alert} has no unit test in e2e/tests/alerts/rules_test.yaml"
        );
    }
}

#[test]
fn the_rule_and_the_dashboard_render_only_when_enabled_and_carry_their_labels() {
    if !env::require("helm", env::missing_tool("helm")) {
        return;
    }
    let kinds = |sets: &[&str]| -> Vec<(String, String)> {
        objects(&template(sets))
            .iter()
            .map(|o| {
                (
                    o["kind"].as_str().unwrap_or_default().to_string(),
                    o["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    };
    let default = kinds(&[]);
    assert!(
        !default
            .iter()
            .any(|(k, n)| k == "PrometheusRule" || n.ends_with("-dashboard")),
        "{default:?}"
    );
    let all = objects(&template(&[
        "--set",
        "prometheusRule.enabled=true,prometheusRule.labels.release=prometheus",
        "--set-json",
        "prometheusRule.thresholds.poolNearlyFull=0.8",
        "--set",
        "grafanaDashboard.enabled=true",
    ]));
    let rule = all
        .iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .expect("a PrometheusRule");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    assert!(
        rule["spec"].to_string().contains("> 0.8"),
        "the threshold value is used: {}",
        rule["spec"]
    );
    let cm = all
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("the dashboard ConfigMap");
    let json = cm["data"]["ferrolb.json"].as_str().expect("ferrolb.json");
    let shipped: Value = serde_json::from_str(json).expect("the shipped dashboard is JSON");
    assert_eq!(shipped, dashboard());
}
