//! AVX2 kernels (x86-64), a leaf of `kernels`: the same stages as the
//! scalar code in `pdq`. Every public function checks AVX2 itself
//! ([`CpuFeatures`]) before entering `#[target_feature]` code, so no safe
//! caller can run it on a CPU without AVX2; a hasher reaches it only
//! through a `Kernel::Avx2`/`Kernel::Avx512` it was allowed to choose.
//!
//! Layout tricks, none of which changes a single float operation:
//! * Horizontal box passes run on 16-row strips transposed into
//!   column-interleaved scratch (`strip[c * 16 + i]` = row `i`, column `c`),
//!   so the sequential running sum of 16 rows advances as two 8-lane vectors.
//! * Vertical passes walk rows once with a vector of running sums per 8
//!   columns (each column keeps its own add/subtract/divide sequence).
//! * The DCT vectorizes across output columns; every lane accumulates
//!   k = 0..63 in order with separate multiply and add (no FMA).

use std::arch::x86_64::*;

use crate::cpu::CpuFeatures;
use crate::pdq::jarosz::{self, BoxPhases, RowSel};
use crate::pdq::luma;
use crate::pdq::pipeline::{Scratch, Source, StripScratch};

/// Rows per horizontal strip (two 8-lane accumulators, to hide add latency).
const STRIP: usize = 16;

#[inline(always)]
fn load8(s: &[f32], i: usize) -> __m256 {
    let v: &[f32; 8] = s[i..i + 8].try_into().expect("8 floats");
    // SAFETY: `v` is 8 readable f32 (32 bytes); loadu has no alignment need.
    unsafe { _mm256_loadu_ps(v.as_ptr()) }
}

#[inline(always)]
fn store8(s: &mut [f32], i: usize, x: __m256) {
    let v: &mut [f32; 8] = (&mut s[i..i + 8]).try_into().expect("8 floats");
    // SAFETY: `v` is 8 writable f32; storeu has no alignment need.
    unsafe { _mm256_storeu_ps(v.as_mut_ptr(), x) }
}

/// In-register transpose of an 8x8 f32 block.
#[target_feature(enable = "avx2")]
#[inline]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// Luma of 8 RGB8 pixels starting at byte `off` (needs `off + 28 <= len`):
/// `(299 R + 587 G + 114 B) as f32 / 1000`, exact (see `pdq::luma`).
#[target_feature(enable = "avx2")]
#[inline]
fn luma8_rgb(rgb: &[u8], off: usize) -> __m256 {
    let lo: &[u8; 16] = rgb[off..off + 16].try_into().expect("16 bytes");
    let hi: &[u8; 16] = rgb[off + 12..off + 28].try_into().expect("16 bytes");
    // SAFETY: both are 16 readable bytes; loadu has no alignment need.
    let v = unsafe {
        _mm256_set_m128i(
            _mm_loadu_si128(hi.as_ptr().cast()),
            _mm_loadu_si128(lo.as_ptr().cast()),
        )
    };
    // Per 128-bit lane: 4 pixels at bytes 0..12. (R, G) as i16 pairs and
    // (B, 0) as i16 pairs, then multiply-add to i32.
    let rg_mask = _mm256_setr_epi8(
        0, -1, 1, -1, 3, -1, 4, -1, 6, -1, 7, -1, 9, -1, 10, -1, //
        0, -1, 1, -1, 3, -1, 4, -1, 6, -1, 7, -1, 9, -1, 10, -1,
    );
    let b_mask = _mm256_setr_epi8(
        2, -1, -1, -1, 5, -1, -1, -1, 8, -1, -1, -1, 11, -1, -1, -1, //
        2, -1, -1, -1, 5, -1, -1, -1, 8, -1, -1, -1, 11, -1, -1, -1,
    );
    let rg = _mm256_shuffle_epi8(v, rg_mask);
    let b = _mm256_shuffle_epi8(v, b_mask);
    let k = _mm256_add_epi32(
        _mm256_madd_epi16(rg, _mm256_set1_epi32((587 << 16) | 299)),
        _mm256_madd_epi16(b, _mm256_set1_epi32(114)),
    );
    _mm256_div_ps(_mm256_cvtepi32_ps(k), _mm256_set1_ps(1000.0))
}

/// Luma of 8 grey pixels at `off`.
#[target_feature(enable = "avx2")]
#[inline]
fn luma8_grey(g: &[u8], off: usize) -> __m256 {
    let b: &[u8; 8] = g[off..off + 8].try_into().expect("8 bytes");
    // SAFETY: 8 readable bytes; loadl_epi64 reads exactly 8.
    let v = unsafe { _mm_loadl_epi64(b.as_ptr().cast()) };
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v))
}

/// Luma of the 8 pixels starting at pixel index `i`.
#[target_feature(enable = "avx2")]
#[inline]
fn luma_row8(src: Source<'_>, i: usize) -> __m256 {
    match src {
        Source::F32(f) => load8(f, i),
        Source::Luma8(g) => luma8_grey(g, i),
        Source::Rgb8(p) => {
            if 3 * i + 28 <= p.len() {
                luma8_rgb(p, 3 * i)
            } else {
                let mut tmp = [0.0f32; 8];
                luma::luma_rgb8_scalar(&p[3 * i..3 * i + 24], &mut tmp);
                load8(&tmp, 0)
            }
        }
    }
}

/// Scalar luma of one pixel.
#[inline(always)]
fn luma_px(src: Source<'_>, i: usize) -> f32 {
    match src {
        Source::F32(f) => f[i],
        Source::Luma8(g) => f32::from(g[i]),
        Source::Rgb8(p) => luma::luma_exact(p[3 * i], p[3 * i + 1], p[3 * i + 2]),
    }
}

/// Luma of a whole image, row-major (the standalone kernel; the pipeline
/// fuses luma into its first pass instead).
#[target_feature(enable = "avx2")]
fn luma_rgb8_impl(rgb: &[u8], out: &mut [f32]) {
    let n = out.len().min(rgb.len() / 3);
    let mut i = 0;
    while i + 8 <= n && 3 * i + 28 <= rgb.len() {
        store8(out, i, luma8_rgb(rgb, 3 * i));
        i += 8;
    }
    luma::luma_rgb8_scalar(&rgb[3 * i..3 * n], &mut out[i..n]);
}

/// Transposes rows `r0..r0+16` of `src` (columns `0..w`, rows `stride`
/// pixels apart) into `strip` (`strip[c * 16 + i]`), computing luma on the
/// way.
#[target_feature(enable = "avx2")]
fn load_strip(src: Source<'_>, w: usize, stride: usize, r0: usize, strip: &mut [f32]) {
    let mut c = 0;
    while c + 8 <= w {
        for half in 0..2 {
            let base = r0 + half * 8;
            let mut rows = [_mm256_setzero_ps(); 8];
            for (i, row) in rows.iter_mut().enumerate() {
                *row = luma_row8(src, (base + i) * stride + c);
            }
            let cols = transpose8(rows);
            for (k, v) in cols.into_iter().enumerate() {
                store8(strip, (c + k) * STRIP + half * 8, v);
            }
        }
        c += 8;
    }
    for c in c..w {
        for i in 0..STRIP {
            strip[c * STRIP + i] = luma_px(src, (r0 + i) * stride + c);
        }
    }
}

/// Writes `strip` (`len` columns x 16 rows, column-interleaved) back as rows
/// `r0..r0+16` of the row-major `dst` with row length `w`.
#[target_feature(enable = "avx2")]
fn store_strip(strip: &[f32], len: usize, dst: &mut [f32], w: usize, r0: usize) {
    let mut c = 0;
    while c + 8 <= len {
        for half in 0..2 {
            let mut cols = [_mm256_setzero_ps(); 8];
            for (k, col) in cols.iter_mut().enumerate() {
                *col = load8(strip, (c + k) * STRIP + half * 8);
            }
            let rows = transpose8(cols);
            for (i, v) in rows.into_iter().enumerate() {
                store8(dst, (r0 + half * 8 + i) * w + c, v);
            }
        }
        c += 8;
    }
    for c in c..len {
        for i in 0..STRIP {
            dst[(r0 + i) * w + c] = strip[c * STRIP + i];
        }
    }
}

/// Horizontal running sums over a transposed strip of `n` columns; calls
/// `emit(o, lo, hi, count)` for every output column `o` with the sums of
/// rows 0..8 and 8..16 (the same add/subtract order as `box1DFloat`).
#[target_feature(enable = "avx2")]
#[inline]
fn strip_run(
    strip: &[f32],
    n: usize,
    window: usize,
    mut emit: impl FnMut(usize, __m256, __m256, usize),
) {
    let ph = BoxPhases::new(n, window);
    let mut lo = _mm256_setzero_ps();
    let mut hi = _mm256_setzero_ps();
    let (mut ri, mut li, mut o, mut count) = (0usize, 0usize, 0usize, 0usize);
    for _ in 0..ph.p1 {
        lo = _mm256_add_ps(lo, load8(strip, ri * STRIP));
        hi = _mm256_add_ps(hi, load8(strip, ri * STRIP + 8));
        ri += 1;
        count += 1;
    }
    for _ in 0..ph.p2 {
        lo = _mm256_add_ps(lo, load8(strip, ri * STRIP));
        hi = _mm256_add_ps(hi, load8(strip, ri * STRIP + 8));
        ri += 1;
        count += 1;
        emit(o, lo, hi, count);
        o += 1;
    }
    for _ in 0..ph.p3 {
        lo = _mm256_add_ps(lo, load8(strip, ri * STRIP));
        hi = _mm256_add_ps(hi, load8(strip, ri * STRIP + 8));
        lo = _mm256_sub_ps(lo, load8(strip, li * STRIP));
        hi = _mm256_sub_ps(hi, load8(strip, li * STRIP + 8));
        ri += 1;
        li += 1;
        emit(o, lo, hi, count);
        o += 1;
    }
    for _ in 0..ph.p4 {
        lo = _mm256_sub_ps(lo, load8(strip, li * STRIP));
        hi = _mm256_sub_ps(hi, load8(strip, li * STRIP + 8));
        li += 1;
        count -= 1;
        emit(o, lo, hi, count);
        o += 1;
    }
}

/// Pass A: luma + full box along rows, `src` (h x w) into `dst` (h x w).
#[target_feature(enable = "avx2")]
fn box_rows_full_impl(
    src: Source<'_>,
    w: usize,
    h: usize,
    window: usize,
    strips: &mut StripScratch,
    dst: &mut [f32],
) {
    let StripScratch {
        input: s_in,
        output: s_out,
    } = strips;
    ensure(s_in, w * STRIP);
    ensure(s_out, w * STRIP);
    let mut r0 = 0;
    while r0 + STRIP <= h {
        load_strip(src, w, w, r0, s_in);
        let so = &mut s_out[..];
        strip_run(s_in, w, window, |o, lo, hi, count| {
            let c = _mm256_set1_ps(count as f32);
            store8(so, o * STRIP, _mm256_div_ps(lo, c));
            store8(so, o * STRIP + 8, _mm256_div_ps(hi, c));
        });
        store_strip(s_out, w, dst, w, r0);
        r0 += STRIP;
    }
    let mut row = vec![0.0f32; if r0 < h { w } else { 0 }];
    for r in r0..h {
        for (c, v) in row.iter_mut().enumerate() {
            *v = luma_px(src, r * w + c);
        }
        jarosz::box_row_full(&row, window, &mut dst[r * w..(r + 1) * w]);
    }
}

/// Pass C: box along rows of `x` (h x w) evaluated at the 64 sampled
/// columns `idx`, into `dst` (h x 64).
#[target_feature(enable = "avx2")]
fn box_rows_sampled_impl(
    x: &[f32],
    w: usize,
    h: usize,
    window: usize,
    idx: &[usize; 64],
    strips: &mut StripScratch,
    dst: &mut [f32],
) {
    let StripScratch {
        input: s_in,
        output: s_out,
    } = strips;
    ensure(s_in, w * STRIP);
    ensure(s_out, 64 * STRIP);
    let mut r0 = 0;
    while r0 + STRIP <= h {
        load_strip(Source::F32(x), w, w, r0, s_in);
        let so = &mut s_out[..];
        let mut p = 0;
        strip_run(s_in, w, window, |o, lo, hi, count| {
            if p < 64 && idx[p] == o {
                let c = _mm256_set1_ps(count as f32);
                let (a, b) = (_mm256_div_ps(lo, c), _mm256_div_ps(hi, c));
                while p < 64 && idx[p] == o {
                    store8(so, p * STRIP, a);
                    store8(so, p * STRIP + 8, b);
                    p += 1;
                }
            }
        });
        store_strip(s_out, 64, dst, 64, r0);
        r0 += STRIP;
    }
    for r in r0..h {
        jarosz::box_row_sampled(
            &x[r * w..(r + 1) * w],
            window,
            idx,
            &mut dst[r * 64..(r + 1) * 64],
        );
    }
}

fn ensure(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// Vertical box pass (passes B and D): row-major `rows x cols`, one running
/// sum per column kept in `sums`, 8 columns per vector.
#[target_feature(enable = "avx2")]
fn box_cols_impl(
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
    let vec_cols = cols / 8 * 8;
    let add_row = |sums: &mut [f32], r: usize| {
        let row = &input[r * cols..(r + 1) * cols];
        let mut c = 0;
        while c < vec_cols {
            store8(sums, c, _mm256_add_ps(load8(sums, c), load8(row, c)));
            c += 8;
        }
        for c in vec_cols..cols {
            sums[c] += row[c];
        }
    };
    let sub_row = |sums: &mut [f32], r: usize| {
        let row = &input[r * cols..(r + 1) * cols];
        let mut c = 0;
        while c < vec_cols {
            store8(sums, c, _mm256_sub_ps(load8(sums, c), load8(row, c)));
            c += 8;
        }
        for c in vec_cols..cols {
            sums[c] -= row[c];
        }
    };
    let add_sub_row = |sums: &mut [f32], ra: usize, rs: usize| {
        let a = &input[ra * cols..(ra + 1) * cols];
        let b = &input[rs * cols..(rs + 1) * cols];
        let mut c = 0;
        while c < vec_cols {
            let s = _mm256_add_ps(load8(sums, c), load8(a, c));
            store8(sums, c, _mm256_sub_ps(s, load8(b, c)));
            c += 8;
        }
        for c in vec_cols..cols {
            sums[c] += a[c];
            sums[c] -= b[c];
        }
    };
    let write = |sums: &[f32], out: &mut [f32], orow: usize, count: usize| {
        let d = _mm256_set1_ps(count as f32);
        let dst = &mut out[orow * cols..(orow + 1) * cols];
        let mut c = 0;
        while c < vec_cols {
            store8(dst, c, _mm256_div_ps(load8(sums, c), d));
            c += 8;
        }
        let cf = count as f32;
        for c in vec_cols..cols {
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
        add_row(sums, ri);
        ri += 1;
        count += 1;
    }
    for _ in 0..ph.p2 {
        add_row(sums, ri);
        ri += 1;
        count += 1;
        emit(sums, out, o, count);
        o += 1;
    }
    for _ in 0..ph.p3 {
        add_sub_row(sums, ri, li);
        ri += 1;
        li += 1;
        emit(sums, out, o, count);
        o += 1;
    }
    for _ in 0..ph.p4 {
        sub_row(sums, li);
        li += 1;
        count -= 1;
        emit(sums, out, o, count);
        o += 1;
    }
}

/// `sums += row` (8 columns per vector, scalar tail).
#[target_feature(enable = "avx2")]
#[inline]
fn sums_add(sums: &mut [f32], row: &[f32]) {
    let n = sums.len();
    let vn = n / 8 * 8;
    let mut c = 0;
    while c < vn {
        store8(sums, c, _mm256_add_ps(load8(sums, c), load8(row, c)));
        c += 8;
    }
    for c in vn..n {
        sums[c] += row[c];
    }
}

/// `sums -= row`.
#[target_feature(enable = "avx2")]
#[inline]
fn sums_sub(sums: &mut [f32], row: &[f32]) {
    let n = sums.len();
    let vn = n / 8 * 8;
    let mut c = 0;
    while c < vn {
        store8(sums, c, _mm256_sub_ps(load8(sums, c), load8(row, c)));
        c += 8;
    }
    for c in vn..n {
        sums[c] -= row[c];
    }
}

/// `sums += a; sums -= b` (in that order, per column).
#[target_feature(enable = "avx2")]
#[inline]
fn sums_add_sub(sums: &mut [f32], a: &[f32], b: &[f32]) {
    let n = sums.len();
    let vn = n / 8 * 8;
    let mut c = 0;
    while c < vn {
        let t = _mm256_add_ps(load8(sums, c), load8(a, c));
        store8(sums, c, _mm256_sub_ps(t, load8(b, c)));
        c += 8;
    }
    for c in vn..n {
        sums[c] += a[c];
        sums[c] -= b[c];
    }
}

/// `dst = sums / count`.
#[target_feature(enable = "avx2")]
#[inline]
fn sums_div(sums: &[f32], count: usize, dst: &mut [f32]) {
    let n = sums.len();
    let vn = n / 8 * 8;
    let cf = count as f32;
    let d = _mm256_set1_ps(cf);
    let mut c = 0;
    while c < vn {
        store8(dst, c, _mm256_div_ps(load8(sums, c), d));
        c += 8;
    }
    for c in vn..n {
        dst[c] = sums[c] / cf;
    }
}

/// The whole blur + decimation on AVX2, streamed through small ring buffers.
///
/// Same four passes as the scalar pipeline, but pass A produces 16-row
/// strips into a ring of `cap >= wc + 16` rows, pass B consumes them as soon
/// as the rows it adds exist and emits its rows into a 16-row ring, and each
/// complete 16-row group immediately goes through pass C. Only the `h x 64`
/// pass C output is image-sized, so the working set stays in cache (and a
/// 12 MP image needs about 1 MB of scratch instead of 100 MB). Every value
/// still sees the reference's operation sequence.
#[target_feature(enable = "avx2")]
fn blur_decimate_impl(src: Source<'_>, w: usize, h: usize, s: &mut Scratch, out: &mut [f32; 4096]) {
    let (wr, wc) = (jarosz::window_size(w), jarosz::window_size(h));
    let ci = jarosz::decimation_indices(w);
    let ri = jarosz::decimation_indices(h);
    let cap = (wc + STRIP).div_ceil(STRIP) * STRIP;
    // Ring rows are padded so that consecutive rows start one cache line
    // apart modulo 4 KiB: with a power-of-two row length the 16 rows a strip
    // touches would all fall into the same L1 set.
    let stride = w.next_multiple_of(16) + 16;
    ensure(&mut s.x, cap * stride);
    ensure(&mut s.y, STRIP * stride);
    ensure(&mut s.c, h * 64);
    let Scratch {
        x,
        y,
        c,
        sums,
        strips,
        ..
    } = s;
    let a_ring = &mut x[..cap * stride];
    let b_ring = &mut y[..STRIP * stride];
    let c = &mut c[..h * 64];
    sums.clear();
    sums.resize(w, 0.0);
    let mut row_buf = Vec::new();

    let ph = BoxPhases::new(h, wc);
    let (e1, e2, e3, total) = (
        ph.p1,
        ph.p1 + ph.p2,
        ph.p1 + ph.p2 + ph.p3,
        ph.p1 + ph.p2 + ph.p3 + ph.p4,
    );
    let (mut step, mut bri, mut bli, mut bo, mut count) = (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut avail = 0usize;
    let a_slot = |r: usize| (r % cap) * stride;
    while step < total {
        // Produce the next rows of pass A (a 16-row strip, or the scalar tail).
        if avail < h {
            if avail + STRIP <= h {
                let r0 = avail;
                {
                    let StripScratch {
                        input: s_in,
                        output: s_out,
                    } = &mut *strips;
                    ensure(s_in, w * STRIP);
                    ensure(s_out, w * STRIP);
                    load_strip(src, w, w, r0, s_in);
                    let so = &mut s_out[..];
                    strip_run(s_in, w, wr, |o, lo, hi, count| {
                        let d = _mm256_set1_ps(count as f32);
                        store8(so, o * STRIP, _mm256_div_ps(lo, d));
                        store8(so, o * STRIP + 8, _mm256_div_ps(hi, d));
                    });
                    store_strip(s_out, w, a_ring, stride, r0 % cap);
                }
                avail += STRIP;
            } else {
                row_buf.resize(w, 0.0);
                for r in avail..h {
                    for (cc, v) in row_buf.iter_mut().enumerate() {
                        *v = luma_px(src, r * w + cc);
                    }
                    let at = a_slot(r);
                    jarosz::box_row_full(&row_buf, wr, &mut a_ring[at..at + w]);
                }
                avail = h;
            }
        }
        // Advance pass B as far as the available rows allow.
        while step < total {
            let emit = if step < e1 {
                if bri >= avail {
                    break;
                }
                sums_add(sums, &a_ring[a_slot(bri)..a_slot(bri) + w]);
                bri += 1;
                count += 1;
                false
            } else if step < e2 {
                if bri >= avail {
                    break;
                }
                sums_add(sums, &a_ring[a_slot(bri)..a_slot(bri) + w]);
                bri += 1;
                count += 1;
                true
            } else if step < e3 {
                if bri >= avail {
                    break;
                }
                let (sa, sb) = (a_slot(bri), a_slot(bli));
                sums_add_sub(sums, &a_ring[sa..sa + w], &a_ring[sb..sb + w]);
                bri += 1;
                bli += 1;
                true
            } else {
                sums_sub(sums, &a_ring[a_slot(bli)..a_slot(bli) + w]);
                bli += 1;
                count -= 1;
                true
            };
            step += 1;
            if emit {
                let slot = bo % STRIP;
                sums_div(sums, count, &mut b_ring[slot * stride..slot * stride + w]);
                if slot == STRIP - 1 {
                    // A full 16-row group of pass B: pass C on it.
                    let r0 = bo + 1 - STRIP;
                    let StripScratch {
                        input: s_in,
                        output: s_out,
                    } = &mut *strips;
                    ensure(s_in, w * STRIP);
                    ensure(s_out, 64 * STRIP);
                    load_strip(Source::F32(b_ring), w, stride, 0, s_in);
                    let so = &mut s_out[..];
                    let mut p = 0;
                    strip_run(s_in, w, wr, |o, lo, hi, count| {
                        if p < 64 && ci[p] == o {
                            let d = _mm256_set1_ps(count as f32);
                            let (va, vb) = (_mm256_div_ps(lo, d), _mm256_div_ps(hi, d));
                            while p < 64 && ci[p] == o {
                                store8(so, p * STRIP, va);
                                store8(so, p * STRIP + 8, vb);
                                p += 1;
                            }
                        }
                    });
                    store_strip(s_out, 64, c, 64, r0);
                }
                bo += 1;
            }
        }
    }
    // Rows of pass B after the last full group: pass C in scalar.
    for r in h / STRIP * STRIP..h {
        let slot = r % STRIP;
        jarosz::box_row_sampled(
            &b_ring[slot * stride..slot * stride + w],
            wr,
            &ci,
            &mut c[r * 64..(r + 1) * 64],
        );
    }
    box_cols_impl(c, h, 64, wc, RowSel::Sampled(&ri), sums, out);
}

/// `B = (D A) Dᵀ` on AVX2: lanes are output columns, each lane sums
/// k = 0..63 in order with a separate multiply and add.
#[target_feature(enable = "avx2")]
fn dct_impl(d: &[f32; 1024], dt: &[f32; 1024], a: &[f32; 4096], out: &mut [f32; 256]) {
    let mut t = [0.0f32; 1024];
    for i in 0..16 {
        let mut acc = [_mm256_setzero_ps(); 8];
        for k in 0..64 {
            let dk = _mm256_set1_ps(d[i * 64 + k]);
            for (jb, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_add_ps(*acc, _mm256_mul_ps(dk, load8(a, k * 64 + jb * 8)));
            }
        }
        for (jb, acc) in acc.iter().enumerate() {
            store8(&mut t, i * 64 + jb * 8, *acc);
        }
    }
    for i in (0..16).step_by(4) {
        let mut acc = [_mm256_setzero_ps(); 8];
        for k in 0..64 {
            let d0 = load8(dt, k * 16);
            let d1 = load8(dt, k * 16 + 8);
            for r in 0..4 {
                let tk = _mm256_set1_ps(t[(i + r) * 64 + k]);
                acc[2 * r] = _mm256_add_ps(acc[2 * r], _mm256_mul_ps(tk, d0));
                acc[2 * r + 1] = _mm256_add_ps(acc[2 * r + 1], _mm256_mul_ps(tk, d1));
            }
        }
        for r in 0..4 {
            store8(out, (i + r) * 16, acc[2 * r]);
            store8(out, (i + r) * 16 + 8, acc[2 * r + 1]);
        }
    }
}

// Safe entry points. Each asserts AVX2 (cached atomic loads, negligible
// next to the work) so no caller can reach AVX2 code on a CPU without it.

fn assert_avx2() {
    assert!(
        CpuFeatures::detect().has_avx2(),
        "AVX2 kernel called on a CPU without AVX2"
    );
}

/// Row-major luma of interleaved RGB8 (`out.len()` pixels).
pub fn luma_rgb8(rgb: &[u8], out: &mut [f32]) {
    assert_avx2();
    // SAFETY: AVX2 support was just checked.
    unsafe { luma_rgb8_impl(rgb, out) }
}

/// Pass A: luma of `src` + full box along rows into `dst` (h x w).
pub fn box_rows_full(
    src: Source<'_>,
    w: usize,
    h: usize,
    window: usize,
    strips: &mut StripScratch,
    dst: &mut [f32],
) {
    assert_avx2();
    // SAFETY: AVX2 support was just checked.
    unsafe { box_rows_full_impl(src, w, h, window, strips, dst) }
}

/// Pass C: box along rows of `x` (h x w) at the sampled columns `idx`,
/// into `dst` (h x 64).
pub fn box_rows_sampled(
    x: &[f32],
    w: usize,
    h: usize,
    window: usize,
    idx: &[usize; 64],
    strips: &mut StripScratch,
    dst: &mut [f32],
) {
    assert_avx2();
    // SAFETY: AVX2 support was just checked.
    unsafe { box_rows_sampled_impl(x, w, h, window, idx, strips, dst) }
}

/// Vertical box pass (passes B and D), same contract as
/// `jarosz::box_cols_scalar`.
pub fn box_cols(
    input: &[f32],
    rows: usize,
    cols: usize,
    window: usize,
    sel: RowSel<'_>,
    sums: &mut Vec<f32>,
    out: &mut [f32],
) {
    assert_avx2();
    // SAFETY: AVX2 support was just checked.
    unsafe { box_cols_impl(input, rows, cols, window, sel, sums, out) }
}

/// The whole blur + decimation.
pub fn blur_decimate(src: Source<'_>, w: usize, h: usize, s: &mut Scratch, out: &mut [f32; 4096]) {
    assert_avx2();
    // SAFETY: AVX2 support was just checked.
    unsafe { blur_decimate_impl(src, w, h, s, out) }
}

/// The 16x16 DCT (`d` row-major 16x64, `dt` its transpose).
pub fn dct(d: &[f32; 1024], dt: &[f32; 1024], a: &[f32; 4096], out: &mut [f32; 256]) {
    assert_avx2();
    // SAFETY: AVX2 support was just checked.
    unsafe { dct_impl(d, dt, a, out) }
}
