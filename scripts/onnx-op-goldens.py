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
    """A model of `node` (or a list of nodes) from input x to output y."""
    nodes = node if isinstance(node, list) else [node]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [])
    graph = helper.make_graph(nodes, nodes[-1].name, [x], [y], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    # The output's shape is onnxruntime's to infer (which also checks the
    # model against the opset).
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


def batch_norm_nodes(rng, channels, x, name):
    """A BatchNormalization of `x` with random statistics, and its constants."""
    stats = [rng.standard_normal(channels), rng.standard_normal(channels),
             rng.standard_normal(channels), rng.uniform(0.1, 2.0, channels)]
    names = [f"{name}_{k}" for k in ("scale", "bias", "mean", "var")]
    inits = [numpy_helper.from_array(v.astype(np.float32), n) for v, n in zip(stats, names)]
    node = helper.make_node("BatchNormalization", [x, *names], ["y"], name=name, epsilon=1e-3)
    return node, inits


def batch_norm_case(rng, after):
    """BatchNormalization after a Conv, a depthwise Conv or a Gemm (folded
    into it), or on its own (a per-channel affine layer)."""
    if after == "Gemm":
        k, n = int(rng.integers(2, 16)), int(rng.integers(2, 10))
        w = rng.standard_normal((n, k)).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        gemm = helper.make_node("Gemm", ["x", "w", "b"], ["t"], name="gemm", transB=1)
        bn, inits = batch_norm_nodes(rng, n, "t", "bn")
        inits += [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
        return model_of([gemm, bn], [1, k], inits), [1, k], {"after": after}
    c, h, w = int(rng.integers(1, 5)), int(rng.integers(2, 8)), int(rng.integers(2, 8))
    if after is None:
        bn, inits = batch_norm_nodes(rng, c, "x", "bn")
        return model_of(bn, [1, c, h, w], inits), [1, c, h, w], {"after": "input"}
    depthwise = after == "depthwise"
    out = c if depthwise else int(rng.integers(1, 6))
    weights = rng.standard_normal((out, 1 if depthwise else c, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(out).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "w", "b"], ["t"], name="conv", kernel_shape=[3, 3],
                            pads=[1, 1, 1, 1], group=c if depthwise else 1)
    bn, inits = batch_norm_nodes(rng, out, "t", "bn")
    inits += [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")]
    return model_of([conv, bn], [1, c, h, w], inits), [1, c, h, w], {"after": after}


def gemm_case(rng, trans_b, c_shape):
    """Gemm with alpha, beta, transB and a bias C of one value or one per output."""
    k, n = int(rng.integers(1, 20)), int(rng.integers(1, 12))
    w = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    c = rng.standard_normal([n if d == "n" else 1 for d in c_shape]).astype(np.float32)
    attrs = dict(alpha=float(np.float32(rng.uniform(0.2, 2))), beta=float(np.float32(rng.uniform(0.2, 2))), transB=trans_b)
    node = helper.make_node("Gemm", ["x", "w", "c"], ["y"], name="gemm", **attrs)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(c, "c")]
    attrs["c_shape"] = list(c.shape)
    return model_of(node, [1, k], inits), [1, k], attrs


def arithmetic_case(rng, op, c_dims, first):
    """`op` of the input and a constant of shape `c_dims` ("c", "h", "w" are
    the input's; the constant first when `first`), or of two activations
    (the input and its Relu) when `c_dims` is None."""
    shape = [1, int(rng.integers(1, 5)), int(rng.integers(1, 6)), int(rng.integers(1, 6))]
    if c_dims is None:
        relu = helper.make_node("Relu", ["x"], ["r"], name="relu")
        node = helper.make_node(op, ["x", "r"], ["y"], name=op.lower())
        return model_of([relu, node], shape, []), shape, {"operands": "x, relu(x)"}
    size = {"c": shape[1], "h": shape[2], "w": shape[3], "1": 1}
    dims = [size[d] for d in c_dims]
    c = rng.standard_normal(dims).astype(np.float32)
    if op == "Div":
        c = np.where(np.abs(c) < 0.25, 0.25, c).astype(np.float32)
    inputs = ["c", "x"] if first else ["x", "c"]
    node = helper.make_node(op, inputs, ["y"], name=op.lower())
    return model_of(node, shape, [numpy_helper.from_array(c, "c")]), shape, {"constant": dims, "first": first}


def head_case(rng, kind):
    """A PyTorch-style classifier head after a Conv: GlobalAveragePool then
    Squeeze, ReduceMean without keepdims, or Reshape to a Constant [1, -1]
    shape, then Gemm."""
    c, h, w = int(rng.integers(1, 5)), int(rng.integers(2, 7)), int(rng.integers(2, 7))
    out, units = int(rng.integers(2, 6)), int(rng.integers(2, 8))
    conv_w = rng.standard_normal((out, c, 3, 3)).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "cw"], ["t"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    inits = [numpy_helper.from_array(conv_w, "cw")]
    features = out if kind != "reshape" else out * h * w
    if kind == "squeeze":
        nodes = [helper.make_node("GlobalAveragePool", ["t"], ["p"], name="pool"),
                 helper.make_node("Squeeze", ["p", "axes"], ["f"], name="squeeze")]
        inits.append(numpy_helper.from_array(np.array([2, 3], np.int64), "axes"))
    elif kind == "reducemean":
        nodes = [helper.make_node("ReduceMean", ["t"], ["f"], name="mean", axes=[-1, -2], keepdims=0)]
    else:
        shape = helper.make_tensor("shape_value", TensorProto.INT64, [2], [1, -1])
        nodes = [helper.make_node("Constant", [], ["shape"], name="shape", value=shape),
                 helper.make_node("Reshape", ["t", "shape"], ["f"], name="reshape")]
    gemm_w = rng.standard_normal((units, features)).astype(np.float32)
    gemm_b = rng.standard_normal(units).astype(np.float32)
    inits += [numpy_helper.from_array(gemm_w, "gw"), numpy_helper.from_array(gemm_b, "gb")]
    gemm = helper.make_node("Gemm", ["f", "gw", "gb"], ["y"], name="gemm", transB=1)
    return model_of([conv, *nodes, gemm], [1, c, h, w], inits), [1, c, h, w], {"head": kind}


def concat_case(rng, axis):
    """Concat of the input and its Relu (4-D, NCHW `axis`), or of two Gemms
    of the input (`[1, K]`, axis 1)."""
    if axis == "flat":
        k = int(rng.integers(2, 10))
        units = [int(rng.integers(1, 6)), int(rng.integers(1, 6))]
        inits, nodes = [], []
        for i, u in enumerate(units):
            inits.append(numpy_helper.from_array(rng.standard_normal((u, k)).astype(np.float32), f"w{i}"))
            nodes.append(helper.make_node("Gemm", ["x", f"w{i}"], [f"g{i}"], name=f"gemm{i}", transB=1))
        nodes.append(helper.make_node("Concat", ["g0", "g1"], ["y"], name="concat", axis=1))
        return model_of(nodes, [1, k], inits), [1, k], {"axis": 1}
    shape = [1, int(rng.integers(1, 5)), int(rng.integers(1, 6)), int(rng.integers(1, 6))]
    relu = helper.make_node("Relu", ["x"], ["r"], name="relu")
    node = helper.make_node("Concat", ["x", "r"], ["y"], name="concat", axis=axis)
    return model_of([relu, node], shape, []), shape, {"axis": axis}


def conv1d_case(rng, depthwise):
    """Conv over [1, C, L] (PyTorch's Conv1d): explicit pads, stride, dilation."""
    c, length = int(rng.integers(1, 5)), int(rng.integers(6, 20))
    k = int(rng.integers(1, 6))
    group, per_group, out = (c, 1, c * int(rng.integers(1, 3))) if depthwise else (1, c, int(rng.integers(1, 7)))
    attrs = dict(kernel_shape=[k], strides=[int(rng.integers(1, 3))], dilations=[int(rng.integers(1, 3))],
                 pads=[int(rng.integers(0, k)), int(rng.integers(0, k))], group=group)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv1d", **attrs)
    inits = [numpy_helper.from_array(rng.standard_normal((out, per_group, k)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(out).astype(np.float32), "b")]
    return model_of(node, [1, c, length], inits), [1, c, length], attrs


def keyword_1d_case(rng):
    """A PyTorch Conv1d keyword spotter: Conv1d, BatchNorm1d, Relu,
    MaxPool1d, ReduceMean over time, Gemm, LogSoftmax."""
    c, length, f, classes = int(rng.integers(2, 8)), int(rng.integers(10, 30)), int(rng.integers(2, 9)), int(rng.integers(2, 7))
    inits = [numpy_helper.from_array(rng.standard_normal((f, c, 3)).astype(np.float32), "w")]
    for name, lo, hi in [("g", 0.5, 1.5), ("beta", -0.5, 0.5), ("mean", -1, 1), ("var", 0.5, 2)]:
        inits.append(numpy_helper.from_array(rng.uniform(lo, hi, f).astype(np.float32), name))
    inits += [numpy_helper.from_array(rng.standard_normal((classes, f)).astype(np.float32), "fw"),
              numpy_helper.from_array(rng.standard_normal(classes).astype(np.float32), "fb")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3], pads=[1, 1]),
             helper.make_node("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["n"], name="bn"),
             helper.make_node("Relu", ["n"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2], strides=[2]),
             helper.make_node("ReduceMean", ["p"], ["m"], name="mean", axes=[-1], keepdims=0),
             helper.make_node("Gemm", ["m", "fw", "fb"], ["g1"], name="fc", transB=1),
             helper.make_node("LogSoftmax", ["g1"], ["y"], name="logsoftmax", axis=1)]
    return model_of(nodes, [1, c, length], inits), [1, c, length], {"net": "conv1d-kws"}


def sequence_case(rng, into_conv):
    """A [1, T, F] sequence: MatMul with a bias Add and Tanh at every step
    (a dense layer per step); or Transpose [0, 2, 1] into a Conv1d."""
    t, f, units = int(rng.integers(2, 9)), int(rng.integers(2, 12)), int(rng.integers(1, 9))
    if into_conv:
        nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="transpose", perm=[0, 2, 1]),
                 helper.make_node("Conv", ["xt", "w"], ["y"], name="conv", kernel_shape=[1])]
        inits = [numpy_helper.from_array(rng.standard_normal((units, f, 1)).astype(np.float32), "w")]
    else:
        nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="matmul"),
                 helper.make_node("Add", ["m", "b"], ["a"], name="bias"),
                 helper.make_node("Tanh", ["a"], ["y"], name="tanh")]
        inits = [numpy_helper.from_array(rng.standard_normal((f, units)).astype(np.float32), "w"),
                 numpy_helper.from_array(rng.standard_normal(units).astype(np.float32), "b")]
    return model_of(nodes, [1, t, f], inits), [1, t, f], {"into_conv": into_conv}


def curve_case(rng, op, after_conv):
    """HardSigmoid (alone, or after a Conv it folds into) or Elu."""
    c, h, w = int(rng.integers(1, 5)), int(rng.integers(1, 7)), int(rng.integers(1, 7))
    attrs = {"alpha": float(np.float32(rng.uniform(0.1, 0.4))), "beta": float(np.float32(rng.uniform(0.3, 0.7)))} \
        if op == "HardSigmoid" else {"alpha": float(np.float32(rng.uniform(0.5, 1.5)))}
    if not after_conv:
        node = helper.make_node(op, ["x"], ["y"], name=op.lower(), **attrs)
        return model_of(node, [1, c, h, w], []), [1, c, h, w], attrs
    out = int(rng.integers(1, 5))
    inits = [numpy_helper.from_array(rng.standard_normal((out, c, 1, 1)).astype(np.float32), "w")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["t"], name="conv", kernel_shape=[1, 1]),
             helper.make_node(op, ["t"], ["y"], name=op.lower(), **attrs)]
    return model_of(nodes, [1, c, h, w], inits), [1, c, h, w], attrs


def axis_case(rng, op, shape, attrs):
    """One node over a random tensor of `shape` (letters drawn 1..6) with `attrs`."""
    dims = [1] + [int(rng.integers(2, 7)) for _ in shape[1:]]
    node = helper.make_node(op, ["x"], ["y"], name=op.lower(), **attrs)
    return model_of(node, dims, []), dims, attrs


def broadcast_case(rng, kind):
    """Two activations of different shapes: a squeeze-and-excitation scale
    (x times its GlobalAveragePool) or x plus its mean over height."""
    shape = [1, int(rng.integers(2, 6)), int(rng.integers(2, 6)), int(rng.integers(2, 6))]
    if kind == "se":
        nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"], name="pool"),
                 helper.make_node("Sigmoid", ["p"], ["s"], name="gate"),
                 helper.make_node("Mul", ["x", "s"], ["y"], name="scale")]
    else:
        nodes = [helper.make_node("ReduceMean", ["x"], ["m"], name="mean", axes=[2], keepdims=1),
                 helper.make_node("Sub", ["x", "m"], ["y"], name="centre")]
    return model_of(nodes, shape, []), shape, {"broadcast": kind}


def conv1d_as_2d_case(rng):
    """Unsqueeze [1, C, L] to [1, C, 1, L], a 1xK Conv, Squeeze back."""
    c, length, out, k = int(rng.integers(1, 5)), int(rng.integers(4, 12)), int(rng.integers(1, 5)), int(rng.integers(1, 4))
    inits = [numpy_helper.from_array(np.array([2], np.int64), "axes"),
             numpy_helper.from_array(rng.standard_normal((out, c, 1, k)).astype(np.float32), "w")]
    nodes = [helper.make_node("Unsqueeze", ["x", "axes"], ["u"], name="unsqueeze"),
             helper.make_node("Conv", ["u", "w"], ["c"], name="conv", kernel_shape=[1, k]),
             helper.make_node("Squeeze", ["c", "axes"], ["y"], name="squeeze")]
    return model_of(nodes, [1, c, length], inits), [1, c, length], {"k": k}


def pad_case(rng, rank3):
    """Pad of an activation with a constant on every non-batch axis."""
    dims = [1, int(rng.integers(1, 5)), int(rng.integers(2, 6))] + ([] if rank3 else [int(rng.integers(2, 6))])
    rank = len(dims)
    pads = [0] + [int(rng.integers(0, 3)) for _ in range(rank - 1)] + [0] + [int(rng.integers(0, 3)) for _ in range(rank - 1)]
    value = float(np.float32(rng.uniform(-1, 1)))
    inits = [numpy_helper.from_array(np.array(pads, np.int64), "pads"),
             numpy_helper.from_array(np.array(value, np.float32), "value")]
    # A Relu first: the Pad reads a layer's output, not the model input.
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Pad", ["r", "pads", "value"], ["y"], name="pad", mode="constant")]
    return model_of(nodes, dims, inits), dims, {"pads": pads, "value": value}


def slice_case(rng, kind):
    """Slice with constant starts/ends/axes/steps: channels with a step, the
    width backwards, or the features of a flat tensor."""
    if kind == "flat":
        dims = [1, int(rng.integers(6, 20))]
        starts, ends, axes, steps = [1], [-1], [1], [2]
    else:
        dims = [1, int(rng.integers(3, 8)), int(rng.integers(2, 6)), int(rng.integers(3, 8))]
        if kind == "channels":
            starts, ends, axes, steps = [1], [dims[1]], [1], [2]
        else:
            starts, ends, axes, steps = [-1], [-(1 << 62)], [3], [-2]
    inits = [numpy_helper.from_array(np.array(v, np.int64), n)
             for v, n in [(starts, "starts"), (ends, "ends"), (axes, "axes"), (steps, "steps")]]
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Slice", ["r", "starts", "ends", "axes", "steps"], ["y"], name="slice")]
    return model_of(nodes, dims, inits), dims, {"starts": starts, "ends": ends, "axes": axes, "steps": steps}


def split_case(rng):
    """Split along channels into uneven parts, concatenated back in reverse."""
    c = int(rng.integers(3, 8))
    first = int(rng.integers(1, c))
    dims = [1, c, int(rng.integers(2, 5)), int(rng.integers(2, 5))]
    inits = [numpy_helper.from_array(np.array([first, c - first], np.int64), "split")]
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Split", ["r", "split"], ["a", "b"], name="split", axis=1),
             helper.make_node("Concat", ["b", "a"], ["y"], name="join", axis=1)]
    return model_of(nodes, dims, inits), dims, {"split": [first, c - first]}


def grouped_conv_case(rng):
    """A grouped Conv (1 < group < channels), as ShuffleNet and ResNeXt have."""
    group = int(rng.integers(2, 4))
    per_group, out_per_group = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    c, out = group * per_group, group * out_per_group
    dims = [1, c, int(rng.integers(3, 8)), int(rng.integers(3, 8))]
    attrs = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=group)
    inits = [numpy_helper.from_array(rng.standard_normal((out, per_group, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(out).astype(np.float32), "b")]
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="grouped", **attrs)
    return model_of(node, dims, inits), dims, attrs


def wide_pads_case(rng, depthwise):
    """A Conv padded by any amounts, one-sided and wider than its kernel
    (outputs that see only padding give the bias)."""
    c = int(rng.integers(1, 4))
    dims = [1, c, int(rng.integers(2, 8)), int(rng.integers(2, 8))]
    kernel = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
    out, per_group, group = (c, 1, c) if depthwise else (int(rng.integers(1, 5)), c, 1)
    pads = [int(rng.integers(0, 4)) for _ in range(4)]
    attrs = dict(kernel_shape=kernel, strides=[int(rng.integers(1, 3)), int(rng.integers(1, 3))], pads=pads, group=group)
    inits = [numpy_helper.from_array(rng.standard_normal((out, per_group, *kernel)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(out).astype(np.float32), "b")]
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", **attrs)
    return model_of(node, dims, inits), dims, attrs


def ceil_pool_case(rng, op, ceil, include_pad):
    """A pool with explicit pads (below the kernel, as onnxruntime requires),
    rounding its output size up (ceil_mode) or down."""
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(4, 12)), int(rng.integers(4, 12))
    kernel = [int(rng.integers(2, 4)), int(rng.integers(2, 4))]
    stride = [int(rng.integers(2, 4)), int(rng.integers(2, 4))]
    attrs = dict(kernel_shape=kernel, strides=stride, ceil_mode=ceil, **pads_of(rng, kernel, "explicit"))
    if op == "AveragePool":
        attrs["count_include_pad"] = include_pad
    node = helper.make_node(op, ["x"], ["y"], name=op.lower(), **attrs)
    return model_of(node, [1, c, h, w], []), [1, c, h, w], attrs


def int_constant(name, values):
    """A Constant node of int64 values, as PyTorch writes shapes."""
    value = helper.make_tensor(f"{name}_value", TensorProto.INT64, [len(values)], values)
    return helper.make_node("Constant", [], [name], name=name, value=value)


def conv_node(rng, c, out, x, y, inits, name="conv"):
    """A 3x3 Conv padded 1 from `x` to `y`, its weights appended to `inits`."""
    inits.append(numpy_helper.from_array(rng.standard_normal((out, c, 3, 3)).astype(np.float32), f"{name}_w"))
    return helper.make_node("Conv", [x, f"{name}_w"], [y], name=name, kernel_shape=[3, 3], pads=[1, 1, 1, 1])


def shape_chain_case(rng, kind):
    """Reshapes whose shape a chain of Shape, Gather, Unsqueeze, Mul, Concat
    computes, as torch.onnx.export writes `x.view(x.size(0), -1)` ("batch")
    or `x.view(n, c, h * w)` ("sequence", then a Softmax over the positions)."""
    c, h, w = int(rng.integers(1, 5)), int(rng.integers(2, 6)), int(rng.integers(2, 6))
    out = int(rng.integers(2, 5))
    inits = []
    nodes = [conv_node(rng, c, out, "x", "t", inits), helper.make_node("Shape", ["t"], ["s"], name="shape")]
    gather = lambda i: [int_constant(f"i{i}", [i]), helper.make_node("Gather", ["s", f"i{i}"], [f"d{i}"], name=f"gather{i}", axis=0)]
    if kind == "batch":
        nodes += gather(0) + [int_constant("minus", [-1]),
                              helper.make_node("Concat", ["d0", "minus"], ["target"], name="concat", axis=0),
                              helper.make_node("Reshape", ["t", "target"], ["f"], name="reshape")]
        units = int(rng.integers(2, 6))
        inits += [numpy_helper.from_array(rng.standard_normal((units, out * h * w)).astype(np.float32), "gw")]
        nodes.append(helper.make_node("Gemm", ["f", "gw"], ["y"], name="gemm", transB=1))
    else:
        nodes += gather(0) + gather(1) + gather(2) + gather(3) + [
            helper.make_node("Mul", ["d2", "d3"], ["hw"], name="mul"),
            helper.make_node("Concat", ["d0", "d1", "hw"], ["target"], name="concat", axis=0),
            helper.make_node("Reshape", ["t", "target"], ["q"], name="reshape"),
            helper.make_node("Softmax", ["q"], ["y"], name="softmax", axis=-1)]
    return model_of(nodes, [1, c, h, w], inits), [1, c, h, w], {"chain": kind}


def reshape_case(rng, kind):
    """A Reshape that moves values: a Gemm's features to [1, C, H, W] for a
    Conv ("to-spatial"), [1, C, H, W] to [1, C', H', W'] for a MaxPool ("spatial"), or to
    a [1, T, F] sequence for a MatMul ("to-sequence")."""
    if kind == "to-spatial":
        c, h, w, k = int(rng.integers(2, 5)), int(rng.integers(2, 5)), int(rng.integers(2, 5)), int(rng.integers(2, 9))
        inits = [numpy_helper.from_array(rng.standard_normal((c * h * w, k)).astype(np.float32), "gw")]
        nodes = [helper.make_node("Gemm", ["x", "gw"], ["g"], name="gemm", transB=1),
                 int_constant("target", [1, c, h, w]),
                 helper.make_node("Reshape", ["g", "target"], ["r"], name="reshape"),
                 conv_node(rng, c, int(rng.integers(1, 4)), "r", "y", inits)]
        return model_of(nodes, [1, k], inits), [1, k], {"reshape": kind, "target": [1, c, h, w]}
    c, h, w = 2 * int(rng.integers(2, 4)), 2 * int(rng.integers(1, 3)), int(rng.integers(2, 5))
    inits = []
    nodes = [conv_node(rng, c, c, "x", "t", inits)]
    if kind == "spatial":
        target = [1, c // 2, h * 2, w]
        # A max pool reads the new layout, exactly (a second Conv would sum
        # in onnxruntime's order).
        nodes += [int_constant("target", target), helper.make_node("Reshape", ["t", "target"], ["r"], name="reshape"),
                  helper.make_node("MaxPool", ["r"], ["y"], name="pool", kernel_shape=[2, 2])]
    else:
        target = [1, c, h * w]
        f = int(rng.integers(1, 5))
        inits.append(numpy_helper.from_array(rng.standard_normal((h * w, f)).astype(np.float32), "mw"))
        nodes += [int_constant("target", target), helper.make_node("Reshape", ["t", "target"], ["r"], name="reshape"),
                  helper.make_node("MatMul", ["r", "mw"], ["y"], name="matmul")]
    return model_of(nodes, [1, c, h, w], inits), [1, c, h, w], {"reshape": kind, "target": target}


def shuffle_case(rng):
    """ShuffleNet's channel shuffle after a Conv: Reshape to [N, G, C/G, H, W],
    Transpose [0, 2, 1, 3, 4], Reshape back (the model's output)."""
    groups, per_group = int(rng.integers(2, 4)), int(rng.integers(2, 4))
    c, h, w = groups * per_group, int(rng.integers(2, 6)), int(rng.integers(2, 6))
    inits = []
    nodes = [conv_node(rng, 2, c, "x", "t", inits),
             int_constant("grouped", [1, groups, per_group, h, w]),
             helper.make_node("Reshape", ["t", "grouped"], ["g"], name="split_groups"),
             helper.make_node("Transpose", ["g"], ["tg"], name="shuffle", perm=[0, 2, 1, 3, 4]),
             int_constant("back", [1, c, h, w]),
             helper.make_node("Reshape", ["tg", "back"], ["y"], name="merge_groups")]
    return model_of(nodes, [1, 2, h, w], inits), [1, 2, h, w], {"groups": groups}


def conv_transpose_case(rng, kind):
    """ConvTranspose at stride 1 (pads, dilation) or with stride equal to the
    kernel (upsampling blocks, square or not)."""
    c, out = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    h, w = int(rng.integers(2, 7)), int(rng.integers(2, 7))
    if kind == "stride1":
        kernel = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
        dilation = [int(rng.integers(1, 3)), 1]
        reach = [d * (k - 1) for k, d in zip(kernel, dilation)]
        pads = [int(rng.integers(0, r + 1)) for r in reach] + [int(rng.integers(0, r + 1)) for r in reach]
        attrs = dict(kernel_shape=kernel, dilations=dilation, pads=pads)
    else:
        kernel = [2, 2] if kind == "2x2" else [int(rng.integers(1, 4)), int(rng.integers(2, 4))]
        attrs = dict(kernel_shape=kernel, strides=kernel)
    inits = [numpy_helper.from_array(rng.standard_normal((c, out, *kernel)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(out).astype(np.float32), "b")]
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], name="deconv", **attrs)
    return model_of(node, [1, c, h, w], inits), [1, c, h, w], attrs


def concat_relu_case(rng):
    """A Relu of a Concat of two Convs (an Inception-style block): fused into
    each Conv, as it commutes with the concatenation."""
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(3, 7)), int(rng.integers(3, 7))
    inits = []
    nodes = [conv_node(rng, c, int(rng.integers(1, 4)), "x", "a", inits, "conv_a"),
             conv_node(rng, c, int(rng.integers(1, 4)), "x", "b", inits, "conv_b"),
             helper.make_node("Concat", ["a", "b"], ["ab"], name="concat", axis=1),
             helper.make_node("Relu", ["ab"], ["y"], name="relu")]
    return model_of(nodes, [1, c, h, w], inits), [1, c, h, w], {}


# Cases after the first 63, each a builder of (model, input shape, attributes).
LATER = [
    ("Conv1d", lambda rng: conv1d_case(rng, False)),
    ("Conv1d", lambda rng: conv1d_case(rng, False)),
    ("Conv1d-depthwise", lambda rng: conv1d_case(rng, True)),
    ("Conv1d-kws", keyword_1d_case),
    ("MatMul-sequence", lambda rng: sequence_case(rng, False)),
    ("Transpose-sequence-into-conv1d", lambda rng: sequence_case(rng, True)),
    ("HardSigmoid", lambda rng: curve_case(rng, "HardSigmoid", False)),
    ("HardSigmoid-after-conv", lambda rng: curve_case(rng, "HardSigmoid", True)),
    ("Elu", lambda rng: curve_case(rng, "Elu", False)),
    ("Softmax-channels", lambda rng: axis_case(rng, "Softmax", "nchw", {"axis": 1})),
    ("LogSoftmax-flat", lambda rng: axis_case(rng, "LogSoftmax", "nf", {"axis": -1})),
    ("Softmax-sequence", lambda rng: axis_case(rng, "Softmax", "ntf", {"axis": 2})),
    ("ReduceMean-channels", lambda rng: axis_case(rng, "ReduceMean", "nchw", {"axes": [1], "keepdims": 1})),
    ("ReduceMean-height", lambda rng: axis_case(rng, "ReduceMean", "nchw", {"axes": [2], "keepdims": 1})),
    ("Transpose-swap-hw", lambda rng: axis_case(rng, "Transpose", "nchw", {"perm": [0, 1, 3, 2]})),
    ("Transpose-to-nhwc", lambda rng: axis_case(rng, "Transpose", "nchw", {"perm": [0, 2, 3, 1]})),
    ("Mul-broadcast-se", lambda rng: broadcast_case(rng, "se")),
    ("Sub-broadcast-mean", lambda rng: broadcast_case(rng, "mean")),
    ("Conv1d-as-conv2d", conv1d_as_2d_case),
    ("Pad-values", lambda rng: pad_case(rng, False)),
    ("Pad-values-rank3", lambda rng: pad_case(rng, True)),
    ("Slice-channels-step", lambda rng: slice_case(rng, "channels")),
    ("Slice-width-backwards", lambda rng: slice_case(rng, "backwards")),
    ("Slice-flat", lambda rng: slice_case(rng, "flat")),
    ("Split-uneven", split_case),
    ("Conv-grouped", grouped_conv_case),
    ("Conv-grouped", grouped_conv_case),
    ("Conv-pads-wide", lambda rng: wide_pads_case(rng, False)),
    ("Conv-pads-wide", lambda rng: wide_pads_case(rng, False)),
    ("Conv-depthwise-pads-wide", lambda rng: wide_pads_case(rng, True)),
    ("MaxPool-ceil", lambda rng: ceil_pool_case(rng, "MaxPool", 1, 0)),
    ("MaxPool-ceil", lambda rng: ceil_pool_case(rng, "MaxPool", 1, 0)),
    ("AveragePool-explicit-exclude-pad", lambda rng: ceil_pool_case(rng, "AveragePool", 0, 0)),
    ("AveragePool-ceil-exclude-pad", lambda rng: ceil_pool_case(rng, "AveragePool", 1, 0)),
    ("AveragePool-ceil-include-pad", lambda rng: ceil_pool_case(rng, "AveragePool", 1, 1)),
    ("AveragePool-ceil-include-pad", lambda rng: ceil_pool_case(rng, "AveragePool", 1, 1)),
    ("Shape-chain-view-batch", lambda rng: shape_chain_case(rng, "batch")),
    ("Shape-chain-sequence", lambda rng: shape_chain_case(rng, "sequence")),
    ("Reshape-to-spatial", lambda rng: reshape_case(rng, "to-spatial")),
    ("Reshape-spatial", lambda rng: reshape_case(rng, "spatial")),
    ("Reshape-to-sequence", lambda rng: reshape_case(rng, "to-sequence")),
    ("Channel-shuffle", shuffle_case),
    ("Channel-shuffle", shuffle_case),
    ("ConvTranspose-stride1", lambda rng: conv_transpose_case(rng, "stride1")),
    ("ConvTranspose-stride1", lambda rng: conv_transpose_case(rng, "stride1")),
    ("ConvTranspose-2x2-stride2", lambda rng: conv_transpose_case(rng, "2x2")),
    ("ConvTranspose-blocks", lambda rng: conv_transpose_case(rng, "blocks")),
    ("Concat-convs-relu", concat_relu_case),
]


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
    for after in ["Conv", "depthwise", "Gemm", None]:
        plan.append(("BatchNormalization", after, False, 0))
    for trans_b, c_shape in [(0, ["n"]), (1, ["n"]), (1, ["1", "n"]), (0, []), (1, ["1"])]:
        plan.append(("Gemm", (trans_b, c_shape), False, 0))
    for op, c_dims, first in [("Add", ["c", "1", "1"], False), ("Sub", [], True), ("Mul", ["1", "c", "1", "1"], False),
                              ("Div", [], False), ("Sub", ["c", "h", "w"], False), ("Mul", ["w"], True),
                              ("Add", ["h", "1"], True), ("Div", ["c", "1", "w"], False),
                              ("Sub", None, False), ("Mul", None, False)]:
        plan.append((op, ("arithmetic", c_dims, first), False, 0))
    for kind in ["squeeze", "reducemean", "reshape"]:
        plan.append(("head", kind, False, 0))
    for axis in [1, 2, -1, "flat"]:
        plan.append(("Concat", axis, False, 0))
    for op, style, depthwise, include_pad in plan:
        if op == "Concat":
            model, shape, attrs = concat_case(rng, style)
            style = f"axis{style}"
        elif op == "head":
            model, shape, attrs = head_case(rng, style)
        elif isinstance(style, tuple) and style[0] == "arithmetic":
            model, shape, attrs = arithmetic_case(rng, op, style[1], style[2])
            style = "activations" if style[1] is None else f"constant{'-first' if style[2] else ''}"
        elif op == "BatchNormalization":
            model, shape, attrs = batch_norm_case(rng, style)
            style = f"after-{style or 'input'}"
        elif op == "Gemm":
            model, shape, attrs = gemm_case(rng, *style)
            style = f"transB{style[0]}-c{len(style[1])}"
        elif style is None:
            model, shape, attrs = activation_case(rng, op)
        elif op == "Conv":
            model, shape, attrs = conv_case(rng, style, depthwise)
        else:
            model, shape, attrs = pool_case(rng, op, style, include_pad)
        # Activations see values where they bend (|x| up to about 6).
        spread = 3.0 if style is None else 1.0
        name = f"{op}{'-depthwise' if depthwise else ''}-{style or 'alone'}-{len(cases)}"
        cases.append(run_case(rng, name, model, shape, attrs, spread))
    for op, build in LATER:
        model, shape, attrs = build(rng)
        cases.append(run_case(rng, f"{op}-{len(cases)}", model, shape, attrs, 3.0))
    DEST.write_text(json.dumps({
        "generator": f"scripts/onnx-op-goldens.py, onnxruntime {onnxruntime.__version__}, onnx {onnx.__version__}, opset {OPSET}",
        "cases": cases,
    }, indent=1) + "\n")
    print(f"{len(cases)} cases -> {DEST.relative_to(ROOT)}")


def run_case(rng, name, model, shape, attrs, spread):
    """The case: a seeded input of `shape` and onnxruntime's output."""
    x = (spread * rng.standard_normal(shape)).astype(np.float32)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x})
    return {
        "name": name,
        "attributes": {k: v for k, v in attrs.items()},
        "model": model.SerializeToString().hex(),
        "input_shape": shape,
        "input": x.astype("<f4").tobytes().hex(),
        "output_shape": list(y.shape),
        "output": y.astype("<f4").tobytes().hex(),
    }


if __name__ == "__main__":
    main()
