//! Text drawn with the public-domain 8x8 bitmap font (font8x8): used for the
//! text-watermark transform and for the labels of the plots, so nothing
//! depends on system fonts or fontconfig.

use image::{Rgb, RgbImage};

/// Width in pixels of `text` drawn at `scale` (each glyph is 8x8 cells).
pub fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * 8 * scale
}

/// Draws `text` with its top-left corner at (x, y), blending `color` over the
/// image with opacity `alpha` (0..=1). Pixels outside the image are skipped.
pub fn draw_text(
    img: &mut RgbImage,
    x: i64,
    y: i64,
    text: &str,
    scale: u32,
    color: [u8; 3],
    alpha: f32,
) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let s = scale.max(1) as i64;
    for (i, ch) in text.chars().enumerate() {
        let code = ch as usize;
        let glyph = if code < 128 {
            font8x8::legacy::BASIC_LEGACY[code]
        } else {
            font8x8::legacy::BASIC_LEGACY[b'?' as usize]
        };
        let gx = x + i as i64 * 8 * s;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                // font8x8 stores the leftmost pixel in bit 0.
                if bits >> col & 1 == 0 {
                    continue;
                }
                for dy in 0..s {
                    for dx in 0..s {
                        let px = gx + col as i64 * s + dx;
                        let py = y + row as i64 * s + dy;
                        if px < 0 || py < 0 || px >= w || py >= h {
                            continue;
                        }
                        let p = img.get_pixel_mut(px as u32, py as u32);
                        *p = blend(*p, color, alpha);
                    }
                }
            }
        }
    }
}

/// Alpha-blends `color` over `p`.
pub fn blend(p: Rgb<u8>, color: [u8; 3], alpha: f32) -> Rgb<u8> {
    let a = alpha.clamp(0.0, 1.0);
    let mut out = [0u8; 3];
    for c in 0..3 {
        out[c] = (p[c] as f32 * (1.0 - a) + color[c] as f32 * a).round() as u8;
    }
    Rgb(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_ink_inside_the_text_box_only() {
        let mut img = RgbImage::from_pixel(64, 32, Rgb([0, 0, 0]));
        draw_text(&mut img, 4, 4, "AB", 2, [255, 255, 255], 1.0);
        let mut inside = 0;
        for (x, y, p) in img.enumerate_pixels() {
            if p[0] > 0 {
                assert!(
                    (4..4 + 32).contains(&x) && (4..4 + 16).contains(&y),
                    "ink at {x},{y}"
                );
                inside += 1;
            }
        }
        assert!(inside > 40, "too little ink: {inside}");
        assert_eq!(text_width("AB", 2), 32);
    }
}
