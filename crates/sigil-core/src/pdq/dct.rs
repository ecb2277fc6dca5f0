//! The reference's 64x64 -> 16x16 DCT (`dct64To16`), scalar.

/// The 16x64 DCT matrix, row `i` = frequency `i + 1`:
/// `D[i][j] = (f32)((f32)sqrt(2/64) as f64 * cos((pi/2/64) * (i+1) * (2j+1)))`.
#[derive(Clone)]
pub struct DctMatrix {
    /// Row-major 16x64.
    pub d: [f32; 16 * 64],
    /// Transposed, row-major 64x16 (`dt[k][j] = d[j][k]`), for kernels that
    /// vectorize across output columns of the second product.
    pub dt: [f32; 64 * 16],
}

impl DctMatrix {
    pub fn new() -> Self {
        let scale = (2.0f64 / 64.0).sqrt() as f32;
        let mut d = [0.0f32; 16 * 64];
        let mut dt = [0.0f32; 64 * 16];
        for i in 0..16 {
            for j in 0..64 {
                let angle =
                    (std::f64::consts::PI / 2.0 / 64.0) * (i + 1) as f64 * (2 * j + 1) as f64;
                let v = (f64::from(scale) * angle.cos()) as f32;
                d[i * 64 + j] = v;
                dt[j * 16 + i] = v;
            }
        }
        DctMatrix { d, dt }
    }
}

impl Default for DctMatrix {
    fn default() -> Self {
        Self::new()
    }
}

/// `B = (D A) Dᵀ`, each dot product a sequential f32 sum over k = 0..63 with
/// separate multiply and add (no fused multiply-add), as the reference.
pub fn dct_scalar(m: &DctMatrix, a: &[f32; 4096], out: &mut [f32; 256]) {
    let mut t = [0.0f32; 16 * 64];
    for i in 0..16 {
        for j in 0..64 {
            let mut s = 0.0f32;
            for k in 0..64 {
                s += m.d[i * 64 + k] * a[k * 64 + j];
            }
            t[i * 64 + j] = s;
        }
    }
    for i in 0..16 {
        for j in 0..16 {
            let mut s = 0.0f32;
            for k in 0..64 {
                s += t[i * 64 + k] * m.d[j * 64 + k];
            }
            out[i * 16 + j] = s;
        }
    }
}
