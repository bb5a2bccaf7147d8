#!/usr/bin/python3
"""End-to-end check of `compress --epochs 0` on the reference PyTorch exports.

For every reference ResNet (tools/export_refs.py, both shortcut styles, fused
and unfused BN, torchvision ResNet-18/34/50):
  1. `compress --epochs 0 --rate 0.5 --keep-masked M --report-json J`;
  2. onnx.checker.check_model(full_check=True) on OUT and on M;
  3. ONNX Runtime: OUT and M agree to 1e-4 relative to the output's scale
     (the promise of --keep-masked) at the export batch and at 3x it, so OUT
     also runs at another batch size;
  4. the report JSON holds a MAC reduction > 0 and equals `report IN OUT --json`;
  5. `--rate 0` writes a model computing the input's function (ORT, 1e-5).
"""
import json
import os
import subprocess
import sys

import onnx

BUILD = os.environ.get("BUILD", "build")
REFS = os.path.join(BUILD, "refs")
OUT = os.path.join(BUILD, "compress-e2e")
SFP = os.path.join(BUILD, "onnx-sfp")


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def ort_agree(a, b, batches, tol):
    rc, out = run(["node", "tools/ort_compare.js", a, b, "--batches", batches, "--tol", str(tol)])
    return rc == 0, out.strip().replace("\n", " | ")


def main():
    rc, out = run(["/usr/bin/python3", "tools/export_refs.py", REFS])
    if rc != 0:
        print("export_refs.py failed:\n" + out)
        return 1
    manifest = json.load(open(os.path.join(REFS, "manifest.json")))
    os.makedirs(OUT, exist_ok=True)
    failures, checked = [], 0
    for entry in manifest["models"]:
        if entry.get("skipped"):
            continue
        name = entry["name"]
        src = os.path.join(REFS, entry["file"])
        dst = os.path.join(OUT, name + ".pruned.onnx")
        masked = os.path.join(OUT, name + ".masked.onnx")
        same = os.path.join(OUT, name + ".rate0.onnx")
        rjson = os.path.join(OUT, name + ".json")
        eb = int(entry.get("export_batch", 1))
        batches = f"{eb},{3 * eb}"
        problems = []
        rc, out = run([SFP, "compress", src, dst, "--epochs", "0", "--rate", "0.5", "--keep-masked", masked,
                       "--report-json", rjson, "--quiet"])
        checked += 1
        if rc != 0:
            failures.append(f"{name}: compress exit {rc}: {out.strip()}")
            continue
        for path in (dst, masked):
            try:
                onnx.checker.check_model(onnx.load(path), full_check=True)
            except Exception as e:  # noqa: BLE001
                problems.append(f"onnx.checker {os.path.basename(path)}: " + str(e).splitlines()[0])
        ok, msg = ort_agree(masked, dst, batches, 1e-4)
        if not ok:
            problems.append("masked vs pruned: " + msg)
        rep = json.load(open(rjson))
        rc, out = run([SFP, "report", src, dst, "--json"])
        if rc != 0:
            problems.append("report: " + out.strip())
        else:
            two = json.loads(out)
            if two["models"][1]["total"] != rep["models"][1]["total"]:
                problems.append("report-json totals differ from report IN OUT")
            if not rep["reduction"]["macs"] > 0.2:
                problems.append(f"MAC reduction only {rep['reduction']['macs']:.3f}")
        rc, out = run([SFP, "compress", src, same, "--epochs", "0", "--rate", "0", "--quiet"])
        if rc != 0:
            problems.append("rate 0: " + out.strip())
        else:
            ok, msg = ort_agree(src, same, str(eb), 1e-5)
            if not ok:
                problems.append("rate 0 changed the function: " + msg)
        if problems:
            failures.append(f"{name}: " + "; ".join(problems))
        else:
            print(f"ok   {name}: MACs -{100 * rep['reduction']['macs']:.1f}%, params -{100 * rep['reduction']['params']:.1f}%")
    for f in failures:
        print("FAIL " + f)
    print(f"compress --epochs 0: {checked} models checked, {len(failures)} failed")
    return 1 if failures or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
