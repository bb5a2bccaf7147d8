#!/usr/bin/python3
"""A valid model of a chosen size for the fault tests (tests/e2e_faults.sh):
input [1,C,16,16], BLOCKS residual blocks Conv-Relu-Conv-Add (C channels,
3x3), then GlobalAveragePool-Flatten-Gemm to 10 classes. Each block's inner
channels are prunable. About BLOCKS * C * C * 72 bytes.

Usage: make_wide_model.py OUT.onnx CHANNELS BLOCKS
"""
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def main():
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    path, c, blocks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(c * 1000 + blocks)
    nodes, inits = [], []
    x = "input"
    scale = np.float32(np.sqrt(2.0 / (9 * c)))
    for b in range(blocks):
        for k in range(2):
            w = "b%d.conv%d.w" % (b, k)
            inits.append(numpy_helper.from_array(rng.standard_normal((c, c, 3, 3), dtype=np.float32) * scale, w))
            nodes.append(helper.make_node("Conv", [x if k == 0 else "b%d.r" % b, w], ["b%d.c%d" % (b, k)],
                                          name="b%d.conv%d" % (b, k), kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
            if k == 0:
                nodes.append(helper.make_node("Relu", ["b%d.c0" % b], ["b%d.r" % b], name="b%d.relu" % b))
        nodes.append(helper.make_node("Add", ["b%d.c1" % b, x], ["b%d.out" % b], name="b%d.add" % b))
        x = "b%d.out" % b
    inits.append(numpy_helper.from_array(rng.standard_normal((10, c), dtype=np.float32) * 0.01, "fc.w"))
    inits.append(numpy_helper.from_array(np.zeros(10, np.float32), "fc.b"))
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["output"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "wide",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, c, 16, 16])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="make_wide_model")
    m.ir_version = 7
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())
