#!/usr/bin/env bash
# Redraws docs/ground-station.png, the README's picture of the ground-station page: a device
# serving the page (`floodrt serve --http`), the default model's LoRA adapter pushed to it over
# the air (`floodtrain push`), a job started through the page's API on a synthetic scene it
# never saw (`floodrt demo`'s seed 206), and headless Chromium's screenshot of the page once
# the job is done. (tests/trainer/page.rs drives the same page by clicking, in CI.)
# Needs OUT from trainer/configs/flood-s1-v1.sh (base-f32.onnx, flood-s1-v1.flad,
# workstation.key.pub; default runs/flood-s1-v1), curl and Debian's chromium.
# Usage: bench/page_screenshot.sh [OUT] [PNG]
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/flood-s1-v1}
png=${2:-docs/ground-station.png}
for f in base-f32.onnx flood-s1-v1.flad workstation.key.pub; do
  [ -f "$run/$f" ] || { echo "$run/$f missing: run trainer/configs/flood-s1-v1.sh first" >&2; exit 2; }
done
cargo build -q -p floodrt -p floodtrain
bin=${CARGO_TARGET_DIR:-target}/debug
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/store" "$tmp/jobs/demo"
cp "$run/base-f32.onnx" "$tmp/store/base.onnx"
"$bin/floodrt" --quiet demo --out "$tmp/demo"
cp "$tmp/demo/scene.tif" "$tmp/jobs/demo/river-seed206.tif"
"$bin/floodrt" serve --id ground-station-1 --listen 127.0.0.1:0 --http 127.0.0.1:0 \
  --store "$tmp/store" --trust "$run/workstation.key.pub" --jobs "$tmp/jobs" 2>"$tmp/serve.log" &
pid=$!
for _ in $(seq 100); do grep -q "page on" "$tmp/serve.log" && break; sleep 0.1; done
ota=$(sed -n 's/^floodrt serve: listening on //p' "$tmp/serve.log")
web=$(sed -n 's|^floodrt serve: ground-station page on http://\(.*\)/$|\1|p' "$tmp/serve.log")
"$bin/floodtrain" --quiet push --device "$ota" "$run/flood-s1-v1.flad"
id=$(curl -sf -X POST -H 'Content-Type: application/json' -d '{"scene": "demo/river-seed206.tif"}' \
  "http://$web/api/jobs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
until curl -sf "http://$web/api/jobs/$id" | python3 -c \
  'import json,sys; s=json.load(sys.stdin)["state"]; sys.exit(s not in ("done","failed"))'; do sleep 1; done
curl -sf "http://$web/api/jobs/$id"; echo
chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=500,1500 \
  --virtual-time-budget=5000 --screenshot="$png" "http://$web/" 2>/dev/null
# 128 colours keep the picture and halve the file (pillow, when installed).
python3 - "$png" <<'PY' || true
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
im.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(sys.argv[1], optimize=True)
PY
echo "wrote $png"
