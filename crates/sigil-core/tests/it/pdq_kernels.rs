//! Every SIMD kernel is bit-identical to the scalar code (and the scalar
//! passes to a literal port of the reference's `box1DFloat`), on random
//! images of many sizes including odd ones and ones smaller than a vector.
//! Also: a grid hashes as the image it was decimated from. (The blur written
//! as weights, `jarosz::sample_taps`, is tested in `jarosz.rs`.)

use sigil_core::pdq::jarosz;
use sigil_core::pdq::kernels;
use sigil_core::pdq::pipeline::{self, Scratch, Source};
use sigil_core::pdq::{Kernel, PdqHasher, Profile};
use sigil_core::PdqHash;

/// xorshift64*: deterministic test data without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Smooth-ish image content (noise on a gradient), like real photos,
    /// so hashes are not all degenerate.
    fn image(&mut self, w: usize, h: usize, channels: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(w * h * channels);
        for r in 0..h {
            for c in 0..w {
                for ch in 0..channels {
                    let base = (r * 255 / h.max(1) + c * 97 / w.max(1) + ch * 40) % 256;
                    let noise = self.below(31) as i32 - 15;
                    v.push((base as i32 + noise).clamp(0, 255) as u8);
                }
            }
        }
        v
    }
}

fn simd_kernels() -> Vec<Kernel> {
    Kernel::available()
        .into_iter()
        .filter(|k| *k != Kernel::Scalar)
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Sizes: tiny, odd, below and around vector and strip widths, and a few
/// larger ones.
fn sizes(rng: &mut Rng) -> Vec<(usize, usize)> {
    let mut s = vec![
        (5, 5),
        (7, 5),
        (8, 8),
        (9, 17),
        (15, 16),
        (16, 15),
        (17, 33),
        (31, 64),
        (64, 64),
        (65, 63),
        (127, 129),
        (200, 3),
        (1, 300),
        (300, 17),
    ];
    for _ in 0..12 {
        s.push((1 + rng.below(400), 1 + rng.below(300)));
    }
    s
}

#[test]
fn scalar_passes_match_literal_reference_box1d() {
    let mut rng = Rng(0x5eed_0001);
    for _ in 0..60 {
        let n = 1 + rng.below(700);
        let window = 1 + rng.below(n.min(40));
        let x: Vec<f32> = (0..n).map(|_| rng.below(256_000) as f32 / 1000.0).collect();
        let mut want = vec![0.0f32; n];
        jarosz::box1d_reference(&x, &mut want, n, 1, window);
        let mut got = vec![0.0f32; n];
        jarosz::box_row_full(&x, window, &mut got);
        assert_eq!(bits(&got), bits(&want), "n={n} window={window}");
        let idx = jarosz::decimation_indices(n);
        let mut sampled = [0.0f32; 64];
        jarosz::box_row_sampled(&x, window, &idx, &mut sampled);
        let want_s: Vec<f32> = idx.iter().map(|&i| want[i]).collect();
        assert_eq!(
            bits(&sampled),
            bits(&want_s),
            "sampled n={n} window={window}"
        );
    }
}

#[test]
fn scalar_pipeline_matches_literal_reference_pipeline() {
    let mut rng = Rng(0x5eed_0002);
    for (w, h) in sizes(&mut rng) {
        if w < 5 || h < 5 {
            continue;
        }
        let luma: Vec<f32> = rng.image(w, h, 1).iter().map(|v| f32::from(*v)).collect();
        let mut reference = luma.clone();
        let want = jarosz::blur_decimate_reference(&mut reference, h, w);
        let mut got = [0.0f32; 4096];
        pipeline::blur_decimate_scalar(Source::F32(&luma), w, h, &mut Scratch::default(), &mut got);
        assert_eq!(bits(&got), bits(&want), "{w}x{h}");
    }
}

#[test]
fn every_kernel_pipeline_is_bit_identical_to_scalar() {
    let mut rng = Rng(0x5eed_0003);
    let kernels = simd_kernels();
    for (w, h) in sizes(&mut rng) {
        if w < 5 || h < 5 {
            continue;
        }
        let rgb = rng.image(w, h, 3);
        let grey = rng.image(w, h, 1);
        let f: Vec<f32> = (0..w * h)
            .map(|_| rng.below(255_000) as f32 / 1000.0)
            .collect();
        for src in [Source::Rgb8(&rgb), Source::Luma8(&grey), Source::F32(&f)] {
            let mut want = [0.0f32; 4096];
            pipeline::blur_decimate_scalar(src, w, h, &mut Scratch::default(), &mut want);
            for &k in &kernels {
                let mut got = [0.0f32; 4096];
                // A reused scratch (larger from earlier images) must not matter.
                let mut scratch = Scratch::default();
                kernels::blur_decimate(k, src, w, h, &mut scratch, &mut got);
                kernels::blur_decimate(k, src, w, h, &mut scratch, &mut got);
                assert_eq!(bits(&got), bits(&want), "{k} {w}x{h}");
            }
        }
    }
}

/// Images where running sums cancel to tiny residues or exactly zero: black
/// with sparse dim and bright dots, hard-edged blocks, 1-level steps (the
/// random images above never cancel). Larger sides give windows of 5-24
/// with long full-window phases.
#[test]
fn every_kernel_is_bit_identical_on_flat_and_sparse_images() {
    let mut rng = Rng(0x5eed_0007);
    let kernels = simd_kernels();
    for (w, h) in [(640, 480), (1031, 777), (3000, 613), (97, 2999)] {
        let mut sparse = vec![0u8; w * h * 3];
        for _ in 0..w * h / 50 {
            let i = rng.below(sparse.len());
            sparse[i] = [1, 2, 255][rng.below(3)];
        }
        let mut blocks = vec![0u8; w * h * 3];
        for (i, px) in blocks.chunks_exact_mut(3).enumerate() {
            let (r, c) = (i / w, i % w);
            let v = if (r / 37 + c / 53) % 2 == 0 { 255 } else { 0 };
            px.copy_from_slice(&[v, v / 3, 1 + c as u8 % 2]);
        }
        let steps: Vec<u8> = (0..w * h).map(|i| ((i % w) * 3 / w) as u8).collect();
        for src in [
            Source::Rgb8(&sparse),
            Source::Rgb8(&blocks),
            Source::Luma8(&steps),
        ] {
            let mut want = [0.0f32; 4096];
            pipeline::blur_decimate_scalar(src, w, h, &mut Scratch::default(), &mut want);
            for &k in &kernels {
                let mut got = [0.0f32; 4096];
                kernels::blur_decimate(k, src, w, h, &mut Scratch::default(), &mut got);
                assert_eq!(bits(&got), bits(&want), "{k} {w}x{h}");
            }
        }
    }
}

#[test]
fn every_kernel_hash_is_identical_to_scalar() {
    let mut rng = Rng(0x5eed_0004);
    let mut scalar = PdqHasher::with_kernel(Kernel::Scalar).unwrap();
    let mut others: Vec<PdqHasher> = simd_kernels()
        .into_iter()
        .map(|k| PdqHasher::with_kernel(k).unwrap())
        .collect();
    for (w, h) in sizes(&mut rng).into_iter().chain([(600, 700), (1030, 90)]) {
        let rgb = rng.image(w, h, 3);
        for profile in [Profile::Full, Profile::Cli512] {
            let want = scalar.hash_rgb8(w as u32, h as u32, &rgb, profile);
            let want_d = scalar.dihedral_rgb8(w as u32, h as u32, &rgb, profile);
            for o in &mut others {
                assert_eq!(
                    o.hash_rgb8(w as u32, h as u32, &rgb, profile),
                    want,
                    "{} {w}x{h}",
                    o.kernel()
                );
                assert_eq!(
                    o.dihedral_rgb8(w as u32, h as u32, &rgb, profile),
                    want_d,
                    "{} {w}x{h}",
                    o.kernel()
                );
            }
        }
    }
}

#[test]
fn every_kernel_dct_is_bit_identical_to_scalar() {
    let mut rng = Rng(0x5eed_0005);
    let m = sigil_core::pdq::dct::DctMatrix::new();
    for _ in 0..20 {
        let mut a = [0.0f32; 4096];
        for v in a.iter_mut() {
            *v = rng.below(255_000) as f32 / 1000.0;
        }
        let mut want = [0.0f32; 256];
        kernels::dct(Kernel::Scalar, &m, &a, &mut want);
        for k in simd_kernels() {
            let mut got = [0.0f32; 256];
            kernels::dct(k, &m, &a, &mut got);
            assert_eq!(bits(&got), bits(&want), "{k}");
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_stages_are_bit_identical_to_scalar() {
    use kernels::avx2;
    use sigil_core::pdq::jarosz::RowSel;
    use sigil_core::pdq::pipeline::StripScratch;
    if !Kernel::Avx2.is_available() {
        return;
    }
    let mut rng = Rng(0x5eed_0007);
    for (w, h) in sizes(&mut rng) {
        let rgb = rng.image(w, h, 3);
        // luma
        let mut want = vec![0.0f32; w * h];
        sigil_core::pdq::luma::luma_rgb8_scalar(&rgb, &mut want);
        let mut got = vec![0.0f32; w * h];
        avx2::luma_rgb8(&rgb, &mut got);
        assert_eq!(bits(&got), bits(&want), "luma {w}x{h}");
        let luma = want;
        let (wr, wc) = (jarosz::window_size(w), jarosz::window_size(h));
        // pass A
        let mut want_a = vec![0.0f32; w * h];
        for (s, d) in luma.chunks_exact(w).zip(want_a.chunks_exact_mut(w)) {
            jarosz::box_row_full(s, wr, d);
        }
        let mut got_a = vec![0.0f32; w * h];
        let mut strips = StripScratch::default();
        avx2::box_rows_full(Source::Rgb8(&rgb), w, h, wr, &mut strips, &mut got_a);
        assert_eq!(bits(&got_a), bits(&want_a), "pass A {w}x{h}");
        // pass B
        let mut sums = Vec::new();
        let mut want_b = vec![0.0f32; w * h];
        jarosz::box_cols_scalar(&want_a, h, w, wc, RowSel::All, &mut sums, &mut want_b);
        let mut got_b = vec![0.0f32; w * h];
        avx2::box_cols(&want_a, h, w, wc, RowSel::All, &mut sums, &mut got_b);
        assert_eq!(bits(&got_b), bits(&want_b), "pass B {w}x{h}");
        // pass C
        let ci = jarosz::decimation_indices(w);
        let mut want_c = vec![0.0f32; h * 64];
        for (s, d) in want_b.chunks_exact(w).zip(want_c.chunks_exact_mut(64)) {
            jarosz::box_row_sampled(s, wr, &ci, d);
        }
        let mut got_c = vec![0.0f32; h * 64];
        avx2::box_rows_sampled(&want_b, w, h, wr, &ci, &mut strips, &mut got_c);
        assert_eq!(bits(&got_c), bits(&want_c), "pass C {w}x{h}");
        // pass D
        let ri = jarosz::decimation_indices(h);
        let mut want_d = vec![0.0f32; 4096];
        jarosz::box_cols_scalar(
            &want_c,
            h,
            64,
            wc,
            RowSel::Sampled(&ri),
            &mut sums,
            &mut want_d,
        );
        let mut got_d = vec![0.0f32; 4096];
        avx2::box_cols(
            &want_c,
            h,
            64,
            wc,
            RowSel::Sampled(&ri),
            &mut sums,
            &mut got_d,
        );
        assert_eq!(bits(&got_d), bits(&want_d), "pass D {w}x{h}");
    }
}

#[test]
fn tiny_and_mismatched_inputs_do_not_panic() {
    let mut hasher = PdqHasher::new();
    for (w, h) in [
        (0u32, 0u32),
        (0, 10),
        (10, 0),
        (1, 1),
        (4, 4),
        (4, 100),
        (100, 4),
    ] {
        let px = vec![128u8; (w * h * 3) as usize];
        let o = hasher.hash_rgb8(w, h, &px, Profile::Full);
        assert_eq!((o.hash, o.quality), (PdqHash::ZERO, 0), "{w}x{h}");
        let d = hasher.dihedral_rgb8(w, h, &px, Profile::Cli512);
        assert_eq!(d.hashes, [PdqHash::ZERO; 8]);
    }
    assert!(hasher
        .try_hash_rgb8(10, 10, &[0u8; 299], Profile::Full)
        .is_err());
    assert!(hasher
        .try_hash_luma8(10, 10, &[0u8; 101], Profile::Full)
        .is_err());
    assert!(hasher.try_hash_luma_f32(10, 10, &[0.0; 99]).is_err());
    assert!(hasher
        .try_hash_rgb8(u32::MAX, u32::MAX, &[], Profile::Full)
        .is_err());
    // Non-finite float luma is garbage in, but must not panic.
    let nan = vec![f32::NAN; 100];
    let _ = hasher.hash_luma_f32(10, 10, &nan);
}

#[test]
fn profile_parses_and_kernel_detection_is_consistent() {
    assert_eq!("full".parse::<Profile>().unwrap(), Profile::Full);
    assert_eq!("cli512".parse::<Profile>().unwrap(), Profile::Cli512);
    assert!("512".parse::<Profile>().is_err());
    assert_eq!(Profile::default(), Profile::Full);
    let best = Kernel::detect();
    assert!(best.is_available());
    assert!(Kernel::available().contains(&best));
    assert_eq!(Kernel::available()[0], Kernel::Scalar);
    assert_eq!(PdqHasher::new().kernel(), best);
}

#[test]
fn a_grid_hashes_as_the_image_it_was_decimated_from() {
    let mut rng = Rng(0x5EED_0F61);
    let mut hasher = PdqHasher::new();
    for (w, h) in [(64usize, 64usize), (300, 200), (1001, 777)] {
        let grey = rng.image(w, h, 1);
        let mut luma: Vec<f32> = grey.iter().map(|&v| f32::from(v)).collect();
        let grid = jarosz::blur_decimate_reference(&mut luma, h, w);
        let (w32, h32) = (w as u32, h as u32);
        let whole = hasher.dihedral_luma8(w32, h32, &grey, Profile::Full);
        assert_eq!(hasher.dihedral_grid(&grid), whole, "{w}x{h}");
        if (w, h) != (64, 64) {
            // (A 64x64 image is hashed without the blur; its grid is not
            // the image itself.)
            let one = hasher.hash_luma8(w32, h32, &grey, Profile::Full);
            assert_eq!(hasher.hash_grid(&grid), one, "{w}x{h}");
        }
    }
}
