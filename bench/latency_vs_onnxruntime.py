#!/usr/bin/env python3
"""Per-tile latency and peak RSS of floodrt (tract) next to onnxruntime, same model, same input.

floodrt cuts and preprocesses one batch of tiles from SCENE and dumps it; onnxruntime then runs
exactly those bytes. Each runtime runs in its own process, so peak RSS is its own.

    python3 bench/latency_vs_onnxruntime.py --floodrt target/release/floodrt \
        --model ../shared/data/models/eoepca-sen1floods11-unet.onnx \
        --manifest models/eoepca-sen1floods11-unet.toml \
        --scene ../shared/data/sen1floods11/S1Hand/India_900498_S1Hand.tif

Needs: pip install onnxruntime numpy (benchmark only, not CI).
"""
import argparse, json, os, resource, subprocess, sys, tempfile, time

ORT_CHILD = r"""
import json, resource, sys, time
import numpy as np, onnxruntime as ort
model, raw, shape, threads, iterations = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
x = np.fromfile(raw, dtype='<f4').reshape(shape)
so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.inter_op_num_threads = 1
s = ort.InferenceSession(model, so, providers=['CPUExecutionProvider'])
name, fixed = s.get_inputs()[0].name, s.get_inputs()[0].shape[0]
# A model that fixes its batch runs the tiles in calls of that batch, as floodrt does.
calls = np.split(x, shape[0] // fixed) if isinstance(fixed, int) and fixed != shape[0] else [x]
def run():
    for c in calls: s.run(None, {name: c})
run()
t = []
for _ in range(iterations):
    a = time.perf_counter(); run(); t.append(time.perf_counter() - a)
t.sort()
print(json.dumps({"runtime": "onnxruntime " + ort.__version__, "threads": threads, "batch_ms_median": t[len(t)//2]*1e3,
                  "batch_ms_min": t[0]*1e3, "tile_ms_median": t[len(t)//2]*1e3/shape[0],
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024}))
"""

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--floodrt", default="target/release/floodrt")
    ap.add_argument("--model", required=True)
    ap.add_argument("--manifest")
    ap.add_argument("--scene", required=True)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--floodrt-args", default="", help="extra floodrt options, e.g. '--tile-workers 2'")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "batch.f32")
        for threads in [int(t) for t in args.threads.split(",")]:
            cmd = [args.floodrt, "bench", "latency", args.scene, "--model", args.model, "--threads", str(threads),
                   "--iterations", str(args.iterations), "--dump-input", raw]
            if args.manifest:
                cmd += ["--manifest", args.manifest]
            cmd += args.floodrt_args.split()
            tract = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            shape = [tract["batch"], os.path.getsize(raw) // 4 // tract["batch"] // tract["tile_px"] ** 2, tract["tile_px"], tract["tile_px"]]
            ort = json.loads(subprocess.run([sys.executable, "-c", ORT_CHILD, args.model, raw, json.dumps(shape), str(threads),
                                             str(args.iterations)], check=True, capture_output=True, text=True).stdout)
            rows.append((tract, ort))
    print(f"{'runtime':<26} {'threads':>7} {'tile ms':>9} {'batch ms':>9} {'peak RSS MiB':>13}")
    for tract, ort in rows:
        tract["runtime"] += f" ({tract.get('tile_workers', 1)} worker)" if tract.get("tile_workers", 1) > 1 else ""
        for r in (tract, ort):
            print(f"{r['runtime']:<26} {r['threads']:>7} {r['tile_ms_median']:>9.2f} {r['batch_ms_median']:>9.2f} {r['peak_rss_mib']:>13.1f}")
        print(f"{'ratio tract/onnxruntime':<26} {tract['threads']:>7} {tract['tile_ms_median']/ort['tile_ms_median']:>9.2f}x"
              f" {'':>9} {tract['peak_rss_mib']/ort['peak_rss_mib']:>12.2f}x")
    print(json.dumps({"pairs": [{"tract": t, "onnxruntime": o} for t, o in rows]}))

if __name__ == "__main__":
    main()
