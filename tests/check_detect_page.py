#!/usr/bin/python3
"""The page of `onnx-sfp detect A B --html` as a browser shows it: Debian's
Chromium renders it headless, and a script added to a copy of the page
measures the layout after rendering; --dump-dom hands the measurements back.

Data: 14 generated 64x64 defect images (the models take 32x32) and a file
that is not an image; models: two ResNet-8 from `init` with a preprocessing
description, the second with other weights. Checked as shown in a 1000x700
window: the summary table (both models' accuracy, balanced accuracy, escape
rate, ms per image, MACs, parameters, agreement) starts within the first
screen and above every image card; the skipped file is listed; one card per
image, each with both models' calls and a thumbnail that the browser decoded
at the original's 64x64 (not the model's 32x32); every file name stays inside
its card and breaks lines only after a separator (/ _ - . space); nothing is
wider than the window. A screenshot is left in build/detect-page/page.png."""
import html
import json
import os
import re
import shutil
import subprocess
import sys

import onnx

from check_common import Failures
from refs_common import BUILD, SFP, run

MEASURE = r"""<script>
(function () {
  function box(e) { var r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; }
  var out = {inner: [innerWidth, innerHeight], scroll_width: document.documentElement.scrollWidth};
  var summary = document.querySelector('table.summary');
  out.summary = summary ? box(summary) : null;
  out.summary_text = summary ? summary.innerText : '';
  var figs = document.querySelectorAll('figure');
  out.first_figure = figs.length ? box(figs[0]) : null;
  out.figures = [];
  figs.forEach(function (f) {
    var img = f.querySelector('img');
    var name = f.querySelector('.file');
    var breaks = [];
    var text = '';
    var walker = document.createTreeWalker(name, NodeFilter.SHOW_TEXT);
    var prevTop = null, prevChar = '';
    while (walker.nextNode()) {
      var node = walker.currentNode;
      for (var i = 0; i < node.length; i++) {
        var range = document.createRange();
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        var rects = range.getClientRects();
        if (!rects.length) continue;
        var top = rects[0].top;
        if (prevTop !== null && top > prevTop + 2) breaks.push(prevChar);
        prevTop = top;
        prevChar = node.data[i];
        text += node.data[i];
      }
    }
    out.figures.push({kind: f.className, img: img ? [img.complete, img.naturalWidth, img.naturalHeight] : null,
                      name: text, breaks: breaks, name_box: box(name), figure_box: box(f),
                      caption: f.querySelector('figcaption').innerText});
  });
  var skipped = document.querySelector('ul.skipped');
  out.skipped = skipped ? skipped.innerText : '';
  document.body.setAttribute('data-measured', JSON.stringify(out));
})();
</script>"""


def chromium(args):
    p = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1000,700"] + args, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def main():
    work = os.path.join(BUILD, "detect-page")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    if not shutil.which("chromium"):
        print("FAIL chromium is not installed (tools/install-deps.sh installs it)")
        return 1
    data = os.path.join(work, "defects")
    steps = [["/usr/bin/python3", "tools/gen_defects.py", data, "--split", "1,2", "--size", "64", "--seed", "9"]]
    models = [os.path.join(work, n) for n in ("a.onnx", "b.onnx")]
    for path, seed in zip(models, ("3", "4")):
        steps.append([SFP, "init", "resnet8", path, "--input", "1x32x32", "--classes", "7", "--seed", seed, "--quiet"])
    for cmd in steps:
        rc, out = run(cmd)
        if rc != 0:
            print(f"FAIL {' '.join(cmd)}: {out}")
            return 1
    classes = sorted(os.listdir(os.path.join(data, "test")))
    for path in models:
        m = onnx.load(path)
        onnx.helper.set_model_props(m, {"onnx_sfp.preprocess": json.dumps(
            {"mean": [0.45], "std": [0.2], "input": "1x32x32", "classes": classes})})
        onnx.save(m, path)
    # A long name with separators, and a file that does not decode.
    first = os.path.join(data, "test", "rolled-in_scale")
    os.rename(os.path.join(first, sorted(os.listdir(first))[0]),
              os.path.join(first, "line-7_camera-2_2026-12-07_shift-b_part-000123.png"))
    with open(os.path.join(data, "test", "ok", "broken.png"), "w") as f:
        f.write("not an image\n")
    page = os.path.join(work, "page.html")
    rc, out = run([SFP, "detect", models[0], models[1], data, "--html", page, "--min-confidence", "0.16",
                   "--quiet"])
    if rc != 0:
        print(f"FAIL detect: exit {rc}: {out}")
        return 1
    with open(page, encoding="utf-8") as f:
        source = f.read()
    measured = os.path.join(work, "measured.html")
    with open(measured, "w", encoding="utf-8") as f:
        f.write(source.replace("</body>", MEASURE + "</body>"))
    fails = Failures()
    rc, dom, err = chromium(["--dump-dom", "file://" + os.path.abspath(measured)])
    found = re.search(r'data-measured="([^"]*)"', dom)
    if rc != 0 or not found:
        print(f"FAIL chromium --dump-dom: exit {rc}: {err[-500:]}")
        return 1
    m = json.loads(html.unescape(found.group(1)))
    height = m["inner"][1]
    fails.check(m["summary"] is not None and m["summary"]["top"] < height / 2,
                f"summary table not in the upper half of the first screen: {m['summary']}")
    fails.check(m["first_figure"] is not None and m["summary"]["bottom"] <= m["first_figure"]["top"],
                "the summary is not above the images")
    for want in ("accuracy", "balanced accuracy", "escape rate", "uncertain", "ms per image", "MACs", "parameters",
                 "agreement", "a.onnx", "b.onnx"):
        fails.check(want in m["summary_text"], f"summary does not show {want!r}")
    fails.check("broken.png" in m["skipped"], f"skipped list: {m['skipped']!r}")
    fails.check(len(m["figures"]) == 14, f"{len(m['figures'])} cards, 14 images")
    for f in m["figures"]:
        what = f["name"]
        fails.check(f["img"] == [True, 64, 64], f"{what}: thumbnail {f['img']} (the original is 64x64)")
        fails.check("A: " in f["caption"] and "B: " in f["caption"] and "true " in f["caption"],
                    f"{what}: caption {f['caption']!r}")
        fails.check(all(c in "/_-. " for c in f["breaks"]), f"{what}: lines break after {f['breaks']}")
        fails.check(f["name_box"]["right"] <= f["figure_box"]["right"] + 0.5,
                    f"{what}: the name sticks out of its card")
    long_name = [f for f in m["figures"] if f["name"].startswith("line-7")]
    fails.check(long_name and long_name[0]["breaks"], "the long file name does not wrap")
    fails.check(m["scroll_width"] <= m["inner"][0], f"page {m['scroll_width']} px wide in a {m['inner'][0]} px window")
    shot = os.path.join(work, "page.png")
    rc, _, err = chromium(["--screenshot=" + os.path.abspath(shot), "file://" + os.path.abspath(page)])
    fails.check(rc == 0 and os.path.getsize(shot) > 10000, f"screenshot: exit {rc}")
    ok = fails.finish(f"detect page in Chromium: summary first, {len(m['figures'])} cards with both models' calls, "
                      "thumbnails of the originals, names wrapping at separators", work="/nonexistent-keep")
    return ok


if __name__ == "__main__":
    sys.exit(main())
