//! The plain WebSocket user (`users.kind: plain-websocket`): open the target URL as it is (TCP
//! from a round-robin loopback source address, the TLS handshake for `wss://`, the hand-made
//! upgrade, 512-byte read buffer), wait
//! for the server's first frame, then hold: answer pings, count a server close or drop as a
//! disconnect (no reconnect), and close with 1000 when the run stops. No Stream protocol, no
//! token, no channel, no per-user string: the peers' standard workload, at the smallest cost a
//! connection can have here.
//!
//! Measured like the SDK users: `connect.ws` (intended and actual views, from the intended start
//! to the first frame), the `connects`/`connect_failures`/`disconnects` counters and the
//! `Connected`/`Users` gauges, so reports, the live line and thresholds work unchanged.

use super::UserCtx;
use super::record::{Counter, Gauge, Metric};
use super::transport::{self, Ws};
use super::upgrade;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_util::sync::CancellationToken;

/// How long a plain user waits for its first frame (connect and upgrade included): the peers'
/// `CONNECT_TIMEOUT_SECS` default.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the closing handshake may take at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a plain connect failed.
enum Fail {
    /// The generator ran out of descriptors or local ports (counted apart: exit 4).
    Local,
    /// Refused, reset, not upgraded, closed before a frame, or no first frame in time.
    Network,
}

/// Runs one plain user: connect, first frame, hold until `stop_at` or `cancel`, close 1000.
///
/// `intended` is the schedule's start time: the connect is also measured from it (the
/// coordinated-omission corrected view), as for SDK users.
pub async fn run(
    ctx: Arc<UserCtx>,
    index: u32,
    intended: Instant,
    stop_at: Option<Instant>,
    cancel: CancellationToken,
) {
    let rec = &ctx.recorder;
    rec.gauge_add(Gauge::Users, 1);
    // The timer is boxed (and only exists with a stop time): every byte of this future is held
    // by every idle user for the whole run.
    let stop = async {
        match stop_at {
            Some(at) => {
                let sleep = Box::pin(tokio::time::sleep_until(at));
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = sleep => {}
                }
            }
            None => cancel.cancelled().await,
        }
    };
    tokio::pin!(stop);
    let started = Instant::now();
    // Boxed: the connect's state (resolve, socket, upgrade buffers) is freed once it is done.
    let opening = Box::pin(tokio::time::timeout(FIRST_FRAME_TIMEOUT, open(&ctx, index)));
    let opened = tokio::select! {
        biased;
        () = &mut stop => None,
        r = opening => Some(r.unwrap_or(Err(Fail::Network))),
    };
    match opened {
        Some(Ok(ws)) => {
            rec.record_corrected(
                Metric::ConnectWs,
                intended.into_std(),
                started.into_std(),
                Instant::now().into_std(),
            );
            rec.count(Counter::Connects);
            rec.gauge_add(Gauge::Connected, 1);
            hold(ws, &ctx, stop).await;
            rec.gauge_add(Gauge::Connected, -1);
        }
        Some(Err(fail)) => {
            if matches!(fail, Fail::Local) {
                rec.count(Counter::ResourceFailures);
            }
            rec.count(Counter::ConnectFailures);
        }
        // Stopped before the first frame came: the user never connected within the run.
        None => rec.count(Counter::ConnectFailures),
    }
    rec.gauge_add(Gauge::Users, -1);
}

/// TCP connect, upgrade, first data frame.
async fn open(ctx: &UserCtx, index: u32) -> Result<Box<Ws>, Fail> {
    let server = crate::net::resolve(&ctx.target.ws_base)
        .await
        .map_err(|_| Fail::Network)?;
    let local = |e: std::io::Error| {
        if matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::EADDRNOTAVAIL | libc::EADDRINUSE)
        ) {
            Fail::Local
        } else {
            Fail::Network
        }
    };
    // Each completed phase is its own histogram, as for the SDK users (transport::connect_ws).
    let mut phase = Instant::now();
    let mut phase_done = |metric: Metric| {
        let now = Instant::now();
        ctx.recorder.record(metric, now - phase);
        phase = now;
    };
    let stream = crate::net::connect::open(server, ctx.source_addrs.pick(&server))
        .await
        .map_err(local)?;
    phase_done(Metric::ConnectTcp);
    let stream = match &ctx.target.tls {
        Some(tls) if ctx.target.is_tls() => {
            let name = ctx.target.ws_base.host_str().unwrap_or_default();
            let s = crate::net::connect::secure(stream, &tls.for_user(index), name)
                .await
                .map_err(|_| Fail::Network)?;
            phase_done(Metric::ConnectTls);
            transport::count_handshake(&ctx.recorder, &s);
            s
        }
        _ => stream,
    };
    let (host, target) = upgrade::host_and_target(&ctx.target.ws_base).map_err(|_| Fail::Network)?;
    let mut ws = upgrade::upgrade(stream, &host, &target, &[], transport::ws_config())
        .await
        .map_err(|_| Fail::Network)?;
    phase_done(Metric::ConnectUpgrade);
    loop {
        match super::metered::next_message(&mut ws).await {
            Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                phase_done(Metric::ConnectFirstFrame);
                return Ok(Box::new(ws));
            }
            // Tungstenite queues the pong; it goes out with the next read or flush.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            _ => return Err(Fail::Network),
        }
    }
}

/// What woke a holding user, reduced at once: a received message or a tungstenite error is
/// large, and kept across the next await it would sit in every idle user's future.
enum Wake {
    Stop,
    Ping,
    Close(Option<u16>),
    Other,
    Gone,
}

/// Holds the socket until `stop`; a close or drop by the server is a disconnect.
async fn hold(mut ws: Box<Ws>, ctx: &UserCtx, mut stop: std::pin::Pin<&mut impl std::future::Future<Output = ()>>) {
    let rec = &ctx.recorder;
    loop {
        let wake = tokio::select! {
            biased;
            () = &mut stop => Wake::Stop,
            m = ws.next() => match m {
                Some(Ok(Message::Ping(_))) => Wake::Ping,
                Some(Ok(Message::Close(frame))) => Wake::Close(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => Wake::Other,
                Some(Err(_)) | None => Wake::Gone,
            },
        };
        match wake {
            Wake::Stop => {
                let frame = CloseFrame {
                    code: 1000.into(),
                    reason: "".into(),
                };
                let _ = Box::pin(tokio::time::timeout(CLOSE_TIMEOUT, Ws::close(&mut ws, Some(frame)))).await;
                return;
            }
            // Tungstenite queued the pong; the flush sends it.
            Wake::Ping => {
                let _ = Box::pin(ws.flush()).await;
            }
            Wake::Close(code) => {
                if let Some(c) = code {
                    rec.close_code(c);
                }
                rec.count(Counter::Disconnects);
                // Sends the queued close reply.
                let _ = Box::pin(tokio::time::timeout(CLOSE_TIMEOUT, ws.flush())).await;
                return;
            }
            Wake::Other => {}
            Wake::Gone => {
                rec.count(Counter::Disconnects);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every idle plain user holds this future (plus the socket, its 512-byte read buffer and the
    /// runtime's I/O registration) for the whole run: keep it small.
    #[test]
    fn the_user_future_stays_small() {
        let ctx = Arc::new(UserCtx {
            target: crate::target::Target::plain("ws://127.0.0.1:9/connect").unwrap(),
            recorder: crate::metrics::Recorder::new(),
            http: super::super::http::new_client(),
            source_addrs: super::super::SourceAddrs::none(),
            deliveries: super::super::DeliveryTracker::new(&[], &[]),
            observer: None,
            run_start: Instant::now(),
            run_over: tokio_util::sync::CancellationToken::new(),
        });
        let f = run(ctx, 0, Instant::now(), None, CancellationToken::new());
        let size = std::mem::size_of_val(&f);
        assert!(size <= 400, "the plain user's future is {size} bytes");
    }
}
