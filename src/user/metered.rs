//! A user's WebSocket socket with its bytes counted, so that the driver can give back the read
//! buffer a large message grew.
//!
//! tungstenite keeps a connection's read buffer at the size of the largest frame it has held,
//! for the connection's whole life: a `message.new` of about 1.2 KB grows it from the 512 bytes
//! the config asks for to 2-4 KB. Measured with a heap profiler on `scenarios/capacity-ramp.yaml`
//! (9,000 users, a message a minute), that was 26.6 MB at the peak, about 3 KB per active user
//! and the largest single item of the harness's memory. tungstenite does not let go of it, but
//! when every byte read from the socket has come out as frames, nothing is buffered: the
//! WebSocket can then be rebuilt over the same socket with a fresh small buffer (see
//! `Driver::give_back_read_buffer`). [`Metered`] knows when that is: it counts the bytes read
//! from the socket, and the driver adds each frame it receives (header and payload).
//!
//! A message split over several frames (fragmentation) counts one header only, so the counts
//! never meet again on that connection and its buffer is simply kept: the error is always on the
//! safe side (a rebuild never drops buffered bytes).

use futures_util::StreamExt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};

/// A stream that counts the bytes read from it and the bytes handed out as frames.
#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    read: u64,
    framed: u64,
}

impl<S> Metered<S> {
    /// Wraps `inner`; `already` bytes were read from it before (the upgrade's tail, which the
    /// WebSocket gets as its first buffered bytes).
    pub fn new(inner: S, already: usize) -> Self {
        Self {
            inner,
            read: already as u64,
            framed: 0,
        }
    }

    /// The WebSocket handed out one unfragmented frame with a `payload`-byte payload (server
    /// frames are unmasked: a 2-byte header, plus 2 or 8 bytes of extended length).
    pub fn framed(&mut self, payload: usize) {
        let header = match payload {
            0..=125 => 2,
            126..=65_535 => 4,
            _ => 10,
        };
        self.framed += (header + payload) as u64;
    }

    /// Every byte read from the socket has been handed out as frames: nothing is buffered.
    pub fn drained(&self) -> bool {
        self.read == self.framed
    }

    /// The stream (for a rebuild), counts restarted from nothing buffered.
    pub fn restart(self) -> Self {
        Self {
            inner: self.inner,
            read: 0,
            framed: 0,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// The payload length of the frame a received `message` came in (unfragmented).
pub fn payload_len(message: &Message) -> usize {
    match message {
        Message::Text(t) => t.len(),
        Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
        Message::Close(Some(c)) => 2 + c.reason.len(),
        Message::Close(None) => 0,
        Message::Frame(f) => f.payload().len(),
    }
}

/// The next message of `ws`, with its frame counted (every read of a user's WebSocket goes
/// through here, or the counts never meet).
pub async fn next_message<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<Metered<S>>,
) -> Option<Result<Message, tungstenite::Error>> {
    let m = ws.next().await;
    if let Some(Ok(message)) = &m {
        ws.get_mut().framed(payload_len(message));
    }
    m
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let got = buf.filled().len() - before;
        self.read += got as u64;
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_reads_and_frames_to_a_drained_stream() {
        let (mut a, b) = tokio::io::duplex(64);
        let mut m = Metered::new(b, 3);
        a.write_all(&[0u8; 7]).await.unwrap();
        let mut buf = [0u8; 16];
        let n = m.read(&mut buf).await.unwrap();
        assert_eq!(n, 7);
        assert!(!m.drained());
        m.framed(8); // 2 + 8 = 10 = 3 + 7
        assert!(m.drained());
    }

    #[test]
    fn frame_headers_follow_rfc_6455_lengths() {
        let (_a, b) = tokio::io::duplex(8);
        let mut m = Metered::new(b, 0);
        for (payload, header) in [(0usize, 2u64), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            let before = m.framed;
            m.framed(payload);
            assert_eq!(m.framed - before, header + payload as u64, "payload {payload}");
        }
    }
}
