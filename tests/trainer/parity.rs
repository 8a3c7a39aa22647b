use std::collections::HashMap;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::util::*;

#[test]
fn parity_passes_on_the_shared_fixture_for_both_checkpoint_formats() {
    let shared = need_shared!();
    let out = run_ok(floodtrain().arg("parity").arg(parity_fixture(&shared)));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["pass"], true);
    let checkpoints = report["checkpoints"].as_array().unwrap();
    assert_eq!(checkpoints.len(), 2);
    for c in checkpoints {
        let diffs = c["max_abs_diff"].as_object().unwrap();
        for stage in [
            "patch_kernel",
            "patch_embed",
            "with_encodings",
            "encoder_out",
        ] {
            let d = diffs[stage].as_f64().unwrap();
            assert!(d <= 1e-4, "{}: {stage} differs by {d}", c["file"]);
        }
    }
}

/// The check must be able to fail: shift the stored encoder output by 1e-3 and expect exit 1.
#[test]
fn parity_fails_when_the_reference_output_differs() {
    let shared = need_shared!();
    let fixture = parity_fixture(&shared);
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "clay_encoder.ckpt",
        "clay_encoder.safetensors",
        "config.json",
    ] {
        std::fs::copy(fixture.join(f), dir.path().join(f)).unwrap();
    }
    let bytes = std::fs::read(fixture.join("io.safetensors")).unwrap();
    let io = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: HashMap<String, (Vec<usize>, Vec<u8>)> = HashMap::new();
    for (name, view) in io.tensors() {
        let mut data = view.data().to_vec();
        if name == "encoder_out" {
            let first = f32::from_le_bytes(data[0..4].try_into().unwrap()) + 1e-3;
            data[0..4].copy_from_slice(&first.to_le_bytes());
        }
        tensors.insert(name, (view.shape().to_vec(), data));
    }
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(k, (shape, data))| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.path().join("io.safetensors")).unwrap();
    let out = floodtrain().arg("parity").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["pass"], false);
    let d = report["checkpoints"][0]["max_abs_diff"]["encoder_out"]
        .as_f64()
        .unwrap();
    assert!((d - 1e-3).abs() < 1e-5, "{d}");
}

#[test]
fn params_match_the_papers_counts() {
    let out = run_ok(floodtrain().args([
        "params",
        "--preset",
        "large",
        "--mode",
        "lora",
        "--lora-rank",
        "256",
        "--lora-targets",
        "qkv",
        "--json",
    ]));
    let counts: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(counts["lora"], 25_165_824);
    assert_eq!(counts["encoder"], 311_442_944);
    assert_eq!(
        counts["trainable"],
        counts["lora"].as_u64().unwrap() + counts["head"].as_u64().unwrap()
    );
    let base =
        run_ok(floodtrain().args(["params", "--preset", "base", "--mode", "frozen", "--json"]));
    let base: serde_json::Value = serde_json::from_str(&base).unwrap();
    assert_eq!(base["encoder"], 92_102_144);
    assert_eq!(base["trainable"], base["head"]);
}
