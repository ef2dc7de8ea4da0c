//! kubectl-ferrolb: reports what is wrong, explains where ferrolb put an address, and checks and
//! migrates configs.

pub mod check;
pub mod cluster;
pub mod fetch;
pub mod locate;
pub mod migrate;
pub mod nodes;
pub mod output;
pub mod pools;
pub mod status;
pub mod table;
#[cfg(test)]
mod testkit;
pub mod version;
pub mod yaml;
