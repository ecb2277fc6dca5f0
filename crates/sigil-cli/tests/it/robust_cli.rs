//! `sigil scan --robust` and `sigil index build --enroll-images DIR
//! [--augment]` as processes: edited copies that the plain path misses are
//! found by the robust options, and resume refuses to mix the two.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image::RgbImage;
use sigil_core::pdq::{PdqHasher, Profile};
use sigil_core::robust::geometry::{crop_frac, pad_flat, rotate_degrees};
use sigil_core::robust::rgb_of;
use sigil_eval::rng::SplitMix64;
use sigil_eval::transforms::{resize_by, Edit, Transform};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn sigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A testdata original decoded and scaled so its longer side is 400 px (the
/// tests' "original"; small keeps the unoptimised test build quick).
fn original(file: &str) -> RgbImage {
    let bytes = fs::read(testdata().join("originals").join(file)).unwrap();
    let img = rgb_of(&sigil_core::decode::decode(&bytes, &Default::default()).unwrap());
    let f = 400.0 / img.width().max(img.height()) as f32;
    resize_by(&img, f, f)
}

fn records(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn record<'a>(recs: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    recs.iter()
        .find(|r| r["path"].as_str().unwrap().ends_with(name))
        .unwrap_or_else(|| panic!("no record for {name}: {recs:#?}"))
}

/// The original of bridge-mods/aaa-orig.jpg is indexed by its PDQ hash; a
/// copy padded by 20% (black border) and a copy rotated by 90 degrees are
/// missed by the plain scan and matched by `--robust`, which says which
/// query variant matched; a copy tilted by 6 degrees is only matched by
/// `--robust=full`; an unknown level stops the scan (exit 2).
#[test]
fn robust_scan_finds_padded_and_rotated_copies() {
    let d = tempfile::tempdir().unwrap();
    let orig = original("bridge-mods/aaa-orig.jpg");
    let pdq = PdqHasher::new()
        .hash_rgb8(orig.width(), orig.height(), orig.as_raw(), Profile::Full)
        .hash;
    let list = d.path().join("list.txt");
    fs::write(&list, format!("pdq:{},bridge,demo,test\n", pdq.to_hex())).unwrap();
    let idx = d.path().join("index");
    let out = sigil(&["index", "build", "--output", s(&idx), s(&list)]);
    assert!(out.status.success(), "{out:?}");

    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    pad_flat(&orig, 0.2, [0, 0, 0])
        .save(tree.join("padded.png"))
        .unwrap();
    let rot90 = Transform {
        name: "rotate_90".into(),
        edits: vec![Edit::Rot90],
    };
    rot90
        .apply(&orig, &mut SplitMix64::new(1))
        .unwrap()
        .save(tree.join("rotated.png"))
        .unwrap();

    rotate_degrees(&orig, 6.0, [0, 0, 0])
        .save(tree.join("tilted.png"))
        .unwrap();

    let plain = sigil(&["scan", s(&tree), "--index", s(&idx), "--quiet"]);
    assert_eq!(plain.status.code(), Some(0), "{plain:?}");
    let recs = records(&plain);
    assert_eq!(recs.len(), 3);
    for name in ["padded.png", "rotated.png", "tilted.png"] {
        assert_eq!(record(&recs, name)["verdict"], "no_match", "{recs:#?}");
    }

    let robust = sigil(&["scan", s(&tree), "--index", s(&idx), "--quiet", "--robust"]);
    assert_eq!(robust.status.code(), Some(1), "{robust:?}");
    let recs = records(&robust);
    for (name, variant) in [("padded.png", "trim"), ("rotated.png", "dih:")] {
        let r = record(&recs, name);
        assert_eq!(r["verdict"], "match", "{r}");
        let m = r["matches"].as_array().unwrap();
        assert_eq!(m.len(), 1, "one match per entry: {r}");
        assert_eq!(m[0]["id"], "bridge");
        assert!(m[0]["distance"].as_u64().unwrap() <= 31, "{r}");
        let v = m[0]["query_variant"].as_str().unwrap();
        assert!(v.starts_with(variant), "{name} matched via {v}");
    }
    assert_eq!(record(&recs, "tilted.png")["verdict"], "no_match");

    let full = sigil(&[
        "scan",
        s(&tree),
        "--index",
        s(&idx),
        "--quiet",
        "--robust=full",
    ]);
    assert_eq!(full.status.code(), Some(1), "{full:?}");
    let recs = records(&full);
    for name in ["padded.png", "rotated.png", "tilted.png"] {
        assert_eq!(record(&recs, name)["verdict"], "match", "{recs:#?}");
    }
    let tilted = &record(&recs, "tilted.png")["matches"][0];
    let v = tilted["query_variant"].as_str().unwrap();
    assert!(v.starts_with("rot:"), "tilted.png matched via {v}");

    let bad = sigil(&["scan", s(&tree), "--index", s(&idx), "--robust=sideways"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("sideways"), "{err}");
    assert!(bad.stdout.is_empty());
}

/// The resume manifest records --robust: a robust scan cannot be resumed
/// without it (nor the other way round).
#[test]
fn resume_refuses_to_mix_robust_and_plain() {
    let d = tempfile::tempdir().unwrap();
    let idx = d.path().join("index");
    let out = sigil(&[
        "index",
        "build",
        "--output",
        s(&idx),
        s(&testdata().join("lists/demo.csv")),
    ]);
    assert!(out.status.success(), "{out:?}");
    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    fs::copy(
        testdata().join("originals/bridge-mods/square-128x128.jpg"),
        tree.join("a.jpg"),
    )
    .unwrap();
    let rec = d.path().join("out.jsonl");
    let base = [
        "scan",
        s(&tree),
        "--index",
        s(&idx),
        "--quiet",
        "--output",
        s(&rec),
    ];
    let first = sigil(&[&base[..], &["--robust"]].concat());
    assert_eq!(first.status.code(), Some(1), "{first:?}");
    let mixed = sigil(&[&base[..], &["--resume"]].concat());
    assert_eq!(mixed.status.code(), Some(2), "{mixed:?}");
    let err = String::from_utf8_lossy(&mixed.stderr);
    assert!(err.contains("robust"), "{err}");
    let same = sigil(&[&base[..], &["--resume", "--robust"]].concat());
    assert_eq!(same.status.code(), Some(1), "{same:?}");
}

/// `--enroll-images DIR --augment` stores crops of each original under its
/// id: a copy with 10% cropped off (the bottom-right 90% of each side kept)
/// is missed against the plain enrolment and found against the augmented
/// one. A file that is not an image is an error naming it, or is skipped
/// and counted with --skip-invalid.
#[test]
fn augmented_enrolment_finds_a_cropped_copy() {
    let d = tempfile::tempdir().unwrap();
    let originals = d.path().join("originals");
    fs::create_dir(&originals).unwrap();
    let orig = original("bridge-mods/aaa-orig.jpg");
    orig.save(originals.join("bridge.png")).unwrap();
    original("reg-test-input/pen-and-coaster.png")
        .save(originals.join("pen.png"))
        .unwrap();
    fs::write(originals.join("notes.jpg"), b"not an image\n").unwrap();

    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    crop_frac(&orig, 0.1, 0.1, 0.9, 0.9)
        .save(tree.join("cropped.png"))
        .unwrap();

    // A bad file stops the build, naming the file and the cause.
    let plain_idx = d.path().join("plain");
    let enroll = ["index", "build", "--list", "bank", "--enroll-images"];
    let bad = sigil(&[&enroll[..], &[s(&originals), "--output", s(&plain_idx)]].concat());
    assert!(!bad.status.success(), "{bad:?}");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("notes.jpg") && err.contains("cannot decode"),
        "{err}"
    );

    let args = |idx: &Path, augment: bool| {
        let mut v = vec![s(&originals).to_string(), "--output".into(), s(idx).into()];
        v.push("--skip-invalid".into());
        if augment {
            v.push("--augment".into());
        }
        v
    };
    let run = |extra: Vec<String>| {
        let mut a: Vec<&str> = enroll.to_vec();
        a.extend(extra.iter().map(String::as_str));
        sigil(&a)
    };
    let out = run(args(&plain_idx, false));
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 images enrolled, 2 PDQ entries") && err.contains("1 invalid"),
        "{err}"
    );
    let aug_idx = d.path().join("augmented");
    let out = run(args(&aug_idx, true));
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 images enrolled"), "{err}");

    // Every augmented entry carries the original's id.
    let export = sigil(&["index", "export", s(&aug_idx)]);
    assert!(export.status.success(), "{export:?}");
    let rows = String::from_utf8_lossy(&export.stdout).into_owned();
    let ids: Vec<&str> = rows
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap())
        .collect();
    assert!(ids.len() > 10, "{rows}");
    assert!(
        ids.iter().all(|id| *id == "bridge" || *id == "pen"),
        "{rows}"
    );

    let plain = sigil(&["scan", s(&tree), "--index", s(&plain_idx), "--quiet"]);
    assert_eq!(plain.status.code(), Some(0), "{plain:?}");
    assert_eq!(
        record(&records(&plain), "cropped.png")["verdict"],
        "no_match"
    );

    let aug = sigil(&["scan", s(&tree), "--index", s(&aug_idx), "--quiet"]);
    assert_eq!(aug.status.code(), Some(1), "{aug:?}");
    let recs = records(&aug);
    let r = record(&recs, "cropped.png");
    assert_eq!(r["verdict"], "match", "{r}");
    assert!(r["matches"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["id"] == "bridge" && m["list"] == "bank"));
}

/// A rotation, flip or transpose of a whole image.
type Edit90 = fn(&RgbImage) -> RgbImage;

/// Photos of 300-500 px (crops of the testdata photos at native resolution
/// and resized ones, sizes where the blur and decimation are not
/// mirror-symmetric) rotated by 90, 180 and 270 degrees, mirrored and
/// transposed, each saved as JPEG quality 90. The list holds each photo's
/// own PDQ hash. `--robust` and `--dihedral` find every copy at distance 31,
/// each through the dihedral variant that undoes its transform, because the
/// variants are the hashes of the pixels rotated back. (The reference's
/// DCT-derived variants, searched before, were 38-52 bits from the q0122
/// copies that a top-bottom flip is part of.)
#[test]
fn robust_scan_finds_every_rotated_and_mirrored_photo() {
    use image::imageops::{self, FilterType};
    let d = tempfile::tempdir().unwrap();
    let bridge = rgb_of(
        &sigil_core::decode::decode(
            &fs::read(testdata().join("originals/bridge-mods/aaa-orig.jpg")).unwrap(),
            &Default::default(),
        )
        .unwrap(),
    );
    let pen = rgb_of(
        &sigil_core::decode::decode(
            &fs::read(testdata().join("originals/reg-test-input/pen-and-coaster.png")).unwrap(),
            &Default::default(),
        )
        .unwrap(),
    );
    let labelme = |name: &str, w: u32, h: u32| {
        let p = testdata()
            .join("originals/reg-test-input/labelme-subset")
            .join(name);
        let img = image::open(p).unwrap().to_rgb8();
        imageops::resize(&img, w, h, FilterType::Triangle)
    };
    let photos: Vec<(&str, RgbImage)> = vec![
        (
            "bridge-crop",
            imageops::crop_imm(&bridge, 611, 203, 437, 333).to_image(),
        ),
        (
            "bridge-tall",
            imageops::crop_imm(&bridge, 95, 170, 301, 479).to_image(),
        ),
        ("bridge-small", resize_by(&bridge, 0.3, 0.3)),
        (
            "pen-crop",
            imageops::crop_imm(&pen, 250, 180, 417, 389).to_image(),
        ),
        ("pen-small", resize_by(&pen, 0.5, 0.5)),
        ("q0122", labelme("q0122.jpg", 441, 412)),
        ("q0122-large", labelme("q0122.jpg", 456, 451)),
        ("q0746", labelme("q0746.jpg", 300, 457)),
        ("q2821", labelme("q2821.jpg", 480, 353)),
    ];
    // (the transform applied, the variant that undoes it)
    let transforms: [(&str, Edit90, &str); 7] = [
        ("rot90", |i| imageops::rotate270(i), "rot270"),
        ("rot180", |i| imageops::rotate180(i), "rot180"),
        ("rot270", |i| imageops::rotate90(i), "rot90"),
        ("flipx", |i| imageops::flip_vertical(i), "flipx"),
        ("flipy", |i| imageops::flip_horizontal(i), "flipy"),
        (
            "transpose",
            |i| imageops::flip_horizontal(&imageops::rotate90(i)),
            "flipplus1",
        ),
        (
            "antitranspose",
            |i| imageops::flip_horizontal(&imageops::rotate270(i)),
            "flipminus1",
        ),
    ];
    let mut hasher = PdqHasher::new();
    let mut list = String::new();
    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    for (name, photo) in &photos {
        let (w, h) = photo.dimensions();
        assert!((300..=500).contains(&w.max(h)), "{name} is {w}x{h}");
        let pdq = hasher.hash_rgb8(w, h, photo.as_raw(), Profile::Full).hash;
        list.push_str(&format!("pdq:{},{name},demo,test\n", pdq.to_hex()));
        for (t, apply, _) in &transforms {
            let mut f = fs::File::create(tree.join(format!("{name}.{t}.jpg"))).unwrap();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut f, 90)
                .encode_image(&apply(photo))
                .unwrap();
        }
    }
    let list_path = d.path().join("list.txt");
    fs::write(&list_path, list).unwrap();
    let idx = d.path().join("index");
    let out = sigil(&["index", "build", "--output", s(&idx), s(&list_path)]);
    assert!(out.status.success(), "{out:?}");

    for mode in ["--robust", "--dihedral"] {
        let out = sigil(&["scan", s(&tree), "--index", s(&idx), "--quiet", mode]);
        assert_eq!(out.status.code(), Some(1), "{mode}: {out:?}");
        let recs = records(&out);
        assert_eq!(recs.len(), photos.len() * transforms.len());
        for (name, _) in &photos {
            for (t, _, undo) in &transforms {
                let r = record(&recs, &format!("/{name}.{t}.jpg"));
                let m = r["matches"].as_array().unwrap();
                let own = m.iter().find(|m| m["id"] == *name);
                let own = own.unwrap_or_else(|| panic!("{mode}: {name}.{t} not matched: {r}"));
                assert!(own["distance"].as_u64().unwrap() <= 31, "{mode}: {r}");
                assert_eq!(own["variant"], *undo, "{mode}: {name}.{t}: {r}");
            }
        }
    }
}
