//! A device out of disk space (#17): an offer that cannot fit, a disk that fills during the
//! transfer and one that fills before the install are each refused with what to do, leave no
//! partial file, and keep the adapter in use active and healthy. The store is a tmpfs of the
//! test's own (root; skipped elsewhere, required in CI).

use flood_models::protocol::Response;
use flood_models::Digest;
use floodrt::ota::Device;

use crate::ota::{active, install, offer, refused, run_export, send, Workstation};
use crate::tiny_disk::TinyDisk;

#[test]
fn a_full_disk_during_staging_or_install_is_refused_cleanly_and_the_old_adapter_stays() {
    let shared = need_shared!();
    let ws = Workstation::new(&shared, 3);
    let (d, key) = (ws.dir.path(), ws.key.clone());
    let trust = d.join("ws.key.pub");
    run_export(&ws.run, d, "v1", &key, 1);
    run_export(&ws.run, d, "v2", &key, 2);
    let base = std::fs::read(d.join("v1-base.onnx")).unwrap();
    let (v1, v2) = (
        std::fs::read(d.join("v1.flad")).unwrap(),
        std::fs::read(d.join("v2.flad")).unwrap(),
    );
    // Room for the base, two installed adapters and one staged, with a page or two to spare.
    let size = base.len() as u64 + 3 * v2.len() as u64 + (64 << 10);
    let Some(disk) = TinyDisk::mount(size) else {
        return;
    };
    let store = disk.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(store.join("base.onnx"), &base).unwrap();
    let device = Device::open("full-disk", &store, &trust, 1).unwrap();
    assert_eq!(install(&device, &v1), Response::Installed { version: 1 });
    let settled = disk.files();
    let len = v2.len() as u64;

    // 1. The offer itself cannot fit: refused before a byte is sent.
    disk.fill_leaving(len / 2);
    let err = refused(offer(&device, &v2));
    assert!(
        err.contains("bytes free") && err.contains("free space on the device"),
        "{err}"
    );
    disk.unfill();

    // 2. The disk fills during the transfer (a job writing its outputs, say).
    let Response::Continue { offset: 0 } = offer(&device, &v2) else {
        panic!("offer refused with room to spare")
    };
    let half = send(&device, &v2, 0, v2.len() / 2);
    disk.fill_leaving(0);
    let data = &v2[half as usize..];
    let err = refused(device.chunk(Digest::of(&v2), half, data, Digest::of(data)));
    assert!(
        err.contains("No space left") && err.contains("it was dropped"),
        "{err}"
    );
    assert_eq!(disk.files(), settled, "the partial transfer must be gone");
    assert_eq!(active(&device), Some(1));
    disk.unfill();

    // 3. Every byte staged, then the disk fills before the install copies it into place.
    assert_eq!(offer(&device, &v2), Response::Continue { offset: 0 });
    send(&device, &v2, 0, v2.len());
    disk.fill_leaving(len / 2);
    let err = refused(device.commit(Digest::of(&v2)));
    assert!(
        err.contains("cannot install") && err.contains("unchanged"),
        "{err}"
    );
    assert_eq!(active(&device), Some(1));
    let mut expected = settled.clone();
    expected.push(format!("store/staging/{}.part", Digest::of(&v2).to_hex()));
    expected.sort();
    assert_eq!(
        disk.files(),
        expected,
        "no temporary file may be left; the staged transfer is kept to resume"
    );
    // The old adapter is still healthy: a device opened on the store now loads and checks it.
    drop(device);
    let device = Device::open("full-disk", &store, &trust, 1).unwrap();
    assert_eq!(active(&device), Some(1));

    // With space again, the same push resumes at its end and installs.
    disk.unfill();
    assert_eq!(offer(&device, &v2), Response::Continue { offset: len });
    assert_eq!(
        device.commit(Digest::of(&v2)),
        Response::Installed { version: 2 }
    );
}
