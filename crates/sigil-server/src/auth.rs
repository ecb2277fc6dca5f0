//! API-key authentication, roles and per-key rate limits.
//!
//! Keys are bearer tokens (`authorization: Bearer <token>`). The config holds
//! only their SHA-256, so a leaked config does not leak keys; lookup is by
//! digest, so comparison time does not depend on the secret.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;
use tonic::Status;

use crate::config::ApiKeyConfig;

/// What a key may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `Matcher` service: MatchImage, MatchImageStream, MatchHashes, IndexInfo.
    Matcher,
    /// `Reports` service.
    Reviewer,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Matcher => "matcher",
            Role::Reviewer => "reviewer",
        })
    }
}

/// A token bucket: `rate` tokens per second up to `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: u32) -> Self {
        TokenBucket {
            rate,
            burst: burst as f64,
            tokens: burst as f64,
            last: Instant::now(),
        }
    }

    /// Takes `n` tokens if available at time `now`.
    pub fn try_take(&mut self, n: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// An authenticated caller, put into each request's extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    key: Arc<ApiKey>,
}

impl Caller {
    /// The key's configured name ("anonymous" in insecure loopback mode).
    pub fn name(&self) -> &str {
        &self.key.name
    }

    /// Charges `n` more requests (stream items) to the key's rate limit.
    pub fn charge(&self, n: u32) -> Result<(), Status> {
        self.key.charge(n)
    }
}

#[derive(Debug)]
struct ApiKey {
    name: String,
    /// None: any role (insecure loopback mode).
    role: Option<Role>,
    /// None: unlimited (insecure loopback mode).
    bucket: Option<Mutex<TokenBucket>>,
}

impl ApiKey {
    fn charge(&self, n: u32) -> Result<(), Status> {
        let Some(bucket) = &self.bucket else {
            return Ok(());
        };
        let mut b = bucket.lock().unwrap_or_else(|p| p.into_inner());
        if b.try_take(n as f64, Instant::now()) {
            Ok(())
        } else {
            Err(Status::resource_exhausted(format!(
                "rate limit of API key {:?} exceeded ({} requests/s, burst {})",
                self.name, b.rate, b.burst
            )))
        }
    }
}

/// The configured keys, or the open door of insecure loopback mode.
#[derive(Debug)]
pub struct KeyRing {
    keys: HashMap<[u8; 32], Arc<ApiKey>>,
    anonymous: Option<Arc<ApiKey>>,
}

impl KeyRing {
    /// Keys from the config (already validated).
    pub fn from_config(keys: &[ApiKeyConfig]) -> Self {
        let mut map = HashMap::new();
        for k in keys {
            let mut digest = [0u8; 32];
            if sigil_core::hash::decode_hex_into(&k.sha256, &mut digest).is_err() {
                continue; // validate() has refused such configs already
            }
            map.insert(
                digest,
                Arc::new(ApiKey {
                    name: k.name.clone(),
                    role: Some(k.role),
                    bucket: Some(Mutex::new(TokenBucket::new(k.rate_limit_per_s, k.burst()))),
                }),
            );
        }
        KeyRing {
            keys: map,
            anonymous: None,
        }
    }

    /// No authentication: every caller is "anonymous" with every role.
    pub fn insecure_open() -> Self {
        KeyRing {
            keys: HashMap::new(),
            anonymous: Some(Arc::new(ApiKey {
                name: "anonymous".into(),
                role: None,
                bucket: None,
            })),
        }
    }

    /// Authenticates the call's bearer token, checks its role and charges one
    /// request to its rate limit.
    pub fn authorize(&self, metadata: &MetadataMap, needed: Role) -> Result<Caller, Status> {
        if let Some(anon) = &self.anonymous {
            return Ok(Caller { key: anon.clone() });
        }
        let header = metadata.get("authorization").ok_or_else(|| {
            Status::unauthenticated("missing API key: send `authorization: Bearer <key>`")
        })?;
        let value = header
            .to_str()
            .map_err(|_| Status::unauthenticated("authorization header is not ASCII"))?;
        let token = bearer_token(value).ok_or_else(|| {
            Status::unauthenticated("authorization header must be `Bearer <key>`")
        })?;
        self.authorize_token(token, needed)
    }

    /// Authenticates a bare key (the console's sign-in form), checks its
    /// role and charges one request to its rate limit.
    pub fn authorize_token(&self, token: &str, needed: Role) -> Result<Caller, Status> {
        if let Some(anon) = &self.anonymous {
            return Ok(Caller { key: anon.clone() });
        }
        let key = self
            .configured(token)
            .ok_or_else(|| Status::unauthenticated("unknown API key"))?;
        if let Some(role) = key.role {
            if role != needed {
                return Err(Status::permission_denied(format!(
                    "API key {:?} has role {role}; this service needs role {needed}",
                    key.name
                )));
            }
        }
        key.charge(1)?;
        Ok(Caller { key: key.clone() })
    }
}

/// SHA-256 hex of a key, as it goes into the config.
pub fn key_digest_hex(token: &str) -> String {
    sigil_core::hash::encode_hex(&Sha256::digest(token.as_bytes()))
}

/// The key label of a call that sent no API key.
pub const NO_KEY: &str = "(none)";
/// The key label of a call whose API key is not configured: one label for
/// every unknown key, so a flood of made-up keys cannot grow the metrics.
pub const UNKNOWN_KEY: &str = "(unknown)";

impl KeyRing {
    /// The name a call is counted under when it is refused: its key's
    /// configured name, [`UNKNOWN_KEY`] or [`NO_KEY`]. Charges nothing.
    pub fn key_label(&self, metadata: &MetadataMap) -> String {
        if let Some(anon) = &self.anonymous {
            return anon.name.clone();
        }
        let Some(value) = metadata.get("authorization") else {
            return NO_KEY.to_string();
        };
        let Some(token) = value.to_str().ok().and_then(bearer_token) else {
            return UNKNOWN_KEY.to_string();
        };
        self.configured(token)
            .map_or_else(|| UNKNOWN_KEY.to_string(), |k| k.name.clone())
    }

    /// The configured key a bearer token is, found by its SHA-256 (the
    /// config holds only digests).
    fn configured(&self, token: &str) -> Option<&Arc<ApiKey>> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.keys.get(&digest)
    }
}

/// The token of an `authorization: Bearer <token>` value. The scheme name is
/// case-insensitive (RFC 9110, section 11.1): `Bearer`, `bearer` and `BEARER`
/// are the same scheme.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ring() -> KeyRing {
        KeyRing::from_config(&[
            ApiKeyConfig {
                name: "pipe".into(),
                sha256: key_digest_hex("s3cret-matcher"),
                role: Role::Matcher,
                rate_limit_per_s: 0.001,
                burst: Some(2),
            },
            ApiKeyConfig {
                name: "rev".into(),
                sha256: key_digest_hex("s3cret-reviewer").to_uppercase(),
                role: Role::Reviewer,
                rate_limit_per_s: 10.0,
                burst: None,
            },
        ])
    }

    fn md(token: Option<&str>) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Some(t) = token {
            m.insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        m
    }

    #[test]
    fn roles_and_unknown_keys() {
        let r = ring();
        assert_eq!(
            r.authorize(&md(None), Role::Matcher).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            r.authorize(&md(Some("nope")), Role::Matcher)
                .unwrap_err()
                .code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            r.authorize(&md(Some("s3cret-reviewer")), Role::Matcher)
                .unwrap_err()
                .code(),
            tonic::Code::PermissionDenied
        );
        let c = r
            .authorize(&md(Some("s3cret-reviewer")), Role::Reviewer)
            .unwrap();
        assert_eq!(c.name(), "rev");
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let r = ring();
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let mut m = MetadataMap::new();
            let value = format!("{scheme} s3cret-reviewer");
            m.insert("authorization", value.parse().unwrap());
            let c = r.authorize(&m, Role::Reviewer).unwrap();
            assert_eq!(c.name(), "rev", "{scheme}");
        }
        for bad in [
            "Basic s3cret-reviewer",
            "Bearer",
            "Bearer ",
            "Bearers3cret-reviewer",
        ] {
            let mut m = MetadataMap::new();
            m.insert("authorization", bad.parse().unwrap());
            assert_eq!(
                r.authorize(&m, Role::Reviewer).unwrap_err().code(),
                tonic::Code::Unauthenticated,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rate_limit_exhausts_then_refills() {
        let r = ring();
        let m = md(Some("s3cret-matcher"));
        r.authorize(&m, Role::Matcher).unwrap();
        r.authorize(&m, Role::Matcher).unwrap();
        let err = r.authorize(&m, Role::Matcher).unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("pipe"));

        let mut b = TokenBucket::new(1.0, 1);
        let t0 = Instant::now();
        assert!(b.try_take(1.0, t0));
        assert!(!b.try_take(1.0, t0));
        assert!(b.try_take(1.0, t0 + Duration::from_secs(1)));
    }
}
