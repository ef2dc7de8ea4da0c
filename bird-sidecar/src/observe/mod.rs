//! What the sidecar reads: its files (template, values, offline groups) and, in a cluster,
//! ServiceGroups, its Node and the LBNodeAgents.

pub mod files;
pub mod kube;
