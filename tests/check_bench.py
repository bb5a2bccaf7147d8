#!/usr/bin/python3
"""`onnx-sfp bench ORIGINAL COMPRESSED` on a ResNet-8 (1x32x32, 7 classes) and
its copy compressed at rate 0.5 (--epochs 0). Checked: the JSON keys of
DESIGN.md's contract and the added ones; MACs and parameters equal `report
--json`'s totals and the reduction equals report's; cpu and isa name the
CPU and the instruction set chosen (SFP_ISA=avx2 is obeyed or capped); the speed-up equals the
ratio of the two models' own figures; --train adds train_images_per_s and
speedup.training (their ratio); --data runs both models on the same
generated images (count, --limit, a batch larger than the set), and a broken
image in --data fails with exit 3 naming the file; text output ends with the
comparison line and starts with the CPU and kernels; usage errors exit 2. Timings are only checked to be positive
and finite: the machine is shared, speed is a benchmark, not a test."""
import json
import math
import os
import re
import shutil
import subprocess
import sys

from check_common import Failures
from refs_common import BUILD, SFP, run

FAST = ["--seconds", "0.01", "--threads", "1"]
CONTRACT_KEYS = {"path", "batch", "infer_images_per_s", "latency_ms_batch1"}


def bench_json(fails, what, args):
    rc, out = run([SFP, "bench"] + args + FAST + ["--json", "--quiet"])
    if not fails.check(rc == 0, f"{what}: exit {rc}: {out.strip()}"):
        return None
    try:
        return json.loads(out)
    except ValueError:
        fails.append(f"{what}: not JSON: {out[:200]}")
        return None


def close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


def check_models(fails, what, got, paths, batch, report):
    """Contract keys, batch, MACs and params against report --json, speed-up ratios."""
    models = got["models"]
    fails.check(isinstance(got.get("cpu"), str) and got["cpu"] and got.get("isa") in ("avx512", "avx2", "scalar"),
                f"{what}: cpu {got.get('cpu')!r}, isa {got.get('isa')!r}")
    if not fails.check([m.get("path") for m in models] == paths, f"{what}: paths {[m.get('path') for m in models]}"):
        return
    for m, total in zip(models, (r["total"] for r in report["models"])):
        fails.check(CONTRACT_KEYS <= set(m), f"{what}: {m['path']}: keys {sorted(m)} lack {sorted(CONTRACT_KEYS - set(m))}")
        fails.check(m.get("batch") == batch, f"{what}: {m['path']}: batch {m.get('batch')}, asked {batch}")
        fails.check(m.get("macs") == total["macs"] and m.get("params") == total["params"],
                    f"{what}: {m['path']}: macs/params {m.get('macs')}/{m.get('params')}, report says "
                    f"{total['macs']}/{total['params']}")
        for key in ("infer_images_per_s", "latency_ms_batch1"):
            v = m.get(key)
            fails.check(isinstance(v, float) and math.isfinite(v) and v > 0, f"{what}: {m['path']}: {key} = {v}")
    if len(models) != 2:
        fails.check(got.get("reduction") is None and got.get("speedup") is None,
                    f"{what}: one model, reduction/speedup not null")
        return
    a, b = models
    red, sp = got.get("reduction") or {}, got.get("speedup") or {}
    for key in ("params", "macs"):
        fails.check(key in red and close(red[key], report["reduction"][key]),
                    f"{what}: reduction.{key} {red.get(key)}, report says {report['reduction'][key]}")
    fails.check("latency_batch1" in sp and close(sp["latency_batch1"], a["latency_ms_batch1"] / b["latency_ms_batch1"]),
                f"{what}: speedup.latency_batch1 {sp.get('latency_batch1')} is not the latency ratio")
    fails.check("throughput" in sp and close(sp["throughput"], b["infer_images_per_s"] / a["infer_images_per_s"]),
                f"{what}: speedup.throughput {sp.get('throughput')} is not the throughput ratio")


def main():
    work = os.path.join(BUILD, "bench-e2e")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    data = os.path.join(work, "defects")
    original, small = os.path.join(work, "r8.onnx"), os.path.join(work, "r8-small.onnx")
    for cmd in (["/usr/bin/python3", "tools/gen_defects.py", data, "--split", "1,3", "--size", "32", "--seed", "3"],
                [SFP, "init", "resnet8", original, "--input", "1x32x32", "--classes", "7", "--seed", "2", "--quiet"],
                [SFP, "compress", original, small, "--epochs", "0", "--rate", "0.5", "--quiet"]):
        rc, msg = run(cmd)
        if rc != 0:
            print(f"FAIL {' '.join(cmd[:3])}: exit {rc}: {msg}")
            return 1
    rc, out = run([SFP, "report", original, small, "--json"])
    if rc != 0:
        print("FAIL report: " + out)
        return 1
    report = json.loads(out)
    rc, out = run([SFP, "report", original, "--json"])
    report_one = json.loads(out)
    fails = Failures()
    pair = [original, small]

    got = bench_json(fails, "synthetic", pair + ["--batch", "4"])
    if got:
        check_models(fails, "synthetic", got, pair, 4, report)
        fails.check(got.get("input") == {"data": None, "images": None}, f"synthetic: input {got.get('input')}")
    got = bench_json(fails, "one model", [original, "--batch", "2"])
    if got:
        check_models(fails, "one model", got, [original], 2, report_one)

    # The same 21 test images for both models; the batch may exceed the set.
    for what, extra, n in (("--data", ["--batch", "8"], 21), ("--data --limit", ["--batch", "3", "--limit", "5"], 5),
                           ("--data batch > images", ["--batch", "32"], 21)):
        got = bench_json(fails, what, pair + ["--data", data] + extra)
        if got:
            check_models(fails, what, got, pair, int(extra[1]), report)
            fails.check(got.get("input") == {"data": data, "images": n}, f"{what}: input {got.get('input')}, "
                        f"expected {n} images")

    # --train: training steps timed too (on the data's labels), the ratio in speedup.training.
    got = bench_json(fails, "--train", pair + ["--data", data, "--batch", "4", "--train"])
    if got:
        check_models(fails, "--train", got, pair, 4, report)
        t = [m.get("train_images_per_s") for m in got["models"]]
        fails.check(all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in t), f"--train: train_images_per_s {t}")
        sp = (got.get("speedup") or {}).get("training")
        fails.check(None not in t and sp is not None and close(sp, t[1] / t[0]),
                    f"--train: speedup.training {sp} is not the ratio of {t}")
    got = bench_json(fails, "without --train", [original, "--batch", "2"])
    fails.check(got and "train_images_per_s" not in got["models"][0], "without --train: no train_images_per_s")

    # SFP_ISA lowers the instruction set (never above what the CPU has).
    p = subprocess.run([SFP, "bench", original, "--batch", "2", "--json", "--quiet"] + FAST, capture_output=True,
                       text=True, env=dict(os.environ, SFP_ISA="avx2"))
    try:
        isa = json.loads(p.stdout).get("isa") if p.returncode == 0 else None
    except ValueError:
        isa = None
    fails.check(isa in ("avx2", "scalar"), f"SFP_ISA=avx2: exit {p.returncode}, isa {isa!r}")

    # Text output: the CPU and kernels, one row per model, then the comparison.
    rc, out = run([SFP, "bench"] + pair + ["--data", data, "--batch", "4", "--quiet"] + FAST)
    want = f"MACs -{100 * report['reduction']['macs']:.1f}%, params -{100 * report['reduction']['params']:.1f}%"
    fails.check(out.startswith("cpu: ") and "; kernels: " in out.splitlines()[0], f"text output: first line {out[:80]!r}")
    fails.check(rc == 0 and out.count("r8") == 2 and re.search(re.escape(want) + r": latency [0-9.]+x faster", out),
                f"text output: exit {rc}, no line starting '{want}: latency': {out.strip()}")

    # Bad input: one error line, the right exit status.
    broken = os.path.join(data, "test", "scratches", "scratches_00001.png")
    with open(broken, "r+b") as f:
        f.truncate(40)
    cases = [
        ("broken image", pair + ["--data", data], 3, re.escape(broken)),
        ("missing folder", pair + ["--data", os.path.join(work, "nowhere")], 1, "nowhere"),
        ("--limit without --data", pair + ["--limit", "3"], 2, "--limit needs --data"),
        ("--batch 0", pair + ["--batch", "0"], 2, "--batch"),
    ]
    for what, args, code, pattern in cases:
        rc, out = run([SFP, "bench"] + args + FAST + ["--quiet"])
        lines = out.strip().splitlines()
        fails.check(rc == code and len(lines) == 1 and lines[0].startswith("onnx-sfp: error: ")
                    and re.search(pattern, lines[0]), f"{what}: exit {rc} (want {code}), output {out.strip()!r}")
    return fails.finish(f"bench: contract keys, MACs/params/reduction as report's, speed-up ratios, --data on the "
                        f"same images and {len(cases)} bad-input cases right", work)


if __name__ == "__main__":
    sys.exit(main())
