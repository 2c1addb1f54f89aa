//! The one place the user module names its measurement types: everything is recorded into the
//! run's `crate::metrics::Recorder` (lock-free, shared by every user).

pub use crate::metrics::{Counter, Gauge, Metric, Recorder, RestEndpoint};
