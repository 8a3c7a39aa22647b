//! `floodrt eval` reproduces the published reference IoU of the real UNet.

use crate::util::{chip, data_dir_with, floodrt, mask_of, read_json, run_ok, unet_flags};

fn eval_unet(shared: &std::path::Path, overlap: &str) -> serde_json::Value {
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
            .args(unet_flags(shared)),
    );
    let v: serde_json::Value =
        serde_json::from_str(&out).expect("eval --json prints one JSON object");
    assert_eq!(v["pooled"]["chips"], 11);
    v
}

#[test]
fn eval_without_overlap_reproduces_the_reference_iou_and_counts() {
    let shared = need_shared!();
    let reference = read_json(&shared.join("data/models/eoepca-golden/reference.json"));
    let expected = reference["pooled_water_iou"].as_f64().unwrap();
    let plain = eval_unet(&shared, "0");
    let iou = plain["pooled"]["iou"].as_f64().unwrap();
    eprintln!("pooled water IoU: {iou:.4} (reference {expected:.4})");
    assert!(
        (iou - expected).abs() <= 0.0005,
        "{iou} vs reference {expected}"
    );
    for chip in plain["chips"].as_array().unwrap() {
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
fn blending_overlaps_does_not_lose_accuracy() {
    let shared = need_shared!();
    let reference = read_json(&shared.join("data/models/eoepca-golden/reference.json"));
    let expected = reference["pooled_water_iou"].as_f64().unwrap();
    let blended = eval_unet(&shared, "32")["pooled"]["iou"].as_f64().unwrap();
    eprintln!("pooled water IoU with 32 px overlap and blending: {blended:.4}");
    assert!(
        blended >= expected - 0.005,
        "blending lost accuracy: {blended} vs {expected}"
    );
}

#[test]
fn the_embedded_baseline_scores_like_a_fixed_vh_threshold() {
    let shared = need_shared!();
    let out = run_ok(
        floodrt()
            .args([
                "eval",
                "--json",
                "--overlap",
                "0",
                "--model",
                "embedded:vh-threshold",
            ])
            .arg("--data")
            .arg(shared.join("data/sen1floods11")),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let iou = v["pooled"]["iou"].as_f64().unwrap();
    // The shared data's README gives 0.724 for "fixed VH < −20 dB" on these chips.
    assert!((iou - 0.724).abs() < 0.002, "{iou}");
}

/// The built-in default model is the file its card describes and scores what the card
/// records on the shared chips (it was trained on them: a regression check, not an estimate;
/// the card's cross-validated figures are the estimate). Its maps are clean: far less of its
/// water lies in specks under 10 px than the threshold's.
#[test]
fn the_default_model_scores_what_its_card_records_with_clean_maps() {
    let shared = need_shared!();
    let card = floodrt::embedded::card(floodrt::embedded::DEFAULT).expect("the default has a card");
    let eval = |model: &str| -> serde_json::Value {
        let out = run_ok(
            floodrt()
                .args(["eval", "--json", "--model", model, "--data"])
                .arg(shared.join("data/sen1floods11")),
        );
        serde_json::from_str(&out).unwrap()
    };
    let v = eval(floodrt::embedded::DEFAULT);
    assert_eq!(v["model"]["sha256"], card.sha256.as_str());
    let iou = v["pooled"]["iou"].as_f64().unwrap();
    eprintln!(
        "default model pooled water IoU {iou:.4} (card {:.4})",
        card.shared_chips_iou
    );
    assert!(
        (iou - card.shared_chips_iou).abs() <= 0.01,
        "{iou} vs card {}",
        card.shared_chips_iou
    );
    let specks = v["pooled"]["small_component_share"].as_f64().unwrap();
    let threshold = eval("embedded:vh-threshold")["pooled"]["small_component_share"]
        .as_f64()
        .unwrap();
    eprintln!("water in components under 10 px: default {specks:.5}, threshold {threshold:.5}");
    assert!(
        specks < threshold / 10.0,
        "{specks} vs threshold {threshold}"
    );
}

#[test]
fn eval_masks_are_the_masks_segment_writes() {
    let shared = need_shared!();
    let chips = ["India_900498", "Spain_7370579"];
    let dir = tempfile::tempdir().unwrap();
    let (data, masks) = (dir.path().join("data"), dir.path().join("masks"));
    data_dir_with(&shared, &chips, &data);
    run_ok(
        floodrt()
            .args(["eval", "-q", "--data"])
            .arg(&data)
            .arg("--masks")
            .arg(&masks),
    );
    for name in chips {
        let segmented = dir.path().join(format!("{name}.tif"));
        run_ok(
            floodrt()
                .arg("segment")
                .arg(chip(&shared, name))
                .arg("-o")
                .arg(&segmented)
                .arg("-q"),
        );
        let from_eval = mask_of(&masks.join(format!("{name}_mask.tif")));
        let bits = |m: Vec<f32>| m.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        assert_eq!(from_eval.len(), 512 * 512, "{name}");
        assert!(
            bits(from_eval) == bits(mask_of(&segmented)),
            "{name}: eval's mask differs from segment's"
        );
    }
}
