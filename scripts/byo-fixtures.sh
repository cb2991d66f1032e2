#!/usr/bin/env bash
# Makes the bring-your-own fixtures (models/byo) and their reference
# outputs with the frameworks users train in. Two Python environments,
# because TensorFlow 2.16 (for Larq and tf2onnx) pins older numpy and
# ml_dtypes than PyTorch's exporter wants:
#   target/torch-venv: torch (PyPI's wheel is the CUDA build, several GB
#                      with its nvidia-* dependencies), onnx, onnxscript, onnxruntime
#   target/larq-venv:  tensorflow 2.16, tf_keras, larq, larq-compute-engine,
#                      tf2onnx, onnx 1.16 (the last for ml_dtypes 0.3), onnxruntime
# CI does not run this: the small files it writes are committed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x target/torch-venv/bin/python ]; then
    python3 -m venv target/torch-venv
    target/torch-venv/bin/pip install -q torch onnx onnxscript onnxruntime numpy
fi
if [ ! -x target/larq-venv/bin/python ]; then
    python3.11 -m venv target/larq-venv
    target/larq-venv/bin/pip install -q "tensorflow==2.16.*" "tf-keras~=2.16.0" larq larq-compute-engine tf2onnx onnxruntime
    target/larq-venv/bin/pip install -q "onnx==1.16.2"
fi
target/torch-venv/bin/python scripts/byo-pytorch.py
TF_USE_LEGACY_KERAS=1 target/larq-venv/bin/python scripts/byo-keras-larq.py
