//! The commands in docs/*.md are checked, not just written: every fenced block whose info string
//! carries the word `tested` (```` ```console tested ````) is extracted, its `$ ` lines are run
//! with bash against the demo world (control plane, three nodes, ferrolb running, the examples
//! in docs/examples/ applied), and the output each command shows in the docs is compared with
//! what it printed. Conventions (also in docs/README.md):
//! - a line starting with `$ ` is a command; the lines after it, up to the next command, are its
//!   expected output; a command with no lines after it must only succeed;
//! - in a block marked `fails` too (```` ```console tested fails ````) every command must exit
//!   non-zero, and its output is standard output followed by standard error;
//! - whitespace runs count as one blank, so aligned columns may shift;
//! - `<anything>` matches one or more characters that are not blanks (ages, resourceVersions),
//!   also inside a word (`<n>s`); a line of just `...` matches any number of lines.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrolb_e2e::env;
use ferrolb_e2e::world::World;

/// One command of a tested block and the output the docs show for it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DocCommand {
    /// `docs/file.md:line`.
    origin: String,
    command: String,
    expected: Vec<String>,
    /// The block is marked `fails`: the command must exit non-zero, and its output is standard
    /// output followed by standard error.
    fails: bool,
}

/// The commands of every tested block in `text`, in order.
fn extract(file: &str, text: &str) -> Vec<DocCommand> {
    let mut out = Vec::new();
    let mut in_block: Option<(usize, bool, bool)> = None; // (indent, tested, fails)
    for (n, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        let indent = raw.len() - trimmed.len();
        if let Some(info) = trimmed.strip_prefix("```") {
            in_block = match in_block {
                Some(_) => None,
                None => Some((
                    indent,
                    info.split_whitespace().any(|w| w == "tested"),
                    info.split_whitespace().any(|w| w == "fails"),
                )),
            };
            continue;
        }
        let Some((indent, true, fails)) = in_block else {
            continue;
        };
        let line = raw.get(indent..).unwrap_or(trimmed);
        if let Some(cmd) = line.strip_prefix("$ ") {
            out.push(DocCommand {
                origin: format!("{file}:{}", n + 1),
                command: cmd.to_string(),
                expected: Vec::new(),
                fails,
            });
        } else if let Some(last) = out.last_mut() {
            last.expected.push(line.to_string());
        }
    }
    for c in &mut out {
        while c.expected.last().is_some_and(|l| l.trim().is_empty()) {
            c.expected.pop();
        }
    }
    out
}

fn is_placeholder(word: &str) -> Option<(&str, &str)> {
    let start = word.find('<')?;
    let end = start + word[start..].find('>')?;
    let inner = &word[start + 1..end];
    (!inner.is_empty() && !inner.contains(['<', '>'])).then(|| (&word[..start], &word[end + 1..]))
}

fn word_matches(expected: &str, actual: &str) -> bool {
    match is_placeholder(expected) {
        Some((prefix, suffix)) => {
            actual.len() > prefix.len() + suffix.len()
                && actual.starts_with(prefix)
                && actual.ends_with(suffix)
        }
        None => expected == actual,
    }
}

fn line_matches(expected: &str, actual: &str) -> bool {
    let e: Vec<&str> = expected.split_whitespace().collect();
    let a: Vec<&str> = actual.split_whitespace().collect();
    e.len() == a.len() && e.iter().zip(&a).all(|(e, a)| word_matches(e, a))
}

/// Does `actual` match the `expected` lines (with `...` for any number of lines)?
fn output_matches(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.iter().all(|l| l.trim().is_empty()),
        Some((e, rest)) if e.trim() == "..." => {
            (0..=actual.len()).any(|skip| output_matches(rest, &actual[skip..]))
        }
        Some((e, rest)) => actual
            .split_first()
            .is_some_and(|(a, more)| line_matches(e, a) && output_matches(rest, more)),
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// Every tested command of docs/*.md, files in name order.
fn doc_commands() -> Vec<DocCommand> {
    let dir = repo_root().join("docs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("docs/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|p| {
            let name = format!(
                "docs/{}",
                p.file_name().unwrap_or_default().to_string_lossy()
            );
            extract(&name, &std::fs::read_to_string(p).expect("a readable doc"))
        })
        .collect()
}

#[test]
fn tested_blocks_are_extracted_with_their_output() {
    let text = "intro\n```sh\n$ not run\n```\n1. step\n   ```console tested\n   $ kubectl get sg\n   NAME  AGE\n   default  <age>\n\n   $ true\n   ```\n";
    let cmds = extract("docs/x.md", text);
    assert_eq!(
        cmds,
        vec![
            DocCommand {
                origin: "docs/x.md:7".into(),
                command: "kubectl get sg".into(),
                expected: vec!["NAME  AGE".into(), "default  <age>".into()],
                fails: false,
            },
            DocCommand {
                origin: "docs/x.md:11".into(),
                command: "true".into(),
                expected: vec![],
                fails: false,
            },
        ]
    );
}

#[test]
fn output_is_compared_with_placeholders_and_elision() {
    let exp = |lines: &[&str]| lines.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases: [(&str, Vec<String>, &[&str], bool); 7] = [
        ("same words, other spacing", exp(&["a  b"]), &["a b"], true),
        ("placeholder word", exp(&["web  <age>"]), &["web 12s"], true),
        (
            "placeholder inside a word",
            exp(&["http://<ip>/"]),
            &["http://192.0.2.100/"],
            true,
        ),
        (
            "placeholder needs a character",
            exp(&["x<n>y"]),
            &["xy"],
            false,
        ),
        ("a different word", exp(&["a b"]), &["a c"], false),
        (
            "elision",
            exp(&["first", "...", "last"]),
            &["first", "x", "y", "last"],
            true,
        ),
        ("missing line", exp(&["first", "last"]), &["first"], false),
    ];
    for (name, expected, actual, want) in cases {
        assert_eq!(output_matches(&expected, actual), want, "{name}");
    }
}

/// A directory with `kubectl` and `kubectl-ferrolb`, so `kubectl ferrolb` finds its plugin.
fn tool_dir(world: &World) -> PathBuf {
    let dir = world.cp.dir().join("docs-bin");
    std::fs::create_dir_all(&dir).expect("a bin directory");
    for (name, target) in [
        ("kubectl", env::tool("kubectl")),
        ("kubectl-ferrolb", env::binary("kubectl-ferrolb")),
    ] {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link).expect("a symlink");
    }
    dir
}

#[tokio::test]
async fn tested_commands_in_the_docs_work_against_the_demo_world() {
    let commands = doc_commands();
    let plugin = env::binary("kubectl-ferrolb");
    let missing = ferrolb_e2e::controlplane::ControlPlane::missing().or_else(|| {
        (!plugin.exists())
            .then(|| format!("{} is not built (cargo build --bins)", plugin.display()))
    });
    if !env::require_root() || !env::require("the control plane and ferrolb's binaries", missing) {
        return;
    }
    let world = World::start("docs", 3)
        .await
        .expect("the demo world starts");
    let root = repo_root();
    let applied = world.kubectl(&[
        "apply",
        "-f",
        &root
            .join("docs/examples/servicegroups.yaml")
            .display()
            .to_string(),
        "-f",
        &root
            .join("docs/examples/services.yaml")
            .display()
            .to_string(),
    ]);
    // The docs show a settled world: both Services have their addresses and every local
    // address has its holder on the Service.
    world
        .wait("the examples to settle", Duration::from_secs(60), |w| {
            let text = w.kubectl(&[
                "get",
                "services",
                "-o",
                "jsonpath={range .items[*]}{.status.loadBalancer.ingress[*].ip} {.metadata.annotations.ferrolb\\.io/announcing-IPv4} {.metadata.annotations.ferrolb\\.io/announcing-IPv6}{\"\\n\"}{end}",
            ]);
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            // web: two addresses and two holders; api: two addresses on all three nodes.
            (lines.len() >= 2
                && lines.iter().all(|l| l.split_whitespace().count() >= 4)
                && text.matches("3 nodes,kube-lb0").count() == 2)
                .then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}; applied:\n{applied}"));
    let path = format!(
        "{}:{}",
        tool_dir(&world).display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut failures = Vec::new();
    for c in &commands {
        let out = std::process::Command::new("bash")
            .args(["-o", "pipefail", "-c", &c.command])
            .current_dir(&root)
            .env("PATH", &path)
            .env("KUBECONFIG", world.cp.kubeconfig())
            .output()
            .expect("bash runs");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let shown = if c.fails {
            format!("{stdout}{stderr}")
        } else {
            stdout.clone()
        };
        let lines: Vec<&str> = shown.lines().collect();
        let ok = out.status.success() != c.fails
            && (c.expected.iter().all(|l| l.trim().is_empty())
                || output_matches(&c.expected, &lines));
        println!(
            "{} $ {} -> {}",
            c.origin,
            c.command,
            if ok { "ok" } else { "FAILED" }
        );
        if !ok {
            failures.push(format!(
                "{}: $ {}\nexit: {}\n--- the docs show:\n{}\n--- it printed:\n{stdout}{stderr}",
                c.origin,
                c.command,
                out.status,
                c.expected.join("\n")
            ));
        }
    }
    assert!(!commands.is_empty(), "no tested blocks in docs/*.md");
    assert!(
        failures.is_empty(),
        "{} of {} documented commands differ:\n\n{}",
        failures.len(),
        commands.len(),
        failures.join("\n\n")
    );
}
