#!/usr/bin/python3
"""Every CNN family users bring (tools/export_zoo.py: PyTorch exports, BN folded
and kept, opsets 9-17, random and briefly trained weights) through report,
run and compress, against outside references:

  report   `report --json` total MACs equal an independent count made here
           from the ONNX graph and onnx.shape_inference (Conv = output
           elements x input channels per group x kernel area, Gemm/MatMul =
           M x N x K, batch 1);
  run      `run --threads 2` equals ONNX Runtime on the same input (1e-4
           relative to the output's scale: float32 sums in another order);
  compress `compress --epochs 0 --rate 0.5 --keep-masked M` writes files
           onnx.checker (full_check) accepts, the pruned and masked models
           agree in ONNX Runtime (1e-4, the --keep-masked promise) at batch 1
           and 2, and MACs fall.

Each family has an expected outcome (EXPECTED below). A family the tool
cannot handle yet is expected to be refused: every command exits 4 naming a
node of the op it cannot handle (the node must exist with that op type). The
test passes when every file meets its family's expectation; when support
lands, flip the family to PRUNED. Ends with a family x outcome table.
"""
import json
import os
import re
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from refs_common import BUILD, SFP, checker_problem, ort_problem, run

ZOO = os.path.join(BUILD, "zoo")
OUT = os.path.join(BUILD, "zoo-check")
TOL = 1e-4

PRUNED = {"outcome": "pruned"}


def refused(op_pattern):
    """report, run and compress exit 4 naming a node whose op type matches."""
    return {"outcome": "refused", "op": op_pattern}


EXPECTED = {
    "resnet_cifar": PRUNED,
    "resnet_tv": PRUNED,
    "wide_resnet": PRUNED,
    "densenet": PRUNED,
    "vgg": PRUNED,
    "squeezenet": PRUNED,
    "efficientnet_b0": PRUNED,
    "shared_conv": PRUNED,
    # ReLU6 is exported as Clip
    "mobilenet_v2": refused("Clip"),
    # opset < 14 exports hardswish as HardSigmoid + Mul, opset 14+ as HardSwish
    "mobilenet_v3": refused("HardSigmoid|HardSwish"),
    # x.mean([2, 3]) heads (and the channel shuffle behind them)
    "shufflenet_v2": refused("ReduceMean"),
    "mnasnet": refused("ReduceMean"),
    # ONNX local functions are not inlined: their call nodes are in another domain
    "functions": refused("Block.*"),
    # grouped convolutions: each group loses as many channels
    "resnext": PRUNED,
    "regnet": PRUNED,
    # a channel that would reach a layer through Sigmoid (f(0) != 0) is left
    # whole, so pruned = masked
    "sigmoid_between": PRUNED,
}

NODE_IN_MESSAGE = re.compile(r"node '([^']*)' \(([^)]*)\)")


# ---------------------------------------------------------------- MAC count
def independent_macs(path, input_dims=None):
    """Conv/Gemm/MatMul MACs at batch 1, from onnx.shape_inference; input_dims
    gives the sizes of the first input's symbolic dims (default: batch 1)."""
    m = onnx.load(path)
    for vi in m.graph.input:
        dims = vi.type.tensor_type.shape.dim
        for k, d in enumerate(dims):
            if not d.HasField("dim_value") and (k == 0 or input_dims):
                d.Clear()
                d.dim_value = 1 if k == 0 else input_dims[k]
        input_dims = None
    m = shape_inference.infer_shapes(m, strict_mode=True)
    shapes = {t.name: list(t.dims) for t in m.graph.initializer}
    for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    macs = 0
    for n in m.graph.node:
        if n.op_type == "Conv":
            w, y = shapes[n.input[1]], shapes[n.output[0]]
            macs += int(np.prod(y)) * int(np.prod(w[1:]))
        elif n.op_type == "Gemm":
            a, y = shapes[n.input[0]], shapes[n.output[0]]
            trans_a = any(at.name == "transA" and at.i for at in n.attribute)
            macs += y[0] * y[1] * (a[0] if trans_a else a[1])
        elif n.op_type == "MatMul":
            a, y = shapes[n.input[0]], shapes[n.output[0]]
            macs += int(np.prod(y)) * a[-1]
    return macs


# ---------------------------------------------------------------- checks
def names_node_of(msg, model_nodes, op_pattern):
    """None when msg names a node of the model whose op type matches."""
    for name, op in NODE_IN_MESSAGE.findall(msg):
        if re.fullmatch(op_pattern, op) and model_nodes.get(name) == op:
            return None
    return f"message does not name a node of op {op_pattern}: {msg.strip()}"


def check_report(entry, path):
    rc, out = run([SFP, "report", path, "--json"])
    if rc != 0:
        return None, [f"report exit {rc}: {out.strip()}"]
    ours = json.loads(out)["models"][0]["total"]["macs"]
    theirs = independent_macs(path)
    return ours, [] if ours == theirs else [f"report MACs {ours}, independent count {theirs}"]


def check_run(entry, path):
    base = os.path.join(OUT, entry["name"])
    shape = list(entry["input_shape"])
    if entry["dynamic_batch"]:
        shape[0] = 2
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    xpb, ref, ours = base + ".x.pb", base + ".ort.pb", base + ".ours.pb"
    with open(xpb, "wb") as f:
        f.write(numpy_helper.from_array(x, "x").SerializeToString())
    rc, out = run(["node", "tools/ort_compare.js", "--run", path, "--input", xpb, "--output", ref])
    if rc != 0:
        return [f"ONNX Runtime: {out.strip()}"]
    rc, out = run([SFP, "run", path, "--input", xpb, "--output", ours, "--threads", "2", "--quiet"])
    if rc == 0:
        rc, out = run(["node", "tools/ort_compare.js", "--check-pb", ref, ours, "--tol", str(TOL)])
    return [] if rc == 0 else [f"run vs ONNX Runtime: {out.strip()}"]


def check_compress(entry, path, exact):
    """(MAC reduction, masked-vs-pruned line, problems)."""
    base = os.path.join(OUT, entry["name"])
    dst, masked, rjson = base + ".pruned.onnx", base + ".masked.onnx", base + ".json"
    rc, out = run([SFP, "compress", path, dst, "--epochs", "0", "--rate", "0.5", "--keep-masked", masked,
                   "--report-json", rjson, "--quiet"])
    if rc != 0:
        return None, None, [f"compress exit {rc}: {out.strip()}"]
    problems = [p for p in (checker_problem(dst), checker_problem(masked)) if p]
    cut = json.load(open(rjson))["reduction"]["macs"]
    if not cut > 0.1:
        problems.append(f"MACs fell by only {cut:.3f}")
    batches = "1,2" if entry["dynamic_batch"] else "1"
    diff = ort_problem(masked, dst, batches, TOL)
    if exact and diff:
        problems.append("masked vs pruned: " + diff)
    if not exact and not diff:
        problems.append("pruned now equals masked: flip this family to PRUNED in EXPECTED")
    return cut, diff, problems


def check(entry, nodes):
    """(outcome text for the table, problems)."""
    path = os.path.join(ZOO, entry["file"])
    want = EXPECTED[entry["family"]]
    if want["outcome"] == "refused":
        problems = []
        base = os.path.join(OUT, entry["name"])
        for cmd in (["report", path], ["run", path, "--input", base + ".none.pb", "--output", base + ".none.out.pb"],
                    ["compress", path, base + ".refused.onnx", "--epochs", "0", "--rate", "0.5"]):
            rc, out = run([SFP] + cmd)
            if rc != 4:
                problems.append(f"{cmd[0]}: exit {rc}, expected 4: {out.strip()}")
                continue
            p = names_node_of(out, nodes, want["op"])
            if p:
                problems.append(f"{cmd[0]}: {p}")
        named = NODE_IN_MESSAGE.findall(out)
        return f"refused, exit 4 at {named[0][1] if named else '?'}", problems
    macs, problems = check_report(entry, path)
    problems += check_run(entry, path)
    if want["outcome"] == "compress exit 3":
        rc, out = run([SFP, "compress", path, os.path.join(OUT, entry["name"] + ".bad.onnx"), "--epochs", "0",
                       "--rate", "0.5", "--quiet"])
        if rc == 0:
            problems.append("compress works now: flip this family to PRUNED in EXPECTED")
        elif rc != 3 or names_node_of(out, nodes, want["op"]):
            problems.append(f"compress: exit {rc}: {out.strip()}")
        return "report+run ok; compress exit 3 (grouped conv)", problems
    cut, diff, more = check_compress(entry, path, want["outcome"] == "pruned")
    problems += more
    if want["outcome"] == "pruned":
        return f"pruned, MACs -{100 * cut:.0f}%" if cut is not None else "pruned", problems
    rel = re.search(r"rel ([0-9.e+-]+)", diff or "")
    return f"pruned, masked differs (rel {rel.group(1) if rel else '?'})", problems


def main():
    os.makedirs(OUT, exist_ok=True)
    start = time.time()
    rc, out = run(["/usr/bin/python3", "tools/export_zoo.py", ZOO])
    if rc != 0:
        print("export_zoo.py failed:\n" + out)
        return 1
    manifest = json.load(open(os.path.join(ZOO, "manifest.json")))
    failures, table = [], {}
    for entry in manifest["models"]:
        model = onnx.load(os.path.join(ZOO, entry["file"]), load_external_data=False)
        nodes = {n.name: n.op_type for n in model.graph.node}
        outcome, problems = check(entry, nodes)
        table.setdefault(entry["family"], []).append((entry["name"], outcome, problems))
        if problems:
            failures.append(f"{entry['name']}: " + "; ".join(problems))
        else:
            print(f"ok   {entry['name']}: {outcome}")
    print(f"\n{'family':<17} {'files':>5}  outcome")
    for family, rows in table.items():
        outcomes = sorted({o for _, o, p in rows if not p})
        bad = [n for n, _, p in rows if p]
        text = " | ".join(outcomes) + (f" | FAILED: {', '.join(bad)}" if bad else "")
        print(f"{family:<17} {len(rows):>5}  {text}")
    for f in failures:
        print("FAIL " + f)
    print(f"zoo: {len(manifest['models'])} models checked, {len(failures)} failed ({time.time() - start:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
