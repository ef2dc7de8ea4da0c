//! One reconcile round: snapshot → `desired` → `diff` → `apply`, then metrics, Events,
//! gratuitous ARP/NA for new local addresses, and the Lease's annotations.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ferrolb_api::LBNodeAgent;
use ferrolb_api::check::agent_durations;
use ferrolb_api::contracts::lease;
use k8s_openapi::api::coordination::v1::Lease;

use tracing::{debug, info, warn};

use super::Context;
use super::election::Election;
use crate::apply::{Applied, Outcome, apply};
use crate::conflict::rules::{Mac, Macs, parse_mac};
use crate::decide::{
    AddressKind, Change, DesiredAddress, Observed, Retries, StrictArp, agent_config, applied_note,
    blocked, desired, diff, gossip_addr, gossip_published, held_local, lease_annotations,
    node_subnets, own_macs, owned_local_addresses, services_by_address, strict_arp,
};
use crate::observe::{groups, kernel_facts};
use crate::snapshot::{AgentConfig, Gratuitous, KernelFacts, Lifecycle, Snapshot};
use crate::{Result, gratuitous};

/// The local addresses this node holds now, as (interface, address): a gratuitous announcement
/// checks it before each packet.
pub type Held = Arc<RwLock<BTreeSet<(String, IpAddr)>>>;

/// What a round leaves for the loop.
pub struct Round {
    /// What kept this round from applying everything (a change failed or is still backing
    /// off); `None` when it applied all it wanted.
    pub problem: Option<String>,
    /// When the next held-back change may be tried again.
    pub next_retry: Option<Instant>,
    pub config: AgentConfig,
}

/// One round. `last_config` stays in force while the LBNodeAgent it came from does not parse;
/// `retries` holds back changes that failed recently (never renewals).
pub async fn reconcile(
    ctx: &Context,
    election: &mut Election,
    lifecycle: Lifecycle,
    last_config: Option<&AgentConfig>,
    retries: &mut Retries,
) -> Result<Round> {
    let started = Instant::now();
    let kernel = kernel_facts(&ctx.netlink)
        .await
        .inspect_err(|_| ctx.metrics.netlink_error())?;
    let cluster = ctx.stores.cluster(&ctx.node);
    let selection = agent_config(&cluster.agents, &cluster.node, last_config);
    super::report_rejected(ctx, &selection.rejected);
    let config = selection.config;
    let conflict_probe = conflict_probe(&cluster.agents, &config);
    let snapshot = Snapshot {
        node: cluster.node,
        config,
        groups: groups(cluster.groups.iter().map(AsRef::as_ref)),
        services: cluster.services,
        kernel,
        lifecycle,
    };
    let leases = ctx.stores.leases.state();
    let on_kernel = owned_local_addresses(&snapshot.kernel, &snapshot.config);
    let decider = election
        .decider(
            &node_subnets(&snapshot.kernel, &snapshot.config),
            &on_kernel,
            &leases,
            snapshot.config.gossip_settle,
            &ctx.metrics,
        )
        .await;
    // The wire has a say too: an address this node does not have yet waits for a probe that
    // nobody answers (DESIGN.md, conflicts on the wire).
    let asked = Mutex::new(BTreeSet::new());
    let holds = |a: &IpAddr, endpoint_nodes: Option<&BTreeSet<String>>| {
        let elected = decider.holds(*a, endpoint_nodes, &on_kernel);
        match &ctx.prober {
            None => elected,
            Some(prober) => {
                if elected {
                    asked.lock().unwrap_or_else(|p| p.into_inner()).insert(*a);
                }
                prober.allows(*a, elected, on_kernel.contains(a), decider.lingering(*a))
            }
        }
    };
    let want = desired(&snapshot, &holds);
    let services = services_by_address(&snapshot.services);
    // Before any local address is added: with kube-proxy's IPVS mode, every node would answer
    // ARP for it.
    if let Some(fix) = strict_arp(&snapshot.kernel, want.local_interface_v4.as_deref()) {
        ensure_strict_arp(ctx, &fix).await;
    }
    if let Some(prober) = &ctx.prober {
        let asked = asked.into_inner().unwrap_or_else(|p| p.into_inner());
        prober.update(
            Macs {
                own: own_macs(&snapshot.kernel),
                agents: known_macs(decider.macs(), &leases),
            },
            [
                want.local_interface_v4.clone(),
                want.local_interface_v6.clone(),
            ],
            (
                conflict_probe,
                Duration::from_secs(snapshot.config.local_address_lifetime.into()),
            ),
            services.clone(),
            &asked,
        );
    }
    let observed = Observed::from_kernel(&snapshot.kernel);
    let (changes, held_back) = retries.due(diff(&want, &observed), Instant::now());
    for change in &held_back {
        debug!(change = %change, "failed recently; retried after its back-off");
    }
    for skip in &want.skipped {
        debug!(service = skip.service, address = %skip.address, why = ?skip.why, "not on this node");
    }
    let blocked: BTreeSet<(String, IpAddr)> = blocked(&want, &observed)
        .into_iter()
        .map(|d| (d.interface.clone(), d.address))
        .collect();
    // Every round would say it again: debug, not warn.
    for (interface, address) in &blocked {
        debug!(interface, address = %address,
               "someone else's copy of this address is on the interface; left alone");
    }
    let report = apply(&ctx.netlink, &changes).await;
    let applied_at = Instant::now();
    for applied in &report {
        retries.record(&applied.change, applied.failed(), applied_at);
    }

    let not_done = report
        .iter()
        .filter(|a| a.failed())
        .map(|a| &a.change)
        .chain(&held_back);
    let failed: BTreeSet<(String, IpAddr)> = not_done
        .clone()
        .filter_map(|c| match c {
            Change::Add(d) | Change::Renew(d) => Some((d.interface.clone(), d.address)),
            _ => None,
        })
        .collect();
    let not_removed: BTreeSet<(String, IpAddr)> = not_done
        .clone()
        .filter_map(|c| match c {
            Change::Remove(o) => Some((o.interface.clone(), o.address)),
            _ => None,
        })
        .collect();
    let problem = not_done
        .map(ToString::to_string)
        .reduce(|a, b| format!("{a}, {b}"))
        .map(|list| format!("not applied: {list}"));
    let held = held_local(&want, &failed, &blocked, &not_removed);
    *ctx.held.write().unwrap_or_else(|p| p.into_inner()) = held.clone();
    let mut added: BTreeMap<&str, Vec<IpAddr>> = BTreeMap::new();
    for applied in &report {
        if let Some(d) = account(ctx, applied, &services) {
            added.entry(&d.interface).or_default().push(d.address);
        }
    }
    announce(ctx, snapshot.config.gratuitous, &snapshot.kernel, added);
    let holding = held.iter().map(|(_, a)| *a).collect();
    // Break before make: what this round removed leaves the gossip view only now, after the
    // kernel let go of it.
    election
        .publish(
            gossip_addr(&want, &snapshot.kernel),
            &gossip_published(&want, &snapshot.kernel, &holding),
            &leases,
        )
        .await;
    ctx.lease
        .publish(lease_annotations(&want, &snapshot.kernel, &holding));
    ctx.metrics.held(&want);
    ctx.metrics.announced(&ctx.node, &held, &want, &services);
    ctx.metrics.reconciled(started.elapsed().as_secs_f64());
    Ok(Round {
        problem,
        next_retry: retries.next_due(),
        config: snapshot.config,
    })
}

/// Metrics and Events for one applied change; a local address it added, to be announced.
fn account<'a>(
    ctx: &Context,
    applied: &'a Applied,
    services: &BTreeMap<IpAddr, String>,
) -> Option<&'a DesiredAddress> {
    match (&applied.outcome, &applied.change) {
        (Outcome::Failed(e), change) => {
            ctx.metrics.netlink_error();
            let service = change.address().and_then(|a| services.get(&a));
            ctx.events
                .announcement_failed(change, e, service.map(String::as_str));
        }
        (Outcome::Done, Change::Add(d)) => {
            ctx.metrics.added(d.kind, d.address);
            if d.kind == AddressKind::Local {
                return Some(d);
            }
        }
        (Outcome::Done, Change::Renew(d)) => ctx.metrics.renewed(d.kind, d.address),
        (Outcome::Done, Change::Remove(_)) => ctx.metrics.removed(),
        _ => {}
    }
    None
}

/// Gratuitous ARP/NA for the local addresses this round added: one task per interface, its
/// socket (cached across rounds) opened here, on the round's thread and in its namespace.
fn announce(
    ctx: &Context,
    settings: Gratuitous,
    kernel: &KernelFacts,
    added: BTreeMap<&str, Vec<IpAddr>>,
) {
    ctx.senders
        .retain(|name| kernel.interfaces.iter().any(|i| i.name == name));
    if !settings.enabled || settings.count == 0 {
        return;
    }
    for (interface, addresses) in added {
        let Some(link) = kernel.interfaces.iter().find(|i| i.name == interface) else {
            continue;
        };
        let sender = match ctx.senders.get(interface, link.index, link.mac.as_deref()) {
            Ok(sender) => sender,
            Err(e) => {
                warn!(interface, error = %e, "cannot send gratuitous ARP/NA");
                continue;
            }
        };
        let held = ctx.held.clone();
        let metrics = ctx.metrics.clone();
        let interface = interface.to_string();
        tokio::spawn(async move {
            gratuitous::announce(
                settings,
                &sender,
                addresses,
                |a| {
                    held.read()
                        .unwrap_or_else(|p| p.into_inner())
                        .contains(&(interface.clone(), a))
                },
                |a| metrics.gratuitous_sent(a),
            )
            .await
        });
    }
}

/// Sets strict ARP on the local interface (see [`strict_arp`]); says so in an Event, or in a
/// Warning when the kernel refuses, retried a minute later.
async fn ensure_strict_arp(ctx: &Context, fix: &StrictArp) {
    const RETRY: Duration = Duration::from_secs(60);
    let failed = || {
        ctx.strict_arp_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    };
    if failed().is_some_and(|at| at.elapsed() < RETRY) {
        return;
    }
    match ctx.netlink.set_strict_arp(&fix.interface, fix.index).await {
        Ok(()) => {
            *failed() = None;
            info!(interface = fix.interface, before = ?fix.before, "kube-ipvs0 exists: set \
                  arp_ignore 1 and arp_announce 2 on the local interface (strict ARP)");
            ctx.events.strict_arp_applied(applied_note(fix));
        }
        Err(e) => {
            *failed() = Some(Instant::now());
            warn!(interface = fix.interface, error = %e, "cannot set strict ARP");
            ctx.events.strict_arp_failed(&fix.interface, &e);
        }
    }
}

/// `conflictProbe` of the LBNodeAgent in force (the CRD's default, 1 s, when there is none or
/// it does not parse within its bounds).
fn conflict_probe(agents: &[LBNodeAgent], config: &AgentConfig) -> Duration {
    config
        .source
        .as_deref()
        .and_then(|name| {
            agents
                .iter()
                .find(|a| a.metadata.name.as_deref() == Some(name))
        })
        .and_then(|a| agent_durations(&a.spec).ok())
        .map_or(Duration::from_secs(1), |d| d.conflict_probe)
}

/// Every agent's LAN MAC: what gossip shows (`gossip`, as (mac, node)) and what the per-node
/// Leases say (`ferrolb.io/mac`: `interface=mac ...`), live or not.
fn known_macs(gossip: Vec<(String, String)>, leases: &[Arc<Lease>]) -> BTreeMap<Mac, String> {
    let from_leases = leases.iter().flat_map(|l| {
        let node = l.spec.as_ref().and_then(|s| s.holder_identity.clone());
        let macs = l
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(lease::MAC))
            .cloned()
            .unwrap_or_default();
        let pairs: Vec<(String, String)> = macs
            .split_whitespace()
            .filter_map(|pair| pair.split_once('=').map(|(_, m)| m.to_string()))
            .filter_map(|m| Some((m, node.clone()?)))
            .collect();
        pairs
    });
    from_leases
        .chain(gossip)
        .filter_map(|(mac, node)| Some((parse_mac(&mac)?, node)))
        .collect()
}
