#!/usr/bin/python3
"""A ResNet trained a few steps in PyTorch and exported with BatchNormalization
kept (training=TrainingMode.PRESERVE, no constant folding) and folded (the
default eval export). Training makes parameters equal (a stage's last BN bias
and its down-sample BN bias get the same gradients from the same zero start),
and PyTorch's exporter then stores one of them and reads the other through an
Identity node; random-weight exports never have that.

Checks, against outside references:
  1. the kept export really has a BatchNormalization reading an initializer
     through Identity (else this test proves nothing);
  2. `run` at --threads 1 and 2 on a batch of 5 equals ONNX Runtime (1e-4
     relative to the output's scale: float32 sums in another order);
  3. `eval --limit 300 --batch 64` (a partial last batch, so a second plan at
     another batch size) at --threads 1 and 2 gives PyTorch's top-1 accuracy
     on the same 300 Fashion-MNIST test images exactly, and its mean
     cross-entropy to 1e-4 relative, for both exports, on every repetition;
  4. `train` for 640 images on the kept export: the trainer's last validation
     loss (64 test images, printed to 4 decimals) equals `eval` of the model
     it wrote on the same images (1e-4 absolute), so the function trained is
     the one written, and ONNX Runtime agrees with `run` on that model.
"""
import json
import os
import sys
import warnings

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
from check_eval import read_idx  # noqa: E402
from export_zoo import CifarResNet  # noqa: E402
from refs_common import BUILD, SFP, run  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
OUT = os.path.join(BUILD, "trained-bn")
N_EVAL = 300
TOL = 1e-4


def images(split, n):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(f"{prefix}-images-idx3-ubyte.gz")[:n].astype(np.float32) / 255.0
    y = read_idx(f"{prefix}-labels-idx1-ubyte.gz")[:n].astype(np.int64)
    return torch.from_numpy(x[:, None]), torch.from_numpy(y)


def trained_model():
    torch.manual_seed(17)
    m = CifarResNet(8, (1, 1, 1), in_channels=1)  # a 1x1 conv + BN shortcut in stages 2 and 3
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    x, y = images("train", 30 * 32)
    for step in range(30):
        xb, yb = x[32 * step:32 * (step + 1)], y[32 * step:32 * (step + 1)]
        loss = F.cross_entropy(m(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


def export(m, path, kept):
    kw = dict(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False) if kept else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, torch.zeros(1, 1, 28, 28), path, opset_version=13, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, **kw)


def bn_reads_through_identity(path):
    g = onnx.load(path).graph
    inits = {t.name for t in g.initializer}
    alias = {n.output[0] for n in g.node if n.op_type == "Identity" and n.input[0] in inits}
    return [n.name for n in g.node if n.op_type == "BatchNormalization" and alias & set(n.input[1:])]


def write_pb(array, path):
    with open(path, "wb") as f:
        f.write(numpy_helper.from_array(array, "x").SerializeToString())


def check_run(path, x):
    problems = []
    xpb, ref = path + ".x.pb", path + ".ort.pb"
    write_pb(x, xpb)
    rc, out = run(["node", "tools/ort_compare.js", "--run", path, "--input", xpb, "--output", ref])
    if rc != 0:
        return [f"ORT: {out.strip()}"]
    for threads in ("1", "2", "1", "2"):
        ours = path + f".t{threads}.pb"
        rc, out = run([SFP, "run", path, "--input", xpb, "--output", ours, "--threads", threads, "--quiet"])
        if rc == 0:
            rc, out = run(["node", "tools/ort_compare.js", "--check-pb", ref, ours, "--tol", str(TOL)])
        if rc != 0:
            problems.append(f"run --threads {threads} vs ORT: {out.strip()}")
    return problems


def check_eval(path, acc, loss):
    problems = []
    for threads in ("1", "2", "1", "2"):
        rc, out = run([SFP, "eval", path, "--data", DATA, "--limit", str(N_EVAL), "--batch", "64", "--json",
                       "--threads", threads, "--quiet"])
        if rc != 0:
            return problems + [f"eval exit {rc}: {out.strip()}"]
        got = json.loads(out)
        if (got["images"] != N_EVAL or round(got["accuracy"] * N_EVAL) != round(acc * N_EVAL) or
                abs(got["loss"] - loss) > TOL * abs(loss)):
            problems.append(f"eval --threads {threads}: accuracy {got['accuracy']} loss {got['loss']}, "
                            f"PyTorch {acc} {loss}")
    return problems


def check_train(kept):
    """The trainer's last validation (printed to 4 decimals) is the function
    the written model computes: `eval` of OUT on the same 64 images."""
    out = os.path.join(OUT, "kept.trained.onnx")
    rc, msg = run([SFP, "train", kept, out, "--data", DATA, "--val-data", DATA, "--epochs", "1", "--limit", "640",
                   "--batch", "32", "--lr", "0.05", "--threads", "2"])
    if rc != 0:
        return [f"train exit {rc}: {msg.strip()}"]
    val = [float(w.split()[0]) for w in msg.split("val_loss ")[1:]]
    rc, out_json = run([SFP, "eval", out, "--data", DATA, "--limit", "64", "--json", "--quiet"])
    if rc != 0 or not val:
        return [f"eval of the trained model exit {rc}: {out_json.strip()} (train said: {msg.strip()})"]
    got = json.loads(out_json)["loss"]
    problems = []
    if abs(got - val[-1]) > 1e-4:  # the trainer prints 4 decimals
        problems.append(f"trained: validation loss {val[-1]} during training, {got} from the written model")
    x = np.random.default_rng(3).random((3, 1, 28, 28), dtype=np.float32)
    return problems + ["trained: " + p for p in check_run(out, x)]


def main():
    os.makedirs(OUT, exist_ok=True)
    m = trained_model()
    xt, yt = images("test", N_EVAL)
    with torch.no_grad():
        logits = m(xt)
    acc = float((logits.argmax(1) == yt).float().mean())
    loss = float(F.cross_entropy(logits, yt))
    kept, fused = os.path.join(OUT, "kept.onnx"), os.path.join(OUT, "fused.onnx")
    export(m, kept, True)
    export(m, fused, False)
    failures = []
    shared = bn_reads_through_identity(kept)
    if not shared:
        failures.append("kept export: no BatchNormalization reads an initializer through Identity")
    x = xt[:5].numpy()
    for name, path in (("kept", kept), ("fused", fused)):
        failures += [f"{name}: {p}" for p in check_run(path, x) + check_eval(path, acc, loss)]
    failures += check_train(kept)
    for f in failures:
        print("FAIL " + f)
    if not failures:
        print(f"ok   trained ResNet, BN kept ({len(shared)} BN read a parameter through Identity: {shared}) "
              f"and fused: run = ONNX Runtime, eval = PyTorch (accuracy {acc:.4f}, loss {loss:.5f}) "
              "at 1 and 2 threads; train writes the function it trained")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
