#!/usr/bin/python3
"""The end of `make demo-defects`: the original and the compressed defect
model side by side on the same fresh images: accuracy, balanced accuracy,
escape rate (from `detect A B --json`), latency per image at batch 1 in
onnx-sfp (`bench --data --json`) and in ONNX Runtime (bench/ort_images.js),
MACs and parameters, and the CPU. Exits 1 when the compressed model is more
than 1 point below the original in accuracy or above it in escape rate, or
less than 2x faster at batch 1 in either runtime.

    demo_defects_check.py DETECT.json BENCH.json ORT_ORIGINAL.json ORT_COMPRESSED.json"""
import json
import sys

MAX_POINTS = 1.0
MIN_SPEEDUP = 2.0


def main():
    detect, bench, ort_a, ort_b = (json.load(open(p)) for p in sys.argv[1:5])
    a, b = detect, detect["second"]
    ours = [m["latency_ms_batch1"] for m in bench["models"]]
    ort = [ort_a["ms_median"], ort_b["ms_median"]]
    with open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "unknown")
    print(f"CPU: {cpu} (onnx-sfp kernels: {bench.get('isa', '?')}), one thread each; {a['labelled']} test images "
          f"({detect['uncertain']} uncertain), {len(detect['skipped'])} skipped; "
          + (f"'ok' called at probability >= {detect['ok_threshold']}" if detect.get("ok_threshold") else "argmax"))
    rows = [("accuracy %", 100 * a["accuracy"], 100 * b["accuracy"]),
            ("balanced accuracy %", 100 * a["balanced_accuracy"], 100 * b["balanced_accuracy"]),
            ("escape rate %", 100 * a["escape_rate"], 100 * b["escape_rate"]),
            ("onnx-sfp ms/image, batch 1", ours[0], ours[1]),
            ("ONNX Runtime ms/image, batch 1", ort[0], ort[1]),
            ("ONNX Runtime accuracy %", 100 * ort_a["accuracy"], 100 * ort_b["accuracy"]),
            ("MACs", a["macs"], b["macs"]), ("parameters", a["params"], b["params"])]
    print(f"{'':32s} {'original':>14s} {'compressed':>14s}")
    for name, x, y in rows:
        fmt = "{:14,.0f}" if name in ("MACs", "parameters") else "{:14.2f}"
        print(f"{name:32s} {fmt.format(x)} {fmt.format(y)}")
    print(f"agreement of the two models: {100 * detect['agreement']:.2f} %")
    checks = [
        ("accuracy within 1 point", 100 * (a["accuracy"] - b["accuracy"]) <= MAX_POINTS),
        ("escape rate within 1 point", 100 * (b["escape_rate"] - a["escape_rate"]) <= MAX_POINTS),
        (f"onnx-sfp {ours[0] / ours[1]:.2f}x faster at batch 1 (>= {MIN_SPEEDUP})", ours[0] / ours[1] >= MIN_SPEEDUP),
        (f"ONNX Runtime {ort[0] / ort[1]:.2f}x faster at batch 1 (>= {MIN_SPEEDUP})", ort[0] / ort[1] >= MIN_SPEEDUP),
    ]
    for name, ok in checks:
        print(("ok   " if ok else "FAIL ") + name)
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
