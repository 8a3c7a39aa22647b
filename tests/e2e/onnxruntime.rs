//! The optional onnxruntime engine (#15): same tiling and outputs as tract. Built and run in CI
//! by `cargo test -p floodrt --features onnxruntime --test e2e onnxruntime`; without the
//! feature, `--engine onnxruntime` must say how to get it.

use crate::util::floodrt;
#[cfg(feature = "onnxruntime")]
use crate::util::{chip, mask_of, read_json, run_ok, unet_flags};

#[cfg(not(feature = "onnxruntime"))]
#[test]
fn without_the_feature_the_onnxruntime_engine_says_how_to_build_it() {
    // The model is prepared before the scene is opened: no scene is needed to see the error.
    let err = crate::util::run_err(floodrt().args([
        "segment",
        "scene.tif",
        "-o",
        "mask.tif",
        "--engine",
        "onnxruntime",
    ]));
    assert!(
        err.contains("built without the onnxruntime engine")
            && err.contains("--features onnxruntime"),
        "{err}"
    );
}

/// libonnxruntime.so: `ORT_DYLIB_PATH`, else the one in python3's onnxruntime wheel.
#[cfg(feature = "onnxruntime")]
fn onnxruntime_library() -> Option<std::ffi::OsString> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        return Some(path);
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import glob, os, onnxruntime; print(sorted(glob.glob(os.path.dirname(onnxruntime.__file__) + '/capi/libonnxruntime.so*'))[-1])",
        ])
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !path.is_empty()).then(|| path.into())
}

#[cfg(feature = "onnxruntime")]
#[test]
fn onnxruntime_and_tract_map_the_same_water() {
    let shared = need_shared!();
    let Some(library) = onnxruntime_library() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs onnxruntime (pip); its library was not found"
        );
        eprintln!("skipping: no libonnxruntime.so (set ORT_DYLIB_PATH or pip install onnxruntime)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unet: Vec<std::ffi::OsString> = unet_flags(&shared).into();
    let default_model: Vec<std::ffi::OsString> = vec![];
    for (name, model, scene) in [
        ("unet-spain", &unet, "Spain_7370579"),
        ("unet-india", &unet, "India_900498"),
        ("default-india", &default_model, "India_900498"),
    ] {
        let run = |engine: &str| {
            let out = dir.path().join(format!("{name}-{engine}"));
            let (mask, probability, report) = (
                out.with_extension("tif"),
                out.with_extension("p.tif"),
                out.with_extension("json"),
            );
            run_ok(
                floodrt()
                    .env("ORT_DYLIB_PATH", &library)
                    .arg("segment")
                    .arg(chip(&shared, scene))
                    .arg("-o")
                    .arg(&mask)
                    .arg("--probability")
                    .arg(&probability)
                    .args(["-q", "--threads", "2", "--engine", engine, "--report"])
                    .arg(&report)
                    .args(model),
            );
            (mask_of(&mask), mask_of(&probability), read_json(&report))
        };
        let (tract_mask, tract_p, tract_report) = run("tract");
        let (ort_mask, ort_p, ort_report) = run("onnxruntime");
        assert_eq!(tract_report["engine"], "tract 0.23.9");
        assert_eq!(ort_report["engine"], "onnxruntime");
        let differ = tract_mask
            .iter()
            .zip(&ort_mask)
            .filter(|(a, b)| a != b)
            .count();
        // The probability file holds whole percent: rounding may move a pixel by one.
        let p_diff = tract_p
            .iter()
            .zip(&ort_p)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let p_moved = tract_p.iter().zip(&ort_p).filter(|(a, b)| a != b).count();
        eprintln!(
            "{name}: {differ} of {} mask pixels differ; {p_moved} probability pixels moved, by at most {p_diff} %",
            tract_mask.len()
        );
        assert_eq!(tract_mask.len(), ort_mask.len());
        // Float rounding may flip a pixel sitting on the threshold, nothing more (measured:
        // the UNet 0 pixels, the int8 ViT 23 of 262,144, its probabilities within 1 %).
        assert!(
            differ * 2000 <= tract_mask.len(),
            "{name}: {differ} pixels differ"
        );
        assert!(
            p_diff <= 1.0,
            "{name}: {p_moved} probabilities differ, by up to {p_diff} %"
        );
    }
}
