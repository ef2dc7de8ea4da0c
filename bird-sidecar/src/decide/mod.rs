//! Pure decisions: what bird.conf should say, and in which order a drain happens.

pub mod context;
pub mod drain;
pub mod readiness;
pub mod render;

pub use context::{NodeFacts, RenderContext};
pub use render::{DEFAULT_TEMPLATE, render};

use ferrolb_api::ServiceGroup;

use crate::error::Result;
use crate::values::Values;

/// Everything the config is made from, as plain values.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub node: NodeFacts,
    pub values: Values,
    /// Every ServiceGroup seen; only virtual ones matter.
    pub groups: Vec<ServiceGroup>,
    pub template: String,
}

/// A rendered config and what was left out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub config: String,
    pub warnings: Vec<String>,
}

/// The bird.conf `snapshot` asks for; with `graceful_shutdown` every export carries 65535:0.
pub fn desired(snapshot: &Snapshot, graceful_shutdown: bool) -> Result<Desired> {
    let (ctx, warnings) = context::build(
        &snapshot.node,
        &snapshot.values,
        &snapshot.groups,
        graceful_shutdown,
    )?;
    let config = render(&snapshot.template, &ctx)?;
    Ok(Desired { config, warnings })
}
