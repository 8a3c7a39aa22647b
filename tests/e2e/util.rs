use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The shared data folder, or None (the caller skips) when it is absent.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FLOOD_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    dir.join("data/sen1floods11").is_dir().then_some(dir)
}

/// `let shared = need_shared!();` returns from the test with a message when data is absent.
macro_rules! need_shared {
    () => {
        match crate::util::shared_dir() {
            Some(dir) => dir,
            None => {
                eprintln!(
                    "skipping: shared data not found (set FLOOD_SHARED or put it at ../shared)"
                );
                return;
            }
        }
    };
}

pub fn chip(shared: &Path, name: &str) -> PathBuf {
    shared.join(format!("data/sen1floods11/S1Hand/{name}_S1Hand.tif"))
}

pub fn unet(shared: &Path) -> PathBuf {
    shared.join("data/models/eoepca-sen1floods11-unet.onnx")
}

pub fn unet_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/eoepca-sen1floods11-unet.toml")
}

/// `--model UNET --manifest MANIFEST`: run the shared UNet with its manifest.
pub fn unet_flags(shared: &Path) -> [std::ffi::OsString; 4] {
    [
        "--model".into(),
        unet(shared).into(),
        "--manifest".into(),
        unet_manifest().into(),
    ]
}

pub fn floodrt() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_floodrt"));
    cmd.env_remove("RUST_LOG");
    cmd
}

/// `floodrt segment SCENE -o OUT`, for the caller to add options to.
pub fn segment(scene: &Path, out: &Path) -> Command {
    let mut cmd = floodrt();
    cmd.arg("segment").arg(scene).arg("-o").arg(out);
    cmd
}

/// Runs and asserts success, returning stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("floodrt starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs and asserts a clean failure: exit code 2, one `floodrt:` error line, no panic.
pub fn run_err(cmd: &mut Command) -> String {
    let out: Output = cmd.output().expect("floodrt starts");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{cmd:?} should fail with 2:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{cmd:?} panicked:\n{stderr}");
    assert!(stderr.contains("floodrt: "), "{stderr}");
    stderr
}

/// `gdalinfo -json` of a file, or None when GDAL is missing outside CI.
pub fn gdalinfo(path: &Path) -> Option<serde_json::Value> {
    let out = match Command::new("gdalinfo")
        .arg("-json")
        .arg("-stats")
        .arg(path)
        .output()
    {
        Ok(out) => out,
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping GDAL checks: gdalinfo not found (apt install gdal-bin)");
            return None;
        }
        Err(e) => panic!("CI must have gdalinfo: {e}"),
    };
    assert!(
        out.status.success(),
        "gdalinfo {path:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("gdalinfo JSON"))
}

/// Runs GDAL's COG validator; None when it is unavailable outside CI.
pub fn validate_cog(path: &Path) -> Option<(bool, String)> {
    for python in ["/usr/bin/python3", "python3"] {
        let out = Command::new(python)
            .args([
                "-m",
                "osgeo_utils.samples.validate_cloud_optimized_geotiff",
                "--full-check=yes",
            ])
            .arg(path)
            .output();
        if let Ok(out) = out {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if !text.contains("No module named") {
                return Some((out.status.success(), text));
            }
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must have the COG validator (apt install python3-gdal)"
    );
    eprintln!("skipping COG validation: osgeo_utils not found (apt install python3-gdal)");
    None
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report exists"))
        .expect("valid JSON")
}

/// A mask (or any single-band raster) read whole.
pub fn mask_of(path: &Path) -> Vec<f32> {
    let scene = floodrt::scene::Scene::open(path, 1 << 20).unwrap();
    scene
        .read_window(0, 0, scene.height(), scene.width())
        .unwrap()
        .data
}

/// A Sen1Floods11-layout folder holding just `chips` (links to the shared files).
pub fn data_dir_with(shared: &Path, chips: &[&str], dir: &Path) {
    let data = shared.join("data/sen1floods11");
    for sub in ["S1Hand", "LabelHand"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for chip in chips {
            let name = format!("{chip}_{sub}.tif");
            std::os::unix::fs::symlink(data.join(sub).join(&name), dir.join(sub).join(&name))
                .unwrap();
        }
    }
}
