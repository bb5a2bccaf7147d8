#!/usr/bin/python3
"""End-to-end check of the foundation against outside references.

For every reference ResNet exported by PyTorch (tools/export_refs.py):
  1. load + save with our loader/saver (build/tests/sfp-roundtrip);
  2. onnx.checker.check_model(full_check=True) on the saved file;
  3. ONNX Runtime on original and saved files, same random inputs, at the export
     batch and at another batch (the saved file must be batch-free): max
     difference relative to the output's scale <= 1e-5 (both files hold the same
     weights, so only ORT's own float rounding may differ);
  4. `onnx-sfp report --json`: MACs equal PyTorch forward-hook counts exactly;
     parameters equal PyTorch's for models whose BN was not folded.
Exit status 0 when every model passes.
"""
import json
import os
import subprocess
import sys

import onnx

BUILD = os.environ.get("BUILD", "build")
REFS = os.path.join(BUILD, "refs")
OUT = os.path.join(BUILD, "refs-roundtrip")
NODE_TOOL = os.path.join("tools", "ort_compare.js")


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def main():
    rc, out, err = run(["/usr/bin/python3", "tools/export_refs.py", REFS])
    if rc != 0:
        print("export_refs.py failed:\n" + out + err)
        return 1
    manifest = json.load(open(os.path.join(REFS, "manifest.json")))
    os.makedirs(OUT, exist_ok=True)
    failures = []
    checked = 0
    for entry in manifest["models"]:
        name = entry["name"]
        if entry.get("skipped"):
            print(f"skip {name}: {entry['skipped']}")
            continue
        src = os.path.join(REFS, entry["file"])
        dst = os.path.join(OUT, entry["file"])
        problems = []
        rc, out, err = run([os.path.join(BUILD, "tests", "sfp-roundtrip"), src, dst])
        if rc != 0:
            failures.append(f"{name}: roundtrip exit {rc}: {err.strip()}")
            continue
        try:
            onnx.checker.check_model(onnx.load(dst), full_check=True)
        except Exception as e:  # noqa: BLE001 - report any checker failure
            problems.append("onnx.checker: " + str(e).splitlines()[0])
        eb = int(entry.get("export_batch", 1))
        batches = f"{eb},{eb * 3}"
        rc, out, err = run(["node", NODE_TOOL, src, dst, "--batches", batches, "--tol", "1e-5"])
        if rc != 0:
            problems.append("ONNX Runtime original vs saved: " + (out + err).strip().replace("\n", " | "))
        rc, out, err = run([os.path.join(BUILD, "onnx-sfp"), "report", src, "--json"])
        if rc != 0:
            problems.append(f"report exit {rc}: {err.strip()}")
        else:
            total = json.loads(out)["models"][0]["total"]
            if total["macs"] != entry["macs"]:
                problems.append(f"MACs {total['macs']} != PyTorch hooks {entry['macs']}")
            if entry["bn"] == "unfused" and total["params"] != entry["params"]:
                problems.append(f"params {total['params']} != PyTorch {entry['params']}")
            if total["flops"] != 2 * total["macs"]:
                problems.append("flops != 2 x macs")
        checked += 1
        if problems:
            failures.append(f"{name}: " + "; ".join(problems))
        else:
            print(f"ok   {name}: macs {entry['macs']:,} params {entry['params']:,} ({entry['bn']} BN, opset {entry['opset']}, batch {entry['batch']})")
    for f in failures:
        print("FAIL " + f)
    print(f"reference models: {checked} checked, {len(failures)} failed")
    return 1 if failures or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
