//! Over-the-air updates on the device side (#5, in progress): floodrt's `Device` takes an
//! adapter in chunks across a restart, refuses bad ones without changing anything, switches to
//! a good one, and then segments like the merged export.

use std::path::{Path, PathBuf};

use flood_models::adapter::HEADER_LEN;
use flood_models::protocol::{Response, CHUNK_BYTES};
use flood_models::Digest;
use floodrt::ota::Device;

use crate::export::{keygen, train};
use crate::util::*;

/// What the workstation side of these tests needs: a tiny LoRA run trained for `steps` and
/// a signing key (`ws.key`, `ws.key.pub`), in a fresh folder.
pub(crate) struct Workstation {
    pub dir: tempfile::TempDir,
    pub run: PathBuf,
    pub key: PathBuf,
}

impl Workstation {
    pub fn new(shared: &Path, steps: usize) -> Workstation {
        let dir = tempfile::tempdir().unwrap();
        let run = train(shared, dir.path(), "s1", steps);
        let key = dir.path().join("ws.key");
        keygen(&key);
        Workstation { dir, run, key }
    }
}

pub(crate) fn run_export(run: &Path, dir: &Path, stem: &str, key: &Path, version: u64) {
    run_ok(
        floodtrain()
            .args([
                "--quiet",
                "export",
                "--tile",
                "64",
                "--batch",
                "2",
                "--adapter-version",
                &version.to_string(),
                "--checkpoint",
            ])
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
pub(crate) fn store_with(dir: &Path, name: &str, base: &Path) -> PathBuf {
    let store = dir.join(name);
    std::fs::create_dir_all(&store).unwrap();
    std::fs::copy(base, store.join("base.onnx")).unwrap();
    store
}

pub(crate) fn offer(device: &Device, bytes: &[u8]) -> Response {
    let header: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().unwrap();
    device.offer(&header, bytes.len() as u64, Digest::of(bytes))
}

/// Sends `bytes[from..to]` in chunks; returns the offset the device reports.
pub(crate) fn send(device: &Device, bytes: &[u8], from: u64, to: usize) -> u64 {
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

pub(crate) fn active(device: &Device) -> Option<u64> {
    match device.status() {
        Response::Status(s) => s.active,
        other => panic!("{other:?}"),
    }
}

pub(crate) fn refused(response: Response) -> String {
    match response {
        Response::Refused { reason } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_device_resumes_a_transfer_after_a_restart_refuses_bad_adapters_and_then_maps_like_the_merged_export(
) {
    let shared = need_shared!();
    let ws = Workstation::new(&shared, 30);
    let (d, run, key) = (ws.dir.path(), ws.run.clone(), ws.key.clone());
    let trust = d.join("ws.key.pub");
    run_export(&run, d, "v5", &key, 5);
    let adapter = std::fs::read(d.join("v5.flad")).unwrap();
    let scene = shared.join("data/sen1floods11/S1Hand/Bolivia_312675_S1Hand.tif");

    let store = store_with(d, "device", &d.join("v5-base.onnx"));
    let device = Device::open("drone-1", &store, &trust, 2).unwrap();
    assert_eq!(active(&device), None);
    let Response::Segmented(before) = device.segment(&scene, &d.join("before.tif")) else {
        panic!("segment failed")
    };
    assert_eq!(before.adapter, None);

    // Half the file, then the device restarts; the offer says where to go on.
    assert_eq!(offer(&device, &adapter), Response::Continue { offset: 0 });
    let half = send(&device, &adapter, 0, adapter.len() / 2);
    drop(device);
    let device = Device::open("drone-1", &store, &trust, 2).unwrap();
    assert_eq!(
        offer(&device, &adapter),
        Response::Continue { offset: half }
    );
    let file = Digest::of(&adapter);
    let err = refused(device.chunk(
        file,
        half + 1,
        &adapter[half as usize + 1..][..10],
        Digest::of(&adapter[half as usize + 1..][..10]),
    ));
    assert!(err.contains(&format!("continue at byte {half}")), "{err}");
    let err = refused(device.chunk(
        file,
        half,
        &adapter[half as usize..][..10],
        Digest::of(b"other"),
    ));
    assert!(err.contains("checksum"), "{err}");
    assert!(refused(device.commit(file)).contains("have arrived"));
    send(&device, &adapter, half, adapter.len());
    // Hot swap: a job started before the switch finishes on the base.
    let (in_flight, installed) = std::thread::scope(|s| {
        let job = s.spawn(|| device.segment(&scene, &d.join("in-flight.tif")));
        std::thread::sleep(std::time::Duration::from_millis(200));
        let installed = device.commit(file);
        (job.join().unwrap(), installed)
    });
    assert_eq!(installed, Response::Installed { version: 5 });
    assert_eq!(active(&device), Some(5));
    let Response::Segmented(in_flight) = in_flight else {
        panic!("the in-flight job failed")
    };
    assert_eq!(
        (in_flight.adapter, in_flight.mask_sha256),
        (None, before.mask_sha256)
    );

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
    assert!(
        refused(device.offer(&header, adapter.len() as u64 - 7, Digest::of(b"t")))
            .contains("truncated")
    );
    let mut huge = header;
    huge[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(refused(device.offer(&huge, (1u64 << 40) + 88, Digest::of(b"h"))).contains("limit"));
    keygen(&d.join("stranger.key"));
    let stranger_dir = d.join("stranger");
    std::fs::create_dir_all(&stranger_dir).unwrap();
    run_export(&run, &stranger_dir, "v9", &d.join("stranger.key"), 9);
    let strange = std::fs::read(stranger_dir.join("v9.flad")).unwrap();
    assert!(refused(offer(&device, &strange)).contains("does not trust"));
    let secret =
        flood_models::sign::SigningKey::from_hex(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let mut other_base =
        flood_models::adapter::Adapter::read_unverified(&adapter, u64::MAX).unwrap();
    (other_base.base_model, other_base.version) = (Digest::of(b"another base"), 6);
    let other_base = other_base.encode(&secret).unwrap();
    assert_eq!(
        offer(&device, &other_base),
        Response::Continue { offset: 0 }
    );
    send(&device, &other_base, 0, other_base.len());
    assert!(refused(device.commit(Digest::of(&other_base))).contains("adapter is for base model"));
    assert_eq!(active(&device), Some(5));

    // The adapted device maps like the merged export, and unlike the base.
    let Response::Segmented(after) = device.segment(&scene, &d.join("after.tif")) else {
        panic!("segment failed")
    };
    assert_eq!(after.adapter, Some(5));
    let merged_store = store_with(d, "merged", &d.join("v5.onnx"));
    let merged = Device::open("reference", &merged_store, &trust, 2).unwrap();
    let Response::Segmented(reference) = merged.segment(&scene, &d.join("reference.tif")) else {
        panic!("segment failed")
    };
    eprintln!(
        "water fraction: base {:.5}, adapted on the device {:.5}, merged export {:.5}",
        before.water_fraction, after.water_fraction, reference.water_fraction
    );
    assert_eq!(after.mask_sha256, reference.mask_sha256);
    assert_ne!(
        after.mask_sha256, before.mask_sha256,
        "the adapter must change the map for this test to mean anything"
    );

    // A restart comes back on the installed adapter.
    drop(device);
    let device = Device::open("drone-1", &store, &trust, 2).unwrap();
    assert_eq!(active(&device), Some(5));
}

/// Forwards connections to `target`, cutting each after `cut_after` bytes from the client.
fn flaky_proxy(target: std::net::SocketAddr, cut_after: usize) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let Ok(mut server) = TcpStream::connect(target) else {
                continue;
            };
            let (mut client_back, mut server_back) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut server_back, &mut client_back);
            });
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let mut passed = 0;
                while passed < cut_after {
                    match client.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let n = n.min(cut_after - passed);
                            if server.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            passed += n;
                        }
                    }
                }
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
            });
        }
    });
    addr
}

pub(crate) fn push(addr: &str, adapter: &Path, extra: &[&str]) -> std::process::Output {
    floodtrain()
        .args(["--quiet", "push", "--retries", "5", "--device", addr])
        .args(extra)
        .arg(adapter)
        .output()
        .unwrap()
}

#[test]
fn floodtrain_push_installs_over_a_link_that_drops_every_few_kilobytes_and_the_server_sheds_bad_peers(
) {
    use flood_models::protocol::{encode, read_frame, write_frame, Request};
    use floodrt::ota::server::{ServeConfig, Server};
    use std::time::{Duration, Instant};

    let shared = need_shared!();
    let ws = Workstation::new(&shared, 3);
    let (d, run, key) = (ws.dir.path(), ws.run.clone(), ws.key.clone());
    run_export(&run, d, "v3", &key, 3);
    run_export(&run, d, "v4", &key, 4);
    let jobs = d.join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::copy(
        shared.join("data/sen1floods11/S1Hand/Bolivia_312675_S1Hand.tif"),
        jobs.join("scene.tif"),
    )
    .unwrap();

    let store = store_with(d, "device", &d.join("v3-base.onnx"));
    let device = Device::open("drone-2", &store, &d.join("ws.key.pub"), 2)
        .unwrap()
        .with_jobs(&jobs)
        .unwrap();
    let config = ServeConfig {
        max_connections: 4,
        idle_timeout: Duration::from_secs(1),
        frame_timeout: Duration::from_secs(5),
        http: None,
    };
    let server = Server::bind("127.0.0.1:0", device, config).unwrap();
    let addr = server.local_addr().unwrap();
    std::thread::spawn(move || server.run());

    // Over a link cut every 10 kB, in 4 KiB chunks.
    let proxy = flaky_proxy(addr, 10_000);
    let start = Instant::now();
    let out = push(
        &proxy.to_string(),
        &d.join("v3.flad"),
        &["--chunk-kib", "4"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "flaky link: {report} in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(report["version"], 3);
    assert!(report["connections"].as_u64().unwrap() > 10, "{report}");

    // Directly, the next version: the update time of a tiny adapter.
    let start = Instant::now();
    let out = push(&addr.to_string(), &d.join("v4.flad"), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "direct: {} in {:.2} s",
        String::from_utf8_lossy(&out.stdout).trim(),
        start.elapsed().as_secs_f64()
    );

    // A replay is refused for good, not retried.
    let out = push(&addr.to_string(), &d.join("v3.flad"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not newer"));

    // Jobs run on the device, inside its jobs folder only.
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    write_frame(
        &mut socket,
        &Request::Segment {
            scene: "scene.tif".into(),
            output: "mask.tif".into(),
        },
    )
    .unwrap();
    match read_frame::<Response>(&mut socket).unwrap() {
        Response::Segmented(job) => assert_eq!(job.adapter, Some(4)),
        other => panic!("{other:?}"),
    }
    assert!(jobs.join("mask.tif").is_file());
    write_frame(
        &mut socket,
        &Request::Segment {
            scene: "../v3-base.onnx".into(),
            output: "x.tif".into(),
        },
    )
    .unwrap();
    assert!(matches!(
        read_frame::<Response>(&mut socket).unwrap(),
        Response::Refused { .. }
    ));

    // Garbage and oversized frames get a refusal and a closed connection; a silent peer is
    // dropped after the idle timeout; the device serves on.
    use std::io::{Read, Write};
    for garbage in [vec![0xff, 0xff, 0xff, 0xff], {
        let mut f = encode(&Request::Status).unwrap();
        f[4] = 0xee;
        f
    }] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(&garbage).unwrap();
        assert!(matches!(
            read_frame::<Response>(&mut s).unwrap(),
            Response::Refused { .. }
        ));
        assert_eq!(
            s.read(&mut [0u8; 1]).unwrap_or(0),
            0,
            "closed after a bad frame"
        );
    }
    let mut silent = std::net::TcpStream::connect(addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let start = Instant::now();
    assert_eq!(silent.read(&mut [0u8; 1]).unwrap_or(0), 0);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "idle peer dropped after {:?}",
        start.elapsed()
    );
    write_frame(&mut socket, &Request::Status).unwrap();
    match read_frame::<Response>(&mut socket) {
        Ok(Response::Status(status)) => assert_eq!(status.active, Some(4)),
        // This connection idled past the timeout too: a fresh one must work.
        _ => {
            let mut fresh = std::net::TcpStream::connect(addr).unwrap();
            write_frame(&mut fresh, &Request::Status).unwrap();
            let Response::Status(status) = read_frame::<Response>(&mut fresh).unwrap() else {
                panic!("no status")
            };
            assert_eq!(status.active, Some(4));
            assert_eq!(status.last_results.len(), 1);
        }
    }
}

/// Set in the device processes the power-cut and load tests start:
/// "STORE|TRUST|ADDR_FILE|MAX_CONNECTIONS|IDLE_S|FRAME_S".
const DEVICE_ENV: &str = "FLOOD_TEST_DEVICE_PROCESS";

/// Not a test of its own: the device process that `a_device_killed_at_random_points…` starts
/// (this test binary, run again with DEVICE_ENV set) and kills with SIGKILL.
#[test]
fn device_process() {
    use floodrt::ota::server::{ServeConfig, Server};
    let Ok(spec) = std::env::var(DEVICE_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    floodrt::allocator::few_arenas();
    let device = Device::open("test-device", Path::new(parts[0]), Path::new(parts[1]), 1).unwrap();
    let number = |i: usize| parts[i].parse::<u64>().unwrap();
    let config = ServeConfig {
        max_connections: number(3) as usize,
        idle_timeout: std::time::Duration::from_secs(number(4)),
        frame_timeout: std::time::Duration::from_secs(number(5)),
        http: None,
    };
    let server = Server::bind("127.0.0.1:0", device, config).unwrap();
    let tmp = format!("{}.tmp", parts[2]);
    std::fs::write(&tmp, server.local_addr().unwrap().to_string()).unwrap();
    std::fs::rename(&tmp, parts[2]).unwrap();
    server.run().unwrap();
}

pub(crate) struct DeviceProcess {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
}

/// `floodrt serve`'s limits: connections at once, idle and frame timeouts in seconds.
pub(crate) type Limits = (usize, u64, u64);

impl DeviceProcess {
    fn start(store: &Path, trust: &Path) -> DeviceProcess {
        DeviceProcess::start_with(store, trust, (2, 30, 30))
    }

    pub fn start_with(store: &Path, trust: &Path, limits: Limits) -> DeviceProcess {
        let addr_file = store.with_extension("addr");
        let _ = std::fs::remove_file(&addr_file);
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "ota::device_process",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(
                DEVICE_ENV,
                format!(
                    "{}|{}|{}|{}|{}|{}",
                    store.display(),
                    trust.display(),
                    addr_file.display(),
                    limits.0,
                    limits.1,
                    limits.2
                ),
            )
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        let mut device = DeviceProcess {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
        };
        loop {
            if let Ok(text) = std::fs::read_to_string(&addr_file) {
                device.addr = text.parse().unwrap();
                return device;
            }
            assert!(
                device.child.try_wait().unwrap().is_none(),
                "the device process died on start"
            );
            assert!(
                start.elapsed().as_secs() < 120,
                "the device process did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn status(&self) -> flood_models::protocol::DeviceStatus {
        use flood_models::protocol::{read_frame, write_frame, Request};
        let mut s = std::net::TcpStream::connect(self.addr).unwrap();
        write_frame(&mut s, &Request::Status).unwrap();
        match read_frame::<Response>(&mut s).unwrap() {
            Response::Status(status) => status,
            other => panic!("{other:?}"),
        }
    }

    /// SIGKILL: no destructor, no flush, like a power cut.
    pub fn kill(self) {}

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for DeviceProcess {
    /// Also when a test fails: an orphaned device would hold the test's output open.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Offer, 4 KiB chunks from the device's offset, commit; stops at the first failure.
pub(crate) fn push_over_tcp(addr: std::net::SocketAddr, bytes: &[u8]) -> anyhow::Result<Response> {
    use flood_models::protocol::{read_frame, write_frame, Request};
    let mut s = std::net::TcpStream::connect(addr)?;
    let mut ask = |r: &Request| -> anyhow::Result<Response> {
        write_frame(&mut s, r)?;
        Ok(read_frame::<Response>(&mut s)?)
    };
    let file = Digest::of(bytes);
    let header: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into()?;
    let Response::Continue { mut offset } = ask(&Request::Offer {
        header,
        total_len: bytes.len() as u64,
        sha256: file,
    })?
    else {
        anyhow::bail!("offer refused")
    };
    while (offset as usize) < bytes.len() {
        let data = bytes[offset as usize..(offset as usize + 4096).min(bytes.len())].to_vec();
        let checksum = Digest::of(&data);
        let Response::Continue { offset: next } = ask(&Request::Chunk {
            file,
            offset,
            data,
            checksum,
        })?
        else {
            anyhow::bail!("chunk refused")
        };
        offset = next;
    }
    ask(&Request::Commit { file })
}

#[test]
fn a_device_killed_at_random_points_of_updates_always_restarts_on_the_old_or_the_new_adapter() {
    use flood_models::adapter::{Adapter, DEFAULT_MAX_BODY_BYTES};
    use flood_models::sign::{SigningKey, TrustedKeys};
    let shared = need_shared!();
    let ws = Workstation::new(&shared, 3);
    let (d, run, key) = (ws.dir.path(), ws.run.clone(), ws.key.clone());
    let trust = d.join("ws.key.pub");
    run_export(&run, d, "a", &key, 1);
    // Versions 1, 2, 3…: the same factors re-signed, each newer than the last.
    let secret = SigningKey::from_hex(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let keys = TrustedKeys::parse(&std::fs::read_to_string(&trust).unwrap()).unwrap();
    let template = Adapter::verify(
        &std::fs::read(d.join("a.flad")).unwrap(),
        &keys,
        DEFAULT_MAX_BODY_BYTES,
    )
    .unwrap()
    .into_adapter();
    let version_bytes = |v: u64| {
        Adapter {
            version: v,
            ..template.clone()
        }
        .encode(&secret)
        .unwrap()
    };

    let store = store_with(d, "device", &d.join("a-base.onnx"));
    let (mut active, mut previous) = (None::<u64>, None::<u64>);
    let mut next = 1u64;
    let cuts = 50;
    for i in 0..cuts {
        let device = DeviceProcess::start(&store, &trust);
        let bytes = version_bytes(next);
        let addr = device.addr;
        let client = std::thread::spawn(move || push_over_tcp(addr, &bytes));
        // Cut anywhere from the offer to after the switch (a tiny push takes about a second).
        std::thread::sleep(std::time::Duration::from_millis((i * 37 % 50) * 30));
        device.kill();
        let _ = client.join();

        let device = DeviceProcess::start(&store, &trust);
        let status = device.status();
        if status.active == Some(next) {
            assert_eq!(
                status.previous, active,
                "cut {i}: the old adapter must be kept as previous"
            );
            (previous, active) = (active, Some(next));
            next += 1;
        } else {
            assert_eq!(
                (status.active, status.previous),
                (active, previous),
                "cut {i}: neither old nor new"
            );
        }
        device.kill();
    }
    eprintln!("{cuts} power cuts during updates: {} completed before the cut, the rest left the old adapter; every restart passed its health check", next - 1);
    assert!(
        next > 3 && next < cuts as u64,
        "cuts should land both before and after the switch ({} installs)",
        next - 1
    );
}

/// Offer, every chunk and commit, in one go.
pub(crate) fn install(device: &Device, bytes: &[u8]) -> Response {
    match offer(device, bytes) {
        Response::Continue { offset } => {
            send(device, bytes, offset, bytes.len());
            device.commit(Digest::of(bytes))
        }
        other => other,
    }
}

#[test]
fn older_or_replayed_adapters_are_refused_and_a_revoked_key_rolls_its_adapter_back() {
    let shared = need_shared!();
    let ws = Workstation::new(&shared, 3);
    let (d, run, key) = (ws.dir.path(), ws.run.clone(), ws.key.clone());
    let other = keygen(&d.join("other.key"));
    run_export(&run, d, "v5", &key, 5);
    run_export(&run, d, "v6", &d.join("other.key"), 6);
    let trust = d.join("both.pub");
    let both = std::fs::read_to_string(d.join("ws.key.pub")).unwrap()
        + &std::fs::read_to_string(&other).unwrap();
    std::fs::write(&trust, both).unwrap();
    let (v5, v6) = (
        std::fs::read(d.join("v5.flad")).unwrap(),
        std::fs::read(d.join("v6.flad")).unwrap(),
    );

    let store = store_with(d, "device", &d.join("v5-base.onnx"));
    let device = Device::open("field-2", &store, &trust, 2).unwrap();
    assert_eq!(install(&device, &v5), Response::Installed { version: 5 });
    assert_eq!(install(&device, &v6), Response::Installed { version: 6 });
    // Anti-rollback: the older adapter, re-sent after the newer one, and the newer one again.
    for (bytes, what) in [(&v5, "older"), (&v6, "replayed")] {
        let err = refused(install(&device, bytes));
        assert!(
            err.contains("not newer than the installed 6"),
            "{what}: {err}"
        );
        assert_eq!(active(&device), Some(6));
    }
    drop(device);

    // The second key leaks: revoked (its KEY.pub file as the revocation list). The device
    // rolls its adapter back to v5 at start and refuses the key's adapters from the offer on.
    let device = Device::open_revoking("field-2", &store, &trust, Some(&other), 2).unwrap();
    assert_eq!(active(&device), Some(5));
    let err = refused(offer(&device, &v6));
    assert!(err.contains("revoked"), "{err}");
    let Response::Status(status) = device.status() else {
        panic!("no status")
    };
    assert_eq!(
        status.previous, None,
        "the revoked adapter is gone from the store"
    );
    // A revocation file that is not one is an error at start, naming the file.
    let bad = d.join("bad.revoked");
    std::fs::write(&bad, "not a key\n").unwrap();
    let err = Device::open_revoking("field-2", &store, &trust, Some(&bad), 2)
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("bad.revoked"), "{err:#}");
}
