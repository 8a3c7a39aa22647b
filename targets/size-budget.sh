#!/usr/bin/env bash
# Builds the board binaries and fails when one is over its profile's size budget. Not part of
# CI: each fat-LTO build takes ~4-15 min on 2 cores.
#   targets/size-budget.sh [--profile release|release-small] [TARGET...]
# `release` is the speed-first build (opt-level 3); `release-small` trades ~20 % of a tile's
# time for less than half the size (Cargo.toml; figures in bench/README.md, "Binary size").
# 32-bit boards: thumbv7neon-unknown-linux-musleabihf (Thumb-2; its std: targets/armv7-musl-std.sh).
# A glibc target with a version suffix (aarch64-unknown-linux-gnu.2.17) builds with cargo-zigbuild.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
if [ "${1:-}" = --profile ]; then profile=$2; shift 2; fi
case $profile in
  # aarch64-musl measured 22,035,792 B on 2026-11-30 (default model and ground-station page)
  release) budget_bytes=$((24 * 1024 * 1024)) ;;
  # opt-level "z", no unwind tables (runtime/build.rs): aarch64-musl 9,190,872 B and
  # thumbv7neon-musl 8,390,856 B on 2026-11-30 (armv7-musl, ARM mode: 11,565,256 B)
  release-small) budget_bytes=$((10 * 1024 * 1024)) ;;
  *) echo "unknown profile $profile (release or release-small)" >&2; exit 2 ;;
esac
targets=${*:-aarch64-unknown-linux-musl}
status=0
for t in $targets; do
  triple=${t%.2.*}   # aarch64-unknown-linux-gnu.2.17: zig links against that glibc version
  if [ "$triple" = "$t" ]; then
    cargo build --profile "$profile" --bin floodrt --target "$t" -q
  else
    cargo zigbuild --profile "$profile" --bin floodrt --target "$t" -q
  fi
  bin="${CARGO_TARGET_DIR:-target}/$triple/$profile/floodrt"
  size=$(stat -c %s "$bin")
  printf '%-34s %-14s %10d bytes (%.1f MiB)  %s\n' "$t" "$profile" "$size" "$(echo "$size / 1048576" | bc -l)" "$(file -b "$bin" | grep -oE 'ARM[^,]*|[a-z-]+ linked' | paste -sd' ')"
  if [ "$size" -gt "$budget_bytes" ]; then
    echo "over the $budget_bytes-byte budget of $profile" >&2
    status=1
  fi
done
exit $status
