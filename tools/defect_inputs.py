#!/usr/bin/python3
"""Writes the images of a labelled folder (class sub-folders, or its test/
split) as one ONNX TensorProto [N, C, H, W], preprocessed for MODEL.onnx as
its metadata (onnx_sfp.preprocess) says: pixels / 255, fitted to the input
(larger images resized with Pillow's antialiased bicubic, close to the
Mitchell filter onnx-sfp uses; smaller ones padded and centred), then
(p - mean) / std; and the labels, in the model's class order, as JSON. For
timing ONNX Runtime on the images `detect` sees (bench/ort_images.js).

    /usr/bin/python3 tools/defect_inputs.py MODEL.onnx FOLDER X.pb LABELS.json"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper
from PIL import Image


def main():
    model_path, folder, out_x, out_labels = sys.argv[1:5]
    m = onnx.load(model_path)
    meta = json.loads({p.key: p.value for p in m.metadata_props}["onnx_sfp.preprocess"])
    c, h, w = (int(v) for v in meta["input"].split("x"))
    names = [n.lower() for n in meta["classes"]]
    if os.path.isdir(os.path.join(folder, "test")):
        folder = os.path.join(folder, "test")
    images, labels = [], []
    for cls in sorted(os.listdir(folder)):
        d = os.path.join(folder, cls)
        if not os.path.isdir(d):
            continue
        for f in sorted(os.listdir(d)):
            img = Image.open(os.path.join(d, f)).convert("L" if c == 1 else "RGB")
            if img.size[0] > w or img.size[1] > h:
                img = img.resize((w, h), Image.BICUBIC)
            canvas = Image.new(img.mode, (w, h), 0)
            canvas.paste(img, ((w - img.size[0]) // 2, (h - img.size[1]) // 2))
            a = np.asarray(canvas, dtype=np.float32) / 255.0
            images.append(a[None] if c == 1 else a.transpose(2, 0, 1))
            labels.append(names.index(cls.lower()))
    x = np.stack(images)
    mean = np.array(meta["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.array(meta["std"], dtype=np.float32).reshape(1, -1, 1, 1)
    x = ((x - mean) / std).astype(np.float32)
    with open(out_x, "wb") as f:
        f.write(numpy_helper.from_array(x, "input").SerializeToString())
    with open(out_labels, "w") as f:
        json.dump(labels, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
