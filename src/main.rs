//! `chatstorm`: the command line.
fn main() {}
