#!/usr/bin/env python3
"""Writes harness/tests/fixtures/unaligned_zero_point.tflite: a one-RELU int8
model whose int64 zero-point vectors sit 4 bytes off 8-byte alignment, as
Silicon Labs' converter writes them. LiteRT loads and runs it; bench must
too (harness/tests/tflite.rs). Needs the venv of make_op_goldens.py.
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "kernels/tests/golden"))
import numpy as np, flatbuffers, tflite
import make_op_goldens as g

orig = flatbuffers.Builder.CreateNumpyVector
state = {"pad": False}

def create(self, x):
    # int64 zero points: 8-byte elements aligned to 4 only, as some converters write them.
    if x.dtype == np.int64:
        if state["pad"]:
            self.PrependUint32(0)
        self.StartVector(8, len(x), 4)
        for v in reversed(x.tolist()):
            u = v & 0xFFFFFFFFFFFFFFFF
            self.PrependUint32(u >> 32)
            self.PrependUint32(u & 0xFFFFFFFF)
        return self.EndVector()
    return orig(self, x)

flatbuffers.Builder.CreateNumpyVector = create
inp = g.act_tensor([1, 4, 4, 3], 0.05, 3)
out = g.act_tensor([1, 4, 4, 3], 0.05, 3)

def positions(model):
    m = tflite.Model.GetRootAsModel(model, 0)
    ts = m.Subgraphs(0)
    qs = [ts.Tensors(i).Quantization() for i in range(ts.TensorsLength())]
    return [q._tab.Vector(q._tab.Offset(10)) % 8 for q in qs]

for pad in [False, True]:
    state["pad"] = pad
    model = g.build_model(tflite.BuiltinOperator.RELU, 0, None, [inp, out], [0], [1])
    if all(p == 4 for p in positions(model)):
        break
else:
    raise SystemExit(f"could not misalign: {positions(model)}")
flatbuffers.Builder.CreateNumpyVector = orig
x = np.arange(-24, 24, dtype=np.int8).reshape(1, 4, 4, 3)
y = g.run(model, [x])
m = tflite.Model.GetRootAsModel(model, 0)
q = m.Subgraphs(0).Tensors(0).Quantization()
print("zero point vectors mod 8:", positions(model), "zp", q.ZeroPoint(0))
open(__import__("pathlib").Path(__file__).resolve().parent.parent / "harness/tests/fixtures/unaligned_zero_point.tflite", "wb").write(model)
print(y.ravel().tolist())
