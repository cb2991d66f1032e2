#!/usr/bin/env python3
"""Bring-your-own fixtures from Keras and Larq (TensorFlow 2.16, tf_keras):

- keras_mlp.onnx: a Keras MLP (Dense, ReLU, Dense, softmax) through
  tf2onnx, with onnxruntime's outputs;
- three Larq networks converted by the Larq Compute Engine
  (`lce.convert_keras_model`), with the outputs of LCE's own interpreter:
  larq_binarynet.tflite (a BinaryNet-style CNN for 32x32x3 with binary
  max-pooling), larq_dscnn_kws.tflite (a DS-CNN keyword spotter whose
  pointwise convolutions are binary) and larq_bconv_chain.tflite (two
  binary convolutions back to back, where LCE writes the first one's
  output as packed bits compared with thresholds);
- two int8 Larq networks (int8 input and output): larq_int8.tflite,
  trained-for-int8 style (fake-quantization ranges after each layer, as
  Larq's int8 guide does), where LCE's binary convolutions write int8 and
  the binary dense layer stays float between LceDequantize and QUANTIZE;
  and larq_int8_default_range.tflite, the BinaryNet CNN converted with
  `experimental_default_int8_range`, which leaves float layers between
  the int8 ones.

Weights are seeded and untrained; batch-norm statistics are drawn so that
the folded multipliers, biases and thresholds are not trivial.

Writes models/byo/<name>.{onnx,tflite} and harness/tests/golden/byo/<name>/
{inputs,outputs}.npy (8 seeded inputs, in the model's own layout and type).

Regenerate:  scripts/byo-fixtures.sh   (CI does not run this)
"""
import os
import pathlib
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import larq as lq  # noqa: E402
import larq_compute_engine as lce  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / "models" / "byo"
GOLDEN = ROOT / "harness" / "tests" / "golden" / "byo"
COUNT = 8
BINARY = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
              use_bias=False)


def batch_norm():
    return tf.keras.layers.BatchNormalization(momentum=0.9, scale=False)


def binarynet():
    """BinaryNet-style: a float first convolution, binary convolutions with
    one-padding, max-pooling of signs (LCE's LceBMaxPool2d), a binary dense
    layer and softmax."""
    return tf.keras.Sequential([
        tf.keras.Input((32, 32, 3)),
        lq.layers.QuantConv2D(16, 3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                              use_bias=False),
        batch_norm(),
        lq.layers.QuantConv2D(16, 3, padding="same", pad_values=1.0, **BINARY),
        batch_norm(),
        tf.keras.layers.MaxPool2D(2),
        lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, **BINARY),
        batch_norm(),
        tf.keras.layers.MaxPool2D(2),
        lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, **BINARY),
        batch_norm(),
        tf.keras.layers.GlobalAveragePooling2D(),
        lq.layers.QuantDense(10, **BINARY),
        batch_norm(),
        tf.keras.layers.Activation("softmax"),
    ])


def dscnn_kws():
    """A DS-CNN keyword spotter over 49x10 MFCCs: a float first
    convolution, float depthwise convolutions, binary pointwise ones."""
    layers = [tf.keras.Input((49, 10, 1)),
              tf.keras.layers.Conv2D(32, (10, 4), strides=2, padding="same", use_bias=False),
              batch_norm(), tf.keras.layers.ReLU()]
    for _ in range(2):
        layers += [tf.keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False), batch_norm(),
                   lq.layers.QuantConv2D(32, 1, **BINARY), batch_norm()]
    layers += [tf.keras.layers.GlobalAveragePooling2D(), tf.keras.layers.Dense(12),
               tf.keras.layers.Activation("softmax")]
    return tf.keras.Sequential(layers)


def bconv_chain():
    """Two binary convolutions back to back: LCE writes the first one's
    output as packed bits (batch norm and sign folded into thresholds)."""
    return tf.keras.Sequential([
        tf.keras.Input((10, 10, 8)),
        lq.layers.QuantConv2D(40, 3, padding="same", pad_values=1.0, **BINARY),
        batch_norm(),
        lq.layers.QuantConv2D(24, 3, strides=2, padding="valid", **BINARY),
        batch_norm(),
    ])


def zero_padding():
    """Larq's default padding: SAME with pad_values=0 (the padded taps add
    nothing), on a binary convolution that writes packed bits and on one
    that writes floats."""
    return tf.keras.Sequential([
        tf.keras.Input((12, 12, 6)),
        lq.layers.QuantConv2D(16, 3, padding="same", **BINARY),
        batch_norm(),
        lq.layers.QuantConv2D(16, 3, padding="same", strides=2, **BINARY),
        batch_norm(),
        tf.keras.layers.GlobalAveragePooling2D(),
    ])


def fake_quant(lo=-4.0, hi=4.0):
    """The int8 range a quantization-aware training would have learned."""
    return tf.keras.layers.Lambda(lambda x: tf.quantization.fake_quant_with_min_max_args(x, lo, hi))


def int8_bnn():
    """A binary CNN with int8 ranges after its layers: LCE writes int8
    binary convolutions (one-padded: LCE's optimized kernels refuse zero
    padding with int8 output), packed bits between two binary
    convolutions, and a float binary dense layer."""
    return tf.keras.Sequential([
        tf.keras.Input((16, 16, 3)), fake_quant(-3, 3),
        tf.keras.layers.Conv2D(16, 3, use_bias=False), batch_norm(), fake_quant(),
        lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, **BINARY), batch_norm(),
        tf.keras.layers.MaxPool2D(2),
        lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, **BINARY), batch_norm(), fake_quant(),
        tf.keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False), batch_norm(), fake_quant(),
        lq.layers.QuantConv2D(24, 1, **BINARY), batch_norm(), fake_quant(),
        tf.keras.layers.Flatten(),
        lq.layers.QuantDense(10, **BINARY), batch_norm(), fake_quant(-8, 8),
        tf.keras.layers.Activation("softmax"),
    ])


def mlp():
    return tf.keras.Sequential([
        tf.keras.Input((20,)),
        tf.keras.layers.Dense(32, activation="relu"),
        tf.keras.layers.Dense(5, activation="softmax"),
    ])


def seeded(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(-0.5, 0.5, beta.shape), rng.uniform(-3, 3, mean.shape),
                               rng.uniform(2, 30, var.shape)])
    return model


def save_goldens(name, x, y):
    out = GOLDEN / name
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "inputs.npy", x if x.dtype == np.int8 else x.astype(np.float32))
    np.save(out / "outputs.npy", y if y.dtype == np.int8 else y.astype(np.float32))
    print(f"{name}: inputs {x.shape}, outputs {y.shape}")


def larq(name, model, seed, int8=False, **options):
    """Converts `model` with LCE (int8 input and output when `int8`, with
    the converter's other `options`) and saves LCE's outputs on seeded
    inputs."""
    tf.keras.utils.set_random_seed(seed)
    if int8:
        options.update(inference_input_type=tf.int8, inference_output_type=tf.int8)
    flatbuffer = lce.convert_keras_model(seeded(model(), seed), **options)
    (MODELS / f"{name}.tflite").write_bytes(flatbuffer)
    interpreter = lce.testing.Interpreter(flatbuffer, num_threads=1)
    shape = interpreter.input_shapes[0]
    rng = np.random.default_rng(seed)
    if int8:
        x = rng.integers(-128, 128, [COUNT, *shape[1:]]).astype(np.int8)
    else:
        x = rng.standard_normal([COUNT, *shape[1:]]).astype(np.float32)
    y = np.concatenate([np.asarray(interpreter.predict(x[k:k + 1])).reshape(1, -1) for k in range(COUNT)])
    save_goldens(name, x, y)


def keras_onnx(name, seed):
    tf.keras.utils.set_random_seed(seed)
    model = mlp()
    spec = (tf.TensorSpec((1, 20), tf.float32, name="x"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=13)
    path = MODELS / f"{name}.onnx"
    path.write_bytes(proto.SerializeToString())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(seed).standard_normal([COUNT, 20]).astype(np.float32)
    y = np.concatenate([session.run(None, {"x": x[k:k + 1]})[0] for k in range(COUNT)])
    save_goldens(name, x, y)


def main():
    MODELS.mkdir(parents=True, exist_ok=True)
    keras_onnx("keras_mlp", 3)
    larq("larq_binarynet", binarynet, 4)
    larq("larq_dscnn_kws", dscnn_kws, 5)
    larq("larq_bconv_chain", bconv_chain, 6)
    larq("larq_zero_padding", zero_padding, 7)
    larq("larq_int8", int8_bnn, 9, int8=True)
    larq("larq_int8_default_range", binarynet, 10, int8=True,
         experimental_default_int8_range=(-3.0, 3.0))
    print(f"tensorflow {tf.__version__}, larq {lq.__version__}, larq-compute-engine {lce.__version__}, "
          f"tf2onnx {tf2onnx.__version__}, onnxruntime {ort.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
