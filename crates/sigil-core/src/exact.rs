//! Exact digests (MD5, SHA-1, SHA-256) of a file's raw bytes.
//!
//! NCMEC, IWF and most industry lists still carry exact hashes next to PDQ,
//! and an exact hash matches any file, image or not, so these are computed
//! for every input regardless of whether it decodes.
//!
//! SHA-1 can be left out ([`ExactHasher::without_sha1`]): a batch scan
//! records MD5 and SHA-256 but needs SHA-1 only to match SHA-1 lists, and
//! with none loaded it would cost about a fifth of the digest time for
//! nothing.

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::hash::{encode_hex, HashKind};

/// The exact digests of one byte string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExactDigests {
    pub md5: [u8; 16],
    /// `None` when the hasher was made [`ExactHasher::without_sha1`].
    pub sha1: Option<[u8; 20]>,
    pub sha256: [u8; 32],
}

/// Bytes fed to all three hashers before moving on, so a large input is
/// read from memory once while the chunk is still in cache.
const CHUNK: usize = 64 * 1024;

impl ExactDigests {
    /// Digests of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let mut hasher = ExactHasher::new();
        hasher.update(bytes);
        hasher.finish()
    }

    /// Digests of everything `reader` yields, for inputs too large to hold
    /// in memory.
    pub fn of_reader(reader: impl std::io::Read) -> std::io::Result<Self> {
        ExactHasher::new().digest_reader(reader)
    }

    pub fn md5_hex(&self) -> String {
        encode_hex(&self.md5)
    }

    /// `None` when SHA-1 was not computed.
    pub fn sha1_hex(&self) -> Option<String> {
        self.sha1.as_ref().map(|d| encode_hex(d))
    }

    pub fn sha256_hex(&self) -> String {
        encode_hex(&self.sha256)
    }

    /// The digest of the given kind; `None` for [`HashKind::Pdq`], which is
    /// not an exact digest, and for a SHA-1 that was not computed.
    pub fn get(&self, kind: HashKind) -> Option<&[u8]> {
        match kind {
            HashKind::Md5 => Some(&self.md5),
            HashKind::Sha1 => self.sha1.as_ref().map(|d| &d[..]),
            HashKind::Sha256 => Some(&self.sha256),
            HashKind::Pdq => None,
        }
    }
}

/// Incremental computation of [`ExactDigests`].
#[derive(Clone)]
pub struct ExactHasher {
    md5: Md5,
    sha1: Option<Sha1>,
    sha256: Sha256,
}

impl Default for ExactHasher {
    fn default() -> Self {
        ExactHasher {
            md5: Md5::new(),
            sha1: Some(Sha1::new()),
            sha256: Sha256::new(),
        }
    }
}

impl ExactHasher {
    /// MD5, SHA-1 and SHA-256.
    pub fn new() -> Self {
        Self::default()
    }

    /// MD5 and SHA-256 only.
    pub fn without_sha1() -> Self {
        ExactHasher {
            sha1: None,
            ..Self::default()
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(CHUNK) {
            self.md5.update(chunk);
            if let Some(sha1) = &mut self.sha1 {
                sha1.update(chunk);
            }
            self.sha256.update(chunk);
        }
    }

    pub fn finish(self) -> ExactDigests {
        ExactDigests {
            md5: self.md5.finalize().into(),
            sha1: self.sha1.map(|h| h.finalize().into()),
            sha256: self.sha256.finalize().into(),
        }
    }

    /// Feeds everything `reader` yields, for inputs too large to hold in
    /// memory, and finishes.
    pub fn digest_reader(
        mut self,
        mut reader: impl std::io::Read,
    ) -> std::io::Result<ExactDigests> {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.update(&buf[..n]);
        }
        Ok(self.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Published test vectors (RFC 1321, FIPS 180-2 examples).
    #[test]
    fn known_vectors() {
        let e = ExactDigests::of(b"");
        assert_eq!(e.md5_hex(), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            e.sha1_hex().unwrap(),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert_eq!(
            e.sha256_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let a = ExactDigests::of(b"abc");
        assert_eq!(a.md5_hex(), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            a.sha1_hex().unwrap(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            a.sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn chunked_equals_whole_and_reader() {
        let data: Vec<u8> = (0..(3 * CHUNK + 17))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let whole = ExactDigests::of(&data);
        let mut h = ExactHasher::new();
        for piece in data.chunks(1000) {
            h.update(piece);
        }
        assert_eq!(h.finish(), whole);
        assert_eq!(ExactDigests::of_reader(&data[..]).unwrap(), whole);
        assert_ne!(ExactDigests::of(&data[1..]), whole);
    }

    #[test]
    fn get_by_kind() {
        let e = ExactDigests::of(b"abc");
        assert_eq!(e.get(HashKind::Md5).unwrap(), &e.md5[..]);
        assert_eq!(e.get(HashKind::Sha1).unwrap().len(), 20);
        assert_eq!(e.get(HashKind::Sha256).unwrap().len(), 32);
        assert!(e.get(HashKind::Pdq).is_none());
    }

    #[test]
    fn without_sha1_leaves_only_sha1_out() {
        let data: Vec<u8> = (0..(2 * CHUNK + 5)).map(|i| (i % 253) as u8).collect();
        let all = ExactDigests::of(&data);
        let mut h = ExactHasher::without_sha1();
        h.update(&data);
        let some = h.finish();
        assert_eq!(some.sha1, None);
        assert!(some.get(HashKind::Sha1).is_none());
        assert_eq!((some.md5, some.sha256), (all.md5, all.sha256));
        let r = ExactHasher::without_sha1()
            .digest_reader(&data[..])
            .unwrap();
        assert_eq!(r, some);
    }
}
