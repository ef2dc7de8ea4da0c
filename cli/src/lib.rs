//! kubectl-ferrolb: explains where ferrolb put an address, and checks and migrates configs.

pub mod check;
pub mod cluster;
pub mod fetch;
pub mod locate;
pub mod migrate;
pub mod nodes;
pub mod pools;
pub mod table;
#[cfg(test)]
mod testkit;
pub mod yaml;
