//! Luma + blur + decimation to the 64x64 buffer, scalar (the SIMD versions
//! are in `kernels`, which dispatches between them).
//!
//! Data flow (`h x w` image, `wr = window(w)`, `wc = window(h)`):
//! * pass A: box along rows of the luma (full output, `h x w`);
//! * pass B: box along columns (full output, `h x w`);
//! * pass C: box along rows, evaluated only at the 64 sampled columns (`h x 64`);
//! * pass D: box along those 64 columns, only at the 64 sampled rows (64x64).
//!
//! This is the reference's `jaroszFilterFloat` + `decimateFloat` with the
//! divisions of outputs nobody samples left out; see `jarosz.rs`.

use super::jarosz::{self, RowSel};
use super::luma;

/// Pixels entering the pipeline.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    /// Interleaved RGB8, `3 * w * h` bytes.
    Rgb8(&'a [u8]),
    /// Greyscale, `w * h` bytes.
    Luma8(&'a [u8]),
    /// Float luma, `w * h` values (the reference core's input).
    F32(&'a [f32]),
}

/// Buffers reused across images so a hasher allocates only when an image is
/// larger than any before it.
#[derive(Default)]
pub struct Scratch {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub c: Vec<f32>,
    pub sums: Vec<f32>,
    pub strips: StripScratch,
    pub squash: Vec<u8>,
}

fn ensure(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// Column-interleaved strips used by SIMD horizontal passes.
#[derive(Default)]
pub struct StripScratch {
    pub input: Vec<f32>,
    pub output: Vec<f32>,
}

/// The scalar pipeline (also the fallback on every CPU).
pub fn blur_decimate_scalar(
    src: Source<'_>,
    w: usize,
    h: usize,
    s: &mut Scratch,
    out: &mut [f32; 4096],
) {
    let n = w * h;
    let (wr, wc) = (jarosz::window_size(w), jarosz::window_size(h));
    let ci = jarosz::decimation_indices(w);
    let ri = jarosz::decimation_indices(h);
    ensure(&mut s.x, n);
    ensure(&mut s.y, n);
    ensure(&mut s.c, h * 64);
    let Scratch { x, y, c, sums, .. } = s;
    let (x, y) = (&mut x[..n], &mut y[..n]);
    let c = &mut c[..h * 64];
    let luma: &[f32] = match src {
        Source::Rgb8(p) => {
            luma::luma_rgb8_scalar(p, x);
            x
        }
        Source::Luma8(p) => {
            luma::luma_grey8_scalar(p, x);
            x
        }
        Source::F32(f) => f,
    };
    // Pass A
    for (src_row, dst_row) in luma.chunks_exact(w).zip(y.chunks_exact_mut(w)) {
        jarosz::box_row_full(src_row, wr, dst_row);
    }
    // Pass B
    jarosz::box_cols_scalar(y, h, w, wc, RowSel::All, sums, x);
    // Pass C
    for (src_row, dst_row) in x.chunks_exact(w).zip(c.chunks_exact_mut(64)) {
        jarosz::box_row_sampled(src_row, wr, &ci, dst_row);
    }
    // Pass D
    jarosz::box_cols_scalar(c, h, 64, wc, RowSel::Sampled(&ri), sums, out);
}
