#!/usr/bin/python3
"""The numbers users see stay what they were: `report --json` and
`compress --epochs 0 --rate 0.5` on the shipped models and the reference
exports, against tests/golden/numbers.json.

For each model the digest holds the report's per-node rows (name, op type,
params, MACs) and totals, the compressed model's totals and the channels each
layer kept, and the SHA-256 of the input and of the compressed file. The
compressed bytes are compared when the input's bytes are the golden ones (the
shipped models always; the reference exports when PyTorch exported them
byte for byte as when the golden file was written); otherwise the numbers
alone are compared. A change of behaviour on purpose rewrites the golden file
with `tests/check_numbers.py --update` and says why in its commit.
"""
import hashlib
import json
import os
import sys

from refs_common import BUILD, SFP, reference_models, run

GOLDEN = "tests/golden/numbers.json"
OUT = os.path.join(BUILD, "numbers")
SHIPPED = ["models/fmnist-resnet20.onnx", "models/fmnist-resnet56.onnx", "models/defects-resnet20.onnx"]


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def digest(name, src):
    dst, rjson = os.path.join(OUT, name + ".onnx"), os.path.join(OUT, name + ".json")
    rc, out = run([SFP, "report", src, "--json"])
    if rc != 0:
        return {"error": f"report exit {rc}: {out.strip()}"}
    rep = json.loads(out)["models"][0]
    rc, out = run([SFP, "compress", src, dst, "--epochs", "0", "--rate", "0.5", "--report-json", rjson, "--quiet"])
    if rc != 0:
        return {"error": f"compress exit {rc}: {out.strip()}"}
    comp = json.load(open(rjson))
    return {
        "input_sha256": sha(src),
        "total": rep["total"],
        "nodes": [[n["name"], n["op_type"], n["params"], n["macs"]] for n in rep["nodes"]],
        "compressed_total": comp["models"][1]["total"],
        "kept": [[l["name"], l["channels"], l["kept"]] for l in comp["layers"]],
        "compressed_sha256": sha(dst),
    }


def models():
    for path in SHIPPED:
        yield os.path.basename(path)[:-5], path
    for entry in reference_models():
        yield entry["name"], entry["path"]


def main():
    os.makedirs(OUT, exist_ok=True)
    got = {name: digest(name, path) for name, path in models()}
    if "--update" in sys.argv:
        with open(GOLDEN, "w") as f:
            json.dump(got, f, indent=1, sort_keys=True)
            f.write("\n")
        print(f"wrote {GOLDEN} ({len(got)} models)")
        return 0
    want = json.load(open(GOLDEN))
    failures = []
    for name, d in got.items():
        w = want.get(name)
        if w is None:
            failures.append(f"{name}: not in {GOLDEN}")
            continue
        if "error" in d:
            failures.append(f"{name}: {d['error']}")
            continue
        same_input = d["input_sha256"] == w["input_sha256"]
        keys = ["total", "nodes", "compressed_total", "kept"] + (["compressed_sha256"] if same_input else [])
        bad = [k for k in keys if d[k] != w[k]]
        if bad:
            failures.append(f"{name}: {', '.join(bad)} differ from {GOLDEN}")
        else:
            print(f"ok   {name}" + ("" if same_input else " (input exported differently: numbers only)"))
    for f in failures:
        print("FAIL " + f)
    print(f"numbers: {len(got)} models checked, {len(failures)} failed")
    return 1 if failures or not got else 0


if __name__ == "__main__":
    sys.exit(main())
