//! Measures the harness's resident memory per idle connected simulated user.
//!
//! Start a mock in another process, then run this against it:
//! ```text
//! cargo run --release -p chatstorm-mock -- --listen 127.0.0.1:3041 &
//! cargo run --release --example user_rss -- http://127.0.0.1:3041 2000 js
//! ```
//! Prints the resident set before and after N users connected (JS profile, provider tokens, no
//! channels or behaviours: idle users that only keep their health checks), and the difference per
//! user. Users are spread over the loopback source addresses 127.0.0.1 to 127.0.0.8. An
//! `https://` base measures users over wss: start the mock with `--tls-self-signed --tls-write-ca
//! FILE` and set `CHATSTORM_CA_CERT=FILE` here.

use chatstorm::metrics::{Gauge, Recorder};
use chatstorm::target::{Target, TargetAuth};
use chatstorm::user::{
    Behaviour, DeliveryTracker, SourceAddrs, TokenMode, TokenSpec, UserCtx, UserSpec, http, run_user,
};
use chatstorm_protocol::{PrivacySettings, Profile};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Counts live heap bytes, to tell live state from allocator overhead in the resident set.
struct Counting;

static LIVE: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size() as i64, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_heap() -> i64 {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "http://127.0.0.1:3041".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let profile = args.next().and_then(|p| Profile::from_name(&p)).unwrap_or(Profile::Js);
    let Ok(url) = base.parse() else {
        eprintln!("user_rss: {base} is not a URL");
        std::process::exit(2);
    };
    let secret = b"mock_api_secret".to_vec();
    let target = match Target::new(
        url,
        "mock_api_key".into(),
        TargetAuth::Secret(secret.clone()),
        Some(secret),
    )
    .and_then(|t| {
        t.with_tls(&chatstorm::net::TlsOptions {
            ca_cert: std::env::var_os("CHATSTORM_CA_CERT").map(Into::into),
            insecure: false,
        })
    }) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("user_rss: {e}");
            std::process::exit(2);
        }
    };
    let ids: Vec<String> = (0..n).map(|i| format!("rss-{i}")).collect();
    let client = http::HttpClient::with_tls(http::DEFAULT_SLOTS, None, target.tls.clone());
    let ctx = Arc::new(UserCtx {
        target,
        recorder: Recorder::new(),
        http: client,
        source_addrs: SourceAddrs::loopback(8),
        deliveries: DeliveryTracker::new(&ids, &[]),
        observer: None,
        run_start: Instant::now(),
        run_over: tokio_util::sync::CancellationToken::new(),
    });
    let (tx, _) = broadcast::channel(4);
    let cancel = CancellationToken::new();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_bytes();
    let heap_before = live_heap();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for (i, id) in ids.iter().enumerate() {
        let spec = UserSpec {
            index: i as u32,
            id: id.clone(),
            profile,
            token: TokenSpec {
                mode: TokenMode::Provider,
                ttl: None,
            },
            privacy: PrivacySettings::default(),
            fallback: false,
            custom_bytes: 0,
            channels: Vec::new(),
            behaviour: Behaviour::default(),
            seed: i as u64,
            intended_start: None,
            unity: Default::default(),
            fixed_backoff: None,
        };
        tasks.push(tokio::spawn(run_user(
            spec,
            ctx.clone(),
            tx.subscribe(),
            cancel.clone(),
        )));
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while ctx.recorder.gauge(Gauge::Connected) < n as i64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected = ctx.recorder.gauge(Gauge::Connected);
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_bytes();
    println!(
        "live heap per user: {} bytes",
        (live_heap() - heap_before) / n.max(1) as i64
    );
    // What stays after glibc returns freed pages (handshake buffers freed but not yet returned).
    // SAFETY: malloc_trim only releases free heap memory; no pointer is touched.
    unsafe {
        libc::malloc_trim(0);
    }
    let trimmed = rss_bytes();
    println!(
        "after malloc_trim: {} KiB; delta per user {} bytes",
        trimmed / 1024,
        trimmed.saturating_sub(before) / n.max(1) as u64
    );
    println!(
        "users {n} profile {profile} connected {connected} in {:.1}s; rss before {} KiB, after {} KiB; \
         delta per user {} bytes; rss per user {} bytes",
        took.as_secs_f64(),
        before / 1024,
        after / 1024,
        after.saturating_sub(before) / n.max(1) as u64,
        after / n.max(1) as u64
    );
    cancel.cancel();
    for t in tasks {
        let _ = t.await;
    }
}
