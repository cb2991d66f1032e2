#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every reader of outside
# bytes: the .tflite and .onnx importers, .npy/.npz/.csv, suite and target
# files, the protocol's frames, the result store's Parquet.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 60 s, every target
#   FUZZ_RUNS=1000000 scripts/fuzz.sh 1800                stop each at 1,000,000 executions
#   FUZZ_DEV=1 scripts/fuzz.sh 6                         unoptimized build (CI: it builds in half the time)
#   FUZZ_SEED=1 FUZZ_RUNS=5000 scripts/fuzz.sh 60         the same inputs on every run (CI)
#
# Seeds and regression inputs are committed in fuzz/corpus/<target>/; what
# libFuzzer adds goes to fuzz/work/<target>/ and crashes to
# fuzz/artifacts/<target>/ (both ignored by git): once a crash is fixed,
# copy its input into fuzz/corpus/<target>/ so every test run replays it
# (harness/tests/fuzz_corpus.rs). Prints each target's executions.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}
shift || true

# libFuzzer's instrumentation takes -Z flags: a nightly toolchain, else the
# stable one with RUSTC_BOOTSTRAP (same flags, no download).
toolchain=(+nightly)
if ! rustup run nightly rustc -V >/dev/null 2>&1 && ! rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
    echo "fuzz: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1"
    toolchain=()
    export RUSTC_BOOTSTRAP=1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# Safe Rust needs no AddressSanitizer to show its bugs (panics); FUZZ_SANITIZER=address adds it.
sanitizer=${FUZZ_SANITIZER:-none}
profile=(-O)
if [ -n "${FUZZ_DEV:-}" ]; then profile=(--dev); fi
cargo "${toolchain[@]}" fuzz build "${profile[@]}" --sanitizer "$sanitizer"

targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)
fi
status=0
for t in "${targets[@]}"; do
    mkdir -p "work/$t" "artifacts/$t"
    log=$(mktemp)
    if cargo "${toolchain[@]}" fuzz run "${profile[@]}" --sanitizer "$sanitizer" "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -runs="${FUZZ_RUNS:--1}" -seed="${FUZZ_SEED:-0}" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result="CRASH (see fuzz/artifacts/$t/)"
        status=1
        tail -n 40 "$log"
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o '[0-9]* second' | grep -o '[0-9]*' || echo "$seconds")
    echo "fuzz $t: $runs executions in ${took} s: $result"
    rm -f "$log"
done
exit $status
