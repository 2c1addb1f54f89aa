//! The network layer: every connection the harness opens goes through here, so that what a
//! connection is (plain TCP, or TLS over it) is decided in one place.
//!
//! - [`connect`]: [`connect::open`], the one TCP connect (source address from [`SourceAddrs`]
//!   with the port left to `connect`, `TCP_NODELAY`), the URL resolvers, and [`Connector`], the
//!   same connect as hyper's connector. The simulated users' and the conformance suite's
//!   WebSockets call [`connect::open`]; every HTTP client connects through [`Connector`].
//! - [`client`]: [`Client`], the one HTTP/1.1 client type (hyper's pooled client), with the pool,
//!   connect timeout, body limit and an optional cap on requests in flight as [`ClientOptions`],
//!   and one [`Error`] whose [`ErrorKind`] says what failed (refused, reset, DNS, timeout, the
//!   harness's own descriptors, a body over the limit, no free slot, a refused TLS handshake).
//! - [`dns`]: each host name of a run looked up once before it starts, timed, and pinned for
//!   every connection of the run.
//! - [`sources`]: `--source-ips`, the local addresses of a run against a real server, and the
//!   port and descriptor budget checked before it starts.
//! - [`tls`]: [`Tls`], the run's one rustls client configuration (roots, `--ca-cert`,
//!   `--insecure`, ALPN `http/1.1`), the handshake and the one-line reason of a failed one;
//!   [`lean_tls`]: the TLS stream itself, on rustls's unbuffered API, holding no buffer while
//!   idle; [`handshake_cpu`]: the CPU the harness spends in its own handshakes;
//!   [`preflight`]: the one handshake to the target before a run's users start;
//!   [`resumption`]: which users resume their TLS sessions, and the ticket pool they share.
//!
//! Who uses it: the harness's control traffic (`engine`: probe, fault API, setup, state check)
//! with [`ClientOptions::default`]; the simulated users' two lanes (`user::http`: REST with slots,
//! held long-polls without) with their own options; the scripted conformance client
//! (`conformance::client`). The layer knows nothing of users, metrics or reports: a slot wait is
//! told to a [`SlotWatch`] the caller gives, for it to record.
//!
//! TLS (`https://`, `wss://`): [`Stream`] is plain or TLS; [`Connector`] does the handshake for
//! `https` URIs with the [`Tls`] of its [`ClientOptions`]; the WebSocket paths call
//! [`connect::secure`] after [`connect::open`] for `wss` URLs, with the run's [`Tls`] from the
//! target.

pub mod client;
pub mod connect;
pub mod dns;
pub mod handshake_cpu;
pub mod lean_tls;
pub mod preflight;
pub mod resumption;
pub mod sources;
pub mod tls;

pub use client::{
    Client, Error, ErrorKind, MAX_BODY, Options as ClientOptions, Response, Sent, SlotWatch, out_of_local_resources,
    snippet,
};
pub use connect::{Connector, ResolveError, SourceAddrs, Stream, resolve};
pub use tls::{Tls, TlsOptions};
