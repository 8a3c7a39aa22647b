//! `floodrt segment` out of disk space (#17): the error names the file and the cause, no
//! temporary or half-written file is left, and yesterday's map is still whole. The outputs
//! go to a tmpfs of the test's own (root; skipped elsewhere, required in CI).

use std::path::Path;

use crate::tiny_disk::TinyDisk;
use crate::util::*;

/// Bytes a file takes on tmpfs: whole pages.
fn pages(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len().div_ceil(4096) * 4096
}

fn segment(scene: &Path, dir: &Path) -> std::process::Command {
    let mut cmd = floodrt();
    cmd.arg("segment")
        .arg(scene)
        .arg("-o")
        .arg(dir.join("mask.tif"))
        .arg("--probability")
        .arg(dir.join("p.tif"))
        .arg("--vector")
        .arg(dir.join("water.geojson"));
    cmd
}

#[test]
fn a_full_disk_during_segment_output_is_reported_and_leaves_no_partial_file() {
    let shared = need_shared!();
    let scene = chip(&shared, "Bolivia_290290");
    // The outputs' sizes, from a run with room.
    let roomy = tempfile::tempdir().unwrap();
    run_ok(&mut segment(&scene, roomy.path()));
    let rasters = pages(&roomy.path().join("mask.tif")) + pages(&roomy.path().join("p.tif"));
    let outlines = pages(&roomy.path().join("water.geojson"));
    assert!(
        outlines >= 3 * 4096,
        "the outlines are too small to cut: {outlines} bytes"
    );

    // No room at all: yesterday's mask stays as it was, nothing else appears.
    let Some(disk) = TinyDisk::mount(rasters + outlines + (64 << 10)) else {
        return;
    };
    let old = disk.path().join("mask.tif");
    std::fs::write(&old, b"yesterday's map").unwrap();
    disk.fill_leaving(0);
    let err = run_err(&mut segment(&scene, disk.path()));
    assert!(
        err.contains("No space left on device") && err.contains("the disk is full"),
        "{err}"
    );
    assert!(err.contains("mask.tif") || err.contains("p.tif"), "{err}");
    assert_eq!(std::fs::read(&old).unwrap(), b"yesterday's map");
    assert_eq!(disk.files(), ["mask.tif"]);
    std::fs::remove_file(&old).unwrap();
    disk.unfill();

    // Room for the rasters but not for the outlines: the rasters are whole maps, the outlines
    // are not left half-written.
    disk.fill_leaving(rasters + outlines / 2);
    let err = run_err(&mut segment(&scene, disk.path()));
    assert!(
        err.contains("water.geojson") && err.contains("No space left on device"),
        "{err}"
    );
    assert_eq!(disk.files(), ["mask.tif", "p.tif"]);
    for raster in ["mask.tif", "p.tif"] {
        assert_eq!(
            std::fs::read(disk.path().join(raster)).unwrap(),
            std::fs::read(roomy.path().join(raster)).unwrap(),
            "{raster} must be the whole map"
        );
    }
}
