"""Ops the runtime holds shapes for but cannot (all) run: ConvTranspose,
Resize, LayerNormalization. A PyTorch net (Conv, ConvTranspose2d, nearest
and bilinear F.interpolate, a mean over H and W, LayerNorm, Linear; 32x32
input, opset 17; PyTorch writes no shapes for intermediate values):

- `report --json` MACs equal an independent count: Conv, ConvTranspose and
  Gemm MACs from onnx.shape_inference's shapes;
- `compress --epochs 0 --rate 0.5 --keep-masked` exits 0, onnx.checker
  accepts the output, ONNX Runtime gives pruned = masked (1e-4), the
  channels reaching the ConvTranspose stay whole (its input keeps its
  channel count) and --report-json's groups_left_whole names the node;
- `run` and `compress --data ... --epochs 1` exit 4 naming the
  ConvTranspose node;
- a net without the ConvTranspose (nearest x2 Resize, LayerNorm over the
  last axis of [N, C, H, W] and over the features) runs and equals ONNX
  Runtime and PyTorch (1e-4), and compress prunes through the Resize."""
import json
import os
import shutil
import sys
import warnings

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

from check_new_ops import run_problems
from refs_common import BUILD, SFP, checker_problem, finish, ort_problem, run

OUT = os.path.join(BUILD, "shape-only")
DATA = "/usr/share/datasets/fashion-mnist"
TOL = 1e-4  # float32 sums in another order: a few ulps per term


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.ct = nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1)
        self.c3 = nn.Conv2d(6, 12, 3, padding=1)
        self.c4 = nn.Conv2d(12, 16, 3, padding=1)
        self.ln = nn.LayerNorm(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.c2(F.relu(self.c1(x))))
        x = F.relu(self.ct(x))
        x = F.interpolate(x, scale_factor=0.5, mode="nearest")
        x = F.relu(self.c3(x))
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.relu(self.c4(x)).mean([2, 3])
        return self.fc(self.ln(x))


class Runnable(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.ln_w = nn.LayerNorm(32)
        self.c2 = nn.Conv2d(8, 12, 3, padding=1)
        self.ln = nn.LayerNorm(12)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        x = F.interpolate(F.relu(self.c1(x)), scale_factor=2, mode="nearest")
        x = self.ln_w(F.relu(self.c2(x)))  # over W only; c2's channels stay whole (the last LayerNorm)
        return self.fc(self.ln(x.mean([2, 3])))


def export(net, path):
    torch.manual_seed(0)
    for p in net.parameters():  # LayerNorm scale and shift that are not 1 and 0
        with torch.no_grad():
            p.add_(torch.randn_like(p) * 0.1)
    x = torch.rand(1, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), x, path, opset_version=17, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    with torch.no_grad():
        return x.numpy(), net(x).numpy()


def independent_macs(path):
    """Conv, ConvTranspose and Gemm MACs at batch 1 from onnx.shape_inference."""
    m = onnx.load(path)
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    m = onnx.shape_inference.infer_shapes(m)
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output)}
    dims.update({t.name: list(t.dims) for t in m.graph.initializer})
    total = 0
    for n in m.graph.node:
        if n.op_type == "Conv":  # output elements x C_in/group x kernel area
            total += int(np.prod(dims[n.output[0]])) * int(np.prod(dims[n.input[1]][1:]))
        elif n.op_type == "ConvTranspose":  # input elements x C_out/group x kernel area
            total += int(np.prod(dims[n.input[0]])) * int(np.prod(dims[n.input[1]][1:]))
        elif n.op_type == "Gemm":
            total += int(np.prod(dims[n.output[0]])) * dims[n.input[0]][1]
    return total


def channels_of(path, value):
    m = onnx.shape_inference.infer_shapes(onnx.load(path))
    for v in m.graph.value_info:
        if v.name == value:
            return v.type.tensor_type.shape.dim[1].dim_value
    return None


def check_shape_only(failures):
    path = os.path.join(OUT, "net.onnx")
    export(Net(), path)
    convt = next(n for n in onnx.load(path).graph.node if n.op_type == "ConvTranspose")
    rc, out = run([SFP, "report", path, "--json"])
    if rc != 0:
        failures.append(f"report exit {rc}: {out.strip()}")
    else:
        macs, want = json.loads(out)["models"][0]["total"]["macs"], independent_macs(path)
        if macs != want:
            failures.append(f"report MACs {macs}, independent count {want}")
    pruned, masked = os.path.join(OUT, "pruned.onnx"), os.path.join(OUT, "masked.onnx")
    rep = os.path.join(OUT, "report.json")
    rc, out = run([SFP, "compress", path, pruned, "--epochs", "0", "--rate", "0.5", "--keep-masked", masked,
                   "--report-json", rep])
    if rc != 0:
        failures.append(f"compress --epochs 0 exit {rc}: {out.strip()}")
        return
    for p in (checker_problem(pruned), ort_problem(pruned, masked, "1,2", TOL)):
        if p:
            failures.append(p)
    if channels_of(pruned, convt.input[0]) != channels_of(path, convt.input[0]):
        failures.append(f"the channels reaching {convt.name} were pruned")
    whole = json.load(open(rep))["groups_left_whole"]
    if not any(convt.name in g["reason"] for g in whole):
        failures.append(f"groups_left_whole does not name {convt.name}: {whole}")
    before, after = (m["total"]["macs"] for m in json.load(open(rep))["models"])
    if not after < before:
        failures.append(f"compress removed no MACs ({before} -> {after})")
    x = os.path.join(OUT, "x.pb")
    with open(x, "wb") as f:
        f.write(onnx.numpy_helper.from_array(np.zeros((1, 3, 32, 32), np.float32), "x").SerializeToString())
    for what, cmd in (("run", [SFP, "run", path, "--input", x, "--output", os.path.join(OUT, "y.pb")]),
                      ("compress --epochs 1", [SFP, "compress", path, os.path.join(OUT, "ft.onnx"), "--data", DATA,
                                               "--limit", "40", "--batch", "20", "--epochs", "1", "--threads", "2"])):
        rc, out = run(cmd)
        if rc != 4 or convt.name not in out:
            failures.append(f"{what}: exit {rc} (expected 4 naming {convt.name}): {out.strip()[-300:]}")


def check_runnable(failures):
    path = os.path.join(OUT, "runnable.onnx")
    x, y = export(Runnable(), path)
    failures.extend(f"runnable: {p}" for p in run_problems(path, {"x": x}, [y]))
    pruned, masked = os.path.join(OUT, "runnable.pruned.onnx"), os.path.join(OUT, "runnable.masked.onnx")
    rc, out = run([SFP, "compress", path, pruned, "--epochs", "0", "--rate", "0.5", "--keep-masked", masked])
    if rc != 0:
        failures.append(f"runnable: compress exit {rc}: {out.strip()}")
        return
    for p in (checker_problem(pruned), ort_problem(pruned, masked, "1,2", TOL)):
        if p:
            failures.append("runnable: " + p)
    resize = next(n for n in onnx.load(path).graph.node if n.op_type == "Resize")
    if channels_of(pruned, resize.input[0]) != 4:
        failures.append(f"runnable: {resize.input[0]} keeps {channels_of(pruned, resize.input[0])} of 8 channels, "
                        "expected 4 (pruned through the Resize)")


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    failures = []
    check_shape_only(failures)
    check_runnable(failures)
    status = finish(failures, 2, "shape-only ops end to end")
    if status == 0:
        shutil.rmtree(OUT, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
