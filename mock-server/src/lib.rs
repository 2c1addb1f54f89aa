//! chatstorm-mock: a Stream-Chat-compatible chat server with a fault-control API.
