#!/usr/bin/python3
"""Fine-tuning while pruning works on the mobile families, not only on
ResNets: `compress --data` (one epoch on 512 Fashion-MNIST images) on the
export zoo's MobileNetV2 (ReLU6 as Clip, depthwise convolutions), fused by
the exporter and with BN kept. For each: exit 0; the fused export gets its
BatchNormalization re-inserted for training (bn_reinserted > 0 in the report)
and folded back, so OUT has no BatchNormalization, as the input; onnx.checker
accepts OUT and --keep-masked; ONNX Runtime gives both the same outputs
(1e-4 of their scale) at batch 1 and 3; the MACs fall by more than 30 %.
Needs tests/e2e_zoo.sh's export (build/zoo), which it makes when missing."""
import json
import os
import sys

import onnx

from refs_common import BUILD, SFP, checker_problem, finish, ort_problem, run

ZOO = os.path.join(BUILD, "zoo")
OUT = os.path.join(BUILD, "zoo-finetune")
FMNIST = "/usr/share/datasets/fashion-mnist"
FILES = ["mobilenet_v2_fused_op11.onnx", "mobilenet_v2_kept_op13_trained.onnx"]


def check(name):
    src = os.path.join(ZOO, name)
    dst, masked = os.path.join(OUT, "p-" + name), os.path.join(OUT, "m-" + name)
    rjson = os.path.join(OUT, name + ".json")
    rc, out = run([SFP, "compress", src, dst, "--data", FMNIST, "--limit", "512", "--epochs", "1", "--rate", "0.4",
                   "--batch", "32", "--keep-masked", masked, "--report-json", rjson, "--quiet"])
    if rc != 0:
        return [f"compress exit {rc}: {out.strip()}"]
    problems = [p for p in (checker_problem(dst), checker_problem(masked)) if p]
    p = ort_problem(masked, dst, "1,3", 1e-4)
    if p:
        problems.append("masked vs pruned: " + p)
    rep = json.load(open(rjson))
    fused = "fused" in name
    has_bn = any(n.op_type == "BatchNormalization" for n in onnx.load(dst).graph.node)
    if fused and (rep["bn_reinserted"] == 0 or has_bn):
        problems.append(f"fused input: bn_reinserted {rep['bn_reinserted']}, BatchNormalization in OUT: {has_bn}")
    if not fused and not has_bn:
        problems.append("BN-kept input lost its BatchNormalization")
    if not rep["reduction"]["macs"] > 0.3:
        problems.append(f"MAC reduction only {rep['reduction']['macs']:.3f}")
    return problems


def main():
    os.makedirs(OUT, exist_ok=True)
    if not all(os.path.exists(os.path.join(ZOO, f)) for f in FILES):
        rc, out = run(["/usr/bin/python3", "tools/export_zoo.py", ZOO])
        if rc != 0:
            print("export_zoo.py failed:\n" + out)
            return 1
    failures = []
    for name in FILES:
        problems = check(name)
        if problems:
            failures.append(f"{name}: " + "; ".join(problems))
        else:
            print(f"ok   {name}: fine-tuned while pruning, checker clean, pruned = masked in ONNX Runtime")
    return finish(failures, len(FILES), "zoo fine-tuning")


if __name__ == "__main__":
    sys.exit(main())
