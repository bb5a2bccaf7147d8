#!/usr/bin/python3
"""Folds every BatchNormalization that directly follows a Conv into the
Conv's weights and bias, as PyTorch's eval-mode export does (the "fused"
form of the reference exports): w' = w * g / sqrt(v + eps) per output
channel, b' = (b - m) * g / sqrt(v + eps) + beta. The model's metadata is
kept. Used by bench/fused_bn.sh to fine-tune the same network in both forms.

  /usr/bin/python3 tools/fold_bn.py IN.onnx OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def fold(model):
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    readers = {}
    for n in g.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    drop, renames = [], {}
    for bn in [n for n in g.node if n.op_type == "BatchNormalization"]:
        conv = producer.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or readers.get(conv.output[0]) != 1 or \
                any(i not in inits for i in list(bn.input[1:5]) + [conv.input[1]]):
            continue
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        scale, beta, mean, var = (numpy_helper.to_array(inits[i]).astype(np.float64) for i in bn.input[1:5])
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        b = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if len(conv.input) > 2 and conv.input[2] \
            else np.zeros(w.shape[0])
        k = scale / np.sqrt(var + eps)
        w_name, b_name = conv.input[1], conv.name + ".folded_bias"
        inits[w_name].CopyFrom(numpy_helper.from_array((w * k.reshape(-1, 1, 1, 1)).astype(np.float32), w_name))
        g.initializer.append(numpy_helper.from_array(((b - mean) * k + beta).astype(np.float32), b_name))
        while len(conv.input) < 3:
            conv.input.append("")
        conv.input[2] = b_name
        renames[bn.output[0]] = conv.output[0]
        drop.append(bn)
    for bn in drop:
        g.node.remove(bn)
    for n in g.node:
        for k, i in enumerate(n.input):
            if i in renames:
                n.input[k] = renames[i]
    for o in g.output:
        if o.name in renames:
            fail = f"BatchNormalization output '{o.name}' is a graph output"
            raise SystemExit("fold_bn.py: " + fail)
    used = {i for n in g.node for i in n.input}
    for t in [t for t in g.initializer if t.name not in used]:
        g.initializer.remove(t)
    for i in [i for i in g.input if i.name in inits and i.name not in used]:
        g.input.remove(i)
    return len(drop)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.strip().splitlines()[-1])
    model = onnx.load(sys.argv[1])
    n = fold(model)
    onnx.checker.check_model(model)
    onnx.save(model, sys.argv[2])
    print(f"fold_bn.py: folded {n} BatchNormalization nodes into their Conv", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
