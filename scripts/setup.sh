#!/usr/bin/env bash
# Installs what bench needs beyond a Rust toolchain. Idempotent; safe to rerun.
set -euo pipefail

# Cross targets of the shared kernel crate and the firmware: Cortex-M0,
# Cortex-M3, Cortex-M4F/M7, Cortex-M33/M55 and RV32IMAC; and Armv7-A Linux
# in Thumb mode, where the kernel property tests run the DSP kernels under
# qemu-arm.
targets=(thumbv6m-none-eabi thumbv7m-none-eabi thumbv7em-none-eabihf thumbv8m.main-none-eabihf riscv32imac-unknown-none-elf
         thumbv7neon-unknown-linux-gnueabihf)
installed=$(rustup target list --installed)
missing=()
for t in "${targets[@]}"; do
    grep -qx "$t" <<<"$installed" || missing+=("$t")
done
if ((${#missing[@]})); then
    echo "setup: adding rust targets ${missing[*]}"
    rustup target add "${missing[@]}"
fi

# QEMU for the emulated boards (Debian's packages; --no-install-recommends,
# because the image's newer qemu-utils makes apt refuse the recommended set).
if ! command -v qemu-system-arm >/dev/null || ! command -v qemu-system-riscv32 >/dev/null; then
    echo "setup: installing QEMU"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends qemu-system-arm qemu-system-misc >/dev/null
fi

# qemu-arm (user mode) and the Armv7 Linux cross linker and C library, for
# the kernel property tests on the DSP kernels.
if ! command -v qemu-arm >/dev/null || ! command -v arm-linux-gnueabihf-gcc >/dev/null; then
    echo "setup: installing qemu-user and the armhf cross gcc"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends qemu-user gcc-arm-linux-gnueabihf libc6-dev-armhf-cross >/dev/null
fi

# The Arm GNU toolchain with newlib's C++ library, and the RISC-V one with
# picolibc (it borrows that C++ library's headers), for the TFLite Micro
# peer firmware (harness/src/build/tflm/), when the peers' snapshot is named.
if [ -n "${BENCH_PEERS_DIR:-}" ] && { ! echo '#include <cstdio>' | arm-none-eabi-g++ -x c++ -fsyntax-only - 2>/dev/null || \
        ! command -v riscv64-unknown-elf-gcc >/dev/null || ! [ -d /usr/lib/picolibc/riscv64-unknown-elf ]; }; then
    echo "setup: BENCH_PEERS_DIR is set: installing gcc-arm-none-eabi, libstdc++-arm-none-eabi-newlib, gcc-riscv64-unknown-elf and picolibc-riscv64-unknown-elf"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends gcc-arm-none-eabi libstdc++-arm-none-eabi-newlib \
        gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf >/dev/null
fi

# LiteRT from PyPI for the `litert` and `litert-ref` runtimes, in a venv
# under target/ that bench finds by itself (BENCH_PYTHON names another).
venv="$(cd "$(dirname "$0")/.." && pwd)/target/litert-venv"
if [ "${BENCH_LITERT:-}" = 1 ] && [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
        echo "setup: installing python3-venv"
        sudo=""
        if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    fi
    echo "setup: BENCH_LITERT=1: making target/litert-venv with ai-edge-litert and numpy"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet ai-edge-litert numpy
fi

# The Larq Compute Engine from PyPI for the `lce` runtime (the interpreter
# Larq models are converted for), in the Python 3.11 venv under target/ that
# scripts/byo-fixtures.sh also uses (BENCH_LCE_PYTHON names another).
larq_venv="$(cd "$(dirname "$0")/.." && pwd)/target/larq-venv"
if [ "${BENCH_LCE:-}" = 1 ] && [ ! -x "$larq_venv/bin/python" ]; then
    if ! command -v python3.11 >/dev/null; then
        echo "setup: BENCH_LCE=1 needs python3.11 (larq-compute-engine's wheels stop at TensorFlow 2.16)" >&2
        exit 1
    fi
    echo "setup: BENCH_LCE=1: making target/larq-venv with larq-compute-engine, tensorflow 2.16 and numpy"
    python3.11 -m venv "$larq_venv"
    "$larq_venv/bin/pip" install --quiet "tensorflow==2.16.*" larq-compute-engine numpy
fi

# A TrueType font for the text of plots (plotters draws PNG text with it).
if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] && [ -z "${BENCH_FONT:-}" ]; then
    echo "setup: installing fonts-dejavu-core"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends fonts-dejavu-core >/dev/null
fi
