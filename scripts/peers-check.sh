#!/usr/bin/env bash
# Builds TFLite Micro (reference kernels and CMSIS-NN) from the peers'
# snapshot and checks it under QEMU through the MLPerf Tiny DUT protocol:
# arena, instructions per inference (the snapshot README's counts within
# 1%) and output bytes (bench's); the same firmware named as a user's
# [[dut]]; and LiteRT and the Larq Compute Engine on the host (venvs under
# target/ from PyPI). About seven minutes cold on two cores,
# seconds once the libraries are cached in target/bench-peers.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BENCH_PEERS_DIR:?set BENCH_PEERS_DIR to the source snapshot of the peers (TFLite Micro, CMSIS-NN, ...)}"
export BENCH_PEERS_DIR
BENCH_LITERT=1 BENCH_LCE=1 scripts/setup.sh
cargo test -q -p bench-harness --test peers -- --ignored --nocapture --test-threads 1
