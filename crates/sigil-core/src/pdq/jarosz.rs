//! The reference's two-pass Jarosz (tent) filter and 64x64 decimation,
//! scalar versions.
//!
//! The reference blurs the whole image (box along rows, box along columns,
//! twice) and then point-samples 64x64 values. Only the sampled outputs of
//! the last two passes are ever read, so the pipeline computes the running
//! sums exactly as the reference does (every add and subtract, in order) but
//! performs the division only where an output is sampled. Every value that
//! is computed is bit-identical to the reference's value at that position.

/// Box window length for one 1-D pass: `ceil(old / 128)`, as
/// `computeJaroszFilterWindowSize(old, 64)`.
#[inline]
pub fn window_size(old: usize) -> usize {
    old.div_ceil(2 * 64)
}

/// Source index of decimated output `i` (0..64) along an axis of length
/// `len`: `floor((i + 0.5) * len / 64)` in f64 ("target centres, not
/// corners").
#[inline]
pub fn decimation_index(i: usize, len: usize) -> usize {
    (((i as f64 + 0.5) * len as f64) / 64.0) as usize
}

/// The 64 decimation indices along an axis of length `len` (non-decreasing;
/// repeated when `len < 64`).
pub fn decimation_indices(len: usize) -> [usize; 64] {
    let mut idx = [0usize; 64];
    for (i, v) in idx.iter_mut().enumerate() {
        *v = decimation_index(i, len);
    }
    idx
}

/// Phase lengths of the reference's `box1DFloat` for a vector of length `n`
/// and window `window` (`1 <= window <= n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoxPhases {
    /// Samples accumulated before the first output (`half - 1`).
    pub p1: usize,
    /// Outputs with a growing window (`window - half + 1`).
    pub p2: usize,
    /// Outputs with the full window (`n - window`).
    pub p3: usize,
    /// Outputs with a shrinking window (`half - 1`).
    pub p4: usize,
}

impl BoxPhases {
    #[inline]
    pub fn new(n: usize, window: usize) -> Self {
        debug_assert!(window >= 1 && window <= n);
        let half = (window + 2) / 2;
        BoxPhases {
            p1: half - 1,
            p2: window - half + 1,
            p3: n - window,
            p4: half - 1,
        }
    }
}

/// Runs the reference running sum over `x` (length `n`) and calls
/// `emit(o, sum, count)` for every output position `o` in order; the caller
/// divides (`sum / count as f32`) where it needs the value.
#[inline(always)]
pub fn box_run(x: &[f32], window: usize, mut emit: impl FnMut(usize, f32, usize)) {
    let ph = BoxPhases::new(x.len(), window);
    let mut sum = 0.0f32;
    let mut count = 0usize;
    let (mut ri, mut li, mut o) = (0usize, 0usize, 0usize);
    for _ in 0..ph.p1 {
        sum += x[ri];
        ri += 1;
        count += 1;
    }
    for _ in 0..ph.p2 {
        sum += x[ri];
        ri += 1;
        count += 1;
        emit(o, sum, count);
        o += 1;
    }
    for _ in 0..ph.p3 {
        sum += x[ri];
        sum -= x[li];
        ri += 1;
        li += 1;
        emit(o, sum, count);
        o += 1;
    }
    for _ in 0..ph.p4 {
        sum -= x[li];
        li += 1;
        count -= 1;
        emit(o, sum, count);
        o += 1;
    }
}

/// Full 1-D box of one row: `out[o]` for every `o`.
pub fn box_row_full(x: &[f32], window: usize, out: &mut [f32]) {
    box_run(x, window, |o, sum, count| out[o] = sum / count as f32);
}

/// 1-D box of one row, evaluated only at the sorted positions `idx`
/// (duplicates allowed): `out[p] = box(x)[idx[p]]`.
pub fn box_row_sampled(x: &[f32], window: usize, idx: &[usize], out: &mut [f32]) {
    let mut p = 0;
    box_run(x, window, |o, sum, count| {
        while p < idx.len() && idx[p] == o {
            out[p] = sum / count as f32;
            p += 1;
        }
    });
}

/// Which output rows a vertical pass must produce.
#[derive(Clone, Copy)]
pub enum RowSel<'a> {
    /// Every row: `out` is `rows x cols`.
    All,
    /// Only the sorted rows listed: `out` is `idx.len() x cols`.
    Sampled(&'a [usize]),
}

/// Vertical box pass over a row-major `rows x cols` matrix, scalar.
///
/// Walks the rows once, keeping one running sum per column in `sums`: each
/// column sees exactly the reference's sequence of adds, subtracts and
/// divisions, while memory is read row by row.
pub fn box_cols_scalar(
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
    let row = |r: usize| &input[r * cols..r * cols + cols];
    let mut p = 0usize;
    let mut emit = |o: usize, sums: &[f32], count: usize, out: &mut [f32]| {
        let c = count as f32;
        match sel {
            RowSel::All => {
                for (d, s) in out[o * cols..o * cols + cols].iter_mut().zip(sums) {
                    *d = *s / c;
                }
            }
            RowSel::Sampled(idx) => {
                while p < idx.len() && idx[p] == o {
                    for (d, s) in out[p * cols..p * cols + cols].iter_mut().zip(sums) {
                        *d = *s / c;
                    }
                    p += 1;
                }
            }
        }
    };
    let (mut ri, mut li, mut o, mut count) = (0usize, 0usize, 0usize, 0usize);
    for _ in 0..ph.p1 {
        for (s, v) in sums.iter_mut().zip(row(ri)) {
            *s += *v;
        }
        ri += 1;
        count += 1;
    }
    for _ in 0..ph.p2 {
        for (s, v) in sums.iter_mut().zip(row(ri)) {
            *s += *v;
        }
        ri += 1;
        count += 1;
        emit(o, sums, count, out);
        o += 1;
    }
    for _ in 0..ph.p3 {
        for ((s, a), b) in sums.iter_mut().zip(row(ri)).zip(row(li)) {
            *s += *a;
            *s -= *b;
        }
        ri += 1;
        li += 1;
        emit(o, sums, count, out);
        o += 1;
    }
    for _ in 0..ph.p4 {
        for (s, b) in sums.iter_mut().zip(row(li)) {
            *s -= *b;
        }
        li += 1;
        count -= 1;
        emit(o, sums, count, out);
        o += 1;
    }
}

/// The reference's `box1DFloat` with a stride, written as literally as
/// possible. Used only as the oracle in tests of the faster passes.
pub fn box1d_reference(
    input: &[f32],
    output: &mut [f32],
    len: usize,
    stride: usize,
    window: usize,
) {
    let ph = BoxPhases::new(len, window);
    let (mut li, mut ri, mut oi) = (0usize, 0usize, 0usize);
    let mut sum = 0.0f32;
    let mut cur = 0i32;
    for _ in 0..ph.p1 {
        sum += input[ri];
        cur += 1;
        ri += stride;
    }
    for _ in 0..ph.p2 {
        sum += input[ri];
        cur += 1;
        output[oi] = sum / cur as f32;
        ri += stride;
        oi += stride;
    }
    for _ in 0..ph.p3 {
        sum += input[ri];
        sum -= input[li];
        output[oi] = sum / cur as f32;
        li += stride;
        ri += stride;
        oi += stride;
    }
    for _ in 0..ph.p4 {
        sum -= input[li];
        cur -= 1;
        output[oi] = sum / cur as f32;
        li += stride;
        oi += stride;
    }
}

/// The reference pipeline, literally: two passes of (rows, columns) over
/// full buffers, then decimation. Oracle for tests; `luma` is overwritten.
pub fn blur_decimate_reference(luma: &mut [f32], rows: usize, cols: usize) -> [f32; 4096] {
    let wr = window_size(cols);
    let wc = window_size(rows);
    let mut tmp = vec![0.0f32; rows * cols];
    for _ in 0..2 {
        for r in 0..rows {
            box1d_reference(&luma[r * cols..], &mut tmp[r * cols..], cols, 1, wr);
        }
        for c in 0..cols {
            box1d_reference(&tmp[c..], &mut luma[c..], rows, cols, wc);
        }
    }
    let mut out = [0.0f32; 4096];
    for i in 0..64 {
        let r = decimation_index(i, rows);
        for j in 0..64 {
            out[i * 64 + j] = luma[r * cols + decimation_index(j, cols)];
        }
    }
    out
}

/// One decimated output of the blur along an axis, written as weights on
/// the input samples: the output is `sum(weights[k] * x[first + k])`.
#[cfg(any(test, feature = "fast-jpeg"))]
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SampleTaps {
    /// Input index of `weights[0]`.
    pub first: usize,
    /// Non-negative, summing to 1.
    pub weights: Vec<f64>,
}

/// The reference's blur along one axis (two box passes of
/// [`window_size`]`(len)`, each output divided by the samples its window
/// covers at the edges) followed by decimation, as 64 [`SampleTaps`], one
/// per decimated output.
///
/// In exact arithmetic `taps[i]` applied to `x` is the reference's output
/// `i`; the reference's running f32 sums round differently, so this is for
/// approximations that never see the pixels (`sigil scan --fast` applies it
/// to JPEG DCT coefficients), never for the bit-exact path. `len >= 1`.
#[cfg(any(test, feature = "fast-jpeg"))]
pub(crate) fn sample_taps(len: usize) -> Vec<SampleTaps> {
    assert!(len >= 1, "sample_taps needs a non-empty axis");
    let window = window_size(len);
    let half = (window + 2) / 2;
    let (left, right) = (window - half, half - 1);
    // Inclusive input range averaged by box output `o`.
    let span = |o: usize| (o.saturating_sub(left), (o + right).min(len - 1));
    (0..64)
        .map(|i| {
            let (lo, hi) = span(decimation_index(i, len));
            let first = span(lo).0;
            let last = span(hi).1;
            let outer = (hi - lo + 1) as f64;
            // Each first-pass output in the window adds a constant over its
            // own span: accumulate as differences, then a prefix sum.
            let mut diff = vec![0.0f64; last - first + 2];
            for q in lo..=hi {
                let (a, b) = span(q);
                let w = 1.0 / (outer * (b - a + 1) as f64);
                diff[a - first] += w;
                diff[b + 1 - first] -= w;
            }
            let mut acc = 0.0;
            let weights = diff[..=last - first]
                .iter()
                .map(|d| {
                    acc += d;
                    acc
                })
                .collect();
            SampleTaps { first, weights }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The blur written as weights equals two box passes then decimation.
    #[test]
    fn sample_taps_equal_two_box_passes_then_decimation() {
        // xorshift64*, as the data of `tests/it/pdq_kernels.rs`.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut below = |n: u64| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        };
        for len in [1usize, 5, 63, 64, 65, 127, 128, 129, 500, 1000, 2592, 4032] {
            let x: Vec<f32> = (0..len).map(|_| below(256) as f32).collect();
            let w = window_size(len);
            let mut once = vec![0.0f32; len];
            let mut twice = vec![0.0f32; len];
            box_row_full(&x, w, &mut once);
            box_row_full(&once, w, &mut twice);
            let taps = sample_taps(len);
            assert_eq!(taps.len(), 64);
            for (i, t) in taps.iter().enumerate() {
                let sum: f64 = t.weights.iter().sum();
                assert!(
                    (sum - 1.0).abs() < 1e-9,
                    "len {len} output {i}: weights sum to {sum}"
                );
                assert!(t.weights.iter().all(|&v| v >= 0.0));
                let got: f64 = t
                    .weights
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| v * f64::from(x[t.first + k]))
                    .sum();
                let want = f64::from(twice[decimation_index(i, len)]);
                assert!(
                    (got - want).abs() < 1e-3,
                    "len {len} output {i}: taps give {got}, box passes {want}"
                );
            }
        }
    }
}
