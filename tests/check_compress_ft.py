#!/usr/bin/python3
"""`compress --epochs N` (pruning while fine-tuning) end to end on a
Fashion-MNIST subset (Debian's dataset-fashion-mnist) with the shipped
ResNet-20 (models/fmnist-resnet20.onnx, trained by onnx-sfp):
- every method (sfp, smooth, hybrid): exit 0, onnx.checker accepts OUT and
  --keep-masked, ONNX Runtime gives both the same outputs (1e-4) at batch 1
  and 3, the MACs fall by more than 30 %, the validation accuracy after is
  far above chance (10 %), the report JSON carries method, epochs and both
  accuracies, and `eval` of OUT reads the preprocessing from its metadata;
- --max-accuracy-drop 0 with an accuracy that fell: exit 5, the message says
  so, and an existing OUT and --keep-masked file are left untouched;
- SIGINT in the middle of the second epoch writes a checkpoint and exits 1;
  --resume then gives a model identical byte for byte to the uninterrupted
  run's (the pruner's mid-epoch choice travels in the checkpoint);
- the same model with its BatchNormalization folded into the convolutions
  (tools/fold_bn.py, PyTorch's default export): compress re-inserts BN for
  fine-tuning and folds it back, so OUT has the input's operators (no BN),
  passes the checker and agrees with --keep-masked; `--bn keep` writes the
  BN out, and ONNX Runtime gives it the folded OUT's outputs (the fold is
  exact); `--bn none` trains the fused form as it is; an interrupted run
  resumes from its checkpoint (whose model has the BN) to the same bytes;
  `train` of the fused model also writes it fused, --best too."""
import hashlib
import json
import os
import sys

import onnx

from check_common import Failures, interrupt_in_second_epoch
from refs_common import BUILD, SFP, checker_problem, ort_problem, run

DATA = "/usr/share/datasets/fashion-mnist"
MODEL = "models/fmnist-resnet20.onnx"
COMMON = ["--data", DATA, "--limit", "800", "--batch", "40", "--epochs", "2", "--rate", "0.4", "--threads", "2"]


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def check_method(f, out, method):
    dst, masked, rjson = (os.path.join(out, f"{method}.{x}") for x in ("onnx", "masked.onnx", "json"))
    rc, msg = run([SFP, "compress", MODEL, dst, "--method", method, "--keep-masked", masked, "--report-json", rjson]
                  + COMMON)
    if not f.check(rc == 0, f"{method}: compress exit {rc}: {msg.strip()[-300:]}"):
        return
    for p in (checker_problem(dst), checker_problem(masked)):
        f.check(p is None, f"{method}: {p}")
    p = ort_problem(masked, dst, "1,3", 1e-4)
    f.check(p is None, f"{method}: --keep-masked and OUT differ in ONNX Runtime: {p}")
    rep = json.load(open(rjson))
    f.check(rep.get("method") == method and rep.get("epochs") == 2, f"{method}: report JSON method/epochs {rep.get('method')}"
            f"/{rep.get('epochs')}")
    before, after = rep.get("accuracy_before"), rep.get("accuracy_after")
    f.check(isinstance(before, float) and before > 0.8, f"{method}: accuracy before {before} (the shipped model: > 0.8)")
    f.check(isinstance(after, float) and after > 0.5, f"{method}: accuracy after {after} not far above chance (0.1)")
    f.check(rep["reduction"]["macs"] > 0.3, f"{method}: MACs fell only {rep['reduction']['macs']:.3f}")
    rc, msg = run([SFP, "eval", dst, "--data", DATA, "--limit", "10"])
    f.check(rc == 0 and "preprocessing from model metadata" in msg, f"{method}: eval of OUT: {msg.strip()[-200:]}")
    if not f:
        print(f"ok   {method}: accuracy {100 * before:.1f}% -> {100 * after:.1f}%, "
              f"MACs -{100 * rep['reduction']['macs']:.1f}%, checker and ORT agree with --keep-masked")


def check_gate(f, out):
    dst, masked = os.path.join(out, "gate.onnx"), os.path.join(out, "gate.masked.onnx")
    for p in (dst, masked):
        with open(p, "wb") as fh:
            fh.write(b"keep me")
    common = [x for x in COMMON]
    common[common.index("--epochs") + 1] = "1"
    common[common.index("--rate") + 1] = "0.7"
    rc, msg = run([SFP, "compress", MODEL, dst, "--max-accuracy-drop", "0", "--keep-masked", masked] + common)
    last = msg.strip().splitlines()[-1] if msg.strip() else ""
    f.check(rc == 5 and "--max-accuracy-drop 0" in last and "nothing written" in last,
            f"--max-accuracy-drop 0: exit {rc}: {last}")
    f.check(all(open(p, "rb").read() == b"keep me" for p in (dst, masked)),
            "--max-accuracy-drop: OUT and --keep-masked left untouched")


def check_resume(f, out, extra=()):
    """Also with --distill --global --round-to 4 (extra): the teacher is the
    input, the per-group counts travel in the checkpoint."""
    a, b = os.path.join(out, "a.onnx"), os.path.join(out, "b.onnx")
    ck = os.path.join(out, "b.ckpt")
    COMMON = globals()["COMMON"] + list(extra)
    for stale in (b, ck):
        if os.path.exists(stale):
            os.remove(stale)
    rc, msg = run([SFP, "compress", MODEL, a, "--quiet"] + COMMON)
    if not f.check(rc == 0, f"resume: the uninterrupted run: {msg.strip()[-200:]}"):
        return
    rc, err = interrupt_in_second_epoch([SFP, "compress", MODEL, b, "--checkpoint", ck] + COMMON, 0.5)
    f.check(rc == 1 and "interrupted by SIGINT" in err and os.path.exists(ck) and not os.path.exists(b),
            f"compress SIGINT: exit {rc}, checkpoint, no OUT ({err.strip().splitlines()[-1] if err.strip() else ''})")
    rc, msg = run([SFP, "compress", MODEL, b, "--checkpoint", ck, "--resume", ck, "--quiet"] + COMMON)
    f.check(rc == 0 and os.path.exists(b) and sha(a) == sha(b),
            f"compress --resume equals the uninterrupted run byte for byte ({msg.strip()[-200:]})")
    rc, msg = run([SFP, "compress", MODEL, b, "--resume", ck, "--method", "sfp"] + COMMON)
    f.check(rc == 2 and "other options" in msg, f"a checkpoint of another method is refused (exit {rc}): {msg.strip()[-160:]}")


def op_types(path):
    return sorted({n.op_type for n in onnx.load(path).graph.node})


def check_fused(f, out):
    fused = os.path.join(out, "fused.onnx")
    rc, msg = run(["/usr/bin/python3", "tools/fold_bn.py", MODEL, fused])
    if not f.check(rc == 0, f"fold_bn.py: {msg.strip()[-200:]}"):
        return
    ops_in = op_types(fused)
    dst, masked, rjson, kept, asis = (os.path.join(out, "fused-" + x) for x in
                                      ("out.onnx", "masked.onnx", "json", "keep.onnx", "none.onnx"))
    rc, msg = run([SFP, "compress", fused, dst, "--keep-masked", masked, "--report-json", rjson] + COMMON)
    if not f.check(rc == 0 and "re-inserted for training" in msg, f"fused: compress exit {rc}: {msg.strip()[-300:]}"):
        return
    f.check(op_types(dst) == ops_in and op_types(masked) == ops_in,
            f"fused: OUT keeps the input's operators {ops_in}: {op_types(dst)}")
    for p in (checker_problem(dst), checker_problem(masked)):
        f.check(p is None, f"fused: {p}")
    p = ort_problem(masked, dst, "1,3", 1e-4)
    f.check(p is None, f"fused: --keep-masked and OUT differ in ONNX Runtime: {p}")
    rep = json.load(open(rjson))
    f.check(rep.get("bn_reinserted") == 19, f"fused: report JSON bn_reinserted {rep.get('bn_reinserted')} (19 convs)")
    after = rep.get("accuracy_after")
    f.check(isinstance(after, float) and after > 0.5, f"fused: accuracy after {after} not far above chance")
    rc, msg = run([SFP, "compress", fused, kept, "--bn", "keep", "--quiet"] + COMMON)
    if f.check(rc == 0, f"fused --bn keep: exit {rc}: {msg.strip()[-200:]}"):
        bns = [n.name for n in onnx.load(kept).graph.node if n.op_type == "BatchNormalization"]
        f.check(len(bns) == 19 and all(b.startswith("onnx-sfp.bn/") for b in bns),
                f"fused --bn keep: {len(bns)} re-inserted BN in OUT (19)")
        p = checker_problem(kept) or ort_problem(kept, dst, "1,3", 1e-4)
        f.check(p is None, f"fused: --bn keep and the folded OUT differ: {p}")
    one_epoch = [x for x in COMMON]
    one_epoch[one_epoch.index("--epochs") + 1] = "1"
    rc, msg = run([SFP, "compress", fused, asis, "--bn", "none", "--report-json", rjson] + one_epoch)
    f.check(rc == 0 and "re-inserted" not in msg and json.load(open(rjson)).get("bn_reinserted") == 0,
            f"fused --bn none: exit {rc}, nothing re-inserted: {msg.strip()[-200:]}")
    # interrupted in epoch 2: the checkpoint's model has the BN; resuming must not add more
    b, ck = os.path.join(out, "fused-b.onnx"), os.path.join(out, "fused-b.ckpt")
    rc, err = interrupt_in_second_epoch([SFP, "compress", fused, b, "--checkpoint", ck] + COMMON, 0.5)
    f.check(rc == 1 and os.path.exists(ck), f"fused: SIGINT exit {rc}")
    rc, msg = run([SFP, "compress", fused, b, "--checkpoint", ck, "--resume", ck, "--quiet", "--report-json", rjson]
                  + COMMON)
    f.check(rc == 0 and sha(b) == sha(dst) and json.load(open(rjson)).get("bn_reinserted") == 19,
            f"fused: --resume equals the uninterrupted run byte for byte, 19 BN reported ({msg.strip()[-200:]})")
    tr, best = os.path.join(out, "fused-train.onnx"), os.path.join(out, "fused-best.onnx")
    common = [x for x in one_epoch if x not in ("--rate", "0.4")]
    rc, msg = run([SFP, "train", fused, tr, "--best", best, "--lr", "0.01"] + common)
    f.check(rc == 0 and op_types(tr) == ops_in and op_types(best) == ops_in and checker_problem(tr) is None,
            f"fused: train writes OUT and --best fused: exit {rc} {msg.strip()[-200:]}")
    if not f:
        print(f"ok   fused input: BN re-inserted for 19 convs and folded back, accuracy after {100 * after:.1f}%, "
              "--bn keep agrees with the folded OUT in ONNX Runtime, resume exact, train writes it fused")


def main():
    out = os.path.join(BUILD, "compress-ft-e2e")
    os.makedirs(out, exist_ok=True)
    f = Failures()
    for method in ("sfp", "smooth", "hybrid"):
        check_method(f, out, method)
    check_gate(f, out)
    check_resume(f, out)
    check_resume(f, out, ["--distill", "--global", "--round-to", "4"])
    check_fused(f, out)
    return f.finish("compress --epochs 2: every method, the accuracy gate, interrupt and resume", out)


if __name__ == "__main__":
    sys.exit(main())
