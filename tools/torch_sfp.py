#!/usr/bin/python3
"""Soft Filter Pruning (He et al. 2018) in PyTorch on an onnx-sfp model: the
outside reference beside `onnx-sfp compress --method sfp|smooth|hybrid` in
bench/prune_accuracy.sh, so the accuracy table compares like with like.

Same starting weights: the CIFAR ResNet module of tools/torch_resnet.py is
given the ONNX file's initializers.
Same scope: the channel groups come from `onnx-sfp report MODEL --groups
--json` (--groups FILE): for every prunable group and channel, the tensor
rows pruning the channel zeroes (conv filter rows, BN scale and bias, ...)
and which of them are filters. A channel's score is the sum of the L2 norms
of its filter rows (onnx-sfp's groups_score_l2); prune_count(n, rate) =
min(floor(rate n + 1e-9), n - 1) channels with the lowest scores go (ties to
the lower index), every group at the same rate, as `compress --rate`.
Same schedule as SFP's code and `compress --method sfp`: the choice is zeroed
before the first step and after every epoch; there is no gradient mask, so
zeroed filters regrow until the next epoch's end.
Same budget and recipe as `compress`: tools/torch_train.py's loop (SGD
momentum 0.9, weight decay 5e-4 everywhere, cosine LR per step from --lr to
0, random crop + flip, batch --batch with the last partial batch dropped),
the pixels normalised by the mean/std in the model's metadata
(onnx_sfp.preprocess, which `compress` uses too), the first --limit training
images, no held-out split.

Prints one JSON object: test accuracy before and after (the masked model; the
pruned one computes the same), channels pruned, training seconds and
images/s. One line per epoch on stderr.

  /usr/bin/python3 tools/torch_sfp.py MODEL.onnx --groups G.json --rate R
      [--data DIR] [--epochs 2] [--lr 0.01] [--batch 128] [--threads 2]
      [--limit N] [--seed 1]
"""
import argparse
import json
import math
import sys

import numpy as np
import onnx
import torch

import torch_resnet
import torch_train
from torch_resnet import fail, load_onnx_weights


def prune_count(n, rate):
    k = int(math.floor(rate * n + 1e-9))
    return max(0, min(k, n - 1))


class SoftFilterPruner:
    """Chooses and zeroes the lowest-L2 channels of every prunable group."""

    def __init__(self, groups, targets, rate):
        self.groups = [g for g in groups if g["prunable"] and prune_count(g["channels"], rate) > 0]
        self.targets = targets
        self.rate = rate
        self.pruned = 0
        for g in self.groups:
            for rows in g["channel_rows"]:
                for r in rows:
                    if r["tensor"] not in targets:
                        fail(f"group '{g['label']}': tensor '{r['tensor']}' is not a parameter of the module")

    def _slice(self, row):
        tensor, transposed = self.targets[row["tensor"]]
        axis = row["axis"]
        if transposed:
            axis = tensor.dim() - 1 - axis
        return tensor.data.narrow(axis, row["row"], 1)

    def choose_and_zero(self):
        self.pruned = 0
        with torch.no_grad():
            for g in self.groups:
                scores = [sum(float(torch.linalg.vector_norm(self._slice(r).double())) for r in rows if r["filter"])
                          for rows in g["channel_rows"]]
                k = prune_count(g["channels"], self.rate)
                for j in np.argsort(np.array(scores), kind="stable")[:k]:
                    for r in g["channel_rows"][j]:
                        self._slice(r).zero_()
                self.pruned += k


def metadata_prep(onnx_model, name):
    """mean, std [1, C, 1, 1] from the model's onnx_sfp.preprocess metadata."""
    for p in onnx_model.metadata_props:
        if p.key == "onnx_sfp.preprocess":
            d = json.loads(p.value)
            mean = np.array(d["mean"], np.float32).reshape(1, -1, 1, 1)
            std = np.array(d["std"], np.float32).reshape(1, -1, 1, 1)
            return mean, std
    fail(f"{name}: no onnx_sfp.preprocess metadata (a model written by onnx-sfp train or compress has it)")
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--groups", required=True, metavar="G.json")
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.epochs < 1 or args.batch < 1 or args.threads < 1 or args.limit < 0 or not 0 <= args.rate < 1:
        fail("--epochs, --batch and --threads must be >= 1, --limit >= 0, --rate in [0, 1)")
    onnx_model = onnx.load(args.model)
    spec = torch_resnet.spec_from_onnx(onnx_model, args.model)
    c, h, w = spec["input_shape"]
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = torch_resnet.build(spec)
    targets = {}
    load_onnx_weights(model, onnx_model, spec["input_shape"], targets)
    report = json.load(open(args.groups))
    pruner = SoftFilterPruner(report["models"][0]["groups"], targets, args.rate)
    mean, std = metadata_prep(onnx_model, args.model)

    train_x, train_y = torch_train.read_split(args.data, "train", c, h, w)
    if args.limit:
        train_x, train_y = train_x[:args.limit], train_y[:args.limit]
    test_x, test_y = torch_train.read_split(args.data, "t10k", c, h, w)
    before, _, _ = torch_train.evaluate(model, test_x, test_y, mean, std, args.batch)
    pad = h // 8 if h >= 16 else 0
    history, seconds, steps_per_epoch, batch = torch_train.train(
        model, train_x, train_y, mean, std, args, pad,
        epoch_begin=lambda e: pruner.choose_and_zero() if e == 0 else None,
        epoch_end=lambda e: pruner.choose_and_zero())
    after, test_loss, _ = torch_train.evaluate(model, test_x, test_y, mean, std, batch)
    print(json.dumps({
        "model": args.model, "method": "sfp (PyTorch)", "rate": args.rate, "epochs": args.epochs, "lr": args.lr,
        "batch": batch, "train_images": len(train_x), "test_images": len(test_x), "channels_pruned": pruner.pruned,
        "groups_pruned": len(pruner.groups), "test_accuracy_before": before, "test_accuracy_after": after,
        "test_loss_after": test_loss, "train_loss": history[-1][0], "seconds": seconds,
        "images_per_s": args.epochs * steps_per_epoch * batch / seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
