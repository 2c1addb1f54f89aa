//! HdrHistogram interval logs (`.hlog`): the standard text format that HdrHistogram's own tools
//! (`HistogramLogProcessor`, HdrHistogramVisualizer, HdrHistogram_py, the `hdrhistogram` crate)
//! read.
//!
//! One file per run holds every histogram the run can record, told apart by
//! `Tag=<metric>[.intended],`, with a line for each of them every interval (about a second),
//! empty intervals included, so that a reader sees each second of each histogram and can tell "no
//! samples" from "no line". The `.intended` view is logged for the metrics that have a schedule
//! (`Metric::scheduled`); the others never record it. One file keeps one run's lines in time
//! order, and the standard tools select a tag with `-tag`. Each interval is flushed as it is
//! written, so a crash loses at most the interval being written.
//!
//! Values are microseconds. The `Interval_Max` column is scaled as HdrHistogram's reference
//! writers (Java's `HistogramLogWriter`, HdrHistogram_py) scale it: the interval's largest value
//! divided by [`MAX_VALUE_DIVISOR`] (1,000,000), so with microsecond values it reads in seconds;
//! the header comment says so. Readers take the figures from the encoded histogram, not from it.
//!
//! ```text
//! #chatstorm run <name>: latency in microseconds
//! #Values in microseconds. Interval_Max: ...
//! #[Histogram log format version 1.3]
//! #[StartTime: 1764471600.000 (seconds since epoch)]
//! #[BaseTime: 1764471600.000 (seconds since epoch)]
//! "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
//! Tag=connect.ws,0.000,1.000,0.001,HISTFAAAAC...
//! ```

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag};
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};

/// What the `Interval_Max` column is divided by: HdrHistogram's reference writers' default
/// (`maxValueUnitRatio`), whatever the unit of the values.
pub const MAX_VALUE_DIVISOR: f64 = 1_000_000.0;

/// The header comment that says what the columns hold.
pub const UNITS_COMMENT: &str = "Values in microseconds. Interval_Max: the interval's largest value / 1000000 \
(so in seconds), as HdrHistogram's reference writer scales it. One line per histogram per interval, empty \
intervals included.";

/// What can go wrong writing or reading an interval log.
#[derive(Debug, thiserror::Error)]
pub enum HlogError {
    /// The file could not be created or written.
    #[error("interval log: {0}")]
    Io(#[from] io::Error),
    /// A histogram could not be encoded.
    #[error("interval log: cannot encode histogram: {0}")]
    Encode(String),
    /// A tag contains `,`, a space or a line break.
    #[error("interval log: invalid tag {0:?}")]
    BadTag(String),
    /// The log could not be parsed.
    #[error("interval log: parse error at byte {0}")]
    Parse(usize),
    /// A histogram line held something that is not a V2 histogram.
    #[error("interval log: bad histogram at {tag}@{start_s}s: {reason}")]
    Decode {
        /// The line's tag, empty if none.
        tag: String,
        /// The line's start timestamp, in seconds.
        start_s: f64,
        /// What was wrong.
        reason: String,
    },
}

/// Writes an interval log as the run goes.
pub struct HlogWriter<W: Write> {
    out: W,
    serializer: V2DeflateSerializer,
    /// One line's encoded histogram; reused.
    raw: Vec<u8>,
    /// The same, base64: the line's last column; reused, and readable after the write (a fleet
    /// shard sends the interval's histograms as encoded here rather than encoding them again).
    encoded: String,
}

/// Creates `path` and writes the log header; `start` is the run's start (StartTime and BaseTime,
/// so interval timestamps are seconds since the start).
///
/// # Errors
/// [`HlogError::Io`] when the file cannot be created or written.
pub fn create(path: &Path, start: SystemTime, comment: &str) -> Result<HlogWriter<BufWriter<File>>, HlogError> {
    HlogWriter::new(BufWriter::new(File::create(path)?), start, comment)
}

impl<W: Write> HlogWriter<W> {
    /// Writes the header (the comment, StartTime, BaseTime, legend) to `out`.
    ///
    /// # Errors
    /// [`HlogError::Io`] when `out` fails.
    pub fn new(mut out: W, start: SystemTime, comment: &str) -> Result<HlogWriter<W>, HlogError> {
        let mut serializer = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment(comment)
            .add_comment(UNITS_COMMENT)
            .add_comment("[Histogram log format version 1.3]")
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut out, &mut serializer)?;
        out.write_all(b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n")?;
        out.flush()?;
        Ok(HlogWriter {
            out,
            serializer,
            raw: Vec::new(),
            encoded: String::new(),
        })
    }

    /// Appends one interval histogram (empty ones too). `start` is the interval's start, counted
    /// from the log's start; `length` its duration. Not flushed: call
    /// [`flush`](HlogWriter::flush) once the interval's histograms are all written.
    ///
    /// The line is written here rather than by the `hdrhistogram` crate's writer, whose max
    /// divisor is only set together with a header of its own.
    ///
    /// # Errors
    /// [`HlogError::BadTag`], [`HlogError::Encode`] or [`HlogError::Io`].
    pub fn write(&mut self, tag: &str, start: Duration, length: Duration, h: &Histogram<u64>) -> Result<(), HlogError> {
        use base64::Engine as _;
        let tag = Tag::new(tag).ok_or_else(|| HlogError::BadTag(tag.to_owned()))?;
        self.raw.clear();
        self.serializer
            .serialize(h, &mut self.raw)
            .map_err(|e| HlogError::Encode(format!("{e:?}")))?;
        self.encoded.clear();
        base64::engine::general_purpose::STANDARD.encode_string(&self.raw, &mut self.encoded);
        writeln!(
            self.out,
            "Tag={},{:.3},{:.3},{:.3},{}",
            tag.as_str(),
            start.as_secs_f64(),
            length.as_secs_f64(),
            h.max() as f64 / MAX_VALUE_DIVISOR,
            self.encoded
        )?;
        Ok(())
    }

    /// The histogram of the last line written, V2 deflate, base64 (what
    /// [`super::HistogramSnapshot::decode`] reads).
    pub fn last_encoded(&self) -> &str {
        &self.encoded
    }

    /// Pushes everything written so far to the operating system.
    ///
    /// # Errors
    /// [`HlogError::Io`].
    pub fn flush(&mut self) -> Result<(), HlogError> {
        Ok(self.out.flush()?)
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// One interval read back from a log.
#[derive(Debug, Clone)]
pub struct HlogInterval {
    /// The line's tag, if any.
    pub tag: Option<String>,
    /// Interval start, relative to the log's BaseTime (or the epoch without one).
    pub start: Duration,
    /// Interval length.
    pub length: Duration,
    /// The decoded histogram.
    pub histogram: Histogram<u64>,
}

/// A whole interval log, parsed and decoded.
#[derive(Debug, Clone, Default)]
pub struct HlogContents {
    /// `#[StartTime: ...]`, seconds since the epoch.
    pub start_time: Option<Duration>,
    /// `#[BaseTime: ...]`, seconds since the epoch.
    pub base_time: Option<Duration>,
    /// Every interval, in file order.
    pub intervals: Vec<HlogInterval>,
}

/// Parses and decodes a whole interval log (for tests, and to rebuild per-second figures exactly
/// when merging shards' logs).
///
/// # Errors
/// [`HlogError::Parse`] or [`HlogError::Decode`] on a malformed log.
pub fn read(bytes: &[u8]) -> Result<HlogContents, HlogError> {
    let mut contents = HlogContents::default();
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(bytes) {
        match entry {
            Err(hdrhistogram::serialization::interval_log::LogIteratorError::ParseError { offset }) => {
                return Err(HlogError::Parse(offset));
            }
            Ok(LogEntry::StartTime(t)) => contents.start_time = Some(t),
            Ok(LogEntry::BaseTime(t)) => contents.base_time = Some(t),
            Ok(LogEntry::Interval(line)) => {
                let tag = line.tag().map(|t| t.as_str().to_owned());
                let bad = |reason: String| HlogError::Decode {
                    tag: tag.clone().unwrap_or_default(),
                    start_s: line.start_timestamp().as_secs_f64(),
                    reason,
                };
                let raw = base64_decode(line.encoded_histogram()).map_err(&bad)?;
                let histogram: Histogram<u64> = deserializer
                    .deserialize(&mut io::Cursor::new(raw))
                    .map_err(|e| bad(format!("{e:?}")))?;
                contents.intervals.push(HlogInterval {
                    tag,
                    start: line.start_timestamp(),
                    length: line.duration(),
                    histogram,
                });
            }
        }
    }
    Ok(contents)
}

/// A line's base64 histogram as bytes (shared with [`super::hlog_merge`]).
pub(super) fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::new_histogram;

    #[test]
    fn written_intervals_read_back_with_the_same_counts() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_471_600);
        let mut w = HlogWriter::new(Vec::new(), start, "test run").expect("header");
        let mut a = new_histogram();
        let mut b = new_histogram();
        for v in 1..=1_000u64 {
            a.record(v * 3).expect("in range");
        }
        b.record(crate::metrics::MAX_US).expect("in range");
        w.write("connect.ws", Duration::ZERO, Duration::from_secs(1), &a)
            .expect("write");
        w.write(
            "connect.ws.intended",
            Duration::from_secs(1),
            Duration::from_millis(1_002),
            &b,
        )
        .expect("write");
        w.flush().expect("flush");
        let bytes = w.into_inner();
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        assert!(
            text.starts_with(&format!(
                "#test run\n#{UNITS_COMMENT}\n#[Histogram log format version 1.3]\n"
            )),
            "{text}"
        );
        assert!(text.contains("#[StartTime: 1764471600.000 (seconds since epoch)]\n"));
        assert!(text.contains("#[BaseTime: 1764471600.000 (seconds since epoch)]\n"));
        assert!(
            text.contains(
                "\n\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n"
            )
        );
        // max 3000 us, scaled by 1,000,000 (3001: the highest value equivalent to 3000)
        assert!(text.contains("\nTag=connect.ws,0.000,1.000,0.003,HIST"), "{text}");
        assert!(
            text.contains("\nTag=connect.ws.intended,1.000,1.002,3600.810,HIST"),
            "{text}"
        );

        let log = read(&bytes).expect("parse");
        assert_eq!(log.base_time, Some(Duration::from_secs(1_764_471_600)));
        assert_eq!(log.start_time, Some(Duration::from_secs(1_764_471_600)));
        assert_eq!(log.intervals.len(), 2);
        let first = &log.intervals[0];
        assert_eq!(first.tag.as_deref(), Some("connect.ws"));
        assert_eq!(first.histogram, a);
        assert_eq!(first.histogram.len(), 1_000);
        let second = &log.intervals[1];
        assert_eq!(second.tag.as_deref(), Some("connect.ws.intended"));
        assert_eq!(second.start, Duration::from_secs(1));
        assert_eq!(second.length, Duration::from_millis(1_002));
        assert_eq!(second.histogram.len(), 1);
    }

    #[test]
    fn bad_tags_and_bad_logs_are_errors_not_panics() {
        let mut w = HlogWriter::new(Vec::new(), SystemTime::UNIX_EPOCH, "x").expect("header");
        let h = new_histogram();
        assert!(matches!(
            w.write("a b", Duration::ZERO, Duration::from_secs(1), &h),
            Err(HlogError::BadTag(_))
        ));
        assert!(matches!(read(b"not a log\n"), Err(HlogError::Parse(0))));
        assert!(matches!(
            read(b"Tag=x,0.000,1.000,1.0,!!!!\n"),
            Err(HlogError::Decode { .. })
        ));
    }
}
