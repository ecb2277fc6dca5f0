//! The counting-sort pass shared by the index builder's key sort and the
//! MIH table build.

/// Stable distribution of `src` into `dst` (same length) by `digit`, a
/// value below 256; returns the 256 bucket sizes. Elements with equal
/// digits keep their order, so passes can be chained least significant
/// digit first.
#[inline]
pub(crate) fn scatter_by_digit<T: Copy>(
    src: &[T],
    dst: &mut [T],
    digit: impl Fn(&T) -> usize,
) -> [usize; 256] {
    let mut counts = [0usize; 256];
    for e in src {
        counts[digit(e)] += 1;
    }
    let mut fill = [0usize; 256];
    let mut sum = 0;
    for (f, &c) in fill.iter_mut().zip(&counts) {
        *f = sum;
        sum += c;
    }
    for e in src {
        let d = digit(e);
        dst[fill[d]] = *e;
        fill[d] += 1;
    }
    counts
}
