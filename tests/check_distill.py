#!/usr/bin/python3
"""loss_distill (src/train/loss.c) against PyTorch: for random logits at
several weights A and temperatures T, the loss
A*T^2*kl_div(log_softmax(z/T), log_softmax(t/T), log_target=True,
reduction='batchmean') + (1-A)*cross_entropy(z, y) and its gradient by z
(autograd, float64) must equal ours to 1e-6 relative to the largest entry
(ours: float32 logits and gradient, double sums). Then `compress --distill`
fine-tunes a small model end to end and refuses bad options (exit 2)."""
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

from refs_common import BUILD, SFP, run

TOOL = os.path.join(BUILD, "tests", "sfp-distill-loss")


def reference(z, t, y, a, temp):
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(t, dtype=torch.float64)
    kl = F.kl_div(F.log_softmax(zt / temp, 1), F.log_softmax(tt / temp, 1), log_target=True, reduction="batchmean")
    loss = a * temp * temp * kl + (1 - a) * F.cross_entropy(zt, torch.tensor(y))
    loss.backward()
    return float(loss), zt.grad.numpy()


def main():
    rng = np.random.default_rng(5)
    problems = []
    for n, k, a, temp, scale in ((4, 10, 0.5, 4.0, 3.0), (7, 3, 0.9, 1.0, 1.0), (5, 10, 0.0, 2.0, 5.0),
                                 (3, 10, 1.0, 8.0, 20.0), (6, 100, 0.7, 0.5, 2.0)):
        z = (rng.standard_normal((n, k)) * scale).astype(np.float32)
        t = (rng.standard_normal((n, k)) * scale).astype(np.float32)
        y = rng.integers(0, k, n)
        text = f"{n} {k} {a} {temp}\n" + " ".join(map(repr, z.ravel().tolist())) + "\n" + \
            " ".join(map(repr, t.ravel().tolist())) + "\n" + " ".join(map(str, y.tolist())) + "\n"
        out = subprocess.run([TOOL], input=text, capture_output=True, text=True)
        if out.returncode != 0:
            problems.append(f"sfp-distill-loss: {out.stderr.strip()}")
            continue
        vals = [float(v) for v in out.stdout.split()]
        loss, grad = vals[0], np.array(vals[1:]).reshape(n, k)
        ref_loss, ref_grad = reference(z.astype(np.float64), t.astype(np.float64), y, a, temp)
        dl = abs(loss - ref_loss) / max(1.0, abs(ref_loss))
        dg = np.abs(grad - ref_grad).max() / max(1e-12, np.abs(ref_grad).max())
        ok = dl < 1e-6 and dg < 1e-6
        print(f"{'ok  ' if ok else 'FAIL'} n={n} k={k} A={a} T={temp}: loss {loss:.8f} vs PyTorch {ref_loss:.8f}, "
              f"gradient max rel. diff {dg:.2e}")
        if not ok:
            problems.append(f"A={a} T={temp}: loss diff {dl:.2e}, gradient diff {dg:.2e}")
    # end to end: a few steps of distillation while pruning, on 256 images
    out_dir = os.path.join(BUILD, "distill-e2e")
    os.makedirs(out_dir, exist_ok=True)
    model, dst = os.path.join(out_dir, "r20.onnx"), os.path.join(out_dir, "r20.pruned.onnx")
    rc, msg = run([SFP, "init", "resnet20", model, "--input", "1x28x28", "--seed", "3", "--quiet"])
    data = "/usr/share/datasets/fashion-mnist"
    report = os.path.join(out_dir, "report.json")
    for method in ("sfp", "hybrid"):
        rc, msg = run([SFP, "compress", model, dst, "--data", data, "--limit", "256", "--epochs", "1", "--batch", "32",
                       "--method", method, "--distill", "--distill-weight", "0.7", "--temperature", "3", "--quiet",
                       "--round-to", "2", "--report-json", report])
        if rc != 0:
            problems.append(f"compress --distill --method {method}: exit {rc}: {msg.strip()[-300:]}")
            continue
        with open(report) as f:
            policy = json.load(f).get("policy")
        want = {"flops": None, "round_to": 2, "global": False, "rates_file": None,
                "distill": {"weight": 0.7, "temperature": 3.0}}
        if policy != want:
            problems.append(f"compress --distill --method {method}: report policy {policy}, want {want}")
    for bad in (["--distill-weight", "0.5"], ["--distill", "--distill-weight", "1.5"], ["--distill", "--temperature", "0"],
                ["--distill", "--epochs", "0"]):
        rc, msg = run([SFP, "compress", model, dst, "--data", data, "--limit", "64", "--quiet"] + bad)
        if rc != 2:
            problems.append(f"{bad}: exit {rc}, want 2")
    for p in problems:
        print("FAIL distill: " + p)
    if not problems:
        print("ok   distillation loss and gradient equal PyTorch's; compress --distill runs with sfp and hybrid")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
