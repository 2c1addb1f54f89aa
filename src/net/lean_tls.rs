//! A client TLS connection over TCP whose buffers exist only while they hold bytes:
//! [`LeanTls`], built on rustls's unbuffered API ([`rustls::client::UnbufferedClientConnection`]).
//!
//! Why not tokio-rustls: its `TlsStream` wraps rustls's buffered `ClientConnection`, whose record
//! reader sizes its buffer at 4 KiB on the first read and keeps it, zeroed and resident, for the
//! connection's life (rustls 0.23 `DeframerVecBuffer::prepare_read` resizes an empty buffer back
//! to 4 KiB, never to nothing; no setting changes it). At 10,000 idle users that one buffer was
//! 40 MB, about half of what TLS added per user (README "TLS budgets", heaptrack). Here the
//! caller owns the buffers, so each one is dropped the moment it is empty: an idle connection
//! holds rustls's state (keys, the session) and the socket, no buffer at all.
//!
//! The three buffers: `incoming` (TLS bytes read, a partial record at most between reads),
//! `plain` (decrypted bytes not yet read by the caller; tungstenite reads 512 bytes at a time),
//! `outgoing` (records encrypted but not yet written to the socket). Reads go through a stack
//! chunk first, so `incoming` is only ever as large as what is pending.

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::pki_types::ServerName;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus, WriteTraffic};
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::handshake_cpu::HandshakeCpu;

/// Bytes read from the socket per read, on the stack (a TLS record is at most 16 KiB plus 256
/// bytes of overhead; a larger one simply takes two reads).
const READ_CHUNK: usize = 8 * 1024;
/// Plaintext accepted per `poll_write`, one full record's worth.
const MAX_WRITE: usize = 16 * 1024;

/// A TLS client connection over a TCP socket (see the module's header).
pub struct LeanTls {
    tcp: TcpStream,
    conn: UnbufferedClientConnection,
    incoming: Vec<u8>,
    plain: Vec<u8>,
    plain_at: usize,
    outgoing: Vec<u8>,
    outgoing_at: usize,
    /// The peer sent close_notify (rustls says so once: remembered here).
    peer_closed: bool,
    /// The socket's read side ended.
    eof: bool,
    close_sent: bool,
}

impl std::fmt::Debug for LeanTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeanTls")
            .field("tcp", &self.tcp)
            .field("incoming", &self.incoming.len())
            .field("plain", &(self.plain.len() - self.plain_at))
            .field("outgoing", &(self.outgoing.len() - self.outgoing_at))
            .finish_non_exhaustive()
    }
}

/// What [`LeanTls::drive`] stopped at.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// More bytes from the peer are needed (the handshake is blocked on them, or every complete
    /// record has been processed).
    NeedInput,
    /// The handshake is done (traffic may flow both ways), every complete record received has
    /// been processed, and what was asked to be sent (if anything) is in `outgoing`.
    Ready,
    /// Both sides have sent close_notify: nothing more can be sent.
    Closed,
}

/// What [`LeanTls::drive`] encrypts once rustls lets it.
enum Send<'a> {
    Nothing,
    Data(&'a [u8]),
    CloseNotify,
}

/// A rustls error as the `io::Error` tokio-rustls would give (its inner error is the
/// [`rustls::Error`], which `super::tls::rustls_error` finds).
fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Appends what `write` produces to `out`, growing `out` by what rustls says it needs.
fn append<E>(
    out: &mut Vec<u8>,
    guess: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
    required: impl Fn(&E) -> Option<usize>,
) -> Result<(), E> {
    let start = out.len();
    let mut want = guess;
    loop {
        out.resize(start + want, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(e) => {
                out.truncate(start);
                match required(&e) {
                    Some(n) if n > want => want = n,
                    _ => return Err(e),
                }
            }
        }
    }
}

/// The encrypted size of `len` plaintext bytes, generously (TLS 1.2 GCM adds 29 bytes per record
/// of at most 16 KiB, TLS 1.3 22); rustls's own figure is used when this is short.
fn sealed_size(len: usize) -> usize {
    len + 32 * (len / (16 * 1024) + 1)
}

fn encrypt(
    w: &mut WriteTraffic<'_, ClientConnectionData>,
    out: &mut Vec<u8>,
    what: &Send<'_>,
) -> Result<(), rustls::Error> {
    let required = |e: &EncryptError| match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    };
    let r = match what {
        Send::Nothing => Ok(()),
        Send::Data(data) => append(out, sealed_size(data.len()), |b| w.encrypt(data, b), required),
        Send::CloseNotify => append(out, 64, |b| w.queue_close_notify(b), required),
    };
    r.map_err(|e| rustls::Error::General(format!("encrypt: {e}")))
}

impl LeanTls {
    /// The client handshake for `name` over `tcp` with `config`, its CPU counted in `cpu`.
    ///
    /// # Errors
    /// rustls refused (an `InvalidData` error carrying the [`rustls::Error`], after the alert
    /// rustls queued for the server has been sent), or the socket failed or closed.
    pub async fn connect(
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
        tcp: TcpStream,
        cpu: &HandshakeCpu,
    ) -> io::Result<Self> {
        // The ClientHello's key share is made here: handshake CPU like the rest.
        let conn = cpu
            .measure(|| UnbufferedClientConnection::new(config, name))
            .map_err(tls_error)?;
        let mut s = Self {
            tcp,
            conn,
            incoming: Vec::new(),
            plain: Vec::new(),
            plain_at: 0,
            outgoing: Vec::new(),
            outgoing_at: 0,
            peer_closed: false,
            eof: false,
            close_sent: false,
        };
        loop {
            let step = match cpu.measure(|| s.drive(&Send::Nothing)) {
                Ok(step) => step,
                Err(e) => {
                    // rustls queued an alert saying why: tell the server, as tokio-rustls does.
                    let _ = s.drive(&Send::Nothing);
                    let _ = std::future::poll_fn(|cx| s.poll_send(cx)).await;
                    return Err(tls_error(e));
                }
            };
            std::future::poll_fn(|cx| s.poll_send(cx)).await?;
            match step {
                Step::Ready => return Ok(s),
                Step::Closed => return Err(io::ErrorKind::UnexpectedEof.into()),
                Step::NeedInput if s.peer_closed || s.eof => return Err(io::ErrorKind::UnexpectedEof.into()),
                Step::NeedInput => {
                    std::future::poll_fn(|cx| s.poll_fill(cx)).await?;
                }
            }
        }
    }

    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// rustls's view of the connection (handshake kind, protocol version, ALPN).
    pub fn common(&self) -> &rustls::CommonState {
        &self.conn
    }

    /// Runs rustls over `incoming` until it needs more input or lets `send` be encrypted:
    /// decrypted bytes go to `plain`, records rustls wants sent (handshake, alerts, key updates)
    /// and `send` to `outgoing`, in order. Processed bytes leave `incoming`, which is freed when
    /// empty.
    fn drive(&mut self, send: &Send<'_>) -> Result<Step, rustls::Error> {
        loop {
            let UnbufferedStatus { mut discard, state } = self.conn.process_tls_records(&mut self.incoming);
            let step = match state? {
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(record) = r.next_record() {
                        let record = record?;
                        discard += record.discard;
                        if self.plain_at == self.plain.len() {
                            self.plain.clear();
                            self.plain_at = 0;
                        }
                        self.plain.extend_from_slice(record.payload);
                    }
                    None
                }
                ConnectionState::EncodeTlsData(mut e) => {
                    let required = |e: &EncodeError| match e {
                        EncodeError::InsufficientSize(s) => Some(s.required_size),
                        EncodeError::AlreadyEncoded => None,
                    };
                    append(&mut self.outgoing, 512, |b| e.encode(b), required)
                        .map_err(|e| rustls::Error::General(format!("encode: {e}")))?;
                    None
                }
                // The records are in `outgoing`, which is written out before anything queued
                // after it: as far as rustls is concerned they are sent.
                ConnectionState::TransmitTlsData(t) => {
                    t.done();
                    None
                }
                ConnectionState::BlockedHandshake => Some(Step::NeedInput),
                ConnectionState::WriteTraffic(mut w) => {
                    encrypt(&mut w, &mut self.outgoing, send)?;
                    Some(Step::Ready)
                }
                // Edge-triggered: said once, then WriteTraffic follows (we may still send).
                ConnectionState::PeerClosed => {
                    self.peer_closed = true;
                    None
                }
                ConnectionState::Closed => {
                    self.peer_closed = true;
                    Some(Step::Closed)
                }
                // Early data is a server's state; nothing else is known to this version.
                _ => return Err(rustls::Error::General("unexpected TLS state".into())),
            };
            self.incoming.drain(..discard);
            if let Some(step) = step {
                if self.incoming.is_empty() {
                    self.incoming = Vec::new();
                }
                return Ok(step);
            }
        }
    }

    /// Reads what the socket has into `incoming` (through a stack chunk, so `incoming` grows by
    /// what arrived only). `Ok(0)`: the socket's read side ended.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut chunk);
        ready!(Pin::new(&mut self.tcp).poll_read(cx, &mut buf))?;
        let n = buf.filled().len();
        if n == 0 {
            self.eof = true;
        }
        self.incoming.extend_from_slice(buf.filled());
        Poll::Ready(Ok(n))
    }

    /// Writes `outgoing` to the socket; frees it once all of it is written.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.outgoing_at < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.outgoing[self.outgoing_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.outgoing_at += n;
        }
        if self.outgoing.capacity() > 0 {
            self.outgoing = Vec::new();
            self.outgoing_at = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// Hands out up to `buf`'s room of `plain`; frees `plain` once it is all handed out.
    fn take_plain(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let pending = &self.plain[self.plain_at..];
        if pending.is_empty() {
            return false;
        }
        let n = pending.len().min(buf.remaining());
        buf.put_slice(&pending[..n]);
        self.plain_at += n;
        if self.plain_at == self.plain.len() {
            self.plain = Vec::new();
            self.plain_at = 0;
        }
        true
    }
}

impl AsyncRead for LeanTls {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.take_plain(buf) || this.peer_closed {
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // As rustls's own reader says it: a truncation attack looks just like this.
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed connection without sending TLS close_notify",
                )));
            }
            match this.drive(&Send::Nothing) {
                Err(e) => return Poll::Ready(Err(tls_error(e))),
                Ok(_) if this.plain_at < this.plain.len() || this.peer_closed => continue,
                Ok(_) => {}
            }
            // Records rustls queued while reading (a key update's answer, an alert) go out now;
            // a full socket is left to the next write or flush.
            if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
            ready!(this.poll_fill(cx))?;
        }
    }
}

impl AsyncWrite for LeanTls {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Back-pressure: what is already encrypted goes out before more is taken.
        ready!(this.poll_send(cx))?;
        let data = &data[..data.len().min(MAX_WRITE)];
        let had_plain = this.plain.len() - this.plain_at;
        match this.drive(&Send::Data(data)) {
            Ok(Step::Ready) => {}
            Ok(Step::Closed) => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Ok(Step::NeedInput) => return Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
            Err(e) => return Poll::Ready(Err(tls_error(e))),
        }
        // Processing may have decrypted records read earlier: the reader (this same task, for a
        // WebSocket) is woken to take them.
        if this.plain.len() - this.plain_at > had_plain {
            cx.waker().wake_by_ref();
        }
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_sent {
            this.close_sent = true;
            // A connection already failed or closed has no close_notify to send.
            let _ = this.drive(&Send::CloseNotify);
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::tls::{self, Tls};
    use chatstorm_mock::SelfSigned;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A TLS echo server (tokio-rustls, rustls's buffered side) on a loopback port: each
    /// connection gets back what it sends, until it closes. Gives the address and the CA PEM.
    async fn echo_server() -> (std::net::SocketAddr, String) {
        let made = SelfSigned::default().make().expect("certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(made.tls.config());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let (mut r, mut w) = tokio::io::split(tls);
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                });
            }
        });
        (addr, made.cert_pem)
    }

    fn idle(s: &LeanTls) -> bool {
        s.incoming.capacity() == 0 && s.plain.capacity() == 0 && s.outgoing.capacity() == 0
    }

    #[tokio::test]
    async fn echoes_large_and_small_writes_and_holds_no_buffer_when_idle() {
        let (addr, ca) = echo_server().await;
        let config = Tls::with_ca_pem(ca.as_bytes()).unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut s = tls::handshake(&config, "localhost", tcp).await.expect("handshake");
        assert!(s.common().handshake_kind().is_some());
        assert!(idle(&s), "{s:?}");
        assert!(config.handshake_cpu().total_ns() > 0, "the handshake's CPU was counted");

        // Larger than a record, a read chunk and tungstenite's writes: split and joined again.
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = tokio::io::split(s);
        let writer = {
            let big = big.clone();
            tokio::spawn(async move {
                w.write_all(&big).await.unwrap();
                w.write_all(b"tail").await.unwrap();
                w.flush().await.unwrap();
                w
            })
        };
        let mut got = vec![0u8; big.len() + 4];
        // Small reads, as tungstenite's 512-byte buffer makes them.
        let mut at = 0;
        while at < got.len() {
            let end = (at + 512).min(got.len());
            let n = r.read(&mut got[at..end]).await.unwrap();
            assert!(n > 0, "early EOF at {at}");
            at += n;
        }
        assert_eq!(&got[..big.len()], &big[..]);
        assert_eq!(&got[big.len()..], b"tail");
        let w = writer.await.unwrap();
        s = r.unsplit(w);
        assert!(idle(&s), "everything read and written: {s:?}");

        // A clean close: our close_notify, the server's in answer, then EOF (not an error).
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest)
            .await
            .expect("close_notify ends the stream cleanly");
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn a_certificate_not_trusted_fails_with_rustls_s_error() {
        let (addr, _) = echo_server().await;
        let other = SelfSigned::default().make().unwrap();
        let config = Tls::with_ca_pem(other.cert_pem.as_bytes()).unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let e = tls::handshake(&config, "localhost", tcp)
            .await
            .expect_err("not trusted");
        // Both certificates name the same issuer (the mock's fixed subject): the other one's
        // signature is what fails.
        let r = tls::rustls_error(&e).expect("a rustls error inside");
        assert!(matches!(r, rustls::Error::InvalidCertificate(_)), "{r:?}");
    }
}
