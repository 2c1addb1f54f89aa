//! One step of a simulated user's state machine (sans-IO): a server `health.check` arriving at
//! a live JS user, the user's own health-check timer firing, and a full drop → back-off →
//! reconnect → live cycle. Run: `cargo bench --bench machine`.

use chatstorm::user::machine::{Input, Machine, MachineConfig};
use chatstorm_protocol::Profile;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use tokio::time::Instant;

fn config(profile: Profile) -> MachineConfig {
    MachineConfig::quiet(profile, true, false, 7)
}

/// A JS user that has connected and watched its channel.
fn live(now: Instant) -> (Machine, Vec<chatstorm::user::machine::Command>) {
    let mut m = Machine::new(config(Profile::Js), now);
    let mut out = Vec::with_capacity(8);
    m.handle(now, Input::Start, &mut out);
    m.handle(now, Input::Connected, &mut out);
    out.clear();
    (m, out)
}

fn bench(c: &mut Criterion) {
    let start = Instant::now();
    let (mut m, mut out) = live(start);
    let mut now = start;
    c.bench_function("machine/health.check received", |b| {
        b.iter(|| {
            now += Duration::from_millis(1);
            m.handle(now, black_box(Input::Frame { health: true }), &mut out);
            out.clear();
        })
    });
    let (mut m, mut out) = live(start);
    let mut now = start;
    c.bench_function("machine/timer (next deadline fired)", |b| {
        b.iter(|| {
            now = m.next_deadline().unwrap_or(now + Duration::from_secs(1));
            m.on_timer(black_box(now), &mut out);
            m.handle(now, Input::Frame { health: true }, &mut out);
            out.clear();
        })
    });
    let (mut m, mut out) = live(start);
    let mut now = start;
    c.bench_function("machine/drop, back off, reconnect, live", |b| {
        b.iter(|| {
            m.handle(now, Input::Closed(Some(1011)), &mut out);
            now = m.next_deadline().unwrap_or(now);
            m.on_timer(now, &mut out);
            m.handle(now, black_box(Input::Connected), &mut out);
            out.clear();
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
