#!/usr/bin/python3
"""End-to-end check of the foundation against outside references.

For every reference ResNet exported by PyTorch (tools/export_refs.py):
  1. load + save with our loader/saver (build/tests/sfp-roundtrip);
  2. onnx.checker.check_model(full_check=True) on the saved file;
  3. ONNX Runtime on original and saved files, same random inputs, at the export
     batch and at 3x it (the saved file must be batch-free): max difference
     relative to the output's scale <= 1e-5 (same weights: only ORT's own
     rounding may differ);
  4. `onnx-sfp report --json`: MACs equal PyTorch forward-hook counts exactly;
     parameters equal PyTorch's for models whose BN was not folded.
"""
import json
import os
import sys

from refs_common import BUILD, SFP, check_all, checker_problem, ort_problem, run

OUT = os.path.join(BUILD, "refs-roundtrip")


def check(entry):
    src, dst = entry["path"], os.path.join(OUT, entry["file"])
    rc, out = run([os.path.join(BUILD, "tests", "sfp-roundtrip"), src, dst])
    if rc != 0:
        return [f"roundtrip exit {rc}: {out.strip()}"]
    problems = [p for p in [checker_problem(dst)] if p]
    eb = int(entry.get("export_batch", 1))
    p = ort_problem(src, dst, f"{eb},{3 * eb}", 1e-5)
    if p:
        problems.append("ONNX Runtime original vs saved: " + p)
    rc, out = run([SFP, "report", src, "--json"])
    if rc != 0:
        return problems + [f"report exit {rc}: {out.strip()}"]
    total = json.loads(out)["models"][0]["total"]
    if total["macs"] != entry["macs"]:
        problems.append(f"MACs {total['macs']} != PyTorch hooks {entry['macs']}")
    if entry["bn"] == "unfused" and total["params"] != entry["params"]:
        problems.append(f"params {total['params']} != PyTorch {entry['params']}")
    if total["flops"] != 2 * total["macs"]:
        problems.append("flops != 2 x macs")
    return problems


def main():
    return check_all(OUT, check, lambda e: f"{e['name']}: macs {e['macs']:,} params {e['params']:,} "
                     f"({e['bn']} BN, opset {e['opset']}, batch {e['batch']})", "reference models")


if __name__ == "__main__":
    sys.exit(main())
