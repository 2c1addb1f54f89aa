//! Integration tests of chatstorm-mock over real loopback sockets: one binary, one module per area.

#[path = "mock/util.rs"]
mod util;

#[path = "mock/connect.rs"]
mod connect;
#[path = "mock/fanout.rs"]
mod fanout;
#[path = "mock/faults.rs"]
mod faults;
#[path = "mock/longpoll.rs"]
mod longpoll;
#[path = "mock/rest.rs"]
mod rest;
