#!/usr/bin/python3
"""Trains a CIFAR ResNet ONNX file (as `onnx-sfp init resnetN` writes it) on
Fashion-MNIST in PyTorch with `onnx-sfp train`'s recipe: the outside
reference for the accuracy of onnx-sfp's training runtime
(bench/accuracy_vs_torch.sh).

The module is tools/torch_resnet.py's, described from the ONNX graph and
given the file's initializers; with --reference it must reproduce a forward
pass of the file (eval mode, 1e-4 relative) before it trains. The recipe is
onnx-sfp's defaults (src/cli/cli_train.c, src/train/trainer.c,
src/data/loader.c, src/data/prep.c), with no held-out split (`--val-split 0`):
- pixels scaled to [0, 1] and normalised by the per-channel mean and
  (population) std of the training images used (after --limit);
- each epoch a fresh shuffle; batches of --batch, the last partial batch
  dropped; per image a random crop of the image padded by H/8 pixels (3 for
  28x28; 0 below 16 pixels) with black (pixel value 0, before
  normalisation), then a horizontal flip with probability 1/2;
- cross-entropy; SGD, momentum 0.9 (dampening 0, PyTorch's update), weight
  decay 5e-4 on every parameter (onnx-sfp's --wd-bn defaults to --wd);
- the LR set before every step: cosine from --lr to 0 over epochs x steps per
  epoch, no warm-up: lr(step) = lr/2 (1 + cos(pi step / total));
- BatchNormalization's eps and momentum from the ONNX attributes.
The shuffles and crops are this script's own random draws (numpy, seeded by
--seed), not onnx-sfp's: the two runs see the same distribution of batches,
not the same batches.

Prints one JSON object on stdout: test accuracy and loss on the 10,000 test
images, the last epoch's mean training loss and accuracy, every epoch's
training loss, training seconds and images/s, evaluation images/s, and the
module's difference from the reference forward. One line per epoch on
stderr.

Usage:
  /usr/bin/python3 tools/torch_train.py MODEL.onnx --make-input X.pb [--seed S]
    Writes a seeded standard-normal input [8, C, H, W] for the check
    (e.g. `onnx-sfp run MODEL.onnx --input X.pb --output Y.pb`).
  /usr/bin/python3 tools/torch_train.py MODEL.onnx [--reference X.pb Y.pb]
      [--data DIR] [--epochs 5] [--lr 0.1] [--batch 128] [--threads 2]
      [--limit N] [--seed 1]
    DIR holds train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
    t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (or the files
    without .gz); --limit N trains on the first N training images.
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F

import torch_resnet
from torch_resnet import fail, load_onnx_weights, output_difference, param_groups, read_pb, write_pb

MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
REFERENCE_TOL = 1e-4
CHECK_BATCH = 8

# ---------------------------------------------------------------------------
# Data


def read_idx(folder, stem):
    """One IDX file of unsigned bytes (gzip-compressed or not) as an array."""
    path = os.path.join(folder, stem + ".gz")
    opener = gzip.open
    if not os.path.exists(path):
        path, opener = os.path.join(folder, stem), open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as e:
        fail(f"{path}: {e}")
    if len(data) < 4 or data[0] or data[1] or data[2] != 0x08:
        fail(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        fail(f"{path}: truncated header")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    count = int(np.prod(dims))
    if len(data) != 4 + 4 * ndim + count:
        fail(f"{path}: header declares {count} bytes of data, the file holds {len(data) - 4 - 4 * ndim}")
    return np.frombuffer(data, np.uint8, count, 4 + 4 * ndim).reshape(dims)


def read_split(folder, prefix, channels, height, width):
    """Images [N, C, H, W] uint8 and labels [N] int64 of train or t10k."""
    images = read_idx(folder, f"{prefix}-images-idx3-ubyte")
    labels = read_idx(folder, f"{prefix}-labels-idx1-ubyte")
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        fail(f"{folder}: {prefix} images {images.shape} and labels {labels.shape} do not pair up")
    if (channels, height, width) != (1,) + images.shape[1:]:
        fail(f"{folder}: {prefix} images are 1x{images.shape[1]}x{images.shape[2]}, the model takes "
             f"{channels}x{height}x{width}")
    return images.reshape(len(images), 1, height, width), labels.astype(np.int64)


# The data steps use numpy, single-threaded like onnx-sfp's loader thread:
# PyTorch's intra-op threads cost more than these small ops on a busy machine.


def channel_stats(images):
    """Per-channel mean and population std of pixels / 255 (onnx-sfp's
    data_channel_stats: sums in double, then float), shaped [1, C, 1, 1]."""
    x = images.astype(np.float64) / 255.0
    mean = x.mean(axis=(0, 2, 3))
    std = np.sqrt(np.maximum((x * x).mean(axis=(0, 2, 3)) - mean * mean, 0.0))
    std[std <= 1e-6] = 1.0
    return mean.astype(np.float32).reshape(1, -1, 1, 1), std.astype(np.float32).reshape(1, -1, 1, 1)


def normalise(images, mean, std):
    """uint8 pixels [B, C, H, W] -> the float32 model input (p/255 - mean) / std."""
    return torch.from_numpy((images.astype(np.float32) / np.float32(255.0) - mean) / std)


def augment(images, pad, rng):
    """Random crop of the images padded by pad black pixels, then a horizontal
    flip with probability 1/2, as pixels: [B, C, H, W] uint8 -> same."""
    b, _, h, w = images.shape
    if pad > 0:
        images = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dy = rng.integers(0, 2 * pad + 1, b)
    dx = rng.integers(0, 2 * pad + 1, b)
    flip = rng.random(b) < 0.5
    rows = dy[:, None] + np.arange(h)
    cols = dx[:, None] + np.arange(w)
    cols = np.where(flip[:, None], cols[:, ::-1], cols)
    picked = images[np.arange(b)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return picked.transpose(0, 3, 1, 2)


# ---------------------------------------------------------------------------
# Training


def lr_at(base_lr, step, total_steps):
    """onnx-sfp's cosine schedule (src/train/lr_schedule.c) with floor 0."""
    t = min(step, total_steps) / total_steps
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * t))


def evaluate(model, images, labels, mean, std, batch):
    """Accuracy, mean cross-entropy and images/s with running BN statistics."""
    model.eval()
    correct, loss_sum = 0, 0.0
    start = time.perf_counter()
    with torch.no_grad():
        for first in range(0, len(images), batch):
            x = normalise(images[first:first + batch], mean, std)
            y = torch.from_numpy(labels[first:first + batch])
            logits = model(x)
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
    seconds = time.perf_counter() - start
    return correct / len(images), loss_sum / len(images), len(images) / seconds


def train(model, images, labels, mean, std, args, pad, epoch_begin=None, epoch_end=None):
    """The epochs; returns the per-epoch (loss, accuracy) and the seconds.
    epoch_begin(epoch) / epoch_end(epoch), when given, run before the first
    and after the last step of every epoch (tools/torch_sfp.py's pruning)."""
    n = len(images)
    batch = min(args.batch, n)
    steps_per_epoch = n // batch
    total = args.epochs * steps_per_epoch
    rng = np.random.default_rng(args.seed)
    opt = torch.optim.SGD(param_groups(model, WEIGHT_DECAY, WEIGHT_DECAY), lr=args.lr, momentum=MOMENTUM)
    history, step, seconds = [], 0, 0.0
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(n)
        loss_sum, correct, lr = 0.0, 0, args.lr
        start = time.perf_counter()
        if epoch_begin:
            epoch_begin(epoch)
        for b in range(steps_per_epoch):
            pick = order[b * batch:(b + 1) * batch]
            x = normalise(augment(images[pick], pad, rng), mean, std)
            y = torch.from_numpy(labels[pick])
            lr = lr_at(args.lr, step, total)
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            if not math.isfinite(float(loss)):
                fail(f"the loss is {float(loss)} at epoch {epoch + 1} step {step}")
            loss.backward()
            opt.step()
            step += 1
            loss_sum += float(loss) * batch
            correct += int((logits.detach().argmax(1) == y).sum())
        if epoch_end:
            epoch_end(epoch)
        elapsed = time.perf_counter() - start
        seconds += elapsed
        seen = steps_per_epoch * batch
        history.append((loss_sum / seen, correct / seen))
        print(f"epoch {epoch + 1}/{args.epochs} loss {history[-1][0]:.4f} acc {100 * history[-1][1]:.2f}% "
              f"lr {lr:.4g} {elapsed:.1f}s {seen / elapsed:.0f} img/s", file=sys.stderr, flush=True)
    return history, seconds, steps_per_epoch, batch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--make-input", metavar="X.pb")
    ap.add_argument("--reference", nargs=2, metavar=("X.pb", "Y.pb"))
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.epochs < 1 or args.batch < 1 or args.threads < 1 or args.limit < 0 or not args.lr >= 0:
        fail("--epochs, --batch and --threads must be >= 1, --limit and --lr >= 0")
    onnx_model = onnx.load(args.model)
    spec = torch_resnet.spec_from_onnx(onnx_model, args.model)
    c, h, w = spec["input_shape"]
    if args.make_input:
        x = np.random.RandomState(args.seed).standard_normal([CHECK_BATCH, c, h, w]).astype(np.float32)
        write_pb(args.make_input, x, "input")
        return 0

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = torch_resnet.build(spec)
    load_onnx_weights(model, onnx_model, spec["input_shape"])
    difference = None
    if args.reference:
        difference = output_difference(model, read_pb(args.reference[0]), read_pb(args.reference[1]))
        if not difference <= REFERENCE_TOL:
            fail(f"the rebuilt module differs from {args.reference[1]} by {difference:.3g} (limit {REFERENCE_TOL})")

    train_x, train_y = read_split(args.data, "train", c, h, w)
    if args.limit:
        train_x, train_y = train_x[:args.limit], train_y[:args.limit]
    test_x, test_y = read_split(args.data, "t10k", c, h, w)
    mean, std = channel_stats(train_x)
    pad = h // 8 if h >= 16 else 0
    history, seconds, steps_per_epoch, batch = train(model, train_x, train_y, mean, std, args, pad)
    accuracy, test_loss, eval_rate = evaluate(model, test_x, test_y, mean, std, batch)
    trained = args.epochs * steps_per_epoch * batch
    print(json.dumps({
        "model": args.model, "arch": spec["arch"], "shortcut": spec["shortcut"], "train_images": len(train_x),
        "test_images": len(test_x), "epochs": args.epochs, "batch": batch, "steps_per_epoch": steps_per_epoch,
        "lr": args.lr, "crop_pad": pad, "threads": args.threads, "mean": mean.flatten().tolist(),
        "std": std.flatten().tolist(), "module_vs_reference": difference, "test_accuracy": accuracy,
        "test_loss": test_loss, "train_loss": history[-1][0], "train_accuracy": history[-1][1],
        "epoch_loss": [e[0] for e in history], "seconds": seconds, "images_per_s": trained / seconds,
        "eval_images_per_s": eval_rate}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
