//! Deterministic sharding of a tree across machines.
//!
//! `--shard I/N` keeps the files whose *relative path* hashes to `I` modulo
//! `N`. The hash is 64-bit FNV-1a over the bytes of the path relative to
//! the scan root, with components joined by `/`: the exact bytes of each
//! name (on Unix the raw bytes, so names that are not UTF-8 shard by what
//! they are, like every UTF-8 name always did). FNV-1a is a fixed,
//! published function with no seed: the same relative path lands on the same
//! shard on every machine, every platform and every sigil version, which is
//! what lets N machines (say a Kubernetes Indexed Job) each take one shard of
//! a tree mounted at different places and cover it without overlap or gaps.
//! The absolute root is deliberately left out of the hash for that reason.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// One shard of `count` (0-based `index`, as Kubernetes' `JOB_COMPLETION_INDEX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Why a `--shard` argument is not `I/N` with `0 <= I < N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid shard {input:?}: expected I/N with 0 <= I < N (for example 0/4)")]
pub struct ShardParseError {
    pub input: String,
}

impl Shard {
    /// The whole tree (a single shard).
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the file at `relative` (relative to its scan root) is in this shard.
    pub fn contains(&self, relative: &Path) -> bool {
        self.count <= 1 || shard_hash(relative) % u64::from(self.count) == u64::from(self.index)
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::ALL
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ShardParseError {
            input: s.to_string(),
        };
        let (i, n) = s.split_once('/').ok_or_else(err)?;
        let index: u32 = i.trim().parse().map_err(|_| err())?;
        let count: u32 = n.trim().parse().map_err(|_| err())?;
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(state, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// FNV-1a 64 of the relative path's components joined by `/`.
///
/// Components are hashed one by one (rather than hashing the OS string) so
/// that `a/b` hashes the same whatever the platform's separator, and `.`
/// components or doubled separators do not change the shard.
pub fn shard_hash(relative: &Path) -> u64 {
    let mut h = FNV_OFFSET;
    let mut first = true;
    for comp in relative.components() {
        let part = match comp {
            std::path::Component::Normal(p) => p,
            // Relative paths from the walker only hold normal components;
            // anything else (CurDir) carries no information.
            _ => continue,
        };
        if !first {
            h = fnv1a(h, b"/");
        }
        first = false;
        h = fnv1a(h, part.as_encoded_bytes());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            "2/5".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 5 }
        );
        for bad in ["5/5", "1/0", "x/3", "3", "-1/3", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn hash_is_the_published_fnv1a() {
        // FNV-1a 64 test vectors (Fowler/Noll/Vo): "" and "a".
        assert_eq!(shard_hash(Path::new("")), 0xcbf2_9ce4_8422_2325);
        assert_eq!(shard_hash(Path::new("a")), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(shard_hash(Path::new("foobar")), 0x8594_4171_f739_67e8);
        // Separators and `.` components do not change the hash.
        assert_eq!(
            shard_hash(Path::new("a/b")),
            fnv1a(FNV_OFFSET, b"a/b"),
            "components are joined by /"
        );
        assert_eq!(
            shard_hash(Path::new("./a//b")),
            shard_hash(Path::new("a/b"))
        );
    }

    /// Names that are not UTF-8 hash their raw bytes: two names differing
    /// in one such byte are two inputs (they used to be hashed as one
    /// replacement character on other platforms than Unix).
    #[cfg(unix)]
    #[test]
    fn raw_bytes_are_hashed() {
        use std::os::unix::ffi::OsStrExt;
        let p = |b: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(b));
        assert_eq!(
            shard_hash(&p(b"d/x\xff.png")),
            fnv1a(FNV_OFFSET, b"d/x\xff.png")
        );
        assert_ne!(shard_hash(&p(b"x\xff.png")), shard_hash(&p(b"x\xfe.png")));
    }

    #[test]
    fn shards_partition_without_overlap_or_gap() {
        let paths: Vec<PathBuf> = (0..2000)
            .map(|i| PathBuf::from(format!("dir{}/img_{i}.jpg", i % 7)))
            .collect();
        let n = 5;
        let mut counts = vec![0usize; n as usize];
        for p in &paths {
            let owners: Vec<u32> = (0..n)
                .filter(|&i| Shard { index: i, count: n }.contains(p))
                .collect();
            assert_eq!(owners.len(), 1, "{p:?} owned by {owners:?}");
            counts[owners[0] as usize] += 1;
        }
        // Roughly balanced: each shard within 30% of the mean.
        for c in counts {
            assert!((280..=520).contains(&c), "unbalanced shard: {c}");
        }
    }
}
