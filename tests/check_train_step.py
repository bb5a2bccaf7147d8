#!/usr/bin/python3
"""End-to-end check of the training runtime against PyTorch: two SGD steps
(lr 0.1, momentum 0.9, weight decay 5e-4 on every parameter, batch 8, BN in
training mode, fixed random inputs and labels) on ResNet-20 exports with both
shortcut styles, BN fused and not, in onnx-sfp (tests/test_train_step.c with
SFP_TRAIN_STEP_DIR set) and in PyTorch (tools/torch_step.py, on the branches
onnx-sfp's ReLUs took: see there why, and it reports how many inputs were
decided that way). The second step starts from the first one's weights and
momentum, so it checks the momentum buffers and the updated BN running
statistics too.

Required, per model and step: the loss and every initializer the step
changes (parameters and BN running mean/var) agree to a relative difference
<= 1e-4, measured as max|ours - torch| / max|torch| over the tensor. Why
1e-4: both sides compute in float32 and sum in different orders (OpenBLAS
im2col/sgemm versus PyTorch's mkldnn convolutions, double versus float
accumulators for BN and the loss), a few ulps per term through 20 layers
and back; 1e-4 is ~1000 ulps, while a wrong gradient term, momentum or decay
rule, BN statistic or running-statistics formula moves a tensor by far more.
Reported besides (not gated): the same figure for the update itself
(w_after - w_before), which isolates the gradient from the unchanged part of
the weight. Initializers that are neither must come back unchanged.
"""
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import numpy_helper

from refs_common import BUILD, REFS, finish, reference_models, run

MODELS = ["resnet20_a_concat_fused_op13", "resnet20_a_pad_unfused_op11",
          "resnet20_b_fused_op17", "resnet20_b_unfused_op9"]
OUT = os.path.join(BUILD, "train-step")
STEPS = 2
TOL = 1e-4


def rel(ours, ref):
    return float(np.max(np.abs(ours.astype(np.float64) - ref)) / max(1e-12, float(np.max(np.abs(ref)))))


def read_pb(path):
    t = onnx.load_tensor(path)
    return t.name, numpy_helper.to_array(t).astype(np.float64)


def check(name, onnx_path):
    problems, rows = [], []
    folder = os.path.join(OUT, name)
    initial = {t.name: numpy_helper.to_array(t).astype(np.float64)
               for t in onnx.load(onnx_path).graph.initializer}
    torch_loss = [float(v) for v in open(os.path.join(folder, "torch_loss.txt")).read().split()]
    sfp_loss = [float(v) for v in open(os.path.join(folder, "sfp_loss.txt")).read().split()]
    if len(torch_loss) != STEPS or len(sfp_loss) != STEPS:
        return [f"{name}: expected {STEPS} losses, got {len(torch_loss)} (torch) and {len(sfp_loss)} (ours)"], rows
    before = dict(initial)
    for step in range(STEPS):
        torch_dir, sfp_dir = (os.path.join(folder, f"{who}_step{step}") for who in ("torch", "sfp"))
        loss_rel = abs(sfp_loss[step] - torch_loss[step]) / abs(torch_loss[step])
        if not loss_rel <= TOL:
            problems.append(f"{name} step {step}: loss {sfp_loss[step]:.8g} vs torch {torch_loss[step]:.8g} "
                            f"(relative {loss_rel:.2e})")
        ours = dict(read_pb(os.path.join(sfp_dir, f)) for f in os.listdir(sfp_dir))
        worst_w, worst_u, at_w, at_u, count = 0.0, 0.0, "", "", 0
        theirs_names = set()
        for f in sorted(os.listdir(torch_dir)):
            tname, ref = read_pb(os.path.join(torch_dir, f))
            theirs_names.add(tname)
            if tname not in ours:
                problems.append(f"{name} step {step}: we did not write '{tname}'")
                continue
            mine = ours[tname]
            if mine.shape != ref.shape:
                problems.append(f"{name} step {step}: '{tname}' has shape {mine.shape}, torch {ref.shape}")
                continue
            count += 1
            w = rel(mine, ref)
            u = rel(mine - before[tname], ref - before[tname]) if np.any(ref != before[tname]) else 0.0
            if w > worst_w:
                worst_w, at_w = w, tname
            if u > worst_u:
                worst_u, at_u = u, tname
            if not w <= TOL:
                problems.append(f"{name} step {step}: '{tname}' differs by {w:.2e} (update by {u:.2e})")
        for tname, mine in ours.items():
            if tname not in theirs_names and not np.array_equal(mine, initial[tname]):
                problems.append(f"{name} step {step}: '{tname}' is no parameter but changed")
        rows.append((name, step, torch_loss[step], loss_rel, count, worst_w, at_w, worst_u, at_u))
        before = {k: ours[k] for k in ours}
    return problems, rows


def main():
    entries = {e["name"]: e for e in reference_models()}
    missing = [m for m in MODELS if m not in entries]
    if missing:
        print("FAIL reference exports missing: " + ", ".join(missing))
        return 1
    rc, out = run(["/usr/bin/python3", "tools/torch_step.py", REFS, OUT, "--prepare", "--only", ",".join(MODELS),
                   "--steps", str(STEPS)])
    if rc != 0:
        print(out.strip())
        print("FAIL tools/torch_step.py --prepare exit %d" % rc)
        return 1
    env = dict(os.environ, SFP_TRAIN_STEP_DIR=OUT)
    p = subprocess.run([os.path.join(BUILD, "tests", "test_train_step")], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout + p.stderr)
        print("FAIL test_train_step exit %d" % p.returncode)
        return 1
    rc, out = run(["/usr/bin/python3", "tools/torch_step.py", REFS, OUT])
    print(out.strip())
    if rc != 0:
        print("FAIL tools/torch_step.py exit %d" % rc)
        return 1
    failures, checked = [], 0
    print(f"{'model':32} step {'loss (torch)':>12} {'loss rel':>9} {'tensors':>7} "
          f"{'weight rel':>10} {'update rel':>10}  (worst tensor)")
    for name in MODELS:
        problems, rows = check(name, entries[name]["path"])
        for r in rows:
            print(f"{r[0]:32} {r[1]:4} {r[2]:12.6f} {r[3]:9.1e} {r[4]:7} {r[5]:10.1e} {r[7]:10.1e}  ({r[6]}; {r[8]})")
        failures += problems
        checked += 1
    return finish(failures, checked, "train step vs PyTorch")


if __name__ == "__main__":
    sys.exit(main())
