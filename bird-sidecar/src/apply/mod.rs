//! The code that writes: BIRD's config file and control socket, and Kubernetes Events.

mod bird;
pub mod events;

pub use bird::{Bird, BirdPaths};
