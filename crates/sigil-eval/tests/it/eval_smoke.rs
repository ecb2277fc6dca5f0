//! End-to-end run of the robustness harness on a handful of test images:
//! the report and plots must exist and the numbers must be sane.

use std::path::{Path, PathBuf};

use sigil_core::robust::{AugmentOptions, RobustQueryOptions};
use sigil_eval::harness::{self, EvalConfig, ExclusionReason};
use sigil_eval::report;
use sigil_eval::transforms;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

#[test]
fn harness_runs_end_to_end_and_numbers_are_sane() {
    let dir = tempfile::tempdir().unwrap();
    let originals = dir.path().join("originals");
    std::fs::create_dir(&originals).unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(testdata().join("eval")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "jpg") {
            std::fs::copy(&p, originals.join(p.file_name().unwrap())).unwrap();
            n += 1;
        }
    }
    assert_eq!(n, 5, "testdata/eval should hold 5 photos");
    // Bad input: a byte-identical duplicate, a file that is not an image,
    // and a flat image (PDQ quality 0).
    std::fs::copy(
        testdata().join("eval/q0122.jpg"),
        originals.join("zz-duplicate.jpg"),
    )
    .unwrap();
    std::fs::write(originals.join("zz-not-an-image.jpg"), b"this is not a JPEG").unwrap();
    image::RgbImage::from_pixel(64, 64, image::Rgb([128, 128, 128]))
        .save(originals.join("zz-flat.png"))
        .unwrap();

    let cfg = EvalConfig {
        originals: originals.clone(),
        distractors: None,
        split: false,
        limit: None,
        threads: Some(2),
        transforms: transforms::select("identity,rotate_90,flip_h,jpeg_q70,pad_20_flat").unwrap(),
        seed: 1,
        // Fewer rotation/zoom variants than a real run keeps the test fast.
        query: RobustQueryOptions {
            rotations: vec![-3.0, 3.0],
            zooms: vec![0.85],
            ..RobustQueryOptions::everything()
        },
        augment: AugmentOptions::default(),
        max_side: Some(1024),
    };
    let out = harness::run(&cfg, &|_| {}).expect("evaluation runs");
    assert_eq!(out.originals_used, 5);
    let count = |r: ExclusionReason| out.exclusions.iter().filter(|e| e.reason == r).count();
    assert_eq!(
        count(ExclusionReason::DuplicateBytes),
        1,
        "{:?}",
        out.exclusions
    );
    assert_eq!(
        count(ExclusionReason::DecodeFailed),
        1,
        "{:?}",
        out.exclusions
    );
    assert_eq!(
        count(ExclusionReason::LowQuality),
        1,
        "{:?}",
        out.exclusions
    );
    // 5 originals x 5 transforms positives; each query vs 4 other originals.
    assert_eq!(out.positives, 25);
    assert_eq!(out.negatives, 25 * 4);

    let t = |name: &str| out.transforms.iter().position(|t| t == name).unwrap();
    let m = |name: &str| out.methods.iter().find(|m| m.name == name).unwrap();
    for method in &out.methods {
        let op = method
            .at_target
            .unwrap_or_else(|| panic!("{} has no threshold", method.name));
        assert!(op.precision() >= harness::TARGET_PRECISION);
        assert!((0.0..=1.0).contains(&op.recall()));
        assert_eq!(
            method.recall_per_transform[t("identity")],
            1.0,
            "{} identity",
            method.name
        );
    }
    // Plain PDQ cannot see through a 90-degree rotation at distance 31;
    // the dihedral variants always can.
    assert!(m("pdq").recall_per_transform_31[t("rotate_90")] < 0.5);
    assert_eq!(m("pdq+dihedral").recall_per_transform[t("rotate_90")], 1.0);
    assert_eq!(m("pdq+dihedral").recall_per_transform[t("flip_h")], 1.0);
    // At the fixed distance 31 the DCT-derived variants are not exact (the
    // tent filter's grid does not rotate with the image), but most match.
    let r90 = m("pdq+dihedral+trim").recall_per_transform_31[t("rotate_90")];
    assert!(
        r90 >= 0.6 && r90 > m("pdq").recall_per_transform_31[t("rotate_90")],
        "{r90}"
    );
    // Trimming sees through flat padding better than plain PDQ.
    let pad = t("pad_20_flat");
    assert!(
        m("pdq+trim").recall_per_transform_31[pad] >= 0.6,
        "{:?}",
        m("pdq+trim").recall_per_transform_31
    );
    assert!(m("pdq+trim").recall_per_transform_31[pad] > m("pdq").recall_per_transform_31[pad]);
    assert_eq!(m("pdq").recall_per_transform_31[t("jpeg_q70")], 1.0);

    let files = report::write_report(&out, &dir.path().join("report")).expect("report written");
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(md.contains("## Targets (issue 6)"));
    assert!(md.contains("| pdq+dihedral+trim |"));
    assert!(md.contains("failed to decode"));
    for p in &files.plots {
        let img = image::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(img.width() > 100 && img.height() > 100);
        // Something was drawn: not a blank canvas.
        let rgb = img.to_rgb8();
        assert!(
            rgb.pixels().filter(|px| px.0 != [255, 255, 255]).count() > 1000,
            "{} is blank",
            p.display()
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files.json).unwrap()).unwrap();
    assert_eq!(json["methods"].as_array().unwrap().len(), out.methods.len());
}
