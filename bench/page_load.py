#!/usr/bin/env python3
"""Figures for the ground-station page (`floodrt serve --http`), on loopback:

- /api/status and /api/jobs latency (keep-alive, one client), and requests/s with 16 clients
  (the default connection limit) polling both while a page job runs;
- a page job on `floodrt demo`'s synthetic scene: wall time from POST to done;
- the server's peak RSS (VmHWM) idle and after the job and the load.

The store's base is the embedded default model (no adapter), so only floodrt is needed.
Usage: bench/page_load.py FLOODRT [--size 2048] [--seconds 10]
"""
import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        raise RuntimeError(f"{path}: {r.status} {body[:200]!r}")
    return body


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("floodrt")
    ap.add_argument("--size", type=int, default=2048, help="side of the synthetic scene, px")
    ap.add_argument("--seconds", type=float, default=10, help="length of the 16-client load")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="page-load-")
    server = None
    try:
        store, jobs = os.path.join(tmp, "store"), os.path.join(tmp, "jobs")
        os.makedirs(store)
        os.makedirs(jobs)
        shutil.copy(os.path.join(ROOT, "runtime/embedded/flood-s1-v1.int8.onnx"), os.path.join(store, "base.onnx"))
        trust = os.path.join(tmp, "trust.pub")
        with open(trust, "w") as f:  # any valid key: no adapter is pushed here
            f.write("b5d29de15a643d7cbd8648e590b12fa7c7cba62bbb67b10db6e394b4f7f7e698\n")
        subprocess.run([args.floodrt, "--quiet", "demo", "--size", str(args.size), "--out", os.path.join(tmp, "demo")], check=True)
        shutil.copy(os.path.join(tmp, "demo/scene.tif"), os.path.join(jobs, "scene.tif"))
        server = subprocess.Popen(
            [args.floodrt, "serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--store", store,
             "--trust", trust, "--jobs", jobs], stderr=subprocess.PIPE, text=True)
        web = None
        while web is None:
            line = server.stderr.readline()
            if not line:
                sys.exit("floodrt serve stopped: " + server.stderr.read())
            if "page on http://" in line:
                web = line.split("http://")[1].strip().rstrip("/")
        threading.Thread(target=lambda: server.stderr.read(), daemon=True).start()
        host, port = web.rsplit(":", 1)
        idle = hwm_mib(server.pid)

        conn = http.client.HTTPConnection(host, int(port))
        latency = {}
        for path in ["/api/status", "/api/jobs"]:
            get(conn, path)
            t = time.perf_counter()
            for _ in range(200):
                get(conn, path)
            latency[path] = (time.perf_counter() - t) / 200 * 1000

        body = json.dumps({"scene": "scene.tif"})
        conn.request("POST", "/api/jobs", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        job = json.loads(r.read())
        assert r.status == 202, job
        started = time.perf_counter()
        conn.close()  # 16 pollers take every slot of the default limit
        stop = time.perf_counter() + args.seconds
        counts = [0] * 16

        def poll(i):
            c = http.client.HTTPConnection(host, int(port))
            while time.perf_counter() < stop:
                get(c, "/api/status" if counts[i] % 2 else "/api/jobs")
                counts[i] += 1

        clients = [threading.Thread(target=poll, args=(i,)) for i in range(16)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        while True:
            record = json.loads(get(conn, f"/api/jobs/{job['id']}"))
            if record["state"] in ("done", "failed"):
                break
            time.sleep(0.1)
        wall = time.perf_counter() - started
        assert record["state"] == "done", record
        print(f"| page, `floodrt serve --http`, loopback | /api/status {latency['/api/status']:.2f} ms, "
              f"/api/jobs {latency['/api/jobs']:.2f} ms (keep-alive); 16 clients: {sum(counts) / args.seconds:.0f} req/s "
              f"while a job runs | `bench/page_load.py FLOODRT` |")
        print(f"| page job, {args.size}² synthetic scene, default model, 16 clients polling for the first "
              f"{args.seconds:.0f} s | {wall:.1f} s from POST to done (job's own {record['seconds']:.1f} s); "
              f"{record['water_km2']:.2f} km² water | same |")
        print(f"| `floodrt serve` peak RSS (VmHWM) | {idle:.0f} MiB idle; {hwm_mib(server.pid):.0f} MiB after the job "
              f"and the load | same |")
    finally:
        if server:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
