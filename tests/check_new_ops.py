#!/usr/bin/python3
"""End-to-end check of the mobile-network ops (Clip/ReLU6, LeakyRelu,
HardSigmoid, HardSwish, ReduceMean, Split, Pad reflect/edge) on a tiny
PyTorch net exported at several opsets, and of the forms PyTorch 1.13 does
not write (opset 18 axes and num_outputs, reductions over non-adjacent axes,
float reflect/edge pads) on one-node models made with onnx.helper:
  1. `onnx-sfp run` equals ONNX Runtime (and PyTorch for the exports),
     max difference relative to the output's scale <= 1e-4;
  2. exports: `compress --epochs 0 --rate 0.5 --keep-masked M`: OUT and M
     pass onnx.checker, agree in ONNX Runtime to 1e-4 at batches 1 and 3,
     and MACs fall (every op's channels were followed, not left whole).
Model-local functions, inlined on load: the same net exported with
export_modules_as_functions (nested calls) gets checks 1 and 2 and OUT holds
no function; a hand-made model binds attributes by ref_attr_name (given,
and absent: the op's default) and omits an output (hostile function files:
tests/bad/gen_bad_models.py).
"""
import json
import os
import sys
import warnings

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from refs_common import BUILD, SFP, checker_problem, finish, ort_problem, run

OUT = os.path.join(BUILD, "new-ops")
TOL = 1e-4  # float32 sums in another order: a few ulps per term


class Net(nn.Module):
    """Every new op on a 32x32 input: ReLU6 stem, reflect and replicate pads,
    LeakyReLU, a channel split whose parts go their own ways, a chunk (two
    Slices of channels, bounds computed from the shape), a MobileNetV3
    squeeze-excite (mean over H, W, Hardsigmoid gate, Hardswish) and
    x.mean([2, 3]) heads."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU6())
        self.conv_r = nn.Conv2d(16, 16, 3)
        self.conv_e = nn.Conv2d(16, 24, 3)
        self.conv_a = nn.Conv2d(8, 12, 1)
        self.conv_b = nn.Conv2d(16, 12, 3, padding=1)
        self.se_down = nn.Conv2d(24, 8, 1)
        self.se_up = nn.Conv2d(8, 24, 1)
        self.conv_c = nn.Conv2d(12, 16, 1)
        self.fc = nn.Linear(16 + 24, 10)

    def forward(self, x):
        x = self.stem(x)                                                 # 16 x 16 x 16
        x = F.leaky_relu(self.conv_r(F.pad(x, (1, 1, 1, 1), mode="reflect")), 0.1)
        x = F.hardswish(self.conv_e(F.pad(x, (1, 1, 1, 1), mode="replicate")))  # 24 ch
        s = x.mean([2, 3], keepdim=True)
        x = x * F.hardsigmoid(self.se_up(F.relu(self.se_down(s))))
        a, b = torch.split(x, [8, 16], dim=1)
        y = torch.cat([F.relu6(self.conv_a(a)), F.hardswish(self.conv_b(b))], dim=1)  # 24 ch
        c1, c2 = y.chunk(2, dim=1)
        z = F.leaky_relu(self.conv_c(c1 + c2))                          # 16 ch
        return self.fc(torch.cat([z.mean([2, 3]), x.mean([2, 3])], dim=1))


def save_pb(array, name, path):
    with open(path, "wb") as f:
        f.write(numpy_helper.from_array(np.ascontiguousarray(array), name).SerializeToString())


def compare_pb(expected, actual):
    rc, out = run(["node", "tools/ort_compare.js", "--check-pb", expected, actual, "--tol", str(TOL)])
    return None if rc == 0 else out.strip().replace("\n", " | ")


def run_problems(path, inputs, torch_outputs=None):
    """`onnx-sfp run` on inputs {name: array} against ONNX Runtime (and PyTorch)."""
    m = onnx.load(path)
    base = path[: -len(".onnx")]
    in_files = []
    for name, a in inputs.items():
        in_files.append(f"{base}.in.{len(in_files)}.pb")
        save_pb(a, name, in_files[-1])
    n_out = len(m.graph.output)
    ours = [f"{base}.ours.{i}.pb" for i in range(n_out)]
    ort = [f"{base}.ort.{i}.pb" for i in range(n_out)]
    rc, out = run([SFP, "run", path, "--input", *in_files, "--output", *ours, "--quiet"])
    if rc != 0:
        return [f"run exit {rc}: {out.strip()}"]
    rc, out = run(["node", "tools/ort_compare.js", "--run", path, "--input", *in_files, "--output", *ort])
    if rc != 0:
        return [f"ONNX Runtime --run exit {rc}: {out.strip()}"]
    problems = [f"output {i} vs ONNX Runtime: {p}" for i in range(n_out) if (p := compare_pb(ort[i], ours[i]))]
    for i, t in enumerate(torch_outputs or []):
        ref = f"{base}.torch.{i}.pb"
        save_pb(t, m.graph.output[i].name, ref)
        p = compare_pb(ref, ours[i])
        if p:
            problems.append(f"output {i} vs PyTorch: {p}")
    return problems


def export(path, opset, training, functions=None):
    torch.manual_seed(opset)
    net = Net().eval()
    with torch.no_grad():  # BN statistics that are not the identity
        for mod in net.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    x = torch.rand(1, 3, 32, 32)
    torch.onnx.export(net, x, path, opset_version=opset, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, training=training,
                      export_modules_as_functions=functions or False)
    with torch.no_grad():
        return x.numpy(), net(x).numpy()


def ops_of(path):
    return sorted({n.op_type for n in onnx.load(path).graph.node})


def check_export(opset, training, functions=None):
    kept = training == torch.onnx.TrainingMode.PRESERVE
    tag = f"net opset {opset}" + (" BN kept" if kept else "") + (" as functions" if functions else "")
    path = os.path.join(OUT, f"net{opset}{'bn' if kept else ''}{'fn' if functions else ''}.onnx")
    x, y = export(path, opset, training, functions)
    problems = run_problems(path, {"x": x}, [y])
    if functions and len(onnx.load(path).functions) < 2:
        problems.append("the export holds fewer than 2 functions")
    pruned, masked, rjson = (path.replace(".onnx", s) for s in (".pruned.onnx", ".masked.onnx", ".json"))
    rc, out = run([SFP, "compress", path, pruned, "--epochs", "0", "--rate", "0.5", "--keep-masked", masked,
                   "--report-json", rjson, "--quiet"])
    if rc != 0:
        return tag, problems + [f"compress exit {rc}: {out.strip()}"]
    problems += [p for p in (checker_problem(pruned), checker_problem(masked)) if p]
    p = ort_problem(masked, pruned, "1,3", TOL)
    if p:
        problems.append("masked vs pruned: " + p)
    if functions and onnx.load(pruned).functions:
        problems.append("the compressed model still holds functions")
    macs = json.load(open(rjson))["reduction"]["macs"]
    if not macs > 0.3:
        problems.append(f"MACs fell by {macs:.3f} only: channels through the new ops were left whole")
    return f"{tag} ({', '.join(ops_of(path))}): MACs -{100 * macs:.1f} %", problems


def one_node_model(path, opset, node, inputs, inits):
    """One node on float inputs {name: shape}, constant int64 inits {name: list}."""
    g = helper.make_graph(
        [node], "one", [helper.make_tensor_value_info(k, TensorProto.FLOAT, s) for k, s in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in node.output],
        [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in inits.items()])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]), path)


def check_one_node(name, opset, node, shape, inits=None):
    path = os.path.join(OUT, name + ".onnx")
    one_node_model(path, opset, node, {"x": list(shape)}, inits or {})
    rng = np.random.default_rng(len(name))
    return f"{name}: run matches ONNX Runtime", run_problems(path, {"x": rng.uniform(-2, 2, shape).astype(np.float32)})


def attr_ref(name, ref, kind):
    a = onnx.AttributeProto()
    a.name, a.ref_attr_name, a.type = name, ref, kind
    return a


def check_function_attributes():
    """Act(x; slope) = LeakyRelu(x, alpha=slope) then Twice(x) = (Act, Act)
    with its second output unused; called with slope 0.3, 0.05 and none."""
    mk = helper.make_node
    leaky = mk("LeakyRelu", ["a"], ["b"])
    leaky.attribute.append(attr_ref("alpha", "slope", onnx.AttributeProto.FLOAT))
    act = helper.make_function("local", "Act", ["a"], ["b"], [leaky], [helper.make_opsetid("", 13)], ["slope"])
    twice = helper.make_function("local", "Twice", ["p"], ["q", "r"],
                                 [mk("Act", ["p"], ["t"], domain="local", slope=0.3),
                                  mk("Act", ["t"], ["q"], domain="local"),
                                  mk("Relu", ["t"], ["r"])],
                                 [helper.make_opsetid("", 13), helper.make_opsetid("local", 1)], [])
    nodes = [mk("Twice", ["x"], ["u", ""], domain="local", name="call0"),
             mk("Act", ["u"], ["y"], domain="local", name="call1", slope=0.05)]
    g = helper.make_graph(nodes, "fn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("local", 1)],
                          functions=[act, twice])
    path = os.path.join(OUT, "function_attributes.onnx")
    onnx.save(m, path)
    x = np.random.default_rng(5).uniform(-2, 2, (2, 3, 4)).astype(np.float32)
    t = np.where(x >= 0, x, 0.3 * x)
    t = np.where(t >= 0, t, 0.01 * t)  # no slope: LeakyRelu's default alpha
    y = np.where(t >= 0, t, 0.05 * t)
    problems = run_problems(path, {"x": x}, [y])
    return "functions: ref_attr_name bound (given and default), omitted output", problems


def main():
    warnings.filterwarnings("ignore")  # the exporter's advice on constant folding
    os.makedirs(OUT, exist_ok=True)
    results = []
    for opset in (11, 13, 14, 17):
        results.append(check_export(opset, torch.onnx.TrainingMode.EVAL))
    results.append(check_export(14, torch.onnx.TrainingMode.PRESERVE))
    results.append(check_export(15, torch.onnx.TrainingMode.EVAL, {nn.Sequential, nn.ReLU6, nn.BatchNorm2d}))
    results.append(check_function_attributes())
    mk = helper.make_node
    results += [
        check_one_node("reduce_mean_axes_input_opset18", 18, mk("ReduceMean", ["x", "axes"], ["y"], keepdims=0),
                       (2, 3, 4, 5), {"axes": [2, -1]}),
        check_one_node("reduce_mean_axes_1_3", 13, mk("ReduceMean", ["x"], ["y"], axes=[1, 3], keepdims=1),
                       (2, 3, 4, 5)),
        check_one_node("split_num_outputs_opset18", 18,
                       mk("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3), (2, 7, 3, 3)),
        check_one_node("split_attribute_opset11", 11, mk("Split", ["x"], ["a", "b"], axis=2, split=[1, 3]),
                       (2, 3, 4, 2)),
        check_one_node("pad_reflect", 13, mk("Pad", ["x", "pads"], ["y"], mode="reflect"), (2, 3, 4, 5),
                       {"pads": [0, 0, 3, 2, 0, 0, 1, 4]}),
        check_one_node("pad_edge_crop", 13, mk("Pad", ["x", "pads"], ["y"], mode="edge"), (2, 3, 4, 5),
                       {"pads": [0, 1, -1, 2, 0, 0, 3, -2]}),
        check_one_node("clip_attributes_opset6", 6, mk("Clip", ["x"], ["y"], min=-0.5, max=1.0), (2, 3, 4)),
        check_one_node("hardsigmoid_alpha_beta", 13, mk("HardSigmoid", ["x"], ["y"], alpha=0.3, beta=0.4),
                       (2, 3, 4)),
    ]
    failures = []
    for what, problems in results:
        if problems:
            failures.append(f"{what}: " + "; ".join(problems))
        else:
            print("ok   " + what)
    return finish(failures, len(results), "new ops end to end")


if __name__ == "__main__":
    sys.exit(main())
