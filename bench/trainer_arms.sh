#!/usr/bin/env bash
# The paper's three arms on the shared chips, held-out events: train on 8 chips from 8 events,
# evaluate on India and Spain (never trained on). The encoder is the smoke configuration's small
# Clay-shaped network with random weights (no pretrained Clay checkpoint is available offline),
# so this measures the pipeline and the arms' mechanics, not Clay's pre-training.
#   bench/trainer_arms.sh [STEPS]      (release build; SHARED=../shared by default)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-300}
shared=${SHARED:-../shared}
bin=target/release/floodtrain
cargo build --release -q -p floodtrain
train=Bolivia_312675,Ghana_53713,Ghana_83483,Ghana_97059,Nigeria_812045,Paraguay_34417,Somalia_699062,Sri-Lanka_534068
valid=India_900498,Spain_6860600,Spain_7370579
printf "%-7s %10s %10s %8s %8s %9s\n" arm trainable seconds IoU F1 "IoU(train)"
for arm in frozen lora full; do
  out=runs/arms-$arm
  rm -rf "$out"; mkdir -p runs
  start=$(date +%s.%N)
  $bin train --config trainer/configs/smoke.toml --data "$shared/data/sen1floods11" --out "$out" \
    --mode "$arm" --steps "$steps" --train-chips "$train" --valid-chips "$valid" 2>"$out.log"
  secs=$(python3 -c "import time;print(time.time() - $start)")
  trainable=$(grep -o '[0-9]* trainable' "$out.log" | cut -d' ' -f1)
  read -r iou f1 < <(python3 -c "import json;p=json.load(open('$out/eval.json'))['pooled'];print(p['water_iou'],p['f1'])")
  train_iou=$($bin eval --checkpoint "$out" --data "$shared/data/sen1floods11" --chips "$train" --tile 64 --json |
    python3 -c "import json,sys;print(round(json.load(sys.stdin)['pooled']['water_iou'],4))")
  printf "%-7s %10s %10.1f %8.4f %8.4f %9s\n" "$arm" "$trainable" "$secs" "$iou" "$f1" "$train_iou"
done
