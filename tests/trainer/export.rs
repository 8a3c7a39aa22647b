//! The exported ONNX computes what the trainer computes: burn forward vs tract (floodrt's
//! engine) vs onnxruntime, and onnx.checker accepts it.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::{Device, Distribution, Tensor};
use floodrt::engine::{Engine, EngineConfig, ModelFile};
use floodtrain::train::fit::load_run;

use crate::util::*;

/// A Python with onnx and onnxruntime, or None (skip) outside CI.
fn onnx_python() -> Option<String> {
    let python = std::env::var("FLOOD_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python).args(["-c", "import onnx, onnxruntime"]).output().is_ok_and(|o| o.status.success());
    if !ok && std::env::var_os("CI").is_some() {
        panic!("CI needs `{python}` with onnx and onnxruntime (pip install onnx onnxruntime)");
    }
    ok.then_some(python)
}

/// Runs onnx.checker (full check) and onnxruntime on a raw f32 input; returns the output.
fn onnxruntime(python: &str, model: &Path, input: &[f32], shape: [usize; 4], dir: &Path) -> Vec<f32> {
    let (inp, out) = (dir.join("input.f32"), dir.join("ort.f32"));
    std::fs::write(&inp, input.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let script = format!(
        "import numpy as np, onnx, onnxruntime as ort\n\
         m = onnx.load({model:?}); onnx.checker.check_model(m, full_check=True)\n\
         x = np.fromfile({inp:?}, dtype=np.float32).reshape({shape:?})\n\
         s = ort.InferenceSession({model:?}, providers=['CPUExecutionProvider'])\n\
         s.run(None, {{'pixels': x}})[0].astype(np.float32).tofile({out:?})\n"
    );
    let status = Command::new(python).args(["-c", &script]).status().unwrap();
    assert!(status.success(), "onnx checker / onnxruntime failed on {}", model.display());
    std::fs::read(&out).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn train_and_export(shared: &Path, dir: &Path, sensor: &str, tile: usize, batch: usize) -> (PathBuf, PathBuf) {
    let run = dir.join(format!("run-{sensor}"));
    run_ok(
        floodtrain()
            .args(["--quiet", "train", "--preset", "tiny", "--mode", "lora", "--lora-targets", "qkv,fc1", "--steps", "2", "--batch", "2", "--crop-px", "64"])
            .args(["--sensor", sensor, "--train-chips", "India_900498,Spain_7370579", "--data"])
            .arg(shared.join("data/sen1floods11"))
            .arg("--out")
            .arg(&run),
    );
    let model = dir.join(format!("{sensor}.onnx"));
    run_ok(
        floodtrain()
            .args(["--quiet", "export", "--tile", &tile.to_string(), "--batch", &batch.to_string(), "--checkpoint"])
            .arg(&run)
            .arg("--out")
            .arg(&model),
    );
    (run, model)
}

fn check_export(sensor: &str, bands: usize) {
    let shared = need_shared!();
    let Some(python) = onnx_python() else {
        eprintln!("skipping: no python3 with onnx and onnxruntime (set FLOOD_PYTHON)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (tile, batch) = (64, 2);
    let (run, model_path) = train_and_export(&shared, dir.path(), sensor, tile, batch);
    let shape = [batch, bands, tile, tile];

    let device = Device::flex();
    device.seed(5);
    let input = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let values: Vec<f32> = input.to_data().try_to_vec::<f32>().unwrap();
    let (_, model) = load_run(&run, &device).unwrap();
    let ours: Vec<f32> = model.forward(input).into_data().try_to_vec::<f32>().unwrap();

    let file = ModelFile::read(&model_path).unwrap();
    let manifest = file.embedded_manifest().unwrap().expect("the export embeds its manifest");
    assert_eq!(manifest.input.bands.len(), bands);
    let config = EngineConfig { tile_px: tile, batch, threads: 1, precision: flood_targets::Precision::F32 };
    let tract = Engine::new(&file, &manifest, config).unwrap().run_raw(values.clone()).unwrap();
    let ort = onnxruntime(&python, &model_path, &values, shape, dir.path());

    let (d_tract, d_ort) = (max_abs_diff(&ours, &tract), max_abs_diff(&ours, &ort));
    eprintln!("{sensor}: max |burn − tract| {d_tract:.2e}, max |burn − onnxruntime| {d_ort:.2e}");
    assert!(d_tract <= 1e-4 && d_ort <= 1e-4, "tract {d_tract}, onnxruntime {d_ort}");
}

#[test]
fn a_lora_trained_s1_model_exports_to_the_same_numbers() {
    check_export("s1", 2);
}

#[test]
fn a_lora_trained_s2_model_exports_to_the_same_numbers() {
    check_export("s2", 10);
}
