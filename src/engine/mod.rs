//! The engine: turns a validated scenario into a schedule of users and timeline actions, runs
//! them against the target, and gathers what they measured.
//!
//! Layout: `schedule` (load stages → intended start/stop per user index), `run` (one run start
//! to finish), `users` (specs and spawning), `timeline` (faults and actions at offsets),
//! `fault` (the mock's fault-control API), `embedded` (starting the bundled mock), `probe`
//! (is the target there), `lag` (is the generator keeping up), `lanes` (the threads users run
//! on), `link` (a run steered by a fleet), `progress` (the live line),
//! `signals` (SIGINT/SIGTERM), `children` (child processes that die with the harness), `watch`
//! (what live watchers of a run are handed each second).

pub mod abort;
pub mod children;
pub mod embedded;
pub mod fault;
pub mod figures;
pub mod lag;
pub mod lanes;
pub mod link;
pub mod probe;
pub mod progress;
pub mod run;
pub mod schedule;
pub mod setup;
pub mod signals;
pub mod timeline;
pub mod tls_load;
pub mod users;
pub mod watch;
pub mod workers;
