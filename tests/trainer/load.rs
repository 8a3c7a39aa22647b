//! `floodrt serve` under hostile load (#17): many clients on loopback mixing valid requests,
//! replayed pushes, slow-loris connections, oversized and garbage frames, half-sent chunks,
//! abandoned transfers and reconnect storms, while a real `floodtrain push` installs a new
//! adapter. The server runs in its own process (this test binary again, as in the power-cut
//! test) with `floodrt serve`'s default limits, so that its RSS and descriptors are its own.
//!
//! Sized by FLOOD_LOAD_CLIENTS (default 24) and FLOOD_LOAD_SECONDS (default 20): the suite
//! runs it small; `bench/ota_load.sh` runs 100 clients for 10 minutes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flood_models::adapter::{Adapter, DEFAULT_MAX_BODY_BYTES, HEADER_LEN};
use flood_models::protocol::{self, Request, Response, CHUNK_BYTES};
use flood_models::sign::{SigningKey, TrustedKeys};
use flood_models::Digest;

use crate::ota::{push_over_tcp, run_export, store_with, DeviceProcess, Workstation};
use crate::util::*;

/// What one kind of client does on each connection.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    /// Status requests, a tenth of a second apart: the traffic a ground station makes.
    Status,
    /// A whole push of the adapter already installed (or older): refused at commit.
    Replay,
    /// One byte of a frame header, then nothing.
    SlowLoris,
    /// A header announcing 4 GiB.
    Oversized,
    /// A frame of random bytes.
    Garbage,
    /// An offer, then half of a chunk frame, then nothing.
    HalfChunk,
    /// An offer and a few chunks of random bytes, then gone.
    Abandon,
    /// Connect and close, twenty times in a row.
    Storm,
}

const ROLES: [Role; 8] = [
    Role::Status,
    Role::Replay,
    Role::SlowLoris,
    Role::Oversized,
    Role::Garbage,
    Role::HalfChunk,
    Role::Abandon,
    Role::Storm,
];

#[derive(Default)]
struct Counts {
    connections: AtomicU64,
    bytes_sent: AtomicU64,
    answers: AtomicU64,
    busy: AtomicU64,
    refused: AtomicU64,
}

struct Load {
    addr: SocketAddr,
    stop: AtomicBool,
    counts: Counts,
    /// A file the device has installed (or an older one): pushes of it are refused.
    replay: Vec<u8>,
}

/// xorshift: random enough for garbage, without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn digest(&mut self) -> Digest {
        Digest::of(&self.next().to_le_bytes())
    }
}

impl Load {
    fn send(&self, s: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
        s.write_all(bytes)?;
        self.counts
            .bytes_sent
            .fetch_add(bytes.len() as u64, Relaxed);
        Ok(())
    }

    fn ask(&self, s: &mut TcpStream, request: &Request) -> anyhow::Result<Response> {
        self.send(s, &protocol::encode(request)?)?;
        let response = protocol::read_frame::<Response>(s)?;
        self.counts.answers.fetch_add(1, Relaxed);
        match &response {
            Response::Busy { .. } => self.counts.busy.fetch_add(1, Relaxed),
            Response::Refused { .. } => self.counts.refused.fetch_add(1, Relaxed),
            _ => 0,
        };
        Ok(response)
    }

    /// Holds the connection without sending until the server closes it or the test ends.
    fn hold(&self, s: &mut TcpStream) {
        let mut byte = [0u8; 64];
        while !self.stop.load(Relaxed) {
            match s.read(&mut byte) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
    }

    fn offer(
        &self,
        s: &mut TcpStream,
        bytes: &[u8],
        sha256: Digest,
    ) -> anyhow::Result<Option<u64>> {
        let header: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into()?;
        let offer = Request::Offer {
            header,
            total_len: bytes.len() as u64,
            sha256,
        };
        Ok(match self.ask(s, &offer)? {
            Response::Continue { offset } => Some(offset),
            _ => None,
        })
    }

    fn chunk(&self, file: Digest, offset: u64, data: Vec<u8>) -> Request {
        let checksum = Digest::of(&data);
        Request::Chunk {
            file,
            offset,
            data,
            checksum,
        }
    }

    /// One connection's worth of `role`. Errors end the connection: the server may close it
    /// at any point, which is what it is for.
    fn session(&self, role: Role, s: &mut TcpStream, rng: &mut Rng) -> anyhow::Result<()> {
        match role {
            Role::Status => {
                for _ in 0..50 {
                    self.ask(s, &Request::Status)?;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Role::Replay => {
                let file = Digest::of(&self.replay);
                let Some(mut offset) = self.offer(s, &self.replay, file)? else {
                    std::thread::sleep(Duration::from_millis(500));
                    return Ok(());
                };
                while (offset as usize) < self.replay.len() {
                    let end = (offset as usize + CHUNK_BYTES).min(self.replay.len());
                    let chunk =
                        self.chunk(file, offset, self.replay[offset as usize..end].to_vec());
                    let Response::Continue { offset: next } = self.ask(s, &chunk)? else {
                        return Ok(());
                    };
                    offset = next;
                }
                self.ask(s, &Request::Commit { file })?;
            }
            Role::SlowLoris => {
                self.send(s, &[1])?;
                self.hold(s);
            }
            Role::Oversized => {
                self.send(s, &u32::MAX.to_le_bytes())?;
                self.send(s, &rng.bytes(64))?;
                protocol::read_frame::<Response>(s)?;
                self.counts.answers.fetch_add(1, Relaxed);
            }
            Role::Garbage => {
                let len = 1 + rng.next() as usize % 2048;
                self.send(s, &(len as u32).to_le_bytes())?;
                self.send(s, &rng.bytes(len))?;
                protocol::read_frame::<Response>(s)?;
                self.counts.answers.fetch_add(1, Relaxed);
            }
            Role::HalfChunk => {
                let file = rng.digest();
                if self.offer(s, &self.replay, file)?.is_some() {
                    let frame = protocol::encode(&self.chunk(file, 0, rng.bytes(CHUNK_BYTES)))?;
                    self.send(s, &frame[..frame.len() / 2])?;
                }
                self.hold(s);
            }
            Role::Abandon => {
                let file = rng.digest();
                if self.offer(s, &self.replay, file)?.is_some() {
                    let chunks = 1 + rng.next() % 3;
                    for i in 0..chunks {
                        let offset = i * CHUNK_BYTES as u64;
                        self.ask(s, &self.chunk(file, offset, rng.bytes(CHUNK_BYTES)))?;
                    }
                }
            }
            Role::Storm => unreachable!("storms do not hold connections"),
        }
        Ok(())
    }

    fn client(&self, role: Role, seed: u64) {
        let mut rng = Rng(seed | 1);
        while !self.stop.load(Relaxed) {
            if role == Role::Storm {
                for _ in 0..20 {
                    if TcpStream::connect(self.addr).is_ok() {
                        self.counts.connections.fetch_add(1, Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)) else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            self.counts.connections.fetch_add(1, Relaxed);
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
            let _ = self.session(role, &mut s, &mut rng);
        }
    }
}

/// The server process's memory and descriptors, read from /proc.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    rss_kib: u64,
    peak_rss_kib: u64,
    fds: u64,
    threads: u64,
}

fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    Usage {
        rss_kib: field("VmRSS:"),
        peak_rss_kib: field("VmHWM:"),
        fds,
        threads: field("Threads:"),
    }
}

/// `floodrt serve`'s defaults: connections, idle and frame timeouts (s).
const SERVE_DEFAULTS: crate::ota::Limits = (16, 30, 60);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn a_server_under_hostile_load_stays_bounded_keeps_a_valid_store_and_installs_a_push() {
    let shared = need_shared!();
    let clients = env_number("FLOOD_LOAD_CLIENTS", 24) as usize;
    let seconds = env_number("FLOOD_LOAD_SECONDS", 20);
    let ws = Workstation::new(&shared, 3);
    let (d, key) = (ws.dir.path(), ws.key.clone());
    let trust = d.join("ws.key.pub");
    run_export(&ws.run, d, "a", &key, 1);
    // Version 2: the same factors re-signed (the push under load); version 1 is installed
    // first and replayed throughout.
    let secret = SigningKey::from_hex(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let keys = TrustedKeys::parse(&std::fs::read_to_string(&trust).unwrap()).unwrap();
    let v1 = std::fs::read(d.join("a.flad")).unwrap();
    let template = Adapter::verify(&v1, &keys, DEFAULT_MAX_BODY_BYTES)
        .unwrap()
        .into_adapter();
    let v2 = Adapter {
        version: 2,
        ..template
    }
    .encode(&secret)
    .unwrap();
    std::fs::write(d.join("v2.flad"), &v2).unwrap();

    let store = store_with(d, "device", &d.join("a-base.onnx"));
    // `floodrt serve`'s defaults: 16 connections, 30 s idle, 60 s per frame.
    let device = DeviceProcess::start_with(&store, &trust, SERVE_DEFAULTS);
    let pid = device.child.id();
    assert_eq!(
        push_over_tcp(device.addr, &v1).unwrap(),
        Response::Installed { version: 1 }
    );
    let before = usage(pid);

    let load = Arc::new(Load {
        addr: device.addr,
        stop: AtomicBool::new(false),
        counts: Counts::default(),
        replay: v1,
    });
    let peak = Arc::new(Mutex::new(before));
    let sampler = {
        let (load, peak) = (load.clone(), peak.clone());
        std::thread::spawn(move || {
            while !load.stop.load(Relaxed) {
                let now = usage(pid);
                let mut p = peak.lock().unwrap();
                p.fds = p.fds.max(now.fds);
                p.threads = p.threads.max(now.threads);
                p.rss_kib = p.rss_kib.max(now.rss_kib);
                drop(p);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|i| {
            let load = load.clone();
            let role = ROLES[i % ROLES.len()];
            std::thread::spawn(move || load.client(role, 0x9e37_79b9_7f4a_7c15 ^ i as u64))
        })
        .collect();

    // The legitimate push, a third of the way into the storm, as an operator runs it.
    std::thread::sleep(Duration::from_secs(seconds / 3));
    let push_started = Instant::now();
    let pushed = floodtrain()
        .args(["--quiet", "push", "--device", &device.addr.to_string()])
        .arg(d.join("v2.flad"))
        .output()
        .unwrap();
    let push_s = push_started.elapsed().as_secs_f64();
    let remaining = Duration::from_secs(seconds).saturating_sub(started.elapsed());
    std::thread::sleep(remaining);
    load.stop.store(true, Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    sampler.join().unwrap();
    let storm_s = started.elapsed().as_secs_f64();

    // Every client has gone: the server must hold no more descriptors than before.
    let settle = Instant::now();
    let after = loop {
        let now = usage(pid);
        if now.fds <= before.fds || settle.elapsed() > Duration::from_secs(10) {
            break now;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut device = device;
    assert!(device.alive(), "the server died under load");
    let peak = *peak.lock().unwrap();
    let c = &load.counts;
    eprintln!(
        "load: {clients} clients for {storm_s:.0} s: {} connections, {} MiB sent, {} answers ({} busy, {} refused); server RSS {} MiB before (peak so far {}), {} MiB at most during (VmHWM {} MiB); fds {} → peak {} → {} after; threads peak {}; push under load {}: {push_s:.1} s",
        c.connections.load(Relaxed),
        c.bytes_sent.load(Relaxed) >> 20,
        c.answers.load(Relaxed),
        c.busy.load(Relaxed),
        c.refused.load(Relaxed),
        before.rss_kib >> 10,
        before.peak_rss_kib >> 10,
        peak.rss_kib >> 10,
        after.peak_rss_kib >> 10,
        before.fds,
        peak.fds,
        after.fds,
        peak.threads,
        if pushed.status.success() { "installed" } else { "FAILED" },
    );
    assert!(
        pushed.status.success(),
        "the push under load failed: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    assert!(
        after.fds <= before.fds,
        "descriptors leaked: {before:?} → {after:?}"
    );
    // Each of the 16 connections holds at most one 1 MiB frame; an install merges and checks
    // one more model (a few MiB here). 64 MiB over the idle server is above that and far
    // below what unbounded buffers or transfers would take.
    assert!(
        after.peak_rss_kib <= before.rss_kib + (64 << 10),
        "server RSS {} KiB → peak {} KiB",
        before.rss_kib,
        after.peak_rss_kib
    );
    let (connections, answers) = (c.connections.load(Relaxed), c.answers.load(Relaxed));
    assert!(
        connections > clients as u64 && answers > clients as u64,
        "the load did not happen: {connections} connections, {answers} answers"
    );

    // The store afterwards: ACTIVE names v2, every installed adapter verifies, and staging
    // holds no more than the transfer slots.
    let status = device.status();
    assert_eq!((status.active, status.previous), (Some(2), Some(1)));
    device.kill();
    check_store(&store, &keys);
    let staged: u64 = std::fs::read_dir(store.join("staging"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        staged <= floodrt::ota::device::STAGING_SLACK_BYTES + load.replay.len() as u64,
        "{staged} bytes left staged"
    );
    // And it starts again on v2, health check included.
    let device = DeviceProcess::start_with(&store, &trust, SERVE_DEFAULTS);
    assert_eq!(device.status().active, Some(2));
    device.kill();
}

/// Every adapter in the store verifies and the pointer names installed ones.
fn check_store(store: &Path, keys: &TrustedKeys) {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(store.join("adapters")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        Adapter::verify(&bytes, keys, DEFAULT_MAX_BODY_BYTES)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        names.push(path.file_stem().unwrap().to_string_lossy().into_owned());
    }
    let pointer = std::fs::read_to_string(store.join("ACTIVE")).unwrap();
    for line in pointer.lines() {
        let name = line.split_whitespace().nth(1).unwrap();
        assert!(
            names.iter().any(|n| n == name),
            "ACTIVE names {name}, not in {names:?}"
        );
    }
}

/// The transfers on their own: offers beyond the limit drop the one touched least recently
/// (a chunk keeps a transfer young), a dropped transfer's next chunk is told to offer again,
/// and what other transfers stage is held within the slack.
#[test]
fn transfers_are_bounded_in_number_and_bytes_and_a_moving_one_is_kept() {
    use floodrt::ota::device::{MAX_TRANSFERS, STAGING_SLACK_BYTES};
    use floodrt::ota::Device;
    let shared = need_shared!();
    let ws = Workstation::new(&shared, 3);
    let (d, key) = (ws.dir.path(), ws.key.clone());
    run_export(&ws.run, d, "a", &key, 1);
    let v1 = std::fs::read(d.join("a.flad")).unwrap();
    let store = store_with(d, "device", &d.join("a-base.onnx"));
    let device = Device::open("slots", &store, &d.join("ws.key.pub"), 1).unwrap();
    let header: [u8; HEADER_LEN] = v1[..HEADER_LEN].try_into().unwrap();
    let offer = |file: Digest| device.offer(&header, v1.len() as u64, file);
    let send_all = |file: Digest| {
        let mut offset = 0;
        while offset < v1.len() {
            let data = &v1[offset..(offset + CHUNK_BYTES).min(v1.len())];
            match device.chunk(file, offset as u64, data, Digest::of(data)) {
                Response::Continue { offset: next } => offset = next as usize,
                other => return other,
            }
        }
        Response::Continue {
            offset: offset as u64,
        }
    };
    let files: Vec<Digest> = (0..=MAX_TRANSFERS as u32)
        .map(|i| Digest::of(&i.to_le_bytes()))
        .collect();
    for file in &files[..MAX_TRANSFERS] {
        assert_eq!(offer(*file), Response::Continue { offset: 0 });
    }
    // Transfer 0 moves; 1 is now the oldest and gives way to one more offer.
    send_all(files[0]);
    assert_eq!(
        offer(files[MAX_TRANSFERS]),
        Response::Continue { offset: 0 }
    );
    let gone = send_all(files[1]);
    assert!(
        matches!(&gone, Response::Busy { reason } if reason.contains("offer it again")),
        "{gone:?}"
    );
    assert_eq!(
        offer(files[0]),
        Response::Continue {
            offset: v1.len() as u64
        },
        "the transfer that moved keeps its bytes"
    );

    // Stage whole files under many names: other transfers' bytes stay within the slack.
    let many = (STAGING_SLACK_BYTES / v1.len() as u64 + 4) as usize;
    assert!(
        many < MAX_TRANSFERS,
        "the adapter is too small for this check"
    );
    for file in &files[2..2 + many] {
        offer(*file);
        assert!(matches!(send_all(*file), Response::Continue { .. }));
    }
    let staged: u64 = std::fs::read_dir(store.join("staging"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        staged <= STAGING_SLACK_BYTES + v1.len() as u64,
        "{staged} bytes staged"
    );
    assert!(staged > STAGING_SLACK_BYTES / 2, "{staged} bytes staged");
}
