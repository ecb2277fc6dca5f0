//! Border detection for query-side trimming: finds flat borders (letterbox
//! bars, padding, screenshot margins, even with some text on them) and
//! mirrored borders (reflection padding) so the content can be hashed alone.

use image::RgbImage;

/// A content rectangle in pixel coordinates: [x0, x1) x [y0, y1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRect {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl ContentRect {
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }
    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }
    /// Maps the rectangle from an image of size (fw, fh) to one of (tw, th).
    pub fn rescale(&self, fw: u32, fh: u32, tw: u32, th: u32) -> ContentRect {
        let sx = |v: u32| ((v as u64 * tw as u64 + fw as u64 / 2) / fw as u64) as u32;
        let sy = |v: u32| ((v as u64 * th as u64 + fh as u64 / 2) / fh as u64) as u32;
        ContentRect {
            x0: sx(self.x0).min(tw),
            y0: sy(self.y0).min(th),
            x1: sx(self.x1).min(tw),
            y1: sy(self.y1).min(th),
        }
    }
}

/// Channel tolerance for "same colour" (JPEG noise on a flat border stays
/// well inside it).
const FLAT_TOL: i32 = 14;
/// A line is border if this share of its pixels is within FLAT_TOL of the
/// line's median colour: lets UI text on a bar through.
const FLAT_SHARE: f32 = 0.80;
/// Never trim more than this share of a side from one edge.
const MAX_TRIM: f32 = 0.35;
/// Mirror error relative to a non-mirror comparison below which a
/// reflection is accepted.
const MIRROR_MAX_SCORE: f32 = 0.2;
/// Trims smaller than this share of the side are ignored (noise).
const MIN_TRIM: f32 = 0.015;

/// Candidate content rectangles inside flat and mirrored borders (at most
/// two: the strict and the loose flat trim, each followed by a mirror trim;
/// equal candidates are merged). Empty when no edge has a border worth
/// trimming.
pub fn detect_content(img: &RgbImage) -> Vec<ContentRect> {
    let (w, h) = img.dimensions();
    if w < 16 || h < 16 {
        return Vec::new();
    }
    let min_w = (w as f32 * MIN_TRIM) as u32;
    let min_h = (h as f32 * MIN_TRIM) as u32;
    let mut out: Vec<ContentRect> = Vec::new();
    for loose in [false, true] {
        let mut r = trim_flat(img, loose);
        trim_mirror(img, &mut r);
        let trimmed = r.x0 > min_w || r.y0 > min_h || w - r.x1 > min_w || h - r.y1 > min_h;
        if trimmed && r.width() >= 8 && r.height() >= 8 && !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

fn pixel(img: &RgbImage, x: u32, y: u32) -> [i32; 3] {
    let p = img.get_pixel(x, y);
    [p[0] as i32, p[1] as i32, p[2] as i32]
}

/// The line's colour if the line is flat (mostly one colour).
fn line_flat_colour(px: &mut dyn Iterator<Item = [i32; 3]>) -> Option<[i32; 3]> {
    let pts: Vec<[i32; 3]> = px.collect();
    if pts.is_empty() {
        return None;
    }
    let mut med = [0i32; 3];
    for (c, m) in med.iter_mut().enumerate() {
        let mut v: Vec<i32> = pts.iter().map(|p| p[c]).collect();
        let mid = v.len() / 2;
        *m = *v.select_nth_unstable(mid).1;
    }
    let close = pts
        .iter()
        .filter(|p| (0..3).all(|c| (p[c] - med[c]).abs() <= FLAT_TOL))
        .count();
    (close as f32 >= FLAT_SHARE * pts.len() as f32).then_some(med)
}

/// Walks flat lines inwards from one edge. Returns (strict, loose): strict
/// stops at the first sharp change of border colour (a black letterbox bar
/// next to a flat blue sky ends at the bar), loose takes every flat line
/// (a screenshot's dark status bar followed by a light caption bar).
fn walk_flat(max: u32, line: &dyn Fn(u32) -> Option<[i32; 3]>) -> (u32, u32) {
    let mut n = 0;
    let mut strict = None;
    let mut prev: Option<[i32; 3]> = None;
    while n < max {
        let Some(c) = line(n) else { break };
        if let Some(p) = prev {
            if strict.is_none() && (0..3).any(|k| (c[k] - p[k]).abs() > 3 * FLAT_TOL) {
                strict = Some(n);
            }
        }
        prev = Some(c);
        n += 1;
    }
    (strict.unwrap_or(n), n)
}

/// Flat-border trims, strict and loose (see [`walk_flat`]).
fn trim_flat(img: &RgbImage, loose: bool) -> ContentRect {
    let (w, h) = img.dimensions();
    let max_x = (w as f32 * MAX_TRIM) as u32;
    let max_y = (h as f32 * MAX_TRIM) as u32;
    // Sample at most ~256 points per line: enough to judge flatness.
    let step_x = (w / 256).max(1) as usize;
    let step_y = (h / 256).max(1) as usize;
    let pick = |(s, l): (u32, u32)| if loose { l } else { s };
    let top = pick(walk_flat(max_y, &|i| {
        line_flat_colour(&mut (0..w).step_by(step_x).map(|x| pixel(img, x, i)))
    }));
    let bottom = pick(walk_flat(max_y, &|i| {
        line_flat_colour(&mut (0..w).step_by(step_x).map(|x| pixel(img, x, h - 1 - i)))
    }));
    let (y0, y1) = (top, h - bottom);
    let left = pick(walk_flat(max_x, &|i| {
        line_flat_colour(&mut (y0..y1).step_by(step_y).map(|y| pixel(img, i, y)))
    }));
    let right = pick(walk_flat(max_x, &|i| {
        line_flat_colour(&mut (y0..y1).step_by(step_y).map(|y| pixel(img, w - 1 - i, y)))
    }));
    ContentRect {
        x0: left,
        y0,
        x1: w - right,
        y1,
    }
}

/// Luma of the pixels of `r` as a row-major grid of at most `max_w` x
/// `max_h` points (nearest sampling).
fn luma_of(
    img: &RgbImage,
    r: &ContentRect,
    max_w: u32,
    max_h: u32,
) -> (Vec<f32>, usize, usize, f32, f32) {
    let gw = r.width().min(max_w) as usize;
    let gh = r.height().min(max_h) as usize;
    let sx = r.width() as f32 / gw as f32;
    let sy = r.height() as f32 / gh as f32;
    let mut g = vec![0f32; gw * gh];
    for y in 0..gh {
        for x in 0..gw {
            let px = r.x0 + (x as f32 * sx) as u32;
            let py = r.y0 + (y as f32 * sy) as u32;
            let p = img.get_pixel(px.min(r.x1 - 1), py.min(r.y1 - 1));
            g[y * gw + x] = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
        }
    }
    (g, gw, gh, sx, sy)
}

/// Best mirror axis for the first `len` positions along a 1-D profile set:
/// `get(i, t)` is line i (0 = the edge), sample t. Returns the border width
/// (in lines) if a reflection is clearly present.
fn mirror_axis(get: &dyn Fn(usize, usize) -> f32, lines: usize, samples: usize) -> Option<usize> {
    let max_b = (lines as f32 * MAX_TRIM) as usize;
    let min_b = ((lines as f32 * 0.04) as usize).max(4);
    let mut best: Option<(f32, usize)> = None;
    for b in min_b..=max_b {
        if 2 * b + 1 > lines {
            break;
        }
        // A flat strip mirrors anything: demand texture along its lines.
        let mut texture = 0f32;
        for k in 0..b {
            for t in 1..samples {
                texture += (get(k, t) - get(k, t - 1)).abs();
            }
        }
        if texture < 3.0 * (b * samples) as f32 {
            continue;
        }
        // Two alignments: the axis between lines b-1 and b (reflection that
        // repeats the edge line) and the axis through line b (no repeat).
        for skip in 0..2 {
            let (mut err, mut base) = (0f32, 0f32);
            for k in 0..b {
                for t in 0..samples {
                    let inner = get(b + skip + k, t);
                    err += (get(b - 1 - k, t) - inner).abs();
                    // What a non-mirror comparison at the same distance gives.
                    let far = (b + skip + 3 * k + 1).min(lines - 1);
                    base += (get(far, t) - inner).abs();
                }
            }
            if base < 1e-3 {
                continue;
            }
            let score = err / base;
            if best.is_none_or(|(s, _)| score < s) {
                best = Some((score, b));
            }
        }
    }
    match best {
        Some((score, b)) if score < MIRROR_MAX_SCORE => Some(b),
        _ => None,
    }
}

fn trim_mirror(img: &RgbImage, r: &mut ContentRect) {
    if r.width() < 32 || r.height() < 32 {
        return;
    }
    // The axis being searched is kept at full resolution (a mirror axis
    // must land on a line boundary); the other axis is sampled sparsely.
    let (gc, cw, ch, sx, _) = luma_of(img, r, 512, 48);
    let (gr, rw, rh, _, sy) = luma_of(img, r, 48, 512);
    let left = mirror_axis(&|i, t| gc[t * cw + i], cw, ch);
    let right = mirror_axis(&|i, t| gc[t * cw + (cw - 1 - i)], cw, ch);
    let top = mirror_axis(&|i, t| gr[i * rw + t], rh, rw);
    let bottom = mirror_axis(&|i, t| gr[(rh - 1 - i) * rw + t], rh, rw);
    let base = *r;
    if let Some(b) = left {
        r.x0 = base.x0 + (b as f32 * sx).round() as u32;
    }
    if let Some(b) = right {
        r.x1 = base.x1 - (b as f32 * sx).round() as u32;
    }
    if let Some(b) = top {
        r.y0 = base.y0 + (b as f32 * sy).round() as u32;
    }
    if let Some(b) = bottom {
        r.y1 = base.y1 - (b as f32 * sy).round() as u32;
    }
    if r.x1 <= r.x0 + 8 || r.y1 <= r.y0 + 8 {
        *r = base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robust::geometry::{pad_flat, pad_mirror};
    use crate::robust::test_photo as scene;

    fn close(a: u32, b: u32, tol: u32) -> bool {
        a.abs_diff(b) <= tol
    }

    #[test]
    fn finds_flat_padding() {
        let img = scene(200, 150);
        for c in [[0, 0, 0], [255, 255, 255], [30, 160, 90]] {
            let p = pad_flat(&img, 0.2, c);
            let r = detect_content(&p)[0];
            assert!(close(r.x0, 20, 2) && close(r.y0, 15, 2), "{r:?}");
            assert!(close(r.x1, 220, 2) && close(r.y1, 165, 2), "{r:?}");
        }
    }

    #[test]
    fn finds_mirrored_padding() {
        let img = scene(200, 150);
        let p = pad_mirror(&img, 0.2);
        let r = *detect_content(&p).first().expect("mirror found");
        assert!(close(r.x0, 20, 3) && close(r.y0, 15, 3), "{r:?}");
        assert!(close(r.x1, 220, 3) && close(r.y1, 165, 3), "{r:?}");
    }

    #[test]
    fn leaves_textured_image_alone() {
        let mut rng = crate::test_rng::SplitMix64::new(9);
        let img = RgbImage::from_fn(200, 150, |_, _| {
            let v = rng.below(256) as u8;
            image::Rgb([v, v / 2, 255 - v])
        });
        assert!(detect_content(&img).is_empty());
    }

    #[test]
    fn strict_trim_stops_at_a_colour_change() {
        // Black bar (10 rows) over a flat blue band (20 rows) over a photo:
        // strict trims the bar only, loose trims both.
        let photo = scene(200, 150);
        let mut img = RgbImage::from_pixel(200, 180, image::Rgb([0, 0, 0]));
        for y in 10..30 {
            for x in 0..200 {
                img.put_pixel(x, y, image::Rgb([90, 140, 230]));
            }
        }
        image::imageops::replace(&mut img, &photo, 0, 30);
        let c = detect_content(&img);
        assert!(c.iter().any(|r| close(r.y0, 10, 1)), "{c:?}");
        assert!(c.iter().any(|r| close(r.y0, 30, 1)), "{c:?}");
    }
}
