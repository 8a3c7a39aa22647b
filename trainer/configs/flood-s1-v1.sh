#!/usr/bin/env bash
# Reproduces floodrt's built-in default model, embedded:flood-s1-v1 (issue #13), from the repo:
#   1. pretrain a small Clay-shaped encoder on synthetic Sentinel-1 flood scenes
#      (flood-pretrain.toml: 1500 steps, every weight trains; writes encoder.safetensors
#      under Clay's key names),
#   2. adapt it with LoRA (r16 on qkv and fc1) and train the head on every labelled chip of
#      the shared Sen1Floods11 folder (flood-adapt.toml: 150 steps),
#   3. export the merged model int8 (what floodrt embeds) and, for over-the-air demos, the
#      f32 base and the LoRA adapter signed with a fresh workstation key,
#   4. print the file's SHA-256 and its scores, for runtime/embedded/flood-s1-v1.card.toml.
# Usage: trainer/configs/flood-s1-v1.sh [OUT]  (OUT defaults to runs/flood-s1-v1; FLOOD_SHARED
# points at the shared folder, default ../shared). Then copy OUT/flood-s1-v1.int8.onnx to
# runtime/embedded/ and update the card. The honest scores come from
#   floodtrain cv --config trainer/configs/flood-adapt.toml --arms frozen,lora,full,lora-random
# About 30 minutes on 2 CPU cores for this script, 75 more for the cross-validation.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/flood-s1-v1}
shared=${FLOOD_SHARED:-../shared}
data="$shared/data/sen1floods11"
[ -d "$data/LabelHand" ] || { echo "no labelled chips in $data (set FLOOD_SHARED)" >&2; exit 2; }
cargo build -q -p floodtrain -p floodrt
bin=${CARGO_TARGET_DIR:-target}/debug
mkdir -p "$out"
start=$(date +%s)
# Stage 1 writes runs/flood-pretrain/encoder.safetensors, where stage 2 (and `floodtrain cv`
# with the same recipe) reads it.
"$bin/floodtrain" train --config trainer/configs/flood-pretrain.toml
"$bin/floodtrain" train --config trainer/configs/flood-adapt.toml --data "$data" --out "$out/adapt"
echo "trained in $(( $(date +%s) - start )) s"
"$bin/floodtrain" export --checkpoint "$out/adapt" --out "$out/flood-s1-v1.int8.onnx" \
  --quantize int8 --tile 256 --batch 1 --name flood-s1-v1
[ -f "$out/workstation.key" ] || "$bin/floodtrain" keygen --out "$out/workstation.key"
"$bin/floodtrain" export --checkpoint "$out/adapt" --out "$out/merged-f32.onnx" --tile 256 --batch 1 --name flood-s1-v1 \
  --base-out "$out/base-f32.onnx" --adapter-out "$out/flood-s1-v1.flad" --signing-key "$out/workstation.key"
sha256sum "$out/flood-s1-v1.int8.onnx"
"$bin/floodrt" eval --data "$data" --model "$out/flood-s1-v1.int8.onnx"
