//! Merging shards' interval logs (`.hlog`) into the one log a single run would have written: a
//! fleet's coordinator, `run --workers N` and `report merge` all write it beside the merged
//! `summary.json`, so that every output of a sharded run has the single run's shape.
//!
//! Alignment: the merged log starts at the shards' common start (the earliest `StartTime`; in a
//! fleet every shard starts at the coordinator's one instant, so all are equal). Each shard's
//! collector writes one line per tag per tick (empty intervals included, see
//! [`super::hlog`]), so a line's tick is its ordinal among its tag's lines; a shard that started
//! later is shifted by its start's distance from the common start, rounded to whole ticks.
//! Ordinals rather than timestamps, because a tick's timestamps jitter (a late tick, then an early
//! one) while its place in the sequence does not, and the last, short interval of a run would
//! otherwise fall into the same second as the one before it. Lines of one tick and tag are added
//! exactly (same bounds everywhere); the merged line spans from the earliest start to the latest
//! end among them.
//!
//! Memory is flat in run length and in the number of shards' lines: the logs are read line by
//! line, in step, one tick at a time, with one histogram per tag.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry, LogIteratorError};

use super::hlog::{self, HlogError};
use super::new_histogram;

/// One interval line, placed on the merged timeline.
struct Line {
    tick: u64,
    tag: String,
    /// Start and end, from the common start.
    start: Duration,
    end: Duration,
    encoded: String,
}

/// One shard's log, read a line at a time.
struct ShardLog {
    lines: io::Lines<BufReader<File>>,
    /// The log's BaseTime (what its line timestamps count from), since the epoch.
    base: Duration,
    /// Ticks between the common start and this log's start.
    shift: u64,
    /// Lines seen per tag.
    ordinals: HashMap<String, u64>,
    /// The first line not yet merged.
    next: Option<Line>,
    /// The first interval line, met while reading the header.
    first: Option<String>,
}

/// What one line of a log is.
enum Parsed {
    Start(Duration),
    Base(Duration),
    Interval {
        tag: Option<String>,
        start: Duration,
        length: Duration,
        encoded: String,
    },
    Other,
}

fn parse(line: &str, at: usize) -> Result<Parsed, HlogError> {
    if line.trim().is_empty() {
        return Ok(Parsed::Other);
    }
    // The crate's own reader, one line at a time (it needs the line's end).
    let text = format!("{line}\n");
    match IntervalLogIterator::new(text.as_bytes()).next() {
        None => Ok(Parsed::Other),
        Some(Err(LogIteratorError::ParseError { offset })) => Err(HlogError::Parse(at + offset)),
        Some(Ok(LogEntry::StartTime(t))) => Ok(Parsed::Start(t)),
        Some(Ok(LogEntry::BaseTime(t))) => Ok(Parsed::Base(t)),
        Some(Ok(LogEntry::Interval(i))) => Ok(Parsed::Interval {
            tag: i.tag().map(|t| t.as_str().to_owned()),
            start: i.start_timestamp(),
            length: i.duration(),
            encoded: i.encoded_histogram().to_owned(),
        }),
    }
}

impl ShardLog {
    /// Opens a log and reads its header (up to the first interval line).
    fn open(path: &Path) -> Result<ShardLog, HlogError> {
        let mut lines = BufReader::new(File::open(path)?).lines();
        let (mut start, mut base, mut first) = (None, None, None);
        let mut at = 0;
        for line in lines.by_ref() {
            let line = line?;
            match parse(&line, at)? {
                Parsed::Start(t) => start = Some(t),
                Parsed::Base(t) => base = Some(t),
                Parsed::Interval { .. } => {
                    first = Some(line);
                    break;
                }
                Parsed::Other => {}
            }
            at += line.len() + 1;
        }
        Ok(ShardLog {
            lines,
            base: base.or(start).unwrap_or_default(),
            shift: 0,
            ordinals: HashMap::new(),
            next: None,
            first,
        })
    }

    /// Reads the next interval line into `self.next` (`None` at the end).
    fn advance(&mut self, common: Duration) -> Result<(), HlogError> {
        self.next = None;
        loop {
            let line = match self.first.take() {
                Some(l) => l,
                None => match self.lines.next() {
                    Some(l) => l?,
                    None => return Ok(()),
                },
            };
            let Parsed::Interval {
                tag,
                start,
                length,
                encoded,
            } = parse(&line, 0)?
            else {
                continue;
            };
            // Our logs tag every line; an untagged one could not be told apart from the others.
            let tag = tag.ok_or_else(|| HlogError::BadTag(String::new()))?;
            let ordinal = self.ordinals.entry(tag.clone()).or_insert(0);
            let tick = *ordinal + self.shift;
            *ordinal += 1;
            let offset = self.base.saturating_sub(common);
            self.next = Some(Line {
                tick,
                tag,
                start: offset + start,
                end: offset + start + length,
                encoded,
            });
            return Ok(());
        }
    }
}

/// One tag's merged line of the tick being merged.
struct Merged {
    histogram: Histogram<u64>,
    start: Duration,
    end: Duration,
    used: bool,
}

/// Merges the logs at `inputs` into `out`, whose header carries `comment`; returns the ticks
/// written.
///
/// # Errors
/// [`HlogError`] when a log cannot be read, parsed or decoded, or `out` cannot be written.
pub fn merge_files(inputs: &[&Path], out: &Path, comment: &str) -> Result<u64, HlogError> {
    let mut logs = inputs
        .iter()
        .map(|p| ShardLog::open(p))
        .collect::<Result<Vec<_>, _>>()?;
    let common = logs.iter().map(|l| l.base).min().unwrap_or_default();
    for log in &mut logs {
        log.shift = (log.base - common).as_secs_f64().round() as u64;
        log.advance(common)?;
    }
    let mut writer = hlog::create(out, SystemTime::UNIX_EPOCH + common, comment)?;
    // Tags in the order they were first met: a single run's order (its series, then `connect`).
    let mut tags: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut merged: Vec<Merged> = Vec::new();
    let mut deserializer = Deserializer::new();
    let mut ticks = 0;
    while let Some(tick) = logs.iter().filter_map(|l| l.next.as_ref().map(|n| n.tick)).min() {
        for log in &mut logs {
            while log.next.as_ref().is_some_and(|n| n.tick == tick) {
                let Some(line) = log.next.take() else { break };
                let i = *index.entry(line.tag.clone()).or_insert_with(|| {
                    tags.push(line.tag.clone());
                    merged.push(Merged {
                        histogram: new_histogram(),
                        start: Duration::MAX,
                        end: Duration::ZERO,
                        used: false,
                    });
                    tags.len() - 1
                });
                let bad = |reason: String| HlogError::Decode {
                    tag: line.tag.clone(),
                    start_s: line.start.as_secs_f64(),
                    reason,
                };
                let raw = hlog::base64_decode(&line.encoded).map_err(bad)?;
                let h: Histogram<u64> = deserializer
                    .deserialize(&mut io::Cursor::new(raw))
                    .map_err(|e| bad(format!("{e:?}")))?;
                let m = &mut merged[i];
                m.histogram.add(&h).map_err(|e| bad(format!("{e:?}")))?;
                m.start = m.start.min(line.start);
                m.end = m.end.max(line.end);
                m.used = true;
                log.advance(common)?;
            }
        }
        for (tag, m) in tags.iter().zip(&mut merged) {
            if !m.used {
                continue;
            }
            writer.write(tag, m.start, m.end.saturating_sub(m.start), &m.histogram)?;
            m.histogram.reset();
            m.start = Duration::MAX;
            m.end = Duration::ZERO;
            m.used = false;
        }
        ticks += 1;
    }
    writer.flush()?;
    Ok(ticks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::hlog::HlogWriter;

    fn log(path: &Path, start_s: u64, lines: &[(&str, f64, f64, &[u64])]) {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(start_s);
        let mut w = HlogWriter::new(File::create(path).unwrap(), start, "shard").unwrap();
        for (tag, at, len, values) in lines {
            let mut h = new_histogram();
            for v in *values {
                h.record(*v).unwrap();
            }
            w.write(tag, Duration::from_secs_f64(*at), Duration::from_secs_f64(*len), &h)
                .unwrap();
        }
        w.flush().unwrap();
    }

    #[test]
    fn ticks_and_tags_add_exactly_on_the_common_start() {
        let dir = std::env::temp_dir().join(format!("chatstorm-hlog-merge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b, out) = (dir.join("a.hlog"), dir.join("b.hlog"), dir.join("m.hlog"));
        // Shard a: two ticks and a short last one; shard b starts 1 s later (one tick), with
        // a late tick and a tag a never had.
        log(
            &a,
            100,
            &[
                ("x", 0.0, 1.0, &[10, 20]),
                ("y", 0.0, 1.0, &[]),
                ("x", 1.0, 1.0, &[30]),
                ("y", 1.0, 1.0, &[5]),
                ("x", 2.0, 0.3, &[40]),
                ("y", 2.0, 0.3, &[]),
            ],
        );
        log(
            &b,
            101,
            &[
                ("x", 0.0, 1.4, &[50]),
                ("z", 0.0, 1.4, &[7]),
                ("x", 1.4, 0.6, &[60, 70]),
            ],
        );
        assert_eq!(merge_files(&[&a, &b], &out, "merged").unwrap(), 3);
        let m = hlog::read(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(m.start_time, Some(Duration::from_secs(100)));
        let got: Vec<(String, f64, f64, u64)> = m
            .intervals
            .iter()
            .map(|i| {
                (
                    i.tag.clone().unwrap(),
                    i.start.as_secs_f64(),
                    i.length.as_secs_f64(),
                    i.histogram.len(),
                )
            })
            .collect();
        let want = [
            ("x", 0.0, 1.0, 2),
            ("y", 0.0, 1.0, 0),
            ("x", 1.0, 1.4, 2),
            ("y", 1.0, 1.0, 1),
            ("z", 1.0, 1.4, 1),
            ("x", 2.0, 1.0, 3),
            ("y", 2.0, 0.3, 0),
        ];
        let want: Vec<(String, f64, f64, u64)> =
            want.iter().map(|(t, s, l, n)| ((*t).to_owned(), *s, *l, *n)).collect();
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.0, w.0, "{got:?}");
            assert!((g.1 - w.1).abs() < 1e-6 && (g.2 - w.2).abs() < 1e-6, "{got:?}");
            assert_eq!(g.3, w.3, "{got:?}");
        }
        // Values, not only counts: the third tick of x holds 40, 60 and 70.
        let x3 = &m.intervals[5].histogram;
        assert_eq!((x3.min(), x3.max()), (40, x3.highest_equivalent(70)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_broken_log_is_an_error() {
        let dir = std::env::temp_dir().join(format!("chatstorm-hlog-merge-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, out) = (dir.join("a.hlog"), dir.join("m.hlog"));
        std::fs::write(
            &a,
            "#[StartTime: 1.000 (seconds since epoch)]\nTag=x,0.000,1.000,0.0,!!!!\n",
        )
        .unwrap();
        assert!(matches!(merge_files(&[&a], &out, "m"), Err(HlogError::Decode { .. })));
        assert!(merge_files(&[&dir.join("absent.hlog")], &out, "m").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
