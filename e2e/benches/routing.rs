//! Routing benchmark: filled in by the #8 work.
fn main() {}
