#!/usr/bin/env bash
# The whole test suite: unit, property and integration tests on the host,
# the benchmarks in smoke-test mode, and the no_std cross-build of the
# kernel crate for every microcontroller target.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

for target in thumbv6m-none-eabi thumbv7em-none-eabihf thumbv8m.main-none-eabihf riscv32imac-unknown-none-elf; do
    echo "cross-build: bench-kernels, bench-protocol, bench-firmware-core for $target"
    cargo build --quiet --release -p bench-kernels -p bench-protocol -p bench-firmware-core --target "$target"
done

cargo test --quiet -p bench-kernels --benches
cargo test --workspace
