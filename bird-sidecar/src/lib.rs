//! bird-sidecar: renders BIRD 2's config from a template, validates and reloads it, supervises
//! BIRD, drains it on stop and reports its sessions as metrics.
//!
//! Layers (STYLE.md): `observe` reads files and the cluster, `decide` renders and plans (pure),
//! `apply` writes the config, drives `birdc` and publishes Events; `run` ties them together.

pub mod apply;
pub mod decide;
pub mod error;
pub mod metrics;
pub mod observe;
pub mod run;
pub mod status;
pub mod supervise;
pub mod values;

pub use error::{Error, Result};
