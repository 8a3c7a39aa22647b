//! The ARM builds (issue #6) under qemu-user: they must run, the musl ones be statically linked,
//! and all map water like the x86 build. `.ci/run` builds them and names them in
//! `FLOODRT_CROSS_BINARIES` (space-separated paths); without it this test skips.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{data_dir_with, floodrt, mask_of, run_ok, unet_flags};

/// A qemu-user command that runs `binary`, chosen from its ELF machine field. A dynamically
/// linked (glibc) build also needs the target's libraries: Debian's cross packages keep its
/// loader and libc under /usr/<triple>, which `-L` makes qemu treat as the root.
fn qemu_for(binary: &Path, dynamic: bool) -> Command {
    let (qemu, sysroot) = match elf_machine(binary) {
        0xB7 => ("qemu-aarch64", "/usr/aarch64-linux-gnu"),
        0x28 => ("qemu-arm", "/usr/arm-linux-gnueabihf"),
        other => panic!("{binary:?}: unexpected ELF machine {other:#x}"),
    };
    let mut command = Command::new(qemu);
    if dynamic {
        command.arg("-L").arg(sysroot);
    }
    command.env_remove("RUST_LOG").arg(binary);
    command
}

/// The ELF header's e_machine field: the first 20 bytes, not the whole 50–60 MB binary.
fn elf_machine(binary: &Path) -> u16 {
    let mut header = [0u8; 20];
    std::fs::File::open(binary)
        .and_then(|mut f| f.read_exact(&mut header))
        .unwrap_or_else(|e| panic!("{binary:?}: {e}"));
    u16::from_le_bytes([header[18], header[19]])
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
    // The masks depend on the architecture's code, not on the libc: a second build for an
    // architecture already checked on every chip (the glibc aarch64 one) runs one chip, which
    // shows it loads, links and computes, in half the emulated time.
    let first_chip = dir.path().join("first-chip");
    data_dir_with(&shared, &chips[..1], &first_chip);
    let mut architectures_checked = std::collections::HashSet::new();

    for (i, binary) in binaries.iter().enumerate() {
        let file = Command::new("file")
            .arg(binary)
            .output()
            .expect("`file` is installed");
        let file = String::from_utf8_lossy(&file.stdout);
        let dynamic = file.contains("dynamically linked");
        if binary.to_str().unwrap().contains("musl") {
            assert!(
                file.contains("statically linked") || file.contains("static-pie linked"),
                "{file}"
            );
        }
        let version = run_ok(qemu_for(binary, dynamic).arg("--version"));
        assert!(version.starts_with("floodrt "), "{version}");

        let arm_masks = dir.path().join(format!("arm{i}"));
        let arm = qemu_for(binary, dynamic);
        let (data, chips) = if architectures_checked.insert(elf_machine(binary)) {
            (&data, &chips[..])
        } else {
            (&first_chip, &chips[..1])
        };
        let arm_report = eval(arm, &shared, data, &arm_masks);
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
