#!/usr/bin/python3
"""`onnx-sfp eval` against an independent computation: the first 500
Fashion-MNIST test images, read with Python's gzip and scaled to [0, 1] with
numpy, run through ONNX Runtime (tools/ort_compare.js --run) on a ResNet-20
made by `init` for 1x28x28; the top-1 accuracy must be identical and the mean
cross-entropy equal to 1e-4 (both sides compute in float32, ours sums in double)."""
import gzip
import json
import os
import sys

import numpy as np
from onnx import numpy_helper

from refs_common import BUILD, SFP, run

DATA = "/usr/share/datasets/fashion-mnist"
N = 500


def read_idx(name):
    with gzip.open(os.path.join(DATA, name)) as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def init_model_and_images(out, n):
    """A ResNet-20 made by `init` for 1x28x28 (seed 3) in out, and the first
    n test images as an ONNX TensorProto file (pixels / 255) with their
    labels. None when init fails."""
    os.makedirs(out, exist_ok=True)
    model = os.path.join(out, "r20.onnx")
    rc, msg = run([SFP, "init", "resnet20", model, "--input", "1x28x28", "--seed", "3", "--quiet"])
    if rc != 0:
        print("init failed: " + msg)
        return None
    images = read_idx("t10k-images-idx3-ubyte.gz")[:n].astype(np.float32) / 255.0
    labels = read_idx("t10k-labels-idx1-ubyte.gz")[:n].astype(np.int64)
    x = os.path.join(out, "x.pb")
    with open(x, "wb") as f:
        f.write(numpy_helper.from_array(images.reshape(n, 1, 28, 28), "input").SerializeToString())
    return model, x, labels


def main():
    out = os.path.join(BUILD, "eval-e2e")
    made = init_model_and_images(out, N)
    if not made:
        return 1
    model, x, labels = made
    y = os.path.join(out, "y.pb")
    rc, msg = run(["node", "tools/ort_compare.js", "--run", model, "--input", x, "--output", y])
    if rc != 0:
        print("ONNX Runtime failed: " + msg)
        return 1
    t = __import__("onnx").TensorProto()
    t.ParseFromString(open(y, "rb").read())
    logits = numpy_helper.to_array(t).astype(np.float64)
    ref_acc = float((logits.argmax(1) == labels).mean())
    z = logits - logits.max(1, keepdims=True)
    ref_loss = float((np.log(np.exp(z).sum(1)) - z[np.arange(N), labels]).mean())
    rc, msg = run([SFP, "eval", model, "--data", DATA, "--limit", str(N), "--batch", "64", "--json", "--quiet"])
    if rc != 0:
        print("eval failed: " + msg)
        return 1
    ours = json.loads(msg)
    ok = ours["images"] == N and abs(ours["accuracy"] - ref_acc) < 1e-9 and abs(ours["loss"] - ref_loss) < 1e-4
    print(f"{'ok  ' if ok else 'FAIL'} eval: accuracy {ours['accuracy']:.4f} vs ONNX Runtime {ref_acc:.4f}, "
          f"loss {ours['loss']:.5f} vs {ref_loss:.5f}, {ours['images']} images")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
