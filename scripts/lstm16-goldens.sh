#!/usr/bin/env bash
# TFLite Micro's outputs for the 16x8 LSTM models (scripts/lstm16-models.py):
# runs suites/lstm16.toml (bench and TFLM, host and qemu-m4) and keeps, per
# model, the CRC-32 of TFLM's output on the suite's input as the golden that
# harness/tests/lstm16.rs checks bench's host output against. TFLM is the
# reference: LiteRT has no int16 LSTM. Needs the peer snapshot:
#   BENCH_PEERS_DIR=../shared/peers scripts/lstm16-goldens.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BENCH_PEERS_DIR:?set BENCH_PEERS_DIR to the peer snapshot (see ../shared/peers/README.md)}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo run -q --release -p bench-harness -- run suites/lstm16.toml --out "$out"
python3 - "$out" harness/tests/golden/lstm16/tflm_outputs.json <<'PY'
import csv, glob, json, sys
rows = list(csv.DictReader(open(glob.glob(f"{sys.argv[1]}/lstm16/*/results.csv")[0])))
tflm = {r["model"]: r["output_crc32"] for r in rows if r["runtime"] == "tflm"}
if len(tflm) != 8 or not all(tflm.values()):
    sys.exit(f"expected the outputs of 8 TFLM jobs, got {tflm}")
golden = {"reference": "TFLite Micro reference kernels on qemu-m4 (bench's tflm runtime), suites/lstm16.toml",
          "output_crc32": dict(sorted(tflm.items()))}
open(sys.argv[2], "w").write(json.dumps(golden, indent=1) + "\n")
print(f"wrote {sys.argv[2]}")
PY
