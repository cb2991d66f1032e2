#!/usr/bin/env python3
"""Bring-your-own fixtures from PyTorch: two small networks a user might
train (a CNN for 3x16x16 images with a stride-2 padded convolution, batch
norm, a depthwise-separable block, HardSwish, max-pooling and a linear
softmax head; and a Conv1d keyword spotter over 10 MFCCs x 49 frames),
exported with `torch.onnx.export` (the default exporter), then quantized by
`onnxruntime.quantization.quantize_static` in QDQ and QOperator formats,
int8 and uint8 activations, per-channel and per-tensor weights. Weights are
seeded (the networks are untrained: what is checked is arithmetic, not
accuracy); batch-norm statistics are drawn so that folding them matters.

Writes models/byo/<name>.onnx and, per model, 8 seeded inputs in the
model's own NCHW layout and onnxruntime's (CPU execution provider) outputs:
harness/tests/golden/byo/<name>/{inputs,outputs}.npy.

Regenerate:  scripts/byo-fixtures.sh   (makes the venvs; CI does not run this)
"""
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / "models" / "byo"
GOLDEN = ROOT / "harness" / "tests" / "golden" / "byo"
COUNT = 8


class Cnn(nn.Module):
    """A CIFAR-style CNN, scaled down to 16x16."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 16, 1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = F.hardswish(self.pw(F.relu(self.dw(x))))
        x = self.pool(x)
        return torch.softmax(self.fc(torch.flatten(x, 1)), dim=1)


class Kws1d(nn.Module):
    """A Conv1d keyword spotter over [1, 10 MFCCs, 49 frames]."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(10, 16, 5, stride=2, padding=2)
        self.b1 = nn.BatchNorm1d(16)
        self.c2 = nn.Conv1d(16, 16, 3, padding=1, groups=16)
        self.c3 = nn.Conv1d(16, 24, 1)
        self.fc = nn.Linear(24, 12)

    def forward(self, x):
        x = F.relu(self.b1(self.c1(x)))
        x = F.relu(self.c3(F.relu(self.c2(x))))
        x = F.max_pool1d(x, 2)
        return self.fc(x.mean(-1))


class ShuffleUpsample(nn.Module):
    """Blocks beyond a plain CNN: a grouped pointwise conv after
    ShuffleNet's channel shuffle (view/transpose/view of `x.size()`), a
    ceil-mode max pool, a 2x2 stride-2 ConvTranspose upsampling, an
    asymmetric F.pad before a conv, and a `x.view(x.size(0), -1)` head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 12, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(12)
        self.dw = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.pw = nn.Conv2d(12, 12, 1, groups=3)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.up = nn.ConvTranspose2d(12, 8, 2, stride=2)
        self.side = nn.Conv2d(8, 8, 3)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        n, c, h, w = x.size()
        x = x.view(n, 3, c // 3, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        x = F.relu(self.pw(self.dw(x)))
        x = self.pool(x)
        x = F.relu(self.up(x))
        x = self.side(F.pad(x, (1, 1, 2, 0)))
        return self.fc(x.view(x.size(0), -1))


def seeded(make, seed):
    torch.manual_seed(seed)
    model = make()
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    return model.eval()


class Reader(CalibrationDataReader):
    def __init__(self, name, shape):
        rng = np.random.default_rng(7)
        self.data = iter([{name: rng.standard_normal(shape).astype(np.float32)} for _ in range(32)])

    def get_next(self):
        return next(self.data, None)


def export(model, shape, name, dynamo=True):
    """The default exporter (torch.export), or with `dynamo=False` the
    TorchScript one, which writes shape arithmetic (Shape, Gather, Concat,
    ...) where the default writes constants."""
    path = MODELS / f"{name}.onnx"
    torch.onnx.export(model, (torch.randn(*shape),), str(path), external_data=False, dynamo=dynamo)
    onnx.checker.check_model(onnx.load(str(path)))
    return path


def quantize(src, name, fmt, activations, per_channel):
    pre = MODELS / f"{name}.pre.onnx"
    quant_pre_process(str(src), str(pre))
    path = MODELS / f"{name}.onnx"
    session = ort.InferenceSession(str(src))
    i = session.get_inputs()[0]
    quantize_static(str(pre), str(path), Reader(i.name, [1, *i.shape[1:]]), quant_format=fmt,
                    activation_type=activations, weight_type=QuantType.QInt8, per_channel=per_channel)
    pre.unlink()
    return path


def goldens(path):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    i = session.get_inputs()[0]
    rng = np.random.default_rng(sum(path.stem.encode()))
    x = rng.standard_normal([COUNT, *i.shape[1:]]).astype(np.float32)
    y = np.concatenate([session.run(None, {i.name: x[k:k + 1]})[0] for k in range(COUNT)])
    out = GOLDEN / path.stem
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "inputs.npy", x)
    np.save(out / "outputs.npy", y)
    print(f"{path.relative_to(ROOT)}: {[n.op_type for n in onnx.load(str(path)).graph.node][:12]}...")


def main():
    MODELS.mkdir(parents=True, exist_ok=True)
    cnn = export(seeded(Cnn, 1), [1, 3, 16, 16], "pytorch_cnn")
    kws = export(seeded(Kws1d, 2), [1, 10, 49], "pytorch_kws1d")
    shuffle = seeded(ShuffleUpsample, 3)
    made = [cnn, kws,
            export(shuffle, [1, 3, 16, 16], "pytorch_shuffle_upsample"),
            export(shuffle, [1, 3, 16, 16], "pytorch_shuffle_upsample_torchscript", dynamo=False),
            quantize(cnn, "pytorch_cnn_qdq", QuantFormat.QDQ, QuantType.QInt8, True),
            quantize(cnn, "pytorch_cnn_qdq_uint8_per_tensor", QuantFormat.QDQ, QuantType.QUInt8, False),
            quantize(cnn, "pytorch_cnn_qoperator", QuantFormat.QOperator, QuantType.QInt8, True),
            quantize(cnn, "pytorch_cnn_qoperator_uint8", QuantFormat.QOperator, QuantType.QUInt8, True),
            quantize(kws, "pytorch_kws1d_qdq", QuantFormat.QDQ, QuantType.QInt8, True)]
    for path in made:
        goldens(path)
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, onnx {onnx.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
