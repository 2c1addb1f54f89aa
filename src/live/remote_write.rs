//! `--prometheus-remote-write URL`: the same series as `/metrics`, pushed every
//! [`PUSH_EVERY`] and once more at the end (so a run shorter than a scrape interval still
//! lands), in the remote-write 1.0 wire format: a `WriteRequest` protobuf, snappy-compressed
//! ([`super::snappy`]), POSTed with the protocol's headers. Every sample carries the time of the
//! collection it comes from, so the final push never lands before an earlier one.
//!
//! The protobuf is four small messages, encoded by hand here (field numbers from Prometheus'
//! `prompb/remote.proto` and `types.proto`); a code generator and its build step would be more
//! than the encoding itself. A push that fails is reported once on stderr and the next one
//! carries the latest state anyway (counters are cumulative); it never slows the run down.

use super::buckets::LE_LABELS;
use super::exposition::{Exposition, Kind};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::{Mutex, watch};

/// How often the latest state is pushed during the run.
pub const PUSH_EVERY: Duration = Duration::from_secs(5);

/// Bound on one push (the final one included).
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The remote-write protocol version header's value.
pub const VERSION: &str = "0.1.0";

/// The background pusher of one run.
pub struct Pusher {
    url: String,
    client: crate::net::client::Client,
    latest: watch::Receiver<Option<Arc<Exposition>>>,
    /// The collection time of the last exposition pushed, so that one is never pushed twice
    /// (a receiver rejects a repeated timestamp with a different value only, but why send it).
    pushed: Arc<Mutex<i64>>,
    warned: Arc<AtomicBool>,
}

impl Pusher {
    /// Checks `url` and starts pushing every [`PUSH_EVERY`].
    ///
    /// # Errors
    /// [`super::LiveError::RemoteWriteUrl`] when `url` is not an `http(s)://` URL.
    pub fn start(url: &str, latest: watch::Receiver<Option<Arc<Exposition>>>) -> Result<Pusher, super::LiveError> {
        let parsed = url::Url::parse(url).map_err(|e| super::LiveError::RemoteWriteUrl(format!("{url}: {e}")))?;
        let tls = match parsed.scheme() {
            "http" => None,
            "https" => Some(
                crate::net::Tls::new(&crate::net::TlsOptions::default())
                    .map_err(|e| super::LiveError::RemoteWriteUrl(format!("{url}: {e}")))?,
            ),
            other => {
                return Err(super::LiveError::RemoteWriteUrl(format!(
                    "{url}: scheme {other} is not http or https"
                )));
            }
        };
        let p = Pusher {
            url: url.to_owned(),
            client: crate::net::client::Client::with_tls(tls),
            latest,
            pushed: Arc::new(Mutex::new(i64::MIN)),
            warned: Arc::new(AtomicBool::new(false)),
        };
        let background = p.clone_handle();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                background.push_latest().await;
            }
        });
        Ok(p)
    }

    fn clone_handle(&self) -> Pusher {
        Pusher {
            url: self.url.clone(),
            client: self.client.clone(),
            latest: self.latest.clone(),
            pushed: self.pushed.clone(),
            warned: self.warned.clone(),
        }
    }

    /// Pushes the latest exposition unless it was pushed already.
    async fn push_latest(&self) {
        let Some(e) = self.latest.borrow().clone() else {
            return;
        };
        // One push at a time: the final push waits for a periodic one under way.
        let mut pushed = self.pushed.lock().await;
        if *pushed >= e.at_unix_ms {
            return;
        }
        let body = Bytes::from(super::snappy::compress(&encode(&e)));
        let headers = [
            ("Content-Encoding", "snappy"),
            ("Content-Type", "application/x-protobuf"),
            ("X-Prometheus-Remote-Write-Version", VERSION),
            ("User-Agent", concat!("chatstorm/", env!("CARGO_PKG_VERSION"))),
        ];
        let r = self
            .client
            .send(http::Method::POST, &self.url, &headers, Some(body), PUSH_TIMEOUT)
            .await;
        let problem = match r {
            Ok(r) if (200..300).contains(&r.status) => None,
            Ok(r) => Some(format!("HTTP {}: {}", r.status, crate::net::client::snippet(&r.body))),
            Err(e) => Some(e.to_string()),
        };
        match problem {
            None => *pushed = e.at_unix_ms,
            Some(p) => {
                if !self.warned.swap(true, Relaxed) {
                    eprintln!(
                        "chatstorm: remote write to {} failed ({p}); retrying with the next push",
                        self.url
                    );
                }
            }
        }
    }

    /// The final push, after the last collection.
    pub async fn finish(&self) {
        self.push_latest().await;
    }
}

// Protobuf: field key = (number << 3) | wire type; 2 = length-delimited, 1 = 64-bit, 0 = varint.

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    varint(out, u64::from(field << 3 | 2));
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `Label { string name = 1; string value = 2; }`
fn label(out: &mut Vec<u8>, name: &str, value: &str) {
    let mut l = Vec::with_capacity(name.len() + value.len() + 4);
    bytes_field(&mut l, 1, name.as_bytes());
    bytes_field(&mut l, 2, value.as_bytes());
    bytes_field(out, 1, &l);
}

/// `TimeSeries { repeated Label labels = 1; repeated Sample samples = 2; }` with one
/// `Sample { double value = 1; int64 timestamp = 2; }`; labels sorted by name, as the protocol
/// requires.
fn series(out: &mut Vec<u8>, labels: &mut [(&str, &str)], value: f64, at_ms: i64) {
    labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut ts = Vec::with_capacity(256);
    for (k, v) in labels.iter() {
        label(&mut ts, k, v);
    }
    let mut sample = Vec::with_capacity(16);
    varint(&mut sample, 1 << 3 | 1);
    sample.extend_from_slice(&value.to_le_bytes());
    varint(&mut sample, 2 << 3);
    varint(&mut sample, at_ms as u64);
    bytes_field(&mut ts, 2, &sample);
    // WriteRequest { repeated TimeSeries timeseries = 1; }
    bytes_field(out, 1, &ts);
}

/// A series' labels before sorting: its name, the run's labels, its own.
fn base<'a>(
    name: &'a str,
    run: &'a [(&'static str, String)],
    own: &'a [(&'static str, String)],
) -> Vec<(&'a str, &'a str)> {
    let mut l: Vec<(&str, &str)> = vec![("__name__", name)];
    l.extend(run.iter().map(|(k, v)| (*k, v.as_str())));
    l.extend(own.iter().map(|(k, v)| (*k, v.as_str())));
    l
}

/// The `WriteRequest` of `e` (not yet compressed): one series per sample, histograms as their
/// `_bucket` (one per `le`), `_sum` and `_count` series.
pub fn encode(e: &Exposition) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 * 1024);
    let at = e.at_unix_ms;
    for f in &e.families {
        match f.kind {
            Kind::Counter | Kind::Gauge => {
                for (own, v) in &f.samples {
                    series(&mut out, &mut base(f.name, &e.run, own), *v, at);
                }
            }
            Kind::Histogram => {
                let (bucket, sum, count) = (
                    format!("{}_bucket", f.name),
                    format!("{}_sum", f.name),
                    format!("{}_count", f.name),
                );
                for (own, b) in &f.histograms {
                    for (i, n) in b.cumulative().enumerate() {
                        let mut l = base(&bucket, &e.run, own);
                        l.push(("le", LE_LABELS.get(i).map_or("+Inf", String::as_str)));
                        series(&mut out, &mut l, n as f64, at);
                    }
                    series(&mut out, &mut base(&sum, &e.run, own), b.sum_us / 1e6, at);
                    series(&mut out, &mut base(&count, &e.run, own), b.count as f64, at);
                }
            }
        }
    }
    out
}
