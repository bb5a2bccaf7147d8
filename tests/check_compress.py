#!/usr/bin/python3
"""End-to-end check of `compress --epochs 0` on the reference PyTorch exports.

For every reference ResNet (both shortcut styles, fused and unfused BN,
torchvision ResNet-18/34/50):
  1. `compress --epochs 0 --rate 0.5 --keep-masked M --report-json J`;
  2. onnx.checker.check_model(full_check=True) on OUT and on M;
  3. ONNX Runtime: OUT and M agree to 1e-4 relative to the output's scale
     (the promise of --keep-masked) at the export batch and at 3x it, so OUT
     also runs at another batch size;
  4. the report JSON's totals equal `report IN OUT --json`, MACs fall > 20%;
  5. `--rate 0` writes a model computing the input's function (ORT, 1e-5).
Then --flops/--skip, and --round-to/--global/--rates (check_rates): every
kept count a multiple of N, per-group rates in the report, pruned = masked.
"""
import json
import os
import sys

from refs_common import BUILD, SFP, check_all, checker_problem, ort_problem, run

OUT = os.path.join(BUILD, "compress-e2e")


def check(entry):
    name, src = entry["name"], entry["path"]
    dst, masked = os.path.join(OUT, name + ".pruned.onnx"), os.path.join(OUT, name + ".masked.onnx")
    same, rjson = os.path.join(OUT, name + ".rate0.onnx"), os.path.join(OUT, name + ".json")
    eb = int(entry.get("export_batch", 1))
    rc, out = run([SFP, "compress", src, dst, "--epochs", "0", "--rate", "0.5", "--keep-masked", masked,
                   "--report-json", rjson, "--quiet"])
    if rc != 0:
        return [f"compress exit {rc}: {out.strip()}"]
    problems = [p for p in (checker_problem(dst), checker_problem(masked)) if p]
    p = ort_problem(masked, dst, f"{eb},{3 * eb}", 1e-4)
    if p:
        problems.append("masked vs pruned: " + p)
    rep = entry["report"] = json.load(open(rjson))
    rc, out = run([SFP, "report", src, dst, "--json"])
    if rc != 0:
        problems.append("report: " + out.strip())
    elif json.loads(out)["models"][1]["total"] != rep["models"][1]["total"]:
        problems.append("report-json totals differ from report IN OUT")
    if not rep["reduction"]["macs"] > 0.2:
        problems.append(f"MAC reduction only {rep['reduction']['macs']:.3f}")
    rc, out = run([SFP, "compress", src, same, "--epochs", "0", "--rate", "0", "--quiet"])
    p = ("rate 0: " + out.strip()) if rc != 0 else ort_problem(src, same, str(eb), 1e-5)
    if p:
        problems.append("rate 0 changed the function: " + p)
    return problems


def check_flops_and_skip():
    """--flops reaches its MAC cut on the emitted graph; --skip keeps the
    matching layers' channels (ResNet-20 with zero-padding shortcuts)."""
    src = os.path.join(BUILD, "refs", "resnet20_a_concat_fused_op13.onnx")
    dst, rjson = os.path.join(OUT, "flops.onnx"), os.path.join(OUT, "flops.json")
    rc, out = run([SFP, "compress", src, dst, "--epochs", "0", "--flops", "0.4", "--report-json", rjson])
    if rc != 0:
        return ["--flops 0.4: " + out.strip()]
    rep = json.load(open(rjson))
    problems = []
    if not rep["reduction"]["macs"] >= 0.4:
        problems.append(f"--flops 0.4 cut only {rep['reduction']['macs']:.4f} of the MACs")
    if not 0 < rep["rate"] < 0.99:
        problems.append(f"--flops chose rate {rep['rate']}")
    rc, out = run([SFP, "compress", src, dst, "--epochs", "0", "--rate", "0.5", "--skip", "*blocks.1*",
                   "--report-json", rjson, "--quiet"])
    if rc != 0:
        return problems + ["--skip: " + out.strip()]
    layers = json.load(open(rjson))["layers"]
    kept = {l["name"]: (l["channels"], l["kept"]) for l in layers}
    inner = [n for n in kept if "blocks.1/" in n and "conv_a" in n]
    if not inner or any(kept[n][0] != kept[n][1] for n in inner):
        problems.append(f"--skip '*blocks.1*' changed {inner}: {[kept[n] for n in inner]}")
    if all(c == k for c, k in kept.values()):
        problems.append("--skip: nothing was pruned")
    return problems


def check_rates():
    """--round-to 8 keeps multiples of 8 in every layer that lost channels;
    --global --flops 0.5 and --rates FILE give a rate per group, listed in
    the report; ONNX Runtime: pruned = masked (1e-4) for each."""
    problems = []
    rules = os.path.join(OUT, "rates.json")
    with open(rules, "w") as f:
        json.dump({"*blocks.1/*": 0.125, "*blocks.4/*": 0.75}, f)
    for name, args in (("round8", ["--rate", "0.3", "--round-to", "8"]),
                       ("global", ["--flops", "0.5", "--global", "--round-to", "4"]),
                       ("rates", ["--rate", "0.5", "--rates", rules])):
        for src_name in ("resnet20_b_fused_op17", "resnet18_tv_fused_op13"):
            if name == "rates" and src_name.startswith("resnet18"):
                continue
            src = os.path.join(BUILD, "refs", src_name + ".onnx")
            dst, masked = os.path.join(OUT, f"{src_name}.{name}.onnx"), os.path.join(OUT, f"{src_name}.{name}.masked.onnx")
            rjson = os.path.join(OUT, f"{src_name}.{name}.json")
            rc, out = run([SFP, "compress", src, dst, "--epochs", "0", "--keep-masked", masked, "--report-json", rjson,
                           "--quiet"] + args)
            if rc != 0:
                problems.append(f"{src_name} {name}: compress exit {rc}: {out.strip()}")
                continue
            rep = json.load(open(rjson))
            p = checker_problem(dst) or ort_problem(masked, dst, "2", 1e-4)
            if p:
                problems.append(f"{src_name} {name}: masked vs pruned: {p}")
            rates = {g["group"]: g for g in rep["group_rates"]}
            if not rates or any(g["rate"] != g["removed"] / g["channels"] for g in rates.values()):
                problems.append(f"{src_name} {name}: group_rates missing or inconsistent")
            lost = [g for g in rates.values() if g["removed"] > 0]
            if name == "round8":
                bad = [(l["name"], l["kept"]) for l in rep["layers"] if l["kept"] != l["channels"] and l["kept"] % 8]
                bad += [(g["group"], g["channels"] - g["removed"]) for g in lost if (g["channels"] - g["removed"]) % 8]
                if bad or not lost:
                    problems.append(f"{src_name} --round-to 8: kept counts not multiples of 8: {bad[:4]}")
            if name == "global":
                if rep["reduction"]["macs"] < 0.5:
                    problems.append(f"{src_name} --global --flops 0.5 cut only {rep['reduction']['macs']:.4f}")
                if len({g["rate"] for g in lost}) < 2:
                    problems.append(f"{src_name} --global: one rate for every group")
            if name == "rates":
                for g, want in (("blocks.1/", 0.125), ("blocks.4/", 0.75)):
                    got = [r["rate"] for k, r in rates.items() if g in k]
                    if not got or any(abs(x - want) > 1e-9 for x in got):
                        problems.append(f"--rates: groups of {g} got {got}, want {want}")
    return problems


def main():
    status = check_all(OUT, check, lambda e: f"{e['name']}: MACs -{100 * e['report']['reduction']['macs']:.1f}%, "
                       f"params -{100 * e['report']['reduction']['params']:.1f}%", "compress --epochs 0")
    problems = check_flops_and_skip()
    for p in problems:
        print("FAIL flops/skip: " + p)
    if not problems:
        print("ok   --flops 0.4 reaches its MAC cut; --skip keeps the matching layers")
    rate_problems = check_rates()
    for p in rate_problems:
        print("FAIL rates: " + p)
    if not rate_problems:
        print("ok   --round-to 8 keeps multiples of 8, --global --flops and --rates give per-group rates; pruned = masked")
    problems += rate_problems
    return 1 if problems else status


if __name__ == "__main__":
    sys.exit(main())
