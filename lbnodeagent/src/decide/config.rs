//! Which LBNodeAgent applies to this node, and its settings as plain values. An LBNodeAgent
//! that does not parse is never fatal: it is set aside (the caller logs it and posts an Event).

use std::fmt;

use ferrolb_api::check::{Problem, agent_durations, agent_selector, virtual_interface_problem};
use ferrolb_api::contracts::DEFAULT_LBNODEAGENT;
use ferrolb_api::{LBNodeAgent, LBNodeAgentSpec};
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use regex::Regex;

use crate::snapshot::{AgentConfig, Gratuitous, LocalInterface, NodeFacts};

/// An LBNodeAgent the agent cannot use, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub agent: String,
    /// Its uid and resourceVersion: an Event names this very version of it.
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub problems: Vec<Problem>,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LBNodeAgent {}: ", self.agent)?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// The settings in force on this node, and the LBNodeAgents set aside.
#[derive(Clone, Debug)]
pub struct Selection {
    pub config: AgentConfig,
    pub rejected: Vec<Rejected>,
}

/// The settings for `node`: among the LBNodeAgents other than `default` that select it, the
/// lowest name wins (the others are listed in `also_selecting`, worth an Event); if none selects
/// it, `default` applies, and its own nodeSelector says whether the node may announce. With no
/// LBNodeAgent at all the built-in defaults apply to every node.
///
/// An LBNodeAgent that does not parse (a regex that does not compile, an unknown selector
/// operator, a duration out of bounds: what the API server's rules let through, e.g. objects
/// stored before them) is rejected and treated as absent, on every node whether it would
/// select it or not; except that when the settings `last` in force came from it, they stay in
/// force until it is fixed or deleted, so that a bad edit moves no address.
pub fn agent_config(
    agents: &[LBNodeAgent],
    node: &NodeFacts,
    last: Option<&AgentConfig>,
) -> Selection {
    let mut usable = Vec::new();
    let mut rejected = Vec::new();
    for agent in agents {
        match parse(agent) {
            Ok(parsed) => usable.push((agent.name_any(), parsed)),
            Err(problems) => rejected.push(Rejected {
                agent: agent.name_any(),
                uid: agent.metadata.uid.clone(),
                resource_version: agent.metadata.resource_version.clone(),
                problems,
            }),
        }
    }
    if let Some(last) = last
        && let Some(source) = &last.source
        && rejected.iter().any(|r| &r.agent == source)
    {
        return Selection {
            config: last.clone(),
            rejected,
        };
    }
    let selects = |p: &Parsed| p.selector.as_ref().is_none_or(|s| s.matches(&node.labels));
    let mut selecting: Vec<&(String, Parsed)> = usable
        .iter()
        .filter(|(name, p)| name != DEFAULT_LBNODEAGENT && selects(p))
        .collect();
    selecting.sort_by(|a, b| a.0.cmp(&b.0));
    let config = if let Some(((name, winner), others)) = selecting.split_first() {
        let mut config = winner.config(name, true);
        config.also_selecting = others.iter().map(|(n, _)| n.clone()).collect();
        config
    } else if let Some((name, default)) = usable.iter().find(|(n, _)| n == DEFAULT_LBNODEAGENT) {
        default.config(name, selects(default))
    } else {
        let mut config = parse_spec(&LBNodeAgentSpec::default())
            .expect("the built-in defaults parse")
            .config(DEFAULT_LBNODEAGENT, true);
        config.source = None;
        config
    };
    Selection { config, rejected }
}

/// One LBNodeAgent, parsed: its selector and its settings (without `source` and selection).
struct Parsed {
    selector: Option<Selector>,
    settings: AgentConfig,
}

impl Parsed {
    fn config(&self, name: &str, selects_node: bool) -> AgentConfig {
        AgentConfig {
            source: Some(name.to_string()),
            selects_node,
            ..self.settings.clone()
        }
    }
}

fn parse(agent: &LBNodeAgent) -> Result<Parsed, Vec<Problem>> {
    parse_spec(&agent.spec)
}

fn parse_spec(spec: &LBNodeAgentSpec) -> Result<Parsed, Vec<Problem>> {
    let mut problems: Vec<Problem> = virtual_interface_problem(spec).into_iter().collect();
    let selector = agent_selector(spec).map_err(|p| problems.push(p)).ok();
    let durations = agent_durations(spec).map_err(|p| problems.extend(p)).ok();
    let local_interface = if spec.local_interface == "default" {
        Some(LocalInterface::DefaultRoute)
    } else {
        Regex::new(&spec.local_interface)
            .map(LocalInterface::Matching)
            .map_err(|e| {
                problems.push(Problem {
                    field: "spec.localInterface".into(),
                    message: format!(
                        "{:?} is not a regular expression: {}",
                        spec.local_interface,
                        // The regex crate's message spans lines; one line reads better in a log.
                        e.to_string()
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                })
            })
            .ok()
    };
    let (Some(selector), Some(d), Some(local_interface), true) =
        (selector, durations, local_interface, problems.is_empty())
    else {
        return Err(problems);
    };
    Ok(Parsed {
        selector,
        settings: AgentConfig {
            source: None,
            also_selecting: Vec::new(),
            selects_node: true,
            local_interface,
            virtual_interface: spec.virtual_interface.clone(),
            local_address_lifetime: d.local_address_lifetime,
            gratuitous: Gratuitous {
                enabled: spec.gratuitous.enabled,
                count: spec.gratuitous.count,
                interval: d.gratuitous_interval,
                initial_delay: d.gratuitous_initial_delay,
            },
            drain: d.drain,
            gossip_settle: d.gossip_settle,
        },
    })
}
