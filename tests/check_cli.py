#!/usr/bin/python3
"""Command-line conveniences, against numpy as the outside reference:
- `run` reads and writes NumPy .npy files by extension (np.save's files in,
  np.load reads ours back): the .npy output equals the TensorProto output of
  the same run bit for bit, an Add model gives numpy's a + b exactly, an int64
  and a 1-D array survive the round trip; broken, Fortran-order and
  big-endian files are refused with exit 3 or 4 and one error line;
- repeated --input A --input B is the list A B;
- global options before the command (onnx-sfp --quiet --threads 1 report);
- "did you mean" for a misspelled command or flag."""
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from check_common import Failures
from refs_common import BUILD, SFP

MODEL = "models/fmnist-resnet20.onnx"


def run(args):
    p = subprocess.run([SFP] + args, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def one_error(f, what, args, status, pattern):
    rc, _, err = run(args)
    lines = err.strip().splitlines()
    f.check(rc == status and len(lines) == 1 and lines[0].startswith("onnx-sfp: error: ") and pattern in lines[0],
            f"{what}: exit {rc} (expected {status}), stderr {err.strip()[-200:]!r} (expected {pattern!r})")


def make_add(path, dtype):
    a = helper.make_tensor_value_info("a", dtype, [2, 3])
    b = helper.make_tensor_value_info("b", dtype, [2, 3])
    y = helper.make_tensor_value_info("y", dtype, [2, 3])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"], name="add")], "add", [a, b], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def main():
    f = Failures()
    work = os.path.join(BUILD, "cli")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    p = lambda name: os.path.join(work, name)  # noqa: E731

    # ---- .npy in and out, beside TensorProto
    x = np.random.RandomState(1).rand(2, 1, 28, 28).astype(np.float32)
    np.save(p("x.npy"), x)
    rc, _, err = run(["run", MODEL, "--input", p("x.npy"), "--output", p("y.npy"), "--quiet"])
    f.check(rc == 0, f"run .npy: exit {rc}: {err.strip()[-200:]}")
    with open(p("x.pb"), "wb") as fh:
        fh.write(numpy_helper.from_array(x, "input").SerializeToString())
    rc, _, err = run(["run", MODEL, "--input", p("x.pb"), "--output", p("y.pb"), "--quiet"])
    f.check(rc == 0, f"run .pb: exit {rc}: {err.strip()[-200:]}")
    if not f:
        y_npy = np.load(p("y.npy"))
        y_pb = numpy_helper.to_array(onnx.load_tensor(p("y.pb")))
        f.check(y_npy.dtype == np.float32 and y_npy.shape == (2, 10), f"run .npy: output {y_npy.dtype} {y_npy.shape}")
        f.check(np.array_equal(y_npy, y_pb), "run: the .npy output differs from the TensorProto output")

    # ---- repeated --input, numpy as the reference; int64 and a float64 refusal
    make_add(p("add.onnx"), TensorProto.FLOAT)
    a = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    b = np.full((2, 3), 0.25, dtype=np.float32)
    np.save(p("a.npy"), a)
    with open(p("b.pb"), "wb") as fh:
        fh.write(numpy_helper.from_array(b, "b").SerializeToString())
    rc, _, err = run(["run", p("add.onnx"), "--input", p("a.npy"), "--input", p("b.pb"), "--output", p("s.npy")])
    f.check(rc == 0 and np.array_equal(np.load(p("s.npy")), a + b),
            f"run --input A --input B: exit {rc}, {err.strip()[-200:]}")
    make_add(p("add64.onnx"), TensorProto.INT64)
    i64 = np.array([[1, -2, 3], [2**40, 5, -6]], dtype=np.int64)
    np.save(p("i.npy"), i64)
    rc, _, err = run(["run", p("add64.onnx"), "--input", p("i.npy"), p("i.npy"), "--output", p("i2.npy")])
    f.check(rc == 0 and np.array_equal(np.load(p("i2.npy")), i64 + i64), f"run int64 .npy: exit {rc}, {err.strip()[-200:]}")
    np.save(p("d.npy"), a.astype(np.float64))
    one_error(f, "float64 for a float32 input", ["run", p("add.onnx"), "--input", p("d.npy"), p("d.npy"), "--output",
                                                 p("n.npy")], 3, "expects float32 [2, 3], the file holds float64 [2, 3]")

    # ---- broken and unsupported .npy files
    raw = open(p("a.npy"), "rb").read()
    with open(p("short.npy"), "wb") as fh:
        fh.write(raw[:-5])
    one_error(f, "truncated .npy", ["run", p("add.onnx"), "--input", p("short.npy"), p("a.npy"), "--output", p("n.npy")],
              3, "need 24 bytes of data, the file has 19")
    with open(p("junk.npy"), "wb") as fh:
        fh.write(b"\x93NUMPY\x01\x00\xff\xff{'descr'")
    one_error(f, "header past the end", ["run", p("add.onnx"), "--input", p("junk.npy"), p("a.npy"), "--output",
                                         p("n.npy")], 3, "header runs past the end")
    np.save(p("fortran.npy"), np.asfortranarray(a))
    one_error(f, "Fortran order", ["run", p("add.onnx"), "--input", p("fortran.npy"), p("a.npy"), "--output", p("n.npy")],
              4, "Fortran order")
    np.save(p("big.npy"), a.astype(">f4"))
    one_error(f, "big-endian", ["run", p("add.onnx"), "--input", p("big.npy"), p("a.npy"), "--output", p("n.npy")], 4,
              "is not a little-endian")
    np.save(p("v.npy"), np.array([1.5, 2.5, 3.5], dtype=np.float32))
    v = helper.make_tensor_value_info("v", TensorProto.FLOAT, [3])
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, [3])
    g = helper.make_graph([helper.make_node("Relu", ["v"], ["w"], name="relu")], "relu", [v], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), p("relu.onnx"))
    rc, _, err = run(["run", p("relu.onnx"), "--input", p("v.npy"), "--output", p("w.npy")])
    f.check(rc == 0 and np.array_equal(np.load(p("w.npy")), np.array([1.5, 2.5, 3.5], dtype=np.float32)),
            f"1-D .npy round trip: exit {rc}, {err.strip()[-200:]}")

    # ---- global options before the command; "did you mean"
    rc, out, err = run(["--quiet", "--threads", "1", "report", MODEL, "--json"])
    f.check(rc == 0 and out.startswith("{") and err == "", f"options before the command: exit {rc}, {err[-200:]}")
    rc, out, err = run(["--quiet"])
    f.check(rc == 2 and "usage: onnx-sfp COMMAND" in err, f"global options without a command: exit {rc}")
    one_error(f, "misspelled command", ["compres", MODEL, p("o.onnx")], 2, "unknown command 'compres' (did you mean 'compress'?)")
    one_error(f, "misspelled flag", ["compress", MODEL, p("o.onnx"), "--epoch", "0"], 2,
              "unknown option '--epoch' (did you mean --epochs?)")
    one_error(f, "misspelled flag 2", ["report", MODEL, "--jsno"], 2, "(did you mean --json?)")
    one_error(f, "nothing close", ["report", MODEL, "--frobnicate"], 2, "unknown option '--frobnicate'")
    rc, _, err = run(["report", MODEL, "--frobnicate"])
    f.check("did you mean" not in err, f"no suggestion when nothing is close: {err.strip()}")
    return f.finish("run reads and writes .npy as numpy does, repeated --input, options before the command, "
                    "did-you-mean hints", work)


if __name__ == "__main__":
    sys.exit(main())
