#!/usr/bin/env python3
"""Writes the golden outputs the TFLite import tests compare against.

For each model in ../shared/models/mlperf-tiny this runs the TFLite
reference kernels (LiteRT's BUILTIN_REF op resolver, not XNNPACK) on 24
pseudo-random int8 inputs and writes, under harness/tests/golden/<model>/:

  inputs.npy    [24, *input_shape]  the inputs (numpy seed 2026, uniform int8)
  outputs.npy   [24, *output_shape] the model outputs
  logits.npy    [24, *shape]        the input of the final SOFTMAX (the last
                                    fully connected layer's output)
  t<index>.npy  every activation tensor of the first input, by TFLite
                tensor index; tensors.json maps each file to the tensor name

Regenerate with:  pip install ai-edge-litert numpy && python3 scripts/tflite-goldens.py
CI does not run this; the outputs are committed.
"""
import json
import pathlib

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT.parent / "shared" / "models" / "mlperf-tiny"
OUT = ROOT / "harness" / "tests" / "golden"
COUNT = 24
SEED = 2026


def interpreter(path):
    it = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    it.allocate_tensors()
    return it


def main():
    for path in sorted(MODELS.glob("*.tflite")):
        it = interpreter(path)
        inp = it.get_input_details()[0]
        out = it.get_output_details()[0]
        ops = it._get_ops_details()
        softmax = [op for op in ops if op["op_name"] == "SOFTMAX"][-1]
        logits_index = int(softmax["inputs"][0])
        written = sorted({int(t) for op in ops for t in op["outputs"]})
        rng = np.random.default_rng(SEED)
        shape = [COUNT] + list(inp["shape"][1:])
        inputs = rng.integers(-128, 128, size=shape, dtype=np.int8)
        outputs, logits = [], []
        dest = OUT / path.stem
        dest.mkdir(parents=True, exist_ok=True)
        names = {}
        for i in range(COUNT):
            it.set_tensor(inp["index"], inputs[i : i + 1])
            it.invoke()
            outputs.append(it.get_tensor(out["index"])[0])
            logits.append(it.get_tensor(logits_index)[0])
            if i == 0:
                details = {d["index"]: d["name"] for d in it.get_tensor_details()}
                for t in written:
                    np.save(dest / f"t{t:03}.npy", it.get_tensor(t))
                    names[f"t{t:03}.npy"] = details[t]
        np.save(dest / "inputs.npy", inputs)
        np.save(dest / "outputs.npy", np.stack(outputs))
        np.save(dest / "logits.npy", np.stack(logits))
        (dest / "tensors.json").write_text(json.dumps(names, indent=1, sort_keys=True) + "\n")
        print(f"{path.name}: {COUNT} inputs, {len(names)} intermediate tensors -> {dest.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
