#!/usr/bin/env python3
"""16x8 LSTM models: UNIDIRECTIONAL_SEQUENCE_LSTM with int16 input, hidden
state and output, int8 weights, an int16 cell state and int64 biases, the
LSTM TFLite Micro runs (`EvalLstm<int16_t, int8_t, int16_t, int64_t>`).
TensorFlow's converter does not make these (2.16: "Quantization to 16x8-bit
not yet supported for op: 'UNIDIRECTIONAL_SEQUENCE_LSTM'") and LiteRT has
no such kernel, so they are written here with seeded random sizes, scales,
weights and options, and TFLite Micro is their reference:
scripts/lstm16-goldens.sh runs them under TFLM on qemu-m4 beside bench.

Writes harness/tests/golden/lstm16/lstm16_<k>.tflite (committed).
    target/goldens-venv/bin/python scripts/lstm16-models.py
"""
import pathlib
import sys

import numpy as np
import tflite

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "kernels" / "tests" / "golden"))
from make_op_goldens import build_graph  # noqa: E402

RNG = np.random.default_rng(20261204)
COUNT = 8


def lstm_model():
    batch, time, n_input, n_cell = (int(RNG.integers(1, 3)), int(RNG.integers(1, 7)),
                                     int(RNG.integers(1, 13)), int(RNG.integers(1, 11)))
    time_major = bool(RNG.integers(0, 2))
    s_x = float(np.float32(2.0 ** -12 * RNG.uniform(0.5, 2)))
    s_h = float(np.float32(2.0 ** -15 * RNG.uniform(0.7, 1.5)))
    power = int(RNG.integers(-15, -9))
    clip = float(np.float32(RNG.choice([0.0, 0.0, 1.0, 3.0])))
    seq = [time, batch] if time_major else [batch, time]
    tensors = [{"shape": seq + [n_input], "dtype": "int16", "scales": [s_x], "zero_points": [0]}]

    def weights(columns):
        s = float(np.float32(RNG.uniform(0.005, 0.05)))
        tensors.append({"shape": [n_cell, columns], "dtype": "int8", "scales": [s], "zero_points": [0],
                        "data": RNG.integers(-127, 128, size=(n_cell, columns), dtype=np.int8)})
        return len(tensors) - 1, s

    w_in = [weights(n_input) for _ in range(4)]
    w_rec = [weights(n_cell) for _ in range(4)]
    biases = []
    for _, s_w in w_in:
        s_b = float(np.float32(s_x * s_w))
        values = np.round(RNG.normal(0, 0.5, size=n_cell) / s_b).astype(np.int64)
        tensors.append({"shape": [n_cell], "dtype": "int64", "scales": [s_b], "zero_points": [0], "data": values})
        biases.append(len(tensors) - 1)
    tensors.append({"shape": [batch, n_cell], "dtype": "int16", "scales": [s_h], "zero_points": [0], "variable": True})
    hidden = len(tensors) - 1
    tensors.append({"shape": [batch, n_cell], "dtype": "int16", "scales": [2.0 ** power], "zero_points": [0], "variable": True})
    cell = len(tensors) - 1
    tensors.append({"shape": seq + [n_cell], "dtype": "int16", "scales": [s_h], "zero_points": [0]})
    out = len(tensors) - 1
    inputs = ([0] + [i for i, _ in w_in] + [i for i, _ in w_rec] + [-1, -1, -1] + biases + [-1, -1]
              + [hidden, cell] + [-1, -1, -1, -1])

    def options(b):
        tflite.UnidirectionalSequenceLSTMOptionsStart(b)
        tflite.UnidirectionalSequenceLSTMOptionsAddFusedActivationFunction(b, tflite.ActivationFunctionType.TANH)
        tflite.UnidirectionalSequenceLSTMOptionsAddCellClip(b, clip)
        tflite.UnidirectionalSequenceLSTMOptionsAddTimeMajor(b, time_major)
        return tflite.UnidirectionalSequenceLSTMOptionsEnd(b)

    op = (tflite.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM, tflite.BuiltinOptions.UnidirectionalSequenceLSTMOptions,
          options, inputs, [out])
    return build_graph(tensors, [op], [0], [out])


def main():
    folder = ROOT / "harness" / "tests" / "golden" / "lstm16"
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(COUNT):
        (folder / f"lstm16_{k}.tflite").write_bytes(lstm_model())
    print(f"wrote {COUNT} models to {folder}")


if __name__ == "__main__":
    main()
