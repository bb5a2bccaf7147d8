#!/usr/bin/python3
"""End-to-end check of the forward runtime (`onnx-sfp run`) on real PyTorch
exports (tools/export_refs.py), against PyTorch's own outputs:
  1. at the export batch, on the export's input: max|ours - torch| relative
     to the output's scale <= 1e-4 (tools/ort_compare.js --check-pb);
  2. at 3x that batch (the input repeated): each image's output is the one
     PyTorch gave for it, which also proves the batch is free (models exported
     with a fixed batch included) and that no image leaks into another.
The files and their manifest come from tests/refs_common.py.
"""
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

from refs_common import BUILD, SFP, check_all, run

OUT = os.path.join(BUILD, "refs-run")
TOL = 1e-4  # float32 sums in another order than PyTorch's: a few ulps per term


def compare(expected, actual):
    """None when actual.pb matches expected.pb within TOL, else the reason."""
    rc, out = run(["node", "tools/ort_compare.js", "--check-pb", expected, actual, "--tol", str(TOL)])
    return None if rc == 0 else out.strip().replace("\n", " | ")


def tiled(src, dst, times):
    """Writes src's tensor repeated `times` times along dim 0 to dst."""
    t = onnx.load_tensor(src)
    a = numpy_helper.to_array(t)
    b = numpy_helper.from_array(np.concatenate([a] * times, axis=0), t.name)
    with open(dst, "wb") as f:
        f.write(b.SerializeToString())


def check(entry):
    base = entry["path"][: -len(".onnx")]
    name = entry["name"]
    problems = []
    out = os.path.join(OUT, name + ".out.pb")
    rc, msg = run([SFP, "run", entry["path"], "--input", base + ".input_0.pb", "--output", out, "--quiet"])
    if rc != 0:
        return [f"run exit {rc}: {msg.strip()}"]
    p = compare(base + ".output_0.pb", out)
    if p:
        problems.append("export batch: " + p)
    x3, y3, out3 = (os.path.join(OUT, f"{name}.{k}.pb") for k in ("x3", "y3", "out3"))
    tiled(base + ".input_0.pb", x3, 3)
    tiled(base + ".output_0.pb", y3, 3)
    rc, msg = run([SFP, "run", entry["path"], "--input", x3, "--output", out3, "--quiet", "--threads", "2"])
    if rc != 0:
        return problems + [f"run at 3x batch exit {rc}: {msg.strip()}"]
    p = compare(y3, out3)
    if p:
        problems.append("3x batch: " + p)
    return problems


def main():
    return check_all(OUT, check, lambda e: f"{e['name']}: run matches PyTorch at batch {e.get('export_batch', 1)} and 3x",
                     "reference models run")


if __name__ == "__main__":
    sys.exit(main())
