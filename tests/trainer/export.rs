//! Export (#4): the ONNX computes what the trainer computes (burn vs tract vs onnxruntime, and
//! onnx.checker accepts it); int8 and f16 stay close to f32; a base plus its signed adapter,
//! merged on the device, gives the merged export; bad adapters are refused with a reason.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::{Device, Distribution, Tensor};
use flood_models::adapter::{Adapter, DEFAULT_MAX_BODY_BYTES};
use flood_models::sign::{SigningKey, TrustedKeys};
use floodrt::cli::{chip_pairs, evaluate, ModelArgs};
use floodrt::engine::{Engine, EngineConfig};
use floodtrain::train::fit::load_run;

use crate::util::*;

/// A Python with onnx and onnxruntime, or None outside CI (those checks are then skipped).
fn onnx_python() -> Option<String> {
    let python = std::env::var("FLOOD_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import onnx, onnxruntime"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var_os("CI").is_some() {
        panic!("CI needs `{python}` with onnx and onnxruntime (pip install onnx onnxruntime)");
    }
    if !ok {
        eprintln!("skipping the onnxruntime and onnx.checker parts: no python3 with onnx and onnxruntime (set FLOOD_PYTHON)");
    }
    ok.then_some(python)
}

/// Runs onnx.checker (full check) and onnxruntime on a raw f32 input; returns the output.
/// onnxruntime's graph optimisations are off: with them it runs int8 weights through dynamically
/// quantised matmuls (activations rounded to uint8), which is not what the graph says.
fn onnxruntime(python: &str, model: &Path, input: &[f32], shape: [usize; 4]) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let (inp, out) = (dir.path().join("input.f32"), dir.path().join("ort.f32"));
    std::fs::write(
        &inp,
        input
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let script = format!(
        "import numpy as np, onnx, onnxruntime as ort\n\
         m = onnx.load({model:?}); onnx.checker.check_model(m, full_check=True)\n\
         x = np.fromfile({inp:?}, dtype=np.float32).reshape({shape:?})\n\
         o = ort.SessionOptions(); o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL\n\
         s = ort.InferenceSession({model:?}, o, providers=['CPUExecutionProvider'])\n\
         s.run(None, {{'pixels': x}})[0].astype(np.float32).tofile({out:?})\n"
    );
    let status = Command::new(python).args(["-c", &script]).status().unwrap();
    assert!(
        status.success(),
        "onnx checker / onnxruntime failed on {}",
        model.display()
    );
    std::fs::read(&out)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Chips the test models train on; every score is taken on the others.
const TRAIN_CHIPS: [&str; 2] = ["India_900498", "Spain_7370579"];

pub fn train(shared: &Path, dir: &Path, sensor: &str, steps: usize) -> PathBuf {
    let run = dir.join(format!("run-{sensor}"));
    run_ok(
        floodtrain()
            .args([
                "--quiet",
                "train",
                "--preset",
                "tiny",
                "--mode",
                "lora",
                "--lora-targets",
                "qkv,fc1",
                "--batch",
                "2",
                "--crop-px",
                "64",
            ])
            .args([
                "--steps",
                &steps.to_string(),
                "--sensor",
                sensor,
                "--train-chips",
                &TRAIN_CHIPS.join(","),
                "--data",
            ])
            .arg(shared.join("data/sen1floods11"))
            .arg("--out")
            .arg(&run),
    );
    run
}

pub fn keygen(path: &Path) -> PathBuf {
    run_ok(floodtrain().args(["keygen", "--out"]).arg(path));
    path.with_extension("key.pub")
}

/// `floodtrain export` of `run` into `dir/{stem}.onnx` (+ `{stem}-base.onnx` and
/// `{stem}.flad` when a key is given).
fn export(
    run: &Path,
    dir: &Path,
    stem: &str,
    quantize: &str,
    tile: usize,
    batch: usize,
    key: Option<&Path>,
) -> PathBuf {
    let out = dir.join(format!("{stem}.onnx"));
    let mut cmd = floodtrain();
    cmd.args([
        "--quiet",
        "export",
        "--quantize",
        quantize,
        "--tile",
        &tile.to_string(),
        "--batch",
        &batch.to_string(),
    ])
    .arg("--checkpoint")
    .arg(run)
    .arg("--out")
    .arg(&out);
    if let Some(key) = key {
        cmd.arg("--base-out")
            .arg(dir.join(format!("{stem}-base.onnx")));
        cmd.arg("--adapter-out")
            .arg(dir.join(format!("{stem}.flad")));
        cmd.arg("--signing-key").arg(key);
    }
    run_ok(&mut cmd);
    out
}

/// The CLI's own path for `--model M [--adapter A --trust K]`.
fn model_args(model: &Path, adapter: Option<(&Path, &Path)>) -> ModelArgs {
    ModelArgs {
        model: Some(model.to_path_buf()),
        adapter: adapter.map(|(a, _)| a.to_path_buf()),
        trust: adapter.map(|(_, k)| k.to_path_buf()),
        threads: Some(2),
        // The default 32 px suits 256 px tiles; these tests export 64 px tiles.
        overlap: 16,
        ..ModelArgs::default()
    }
}

fn tract(args: &ModelArgs, input: Vec<f32>) -> Vec<f32> {
    let (file, manifest, _) = args.spec().load_file_and_manifest().unwrap();
    let config = EngineConfig {
        tile_px: manifest.input.tile_px as usize,
        batch: manifest.input.batch as usize,
        threads: 2,
        precision: flood_targets::Precision::F32,
        tile_workers: None,
        engine: Default::default(),
    };
    Engine::new(&file, &manifest, config)
        .unwrap()
        .run_raw(input)
        .unwrap()
}

/// The health-check difference floodrt sees for `adapter` merged into `base`.
fn health_diff(base: &Path, adapter: &Path, key_pub: &Path) -> (f32, f32) {
    let verified = floodrt::cli::read_adapter(adapter, key_pub).unwrap();
    let expected = verified
        .adapter()
        .health
        .clone()
        .expect("exports sign health values");
    let file = floodrt::engine::ModelFile::read(base)
        .unwrap()
        .merge_adapter(&verified)
        .unwrap();
    let manifest = file.embedded_manifest().unwrap().unwrap();
    let config = EngineConfig {
        tile_px: manifest.input.tile_px as usize,
        batch: manifest.input.batch as usize,
        threads: 2,
        precision: flood_targets::Precision::F32,
        tile_workers: None,
        engine: Default::default(),
    };
    let diff = Engine::new(&file, &manifest, config)
        .unwrap()
        .check_health(&expected, "test")
        .unwrap();
    (diff, expected.tolerance)
}

fn random_input(shape: [usize; 4]) -> Tensor<4> {
    let device = Device::flex();
    device.seed(5);
    Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device)
}

/// burn vs tract vs onnxruntime on the merged export; returns tract's output.
fn check_parity(run: &Path, model: &Path, shape: [usize; 4], python: Option<&str>) -> Vec<f32> {
    let input = random_input(shape);
    let values: Vec<f32> = input.to_data().try_to_vec::<f32>().unwrap();
    let (_, trained) = load_run(run, &Device::flex()).unwrap();
    let ours: Vec<f32> = trained
        .forward(input)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let tract = tract(&model_args(model, None), values.clone());
    let d_tract = max_abs_diff(&ours, &tract);
    eprintln!("{}: max |burn − tract| {d_tract:.2e}", model.display());
    assert!(d_tract <= 1e-4, "burn vs tract {d_tract}");
    if let Some(python) = python {
        let d_ort = max_abs_diff(&ours, &onnxruntime(python, model, &values, shape));
        eprintln!("{}: max |burn − onnxruntime| {d_ort:.2e}", model.display());
        assert!(d_ort <= 1e-4, "burn vs onnxruntime {d_ort}");
    }
    tract
}

#[test]
fn a_lora_trained_s1_model_and_its_base_plus_adapter_give_the_trainers_numbers() {
    let shared = need_shared!();
    let python = onnx_python();
    let dir = tempfile::tempdir().unwrap();
    let (tile, batch) = (64, 2);
    // Enough steps for the adapter to move the output well past the tolerance.
    let run = train(&shared, dir.path(), "s1", 10);
    let key_pub = keygen(&dir.path().join("workstation.key"));
    let merged = export(
        &run,
        dir.path(),
        "s1",
        "none",
        tile,
        batch,
        Some(&dir.path().join("workstation.key")),
    );
    let (base, adapter) = (dir.path().join("s1-base.onnx"), dir.path().join("s1.flad"));
    let shape = [batch, 2, tile, tile];
    let merged_out = check_parity(&run, &merged, shape, python.as_deref());

    let values = random_input(shape).to_data().try_to_vec::<f32>().unwrap();
    let on_device = tract(
        &model_args(&base, Some((&adapter, &key_pub))),
        values.clone(),
    );
    let base_only = tract(&model_args(&base, None), values.clone());
    let (d_device, d_base) = (
        max_abs_diff(&merged_out, &on_device),
        max_abs_diff(&merged_out, &base_only),
    );
    eprintln!(
        "merged on the device vs merged export: {d_device:.2e}; base alone differs by {d_base:.2e}"
    );
    assert!(d_device <= 1e-4, "device merge {d_device}");
    let (health, tolerance) = health_diff(&base, &adapter, &key_pub);
    eprintln!(
        "health check (f32 base): block-mean difference {health:.2e}, tolerance {tolerance:.0e}"
    );
    assert!(
        d_base >= 100.0 * d_device.max(1e-7),
        "the adapter must move the output far more than the merge error ({d_base} vs {d_device})"
    );
    if let Some(python) = &python {
        onnxruntime(python, &base, &values, shape);
    }
}

#[test]
fn a_lora_trained_s2_model_exports_to_the_same_numbers() {
    let shared = need_shared!();
    let python = onnx_python();
    let dir = tempfile::tempdir().unwrap();
    let run = train(&shared, dir.path(), "s2", 2);
    let model = export(&run, dir.path(), "s2", "none", 64, 2, None);
    check_parity(&run, &model, [2, 10, 64, 64], python.as_deref());
}

/// Pooled water IoU and the masks of `args` on `pairs`.
fn score(args: &ModelArgs, pairs: &[(String, PathBuf, PathBuf)]) -> (f64, Vec<u8>) {
    let prepared = args.prepare().unwrap();
    let chips = evaluate(
        &prepared,
        args,
        pairs,
        None,
        &indicatif::ProgressBar::hidden(),
    )
    .unwrap();
    let mut pooled = flood_models::metrics::Confusion::default();
    chips.iter().for_each(|c| pooled.add(&c.confusion));
    (
        pooled.scores().iou.unwrap_or(0.0),
        chips.into_iter().flat_map(|c| c.mask).collect(),
    )
}

fn agreement(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

#[test]
fn int8_and_f16_exports_stay_close_to_f32_and_int8_merges_on_the_device() {
    let shared = need_shared!();
    let python = onnx_python();
    let dir = tempfile::tempdir().unwrap();
    let (tile, batch) = (64, 4);
    // Enough steps for a model that separates water from land, so the IoU means something.
    let run = train(&shared, dir.path(), "s1", 60);
    let key = dir.path().join("workstation.key");
    let key_pub = keygen(&key);
    let f32_model = export(&run, dir.path(), "f32", "none", tile, batch, None);
    let int8_model = export(&run, dir.path(), "int8", "int8", tile, batch, Some(&key));
    let f16_model = export(&run, dir.path(), "f16", "f16", tile, batch, None);
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    let (f32_bytes, int8_bytes, f16_bytes) =
        (size(&f32_model), size(&int8_model), size(&f16_model));
    eprintln!("sizes: f32 {f32_bytes}, f16 {f16_bytes}, int8 {int8_bytes} ({:.1} %), int8 base {}, adapter {}", 100.0 * int8_bytes as f64 / f32_bytes as f64, size(&dir.path().join("int8-base.onnx")), size(&dir.path().join("int8.flad")));
    assert!(
        int8_bytes as f64 <= 0.30 * f32_bytes as f64,
        "int8 {int8_bytes} vs f32 {f32_bytes}"
    );
    assert!(
        f16_bytes as f64 <= 0.55 * f32_bytes as f64,
        "f16 {f16_bytes} vs f32 {f32_bytes}"
    );

    // tract and onnxruntime read the quantized weights the same way.
    if let Some(python) = &python {
        let shape = [batch, 2, tile, tile];
        let values = random_input(shape).to_data().try_to_vec::<f32>().unwrap();
        for model in [&int8_model, &f16_model] {
            let d = max_abs_diff(
                &tract(&model_args(model, None), values.clone()),
                &onnxruntime(python, model, &values, shape),
            );
            eprintln!("{}: max |tract − onnxruntime| {d:.2e}", model.display());
            assert!(d <= 1e-4, "{}: {d}", model.display());
        }
        onnxruntime(python, &dir.path().join("int8-base.onnx"), &values, shape);
    }

    let pairs: Vec<_> = chip_pairs(&shared.join("data/sen1floods11"))
        .unwrap()
        .into_iter()
        .filter(|(chip, ..)| !TRAIN_CHIPS.contains(&chip.as_str()))
        .collect();
    let (iou_f32, mask_f32) = score(&model_args(&f32_model, None), &pairs);
    let (iou_int8, mask_int8) = score(&model_args(&int8_model, None), &pairs);
    let (iou_f16, _) = score(&model_args(&f16_model, None), &pairs);
    let (iou_device, mask_device) = score(
        &model_args(
            &dir.path().join("int8-base.onnx"),
            Some((&dir.path().join("int8.flad"), &key_pub)),
        ),
        &pairs,
    );
    let (same_int8, same_device) = (
        agreement(&mask_f32, &mask_int8),
        agreement(&mask_int8, &mask_device),
    );
    let (health, tolerance) = health_diff(
        &dir.path().join("int8-base.onnx"),
        &dir.path().join("int8.flad"),
        &key_pub,
    );
    eprintln!(
        "health check (int8 base): block-mean difference {health:.2e}, tolerance {tolerance:.0e}"
    );
    eprintln!(
        "pooled water IoU on {} held-out chips: f32 {iou_f32:.4}, int8 {iou_int8:.4}, f16 {iou_f16:.4}, int8 base + adapter {iou_device:.4}; \
         mask agreement int8 vs f32 {:.4} %, device merge vs int8 export {:.4} %",
        pairs.len(),
        100.0 * same_int8,
        100.0 * same_device
    );
    assert!(
        iou_f32 > 0.2,
        "the model must have learned something ({iou_f32})"
    );
    assert!(
        (iou_int8 - iou_f32).abs() <= 0.005,
        "int8 {iou_int8} vs f32 {iou_f32}"
    );
    assert!(same_device >= 0.999, "device merge agrees on {same_device}");
}

#[test]
fn bad_adapters_and_damaged_bases_are_refused_with_the_reason() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = train(&shared, d, "s1", 2);
    let key = d.join("workstation.key");
    let key_pub = keygen(&key);
    let other_pub = keygen(&d.join("stranger.key"));
    export(&run, d, "a", "none", 64, 2, Some(&key));
    export(&run, d, "b", "none", 32, 2, Some(&key));
    let (base, adapter) = (d.join("a-base.onnx"), d.join("a.flad"));
    let refused = |model: &Path, adapter: &Path, trust: &Path| -> String {
        let err = model_args(model, Some((adapter, trust)))
            .spec()
            .load_file_and_manifest()
            .err()
            .expect("refused");
        format!("{err:#}")
    };

    let mut bytes = std::fs::read(&adapter).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    let tampered = d.join("tampered.flad");
    std::fs::write(&tampered, &bytes).unwrap();
    let err = refused(&base, &tampered, &key_pub);
    assert!(
        err.contains("tampered.flad") && err.contains("signature does not match"),
        "{err}"
    );

    let err = refused(&base, &adapter, &other_pub);
    assert!(err.contains("not a trusted key"), "{err}");

    let err = refused(&d.join("b-base.onnx"), &adapter, &key_pub);
    assert!(
        err.contains("adapter is for base model") && err.contains("b-base.onnx"),
        "{err}"
    );

    // Signed by the trusted key but wrong inside: the merge and the health check catch it.
    let secret = SigningKey::from_hex(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let keys = TrustedKeys::parse(&std::fs::read_to_string(&key_pub).unwrap()).unwrap();
    let good = Adapter::verify(
        &std::fs::read(&adapter).unwrap(),
        &keys,
        DEFAULT_MAX_BODY_BYTES,
    )
    .unwrap()
    .into_adapter();
    let mut unknown = good.clone();
    unknown.deltas[0].weight = "encoder.blocks.99.attn.to_qkv.weight".into();
    std::fs::write(d.join("unknown.flad"), unknown.encode(&secret).unwrap()).unwrap();
    let err = refused(&base, &d.join("unknown.flad"), &key_pub);
    assert!(
        err.contains("blocks.99") && err.contains("does not list as mergeable"),
        "{err}"
    );
    unknown.deltas[0].weight = "encoder.blocks.0.attn.to_out.weight".into();
    std::fs::write(d.join("reshaped.flad"), unknown.encode(&secret).unwrap()).unwrap();
    let err = refused(&base, &d.join("reshaped.flad"), &key_pub);
    assert!(
        err.contains("as [192, 576]") && err.contains("has [192, 192]"),
        "{err}"
    );
    let mut unhealthy = good;
    unhealthy
        .health
        .as_mut()
        .unwrap()
        .block_means
        .iter_mut()
        .for_each(|m| *m += 0.5);
    std::fs::write(d.join("unhealthy.flad"), unhealthy.encode(&secret).unwrap()).unwrap();
    let err = refused(&base, &d.join("unhealthy.flad"), &key_pub);
    assert!(
        err.contains("unhealthy.flad") && err.contains("health check failed"),
        "{err}"
    );

    // One bit of a weight: raw_data follows the tensor's name in the protobuf.
    let mut bytes = std::fs::read(&base).unwrap();
    let name = b"encoder.blocks.0.ff.fc1.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 100;
    bytes[at] ^= 0x01;
    let damaged = d.join("damaged.onnx");
    std::fs::write(&damaged, &bytes).unwrap();
    let err = format!(
        "{:#}",
        model_args(&damaged, None)
            .spec()
            .load_file_and_manifest()
            .err()
            .expect("refused")
    );
    assert!(err.contains("damaged"), "{err}");

    // keygen never overwrites a key by accident.
    let err = run_code(floodtrain().args(["keygen", "--out"]).arg(&key), 2);
    assert!(err.contains("--force"), "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
