#!/usr/bin/python3
"""`onnx-sfp sensitivity` against ONNX Runtime: on a ResNet-20 made by `init`
for 1x28x28 and the first 300 Fashion-MNIST test images, each group's
accuracy with that group pruned alone must equal the top-1 accuracy ONNX
Runtime gives for the model `compress --epochs 0 --rates` writes with only
that group pruned (to one image: the masked and the pruned model may order
near-equal logits differently). Also: the JSON's keys, one entry per
prunable group, removed = floor(rate * channels), and the text table."""
import json
import os
import sys

from onnx import TensorProto, numpy_helper

from check_eval import init_model_and_images
from refs_common import BUILD, SFP, run

DATA = "/usr/share/datasets/fashion-mnist"
N = 300


def ort_accuracy(model, x, labels, out):
    y = os.path.join(out, "y.pb")
    rc, msg = run(["node", "tools/ort_compare.js", "--run", model, "--input", x, "--output", y])
    if rc != 0:
        raise RuntimeError("ONNX Runtime failed: " + msg)
    t = TensorProto()
    t.ParseFromString(open(y, "rb").read())
    return float((numpy_helper.to_array(t).argmax(1) == labels).mean())


def main():
    out = os.path.join(BUILD, "sensitivity-e2e")
    made = init_model_and_images(out, N)
    if not made:
        return 1
    model, x, labels = made
    rc, msg = run([SFP, "sensitivity", model, "--data", DATA, "--limit", str(N), "--rates", "0.5,0.75", "--json",
                   "--quiet"])
    if rc != 0:
        print("sensitivity failed: " + msg)
        return 1
    rep = json.loads(msg)
    problems = []
    if rep.get("schema_version") != 1 or rep.get("images") != N or rep.get("rates") != [0.5, 0.75]:
        problems.append(f"header: {[(k, rep.get(k)) for k in ('schema_version', 'images', 'rates')]}")
    groups = rep["groups"]
    if len(groups) < 10:
        problems.append(f"only {len(groups)} groups listed")
    for g in groups:
        for r in g["results"]:
            if r["removed"] != int(r["rate"] * g["channels"] + 1e-9):
                problems.append(f"{g['group']}: removed {r['removed']} of {g['channels']} at {r['rate']}")
            if abs(r["drop_points"] - 100 * (rep["accuracy"] - r["accuracy"])) > 1e-9:
                problems.append(f"{g['group']}: drop_points inconsistent")
    base = ort_accuracy(model, x, labels, out)
    if abs(base - rep["accuracy"]) > 1e-9:
        problems.append(f"base accuracy {rep['accuracy']} vs ONNX Runtime {base}")
    # the first group, and the one hurt most at 0.75
    worst = max(groups, key=lambda g: g["results"][1]["drop_points"])
    for g in (groups[0], worst):
        layer = g["group"]  # the label as a pattern matches that group alone (a layer may feed two groups)
        rules = os.path.join(out, "rules.json")
        with open(rules, "w") as f:
            json.dump({layer: 0.75, "*": 0}, f)
        dst = os.path.join(out, "one.onnx")
        rc, msg = run([SFP, "compress", model, dst, "--epochs", "0", "--rates", rules, "--quiet"])
        if rc != 0:
            problems.append(f"compress --rates for {layer}: {msg.strip()}")
            continue
        ref = ort_accuracy(dst, x, labels, out)
        ours = g["results"][1]["accuracy"]
        print(f"     {layer}: rate 0.75 accuracy {ours:.4f} vs ONNX Runtime on the pruned model {ref:.4f}")
        if abs(ours - ref) > 1.0 / N + 1e-9:
            problems.append(f"{layer}: sensitivity {ours} vs ONNX Runtime {ref}")
    # --round-to 8: the kept counts compress --round-to 8 keeps, group by group
    rc, msg = run([SFP, "sensitivity", model, "--data", DATA, "--limit", "50", "--rates", "0.5,0.75", "--round-to", "8",
                   "--json", "--quiet"])
    if rc != 0:
        problems.append("--round-to 8: " + msg[:200])
    else:
        rounded = json.loads(msg)
        if rounded.get("round_to") != 8:
            problems.append(f"--round-to 8: round_to {rounded.get('round_to')}")
        g = rounded["groups"][0]
        rules = os.path.join(out, "rules8.json")
        with open(rules, "w") as f:
            json.dump({g["group"]: 0.75, "*": 0}, f)
        report = os.path.join(out, "round8.json")
        rc, msg = run([SFP, "compress", model, os.path.join(out, "r8.onnx"), "--epochs", "0", "--rates", rules,
                       "--round-to", "8", "--report-json", report, "--quiet"])
        with open(report) as f:
            want = [r["removed"] for r in json.load(f)["group_rates"] if r["group"] == g["group"]]
        if rc != 0 or want != [g["results"][1]["removed"]]:
            problems.append(f"--round-to 8, {g['group']} at 0.75: sensitivity removes {g['results'][1]['removed']}, "
                            f"compress {want}")
        for g in rounded["groups"]:
            for r in g["results"]:
                kept = g["channels"] - r["removed"]
                if r["removed"] and kept % 8:
                    problems.append(f"--round-to 8, {g['group']} at {r['rate']}: keeps {kept}")
    rc, msg = run([SFP, "sensitivity", model, "--data", DATA, "--limit", "50", "--rates", "0.5", "--quiet"])
    if rc != 0 or "accuracy drop" not in msg or groups[0]["group"] not in msg:
        problems.append("text table: " + msg[:200])
    for bad in (["--rates", "0.5,x"], ["--rates", "1.5"], []):
        rc, msg = run([SFP, "sensitivity", model, "--limit", "10", "--quiet"] + (bad + ["--data", DATA] if bad else []))
        if rc != 2:
            problems.append(f"{bad or 'no --data'}: exit {rc}, want 2")
    for p in problems:
        print("FAIL sensitivity: " + p)
    if not problems:
        print(f"ok   sensitivity: {len(groups)} groups x 2 rates; accuracies equal ONNX Runtime's on the pruned models")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
