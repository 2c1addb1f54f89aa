//! The contract between a Stream-Chat-compatible client and server, as the official SDKs speak it
//! (see `PROTOCOL.md` in the steering repository): wire events, error bodies and codes, the
//! `/connect` request per SDK profile, JWT handling, the reconnect back-off and size limits.
//!
//! No I/O lives here: no tokio, no sockets. Both the mock server and the harness depend on this
//! crate, so one type serves the side that sends a message and the side that reads it.
#![warn(missing_docs)]

pub mod backoff;
pub mod connect;
pub mod error;
pub mod event;
pub mod limits;
pub mod rest;
pub mod time;
pub mod token;
pub mod user;

pub use connect::Profile;
pub use error::{ErrorBody, ErrorCode};
pub use event::ServerEvent;
pub use user::{OwnUser, PrivacySettings, User};
