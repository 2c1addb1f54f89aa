//! The command line of the mock server, shared by the `chatstorm-mock` binary and
//! `chatstorm mock`: options → `MockConfig` → bind → serve until Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use crate::{ExpiryPolicy, MockConfig};
use clap::{Parser, ValueEnum};
use tokio_util::sync::CancellationToken;

const FAULT_HELP: &str = "\
FAULT-CONTROL API
  Every request needs the header `X-Chatstorm-Secret: <fault secret>` (else 401): the secret of
  --fault-secret / CHATSTORM_FAULT_SECRET, never the app secret that signs tokens. Without either,
  a random one is generated and printed once on stdout at start. With --fault-listen the API is
  served only there (the client port answers /_fault with 404). Bodies are JSON; answers are
  JSON (400 with {\"error\": ...} on a bad body).

  GET  /_fault/stats                 counters: live_connections, longpoll_connections, accepted_total,
                                     ws_accepted_total, longpoll_accepted_total, connect_rejected_total,
                                     dropped_slow_consumers, longpoll_events_dropped, fault_dropped_total,
                                     events_queued_total, http_requests_total, rate_limited_total
  GET  /_fault/state                 the current fault settings
  POST /_fault/reset                 clear every fault
  GET  /_fault/violations            {\"available\": [...], \"enabled\": [...]}
  POST /_fault/violations            {\"enable\": [names], \"disable\": [names]}
  POST /_fault/drop                  {\"fraction\"?: 0.0-1.0, \"users\"?: [ids], \"mode\"?: \"close\"|\"abrupt\",
                                      \"code\"?: 1011, \"transport\"?: \"all\"|\"websocket\"|\"longpoll\", \"seed\"?: 0}
                                     -> {\"dropped\": n}; neither fraction nor users = every connection
  POST /_fault/half-open             {\"all\"?: bool, \"users\"?: [ids]}: those sockets go silent (no health
                                     replies, no periodic health checks, no events); {} heals all
  POST /_fault/refuse-upgrades       {\"duration_ms\": n, \"mode\"?: \"503\"|\"close\"}; 0 accepts again
  POST /_fault/latency               {\"frame_ms\"?: n, \"request_ms\"?: n}
  POST /_fault/first-frame-delay     {\"ms\": n}
  POST /_fault/expire-tokens         {\"all\"?: bool, \"users\"?: [ids], \"reason\"?: \"expired\"|\"revoked\",
                                     \"keep_tokens\"?: bool, \"keep_sockets\"?: bool, \"cutoff\"?: unix_s}
                                     -> {\"kicked\": n}: open connections get code 40 then close 1000;
                                     tokens issued up to now (or cutoff, or without iat) get code 40 from
                                     then on; keep_tokens: kick only; keep_sockets: cut-off only

  Violations (all off by default): typing_ignores_privacy, read_ignores_privacy, error_close_1006,
  omit_me, wrong_expired_code, no_health_reply, no_ping_reply, health_interval_x2,
  same_connection_id, no_sender_fanout, longpoll_unordered, longpoll_unknown_id_ok,
  incomplete_error_body, no_presence_event, no_rate_limit_headers, accept_alg_none,
  no_mark_read_to_self, recover_watch_ignored, rate_limit_wrong_code, connect_no_upsert,
  deliver_twice, drop_deliveries, reorder_deliveries, deliver_to_unwatched, stop_watching_ignored,
  skip_api_key_check, skip_permission_checks, trust_body_user_id. See
  mock-server/README.md for what each one does.

  Never serve on port 3030: the JS SDK rewrites :3030 to :8800 (WebSocket) and :8900 (long-poll).";

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Expiry {
    /// Keep sockets open when their token expires.
    Keep,
    /// Send code 40 and close 1000 when the token expires.
    Kick,
}

/// A Stream-Chat-compatible mock chat server with a fault-control API.
#[derive(Debug, Parser)]
#[command(name = "chatstorm-mock", version, about, long_about = None, after_long_help = FAULT_HELP, after_help = "Run with --help for the fault-control API.")]
pub struct Args {
    /// Address to listen on (REST, /connect, /longpoll, and /_fault unless --fault-listen is
    /// given). A warning is printed when it is not a loopback address.
    #[arg(long, default_value = "127.0.0.1:3031")]
    pub listen: SocketAddr,
    /// Serve the fault-control API on this address only (e.g. 127.0.0.1:0, a port clients never see).
    #[arg(long, value_name = "ADDR")]
    pub fault_listen: Option<SocketAddr>,
    /// The API key clients must send (anything else gets code 2).
    #[arg(long, default_value = "mock_api_key", env = "CHATSTORM_API_KEY")]
    pub api_key: String,
    /// The app secret: signs and verifies HS256 tokens (prefer the environment variable).
    #[arg(
        long,
        default_value = "mock_api_secret",
        env = "CHATSTORM_SECRET",
        hide_env_values = true
    )]
    pub secret: String,
    /// The fault-control secret (`X-Chatstorm-Secret`), separate from the app secret; prefer the
    /// environment variable. Absent: a random one, printed once at start.
    #[arg(long, value_name = "SECRET", env = "CHATSTORM_FAULT_SECRET", hide_env_values = true)]
    pub fault_secret: Option<String>,
    /// Close a connection with no request for this long (keep-alive idle timeout).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Close a connection whose request head is not complete this long after its first byte.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// Answer 408 (code 23) to a request body not complete within this time.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,
    /// Bytes of unfinished request bodies held over all connections; beyond, 503.
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    pub max_pending_body_bytes: usize,
    /// Interval of the server's health.check frames, e.g. 25s, 500ms (keep it under 30s for Unity
    /// clients, which close a socket after 30s without one).
    #[arg(long, default_value = "25s", value_parser = humantime::parse_duration)]
    pub health_interval: Duration,
    /// How long an idle long-poll request is held.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub longpoll_hold: Duration,
    /// Events buffered per long-poll connection between polls (the oldest are dropped beyond).
    #[arg(long, default_value_t = 1000)]
    pub longpoll_buffer: usize,
    /// Messages kept per channel for channel state and /sync (the real service keeps all; each
    /// costs about its serialized size, ~1.2 KB with its user).
    #[arg(long, default_value_t = crate::world::MESSAGES_KEPT)]
    pub messages_kept: usize,
    /// A long-poll connection with no poll for this long is closed.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub longpoll_idle_timeout: Duration,
    /// What happens to an open socket when its token expires.
    #[arg(long, value_enum, default_value = "keep")]
    pub expiry: Expiry,
    /// Accept developer tokens (signature `devtoken`), as an app with auth checks disabled.
    #[arg(long)]
    pub allow_dev_tokens: bool,
    /// Largest user object accepted, in bytes.
    #[arg(long, default_value_t = 5 * 1024)]
    pub user_size_limit: usize,
    /// Requests per user, per endpoint, per minute (code 9 / HTTP 429 beyond); off when absent.
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Frames queued per WebSocket before it is dropped as a slow consumer.
    #[arg(long, default_value_t = 256)]
    pub outbox_limit: usize,
    /// Worker threads (default: one per core). Beside a load generator on the same machine,
    /// give each its share: e.g. 1 of 2 cores (fewer threads also means fewer cross-thread
    /// wake-ups: about a quarter less CPU per connect with 1 worker than with 2).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Serve TLS (https://, wss://, the fault API too) with this PEM certificate chain (leaf
    /// first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key", conflicts_with = "tls_self_signed")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Serve TLS with a self-signed certificate made at start for 127.0.0.1 and localhost; its
    /// PEM is written to --tls-write-ca (default: a file in the temporary directory, whose path
    /// is printed), for clients to trust (chatstorm --ca-cert, NODE_EXTRA_CA_CERTS).
    #[arg(long)]
    pub tls_self_signed: bool,
    /// Where --tls-self-signed writes its certificate's PEM.
    #[arg(long, value_name = "PATH", requires = "tls_self_signed")]
    pub tls_write_ca: Option<std::path::PathBuf>,
}

/// The runtime the options in `argv` ask for: multi-threaded, `--threads` workers when given;
/// `--threads 1` is a current-thread runtime instead. Parsed before the real parse (which reports
/// bad options), since the runtime comes first.
///
/// Why current-thread for one thread: a multi-thread runtime with one worker still runs the
/// binary's `block_on` future on the main thread beside the worker, and every wake goes through
/// its shared queues and atomics; a current-thread runtime runs everything on the one thread
/// (the harness's user lanes do the same, `src/engine/lanes.rs`). Nothing in the mock blocks a
/// thread (no `block_in_place`, no `spawn_blocking`), so the behaviour is the same.
///
/// # Errors
/// When the runtime cannot be built.
pub fn runtime(argv: &[String]) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = match Args::try_parse_from(argv).ok().and_then(|a| a.threads) {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(usize::from(n));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    b.enable_all().build()
}

impl Args {
    /// The server configuration these options describe.
    pub fn config(&self) -> MockConfig {
        let fault_secret = self.fault_secret.clone().unwrap_or_default();
        MockConfig {
            api_key: self.api_key.clone(),
            secret: self.secret.clone(),
            fault_secret: if fault_secret.is_empty() {
                crate::config::random_secret()
            } else {
                fault_secret
            },
            idle_timeout: self.idle_timeout.max(Duration::from_millis(1)),
            header_timeout: self.header_timeout.max(Duration::from_millis(1)),
            body_timeout: self.body_timeout.max(Duration::from_millis(1)),
            max_pending_body_bytes: self.max_pending_body_bytes,
            health_interval: self.health_interval.max(Duration::from_millis(1)),
            longpoll_hold: self.longpoll_hold,
            longpoll_buffer: self.longpoll_buffer.max(1),
            messages_kept: self.messages_kept,
            longpoll_idle_timeout: self.longpoll_idle_timeout.max(Duration::from_millis(2)),
            expiry: match self.expiry {
                Expiry::Keep => ExpiryPolicy::Keep,
                Expiry::Kick => ExpiryPolicy::Kick,
            },
            allow_dev_tokens: self.allow_dev_tokens,
            user_size_limit: self.user_size_limit,
            rate_limit: self.rate_limit,
            outbox_limit: self.outbox_limit.max(1),
            ..MockConfig::default()
        }
    }
}

/// Parses `argv` (the first item is the program name) and serves until Ctrl-C. Prints the
/// listening address on stdout first (`chatstorm-mock listening on http://ADDR ...`), which is
/// what `chatstorm run` reads when it starts the mock as a child process.
///
/// # Errors
/// A one-line description when the options are invalid or the address cannot be bound.
pub async fn run(argv: Vec<String>) -> Result<(), String> {
    let args = Args::try_parse_from(argv).map_err(|e| {
        if matches!(
            e.kind(),
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
        ) {
            let _ = e.print();
            std::process::exit(0);
        }
        e.to_string().trim_end().to_owned()
    })?;
    let mut config = args.config();
    let mut ca_written = None;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(crate::tls::MockTls::from_pem_files(cert, key)?);
    } else if args.tls_self_signed {
        let made = crate::tls::SelfSigned::default().make()?;
        let path = args
            .tls_write_ca
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("chatstorm-mock-ca-{}.pem", std::process::id())));
        std::fs::write(&path, &made.cert_pem).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        config.tls = Some(made.tls);
        ca_written = Some(path);
    }
    let (http, ws) = if config.tls.is_some() {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    let listener = crate::listen::bind(args.listen).map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let fault_listener = match args.fault_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| format!("cannot listen on {a} (--fault-listen): {e}"))?,
        ),
        None => None,
    };
    for w in exposure_warnings(args.listen, args.fault_listen, config.tls.is_some()) {
        eprintln!("chatstorm-mock: warning: {w}");
    }
    let shutdown = CancellationToken::new();
    // Installed before the address is printed, so a Ctrl-C right after start is not lost.
    let stop = stop_signal().map_err(|e| format!("cannot install the Ctrl-C handler: {e}"))?;
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        stop.await;
        eprintln!("stopping");
        on_signal.cancel();
    });
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| args.listen.to_string());
    say(&format!(
        "chatstorm-mock listening on {http}://{addr} ({ws}://{addr}/connect)"
    ));
    if let Some(f) = fault_listener.as_ref().and_then(|l| l.local_addr().ok()) {
        say(&format!("fault-control API on {http}://{f}/_fault"));
    }
    if let Some(p) = &ca_written {
        say(&format!(
            "self-signed TLS certificate (for 127.0.0.1 and localhost) written to {}: trust it with --ca-cert or NODE_EXTRA_CA_CERTS",
            p.display()
        ));
    }
    if args.fault_secret.as_deref().is_none_or(str::is_empty) {
        // Printed once, so a person can use it; set it (flag or environment) to share it instead.
        say(&format!(
            "fault-control secret: {} (generated; set --fault-secret or CHATSTORM_FAULT_SECRET to choose it)",
            config.fault_secret
        ));
    }
    // Served from a worker thread, not from the caller's `block_on` thread: every connection's
    // task is then spawned onto that worker's own queue, instead of onto the shared queue with a
    // futex wake-up of a parked worker per accepted connection.
    match tokio::spawn(crate::serve_split(listener, fault_listener, config, shutdown)).await {
        Ok(served) => served.map_err(|e| e.to_string()),
        Err(e) => Err(format!("the server task ended abnormally: {e}")),
    }
}

/// A line on stdout, flushed at once (a parent reads the address from it). A reader that went
/// away must not take the server down, as `println!`'s panic on a closed pipe would.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// One warning per listener reachable beyond this machine (not loopback): without TLS its
/// traffic is in the clear, and without `--fault-listen` its fault-control API is on that
/// listener too.
pub fn exposure_warnings(listen: SocketAddr, fault_listen: Option<SocketAddr>, tls: bool) -> Vec<String> {
    let mut out = Vec::new();
    if !listen.ip().is_loopback() {
        out.push(format!(
            "--listen {listen} is reachable beyond this machine{}{}",
            if tls {
                ""
            } else {
                "; the mock serves no TLS (see --tls-cert)"
            },
            if fault_listen.is_none() {
                " and serves its fault-control API there (consider --fault-listen 127.0.0.1:0)"
            } else {
                ""
            }
        ));
    }
    if let Some(f) = fault_listen
        && !f.ip().is_loopback()
    {
        out.push(format!(
            "--fault-listen {f} is reachable beyond this machine; only the fault secret guards it"
        ));
    }
    out
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM; the handlers are installed before it returns.
#[cfg(unix)]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
