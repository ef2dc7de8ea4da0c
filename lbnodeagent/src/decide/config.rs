//! Which LBNodeAgent applies to this node, and its settings as plain values.

use ferrolb_api::contracts::DEFAULT_LBNODEAGENT;
use ferrolb_api::{LBNodeAgent, LBNodeAgentSpec, duration};
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use regex::Regex;

use crate::snapshot::{AgentConfig, Gratuitous, LocalInterface, NodeFacts};
use crate::{Error, Result};

/// The settings for `node`: among the LBNodeAgents other than `default` that select it, the
/// lowest name wins (the others are listed in `also_selecting`, worth an Event); if none selects
/// it, `default` applies, and its own nodeSelector says whether the node may announce. With no
/// LBNodeAgent at all the built-in defaults apply to every node.
pub fn agent_config(agents: &[LBNodeAgent], node: &NodeFacts) -> Result<AgentConfig> {
    let mut selecting = Vec::new();
    for agent in agents
        .iter()
        .filter(|a| a.name_any() != DEFAULT_LBNODEAGENT)
    {
        if selects(agent, node)? {
            selecting.push(agent);
        }
    }
    selecting.sort_by_key(|a| a.name_any());
    if let Some((winner, others)) = selecting.split_first() {
        let mut config = from_spec(&winner.name_any(), &winner.spec, true)?;
        config.also_selecting = others.iter().map(|a| a.name_any()).collect();
        return Ok(config);
    }
    match agents.iter().find(|a| a.name_any() == DEFAULT_LBNODEAGENT) {
        Some(default) => from_spec(DEFAULT_LBNODEAGENT, &default.spec, selects(default, node)?),
        None => {
            let mut config = from_spec(DEFAULT_LBNODEAGENT, &LBNodeAgentSpec::default(), true)?;
            config.source = None;
            Ok(config)
        }
    }
}

/// An absent or empty nodeSelector selects every node.
fn selects(agent: &LBNodeAgent, node: &NodeFacts) -> Result<bool> {
    let Some(selector) = agent.spec.node_selector.clone() else {
        return Ok(true);
    };
    let selector = Selector::try_from(selector).map_err(|e| Error::InvalidConfig {
        agent: agent.name_any(),
        field: "spec.nodeSelector",
        why: e.to_string(),
    })?;
    Ok(selector.matches(&node.labels))
}

fn from_spec(name: &str, spec: &LBNodeAgentSpec, selects_node: bool) -> Result<AgentConfig> {
    let invalid = |field, why: String| Error::InvalidConfig {
        agent: name.to_string(),
        field,
        why,
    };
    let local_interface = if spec.local_interface == "default" {
        LocalInterface::DefaultRoute
    } else {
        LocalInterface::Matching(
            Regex::new(&spec.local_interface)
                .map_err(|e| invalid("spec.localInterface", e.to_string()))?,
        )
    };
    let lifetime = duration::parse(&spec.local_address_lifetime)
        .map_err(|e| invalid("spec.localAddressLifetime", e.to_string()))?;
    if lifetime.subsec_nanos() != 0 || lifetime.as_secs() < 3 {
        return Err(invalid(
            "spec.localAddressLifetime",
            format!(
                "{:?} is not whole seconds of at least 3s",
                spec.local_address_lifetime
            ),
        ));
    }
    let local_address_lifetime = u32::try_from(lifetime.as_secs()).map_err(|_| {
        invalid(
            "spec.localAddressLifetime",
            format!("{:?} is too long", spec.local_address_lifetime),
        )
    })?;
    let parse =
        |field, value: &str| duration::parse(value).map_err(|e| invalid(field, e.to_string()));
    let gratuitous = Gratuitous {
        enabled: spec.gratuitous.enabled,
        count: spec.gratuitous.count,
        interval: parse("spec.gratuitous.interval", &spec.gratuitous.interval)?,
        initial_delay: parse(
            "spec.gratuitous.initialDelay",
            &spec.gratuitous.initial_delay,
        )?,
    };
    Ok(AgentConfig {
        source: Some(name.to_string()),
        also_selecting: Vec::new(),
        selects_node,
        local_interface,
        virtual_interface: spec.virtual_interface.clone(),
        local_address_lifetime,
        gratuitous,
        drain: parse("spec.drain", &spec.drain)?,
        gossip_settle: parse("spec.gossipSettle", &spec.gossip_settle)?,
    })
}
