//! The ground-station page's API (`floodrt serve --http`), driven over plain HTTP/1.1 from the
//! test: status, jobs started and finished, downloads, confinement of job paths, oversized and
//! malformed requests, history across a restart, and that nothing listens for HTTP without
//! `--http`. (A real browser drives the page itself in the trainer's suite, which can make and
//! push a signed adapter.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// A device whose store holds the embedded default model as its base.
fn device_folders(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("embedded/flood-s1-v1.int8.onnx");
    std::fs::copy(base, store.join("base.onnx")).unwrap();
    let trust = dir.join("trusted.pub");
    let key = flood_models::sign::SigningKey::from_bytes(&[7; 32]);
    std::fs::write(&trust, format!("{}\n", key.public().to_hex())).unwrap();
    let jobs = dir.join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    (store, trust, jobs)
}

/// A running `floodrt serve`, killed on drop.
struct Serve {
    child: Child,
    ota: SocketAddr,
    http: Option<SocketAddr>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(store: &Path, trust: &Path, jobs: &Path, http: bool) -> Serve {
    serve_with(store, trust, jobs, http, &[])
}

fn serve_with(store: &Path, trust: &Path, jobs: &Path, http: bool, extra: &[&str]) -> Serve {
    let mut cmd = floodrt();
    cmd.args([
        "serve",
        "--id",
        "field-1",
        "--listen",
        "127.0.0.1:0",
        "--idle-timeout",
        "5",
    ])
    .arg("--store")
    .arg(store)
    .arg("--trust")
    .arg(trust)
    .arg("--jobs")
    .arg(jobs)
    .args(extra);
    if http {
        cmd.args(["--http", "127.0.0.1:0"]);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr_after = |line: &str, prefix: &str| {
        line.strip_prefix(prefix).map(|rest| {
            rest.trim_start_matches("http://")
                .trim_end_matches('/')
                .parse()
                .unwrap()
        })
    };
    let ota = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(addr) = addr_after(&line, "floodrt serve: listening on ") {
            break addr;
        }
    };
    let http = http.then(|| {
        let line = lines.next().unwrap().unwrap();
        addr_after(&line, "floodrt serve: ground-station page on ").expect(&line)
    });
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Serve { child, ota, http }
}

struct Reply {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One HTTP/1.1 exchange on a fresh connection: `head` is the request line and headers
/// (without the blank line), `body` follows it as is.
fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(format!("{head}\r\nHost: device\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    // The server may answer (and close) before it has read an oversized body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no reply head: {:?}", String::from_utf8_lossy(&raw)));
    let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = headers.split(' ').nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// A status request's HTTP code, or None when the server closed the connection unanswered.
/// Whether the server still holds `stream` open (a refused one reads as closed).
fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    stream.set_nonblocking(true).unwrap();
    let open =
        matches!(stream.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    open
}

fn exchange_or_closed(addr: SocketAddr) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /api/status HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let head = String::from_utf8_lossy(&raw);
    head.split(' ').nth(1)?.parse().ok()
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    exchange(addr, &format!("GET {path} HTTP/1.1"), b"")
}

fn post_job(addr: SocketAddr, body: &str) -> Reply {
    exchange(
        addr,
        &format!(
            "POST /api/jobs HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}",
            body.len()
        ),
        body.as_bytes(),
    )
}

fn wait_for_job(addr: SocketAddr, id: u64) -> Value {
    let start = Instant::now();
    loop {
        let job = get(addr, &format!("/api/jobs/{id}")).json();
        if job["state"] == "done" || job["state"] == "failed" {
            return job;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "job {id} hangs: {job}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// TCP ports process `pid` listens on, from its socket descriptors and /proc/net/tcp{,6}.
fn listening_ports(pid: u32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_string)
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for row in text.lines().skip(1) {
            let cols: Vec<&str> = row.split_whitespace().collect();
            // local_address is ADDR:PORT in hex; state 0A is LISTEN; column 9 the inode.
            if cols.len() > 9 && cols[3] == "0A" && inodes.iter().any(|i| i == cols[9]) {
                let port = cols[1].rsplit(':').next().unwrap();
                ports.push(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports.sort_unstable();
    ports
}

#[test]
fn the_page_api_reports_the_device_runs_jobs_confined_to_the_jobs_folder_and_refuses_bad_requests()
{
    let dir = tempfile::tempdir().unwrap();
    let (store, trust, jobs) = device_folders(dir.path());
    // A synthetic scene (and its mask and report from `floodrt demo`, for comparison).
    let demo = dir.path().join("demo");
    run_ok(
        floodrt()
            .args(["--quiet", "demo", "--size", "512", "--out"])
            .arg(&demo),
    );
    std::fs::create_dir_all(jobs.join("event")).unwrap();
    std::fs::copy(demo.join("scene.tif"), jobs.join("event/scene.tif")).unwrap();
    std::fs::write(dir.path().join("secret.tif"), b"not yours").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.tif"), jobs.join("link.tif")).unwrap();

    let device = serve(&store, &trust, &jobs, true);
    let web = device.http.unwrap();
    let mut ports = vec![device.ota.port(), web.port()];
    ports.sort_unstable();
    assert_eq!(listening_ports(device.child.id()), ports);

    // The page: served from the binary, fetching nothing from elsewhere.
    let page = get(web, "/");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    let html = String::from_utf8(page.body.clone()).unwrap();
    assert!(html.contains("<script src=\"/page.js\">"), "{html}");
    let script = get(web, "/page.js");
    assert_eq!(script.status, 200);
    for text in [html.as_str(), std::str::from_utf8(&script.body).unwrap()] {
        assert!(!text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"));
    }

    let status = get(web, "/api/status").json();
    assert_eq!(status["device_id"], "field-1");
    assert!(status["adapter"].is_null(), "{status}");
    assert_eq!(status["model"]["bands"], serde_json::json!(["vv", "vh"]));
    assert_eq!(status["jobs"]["accepting"], true);
    let disks = status["disk"].as_array().unwrap();
    assert_eq!(disks.len(), 2, "{status}");
    assert!(disks.iter().all(|d| d["free_bytes"].as_u64().unwrap() > 0));

    let listing = get(web, "/api/jobs").json();
    assert_eq!(
        listing["scenes"],
        serde_json::json!(["event/scene.tif", "link.tif"])
    );
    assert_eq!(listing["jobs"], serde_json::json!([]));

    // Confinement: nothing outside the jobs folder, whatever the name says.
    for (body, status) in [
        (r#"{"scene": "../trusted.pub"}"#, 400),
        (r#"{"scene": "/etc/passwd"}"#, 400),
        (r#"{"scene": "event/../../secret.tif"}"#, 400),
        (r#"{"scene": "link.tif"}"#, 400),
        (r#"{"scene": "missing.tif"}"#, 404),
        (r#"{"scene": "event"}"#, 404),
        (r#"{"scene": 5}"#, 400),
        (r#"{"scene": "event/scene.tif", "output": "/etc/x"}"#, 400),
        ("not json", 400),
    ] {
        let reply = post_job(web, body);
        assert_eq!(
            reply.status,
            status,
            "{body}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(reply.json()["error"].is_string());
    }
    // Bounded requests: big bodies (declared or streamed), big headers, wrong type or method.
    let big = "x".repeat(1 << 20);
    assert_eq!(post_job(web, &big).status, 413);
    let mut chunked = format!("{:x}\r\n{}\r\n", 8192, "y".repeat(8192)).into_bytes();
    chunked.extend_from_slice(b"0\r\n\r\n");
    let streamed = exchange(
        web,
        "POST /api/jobs HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked",
        &chunked,
    );
    assert_eq!(streamed.status, 413);
    let huge_header = format!(
        "GET /api/status HTTP/1.1\r\nX-Pad: {}",
        "z".repeat(64 << 10)
    );
    assert_eq!(exchange(web, &huge_header, b"").status, 431);
    let plain = exchange(
        web,
        "POST /api/jobs HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 27",
        br#"{"scene": "event/scene.tif"}"#,
    );
    assert_eq!(plain.status, 415, "a cross-site form cannot start jobs");
    assert_eq!(exchange(web, "DELETE /api/jobs HTTP/1.1", b"").status, 405);
    assert_eq!(exchange(web, "PUT /api/status HTTP/1.1", b"").status, 405);
    for path in [
        "/api/adapters",
        "/../store/base.onnx",
        "/api/jobs/1/../../trusted.pub",
        "/etc/passwd",
    ] {
        assert_eq!(get(web, path).status, 404, "{path}");
    }
    assert_eq!(
        get(web, "/api/jobs").json()["jobs"],
        serde_json::json!([]),
        "nothing was queued"
    );

    // Slow-loris: 16 connections (the default limit) that never finish their request head
    // hold every slot; the 17th is closed at once; once the head timeout (--idle-timeout 5 s)
    // has dropped the silent ones, the page answers again.
    // (A connection of the requests above may still hold a slot for a moment and get one of
    // these refused: each is checked held, and a refused one is replaced.)
    let mut silent: Vec<TcpStream> = Vec::new();
    let holding = Instant::now();
    while silent.len() < 16 {
        assert!(
            holding.elapsed() < Duration::from_secs(4),
            "slots never filled"
        );
        silent.extend((silent.len()..16).map(|_| {
            let mut s = TcpStream::connect(web).unwrap();
            s.write_all(b"GET /api/status HTTP/1.1\r\nHost: dev")
                .unwrap();
            s
        }));
        std::thread::sleep(Duration::from_millis(300));
        silent.retain(still_open);
    }
    let start = Instant::now();
    assert_eq!(
        exchange_or_closed(web),
        None,
        "over the limit: closed, unanswered"
    );
    while exchange_or_closed(web).is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the silent connections were never dropped"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let waited = start.elapsed();
    assert!(
        waited > Duration::from_secs(3),
        "freed after {waited:?}, before the head timeout"
    );
    drop(silent);

    // A job from the API: queued, run, its files downloadable.
    let accepted = post_job(web, r#"{"scene": "event/scene.tif"}"#);
    assert_eq!(
        accepted.status,
        202,
        "{}",
        String::from_utf8_lossy(&accepted.body)
    );
    let id = accepted.json()["id"].as_u64().unwrap();
    assert_eq!(
        accepted.header("location"),
        Some(format!("/api/jobs/{id}").as_str())
    );
    let job = wait_for_job(web, id);
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["origin"], "page");
    assert_eq!(job["progress"], 1.0);
    let demo_report = read_json(&demo.join("report.json"));
    assert_eq!(
        job["water_fraction"], demo_report["water_fraction"],
        "same model, same scene, same map"
    );
    assert!(job["water_km2"].as_f64().unwrap() > 0.0);
    assert_eq!(
        job["files"],
        serde_json::json!(["mask.tif", "water.geojson", "report.json", "quicklook.png"])
    );
    let folder = jobs.join(format!("results/{id:06}-scene"));
    for name in ["mask.tif", "water.geojson", "report.json", "quicklook.png"] {
        let reply = get(web, &format!("/api/jobs/{id}/{name}"));
        assert_eq!(reply.status, 200, "{name}");
        assert_eq!(
            reply.body,
            std::fs::read(folder.join(name)).unwrap(),
            "{name}"
        );
    }
    let png = get(web, &format!("/api/jobs/{id}/quicklook.png"));
    assert_eq!(png.header("content-type"), Some("image/png"));
    assert!(png.body.starts_with(b"\x89PNG"));
    let mask = get(web, &format!("/api/jobs/{id}/mask.tif"));
    assert!(mask
        .header("content-disposition")
        .unwrap()
        .contains("attachment"));
    let bits = |p: &Path| mask_of(p).iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert!(
        bits(&folder.join("mask.tif")) == bits(&demo.join("mask.tif")),
        "the job's mask differs from floodrt demo's"
    );
    assert_eq!(get(web, &format!("/api/jobs/{id}/job.json")).status, 404);
    assert_eq!(get(web, "/api/jobs/999/mask.tif").status, 404);

    // An OTA job is listed beside it; its paths are confined the same way.
    use flood_models::protocol::{read_frame, write_frame, Request, Response};
    let mut ota = TcpStream::connect(device.ota).unwrap();
    for (scene, output, ok) in [
        ("event/scene.tif", "ota-mask.tif", true),
        ("link.tif", "x.tif", false),
        ("event/scene.tif", "../x.tif", false),
        ("event/scene.tif", "event/scene.tif", false),
        ("event/scene.tif", "results/000001-scene/mask.tif", false),
    ] {
        let request = Request::Segment {
            scene: scene.into(),
            output: output.into(),
        };
        write_frame(&mut ota, &request).unwrap();
        let reply = read_frame::<Response>(&mut ota).unwrap();
        assert_eq!(
            matches!(reply, Response::Segmented(_)),
            ok,
            "{scene} {output}: {reply:?}"
        );
    }
    let listed = get(web, "/api/jobs").json();
    let origins: Vec<_> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["origin"].clone())
        .collect();
    assert_eq!(origins, ["ota", "page"]);
    assert_eq!(get(web, "/api/status").json()["jobs"]["running"], 0);

    // A restarted device lists the page job again, files and all.
    drop(device);
    let device = serve(&store, &trust, &jobs, true);
    let web = device.http.unwrap();
    let listed = get(web, "/api/jobs").json();
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["jobs"][0]["water_fraction"], job["water_fraction"]);
    assert_eq!(
        get(web, &format!("/api/jobs/{id}/quicklook.png")).body,
        png.body
    );
    drop(device);

    // Without --http nothing listens for HTTP: the OTA port is the process's only one.
    let device = serve(&store, &trust, &jobs, false);
    assert_eq!(listening_ports(device.child.id()), [device.ota.port()]);
}

/// Slow-loris peers (a byte of a header, then nothing) holding every connection slot give
/// way to a client with a request within a fraction of a second, not after the idle timeout.
#[test]
fn silent_peers_holding_every_slot_give_way_to_a_client_with_a_request() {
    use flood_models::protocol::{read_frame, write_frame, Request, Response};
    let dir = tempfile::tempdir().unwrap();
    let (store, trust, jobs) = device_folders(dir.path());
    let server = serve_with(&store, &trust, &jobs, false, &["--max-connections", "2"]);
    let silent: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(server.ota).unwrap();
            s.write_all(&[1]).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    let mut client = TcpStream::connect(server.ota).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write_frame(&mut client, &Request::Status).unwrap();
    let answer = read_frame::<Response>(&mut client).unwrap();
    let waited = start.elapsed();
    assert!(matches!(answer, Response::Status(_)), "{answer:?}");
    assert!(
        waited < Duration::from_secs(2),
        "the client waited {waited:?} behind silent peers (idle timeout 5 s)"
    );
    // One silent peer was closed to make room; the client was served.
    let closed = silent
        .into_iter()
        .filter(|s| {
            let mut s = s;
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            matches!(s.read(&mut [0u8; 1]), Ok(0))
        })
        .count();
    assert!(closed >= 1, "no silent peer was closed");
}
