//! The static ARM builds (issue #6) under qemu-user: they must run, be statically linked, and
//! map water like the x86 build. `.ci/run` builds them and names them in
//! `FLOODRT_CROSS_BINARIES` (space-separated paths); without it this test skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{chip, floodrt, run_ok, unet_flags};

/// qemu-user program for an ELF binary, from its machine field.
fn qemu_for(binary: &Path) -> &'static str {
    let header = std::fs::read(binary).unwrap();
    match u16::from_le_bytes([header[18], header[19]]) {
        0xB7 => "qemu-aarch64",
        0x28 => "qemu-arm",
        other => panic!("{binary:?}: unexpected ELF machine {other:#x}"),
    }
}

fn mask_of(path: &Path) -> Vec<f32> {
    let scene = floodrt::scene::Scene::open(path, 1 << 20).unwrap();
    scene
        .read_window(0, 0, scene.height(), scene.width())
        .unwrap()
        .data
}

#[test]
fn cross_built_binaries_run_under_qemu_and_match_the_x86_masks() {
    let shared = need_shared!();
    let list = std::env::var("FLOODRT_CROSS_BINARIES").unwrap_or_default();
    let binaries: Vec<PathBuf> = list.split_whitespace().map(PathBuf::from).collect();
    if binaries.is_empty() {
        eprintln!("skipping: FLOODRT_CROSS_BINARIES names no ARM build (.ci/run sets it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for binary in &binaries {
        let qemu = qemu_for(binary);
        let file = Command::new("file")
            .arg(binary)
            .output()
            .expect("`file` is installed");
        let file = String::from_utf8_lossy(&file.stdout);
        if binary.to_str().unwrap().contains("musl") {
            assert!(
                file.contains("statically linked") || file.contains("static-pie linked"),
                "{file}"
            );
        }
        let version = run_ok(Command::new(qemu).arg(binary).arg("--version"));
        assert!(version.starts_with("floodrt "), "{version}");
        for name in ["India_900498", "Spain_7370579"] {
            let (arm, x86) = (
                dir.path().join(format!("{name}-arm.tif")),
                dir.path().join(format!("{name}-x86.tif")),
            );
            let args = |out: &Path| {
                let mut a: Vec<std::ffi::OsString> = vec![
                    "segment".into(),
                    chip(&shared, name).into(),
                    "-o".into(),
                    out.into(),
                    "-q".into(),
                ];
                a.extend(unet_flags(&shared));
                a.extend(["--overlap".into(), "0".into()]);
                a
            };
            run_ok(Command::new(qemu).arg(binary).args(args(&arm)));
            run_ok(floodrt().args(args(&x86)));
            let (a, b) = (mask_of(&arm), mask_of(&x86));
            let same = a
                .iter()
                .zip(&b)
                .filter(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
                .count();
            let share = same as f64 / a.len() as f64;
            eprintln!(
                "{binary:?} {name}: {:.5} % of mask pixels identical to x86",
                100.0 * share
            );
            assert!(share >= 0.9999, "{binary:?} {name}: only {share} identical");
        }
    }
}
