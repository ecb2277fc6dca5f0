//! Every row of testdata/pixels.csv (Meta's reference core on lossless PNGs)
//! reproduced to the bit: full and cli512 hashes and qualities, all 8
//! dihedral hashes, on every kernel this CPU supports.

use std::path::PathBuf;

use sigil_core::pdq::{Kernel, PdqHasher, Profile};
use sigil_core::PdqHash;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

struct Row {
    file: String,
    width: u32,
    height: u32,
    mode: String,
    full: (PdqHash, u32),
    cli512: (PdqHash, u32),
    dih: [PdqHash; 8],
}

fn rows() -> Vec<Row> {
    let text = std::fs::read_to_string(testdata().join("pixels.csv")).expect("pixels.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(header.len(), 16, "unexpected header {header:?}");
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let h = |i: usize| PdqHash::from_hex(f[i]).expect("hex");
            Row {
                file: f[0].to_string(),
                width: f[1].parse().unwrap(),
                height: f[2].parse().unwrap(),
                mode: f[3].to_string(),
                full: (h(4), f[5].parse().unwrap()),
                cli512: (h(6), f[7].parse().unwrap()),
                dih: std::array::from_fn(|i| h(8 + i)),
            }
        })
        .collect()
}

enum Px {
    Rgb(Vec<u8>),
    Grey(Vec<u8>),
}

fn load(row: &Row) -> Px {
    let img = image::open(testdata().join("pixels").join(&row.file)).expect("decode png");
    assert_eq!(
        (img.width(), img.height()),
        (row.width, row.height),
        "{}",
        row.file
    );
    match row.mode.as_str() {
        "L" => Px::Grey(img.into_luma8().into_raw()),
        _ => Px::Rgb(img.into_rgb8().into_raw()),
    }
}

fn grey_to_rgb(g: &[u8]) -> Vec<u8> {
    g.iter().flat_map(|v| [*v, *v, *v]).collect()
}

#[test]
fn pixels_csv_has_all_rows() {
    let rows = rows();
    assert_eq!(rows.len(), 24);
    assert!(
        rows.iter().any(|r| r.full.1 < 50),
        "degenerate rows present"
    );
}

#[test]
fn every_pixels_row_matches_reference_on_every_kernel() {
    let rows = rows();
    let mut failures = Vec::new();
    for kernel in Kernel::available() {
        let mut hasher = PdqHasher::with_kernel(kernel).unwrap();
        for row in &rows {
            let px = load(row);
            let (w, h) = (row.width, row.height);
            let mut check = |what: &str, got: (PdqHash, u32), want: (PdqHash, u32)| {
                if got != want {
                    failures.push(format!(
                        "{kernel} {} {what}: got {} q{} want {} q{} ({} bits)",
                        row.file,
                        got.0,
                        got.1,
                        want.0,
                        want.1,
                        got.0.hamming(&want.0)
                    ));
                }
            };
            let rgb = match &px {
                Px::Rgb(p) => p.clone(),
                Px::Grey(g) => {
                    // The grey path and the (v, v, v) RGB path must agree.
                    for profile in [Profile::Full, Profile::Cli512] {
                        let o = hasher.hash_luma8(w, h, g, profile);
                        let want = if profile == Profile::Full {
                            row.full
                        } else {
                            row.cli512
                        };
                        check(&format!("luma8 {profile}"), (o.hash, o.quality), want);
                    }
                    let d = hasher.dihedral_luma8(w, h, g, Profile::Full);
                    for (i, hh) in d.hashes.iter().enumerate() {
                        check(
                            &format!("luma8 dih{i}"),
                            (*hh, d.quality),
                            (row.dih[i], row.full.1),
                        );
                    }
                    grey_to_rgb(g)
                }
            };
            let o = hasher.hash_rgb8(w, h, &rgb, Profile::Full);
            check("full", (o.hash, o.quality), row.full);
            let o = hasher.hash_rgb8(w, h, &rgb, Profile::Cli512);
            check("cli512", (o.hash, o.quality), row.cli512);
            let d = hasher.dihedral_rgb8(w, h, &rgb, Profile::Full);
            for (i, hh) in d.hashes.iter().enumerate() {
                check(
                    &format!("dih{i}"),
                    (*hh, d.quality),
                    (row.dih[i], row.full.1),
                );
            }
            // The f32 entry point with the same luma gives the same hash.
            let luma: Vec<f32> = rgb
                .chunks_exact(3)
                .map(|p| sigil_core::pdq::luma::luma_reference_f64(p[0], p[1], p[2]))
                .collect();
            let o = hasher.hash_luma_f32(w, h, &luma);
            check("luma_f32", (o.hash, o.quality), row.full);
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
