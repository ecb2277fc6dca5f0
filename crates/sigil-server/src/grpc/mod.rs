//! The gRPC handlers: `sigil.v1.Matcher` ([`matcher`]) and
//! `sigil.v1.Reports` ([`reports`]), and the conversions between the
//! generated proto types and the domain's ([`convert`]). The generated
//! types stop here: what the handlers hand to the rest of the crate is
//! domain types.

mod convert;
mod matcher;
mod reports;

use std::future::Future;
use std::time::{Duration, Instant};

use tonic::{Request, Status};

use crate::auth::Caller;
use crate::metrics::Metrics;

pub(crate) use matcher::MatcherService;
pub(crate) use reports::ReportsService;

/// The authenticated caller the interceptor put into the request.
fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::internal("request reached a handler without authentication"))
}

/// The name a request's caller is counted under: its key's configured
/// name (never the key).
fn key_name<T>(req: &Request<T>) -> String {
    req.extensions()
        .get::<Caller>()
        .map_or_else(|| crate::auth::NO_KEY.to_string(), |c| c.name().to_string())
}

/// Runs one unary call, recording its status code and latency per method
/// and per key (and logging a failure).
async fn timed<T>(
    metrics: &Metrics,
    method: &'static str,
    key: String,
    fut: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let start = Instant::now();
    let result = fut.await;
    let code = match &result {
        Ok(_) => tonic::Code::Ok,
        Err(s) => {
            tracing::info!(method, code = ?s.code(), message = %crate::untrusted::text(s.message()), "call failed");
            s.code()
        }
    };
    metrics.observe_call(method, &key, code, start.elapsed().as_secs_f64());
    result
}

/// The call's deadline: the client's `grpc-timeout` or the server's
/// `limit`, whichever is sooner.
fn deadline(md: &tonic::metadata::MetadataMap, start: Instant, limit: Duration) -> Instant {
    let client = md
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout);
    start + client.map_or(limit, |c| c.min(limit))
}

/// Parses a `grpc-timeout` header value (`<digits><unit>`, unit H M S m u n).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (num, unit) = v.split_at(v.len() - 1);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("1n"), Some(Duration::from_nanos(1)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout("10q"), None);
    }
}
