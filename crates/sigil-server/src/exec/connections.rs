//! Accepting client connections without letting any peer hold them.
//!
//! Every listener (gRPC, plaintext health, metrics) accepts through
//! [`incoming`], which bounds each state a connection can be in:
//!
//! - **open at all**: at most `max_connections` per listener; at the cap the
//!   listener stops accepting (new clients wait in the kernel's backlog)
//!   until one closes;
//! - **per peer**: at most `max_connections_per_peer` from one IP address; a
//!   further one is closed at once, so one host cannot take every slot;
//! - **handshaking**: the TLS handshake (with `[tls]`) and then the client's
//!   HTTP/2 preface and first frame (SETTINGS) must have arrived within
//!   `handshake_timeout` of the accept (HTTP/1: the first request bytes);
//! - **idle**: an HTTP/2 connection without an open call for `idle_timeout`
//!   is closed (keepalive pings do not count: a peer could ping forever);
//!   an HTTP/1 one without any traffic for that long;
//! - **stalled**: a response whose data hyper has taken but not come back
//!   for (it waits for the client to open its HTTP/2 flow-control window)
//!   for `stall_timeout` closes the connection: the client stopped reading.
//!   hyper offers no way to reset one stream whose data is blocked by flow
//!   control, and such a client's connection window is exhausted anyway.
//!   Not seen: data hyper already moved into h2's send buffer (hyper takes
//!   a whole chunk once the window has a byte free, and comes back for
//!   more); a stream is caught once it has more to send than that.
//!   hyper offers no way to reset one stream whose data is blocked by flow
//!   control, and such a client's connection window is exhausted anyway.
//!
//! Why wrap the IO rather than drive hyper ourselves: tonic keeps its
//! connection handling (keepalive, graceful shutdown with GOAWAY, the
//! request extensions handlers read), and the one thing hyper cannot tell
//! us (has the client's preface arrived?) is visible only in the bytes.
//! [`GuardedConn`] sits between hyper and the socket (above TLS, so it
//! sees the preface in the clear), counts what the client has sent, and
//! fails the next read or write once a deadline has passed; hyper then
//! drops the connection. The TLS handshake is done here, not by tonic, so
//! that its bound and the preface's are one deadline from the accept and
//! the guard can sit above TLS.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use prometheus::{IntCounterVec, IntGauge};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::Connected;

/// The bounds of one listener's connections (from `[limits]`).
#[derive(Debug, Clone)]
pub struct ConnPolicy {
    pub max_connections: usize,
    pub max_per_peer: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    /// How long a response may wait, unread, for the client to open its
    /// HTTP/2 flow-control window.
    pub stall_timeout: Duration,
}

/// What the listener speaks, which says when a handshake is complete and
/// what idle means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// gRPC: handshake done when the client preface and its first frame
    /// have arrived; idle while no call is open.
    Http2,
    /// The metrics listener: handshake done at the first request byte
    /// (hyper bounds the rest of the headers); idle while no byte moves.
    Http1,
}

/// Why the server closed a connection (the `reason` label of
/// `sigil_connections_closed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    HandshakeTimeout,
    TlsFailed,
    Idle,
    StreamStalled,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::HandshakeTimeout => "handshake_timeout",
            CloseReason::TlsFailed => "tls_failed",
            CloseReason::Idle => "idle",
            CloseReason::StreamStalled => "stream_stalled",
        }
    }
}

/// The metrics of one listener's connections.
#[derive(Clone)]
pub struct ConnMetrics {
    /// `listener` label value: "grpc", "health" or "metrics".
    pub listener: &'static str,
    /// Open connections (only the gRPC listener has a gauge).
    pub open: Option<IntGauge>,
    /// `sigil_connections_closed_total{listener, reason}`.
    pub closed: IntCounterVec,
    /// `sigil_connections_refused_total{listener, reason}`.
    pub refused: IntCounterVec,
}

impl ConnMetrics {
    fn count_closed(&self, reason: CloseReason) {
        self.closed
            .with_label_values(&[self.listener, reason.as_str()])
            .inc();
    }
}

/// Shared between a connection's IO and the calls running on it: how many
/// calls are open (for the idle rule) and which responses wait on the
/// client (the stall rule).
pub struct ConnControl {
    open_calls: AtomicUsize,
    /// Responses waiting for the client to read, by id: since when.
    blocked: Mutex<HashMap<u64, Instant>>,

    next_response: AtomicU64,
    /// When the last call ended (or the connection started), in ms since
    /// `epoch`.
    idle_since_ms: AtomicU64,
    epoch: Instant,
}

impl ConnControl {
    fn new() -> Self {
        ConnControl {
            open_calls: AtomicUsize::new(0),
            blocked: Mutex::new(HashMap::new()),

            next_response: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Marks a call open until the returned guard is dropped.
    pub fn call_started(self: &Arc<Self>) -> OpenCall {
        self.open_calls.fetch_add(1, Ordering::SeqCst);
        OpenCall {
            control: self.clone(),
        }
    }

    /// A new id for [`ConnControl::response_blocked`].
    pub fn response_id(&self) -> u64 {
        self.next_response.fetch_add(1, Ordering::Relaxed)
    }

    /// Response `id` has handed data to hyper and waits to be polled again
    /// (it is, at once, unless the client's flow-control window is shut).
    pub fn response_blocked(&self, id: u64) {
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        blocked.entry(id).or_insert_with(Instant::now);
    }

    /// Response `id` was polled again (or ended).
    pub fn response_moved(&self, id: u64) {
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        if !blocked.is_empty() {
            blocked.remove(&id);
        }
    }

    /// Since when the longest-blocked response has waited, if any does.
    fn oldest_blocked(&self) -> Option<Instant> {
        let blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        blocked.values().min().copied()
    }

    fn ms_since_epoch(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// `None` while a call is open, else since when none has been.
    fn idle_since(&self) -> Option<Instant> {
        if self.open_calls.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let ms = self.idle_since_ms.load(Ordering::SeqCst);
        Some(self.epoch + Duration::from_millis(ms))
    }
}

/// One open call on a connection (see [`ConnControl::call_started`]).
pub struct OpenCall {
    control: Arc<ConnControl>,
}

impl Drop for OpenCall {
    fn drop(&mut self) {
        let c = &self.control;
        c.idle_since_ms
            .store(c.ms_since_epoch(Instant::now()), Ordering::SeqCst);
        c.open_calls.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What tonic puts into every request's extensions for a [`GuardedConn`]
/// (`Request::extensions().get::<ConnInfo>()`).
#[derive(Clone)]
pub struct ConnInfo {
    pub remote_addr: SocketAddr,
    pub control: Arc<ConnControl>,
}

/// Per-peer-address connection counts of one listener.
struct PeerCounts {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl PeerCounts {
    fn try_take(self: &Arc<Self>, ip: IpAddr) -> Option<PeerSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            counts: self.clone(),
            ip,
        })
    }
}

/// One of a peer's `max_per_peer` slots, given back when dropped.
struct PeerSlot {
    counts: Arc<PeerCounts>,
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Connections accepted from `listener` under `policy` (TLS-terminated
/// when `tls` is set), as tonic's `serve_with_incoming` wants them. The
/// accept loop runs in its own task and stops when the stream is dropped
/// (tonic drops it at shutdown), closing the listening socket.
pub fn incoming(
    listener: TcpListener,
    policy: ConnPolicy,
    protocol: Protocol,
    tls: Option<TlsAcceptor>,
    metrics: ConnMetrics,
) -> impl Stream<Item = io::Result<GuardedConn>> {
    // Connections wait here only between their handshake and tonic taking
    // them; a few suffice.
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(accept_loop(listener, policy, protocol, tls, metrics, tx));
    futures_util::stream::unfold(rx, |mut rx| async move {
        let conn = rx.recv().await?;
        Some((Ok(conn), rx))
    })
}

async fn accept_loop(
    listener: TcpListener,
    policy: ConnPolicy,
    protocol: Protocol,
    tls: Option<TlsAcceptor>,
    metrics: ConnMetrics,
    tx: mpsc::Sender<GuardedConn>,
) {
    let slots = Arc::new(Semaphore::new(policy.max_connections.max(1)));
    let peers = Arc::new(PeerCounts {
        max: policy.max_per_peer.max(1),
        counts: Mutex::new(HashMap::new()),
    });
    loop {
        // The semaphore is never closed, so acquiring only waits.
        let slot = tokio::select! {
            _ = tx.closed() => return,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => return,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = tx.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // accept: do not spin on it.
                    tracing::warn!(listener = metrics.listener, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(peer_slot) = peers.try_take(peer.ip()) else {
            metrics
                .refused
                .with_label_values(&[metrics.listener, "per_peer_cap"])
                .inc();
            tracing::debug!(listener = metrics.listener, %peer, "per-peer connection cap reached");
            drop(stream);
            continue;
        };
        // Small gRPC replies should not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let deadline = Instant::now() + policy.handshake_timeout;
        let slots = Slots {
            _global: slot,
            _peer: peer_slot,
        };
        let (tx, tls, metrics, idle, stall) = (
            tx.clone(),
            tls.clone(),
            metrics.clone(),
            policy.idle_timeout,
            policy.stall_timeout,
        );
        // Each handshake in its own task: a slow one never delays the next
        // accept.
        tokio::spawn(async move {
            let io = match tls {
                None => ConnIo::Plain(stream),
                Some(acceptor) => {
                    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => ConnIo::Tls(Box::new(s)),
                        Ok(Err(e)) => {
                            metrics.count_closed(CloseReason::TlsFailed);
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            metrics.count_closed(CloseReason::HandshakeTimeout);
                            tracing::debug!(%peer, "TLS handshake not finished in time");
                            return;
                        }
                    }
                }
            };
            if let Some(open) = &metrics.open {
                open.inc();
            }
            let conn = GuardedConn {
                io,
                info: ConnInfo {
                    remote_addr: peer,
                    control: Arc::new(ConnControl::new()),
                },
                protocol,
                phase: Phase::Handshake {
                    seen: 0,
                    head: [0; HANDSHAKE_HEAD],
                },
                timer: Box::pin(tokio::time::sleep_until(deadline)),
                idle,
                stall,
                last_io: Instant::now(),
                failed: None,
                metrics,
                _slots: slots,
            };
            let _ = tx.send(conn).await;
        });
    }
}

/// The slots a connection holds while open.
struct Slots {
    _global: OwnedSemaphorePermit,
    _peer: PeerSlot,
}

/// The socket, with or without TLS.
enum ConnIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The client preface (24 bytes) and the 9-byte header of its first frame.
const HANDSHAKE_HEAD: usize = 24 + 9;

enum Phase {
    /// Counting the client's first bytes; `head` holds the first
    /// [`HANDSHAKE_HEAD`] of them.
    Handshake {
        seen: usize,
        head: [u8; HANDSHAKE_HEAD],
    },
    Established,
}

/// An accepted connection under its listener's bounds (see the module
/// docs). Holds its slots until dropped.
pub struct GuardedConn {
    io: ConnIo,
    info: ConnInfo,
    protocol: Protocol,
    phase: Phase,
    /// The handshake deadline, then the next idle check.
    timer: Pin<Box<Sleep>>,
    idle: Duration,
    stall: Duration,
    /// Last read or write (the HTTP/1 idle rule).
    last_io: Instant,
    /// Set once the connection was failed, so every later call fails too.
    failed: Option<CloseReason>,
    metrics: ConnMetrics,
    _slots: Slots,
}

impl Drop for GuardedConn {
    fn drop(&mut self) {
        if let Some(open) = &self.metrics.open {
            open.dec();
        }
    }
}

impl GuardedConn {
    /// Fails the connection (once counted) for `reason`.
    fn fail(&mut self, reason: CloseReason) -> io::Error {
        if self.failed.is_none() {
            self.failed = Some(reason);
            self.metrics.count_closed(reason);
            tracing::debug!(
                listener = self.metrics.listener,
                peer = %self.info.remote_addr,
                reason = reason.as_str(),
                "closing connection"
            );
        }
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connection closed by the server: {}", reason.as_str()),
        )
    }

    /// Checks the deadlines (registering the task's waker with the timer):
    /// an error means "close now".
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if let Some(reason) = self.failed {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connection closed by the server: {}", reason.as_str()),
            ));
        }
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let next = match (&self.phase, self.protocol) {
                (Phase::Handshake { .. }, _) => {
                    return Err(self.fail(CloseReason::HandshakeTimeout))
                }
                (Phase::Established, Protocol::Http2) => {
                    let control = &self.info.control;
                    let stalled_at = control.oldest_blocked().map(|since| since + self.stall);
                    if stalled_at.is_some_and(|at| at <= now) {
                        return Err(self.fail(CloseReason::StreamStalled));
                    }
                    let idle_at = match control.idle_since() {
                        Some(since) if since + self.idle <= now => {
                            return Err(self.fail(CloseReason::Idle))
                        }
                        Some(since) => since + self.idle,
                        None => now + self.idle,
                    };
                    // A response may block at any time: look again within
                    // half a stall period, so a stall is acted on between
                    // `stall` and 1.5 x `stall` after it began.
                    let next = idle_at.min(now + self.stall / 2);
                    stalled_at.map_or(next, |at| at.min(next))
                }
                (Phase::Established, Protocol::Http1) => {
                    if self.last_io + self.idle <= now {
                        return Err(self.fail(CloseReason::Idle));
                    }
                    self.last_io + self.idle
                }
            };
            self.timer.as_mut().reset(next);
        }
        Ok(())
    }

    /// Counts `bytes` the client sent towards the handshake.
    fn saw(&mut self, bytes: &[u8]) {
        self.last_io = Instant::now();
        let Phase::Handshake { seen, head } = &mut self.phase else {
            return;
        };
        let copy = bytes.len().min(HANDSHAKE_HEAD.saturating_sub(*seen));
        head[*seen..*seen + copy].copy_from_slice(&bytes[..copy]);
        *seen += bytes.len();
        let done = match self.protocol {
            Protocol::Http1 => *seen > 0,
            Protocol::Http2 => {
                // The first frame's 24-bit payload length follows the
                // preface; the frame is complete once its payload is in.
                *seen >= HANDSHAKE_HEAD && {
                    let len = u32::from_be_bytes([0, head[24], head[25], head[26]]) as usize;
                    *seen >= HANDSHAKE_HEAD + len
                }
            }
        };
        if done {
            self.phase = Phase::Established;
            let now = Instant::now();
            self.info
                .control
                .idle_since_ms
                .store(self.info.control.ms_since_epoch(now), Ordering::SeqCst);
            let first = match self.protocol {
                Protocol::Http2 => self.idle.min(self.stall / 2),
                Protocol::Http1 => self.idle,
            };
            self.timer.as_mut().reset(now + first);
        }
    }
}

impl Connected for GuardedConn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for GuardedConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.check(cx)?;
        let before = buf.filled().len();
        let polled = match &mut this.io {
            ConnIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if let Poll::Ready(Ok(())) = polled {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                this.saw(new);
            }
        }
        polled
    }
}

impl AsyncWrite for GuardedConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.check(cx)?;
        let polled = match &mut this.io {
            ConnIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                this.last_io = Instant::now();
            }
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.check(cx)?;
        let polled = match &mut this.io {
            ConnIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        };
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                this.last_io = Instant::now();
            }
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            ConnIo::Plain(s) => s.is_write_vectored(),
            ConnIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.check(cx)?;
        match &mut this.io {
            ConnIo::Plain(s) => Pin::new(s).poll_flush(cx),
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            ConnIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_slots_are_capped_per_address_and_given_back() {
        let peers = Arc::new(PeerCounts {
            max: 2,
            counts: Mutex::new(HashMap::new()),
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = peers.try_take(a).unwrap();
        let _s2 = peers.try_take(a).unwrap();
        assert!(peers.try_take(a).is_none(), "third from one peer refused");
        assert!(peers.try_take(b).is_some(), "another peer unaffected");
        drop(s1);
        assert!(peers.try_take(a).is_some(), "a freed slot is reusable");
    }
}
