#!/usr/bin/python3
"""Every JSON object the tool prints, validated against its definition in
docs/json-schemas.json (Debian's python3-jsonschema, draft 7), on small real
runs: report (one model; two with --groups and --paper-rate), compress
--report-json (hybrid with a gate met, and a gate failed: exit 5), sensitivity, eval,
detect (a labelled folder and unlabelled files) and bench (one model; two
with --train). The definitions forbid keys they do not list, so a key added
to an output without its documentation fails here; a document with one key
removed or mistyped must be refused, which shows each definition is in force."""
import copy
import json
import os
import shutil
import subprocess
import sys

import jsonschema

from check_common import Failures
from refs_common import BUILD, SFP

DATA = "/usr/share/datasets/fashion-mnist"
MODEL = "models/fmnist-resnet20.onnx"
DEFECTS = "models/defects-resnet20.onnx"
SCHEMAS = json.load(open("docs/json-schemas.json"))


def validator(name):
    schema = dict(SCHEMAS)
    schema["$ref"] = "#/definitions/" + name
    return jsonschema.Draft7Validator(schema)


def output(f, what, cmd, status=0, path=None):
    """The JSON object cmd prints on stdout (or writes to path); None on failure."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    if not f.check(p.returncode == status, f"{what}: exit {p.returncode}, expected {status}: {p.stderr.strip()[-300:]}"):
        return None
    try:
        return json.load(open(path)) if path else json.loads(p.stdout)
    except ValueError as e:
        f.check(False, f"{what}: not one JSON object: {e}")
        return None


def validate(f, name, what, doc):
    if doc is None:
        return
    errors = sorted(validator(name).iter_errors(doc), key=str)
    f.check(not errors, f"{what}: {errors[0].message if errors else ''} at {list(errors[0].path) if errors else ''}")
    f.compared += 1


def must_refuse(f, name, doc, mutate, what):
    """The definition refuses doc after mutate(doc) (a key removed or added)."""
    if doc is None:
        return
    bad = copy.deepcopy(doc)
    mutate(bad)
    f.check(not validator(name).is_valid(bad), f"{name}: the definition accepts a document with {what}")


def main():
    f = Failures()
    work = os.path.join(BUILD, "json-schemas")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    small = os.path.join(work, "small.onnx")
    measure = ["--epochs", "0", "--data", DATA, "--limit", "100", "--quiet"]

    cj = os.path.join(work, "compress.json")
    doc = output(f, "compress --report-json", [SFP, "compress", MODEL, small, "--rate", "0.3", "--method", "hybrid",
                                               "--max-accuracy-drop", "100", "--report-json", cj] + measure, 0, cj)
    validate(f, "compress", "compress --report-json (gate met)", doc)
    f.check(doc is None or ("cluster_rate" in doc and doc["gate"]["passed"] is True), "compress: cluster_rate, gate passed")
    must_refuse(f, "compress", doc, lambda d: d.pop("gate"), "no gate key")
    must_refuse(f, "compress", doc, lambda d: d["layers"][0].update(extra=1), "an undocumented key in layers")
    gj = os.path.join(work, "gate.json")
    doc = output(f, "compress gate failed", [SFP, "compress", MODEL, os.path.join(work, "no.onnx"), "--rate", "0.6",
                                             "--max-accuracy-drop", "0", "--report-json", gj] + measure, 5, gj)
    validate(f, "compress", "compress --report-json (gate failed, exit 5)", doc)
    f.check(doc is None or doc["gate"]["passed"] is False, "compress: a failed gate says passed: false")

    doc = output(f, "report one model", [SFP, "report", MODEL, "--json"])
    validate(f, "report", "report --json (one model)", doc)
    must_refuse(f, "report", doc, lambda d: d.pop("schema_version"), "no schema_version")
    doc = output(f, "report two models", [SFP, "report", MODEL, small, "--json", "--groups", "--paper-rate", "0.4"])
    validate(f, "report", "report --json --groups --paper-rate (two models)", doc)
    must_refuse(f, "report", doc, lambda d: d["models"][0]["total"].pop("macs"), "total without macs")

    doc = output(f, "sensitivity", [SFP, "sensitivity", MODEL, "--data", DATA, "--limit", "32", "--rates", "0.5",
                                    "--json", "--quiet"])
    validate(f, "sensitivity", "sensitivity --json", doc)
    must_refuse(f, "sensitivity", doc, lambda d: d["groups"][0]["results"][0].pop("drop_points"), "no drop_points")
    must_refuse(f, "compress", json.load(open(cj)) if os.path.exists(cj) else None,
                lambda d: d["group_rates"][0].update(extra=1),
                "an undocumented key in group_rates")
    doc = output(f, "eval", [SFP, "eval", small, "--data", DATA, "--limit", "64", "--json", "--quiet"])
    validate(f, "eval", "eval --json", doc)
    must_refuse(f, "eval", doc, lambda d: d.update(accuracy="high"), "a string accuracy")

    data = os.path.join(work, "defects")
    subprocess.run(["/usr/bin/python3", "tools/gen_defects.py", data, "--split", "1,2", "--size", "48", "--seed", "3",
                    "--force"], capture_output=True, check=True)
    doc = output(f, "detect labelled", [SFP, "detect", DEFECTS, data, "--json", "--quiet"])
    validate(f, "detect", "detect --json (labelled folder)", doc)
    f.check(doc is None or (doc["confusion"] is not None and "true_class" in doc["images"][0]), "detect: labelled keys")
    must_refuse(f, "detect", doc, lambda d: d.pop("balanced_accuracy"), "no balanced_accuracy")
    files = sorted(os.path.join(data, "test", "ok", n) for n in os.listdir(os.path.join(data, "test", "ok")))
    doc = output(f, "detect files", [SFP, "detect", DEFECTS] + files + ["--json", "--quiet"])
    validate(f, "detect", "detect --json (unlabelled files)", doc)
    f.check(doc is None or (doc["accuracy"] is None and doc["confusion"] is None), "detect: null accuracy without labels")

    doc = output(f, "bench one model", [SFP, "bench", small, "--seconds", "0.02", "--batch", "8", "--json", "--quiet"])
    validate(f, "bench", "bench --json (one model)", doc)
    doc = output(f, "bench two models", [SFP, "bench", MODEL, small, "--seconds", "0.02", "--batch", "8", "--train",
                                         "--json", "--quiet"])
    validate(f, "bench", "bench --json --train (two models)", doc)
    must_refuse(f, "bench", doc, lambda d: d["models"][0].pop("latency_ms_batch1"), "a model without latency")
    return f.finish(f"{f.compared} JSON outputs valid against docs/json-schemas.json", work)


if __name__ == "__main__":
    sys.exit(main())
