//! AArch64 NEON kernels, a leaf of `kernels`. NEON is part of the AArch64
//! baseline, so these are ordinary functions. Kept deliberately simple (this
//! path cannot be run on the x86 development machines;
//! `tests/it/pdq_kernels.rs` checks it against scalar wherever it does run):
//! the vertical box passes and the DCT are vectorized; the horizontal passes
//! use the scalar code.

use std::arch::aarch64::*;

use crate::pdq::jarosz::{self, BoxPhases, RowSel};
use crate::pdq::luma;
use crate::pdq::pipeline::{Scratch, Source};

#[inline(always)]
fn load4(s: &[f32], i: usize) -> float32x4_t {
    let v: &[f32; 4] = s[i..i + 4].try_into().expect("4 floats");
    // SAFETY: `v` is 4 readable f32.
    unsafe { vld1q_f32(v.as_ptr()) }
}

#[inline(always)]
fn store4(s: &mut [f32], i: usize, x: float32x4_t) {
    let v: &mut [f32; 4] = (&mut s[i..i + 4]).try_into().expect("4 floats");
    // SAFETY: `v` is 4 writable f32.
    unsafe { vst1q_f32(v.as_mut_ptr(), x) }
}

fn ensure(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// Vertical box pass (same contract as `jarosz::box_cols_scalar`), four
/// columns per vector.
pub fn box_cols(
    input: &[f32],
    rows: usize,
    cols: usize,
    window: usize,
    sel: RowSel<'_>,
    sums: &mut Vec<f32>,
    out: &mut [f32],
) {
    let ph = BoxPhases::new(rows, window);
    sums.clear();
    sums.resize(cols, 0.0);
    let vc = cols / 4 * 4;
    // op: 0 = add row a, 1 = subtract row b, 2 = add a then subtract b.
    let step = |sums: &mut [f32], op: u8, a: usize, b: usize| {
        let ra = &input[a * cols..(a + 1) * cols];
        let rb = &input[b * cols..(b + 1) * cols];
        let mut c = 0;
        while c < vc {
            // SAFETY: plain lane-wise float arithmetic on values loaded above.
            let s = unsafe {
                match op {
                    0 => vaddq_f32(load4(sums, c), load4(ra, c)),
                    1 => vsubq_f32(load4(sums, c), load4(rb, c)),
                    _ => vsubq_f32(vaddq_f32(load4(sums, c), load4(ra, c)), load4(rb, c)),
                }
            };
            store4(sums, c, s);
            c += 4;
        }
        for c in vc..cols {
            match op {
                0 => sums[c] += ra[c],
                1 => sums[c] -= rb[c],
                _ => {
                    sums[c] += ra[c];
                    sums[c] -= rb[c];
                }
            }
        }
    };
    let write = |sums: &[f32], out: &mut [f32], orow: usize, count: usize| {
        let cf = count as f32;
        let dst = &mut out[orow * cols..(orow + 1) * cols];
        let mut c = 0;
        while c < vc {
            // SAFETY: lane-wise division of loaded values.
            let q = unsafe { vdivq_f32(load4(sums, c), vdupq_n_f32(cf)) };
            store4(dst, c, q);
            c += 4;
        }
        for c in vc..cols {
            dst[c] = sums[c] / cf;
        }
    };
    let mut p = 0usize;
    let mut emit = |sums: &[f32], out: &mut [f32], o: usize, count: usize| match sel {
        RowSel::All => write(sums, out, o, count),
        RowSel::Sampled(idx) => {
            while p < idx.len() && idx[p] == o {
                write(sums, out, p, count);
                p += 1;
            }
        }
    };
    let (mut ri, mut li, mut o, mut count) = (0usize, 0usize, 0usize, 0usize);
    for _ in 0..ph.p1 {
        step(sums, 0, ri, ri);
        ri += 1;
        count += 1;
    }
    for _ in 0..ph.p2 {
        step(sums, 0, ri, ri);
        ri += 1;
        count += 1;
        emit(sums, out, o, count);
        o += 1;
    }
    for _ in 0..ph.p3 {
        step(sums, 2, ri, li);
        ri += 1;
        li += 1;
        emit(sums, out, o, count);
        o += 1;
    }
    for _ in 0..ph.p4 {
        step(sums, 1, li, li);
        li += 1;
        count -= 1;
        emit(sums, out, o, count);
        o += 1;
    }
}

/// Blur + decimation: scalar horizontal passes, NEON vertical passes.
pub fn blur_decimate(src: Source<'_>, w: usize, h: usize, s: &mut Scratch, out: &mut [f32; 4096]) {
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
    let lum: &[f32] = match src {
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
    for (sr, dr) in lum.chunks_exact(w).zip(y.chunks_exact_mut(w)) {
        jarosz::box_row_full(sr, wr, dr);
    }
    box_cols(y, h, w, wc, RowSel::All, sums, x);
    for (sr, dr) in x.chunks_exact(w).zip(c.chunks_exact_mut(64)) {
        jarosz::box_row_sampled(sr, wr, &ci, dr);
    }
    box_cols(c, h, 64, wc, RowSel::Sampled(&ri), sums, out);
}

/// DCT with lanes across output columns, k in order, separate mul and add.
pub fn dct(d: &[f32; 1024], dt: &[f32; 1024], a: &[f32; 4096], out: &mut [f32; 256]) {
    let mut t = [0.0f32; 1024];
    for i in 0..16 {
        for jb in (0..64).step_by(4) {
            // SAFETY: lane-wise float arithmetic on loaded values.
            let acc = unsafe {
                let mut acc = vdupq_n_f32(0.0);
                for k in 0..64 {
                    acc = vaddq_f32(
                        acc,
                        vmulq_f32(vdupq_n_f32(d[i * 64 + k]), load4(a, k * 64 + jb)),
                    );
                }
                acc
            };
            store4(&mut t, i * 64 + jb, acc);
        }
    }
    for i in 0..16 {
        for jb in (0..16).step_by(4) {
            // SAFETY: lane-wise float arithmetic on loaded values.
            let acc = unsafe {
                let mut acc = vdupq_n_f32(0.0);
                for k in 0..64 {
                    acc = vaddq_f32(
                        acc,
                        vmulq_f32(vdupq_n_f32(t[i * 64 + k]), load4(dt, k * 16 + jb)),
                    );
                }
                acc
            };
            store4(out, i * 16 + jb, acc);
        }
    }
}
