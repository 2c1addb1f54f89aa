//! chatstorm: load testing and conformance checking of the connection lifecycle of
//! Stream-Chat-compatible servers.

pub mod cli;
pub mod engine;
pub mod exit;
pub mod metrics;
pub mod scenario;
pub mod seed;
pub mod sys;
pub mod target;
pub mod user;
