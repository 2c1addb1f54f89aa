//! The plain WebSocket user (`users.kind: plain-websocket`): open the target URL as it is (TCP
//! from a round-robin loopback source address, the hand-made upgrade, 512-byte read buffer), wait
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
use tokio::net::TcpSocket;
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
pub async fn run(ctx: Arc<UserCtx>, intended: Instant, stop_at: Option<Instant>, cancel: CancellationToken) {
    let rec = &ctx.recorder;
    rec.gauge_add(Gauge::Users, 1);
    let stop = async {
        match stop_at {
            Some(at) => tokio::select! {
                () = cancel.cancelled() => {}
                () = tokio::time::sleep_until(at) => {}
            },
            None => cancel.cancelled().await,
        }
    };
    tokio::pin!(stop);
    let started = Instant::now();
    let opened = tokio::select! {
        biased;
        () = &mut stop => None,
        r = tokio::time::timeout(FIRST_FRAME_TIMEOUT, open(&ctx)) => Some(r.unwrap_or(Err(Fail::Network))),
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
async fn open(ctx: &UserCtx) -> Result<Ws, Fail> {
    let server = transport::resolve(&ctx.target.ws_base)
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
    let socket = if server.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(local)?;
    if let Some(ip) = ctx.source_addrs.pick(&server) {
        transport::defer_port_choice(&socket);
        socket.bind(std::net::SocketAddr::new(ip, 0)).map_err(local)?;
    }
    let stream = socket.connect(server).await.map_err(local)?;
    let _ = stream.set_nodelay(true);
    let (host, target) = upgrade::host_and_target(&ctx.target.ws_base).map_err(|_| Fail::Network)?;
    let mut ws = upgrade::upgrade(stream, &host, &target, &[], transport::ws_config())
        .await
        .map_err(|_| Fail::Network)?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(_) | Message::Binary(_))) => return Ok(ws),
            // Tungstenite queues the pong; it goes out with the next read or flush.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            _ => return Err(Fail::Network),
        }
    }
}

/// Holds the socket until `stop`; a close or drop by the server is a disconnect.
async fn hold(mut ws: Ws, ctx: &UserCtx, mut stop: std::pin::Pin<&mut impl std::future::Future<Output = ()>>) {
    let rec = &ctx.recorder;
    loop {
        tokio::select! {
            biased;
            () = &mut stop => {
                let frame = CloseFrame { code: 1000.into(), reason: "".into() };
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(Some(frame))).await;
                return;
            }
            m = ws.next() => match m {
                Some(Ok(Message::Ping(_))) => {
                    let _ = ws.flush().await;
                }
                Some(Ok(Message::Close(frame))) => {
                    if let Some(f) = frame {
                        rec.close_code(u16::from(f.code));
                    }
                    rec.count(Counter::Disconnects);
                    // Sends the queued close reply.
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.flush()).await;
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    rec.count(Counter::Disconnects);
                    return;
                }
            },
        }
    }
}
