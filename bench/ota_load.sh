#!/usr/bin/env bash
# `floodrt serve` under hostile load (issue #17): CLIENTS clients on loopback for SECONDS,
# mixing status requests, replayed pushes, slow-loris connections, oversized and garbage
# frames, half-sent chunks, abandoned transfers and reconnect storms, while `floodtrain push`
# installs a new adapter a third of the way in. It is the suite's load test
# (tests/trainer/load.rs), which the suite runs with 24 clients for 20 s, at full size; it
# fails if the push fails, descriptors leak, the peak RSS grows more than 64 MiB over the idle
# server or the store does not verify afterwards, and prints one line of figures.
#   bench/ota_load.sh [CLIENTS] [SECONDS]       default 100 clients, 600 s
# Needs ../shared (or FLOOD_SHARED) for the tiny training run that makes the adapters.
set -euo pipefail
cd "$(dirname "$0")/.."
export FLOOD_LOAD_CLIENTS=${1:-100} FLOOD_LOAD_SECONDS=${2:-600}
mkdir -p target
cargo test -p floodtrain --test e2e load:: -- --nocapture 2>&1 | tee target/ota-load.log |
  grep -E '^load:|test result|panicked|FAILED'
