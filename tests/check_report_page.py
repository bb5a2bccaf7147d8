#!/usr/bin/python3
"""`report A B --summary`'s totals and channels kept per group, and the
pages of `report A B --html` and `compress --report-html`, rendered in
headless Chromium (Debian `chromium`) at 1024 px and checked for what they
show: the totals equal the --json output's (params, MACs, FLOPs before and
after and the reduction, as printed with 2 decimals), one bar row per
Conv/Gemm/MatMul layer of the JSON's "layers" with kept % = kept / channels,
a node name holding <script> shown as text (no script of its own runs), no
horizontal overflow, and compress's accuracies and gate as its JSON has them.
The measuring script is appended to a copy of the page; the page itself has
none. Node names come from the shipped ResNet-20 with its first conv renamed
(onnx, Python)."""
import json
import os
import re
import shutil
import subprocess
import sys

import onnx

from check_common import Failures
from refs_common import BUILD, SFP

DATA = "/usr/share/datasets/fashion-mnist"
MODEL = "models/fmnist-resnet20.onnx"
EVIL = "conv1<script>document.title='owned'</script>&\"'"

MEASURE = """<script>
(function () {
  var r = {};
  r.scripts = document.scripts.length;
  r.title = document.title;
  r.inner = window.innerWidth;
  r.scroll = document.documentElement.scrollWidth;
  r.totals = {};
  document.querySelectorAll('[data-key]').forEach(function (e) { r.totals[e.dataset.key] = e.textContent; });
  r.rows = [];
  document.querySelectorAll('tr.layer').forEach(function (tr) {
    var kept = tr.querySelector('td.channels .kept');
    var svg = tr.querySelector('td.channels svg');
    r.rows.push({name: tr.querySelector('th.name').textContent, kept: kept.dataset.kept, text: kept.textContent,
                 bar: svg ? svg.getBoundingClientRect().width : 0});
  });
  var out = document.createElement('pre');
  out.id = 'measured';
  out.textContent = JSON.stringify(r);
  document.body.appendChild(out);
})();
</script>"""


def render(f, page, work):
    """What Chromium shows of page (the measured object), None on failure."""
    copy = os.path.join(work, "measured.html")
    with open(page, encoding="utf-8") as src, open(copy, "w", encoding="utf-8") as dst:
        dst.write(src.read().replace("</body>", MEASURE + "</body>"))
    p = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1024,768",
                        "--user-data-dir=" + os.path.join(work, "profile"), "--dump-dom",
                        "file://" + os.path.abspath(copy)], capture_output=True, text=True, timeout=60)
    m = re.search(r'<pre id="measured">(.*?)</pre>', p.stdout, re.S)
    if not f.check(m is not None, f"{page}: Chromium gave no measurement (exit {p.returncode}): {p.stderr[-300:]}"):
        return None
    text = m.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    return json.loads(text)


def number(s):
    return int(s.replace(",", ""))


def check_page(f, what, shown, doc):
    if shown is None:
        return
    ta, tb = doc["models"][0]["total"], doc["models"][1]["total"]
    for key in ("params", "macs", "flops"):
        f.check(number(shown["totals"][f"{key}-before"]) == ta[key], f"{what}: {key} before {shown['totals'][f'{key}-before']} != {ta[key]}")
        f.check(number(shown["totals"][f"{key}-after"]) == tb[key], f"{what}: {key} after {shown['totals'][f'{key}-after']} != {tb[key]}")
        red = 100.0 * (1.0 - tb[key] / ta[key])
        f.check(shown["totals"][f"{key}-reduction"] == f"{red:.2f}%", f"{what}: {key} reduction {shown['totals'][f'{key}-reduction']} != {red:.2f}%")
        f.compared += 3
    layers = doc["layers"]
    f.check(len(shown["rows"]) == len(layers), f"{what}: {len(shown['rows'])} bar rows for {len(layers)} layers")
    for row, layer in zip(shown["rows"], layers):
        f.check(row["name"] == layer["name"], f"{what}: row {row['name']!r} for layer {layer['name']!r}")
        kept = 100.0 * max(layer["kept"], 0) / layer["channels"]
        f.check(row["kept"] == f"{kept:.2f}", f"{what}: {layer['name']}: kept {row['kept']} != {kept:.2f}")
        f.check(row["bar"] > 50, f"{what}: {layer['name']}: bar {row['bar']} px wide")
        f.compared += 1
    f.check(shown["scripts"] == 1 and shown["title"] != "owned", f"{what}: a script from a node name ran or exists")
    f.check(any(r["name"] == EVIL for r in shown["rows"]), f"{what}: the name with <script> is not shown as text")
    f.check(shown["scroll"] <= shown["inner"], f"{what}: {shown['scroll']} px wide in a {shown['inner']} px window")


def check_summary(f, text, doc):
    """report A B --summary: the totals as --json has them, and every channel
    group of C channels keeps C - floor(0.3 C) (compress's rule at --rate 0.3;
    the fixed groups keep all)."""
    ta, tb = doc["models"][0]["total"], doc["models"][1]["total"]
    for label, key in (("params", "params"), ("MACs", "macs"), ("FLOPs", "flops")):
        m = re.search(rf"^{label} +([\d,]+) -> ([\d,]+) \(-([\d.]+)%\)$", text, re.M)
        want = (ta[key], tb[key], f"{100.0 * (1.0 - tb[key] / ta[key]):.2f}")
        got = m and (number(m.group(1)), number(m.group(2)), m.group(3))
        f.check(got == want, f"--summary: {label} {got} != {want}")
    groups = re.findall(r"^(.+?) +([\d,]+) +([\d,]+) +([\d.]+)% +(\d+)( \(fixed\))?$", text, re.M)
    f.check(len(groups) >= 13, f"--summary: {len(groups)} group lines")
    for label, chans, kept, pct, _, fixed in groups:
        c = number(chans)
        want = c if fixed or label.startswith("total") else c - int(0.3 * c + 1e-9)
        if label.startswith("total"):
            continue
        f.check(number(kept) == want and pct == f"{100.0 * want / c:.2f}", f"--summary: {label}: kept {kept} ({pct}%), expected {want}")
        f.compared += 1


def run(f, what, cmd, status=0):
    p = subprocess.run(cmd, capture_output=True, text=True)
    f.check(p.returncode == status, f"{what}: exit {p.returncode}, expected {status}: {p.stderr.strip()[-300:]}")
    return p


def main():
    f = Failures()
    work = os.path.join(BUILD, "report-page")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    m = onnx.load(MODEL)
    first = next(n for n in m.graph.node if n.op_type == "Conv")
    first.name = EVIL
    a = os.path.join(work, "a.onnx")
    onnx.save(m, a)
    b = os.path.join(work, "b.onnx")
    run(f, "compress", [SFP, "compress", a, b, "--epochs", "0", "--rate", "0.3", "--quiet"])

    page = os.path.join(work, "report.html")
    p = run(f, "report --html", [SFP, "report", a, b, "--html", page])
    f.check("kept %" in p.stdout, "report --html: the text table still printed, with its kept % column")
    doc = json.loads(run(f, "report --json", [SFP, "report", a, b, "--json"]).stdout)
    doc["layers"] = json.loads(run(f, "compress json", [SFP, "compress", a, os.path.join(work, "c.onnx"), "--epochs",
                                                        "0", "--rate", "0.3", "--quiet", "--report-json", "-"]).stdout)["layers"]
    check_page(f, "report --html", render(f, page, work), doc)
    p = run(f, "report --html -", [SFP, "report", a, b, "--html", "-"])
    f.check(p.stdout == open(page, encoding="utf-8").read(), "report --html -: stdout is not the page alone")

    check_summary(f, run(f, "report --summary", [SFP, "report", a, b, "--summary"]).stdout, doc)

    cj, ch = os.path.join(work, "compress.json"), os.path.join(work, "compress.html")
    run(f, "compress --report-html", [SFP, "compress", a, os.path.join(work, "d.onnx"), "--epochs", "0", "--rate", "0.3",
                                      "--data", DATA, "--limit", "100", "--max-accuracy-drop", "100", "--quiet",
                                      "--report-json", cj, "--report-html", ch])
    doc = json.load(open(cj))
    shown = render(f, ch, work)
    check_page(f, "compress --report-html", shown, doc)
    if shown:
        t = shown["totals"]
        for key in ("before", "after"):
            want = f"{100.0 * doc['accuracy_' + key]:.2f}%"
            f.check(t.get("accuracy-" + key) == want, f"compress page: accuracy {key} {t.get('accuracy-' + key)} != {want}")
        f.check("passed" in t.get("gate", "") and doc["gate"]["passed"], f"compress page: gate {t.get('gate')!r}")
    return f.finish(f"report and compress pages: {f.compared} figures as the JSON says, shown in Chromium", work)


if __name__ == "__main__":
    sys.exit(main())
