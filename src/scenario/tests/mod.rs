//! Unit tests of the scenario module against files and strings.

mod fixtures;
mod model;
mod robustness;
