//! kubectl-ferrolb: explains where ferrolb put an address, and checks and migrates configs.

pub mod check;
pub mod migrate;
pub mod yaml;
