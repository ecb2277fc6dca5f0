//! A cap on open client connections.
//!
//! tonic accepts every connection its listener yields and keeps it for as
//! long as the peer does; idle HTTP/2 connections cost a socket, a task and
//! buffers each, so a client opening connections and never closing them
//! could exhaust file descriptors and memory. [`limited`] accepts a
//! connection only while fewer than `max` are open: at the cap the server
//! stops accepting (new clients wait in the kernel's backlog, as with any
//! busy server) until one closes. Keepalive pings (see `server.rs`) close
//! connections whose peer vanished, so dead ones do not hold slots.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use prometheus::IntGauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// An accepted connection holding one of the `max` slots until dropped.
pub struct LimitedConn {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    open: IntGauge,
}

impl Drop for LimitedConn {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// Connections from `listener`, at most `max` open at once (`max` >= 1);
/// `open` counts those open (the `sigil_connections_open` gauge).
pub fn limited(
    listener: TcpListener,
    max: usize,
    open: IntGauge,
) -> impl Stream<Item = io::Result<LimitedConn>> {
    let slots = Arc::new(Semaphore::new(max.max(1)));
    futures_util::stream::unfold((listener, slots), move |(listener, slots)| {
        let open = open.clone();
        async move {
            // The semaphore is never closed, so acquiring only waits.
            let slot = slots.clone().acquire_owned().await.ok()?;
            let accepted = listener.accept().await.map(|(stream, _)| {
                // Small gRPC replies should not wait for Nagle's algorithm.
                let _ = stream.set_nodelay(true);
                open.inc();
                LimitedConn {
                    stream,
                    _slot: slot,
                    open,
                }
            });
            Some((accepted, (listener, slots)))
        }
    })
}

impl Connected for LimitedConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for LimitedConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
