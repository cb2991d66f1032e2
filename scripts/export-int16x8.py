#!/usr/bin/env python3
"""A 16x8 model as TensorFlow's converter makes one: a small DS-CNN keyword
spotter (MLPerf Tiny's KWS input, 49 x 10 MFCCs) with seeded, untrained
weights, converted with int16 activations and int8 weights
(EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8), calibrated
on 64 seeded random inputs. It exercises what the converter emits for the
scheme: QUANTIZE from float32, CONV_2D and DEPTHWISE_CONV_2D with int64
biases, a residual ADD, AVERAGE_POOL_2D, FULLY_CONNECTED, SOFTMAX and
DEQUANTIZE, all int16.

Writes models/exported/kws_dscnn_int16x8.tflite (committed; scripts/public-goldens.py
then writes its LiteRT goldens). Needs TensorFlow 2.16 and Keras 2 (Keras 3's
converter path fails on this model):
    python3.11 -m venv v && v/bin/pip install tensorflow==2.16.2 "tf_keras~=2.16.0"
    v/bin/python scripts/export-int16x8.py
CI does not run this.
"""
import pathlib

import numpy as np
import tensorflow as tf
import tf_keras as keras

OUT = pathlib.Path(__file__).resolve().parent.parent / "models" / "exported" / "kws_dscnn_int16x8.tflite"


def model():
    inp = keras.Input((49, 10, 1), batch_size=1)
    x = keras.layers.Conv2D(16, (5, 3), strides=2, padding="same", activation="relu")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(24, 1, activation="relu")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.Add()([x, y])
    x = keras.layers.AveragePooling2D((25, 5))(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(12)(x)
    return keras.Model(inp, keras.layers.Softmax()(x))


def main():
    tf.random.set_seed(1)
    rng = np.random.default_rng(1)
    calibration = [rng.standard_normal((1, 49, 10, 1)).astype(np.float32) for _ in range(64)]
    converter = tf.lite.TFLiteConverter.from_keras_model(model())
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x] for x in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    OUT.write_bytes(converter.convert())
    print(f"wrote {OUT} with TensorFlow {tf.__version__}")


if __name__ == "__main__":
    main()
