//! Property-based fuzzing (proptest, stable Rust) of everything that reads bytes from outside:
//! the scenario parser, the event and frame decoders (server events, the mock's client frames,
//! the WebSocket upgrade response), the JWT verifier, and the mock's request handlers over real
//! loopback sockets. Each test is one target; its sub-properties run in turn, in seeded batches.
//!
//! Budget, from the environment:
//! - `CHATSTORM_FUZZ_CASES` (default 32): cases per sub-property in a plain `cargo test` (CI: seconds);
//! - `CHATSTORM_FUZZ_SECS`: run batches until this many seconds have passed instead
//!   (`CHATSTORM_FUZZ_SECS=600 cargo test --release --test fuzz jwt -- --nocapture`);
//! - `CHATSTORM_FUZZ_SEED` (default 42): every batch's RNG is derived from it, so a failure
//!   reproduces with the same seed; proptest shrinks it and the message shows the minimal input.
//!
//! Each target prints one line `fuzz <target>: <n> cases in <s> s, <f> failures (...)`, which
//! `benches/fuzz.sh` collects. A crash found here is fixed in the crate it belongs to, with the
//! failing input kept there as a unit test (none found so far: see the commit that added this).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::StreamExt as _;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The runner: batches of seeded proptest runs until the case count or the time budget is spent.

/// Cases per batch in a timed run: small enough that the time budget is kept to about a second.
const TIMED_BATCH: u32 = 64;

/// One sub-property of a target: runs `cases` cases with the given RNG, `Err` with proptest's
/// report (minimal failing input included) on failure.
type Part<'a> = (&'static str, Box<dyn Fn(u32, TestRng) -> Result<(), String> + 'a>);

fn part<'a, S>(name: &'static str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError> + 'a) -> Part<'a>
where
    S: Strategy + 'a,
    S::Value: std::fmt::Debug,
{
    let run = move |cases: u32, rng: TestRng| {
        let config = Config {
            cases,
            // Regressions are kept as named tests in this file, not in a proptest-regressions dir.
            failure_persistence: None,
            max_shrink_time: 60_000,
            max_global_rejects: cases.saturating_mul(4),
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(config, rng);
        runner.run(&strategy, &test).map_err(|e| e.to_string())
    };
    (name, Box::new(run))
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: expected a whole number")),
    )
}

/// Runs every part of `target` within the budget from the environment; panics on the first
/// failure with the shrunk input.
fn run_target(target: &str, parts: Vec<Part<'_>>) {
    let seed = env_u64("CHATSTORM_FUZZ_SEED").unwrap_or(42);
    let secs = env_u64("CHATSTORM_FUZZ_SECS");
    let cases = env_u64("CHATSTORM_FUZZ_CASES")
        .unwrap_or(32)
        .clamp(1, u64::from(u32::MAX)) as u32;
    let start = Instant::now();
    let mut counts = vec![0u64; parts.len()];
    let mut batch: u64 = 0;
    loop {
        for (i, (name, run)) in parts.iter().enumerate() {
            let n = if secs.is_some() { TIMED_BATCH } else { cases };
            let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed, target, name, batch));
            if let Err(report) = run(n, rng) {
                let total: u64 = counts.iter().sum();
                println!(
                    "fuzz {target}: {total} cases in {:.2} s, 1 failures ({name} failed in batch {batch}, seed {seed})",
                    start.elapsed().as_secs_f64()
                );
                panic!("fuzz {target}/{name} failed (seed {seed}, batch {batch}): {report}");
            }
            counts[i] += u64::from(n);
        }
        batch += 1;
        match secs {
            Some(s) if start.elapsed() < Duration::from_secs(s) => {}
            _ => break,
        }
    }
    let total: u64 = counts.iter().sum();
    let breakdown: Vec<String> = parts
        .iter()
        .zip(&counts)
        .map(|((n, _), c)| format!("{n} {c}"))
        .collect();
    println!(
        "fuzz {target}: {total} cases in {:.2} s, 0 failures ({}; seed {seed})",
        start.elapsed().as_secs_f64(),
        breakdown.join(", ")
    );
}

/// A 32-byte ChaCha seed from the run seed, the target, the part and the batch (FNV-1a, spread).
fn seed_bytes(seed: u64, target: &str, part: &str, batch: u64) -> [u8; 32] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in target.bytes().chain([0]).chain(part.bytes()).chain(batch.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let v = (h ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Shared strategies.

/// Arbitrary JSON with keys drawn mostly from `keys` (so decoders get past their first check).
fn json_value(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let keys: &'static [&'static str] = if keys.is_empty() { &["id", "type"] } else { keys };
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z0-9:._-]{0,12}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
        Just(Value::String("2026-12-04T16:00:00.000000Z".to_owned())),
        Just(Value::String("messaging:general".to_owned())),
    ];
    let key = prop_oneof![4 => proptest::sample::select(keys).prop_map(str::to_owned), 1 => any::<String>()];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Text that is a serialised [`json_value`] most of the time, else arbitrary or cut JSON.
fn json_text(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => json_value(keys).prop_map(|v| v.to_string()),
        1 => any::<String>(),
        1 => (json_value(keys), any::<prop::sample::Index>()).prop_map(|(v, i)| {
            let s = v.to_string();
            let cut = i.index(s.len() + 1);
            s.char_indices().map(|(i, _)| i).take_while(|&i| i <= cut).last().map_or(s.clone(), |c| s[..c].to_owned())
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Target `scenario`: YAML text to a validated model.

const SCENARIO_FILES: &[(&str, &str)] = &[
    ("capacity-ramp.yaml", include_str!("../scenarios/capacity-ramp.yaml")),
    (
        "longpoll-fallback.yaml",
        include_str!("../scenarios/longpoll-fallback.yaml"),
    ),
    ("mixed-fleet.yaml", include_str!("../scenarios/mixed-fleet.yaml")),
    ("privacy.yaml", include_str!("../scenarios/privacy.yaml")),
    (
        "reconnect-storm.yaml",
        include_str!("../scenarios/reconnect-storm.yaml"),
    ),
    ("smoke.yaml", include_str!("../scenarios/smoke.yaml")),
    ("token-expiry.yaml", include_str!("../scenarios/token-expiry.yaml")),
];

/// YAML fragments that stress the parser and the validator: specials, anchors, numbers at the
/// edges, durations, tags, flow collections, document markers, odd whitespace.
const YAML_TOKENS: &[&str] = &[
    "~",
    "null",
    "-1",
    "0",
    "1",
    "-0",
    "1e309",
    "99999999999999999999",
    "18446744073709551616",
    "4294967296",
    "9223372036854775807",
    "0x10",
    "0o7",
    ".inf",
    "-.inf",
    ".nan",
    "NaN",
    "5s",
    "5",
    "-5s",
    "0s",
    "0ms",
    "1h",
    "1d",
    "1y",
    "5 s",
    "5S",
    "99999999999h",
    "18446744073709551616s",
    "1.5s",
    "100%",
    "101%",
    "-1%",
    "[",
    "]",
    "{",
    "}",
    "[]",
    "{}",
    "&a",
    "*a",
    "&a x",
    "*b",
    "<<: *a",
    "!!binary aGk=",
    "!tag",
    "!!int",
    "'",
    "\"",
    "\"\\u0000\"",
    "?",
    "? x",
    "|",
    ">",
    "|-",
    "---",
    "...",
    "%YAML 1.2",
    "\t",
    "é",
    "\u{FEFF}",
    ":",
    ": ",
    "- ",
    "-",
    "#",
    "{a: [b, {c: d}]}",
    "true",
    "yes",
    "on",
    "\"\"",
    "''",
    "{index}",
    "user-{index}",
    "{",
    "a: b: c",
    "[[[[[[[[[[[[[[[[",
    "\u{0}",
    "\r",
    "\r\n",
    "\u{2028}",
    "js",
    "android",
    "unity",
    "longpoll",
    "name",
    "users",
    "count",
    "load",
    "ramp",
    "hold",
    "to",
    "over",
    "timeline",
    "at",
    "for",
    "every",
    "fraction",
    "thresholds",
    "verdict",
    "channels",
    "members",
    "behaviour",
    "token",
    "ttl",
    "mode",
    "provider",
    "profile",
    "id",
    "seed",
    "target",
    "fallback",
];

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(prop::sample::Index),
    DuplicateLine(prop::sample::Index),
    SwapLines(prop::sample::Index, prop::sample::Index),
    /// Replaces the value after the first `:` of a line (or the list item) with a token.
    ReplaceValue(prop::sample::Index, &'static str),
    InsertLine(prop::sample::Index, String),
    /// Indents (positive) or dedents a line.
    Indent(prop::sample::Index, i8),
    InsertText(prop::sample::Index, String),
    Truncate(prop::sample::Index),
    /// An anchor on one line's value and aliases of it on others (alias bombs, cycles).
    Alias(prop::sample::Index, prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let idx = any::<prop::sample::Index>;
    let token = || proptest::sample::select(YAML_TOKENS);
    let line = prop_oneof![
        (token(), token()).prop_map(|(k, v)| format!("{k}: {v}")),
        (0usize..6, token(), token()).prop_map(|(n, k, v)| format!("{}- {k}: {v}", " ".repeat(n))),
        (0usize..6, token()).prop_map(|(n, t)| format!("{}{t}", "  ".repeat(n))),
        any::<String>(),
    ];
    prop_oneof![
        2 => idx().prop_map(Mutation::DeleteLine),
        1 => idx().prop_map(Mutation::DuplicateLine),
        1 => (idx(), idx()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        4 => (idx(), token()).prop_map(|(i, t)| Mutation::ReplaceValue(i, t)),
        2 => (idx(), line).prop_map(|(i, l)| Mutation::InsertLine(i, l)),
        1 => (idx(), -4i8..4).prop_map(|(i, d)| Mutation::Indent(i, d)),
        1 => (idx(), prop_oneof![token().prop_map(str::to_owned), any::<String>()])
            .prop_map(|(i, t)| Mutation::InsertText(i, t)),
        1 => idx().prop_map(Mutation::Truncate),
        1 => (idx(), idx()).prop_map(|(a, b)| Mutation::Alias(a, b)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let n = lines.len();
    let set_value = |line: &str, value: &str| match line.find(": ").or_else(|| line.find("- ")) {
        Some(p) => format!("{}{value}", &line[..p + 2]),
        None => format!("{line} {value}"),
    };
    match m {
        Mutation::DeleteLine(i) => {
            lines.remove(i.index(n));
        }
        Mutation::DuplicateLine(i) => {
            let l = lines[i.index(n)].clone();
            lines.insert(i.index(n), l);
        }
        Mutation::SwapLines(a, b) => lines.swap(a.index(n), b.index(n)),
        Mutation::ReplaceValue(i, t) => {
            let i = i.index(n);
            lines[i] = set_value(&lines[i], t);
        }
        Mutation::InsertLine(i, l) => lines.insert(i.index(n + 1), l.clone()),
        Mutation::Indent(i, d) => {
            let i = i.index(n);
            let l = &lines[i];
            lines[i] = if *d >= 0 {
                format!("{}{l}", " ".repeat(*d as usize))
            } else {
                let strip = l.len() - l.trim_start_matches(' ').len();
                l[strip.min(d.unsigned_abs() as usize)..].to_owned()
            };
        }
        Mutation::InsertText(i, t) => {
            let whole = lines.join("\n");
            let at = floor_char(&whole, i.index(whole.len() + 1));
            return format!("{}{t}{}", &whole[..at], &whole[at..]);
        }
        Mutation::Truncate(i) => {
            let whole = lines.join("\n");
            return whole[..floor_char(&whole, i.index(whole.len() + 1))].to_owned();
        }
        Mutation::Alias(a, b) => {
            let (a, b) = (a.index(n), b.index(n));
            let anchored = set_value(&lines[a], "&x [*x, *x, *x, *x, *x, *x, *x, *x, *x]");
            lines[a] = anchored;
            lines[b] = set_value(&lines[b], "*x");
        }
    }
    lines.join("\n") + "\n"
}

fn floor_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The parser's contract on any text: no panic; `Err` carries at least one problem, each one
/// line, starting `fuzz.yaml:line:column: ` with both 1-based (a text always has a place).
fn check_scenario(text: &str) -> Result<(), TestCaseError> {
    match chatstorm::scenario::parse("fuzz.yaml", text) {
        Ok(s) => {
            // A valid scenario names itself (the default is the file stem).
            prop_assert!(!s.name.is_empty(), "a valid scenario without a name");
        }
        Err(errors) => {
            prop_assert!(!errors.0.is_empty(), "an error without a problem");
            for p in &errors.0 {
                let line = p.to_string();
                prop_assert!(!line.contains(['\n', '\r']), "problem over several lines: {line:?}");
                prop_assert!(p.line >= 1 && p.column >= 1, "problem without a place: {line:?}");
                let prefix = format!("fuzz.yaml:{}:{}: ", p.line, p.column);
                prop_assert!(line.starts_with(&prefix), "problem not `file:line:column: `: {line:?}");
                prop_assert!(!p.message.trim().is_empty(), "empty message: {line:?}");
            }
        }
    }
    Ok(())
}

#[test]
fn scenario() {
    run_target(
        "scenario",
        vec![
            part("bytes", proptest::collection::vec(any::<u8>(), 0..512), |bytes| {
                check_scenario(&String::from_utf8_lossy(&bytes))
            }),
            part(
                "mutations",
                (
                    proptest::sample::select(SCENARIO_FILES),
                    proptest::collection::vec(mutation(), 1..6),
                ),
                |((_, text), mutations)| {
                    let mut t = (*text).to_owned();
                    for m in &mutations {
                        t = apply(&t, m);
                    }
                    check_scenario(&t)
                },
            ),
            part(
                "token_soup",
                proptest::collection::vec(proptest::sample::select(YAML_TOKENS), 0..40),
                |tokens| {
                    // Tokens glued by YAML's structural characters: deep and odd structure.
                    let mut t = String::new();
                    for (i, tok) in tokens.iter().enumerate() {
                        t.push_str(tok);
                        t.push_str([": ", "\n", "\n  ", ", ", " ", "\n- "][i % 6]);
                    }
                    check_scenario(&t)
                },
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Target `decoders`: server events, client frames (directly and through the mock's socket),
// and the harness's WebSocket upgrade response parser (over a real socket).

const EVENT_KEYS: &[&str] = &[
    "type",
    "error",
    "code",
    "message",
    "StatusCode",
    "duration",
    "more_info",
    "details",
    "connection_id",
    "cid",
    "channel_id",
    "channel_type",
    "channel",
    "user",
    "user_id",
    "id",
    "created_at",
    "me",
    "text",
    "unread_channels",
    "total_unread_count",
    "watcher_count",
    "online",
    "last_read",
    "client_id",
    "name",
];
const EVENT_TYPES: &[&str] = &[
    "health.check",
    "connection.error",
    "typing.start",
    "typing.stop",
    "message.read",
    "notification.mark_read",
    "message.new",
    "notification.message_new",
    "user.presence.changed",
    "user.updated",
    "user.watching.start",
    "user.watching.stop",
    "HEALTH.CHECK",
    "other.kind",
];

/// A JSON object shaped like an event: a known `type` and fields of any JSON type.
fn event_like() -> impl Strategy<Value = Value> {
    (
        proptest::sample::select(EVENT_TYPES),
        proptest::collection::vec((proptest::sample::select(EVENT_KEYS), json_value(EVENT_KEYS)), 0..10),
        any::<bool>(),
    )
        .prop_map(|(kind, fields, typed)| {
            let mut obj: serde_json::Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if typed {
                obj.insert("type".to_owned(), Value::from(kind));
            }
            Value::Object(obj)
        })
}

fn check_event_text(text: &str) -> Result<(), TestCaseError> {
    if let Ok(event) = chatstorm_protocol::event::ServerEvent::parse(text) {
        // Every accessor a consumer calls must work on whatever was accepted, and what we
        // write back must read again.
        let _ = (
            event.kind(),
            event.created_at(),
            event.error(),
            event.cid(),
            event.user_id(),
        );
        let again = chatstorm_protocol::event::ServerEvent::parse(&event.to_json());
        prop_assert!(
            again.is_ok(),
            "accepted {text:?} but not its own re-serialisation: {again:?}"
        );
    }
    let _ = chatstorm_protocol::event::parse_client_frame(text);
    Ok(())
}

/// A mock for the socket-level parts; its panics are counted by [`count_panics`].
fn fuzz_mock_config() -> chatstorm_mock::MockConfig {
    chatstorm_mock::MockConfig {
        api_key: MOCK_KEY.into(),
        secret: MOCK_SECRET.into(),
        // Unknown to the fuzzer: the fault API answers 401/403, never runs a fault.
        fault_secret: chatstorm_mock::random_secret(),
        health_interval: Duration::from_secs(600),
        longpoll_hold: Duration::from_millis(50),
        // A case whose request never completes costs this much, not 10 s.
        header_timeout: Duration::from_secs(2),
        body_timeout: Duration::from_secs(2),
        ..chatstorm_mock::MockConfig::default()
    }
}

const MOCK_KEY: &str = "fuzz_key";
const MOCK_SECRET: &str = "fuzz_secret";
/// Worker threads of the runtime serving the mock: panics on them are the mock's.
const MOCK_THREAD: &str = "fuzz-mock";
static MOCK_PANICS: AtomicU64 = AtomicU64::new(0);

/// Counts panics on the mock's runtime threads (a panicking hyper or WebSocket task is caught by
/// tokio and would otherwise go unnoticed), then reports them as usual.
fn count_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with(MOCK_THREAD))
            {
                MOCK_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

fn mock_runtime() -> tokio::runtime::Runtime {
    count_panics();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(MOCK_THREAD)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn hs256(secret: &[u8], input: &str) -> Vec<u8> {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// An HS256 token over arbitrary claims, signed with the mock's secret.
fn mock_token(claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(hs256(MOCK_SECRET.as_bytes(), &input))
    )
}

const WAIT: Duration = Duration::from_secs(10);

/// The mock answers a normal request: `GET /hi` is 200.
async fn assert_alive(addr: std::net::SocketAddr) -> Result<(), TestCaseError> {
    let reply = raw_exchange(
        addr,
        b"GET /hi HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n",
        false,
    )
    .await?;
    prop_assert!(
        reply.starts_with(b"HTTP/1.1 200"),
        "GET /hi after the case: {:?}",
        lossy(&reply, 200)
    );
    let panics = MOCK_PANICS.load(Ordering::SeqCst);
    prop_assert_eq!(panics, 0, "a mock task panicked");
    Ok(())
}

fn lossy(b: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned()
}

/// Sends `request` on a new connection and reads the answer: up to the end of the head when it
/// is a 101 (the socket then stays open), else to EOF. `half_close` shuts the write side after
/// sending (for requests that are not complete by themselves).
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8], half_close: bool) -> Result<Vec<u8>, TestCaseError> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        // The mock may answer (and close) before reading the whole request: a failed write is
        // then not a finding, the answer is.
        let _ = s.write_all(request).await;
        if half_close {
            let _ = s.shutdown().await;
        }
        let mut reply = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = match s.read(&mut buf).await {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            if reply.starts_with(b"HTTP/1.1 101") && reply.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        Ok::<_, std::io::Error>(reply)
    };
    match tokio::time::timeout(WAIT, io).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(TestCaseError::fail(format!("socket error: {e}"))),
        Err(_) => Err(TestCaseError::fail("no complete answer within 10 s")),
    }
}

/// One WebSocket frame as a client might send it, fields free (a hostile client).
#[derive(Debug, Clone)]
struct RawFrame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    masked: bool,
    /// Declared length form: 0 = as the payload needs, 1 = 16-bit, 2 = 64-bit (even if small),
    /// 3 = a declared length larger than the payload.
    length_form: u8,
    payload: Vec<u8>,
}

impl RawFrame {
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![(u8::from(self.fin) << 7) | ((self.rsv & 7) << 4) | (self.opcode & 15)];
        let len = self.payload.len() as u64;
        let mask_bit = u8::from(self.masked) << 7;
        match self.length_form {
            0 if len < 126 => out.push(mask_bit | len as u8),
            0 | 1 if len <= 0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            3 => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(len + 1_000_000_000).to_be_bytes());
            }
            _ => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        let key = [0x37, 0xfa, 0x21, 0x3d];
        if self.masked {
            out.extend_from_slice(&key);
        }
        out.extend(
            self.payload
                .iter()
                .enumerate()
                .map(|(i, b)| if self.masked { b ^ key[i % 4] } else { *b }),
        );
        out
    }
}

fn raw_frame() -> impl Strategy<Value = RawFrame> {
    let text_payload = prop_oneof![
        3 => json_text(EVENT_KEYS).prop_map(String::into_bytes),
        1 => Just(br#"[{"type":"health.check","client_id":"fuzz--1"}]"#.to_vec()),
        1 => Just(br#"{"Type":"health.check"}"#.to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..300),
    ];
    (
        prop_oneof![8 => Just(true), 1 => Just(false)],
        prop_oneof![8 => Just(0u8), 1 => 0u8..8],
        prop_oneof![6 => Just(1u8), 2 => Just(2u8), 1 => Just(8u8), 1 => Just(9u8), 1 => Just(10u8), 1 => Just(0u8), 1 => 0u8..16],
        prop_oneof![8 => Just(true), 1 => Just(false)],
        prop_oneof![8 => Just(0u8), 1 => 1u8..4],
        text_payload,
    )
        .prop_map(|(fin, rsv, opcode, masked, length_form, payload)| RawFrame {
            fin,
            rsv,
            opcode,
            masked,
            length_form,
            payload,
        })
}

/// Opens `/connect` on the mock by hand (so raw frames can follow) and returns the socket after
/// the 101 head, or `None` when the mock refused the upgrade.
async fn mock_socket(addr: std::net::SocketAddr, user: &str) -> Result<Option<tokio::net::TcpStream>, TestCaseError> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let payload = json!({"user_id": user, "user_details": {"id": user}, "client_request_id": "fuzz"});
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("json", &payload.to_string())
        .append_pair("api_key", MOCK_KEY)
        .append_pair("authorization", &mock_token(&json!({"user_id": user})))
        .append_pair("stream-auth-type", "jwt")
        .finish();
    let head = format!(
        "GET /connect?{query} HTTP/1.1\r\nHost: fuzz\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(head.as_bytes()).await?;
        let mut reply = Vec::new();
        while !reply.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut b = [0u8; 1];
            if s.read(&mut b).await? == 0 {
                break;
            }
            reply.push(b[0]);
        }
        Ok::<_, std::io::Error>((s, reply))
    };
    let (s, reply) = match tokio::time::timeout(WAIT, io).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(TestCaseError::fail(format!("socket error during the upgrade: {e}"))),
        Err(_) => return Err(TestCaseError::fail("no upgrade answer within 10 s")),
    };
    prop_assert!(
        reply.starts_with(b"HTTP/1.1 101"),
        "upgrade refused: {:?}",
        lossy(&reply, 300)
    );
    Ok(Some(s))
}

/// Sends `frames` (and optionally trailing garbage) on an upgraded socket, reads whatever the
/// mock answers until it closes or goes quiet, and checks the mock still serves.
async fn mock_frames_case(
    addr: std::net::SocketAddr,
    user: &str,
    frames: &[RawFrame],
    garbage: &[u8],
) -> Result<(), TestCaseError> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let Some(mut s) = mock_socket(addr, user).await? else {
        return Ok(());
    };
    let mut bytes: Vec<u8> = frames.iter().flat_map(RawFrame::encode).collect();
    bytes.extend_from_slice(garbage);
    // A close frame last, so that a mock which kept the connection answers and closes it.
    bytes.extend(
        RawFrame {
            fin: true,
            rsv: 0,
            opcode: 8,
            masked: true,
            length_form: 0,
            payload: vec![3, 232],
        }
        .encode(),
    );
    let _ = s.write_all(&bytes).await;
    let drain = async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    // The mock answers a close (or a protocol error) at once; a frame with a declared length
    // beyond what was sent leaves it waiting for the rest, so the wait is bounded and short.
    let _ = tokio::time::timeout(Duration::from_millis(300), drain).await;
    drop(s);
    assert_alive(addr).await
}

/// A 101 response (or a mutation of it) as a server under test might send it.
#[derive(Debug, Clone)]
struct UpgradeReply {
    status_line: String,
    /// Header lines; `{accept}` is replaced with the right accept key.
    headers: Vec<String>,
    /// Bytes after the head: the server's first frames, or garbage.
    tail: Vec<u8>,
    /// Where the reply is cut into writes (byte offsets), to exercise partial heads.
    cuts: Vec<prop::sample::Index>,
    /// Stop writing after this many bytes (a server that dies mid-head), if set.
    truncate: Option<prop::sample::Index>,
}

fn upgrade_reply() -> impl Strategy<Value = UpgradeReply> {
    let status = prop_oneof![
        6 => Just("HTTP/1.1 101 Switching Protocols".to_owned()),
        1 => Just("HTTP/1.1 200 OK".to_owned()),
        1 => Just("HTTP/1.0 101 Switching Protocols".to_owned()),
        1 => Just("HTTP/1.1 101".to_owned()),
        1 => (0u16..1000).prop_map(|c| format!("HTTP/1.1 {c} X")),
        1 => "[ -~]{0,40}",
        1 => any::<String>(),
    ];
    let header = prop_oneof![
        3 => Just("Upgrade: websocket".to_owned()),
        3 => Just("Connection: Upgrade".to_owned()),
        3 => Just("Sec-WebSocket-Accept: {accept}".to_owned()),
        1 => Just("connection: keep-alive, UPGRADE".to_owned()),
        1 => Just("UPGRADE: WebSocket".to_owned()),
        1 => Just("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_owned()),
        1 => Just("Sec-WebSocket-Accept:".to_owned()),
        1 => Just("Content-Length: 5".to_owned()),
        1 => Just("Sec-WebSocket-Extensions: permessage-deflate".to_owned()),
        1 => Just("X-Long: ".to_owned() + &"a".repeat(9000)),
        1 => "[A-Za-z-]{1,12}: [ -~]{0,30}",
        1 => any::<String>(),
    ];
    let tail = prop_oneof![
        2 => Just(Vec::new()),
        2 => json_text(EVENT_KEYS).prop_map(|t| {
            RawFrame { fin: true, rsv: 0, opcode: 1, masked: false, length_form: 0, payload: t.into_bytes() }.encode()
        }),
        2 => proptest::collection::vec(raw_frame(), 1..4).prop_map(|fs| {
            fs.into_iter().flat_map(|mut f| {
                // Server frames are unmasked; a masked one is a protocol error the client must survive.
                f.masked = !f.masked;
                f.encode()
            }).collect()
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..200),
    ];
    (
        status,
        proptest::collection::vec(header, 0..8),
        tail,
        proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        proptest::option::weighted(0.1, any::<prop::sample::Index>()),
    )
        .prop_map(|(status_line, headers, tail, cuts, truncate)| UpgradeReply {
            status_line,
            headers,
            tail,
            cuts,
            truncate,
        })
}

/// Plays `reply` to the harness's `upgrade()` over a loopback socket. The upgrade must not
/// panic, must fail for a status other than 101, and the frames that follow are read through
/// tungstenite's decoder without a panic.
async fn upgrade_case(reply: &UpgradeReply) -> Result<(), TestCaseError> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let addr = listener.local_addr().map_err(|e| TestCaseError::fail(e.to_string()))?;
    // HTTP/1.0 101 is let through (httparse reads both versions; RFC 6455 only asks for 101).
    let accepted_status =
        reply.status_line.starts_with("HTTP/1.1 101") || reply.status_line.starts_with("HTTP/1.0 101");
    let status_line = reply.status_line.clone();
    let reply = reply.clone();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        let mut head = Vec::new();
        let mut b = [0u8; 512];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut b).await?;
            if n == 0 {
                return Ok(());
            }
            head.extend_from_slice(&b[..n]);
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let mut bytes = reply.status_line.clone().into_bytes();
        bytes.extend_from_slice(b"\r\n");
        for h in &reply.headers {
            bytes.extend_from_slice(h.replace("{accept}", &accept).as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(&reply.tail);
        if let Some(t) = reply.truncate {
            bytes.truncate(t.index(bytes.len() + 1));
        }
        let mut cuts: Vec<usize> = reply.cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        cuts.push(bytes.len());
        cuts.sort_unstable();
        let mut at = 0;
        for c in cuts {
            s.write_all(&bytes[at..c]).await?;
            s.flush().await?;
            at = c;
        }
        // Closing ends every wait on the client side: nothing in this case can hang.
        Ok::<_, std::io::Error>(())
    });
    let client = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map(chatstorm::net::Stream::Plain)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
        match chatstorm::user::upgrade::upgrade(stream, "fuzz", "/connect?x=1", &[], config).await {
            Ok(mut ws) => {
                prop_assert!(accepted_status, "upgrade accepted status line {status_line:?}");
                for _ in 0..4 {
                    match ws.next().await {
                        Some(Ok(m)) => {
                            if let Ok(t) = m.to_text() {
                                check_event_text(t)?;
                            }
                        }
                        Some(Err(_)) | None => break,
                    }
                }
            }
            Err(e) => {
                prop_assert!(!e.to_string().contains('\n'), "multi-line error {e}");
            }
        }
        Ok(())
    };
    let outcome = tokio::time::timeout(WAIT, client)
        .await
        .map_err(|_| TestCaseError::fail("upgrade did not end within 10 s"))?;
    let _ = server.await;
    outcome
}

#[test]
fn decoders() {
    let rt = mock_runtime();
    let mock = rt
        .block_on(chatstorm_mock::start(fuzz_mock_config()))
        .expect("bind 127.0.0.1:0");
    let addr = mock.addr;
    let users = AtomicU64::new(0);
    run_target(
        "decoders",
        vec![
            part("event_text", json_text(EVENT_KEYS), |t| check_event_text(&t)),
            part("event_object", event_like(), |v| {
                check_event_text(&v.to_string())?;
                let _ = chatstorm_protocol::event::ServerEvent::from_value(v);
                Ok(())
            }),
            part("upgrade_response", upgrade_reply(), |r| rt.block_on(upgrade_case(&r))),
            part(
                "mock_client_frames",
                (
                    proptest::collection::vec(raw_frame(), 0..5),
                    prop_oneof![4 => Just(Vec::new()), 1 => proptest::collection::vec(any::<u8>(), 0..64)],
                ),
                |(frames, garbage)| {
                    // A fresh user per case: the mock's per-user socket cap is not what is tested.
                    let user = format!("fuzz-{}", users.fetch_add(1, Ordering::Relaxed) % 1000);
                    rt.block_on(mock_frames_case(addr, &user, &frames, &garbage))
                },
            ),
        ],
    );
    rt.block_on(mock.shutdown());
}

// ---------------------------------------------------------------------------------------------
// Target `jwt`: chatstorm_protocol::token.

const SECRET: &[u8] = b"fuzz-signing-secret";
const NOW: i64 = 1_764_500_000;

#[derive(Debug, Clone)]
enum Signature {
    /// HMAC-SHA256 of the signing input with the right secret.
    Right,
    /// With another secret.
    WrongSecret(Vec<u8>),
    /// The right one with one bit flipped.
    BitFlip(prop::sample::Index, u8),
    /// The right one, then a character changed in its base64 text.
    TextEdit(prop::sample::Index, char),
    Empty,
    Dev,
    Arbitrary(String),
}

#[derive(Debug, Clone)]
struct TokenCase {
    header: Value,
    /// Header/payload encoded in another base64 alphabet or with padding.
    header_text: Option<String>,
    payload: Value,
    signature: Signature,
}

fn token_case() -> impl Strategy<Value = TokenCase> {
    let alg = prop_oneof![
        4 => Just(json!("HS256")),
        1 => Just(json!("none")),
        1 => Just(json!("None")),
        1 => Just(json!("HS512")),
        1 => Just(json!("RS256")),
        1 => Just(json!("hs256")),
        1 => Just(json!("HS256 ")),
        1 => Just(json!("")),
        1 => json_value(&["alg"]),
    ];
    let header = (
        alg,
        proptest::option::of(json_value(&["crit", "typ", "kid"])),
        any::<u8>(),
    )
        .prop_map(|(alg, extra, shape)| {
            let mut h = serde_json::Map::new();
            if shape % 8 != 0 {
                h.insert("alg".into(), alg);
            }
            if shape % 3 == 0 {
                h.insert("typ".into(), json!("JWT"));
            }
            if shape % 5 == 0 {
                h.insert("crit".into(), extra.clone().unwrap_or(json!(["exp"])));
            }
            if shape % 7 == 0 {
                h.insert("kid".into(), extra.unwrap_or(Value::Null));
            }
            Value::Object(h)
        });
    let claims = prop_oneof![
        3 => (
            proptest::option::of(json_value(&[])),
            proptest::option::of(prop_oneof![(NOW - 100..NOW + 100).prop_map(Value::from), json_value(&[])]),
            proptest::option::of(prop_oneof![(NOW - 100..NOW + 100).prop_map(Value::from), json_value(&[])]),
            proptest::option::of(prop_oneof![(NOW - 100..NOW + 100).prop_map(Value::from), json_value(&[])]),
            proptest::option::of(json_value(&[])),
        )
            .prop_map(|(user, exp, iat, nbf, server)| {
                let mut m = serde_json::Map::new();
                for (k, v) in [("user_id", user), ("exp", exp), ("iat", iat), ("nbf", nbf), ("server", server)] {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                Value::Object(m)
            }),
        1 => json_value(&["user_id", "exp", "iat", "nbf", "server"]),
    ];
    let signature = prop_oneof![
        4 => Just(Signature::Right),
        1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Signature::WrongSecret),
        2 => (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, b)| Signature::BitFlip(i, b)),
        2 => (any::<prop::sample::Index>(), any::<char>()).prop_map(|(i, c)| Signature::TextEdit(i, c)),
        1 => Just(Signature::Empty),
        1 => Just(Signature::Dev),
        1 => any::<String>().prop_map(Signature::Arbitrary),
    ];
    let header_text = proptest::option::weighted(0.1, any::<String>());
    (header, header_text, claims, signature).prop_map(|(header, header_text, payload, signature)| TokenCase {
        header,
        header_text,
        payload,
        signature,
    })
}

impl TokenCase {
    fn token(&self) -> String {
        let header = self
            .header_text
            .clone()
            .unwrap_or_else(|| URL_SAFE_NO_PAD.encode(self.header.to_string()));
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(self.payload.to_string()));
        let right = hs256(SECRET, &input);
        let sig = match &self.signature {
            Signature::Right => URL_SAFE_NO_PAD.encode(&right),
            Signature::WrongSecret(s) => URL_SAFE_NO_PAD.encode(hs256(s, &input)),
            Signature::BitFlip(i, bit) => {
                let mut s = right;
                let i = i.index(s.len());
                s[i] ^= 1 << bit;
                URL_SAFE_NO_PAD.encode(&s)
            }
            Signature::TextEdit(i, c) => {
                let mut s: Vec<char> = URL_SAFE_NO_PAD.encode(&right).chars().collect();
                let i = i.index(s.len());
                s[i] = *c;
                s.into_iter().collect()
            }
            Signature::Empty => String::new(),
            Signature::Dev => "devtoken".to_owned(),
            Signature::Arbitrary(s) => s.clone(),
        };
        format!("{input}.{sig}")
    }
}

/// The verifier's contract: no panic; accepted only with `alg: HS256`, no `crit`, and exactly
/// the canonical HS256 signature of the signing input under the secret.
fn check_token(token: &str) -> Result<(), TestCaseError> {
    let verdict = chatstorm_protocol::token::verify(token, SECRET, NOW);
    let _ = chatstorm_protocol::token::decode_unverified(token);
    let _ = chatstorm_protocol::token::is_dev_token(token);
    if let Err(e) = &verdict {
        let _ = (e.code(), e.detail());
        prop_assert!(!e.to_string().contains('\n'), "multi-line error {e}");
        return Ok(());
    }
    let parts: Vec<&str> = token.split('.').collect();
    prop_assert_eq!(parts.len(), 3, "accepted a token of {} segments", parts.len());
    let header: Value = URL_SAFE_NO_PAD
        .decode(parts[0])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| TestCaseError::fail(format!("accepted a token whose header is not base64url JSON: {token}")))?;
    prop_assert_eq!(&header["alg"], &json!("HS256"), "accepted alg {}", header["alg"]);
    prop_assert!(header.get("crit").is_none(), "accepted a crit header: {}", header);
    let expected = URL_SAFE_NO_PAD.encode(hs256(SECRET, &format!("{}.{}", parts[0], parts[1])));
    prop_assert_eq!(
        parts[2],
        expected.as_str(),
        "accepted a signature that is not the HS256 of the input"
    );
    Ok(())
}

#[test]
fn jwt() {
    run_target(
        "jwt",
        vec![
            part("arbitrary_text", any::<String>(), |t| check_token(&t)),
            part(
                "dotted_segments",
                proptest::collection::vec("[A-Za-z0-9_=+/-]{0,40}", 0..5),
                |segs| check_token(&segs.join(".")),
            ),
            part("structured", token_case(), |case| {
                let token = case.token();
                check_token(&token)?;
                // Exactly the right signature over a valid HS256 header is what verifies.
                let alg_ok = case.header.get("alg") == Some(&json!("HS256")) && case.header.get("crit").is_none();
                let verdict = chatstorm_protocol::token::verify(&token, SECRET, NOW);
                if !alg_ok && case.header_text.is_none() {
                    prop_assert!(verdict.is_err(), "accepted header {}", case.header);
                }
                if case.header.get("alg").is_some_and(|a| a != "HS256") && case.header_text.is_none() {
                    let refused = matches!(
                        verdict,
                        // A `devtoken` signature is refused as such before the header is read.
                        Err(chatstorm_protocol::token::TokenError::AlgorithmNotAllowed(_)
                            | chatstorm_protocol::token::TokenError::Malformed(_)
                            | chatstorm_protocol::token::TokenError::DevTokenRejected)
                    );
                    prop_assert!(refused, "alg {} not refused as such: {verdict:?}", case.header["alg"]);
                }
                Ok(())
            }),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Target `mock_http`: the mock's request handlers over real sockets.

const REST_KEYS: &[&str] = &[
    "user",
    "users",
    "id",
    "name",
    "members",
    "data",
    "message",
    "text",
    "type",
    "watch",
    "presence",
    "state",
    "filter_conditions",
    "sort",
    "limit",
    "offset",
    "last_sync_at",
    "channel_cids",
    "event",
    "user_id",
    "set",
    "unset",
    "connection_id",
    "message_id",
    "created_by_id",
    "custom",
    "role",
    "duration_ms",
    "mode",
    "fraction",
    "secret",
];
const PATHS: &[&str] = &[
    "/hi",
    "/users",
    "/channels",
    "/channels/messaging/query",
    "/channels/messaging/general/query",
    "/channels/messaging/general/stop-watching",
    "/channels/messaging/general/event",
    "/channels/messaging/general/read",
    "/channels/messaging/general/message",
    "/sync",
    "/longpoll",
    "/connect",
    "/_fault/drop",
    "/_fault/refuse-upgrades",
    "/_fault/expire-tokens",
    "/_fault/stats",
    "/_fault",
    "/",
    "//",
    "/channels//",
    "/channels/a/b/c/d",
    "/%2e%2e/",
    "/channels/%00/x/query",
];
const METHODS: &[&str] = &[
    "GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE", "post", "BREW",
];

#[derive(Debug, Clone)]
enum Auth {
    None,
    User(String),
    Server,
    Token(String),
}

#[derive(Debug, Clone)]
struct HttpCase {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    api_key: bool,
    auth: Auth,
    auth_in_header: bool,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send these raw bytes instead of a well-formed request.
    raw: Option<Vec<u8>>,
}

fn http_case() -> impl Strategy<Value = HttpCase> {
    let path = prop_oneof![
        6 => proptest::sample::select(PATHS).prop_map(str::to_owned),
        1 => "/[a-z/%._-]{0,40}",
        1 => any::<String>().prop_map(|s| format!("/{}", s.replace([' ', '\r', '\n', '?', '#'], ""))),
    ];
    let query = proptest::collection::vec(
        (
            prop_oneof![
                proptest::sample::select(
                    &[
                        "user_id",
                        "connection_id",
                        "json",
                        "client_id",
                        "api_key",
                        "authorization",
                        "stream-auth-type"
                    ][..]
                )
                .prop_map(str::to_owned),
                any::<String>(),
            ],
            prop_oneof![json_text(REST_KEYS), "[a-z0-9-]{0,12}", any::<String>()],
        ),
        0..4,
    );
    let auth = prop_oneof![
        1 => Just(Auth::None),
        4 => "[a-z0-9-]{1,8}".prop_map(Auth::User),
        2 => Just(Auth::Server),
        1 => any::<String>().prop_map(Auth::Token),
    ];
    let header = (
        prop_oneof![
            proptest::sample::select(
                &[
                    "Content-Type",
                    "Stream-Auth-Type",
                    "Authorization",
                    "Expect",
                    "Transfer-Encoding",
                    "X-Stream-Client",
                    "Upgrade",
                    "Sec-WebSocket-Key",
                    "Sec-WebSocket-Version",
                    "Content-Encoding",
                    "Host"
                ][..]
            )
            .prop_map(str::to_owned),
            "[A-Za-z-]{1,16}",
        ],
        prop_oneof![
            "[ -~]{0,40}",
            Just("application/json".to_owned()),
            Just("jwt".to_owned()),
            Just("chunked".to_owned()),
            Just("websocket".to_owned()),
            Just("100-continue".to_owned())
        ],
    );
    let body = prop_oneof![
        2 => Just(Vec::new()),
        6 => json_value(REST_KEYS).prop_map(|v| v.to_string().into_bytes()),
        1 => json_text(REST_KEYS).prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..256),
    ];
    let raw = proptest::option::weighted(
        0.1,
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            ("[ -~]{0,60}", "[ -~\r\n]{0,200}").prop_map(|(l, rest)| format!("{l}\r\n{rest}").into_bytes()),
            "[A-Z]{1,8} /[ -~]{0,30} HTTP/1.1\r\n(Transfer-Encoding: chunked\r\n|Content-Length: [0-9]{1,3}\r\n)?\r\n[0-9a-fA-F\r\n;x ]{0,40}"
                .prop_map(String::into_bytes),
        ],
    );
    (
        proptest::sample::select(METHODS).prop_map(str::to_owned),
        path,
        query,
        any::<bool>(),
        auth,
        any::<bool>(),
        proptest::collection::vec(header, 0..4),
        body,
        raw,
    )
        .prop_map(
            |(method, path, query, api_key, auth, auth_in_header, headers, body, raw)| HttpCase {
                method,
                path,
                query,
                api_key,
                auth,
                auth_in_header,
                headers,
                body,
                raw,
            },
        )
}

impl HttpCase {
    fn request(&self) -> Vec<u8> {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let token = match &self.auth {
            Auth::None => None,
            Auth::User(u) => Some(mock_token(&json!({"user_id": u}))),
            Auth::Server => Some(mock_token(&json!({"server": true}))),
            Auth::Token(t) => Some(t.clone()),
        };
        let mut q = form_urlencoded::Serializer::new(String::new());
        if self.api_key {
            q.append_pair("api_key", MOCK_KEY);
        }
        if let Auth::User(u) = &self.auth {
            q.append_pair("user_id", u);
        }
        if let (Some(t), false) = (&token, self.auth_in_header) {
            q.append_pair("authorization", t);
            q.append_pair("stream-auth-type", "jwt");
        }
        for (k, v) in &self.query {
            q.append_pair(k, v);
        }
        let mut head = format!(
            "{} {}?{} HTTP/1.1\r\nHost: fuzz\r\n",
            self.method,
            self.path,
            q.finish()
        );
        if let (Some(t), true) = (&token, self.auth_in_header) {
            // A header value cannot carry line breaks; the mock's parser would see a new header.
            head.push_str(&format!(
                "Authorization: {}\r\nStream-Auth-Type: jwt\r\n",
                t.replace(['\r', '\n'], "")
            ));
        }
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

async fn http_case_run(addr: std::net::SocketAddr, case: &HttpCase) -> Result<(), TestCaseError> {
    let reply = raw_exchange(addr, &case.request(), case.raw.is_some()).await?;
    if case.raw.is_none() || !reply.is_empty() {
        prop_assert!(
            reply.starts_with(b"HTTP/1."),
            "not an HTTP answer: {:?}",
            lossy(&reply, 200)
        );
        let status: u16 = std::str::from_utf8(reply.get(9..12).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        // 503 is documented (pending-body cap; refused upgrades, a fault this case cannot set).
        prop_assert!(status < 500 || status == 503, "HTTP {status}: {:?}", lossy(&reply, 600));
    }
    assert_alive(addr).await
}

#[test]
fn mock_http() {
    let rt = mock_runtime();
    let mock = rt
        .block_on(chatstorm_mock::start(fuzz_mock_config()))
        .expect("bind 127.0.0.1:0");
    let addr = mock.addr;
    run_target(
        "mock_http",
        vec![part("request", http_case(), |case| {
            rt.block_on(http_case_run(addr, &case))
        })],
    );
    rt.block_on(mock.shutdown());
}
