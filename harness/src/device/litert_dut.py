"""An MLPerf Tiny (EEMBC) DUT on the host: LiteRT (PyPI `ai-edge-litert`)
running one .tflite on one thread, spoken to over stdin and stdout the way
the reference API (benchmark/api/internally_implemented.cpp) answers a
board's UART. bench starts it with `python -c` for the `litert` runtime
(LiteRT's default resolver, which hands the graph to XNNPACK) and the
`litert-ref` runtime (the reference kernels, BUILTIN_REF), and the Larq
Compute Engine's interpreter (PyPI `larq-compute-engine`: TFLite with LCE's
binary operators) for the `lce` runtime.

    python -c "$(cat litert_dut.py)" MODEL.tflite xnnpack|reference|lce

Timestamps are microseconds of time.perf_counter_ns. Like bench's TFLM
firmware it also sends every output's bytes (`m-results-bytes-[...]`), so
bench compares them exactly with its host reference. The input bytes are
the model's inputs one after the other, in the model's input order.
"""
import sys
import time

COMMAND_BYTES = 80


def say(line):
    sys.stdout.write(line + "\r\n")
    sys.stdout.flush()


def lap():
    say("m-lap-us-%d" % (time.perf_counter_ns() // 1000))


class Lce:
    """LCE's interpreter behind LiteRT's calls. LCE's Python wrapper has one
    call, predict(inputs), which copies the inputs in, invokes and copies the
    outputs out, so invoke() here is all three."""

    def __init__(self, model):
        from larq_compute_engine.tflite.python.interpreter import Interpreter

        with open(model, "rb") as f:
            self.lce = Interpreter(f.read(), num_threads=1).interpreter
        self.values = [None] * len(self.lce.input_shapes)
        self.results = []

    @staticmethod
    def details(shapes, types, scales, zeros):
        return [
            {"index": i, "shape": shape, "dtype": dtype, "quantization": (scale or 0.0, zero or 0)}
            for i, (shape, dtype, scale, zero) in enumerate(zip(shapes, types, scales, zeros))
        ]

    def get_input_details(self):
        i = self.lce
        return self.details(i.input_shapes, i.input_types, i.input_scales, i.input_zero_points)

    def get_output_details(self):
        i = self.lce
        return self.details(i.output_shapes, i.output_types, i.output_scales, i.output_zero_points)

    def set_tensor(self, index, value):
        self.values[index] = value

    def invoke(self):
        self.results = self.lce.predict(self.values)

    def get_tensor(self, index):
        return self.results[index]


class Dut:
    def __init__(self, model, kernels):
        import numpy as np

        self.np = np
        if kernels == "lce":
            self.interpreter = Lce(model)
        else:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType

            resolver = OpResolverType.BUILTIN_REF if kernels == "reference" else OpResolverType.AUTO
            self.interpreter = Interpreter(
                model_path=model, num_threads=1, experimental_op_resolver_type=resolver
            )
            self.interpreter.allocate_tensors()
        self.inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()
        self.model = model
        self.buffer = bytearray()
        self.expected = 0

    def command(self, text):
        words = text.split()
        if not words:
            return
        name, args = words[0], words[1:]
        if name == "name":
            say("m-name-dut-[%s]" % ("lce" if isinstance(self.interpreter, Lce) else "litert"))
        elif name == "profile":
            say("m-profile-[ULPMark for tinyML Firmware V0.0.1]")
            say("m-model-[%s]" % self.model.rsplit("/", 1)[-1].rsplit(".", 1)[0])
        elif name == "timestamp":
            lap()
        elif name == "db":
            self.db(args)
        elif name == "infer":
            self.infer(args)
        elif name == "results":
            self.results()
        else:
            say("e-[Unknown command: %s]" % name)

    def db(self, args):
        if not args:
            say("e-[Command 'db' requires a subcommand]")
        elif args[0] == "load":
            n = int(args[1]) if len(args) > 1 and args[1].isdigit() else 0
            if n <= 0:
                say("e-[Command 'db load' must be >0 bytes]")
                return
            self.expected, self.buffer = n, bytearray()
            say("m-[Expecting %d bytes]" % n)
        else:
            digits = args[0]
            if len(digits) % 2:
                say("e-[Insufficent number of hex digits]")
                return
            try:
                self.buffer += bytes.fromhex(digits)
            except ValueError:
                say("e-[Invalid hex digit '%s']" % digits)
                return
            if len(self.buffer) >= self.expected:
                del self.buffer[self.expected :]
                self.set_inputs()
                say("m-load-done")

    def set_inputs(self):
        offset = 0
        for detail in self.inputs:
            dtype = self.np.dtype(detail["dtype"])
            n = int(self.np.prod(detail["shape"])) * dtype.itemsize
            chunk = bytes(self.buffer[offset : offset + n])
            offset += n
            if len(chunk) != n:
                say("e-[the input has %d bytes, the model takes more]" % len(self.buffer))
                return
            value = self.np.frombuffer(chunk, dtype=dtype).reshape(detail["shape"])
            self.interpreter.set_tensor(detail["index"], value)
        if offset != len(self.buffer):
            say("e-[the input has %d bytes, the model takes %d]" % (len(self.buffer), offset))

    def infer(self, args):
        n = int(args[0]) if args and args[0].isdigit() else 0
        warmup = int(args[1]) if len(args) > 1 and args[1].isdigit() else 10
        if n <= 0:
            say("e-[Inference iterations must be >0]")
            return
        invoke = self.interpreter.invoke
        say("m-warmup-start-%d" % warmup)
        for _ in range(warmup):
            invoke()
        say("m-warmup-done")
        say("m-infer-start-%d" % n)
        lap()
        for _ in range(n):
            invoke()
        lap()
        say("m-infer-done")
        self.results()

    def results(self):
        values, hexes = [], []
        for detail in self.outputs:
            out = self.interpreter.get_tensor(detail["index"])
            scale, zero = detail["quantization"]
            flat = out.reshape(-1)
            if out.dtype.kind == "f" or scale == 0:
                values += [float(v) for v in flat]
            else:
                values += [(int(v) - zero) * scale for v in flat]
            hexes.append(out.tobytes().hex())
        say("m-results-[%s]" % ",".join("%0.3f" % v for v in values))
        say("m-results-bytes-[%s]" % ",".join(hexes))


def main():
    model, kernels = sys.argv[1], sys.argv[2]
    say("m-timestamp-mode-performance")
    lap()
    runtime, package = ("LCE", "larq-compute-engine") if kernels == "lce" else ("LiteRT", "ai-edge-litert")
    try:
        dut = Dut(model, kernels)
    except ImportError as e:
        say("e-[failed to import %s (%s): install it with `pip install %s numpy`]" % (runtime, e, package))
        return
    except Exception as e:  # a model the interpreter refuses: its own words
        say("e-[%s failed to load %s: %s]" % (runtime, model, str(e).replace("\n", " ")))
        return
    say("m-init-done")
    say("m-ready")
    command = ""
    while True:
        c = sys.stdin.read(1)
        if not c:
            return
        if c == "%":
            dut.command(command[:COMMAND_BYTES])
            command = ""
            say("m-ready")
        elif len(command) < COMMAND_BYTES:
            command += c


if __name__ == "__main__":
    main()
