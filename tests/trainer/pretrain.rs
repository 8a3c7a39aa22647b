//! Pretraining on synthetic scenes and event-grouped cross-validation, as the default model's
//! recipe uses them (trainer/configs/flood-pretrain.toml, flood-adapt.toml), at smoke size.

use std::path::Path;

use crate::util::*;

/// Smoke-sized encoder dims shared by both stages.
const DIMS: &str =
    "dim = 64\ndepth = 2\nheads = 2\ndim_head = 32\nmlp_ratio = 2\nhead = \"deconv-light\"\n";

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn pretrain_config(dir: &Path, out: &Path) -> std::path::PathBuf {
    write(
        dir,
        "pretrain.toml",
        &format!(
            "seed = 3\nout = {out:?}\n[model]\n{DIMS}arm = \"full\"\n\
             [data]\ncrop_px = 64\n[data.synthetic]\nscenes = 24\nsize = 128\n\
             [optim]\nsteps = 80\nbatch = 8\nlr = 3e-3\nwarmup_steps = 10\nsave_every = 80\n"
        ),
    )
}

/// Pretraining on drawn scenes learns them (running water IoU in the log) and writes the
/// encoder under Clay's key names; a LoRA run loads it like an official checkpoint and keeps
/// it bit-identical.
#[test]
fn pretraining_on_synthetic_scenes_writes_a_clay_checkpoint_that_lora_starts_from() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let pre = dir.path().join("pre");
    run_ok(
        floodtrain()
            .args(["-q", "train", "--config"])
            .arg(pretrain_config(dir.path(), &pre)),
    );
    let log = std::fs::read_to_string(pre.join("train.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    let iou = last["running_iou"].as_f64().unwrap();
    eprintln!("synthetic running water IoU after 80 steps: {iou:.3}");
    assert!(
        iou > 0.6,
        "pretraining did not learn the synthetic scenes: IoU {iou}"
    );
    let encoder = pre.join("encoder.safetensors");
    assert!(encoder.is_file());

    let adapt = dir.path().join("adapt");
    run_ok(
        floodtrain()
            .args(["-q", "train", "--data"])
            .arg(shared.join("data/sen1floods11"))
            .args([
                "--train-chips",
                "India_900498",
                "--crop-px",
                "64",
                "--steps",
                "3",
            ])
            .args([
                "--mode",
                "lora",
                "--lora-rank",
                "4",
                "--batch",
                "2",
                "--out",
            ])
            .arg(&adapt)
            .arg("--config")
            .arg(write(
                dir.path(),
                "adapt.toml",
                &format!("out = \"unused\"\n[model]\n{DIMS}\n[data]\ndir = \"unused\"\n"),
            ))
            .arg("--checkpoint")
            .arg(&encoder),
    );
    assert_base_untouched(&adapt, &encoder);
}

/// `floodtrain cv` holds out one event per fold: each fold's result holds exactly its event's
/// chips, the summary pools them, and a rerun reuses the finished folds.
#[test]
fn cross_validation_holds_out_each_event_and_reuses_finished_folds() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let recipe = write(
        dir.path(),
        "recipe.toml",
        &format!(
            "seed = 5\nout = \"unused\"\n[model]\n{DIMS}arm = \"lora\"\nlora_rank = 4\n\
             [data]\ndir = {:?}\ncrop_px = 64\n[optim]\nsteps = 4\nbatch = 2\n",
            shared.join("data/sen1floods11")
        ),
    );
    let out = dir.path().join("cv");
    let cv = |extra: &[&str]| {
        let mut cmd = floodtrain();
        cmd.args(["-q", "cv", "--config"])
            .arg(&recipe)
            .args([
                "--arms",
                "lora-random,frozen-random",
                "--events",
                "India,Spain",
                "--out",
            ])
            .arg(&out)
            .args(extra);
        cmd
    };
    let table = run_ok(&mut cv(&[]));
    assert!(
        table.contains("lora-random") && table.contains("India"),
        "{table}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cv.json")).unwrap()).unwrap();
    let arm = &summary["arms"]["lora-random"];
    let chips: Vec<&String> = arm["chips"].as_object().unwrap().keys().collect();
    assert_eq!(chips, ["India_900498", "Spain_6860600", "Spain_7370579"]);
    let fold: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("lora-random/Spain/fold.json")).unwrap(),
    )
    .unwrap();
    let fold_chips: Vec<&String> = fold["chips"].as_object().unwrap().keys().collect();
    assert_eq!(fold_chips, ["Spain_6860600", "Spain_7370579"]);
    // Pooled counts are the sum of the folds'.
    let tp = |v: &serde_json::Value| v["counts"]["tp"].as_u64().unwrap();
    assert_eq!(
        tp(&arm["pooled"]),
        tp(&arm["events"]["India"]) + tp(&arm["events"]["Spain"])
    );
    // A rerun trains nothing and reports the same.
    let started = std::time::Instant::now();
    let again = run_ok(&mut cv(&[]));
    assert_eq!(again, table);
    assert!(
        started.elapsed().as_secs() < 20,
        "finished folds were retrained"
    );
    // Arms that start from a checkpoint need one.
    let err = run_code(
        floodtrain()
            .args(["-q", "cv", "--config"])
            .arg(&recipe)
            .args(["--arms", "lora", "--out"])
            .arg(&out),
        2,
    );
    assert!(err.contains("model.checkpoint"), "{err}");
}
