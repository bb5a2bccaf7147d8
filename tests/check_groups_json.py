#!/usr/bin/python3
"""`report --groups --json` describes the pruning scope exactly: choosing
channels from its rows alone (score = sum of the L2 norms of the "filter"
rows, prune_count(n, 0.5) lowest per prunable group, ties to the lower
index) and zeroing every listed row of the chosen channels, in numpy on the
input's initializers, gives the initializers of `compress --epochs 0 --rate
0.5 --keep-masked` bit for bit. tools/torch_sfp.py relies on this to prune
the same channels as onnx-sfp. Run on the shipped model and on two reference
exports (shortcut B, both zero-padding shortcuts, initializers as inputs, torchvision ResNet-50)."""
import json
import math
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

from check_common import Failures
from refs_common import BUILD, REFS, SFP, reference_models, run


def expected_masked(model_path, groups, rate):
    inits = {t.name: numpy_helper.to_array(t).copy() for t in onnx.load(model_path).graph.initializer}
    for g in groups:
        n = g["channels"]
        k = max(0, min(int(math.floor(rate * n + 1e-9)), n - 1))
        if not g["prunable"] or k == 0:
            continue
        scores = [sum(float(np.linalg.norm(np.take(inits[r["tensor"]], r["row"], axis=r["axis"]).astype(np.float64)))
                      for r in rows if r["filter"]) for rows in g["channel_rows"]]
        for j in np.argsort(np.array(scores), kind="stable")[:k]:
            for r in g["channel_rows"][j]:
                index = [slice(None)] * inits[r["tensor"]].ndim
                index[r["axis"]] = r["row"]
                inits[r["tensor"]][tuple(index)] = 0
    return inits


def check(f, model_path, name, out):
    rc, text = run([SFP, "report", model_path, "--groups", "--json"])
    if not f.check(rc == 0, f"{name}: report --groups --json: {text.strip()[-200:]}"):
        return
    groups = json.loads(text)["models"][0]["groups"]
    masked, dst = os.path.join(out, name + ".masked.onnx"), os.path.join(out, name + ".onnx")
    rc, text = run([SFP, "compress", model_path, dst, "--epochs", "0", "--rate", "0.5", "--keep-masked", masked,
                    "--quiet"])
    if not f.check(rc == 0, f"{name}: compress: {text.strip()[-200:]}"):
        return
    want = expected_masked(model_path, groups, 0.5)
    got = {t.name: numpy_helper.to_array(t) for t in onnx.load(masked).graph.initializer}
    differ = [n for n in want if n in got and not np.array_equal(want[n], got[n])]
    f.check(not differ, f"{name}: rows zeroed from the JSON differ from --keep-masked in {differ[:5]}")
    f.check(any(g["prunable"] for g in groups) and all("channel_rows" in g for g in groups),
            f"{name}: groups without channel_rows")
    f.compared += 1


def main():
    out = os.path.join(BUILD, "groups-json-e2e")
    os.makedirs(out, exist_ok=True)
    f = Failures()
    check(f, "models/fmnist-resnet20.onnx", "fmnist-resnet20", out)
    wanted = {"resnet20_b_unfused_op9", "resnet20_a_concat_fused_op13", "resnet20_a_pad_unfused_op11",
              "resnet20_a_concat_initinputs_op9", "resnet50_tv_fused_op17"}
    for entry in reference_models():
        if entry["name"] in wanted:
            check(f, entry["path"], entry["name"], out)
    f.check(f.compared >= 6, f"only {f.compared} models compared (refs in {REFS})")
    return f.finish(f"report --groups --json: the rows it lists reproduce --keep-masked on {f.compared} models", out)


if __name__ == "__main__":
    sys.exit(main())
