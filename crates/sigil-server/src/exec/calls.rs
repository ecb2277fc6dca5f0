//! Every gRPC call, as it arrives: marked open on its connection (the idle
//! rule of [`super::connections`]) and its request body bounded while it
//! arrives.
//!
//! tonic reads a request body as fast as the client sends it and buffers a
//! message until it is whole; the message size limit and the hashing
//! pool's byte budget apply only then. Without a bound here, stalled
//! uploads (a message's first bytes sent, the rest never) hold their bytes
//! for as long as the client keeps the connection, on as many calls and
//! connections as it opens. [`BodyBudget`] bounds the bytes of messages
//! that have begun but not finished arriving, across every connection; at
//! the budget, the next bytes wait, unread, so HTTP/2 flow control stops
//! their sender. Each message must have fully arrived within the request
//! timeout of its first byte (the call's first message: of the call's
//! start), or its call is reset with DEADLINE_EXCEEDED.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Frame, SizeHint};
use prometheus::{IntCounter, IntGauge};
use prost::bytes::Bytes;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::body::Body;
use tonic::Status;

use super::connections::{ConnControl, ConnInfo, OpenCall};

/// The shared bound on request bytes in flight (see the module docs).
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    /// How long a message may take to arrive.
    message_timeout: Duration,
    /// `sigil_request_body_bytes_in_flight`.
    in_flight: IntGauge,
    /// `sigil_request_body_budget_waits_total`.
    waits: IntCounter,
    /// `sigil_request_body_timeouts_total`.
    timeouts: IntCounter,
}

impl BodyBudget {
    pub fn new(
        bytes: u64,
        message_timeout: Duration,
        in_flight: IntGauge,
        waits: IntCounter,
        timeouts: IntCounter,
    ) -> Arc<Self> {
        let bytes = (bytes as usize).min(Semaphore::MAX_PERMITS);
        Arc::new(BodyBudget {
            permits: Arc::new(Semaphore::new(bytes)),
            message_timeout,
            in_flight,
            waits,
            timeouts,
        })
    }
}

/// The gRPC method a request names, as a metrics label: one of the
/// service's methods, or `unknown` (a client chooses the path, so it never
/// becomes a label as it is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallMethod(pub &'static str);

impl CallMethod {
    const KNOWN: [&'static str; 8] = [
        "MatchImage",
        "MatchImageStream",
        "MatchHashes",
        "IndexInfo",
        "GetReport",
        "ListReports",
        "UpdateReport",
        "ExportReport",
    ];

    fn of_path(path: &str) -> Self {
        let name = path.rsplit('/').next().unwrap_or_default();
        CallMethod(
            Self::KNOWN
                .iter()
                .find(|m| **m == name)
                .copied()
                .unwrap_or("unknown"),
        )
    }
}

/// The tower layer of the gRPC servers (see the module docs).
#[derive(Clone)]
pub struct CallsLayer {
    pub budget: Arc<BodyBudget>,
}

impl<S> tower_layer::Layer<S> for CallsLayer {
    type Service = Calls<S>;

    fn layer(&self, inner: S) -> Calls<S> {
        Calls {
            inner,
            budget: self.budget.clone(),
        }
    }
}

/// See [`CallsLayer`].
#[derive(Clone)]
pub struct Calls<S> {
    inner: S,
    budget: Arc<BodyBudget>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower_service::Service<http::Request<Body>> for Calls<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let method = CallMethod::of_path(req.uri().path());
        req.extensions_mut().insert(method);
        // Open from the request's arrival until hyper drops the response
        // body (sent, or the stream reset).
        let open = req
            .extensions()
            .get::<ConnInfo>()
            .map(|c| (c.control.call_started(), c.control.clone()));
        let budget = self.budget.clone();
        let req = req.map(|body| Body::new(BoundedBody::new(body, budget)));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            Ok(match open {
                Some((open, control)) => resp.map(|body| {
                    Body::new(WhileOpen {
                        body,
                        id: control.response_id(),
                        control,
                        _open: open,
                    })
                }),
                None => resp,
            })
        })
    }
}

/// A response body that keeps its call marked open, and tells its
/// connection when it waits on the client: from handing hyper data until
/// hyper polls it again, which hyper does only once the client's HTTP/2
/// window has room (the stall rule of `connections`).
struct WhileOpen {
    body: Body,
    id: u64,
    control: Arc<ConnControl>,
    _open: OpenCall,
}

impl Drop for WhileOpen {
    fn drop(&mut self) {
        self.control.response_moved(self.id);
    }
}

impl http_body::Body for WhileOpen {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        this.control.response_moved(this.id);
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if frame.is_data() {
                this.control.response_blocked(this.id);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Where the gRPC message framing (1 flag byte, 4 length bytes, payload)
/// of a request body stands.
#[derive(Default)]
struct Framing {
    header: [u8; 5],
    header_len: usize,
    /// Payload bytes of the current message still to come.
    remaining: u64,
    /// Bytes of the current message received so far (header included).
    current: u64,
}

/// What one chunk of body did to the framing.
struct Fed {
    /// Bytes of messages completed by the chunk (their earlier bytes
    /// included): no longer in flight.
    completed: u64,
    /// The chunk began a message that it did not finish.
    started_partial: bool,
}

impl Framing {
    fn feed(&mut self, mut data: &[u8]) -> Fed {
        let mut completed = 0;
        let mut started = false;
        while !data.is_empty() {
            if self.header_len < 5 {
                if self.header_len == 0 {
                    started = true;
                }
                let take = (5 - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
                self.header_len += take;
                self.current += take as u64;
                data = &data[take..];
                if self.header_len == 5 {
                    let h = &self.header;
                    self.remaining = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as u64;
                }
            } else {
                let take = (self.remaining as usize).min(data.len());
                self.remaining -= take as u64;
                self.current += take as u64;
                data = &data[take..];
            }
            if self.header_len == 5 && self.remaining == 0 {
                completed += self.current;
                *self = Framing::default();
                started = false;
            }
        }
        Fed {
            completed,
            started_partial: started,
        }
    }

    fn in_partial(&self) -> bool {
        self.current > 0
    }
}

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// A request body counted against the [`BodyBudget`] and bounded in time
/// per message.
struct BoundedBody {
    inner: Body,
    budget: Arc<BodyBudget>,
    framing: Framing,
    /// Budget held for the bytes of the message in progress.
    held: Option<OwnedSemaphorePermit>,
    /// When the message in progress (or the first one) must be whole.
    deadline: Option<Pin<Box<Sleep>>>,
    /// A data frame received but waiting for budget.
    waiting: Option<(Frame<Bytes>, Acquire)>,
    done: bool,
}

impl BoundedBody {
    fn new(inner: Body, budget: Arc<BodyBudget>) -> Self {
        let deadline = Box::pin(tokio::time::sleep(budget.message_timeout));
        BoundedBody {
            inner,
            budget,
            framing: Framing::default(),
            held: None,
            deadline: Some(deadline),
            waiting: None,
            done: false,
        }
    }

    /// Takes `permit` for `frame`'s bytes, then gives back those of the
    /// messages it completes and moves the deadline.
    fn admit(&mut self, frame: &Frame<Bytes>, permit: Option<OwnedSemaphorePermit>) {
        let Some(data) = frame.data_ref() else {
            return;
        };
        if let Some(p) = permit {
            self.budget.in_flight.add(p.num_permits() as i64);
            match &mut self.held {
                Some(h) => h.merge(p),
                None => self.held = Some(p),
            }
        }
        let fed = self.framing.feed(data);
        self.release(fed.completed);
        if !self.framing.in_partial() {
            self.deadline = None;
        } else if fed.started_partial {
            let at = Instant::now() + self.budget.message_timeout;
            match &mut self.deadline {
                Some(d) => d.as_mut().reset(at),
                None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
            }
        }
    }

    fn release(&mut self, bytes: u64) {
        let Some(held) = &mut self.held else {
            return;
        };
        let n = (bytes as usize).min(held.num_permits());
        if n == held.num_permits() {
            self.held = None;
        } else if let Some(part) = held.split(n) {
            drop(part);
        }
        self.budget.in_flight.sub(n as i64);
    }

    fn release_all(&mut self) {
        if let Some(h) = self.held.take() {
            self.budget.in_flight.sub(h.num_permits() as i64);
        }
    }

    fn timed_out(&mut self) -> Status {
        self.done = true;
        self.waiting = None;
        self.release_all();
        self.budget.timeouts.inc();
        Status::deadline_exceeded(format!(
            "request message did not fully arrive within {} ms (limits.request_timeout_ms)",
            self.budget.message_timeout.as_millis()
        ))
    }
}

impl Drop for BoundedBody {
    fn drop(&mut self) {
        self.release_all();
    }
}

impl http_body::Body for BoundedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(d) = &mut this.deadline {
            if d.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(Err(this.timed_out())));
            }
        }
        loop {
            if let Some((_, acquire)) = &mut this.waiting {
                let permit = match acquire.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(p) => p.ok(),
                };
                let (frame, _) = this.waiting.take().expect("checked above");
                this.admit(&frame, permit);
                return Poll::Ready(Some(Ok(frame)));
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.done = true;
                    this.release_all();
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            let len = frame.data_ref().map_or(0, |d| d.len());
            if len == 0 {
                return Poll::Ready(Some(Ok(frame)));
            }
            // A frame is at most http2_max_frame_bytes, which validation
            // keeps within the budget, so `len` permits can be granted.
            let n = len.min(u32::MAX as usize) as u32;
            match this.budget.permits.clone().try_acquire_many_owned(n) {
                Ok(permit) => {
                    this.admit(&frame, Some(permit));
                    return Poll::Ready(Some(Ok(frame)));
                }
                Err(_) => {
                    // Wait, unread: the bytes behind this frame stay with
                    // the client (flow control) until budget frees.
                    this.budget.waits.inc();
                    let acquire = Box::pin(this.budget.permits.clone().acquire_many_owned(n));
                    this.waiting = Some((frame, acquire));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.waiting.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0u8];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len as usize));
        m
    }

    #[test]
    fn framing_counts_messages_across_chunks() {
        let mut f = Framing::default();
        let mut body = message(10);
        body.extend(message(0));
        body.extend(message(3));
        // 15 + 5 + 8 bytes, fed in chunks that split headers and payloads.
        let fed = f.feed(&body[..3]);
        assert_eq!((fed.completed, fed.started_partial), (0, true));
        let fed = f.feed(&body[3..12]);
        assert_eq!((fed.completed, fed.started_partial), (0, false));
        assert!(f.in_partial());
        let fed = f.feed(&body[12..22]);
        // Completes the first (15) and the empty one (5), starts the third.
        assert_eq!((fed.completed, fed.started_partial), (20, true));
        let fed = f.feed(&body[22..]);
        assert_eq!((fed.completed, fed.started_partial), (8, false));
        assert!(!f.in_partial());
    }
}
