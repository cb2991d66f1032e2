#!/usr/bin/env python3
"""Trains the early-exit fixture: a small CNN with two early-exit heads and
a final classifier on scikit-learn's bundled handwritten digits (1797 8x8
images), once in float and once as a binary network (straight-through
estimator), and exports both to ONNX for `bench`.

Writes models/digits/:
  digits-float.onnx   conv1 -> pool -> [exit1] -> conv2 -> [exit2] -> conv3 -> pool -> dense
  digits-binary.onnx  the same shape; conv2 and conv3 binary: Sign -> Pad(1) -> Conv with
                      weights +-alpha per output channel (XNOR-Net scaling, Larq one-padding)
  digits-train.npz    x float32 [1437, 8, 8, 1] in [0, 1], y int64
  digits-test.npz     x float32 [360, 8, 8, 1], y int64
  digits-test.csv     the test split as CSV: 64 pixel columns p0..p63 and a label column
  fixture.json        the test-split accuracy of every exit, measured by onnxruntime on the
                      exported files (the numbers bench's tests hold the import to)

Regenerate with:
  pip install numpy scikit-learn jax onnx onnxruntime && python3 scripts/train-digits.py
CI does not run this; the outputs are committed. Every exit is trained with
an equal share of the loss (BranchyNet's joint training).
"""
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "models" / "digits"
SEED = 2026
EPOCHS = 150
BATCH = 64
CLASSES = 10


def data():
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]  # NHWC, C = 1
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)


@jax.custom_vjp
def ste_sign(x):
    """sign with sign(0) = +1 (bench's and Larq's), gradient passed where |x| <= 1."""
    return jnp.where(x >= 0, 1.0, -1.0)


ste_sign.defvjp(lambda x: (ste_sign(x), x), lambda x, g: (g * (jnp.abs(x) <= 1.0),))


def binary_weights(w):
    """XNOR-Net: sign(w) scaled by the mean |w| of each output channel (HWIO: last axis)."""
    alpha = jnp.mean(jnp.abs(w), axis=(0, 1, 2))
    return ste_sign(w) * jax.lax.stop_gradient(alpha)


def conv(x, w, b, padding):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + b


def max_pool(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def init(key):
    shapes = {"conv1": (3, 3, 1, 16), "conv2": (3, 3, 16, 32), "conv3": (3, 3, 32, 64), "exit1": (16, CLASSES), "exit2": (32, CLASSES), "fc": (256, CLASSES)}
    params = {}
    for name, shape in shapes.items():
        key, sub = jax.random.split(key)
        fan_in = int(np.prod(shape[:-1]))
        params[name] = (jax.random.uniform(sub, shape, minval=-1, maxval=1) * np.sqrt(6.0 / fan_in), jnp.zeros(shape[-1]))
    return params


def forward(params, x, binary):
    """Logits of exit1, exit2 and the final classifier."""
    relu = (lambda v: v) if binary else jax.nn.relu
    h = max_pool(relu(conv(x, *params["conv1"], "SAME")))
    exit1 = jnp.mean(h, axis=(1, 2)) @ params["exit1"][0] + params["exit1"][1]

    def block(h, key):
        if not binary:
            return relu(conv(h, *params[key], "SAME"))
        # Signs padded with +1 (Larq's one-padding), then a VALID conv: SAME in shape.
        w, b = params[key]
        return conv(jnp.pad(ste_sign(h), ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=1.0), binary_weights(w), b, "VALID")

    h = block(h, "conv2")
    exit2 = jnp.mean(h, axis=(1, 2)) @ params["exit2"][0] + params["exit2"][1]
    h = max_pool(block(h, "conv3"))
    # Flatten in NCHW order, as the exported ONNX Flatten does.
    flat = jnp.transpose(h, (0, 3, 1, 2)).reshape(h.shape[0], -1)
    return exit1, exit2, flat @ params["fc"][0] + params["fc"][1]


def train(x, y, binary):
    params = init(jax.random.PRNGKey(SEED))
    lr = 3e-3 if binary else 1e-2

    def loss(p, xb, yb):
        onehot = jax.nn.one_hot(yb, CLASSES)
        return sum(-jnp.mean(jnp.sum(onehot * jax.nn.log_softmax(logits), axis=1)) for logits in forward(p, xb, binary))

    # Adam, written out: three lines, no optimizer package.
    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)

    @jax.jit
    def step(p, m, v, t, xb, yb):
        g = jax.grad(loss)(p, xb, yb)
        m = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
        rate = lr * jnp.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        p = jax.tree_util.tree_map(lambda p, m, v: p - rate * m / (jnp.sqrt(v) + 1e-8), p, m, v)
        return p, m, v

    rng = np.random.default_rng(SEED)
    t = 0
    for epoch in range(EPOCHS):
        order = rng.permutation(len(x))
        for i in range(0, len(x), BATCH):
            t += 1
            idx = order[i : i + BATCH]
            params, m, v = step(params, m, v, t, x[idx], y[idx])
        if epoch % 50 == 49:
            print(f"  {'binary' if binary else 'float'} epoch {epoch + 1}: loss {float(loss(params, x, y)):.4f}")
    return params


def to_onnx(params, binary, path):
    """The trained network as an ONNX graph (NCHW), weights in OIHW."""
    p = {k: (np.asarray(w, np.float32), np.asarray(b, np.float32)) for k, (w, b) in params.items()}
    inits, nodes = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def conv_node(name, x, key, pads):
        w, b = p[key]
        if binary and key in ("conv2", "conv3"):
            alpha = np.mean(np.abs(w), axis=(0, 1, 2))
            w = np.where(w >= 0, 1.0, -1.0).astype(np.float32) * alpha
        nodes.append(helper.make_node("Conv", [x, const(f"{key}.weight", w.transpose(3, 2, 0, 1)), const(f"{key}.bias", b)], [name], kernel_shape=[3, 3], pads=pads))
        return name

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [name], **attrs))
        return name

    def head(x, key, out):
        pooled = node("Flatten", [node("GlobalAveragePool", [x], f"{key}.pool")], f"{key}.flat")
        w, b = p[key]
        return node("Gemm", [pooled, const(f"{key}.weight", w.T), const(f"{key}.bias", b)], out, transB=1)

    def binary_input(x, key):
        pads = const(f"{key}.pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))
        return node("Pad", [node("Sign", [x], f"{key}.sign"), pads, const(f"{key}.one", np.array(1.0, np.float32))], f"{key}.pad", mode="constant")

    h = conv_node("conv1", "input", "conv1", [1, 1, 1, 1])
    if not binary:
        h = node("Relu", [h], "conv1.relu")
    h = node("MaxPool", [h], "pool1", kernel_shape=[2, 2], strides=[2, 2])
    head(h, "exit1", "exit1")
    for key in ("conv2", "conv3"):
        h = conv_node(key, binary_input(h, key), key, [0, 0, 0, 0]) if binary else node("Relu", [conv_node(key, h, key, [1, 1, 1, 1])], f"{key}.relu")
        if key == "conv2":
            head(h, "exit2", "exit2")
    h = node("Flatten", [node("MaxPool", [h], "pool3", kernel_shape=[2, 2], strides=[2, 2])], "flat")
    w, b = p["fc"]
    node("Gemm", [h, const("fc.weight", w.T), const("fc.bias", b)], "logits", transB=1)
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, CLASSES]) for n in ("exit1", "exit2", "logits")]
    graph = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench scripts/train-digits.py")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)


def accuracies(path, x, y):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    correct = np.zeros(3, np.int64)
    for xi, yi in zip(x, y):
        outs = session.run(None, {"input": xi.transpose(2, 0, 1)[None]})
        correct += np.array([int(np.argmax(o) == yi) for o in outs])
    return [int(c) for c in correct]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_train, y_test = data()
    np.savez(OUT / "digits-train.npz", x=x_train, y=y_train)
    np.savez(OUT / "digits-test.npz", x=x_test, y=y_test)
    header = ",".join([f"p{i}" for i in range(64)] + ["label"])
    rows = np.concatenate([x_test.reshape(len(x_test), -1), y_test[:, None]], axis=1)
    np.savetxt(OUT / "digits-test.csv", rows, delimiter=",", header=header, comments="", fmt=["%.4f"] * 64 + ["%d"])
    fixture = {"dataset": "sklearn digits, train_test_split(test_size=0.2, random_state=0, stratify=y)", "test_samples": len(y_test), "models": {}}
    for binary in (False, True):
        name = "digits-binary" if binary else "digits-float"
        params = train(x_train, y_train, binary)
        jax_correct = [int(jnp.sum(jnp.argmax(o, axis=1) == y_test)) for o in forward(params, x_test, binary)]
        path = OUT / f"{name}.onnx"
        to_onnx(params, binary, path)
        correct = accuracies(path, x_test, y_test)
        print(f"{name}: correct of {len(y_test)} per exit (exit1, exit2, final): jax {jax_correct}, onnxruntime {correct}")
        fixture["models"][name] = {"exits": ["exit1", "exit2", "logits"], "correct": correct, "accuracy": [c / len(y_test) for c in correct]}
    (OUT / "fixture.json").write_text(json.dumps(fixture, indent=2) + "\n")


if __name__ == "__main__":
    main()
