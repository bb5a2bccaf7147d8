#!/usr/bin/python3
"""Inputs whose C/H/W are symbolic (a PyTorch export with dynamic height and
width). Without --input-shape every command refuses (exit 4) with a message
naming the input and the option; with `--input-shape 1x3x32x32` (or
`x:1x3x32x32`, or the sizes after the batch alone):
  report   total MACs equal the independent count of tests/check_zoo.py at
           32x32, the same for every spelling of the option;
  run      equals ONNX Runtime on a batch of 2 (1e-4);
  compress --epochs 0 --rate 0.5 --keep-masked: onnx.checker clean, pruned =
           masked in ONNX Runtime (1e-4).
Bad specs (wrong rank, a size contradicting the model, an unknown input
name, garbage) are usage errors, exit 2, naming the option.
"""
import json
import os
import sys
import warnings

import numpy as np
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
from check_zoo import independent_macs  # noqa: E402
from export_zoo import CifarResNet  # noqa: E402
from refs_common import BUILD, SFP, checker_problem, ort_problem, run  # noqa: E402

OUT = os.path.join(BUILD, "input-shape")


def main():
    os.makedirs(OUT, exist_ok=True)
    src = os.path.join(OUT, "hw_dynamic.onnx")
    torch.manual_seed(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(CifarResNet(8, (1, 1)).eval(), torch.randn(1, 3, 32, 32), src, opset_version=13,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"}, "y": {0: "batch"}})
    problems = []
    rc, out = run([SFP, "report", src])
    if rc != 4 or "--input-shape" not in out or "'x'" not in out:
        problems.append(f"without --input-shape: exit {rc}: {out.strip()}")
    want = independent_macs(src, [1, 3, 32, 32])
    for spec in ("1x3x32x32", "x:1x3x32x32", "3x32x32"):
        rc, out = run([SFP, "report", src, "--json", "--input-shape", spec])
        macs = json.loads(out)["models"][0]["total"]["macs"] if rc == 0 else None
        if macs != want:
            problems.append(f"report --input-shape {spec}: exit {rc}, MACs {macs}, independent count {want}: "
                            f"{out.strip()[:200]}")
    xpb, ref, ours = (os.path.join(OUT, n) for n in ("x.pb", "ort.pb", "ours.pb"))
    x = np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with open(xpb, "wb") as f:
        f.write(numpy_helper.from_array(x, "x").SerializeToString())
    rc, out = run(["node", "tools/ort_compare.js", "--run", src, "--input", xpb, "--output", ref])
    if rc == 0:
        rc, out = run([SFP, "run", src, "--input", xpb, "--output", ours, "--input-shape", "1x3x32x32", "--quiet"])
    if rc == 0:
        rc, out = run(["node", "tools/ort_compare.js", "--check-pb", ref, ours, "--tol", "1e-4"])
    if rc != 0:
        problems.append("run vs ONNX Runtime: " + out.strip())
    dst, masked = os.path.join(OUT, "pruned.onnx"), os.path.join(OUT, "masked.onnx")
    rc, out = run([SFP, "compress", src, dst, "--epochs", "0", "--rate", "0.5", "--keep-masked", masked,
                   "--input-shape", "1x3x32x32", "--quiet"])
    if rc != 0:
        problems.append(f"compress exit {rc}: {out.strip()}")
    else:
        problems += [p for p in (checker_problem(dst), checker_problem(masked)) if p]
        p = ort_problem(masked, dst, "1,2", 1e-4)
        if p:
            problems.append("masked vs pruned: " + p)
    for spec, says in (("3x32", "rank 4, 2 sizes"), ("1x4x32x32", "dim 1 is 3 in the model, 4 given"),
                       ("y:1x3x32x32", "no graph input 'y'"), ("1x3xx32", "not a list of sizes"),
                       ("1x3x32x32x", "not a list of sizes"), ("1x0x32x32", "not a list of sizes")):
        rc, out = run([SFP, "report", src, "--input-shape", spec])
        if rc != 2 or says not in out or "--input-shape" not in out:
            problems.append(f"--input-shape {spec}: exit {rc}, expected 2 saying '{says}': {out.strip()}")
    for p in problems:
        print("FAIL " + p)
    if not problems:
        print(f"ok   symbolic C/H/W: refused without --input-shape, report/run/compress with it "
              f"(MACs {want:,}), bad specs exit 2")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
