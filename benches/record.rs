//! Cost of recording one sample on the hot path (budget: under 50 ns, PRODUCT.md "Budgets").
//!
//! Run: `cargo bench -p chatstorm --bench record`. The `baseline/*` cases are not used by
//! chatstorm: they show what a plain `hdrhistogram::Histogram` costs with no synchronization and
//! behind an uncontended `Mutex`, the alternative design the lock-free recorder was measured
//! against.

use std::hint::black_box;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use chatstorm::metrics::{Counter, Metric, Recorder, new_histogram};
use criterion::{Criterion, criterion_group, criterion_main};

/// Latencies spread over realistic values (0.1 ms .. 0.5 s) so that the counters touched vary.
fn latency(i: u64) -> Duration {
    Duration::from_micros(100 + (i.wrapping_mul(2_654_435_761) % 500_000))
}

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("record");
    let recorder = Recorder::new();
    let mut i = 0u64;
    g.bench_function("record", |b| {
        b.iter(|| {
            i += 1;
            recorder.record(black_box(Metric::ConnectWs), black_box(latency(i)));
        })
    });
    let t0 = Instant::now();
    g.bench_function("record_corrected", |b| {
        b.iter(|| {
            i += 1;
            let start = t0 + Duration::from_micros(i % 1_000);
            let end = start + latency(i);
            recorder.record_corrected(black_box(Metric::ConnectWs), black_box(t0), start, end);
        })
    });
    g.bench_function("count", |b| {
        b.iter(|| recorder.count(black_box(Counter::EventsReceived)))
    });
    g.finish();

    let mut g = c.benchmark_group("baseline");
    let mut plain = new_histogram();
    g.bench_function("hdrhistogram_unsynchronized", |b| {
        b.iter(|| {
            i += 1;
            plain.saturating_record(black_box(latency(i)).as_micros() as u64);
        })
    });
    let locked = Mutex::new(new_histogram());
    g.bench_function("hdrhistogram_uncontended_mutex", |b| {
        b.iter(|| {
            i += 1;
            let us = black_box(latency(i)).as_micros() as u64;
            locked.lock().expect("not poisoned").saturating_record(us);
        })
    });
    g.finish();
}

/// Two threads recording the same metric at once; the time reported is per record per thread.
fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("record_2_threads");
    let recorder = Recorder::new();
    g.bench_function("record", |b| {
        b.iter_custom(|iters| {
            let barrier = Barrier::new(2);
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..2u64)
                    .map(|t| {
                        let (recorder, barrier) = (&recorder, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            let start = Instant::now();
                            for i in 0..iters {
                                recorder.record(Metric::ConnectWs, latency(i * 2 + t));
                            }
                            start.elapsed()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or(Duration::ZERO))
                    .max()
                    .unwrap_or(Duration::ZERO)
            })
        })
    });
    let shared = Mutex::new(new_histogram());
    g.bench_function("baseline_shared_mutex", |b| {
        b.iter_custom(|iters| {
            let barrier = Barrier::new(2);
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..2u64)
                    .map(|t| {
                        let (shared, barrier) = (&shared, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            let start = Instant::now();
                            for i in 0..iters {
                                let us = latency(i * 2 + t).as_micros() as u64;
                                shared.lock().expect("not poisoned").saturating_record(us);
                            }
                            start.elapsed()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or(Duration::ZERO))
                    .max()
                    .unwrap_or(Duration::ZERO)
            })
        })
    });
    g.finish();
}

criterion_group!(benches, uncontended, two_threads);
criterion_main!(benches);
