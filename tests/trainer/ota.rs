//! Over-the-air updates on the device side (#5, in progress): floodrt's `Device` takes an
//! adapter in chunks across a restart, refuses bad ones without changing anything, switches to
//! a good one, and then segments like the merged export.

use std::path::{Path, PathBuf};

use flood_models::adapter::HEADER_LEN;
use flood_models::protocol::{Response, CHUNK_BYTES};
use flood_models::Digest;
use floodrt::ota::Device;

use crate::util::*;

fn run_export(run: &Path, dir: &Path, stem: &str, key: &Path, version: u64) {
    run_ok(
        floodtrain()
            .args(["--quiet", "export", "--tile", "64", "--batch", "2", "--adapter-version", &version.to_string(), "--checkpoint"])
            .arg(run)
            .arg("--out")
            .arg(dir.join(format!("{stem}.onnx")))
            .arg("--base-out")
            .arg(dir.join(format!("{stem}-base.onnx")))
            .arg("--adapter-out")
            .arg(dir.join(format!("{stem}.flad")))
            .arg("--signing-key")
            .arg(key),
    );
}

/// A store holding `base` and nothing else.
fn store_with(dir: &Path, name: &str, base: &Path) -> PathBuf {
    let store = dir.join(name);
    std::fs::create_dir_all(&store).unwrap();
    std::fs::copy(base, store.join("base.onnx")).unwrap();
    store
}

fn offer(device: &Device, bytes: &[u8]) -> Response {
    let header: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().unwrap();
    device.offer(&header, bytes.len() as u64, Digest::of(bytes))
}

/// Sends `bytes[from..to]` in chunks; returns the offset the device reports.
fn send(device: &Device, bytes: &[u8], from: u64, to: usize) -> u64 {
    let file = Digest::of(bytes);
    let mut offset = from;
    while (offset as usize) < to {
        let end = (offset as usize + CHUNK_BYTES).min(to);
        let data = &bytes[offset as usize..end];
        match device.chunk(file, offset, data, Digest::of(data)) {
            Response::Continue { offset: next } => offset = next,
            other => panic!("chunk at {offset}: {other:?}"),
        }
    }
    offset
}

fn active(device: &Device) -> Option<u64> {
    match device.status() {
        Response::Status(s) => s.active,
        other => panic!("{other:?}"),
    }
}

fn refused(response: Response) -> String {
    match response {
        Response::Refused { reason } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_device_resumes_a_transfer_after_a_restart_refuses_bad_adapters_and_then_maps_like_the_merged_export() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = d.join("run");
    run_ok(
        floodtrain()
            .args(["--quiet", "train", "--preset", "tiny", "--mode", "lora", "--lora-targets", "qkv,fc1", "--batch", "2", "--crop-px", "64", "--steps", "30"])
            .args(["--train-chips", "India_900498,Spain_7370579", "--data"])
            .arg(shared.join("data/sen1floods11"))
            .arg("--out")
            .arg(&run),
    );
    let key = d.join("ws.key");
    run_ok(floodtrain().args(["keygen", "--out"]).arg(&key));
    let trust = d.join("ws.key.pub");
    run_export(&run, d, "v5", &key, 5);
    let adapter = std::fs::read(d.join("v5.flad")).unwrap();
    let scene = shared.join("data/sen1floods11/S1Hand/Bolivia_312675_S1Hand.tif");

    let store = store_with(d, "device", &d.join("v5-base.onnx"));
    let device = Device::open("drone-1", &store, &trust, 2).unwrap();
    assert_eq!(active(&device), None);
    let Response::Segmented(before) = device.segment(&scene, &d.join("before.tif")) else { panic!("segment failed") };
    assert_eq!(before.adapter, None);

    // Half the file, then the device restarts; the offer says where to go on.
    assert_eq!(offer(&device, &adapter), Response::Continue { offset: 0 });
    let half = send(&device, &adapter, 0, adapter.len() / 2);
    drop(device);
    let device = Device::open("drone-1", &store, &trust, 2).unwrap();
    assert_eq!(offer(&device, &adapter), Response::Continue { offset: half });
    let file = Digest::of(&adapter);
    let err = refused(device.chunk(file, half + 1, &adapter[half as usize + 1..][..10], Digest::of(&adapter[half as usize + 1..][..10])));
    assert!(err.contains(&format!("continue at byte {half}")), "{err}");
    let err = refused(device.chunk(file, half, &adapter[half as usize..][..10], Digest::of(b"other")));
    assert!(err.contains("checksum"), "{err}");
    assert!(refused(device.commit(file)).contains("have arrived"));
    send(&device, &adapter, half, adapter.len());
    assert_eq!(device.commit(file), Response::Installed { version: 5 });
    assert_eq!(active(&device), Some(5));

    // Refused, and nothing changes: a replay, a flipped byte, a truncation, a stranger's key,
    // an absurd size.
    assert_eq!(offer(&device, &adapter), Response::Continue { offset: 0 });
    send(&device, &adapter, 0, adapter.len());
    assert!(refused(device.commit(file)).contains("not newer"));
    let mut flipped = adapter.clone();
    flipped[adapter.len() / 3] ^= 4;
    assert_eq!(offer(&device, &flipped), Response::Continue { offset: 0 });
    send(&device, &flipped, 0, flipped.len());
    assert!(refused(device.commit(Digest::of(&flipped))).contains("signature"));
    let header: [u8; HEADER_LEN] = adapter[..HEADER_LEN].try_into().unwrap();
    assert!(refused(device.offer(&header, adapter.len() as u64 - 7, Digest::of(b"t"))).contains("truncated"));
    let mut huge = header;
    huge[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(refused(device.offer(&huge, (1u64 << 40) + 88, Digest::of(b"h"))).contains("limit"));
    run_ok(floodtrain().args(["keygen", "--out"]).arg(d.join("stranger.key")));
    let stranger_dir = d.join("stranger");
    std::fs::create_dir_all(&stranger_dir).unwrap();
    run_export(&run, &stranger_dir, "v9", &d.join("stranger.key"), 9);
    let strange = std::fs::read(stranger_dir.join("v9.flad")).unwrap();
    assert!(refused(offer(&device, &strange)).contains("does not trust"));
    assert_eq!(active(&device), Some(5));

    // The adapted device maps like the merged export, and unlike the base.
    let Response::Segmented(after) = device.segment(&scene, &d.join("after.tif")) else { panic!("segment failed") };
    assert_eq!(after.adapter, Some(5));
    let merged_store = store_with(d, "merged", &d.join("v5.onnx"));
    let merged = Device::open("reference", &merged_store, &trust, 2).unwrap();
    let Response::Segmented(reference) = merged.segment(&scene, &d.join("reference.tif")) else { panic!("segment failed") };
    eprintln!("water fraction: base {:.5}, adapted on the device {:.5}, merged export {:.5}", before.water_fraction, after.water_fraction, reference.water_fraction);
    assert_eq!(after.mask_sha256, reference.mask_sha256);
    assert_ne!(after.mask_sha256, before.mask_sha256, "the adapter must change the map for this test to mean anything");

    // A restart comes back on the installed adapter.
    drop(device);
    let device = Device::open("drone-1", &store, &trust, 2).unwrap();
    assert_eq!(active(&device), Some(5));
}
