//! Bad input gets one clear error naming the file and the problem, exit code 2, no panic, and
//! nothing left behind that looks like a finished output.

use std::path::Path;

use geotiff_writer::GeoTiffBuilder;
use ndarray::Array3;

use crate::util::{chip, floodrt, run_err, unet, unet_manifest};

fn segment_err(scene: &Path, out: &Path, extra: &[&str]) -> String {
    let err = run_err(
        floodrt()
            .arg("segment")
            .arg(scene)
            .arg("-o")
            .arg(out)
            .args(extra),
    );
    assert!(!out.exists(), "a failed run left {out:?} behind");
    err
}

#[test]
fn a_missing_scene_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = segment_err(&dir.path().join("nope.tif"), &dir.path().join("m.tif"), &[]);
    assert!(err.contains("nope.tif: no such file"), "{err}");
}

#[test]
fn a_file_that_is_not_a_tiff_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("notes.tif");
    std::fs::write(&fake, "these are field notes, not an image").unwrap();
    let err = segment_err(&fake, &dir.path().join("m.tif"), &[]);
    assert!(
        err.contains("notes.tif: cannot read it as a GeoTIFF"),
        "{err}"
    );
}

#[test]
fn a_truncated_tiff_is_refused_without_a_half_written_mask() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(chip(&shared, "India_900498")).unwrap();
    let cut = dir.path().join("cut.tif");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = segment_err(&cut, &dir.path().join("m.tif"), &[]);
    assert!(err.contains("cut.tif"), "{err}");
    assert!(
        err.contains("truncated") || err.contains("cannot read"),
        "{err}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        [std::ffi::OsString::from("cut.tif")],
        "temporary files left behind"
    );
}

#[test]
fn a_scene_with_the_wrong_band_count_is_refused() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let label = shared.join("data/sen1floods11/LabelHand/India_900498_LabelHand.tif");
    let err = segment_err(&label, &dir.path().join("m.tif"), &[]);
    assert!(
        err.contains("LabelHand.tif: 1 band(s), but the model takes 2 (vv, vh)"),
        "{err}"
    );
}

#[test]
fn a_scene_whose_sample_type_contradicts_the_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ints = dir.path().join("int16.tif");
    GeoTiffBuilder::new(64, 64)
        .bands(2)
        .epsg(4326)
        .pixel_scale(1e-4, 1e-4)
        .origin(0.0, 0.0)
        .write_3d(&ints, Array3::<i16>::zeros((64, 64, 2)).view())
        .unwrap();
    let err = segment_err(&ints, &dir.path().join("m.tif"), &[]);
    assert!(
        err.contains(
            "int16.tif holds int16 samples, but model flood-s1-v1 takes float32 or float64 scenes"
        ),
        "{err}"
    );
}

#[test]
fn a_model_whose_input_contradicts_the_manifest_is_refused() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let scene = chip(&shared, "India_900498");
    let model = unet(&shared);
    let manifest = unet_manifest();
    let args = [
        "--tile",
        "128",
        "--model",
        model.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ];
    let err = segment_err(&scene, &dir.path().join("m.tif"), &args);
    assert!(err.contains("input input.1 has shape [4, 2, 256, 256], but the manifest and options ask for [4, 2, 128, 128]"), "{err}");
}

#[test]
fn a_model_without_a_manifest_asks_for_one() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let model = unet(&shared);
    let err = segment_err(
        &chip(&shared, "India_900498"),
        &dir.path().join("m.tif"),
        &["--model", model.to_str().unwrap()],
    );
    assert!(
        err.contains("carries no manifest in its metadata; pass one with --manifest"),
        "{err}"
    );
}

#[test]
fn an_unwritable_output_fails_before_any_work() {
    let shared = need_shared!();
    let err = run_err(
        floodrt()
            .arg("segment")
            .arg(chip(&shared, "India_900498"))
            .arg("-o")
            .arg("/nonexistent-dir/m.tif"),
    );
    assert!(
        err.contains(
            "cannot write /nonexistent-dir/m.tif: /nonexistent-dir is not a writable directory"
        ),
        "{err}"
    );
}

#[test]
fn a_broken_manifest_says_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(unet_manifest())
        .unwrap()
        .replace("std = [0.082, 0.1102]", "std = [0.082]");
    std::fs::write(&bad, text).unwrap();
    let err = run_err(floodrt().arg("info").arg("--manifest").arg(&bad));
    assert!(
        err.contains(
            "bad.toml: manifest [preprocess] has 1 std values for 2 bands; give one per band"
        ),
        "{err}"
    );
}

#[test]
fn a_reader_that_closes_the_pipe_ends_the_run_quietly() {
    // `floodrt info | head -1`: the rest of the output meets a closed pipe, deterministically
    // here, since the read end is gone before floodrt starts.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = floodrt().arg("info").stdout(writer).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{stderr}");
}
