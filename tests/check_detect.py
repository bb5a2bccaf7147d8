#!/usr/bin/python3
"""`onnx-sfp detect` against an independent computation. Images come from
tools/gen_defects.py; the model is a ResNet-8 made by `init` for 1x32x32 and 7
classes, given (with Python's onnx) a 40x larger classifier head and a preprocessing description whose class
names are in another order than the folders' and whose mean/std are not 0/1.
Reference: each PNG decoded with PIL, scaled to [0, 1], zero-padded and
centred when smaller than 32x32, normalised, and run through ONNX Runtime
(tools/ort_compare.js --run). Checked: predicted class names (argmax mapped
through the model's names), softmax confidences to 1e-4, true classes, accuracy,
balanced accuracy and confusion matrix in the model's class order; --mean/--std
overriding the metadata; --labels; unlabelled files and folders; the HTML page
(well-formed, one <img> per image with a decodable PNG of at most 96 px, every
file name, misclassified first); bad input giving one error line, the right
exit status and no page."""
import base64
import html.parser
import io
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
from PIL import Image

from check_common import Failures
from refs_common import BUILD, SFP, run

CLASSES = sorted(["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches", "ok"])
SIDE = 32
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def detect_json(args):
    rc, out = run([SFP, "detect"] + args + ["--json", "--quiet"])
    if rc != 0:
        raise SystemExit(f"FAIL detect {' '.join(args)}: exit {rc}: {out}")
    return json.loads(out)


def reference(model, paths, mean, std, work):
    """ONNX Runtime's logits (n, K) for the PNGs at paths, preprocessed by hand."""
    batch = np.zeros((len(paths), 1, SIDE, SIDE), dtype=np.float32)
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            pixels = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
        h, w = pixels.shape
        assert h <= SIDE and w <= SIDE, "the test only uses images that need no resizing"
        top, left = (SIDE - h) // 2, (SIDE - w) // 2
        batch[i, 0, top:top + h, left:left + w] = pixels
    batch = (batch - np.float32(mean)) / np.float32(std)  # padding is 0 before normalisation
    x, y = os.path.join(work, "ref_x.pb"), os.path.join(work, "ref_y.pb")
    with open(x, "wb") as f:
        f.write(numpy_helper.from_array(batch, "input").SerializeToString())
    rc, out = run(["node", "tools/ort_compare.js", "--run", model, "--input", x, "--output", y])
    if rc != 0:
        raise SystemExit("FAIL ONNX Runtime: " + out)
    t = TensorProto()
    with open(y, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t).astype(np.float64)


def compare_predictions(fails, what, got, logits, names, truths=None):
    """Each image's class and confidence against the reference logits. A
    near-tie (top two within 1e-5 of the logit scale) may go either way in
    float32 and is only counted."""
    ties = 0
    fails.check(len(got["images"]) == len(logits), f"{what}: {len(got['images'])} images, expected {len(logits)}")
    for i, (img, z) in enumerate(zip(got["images"], logits)):
        order = np.argsort(-z)
        p = np.exp(z - z.max())
        p /= p.sum()
        if z[order[0]] - z[order[1]] < 1e-5 * max(1.0, np.abs(z).max()):
            ties += 1
        else:
            fails.check(img["class"] == names[order[0]],
                        f"{what}: {img['path']}: class {img['class']}, ONNX Runtime {names[order[0]]}")
        fails.check(abs(img["confidence"] - p.max()) < 1e-4,
                    f"{what}: {img['path']}: confidence {img['confidence']}, ONNX Runtime {p.max():.6f}")
        fails.check(img["ms"] > 0, f"{what}: {img['path']}: ms {img['ms']}")
        if truths is not None:
            fails.check(img.get("true_class") == truths[i], f"{what}: {img['path']}: true class "
                        f"{img.get('true_class')}, folder {truths[i]}")
    fails.check(got["images_per_s"] > 0, f"{what}: images_per_s {got['images_per_s']}")
    fails.compared += len(logits)
    return ties


def check_scores(fails, what, got, names, truths):
    """accuracy, balanced accuracy and confusion recomputed from the per-image classes."""
    k = len(names)
    conf = np.zeros((k, k), dtype=np.int64)
    for img, t in zip(got["images"], truths):
        conf[names.index(t), names.index(img["class"])] += 1
    acc = float(np.trace(conf)) / conf.sum()
    rows = conf.sum(1)
    balanced = float(np.mean([conf[i, i] / rows[i] for i in range(k) if rows[i] > 0]))
    fails.check(got["classes"] == names, f"{what}: classes {got['classes']}, model's {names}")
    fails.check(got["confusion"] == conf.tolist(), f"{what}: confusion {got['confusion']}, expected {conf.tolist()}")
    fails.check(abs(got["accuracy"] - acc) < 1e-9, f"{what}: accuracy {got['accuracy']}, expected {acc}")
    fails.check(abs(got["balanced_accuracy"] - balanced) < 1e-9,
                f"{what}: balanced accuracy {got['balanced_accuracy']}, expected {balanced}")
    defects = [i for i, t in zip(got["images"], truths) if t != "ok"]
    escape = sum(i["class"] == "ok" for i in defects) / len(defects)
    fails.check(abs(got["escape_rate"] - escape) < 1e-9, f"{what}: escape rate {got['escape_rate']}, expected {escape}")
    for i, c in enumerate(names):
        if rows[i]:
            fails.check(abs(got["recall"][c] - conf[i, i] / rows[i]) < 1e-9, f"{what}: recall of {c} {got['recall'][c]}")


class PageChecker(html.parser.HTMLParser):
    """Tag balance, <img> data URIs, and all text and attribute values."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.problems, self.images, self.text, self.figures = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.text += [v for _, v in attrs if v]
        if tag == "img":
            self.images.append(dict(attrs))
        if tag == "figure":
            self.figures.append(dict(attrs).get("class"))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            self.problems.append(f"end tag </{tag}> of a void element")
        elif not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_page(fails, page, got):
    with open(page, encoding="utf-8") as f:
        source = f.read()
    p = PageChecker()
    p.feed(source)
    p.close()
    fails.check(source.startswith("<!DOCTYPE html>"), "html: no doctype")
    fails.check(not p.problems and not p.stack, f"html: unbalanced: {p.problems[:3]} open {p.stack}")
    fails.check(len(p.images) == len(got["images"]), f"html: {len(p.images)} <img>, {len(got['images'])} images")
    fails.check("http://" not in source and "https://" not in source, "html: refers to the network")
    for img in p.images:
        src = img.get("src", "")
        if not fails.check(src.startswith("data:image/png;base64,"), f"html: <img> src {src[:40]}"):
            continue
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as thumb:
            thumb.load()
            fails.check(max(thumb.size) <= 128, f"html: thumbnail of {thumb.size}")
    text = "\n".join(p.text)
    for img in got["images"]:
        fails.check(os.path.basename(img["path"]) in text, f"html: no file name {os.path.basename(img['path'])}")
    wrong = [c == "wrong" for c in p.figures]
    fails.check(wrong == sorted(wrong, reverse=True), "html: misclassified images are not first")
    fails.check(wrong.count(True) == sum(i["class"] != i.get("true_class", i["class"]) for i in got["images"]),
                "html: misclassified count differs from the JSON")
    labelled = got["accuracy"] is not None
    fails.check("images/s" in source and ("confusion" in source and "balanced accuracy" in source and
                                          "escape rate" in source) == labelled,
                "html: summary missing, or scores on a page without labels")
    fails.check(source.find("<h2>Summary") < source.find("<figure"), "html: the summary is not first")
    for s in got["skipped"]:
        fails.check(os.path.basename(s["path"]) in text, f"html: skipped file {s['path']} not named")


def bad_inputs(fails, work, model, model_meta, data):
    """(args, exit status, text the error line must contain)."""
    notes = os.path.join(work, "notes.png")
    with open(notes, "w") as f:
        f.write("not an image\n")
    plain = os.path.join(work, "notes.txt")
    shutil.copy(notes, plain)
    empty = os.path.join(work, "empty")
    os.makedirs(empty, exist_ok=True)
    labels_short = os.path.join(work, "labels_short.txt")
    with open(labels_short, "w") as f:
        f.write("a\nb\n")
    labels_other = os.path.join(work, "labels_other.txt")
    with open(labels_other, "w") as f:
        f.write("\n".join("x" + c for c in CLASSES) + "\n")
    # A valid model whose output is the image itself (not [N, K]).
    image_out = os.path.join(work, "identity.onnx")
    g = helper.make_graph([helper.make_node("Identity", ["input"], ["output"], name="id")], "identity",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, SIDE, SIDE])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 1, SIDE, SIDE])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), image_out)
    image = os.path.join(data, "test", "ok", sorted(os.listdir(os.path.join(data, "test", "ok")))[0])
    page = os.path.join(work, "bad.html")
    cases = [
        ([model, os.path.join(work, "missing.png")], 1, "missing.png"),
        ([model, image, os.path.join(work, "missing.png")], 1, "missing.png"),
        ([model, notes], 3, "notes.png"),
        ([model, plain], 3, "notes.txt"),
        ([model, empty], 3, "no image files"),
        ([os.path.join(work, "missing.onnx"), image], 1, "missing.onnx"),
        ([image_out, image], 4, "not [N, classes]"),
        ([model, image, "--labels", labels_short], 3, "2 class names"),
        ([model, data, "--labels", labels_other], 3, "is not one of the model's classes"),
        ([model, image, "--batch", "0"], 2, "--batch"),
        ([model], 2, "usage"),
        ([model_meta, image, "--mean", "0.5,0.5"], 2, "--mean"),
        ([model, image, "--html", os.path.join(work, "no-such-folder", "p.html")], 1, "p.html"),
    ]
    for args, want, needle in cases:
        rc, out = run([SFP, "detect"] + args + ["--html", page] * ("--html" not in args) + ["--quiet"])
        lines = [ln for ln in out.splitlines() if ln]
        what = "detect " + " ".join(os.path.basename(a) for a in args)
        fails.check(rc == want, f"{what}: exit {rc}, expected {want} ({out.strip()})")
        fails.check(len(lines) == 1 and lines[0].startswith("onnx-sfp: error: ") and needle in lines[0],
                    f"{what}: output {out.strip()!r}, expected one error line naming {needle!r}")
        fails.check(not os.path.exists(page), f"{what}: wrote {page} although it failed")
    left = [n for n in os.listdir(work) if n.startswith(".") or ".tmp" in n]
    fails.check(not left, f"temporary files left: {left}")
    return len(cases)


def training_and_detect_agree(fails, work):
    """One preprocessing path: a model trained on a folder of 64x64 images
    (fitted to its 32x32 input) records them, and detect on that folder's
    test split scores exactly what eval scores there (same decoding, fit and
    filter, so the same predictions). Images of another size make detect warn
    on one stderr line; images like the training ones do not."""
    folder, other = os.path.join(work, "train64"), os.path.join(work, "other48")
    for out, size, split, seed in ((folder, 64, "6,4", "7"), (other, 48, "1,2", "8")):
        rc, msg = run(["/usr/bin/python3", "tools/gen_defects.py", out, "--split", split, "--size", str(size),
                       "--seed", seed])
        if rc != 0:
            raise SystemExit("FAIL gen_defects: " + msg)
    init, trained = os.path.join(work, "t8_init.onnx"), os.path.join(work, "t8.onnx")
    for args in (["init", "resnet8", init, "--input", f"1x{SIDE}x{SIDE}", "--classes", "7", "--seed", "2"],
                 ["train", init, trained, "--data", folder, "--epochs", "2", "--batch", "14", "--val-split", "0",
                  "--lr", "0.05", "--threads", "1"]):
        rc, msg = run([SFP] + args + ["--quiet"])
        if rc != 0:
            raise SystemExit(f"FAIL {args[0]}: {msg}")
    meta = json.loads({p.key: p.value for p in onnx.load(trained).metadata_props}["onnx_sfp.preprocess"])
    fails.check(meta.get("data") == {"format": "imagefolder", "geometry": "1x64x64", "fit": "resize",
                                     "filter": "mitchell", "other_sizes": 0},
                f"trained model records its data as {meta.get('data')}")
    rc, out = run([SFP, "eval", trained, "--data", folder, "--json", "--quiet"])
    evaluated = json.loads(out) if rc == 0 else {}
    got = detect_json([trained, folder])
    fails.check(rc == 0 and evaluated["images"] == got["labelled"] == 28 and
                abs(evaluated["accuracy"] - got["accuracy"]) < 1e-6,
                f"eval scores {evaluated} on the training folder's test split, detect {got['accuracy']}")
    for data, warns in ((folder, False), (other, True)):
        p = subprocess.run([SFP, "detect", trained, data, "--json"], capture_output=True, text=True)
        rc, out = p.returncode, p.stderr
        lines = [ln for ln in out.splitlines() if "warning" in ln]
        fails.check(rc == 0 and len(lines) == int(warns) and
                    (not warns or "1x48x48" in lines[0] and "1x64x64" in lines[0] and "mitchell" in lines[0]),
                    f"detect {os.path.basename(data)}: exit {rc}, warnings {lines}")


def real_folders(fails, work, model_meta, data, names):
    """A camera folder: a fake and a truncated PNG are skipped and named
    (text, JSON with the reason, page) and the run scores the rest (exit 0;
    --strict: the same output, then exit 3). Folder names that differ from
    the model's class names in case, spaces, '-', '_' match; a name that
    does not is mapped by a classes.txt in the folder."""
    folder = os.path.join(work, "camera")
    shutil.rmtree(folder, ignore_errors=True)
    spelled = {"crazing": "Crazing", "inclusion": "IN CLUSION", "patches": "patches", "pitted_surface": "Pitted-Surface",
               "rolled-in_scale": "rolled in scale", "scratches": "Scratches_", "ok": "good"}
    for c in CLASSES:
        shutil.copytree(os.path.join(data, "test", c), os.path.join(folder, spelled[c]))
    with open(os.path.join(folder, "patches", "fake.png"), "w") as f:
        f.write("not an image\n")
    good = os.path.join(data, "test", "ok", sorted(os.listdir(os.path.join(data, "test", "ok")))[0])
    with open(good, "rb") as f:
        head = f.read()[:60]
    with open(os.path.join(folder, "good", "cut.png"), "wb") as f:
        f.write(head)
    rc, out = run([SFP, "detect", model_meta, folder, "--quiet"])
    fails.check(rc == 3 and "'good' is not one of the model's classes" in out and "classes.txt" in out,
                f"camera folder without classes.txt: exit {rc}: {out.strip()}")
    with open(os.path.join(folder, "classes.txt"), "w") as f:
        f.write("\n".join("good" if n == "ok" else n for n in names) + "\n")
    page = os.path.join(work, "camera.html")
    got = detect_json([model_meta, folder, "--html", page])
    truths = [[c for c in CLASSES if os.path.join(folder, spelled[c]) + "/" in i["path"]][0] for i in got["images"]]
    fails.check(len(got["images"]) == 21 and all(i.get("true_class") == t for i, t in zip(got["images"], truths)),
                "camera folder: not the 21 decodable images with their true classes")
    skipped = {os.path.basename(x["path"]): x["reason"] for x in got["skipped"]}
    fails.check(set(skipped) == {"fake.png", "cut.png"} and all(skipped.values()),
                f"camera folder: skipped {skipped}")
    check_scores(fails, "camera folder", got, names, truths)
    check_page(fails, page, got)
    rc, out = run([SFP, "detect", model_meta, folder, "--quiet"])
    fails.check(rc == 0 and sum(ln.startswith("skipped ") for ln in out.splitlines()) == 2 and "fake.png" in out and "cut.png" in out,
                f"camera folder text: exit {rc}")
    p = subprocess.run([SFP, "detect", model_meta, folder, "--json", "--strict", "--quiet"], capture_output=True,
                       text=True)
    fails.check(p.returncode == 3 and json.loads(p.stdout)["skipped"] and "--strict" in p.stderr,
                f"--strict: exit {p.returncode}, stderr {p.stderr.strip()}")


def confidence_and_two_models(fails, work, model, model_meta, data, names):
    """--min-confidence puts the calls below it in 'uncertain', scored apart;
    a second model runs on the same images: its own classes (checked against
    ONNX Runtime), agreement, MACs and parameters."""
    got = detect_json([model_meta, data])
    conf = sorted(i["confidence"] for i in got["images"])
    p = conf[len(conf) // 2]
    cut = detect_json([model_meta, data, "--min-confidence", str(p)])
    low = [i for i in cut["images"] if i["confidence"] < p]
    fails.check(cut["uncertain"] == len(low) > 0 and all(i["uncertain"] == (i["confidence"] < p) for i in cut["images"]),
                f"--min-confidence {p}: {cut['uncertain']} uncertain, {len(low)} below")
    sure = [i for i in cut["images"] if not i["uncertain"]]
    acc = sum(i["class"] == i["true_class"] for i in sure) / len(sure)
    fails.check(cut["decided"] == len(sure) and abs(cut["accuracy"] - acc) < 1e-9,
                f"--min-confidence: accuracy {cut['accuracy']} over {cut['decided']} decided, expected {acc}")
    # --ok-threshold: 'ok' only at that probability or more (ONNX Runtime's
    # logits decide), else the likeliest other class; escapes can only drop
    paths = [i["path"] for i in got["images"]]
    z = reference(model_meta, paths, 0.45, 0.2, work)
    prob = np.exp(z - z.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    ok = names.index("ok")
    called_ok = sorted(prob[i, ok] for i in range(len(paths)) if prob[i].argmax() == ok)
    # between two ok probabilities, so that some ok calls stay and some change
    t = round((called_ok[0] + called_ok[-1]) / 2, 6) if len(called_ok) > 1 and called_ok[-1] - called_ok[0] > 1e-3 else 0.9
    fails.check(len(called_ok) > 1, f"--ok-threshold: the test model calls {len(called_ok)} image(s) ok")
    th = detect_json([model_meta, data, "--ok-threshold", str(t)])
    fails.check(th["ok_threshold"] == t, f"--ok-threshold: ok_threshold {th['ok_threshold']}")
    for i, im in enumerate(th["images"]):
        want = int(prob[i].argmax())
        if want == ok and prob[i, ok] < t:
            want = max((j for j in range(len(names)) if j != ok), key=lambda j: prob[i, j])
        gap = abs(prob[i, ok] - t)
        if names[want] != im["class"] and gap > 1e-5:
            fails.check(False, f"--ok-threshold {t}: {im['path']} called {im['class']}, expected {names[want]}")
        elif abs(im["confidence"] - prob[i, want]) > 1e-4 and gap > 1e-5:
            fails.check(False, f"--ok-threshold {t}: {im['path']} confidence {im['confidence']}, expected {prob[i, want]}")
    changed = sum(a["class"] != b["class"] for a, b in zip(got["images"], th["images"]))
    fails.check(changed > 0, f"--ok-threshold {t}: no call changed")
    fails.check(th["escape_rate"] <= got["escape_rate"] + 1e-12,
                f"--ok-threshold: escape rate {th['escape_rate']} above argmax's {got['escape_rate']}")
    rc, out = run([SFP, "detect", model_meta, data, "--ok-threshold", "1.5", "--quiet"])
    fails.check(rc == 2, f"--ok-threshold 1.5: exit {rc}")
    other = os.path.join(work, "r8_other_names.onnx")
    m = onnx.load(model_meta)
    meta = json.loads(m.metadata_props[0].value)
    meta["classes"] = meta["classes"][1:] + meta["classes"][:1]
    m.metadata_props[0].value = json.dumps(meta)
    onnx.save(m, other)
    rc, out = run([SFP, "detect", model_meta, other, data, "--quiet"])
    fails.check(rc == 2 and "give two models of the same task" in out, f"models naming classes apart: exit {rc}: {out}")
    page = os.path.join(work, "two.html")
    both = detect_json([model_meta, model, data, "--html", page])
    paths = [i["path"] for i in both["images"]]
    ties = compare_predictions(fails, "second model", {"images": [dict(i["second"], path=i["path"])
                                                                  for i in both["images"]],
                                                       "images_per_s": both["second"]["images_per_s"]},
                               reference(model, paths, 0.0, 1.0, work), names)
    same = sum(i["class"] == i["second"]["class"] for i in both["images"]) / len(paths)
    fails.check(abs(both["agreement"] - same) < 1e-9, f"agreement {both['agreement']}, expected {same}")
    fails.check(both["macs"] == both["second"]["macs"] == 11944384 and both["params"] > 0,
                f"MACs {both['macs']} / {both['second']['macs']}, params {both['params']}")
    with open(page, encoding="utf-8") as f:
        source = f.read()
    fails.check("agreement" in source and source.count("<figure") == len(paths) and "B: " in source,
                "two-model page: no agreement, or not one card per image with both calls")
    return ties


def main():
    work = os.path.join(BUILD, "detect-e2e")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    data, small = os.path.join(work, "defects"), os.path.join(work, "small")
    for out, args in ((data, ["--split", "2,3", "--size", str(SIDE), "--seed", "5"]),
                      (small, ["--split", "1,1", "--size", "28", "--seed", "6"])):
        rc, msg = run(["/usr/bin/python3", "tools/gen_defects.py", out] + args)
        if rc != 0:
            print("FAIL gen_defects: " + msg)
            return 1
    model, model_meta = os.path.join(work, "r8.onnx"), os.path.join(work, "r8_meta.onnx")
    rc, msg = run([SFP, "init", "resnet8", model, "--input", f"1x{SIDE}x{SIDE}", "--classes", "7", "--seed", "4",
                   "--quiet"])
    if rc != 0:
        print("FAIL init: " + msg)
        return 1
    names = CLASSES[:]
    random.Random(1).shuffle(names)  # the model's class order differs from the folders'
    m = onnx.load(model)
    # Spread the logits of the freshly initialised network (scaled head), so the
    # predictions vary between images and the name mapping shows.
    gemm = next(n for n in m.graph.node if n.op_type == "Gemm")
    for t in m.graph.initializer:
        if t.name == gemm.input[1]:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * np.float32(40.0), t.name))
    meta = {"mean": [0.45], "std": [0.2], "input": f"1x{SIDE}x{SIDE}", "classes": names}
    onnx.helper.set_model_props(m, {"onnx_sfp.preprocess": json.dumps(meta)})
    onnx.save(m, model_meta)
    fails = Failures()
    ties = 0

    # Labelled folder (test split), names from the metadata, batches of 4 (last one short).
    page = os.path.join(work, "page.html")
    got = detect_json([model_meta, data, "--batch", "4", "--html", page])
    paths = [i["path"] for i in got["images"]]
    truths = [os.path.basename(os.path.dirname(p)) for p in paths]
    fails.check(sorted(paths) == sorted(os.path.join(data, "test", c, f) for c in CLASSES
                                        for f in os.listdir(os.path.join(data, "test", c))),
                "labelled folder: paths are not the test split's files")
    ties += compare_predictions(fails, "metadata", got, reference(model_meta, paths, 0.45, 0.2, work), names, truths)
    check_scores(fails, "metadata", got, names, truths)
    check_page(fails, page, got)

    # --mean/--std override the metadata; single files, 28x28 padded into 32x32.
    files = sorted(os.path.join(small, "test", c, f) for c in CLASSES for f in os.listdir(os.path.join(small, "test", c)))
    got = detect_json([model_meta] + files[:3] + ["--mean", "0.3", "--std", "0.5"])
    ties += compare_predictions(fails, "files --mean/--std", got, reference(model_meta, files[:3], 0.3, 0.5, work),
                                names)
    fails.check(got["accuracy"] is None and got["confusion"] is None, "files: accuracy or confusion not null")

    # No names in the model: indices; --labels: names from the file, folders mapped by name.
    got = detect_json([model, files[0], files[1]])
    ties += compare_predictions(fails, "indices", got, reference(model, files[:2], 0.0, 1.0, work),
                                [str(i) for i in range(7)])
    labels = os.path.join(work, "labels.txt")
    with open(labels, "w") as f:
        f.write("\r\n".join(names) + "\r\n")
    got = detect_json([model, os.path.join(data, "train"), "--labels", labels])
    paths = [i["path"] for i in got["images"]]
    truths = [os.path.basename(os.path.dirname(p)) for p in paths]
    fails.check(len(paths) == 14 and all("/train/" in p for p in paths), "--labels: not the 14 train images")
    ties += compare_predictions(fails, "--labels", got, reference(model, paths, 0.0, 1.0, work), names, truths)
    check_scores(fails, "--labels", got, names, truths)

    # A folder of plain images (a text file beside them is skipped), after a file;
    # one name needs HTML escaping.
    plain = os.path.join(work, "plain")
    os.makedirs(plain)
    want = [files[6]] + [os.path.join(plain, n) for n in ("a <i>&'\"odd.png", "b.png", "c.png")]
    for src, dst in zip(files[3:6], want[1:]):
        shutil.copy(src, dst)
    with open(os.path.join(plain, "README.txt"), "w") as f:
        f.write("notes\n")
    page = os.path.join(work, "plain.html")
    got = detect_json([model_meta, files[6], plain, "--html", page])
    fails.check([i["path"] for i in got["images"]] == want, f"plain folder: paths {[i['path'] for i in got['images']]}")
    ties += compare_predictions(fails, "plain folder", got, reference(model_meta, want, 0.45, 0.2, work), names)
    check_page(fails, page, got)

    # Text output names every image and ends with the summary.
    rc, out = run([SFP, "detect", model_meta, data, "--quiet"])
    fails.check(rc == 0 and "balanced accuracy" in out and out.count(".png:") == 21, f"text output: exit {rc}")

    training_and_detect_agree(fails, work)
    real_folders(fails, work, model_meta, data, names)
    ties += confidence_and_two_models(fails, work, model, model_meta, data, names)
    n_bad = bad_inputs(fails, work, model, model_meta, data)
    return fails.finish(f"detect: classes and confidences equal ONNX Runtime's on {fails.compared} images "
                        f"({ties} near-ties skipped), scores, HTML page and {n_bad} bad-input cases right", work)


if __name__ == "__main__":
    sys.exit(main())
