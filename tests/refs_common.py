"""Shared by the end-to-end checks: running commands, the reference exports
(tools/export_refs.py and its manifest), onnx.checker and ONNX Runtime."""
import json
import os
import subprocess

import onnx

BUILD = os.environ.get("BUILD", "build")
REFS = os.path.join(BUILD, "refs")
SFP = os.path.join(BUILD, "onnx-sfp")


def run(cmd):
    """(exit status, stdout + stderr) of cmd."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def reference_models():
    """Exports the reference ResNets once (cached by the script) and yields the
    manifest entries that were exported, each with its "path"."""
    rc, out = run(["/usr/bin/python3", "tools/export_refs.py", REFS])
    if rc != 0:
        raise SystemExit("export_refs.py failed:\n" + out)
    manifest = json.load(open(os.path.join(REFS, "manifest.json")))
    for entry in manifest["models"]:
        if entry.get("skipped"):
            print(f"skip {entry['name']}: {entry['skipped']}")
            continue
        entry["path"] = os.path.join(REFS, entry["file"])
        yield entry


def checker_problem(path):
    """None when onnx.checker (full_check) accepts path, else its first line."""
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
        return None
    except Exception as e:  # noqa: BLE001 - any checker failure is reported
        return f"onnx.checker {os.path.basename(path)}: " + str(e).splitlines()[0]


def ort_problem(a, b, batches, tol):
    """None when ONNX Runtime gives a and b the same outputs (max difference
    relative to the output's scale <= tol) at the given batch sizes."""
    rc, out = run(["node", "tools/ort_compare.js", a, b, "--batches", batches, "--tol", str(tol)])
    return None if rc == 0 else out.strip().replace("\n", " | ")


def check_all(out_dir, check, describe, what):
    """Runs check(entry) -> list of problems on every reference model, prints
    "ok   " + describe(entry) for the clean ones, and returns finish()'s status."""
    os.makedirs(out_dir, exist_ok=True)
    failures, checked = [], 0
    for entry in reference_models():
        checked += 1
        problems = check(entry)
        if problems:
            failures.append(f"{entry['name']}: " + "; ".join(problems))
        else:
            print("ok   " + describe(entry))
    return finish(failures, checked, what)


def finish(failures, checked, what):
    for f in failures:
        print("FAIL " + f)
    print(f"{what}: {checked} models checked, {len(failures)} failed")
    return 1 if failures or checked == 0 else 0

