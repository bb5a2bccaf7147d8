#!/usr/bin/python3
"""SGD steps in PyTorch on the reference ResNet exports, the outside reference
for onnx-sfp's training runtime (forward, backward, BN batch statistics and
running-statistics update, cross-entropy, SGD with momentum and weight decay).

The network is rebuilt as a PyTorch module (tools/torch_resnet.py) from the
manifest entry of tools/export_refs.py (depth, shortcut, head, fused or not)
and given the ONNX file's own initializers: Conv, BatchNormalization and Gemm
nodes are paired with the module's Conv2d, BatchNorm2d and Linear layers in
execution order (shapes checked), and the module must reproduce the export's
reference output before anything is trained. A fused export (BN folded into
the convolutions) becomes convolutions with a bias and no BN, which is also
how onnx-sfp trains it.

ReLU branches. A batch of 8 sends ~1.5 million values through ResNet-20's
ReLUs; float32 rounding differs between two implementations by ~1e-6, so
now and then a value within ~1e-6 of zero lands on the other side of the kink
in one of them, and that one gradient entry differs at O(1) (BN then spreads
it over the channel). That is not an error of either side, so when onnx-sfp
wrote its ReLU masks (OUT/NAME/sfp_relu_K.bin: per Relu node in graph order,
int64 count then one byte per element, 1 where the output is positive),
PyTorch takes the same branch at every ReLU: y = x * mask, dy/dx = mask.
Every element where that mask disagrees with PyTorch's own x > 0 is counted
and its |x| reported; the run fails when one of them is not at rounding level
(|x| > 1e-4), since then the masks are not a tie-break but a different
forward.

Usage:
  /usr/bin/python3 tools/torch_step.py REFS OUT --prepare [--only NAME,...]
      [--steps 2] [--batch 8] [--lr 0.1] [--momentum 0.9] [--wd 5e-4]
      [--wd-bn-bias 5e-4] [--nesterov] [--seed 0]
    REFS holds manifest.json and the exports (tools/export_refs.py). Writes
    OUT/models.txt (one line per model: name, file, steps, batch, lr, momentum,
    wd, wd_bn_bias, nesterov - what tests/test_train_step.c reads) and the
    fixed random batches OUT/NAME/input_K.pb and labels_K.pb (int64).
  /usr/bin/python3 tools/torch_step.py REFS OUT [--only NAME,...]
    Runs the steps listed in OUT/models.txt in PyTorch (with onnx-sfp's ReLU
    masks when present) and writes OUT/NAME/torch_loss.txt (loss of each step)
    and OUT/NAME/torch_stepK/init_I.pb: every float initializer the steps
    change (parameters and BN running statistics) after step K, named as in
    the ONNX file (I: its index among the file's initializers).
  /usr/bin/python3 tools/torch_step.py REFS MODEL_NAME --bench [--batch 128]
      [--threads 2] [--iters 10]
    Times forward + backward + SGD steps of the module in training mode and
    prints {"images_per_s": ..., "ms_per_step": ...} as JSON.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F

import torch_resnet
from torch_resnet import load_onnx_weights, output_difference, param_groups, read_pb, write_pb

# ---------------------------------------------------------------------------
# ReLUs on onnx-sfp's branches; the module is tools/torch_resnet.py's.


class ReluBranches:
    """The ReLU branches to take (masks in call order), or None for F.relu;
    records how many elements the masks decided against PyTorch's sign."""

    def __init__(self):
        self.masks, self.next, self.flips, self.worst = None, 0, 0, 0.0

    def use(self, masks):
        self.masks, self.next, self.flips, self.worst = masks, 0, 0, 0.0


BRANCHES = ReluBranches()


class GatedRelu(torch.autograd.Function):
    """x * mask, with the gradient mask * dy: ReLU on a given branch."""

    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None


def relu(x):
    if BRANCHES.masks is None:
        return F.relu(x)
    if BRANCHES.next >= len(BRANCHES.masks):
        raise SystemExit("torch_step: the module calls more ReLUs than onnx-sfp's masks list")
    mask = BRANCHES.masks[BRANCHES.next]
    BRANCHES.next += 1
    if mask.numel() != x.numel():
        raise SystemExit(f"torch_step: ReLU {BRANCHES.next - 1} has {x.numel()} elements, the mask {mask.numel()}")
    mask = mask.view_as(x)
    disagree = (x.detach() > 0) != mask
    if bool(disagree.any()):
        BRANCHES.flips += int(disagree.sum())
        BRANCHES.worst = max(BRANCHES.worst, float(x.detach()[disagree].abs().max()))
    return GatedRelu.apply(x, mask.to(x.dtype))


def build(entry):
    """The CIFAR ResNet of a manifest entry, its ReLUs on BRANCHES."""
    return torch_resnet.build(entry, relu)


def check_equivalent(model, entry, refs):
    """The module must give the export's reference output (eval mode)."""
    base = os.path.join(refs, entry["name"])
    diff = output_difference(model, read_pb(base + ".input_0.pb"), read_pb(base + ".output_0.pb"))
    if not diff <= 1e-4:
        raise SystemExit(f"torch_step: {entry['name']}: the rebuilt module differs from the export by {diff:.3g}")
    return diff


def read_masks(path):
    """onnx-sfp's ReLU masks of one step: per Relu node, int64 count + bytes."""
    data, masks, at = open(path, "rb").read(), [], 0
    while at < len(data):
        count = int(np.frombuffer(data, np.int64, 1, at)[0])
        at += 8
        masks.append(torch.from_numpy(np.frombuffer(data, np.uint8, count, at).astype(bool)))
        at += count
    return masks


def prepare(entry, args, out):
    """The fixed random batches; returns the models.txt line."""
    folder = os.path.join(out, entry["name"])
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(args.seed)
    for step in range(args.steps):
        x = rng.standard_normal([args.batch] + entry["input_shape"]).astype(np.float32)
        labels = rng.randint(0, entry["classes"], size=args.batch).astype(np.int64)
        write_pb(os.path.join(folder, f"input_{step}.pb"), x, "input")
        write_pb(os.path.join(folder, f"labels_{step}.pb"), labels, "labels")
    return (f"{entry['name']} {os.path.abspath(os.path.join(args.refs, entry['file']))} {args.steps} {args.batch} "
            f"{args.lr!r} {args.momentum!r} {args.wd!r} {args.wd_bn_bias!r} {int(args.nesterov)}\n")


def run_steps(entry, job, out):
    """The steps of one models.txt line in PyTorch."""
    steps, lr, momentum, wd, wd_bn_bias, nesterov = (int(job[2]), float(job[4]), float(job[5]), float(job[6]),
                                                      float(job[7]), job[8] == "1")
    onnx_model = onnx.load(job[1])
    torch.manual_seed(0)
    model = build(entry)
    changed = load_onnx_weights(model, onnx_model, entry["input_shape"])
    diff = check_equivalent(model, entry, os.path.dirname(job[1]))
    opt = torch.optim.SGD(param_groups(model, wd, wd_bn_bias), lr=lr, momentum=momentum, nesterov=nesterov)
    folder = os.path.join(out, entry["name"])
    index = {t.name: i for i, t in enumerate(onnx_model.graph.initializer)}
    losses, notes, failed = [], [], False
    for step in range(steps):
        x = read_pb(os.path.join(folder, f"input_{step}.pb"))
        labels = read_pb(os.path.join(folder, f"labels_{step}.pb"))
        mask_path = os.path.join(folder, f"sfp_relu_{step}.bin")
        BRANCHES.use(read_masks(mask_path) if os.path.exists(mask_path) else None)
        model.train()
        opt.zero_grad()
        loss = F.cross_entropy(model(torch.from_numpy(x.copy())), torch.from_numpy(labels.astype(np.int64)))
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
        if BRANCHES.masks is None:
            notes.append(f"step {step}: own ReLU branches")
        else:
            if BRANCHES.next != len(BRANCHES.masks):
                raise SystemExit(f"torch_step: {entry['name']}: {len(BRANCHES.masks)} ReLU masks, "
                                 f"{BRANCHES.next} ReLUs called")
            notes.append(f"step {step}: {BRANCHES.flips} ReLU inputs on onnx-sfp's side of zero"
                         + (f" (largest |x| {BRANCHES.worst:.1e})" if BRANCHES.flips else ""))
            failed = failed or BRANCHES.worst > 1e-4
        step_dir = os.path.join(folder, f"torch_step{step}")
        os.makedirs(step_dir, exist_ok=True)
        for name, get in changed:
            write_pb(os.path.join(step_dir, f"init_{index[name]}.pb"), get(), name)
    BRANCHES.use(None)
    with open(os.path.join(folder, "torch_loss.txt"), "w") as f:
        f.write("".join(f"{v!r}\n" for v in losses))
    print(f"torch_step: {entry['name']}: module = export to {diff:.1e}; losses "
          + ", ".join(f"{v:.6f}" for v in losses) + "; " + "; ".join(notes))
    if failed:
        raise SystemExit(f"torch_step: {entry['name']}: onnx-sfp's ReLU masks disagree with PyTorch's forward "
                         "beyond rounding")


def bench(entry, args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(entry)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(args.batch, *entry["input_shape"])
    y = torch.randint(0, entry["classes"], (args.batch,))

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(args.iters):
        step()
    seconds = (time.perf_counter() - start) / args.iters
    print(json.dumps({"model": entry["name"], "batch": args.batch, "threads": args.threads,
                      "images_per_s": args.batch / seconds, "ms_per_step": seconds * 1e3}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("refs")
    ap.add_argument("out", help="output folder, or with --bench the model name")
    ap.add_argument("--prepare", action="store_true")
    ap.add_argument("--only")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--wd-bn-bias", type=float, default=5e-4)
    ap.add_argument("--nesterov", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args()
    manifest = json.load(open(os.path.join(args.refs, "manifest.json")))
    entries = {e["name"]: e for e in manifest["models"] if not e.get("skipped")}
    if args.bench:
        if args.out not in entries:
            raise SystemExit(f"torch_step: no model {args.out} in the manifest")
        args.batch = args.batch or 128
        bench(entries[args.out], args)
        return 0
    only = set(args.only.split(",")) if args.only else None
    if args.prepare:
        args.batch = args.batch or 8
        names = sorted(only) if only else list(entries)
        os.makedirs(args.out, exist_ok=True)
        lines = []
        for name in names:
            if name not in entries:
                raise SystemExit(f"torch_step: no model {name} in the manifest")
            lines.append(prepare(entries[name], args, args.out))
        with open(os.path.join(args.out, "models.txt"), "w") as f:
            f.write("# name file steps batch lr momentum wd wd_bn_bias nesterov\n" + "".join(lines))
        return 0
    for line in open(os.path.join(args.out, "models.txt")):
        job = line.split()
        if not job or job[0].startswith("#") or (only and job[0] not in only):
            continue
        if job[0] not in entries:
            raise SystemExit(f"torch_step: no model {job[0]} in the manifest")
        run_steps(entries[job[0]], job, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
