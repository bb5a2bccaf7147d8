#!/usr/bin/python3
"""Trains a CIFAR ResNet ONNX file (as `onnx-sfp init resnetN` writes it) on
an image folder of surface defects (tools/gen_defects.py) in PyTorch: the
outside reference for what an architecture and input size can reach on the
defect set, with onnx-sfp train's recipe (tools/torch_train.py's training
loop: SGD momentum 0.9, weight decay 5e-4, cosine LR per step, random crop
with --crop-pad black pixels and horizontal flips, per-channel mean/std of
the training images).

Images are fitted to the model's input as onnx-sfp fits image files: the
same size is copied, larger ones are resized (Pillow's bicubic with
antialiasing here; onnx-sfp uses stb_image_resize's Mitchell filter, so the
pixels differ slightly, the information does not), smaller ones padded.

Prints one JSON object: accuracy, balanced accuracy and escape rate (images
of a defect class called `ok`, over all defect images) on the test folder,
per-epoch training loss, seconds.

  /usr/bin/python3 tools/torch_defects.py MODEL.onnx --train DIR --test DIR
      [--epochs 3] [--lr 0.05] [--batch 32] [--crop-pad 0] [--threads 1]
      [--seed 1] [--save OUT.pt]
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_resnet  # noqa: E402
import torch_train  # noqa: E402

OK_CLASS = "ok"


def read_folder(root, height, width):
    """Images [N, 1, H, W] uint8, labels [N], class names (sorted folder names)."""
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    images, labels = [], []
    for k, name in enumerate(classes):
        folder = os.path.join(root, name)
        for f in sorted(os.listdir(folder)):
            img = Image.open(os.path.join(folder, f)).convert("L")
            if img.size != (width, height):
                if img.size[0] <= width and img.size[1] <= height:
                    canvas = Image.new("L", (width, height), 0)
                    canvas.paste(img, ((width - img.size[0]) // 2, (height - img.size[1]) // 2))
                    img = canvas
                else:
                    img = img.resize((width, height), Image.BICUBIC)
            images.append(np.asarray(img, dtype=np.uint8))
            labels.append(k)
    return np.stack(images)[:, None], np.array(labels, dtype=np.int64), classes


def scores(model, images, labels, classes, mean, std, batch):
    model.eval()
    predicted = []
    with torch.no_grad():
        for first in range(0, len(images), batch):
            predicted.append(model(torch_train.normalise(images[first:first + batch], mean, std)).argmax(1).numpy())
    predicted = np.concatenate(predicted)
    recalls = [float((predicted[labels == k] == k).mean()) for k in range(len(classes)) if (labels == k).any()]
    ok = classes.index(OK_CLASS) if OK_CLASS in classes else -1
    defect = labels != ok
    return {"accuracy": float((predicted == labels).mean()), "balanced_accuracy": float(np.mean(recalls)),
            "escape_rate": float((predicted[defect] == ok).mean()) if ok >= 0 else None,
            "recall": dict(zip(classes, recalls))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--crop-pad", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--save", metavar="OUT.pt")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    onnx_model = onnx.load(args.model)
    spec = torch_resnet.spec_from_onnx(onnx_model, args.model)
    c, h, w = spec["input_shape"]
    if c != 1:
        torch_resnet.fail(f"{args.model}: the defect images are grayscale, the model takes {c} channels")
    model = torch_resnet.build(spec)
    torch_resnet.load_onnx_weights(model, onnx_model, spec["input_shape"])
    train_x, train_y, classes = read_folder(args.train, h, w)
    test_x, test_y, test_classes = read_folder(args.test, h, w)
    if test_classes != classes:
        torch_resnet.fail(f"{args.test}: classes {test_classes} differ from {args.train}'s {classes}")
    mean, std = torch_train.channel_stats(train_x)
    history, seconds, _, batch = torch_train.train(model, train_x, train_y, mean, std, args, args.crop_pad)
    result = scores(model, test_x, test_y, classes, mean, std, 64)
    if args.save:
        torch.save(model.state_dict(), args.save)
    print(json.dumps({"model": args.model, "arch": spec["arch"], "input": f"{c}x{h}x{w}",
                      "train_images": len(train_x), "test_images": len(test_x), "epochs": args.epochs,
                      "batch": batch, "lr": args.lr, "crop_pad": args.crop_pad, "threads": args.threads,
                      "epoch_loss": [e[0] for e in history], "train_accuracy": history[-1][1],
                      "seconds": seconds, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
