#!/usr/bin/python3
"""Exports a zoo of small CNNs with PyTorch's own exporter (torch.onnx.export),
as users bring them, and writes OUTDIR/manifest.json for tests/check_zoo.py.

Families: CIFAR-style ResNets (basic blocks, 1x1 conv + BN shortcuts), a
torchvision ResNet (one block per stage), a wide ResNet, a ResNeXt (grouped 3x3 convs),
MobileNetV2/V3, ShuffleNetV2, MNASNet, EfficientNet-B0, RegNetX, DenseNet,
VGG, SqueezeNet, a Sigmoid between two convs, one conv called twice, and a
ResNet exported with its blocks as ONNX local functions. Widths and depths
are reduced (width_mult 0.25/0.5, few blocks), inputs are 32x32 (SqueezeNet
64x64), so the whole zoo exports in about half a minute of CPU.

Each family comes in several variants: BatchNormalization folded (the
default eval export with constant folding) or kept
(training=TrainingMode.PRESERVE, no constant folding), opsets 9 to 17, a
fixed or a dynamic batch. Weights are random (BN statistics and affine
parameters randomised so BN is not an identity), or trained a few SGD steps
from PyTorch's own initialisation ("trained"): equal gradients from the
same zero start then make some parameters equal, and the exporter stores
them once and reads the others through Identity nodes, a pattern random
weights never show. Every variant is seeded from its name.

Usage: /usr/bin/python3 tools/export_zoo.py OUTDIR [--force] [--only NAME,...]
The export is skipped when OUTDIR/manifest.json is newer than this script
and every file it lists exists; --force redoes it.
"""
import argparse
import json
import os
import sys
import time
import warnings
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models import vgg as tv_vgg

# ---------------------------------------------------------------------------
# Small architectures not in torchvision (or too large there)


class Block(nn.Module):
    """Basic block (ResNet) or, with groups > 1, a ResNeXt-style block with a
    grouped 3x3 conv; a 1x1 conv + BN shortcut when the shape changes."""

    def __init__(self, cin, cout, stride, groups=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3 if groups == 1 else 1, stride if groups == 1 else 1,
                               1 if groups == 1 else 0, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1 if groups == 1 else stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.short(x) if self.short is not None else x))


class CifarResNet(nn.Module):
    def __init__(self, width=8, blocks=(1, 1, 1), groups=1, classes=10, in_channels=3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        layers, cin = [], width
        for stage, n in enumerate(blocks):
            cout = width * 2 ** stage
            for b in range(n):
                layers.append(Block(cin, cout, 2 if stage > 0 and b == 0 else 1, groups))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.layers(F.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class TinyVGG(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = tv_vgg.make_layers([16, "M", 32, "M", 64, 64, "M"], batch_norm=True)
        self.classifier = nn.Sequential(nn.Linear(64 * 4 * 4, 64), nn.ReLU(True), nn.Dropout(), nn.Linear(64, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class SigmoidNet(nn.Module):
    """conv-BN-Sigmoid-conv-BN-ReLU: a pruned channel still sends sigmoid(0)."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = torch.sigmoid(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class SharedConvNet(nn.Module):
    """One nn.Conv2d called twice (its own BN each time), the first use inside
    a residual connection so its channels are coupled to the stem."""

    def __init__(self, classes=10):
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
        self.shared = nn.Conv2d(16, 16, 3, 1, 1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(16), nn.BatchNorm2d(16)
        self.out, self.bn3 = nn.Conv2d(16, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = F.relu(self.bn0(self.stem(x)))
        y = F.relu(self.bn1(self.shared(x)) + x)
        y = F.relu(self.bn2(self.shared(y)))
        y = F.relu(self.bn3(self.out(y)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


def tv_resnet(classes=10):
    return torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1], num_classes=classes)


def tiny_efficientnet(classes=10):
    """EfficientNet-B0's blocks (MBConv, SiLU, squeeze-excitation) at a
    quarter of the width and a third of the depth."""
    from torchvision.models import efficientnet
    setting, last = efficientnet._efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.34)
    return efficientnet.EfficientNet(setting, dropout=0.2, num_classes=classes, last_channel=last)


def tiny_regnet(classes=10):
    """RegNetX-style: grouped 3x3 convs of group width 8, four stages."""
    from torchvision.models import regnet
    params = regnet.BlockParams.from_init_params(depth=4, w_0=16, w_a=8.0, w_m=2.0, group_width=8)
    return regnet.RegNet(params, num_classes=classes, stem_width=16)


def tiny_densenet(classes=10):
    return torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2, 2), num_init_features=16, bn_size=2,
                                       num_classes=classes)


# family -> (builder, input C,H,W)
FAMILIES = {
    "resnet_cifar": (lambda: CifarResNet(8, (1, 1, 1)), (3, 32, 32)),
    "resnet_tv": (tv_resnet, (3, 32, 32)),
    "wide_resnet": (lambda: CifarResNet(32, (1, 1)), (3, 32, 32)),
    "resnext": (lambda: CifarResNet(16, (1, 1), groups=4), (3, 32, 32)),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=10), (3, 32, 32)),
    "mobilenet_v3": (lambda: torchvision.models.mobilenet_v3_small(width_mult=0.5, num_classes=10), (3, 32, 32)),
    "shufflenet_v2": (lambda: torchvision.models.shufflenet_v2_x0_5(num_classes=10), (3, 32, 32)),
    "mnasnet": (lambda: torchvision.models.mnasnet0_5(num_classes=10), (3, 32, 32)),
    "efficientnet_b0": (tiny_efficientnet, (3, 32, 32)),
    "regnet": (tiny_regnet, (3, 32, 32)),
    "densenet": (tiny_densenet, (3, 32, 32)),
    "vgg": (TinyVGG, (3, 32, 32)),
    "squeezenet": (lambda: torchvision.models.squeezenet1_1(num_classes=10), (3, 64, 64)),
    "sigmoid_between": (SigmoidNet, (3, 32, 32)),
    "shared_conv": (SharedConvNet, (3, 32, 32)),
    "functions": (lambda: CifarResNet(8, (1, 1)), (3, 32, 32)),
}

# (family, bn, opset, trained, dynamic batch)
VARIANTS = [
    ("resnet_cifar", "fused", 9, False, False),
    ("resnet_cifar", "kept", 11, False, True),
    ("resnet_cifar", "fused", 13, True, True),
    ("resnet_cifar", "kept", 13, True, True),
    ("resnet_cifar", "kept", 17, True, False),
    ("resnet_tv", "kept", 17, True, True),
    ("wide_resnet", "fused", 11, False, True),
    ("wide_resnet", "kept", 13, True, True),
    ("resnext", "fused", 13, False, True),
    ("resnext", "kept", 11, True, True),
    ("mobilenet_v2", "fused", 11, False, True),
    ("mobilenet_v2", "kept", 13, True, True),
    ("mobilenet_v3", "fused", 13, False, True),
    ("mobilenet_v3", "kept", 17, False, True),
    ("shufflenet_v2", "fused", 11, False, True),
    ("shufflenet_v2", "kept", 13, False, True),
    ("mnasnet", "fused", 11, False, True),
    ("mnasnet", "kept", 13, False, True),
    ("efficientnet_b0", "fused", 13, False, True),
    ("efficientnet_b0", "kept", 17, False, True),
    ("regnet", "fused", 13, False, True),
    ("regnet", "kept", 11, True, True),
    ("densenet", "fused", 9, False, False),
    ("densenet", "kept", 13, True, True),
    ("vgg", "fused", 9, False, False),
    ("vgg", "kept", 13, True, True),
    ("squeezenet", "fused", 11, False, True),
    ("sigmoid_between", "fused", 13, False, True),
    ("sigmoid_between", "kept", 13, False, True),
    ("shared_conv", "fused", 13, False, True),
    ("shared_conv", "kept", 13, True, True),
    ("functions", "kept", 15, False, True),
]


def variant_name(family, bn, opset, trained, dynamic):
    return f"{family}_{bn}_op{opset}" + ("_trained" if trained else "") + ("" if dynamic else "_b1")


def seed_of(name):
    return zlib.crc32(name.encode())


def randomise_bn(model):
    """BN statistics and affine parameters away from the identity."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)


def train_a_few_steps(model, shape):
    """3 SGD steps on random images and labels from PyTorch's own init (no
    weight decay): parameters that start equal and get equal gradients stay
    equal, as in real training."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(3):
        x = torch.randn(4, *shape)
        y = torch.randint(0, 10, (4,))
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def export_variant(v, outdir):
    family, bn, opset, trained, dynamic = v
    name = variant_name(*v)
    torch.manual_seed(seed_of(name))
    builder, shape = FAMILIES[family]
    model = builder()
    if trained:
        train_a_few_steps(model, shape)
    else:
        randomise_bn(model)
    model.eval()
    path = os.path.join(outdir, name + ".onnx")
    kwargs = dict(opset_version=opset, input_names=["x"], output_names=["y"])
    if dynamic:
        kwargs["dynamic_axes"] = {"x": {0: "batch"}, "y": {0: "batch"}}
    if bn == "kept":
        kwargs.update(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    if family == "functions":
        kwargs["export_modules_as_functions"] = {Block}
    tmp = path + ".tmp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.randn(1, *shape), tmp, **kwargs)
    os.replace(tmp, path)
    return {"name": name, "file": name + ".onnx", "family": family, "bn": bn, "opset": opset, "trained": trained,
            "dynamic_batch": dynamic, "input_shape": [1, *shape]}


def manifest_is_fresh(outdir, wanted):
    mpath = os.path.join(outdir, "manifest.json")
    try:
        if os.path.getmtime(mpath) <= os.path.getmtime(os.path.abspath(__file__)):
            return False
        with open(mpath) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return False
    names = [e["name"] for e in manifest.get("models", [])]
    return names == wanted and all(os.path.exists(os.path.join(outdir, e["file"])) for e in manifest["models"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--force", action="store_true", help="export even when the manifest is fresh")
    ap.add_argument("--only", help="comma-separated variant names (the manifest lists only these)")
    args = ap.parse_args()
    variants = VARIANTS
    if args.only:
        keep = set(args.only.split(","))
        variants = [v for v in VARIANTS if variant_name(*v) in keep]
        unknown = keep - {variant_name(*v) for v in variants}
        if unknown:
            print(f"export_zoo: unknown variants: {sorted(unknown)}", file=sys.stderr)
            return 2
    wanted = [variant_name(*v) for v in variants]
    os.makedirs(args.outdir, exist_ok=True)
    if not args.force and manifest_is_fresh(args.outdir, wanted):
        print(f"export_zoo: {args.outdir}/manifest.json is up to date (use --force to redo)")
        return 0
    mpath = os.path.join(args.outdir, "manifest.json")
    if os.path.exists(mpath):
        os.remove(mpath)  # an interrupted run must not leave a fresh-looking manifest
    torch.set_num_threads(1)  # small models: threads cost more than they give
    entries, start = [], time.time()
    for v in variants:
        t0 = time.time()
        entries.append(export_variant(v, args.outdir))
        entries[-1]["export_seconds"] = round(time.time() - t0, 2)
    manifest = {"generator": "tools/export_zoo.py", "torch": torch.__version__,
                "torchvision": torchvision.__version__, "models": entries}
    with open(mpath + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(mpath + ".tmp", mpath)
    print(f"export_zoo: {len(entries)} models in {args.outdir} ({time.time() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
