//! A lock-free HdrHistogram for the hot path: the same bucket layout as an
//! `hdrhistogram::Histogram` with bounds 1 us ..= [`MAX_US`] and 3 significant digits, but with
//! atomic counters so that any thread can record with one relaxed `fetch_add`, and one collector
//! can drain it concurrently without ever losing a count.
//!
//! Why not `hdrhistogram::sync::Recorder`: its recorders hand off through a channel and the
//! collector must wait for every recorder to take part in a phase, which a user task parked on a
//! socket never does. Why not a `Mutex<Histogram>` per thread: measured slower (see
//! `benches/record.rs`), and a lock on the hot path is what the issue asks us to avoid.
//!
//! Memory is allocated lazily in chunks of 1,024 counters (8 KiB, one per half-bucket of the
//! HdrHistogram layout), so a histogram whose values sit between 1 ms and 1 s costs about 90 KiB
//! and one never recorded into costs 23 null pointers: the table holds every metric for every
//! shard, and most are empty in a given scenario.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::MAX_US;

/// log2 of half the sub-bucket count: 3 significant digits need 2,048 sub-buckets per bucket.
const HALF_MAGNITUDE: u32 = 10;
/// Counters per chunk: half a bucket, the unit of the HdrHistogram counts layout.
const CHUNK: usize = 1 << HALF_MAGNITUDE;
const SUB_BUCKET_MASK: u64 = (1 << (HALF_MAGNITUDE + 1)) - 1;
/// `64 - unit_magnitude (0, lowest value 1) - sub_bucket_count_magnitude (11)`.
const LEADING_ZERO_COUNT_BASE: u32 = 64 - (HALF_MAGNITUDE + 1);

/// Buckets needed to cover [`MAX_US`], computed as `hdrhistogram` does.
const BUCKET_COUNT: usize = {
    let mut smallest_untrackable: u64 = 1 << (HALF_MAGNITUDE + 1);
    let mut buckets = 1;
    while smallest_untrackable <= MAX_US {
        smallest_untrackable <<= 1;
        buckets += 1;
    }
    buckets
};

/// Number of counters (`hdrhistogram`'s `distinct_values()` for the same bounds).
pub(crate) const LEN: usize = (BUCKET_COUNT + 1) * CHUNK;
const CHUNKS: usize = LEN / CHUNK;

/// Counts index of a value, identical to `hdrhistogram`'s for the same bounds.
#[inline]
pub(crate) fn index_of(value: u64) -> usize {
    let bucket = LEADING_ZERO_COUNT_BASE - (value | SUB_BUCKET_MASK).leading_zeros();
    let sub_bucket = value >> bucket;
    // bucket + 1 half-buckets precede this one; the lower half of each bucket above the first
    // overlaps the bucket below, hence `- CHUNK`.
    (((bucket as usize) + 1) << HALF_MAGNITUDE) + (sub_bucket as usize) - CHUNK
}

/// The lowest value that maps to a counts index.
#[inline]
pub(crate) fn value_of(index: usize) -> u64 {
    let chunk = index >> HALF_MAGNITUDE;
    let offset = (index & (CHUNK - 1)) as u64;
    if chunk == 0 {
        offset
    } else {
        (offset + CHUNK as u64) << (chunk - 1)
    }
}

/// A concurrent histogram of microsecond values in `0..=MAX_US`.
pub(crate) struct AtomicHistogram {
    chunks: [OnceLock<Box<[AtomicU64]>>; CHUNKS],
}

impl AtomicHistogram {
    /// An empty histogram; allocates nothing until the first record.
    pub(crate) fn new() -> AtomicHistogram {
        AtomicHistogram {
            chunks: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Counts one value. The caller clamps to [`MAX_US`]; a larger value is clamped here too.
    #[inline]
    pub(crate) fn record(&self, value: u64) {
        let index = index_of(value.min(MAX_US));
        let chunk = self.chunks[index >> HALF_MAGNITUDE].get_or_init(new_chunk);
        chunk[index & (CHUNK - 1)].fetch_add(1, Ordering::Relaxed);
    }

    /// Takes every count recorded so far, leaving zero behind, and hands each non-empty
    /// `(lowest value of the bucket, count)` to `sink`, in increasing value order.
    ///
    /// Safe against concurrent [`record`](AtomicHistogram::record)s: each counter is taken with
    /// an atomic swap, so a concurrent increment lands either in this drain or in the next one.
    pub(crate) fn drain(&self, mut sink: impl FnMut(u64, u64)) {
        for (c, chunk) in self.chunks.iter().enumerate() {
            let Some(chunk) = chunk.get() else { continue };
            for (i, counter) in chunk.iter().enumerate() {
                // A plain load first: most counters are zero and a load does not dirty the line.
                if counter.load(Ordering::Relaxed) != 0 {
                    let n = counter.swap(0, Ordering::Relaxed);
                    if n != 0 {
                        sink(value_of(c * CHUNK + i), n);
                    }
                }
            }
        }
    }
}

impl AtomicHistogram {
    /// Hands each non-empty `(lowest value of the bucket, count)` to `sink`, in increasing value
    /// order, leaving the counts in place: a look at a histogram that is drained only once, at
    /// the end (a storm's recovery times, drawn live while the storm goes on).
    pub(crate) fn peek(&self, mut sink: impl FnMut(u64, u64)) {
        for (c, chunk) in self.chunks.iter().enumerate() {
            let Some(chunk) = chunk.get() else { continue };
            for (i, counter) in chunk.iter().enumerate() {
                let n = counter.load(Ordering::Relaxed);
                if n != 0 {
                    sink(value_of(c * CHUNK + i), n);
                }
            }
        }
    }
}

fn new_chunk() -> Box<[AtomicU64]> {
    (0..CHUNK).map(|_| AtomicU64::new(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::new_histogram;

    #[test]
    fn layout_matches_hdrhistogram() {
        let h = new_histogram();
        assert_eq!(h.distinct_values(), LEN);
        let mut v = 0u64;
        while v <= MAX_US {
            let i = index_of(v);
            assert!(i < LEN, "{v}");
            assert_eq!(value_of(i), h.lowest_equivalent(v), "value {v}");
            // step through every bucket boundary region densely, then geometrically
            v = if v < 10_000 { v + 1 } else { v + v / 997 + 1 };
        }
        assert_eq!(index_of(MAX_US) / CHUNK, CHUNKS - 1);
    }

    #[test]
    fn drain_returns_every_count_once() {
        let a = AtomicHistogram::new();
        for v in [0, 1, 1, 999, 1_000_000, MAX_US, MAX_US + 5] {
            a.record(v);
        }
        let mut got = Vec::new();
        a.drain(|v, n| got.push((v, n)));
        let top = value_of(index_of(MAX_US));
        assert_eq!(
            got,
            vec![(0, 1), (1, 2), (999, 1), (value_of(index_of(1_000_000)), 1), (top, 2)]
        );
        let mut again = 0;
        a.drain(|_, n| again += n);
        assert_eq!(again, 0);
    }

    #[test]
    fn peek_leaves_the_counts_for_the_drain() {
        let a = AtomicHistogram::new();
        for v in [3, 3, 70_000] {
            a.record(v);
        }
        let mut seen = Vec::new();
        a.peek(|v, n| seen.push((v, n)));
        assert_eq!(seen, vec![(3, 2), (value_of(index_of(70_000)), 1)]);
        let mut drained = Vec::new();
        a.drain(|v, n| drained.push((v, n)));
        assert_eq!(drained, seen);
    }

    #[test]
    fn concurrent_records_are_never_lost() {
        let a = std::sync::Arc::new(AtomicHistogram::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let a = a.clone();
                std::thread::spawn(move || {
                    for i in 0..50_000u64 {
                        a.record((i * 7 + t) % 5_000);
                    }
                })
            })
            .collect();
        let mut total = 0;
        // Drain while the writers run, then once more after they finished.
        while !threads.iter().all(|t| t.is_finished()) {
            a.drain(|_, n| total += n);
        }
        for t in threads {
            t.join().expect("writer thread");
        }
        a.drain(|_, n| total += n);
        assert_eq!(total, 200_000);
    }
}
