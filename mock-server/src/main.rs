//! `chatstorm-mock`: runs the mock server alone.
fn main() {}
