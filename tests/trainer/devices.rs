//! Data-parallel training (`--devices`): replicas on several devices, each on its share of the
//! batch, give the run of one device with the whole batch. On this CPU-only machine the two
//! replicas share the CPU device: same code path, same gradient summation, no speed-up.

use std::path::Path;

use crate::util::*;

/// A smoke-sized full fine-tune on synthetic scenes with a per-pixel loss (cross-entropy: a
/// mean over valid pixels, which shards add up to exactly).
fn config(dir: &Path, out: &Path, loss: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{loss}.toml"));
    std::fs::write(
        &path,
        format!(
            "seed = 5\nout = {out:?}\n[model]\ndim = 64\ndepth = 2\nheads = 2\ndim_head = 32\n\
             mlp_ratio = 2\narm = \"full\"\nhead = \"deconv-light\"\nloss = \"{loss}\"\n\
             [data]\ncrop_px = 32\n[data.synthetic]\nscenes = 4\nsize = 64\n\
             [optim]\nsteps = 6\nbatch = 5\nlr = 3e-3\nwarmup_steps = 2\nsave_every = 6\n"
        ),
    )
    .unwrap();
    path
}

fn train(dir: &Path, name: &str, loss: &str, devices: &str) -> Vec<f64> {
    let out = dir.join(name);
    run_ok(
        floodtrain()
            .args(["-q", "train", "--devices", devices, "--config"])
            .arg(config(dir, &out, loss)),
    );
    logged_losses(&out)
}

#[test]
fn two_replicas_follow_the_loss_curve_of_one_device() {
    let dir = tempfile::tempdir().unwrap();
    let one = train(dir.path(), "one", "cross-entropy", "cpu");
    // A batch of 5 on two replicas: shards of 3 and 2, weighted by their valid pixels.
    let two = train(dir.path(), "two", "cross-entropy", "cpu,cpu");
    eprintln!("one device {one:?}\ntwo replicas {two:?}");
    assert_eq!(one.len(), 6);
    for (step, (a, b)) in one.iter().zip(&two).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * a.abs().max(1.0),
            "step {}: one device {a}, two replicas {b}",
            step + 1
        );
    }
    // The curve is a curve: training moved it.
    assert!(one[0] != one[5]);
}

#[test]
fn a_batch_smaller_than_the_devices_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let err = run_code(
        floodtrain()
            .args([
                "-q",
                "train",
                "--batch",
                "1",
                "--devices",
                "cpu,cpu",
                "--config",
            ])
            .arg(config(dir.path(), &out, "cross-entropy")),
        2,
    );
    assert!(
        err.contains("optim.batch is 1") && err.contains("2 devices"),
        "{err}"
    );
    let err = run_code(
        floodtrain()
            .args(["-q", "train", "--devices", "cpu:1", "--config"])
            .arg(config(dir.path(), &out, "cross-entropy")),
        2,
    );
    assert!(err.contains("one CPU device"), "{err}");
}
