#!/usr/bin/env python3
"""Golden outputs of single int8 operators from the TFLite reference kernels.

Builds one-operator int8 .tflite models (random shapes, per-channel scales,
zero points, strides, dilations, paddings, fused activations), runs each on
fixed random inputs with LiteRT's reference op resolver (BUILTIN_REF, not
XNNPACK or the optimized kernels), and writes the float quantization
parameters, the integer data and the outputs to tflite_ops.json.
tests/tflite_goldens.rs derives the integer parameters with bench's own host
functions and must reproduce every output byte.

Regenerate (CI does not need Python):
    pip install ai-edge-litert numpy tflite flatbuffers
    python3 kernels/tests/golden/make_op_goldens.py
"""
import importlib.metadata
import json
import pathlib

import flatbuffers
import numpy as np
import tflite
from ai_edge_litert.interpreter import Interpreter, OpResolverType

RNG = np.random.default_rng(20261122)
TENSOR_TYPES = {"int8": tflite.TensorType.INT8, "uint8": tflite.TensorType.UINT8, "int32": tflite.TensorType.INT32, "float32": tflite.TensorType.FLOAT32,
                "float16": tflite.TensorType.FLOAT16, "int16": tflite.TensorType.INT16, "int64": tflite.TensorType.INT64}
ACTIVATIONS = {"none": 0, "relu": 1, "relu6": 3}


def build_model(opcode, options_type, write_options, tensors, op_inputs, op_outputs):
    """A flatbuffer model with one operator. `tensors` are dicts with shape,
    dtype ('int8', 'int32' or 'float32'), scales, zero_points,
    quantized_dimension and optional constant data."""
    graph_inputs = [i for i in op_inputs if i >= 0 and tensors[i].get("data") is None]
    return build_graph(tensors, [(opcode, options_type, write_options, op_inputs, op_outputs)], graph_inputs, op_outputs)


def build_graph(tensors, operators, graph_inputs, graph_outputs):
    """A flatbuffer model running `operators` in order: each is
    (opcode, options_type, write_options, inputs, outputs)."""
    b = flatbuffers.Builder(4096)
    buffer_offsets = []
    tflite.BufferStart(b)
    buffer_offsets.append(tflite.BufferEnd(b))  # buffer 0: empty by convention
    buffer_index = []
    for t in tensors:
        if t.get("data") is None:
            buffer_index.append(0)
            continue
        data = b.CreateNumpyVector(np.ascontiguousarray(t["data"]).view(np.uint8).ravel())
        tflite.BufferStart(b)
        tflite.BufferAddData(b, data)
        buffer_offsets.append(tflite.BufferEnd(b))
        buffer_index.append(len(buffer_offsets) - 1)

    tensor_offsets = []
    for i, t in enumerate(tensors):
        name = b.CreateString(f"t{i}")
        shape = b.CreateNumpyVector(np.array(t["shape"], dtype=np.int32))
        scales = b.CreateNumpyVector(np.array(t["scales"], dtype=np.float32))
        zps = b.CreateNumpyVector(np.array(t["zero_points"], dtype=np.int64))
        tflite.QuantizationParametersStart(b)
        tflite.QuantizationParametersAddScale(b, scales)
        tflite.QuantizationParametersAddZeroPoint(b, zps)
        tflite.QuantizationParametersAddQuantizedDimension(b, t.get("quantized_dimension", 0))
        quant = tflite.QuantizationParametersEnd(b)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, TENSOR_TYPES[t["dtype"]])
        tflite.TensorAddBuffer(b, buffer_index[i])
        tflite.TensorAddName(b, name)
        tflite.TensorAddQuantization(b, quant)
        if t.get("variable"):
            tflite.TensorAddIsVariable(b, True)
        tensor_offsets.append(tflite.TensorEnd(b))

    codes = []
    operator_offsets = []
    for opcode, options_type, write_options, op_inputs, op_outputs in operators:
        if opcode not in codes:
            codes.append(opcode)
        options = write_options(b) if write_options else None
        op_in = b.CreateNumpyVector(np.array(op_inputs, dtype=np.int32))
        op_out = b.CreateNumpyVector(np.array(op_outputs, dtype=np.int32))
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, codes.index(opcode))
        tflite.OperatorAddInputs(b, op_in)
        tflite.OperatorAddOutputs(b, op_out)
        if options is not None:
            tflite.OperatorAddBuiltinOptionsType(b, options_type)
            tflite.OperatorAddBuiltinOptions(b, options)
        operator_offsets.append(tflite.OperatorEnd(b))

    def vector(offsets):
        b.StartVector(4, len(offsets), 4)
        for o in reversed(offsets):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    sg_tensors = vector(tensor_offsets)
    sg_inputs = b.CreateNumpyVector(np.array(graph_inputs, dtype=np.int32))
    sg_outputs = b.CreateNumpyVector(np.array(graph_outputs, dtype=np.int32))
    sg_ops = vector(operator_offsets)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, sg_tensors)
    tflite.SubGraphAddInputs(b, sg_inputs)
    tflite.SubGraphAddOutputs(b, sg_outputs)
    tflite.SubGraphAddOperators(b, sg_ops)
    subgraph = tflite.SubGraphEnd(b)

    code_offsets = []
    for opcode in codes:
        tflite.OperatorCodeStart(b)
        # Codes past 127 live in builtin_code only; the deprecated byte says 127 (PLACEHOLDER_FOR_GREATER_OP_CODES).
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(opcode, 127))
        tflite.OperatorCodeAddBuiltinCode(b, opcode)
        tflite.OperatorCodeAddVersion(b, 1)
        code_offsets.append(tflite.OperatorCodeEnd(b))

    codes, subgraphs, buffers = vector(code_offsets), vector([subgraph]), vector(buffer_offsets)
    description = b.CreateString("bench single-op golden")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes)
    tflite.ModelAddSubgraphs(b, subgraphs)
    tflite.ModelAddBuffers(b, buffers)
    tflite.ModelAddDescription(b, description)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def run(model, inputs):
    interp = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    for detail, x in zip(interp.get_input_details(), inputs):
        interp.set_tensor(detail["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def i8(shape):
    return RNG.integers(-128, 128, size=shape, dtype=np.int8)


def scale():
    return float(np.float32(10 ** RNG.uniform(-3, 0)))


def act_tensor(shape, s=None, zp=None):
    return {"shape": list(shape), "dtype": "int8", "scales": [s or scale()], "zero_points": [int(RNG.integers(-128, 128)) if zp is None else zp]}


def padding_name():
    return ["same", "valid"][RNG.integers(0, 2)]


def out_extent(size, k, stride, dilation, padding):
    eff = (k - 1) * dilation + 1
    return (size + stride - 1) // stride if padding == "same" else (size - eff + stride) // stride


def conv_options(depthwise, pad, stride, act, m=1, dilation=(1, 1)):
    """The options writer of a CONV_2D or DEPTHWISE_CONV_2D."""
    (sh, sw), (dh, dw) = stride, dilation

    def options(b):
        if depthwise:
            tflite.DepthwiseConv2DOptionsStart(b)
            tflite.DepthwiseConv2DOptionsAddPadding(b, pad)
            tflite.DepthwiseConv2DOptionsAddStrideW(b, sw)
            tflite.DepthwiseConv2DOptionsAddStrideH(b, sh)
            tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, m)
            tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(b, ACTIVATIONS[act])
            tflite.DepthwiseConv2DOptionsAddDilationWFactor(b, dw)
            tflite.DepthwiseConv2DOptionsAddDilationHFactor(b, dh)
            return tflite.DepthwiseConv2DOptionsEnd(b)
        tflite.Conv2DOptionsStart(b)
        tflite.Conv2DOptionsAddPadding(b, pad)
        tflite.Conv2DOptionsAddStrideW(b, sw)
        tflite.Conv2DOptionsAddStrideH(b, sh)
        tflite.Conv2DOptionsAddFusedActivationFunction(b, ACTIVATIONS[act])
        tflite.Conv2DOptionsAddDilationWFactor(b, dw)
        tflite.Conv2DOptionsAddDilationHFactor(b, dh)
        return tflite.Conv2DOptionsEnd(b)

    return options


def conv_case(depthwise):
    h, w, ic = int(RNG.integers(3, 10)), int(RNG.integers(3, 10)), int(RNG.integers(1, 9))
    m = int(RNG.integers(1, 3)) if depthwise else 1
    oc = ic * m if depthwise else int(RNG.integers(1, 9))
    kh, kw = int(RNG.integers(1, 4)), int(RNG.integers(1, 4))
    sh, sw = int(RNG.integers(1, 3)), int(RNG.integers(1, 3))
    dh, dw = (int(RNG.integers(1, 3)), int(RNG.integers(1, 3))) if RNG.random() < 0.4 else (1, 1)
    if sh > 1 or sw > 1:
        dh = dw = 1  # TFLite conv requires dilation 1 with stride > 1 in some kernels
    padding = padding_name()
    if out_extent(h, kh, sh, dh, padding) < 1 or out_extent(w, kw, sw, dw, padding) < 1:
        padding = "same"
    act = list(ACTIVATIONS)[RNG.integers(0, 3)]
    inp = act_tensor((1, h, w, ic))
    out = act_tensor((1, out_extent(h, kh, sh, dh, padding), out_extent(w, kw, sw, dw, padding), oc))
    filter_scales = [scale() / 50 for _ in range(oc)]
    filt_shape = (1, kh, kw, oc) if depthwise else (oc, kh, kw, ic)
    filt = RNG.integers(-127, 128, size=filt_shape, dtype=np.int8)
    bias = RNG.integers(-20000, 20000, size=(oc,), dtype=np.int32)
    tensors = [
        inp,
        {"shape": list(filt_shape), "dtype": "int8", "scales": filter_scales, "zero_points": [0] * oc, "quantized_dimension": 3 if depthwise else 0, "data": filt},
        {"shape": [oc], "dtype": "int32", "scales": [inp["scales"][0] * s for s in filter_scales], "zero_points": [0] * oc, "data": bias},
        out,
    ]
    pad = tflite.Padding.SAME if padding == "same" else tflite.Padding.VALID
    options = conv_options(depthwise, pad, (sh, sw), act, m, (dh, dw))

    opcode = tflite.BuiltinOperator.DEPTHWISE_CONV_2D if depthwise else tflite.BuiltinOperator.CONV_2D
    otype = tflite.BuiltinOptions.DepthwiseConv2DOptions if depthwise else tflite.BuiltinOptions.Conv2DOptions
    model = build_model(opcode, otype, options, tensors, [0, 1, 2], [3])
    x = i8(inp["shape"])
    y = run(model, [x])
    return {
        "op": "depthwise_conv2d" if depthwise else "conv2d",
        "input_shape": inp["shape"], "output_shape": out["shape"], "kernel": [kh, kw], "stride": [sh, sw], "dilation": [dh, dw],
        "padding": padding, "depth_multiplier": m, "activation": act,
        "input_scale": inp["scales"][0], "input_zero_point": inp["zero_points"][0],
        "output_scale": out["scales"][0], "output_zero_point": out["zero_points"][0],
        "filter_scales": filter_scales, "filter": filt.ravel().tolist(), "bias": bias.tolist(),
        "input": x.ravel().tolist(), "output": y.ravel().tolist(),
    }


def dense_case():
    batch, k, n = int(RNG.integers(1, 3)), int(RNG.integers(1, 200)), int(RNG.integers(1, 20))
    act = list(ACTIVATIONS)[RNG.integers(0, 3)]
    inp, out = act_tensor((batch, k)), act_tensor((batch, n))
    fs = scale() / 50
    w = RNG.integers(-127, 128, size=(n, k), dtype=np.int8)
    bias = RNG.integers(-20000, 20000, size=(n,), dtype=np.int32)
    tensors = [inp, {"shape": [n, k], "dtype": "int8", "scales": [fs], "zero_points": [0], "data": w},
               {"shape": [n], "dtype": "int32", "scales": [inp["scales"][0] * fs], "zero_points": [0], "data": bias}, out]

    def options(b):
        tflite.FullyConnectedOptionsStart(b)
        tflite.FullyConnectedOptionsAddFusedActivationFunction(b, ACTIVATIONS[act])
        return tflite.FullyConnectedOptionsEnd(b)

    model = build_model(tflite.BuiltinOperator.FULLY_CONNECTED, tflite.BuiltinOptions.FullyConnectedOptions, options, tensors, [0, 1, 2], [3])
    x = i8(inp["shape"])
    return {"op": "fully_connected", "batch": batch, "in_features": k, "out_features": n, "activation": act,
            "input_scale": inp["scales"][0], "input_zero_point": inp["zero_points"][0],
            "output_scale": out["scales"][0], "output_zero_point": out["zero_points"][0],
            "filter_scales": [fs], "filter": w.ravel().tolist(), "bias": bias.tolist(),
            "input": x.ravel().tolist(), "output": run(model, [x]).ravel().tolist()}


def pool_options(padding, kh, kw, sh, sw, act="none"):
    """The options writer of an AVERAGE_POOL_2D or MAX_POOL_2D."""
    def options(b):
        tflite.Pool2DOptionsStart(b)
        tflite.Pool2DOptionsAddPadding(b, tflite.Padding.SAME if padding == "same" else tflite.Padding.VALID)
        tflite.Pool2DOptionsAddStrideW(b, sw)
        tflite.Pool2DOptionsAddStrideH(b, sh)
        tflite.Pool2DOptionsAddFilterWidth(b, kw)
        tflite.Pool2DOptionsAddFilterHeight(b, kh)
        tflite.Pool2DOptionsAddFusedActivationFunction(b, ACTIVATIONS[act])
        return tflite.Pool2DOptionsEnd(b)

    return options


def pool_case(kind):
    h, w, c = int(RNG.integers(2, 10)), int(RNG.integers(2, 10)), int(RNG.integers(1, 12))
    kh, kw, sh, sw = int(RNG.integers(1, 4)), int(RNG.integers(1, 4)), int(RNG.integers(1, 3)), int(RNG.integers(1, 3))
    padding = padding_name()
    if out_extent(h, kh, sh, 1, padding) < 1 or out_extent(w, kw, sw, 1, padding) < 1:
        padding = "same"
    act = list(ACTIVATIONS)[RNG.integers(0, 3)]
    inp = act_tensor((1, h, w, c))
    out = {**act_tensor((1, out_extent(h, kh, sh, 1, padding), out_extent(w, kw, sw, 1, padding), c)), "scales": inp["scales"], "zero_points": inp["zero_points"]}

    options = pool_options(padding, kh, kw, sh, sw, act)

    opcode = tflite.BuiltinOperator.AVERAGE_POOL_2D if kind == "avg_pool" else tflite.BuiltinOperator.MAX_POOL_2D
    model = build_model(opcode, tflite.BuiltinOptions.Pool2DOptions, options, [inp, out], [0], [1])
    x = i8(inp["shape"])
    return {"op": kind, "input_shape": inp["shape"], "output_shape": out["shape"], "kernel": [kh, kw], "stride": [sh, sw], "padding": padding,
            "activation": act, "scale": inp["scales"][0], "zero_point": inp["zero_points"][0],
            "input": x.ravel().tolist(), "output": run(model, [x]).ravel().tolist()}


def add_case():
    shape = [1, int(RNG.integers(1, 6)), int(RNG.integers(1, 6)), int(RNG.integers(1, 9))]
    act = list(ACTIVATIONS)[RNG.integers(0, 3)]
    a, b_, out = act_tensor(shape), act_tensor(shape), act_tensor(shape)

    def options(b):
        tflite.AddOptionsStart(b)
        tflite.AddOptionsAddFusedActivationFunction(b, ACTIVATIONS[act])
        return tflite.AddOptionsEnd(b)

    model = build_model(tflite.BuiltinOperator.ADD, tflite.BuiltinOptions.AddOptions, options, [a, b_, out], [0, 1], [2])
    x, y = i8(shape), i8(shape)
    return {"op": "add", "shape": shape, "activation": act,
            "a_scale": a["scales"][0], "a_zero_point": a["zero_points"][0], "b_scale": b_["scales"][0], "b_zero_point": b_["zero_points"][0],
            "output_scale": out["scales"][0], "output_zero_point": out["zero_points"][0],
            "a": x.ravel().tolist(), "b": y.ravel().tolist(), "output": run(model, [x, y]).ravel().tolist()}


def softmax_case():
    rows, depth = int(RNG.integers(1, 4)), int(RNG.integers(2, 40))
    beta = float(np.float32(RNG.choice([1.0, 1.0, 0.5, 2.0])))
    inp = act_tensor((rows, depth))
    out = {"shape": [rows, depth], "dtype": "int8", "scales": [1.0 / 256], "zero_points": [-128]}

    def options(b):
        tflite.SoftmaxOptionsStart(b)
        tflite.SoftmaxOptionsAddBeta(b, beta)
        return tflite.SoftmaxOptionsEnd(b)

    model = build_model(tflite.BuiltinOperator.SOFTMAX, tflite.BuiltinOptions.SoftmaxOptions, options, [inp, out], [0], [1])
    x = i8(inp["shape"])
    return {"op": "softmax", "rows": rows, "depth": depth, "beta": beta, "input_scale": inp["scales"][0],
            "input": x.ravel().tolist(), "output": run(model, [x]).ravel().tolist()}


def data_tensor(shape, dtype, s=None, zp=None):
    """An activation of any type: int8 or int16 with its quantization, or float32."""
    if dtype == "float32":
        return {"shape": list(shape), "dtype": "float32", "scales": [], "zero_points": []}
    if dtype == "int16":
        return {"shape": list(shape), "dtype": "int16", "scales": [s or scale() / 100], "zero_points": [0]}
    if dtype == "uint8":
        return u8_tensor(shape, s, zp)
    return act_tensor(shape, s, zp)


def same_quant(t, shape):
    """A tensor of `shape` quantized as `t` (TFLite wants PAD's and TRANSPOSE's equal)."""
    if t["dtype"] in ("float32", "int16", "uint8"):
        return {**t, "shape": list(shape)}
    return act_tensor(shape, t["scales"][0], t["zero_points"][0])


def random_data(shape, dtype):
    if dtype == "float32":
        return RNG.standard_normal(size=shape).astype(np.float32)
    if dtype == "int16":
        return RNG.integers(-32768, 32768, size=shape, dtype=np.int16)
    if dtype == "uint8":
        return u8(shape)
    return i8(shape)


RANK5 = False  # set for the rank-5 cases: random shapes are then [1, a, b, c, d]


def random_shape():
    if RANK5:
        return [1] + [int(RNG.integers(1, 6)) for _ in range(4)]
    rank = int(RNG.integers(1, 5))
    return [int(RNG.integers(1, 6)) for _ in range(rank)]


def model_case(op, opcode, tensors, op_inputs, data_inputs, options_type=0, write_options=None):
    """A whole one-operator model for the harness to import: its bytes, its
    inputs and LiteRT's output, each as hex of its little-endian bytes."""
    model = build_model(opcode, options_type, write_options, tensors, op_inputs, [len(tensors) - 1])
    y = run(model, data_inputs)
    return {"op": op, "dtype": tensors[0]["dtype"], "model": model.hex(),
            "inputs": [np.ascontiguousarray(x).tobytes().hex() for x in data_inputs],
            "output": np.ascontiguousarray(y).tobytes().hex()}


def int32_const(values, shape):
    return {"shape": list(shape), "dtype": "int32", "scales": [], "zero_points": [], "data": np.array(values, dtype=np.int32)}


def pad_case(dtype, v2):
    shape = random_shape()
    pads = RNG.integers(0, 3, size=(len(shape), 2)).astype(np.int32)
    if len(shape) == 5:
        pads[0] = 0  # a rank-5 tensor keeps its unit first axis
    inp = data_tensor(shape, dtype)
    tensors = [inp, int32_const(pads, pads.shape)]
    if v2:
        tensors.append({**same_quant(inp, []), "data": random_data([], dtype)})
    tensors.append(same_quant(inp, [d + int(p.sum()) for d, p in zip(shape, pads)]))
    opcode = tflite.BuiltinOperator.PADV2 if v2 else tflite.BuiltinOperator.PAD
    return model_case("padv2" if v2 else "pad", opcode, tensors, list(range(len(tensors) - 1)), [random_data(shape, dtype)])


def transpose_case(dtype):
    shape = random_shape()
    perm = RNG.permutation(len(shape))
    if len(shape) == 5:
        perm = np.concatenate([[0], 1 + RNG.permutation(4)])  # the unit first axis stays first
    inp = data_tensor(shape, dtype)
    tensors = [inp, int32_const(perm, [len(shape)]), same_quant(inp, [shape[k] for k in perm])]
    return model_case("transpose", tflite.BuiltinOperator.TRANSPOSE, tensors, [0, 1], [random_data(shape, dtype)])


def mean_case(dtype):
    shape = random_shape()
    if RNG.random() < 0.4 and len(shape) == 4:
        axes = [1, 2]  # the global average pool of image models
    else:
        count = int(RNG.integers(1, len(shape) + 1))
        axes = sorted(int(a) for a in RNG.choice(len(shape), size=count, replace=False))
    if RNG.random() < 0.3:
        axes = [a - len(shape) for a in axes]  # negative axes count from the end
    keep = bool(RNG.integers(0, 2))
    resolved = {a % len(shape) for a in axes}
    if keep:
        out_shape = [1 if k in resolved else d for k, d in enumerate(shape)]
    else:
        out_shape = [d for k, d in enumerate(shape) if k not in resolved]
    tensors = [data_tensor(shape, dtype), int32_const(axes, [len(axes)]), data_tensor(out_shape, dtype)]

    def options(b):
        tflite.ReducerOptionsStart(b)
        tflite.ReducerOptionsAddKeepDims(b, keep)
        return tflite.ReducerOptionsEnd(b)

    return model_case("mean", tflite.BuiltinOperator.MEAN, tensors, [0, 1], [random_data(shape, dtype)],
                      tflite.BuiltinOptions.ReducerOptions, options)


def hybrid_dense_case():
    """FULLY_CONNECTED with int8 weights and float activations (dynamic range)."""
    batch = int(RNG.integers(1, 4))
    k = int(RNG.choice([int(RNG.integers(1, 40)), int(RNG.integers(250, 600))]))
    n = int(RNG.choice([int(RNG.integers(1, 20)), int(RNG.integers(250, 300))]))
    act = list(ACTIVATIONS)[RNG.integers(0, 3)]
    w = RNG.integers(-127, 128, size=(n, k), dtype=np.int8)
    tensors = [data_tensor([batch, k], "float32"),
               {"shape": [n, k], "dtype": "int8", "scales": [scale() / 50], "zero_points": [0], "data": w}]
    if RNG.random() < 0.7:
        tensors.append({**data_tensor([n], "float32"), "data": RNG.standard_normal(n).astype(np.float32)})
    tensors.append(data_tensor([batch, n], "float32"))
    x = random_data([batch, k], "float32")
    roll = RNG.random()
    if roll < 0.15:
        x[:] = 0.0  # the whole input zero: TFLite skips the products
    elif roll < 0.3:
        x[0] = 0.0  # one row zero: its scale is 1, its products 0

    def options(b):
        tflite.FullyConnectedOptionsStart(b)
        tflite.FullyConnectedOptionsAddFusedActivationFunction(b, ACTIVATIONS[act])
        return tflite.FullyConnectedOptionsEnd(b)

    inputs = [0, 1, 2] if len(tensors) == 4 else [0, 1, -1]
    model = build_model(tflite.BuiltinOperator.FULLY_CONNECTED, tflite.BuiltinOptions.FullyConnectedOptions, options,
                        tensors, inputs, [len(tensors) - 1])
    return {"op": "hybrid_fully_connected", "dtype": "float32", "model": model.hex(), "inputs": [x.tobytes().hex()],
            "output": np.ascontiguousarray(run(model, [x])).tobytes().hex()}


ELEMENTWISE = {"relu": "RELU", "relu6": "RELU6", "relu_n1_to_1": "RELU_N1_TO_1", "relu_0_to_1": "RELU_0_TO_1",
               "leaky_relu": "LEAKY_RELU", "logistic": "LOGISTIC", "tanh": "TANH"}
FIXED_OUTPUT = {"logistic": (1.0 / 256, -128), "tanh": (1.0 / 128, 0)}


def elementwise_case(op, dtype):
    """A standalone activation over a random shape; int8 inputs span all 256 values."""
    shape = random_shape()
    inp = data_tensor(shape, dtype)
    if dtype in ("int8", "uint8") and op in FIXED_OUTPUT:
        s_out, zp_out = FIXED_OUTPUT[op]
        out = data_tensor(shape, dtype, s_out, zp_out + (128 if dtype == "uint8" else 0))
    elif dtype == "int16":
        # An output scale near the input's, so that values span the range, not only its ends.
        out = data_tensor(shape, dtype, float(np.float32(inp["scales"][0] * RNG.uniform(0.3, 3))))
    elif dtype in ("int8", "uint8") and op == "hard_swish":
        # LiteRT needs input_scale / 128 / output_scale below one.
        out = data_tensor(shape, dtype, float(np.float32(inp["scales"][0] * RNG.uniform(0.3, 3))))
    else:
        out = data_tensor(shape, dtype)
    x = random_data(shape, dtype)
    if dtype == "int8":
        x = np.resize(np.arange(-128, 128, dtype=np.int8)[RNG.permutation(256)], shape).astype(np.int8)
    if dtype == "uint8":
        x = np.resize(np.arange(0, 256, dtype=np.uint8)[RNG.permutation(256)], shape).astype(np.uint8)
    options_type, write_options = 0, None
    if op == "leaky_relu":
        alpha = float(np.float32(RNG.choice([0.01, 0.1, 0.2, 0.3, 1.5, -0.5])))

        def write_options(b):
            tflite.LeakyReluOptionsStart(b)
            tflite.LeakyReluOptionsAddAlpha(b, alpha)
            return tflite.LeakyReluOptionsEnd(b)

        options_type = tflite.BuiltinOptions.LeakyReluOptions
    opcode = getattr(tflite.BuiltinOperator, ELEMENTWISE[op])
    return model_case(op, opcode, [inp, out], [0], [x], options_type, write_options)


def squeeze_case(dtype, expand):
    """SQUEEZE of the unit axes of a shape, or EXPAND_DIMS at a random axis."""
    shape = [int(RNG.choice([1, int(RNG.integers(2, 6))])) for _ in range(int(RNG.integers(2, 5)))]
    inp = data_tensor(shape, dtype)
    if expand:
        axis = int(RNG.integers(-len(shape) - 1, len(shape) + 1))
        at = axis if axis >= 0 else axis + len(shape) + 1
        out_shape = shape[:at] + [1] + shape[at:]
        if len(out_shape) > 4:
            return squeeze_case(dtype, False)
        tensors = [inp, int32_const([axis], []), same_quant(inp, out_shape)]
        return model_case("expand_dims", tflite.BuiltinOperator.EXPAND_DIMS, tensors, [0, 1], [random_data(shape, dtype)])
    out_shape = [d for d in shape if d != 1] or [1]
    tensors = [inp, same_quant(inp, out_shape)]
    return model_case("squeeze", tflite.BuiltinOperator.SQUEEZE, tensors, [0], [random_data(shape, dtype)])


BINARY = {"add": ("ADD", "AddOptions"), "sub": ("SUB", "SubOptions"), "mul": ("MUL", "MulOptions"),
          "maximum": ("MAXIMUM", None), "minimum": ("MINIMUM", None)}


def binary_options(op):
    """A binary operator's name, options type and options writer, with a
    random fused activation for those that have one."""
    name, options = BINARY[op]
    act = list(ACTIVATIONS)[RNG.integers(0, 3)]
    if not options:
        return name, 0, None

    def write_options(builder):
        getattr(tflite, options + "Start")(builder)
        getattr(tflite, options + "AddFusedActivationFunction")(builder, ACTIVATIONS[act])
        return getattr(tflite, options + "End")(builder)

    return name, getattr(tflite.BuiltinOptions, options), write_options


def binary_case(op, dtype):
    """A binary operator over a random shape, an operand often broadcast (a
    lower rank, or extents of 1). bench's models have one input, so both
    operands come from it: the full-shaped one is the input itself, a
    broadcast one is its MEAN over the broadcast axes (then a RESHAPE when
    its rank is lower)."""
    full = random_shape()
    b_shape = [d if RNG.random() < 0.5 else 1 for d in full]
    if RNG.random() < 0.4:
        b_shape = b_shape[int(RNG.integers(0, len(b_shape))):] or [1]
    a_shape = list(full) if RNG.random() < 0.85 else [1] * len(full)
    x = data_tensor(full, dtype)
    raw = op in ("maximum", "minimum")
    tensors, operators = [x], []

    def operand(shape):
        if list(shape) == list(full):
            return 0
        padded = [1] * (len(full) - len(shape)) + list(shape)
        axes = [k for k, (p, d) in enumerate(zip(padded, full)) if p != d]
        tensors.append(int32_const(axes, [len(axes)]))
        tensors.append(same_quant(x, padded) if raw else data_tensor(padded, dtype))
        operators.append((tflite.BuiltinOperator.MEAN, tflite.BuiltinOptions.ReducerOptions,
                          lambda builder: (tflite.ReducerOptionsStart(builder), tflite.ReducerOptionsAddKeepDims(builder, True),
                                           tflite.ReducerOptionsEnd(builder))[-1],
                          [0, len(tensors) - 2], [len(tensors) - 1]))
        if len(padded) == len(shape):
            return len(tensors) - 1
        mean = len(tensors) - 1
        tensors.append(int32_const(list(shape), [len(shape)]))
        tensors.append({**tensors[mean], "shape": list(shape)})
        operators.append((tflite.BuiltinOperator.RESHAPE, 0, None, [mean, len(tensors) - 2], [len(tensors) - 1]))
        return len(tensors) - 1

    ia, ib = operand(a_shape), operand(b_shape)
    if RNG.random() < 0.3:
        ia, ib = ib, ia
    out_shape = list(np.broadcast_shapes(tuple(tensors[ia]["shape"]), tuple(tensors[ib]["shape"])))
    tensors.append(same_quant(x, out_shape) if raw else data_tensor(out_shape, dtype))
    name, options_type, write_options = binary_options(op)
    out = len(tensors) - 1
    operators.append((getattr(tflite.BuiltinOperator, name), options_type, write_options, [ia, ib], [out]))
    model = build_graph(tensors, operators, [0], [out])
    data = random_data(full, dtype)
    return {"op": op, "dtype": dtype, "model": model.hex(), "inputs": [data.tobytes().hex()],
            "output": np.ascontiguousarray(run(model, [data])).tobytes().hex()}


def slice_case(dtype, strided):
    """SLICE with begin and size (-1 at times), or STRIDED_SLICE with random
    begins, ends, strides of either sign, negative indices and masks."""
    shape = [int(RNG.integers(1, 7)) for _ in range(int(RNG.integers(1, 5)))]
    if RANK5:
        shape = random_shape()
    rank = len(shape)
    inp = data_tensor(shape, dtype)
    x = random_data(shape, dtype)
    if not strided:
        begin = [int(RNG.integers(0, d)) for d in shape]
        size = [int(RNG.integers(1, d - b + 1)) if RNG.random() < 0.8 else -1 for d, b in zip(shape, begin)]
        out_shape = [d - b if z == -1 else z for d, b, z in zip(shape, begin, size)]
        tensors = [inp, int32_const(begin, [rank]), int32_const(size, [rank]), same_quant(inp, out_shape)]
        return model_case("slice", tflite.BuiltinOperator.SLICE, tensors, [0, 1, 2], [x])
    for _ in range(100):
        strides = [int(RNG.choice([1, 1, 2, 3, -1, -2])) for _ in shape]
        begin = [int(RNG.integers(-d, d)) for d in shape]
        end = [int(RNG.integers(-d - 1, d + 2)) for d in shape]
        masks = [int(RNG.integers(0, 1 << rank)) if RNG.random() < 0.4 else 0 for _ in range(2)]
        shrink = int(RNG.integers(0, 1 << rank)) if RNG.random() < 0.3 else 0
        # LiteRT leaves the output unwritten for a shrunk axis with a negative
        # stride (its loop runs from start to start + 1 backwards): not a case to copy.
        strides = [1 if shrink >> k & 1 else st for k, st in enumerate(strides)]
        # The output shape as TensorFlow defines it (numpy slicing), to declare it.
        idx = []
        for k in range(rank):
            if shrink >> k & 1:
                idx.append(begin[k])
            else:
                idx.append(slice(None if masks[0] >> k & 1 else begin[k], None if masks[1] >> k & 1 else end[k], strides[k]))
        expected = x[tuple(idx)]
        if expected.size == 0:
            continue
        tensors = [inp, int32_const(begin, [rank]), int32_const(end, [rank]), int32_const(strides, [rank]),
                   same_quant(inp, list(expected.shape))]

        def options(b):
            tflite.StridedSliceOptionsStart(b)
            tflite.StridedSliceOptionsAddBeginMask(b, masks[0])
            tflite.StridedSliceOptionsAddEndMask(b, masks[1])
            tflite.StridedSliceOptionsAddShrinkAxisMask(b, shrink)
            return tflite.StridedSliceOptionsEnd(b)

        try:
            return model_case("strided_slice", tflite.BuiltinOperator.STRIDED_SLICE, tensors, [0, 1, 2, 3], [x],
                              tflite.BuiltinOptions.StridedSliceOptions, options)
        except (ValueError, RuntimeError):
            continue  # LiteRT's shape differs from numpy's for this mask mix: draw again
    raise SystemExit("no strided slice drawn")


def graph_case(op, dtype, tensors, operators, out):
    """A multi-operator model of one input (tensor 0) and one output."""
    model = build_graph(tensors, operators, [0], [out])
    x = random_data(tensors[0]["shape"], dtype)
    return {"op": op, "dtype": dtype, "model": model.hex(), "inputs": [x.tobytes().hex()],
            "output": np.ascontiguousarray(run(model, [x])).tobytes().hex()}


def axis_options(start, add_axis, add_other, end):
    def write(b, axis):
        start(b)
        add_axis(b, axis)
        if add_other:
            add_other(b)
        return end(b)
    return write


def split_case(dtype, kind):
    """SPLIT, SPLIT_V or UNPACK of the input, the parts joined again in
    reverse order (CONCATENATION, or PACK after UNPACK) into one output."""
    shape = [int(RNG.integers(1, 7)) for _ in range(int(RNG.integers(1, 4 if kind == "unpack" else 5)))]
    if RANK5:
        shape = random_shape()
    axis = int(RNG.integers(1 if RANK5 else 0, len(shape)))
    d = shape[axis]
    x = data_tensor(shape, dtype)
    tensors, operators = [x], []
    if kind == "split":
        num = int(RNG.choice([k for k in range(1, d + 1) if d % k == 0]))
        sizes = [d // num] * num
        tensors.append(int32_const([axis - len(shape) if RNG.random() < 0.3 else axis], []))
        ins = [len(tensors) - 1, 0]
        opts = (tflite.BuiltinOptions.SplitOptions,
                lambda b: (tflite.SplitOptionsStart(b), tflite.SplitOptionsAddNumSplits(b, num), tflite.SplitOptionsEnd(b))[-1])
        opcode = tflite.BuiltinOperator.SPLIT
    elif kind == "split_v":
        cuts = sorted(RNG.choice(range(1, d), size=int(RNG.integers(0, d)), replace=False).tolist()) if d > 1 else []
        sizes = [b - a for a, b in zip([0] + cuts, cuts + [d])]
        given = list(sizes)
        if RNG.random() < 0.5:
            given[int(RNG.integers(0, len(given)))] = -1
        tensors += [int32_const(given, [len(given)]), int32_const([axis], [])]
        ins = [0, 1, 2]
        n = len(sizes)
        opts = (tflite.BuiltinOptions.SplitVOptions,
                lambda b: (tflite.SplitVOptionsStart(b), tflite.SplitVOptionsAddNumSplits(b, n), tflite.SplitVOptionsEnd(b))[-1])
        opcode = tflite.BuiltinOperator.SPLIT_V
    else:
        sizes = [1] * d
        opts = (tflite.BuiltinOptions.UnpackOptions,
                lambda b: (tflite.UnpackOptionsStart(b), tflite.UnpackOptionsAddNum(b, d), tflite.UnpackOptionsAddAxis(b, axis),
                           tflite.UnpackOptionsEnd(b))[-1])
        ins = [0]
        opcode = tflite.BuiltinOperator.UNPACK
    parts = []
    for size in sizes:
        part = list(shape)
        if kind == "unpack":
            part.pop(axis)
        else:
            part[axis] = size
        tensors.append(same_quant(x, part))
        parts.append(len(tensors) - 1)
    operators.append((opcode, opts[0], opts[1], ins, parts))
    tensors.append(same_quant(x, shape))
    out = len(tensors) - 1
    if kind == "unpack":
        join = (tflite.BuiltinOperator.PACK, tflite.BuiltinOptions.PackOptions,
                lambda b: (tflite.PackOptionsStart(b), tflite.PackOptionsAddValuesCount(b, d), tflite.PackOptionsAddAxis(b, axis),
                           tflite.PackOptionsEnd(b))[-1])
    else:
        join = (tflite.BuiltinOperator.CONCATENATION, tflite.BuiltinOptions.ConcatenationOptions,
                lambda b: (tflite.ConcatenationOptionsStart(b), tflite.ConcatenationOptionsAddAxis(b, axis),
                           tflite.ConcatenationOptionsEnd(b))[-1])
    operators.append((*join, parts[::-1], [out]))
    return graph_case(kind, dtype, tensors, operators, out)


def concat_case(dtype):
    """CONCATENATION of the input, a slice of it and the input again, or
    PACK of the input with itself, along a random (maybe negative) axis."""
    pack = RNG.random() < 0.4
    shape = [int(RNG.integers(1, 6)) for _ in range(int(RNG.integers(1, 4 if pack else 5)))]
    if RANK5:  # PACK of a rank-4 tensor makes a rank-5 one
        shape = [1] + random_shape()[2:] if pack else random_shape()
    x = data_tensor(shape, dtype)
    tensors, operators = [x], []
    if pack:
        axis = int(RNG.integers(1 if RANK5 else 0, len(shape) + 1))
        out_shape = shape[:axis] + [2] + shape[axis:]
        tensors.append(same_quant(x, out_shape))
        operators.append((tflite.BuiltinOperator.PACK, tflite.BuiltinOptions.PackOptions,
                          lambda b: (tflite.PackOptionsStart(b), tflite.PackOptionsAddValuesCount(b, 2),
                                     tflite.PackOptionsAddAxis(b, axis - len(out_shape) if RNG.random() < 0.3 else axis),
                                     tflite.PackOptionsEnd(b))[-1], [0, 0], [1]))
        return graph_case("pack", dtype, tensors, operators, 1)
    axis = int(RNG.integers(1 if RANK5 else 0, len(shape)))
    size = [d if k != axis else int(RNG.integers(1, d + 1)) for k, d in enumerate(shape)]
    tensors += [int32_const([0] * len(shape), [len(shape)]), int32_const(size, [len(shape)]), same_quant(x, size)]
    operators.append((tflite.BuiltinOperator.SLICE, 0, None, [0, 1, 2], [3]))
    out_shape = [d if k != axis else 2 * d + size[axis] for k, d in enumerate(shape)]
    tensors.append(same_quant(x, out_shape))
    neg = axis - len(shape) if RNG.random() < 0.3 else axis
    operators.append((tflite.BuiltinOperator.CONCATENATION, tflite.BuiltinOptions.ConcatenationOptions,
                      lambda b: (tflite.ConcatenationOptionsStart(b), tflite.ConcatenationOptionsAddAxis(b, neg),
                                 tflite.ConcatenationOptionsEnd(b))[-1], [0, 3, 0], [4]))
    return graph_case("concatenation", dtype, tensors, operators, 4)


def gather_case(dtype):
    """GATHER along a random axis with constant indices (1-D or 2-D, repeats allowed)."""
    while True:
        shape = [int(RNG.integers(1, 6)) for _ in range(int(RNG.integers(1, 4)))]
        axis = int(RNG.integers(0, len(shape)))
        idx_shape = [int(RNG.integers(1, 5))] if RNG.random() < 0.7 else [2, int(RNG.integers(1, 3))]
        out_shape = shape[:axis] + idx_shape + shape[axis + 1:]
        if len(out_shape) <= 4:
            break
    indices = RNG.integers(0, shape[axis], size=idx_shape).astype(np.int32)
    x = data_tensor(shape, dtype)
    tensors = [x, int32_const(indices, idx_shape), same_quant(x, out_shape)]
    neg = axis - len(shape) if RNG.random() < 0.3 else axis

    def options(b):
        tflite.GatherOptionsStart(b)
        tflite.GatherOptionsAddAxis(b, neg)
        return tflite.GatherOptionsEnd(b)

    return model_case("gather", tflite.BuiltinOperator.GATHER, tensors, [0, 1], [random_data(shape, dtype)],
                      tflite.BuiltinOptions.GatherOptions, options)


def resize_nearest_case(dtype):
    """RESIZE_NEAREST_NEIGHBOR up or down, with align_corners or half_pixel_centers."""
    shape = [1, int(RNG.integers(1, 7)), int(RNG.integers(1, 7)), int(RNG.integers(1, 4))]
    size = [int(RNG.integers(1, 13)), int(RNG.integers(1, 13))]
    align, half = [(False, False), (True, False), (False, True)][RNG.integers(0, 3)]
    x = data_tensor(shape, dtype)
    tensors = [x, int32_const(size, [2]), same_quant(x, [1, size[0], size[1], shape[3]])]

    def options(b):
        tflite.ResizeNearestNeighborOptionsStart(b)
        tflite.ResizeNearestNeighborOptionsAddAlignCorners(b, align)
        tflite.ResizeNearestNeighborOptionsAddHalfPixelCenters(b, half)
        return tflite.ResizeNearestNeighborOptionsEnd(b)

    return model_case("resize_nearest_neighbor", tflite.BuiltinOperator.RESIZE_NEAREST_NEIGHBOR, tensors, [0, 1],
                      [random_data(shape, dtype)], tflite.BuiltinOptions.ResizeNearestNeighborOptions, options)


def resize_bilinear_case(dtype):
    """RESIZE_BILINEAR up or down, plain, with align_corners or with half_pixel_centers."""
    shape = [int(RNG.integers(1, 3)), int(RNG.integers(1, 7)), int(RNG.integers(1, 7)), int(RNG.integers(1, 4))]
    size = [int(RNG.integers(1, 13)), int(RNG.integers(1, 13))]
    align, half = [(False, False), (True, False), (False, True)][RNG.integers(0, 3)]
    x = data_tensor(shape, dtype)
    tensors = [x, int32_const(size, [2]), same_quant(x, [shape[0], size[0], size[1], shape[3]])]

    def options(b):
        tflite.ResizeBilinearOptionsStart(b)
        tflite.ResizeBilinearOptionsAddAlignCorners(b, align)
        tflite.ResizeBilinearOptionsAddHalfPixelCenters(b, half)
        return tflite.ResizeBilinearOptionsEnd(b)

    return model_case("resize_bilinear", tflite.BuiltinOperator.RESIZE_BILINEAR, tensors, [0, 1],
                      [random_data(shape, dtype)], tflite.BuiltinOptions.ResizeBilinearOptions, options)


def run_all(model, inputs):
    """Every output of a model, flattened one after another (as bench packs them)."""
    interp = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    for detail, x in zip(interp.get_input_details(), inputs):
        interp.set_tensor(detail["index"], x)
    interp.invoke()
    return np.concatenate([interp.get_tensor(d["index"]).ravel() for d in interp.get_output_details()])


def io_case(dtype):
    """Several model inputs (a broadcast MUL of two) or several model
    outputs (the parts of a SPLIT): bench packs them one after another."""
    shape = [int(RNG.integers(1, 5)) for _ in range(int(RNG.integers(1, 5)))]
    x = data_tensor(shape, dtype)
    if RNG.random() < 0.5:
        b_shape = [d if RNG.random() < 0.5 else 1 for d in shape]
        tensors = [x, data_tensor(b_shape, dtype), data_tensor(shape, dtype)]
        model = build_graph(tensors, [(tflite.BuiltinOperator.MUL, 0, None, [0, 1], [2])], [0, 1], [2])
        data = [random_data(shape, dtype), random_data(b_shape, dtype)]
        op = "two_inputs"
    else:
        axis = int(RNG.integers(0, len(shape)))
        shape[axis] = 2 * shape[axis]
        x = data_tensor(shape, dtype)
        half = [d // 2 if k == axis else d for k, d in enumerate(shape)]
        tensors = [int32_const([axis], []), x, same_quant(x, half), same_quant(x, half)]
        opts = lambda b: (tflite.SplitOptionsStart(b), tflite.SplitOptionsAddNumSplits(b, 2), tflite.SplitOptionsEnd(b))[-1]
        model = build_graph(tensors, [(tflite.BuiltinOperator.SPLIT, tflite.BuiltinOptions.SplitOptions, opts, [0, 1], [2, 3])],
                            [1], [3, 2])
        data = [random_data(shape, dtype)]
        op = "two_outputs"
    return {"op": op, "dtype": dtype, "model": model.hex(), "inputs": [d.tobytes().hex() for d in data],
            "output": run_all(model, data).tobytes().hex()}


def dequantized_weights_case(storage):
    """A float FULLY_CONNECTED or CONV_2D whose weights a DEQUANTIZE makes from
    a constant float16 tensor, or an int8 one (per tensor or per channel)."""
    conv = RNG.random() < 0.5
    if conv:
        shape, oc, k = [1, int(RNG.integers(3, 7)), int(RNG.integers(3, 7)), int(RNG.integers(1, 5))], int(RNG.integers(1, 6)), 3
        w_shape = [oc, k, k, shape[3]]
        out_shape = [1, shape[1], shape[2], oc]
    else:
        shape, oc = [int(RNG.integers(1, 3)), int(RNG.integers(1, 40))], int(RNG.integers(1, 20))
        w_shape = [oc, shape[1]]
        out_shape = [shape[0], oc]
    w = RNG.standard_normal(size=w_shape).astype(np.float32)
    if storage == "float16":
        stored = {"shape": w_shape, "dtype": "float16", "scales": [], "zero_points": [], "data": w.astype(np.float16)}
    else:
        per_channel = RNG.random() < 0.5
        scales = [scale() / 50 for _ in range(oc)] if per_channel else [scale() / 50]
        stored = {"shape": w_shape, "dtype": "int8", "scales": scales, "zero_points": [0] * len(scales), "quantized_dimension": 0,
                  "data": RNG.integers(-127, 128, size=w_shape, dtype=np.int8)}
    tensors = [data_tensor(shape, "float32"), stored, data_tensor(w_shape, "float32"),
               {**data_tensor([oc], "float32"), "data": RNG.standard_normal(oc).astype(np.float32)}, data_tensor(out_shape, "float32")]
    if conv:
        def options(b):
            tflite.Conv2DOptionsStart(b)
            tflite.Conv2DOptionsAddPadding(b, tflite.Padding.SAME)
            tflite.Conv2DOptionsAddStrideW(b, 1)
            tflite.Conv2DOptionsAddStrideH(b, 1)
            return tflite.Conv2DOptionsEnd(b)
        layer = (tflite.BuiltinOperator.CONV_2D, tflite.BuiltinOptions.Conv2DOptions, options, [0, 2, 3], [4])
    else:
        layer = (tflite.BuiltinOperator.FULLY_CONNECTED, 0, None, [0, 2, 3], [4])
    operators = [(tflite.BuiltinOperator.DEQUANTIZE, 0, None, [1], [2]), layer]
    return graph_case("dequantized_" + storage, "float32", tensors, operators, 4)


def u8_tensor(shape, s=None, zp=None):
    return {"shape": list(shape), "dtype": "uint8", "scales": [s or scale()], "zero_points": [int(RNG.integers(0, 256)) if zp is None else zp]}


def u8(shape):
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def uint8_weighted_case(op):
    """A legacy uint8 CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED: uint8
    activations and weights, each with a zero point, per-tensor scales."""
    act = list(ACTIVATIONS)[RNG.integers(0, 3)]
    if op == "fully_connected":
        batch, k, n = int(RNG.integers(1, 3)), int(RNG.integers(1, 120)), int(RNG.integers(1, 20))
        in_shape, w_shape, out_shape = [batch, k], [n, k], [batch, n]
        opcode, otype = tflite.BuiltinOperator.FULLY_CONNECTED, tflite.BuiltinOptions.FullyConnectedOptions

        def options(b):
            tflite.FullyConnectedOptionsStart(b)
            tflite.FullyConnectedOptionsAddFusedActivationFunction(b, ACTIVATIONS[act])
            return tflite.FullyConnectedOptionsEnd(b)
    else:
        depthwise = op == "depthwise_conv2d"
        h, w, ic = int(RNG.integers(3, 9)), int(RNG.integers(3, 9)), int(RNG.integers(1, 7))
        m = int(RNG.integers(1, 3)) if depthwise else 1
        n = ic * m if depthwise else int(RNG.integers(1, 7))
        kh, kw, sh, sw = int(RNG.integers(1, 4)), int(RNG.integers(1, 4)), int(RNG.integers(1, 3)), int(RNG.integers(1, 3))
        padding = padding_name()
        if out_extent(h, kh, sh, 1, padding) < 1 or out_extent(w, kw, sw, 1, padding) < 1:
            padding = "same"
        pad = tflite.Padding.SAME if padding == "same" else tflite.Padding.VALID
        in_shape = [1, h, w, ic]
        w_shape = [1, kh, kw, n] if depthwise else [n, kh, kw, ic]
        out_shape = [1, out_extent(h, kh, sh, 1, padding), out_extent(w, kw, sw, 1, padding), n]
        opcode = tflite.BuiltinOperator.DEPTHWISE_CONV_2D if depthwise else tflite.BuiltinOperator.CONV_2D
        otype = tflite.BuiltinOptions.DepthwiseConv2DOptions if depthwise else tflite.BuiltinOptions.Conv2DOptions
        options = conv_options(depthwise, pad, (sh, sw), act, m)
    inp, out = u8_tensor(in_shape), u8_tensor(out_shape)
    fs = scale() / 50
    weights = {**u8_tensor(w_shape, fs), "data": u8(w_shape)}
    bias = {"shape": [n], "dtype": "int32", "scales": [inp["scales"][0] * fs], "zero_points": [0],
            "data": RNG.integers(-20000, 20000, size=(n,), dtype=np.int32)}
    return model_case(op, opcode, [inp, weights, bias, out], [0, 1, 2], [u8(in_shape)], otype, options)


def uint8_pool_case(kind):
    """A uint8 AVERAGE_POOL_2D (which rounds halves up) or MAX_POOL_2D."""
    return typed_pool_case(kind, u8_tensor, u8)


def typed_pool_case(kind, tensor, data):
    """AVERAGE_POOL_2D or MAX_POOL_2D on the type of `tensor(shape)` and
    `data(shape)` (uint8 or int16), without a fused activation."""
    h, w, c = int(RNG.integers(2, 9)), int(RNG.integers(2, 9)), int(RNG.integers(1, 9))
    kh, kw, sh, sw = int(RNG.integers(1, 4)), int(RNG.integers(1, 4)), int(RNG.integers(1, 3)), int(RNG.integers(1, 3))
    padding = padding_name()
    if out_extent(h, kh, sh, 1, padding) < 1 or out_extent(w, kw, sw, 1, padding) < 1:
        padding = "same"
    inp = tensor([1, h, w, c])
    out = {**inp, "shape": [1, out_extent(h, kh, sh, 1, padding), out_extent(w, kw, sw, 1, padding), c]}
    options = pool_options(padding, kh, kw, sh, sw)
    opcode = tflite.BuiltinOperator.AVERAGE_POOL_2D if kind == "avg_pool" else tflite.BuiltinOperator.MAX_POOL_2D
    return model_case(kind, opcode, [inp, out], [0], [data(inp["shape"])], tflite.BuiltinOptions.Pool2DOptions, options)


def uint8_softmax_case():
    rows, depth = int(RNG.integers(1, 4)), int(RNG.integers(2, 40))
    inp, out = u8_tensor([rows, depth]), u8_tensor([rows, depth], 1.0 / 256, 0)
    return model_case("softmax", tflite.BuiltinOperator.SOFTMAX, [inp, out], [0], [u8([rows, depth])],
                      tflite.BuiltinOptions.SoftmaxOptions,
                      lambda b: (tflite.SoftmaxOptionsStart(b), tflite.SoftmaxOptionsAddBeta(b, 1.0), tflite.SoftmaxOptionsEnd(b))[-1])


def uint8_add_case():
    """ADD of a uint8 input and its requantization (QUANTIZE uint8 to uint8,
    another scale), so the operands differ in quantization."""
    shape = [int(RNG.integers(1, 5)) for _ in range(int(RNG.integers(2, 5)))]
    act = list(ACTIVATIONS)[RNG.integers(0, 3)]
    tensors = [u8_tensor(shape), u8_tensor(shape), u8_tensor(shape)]
    options = lambda b: (tflite.AddOptionsStart(b), tflite.AddOptionsAddFusedActivationFunction(b, ACTIVATIONS[act]), tflite.AddOptionsEnd(b))[-1]
    operators = [(tflite.BuiltinOperator.QUANTIZE, 0, None, [0], [1]),
                 (tflite.BuiltinOperator.ADD, tflite.BuiltinOptions.AddOptions, options, [0, 1], [2])]
    tensors[0]["data"] = None
    model = build_graph(tensors, operators, [0], [2])
    x = u8(shape)
    return {"op": "add", "dtype": "uint8", "model": model.hex(), "inputs": [x.tobytes().hex()],
            "output": np.ascontiguousarray(run(model, [x])).tobytes().hex()}


def uint8_quantize_case(direction):
    """QUANTIZE between uint8 and int8: the converter's shift of 128 at the
    same scale, or a real requantization; int8 to int8 as well."""
    shape = random_shape()
    src, dst = direction.split("_to_")
    s_in = scale()
    s_out = s_in if RNG.random() < 0.5 else scale()
    tensor = lambda dtype, s: u8_tensor(shape, s) if dtype == "uint8" else act_tensor(shape, s)
    inp, out = tensor(src, s_in), tensor(dst, s_out)
    if s_out == s_in and src != dst:
        out["zero_points"] = [inp["zero_points"][0] + (128 if dst == "uint8" else -128)]
        if not -128 <= out["zero_points"][0] <= 255:
            out["zero_points"] = [0]
    x = u8(shape) if src == "uint8" else i8(shape)
    return model_case("quantize_" + direction, tflite.BuiltinOperator.QUANTIZE, [inp, out], [0], [x])


def uint8_graph_case():
    """A small uint8 network in the shape of the Coral MobileNets: conv,
    depthwise, average pool, reshape, fully connected, softmax."""
    h, w, c, n, k = int(RNG.integers(4, 9)), int(RNG.integers(4, 9)), int(RNG.integers(1, 4)), int(RNG.integers(2, 6)), int(RNG.integers(2, 10))
    fs = lambda: scale() / 50
    def weights(shape, s):
        return {**u8_tensor(shape, s), "data": u8(shape)}
    def bias(count, s_in, s_w):
        return {"shape": [count], "dtype": "int32", "scales": [s_in * s_w], "zero_points": [0],
                "data": RNG.integers(-5000, 5000, size=(count,), dtype=np.int32)}
    x = u8_tensor([1, h, w, c])
    conv_out = u8_tensor([1, h, w, n])
    dw_out = u8_tensor([1, h, w, n])
    pooled = {**dw_out, "shape": [1, 1, 1, n]}
    flat = {**pooled, "shape": [1, n]}
    logits = u8_tensor([1, k])
    probs = u8_tensor([1, k], 1.0 / 256, 0)
    s1, s2, s3 = fs(), fs(), fs()
    tensors = [x, weights([n, 3, 3, c], s1), bias(n, x["scales"][0], s1), conv_out,
               weights([1, 3, 3, n], s2), bias(n, conv_out["scales"][0], s2), dw_out,
               pooled, int32_const([1, n], [2]), flat,
               weights([k, n], s3), bias(k, flat["scales"][0], s3), logits, probs]
    conv_opts = lambda b: (tflite.Conv2DOptionsStart(b), tflite.Conv2DOptionsAddPadding(b, tflite.Padding.SAME),
                           tflite.Conv2DOptionsAddStrideW(b, 1), tflite.Conv2DOptionsAddStrideH(b, 1),
                           tflite.Conv2DOptionsAddFusedActivationFunction(b, ACTIVATIONS["relu6"]), tflite.Conv2DOptionsEnd(b))[-1]
    dw_opts = lambda b: (tflite.DepthwiseConv2DOptionsStart(b), tflite.DepthwiseConv2DOptionsAddPadding(b, tflite.Padding.SAME),
                         tflite.DepthwiseConv2DOptionsAddStrideW(b, 1), tflite.DepthwiseConv2DOptionsAddStrideH(b, 1),
                         tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, 1), tflite.DepthwiseConv2DOptionsEnd(b))[-1]
    pool_opts = lambda b: (tflite.Pool2DOptionsStart(b), tflite.Pool2DOptionsAddPadding(b, tflite.Padding.VALID),
                           tflite.Pool2DOptionsAddStrideW(b, 1), tflite.Pool2DOptionsAddStrideH(b, 1),
                           tflite.Pool2DOptionsAddFilterWidth(b, w), tflite.Pool2DOptionsAddFilterHeight(b, h), tflite.Pool2DOptionsEnd(b))[-1]
    softmax_opts = lambda b: (tflite.SoftmaxOptionsStart(b), tflite.SoftmaxOptionsAddBeta(b, 1.0), tflite.SoftmaxOptionsEnd(b))[-1]
    operators = [(tflite.BuiltinOperator.CONV_2D, tflite.BuiltinOptions.Conv2DOptions, conv_opts, [0, 1, 2], [3]),
                 (tflite.BuiltinOperator.DEPTHWISE_CONV_2D, tflite.BuiltinOptions.DepthwiseConv2DOptions, dw_opts, [3, 4, 5], [6]),
                 (tflite.BuiltinOperator.AVERAGE_POOL_2D, tflite.BuiltinOptions.Pool2DOptions, pool_opts, [6], [7]),
                 (tflite.BuiltinOperator.RESHAPE, 0, None, [7, 8], [9]),
                 (tflite.BuiltinOperator.FULLY_CONNECTED, 0, None, [9, 10, 11], [12]),
                 (tflite.BuiltinOperator.SOFTMAX, tflite.BuiltinOptions.SoftmaxOptions, softmax_opts, [12], [13])]
    model = build_graph(tensors, operators, [0], [13])
    data = u8(x["shape"])
    return {"op": "mobilenet_like", "dtype": "uint8", "model": model.hex(), "inputs": [data.tobytes().hex()],
            "output": np.ascontiguousarray(run(model, [data])).tobytes().hex()}


def grouped_conv_case(dtype):
    """A CONV_2D whose filter has a fraction of its input's channels (groups)."""
    groups, fi, per_group = int(RNG.integers(2, 5)), int(RNG.integers(1, 4)), int(RNG.integers(1, 4))
    h, w, k = int(RNG.integers(3, 8)), int(RNG.integers(3, 8)), int(RNG.integers(1, 4))
    stride = int(RNG.integers(1, 3))
    padding = padding_name()
    if out_extent(h, k, stride, 1, padding) < 1 or out_extent(w, k, stride, 1, padding) < 1:
        padding = "same"
    ic, oc = groups * fi, groups * per_group
    act = list(ACTIVATIONS)[RNG.integers(0, 3)]
    inp = data_tensor([1, h, w, ic], dtype)
    out = data_tensor([1, out_extent(h, k, stride, 1, padding), out_extent(w, k, stride, 1, padding), oc], dtype)
    w_shape = [oc, k, k, fi]
    if dtype == "int8":
        scales = [scale() / 50 for _ in range(oc)]
        weights = {"shape": w_shape, "dtype": "int8", "scales": scales, "zero_points": [0] * oc, "quantized_dimension": 0,
                   "data": RNG.integers(-127, 128, size=w_shape, dtype=np.int8)}
        bias = {"shape": [oc], "dtype": "int32", "scales": [inp["scales"][0] * s for s in scales], "zero_points": [0] * oc,
                "data": RNG.integers(-20000, 20000, size=(oc,), dtype=np.int32)}
    else:
        weights = {**data_tensor(w_shape, "float32"), "data": RNG.standard_normal(size=w_shape).astype(np.float32)}
        bias = {**data_tensor([oc], "float32"), "data": RNG.standard_normal(oc).astype(np.float32)}
    pad = tflite.Padding.SAME if padding == "same" else tflite.Padding.VALID
    return model_case("grouped_conv2d", tflite.BuiltinOperator.CONV_2D, [inp, weights, bias, out], [0, 1, 2],
                      [random_data(inp["shape"], dtype)], tflite.BuiltinOptions.Conv2DOptions,
                      conv_options(False, pad, (stride, stride), act))


def dynamic_flatten_case(dtype):
    """A flatten as converters write it for a dynamic batch: SHAPE, then
    STRIDED_SLICE of the batch, PACK with -1, into RESHAPE's shape input."""
    shape = [1] + [int(RNG.integers(1, 6)) for _ in range(3)]
    x = data_tensor(shape, dtype)
    int32 = lambda dims: {"shape": dims, "dtype": "int32", "scales": [], "zero_points": []}
    tensors = [x, int32([4]), int32_const([0], [1]), int32_const([1], [1]), int32_const([1], [1]), int32([]),
               int32_const([-1], []), int32([2]), same_quant(x, [1, int(np.prod(shape[1:]))])]

    def slice_options(b):
        tflite.StridedSliceOptionsStart(b)
        tflite.StridedSliceOptionsAddShrinkAxisMask(b, 1)
        return tflite.StridedSliceOptionsEnd(b)

    def pack_options(b):
        tflite.PackOptionsStart(b)
        tflite.PackOptionsAddValuesCount(b, 2)
        tflite.PackOptionsAddAxis(b, 0)
        return tflite.PackOptionsEnd(b)

    shape_options = lambda b: (tflite.ShapeOptionsStart(b), tflite.ShapeOptionsAddOutType(b, tflite.TensorType.INT32),
                               tflite.ShapeOptionsEnd(b))[-1]
    operators = [(tflite.BuiltinOperator.SHAPE, tflite.BuiltinOptions.ShapeOptions, shape_options, [0], [1]),
                 (tflite.BuiltinOperator.STRIDED_SLICE, tflite.BuiltinOptions.StridedSliceOptions, slice_options, [1, 2, 3, 4], [5]),
                 (tflite.BuiltinOperator.PACK, tflite.BuiltinOptions.PackOptions, pack_options, [5, 6], [7]),
                 (tflite.BuiltinOperator.RESHAPE, 0, None, [0, 7], [8])]
    return graph_case("dynamic_flatten", dtype, tensors, operators, 8)


def log_softmax_case():
    """int8 LOG_SOFTMAX over the last axis of rank 1 to 4 (output 16/256, zero point 127)."""
    shape = random_shape()
    shape[-1] = int(RNG.integers(2, 40))
    inp = act_tensor(shape, float(np.float32(10 ** RNG.uniform(-2.5, 0))))
    out = act_tensor(shape, 16.0 / 256, 127)
    return model_case("log_softmax", tflite.BuiltinOperator.LOG_SOFTMAX, [inp, out], [0], [i8(shape)])


def float_transcendental_case(op):
    """float32 LOGISTIC, TANH, SOFTMAX (random beta) or LOG_SOFTMAX, whose
    results come from the C library's expf, logf and tanhf under LiteRT.
    Inputs span [-24, 24] and reach the kernels' cut-offs (LOGISTIC's -9 and
    16.6, TANH's 22, expf's underflow) and tiny magnitudes."""
    shape = random_shape()
    if op in ("softmax", "log_softmax"):
        shape[-1] = int(RNG.integers(2, 40))
    spread = float(RNG.choice([0.01, 1.0, 4.0, 24.0]))
    x = (RNG.uniform(-1, 1, size=shape) * spread).astype(np.float32)
    x.flat[:3] = np.array([0.0, -9.5, 16.7], dtype=np.float32)[: x.size]
    tensors = [data_tensor(shape, "float32"), data_tensor(shape, "float32")]
    options_type, write_options = 0, None
    if op == "softmax":
        beta = float(np.float32(RNG.choice([1.0, 0.5, 2.0, 0.1])))
        options_type = tflite.BuiltinOptions.SoftmaxOptions

        def write_options(b):
            tflite.SoftmaxOptionsStart(b)
            tflite.SoftmaxOptionsAddBeta(b, beta)
            return tflite.SoftmaxOptionsEnd(b)
    elif op == "log_softmax":
        options_type = tflite.BuiltinOptions.LogSoftmaxOptions
        write_options = lambda b: (tflite.LogSoftmaxOptionsStart(b), tflite.LogSoftmaxOptionsEnd(b))[-1]
    opcode = getattr(tflite.BuiltinOperator, op.upper())
    return model_case(op, opcode, tensors, [0], [x], options_type, write_options)


def constant_binary_case(op, dtype, first=False):
    """A binary operator whose second operand (or `first` one, as in `1 - x`)
    is a constant of the model (a per-channel scale or offset, or any
    broadcastable shape)."""
    full = random_shape()
    b_shape = [d if RNG.random() < 0.5 else 1 for d in full]
    if RNG.random() < 0.5:
        b_shape = b_shape[int(RNG.integers(0, len(b_shape))):] or [1]
    x = data_tensor(full, dtype)
    raw = op in ("maximum", "minimum")
    constant = {**(same_quant(x, b_shape) if raw else data_tensor(b_shape, dtype)), "data": random_data(b_shape, dtype)}
    out = same_quant(x, full) if raw else data_tensor(full, dtype)
    name, options_type, write_options = binary_options(op)
    case = model_case(op, getattr(tflite.BuiltinOperator, name), [x, constant, out], [1, 0] if first else [0, 1],
                      [random_data(full, dtype)], options_type, write_options)
    return {**case, "op": op + ("_constant_first" if first else "_constant")}


def i16(shape):
    return RNG.integers(-32768, 32768, size=shape, dtype=np.int16)


def i16_tensor(shape, s=None):
    """An int16 activation of TFLite's 16x8 scheme: symmetric, zero point 0."""
    return {"shape": list(shape), "dtype": "int16", "scales": [s or scale() / 100], "zero_points": [0]}


def int16_out_scale(s_in, s_w, depth):
    """An output scale that keeps a random int8 x int16 dot product of
    `depth` terms mostly inside int16 (std about 10^4, with a random factor)."""
    return float(np.float32(s_in * s_w * np.sqrt(depth) * 73 * 18918 / 10000 * 10 ** RNG.uniform(-0.5, 0.5)))


def int16_weighted_case(op):
    """CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED with int16 activations,
    symmetric int8 weights (per channel, or per tensor for a dense layer
    one time in two) and an int64 bias, or none."""
    act = list(ACTIVATIONS)[RNG.integers(0, 3)]
    depthwise = op == "depthwise_conv2d"
    if op == "fully_connected":
        batch, k, n = int(RNG.integers(1, 3)), int(RNG.integers(1, 120)), int(RNG.integers(1, 20))
        in_shape, w_shape, out_shape, depth, qdim = [batch, k], [n, k], [batch, n], k, 0
        per_channel = RNG.random() < 0.5
        opcode, otype = tflite.BuiltinOperator.FULLY_CONNECTED, tflite.BuiltinOptions.FullyConnectedOptions

        def options(b):
            tflite.FullyConnectedOptionsStart(b)
            tflite.FullyConnectedOptionsAddFusedActivationFunction(b, ACTIVATIONS[act])
            tflite.FullyConnectedOptionsAddQuantizedBiasType(b, tflite.TensorType.INT64)
            return tflite.FullyConnectedOptionsEnd(b)
    else:
        h, w, ic = int(RNG.integers(3, 9)), int(RNG.integers(3, 9)), int(RNG.integers(1, 7))
        m = int(RNG.integers(1, 3)) if depthwise else 1
        n = ic * m if depthwise else int(RNG.integers(1, 7))
        kh, kw, sh, sw = int(RNG.integers(1, 4)), int(RNG.integers(1, 4)), int(RNG.integers(1, 3)), int(RNG.integers(1, 3))
        dh, dw = (int(RNG.integers(1, 3)), int(RNG.integers(1, 3))) if sh == sw == 1 and RNG.random() < 0.4 else (1, 1)
        padding = padding_name()
        if out_extent(h, kh, sh, dh, padding) < 1 or out_extent(w, kw, sw, dw, padding) < 1:
            padding = "same"
        pad = tflite.Padding.SAME if padding == "same" else tflite.Padding.VALID
        in_shape = [1, h, w, ic]
        w_shape = [1, kh, kw, n] if depthwise else [n, kh, kw, ic]
        out_shape = [1, out_extent(h, kh, sh, dh, padding), out_extent(w, kw, sw, dw, padding), n]
        depth, qdim, per_channel = kh * kw * (1 if depthwise else ic), 3 if depthwise else 0, True
        opcode = tflite.BuiltinOperator.DEPTHWISE_CONV_2D if depthwise else tflite.BuiltinOperator.CONV_2D
        otype = tflite.BuiltinOptions.DepthwiseConv2DOptions if depthwise else tflite.BuiltinOptions.Conv2DOptions
        options = conv_options(depthwise, pad, (sh, sw), act, m, (dh, dw))
    inp = i16_tensor(in_shape)
    base = scale() / 50
    w_scales = [float(np.float32(base * 10 ** RNG.uniform(-0.3, 0.3))) for _ in range(n if per_channel else 1)]
    out = i16_tensor(out_shape, int16_out_scale(inp["scales"][0], w_scales[0], depth))
    weights = {"shape": w_shape, "dtype": "int8", "scales": w_scales, "zero_points": [0] * len(w_scales),
               "quantized_dimension": qdim, "data": RNG.integers(-127, 128, size=w_shape, dtype=np.int8)}
    tensors = [inp, weights]
    # A bias as large as a typical dot product, so that neither drowns the other.
    spread = int(np.sqrt(depth) * 73 * 18918)
    # LiteRT's int16 convolutions want a bias; a dense layer may go without.
    if op != "fully_connected" or RNG.random() < 0.8:
        tensors.append({"shape": [n], "dtype": "int64", "scales": [inp["scales"][0] * s for s in w_scales], "zero_points": [0] * len(w_scales),
                        "data": RNG.integers(-spread, spread, size=(n,), dtype=np.int64)})
        inputs = [0, 1, 2]
    else:
        inputs = [0, 1, -1]
    tensors.append(out)
    return model_case(op, opcode, tensors, inputs, [i16(in_shape)], otype, options)


def int16_pool_case(kind):
    return typed_pool_case(kind, i16_tensor, i16)


def int16_quantize_case(kind):
    """QUANTIZE float32 to int16, DEQUANTIZE int16 to float32, or QUANTIZE
    between int16 and int8 (either way)."""
    shape = random_shape()
    if kind == "quantize":
        inp, out = data_tensor(shape, "float32"), i16_tensor(shape)
        x = (RNG.standard_normal(size=shape) * out["scales"][0] * 20000).astype(np.float32)
        opcode = tflite.BuiltinOperator.QUANTIZE
    elif kind == "dequantize":
        inp, out, x = i16_tensor(shape), data_tensor(shape, "float32"), i16(shape)
        opcode = tflite.BuiltinOperator.DEQUANTIZE
    elif kind == "int16_to_int8":
        inp, x = i16_tensor(shape), i16(shape)
        out = act_tensor(shape, float(np.float32(inp["scales"][0] * 256 * 10 ** RNG.uniform(-0.5, 0.5))))
        opcode = tflite.BuiltinOperator.QUANTIZE
    else:
        inp, x = act_tensor(shape), i8(shape)
        out = i16_tensor(shape, float(np.float32(inp["scales"][0] / 256 * 10 ** RNG.uniform(0, 0.5))))
        opcode = tflite.BuiltinOperator.QUANTIZE
    return model_case(kind, opcode, [inp, out], [0], [x])


def int16_add_case(op):
    """ADD or SUB of two int16 model inputs of their own scales, the second
    broadcast one time in two, with TFLite's general int16 scaling."""
    shape = [int(RNG.integers(1, 5)) for _ in range(int(RNG.integers(1, 5)))]
    act = list(ACTIVATIONS)[RNG.integers(0, 3)]
    s = scale() / 100
    s_b = float(np.float32(s * 10 ** RNG.uniform(-0.5, 0.5)))
    s_out = float(np.float32(2 * max(s, s_b) * 10 ** RNG.uniform(-0.3, 0.3)))
    tensors = [i16_tensor(shape, s), i16_tensor(shape, s_b), i16_tensor(shape, s_out)]
    if op == "mul":
        # A product's scale: the operands' scales multiplied, times a factor.
        tensors[2]["scales"] = [float(np.float32(s * s_b * 32768 * 10 ** RNG.uniform(-0.3, 0.3)))]
        options = lambda b: (tflite.MulOptionsStart(b), tflite.MulOptionsAddFusedActivationFunction(b, ACTIVATIONS[act]), tflite.MulOptionsEnd(b))[-1]
        code, otype = tflite.BuiltinOperator.MUL, tflite.BuiltinOptions.MulOptions
    elif op == "add":
        options = lambda b: (tflite.AddOptionsStart(b), tflite.AddOptionsAddFusedActivationFunction(b, ACTIVATIONS[act]),
                             tflite.AddOptionsAddPotScaleInt16(b, False), tflite.AddOptionsEnd(b))[-1]
        code, otype = tflite.BuiltinOperator.ADD, tflite.BuiltinOptions.AddOptions
    else:
        options = lambda b: (tflite.SubOptionsStart(b), tflite.SubOptionsAddFusedActivationFunction(b, ACTIVATIONS[act]),
                             tflite.SubOptionsAddPotScaleInt16(b, False), tflite.SubOptionsEnd(b))[-1]
        code, otype = tflite.BuiltinOperator.SUB, tflite.BuiltinOptions.SubOptions
    b_shape = [d if RNG.random() < 0.5 else 1 for d in shape] if RNG.random() < 0.5 else shape
    tensors[1]["shape"] = b_shape
    model = build_graph(tensors, [(code, otype, options, [0, 1], [2])], [0, 1], [2])
    x, y = i16(shape), i16(b_shape)
    return {"op": op, "dtype": "int16", "model": model.hex(), "inputs": [x.tobytes().hex(), y.tobytes().hex()],
            "output": np.ascontiguousarray(run(model, [x, y])).tobytes().hex()}


def int16_curve_case(op):
    """LOGISTIC or TANH on int16: an input scale that is a power of two one
    time in three (TFLite's shift-only path), else any; output 2^-15."""
    shape = random_shape()
    s_in = 2.0 ** -int(RNG.integers(11, 14)) if RNG.random() < 1 / 3 else float(np.float32(10 ** RNG.uniform(-5, -3.7)))
    inp, out = i16_tensor(shape, s_in), i16_tensor(shape, 1.0 / 32768)
    code = tflite.BuiltinOperator.LOGISTIC if op == "logistic" else tflite.BuiltinOperator.TANH
    return model_case(op, code, [inp, out], [0], [i16(shape)])


def int16_softmax_case():
    rows, depth = int(RNG.integers(1, 4)), int(RNG.integers(2, 40))
    beta = float(np.float32(RNG.choice([1.0, 1.0, 0.5, 2.0])))
    inp = i16_tensor([rows, depth], float(np.float32(10 ** RNG.uniform(-4.5, -3))))
    out = i16_tensor([rows, depth], 1.0 / 32768)
    options = lambda b: (tflite.SoftmaxOptionsStart(b), tflite.SoftmaxOptionsAddBeta(b, beta), tflite.SoftmaxOptionsEnd(b))[-1]
    return model_case("softmax", tflite.BuiltinOperator.SOFTMAX, [inp, out], [0], [i16([rows, depth])],
                      tflite.BuiltinOptions.SoftmaxOptions, options)


def fused_pool_case(kind, dtype):
    """AVERAGE_POOL_2D or MAX_POOL_2D with a fused RELU or RELU6, in int8,
    int16, uint8 or float32."""
    h, w, c = int(RNG.integers(2, 9)), int(RNG.integers(2, 9)), int(RNG.integers(1, 9))
    kh, kw, sh, sw = int(RNG.integers(1, 4)), int(RNG.integers(1, 4)), int(RNG.integers(1, 3)), int(RNG.integers(1, 3))
    padding = padding_name()
    if out_extent(h, kh, sh, 1, padding) < 1 or out_extent(w, kw, sw, 1, padding) < 1:
        padding = "same"
    act = ["relu", "relu6"][RNG.integers(0, 2)]
    shape = [1, h, w, c]
    # A scale that puts 6.0 inside the range, so that RELU6 clips.
    inp = u8_tensor(shape, 0.05) if dtype == "uint8" else data_tensor(shape, dtype, 0.05 if dtype == "int8" else 0.0004)
    out = {**inp, "shape": [1, out_extent(h, kh, sh, 1, padding), out_extent(w, kw, sw, 1, padding), c]}

    options = pool_options(padding, kh, kw, sh, sw, act)

    opcode = tflite.BuiltinOperator.AVERAGE_POOL_2D if kind == "avg_pool" else tflite.BuiltinOperator.MAX_POOL_2D
    data = u8(shape) if dtype == "uint8" else random_data(shape, dtype) * (8 if dtype == "float32" else 1)
    return model_case(kind + "_fused", opcode, [inp, out], [0], [data], tflite.BuiltinOptions.Pool2DOptions, options)


def svdf_case():
    """An int8 SVDF (TFLM's keyword models): int8 feature weights, int16
    time weights, int32 bias, an int16 state (a variable tensor, zero at
    each inference), rank 1 or 2, with or without a bias."""
    batch, n_input, units, rank = int(RNG.integers(1, 3)), int(RNG.integers(1, 40)), int(RNG.integers(1, 8)), int(RNG.integers(1, 3))
    filters, memory = units * rank, int(RNG.integers(1, 6))
    inp = act_tensor([batch, n_input])
    s_feature = scale() / 50
    s_state = float(np.float32(inp["scales"][0] * s_feature * np.sqrt(n_input) * 73 * 73 / 10000))
    s_time = float(np.float32(2.0 ** -int(RNG.integers(10, 14))))
    s_out = float(np.float32(s_state * s_time * np.sqrt(rank) * 10000 * 2000 / 60 * 10 ** RNG.uniform(-0.3, 0.3)))
    feature = {"shape": [filters, n_input], "dtype": "int8", "scales": [s_feature], "zero_points": [0],
               "data": RNG.integers(-127, 128, size=(filters, n_input), dtype=np.int8)}
    time = {"shape": [filters, memory], "dtype": "int16", "scales": [s_time], "zero_points": [0],
            "data": RNG.integers(-4000, 4000, size=(filters, memory), dtype=np.int16)}
    bias = {"shape": [units], "dtype": "int32", "scales": [s_state * s_time], "zero_points": [0],
            "data": RNG.integers(-200000, 200000, size=(units,), dtype=np.int32)}
    state = {"shape": [batch, memory * filters], "dtype": "int16", "scales": [s_state], "zero_points": [0], "variable": True}
    out = act_tensor([batch, units], s_out)
    has_bias = RNG.random() < 0.8
    tensors = [inp, feature, time, bias, state, out]
    # LiteRT runs an int8 SVDF only with a fused RELU (TFLM's models have one).
    options = lambda b: (tflite.SVDFOptionsStart(b), tflite.SVDFOptionsAddRank(b, rank),
                         tflite.SVDFOptionsAddFusedActivationFunction(b, ACTIVATIONS["relu"]), tflite.SVDFOptionsEnd(b))[-1]
    model = build_graph(tensors, [(tflite.BuiltinOperator.SVDF, tflite.BuiltinOptions.SVDFOptions, options,
                                   [0, 1, 2, 3 if has_bias else -1, 4], [5])], [0], [5])
    x = i8([batch, n_input])
    it = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    y = it.get_tensor(it.get_output_details()[0]["index"])
    return {"op": "svdf", "dtype": "int8", "model": model.hex(), "inputs": [x.tobytes().hex()],
            "output": np.ascontiguousarray(y).tobytes().hex()}


def batch_matmul_case(dtype):
    """BATCH_MATMUL of rank 2 to 4 with broadcast batch axes, adj_x and
    adj_y, the second operand an activation or (one time in two) a
    constant; int8 with zero points on both operands, or float32."""
    rank = int(RNG.integers(2, 5))
    m, k, n = int(RNG.integers(1, 7)), int(RNG.integers(1, 24)), int(RNG.integers(1, 7))
    batch = [int(RNG.integers(1, 4)) for _ in range(rank - 2)]
    a_batch = [d if RNG.random() < 0.7 else 1 for d in batch]
    b_batch = [d if RNG.random() < 0.7 else 1 for d in batch]
    adj_x, adj_y = bool(RNG.random() < 0.3), bool(RNG.random() < 0.3)
    a_shape = a_batch + ([k, m] if adj_x else [m, k])
    b_shape = b_batch + ([n, k] if adj_y else [k, n])
    out_shape = [max(x, y) for x, y in zip(a_batch, b_batch)] + [m, n]
    constant = RNG.random() < 0.5
    a = data_tensor(a_shape, dtype)
    b = data_tensor(b_shape, dtype)
    if dtype == "int8":
        s_out = float(np.float32(a["scales"][0] * b["scales"][0] * np.sqrt(k) * 73 * 73 / 40))
        out = act_tensor(out_shape, s_out)
    else:
        out = data_tensor(out_shape, dtype)
    if constant:
        b["data"] = random_data(b_shape, dtype)
    options = lambda bld: (tflite.BatchMatMulOptionsStart(bld), tflite.BatchMatMulOptionsAddAdjX(bld, adj_x),
                           tflite.BatchMatMulOptionsAddAdjY(bld, adj_y), tflite.BatchMatMulOptionsEnd(bld))[-1]
    model = build_graph([a, b, out], [(tflite.BuiltinOperator.BATCH_MATMUL, tflite.BuiltinOptions.BatchMatMulOptions, options, [0, 1], [2])],
                        [0] if constant else [0, 1], [2])
    data = [random_data(a_shape, dtype)] + ([] if constant else [random_data(b_shape, dtype)])
    return {"op": "batch_matmul", "dtype": dtype, "model": model.hex(), "inputs": [x.tobytes().hex() for x in data],
            "output": np.ascontiguousarray(run(model, data)).tobytes().hex()}


def gather_indices_case(dtype):
    """GATHER of a constant table (an embedding lookup) by int32 indices that
    are the model input, along a random (maybe negative) axis."""
    while True:
        shape = [int(RNG.integers(1, 7)) for _ in range(int(RNG.integers(1, 4)))]
        axis = int(RNG.integers(0, len(shape)))
        idx_shape = [int(RNG.integers(1, 6))] if RNG.random() < 0.7 else [int(RNG.integers(1, 4)), int(RNG.integers(1, 4))]
        out_shape = shape[:axis] + idx_shape + shape[axis + 1:]
        if len(out_shape) <= 4:
            break
    table = {**data_tensor(shape, dtype), "data": random_data(shape, dtype)}
    indices = {"shape": idx_shape, "dtype": "int32", "scales": [], "zero_points": []}
    tensors = [table, indices, same_quant(table, out_shape)]
    tensors[2].pop("data", None)
    neg = axis - len(shape) if RNG.random() < 0.3 else axis

    def options(b):
        tflite.GatherOptionsStart(b)
        tflite.GatherOptionsAddAxis(b, neg)
        return tflite.GatherOptionsEnd(b)

    ids = RNG.integers(0, shape[axis], size=idx_shape).astype(np.int32)
    return model_case("gather_indices", tflite.BuiltinOperator.GATHER, tensors, [0, 1], [ids],
                      tflite.BuiltinOptions.GatherOptions, options)


def channel_shuffle_case(dtype):
    """ShuffleNet's channel shuffle: RESHAPE [1, h, w, g * k] to rank 5
    [1, h, w, g, k], TRANSPOSE its last two axes, RESHAPE back."""
    groups, k = int(RNG.integers(2, 5)), int(RNG.integers(1, 5))
    h, w = int(RNG.integers(1, 6)), int(RNG.integers(1, 6))
    x = data_tensor([1, h, w, groups * k], dtype)
    tensors = [x, int32_const([1, h, w, groups, k], [5]), same_quant(x, [1, h, w, groups, k]),
               int32_const([0, 1, 2, 4, 3], [5]), same_quant(x, [1, h, w, k, groups]),
               int32_const([1, h, w, groups * k], [4]), same_quant(x, [1, h, w, groups * k])]
    operators = [(tflite.BuiltinOperator.RESHAPE, 0, None, [0, 1], [2]),
                 (tflite.BuiltinOperator.TRANSPOSE, 0, None, [2, 3], [4]),
                 (tflite.BuiltinOperator.RESHAPE, 0, None, [4, 5], [6])]
    return graph_case("channel_shuffle", dtype, tensors, operators, 6)


def write(path, cases):
    version = importlib.metadata.version("ai-edge-litert")
    meta = {"generator": "make_op_goldens.py", "interpreter": f"ai-edge-litert {version}, BUILTIN_REF", "cases": cases}
    path.write_text(json.dumps(meta, separators=(",", ":")))
    print(f"wrote {len(cases)} cases to {path}")


def main():
    cases = []
    for _ in range(12):
        cases += [conv_case(False), conv_case(True), dense_case(), pool_case("avg_pool"), pool_case("max_pool"), add_case(), softmax_case()]
    write(pathlib.Path(__file__).with_name("tflite_ops.json"), cases)
    # Whole one-operator models, imported by the harness (harness/tests/one_op_models.rs),
    # drawn after the kernel cases so that those stay as they were.
    models = []
    for _ in range(8):
        for dtype in ["int8", "float32"]:
            models += [pad_case(dtype, False), pad_case(dtype, True), transpose_case(dtype), mean_case(dtype), mean_case(dtype)]
    models += [hybrid_dense_case() for _ in range(16)]
    for _ in range(6):
        for op in ELEMENTWISE:
            models.append(elementwise_case(op, "int8"))
            if op not in FIXED_OUTPUT:
                models.append(elementwise_case(op, "float32"))
    for _ in range(6):
        for dtype in ["int8", "float32"]:
            models += [squeeze_case(dtype, False), squeeze_case(dtype, True)]
    for _ in range(8):
        for op in BINARY:
            for dtype in ["int8", "float32"]:
                models.append(binary_case(op, dtype))
    for _ in range(10):
        for dtype in ["int8", "float32"]:
            models += [slice_case(dtype, False), slice_case(dtype, True)]
    for _ in range(6):
        for dtype in ["int8", "float32"]:
            models += [split_case(dtype, "split"), split_case(dtype, "split_v"), split_case(dtype, "unpack"), concat_case(dtype), concat_case(dtype)]
    for _ in range(8):
        for dtype in ["int8", "float32"]:
            models += [gather_case(dtype), resize_nearest_case(dtype)]
    for _ in range(6):
        for dtype in ["int8", "float32"]:
            models.append(io_case(dtype))
    for _ in range(6):
        models += [dequantized_weights_case("float16"), dequantized_weights_case("int8")]
    ELEMENTWISE["hard_swish"] = "HARD_SWISH"
    for _ in range(8):
        models += [elementwise_case("hard_swish", "int8"), elementwise_case("hard_swish", "float32")]
    BINARY["squared_difference"] = ("SQUARED_DIFFERENCE", None)
    for _ in range(8):
        models += [binary_case("squared_difference", "int8"), binary_case("squared_difference", "float32")]
    # The legacy uint8 scheme.
    for _ in range(6):
        for op in ["conv2d", "depthwise_conv2d", "fully_connected"]:
            models.append(uint8_weighted_case(op))
        models += [uint8_pool_case("avg_pool"), uint8_pool_case("max_pool"), uint8_softmax_case(), uint8_add_case()]
        for direction in ["uint8_to_int8", "int8_to_uint8", "int8_to_int8"]:
            models.append(uint8_quantize_case(direction))
        models.append(uint8_graph_case())
    for _ in range(8):
        models += [grouped_conv_case("int8"), grouped_conv_case("float32")]
    for _ in range(10):
        models += [resize_bilinear_case("int8"), resize_bilinear_case("float32")]
    for _ in range(3):
        models += [dynamic_flatten_case("int8"), dynamic_flatten_case("float32")]
    models += [log_softmax_case() for _ in range(16)]
    for _ in range(4):
        for op in BINARY:
            for dtype in ["int8", "float32"]:
                models.append(constant_binary_case(op, dtype))
    # TFLite's 16x8 scheme: int16 activations, int8 weights.
    for _ in range(8):
        models += [int16_weighted_case(op) for op in ["conv2d", "depthwise_conv2d", "fully_connected"]]
        models += [int16_pool_case("avg_pool"), int16_pool_case("max_pool")]
        models += [int16_quantize_case(k) for k in ["quantize", "dequantize", "int16_to_int8", "int8_to_int16"]]
        models += [int16_add_case("add"), int16_add_case("sub")]
    for _ in range(8):
        models += [int16_add_case("mul"), int16_curve_case("logistic"), int16_curve_case("tanh")]
    models += [int16_softmax_case() for _ in range(16)]
    # Operators that move int16 bytes.
    for _ in range(6):
        models += [transpose_case("int16"), squeeze_case("int16", False), squeeze_case("int16", True),
                   slice_case("int16", False), slice_case("int16", True), concat_case("int16"), gather_case("int16"),
                   split_case("int16", "split"), split_case("int16", "split_v"), split_case("int16", "unpack")]
    # Pools with a fused activation, in every type.
    for _ in range(4):
        for dtype in ["int8", "int16", "uint8", "float32"]:
            models += [fused_pool_case("avg_pool", dtype), fused_pool_case("max_pool", dtype)]
    models += [svdf_case() for _ in range(16)]
    for _ in range(10):
        models += [batch_matmul_case("int8"), batch_matmul_case("float32")]
    for _ in range(3):
        for op in BINARY:
            for dtype in ["int8", "float32"]:
                models.append(constant_binary_case(op, dtype, first=True))
    # The legacy uint8 scheme beyond the first set: MEAN, binary operators
    # (their broadcast operand made by MEAN) and the standalone activations.
    for _ in range(4):
        models.append(mean_case("uint8"))
        models += [binary_case(op, "uint8") for op in ["sub", "mul", "maximum", "minimum"]]
        models += [elementwise_case(op, "uint8") for op in ELEMENTWISE]
    for _ in range(6):
        models += [pad_case("int16", False), pad_case("int16", True)]
    models += [mean_case("int16") for _ in range(12)]
    # float LOGISTIC, TANH, SOFTMAX and LOG_SOFTMAX, exact through glibc's expf, logf and tanhf.
    for _ in range(8):
        models += [float_transcendental_case(op) for op in ["logistic", "tanh", "softmax", "log_softmax"]]
    # int16 RELU, RELU6 and LEAKY_RELU (the ones TFLite runs in int16).
    for _ in range(6):
        models += [elementwise_case(op, "int16") for op in ["relu", "relu6", "leaky_relu"]]
    # Rank-5 tensors (a unit first axis, then four): the operators that move,
    # reduce or combine them, and ShuffleNet's channel shuffle through rank 5.
    global RANK5
    RANK5 = True
    for _ in range(3):
        for dtype in ["int8", "float32"]:
            models += [transpose_case(dtype), pad_case(dtype, False), mean_case(dtype), slice_case(dtype, False),
                       slice_case(dtype, True), concat_case(dtype), split_case(dtype, "split"),
                       binary_case("add", dtype), binary_case("mul", dtype), elementwise_case("logistic", dtype),
                       channel_shuffle_case(dtype)]
    RANK5 = False
    # GATHER by indices the model reads at run time (int32 model input).
    for _ in range(6):
        models += [gather_indices_case(dtype) for dtype in ["int8", "float32", "int16"]]
    write(pathlib.Path(__file__).resolve().parents[3] / "harness" / "tests" / "golden" / "one_op_models.json", models)

if __name__ == "__main__":
    main()
