//! The simulated user.
pub mod machine;
pub mod profile;
