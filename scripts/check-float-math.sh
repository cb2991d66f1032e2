#!/usr/bin/env bash
# Checks that bench's expf/logf/expm1f/tanhf (kernels/src/float_math.rs)
# equal this machine's C library on every finite f32. The goldens of float
# LOGISTIC, TANH, SOFTMAX and LOG_SOFTMAX come from LiteRT on glibc 2.36,
# x86-64 with FMA; on another libc the differences this prints are that
# libc's, not bench's. About two minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
ldd --version 2>/dev/null | head -1 || true
cargo run -q --release -p bench-kernels --example float_math_vs_libc
