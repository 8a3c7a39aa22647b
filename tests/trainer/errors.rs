use crate::util::*;

#[test]
fn bad_input_is_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = run_code(floodtrain().args(["parity"]).arg(dir.path()), 2);
    assert!(err.contains("config.json"), "{err}");

    let err = run_code(
        floodtrain()
            .args(["train", "--data"])
            .arg(dir.path().join("nowhere"))
            .arg("--out")
            .arg(dir.path().join("run")),
        2,
    );
    assert!(
        err.contains("nowhere") && err.contains("no labelled chips"),
        "{err}"
    );

    let config = dir.path().join("run.toml");
    std::fs::write(
        &config,
        "out = \"x\"\n[data]\ndir = \"d\"\n[optim]\nstepz = 3\n",
    )
    .unwrap();
    let err = run_code(floodtrain().arg("train").arg("--config").arg(&config), 2);
    assert!(err.contains("run.toml") && err.contains("stepz"), "{err}");

    std::fs::write(&config, "out = \"x\"\n[data]\ndir = \"d\"\ncrop_px = 100\n").unwrap();
    let err = run_code(floodtrain().arg("train").arg("--config").arg(&config), 2);
    assert!(err.contains("multiple of 8"), "{err}");

    // Synthetic scenes are Sentinel-1, at least a crop wide; no chip folder is needed.
    std::fs::write(
        &config,
        "out = \"x\"\n[data]\nsensor = \"s2\"\n[data.synthetic]\nscenes = 2\n",
    )
    .unwrap();
    let err = run_code(floodtrain().arg("train").arg("--config").arg(&config), 2);
    assert!(
        err.contains("data.synthetic") && err.contains("s1"),
        "{err}"
    );
    std::fs::write(
        &config,
        "out = \"x\"\n[data]\ncrop_px = 256\n[data.synthetic]\nscenes = 2\nsize = 128\n",
    )
    .unwrap();
    let err = run_code(floodtrain().arg("train").arg("--config").arg(&config), 2);
    assert!(err.contains("at least data.crop_px (256)"), "{err}");
    std::fs::write(&config, "out = \"x\"\n[data]\ncrop_px = 64\n").unwrap();
    let err = run_code(floodtrain().arg("train").arg("--config").arg(&config), 2);
    assert!(err.contains("data.dir is missing"), "{err}");

    let err = run_code(
        floodtrain()
            .args(["eval", "--checkpoint"])
            .arg(dir.path())
            .arg("--data")
            .arg(dir.path()),
        2,
    );
    assert!(
        err.contains("model.json") && err.contains("run folder"),
        "{err}"
    );

    let err = run_code(floodtrain().args(["params", "--lora-targets", "qkv,q"]), 2);
    assert!(err.contains("cannot be combined"), "{err}");
}

#[test]
fn a_checkpoint_of_another_size_is_refused_by_name() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let fixture = parity_fixture(&shared).join("clay_encoder.safetensors");
    // The fixture is 64 wide; the tiny preset is 192.
    let err = run_code(
        floodtrain()
            .args(["train", "--preset", "tiny", "--steps", "1", "--data"])
            .arg(shared.join("data/sen1floods11"))
            .arg("--out")
            .arg(dir.path())
            .arg("--checkpoint")
            .arg(&fixture),
        2,
    );
    assert!(
        err.contains("clay_encoder.safetensors") && err.contains("shape"),
        "{err}"
    );
}

#[test]
fn a_reader_that_closes_the_pipe_ends_the_run_quietly() {
    // `floodtrain params | head -1`, with the read end gone before floodtrain starts.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = floodtrain()
        .args(["params", "--preset", "tiny"])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{stderr}");
}
