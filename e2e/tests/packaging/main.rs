//! Packaging, proven on the real API server: the chart lints, its schema refuses bad values,
//! every knob reaches the objects it should (and values of an older release render today's
//! objects), every object it renders is accepted, the plain manifest is fresh, each
//! ServiceAccount gets exactly its rights (the agent only its own node's Lease), and install,
//! upgrade and uninstall with the allocator and an agent running lose no address, CRD or default
//! ServiceGroup.

mod chart;
mod install;
mod knobs;
mod rbac;
mod rendered;
mod support;
