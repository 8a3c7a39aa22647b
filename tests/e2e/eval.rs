//! `floodrt eval` reproduces the published reference IoU of the real UNet.

use crate::util::{floodrt, read_json, run_ok, unet, unet_manifest};

fn pooled_iou(shared: &std::path::Path, overlap: &str) -> f64 {
    let out = run_ok(
        floodrt()
            .args([
                "eval",
                "--json",
                "--tile",
                "256",
                "--overlap",
                overlap,
                "--data",
            ])
            .arg(shared.join("data/sen1floods11"))
            .arg("--model")
            .arg(unet(shared))
            .arg("--manifest")
            .arg(unet_manifest()),
    );
    let v: serde_json::Value =
        serde_json::from_str(&out).expect("eval --json prints one JSON object");
    assert_eq!(v["pooled"]["chips"], 11);
    v["pooled"]["iou"].as_f64().expect("pooled.iou")
}

#[test]
fn eval_without_overlap_reproduces_the_reference_pooled_iou() {
    let shared = need_shared!();
    let reference = read_json(&shared.join("data/models/eoepca-golden/reference.json"));
    let expected = reference["pooled_water_iou"].as_f64().unwrap();
    let plain = pooled_iou(&shared, "0");
    eprintln!("pooled water IoU: {plain:.4} (reference {expected:.4})");
    assert!(
        (plain - expected).abs() <= 0.0005,
        "{plain} vs reference {expected}"
    );
    let blended = pooled_iou(&shared, "32");
    eprintln!("pooled water IoU with 32 px overlap and blending: {blended:.4}");
    assert!(
        blended >= expected - 0.005,
        "blending lost accuracy: {blended} vs {expected}"
    );
}

#[test]
fn eval_per_chip_counts_match_the_reference() {
    let shared = need_shared!();
    let reference = read_json(&shared.join("data/models/eoepca-golden/reference.json"));
    let out = run_ok(
        floodrt()
            .args(["eval", "--json", "--overlap", "0", "--data"])
            .arg(shared.join("data/sen1floods11"))
            .arg("--model")
            .arg(unet(&shared))
            .arg("--manifest")
            .arg(unet_manifest()),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for chip in v["chips"].as_array().unwrap() {
        let name = chip["chip"].as_str().unwrap();
        let want = &reference["chips"][name];
        for key in ["tp", "fp", "fn"] {
            let (got, exp) = (chip[key].as_i64().unwrap(), want[key].as_i64().unwrap());
            // Tie-breaking and float order may flip a pixel or two whose logits are equal.
            assert!((got - exp).abs() <= 2, "{name} {key}: {got} vs {exp}");
        }
    }
}

#[test]
fn the_embedded_baseline_scores_like_a_fixed_vh_threshold() {
    let shared = need_shared!();
    let out = run_ok(
        floodrt()
            .args(["eval", "--json", "--overlap", "0", "--data"])
            .arg(shared.join("data/sen1floods11")),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let iou = v["pooled"]["iou"].as_f64().unwrap();
    // The shared data's README gives 0.724 for "fixed VH < −20 dB" on these chips.
    assert!((iou - 0.724).abs() < 0.002, "{iou}");
}
