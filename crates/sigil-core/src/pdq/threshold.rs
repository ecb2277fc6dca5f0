//! Median threshold to bits, and the 8 dihedral variants of the DCT.

use crate::hash::PdqHash;

/// The reference's Torben median of 256 values: the lower median,
/// `sorted[127]`. Any element equal to it gives the same bits.
pub fn median256(v: &[f32; 256]) -> f32 {
    let mut tmp = *v;
    // total_cmp agrees with `<` on every non-NaN pair except -0 vs +0,
    // which compare equal under `>` anyway.
    let (_, m, _) = tmp.select_nth_unstable_by(127, f32::total_cmp);
    *m
}

/// Bit `i*16+j` set iff `B[i][j] > median` (strict).
pub fn bits_from_dct(b: &[f32; 256]) -> PdqHash {
    let m = median256(b);
    let mut h = PdqHash::ZERO;
    for (k, v) in b.iter().enumerate() {
        if *v > m {
            h.set_bit(k);
        }
    }
    h
}

/// The 8 dihedral variants of a 16x16 DCT block, in `Dihedral::ALL` order
/// (orig, rot90, rot180, rot270, flipx, flipy, flipplus1, flipminus1), by
/// the reference's `dct16OriginalToXxx` sign and transpose rules.
pub fn dihedral_variants(a: &[f32; 256]) -> [[f32; 256]; 8] {
    let mut out = [[0.0f32; 256]; 8];
    for i in 0..16 {
        for j in 0..16 {
            let v = a[i * 16 + j];
            let (ij, ji) = (i * 16 + j, j * 16 + i);
            let i_odd = i & 1 == 1;
            let j_odd = j & 1 == 1;
            let sum_odd = (i + j) & 1 == 1;
            out[0][ij] = v;
            out[1][ji] = if j_odd { v } else { -v };
            out[2][ij] = if sum_odd { -v } else { v };
            out[3][ji] = if i_odd { v } else { -v };
            out[4][ij] = if i_odd { v } else { -v };
            out[5][ij] = if j_odd { v } else { -v };
            out[6][ji] = v;
            out[7][ji] = if sum_odd { -v } else { v };
        }
    }
    out
}
