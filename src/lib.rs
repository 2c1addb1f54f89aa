//! chatstorm: load testing and conformance checking of the connection lifecycle of
//! Stream-Chat-compatible servers.

pub mod api;
pub mod commands;
pub mod conformance;
pub mod engine;
pub mod exit;
pub mod http;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod run_folder;
pub mod scenario;
pub mod seed;
pub mod sys;
pub mod target;
pub mod user;
