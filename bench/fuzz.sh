#!/usr/bin/env bash
# Fuzzes every decoder that reads bytes from strangers (issue #17) with libFuzzer through
# cargo-fuzz, each target for SECONDS (default one hour), with memory and time limits:
#   bench/fuzz.sh [SECONDS] [TARGET...]        targets: adapter protocol manifest onnx geotiff
# This machine has only the stable toolchain; RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its
# nightly flags (coverage instrumentation, AddressSanitizer) to it.
# Corpora start from seeds floodrt makes from its own formats (`floodrt::fuzz::seeds`), and
# from fuzz/corpus/TARGET/ (committed; new finds go there). FUZZ_SHARED=1 also seeds the
# GeoTIFF and ONNX targets with the real files in ../shared; those runs keep their finds in
# target/fuzz-shared/ so that nothing derived from shared data is committed.
# A crash stops the target and leaves the input in fuzz/artifacts/TARGET/: fix it, then move
# the input to fuzz/regressions/TARGET/ (the CI replay test runs every file there).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-3600}
shift || true
targets=${*:-adapter protocol manifest onnx geotiff}
shared=${FLOOD_SHARED:-../shared}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
seeds=$PWD/target/fuzz-seeds
rm -rf "$seeds"
FLOOD_FUZZ_SEEDS=$seeds cargo test -q -p floodrt --test e2e fuzz_corpus >/dev/null
# Only now: build scripts that probe for nightly features rerun when RUSTC_BOOTSTRAP changes,
# and with it set for the ordinary build above, every crate after them was rebuilt twice.
export RUSTC_BOOTSTRAP=1
# Instrumented builds live in fuzz/target, whatever CARGO_TARGET_DIR says, so that they never
# evict the ordinary builds.
(cd fuzz && env -u CARGO_TARGET_DIR cargo fuzz build -O)
for t in $targets; do
  mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t"
  dirs=("corpus/$t" "$seeds/$t")
  if [ "${FUZZ_SHARED:-0}" = 1 ]; then
    run=$PWD/target/fuzz-shared/$t
    mkdir -p "$run/seeds"
    case $t in
      geotiff) cp "$shared"/data/sen1floods11/S1Hand/*.tif "$shared"/data/sen1floods11/LabelHand/*.tif "$run/seeds/" ;;
      onnx) cp runtime/embedded/*.onnx "$run/seeds/" ;;
    esac
    dirs=("$run/new" "corpus/$t" "$seeds/$t" "$run/seeds")
    mkdir -p "$run/new"
  fi
  case $t in geotiff | onnx) max_len=1048576 ;; *) max_len=65536 ;; esac
  # tract-core 0.23.9 asserts on some impossible Slice bounds (bench/README.md, finding 4), which
  # would end every onnx run within minutes: that target runs in a child process that is
  # restarted after each crash, and the crashes are checked afterwards (listed below).
  mode=()
  [ "$t" = onnx ] && mode=(-fork=1 -ignore_crashes=1)
  echo "== $t: ${seconds}s"
  start=$(date +%s)
  (cd fuzz && env -u CARGO_TARGET_DIR cargo fuzz run -O "$t" "${dirs[@]}" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=20 \
      -max_len="$max_len" -print_final_stats=1 "${mode[@]}" 2>&1 | tail -25) | tee "target/fuzz-$t.log" ||
    [ "$t" = onnx ]  # fork mode ends with status 77 when it ignored crashes: checked below
  echo "== $t: ran $(( $(date +%s) - start )) s; corpus $(ls "fuzz/corpus/$t" | wc -l) files"
  if [ "$t" = onnx ] && ls fuzz/artifacts/onnx/crash-* >/dev/null 2>&1; then
    echo "== onnx crashes, by where they panic (bench/README.md lists the known ones):"
    for f in fuzz/artifacts/onnx/crash-*; do
      timeout 60 fuzz/target/*/release/onnx "$f" 2>&1 | grep -m1 -A1 'panicked at' | tail -1
    done | sort | uniq -c
  fi
done
