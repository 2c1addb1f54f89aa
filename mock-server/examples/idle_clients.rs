//! Opens N idle WebSockets to a running mock (JS-SDK-style `/connect`), waits for each first
//! `health.check`, then holds them open for a while so the server's resident memory can be read.
//!
//! ```text
//! cargo run --release -p chatstorm-mock --example idle_clients -- 127.0.0.1:3031 10000 60
//! ```
//! Arguments: server address, number of sockets, seconds to hold. Raise `ulimit -n` first.
//! The api key and secret are the server defaults (`mock_api_key` / `mock_api_secret`).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

fn token(user: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = serde_json::json!({ "user_id": user }).to_string();
    let input = format!("{}.{}", e.encode(br#"{"alg":"HS256","typ":"JWT"}"#), e.encode(claims));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"mock_api_secret").expect("any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", e.encode(mac.finalize().into_bytes()))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = args.get(1).cloned().unwrap_or_else(|| "127.0.0.1:3031".to_owned());
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let hold: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(30);
    let cfg = WebSocketConfig::default().read_buffer_size(2048).write_buffer_size(0);
    let t0 = Instant::now();
    let mut held = Vec::with_capacity(n);
    let mut failed = 0usize;
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|i| {
                let user = format!("idle-{i}");
                let payload = serde_json::json!({"user_id": user, "user_details": {"id": user}}).to_string();
                let q = form_urlencoded::Serializer::new(String::new())
                    .append_pair("json", &payload)
                    .append_pair("api_key", "mock_api_key")
                    .append_pair("authorization", &token(&user))
                    .append_pair("stream-auth-type", "jwt")
                    .finish();
                let url = format!("ws://{addr}/connect?{q}");
                tokio::spawn(async move {
                    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(cfg), true)
                        .await
                        .ok()?;
                    match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                        Ok(Some(Ok(_))) => Some(ws),
                        _ => None,
                    }
                })
            })
            .collect();
        for t in tasks {
            match t.await {
                Ok(Some(ws)) => held.push(ws),
                _ => failed += 1,
            }
        }
    }
    println!(
        "connected {} sockets ({failed} failed) in {:.1?}; holding {hold} s",
        held.len(),
        t0.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(hold)).await;
    drop(held);
}
