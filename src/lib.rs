//! chatstorm: load testing and conformance checking of the connection lifecycle of
//! Stream-Chat-compatible servers.

pub mod conformance;
pub mod target;
