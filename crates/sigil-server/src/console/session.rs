//! Console sessions, held server-side in the console's state: a random
//! token in an HttpOnly cookie names one; the server keeps only the
//! token's SHA-256 (as the key ring keeps only key digests), the key's
//! name, the session's CSRF token and its expiry. Sign-out removes it, so
//! a replayed cookie names nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A signed-in reviewer.
#[derive(Debug, Clone)]
pub struct Session {
    /// The API key's name: the actor in the audit trail.
    pub key_name: String,
    /// The token every form of this session carries.
    pub csrf: String,
    expires: Instant,
}

impl Session {
    /// True when `token` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        tokens_equal(&self.csrf, token)
    }
}

/// Constant-time equality of two tokens (their lengths are not secret).
pub fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the console holds {0} sessions, its limit (console.max_sessions): try again later")]
    Full(usize),
    #[error("the system's random source failed: {0}")]
    Random(String),
}

/// What a cookie's token named.
#[derive(Debug)]
pub enum Lookup {
    Valid(Session),
    /// It named a session that has expired (now removed).
    Expired,
    /// It names no session (never issued, or signed out).
    Unknown,
}

/// The console's sessions.
pub struct Sessions {
    ttl: Duration,
    max: usize,
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
}

/// A fresh random token: 32 bytes from the OS, as hex.
pub fn random_token() -> Result<String, SessionError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| SessionError::Random(e.to_string()))?;
    Ok(sigil_core::hash::encode_hex(&bytes))
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    pub fn new(ttl: Duration, max: usize) -> Self {
        Sessions {
            ttl,
            max,
            by_digest: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.by_digest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for `key_name`; returns its cookie token.
    pub fn open(&self, key_name: &str) -> Result<(String, Session), SessionError> {
        let token = random_token()?;
        let session = Session {
            key_name: key_name.to_string(),
            csrf: random_token()?,
            expires: Instant::now() + self.ttl,
        };
        let mut map = self.map();
        if map.len() >= self.max {
            let now = Instant::now();
            map.retain(|_, s| s.expires > now);
            if map.len() >= self.max {
                return Err(SessionError::Full(self.max));
            }
        }
        map.insert(digest(&token), session.clone());
        Ok((token, session))
    }

    /// The session `token` names, if it is live.
    pub fn get(&self, token: &str) -> Lookup {
        let d = digest(token);
        let mut map = self.map();
        match map.get(&d) {
            None => Lookup::Unknown,
            Some(s) if s.expires <= Instant::now() => {
                map.remove(&d);
                Lookup::Expired
            }
            Some(s) => Lookup::Valid(s.clone()),
        }
    }

    /// Ends the session `token` names (sign-out).
    pub fn close(&self, token: &str) {
        self.map().remove(&digest(token));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_get_close_and_cap() {
        let s = Sessions::new(Duration::from_secs(60), 2);
        let (t1, s1) = s.open("alice").unwrap();
        assert!(matches!(s.get(&t1), Lookup::Valid(ref v) if v.key_name == "alice"));
        assert!(s1.csrf_matches(&s1.csrf.clone()));
        assert!(!s1.csrf_matches("nope"));
        let (_t2, _) = s.open("bob").unwrap();
        assert!(matches!(s.open("carol"), Err(SessionError::Full(2))));
        s.close(&t1);
        assert!(matches!(s.get(&t1), Lookup::Unknown));
        s.open("carol").unwrap();
        let expired = Sessions::new(Duration::ZERO, 1);
        let (t, _) = expired.open("alice").unwrap();
        assert!(matches!(expired.get(&t), Lookup::Expired));
    }
}
