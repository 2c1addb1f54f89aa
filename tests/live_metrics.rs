//! Watching a run while it runs (issue 15), end to end with the real readers: a real Prometheus
//! (Debian's package, installed when missing) scrapes `--metrics-listen` during a short run
//! against the embedded mock, and a second one receives `--prometheus-remote-write`; PromQL's
//! `histogram_quantile(0.99, …)` over the scraped buckets lands in the bucket of the run's own p99
//! (`summary.json`), counters agree with the summary (exactly, for the remote write's final
//! push); every query of the Grafana dashboard (`deploy/grafana/chatstorm.json`) names a series
//! the endpoint serves and is valid PromQL; headless Chromium opens `--dashboard` during a run:
//! the page changes between two reads seconds apart, shows every chart, logs no error and loads
//! nothing but its own origin, and the event stream ends with the final report's body.
//!
//! Every port is bound on loopback (chatstorm's with port 0, Prometheus' on a port just found
//! free); every wait is bounded.

mod support {
    pub mod apt;
}

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The run every test watches: two profiles, typing, a small storm and a token expiry, so that
/// connects, reconnects, closes, error codes, refreshes and deliveries all have samples; quiet
/// enough after 10 s that counters read at the last scrape are the final ones.
const SCENARIO: &str = "name: live-watch
description: a short run to watch live
seed: 7
target: {}
users:
  count: 120
  id: \"live-{index}\"
  profile: {js: 50, android: 50}
  token: {ttl: 10m, mode: provider}
  fallback: true
channels: {count: 6, members: 20}
load:
  - ramp: {to: 120, over: 2s}
  - hold: 14s
behaviour:
  typing: {every: 4s}
timeline:
  - at: 4s
    drop_sockets: {fraction: 0.3, side: server, close: 1011}
  - at: 6s
    expire_tokens: {fraction: 0.3, side: server}
";

/// Bound on one whole run (16 s planned) on a busy two-core machine.
const RUN_LIMIT: Duration = Duration::from_secs(120);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("live-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// The runs and the browser take turns: on two cores, two runs at once starve each other's
/// scheduler.
fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A child process killed (and reaped) when the test is done with it, passing or not.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free right now (for Prometheus, which cannot tell which port 0 gave it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One HTTP/1.0 GET; gives (status, body).
fn get(addr: SocketAddr, path: &str, limit: Duration) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, limit).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("{addr}{path}: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    Ok((status, body.to_owned()))
}

/// chatstorm running a scenario, its stderr lines arriving on a channel.
struct Run {
    proc: Proc,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    out: PathBuf,
}

impl Run {
    fn start(dir: &Path, extra: &[&str]) -> Run {
        let scenario = dir.join("live.yaml");
        std::fs::write(&scenario, SCENARIO).expect("scenario file");
        let out = dir.join("run");
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatstorm"))
            .arg("run")
            .arg(&scenario)
            .arg("--out")
            .arg(&out)
            .args(["--quiet", "--threads", "1"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chatstorm starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Run {
            proc: Proc(child),
            lines,
            seen: Vec::new(),
            out,
        }
    }

    /// The address printed on the line starting with `prefix` (`http://ADDR/...`).
    fn url_after(&mut self, prefix: &str) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(addr) = self.seen.iter().find_map(|l| {
                let rest = l.strip_prefix(prefix)?.trim().strip_prefix("http://")?;
                rest.split('/').next()?.parse().ok()
            }) {
                return addr;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no `{prefix}` line within 60 s; stderr so far:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Waits for the run to end; gives its summary.
    fn finish(mut self) -> Value {
        let deadline = Instant::now() + RUN_LIMIT;
        let status = loop {
            if let Some(s) = self.proc.0.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "the run did not end within {RUN_LIMIT:?}");
            // Polling an external process: there is nothing to await on std's Child.
            std::thread::sleep(Duration::from_millis(100));
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(l);
        }
        let text = std::fs::read_to_string(self.out.join("summary.json"))
            .unwrap_or_else(|e| panic!("summary.json ({status}): {e}; stderr:\n{}", self.seen.join("\n")));
        serde_json::from_str(&text).expect("summary.json is JSON")
    }
}

/// A Prometheus server on a free loopback port, ready.
struct Prometheus {
    _proc: Proc,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(dir: &Path, name: &str, config: &str, extra: &[&str]) -> Prometheus {
        let bin = support::apt::ensure("/usr/bin/prometheus", "prometheus");
        let home = dir.join(name);
        std::fs::create_dir_all(home.join("data")).expect("prometheus dir");
        std::fs::write(home.join("prometheus.yml"), config).expect("prometheus config");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let log = std::fs::File::create(home.join("log")).expect("log file");
        let proc = Proc(
            Command::new(bin)
                .arg(format!("--config.file={}", home.join("prometheus.yml").display()))
                .arg(format!("--storage.tsdb.path={}", home.join("data").display()))
                .arg(format!("--web.listen-address={addr}"))
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("prometheus starts"),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(get(addr, "/-/ready", Duration::from_secs(2)), Ok((200, _))) {
            let log = std::fs::read_to_string(home.join("log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "prometheus {name} not ready within 60 s:\n{}",
                support::apt::tail(&log)
            );
            // Polling an external server's readiness: nothing to await.
            std::thread::sleep(Duration::from_millis(200));
        }
        Prometheus { _proc: proc, addr }
    }

    /// An instant query's result vector (panics on a PromQL error).
    fn query(&self, q: &str) -> Vec<Value> {
        let enc: String = form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let (status, body) = get(self.addr, &format!("/api/v1/query?query={enc}"), Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("query {q}: {e}"));
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("query {q}: {e}: {body}"));
        assert!(status == 200 && v["status"] == "success", "query {q}: {status} {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// One number: the single sample of `q` (`None` when the result is empty).
    fn number(&self, q: &str) -> Option<f64> {
        let r = self.query(q);
        assert!(r.len() <= 1, "{q}: more than one series: {r:?}");
        r.first()
            .and_then(|s| s["value"][1].as_str())
            .map(|v| v.parse().unwrap_or_else(|e| panic!("{q}: {v}: {e}")))
    }
}

/// The bounds of the bucket holding `seconds`: (the bound below, the bound at or above), in us.
fn bucket_around(seconds: f64) -> (f64, f64) {
    let us = seconds * 1e6;
    let bounds = &*chatstorm::live::buckets::BOUNDS_US;
    let i = bounds.partition_point(|b| (*b as f64) < us * (1.0 - 1e-9));
    let lo = if i == 0 { 0.0 } else { bounds[i - 1] as f64 };
    let hi = bounds.get(i).map_or(f64::INFINITY, |b| *b as f64);
    (lo, hi)
}

/// PromQL's p99 of the run's `connect` histogram (both transports) agrees with the summary's:
/// the summary's value lies in the bucket the PromQL estimate falls in (0.1 % slack on either
/// bound for the HdrHistogram's own resolution).
fn check_p99(p: &Prometheus, summary: &Value, what: &str) {
    let q = "histogram_quantile(0.99, sum by (le) (last_over_time(chatstorm_connect_duration_seconds_bucket{view=\"actual\"}[10m])))";
    let promql = p.number(q).unwrap_or_else(|| panic!("{what}: no result for {q}"));
    let ours = summary["latency"]["connect"]["summary"]["p99_us"].as_f64().expect("connect p99");
    let (lo, hi) = bucket_around(promql);
    assert!(
        ours >= lo * 0.999 && ours <= hi * 1.001,
        "{what}: PromQL p99 {promql} s is in bucket ({lo} us, {hi} us], the run's p99 is {ours} us"
    );
    eprintln!("{what}: PromQL p99 {:.3} ms, summary p99 {:.3} ms, bucket ({lo}, {hi}] us", promql * 1e3, ours / 1e3);
}

/// Sum over profiles of the last value of counter `name` (`last_over_time` skips the staleness
/// markers written once the target is gone).
fn counter(p: &Prometheus, name: &str, extra: &str) -> f64 {
    p.number(&format!("sum(last_over_time({name}{{{extra}}}[10m]))")).unwrap_or(0.0)
}

fn summary_counter(summary: &Value, name: &str) -> f64 {
    summary["metrics"]["counters"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("summary counter {name}"))
}

/// Every metric name a Grafana dashboard's queries use, with the queries made runnable
/// (template variables replaced).
fn grafana_queries() -> Vec<String> {
    let path = root().join("deploy/grafana/chatstorm.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dash: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    let mut exprs = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if k == "expr" {
                        out.push(v.as_str().expect("expr is a string").to_owned());
                    } else if k == "query" && v.is_string() && v.as_str().is_some_and(|q| q.contains("chatstorm_")) {
                        out.push(v.as_str().unwrap_or_default().to_owned());
                    } else {
                        walk(v, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(&dash, &mut exprs);
    assert!(!exprs.is_empty(), "no query in {}", path.display());
    exprs
        .into_iter()
        .map(|e| {
            // A template variable's `label_values(SELECTOR, LABEL)`: the selector is the query.
            let e = match e.strip_prefix("label_values(").and_then(|r| r.rsplit_once(',')) {
                Some((selector, _)) => selector.to_owned(),
                None => e,
            };
            e.replace("$__rate_interval", "1m")
                .replace("$__interval", "1m")
                .replace("$__range", "10m")
                .replace("$datasource", "")
                .replace("$scenario", ".*")
                .replace("$run_id", ".*")
                .replace("$profile", ".*")
        })
        .collect()
}

/// The metric names in a query: `chatstorm_…` identifiers.
fn names_in(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = q.as_bytes();
    let mut i = 0;
    while let Some(at) = q[i..].find("chatstorm_") {
        let start = i + at;
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        out.push(q[start..end].to_owned());
        i = end;
    }
    out
}

/// Whether a scrape serves `name` (a sample of it, or of a histogram's `_bucket`, `_sum`,
/// `_count`).
fn served(scrape: &str, name: &str) -> bool {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .any(|l| l.split(['{', ' ']).next() == Some(name))
}

#[test]
fn prometheus_scrapes_and_remote_write_agree_with_the_summary_and_grafana_queries_are_served() {
    let _turn = heavy();
    let dir = scratch("prometheus");
    // The receiver first, so that the run's first push lands.
    let receiver = Prometheus::start(
        &dir,
        "receiver",
        "global: {}\n",
        &["--web.enable-remote-write-receiver"],
    );
    let write_url = format!("http://{}/api/v1/write", receiver.addr);
    let mut run = Run::start(
        &dir,
        &["--metrics-listen", "127.0.0.1:0", "--prometheus-remote-write", &write_url],
    );
    let metrics = run.url_after("chatstorm: Prometheus metrics at");
    let scraper = Prometheus::start(
        &dir,
        "scraper",
        &format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 900ms}}\nscrape_configs:\n  - job_name: chatstorm\n    static_configs: [{{targets: ['{metrics}']}}]\n"
        ),
        &[],
    );
    // A scrape by hand during the hold, timed: the text the Grafana queries are checked against.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (scrape, took) = loop {
        let t = Instant::now();
        let (status, body) = get(metrics, "/metrics", Duration::from_secs(5)).expect("scrape");
        let took = t.elapsed();
        assert_eq!(status, 200);
        if served(&body, "chatstorm_errors_total") && served(&body, "chatstorm_delivery_latency_seconds_bucket") {
            break (body, took);
        }
        assert!(Instant::now() < deadline, "no error code and no delivery within 30 s:\n{body}");
        // Waiting for the run's timeline (the token expiry at 6 s) to have happened.
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("one scrape by hand: {} bytes in {took:?}", scrape.len());
    assert!(!scrape.contains("secret") && !scrape.contains("token=") && !scrape.contains("eyJ"));
    let summary = run.finish();

    // The scraper saw the run.
    let scrapes = scraper.number("sum(count_over_time(chatstorm_run_elapsed_seconds[10m]))");
    assert!(scrapes.unwrap_or(0.0) >= 3.0, "scrapes of the run: {scrapes:?}");
    check_p99(&scraper, &summary, "scrape");
    // Counters that stop moving once the storm and the expiry are over equal the summary's.
    for name in ["connects", "connect_failures", "token_fetches", "token_refreshes", "reconnect_attempts"] {
        let scraped = counter(&scraper, &format!("chatstorm_{name}_total"), "");
        assert_eq!(scraped, summary_counter(&summary, name), "scraped {name}");
    }
    let scraped = counter(&scraper, "chatstorm_connect_duration_seconds_count", "view=\"actual\"");
    let ours = summary["latency"]["connect"]["summary"]["count"].as_f64().expect("connect count");
    assert_eq!(scraped, ours, "scraped connect count");

    // The remote write's final push: every counter exactly, per profile too.
    check_p99(&receiver, &summary, "remote write");
    let counters = summary["metrics"]["counters"].as_object().expect("counters");
    for (name, n) in counters {
        let pushed = counter(&receiver, &format!("chatstorm_{name}_total"), "");
        assert_eq!(pushed, n.as_f64().unwrap_or(-1.0), "remote-written {name}");
    }
    for (profile, p) in summary["metrics"]["profiles"].as_object().expect("profiles") {
        for name in ["connects", "token_fetches", "events_sent", "disconnects"] {
            let pushed = counter(&receiver, &format!("chatstorm_{name}_total"), &format!("profile=\"{profile}\""));
            assert_eq!(pushed, p["counters"][name].as_f64().unwrap_or(-1.0), "{profile} {name}");
        }
    }
    let codes = summary["metrics"]["error_codes"]["by_code"].as_object().expect("error codes");
    assert!(!codes.is_empty(), "the token expiry gives error codes");
    for (code, n) in codes {
        let pushed = counter(&receiver, "chatstorm_errors_total", &format!("code=\"{code}\""));
        assert_eq!(pushed, n.as_f64().unwrap_or(-1.0), "errors with code {code}");
    }
    let labels = receiver.query("last_over_time(chatstorm_users_planned[10m])");
    let run_id = run_id_of(&dir);
    assert_eq!(labels.len(), 1, "{labels:?}");
    assert_eq!(labels[0]["metric"]["scenario"], "live-watch");
    assert_eq!(labels[0]["metric"]["run_id"], run_id.as_str());
    assert_eq!(labels[0]["metric"]["shard"], "0");

    // Grafana: every query names served series and is valid PromQL.
    for q in grafana_queries() {
        let names = names_in(&q);
        assert!(!names.is_empty(), "a Grafana query that names no chatstorm series: {q}");
        for n in names {
            assert!(served(&scrape, &n), "Grafana query {q} names {n}, which the endpoint does not serve");
        }
        scraper.query(&q);
    }
}

fn run_id_of(dir: &Path) -> String {
    dir.join("run").file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The dashboard in headless Chromium.

/// Headless Chromium's DOM of `url` after `wait` of the page's own time, its stderr (console
/// messages), and every request its network log saw ([`requests`]).
fn chromium_dom(dir: &Path, url: &str, wait: Duration, n: usize) -> (String, String, Vec<(String, Option<String>)>) {
    let chromium = support::apt::ensure("/usr/bin/chromium", "chromium");
    let profile = dir.join(format!("chromium-profile-{n}"));
    let netlog = dir.join(format!("netlog-{n}.json"));
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
    ])
    .arg(format!("--virtual-time-budget={}", wait.as_millis()))
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(format!("--log-net-log={}", netlog.display()))
    .arg(url);
    let (ok, out, err) = support::apt::run_bounded(cmd, Duration::from_secs(120), dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(ok, "chromium failed on {url}:\n{}", support::apt::tail(&err));
    let urls = requests(&netlog);
    let _ = std::fs::remove_dir_all(&profile);
    (out, err, urls)
}

/// Every URL request in a Chromium net log, with its initiator (the origin of the page that
/// asked for it; `None` for navigations and for the browser's own background fetches).
fn requests(netlog: &Path) -> Vec<(String, Option<String>)> {
    let text = std::fs::read_to_string(netlog).unwrap_or_else(|e| panic!("{}: {e}", netlog.display()));
    // A log cut short by the browser's exit lacks its closing brackets.
    let log: Value = serde_json::from_str(&text)
        .or_else(|_| serde_json::from_str(&format!("{}]}}", text.trim_end().trim_end_matches(','))))
        .unwrap_or_else(|e| panic!("{}: not a net log: {e}", netlog.display()));
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        .as_u64()
        .expect("URL_REQUEST_START_JOB in the net log's constants");
    log["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"].as_u64() == Some(start_job))
        .filter_map(|e| {
            let url = e["params"]["url"].as_str()?.to_owned();
            // Chromium's own fetches (network time, updates) say "not an origin".
            let initiator = e["params"]["initiator"].as_str().filter(|i| *i != "not an origin");
            Some((url, initiator.map(str::to_owned)))
        })
        .collect()
}

/// The chart ids in a DOM (`<figure … id="…">` of the report's charts).
fn chart_ids(dom: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for part in dom.split("<figure").skip(1) {
        let tag = &part[..part.find('>').unwrap_or(part.len())];
        if let Some(at) = tag.find("id=\"") {
            let v = &tag[at + 4..];
            ids.push(v[..v.find('"').unwrap_or(v.len())].to_owned());
        }
    }
    ids.sort();
    ids
}

/// Reads `/events` to its end (bounded); gives the data of the `final` event.
fn final_event(addr: SocketAddr, limit: Duration) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
    write!(s, "GET /events HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let at = text.rfind("event: final\n").ok_or_else(|| format!("no final event in {} bytes", text.len()))?;
    let mut data = Vec::new();
    for line in text[at..].lines().skip(1) {
        match line.strip_prefix("data: ") {
            Some(d) => data.push(d),
            None => break,
        }
    }
    Ok(data.join("\n"))
}

#[test]
fn the_dashboard_updates_live_shows_every_chart_and_becomes_the_final_report() {
    let _turn = heavy();
    let dir = scratch("dashboard");
    // Longer than the others: two browser starts on a busy machine take a while, and both
    // must find the run still going.
    let mut run = Run::start(&dir, &["--dashboard", "127.0.0.1:0", "--duration", "40s"]);
    let addr = run.url_after("chatstorm: live dashboard at");
    let url = format!("http://{addr}/");
    // A reader of the event stream to the end: the last event is the final report.
    let reader = std::thread::spawn(move || final_event(addr, RUN_LIMIT));

    let (first, err1, urls1) = chromium_dom(&dir, &url, Duration::from_secs(3), 1);
    let (second, err2, urls2) = chromium_dom(&dir, &url, Duration::from_secs(3), 2);
    let summary = run.finish();

    for (dom, err, urls) in [(&first, &err1, &urls1), (&second, &err2, &urls2)] {
        assert!(
            dom.contains("Live: updated every second ("),
            "no live update reached the page:\n{}\n--- chromium ---\n{}",
            &dom[..dom.len().min(2000)],
            support::apt::tail(err)
        );
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Refused to"))
            .collect();
        assert!(errors.is_empty(), "the page logged errors:\n{}", errors.join("\n"));
        let origin = url.trim_end_matches('/');
        assert!(
            urls.iter().any(|(u, i)| u == &format!("{url}events") && i.as_deref() == Some(origin)),
            "the net log shows no request of the page for its event stream: {urls:?}"
        );
        // Everything the page asked for (the navigation itself included) is on its origin; the
        // browser's own background fetches have no initiator and are not the page's.
        for (u, initiator) in urls {
            if initiator.is_some() || u.starts_with(origin) {
                assert!(
                    u.starts_with(&url) && initiator.as_deref().is_none_or(|i| i == origin),
                    "the page loaded {u} (initiator {initiator:?}), outside its origin {url}"
                );
            }
        }
    }
    let strip = |dom: &str| dom.replace(|c: char| c.is_whitespace(), "");
    assert_ne!(strip(&first), strip(&second), "the page did not change between two reads");

    // Every chart of the report, live: the fixed ones, and one per latency series with samples.
    let ids = chart_ids(&second);
    for id in ["connected", "throughput", "events", "errors", "failure-rate", "series-connect", "spectrum-connect"] {
        assert!(ids.iter().any(|i| i == id), "chart {id} missing from the live page; it has {ids:?}");
    }
    let report = std::fs::read_to_string(dir.join("run/report.html")).expect("report.html");
    let final_ids = chart_ids(&report);
    for id in &ids {
        assert!(final_ids.contains(id), "the live page drew {id}, which the report does not have");
    }

    // The stream's last event is the final report's body, exactly.
    let body = reader.join().expect("reader").unwrap_or_else(|e| panic!("{e}"));
    let start = report.find("<body>").expect("<body>") + "<body>".len();
    let end = report.rfind("</body>").expect("</body>");
    assert_eq!(body, report[start..end], "the final event is not report.html's body");
    assert!(summary["run"]["users_started"].as_u64().unwrap_or(0) > 0);
}
