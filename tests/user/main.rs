//! Simulated users against the in-process mock server over real loopback sockets.

mod common;
mod lifecycle;
mod profiles;
mod recovery;
mod traffic;
mod unity;
