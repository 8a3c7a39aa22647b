use std::path::Path;

use burn::tensor::Device;
use floodtrain::model::flood::param_values;
use floodtrain::train::fit::load_run;

use crate::util::*;

const CHIPS: &str = "India_900498,Spain_7370579,Ghana_97059";

fn smoke(shared: &Path, out: &Path) -> std::process::Command {
    let mut cmd = floodtrain();
    cmd.arg("--quiet")
        .arg("train")
        .arg("--config")
        .arg(workspace().join("trainer/configs/smoke.toml"))
        .arg("--data")
        .arg(shared.join("data/sen1floods11"))
        .arg("--out")
        .arg(out);
    cmd
}

/// Trained on three shared chips, the smoke configuration's water IoU on them rises far above
/// the all-water and all-land baselines; the LoRA run leaves every encoder weight bit-identical.
#[test]
fn a_small_configuration_learns_and_leaves_the_base_untouched() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let checkpoint = parity_fixture(&shared).join("clay_encoder.safetensors");
    run_ok(smoke(&shared, &out).arg("--checkpoint").arg(&checkpoint));

    let json = run_ok(
        floodtrain()
            .args([
                "eval",
                "--json",
                "--tile",
                "64",
                "--chips",
                CHIPS,
                "--checkpoint",
            ])
            .arg(&out)
            .arg("--data")
            .arg(shared.join("data/sen1floods11")),
    );
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let pooled = &report["pooled"];
    let c = &pooled["counts"];
    let count = |k: &str| c[k].as_f64().unwrap();
    let water = count("tp") + count("fn");
    let all_water_iou = water / (water + count("fp") + count("tn"));
    let iou = pooled["iou"].as_f64().unwrap();
    eprintln!("water IoU {iou:.4}; all-water baseline {all_water_iou:.4}; all-land 0");
    assert!(
        iou > 0.55 && iou > all_water_iou + 0.2,
        "IoU {iou} vs all-water {all_water_iou}"
    );
    assert_eq!(report["chips"].as_object().unwrap().len(), 3);
    assert!(report["events"]["India"]["f1"].as_f64().unwrap() > 0.0);

    // Every base weight equals the checkpoint's, bit for bit.
    assert_base_untouched(&out, &checkpoint);
}

/// Same seed, same run; stopping and resuming gives the run that never stopped.
#[test]
fn a_resumed_run_matches_an_uninterrupted_one() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let (straight, resumed) = (dir.path().join("straight"), dir.path().join("resumed"));
    run_ok(smoke(&shared, &straight).args(["--steps", "6"]));
    run_ok(smoke(&shared, &resumed).args(["--steps", "3"]));
    run_ok(smoke(&shared, &resumed).args(["--steps", "6", "--resume"]));
    assert_eq!(logged_losses(&straight).len(), 6);
    assert_eq!(logged_losses(&straight), logged_losses(&resumed));
    // The files hold random parameter ids; the values must agree bit for bit.
    let weights = |dir: &Path| param_values(&load_run(dir, &Device::flex()).unwrap().1);
    let (a, b) = (weights(&straight), weights(&resumed));
    assert_eq!(a.len(), b.len());
    for ((path, x), (_, y)) in a.iter().zip(&b) {
        assert!(
            x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{path} differs after resume"
        );
    }
}

/// Sentinel-2 chips (Clay's 10 bands picked from S2Hand's 13) train and evaluate end to end;
/// chips may come from a Sen1Floods11 split CSV.
#[test]
fn sentinel2_chips_and_split_csvs_work() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let split = dir.path().join("train.csv");
    std::fs::write(&split, "India_900498_S1Hand.tif,India_900498_LabelHand.tif\nSpain_7370579_S1Hand.tif,Spain_7370579_LabelHand.tif\n").unwrap();
    let out = dir.path().join("run");
    run_ok(
        smoke(&shared, &out)
            .args(["--sensor", "s2", "--steps", "2", "--train-split"])
            .arg(&split),
    );
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(model["sensor"], "s2");
    let json = run_ok(
        floodtrain()
            .args(["eval", "--json", "--tile", "64", "--split"])
            .arg(&split)
            .arg("--checkpoint")
            .arg(&out)
            .arg("--data")
            .arg(shared.join("data/sen1floods11")),
    );
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let chips: Vec<&String> = report["chips"].as_object().unwrap().keys().collect();
    assert_eq!(chips, ["India_900498", "Spain_7370579"]);

    // A split naming a chip that is not there is refused with its path.
    std::fs::write(&split, "Atlantis_1_S1Hand.tif,Atlantis_1_LabelHand.tif\n").unwrap();
    let err = run_code(
        smoke(&shared, &dir.path().join("bad"))
            .arg("--train-split")
            .arg(&split),
        2,
    );
    assert!(err.contains("Atlantis_1"), "{err}");
}
