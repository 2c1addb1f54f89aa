//! The simulated user.
pub mod auth;
pub mod delivery;
pub mod http;
pub mod machine;
pub mod profile;
pub mod record;
