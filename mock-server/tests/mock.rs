//! Integration tests of chatstorm-mock over real loopback sockets: one binary, one module per area.

#[path = "mock/util.rs"]
mod util;

#[path = "mock/cli.rs"]
mod cli;
#[path = "mock/connect.rs"]
mod connect;
#[path = "mock/fanout.rs"]
mod fanout;
#[path = "mock/faults.rs"]
mod faults;
#[path = "mock/hostile.rs"]
mod hostile;
#[path = "mock/longpoll.rs"]
mod longpoll;
#[path = "mock/profiles.rs"]
mod profiles;
#[path = "mock/rest.rs"]
mod rest;
#[path = "mock/server_api.rs"]
mod server_api;
#[path = "mock/unity.rs"]
mod unity;
