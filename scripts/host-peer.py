#!/usr/bin/env python3
"""bench against LiteRT + XNNPACK on this machine's CPU, side by side.

Runs the two MLPerf Tiny models (models/mlperf-tiny/*.tflite) in LiteRT
(`ai-edge-litert` from PyPI) with its default op resolver, which hands the
int8 graph to the XNNPACK delegate, on one thread, and with the TFLite
reference kernels (BUILTIN_REF); then runs `bench run suites/perf-host.toml`
in the same session, once with the best kernels this CPU has and once with
the portable ones (BENCH_HOST_ISA=portable), and prints the medians side by
side.

Every LiteRT figure is the median of REPS timed `invoke()` calls after
WARMUP untimed ones, on one fixed input (numpy seed 2026, uniform int8),
timed with time.perf_counter_ns around `invoke()` only. bench's figures are
its own: the median of the suite's repetitions (the same 20 + 200), host
clock, timed on the device side around each inference. Each figure is
measured ROUNDS times, the rounds interleaved, and the lowest median is
the one compared (the table prints every round as well): this shared VM
has slow spells that last longer than one measurement.

    scripts/host-peer.sh        (makes a venv under target/ and runs this)
"""
import csv
import os
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = {"kws": "kws_ref_model.tflite", "ic": "pretrainedResnet_quant.tflite"}
WARMUP, REPS = 20, 200
ROUNDS = 3


def litert_median_us(path, resolver):
    """Median microseconds per invoke() of one LiteRT interpreter on one thread."""
    it = Interpreter(model_path=str(path), num_threads=1, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    x = np.random.default_rng(2026).integers(-128, 128, size=inp["shape"], dtype=np.int8)
    it.set_tensor(inp["index"], x)
    for _ in range(WARMUP):
        it.invoke()
    times = []
    for _ in range(REPS):
        start = time.perf_counter_ns()
        it.invoke()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000.0


def bench_host_medians_us(isa=None):
    """Runs suites/perf-host.toml; returns ({model: median microseconds}, run
    directory, the kernels the results name)."""
    out = ROOT / "target" / "host-peer-results"
    bench = os.environ.get("BENCH", str(ROOT / "target" / "debug" / "bench"))
    env = dict(os.environ)
    if isa:
        env["BENCH_HOST_ISA"] = isa
    subprocess.run([bench, "run", "suites/perf-host.toml", "--out", str(out)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL, env=env)
    run = max((out / "perf-host").iterdir())
    medians, source = {}, ""
    with open(run / "results.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["status"] != "ok":
                sys.exit(f"host-peer: bench job {row['job']} failed: {row['error']}")
            assert row["latency_unit"] == "ns", row["latency_unit"]
            medians[row["model"]] = float(row["latency_median"]) / 1000.0
            source = row["latency_source"]
    return medians, run, source


def main():
    models = ROOT / "models" / "mlperf-tiny"
    # A shared VM has slow spells that last seconds, longer than one
    # measurement: every figure is measured ROUNDS times, interleaved, and
    # the lowest median is reported (all of them are printed too).
    rounds = {"xnnpack": [], "reference": [], "bench": [], "portable": []}
    runs = []
    for _ in range(ROUNDS):
        rounds["xnnpack"].append({name: litert_median_us(models / f, OpResolverType.AUTO) for name, f in MODELS.items()})
        rounds["reference"].append({name: litert_median_us(models / f, OpResolverType.BUILTIN_REF) for name, f in MODELS.items()})
        ours, run, source = bench_host_medians_us()
        rounds["bench"].append(ours)
        runs.append(run.relative_to(ROOT))
        rounds["portable"].append(bench_host_medians_us("portable")[0])
    best = {key: {name: min(r[name] for r in values) for name in MODELS} for key, values in rounds.items()}
    print(f"one thread, median per inference in microseconds, the lowest of {ROUNDS} rounds; bench runs: {', '.join(map(str, runs))}; {source}")
    print("| model | bench (host) | bench, portable kernels | LiteRT + XNNPACK | LiteRT reference kernels | bench / XNNPACK |")
    print("|---|---|---|---|---|---|")
    for name in MODELS:
        b = best
        print(f"| {name} | {b['bench'][name]:.1f} | {b['portable'][name]:.1f} | {b['xnnpack'][name]:.1f} | {b['reference'][name]:.1f} | {b['bench'][name] / b['xnnpack'][name]:.2f} |")
    print("every round:")
    for key, values in rounds.items():
        print(f"  {key:9s} " + "; ".join(f"{name} " + " ".join(f"{r[name]:.1f}" for r in values) for name in MODELS))


if __name__ == "__main__":
    main()
