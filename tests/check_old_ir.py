#!/usr/bin/python3
"""IR version 3 models (the old model-zoo form, opset 8): every initializer is
also listed as a graph input. `compress --epochs 0 --rate 0.5 --keep-masked`
must write files onnx.checker (full_check) accepts, so every initializer of
the output, resized or added by the tool, is a graph input with its own
shape; pruned and masked models agree in ONNX Runtime (1e-4 relative, the
--keep-masked promise), and the output still runs as the input did (`run`
of the masked model equals ONNX Runtime, 1e-4).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from refs_common import BUILD, SFP, checker_problem, ort_problem, run

OUT = os.path.join(BUILD, "old-ir")


def ir3_model(path):
    """Conv(3->8)-BN-Relu-Conv(8->8)-BN-Relu-GAP-Flatten-Gemm(8->4) on 1x3x16x16."""
    rng = np.random.default_rng(7)

    def f32(*shape, scale=0.5):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    inits, nodes = [], []
    x = "x"
    for i, cin in enumerate((3, 8)):
        p = f"l{i}"
        inits += [numpy_helper.from_array(f32(8, cin, 3, 3), p + ".w"),
                  numpy_helper.from_array(1 + f32(8, scale=0.2), p + ".scale"),
                  numpy_helper.from_array(f32(8, scale=0.2), p + ".bias"),
                  numpy_helper.from_array(f32(8, scale=0.2), p + ".mean"),
                  numpy_helper.from_array(1 + np.abs(f32(8)), p + ".var")]
        nodes += [helper.make_node("Conv", [x, p + ".w"], [p + ".c"], name=p + ".conv", kernel_shape=[3, 3],
                                   pads=[1, 1, 1, 1]),
                  helper.make_node("BatchNormalization", [p + ".c", p + ".scale", p + ".bias", p + ".mean", p + ".var"],
                                   [p + ".n"], name=p + ".bn"),
                  helper.make_node("Relu", [p + ".n"], [p + ".r"], name=p + ".relu")]
        x = p + ".r"
    inits += [numpy_helper.from_array(f32(4, 8), "fc.w"), numpy_helper.from_array(f32(4), "fc.b")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["p"], name="gap"),
              helper.make_node("Flatten", ["p"], ["f"], name="flat"),
              helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"], name="fc", transB=1)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])]
    inputs += [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims)) for t in inits]
    graph = helper.make_graph(nodes, "ir3", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)], producer_name="check_old_ir")
    m.ir_version = 3
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)


def main():
    os.makedirs(OUT, exist_ok=True)
    src, dst, masked = (os.path.join(OUT, n) for n in ("ir3.onnx", "ir3.pruned.onnx", "ir3.masked.onnx"))
    ir3_model(src)
    rc, out = run([SFP, "compress", src, dst, "--epochs", "0", "--rate", "0.5", "--keep-masked", masked, "--quiet"])
    problems = [] if rc == 0 else [f"compress exit {rc}: {out.strip()}"]
    if rc == 0:
        problems += [p for p in (checker_problem(dst), checker_problem(masked)) if p]
        for path in (dst, masked):
            m = onnx.load(path)
            listed = {i.name for i in m.graph.input}
            missing = [t.name for t in m.graph.initializer if t.name not in listed]
            if m.ir_version != 3 or missing:
                problems.append(f"{os.path.basename(path)}: ir_version {m.ir_version}, initializers not inputs: {missing}")
        p = ort_problem(masked, dst, "1", 1e-4)
        if p:
            problems.append("masked vs pruned: " + p)
        if os.path.getsize(dst) >= os.path.getsize(src):
            problems.append("nothing was pruned")
    for p in problems:
        print("FAIL " + p)
    if not problems:
        print("ok   IR 3 model: compress output and --keep-masked list every initializer as an input, "
              "checker clean, pruned = masked in ONNX Runtime")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
