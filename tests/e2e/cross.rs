//! The static ARM builds (issue #6) under qemu-user: they must run, be statically linked, and
//! map water like the x86 build. `.ci/run` builds them and names them in
//! `FLOODRT_CROSS_BINARIES` (space-separated paths); without it this test skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{data_dir_with, floodrt, mask_of, run_ok, unet_flags};

/// qemu-user program for an ELF binary, from its machine field.
fn qemu_for(binary: &Path) -> &'static str {
    let header = std::fs::read(binary).unwrap();
    match u16::from_le_bytes([header[18], header[19]]) {
        0xB7 => "qemu-aarch64",
        0x28 => "qemu-arm",
        other => panic!("{binary:?}: unexpected ELF machine {other:#x}"),
    }
}

/// `floodrt eval` of the shared UNet on `data`, masks written to `masks`; the JSON report.
fn eval(mut floodrt: Command, shared: &Path, data: &Path, masks: &Path) -> serde_json::Value {
    floodrt
        .args(["eval", "--json", "-q", "--overlap", "0", "--data"])
        .arg(data)
        .arg("--masks")
        .arg(masks)
        .args(unet_flags(shared));
    serde_json::from_str(&run_ok(&mut floodrt)).unwrap()
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
    let chips = ["India_900498", "Spain_7370579"];
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    data_dir_with(&shared, &chips, &data);
    let x86_masks = dir.path().join("x86");
    let x86_report = eval(floodrt(), &shared, &data, &x86_masks);

    for (i, binary) in binaries.iter().enumerate() {
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

        let arm_masks = dir.path().join(format!("arm{i}"));
        let mut arm = Command::new(qemu);
        arm.env_remove("RUST_LOG").arg(binary);
        let arm_report = eval(arm, &shared, &data, &arm_masks);
        for (k, name) in chips.iter().enumerate() {
            let mask = |dir: &Path| mask_of(&dir.join(format!("{name}_mask.tif")));
            let (a, b) = (mask(&arm_masks), mask(&x86_masks));
            let same = a
                .iter()
                .zip(&b)
                .filter(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
                .count();
            let share = same as f64 / a.len() as f64;
            let iou = |r: &serde_json::Value| r["chips"][k]["iou"].as_f64().unwrap();
            eprintln!(
                "{binary:?} {name}: {:.5} % of mask pixels identical to x86; water IoU {:.5} (x86 {:.5})",
                100.0 * share,
                iou(&arm_report),
                iou(&x86_report)
            );
            assert_eq!(arm_report["chips"][k]["chip"], *name);
            assert!(share >= 0.9999, "{binary:?} {name}: only {share} identical");
        }
    }
}
