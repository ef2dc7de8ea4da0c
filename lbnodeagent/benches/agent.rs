//! Agent benchmark: filled in by the #6 work.
fn main() {}
