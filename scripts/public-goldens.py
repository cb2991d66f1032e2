#!/usr/bin/env python3
"""Golden outputs of the public models in models/public (and of the models
bench's scripts export into models/exported) from the TFLite
reference kernels (LiteRT's BUILTIN_REF resolver, not XNNPACK).

For each model, 16 inputs come from a generator bench reproduces exactly
(harness/tests/public_models.rs, `input`): SplitMix64 seeded with the
sample's number k (plus 1000 j for the model's input j), one draw per
element; int8 and uint8 take the top byte, float32 the top 24 bits as a multiple of
2^-23 in [-1, 1). So only the outputs are committed, under
harness/tests/golden/public/<model>/outputs.npy: [16, n] in the output type,
each row the model's outputs flattened one after another (as bench packs
several outputs into one).

The .onnx models run through onnxruntime instead.

Regenerate:  python3 -m venv v && v/bin/pip install ai-edge-litert numpy onnxruntime
             v/bin/python scripts/public-goldens.py
CI does not run this.
"""
import pathlib

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / "models" / "public"
# Models bench's own scripts export (scripts/export-int16x8.py), beside the public ones.
EXPORTED = ROOT / "models" / "exported"
OUT = ROOT / "harness" / "tests" / "golden" / "public"
COUNT = 16
MASK = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def draws(seed, n):
    out = np.empty(n, dtype=np.uint64)
    state = seed
    for i in range(n):
        state, out[i] = splitmix64(state)
    return out


def make_input(seed, shape, dtype):
    n = int(np.prod(shape))
    d = draws(seed, n)
    if dtype == np.int8:
        return (d >> np.uint64(56)).astype(np.uint8).view(np.int8).reshape(shape)
    if dtype == np.uint8:
        return (d >> np.uint64(56)).astype(np.uint8).reshape(shape)
    top = (d >> np.uint64(40)).astype(np.float64)
    return (top / float(1 << 23) - 1.0).astype(np.float32).reshape(shape)


def lstm_hidden_states(path):
    """The integer LSTM's own output (every step's hidden state) for the 16
    inputs, so a test sees the LSTM exact, not only through the layers after it."""
    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    lstm = next(o for o in it._get_ops_details() if o["op_name"] == "UNIDIRECTIONAL_SEQUENCE_LSTM")
    inp = it.get_input_details()[0]
    states = []
    for k in range(COUNT):
        it.reset_all_variables()
        it.set_tensor(inp["index"], make_input(k, list(inp["shape"]), inp["dtype"]))
        it.invoke()
        states.append(it.get_tensor(lstm["outputs"][0]).ravel())
    return np.stack(states)


def main():
    for path in sorted(MODELS.glob("*.tflite")) + sorted(EXPORTED.glob("*.tflite")):
        it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        it.allocate_tensors()
        ins, outs = it.get_input_details(), it.get_output_details()
        outputs = []
        for k in range(COUNT):
            # Every inference from zero states: recurrent models keep theirs
            # in variable tensors across invocations otherwise.
            it.reset_all_variables()
            for j, inp in enumerate(ins):
                it.set_tensor(inp["index"], make_input(k + 1000 * j, list(inp["shape"]), inp["dtype"]))
            it.invoke()
            outputs.append(np.concatenate([it.get_tensor(o["index"]).ravel() for o in outs]))
        dest = OUT / path.stem
        dest.mkdir(parents=True, exist_ok=True)
        np.save(dest / "outputs.npy", np.stack(outputs))
        if path.parent == EXPORTED and len(ins) == 1:
            # The inputs too, for tests that feed `bench infer` a file.
            np.save(dest / "inputs.npy", np.stack([make_input(k, list(ins[0]["shape"]), ins[0]["dtype"]) for k in range(COUNT)]))
        if path.stem == "tfm_mnist_lstm_int8":
            np.save(dest / "lstm_hidden_states.npy", lstm_hidden_states(path))
        print(f"{path.name}: {COUNT} x {len(ins)} inputs, outputs {[list(o['shape']) for o in outs]} -> {dest.relative_to(ROOT)}")


def onnx_goldens():
    """The .onnx models through onnxruntime (float: bench matches within a
    stated tolerance, since onnxruntime's GEMMs sum in their own order)."""
    import onnxruntime
    for path in sorted(MODELS.glob("*.onnx")):
        session = onnxruntime.InferenceSession(str(path))
        inp = session.get_inputs()[0]
        shape = [1 if not isinstance(d, int) else d for d in inp.shape]
        outputs = [session.run(None, {inp.name: make_input(k, shape, np.float32)})[0].ravel() for k in range(COUNT)]
        dest = OUT / path.stem
        dest.mkdir(parents=True, exist_ok=True)
        np.save(dest / "outputs.npy", np.stack(outputs))
        print(f"{path.name}: {COUNT} inputs through onnxruntime {onnxruntime.__version__} -> {dest.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
    onnx_goldens()
