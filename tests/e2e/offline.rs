//! Offline (part of #17): floodrt's jobs need no network. `demo`, `segment`, `eval` and `serve`
//! (with a loopback client) run inside a network namespace that has nothing but loopback
//! (`unshare -n`, root), and under `strace` the batch commands make no internet socket at all
//! and `serve` only the listening ones it was asked for.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::util::*;

fn floodrt_bin() -> &'static str {
    env!("CARGO_BIN_EXE_floodrt")
}

/// Whether this machine can make a network namespace (root, unshare, ip); in CI it must.
fn can_isolate() -> bool {
    let ok = Command::new("unshare")
        .args(["-n", "ip", "link", "set", "lo", "up"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the offline checks as root with unshare and ip (util-linux, iproute2)"
        );
        eprintln!("skipping: no network namespace here (needs root, unshare and ip)");
    }
    ok
}

/// `script` (sh) inside a fresh network namespace with only loopback up; `$FLOODRT` is the
/// binary under test.
fn offline(script: &str) -> Output {
    let out = Command::new("unshare")
        .args(["-n", "sh", "-ec"])
        .arg(format!(
            "ip link set lo up\n[ \"$(ip -o link show | wc -l)\" = 1 ]  # loopback alone\n{script}"
        ))
        .env("FLOODRT", floodrt_bin())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "offline run failed:\n{script}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// floodrt under `strace`, its network system calls written to `trace`.
fn traced(trace: &Path) -> Command {
    let mut cmd = Command::new("strace");
    cmd.args([
        "-f",
        "-qq",
        "-e",
        "trace=socket,connect,bind,listen,sendto",
        "-o",
    ])
    .arg(trace)
    .arg(floodrt_bin());
    cmd
}

/// The network system calls `strace` saw `args` make (one line each).
fn network_calls(args: &[&str], dir: &Path) -> Vec<String> {
    let trace = dir.join("strace.txt");
    let status = traced(&trace)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("strace runs");
    assert!(status.success(), "{args:?} under strace");
    std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn demo_segment_eval_and_serve_run_with_no_network_and_open_no_internet_socket() {
    if !can_isolate() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = d.join("store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("embedded/flood-s1-v1.int8.onnx"),
        store.join("base.onnx"),
    )
    .unwrap();
    let key = flood_models::sign::SigningKey::from_bytes(&[9; 32]);
    std::fs::write(d.join("trust.pub"), key.public().to_hex()).unwrap();
    std::fs::create_dir_all(d.join("jobs")).unwrap();

    // The batch commands, each in its own namespace.
    offline(&format!(
        "cd {}\n\"$FLOODRT\" --quiet demo --size 512 --out demo\n\"$FLOODRT\" --quiet segment demo/scene.tif -o m.tif --report r.json\ncp demo/scene.tif jobs/scene.tif",
        d.display()
    ));
    assert!(d.join("m.tif").is_file() && d.join("r.json").is_file());
    if let Some(shared) = shared_dir() {
        data_dir_with(&shared, &["India_900498"], &d.join("data"));
        offline(&format!(
            "\"$FLOODRT\" --quiet eval --data {}",
            d.join("data").display()
        ));
    }

    // serve with the page, and a loopback client that checks the status and runs a job.
    let client = r#"
import json, sys, time, urllib.request
web = sys.argv[1]
status = json.load(urllib.request.urlopen(f"http://{web}/api/status"))
assert status["device_id"] == "offline-1", status
req = urllib.request.Request(f"http://{web}/api/jobs", data=b'{"scene": "scene.tif"}', headers={"Content-Type": "application/json"})
job = json.load(urllib.request.urlopen(req))
for _ in range(600):
    job = json.load(urllib.request.urlopen(f"http://{web}/api/jobs/{job['id']}"))
    if job["state"] in ("done", "failed"):
        break
    time.sleep(0.1)
assert job["state"] == "done", job
print("job done offline", job["water_km2"])
"#;
    std::fs::write(d.join("client.py"), client).unwrap();
    let out = offline(&format!(
        r#"cd {}
"$FLOODRT" serve --id offline-1 --listen 127.0.0.1:0 --http 127.0.0.1:0 --store store --trust trust.pub --jobs jobs >/dev/null 2>serve.log &
pid=$!
trap 'kill $pid' EXIT
for i in $(seq 200); do grep -q "page on" serve.log && break; sleep 0.05; done
web=$(sed -n 's|^floodrt serve: ground-station page on http://\(.*\)/$|\1|p' serve.log)
python3 client.py "$web""#,
        d.display()
    ));
    assert!(String::from_utf8_lossy(&out.stdout).contains("job done offline"));

    // No internet sockets from the batch commands; serve makes its two listeners and no more.
    let is_inet = |l: &String| l.contains("AF_INET") || l.contains("connect(");
    for args in [
        vec!["--quiet", "demo", "--size", "256", "--out"],
        vec!["--quiet", "segment", "demo/scene.tif", "-o", "m2.tif"],
    ] {
        let mut args: Vec<String> = args.into_iter().map(str::to_string).collect();
        if args[1] == "demo" {
            args.push(d.join("demo2").display().to_string());
        } else {
            args[2] = d.join("demo/scene.tif").display().to_string();
            args[4] = d.join("m2.tif").display().to_string();
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let calls = network_calls(&refs, d);
        let inet: Vec<_> = calls.iter().filter(|l| is_inet(l)).collect();
        assert!(inet.is_empty(), "{args:?} touched the network: {inet:?}");
    }
    // serve under strace, stopped after it has listened: exactly two listen() calls, no
    // connect, no outgoing datagram.
    let trace = d.join("serve-strace.txt");
    let mut serve = traced(&trace)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--store",
        ])
        .arg(&store)
        .arg("--trust")
        .arg(d.join("trust.pub"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(serve.stderr.take().unwrap()));
    while let Some(Ok(line)) = lines.next() {
        if line.contains("page on") {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    serve.kill().unwrap();
    serve.wait().unwrap();
    let calls = std::fs::read_to_string(&trace).unwrap();
    let count = |what: &str| calls.lines().filter(|l| l.contains(what)).count();
    assert_eq!(count("listen("), 2, "{calls}");
    assert_eq!(count("connect("), 0, "{calls}");
    assert_eq!(count("sendto("), 0, "{calls}");
}
