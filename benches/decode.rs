//! Decoding the frames a simulated user receives: the first `health.check` with `me`, a plain
//! keep-alive, a typing event and a `message.new`. Run: `cargo bench --bench decode`.

use chatstorm_protocol::event::ServerEvent;
use chatstorm_protocol::user::{OwnUser, User};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn frames() -> Vec<(&'static str, String)> {
    let me = serde_json::to_value(OwnUser::new(User::new("user-1234"), true)).unwrap_or_default();
    vec![
        (
            "health.check+me",
            serde_json::json!({"type":"health.check","connection_id":"61112366-0a15-3891-0000-000000000009",
                "cid":"*","created_at":"2026-11-30T10:42:44.222203145Z","me":me})
            .to_string(),
        ),
        (
            "health.check",
            r#"{"type":"health.check","connection_id":"61112366-0a15-3891-0000-000000000009","cid":"*","created_at":"2026-11-30T10:42:44.222203145Z"}"#.to_owned(),
        ),
        (
            "typing.start",
            r#"{"type":"typing.start","cid":"messaging:ch-7","channel_id":"ch-7","channel_type":"messaging","user":{"id":"user-77","name":"User 77"},"created_at":"2026-11-30T10:42:44.222203145Z","chatstorm":{"t":123456789,"s":42,"u":77}}"#.to_owned(),
        ),
        (
            "message.new",
            r#"{"type":"message.new","cid":"messaging:ch-7","channel_id":"ch-7","channel_type":"messaging","message_id":"user-77-42","message":{"id":"user-77-42","text":"hello there, this is a message of moderate length","type":"regular","user":{"id":"user-77"},"chatstorm":{"t":123456789,"s":42,"u":77}},"user":{"id":"user-77"},"created_at":"2026-11-30T10:42:44.222203145Z","watcher_count":20,"unread_count":1,"total_unread_count":1,"unread_channels":1}"#.to_owned(),
        ),
    ]
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    for (name, text) in frames() {
        g.bench_function(name, |b| b.iter(|| ServerEvent::parse(black_box(&text))));
    }
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
