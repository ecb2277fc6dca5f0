//! Signature value types: the 256-bit PDQ hash and the exact digests.
//!
//! These types are shared by every crate downstream of decoding (index,
//! scan, server), so they carry no image logic at all.

use std::fmt;
use std::str::FromStr;

/// A 256-bit PDQ hash.
///
/// Stored as the 32 bytes of the canonical hex form, most significant first:
/// `bytes[0]` is the first two hex characters. DCT coefficient `k`
/// (row `k / 16`, column `k % 16` of the 16x16 block) is bit `k % 8` of
/// `bytes[31 - k / 8]`, which is exactly the order Meta's reference prints
/// (`w[15]` first). Keeping the hex order in memory means parsing and
/// printing are plain hex conversions and no bit shuffling can go wrong.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PdqHash(pub [u8; 32]);

/// Why a string is not a PDQ hash (or another hex digest).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("expected {expected} hex characters, found {found}")]
    Length { expected: usize, found: usize },
    #[error("invalid hex character {ch:?} at position {pos}")]
    Char { ch: char, pos: usize },
}

impl PdqHash {
    /// The all-zero hash the reference returns for images under 5 px.
    pub const ZERO: PdqHash = PdqHash([0; 32]);

    /// Parses 64 hex characters. Uppercase is accepted (hash lists in the
    /// wild are not always normalised); output is always lowercase.
    pub fn from_hex(s: &str) -> Result<Self, HexError> {
        let mut out = [0u8; 32];
        decode_hex_into(s, &mut out)?;
        Ok(PdqHash(out))
    }

    /// Lowercase 64-character hex, the reference format.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// Number of differing bits.
    #[inline]
    pub fn hamming(&self, other: &PdqHash) -> u32 {
        let mut d = 0;
        for i in 0..4 {
            let a = u64::from_le_bytes(self.0[i * 8..i * 8 + 8].try_into().unwrap());
            let b = u64::from_le_bytes(other.0[i * 8..i * 8 + 8].try_into().unwrap());
            d += (a ^ b).count_ones();
        }
        d
    }

    /// Whether coefficient `k` (0..256, `k = row * 16 + col`) is set.
    #[inline]
    pub fn bit(&self, k: usize) -> bool {
        (self.0[31 - k / 8] >> (k % 8)) & 1 == 1
    }

    /// Sets coefficient `k` (0..256).
    #[inline]
    pub fn set_bit(&mut self, k: usize) {
        self.0[31 - k / 8] |= 1 << (k % 8);
    }

    /// Number of one bits.
    pub fn count_ones(&self) -> u32 {
        self.0.iter().map(|b| b.count_ones()).sum()
    }

    /// The 16 reference words `w[0..16]` (w[i] = DCT row i, bit j = column j).
    pub fn words(&self) -> [u16; 16] {
        let mut w = [0u16; 16];
        for (i, wi) in w.iter_mut().enumerate() {
            // w[i] is printed at hex position 15 - i, i.e. bytes 30-2i, 31-2i.
            let hi = self.0[30 - 2 * i];
            let lo = self.0[31 - 2 * i];
            *wi = u16::from_be_bytes([hi, lo]);
        }
        w
    }

    /// Builds a hash from the 16 reference words.
    pub fn from_words(w: &[u16; 16]) -> Self {
        let mut b = [0u8; 32];
        for (i, wi) in w.iter().enumerate() {
            let [hi, lo] = wi.to_be_bytes();
            b[30 - 2 * i] = hi;
            b[31 - 2 * i] = lo;
        }
        PdqHash(b)
    }

    /// Bit-domain approximation of the hash of a dihedral transform of the
    /// image, for when only the hash is known (e.g. `sigil index query
    /// --dihedral`). It applies the coefficient permutation and sign flips
    /// of pdq-spec 1.8 (`dct16OriginalToXxx`) to the bits: a coefficient
    /// that moves keeps its bit, a negated one gets its bit inverted. This is
    /// exact only if the median of the DCT coefficients is 0; the true
    /// variant re-thresholds with its own median, so a few bits may differ.
    /// When the image is at hand, use the exact DCT-derived variants
    /// (`PdqHasher::dihedral_*`), as the scan and server do.
    pub fn dihedral_transform(&self, variant: Dihedral) -> PdqHash {
        let mut out = PdqHash::ZERO;
        for i in 0..16 {
            for j in 0..16 {
                let odd = |x: usize| x % 2 == 1;
                // (destination row, destination column, negated?)
                let (r, c, neg) = match variant {
                    Dihedral::Orig => (i, j, false),
                    Dihedral::Rot90 => (j, i, !odd(j)),
                    Dihedral::Rot180 => (i, j, odd(i + j)),
                    Dihedral::Rot270 => (j, i, !odd(i)),
                    Dihedral::FlipX => (i, j, !odd(i)),
                    Dihedral::FlipY => (i, j, !odd(j)),
                    Dihedral::FlipPlus1 => (j, i, false),
                    Dihedral::FlipMinus1 => (j, i, !odd(i + j)),
                };
                if self.bit(i * 16 + j) != neg {
                    out.set_bit(r * 16 + c);
                }
            }
        }
        out
    }
}

impl fmt::Display for PdqHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PdqHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PdqHash({})", self.to_hex())
    }
}

impl FromStr for PdqHash {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PdqHash::from_hex(s)
    }
}

impl serde::Serialize for PdqHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for PdqHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        PdqHash::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// The kinds of hash a list can carry.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum HashKind {
    Pdq,
    Md5,
    Sha1,
    Sha256,
}

impl HashKind {
    /// All kinds, in a stable order.
    pub const ALL: [HashKind; 4] = [
        HashKind::Pdq,
        HashKind::Md5,
        HashKind::Sha1,
        HashKind::Sha256,
    ];

    /// Length of the raw digest in bytes.
    pub fn byte_len(self) -> usize {
        match self {
            HashKind::Pdq => 32,
            HashKind::Md5 => 16,
            HashKind::Sha1 => 20,
            HashKind::Sha256 => 32,
        }
    }

    /// Lowercase name, as used in CSV, JSON and the proto.
    pub fn as_str(self) -> &'static str {
        match self {
            HashKind::Pdq => "pdq",
            HashKind::Md5 => "md5",
            HashKind::Sha1 => "sha1",
            HashKind::Sha256 => "sha256",
        }
    }
}

impl fmt::Display for HashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HashKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "pdq" => Ok(HashKind::Pdq),
            "md5" => Ok(HashKind::Md5),
            "sha1" | "sha-1" => Ok(HashKind::Sha1),
            "sha256" | "sha-256" => Ok(HashKind::Sha256),
            other => Err(format!(
                "unknown hash kind {other:?} (expected pdq, md5, sha1 or sha256)"
            )),
        }
    }
}

/// The 8 dihedral transforms of an image, in the reference's order and with
/// the names of its CSV columns (`dih_orig` ... `dih_flipminus1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dihedral {
    /// The image as it is.
    Orig,
    /// Rotated 90 degrees counter-clockwise.
    Rot90,
    /// Rotated 180 degrees.
    Rot180,
    /// Rotated 90 degrees clockwise.
    Rot270,
    /// Top and bottom swapped (vertical flip).
    FlipX,
    /// Left and right swapped (mirror).
    FlipY,
    /// Transposed about the main diagonal.
    FlipPlus1,
    /// Transposed about the anti-diagonal.
    FlipMinus1,
}

impl Dihedral {
    /// All 8, in the reference order.
    pub const ALL: [Dihedral; 8] = [
        Dihedral::Orig,
        Dihedral::Rot90,
        Dihedral::Rot180,
        Dihedral::Rot270,
        Dihedral::FlipX,
        Dihedral::FlipY,
        Dihedral::FlipPlus1,
        Dihedral::FlipMinus1,
    ];

    /// The suffix of the reference CSV column (`dih_<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Dihedral::Orig => "orig",
            Dihedral::Rot90 => "rot90",
            Dihedral::Rot180 => "rot180",
            Dihedral::Rot270 => "rot270",
            Dihedral::FlipX => "flipx",
            Dihedral::FlipY => "flipy",
            Dihedral::FlipPlus1 => "flipplus1",
            Dihedral::FlipMinus1 => "flipminus1",
        }
    }
}

impl fmt::Display for Dihedral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lowercase hex of arbitrary bytes.
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Nibble value of each byte; 0xff for a byte that is not a hex digit.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut c = 0;
    while c < 10 {
        t[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        t[b'a' as usize + c] = 10 + c as u8;
        t[b'A' as usize + c] = 10 + c as u8;
        c += 1;
    }
    t
};

/// Decodes exactly `out.len() * 2` hex bytes (either case) into `out`, one
/// table lookup per byte and no branch per character: the hot path of
/// list imports (10M lines) and hash queries. `false` on a wrong length or
/// a non-hex byte (`out` is then unspecified); [`decode_hex_into`] says
/// what was wrong.
pub fn decode_hex_bytes(hex: &[u8], out: &mut [u8]) -> bool {
    if hex.len() != out.len() * 2 {
        return false;
    }
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let (hi, lo) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 0x0f);
    }
    bad & 0xf0 == 0
}

/// Decodes exactly `out.len() * 2` hex characters (either case) into `out`.
pub fn decode_hex_into(s: &str, out: &mut [u8]) -> Result<(), HexError> {
    let bytes = s.as_bytes();
    if bytes.len() != out.len() * 2 {
        return Err(HexError::Length {
            expected: out.len() * 2,
            found: s.chars().count(),
        });
    }
    if decode_hex_bytes(bytes, out) {
        return Ok(());
    }
    // Every byte before the first bad one is ASCII, so `pos` is a character
    // boundary.
    let pos = bytes
        .iter()
        .position(|&b| HEX_VALUE[b as usize] == 0xff)
        .unwrap_or(0);
    Err(HexError::Char {
        ch: s[pos..].chars().next().unwrap_or('?'),
        pos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRIDGE: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";

    #[test]
    fn hex_round_trip() {
        let h = PdqHash::from_hex(BRIDGE).unwrap();
        assert_eq!(h.to_hex(), BRIDGE);
        assert_eq!(PdqHash::from_hex(&BRIDGE.to_uppercase()).unwrap(), h);
    }

    #[test]
    fn bit_order_matches_reference_words() {
        // Last hex digit "2" = bits 3..0 of w[0] => coefficient 1 set, 0 clear.
        let h = PdqHash::from_hex(BRIDGE).unwrap();
        assert!(!h.bit(0));
        assert!(h.bit(1));
        let w = h.words();
        assert_eq!(w[0], 0x9b22);
        assert_eq!(w[15], 0xf8f8);
        assert_eq!(PdqHash::from_words(&w), h);
    }

    #[test]
    fn dihedral_transform_group_laws() {
        let a = PdqHash::from_hex(BRIDGE).unwrap();
        assert_eq!(a.dihedral_transform(Dihedral::Orig), a);
        // Involutions: applying the transform twice gives the original.
        for v in [
            Dihedral::Rot180,
            Dihedral::FlipX,
            Dihedral::FlipY,
            Dihedral::FlipPlus1,
            Dihedral::FlipMinus1,
        ] {
            assert_eq!(a.dihedral_transform(v).dihedral_transform(v), a, "{v}");
        }
        // Rot90 then Rot270 is the identity; Rot90 twice is Rot180.
        let r90 = a.dihedral_transform(Dihedral::Rot90);
        assert_eq!(r90.dihedral_transform(Dihedral::Rot270), a);
        assert_eq!(
            r90.dihedral_transform(Dihedral::Rot90),
            a.dihedral_transform(Dihedral::Rot180)
        );
        // The 8 variants of a generic hash are distinct.
        let all: std::collections::HashSet<_> = Dihedral::ALL
            .iter()
            .map(|&v| a.dihedral_transform(v))
            .collect();
        assert_eq!(all.len(), 8);
    }

    #[test]
    fn hamming_and_errors() {
        let a = PdqHash::from_hex(BRIDGE).unwrap();
        let mut b = a;
        b.0[0] ^= 0b1011;
        assert_eq!(a.hamming(&b), 3);
        assert!(matches!(
            PdqHash::from_hex("abc"),
            Err(HexError::Length {
                expected: 64,
                found: 3
            })
        ));
        let bad = format!("{}g", &BRIDGE[..63]);
        assert!(matches!(
            PdqHash::from_hex(&bad),
            Err(HexError::Char { ch: 'g', pos: 63 })
        ));
    }

    /// The table decoder agrees with a per-character reading on every
    /// byte pair, and a bad character is named at its position (a
    /// multi-byte one too).
    #[test]
    fn table_decode_matches_per_character_decode() {
        let nibble = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
        for hi in 0..=255u8 {
            for lo in 0..=255u8 {
                let mut out = [0u8; 1];
                let ok = decode_hex_bytes(&[hi, lo], &mut out);
                let want = nibble(hi).zip(nibble(lo)).map(|(h, l)| (h << 4) | l);
                assert_eq!(ok.then_some(out[0]), want, "{hi:#x} {lo:#x}");
            }
        }
        assert!(!decode_hex_bytes(b"abc", &mut [0u8; 1]));
        let mut out = [0u8; 3];
        assert!(matches!(
            decode_hex_into("ab\u{e9}", &mut out[..2]),
            Err(HexError::Char {
                ch: '\u{e9}',
                pos: 2
            })
        ));
        decode_hex_into("A0ff7C", &mut out).unwrap();
        assert_eq!(out, [0xa0, 0xff, 0x7c]);
    }
}
