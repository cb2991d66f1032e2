#!/usr/bin/env bash
# bench against LiteRT + XNNPACK on the host, side by side (see
# scripts/host-peer.py): a venv under target/ with ai-edge-litert and numpy
# from PyPI, the debug bench binary, then the comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/host-peer-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet ai-edge-litert numpy
fi
cargo build --quiet -p bench-harness
"$venv/bin/python" scripts/host-peer.py
