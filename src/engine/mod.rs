//! The engine: turns a validated scenario into a schedule of users and timeline actions, runs
//! them against the target, and gathers what they measured.

pub mod schedule;
