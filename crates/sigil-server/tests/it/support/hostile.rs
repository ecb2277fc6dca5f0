//! The hostile-client harness: raw TCP sockets and a raw HTTP/2 client
//! (the `h2` crate, flow control under the test's control) against a
//! server on loopback. Every wait is bounded by [`SAFETY`], a net against
//! hangs (a test fails instead of blocking the run), never a timing claim.

#![allow(dead_code)] // each test binary uses its own subset

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use h2::client::SendRequest;
use prost::bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpSocket, TcpStream};

/// How long any one wait may take before the test fails as hung.
pub const SAFETY: Duration = Duration::from_secs(60);

/// The HTTP/2 client preface (RFC 9113 section 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Runs `fut`, failing the test if it has no outcome within [`SAFETY`].
pub async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(SAFETY, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no outcome within {SAFETY:?}"))
}

/// A TCP connection to `addr` from the loopback address `from` (any
/// 127.0.0.0/8 address works on Linux), so tests can play several peers.
pub async fn connect_from(addr: SocketAddr, from: IpAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Waits until the server closes `io` (end of stream or a reset), reading
/// and discarding whatever it sends first (e.g. its SETTINGS).
pub async fn closed_by_server(what: &str, io: &mut (impl AsyncRead + Unpin)) {
    bounded(what, async {
        let mut buf = [0u8; 4096];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
}

/// One gRPC message on the wire: uncompressed flag, length, payload.
pub fn grpc_frame(msg: &impl prost::Message) -> Vec<u8> {
    let payload = msg.encode_to_vec();
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(0);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// An HTTP/2 client on `io` whose stream receive window is
/// `stream_window` bytes and which never releases received data: once
/// that much of a response arrived, the server can send no more.
pub async fn h2_client(
    io: TcpStream,
    stream_window: u32,
) -> (
    SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(stream_window)
        .handshake::<_, Bytes>(io)
        .await
        .unwrap();
    (send, tokio::spawn(conn))
}

/// The headers of a gRPC call to `path` (e.g. `/sigil.v1.Matcher/MatchImage`)
/// with a bearer key.
pub fn grpc_request(addr: SocketAddr, path: &str, key: &str) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {key}"))
        .body(())
        .unwrap()
}

/// The `grpc-status` of a call's response (in its headers for a
/// trailers-only answer, else in its trailers); `None` when the stream
/// was reset without one.
pub async fn grpc_status(response: h2::client::ResponseFuture) -> Option<i32> {
    let response = response.await.ok()?;
    let status = |h: &http::HeaderMap| {
        h.get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    };
    if let Some(s) = status(response.headers()) {
        return Some(s);
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { return None };
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    body.trailers()
        .await
        .ok()
        .flatten()
        .and_then(|t| status(&t))
}

/// The value of a metric line `name{labels} value` (or `name value`) in a
/// text exposition; 0 when absent.
pub fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name_and_labels)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}
