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

# The kernel property tests again with the Armv7 DSP kernels (the ones the
# Cortex-M4/M7 firmware runs), on Armv7-A Linux in Thumb mode under qemu-arm.
echo "kernel tests for thumbv7neon-unknown-linux-gnueabihf (DSP kernels) under qemu-arm"
cargo test --quiet -p bench-kernels --features std --target thumbv7neon-unknown-linux-gnueabihf --tests

cargo test --quiet -p bench-kernels --benches
cargo test --workspace
