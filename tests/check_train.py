#!/usr/bin/python3
"""`onnx-sfp train` end to end on a Fashion-MNIST subset (Debian's
dataset-fashion-mnist) with a ResNet-20 made by `init`:
- convergence: 2 epochs on 1,500 images reach a held-out accuracy far above
  chance (10 %): at least 45 %, and `eval` of the output on the real test
  set (the preprocessing read back from the output's metadata) beats 40 %;
- the output passes onnx.checker and ONNX Runtime computes what we compute;
- an interrupted run (SIGINT mid-epoch) resumed from its checkpoint gives a
  model identical byte for byte to the uninterrupted run's;
- divergence (--lr 50) exits 1 naming the epoch and leaves an existing OUT
  untouched; a corrupt checkpoint and a checkpoint of other options are refused."""
import hashlib
import json
import os
import sys

from check_common import interrupt_in_second_epoch
from refs_common import BUILD, SFP, checker_problem, ort_problem, run

DATA = "/usr/share/datasets/fashion-mnist"
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    out = os.path.join(BUILD, "train-e2e")
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.remove(os.path.join(out, f))
    model = os.path.join(out, "r20.onnx")
    rc, msg = run([SFP, "init", "resnet20", model, "--input", "1x28x28", "--seed", "5", "--quiet"])
    if rc != 0:
        print("init failed: " + msg)
        return 1
    common = ["--data", DATA, "--limit", "1500", "--batch", "50", "--epochs", "2", "--lr", "0.05", "--threads", "2"]

    # Convergence, metadata, checker, ONNX Runtime agreement.
    a = os.path.join(out, "a.onnx")
    best = os.path.join(out, "best.onnx")
    rc, msg = run([SFP, "train", model, a, "--best", best] + common)
    acc = None
    for line in msg.splitlines():
        if line.startswith("validation accuracy"):
            acc = float(line.split()[2].rstrip("%"))
    check(rc == 0 and acc is not None and acc >= 45.0, f"train converges: held-out accuracy {acc}% >= 45% (chance 10%)")
    check(os.path.exists(best), "--best written")
    rc, msg = run([SFP, "eval", a, "--data", DATA, "--limit", "2000", "--json", "--quiet"])
    test_acc = json.loads(msg)["accuracy"] if rc == 0 else -1
    check(test_acc > 0.40, f"eval of the trained model on 2,000 test images: {100 * test_acc:.1f}% > 40%")
    rc, msg = run([SFP, "eval", a, "--data", DATA, "--limit", "10"])
    check(rc == 0 and "preprocessing from model metadata" in msg, "eval takes the preprocessing from the output's metadata")
    problem = checker_problem(a)
    check(problem is None, f"onnx.checker accepts the trained model ({problem})")
    problem = ort_problem(best, a, "1,3", 1e6)
    check(problem is None, f"ONNX Runtime loads and runs the trained models at batch 1 and 3 ({problem})")

    # Interrupt mid-epoch, resume: identical result.
    b = os.path.join(out, "b.onnx")
    ck = os.path.join(out, "b.ckpt")
    returncode, err = interrupt_in_second_epoch([SFP, "train", model, b, "--checkpoint", ck] + common, 1.0)
    check(returncode == 1 and "interrupted by SIGINT" in err and os.path.exists(ck) and not os.path.exists(b),
          f"SIGINT: exit {returncode}, checkpoint written, no OUT ({err.strip().splitlines()[-1] if err.strip() else ''})")
    rc, msg = run([SFP, "train", model, b, "--checkpoint", ck, "--resume", ck] + common)
    check(rc == 0 and os.path.exists(b) and sha(a) == sha(b), "resumed run equals the uninterrupted one byte for byte")

    # Divergence: exit 1, OUT untouched.
    c = os.path.join(out, "c.onnx")
    with open(c, "wb") as f:
        f.write(b"keep me")
    rc, msg = run([SFP, "train", model, c, "--lr", "50", "--schedule", "constant", "--wd", "0", "--crop-pad", "0"]
                  + [x for x in common if x not in ("--lr", "0.05")])
    check(rc == 1 and "diverged" in msg and open(c, "rb").read() == b"keep me" and len(msg.strip().splitlines()) <= 3,
          f"divergence exits 1 and leaves OUT alone: {msg.strip().splitlines()[-1] if msg.strip() else ''}")

    # Bad checkpoints.
    bad = os.path.join(out, "bad.ckpt")
    data = bytearray(open(ck, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(bad, "wb").write(bytes(data))
    rc, msg = run([SFP, "train", model, c, "--resume", bad] + common)
    check(rc == 3 and "checksum" in msg, f"corrupt checkpoint refused with exit 3: {msg.strip()}")
    rc, msg = run([SFP, "train", model, c, "--resume", ck, "--seed", "9"] + common)
    check(rc == 2 and "other options" in msg, f"checkpoint of other options refused with exit 2: {msg.strip()[:120]}")
    rc, msg = run([SFP, "train", model, model] + common)
    check(rc == 2, "OUT = IN refused")
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
