//! PDQ's 64x64 grid straight from JPEG DCT coefficients, with no inverse
//! DCT and no pixels.
//!
//! PDQ's first stage is linear: two box passes along each axis, then
//! decimation to 64x64. Each grid value is a weighted sum of luma samples
//! whose weights are separable, `wy_i[y] * wx_j[x]`
//! (`pdq::jarosz::sample_taps`). A JPEG stores luma as 8x8
//! blocks of DCT coefficients `F[v][u]`, and pixel `(x, y)` of a block is
//! `128 + sum F[v][u] b_v(y) b_u(x)` with `b_u(x) = C(u)/2 cos((2x + 1) u
//! pi / 16)`, `C(0) = 1/sqrt 2`, `C(u > 0) = 1`. So grid value `(i, j)` is
//! 128 plus, over the blocks its weights reach, `sum F[v][u] ay[v] ax[u]`
//! with `ay[v] = sum_y wy_i(8 by + y) b_v(y)` (and `ax` likewise): a few
//! multiply-adds per block, computed once per image for each (block,
//! output) pair.
//!
//! For the images this path takes (shorter side 1024 px and up) the
//! weights are tents at least 15 pixels wide, smooth across one block, so
//! the high frequencies of a block add little: only the top-left
//! [`GRID_COEFS`] x [`GRID_COEFS`] coefficients are used. On the 4-8 MP
//! JPEGs of the photo corpus, 2x2 moved PDQ hashes from the exact path by
//! a mean of 0.06-0.36 bits (max 2), 4x4 by 0.18-0.42 (max 2) for a 4%
//! slower decode. 4x4 is closer on small images (on a 513x321 JPEG the grid
//! was at most 4.9 grey levels off against 34), which this path refuses.
//!
//! What else differs from the exact path: the full decode rounds each
//! pixel and clamps it to 0..=255, and PDQ's luma comes from RGB that
//! clamps too (here it is Y, see `baseline`). BENCHMARKS.md ("Batch scan")
//! has the deviation on the corpus.

use crate::pdq::jarosz::sample_taps;

use super::baseline::{BlockSink, Coefs};

/// Coefficients kept per block along each axis.
pub(super) const GRID_COEFS: usize = 2;

/// PDQ's blurred and decimated luma of a JPEG, row-major 64x64, ready for
/// `PdqHasher::hash_grid`.
#[derive(Clone, Debug)]
pub struct LumaGrid {
    /// The full-resolution image size.
    pub width: u32,
    pub height: u32,
    pub grid: Box<[f32; 4096]>,
}

/// One grid output a block reaches along an axis, and the block's basis
/// weights `a[u]` for it. Output 64 is a dummy that absorbs padding.
type Tap = (usize, [f32; GRID_COEFS]);

/// The dummy output index of a padding [`Tap`].
const PAD: usize = 64;

/// One axis: for each block along it, the (at most two) grid outputs whose
/// weights reach into the block. Exactly two per block, padded with zero
/// weights, so the per-block work has fixed trip counts: with a variable
/// count the accumulation cost 6.6 ns per luma block, with two 3.9 ns
/// (4-7 MP photos, against a decode with the accumulation switched off).
struct AxisTaps {
    per_block: Vec<[Tap; 2]>,
}

impl AxisTaps {
    /// `None` when some block reaches more than two outputs, which happens
    /// only on axes under 600 samples (tents narrower than the output
    /// spacing plus a block).
    fn new(len: usize) -> Option<AxisTaps> {
        let mut basis = [[0f64; 8]; GRID_COEFS];
        for (u, row) in basis.iter_mut().enumerate() {
            let c = if u == 0 {
                std::f64::consts::FRAC_1_SQRT_2
            } else {
                1.0
            };
            for (x, b) in row.iter_mut().enumerate() {
                let angle = (2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0;
                *b = 0.5 * c * angle.cos();
            }
        }
        let pad: Tap = (PAD, [0.0; GRID_COEFS]);
        // Each block's taps and how many of its two are filled.
        let mut per_block = vec![([pad; 2], 0usize); len.div_ceil(8)];
        for (i, t) in sample_taps(len).iter().enumerate() {
            let last = t.first + t.weights.len() - 1;
            let weight = |k: usize| {
                if (t.first..=last).contains(&k) {
                    t.weights[k - t.first]
                } else {
                    0.0
                }
            };
            for b in t.first / 8..=last / 8 {
                let mut a = [0f32; GRID_COEFS];
                for (au, bu) in a.iter_mut().zip(&basis) {
                    *au = (0..8).map(|x| weight(8 * b + x) * bu[x]).sum::<f64>() as f32;
                }
                let (taps, used) = per_block.get_mut(b)?;
                *taps.get_mut(*used)? = (i, a);
                *used += 1;
            }
        }
        Some(AxisTaps {
            per_block: per_block.into_iter().map(|(taps, _)| taps).collect(),
        })
    }
}

/// Grid side with the dummy row and column for padding taps.
const SIDE: usize = 65;

/// Accumulates the grid from the luma blocks as the decoder produces them.
pub(super) struct GridSink {
    width: u32,
    height: u32,
    rows: AxisTaps,
    cols: AxisTaps,
    grid: Box<[f32; SIDE * SIDE]>,
}

impl GridSink {
    /// `None` for images too small for two taps per block (see
    /// [`AxisTaps::new`]).
    pub(super) fn new(width: u32, height: u32) -> Option<GridSink> {
        Some(GridSink {
            width,
            height,
            rows: AxisTaps::new(height as usize)?,
            cols: AxisTaps::new(width as usize)?,
            // The level shift: every pixel is 128 plus its AC/DC terms, and
            // each output's weights sum to 1.
            grid: Box::new([128.0; SIDE * SIDE]),
        })
    }

    pub(super) fn finish(self) -> LumaGrid {
        let mut grid = Box::new([0f32; 4096]);
        for (out, row) in grid.chunks_exact_mut(64).zip(self.grid.chunks_exact(SIDE)) {
            out.copy_from_slice(&row[..64]);
        }
        LumaGrid {
            width: self.width,
            height: self.height,
            grid,
        }
    }
}

impl BlockSink for GridSink {
    #[inline(always)]
    fn wants(&self, comp: usize) -> bool {
        comp == 0
    }

    #[inline(always)]
    fn block(&mut self, _comp: usize, bx: usize, by: usize, coefs: &Coefs) {
        // Blocks of the MCU padding past the image have no taps.
        let (Some(rows), Some(cols)) = (self.rows.per_block.get(by), self.cols.per_block.get(bx))
        else {
            return;
        };
        let f: [[f32; GRID_COEFS]; GRID_COEFS] =
            std::array::from_fn(|v| std::array::from_fn(|u| coefs[v * GRID_COEFS + u] as f32));
        for &(i, ay) in rows {
            let mut t = [0f32; GRID_COEFS];
            for (fv, av) in f.iter().zip(ay) {
                for (tu, fu) in t.iter_mut().zip(fv) {
                    *tu += av * fu;
                }
            }
            for &(j, ax) in cols {
                self.grid[i * SIDE + j] += t.iter().zip(&ax).map(|(a, b)| a * b).sum::<f32>();
            }
        }
    }
}
