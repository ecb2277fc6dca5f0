//! The reference's image-domain quality metric on the 64x64 buffer.

/// `min(sum |(int)(((u - v) * 100) / 255)| / 90, 100)` over all vertical and
/// horizontal neighbour pairs, with the reference's f32 arithmetic and
/// truncation toward zero.
pub fn quality(a: &[f32; 4096]) -> u32 {
    let term = |u: f32, v: f32| -> i32 { (((u - v) * 100.0) / 255.0) as i32 };
    let mut sum: i32 = 0;
    for i in 0..63 {
        for j in 0..64 {
            sum += term(a[i * 64 + j], a[(i + 1) * 64 + j]).abs();
        }
    }
    for i in 0..64 {
        for j in 0..63 {
            sum += term(a[i * 64 + j], a[i * 64 + j + 1]).abs();
        }
    }
    (sum / 90).min(100) as u32
}
