//! The end-of-run measurements as one serializable value, [`MetricsSnapshot`], and the exact merge
//! of several (one per local shard process or per machine) into one.
//!
//! What merges exactly: histograms (added bucket by bucket, as HdrHistograms), counters and code
//! counts (summed), curves (aligned on wall-clock time at 1 s resolution, then summed), storms
//! (matched by label and time, then added). What does not: a per-second percentile cannot be
//! rebuilt from two shards' percentiles, so a merged [`SeriesPoint`] has exact `count` and `max`
//! and, for p50/p90/p99, the highest of the shards' values (an upper bound). The exact per-second
//! figures are in the shards' `.hlog` files, which [`super::hlog::read`] decodes.

use std::collections::BTreeMap;
use std::io;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use super::timeline::Timeline;
use super::{CodeCounts, PercentileSummary, StormSnapshot, new_histogram};

/// One histogram's figures for one interval (about one second).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SeriesPoint {
    /// End of the interval, milliseconds since the run's start.
    pub t_ms: u64,
    /// Samples in the interval.
    pub count: u64,
    /// Median, microseconds.
    pub p50_us: u64,
    /// 90th percentile, microseconds.
    pub p90_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
    /// Largest sample, microseconds.
    pub max_us: u64,
}

/// What can go wrong reading or merging snapshots.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A histogram is not valid base64 of a V2 (deflate) HdrHistogram.
    #[error("histogram {0}: cannot decode: {1}")]
    Decode(String, String),
    /// A histogram does not fit chatstorm's bounds (1 us ..= 1 h).
    #[error("histogram {0}: values outside the 1 us ..= 1 h range")]
    OutOfRange(String),
    /// A histogram could not be encoded.
    #[error("histogram {0}: cannot encode: {1}")]
    Encode(String, String),
}

/// One histogram, serialized the way `.hlog` lines are (V2 deflate, base64: `HISTFAAA...`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HistogramSnapshot {
    /// Samples held (also in the encoding; here so that readers need not decode).
    pub count: u64,
    /// Samples above [`MAX_US`](super::MAX_US) that were recorded as [`MAX_US`](super::MAX_US).
    pub clamped: u64,
    /// The histogram, V2 deflate, base64.
    pub encoded: String,
}

impl HistogramSnapshot {
    /// Serializes a histogram. An encoding failure (which only a histogram with more than
    /// `i64::MAX` counts could cause) yields an empty encoding that [`decode`](Self::decode)
    /// reports as an error, so a snapshot is always produced.
    pub fn encode(h: &Histogram<u64>, clamped: u64) -> HistogramSnapshot {
        let mut raw = Vec::new();
        let encoded = match V2DeflateSerializer::new().serialize(h, &mut raw) {
            Ok(_) => base64::engine::general_purpose::STANDARD.encode(&raw),
            Err(_) => String::new(),
        };
        HistogramSnapshot {
            count: h.len(),
            clamped,
            encoded,
        }
    }

    /// The histogram, normalized to chatstorm's bounds so that any two decode to addable
    /// histograms.
    ///
    /// # Errors
    /// [`SnapshotError::Decode`] for malformed input, [`SnapshotError::OutOfRange`] for values
    /// above the bounds.
    pub fn decode(&self) -> Result<Histogram<u64>, SnapshotError> {
        let fail = |e: String| SnapshotError::Decode(short(&self.encoded), e);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&self.encoded)
            .map_err(|e| fail(e.to_string()))?;
        let decoded: Histogram<u64> = Deserializer::new()
            .deserialize(&mut io::Cursor::new(raw))
            .map_err(|e| fail(format!("{e:?}")))?;
        let mut h = new_histogram();
        h.add(&decoded)
            .map_err(|_| SnapshotError::OutOfRange(short(&self.encoded)))?;
        Ok(h)
    }

    /// Adds another snapshot's samples into this one, exactly.
    ///
    /// # Errors
    /// As [`decode`](Self::decode).
    pub fn merge(&mut self, other: &HistogramSnapshot) -> Result<(), SnapshotError> {
        let mut h = self.decode()?;
        h.add(other.decode()?)
            .map_err(|_| SnapshotError::OutOfRange(short(&other.encoded)))?;
        *self = HistogramSnapshot::encode(&h, self.clamped + other.clamped);
        Ok(())
    }

    /// The percentile summary.
    ///
    /// # Errors
    /// As [`decode`](Self::decode).
    pub fn summary(&self) -> Result<PercentileSummary, SnapshotError> {
        Ok(PercentileSummary::of(&self.decode()?, self.clamped))
    }
}

fn short(encoded: &str) -> String {
    encoded.chars().take(16).collect()
}

/// Everything a run (or a merge of shard runs) measured; what `summary.json` is built from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MetricsSnapshot {
    /// Wall-clock start of the run, milliseconds since the Unix epoch.
    pub start_unix_ms: u64,
    /// From the start to the last collection, milliseconds.
    pub duration_ms: u64,
    /// How many runs were merged into this one (1 for a single process).
    pub shards: u32,
    /// Every non-empty histogram over the whole run, by tag (`connect.ws`, `connect.ws.intended`).
    pub histograms: BTreeMap<String, HistogramSnapshot>,
    /// Every counter's total, by name.
    pub counters: BTreeMap<String, u64>,
    /// Failures by API error code.
    pub error_codes: CodeCounts,
    /// Closes by WebSocket close code.
    pub close_codes: CodeCounts,
    /// Connect failures without an API error, by [`FailureKind`](super::FailureKind) key.
    #[serde(default)]
    pub failure_kinds: CodeCounts,
    /// Gauges, counters and codes per second.
    pub timeline: Timeline,
    /// Per-second figures of each non-empty histogram, by tag.
    pub series: BTreeMap<String, Vec<SeriesPoint>>,
    /// Reconnect storms and background waves, in time order.
    pub storms: Vec<StormSnapshot>,
    /// The same measurements per SDK profile of the run's mix, by profile name. Their sums are
    /// the totals above, except for what belongs to no user (scheduler lag, late ticks, lost and
    /// duplicated deliveries, which are settled for the run as a whole).
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileSnapshot>,
}

/// What the users of one SDK profile measured; mergeable like [`MetricsSnapshot`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProfileSnapshot {
    /// Users of this profile started.
    pub users: u64,
    /// Most of them live at once (sampled each second). Exact for one process; after a merge of
    /// shards, recomputed from the summed per-second `connected.<profile>` timeline column when
    /// the run mixed profiles (an upper bound otherwise: the sum of the shards' peaks).
    pub connected_peak: u64,
    /// Every non-empty histogram, by tag.
    pub histograms: BTreeMap<String, HistogramSnapshot>,
    /// Every counter, by name.
    pub counters: BTreeMap<String, u64>,
    /// Failures by API error code.
    pub error_codes: CodeCounts,
    /// Closes by WebSocket close code.
    pub close_codes: CodeCounts,
    /// Connect failures without an API error, by [`FailureKind`](super::FailureKind) key.
    #[serde(default)]
    pub failure_kinds: CodeCounts,
    /// Conformance observations of this profile's users, by rule id.
    #[serde(default)]
    pub conformance: BTreeMap<String, RuleTally>,
}

/// Checks and failures of one conformance rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RuleTally {
    /// Observations checked against the rule.
    pub checks: u64,
    /// Observations that violated it.
    pub failures: u64,
}

impl ProfileSnapshot {
    /// Adds another shard's figures of the same profile.
    ///
    /// # Errors
    /// [`SnapshotError`] when a histogram cannot be decoded.
    pub fn merge(&mut self, other: &ProfileSnapshot) -> Result<(), SnapshotError> {
        self.users += other.users;
        self.connected_peak += other.connected_peak;
        merge_histograms(&mut self.histograms, &other.histograms)?;
        for (name, n) in &other.counters {
            *self.counters.entry(name.clone()).or_insert(0) += n;
        }
        self.error_codes.merge(&other.error_codes);
        self.close_codes.merge(&other.close_codes);
        self.failure_kinds.merge(&other.failure_kinds);
        for (id, t) in &other.conformance {
            let mine = self.conformance.entry(id.clone()).or_default();
            mine.checks += t.checks;
            mine.failures += t.failures;
        }
        Ok(())
    }

    /// Several tags added into one histogram, as [`MetricsSnapshot::combined`].
    ///
    /// # Errors
    /// As [`HistogramSnapshot::decode`].
    pub fn combined(&self, tags: &[&str]) -> Result<(Histogram<u64>, u64), SnapshotError> {
        combine(&self.histograms, tags)
    }
}

fn merge_histograms(
    mine: &mut BTreeMap<String, HistogramSnapshot>,
    theirs: &BTreeMap<String, HistogramSnapshot>,
) -> Result<(), SnapshotError> {
    for (tag, h) in theirs {
        match mine.get_mut(tag) {
            Some(m) => m.merge(h)?,
            None => {
                h.decode()?;
                mine.insert(tag.clone(), h.clone());
            }
        }
    }
    Ok(())
}

fn combine(
    histograms: &BTreeMap<String, HistogramSnapshot>,
    tags: &[&str],
) -> Result<(Histogram<u64>, u64), SnapshotError> {
    let mut h = new_histogram();
    let mut clamped = 0;
    for tag in tags {
        if let Some(s) = histograms.get(*tag) {
            h.add(s.decode()?)
                .map_err(|_| SnapshotError::OutOfRange((*tag).to_owned()))?;
            clamped += s.clamped;
        }
    }
    Ok((h, clamped))
}

impl MetricsSnapshot {
    /// Adds another run's measurements into this one: histograms added, counters summed, curves
    /// aligned on wall-clock time (each run's `start_unix_ms`) at 1 s resolution and summed,
    /// storms with the same label and time merged. The merged start is the earlier start.
    ///
    /// # Errors
    /// [`SnapshotError`] when a histogram of either side cannot be decoded; `self` may then be
    /// partly merged and should be discarded.
    pub fn merge(&mut self, other: &MetricsSnapshot) -> Result<(), SnapshotError> {
        if self.shards == 0 {
            // Merging into an empty (default) snapshot: start from the other one, checked.
            for h in other.histograms.values() {
                h.decode()?;
            }
            *self = other.clone();
            return Ok(());
        }
        let start = self.start_unix_ms.min(other.start_unix_ms);
        let self_shift = self.start_unix_ms - start;
        let other_shift = other.start_unix_ms - start;

        merge_histograms(&mut self.histograms, &other.histograms)?;
        for (name, theirs) in &other.profiles {
            match self.profiles.get_mut(name) {
                Some(mine) => mine.merge(theirs)?,
                None => {
                    let mut p = ProfileSnapshot::default();
                    p.merge(theirs)?;
                    self.profiles.insert(name.clone(), p);
                }
            }
        }
        for (name, n) in &other.counters {
            *self.counters.entry(name.clone()).or_insert(0) += n;
        }
        self.error_codes.merge(&other.error_codes);
        self.close_codes.merge(&other.close_codes);
        self.failure_kinds.merge(&other.failure_kinds);

        self.timeline = Timeline::merge(&self.timeline, self_shift, &other.timeline, other_shift);

        let mut series = BTreeMap::new();
        for (tag, points) in &self.series {
            series.insert(tag.clone(), shift_points(points, self_shift));
        }
        for (tag, points) in &other.series {
            let mine = series.entry(tag.clone()).or_insert_with(Vec::new);
            *mine = merge_points(mine, &shift_points(points, other_shift));
        }
        self.series = series;

        for storm in &mut self.storms {
            storm.offset_ms += self_shift;
        }
        for theirs in &other.storms {
            let mut theirs = theirs.clone();
            theirs.offset_ms += other_shift;
            let same = self
                .storms
                .iter_mut()
                .find(|s| s.label == theirs.label && s.offset_ms.abs_diff(theirs.offset_ms) < 1_000);
            match same {
                Some(mine) => mine.merge(&theirs)?,
                None => self.storms.push(theirs),
            }
        }
        self.storms
            .sort_by(|a, b| a.offset_ms.cmp(&b.offset_ms).then(a.label.cmp(&b.label)));

        self.duration_ms = (self.duration_ms + self_shift).max(other.duration_ms + other_shift);
        self.start_unix_ms = start;
        self.shards += other.shards;
        Ok(())
    }

    /// The histogram of one tag, decoded; an empty histogram when nothing was recorded.
    ///
    /// # Errors
    /// As [`HistogramSnapshot::decode`].
    pub fn histogram(&self, tag: &str) -> Result<Histogram<u64>, SnapshotError> {
        self.histograms
            .get(tag)
            .map_or_else(|| Ok(new_histogram()), HistogramSnapshot::decode)
    }

    /// Several tags added into one histogram (for example `connect.ws` and `connect.longpoll` for
    /// an all-transports `connect` figure), with their clamped counts summed.
    ///
    /// # Errors
    /// As [`HistogramSnapshot::decode`].
    pub fn combined(&self, tags: &[&str]) -> Result<(Histogram<u64>, u64), SnapshotError> {
        combine(&self.histograms, tags)
    }
}

fn shift_points(points: &[SeriesPoint], shift_ms: u64) -> Vec<SeriesPoint> {
    points
        .iter()
        .map(|p| SeriesPoint {
            t_ms: p.t_ms + shift_ms,
            ..*p
        })
        .collect()
}

/// Merges two time-ordered point lists; points in the same second are combined (count summed,
/// max and percentiles the highest).
fn merge_points(a: &[SeriesPoint], b: &[SeriesPoint]) -> Vec<SeriesPoint> {
    let mut by_second: BTreeMap<u64, SeriesPoint> = BTreeMap::new();
    for p in a.iter().chain(b) {
        let slot = (p.t_ms + 500) / 1_000;
        by_second
            .entry(slot)
            .and_modify(|q| {
                q.count += p.count;
                q.p50_us = q.p50_us.max(p.p50_us);
                q.p90_us = q.p90_us.max(p.p90_us);
                q.p99_us = q.p99_us.max(p.p99_us);
                q.max_us = q.max_us.max(p.max_us);
            })
            .or_insert(SeriesPoint {
                t_ms: slot * 1_000,
                ..*p
            });
    }
    by_second.into_values().collect()
}
