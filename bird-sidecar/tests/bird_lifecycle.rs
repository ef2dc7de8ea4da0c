//! BIRD under the sidecar in a throw-away namespace: a config BIRD refuses is never applied
//! (the old file stays, BIRD keeps running it), and a BIRD that dies is restarted.

mod common;

use std::sync::Arc;

use common::{WAIT, bird_pid, eventually, in_namespace, runtime, settings, write};
use ferrolb_bird_sidecar::apply::Bird;
use ferrolb_bird_sidecar::apply::events::Events;
use ferrolb_bird_sidecar::decide::DEFAULT_TEMPLATE;
use ferrolb_bird_sidecar::metrics::Metrics;
use ferrolb_bird_sidecar::run::{Source, run};
use ferrolb_e2e::env::require_root;
use ferrolb_e2e::topology::Topology;
use tokio::sync::oneshot;

/// `show status` minus its clock line: the same text means the same config run.
async fn last_reconfiguration(bird: &Bird) -> String {
    let status = bird.birdc(&["show", "status"]).await.expect("BIRD answers");
    status
        .lines()
        .find(|l| l.starts_with("Last reconfiguration"))
        .unwrap_or_else(|| panic!("no reconfiguration time in {status}"))
        .to_string()
}

#[test]
fn a_config_bird_refuses_is_never_applied_and_bird_keeps_the_old_one() {
    if !require_root() {
        return;
    }
    let topo = Topology::builder("rej").nodes(1).build().expect("build");
    let settings = settings(&topo);
    let template = settings.files.template.clone().expect("set");
    let paths = settings.paths.clone();
    in_namespace(topo.node(0).ns_name(), || {
        runtime().block_on(async move {
            let metrics = Arc::new(Metrics::new());
            let (stop, stopped) = oneshot::channel::<()>();
            let sidecar = tokio::spawn(run(
                settings,
                Source::Offline,
                metrics.clone(),
                Events::none(),
                async {
                    let _ = stopped.await;
                },
            ));
            let bird = Bird::new(paths.clone());
            eventually("the first config to be applied", WAIT, || async {
                (metrics.config_applied.get() == 1 && bird.answers().await).then_some(())
            })
            .await;
            let good = std::fs::read_to_string(&paths.config).expect("config written");
            assert!(good.contains("203.0.113.0/25{28,28}"), "{good}");
            let reconfigured = last_reconfiguration(&bird).await;

            let broken: [(&str, String); 2] = [
                (
                    "a template that does not render",
                    "router id {{ router_id ;\n".into(),
                ),
                (
                    "a config BIRD refuses",
                    format!("{DEFAULT_TEMPLATE}\nprotocol bgp broken {{ neighbor nonsense; }}\n"),
                ),
            ];
            for (i, (name, text)) in broken.iter().enumerate() {
                write(&template, text);
                let want = u64::try_from(i + 1).expect("small");
                eventually(&format!("{name} to be rejected"), WAIT, || async {
                    (metrics.config_rejected.get() == want).then_some(())
                })
                .await;
                let now = std::fs::read_to_string(&paths.config).expect("config stays");
                assert_eq!(now, good, "{name}: the config file changed");
                assert_eq!(
                    last_reconfiguration(&bird).await,
                    reconfigured,
                    "{name}: BIRD reloaded"
                );
                let protocols = bird.protocols().await.expect("BIRD still answers");
                assert!(
                    protocols.iter().any(|p| p.name == "ferrolb_direct"),
                    "{name}: {protocols:?}"
                );
                assert!(
                    !protocols.iter().any(|p| p.name == "broken"),
                    "{name}: {protocols:?}"
                );
                let leftovers: Vec<_> = std::fs::read_dir(paths.config.parent().expect("dir"))
                    .expect("config dir")
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name())
                    .filter(|n| n.to_string_lossy().ends_with(".tmp"))
                    .collect();
                assert!(
                    leftovers.is_empty(),
                    "{name}: temp files left: {leftovers:?}"
                );
            }
            assert_eq!(metrics.config_applied.get(), 1);

            write(&template, &format!("# fixed\n{DEFAULT_TEMPLATE}"));
            eventually("the fixed template to be applied", WAIT, || async {
                (metrics.config_applied.get() == 2).then_some(())
            })
            .await;
            assert!(
                std::fs::read_to_string(&paths.config)
                    .expect("config")
                    .starts_with("# fixed")
            );
            assert_ne!(
                last_reconfiguration(&bird).await,
                reconfigured,
                "BIRD reloaded the fix"
            );

            let _ = stop.send(());
            sidecar
                .await
                .expect("sidecar task")
                .expect("sidecar ends cleanly");
            assert!(!bird.answers().await, "BIRD is stopped after the drain");
        })
    });
}

#[test]
fn bird_is_restarted_after_it_dies() {
    if !require_root() {
        return;
    }
    let topo = Topology::builder("rst").nodes(1).build().expect("build");
    let settings = settings(&topo);
    let paths = settings.paths.clone();
    in_namespace(topo.node(0).ns_name(), || {
        runtime().block_on(async move {
            let metrics = Arc::new(Metrics::new());
            let (stop, stopped) = oneshot::channel::<()>();
            let sidecar = tokio::spawn(run(
                settings,
                Source::Offline,
                metrics.clone(),
                Events::none(),
                async {
                    let _ = stopped.await;
                },
            ));
            let bird = Bird::new(paths.clone());
            let first = eventually("BIRD to run", WAIT, || async {
                if bird.answers().await {
                    bird_pid(&paths.config)
                } else {
                    None
                }
            })
            .await;
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(first),
                nix::sys::signal::Signal::SIGKILL,
            )
            .expect("kill BIRD");
            let second = eventually("BIRD to be restarted", WAIT, || async {
                let pid = bird_pid(&paths.config).filter(|p| *p != first)?;
                bird.answers().await.then_some(pid)
            })
            .await;
            assert_ne!(first, second);
            eventually("the restart to be counted", WAIT, || async {
                (metrics.bird_restarts.get() == 1).then_some(())
            })
            .await;
            assert!(
                metrics
                    .encode()
                    .contains("ferrolb_router_bird_restarts_total 1")
            );
            let _ = stop.send(());
            sidecar
                .await
                .expect("sidecar task")
                .expect("sidecar ends cleanly");
            assert_eq!(bird_pid(&paths.config), None, "BIRD is gone after stop");
        })
    });
}
