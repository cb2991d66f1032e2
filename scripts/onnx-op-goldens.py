#!/usr/bin/env python3
"""One-op ONNX goldens: float models of one windowed operator over random
shapes, padded every way ONNX allows (explicit pads of any amounts on each
side, auto_pad SAME_UPPER / SAME_LOWER / VALID, count_include_pad), run by
onnxruntime's CPU execution provider. Writes
harness/tests/golden/onnx_ops.json, which harness/tests/onnx_ops.rs checks
bench's import and float kernels against (within 1e-5 relative).

Regenerate:  python3 -m venv v && v/bin/pip install onnx onnxruntime numpy
             v/bin/python scripts/onnx-op-goldens.py
Cases are appended at the end so that the seeded draws of earlier cases
stay as they are.
"""
import json
import pathlib

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEST = ROOT / "harness/tests/golden/onnx_ops.json"
OPSET = 17


def model_of(node, x_shape, initializers):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [])
    graph = helper.make_graph([node], node.name, [x], [y], initializer=initializers)
    onnx.checker.check_graph(graph)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    # The output's shape is onnxruntime's to infer.
    del model.graph.output[0].type.tensor_type.shape.dim[:]
    model.graph.output[0].type.tensor_type.ClearField("shape")
    return model


def pads_of(rng, kernel, style):
    """Attributes for one padding style; explicit pads stay below the kernel."""
    if style == "explicit":
        return {"pads": [int(rng.integers(0, k)) for k in kernel] + [int(rng.integers(0, k)) for k in kernel]}
    return {"auto_pad": style}


def conv_case(rng, style, depthwise):
    c = int(rng.integers(1, 5)) * (1 if not depthwise else 1)
    h, w = int(rng.integers(3, 12)), int(rng.integers(3, 12))
    kernel = [int(rng.integers(1, min(h, 4) + 1)), int(rng.integers(1, min(w, 4) + 1))]
    stride = [int(rng.integers(1, 3)), int(rng.integers(1, 3))]
    dilation = [1, 1] if style != "explicit" else [int(rng.integers(1, 3)), 1]
    group, per_group, out = (c, 1, c * int(rng.integers(1, 3))) if depthwise else (1, c, int(rng.integers(1, 6)))
    weights = rng.standard_normal((out, per_group, *kernel)).astype(np.float32)
    bias = rng.standard_normal(out).astype(np.float32)
    attrs = dict(kernel_shape=kernel, strides=stride, dilations=dilation, group=group, **pads_of(rng, kernel, style))
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", **attrs)
    inits = [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")]
    return model_of(node, [1, c, h, w], inits), [1, c, h, w], attrs


def pool_case(rng, op, style, include_pad):
    c, h, w = int(rng.integers(1, 5)), int(rng.integers(3, 12)), int(rng.integers(3, 12))
    kernel = [int(rng.integers(2, min(h, 4) + 1)), int(rng.integers(2, min(w, 4) + 1))]
    stride = [int(rng.integers(1, 3)), int(rng.integers(1, 3))]
    attrs = dict(kernel_shape=kernel, strides=stride, **pads_of(rng, kernel, style))
    if op == "AveragePool":
        attrs["count_include_pad"] = include_pad
    node = helper.make_node(op, ["x"], ["y"], name=op.lower(), **attrs)
    return model_of(node, [1, c, h, w], []), [1, c, h, w], attrs


def activation_case(rng, op):
    """One activation over a graph input (nothing to fuse into)."""
    shape = [1, int(rng.integers(1, 6)), int(rng.integers(1, 8)), int(rng.integers(1, 8))]
    attrs = {"alpha": float(np.float32(rng.uniform(0.01, 0.5)))} if op == "LeakyRelu" else {}
    node = helper.make_node(op, ["x"], ["y"], name=op.lower(), **attrs)
    return model_of(node, shape, []), shape, attrs


def main():
    rng = np.random.default_rng(24)
    cases = []
    plan = []
    for style in ["explicit"] * 6 + ["SAME_UPPER", "SAME_LOWER", "VALID"]:
        plan.append(("Conv", style, False, 0))
        plan.append(("Conv", style, True, 0))
    for style in ["explicit"] * 4 + ["SAME_UPPER", "SAME_LOWER"]:
        plan.append(("MaxPool", style, False, 0))
        plan.append(("AveragePool", style, False, 1))
    plan.append(("AveragePool", "SAME_UPPER", False, 0))
    plan.append(("AveragePool", "VALID", False, 0))
    for op in ["Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSwish"]:
        plan.append((op, None, False, 0))
    for op, style, depthwise, include_pad in plan:
        if style is None:
            model, shape, attrs = activation_case(rng, op)
        elif op == "Conv":
            model, shape, attrs = conv_case(rng, style, depthwise)
        else:
            model, shape, attrs = pool_case(rng, op, style, include_pad)
        # Activations see values where they bend (|x| up to about 6).
        spread = 3.0 if style is None else 1.0
        x = (spread * rng.standard_normal(shape)).astype(np.float32)
        session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        (y,) = session.run(None, {"x": x})
        name = f"{op}{'-depthwise' if depthwise else ''}-{style or 'alone'}-{len(cases)}"
        cases.append({
            "name": name,
            "attributes": {k: v for k, v in attrs.items()},
            "model": model.SerializeToString().hex(),
            "input_shape": shape,
            "input": x.astype("<f4").tobytes().hex(),
            "output_shape": list(y.shape),
            "output": y.astype("<f4").tobytes().hex(),
        })
    DEST.write_text(json.dumps({
        "generator": f"scripts/onnx-op-goldens.py, onnxruntime {onnxruntime.__version__}, onnx {onnx.__version__}, opset {OPSET}",
        "cases": cases,
    }, indent=1) + "\n")
    print(f"{len(cases)} cases -> {DEST.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
