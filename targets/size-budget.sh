#!/usr/bin/env bash
# Builds the board binaries with the release profile (fat LTO, 1 CGU, panic=abort, stripped)
# and fails when one is over the size budget. Not part of CI: each fat-LTO build takes
# ~11-15 min on 2 cores.  Usage: targets/size-budget.sh [TARGET...]
# A glibc target with a version suffix (aarch64-unknown-linux-gnu.2.17) builds with cargo-zigbuild.
set -euo pipefail
cd "$(dirname "$0")/.."
budget_bytes=$((24 * 1024 * 1024))   # 24 MiB; aarch64-musl measured 22,035,792 B on 2026-11-30 (default model and ground-station page)
targets=${*:-aarch64-unknown-linux-musl}
status=0
for t in $targets; do
  triple=${t%.2.*}   # aarch64-unknown-linux-gnu.2.17: zig links against that glibc version
  if [ "$triple" = "$t" ]; then
    cargo build --release --bin floodrt --target "$t" -q
  else
    cargo zigbuild --release --bin floodrt --target "$t" -q
  fi
  bin="${CARGO_TARGET_DIR:-target}/$triple/release/floodrt"
  size=$(stat -c %s "$bin")
  printf '%-34s %10d bytes (%.1f MiB)  %s\n' "$t" "$size" "$(echo "$size / 1048576" | bc -l)" "$(file -b "$bin" | grep -oE 'ARM[^,]*|[a-z-]+ linked' | paste -sd' ')"
  if [ "$size" -gt "$budget_bytes" ]; then
    echo "over the $budget_bytes-byte budget" >&2
    status=1
  fi
done
exit $status
