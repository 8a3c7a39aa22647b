#!/usr/bin/env bash
# Peak RSS against scene size: mosaics of the real Sen1Floods11 chips at 2k, 8k and 16k px
# square, segmented with the same model and options. Memory must stay flat as scenes grow.
#   bench/scale.sh [MODEL_ARGS...]     e.g. bench/scale.sh --model M.onnx --manifest M.toml
# Needs ../shared (or FLOOD_SHARED); writes scenes under ${BENCH_DIR:-target/bench}.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${FLOOD_SHARED:-../shared}
out=${BENCH_DIR:-target/bench}
mkdir -p "$out"
cargo build --release --bin floodrt -q
bin=target/release/floodrt
printf '%-8s %10s %8s %10s %12s %14s\n' size pixels tiles seconds peak_MiB water_km2
for size in ${SIZES:-2048 8192 16384}; do
  scene="$out/mosaic-$size.tif"
  [ -f "$scene" ] || "$bin" bench mosaic --chips "$shared/data/sen1floods11/S1Hand" --size "$size" -o "$scene" 2>/dev/null
  "$bin" segment "$scene" -o "$out/mask-$size.tif" --report "$out/report-$size.json" -q "$@"
  python3 - "$out/report-$size.json" "$size" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); s = r["stats"]; n = int(sys.argv[2])
print(f"{n:<8} {n*n:>10} {s['tiles']:>8} {s['seconds']:>10.1f} {r['peak_rss_mib']:>12.1f} {s['water_area_km2']:>14.2f}")
PY
done
