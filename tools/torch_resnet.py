"""The CIFAR ResNet-(6n+2) as a PyTorch module, shared by tools/torch_step.py
and tools/torch_train.py: rebuilt from a description (depth, shortcut, head,
BN fused or not, input channels, classes) that comes from the manifest of
tools/export_refs.py or is read off an ONNX graph (spec_from_onnx), then given
the ONNX file's own initializers by pairing Conv, BatchNormalization and Gemm
nodes with the module's Conv2d, BatchNorm2d and Linear layers in execution
order (shapes checked, each initializer used once).

The ReLU is a constructor argument so that torch_step can make every ReLU take
the branch onnx-sfp took; everyone else gets F.relu.
"""
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper

PROG = os.path.splitext(os.path.basename(sys.argv[0]))[0] if sys.argv and sys.argv[0] else "torch_resnet"


def fail(message):
    raise SystemExit(f"{PROG}: {message}")


class ShortcutAConcat(nn.Module):
    """1x1 average pool of stride 2, then as many zero channels (x * 0)."""

    def __init__(self, stride):
        super().__init__()
        self.avg = nn.AvgPool2d(kernel_size=1, stride=stride)

    def forward(self, x):
        x = self.avg(x)
        return torch.cat((x, x.mul(0)), 1)


class ShortcutAPad(nn.Module):
    """Strided slice, then planes // 4 zero channels on both sides."""

    def __init__(self, planes):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0)


def conv_bn(cin, cout, kernel, stride, padding, fused):
    """Conv + BN, or for a fused export one Conv with a bias."""
    conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=fused)
    return nn.Sequential(conv) if fused else nn.Sequential(conv, nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, shortcut, fused, relu):
        super().__init__()
        self.relu = relu
        self.a = conv_bn(cin, cout, 3, stride, 1, fused)
        self.b = conv_bn(cout, cout, 3, 1, 1, fused)
        self.downsample = None
        if stride != 1 or cin != cout:
            if shortcut == "A-concat":
                self.downsample = ShortcutAConcat(stride)
            elif shortcut == "A-pad":
                self.downsample = ShortcutAPad(cout)
            elif shortcut == "B":
                self.downsample = conv_bn(cin, cout, 1, stride, 0, fused)
            else:
                raise ValueError(f"unknown shortcut {shortcut}")

    def forward(self, x):
        y = self.relu(self.a(x))
        y = self.b(y)
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(residual + y)


class CifarResNet(nn.Module):
    def __init__(self, depth, shortcut, head, fused, classes, in_channels=3, relu=F.relu):
        super().__init__()
        n = (depth - 2) // 6
        self.head = head
        self.relu = relu
        self.stem = conv_bn(in_channels, 16, 3, 1, 1, fused)
        blocks, cin = [], 16
        for stage, planes in enumerate((16, 32, 64)):
            for i in range(n):
                blocks.append(BasicBlock(cin, planes, 2 if stage > 0 and i == 0 else 1, shortcut, fused, relu))
                cin = planes
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(64, classes)

    def forward(self, x):
        x = self.blocks(self.relu(self.stem(x)))
        if self.head == "avgpool-view":
            x = F.avg_pool2d(x, 8).view(x.size(0), -1)
        else:
            x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x)


def build(entry, relu=F.relu):
    """The module of a description: a manifest entry of tools/export_refs.py
    or what spec_from_onnx returns."""
    arch = entry["arch"]
    if not arch.startswith("resnet") or arch.endswith("_tv"):
        fail(f"{entry['name']}: only the CIFAR ResNets are rebuilt, not {arch}")
    return CifarResNet(int(arch[len("resnet"):]), entry["shortcut"], entry["head"], entry["bn"] == "fused",
                       entry["classes"], entry["input_shape"][0], relu)


def attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def spec_from_onnx(onnx_model, name):
    """A manifest-like description of a CIFAR ResNet read off its graph (as
    `onnx-sfp init resnetN` or tools/export_refs.py write it): one Add per
    BasicBlock gives the depth; SFP's x.mul(0) means shortcut A-concat, a
    strided Slice A-pad, neither B; GlobalAveragePool gives the head,
    BatchNormalization nodes mean unfused; the Gemm's weight gives the
    classes, the data input [N, C, H, W] the input shape."""
    g = onnx_model.graph
    inits = {t.name: t for t in g.initializer}
    data = [i for i in g.input if i.name not in inits]
    if len(data) != 1:
        fail(f"{name}: {len(data)} data inputs, a CIFAR ResNet has one")
    dims = [d.dim_value for d in data[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or min(dims[1:]) < 1:
        fail(f"{name}: input '{data[0].name}' is not [N, C, H, W] with fixed C, H, W")
    ops = [n.op_type for n in g.node]
    gemms = [n for n in g.node if n.op_type == "Gemm"]
    if len(gemms) != 1 or ops.count("Add") % 3 or not ops.count("Add"):
        fail(f"{name}: not a CIFAR ResNet (one Gemm, 3n residual Adds)")
    weight = inits.get(gemms[0].input[1])
    if weight is None:
        fail(f"{name}: the Gemm's weight is not an initializer")
    classes = weight.dims[0] if attr(gemms[0], "transB", 0) else weight.dims[1]
    shortcut = "A-concat" if "Mul" in ops else "A-pad" if "Slice" in ops else "B"
    return {"name": name, "arch": f"resnet{2 * ops.count('Add') + 2}", "shortcut": shortcut,
            "head": "gap-flatten" if "GlobalAveragePool" in ops else "avgpool-view",
            "bn": "unfused" if "BatchNormalization" in ops else "fused", "classes": int(classes),
            "input_shape": dims[1:]}


def layers_in_execution_order(model, input_shape):
    """Conv2d, BatchNorm2d and Linear modules in the order a forward calls them."""
    order = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod))
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    with torch.no_grad():
        model.eval()
        model(torch.zeros(1, *input_shape))
    for h in hooks:
        h.remove()
    return order


def load_onnx_weights(model, onnx_model, input_shape, targets=None):
    """Copies the ONNX file's initializers into the module. Returns the list of
    (initializer name, getter) pairs whose values a training step changes:
    getter() gives the current value in the ONNX layout. With a dict as
    targets, also fills targets[initializer name] = (module tensor,
    transposed) so callers can edit the module's tensors by ONNX name."""
    inits = {t.name: numpy_helper.to_array(t) for t in onnx_model.graph.initializer}
    nodes = [n for n in onnx_model.graph.node if n.op_type in ("Conv", "BatchNormalization", "Gemm")]
    layers = layers_in_execution_order(model, input_shape)
    kinds = {"Conv": nn.Conv2d, "BatchNormalization": nn.BatchNorm2d, "Gemm": nn.Linear}
    if len(nodes) != len(layers):
        fail(f"the ONNX file has {len(nodes)} Conv/BN/Gemm nodes, the module {len(layers)}")
    changed, used = [], set()

    def take(name, target, transpose=False):
        if name not in inits:
            fail(f"input '{name}' is not an initializer")
        if name in used:
            fail(f"initializer '{name}' feeds two layers; the module cannot share it")
        used.add(name)
        value = inits[name].T if transpose else inits[name]
        if tuple(value.shape) != tuple(target.shape):
            fail(f"'{name}' has shape {value.shape}, the module wants {tuple(target.shape)}")
        with torch.no_grad():
            target.copy_(torch.from_numpy(np.array(value, dtype=np.float32)))
        changed.append((name, (lambda t=target, tr=transpose: t.detach().numpy().T if tr else t.detach().numpy())))
        if targets is not None:
            targets[name] = (target, transpose)

    for node, layer in zip(nodes, layers):
        if not isinstance(layer, kinds[node.op_type]):
            fail(f"node '{node.name}' ({node.op_type}) meets {type(layer).__name__}")
        if node.op_type == "Conv":
            take(node.input[1], layer.weight)
            if len(node.input) > 2 and node.input[2]:
                if layer.bias is None:
                    fail(f"Conv '{node.name}' has a bias, the module's conv does not")
                take(node.input[2], layer.bias)
            elif layer.bias is not None:
                fail(f"Conv '{node.name}' has no bias, the module's conv does")
        elif node.op_type == "BatchNormalization":
            take(node.input[1], layer.weight)
            take(node.input[2], layer.bias)
            take(node.input[3], layer.running_mean)
            take(node.input[4], layer.running_var)
            layer.eps = float(attr(node, "epsilon", 1e-5))
            layer.momentum = 1.0 - float(attr(node, "momentum", 0.9))  # ONNX keeps 1 - PyTorch's
        else:
            if attr(node, "alpha", 1.0) != 1.0 or attr(node, "beta", 1.0) != 1.0 or attr(node, "transA", 0):
                fail(f"Gemm '{node.name}' is not a plain Linear")
            take(node.input[1], layer.weight, transpose=not attr(node, "transB", 0))
            take(node.input[2], layer.bias)
    return changed


def read_pb(path):
    return numpy_helper.to_array(onnx.load_tensor(path))


def write_pb(path, array, name):
    t = numpy_helper.from_array(np.ascontiguousarray(array), name)
    with open(path, "wb") as f:
        f.write(t.SerializeToString())


def output_difference(model, x, y):
    """max|model(x) - y| / max|y| with the module in eval mode (running BN
    statistics), as the ONNX graph computes."""
    model.eval()
    with torch.no_grad():
        ours = model(torch.from_numpy(np.array(x, dtype=np.float32))).numpy()
    if ours.shape != y.shape:
        fail(f"the module's output has shape {ours.shape}, the reference {y.shape}")
    return float(np.max(np.abs(ours - y)) / max(1e-6, float(np.max(np.abs(y)))))


def param_groups(model, wd, wd_bn_bias):
    """Conv and Linear weights decay by wd; biases and BN scale/bias by wd_bn_bias."""
    weights, others = [], []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            weights.append(m.weight)
            if m.bias is not None:
                others.append(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            others += [m.weight, m.bias]
    return [{"params": weights, "weight_decay": wd}, {"params": others, "weight_decay": wd_bn_bias}]
