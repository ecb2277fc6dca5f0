//! Fuzz the reduced-scale baseline JPEG decoder behind `sigil scan --fast`
//! (`sigil_core::decode::fast_jpeg::baseline`), which parses untrusted bytes
//! with no library in between.
//!
//! Invariants checked: never a panic, the decoder asks about the frame's
//! size before allocating, a decoded image is exactly `ceil(w / d) x
//! ceil(h / d)` with `channels` bytes per pixel, and a PDQ grid computed
//! from coefficients is finite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_core::decode::fast_jpeg::baseline;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the reduction, the rest is the file.
    let Some((&pick, file)) = data.split_first() else {
        return;
    };
    if pick % 4 == 3 {
        // The coefficient-domain PDQ grid: a finite 64x64 grid or a refusal.
        let mut asked = false;
        if let Ok(g) = baseline::luma_grid(file, |w, h| {
            asked = true;
            u64::from(w) * u64::from(h) <= 1 << 22
        }) {
            assert!(asked, "decoded without asking about the frame size");
            assert!(g.grid.iter().all(|v| v.is_finite()));
        }
        return;
    }
    let d = [2u32, 4, 8][usize::from(pick % 3)];
    let mut frame = None;
    let result = baseline::decode(file, |w, h| {
        frame = Some((w, h));
        // Small limits keep each run inside libFuzzer's RSS limit.
        (u64::from(w) * u64::from(h) <= 1 << 22).then_some(d)
    });
    if let Ok(img) = result {
        let (w, h) = frame.expect("decoded without asking about the frame size");
        assert_eq!((img.width, img.height), (w.div_ceil(d), h.div_ceil(d)));
        assert!(img.channels == 1 || img.channels == 3);
        assert_eq!(
            img.pixels.len(),
            img.width as usize * img.height as usize * usize::from(img.channels)
        );
        assert_eq!(img.reduction, d);
    }
});
