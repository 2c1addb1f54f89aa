//! Parsing and validating a scenario (the shipped smoke scenario). Run: `cargo bench --bench scenario`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn parse(c: &mut Criterion) {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.yaml")).unwrap_or_default();
    c.bench_function("scenario/parse+validate smoke.yaml", |b| {
        b.iter(|| chatstorm::scenario::parse("smoke.yaml", black_box(&text)))
    });
}

criterion_group!(benches, parse);
criterion_main!(benches);
