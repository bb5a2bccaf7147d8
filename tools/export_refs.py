#!/usr/bin/python3
"""Exports the reference ResNets of the end-to-end tests with PyTorch's own
exporter (torch.onnx.export) and writes OUTDIR/manifest.json.

Each variant is deterministic (torch.manual_seed from its name) and comes with a
reference pair OUTDIR/<name>.input_0.pb / .output_0.pb (ONNX TensorProto) made by
PyTorch at the export batch. Parameter and MAC counts come from PyTorch alone
(parameters() and forward hooks), never from the ONNX file, so they are an
independent check of `onnx-sfp report`.

Usage: /usr/bin/python3 tools/export_refs.py OUTDIR [--force] [--only NAME,...]
The export is skipped when OUTDIR/manifest.json is newer than this script and
every file it lists exists (repeated test runs are cheap); --force redoes it.
"""
import argparse
import json
import os
import sys
import time
import warnings
import zlib

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from onnx import numpy_helper

# ---------------------------------------------------------------------------
# CIFAR ResNet-(6n+2), He et al. 2016, in the layout of the SFP code
# (conv 3x3 16 + BN + ReLU, three stages of n basic blocks, avg pool, linear).


class ShortcutAConcat(nn.Module):
    """Option A as in SFP's DownsampleA: subsample by a 1x1 average pool of
    stride 2, then append as many zero channels (x * 0) as there are inputs."""

    def __init__(self, in_planes, planes, stride):
        super().__init__()
        if stride != 2 or planes != 2 * in_planes:
            raise ValueError("A-concat shortcut needs stride 2 and doubled channels")
        self.avg = nn.AvgPool2d(kernel_size=1, stride=stride)

    def forward(self, x):
        x = self.avg(x)
        return torch.cat((x, x.mul(0)), 1)


class ShortcutAPad(nn.Module):
    """Option A as in the common CIFAR ResNet code: strided slice, then zero
    channels padded on both sides (planes // 4 each)."""

    def __init__(self, in_planes, planes, stride):
        super().__init__()
        if stride != 2 or planes != 2 * in_planes:
            raise ValueError("A-pad shortcut needs stride 2 and doubled channels")
        self.pad = planes // 4

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0)


def shortcut_b(in_planes, planes, stride):
    """Option B: 1x1 convolution of stride 2 and BN."""
    return nn.Sequential(
        nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(planes))


SHORTCUTS = {"A-concat": ShortcutAConcat, "A-pad": ShortcutAPad, "B": shortcut_b}


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU."""

    def __init__(self, in_planes, planes, stride, shortcut):
        super().__init__()
        self.conv_a = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn_a = nn.BatchNorm2d(planes)
        self.conv_b = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn_b = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = SHORTCUTS[shortcut](in_planes, planes, stride)

    def forward(self, x):
        y = F.relu(self.bn_a(self.conv_a(x)))
        y = self.bn_b(self.conv_b(y))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(residual + y)


class CifarResNet(nn.Module):
    """depth = 6n + 2; head "avgpool-view" (SFP) or "gap-flatten"."""

    def __init__(self, depth, shortcut, head, classes=10):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.head = head
        self.conv_1_3x3 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn_1 = nn.BatchNorm2d(16)
        blocks, in_planes = [], 16
        for stage, planes in enumerate((16, 32, 64)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(in_planes, planes, stride, shortcut))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        if head == "avgpool-view":
            self.pool = nn.AvgPool2d(8)
        elif head == "gap-flatten":
            self.pool = nn.AdaptiveAvgPool2d(1)
        else:
            raise ValueError(f"unknown head {head}")
        self.classifier = nn.Linear(64, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn_1(self.conv_1_3x3(x)))
        x = self.pool(self.blocks(x))
        if self.head == "avgpool-view":
            x = x.view(x.size(0), -1)
        else:
            x = torch.flatten(x, 1)
        return self.classifier(x)


def randomise_bn(model, input_shape):
    """Random BN affine terms and statistics, so folding BN changes the numbers.

    weight ~ U(0.5, 1.5), bias ~ N(0, 0.1); the running statistics are first
    measured on a random batch (so activations keep a sane scale even through
    ResNet-110: made-up statistics alone let the residual stream grow to 1e9),
    then perturbed: mean += N(0, 0.1) * std, var *= U(0.5, 1.5)."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.1)
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration pass
        model.train()
        model(torch.randn(4, *input_shape))
        for m in bns:
            m.momentum = 0.1
            m.running_mean.add_(torch.randn_like(m.running_mean) * 0.1 * m.running_var.sqrt())
            m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.5, 1.5))
    model.eval()


def build(arch, shortcut, head, classes):
    if arch.startswith("resnet") and arch.endswith("_tv"):
        ctor = getattr(torchvision.models, arch[:-3])
        return ctor(weights=None, num_classes=classes)
    return CifarResNet(int(arch[len("resnet"):]), shortcut, head, classes)


# ---------------------------------------------------------------------------
# Counting with PyTorch only.


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def count_macs(model, input_shape):
    """MACs at batch 1 by forward hooks: Conv2d = output elements x
    (in_channels / groups) x kernel area; Linear = output elements x in_features.
    Elementwise ops are not counted."""
    total = [0]

    def conv_hook(m, inp, out):
        kh, kw = m.kernel_size
        total[0] += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m, inp, out):
        total[0] += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    model.train(was_training)
    for h in handles:
        h.remove()
    return total[0]


def self_check_counts():
    """The published figures; a wrong hook count must stop everything."""
    expected = {20: (40_551_040, 0.27e6), 56: (125_485_696, 0.85e6)}
    for depth, (macs_ref, params_approx) in expected.items():
        for shortcut in ("A-concat", "A-pad"):
            model = CifarResNet(depth, shortcut, "avgpool-view")
            macs, params = count_macs(model, (3, 32, 32)), count_params(model)
            if macs != macs_ref:
                raise SystemExit(f"export_refs: MAC count of ResNet-{depth} {shortcut} is {macs:,}, "
                                 f"expected {macs_ref:,}: the hooks are wrong")
            if abs(params - params_approx) > 0.01 * params_approx:
                raise SystemExit(f"export_refs: ResNet-{depth} {shortcut} has {params:,} parameters, "
                                 f"expected about {params_approx:,.0f}")


# ---------------------------------------------------------------------------
# The variants. bn "fused" = eval export (BN folded into Conv); "unfused" =
# TrainingMode.PRESERVE on a model in eval() mode (BatchNormalization nodes stay).

CIFAR = dict(input_shape=[3, 32, 32], classes=10)
VARIANTS = [
    dict(name="resnet20_a_concat_fused_op13", arch="resnet20", shortcut="A-concat", bn="fused",
         opset=13, batch="fixed", export_batch=1, head="avgpool-view", **CIFAR),
    dict(name="resnet20_a_pad_unfused_op11", arch="resnet20", shortcut="A-pad", bn="unfused",
         opset=11, batch="dynamic", export_batch=2, head="gap-flatten", **CIFAR),
    dict(name="resnet20_b_fused_op17", arch="resnet20", shortcut="B", bn="fused",
         opset=17, batch="dynamic", export_batch=2, head="gap-flatten", **CIFAR),
    dict(name="resnet20_b_unfused_op9", arch="resnet20", shortcut="B", bn="unfused",
         opset=9, batch="fixed", export_batch=1, head="gap-flatten", **CIFAR),
    dict(name="resnet20_a_concat_view_batch2_op12", arch="resnet20", shortcut="A-concat", bn="fused",
         opset=12, batch="fixed", export_batch=2, head="avgpool-view", expect_frozen=True, **CIFAR),
    # What SFP's code gives when exported with a dynamic batch: x.view(x.size(0), -1)
    # stays a Shape -> Gather -> Unsqueeze -> Concat -> Reshape chain.
    dict(name="resnet20_a_concat_view_dynamic_op13", arch="resnet20", shortcut="A-concat", bn="fused",
         opset=13, batch="dynamic", export_batch=2, head="avgpool-view", **CIFAR),
    dict(name="resnet20_a_concat_initinputs_op9", arch="resnet20", shortcut="A-concat", bn="unfused",
         opset=9, batch="fixed", export_batch=1, head="avgpool-view", initializers_as_inputs=True,
         fallback_shortcut="B", **CIFAR),
    dict(name="resnet32_a_concat_fused_op13", arch="resnet32", shortcut="A-concat", bn="fused",
         opset=13, batch="fixed", export_batch=1, head="avgpool-view", **CIFAR),
    dict(name="resnet56_a_concat_fused_op13", arch="resnet56", shortcut="A-concat", bn="fused",
         opset=13, batch="fixed", export_batch=1, head="avgpool-view", **CIFAR),
    dict(name="resnet110_b_fused_op13", arch="resnet110", shortcut="B", bn="fused",
         opset=13, batch="dynamic", export_batch=2, head="gap-flatten", **CIFAR),
    dict(name="resnet18_tv_fused_op13", arch="resnet18_tv", shortcut="B", bn="fused",
         opset=13, batch="dynamic", export_batch=2, head="gap-flatten", input_shape=[3, 224, 224], classes=1000),
    dict(name="resnet34_tv_unfused_op11", arch="resnet34_tv", shortcut="B", bn="unfused",
         opset=11, batch="fixed", export_batch=1, head="gap-flatten", input_shape=[3, 112, 112], classes=1000),
    dict(name="resnet50_tv_fused_op17", arch="resnet50_tv", shortcut="B", bn="fused",
         opset=17, batch="dynamic", export_batch=2, head="gap-flatten", input_shape=[3, 112, 112], classes=1000),
]
MANIFEST_KEYS = ["name", "file", "arch", "shortcut", "bn", "opset", "batch", "export_batch", "head",
                 "input_shape", "classes"]


def seed_of(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def constant_values(graph, name):
    """Values of name when it is an initializer or a Constant node's output."""
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for a in node.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
    return None


def inspect(model):
    """Op types, Reshape targets and the declared input batch of an export."""
    g = model.graph
    op_types = sorted({n.op_type for n in g.node})
    targets, frozen = [], False
    for n in g.node:
        if n.op_type == "Reshape":
            v = constant_values(g, n.input[1])
            targets.append(None if v is None else [int(x) for x in v.reshape(-1)])
            # A constant target whose first entry is a positive number froze the batch.
            if v is not None and v.size > 0 and int(v.reshape(-1)[0]) > 0:
                frozen = True
    init_names = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in init_names]
    d0 = inputs[0].type.tensor_type.shape.dim[0]
    batch_dim = d0.dim_value if d0.HasField("dim_value") else (d0.dim_param or "?")
    return dict(op_types=op_types, reshape_targets=targets, frozen_reshape=frozen,
                onnx_input_batch=batch_dim, graph_inputs=len(g.input), real_inputs=len(inputs),
                input_name=inputs[0].name, output_name=g.output[0].name)


def write_pb(path, array, name):
    t = numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name)
    tmp = path + ".tmp." + str(os.getpid())
    with open(tmp, "wb") as f:
        f.write(t.SerializeToString())
    os.replace(tmp, path)


class ExportUnsupported(Exception):
    """torch.onnx.export refused the variant (recorded as skipped, not fatal)."""


def export_variant(v, outdir):
    """Exports one variant; returns (manifest entry, seconds). Raises
    ExportUnsupported when PyTorch cannot export it, anything else on a bug."""
    t0 = time.time()
    seed = seed_of(v["name"])
    torch.manual_seed(seed)
    model = build(v["arch"], v["shortcut"], v["head"], v["classes"])
    randomise_bn(model, v["input_shape"])
    model.eval()
    entry = {k: v[k] for k in MANIFEST_KEYS if k in v}
    entry["file"] = v["name"] + ".onnx"
    entry["params"] = count_params(model)
    entry["macs"] = count_macs(model, v["input_shape"])
    entry["seed"] = seed

    path = os.path.join(outdir, entry["file"])
    eb = v["export_batch"]
    dummy = torch.randn(eb, *v["input_shape"])
    kwargs = dict(opset_version=v["opset"], do_constant_folding=True,
                  input_names=["input"], output_names=["output"],
                  keep_initializers_as_inputs=bool(v.get("initializers_as_inputs", False)),
                  training=(torch.onnx.TrainingMode.EVAL if v["bn"] == "fused"
                            else torch.onnx.TrainingMode.PRESERVE))
    if v["batch"] == "dynamic":
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "output": {0: "batch"}}
    tmp = path + ".tmp." + str(os.getpid())
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.onnx.export(model, dummy, tmp, **kwargs)
    except Exception as exc:  # noqa: BLE001 - what this PyTorch cannot export is recorded
        if os.path.exists(tmp):
            os.remove(tmp)
        raise ExportUnsupported(f"{type(exc).__name__}: " + (str(exc).splitlines() or [""])[0][:300]) from exc
    os.replace(tmp, path)

    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    info = inspect(m)
    entry["frozen_reshape"] = info["frozen_reshape"]
    entry["op_types"] = info["op_types"]
    entry["reshape_targets"] = info["reshape_targets"]
    entry["initializers_as_inputs"] = info["graph_inputs"] > info["real_inputs"]
    entry["export_warnings"] = sorted({str(w.message).splitlines()[0][:160] for w in caught})

    # The export must be what its name says.
    has_bn = "BatchNormalization" in info["op_types"]
    if has_bn != (v["bn"] == "unfused"):
        raise RuntimeError(f"bn={v['bn']} but BatchNormalization present={has_bn}")
    if v["batch"] == "fixed" and info["onnx_input_batch"] != eb:
        raise RuntimeError(f"fixed batch {eb} but the ONNX input declares {info['onnx_input_batch']!r}")
    if v["batch"] == "dynamic" and not isinstance(info["onnx_input_batch"], str):
        raise RuntimeError(f"dynamic batch but the ONNX input declares {info['onnx_input_batch']!r}")
    if v.get("expect_frozen") and [eb, -1] not in info["reshape_targets"]:
        raise RuntimeError(f"expected a Reshape frozen to [{eb}, -1], found {info['reshape_targets']}")

    # Reference pair at the export batch, from PyTorch.
    x = np.random.RandomState(seed + 1).standard_normal([eb] + v["input_shape"]).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    write_pb(os.path.join(outdir, v["name"] + ".input_0.pb"), x, info["input_name"])
    write_pb(os.path.join(outdir, v["name"] + ".output_0.pb"), y, info["output_name"])
    return entry, time.time() - t0


def manifest_is_fresh(outdir):
    mpath = os.path.join(outdir, "manifest.json")
    try:
        if os.path.getmtime(mpath) <= os.path.getmtime(os.path.abspath(__file__)):
            return False
        with open(mpath) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return False
    names = {e.get("name") for e in manifest.get("models", [])}
    if names != {v["name"] for v in VARIANTS}:
        return False
    for e in manifest["models"]:
        if e.get("skipped"):
            continue
        for suffix in (".onnx", ".input_0.pb", ".output_0.pb"):
            if not os.path.exists(os.path.join(outdir, e["name"] + suffix)):
                return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--force", action="store_true", help="export even when the manifest is fresh")
    ap.add_argument("--only", help="comma-separated variant names (the manifest lists only these)")
    args = ap.parse_args()

    variants = VARIANTS
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {v["name"] for v in VARIANTS}
        if unknown:
            ap.error("unknown variant(s): " + ", ".join(sorted(unknown)))
        variants = [v for v in VARIANTS if v["name"] in wanted]
    elif not args.force and manifest_is_fresh(args.outdir):
        print(f"export_refs: {args.outdir}/manifest.json is up to date (use --force to redo)")
        return 0

    torch.set_num_threads(2)
    os.makedirs(args.outdir, exist_ok=True)
    mpath = os.path.join(args.outdir, "manifest.json")
    if os.path.exists(mpath):
        os.remove(mpath)  # an interrupted run must not leave a fresh-looking manifest
    t0 = time.time()
    self_check_counts()

    entries = []
    for v in variants:
        try:
            try:
                e, seconds = export_variant(v, args.outdir)
            except ExportUnsupported as exc:
                if not v.get("fallback_shortcut"):
                    raise
                fb = dict(v, shortcut=v["fallback_shortcut"])
                e, seconds = export_variant(fb, args.outdir)
                e["note"] = (f"shortcut {v['shortcut']} could not be exported at opset {v['opset']} "
                             f"({exc}); exported with shortcut {fb['shortcut']} instead")
            print(f"export_refs: {v['name']}: {e['macs']:,} MACs, {e['params']:,} params, "
                  f"{seconds:.1f}s; ops {' '.join(e['op_types'])}", flush=True)
        except ExportUnsupported as exc:
            reason = str(exc)
            e = {k: v[k] for k in MANIFEST_KEYS if k in v}
            e["file"] = v["name"] + ".onnx"
            e["skipped"] = reason
            for suffix in (".onnx", ".input_0.pb", ".output_0.pb"):  # no stale file from an older run
                stale = os.path.join(args.outdir, v["name"] + suffix)
                if os.path.exists(stale):
                    os.remove(stale)
            print(f"export_refs: {v['name']}: SKIPPED: {reason}", flush=True)
        entries.append(e)

    manifest = {"generator": "tools/export_refs.py",
                "torch": torch.__version__, "torchvision": torchvision.__version__, "onnx": onnx.__version__,
                "models": entries}
    tmp = mpath + ".tmp." + str(os.getpid())
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    os.replace(tmp, mpath)
    n_skipped = sum(1 for e in entries if e.get("skipped"))
    print(f"export_refs: {len(entries) - n_skipped} exported, {n_skipped} skipped, "
          f"{time.time() - t0:.1f}s -> {mpath}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
