#!/usr/bin/python3
"""Hostile-input corpus: writes broken or hostile ONNX files into OUTDIR and a
manifest cases.json ([{"file", "cmd", "exit", "pattern"}]) plus cases.tsv (the
same, one tab-separated line per case, for the shell runner).

Usage: gen_bad_models.py OUTDIR

Every case starts from one valid tiny net built with onnx.helper
(Conv-BN-Relu-GlobalAveragePool-Flatten-Gemm) and breaks it: structurally with
the protobuf API, or at the wire level by editing the serialized bytes.
Folders: wire/ (empty, random, truncated, wrong wire types, endless varints,
lengths and counts that claim more than the file holds), nest/ (If/Loop and
TypeProto nesting up to 100000 levels), tensor/ (dims, data sizes, types,
NaN/Inf, BN variance), graph/ (edges, cycles, duplicates, declarations),
shape/ (Conv/Gemm/BN mismatches), unsup/ (ops, domains, attributes,
versions: exit 4), escape/ (control characters in names), ext/ (external data
outside the folder, FIFOs, bounds), inputs/ (several, none, huge), names/
(very long names), regress/ (fuzzer finds).
`pattern` is a POSIX extended regex the single stderr line must match (after
"onnx-sfp: error: "); exit 0 cases have pattern null and must print no error.
Crashers found by fuzzing live in tests/bad/regress/*.onnx; their expected
exit status and pattern are listed in REGRESS below.
"""
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = None
CASES = []

# Fuzzer finds kept as files: name -> [(cmd, exit, pattern), ...].
REGRESS = {
    # shape folding overflowed int64 (UBSan) before checked arithmetic (op_elementwise.c, op_pad_slice.c)
    "add_fold_overflow.onnx": [("report", 3, "integer overflow in a shape computation")],
    "mul_fold_overflow.onnx": [("report", 3, "integer overflow in a shape computation")],
    "pad_sum_overflow.onnx": [("report", 3, "pads of dim 1 are out of range")],
    # 208 bytes: a ConstantOfShape of 2^30 floats was folded (4 GB filled); now
    # only shapes are inferred for constants above 2^16 elements (op_shape.c)
    "constant_of_shape_4gb.onnx": [("report", 0, None)],
    # a value listed twice without a type leaked the first residue (load.c)
    "leak_value_info_twice.onnx": [("report", 3, "graph input '0' has no declared type and shape")],
    # depthwise Conv of an int8 input (no channel slots): groups_find read
    # past the slot arrays (groups.c); the weight is a graph input
    "depthwise_int8_input.onnx": [("report", 3, "input, weight and bias types differ \\(int8, float32\\)"),
                                  ("compress", 3, "input, weight and bias types differ")],
    # 124 bytes declaring 2^20 channels: tracing groups took seconds and
    # hundreds of MB (16 s under ASan) before the slot cap (groups.c)
    "slow_million_channels.onnx": [("report", 0, None),
                                   ("compress", 4, "more than 1048576 channels and features to trace")],
    # a Pad whose only output name is empty: groups_find read slot -1 (groups.c)
    "pad_empty_output.onnx": [("report", 3, "node '#0' \\(Pad\\): required output 0 is empty"),
                              ("compress", 3, "node '#0' \\(Pad\\): required output 0 is empty")],
    # a ConvTranspose whose strides list one value for two spatial dims: the
    # list was read to the expected length before its length was checked
    # (op_conv_transpose.c, ASan)
    "convt_short_attr_list.onnx": [("report", 3, "attribute strides has 1 values, expected 2")],
}


# ---------------------------------------------------------------- helpers
def case(name, data, exit_code, pattern, cmd="report"):
    """Writes one case file (bytes or a ModelProto) and records it."""
    path = os.path.join(OUT, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(data, onnx.ModelProto):
        data = data.SerializeToString()
    with open(path, "wb") as f:
        f.write(data)
    record(name, exit_code, pattern, cmd)


def record(name, exit_code, pattern, cmd="report"):
    CASES.append({"file": name, "cmd": cmd, "exit": exit_code, "pattern": pattern})


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire_type):
    return varint((field << 3) | wire_type)


def ld(field, payload):
    """Length-delimited field."""
    return key(field, 2) + varint(len(payload)) + payload


def vi(field, n):
    return key(field, 0) + varint(n)


def base_model(opset=13, ir_version=7):
    """Conv(3->4, 3x3) - BN - Relu - GAP - Flatten - Gemm(4->2) on [1,3,8,8]."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    inits = [
        numpy_helper.from_array(w, "conv.w"),
        numpy_helper.from_array(b, "conv.b"),
        numpy_helper.from_array(np.ones(4, np.float32), "bn.scale"),
        numpy_helper.from_array(np.zeros(4, np.float32), "bn.bias"),
        numpy_helper.from_array(np.zeros(4, np.float32), "bn.mean"),
        numpy_helper.from_array(np.ones(4, np.float32), "bn.var"),
        numpy_helper.from_array(rng.standard_normal((2, 4)).astype(np.float32), "fc.w"),
        numpy_helper.from_array(np.zeros(2, np.float32), "fc.b"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv.w", "conv.b"], ["c"], name="conv0",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["n"],
                         name="bn0", epsilon=1e-5),
        helper.make_node("Relu", ["n"], ["r"], name="relu0"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap0"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat0", axis=1),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["output"], name="fc0", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 2])],
        inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="gen_bad_models")
    m.ir_version = ir_version
    return m


def copy_model():
    m = onnx.ModelProto()
    m.CopyFrom(BASE)
    return m


def init_named(m, name):
    for t in m.graph.initializer:
        if t.name == name:
            return t
    raise KeyError(name)


def node_named(m, name):
    for n in m.graph.node:
        if n.name == name:
            return n
    raise KeyError(name)


def attr_named(n, name):
    for a in n.attribute:
        if a.name == name:
            return a
    raise KeyError(name)


def set_float_init(m, name, arr):
    t = init_named(m, name)
    t.CopyFrom(numpy_helper.from_array(np.asarray(arr, np.float32), name))


BAD = "not a valid ONNX model"


# ---------------------------------------------------------------- cases
def wire_cases(good):
    case("wire/empty.onnx", b"", 3, "empty file, not an ONNX model")
    case("wire/empty_c.onnx", b"", 3, "empty file", cmd="compress")
    for seed in (1, 2, 3, 4, 5):
        rng = np.random.default_rng(seed)
        size = int(rng.integers(16, 4096))
        case("wire/random_%d.onnx" % seed, rng.integers(0, 256, size, dtype=np.uint8).tobytes(), 3,
             BAD + "|holds no graph|no opset_import")
    # Truncated at many points: every cut is refused (3), whatever it hits.
    n = len(good)
    for frac in (1, 2, 5, 10, 25, 40, 50, 66, 80, 95, 99):
        cut = max(1, n * frac // 100)
        case("wire/trunc_%02d.onnx" % frac, good[:cut], 3, BAD + "|no opset_import|holds no graph|has no outputs")
    case("wire/trunc_last_byte.onnx", good[:-1], 3, BAD + "|no opset_import|holds no graph|has no outputs",
         cmd="compress")
    # Wrong wire types for known fields.
    case("wire/irversion_as_bytes.onnx", ld(1, b"\x07") + good, 3,
         BAD + ": byte 0: field 1 \\(ModelProto.ir_version\\) has wire type 2, expected 0")
    case("wire/graph_as_varint.onnx", vi(7, 5) + good, 3,
         BAD + ": byte 0: field 7 \\(ModelProto.graph\\) has wire type 0, expected 2")
    case("wire/opset_as_fixed32.onnx", good + key(8, 5) + b"\x01\x02\x03\x04", 3,
         BAD + ": byte [0-9]+: field 8 \\(ModelProto.opset_import\\) has wire type 5, expected 2")
    node = ld(4, b"Relu") + vi(5, 1)  # NodeProto.attribute as a varint, two levels down
    case("wire/nested_wrong_type.onnx", vi(1, 7) + ld(7, ld(1, node)), 3,
         BAD + ": byte 12: field 5 \\(NodeProto.attribute\\) has wire type 0, expected 2")
    case("wire/group_wiretype.onnx", good + key(9, 3), 3, BAD + ": byte [0-9]+: unknown wire type")
    # Endless varint: a tag followed by 12 continuation bytes.
    case("wire/endless_varint.onnx", good + b"\x08" + b"\xff" * 12, 3,
         BAD + ": byte [0-9]+: truncated or endless varint")
    case("wire/endless_tag.onnx", b"\xff" * 16, 3, BAD + ": byte 0: truncated or endless varint")
    case("wire/field_zero.onnx", b"\x00\x01" + good, 3, BAD + ": byte 0: field number 0")
    # Lengths that claim far more than the file holds (a 1 KB file claiming
    # a huge repeated field: packed dims of 2^62 bytes, a graph of 4 GiB).
    pad = b"\x00" * 1000
    case("wire/huge_graph_len.onnx", vi(1, 7) + key(7, 2) + varint(0xFFFFFFFF) + pad, 3,
         BAD + ": byte [0-9]+: length runs past the end")
    case("wire/huge_len_2p62.onnx", vi(1, 7) + key(7, 2) + varint(1 << 62) + pad, 3,
         BAD + ": byte [0-9]+: length runs past the end")
    inner = key(1, 2) + varint(1 << 62) + b"\x01" * 1000  # packed int64 dims claiming 2^62 bytes
    tensor = ld(5, inner)
    case("wire/huge_packed_dims_nested.onnx", vi(1, 7) + ld(7, tensor), 3,
         BAD + ": byte [0-9]+: length runs past the end")
    # 1 KB of empty nodes: decodes (500 nodes) but none has an op type.
    case("wire/many_empty_nodes_1k.onnx", vi(1, 7) + ld(8, vi(2, 13)) + ld(7, ld(12, ld(1, b"y")) + b"\x0a\x00" * 500), 3,
         "node '#0' \\(\\): empty op_type")
    # 300 KB of empty nodes: protobuf-c would need ~60x the file; the budget refuses it.
    case("wire/many_empty_nodes_300k.onnx", vi(1, 7) + ld(8, vi(2, 13)) + ld(7, b"\x0a\x00" * 150000), 3,
         BAD + ": it would need more memory than its size justifies")
    # 200 K int64_data entries: packed (1 byte each) they decode and are
    # refused for not matching dims; unpacked (2 bytes each) protobuf-c would
    # need ~20x the file and the budget refuses them.
    def int64_model(entries):
        tens = ld(8, b"big") + vi(2, 7) + vi(1, 2) + entries
        g = ld(5, tens) + ld(11, ld(1, b"input")) + ld(12, ld(1, b"big"))
        return vi(1, 7) + ld(8, vi(2, 13)) + ld(7, g)
    case("wire/int64_packed_200k.onnx", int64_model(ld(7, b"\x01" * 200000)), 3,
         "'big': holds 200000 values but its dims need 2")
    case("wire/int64_unpacked_200k.onnx", int64_model((key(7, 0) + b"\x01") * 200000), 3,
         BAD + ": it would need more memory than its size justifies")


def nest_bytes(depth, op="If", attr="then_branch"):
    """ModelProto whose graph holds `depth` levels of If/Loop subgraphs, built
    inside out with every nested field last, so each level only prepends."""
    core = ld(2, b"leaf")  # innermost GraphProto: just a name
    parts = []
    length = len(core)
    for _ in range(depth):
        # AttributeProto: name, type=GRAPH, g=<inner graph>
        a_head = ld(1, attr.encode()) + vi(20, 5) + key(6, 2) + varint(length)
        a_len = len(a_head) + length
        # NodeProto: input, output, op_type, attribute=<a>
        n_head = ld(1, b"cond") + ld(2, b"y") + ld(4, op.encode()) + key(5, 2) + varint(a_len)
        n_len = len(n_head) + a_len
        # GraphProto: node=<n>
        g_head = key(1, 2) + varint(n_len)
        length = len(g_head) + n_len
        parts.append(g_head + n_head + a_head)
    graph = b"".join(reversed(parts)) + core
    graph = ld(12, ld(1, b"y")) + graph
    return vi(1, 7) + ld(8, vi(2, 13)) + key(7, 2) + varint(len(graph)) + graph


def typeproto_nest_bytes(depth):
    """Graph input whose type is sequence(sequence(...(tensor)))."""
    t = ld(1, vi(1, 1))  # TypeProto{tensor_type{elem_type FLOAT}}
    parts = []
    length = len(t)
    for _ in range(depth):
        seq_head = key(1, 2) + varint(length)       # Sequence{elem_type=<inner>}
        seq_len = len(seq_head) + length
        tp_head = key(4, 2) + varint(seq_len)       # TypeProto{sequence_type=<seq>}
        length = len(tp_head) + seq_len
        parts.append(tp_head + seq_head)
    typ = b"".join(reversed(parts)) + t
    vinfo = ld(1, b"input") + key(2, 2) + varint(len(typ)) + typ
    graph = key(11, 2) + varint(len(vinfo)) + vinfo
    return vi(1, 7) + ld(8, vi(2, 13)) + key(7, 2) + varint(len(graph)) + graph


def nesting_cases():
    case("nest/if_3.onnx", nest_bytes(3), 4, "node '#0' \\(If\\): operator not supported")
    case("nest/if_30.onnx", nest_bytes(30), 4, "node '#0' \\(If\\): operator not supported")
    case("nest/if_2000.onnx", nest_bytes(2000), 3, BAD + ": byte [0-9]+: messages nested deeper than 100 levels")
    case("nest/loop_2000.onnx", nest_bytes(2000, "Loop", "body"), 3, BAD + ": byte [0-9]+: messages nested deeper than 100 levels",
         cmd="compress")
    case("nest/if_100000.onnx", nest_bytes(100000), 3, BAD + ": byte [0-9]+: messages nested deeper than 100 levels")
    case("nest/typeproto_5000.onnx", typeproto_nest_bytes(5000), 3, BAD + ": byte [0-9]+: messages nested deeper than 100 levels")


def tensor_cases():
    m = copy_model()
    t = init_named(m, "conv.w")
    t.dims[0] = -4
    case("tensor/dims_negative.onnx", m, 3, "initializer 'conv.w': dimension 0 is negative")

    m = copy_model()
    t = init_named(m, "conv.w")
    t.dims[0] = 0
    t.raw_data = b""
    case("tensor/dims_zero.onnx", m, 3, "'conv0' \\(Conv\\)|'bn0' \\(BatchNormalization\\)|zero")

    m = copy_model()
    t = init_named(m, "conv.w")
    del t.dims[:]
    t.dims.extend([1 << 20, 1 << 20])  # 2^40 floats ...
    t.raw_data = b"\x00" * 16           # ... in 16 bytes
    case("tensor/dims_2p40_tiny_raw.onnx", m, 3, "raw_data has 16 bytes but its dims need 1099511627776")

    m = copy_model()
    t = init_named(m, "conv.w")
    del t.dims[:]
    t.dims.extend([1 << 62, 1 << 62, 4])
    case("tensor/dims_overflow.onnx", m, 3, "initializer 'conv.w': dims overflow")

    m = copy_model()
    t = init_named(m, "conv.w")
    del t.dims[:]
    t.dims.extend([1] * 9)
    case("tensor/rank_9.onnx", m, 4, "initializer 'conv.w': rank 9 above the 8 supported")

    m = copy_model()
    t = init_named(m, "conv.w")
    t.raw_data = t.raw_data[:-4]
    case("tensor/raw_short.onnx", m, 3, "raw_data has 428 bytes but its dims need 108 float32 values = 432 bytes",
         cmd="compress")

    m = copy_model()
    t = init_named(m, "conv.b")
    t.ClearField("raw_data")
    t.float_data.extend([1.0, 2.0, 3.0])
    case("tensor/float_data_short.onnx", m, 3, "initializer 'conv.b': holds 3 values but its dims need 4")

    m = copy_model()
    t = init_named(m, "conv.b")
    t.ClearField("raw_data")
    t.int64_data.extend([1, 2, 3, 4])  # float tensor filled in the wrong typed field
    case("tensor/float_in_int64_data.onnx", m, 3, "initializer 'conv.b': holds 0 values of its data type but its dims need 4")

    m = copy_model()
    t = init_named(m, "conv.b")
    t.data_type = TensorProto.STRING
    case("tensor/dtype_string.onnx", m, 4, "initializer 'conv.b': data type 8 \\(string\\) is not supported")

    m = copy_model()
    t = init_named(m, "conv.b")
    t.data_type = 999
    case("tensor/dtype_999.onnx", m, 3, "initializer 'conv.b': data type 999 is not an ONNX data type")

    m = copy_model()
    t = init_named(m, "conv.b")
    t.ClearField("data_type")
    case("tensor/dtype_missing.onnx", m, 3, "initializer 'conv.b': data type 0 \\(undefined\\)")

    m = copy_model()
    set_float_init(m, "conv.w", np.where(np.arange(108).reshape(4, 3, 3, 3) == 7, np.nan, 0.5))
    case("tensor/nan_weight.onnx", m, 3, "initializer 'conv.w': element 7 is NaN")

    m = copy_model()
    set_float_init(m, "fc.w", [[1, 2, 3, 4], [5, 6, np.inf, 8]])
    case("tensor/inf_weight.onnx", m, 3, "initializer 'fc.w': element 6 is infinite", cmd="compress")

    m = copy_model()
    set_float_init(m, "bn.var", [1, -0.5, 1, 1])
    case("tensor/bn_negative_var.onnx", m, 3, "node 'bn0' \\(BatchNormalization\\): variance 'bn.var' channel 1 is -0.5")

    m = copy_model()
    set_float_init(m, "bn.var", [1, 1, 0, 1])
    attr_named(node_named(m, "bn0"), "epsilon").f = 0.0
    case("tensor/bn_zero_var_zero_eps.onnx", m, 3, "node 'bn0' \\(BatchNormalization\\): variance 'bn.var' channel 2 is 0 with epsilon 0")

    # the spec allows one place for the values: raw_data, a typed field or external data
    m = copy_model()
    init_named(m, "conv.b").float_data.extend([1.0, 2.0, 3.0, 4.0])
    case("tensor/raw_and_float_data.onnx", m, 3,
         "initializer 'conv.b': holds its values twice \\(raw_data and typed data fields\\)")
    m = copy_model()
    init_named(m, "conv.b").float_data.extend([1.0, 2.0, 3.0, 4.0])
    case("tensor/raw_and_float_data_c.onnx", m, 3, "initializer 'conv.b': holds its values twice", cmd="compress")

    m = copy_model()
    init_named(m, "conv.b").segment.begin = 0
    init_named(m, "conv.b").segment.end = 4
    case("tensor/segment.onnx", m, 4, "segmented tensors are not supported")


def graph_cases():
    m = copy_model()
    node_named(m, "relu0").input[0] = "nowhere"
    case("graph/dangling_input.onnx", m, 3, "node 'relu0' \\(Relu\\): input 'nowhere' is not produced by any node")

    m = copy_model()
    node_named(m, "relu0").input[0] = "f"  # relu0 <- flat0 <- gap0 <- relu0
    case("graph/cycle.onnx", m, 3, "is part of a cycle or waits on one")

    m = copy_model()
    m.graph.node.append(helper.make_node("Relu", ["n"], ["r"], name="relu_twice"))
    case("graph/produced_twice.onnx", m, 3, "value 'r' is produced twice \\(node 'relu_twice'\\)")

    m = copy_model()
    m.graph.node.append(helper.make_node("Relu", ["n"], ["conv.w"], name="relu_init"))
    case("graph/output_is_initializer.onnx", m, 3, "value 'conv.w' is produced twice")

    m = copy_model()
    m.graph.initializer.append(numpy_helper.from_array(np.zeros(4, np.float32), "conv.b"))
    case("graph/duplicate_initializer.onnx", m, 3, "duplicate initializer 'conv.b'")

    m = copy_model()
    m.graph.input.append(helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8]))
    case("graph/input_twice.onnx", m, 3, "graph input 'input' listed twice")

    m = copy_model()
    node_named(m, "relu0").output[0] = "input"
    node_named(m, "gap0").input[0] = "input"
    case("graph/writes_graph_input.onnx", m, 3, "is produced twice|is also a graph input")

    m = copy_model()
    del m.graph.output[:]
    case("graph/no_outputs.onnx", m, 3, "the graph has no outputs")

    m = copy_model()
    m.graph.output.append(helper.make_tensor_value_info("ghost", TensorProto.FLOAT, [1]))
    case("graph/output_not_produced.onnx", m, 3, "graph output 'ghost' is not produced by anything")

    m = copy_model()
    m.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 7
    case("graph/output_declared_wrong.onnx", m, 3, "graph output 'output' is declared with dim 1 = 7 but computes 2")

    m = copy_model()
    m.graph.input[0].ClearField("type")
    case("graph/input_untyped.onnx", m, 3, "graph input 'input' has no declared type and shape")

    m = copy_model()
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_value = -8
    case("graph/input_dim_negative.onnx", m, 3, "value 'input': dimension 2 is negative")

    m = copy_model()
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 0
    m.graph.input[0].type.tensor_type.shape.dim[3].dim_value = (1 << 63) - 1
    case("graph/input_dim_zero_and_2p63.onnx", m, 3, "graph input 'input' would hold an absurd number of elements")

    m = copy_model()
    m.graph.input[0].type.tensor_type.elem_type = 39
    case("graph/input_dtype_39.onnx", m, 3, "value 'input': element type 39 is not an ONNX data type")

    m = copy_model()
    m.graph.input[0].type.tensor_type.elem_type = TensorProto.STRING
    case("graph/input_dtype_string.onnx", m, 4, "graph input 'input' has element type string, which is not supported")

    m = copy_model()
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    case("graph/input_dim_symbolic.onnx", m, 4, "graph input 'input': dimension 2 is symbolic \\('H'\\)")

    m = copy_model()
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 1 << 40
    case("graph/input_dim_huge.onnx", m, 3, "absurd number of elements")

    m = copy_model()
    del m.graph.node[:]
    m.graph.node.extend(BASE.graph.node)
    del m.graph.node[0].input[1:]
    case("graph/conv_missing_weight.onnx", m, 3, "node 'conv0' \\(Conv\\): 1 inputs, expected 2 to 3")

    m = copy_model()
    node_named(m, "relu0").op_type = ""
    case("graph/empty_op_type.onnx", m, 3, "node 'relu0' \\(\\): empty op_type")

    m = copy_model()
    n = node_named(m, "conv0")
    n.attribute.append(helper.make_attribute("group", 1))
    n.attribute.append(helper.make_attribute("group", 1))
    case("graph/attribute_twice.onnx", m, 3, "node 'conv0' \\(Conv\\): attribute 'group' given twice")

    m = copy_model()
    m.graph.node[0].attribute.append(onnx.AttributeProto(name=""))
    case("graph/attribute_no_name.onnx", m, 3, "attribute without a name")

    m = copy_model()
    m.graph.initializer[0].name = ""
    case("graph/initializer_no_name.onnx", m, 3, "initializer #0 has no name")

    m = copy_model()
    m.ClearField("graph")
    case("graph/no_graph.onnx", m, 3, "holds no graph")


def shape_cases():
    m = copy_model()
    set_float_init(m, "conv.w", np.zeros((4, 2, 3, 3)))
    case("shape/conv_cin_mismatch.onnx", m, 3,
         "node 'conv0' \\(Conv\\): weight 'conv.w' expects 2 input channels, input 'input' has 3", cmd="compress")

    m = copy_model()
    set_float_init(m, "conv.w", np.zeros((4, 3, 9, 9)))
    attr_named(node_named(m, "conv0"), "kernel_shape").ints[:] = [9, 9]
    attr_named(node_named(m, "conv0"), "pads").ints[:] = [0, 0, 0, 0]
    case("shape/conv_kernel_too_big.onnx", m, 3, "node 'conv0' \\(Conv\\): window of 9 does not fit spatial size 8")

    m = copy_model()
    attr_named(node_named(m, "conv0"), "kernel_shape").ints[:] = [5, 5]
    case("shape/conv_kernel_shape_differs.onnx", m, 3, "kernel_shape 5 differs from weight 'conv.w'")

    m = copy_model()
    node_named(m, "conv0").attribute.append(helper.make_attribute("group", 0))
    case("shape/conv_group_zero.onnx", m, 3, "node 'conv0' \\(Conv\\): group 0 does not divide")

    m = copy_model()
    node_named(m, "conv0").attribute.append(helper.make_attribute("strides", [0, 1]))
    case("shape/conv_stride_zero.onnx", m, 3, "node 'conv0' \\(Conv\\): attribute strides value 0 out of range")

    m = copy_model()
    set_float_init(m, "fc.w", np.zeros((2, 5)))
    case("shape/gemm_mismatch.onnx", m, 3, "node 'fc0' \\(Gemm\\): A 'f' has 4 columns but B 'fc.w' has 5 rows",
         cmd="compress")

    m = copy_model()
    set_float_init(m, "fc.b", np.zeros(3))
    case("shape/gemm_bias_mismatch.onnx", m, 3, "node 'fc0' \\(Gemm\\): C 'fc.b' does not broadcast")

    m = copy_model()
    set_float_init(m, "bn.scale", np.ones(5))
    case("shape/bn_scale_mismatch.onnx", m, 3, "node 'bn0' \\(BatchNormalization\\): 'bn.scale' must have shape \\[4\\]")


def unsupported_cases():
    m = copy_model()
    m.graph.node.insert(3, helper.make_node("LSTM", ["r"], ["lstm_y"], name="lstm0", hidden_size=4))
    case("unsup/lstm.onnx", m, 4, "node 'lstm0' \\(LSTM\\): operator not supported")

    m = copy_model()
    m.graph.node.insert(3, helper.make_node("FancyOp", ["r"], ["fancy_y"], name="fancy0", domain="com.example"))
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    case("unsup/custom_domain.onnx", m, 4, "node 'fancy0' \\(FancyOp\\): operator domain 'com.example' is not supported",
         cmd="compress")

    m = copy_model()
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pad.pads")
    m.graph.initializer.append(pads)
    m.graph.node.insert(2, helper.make_node("Pad", ["n", "pad.pads"], ["padded"], name="pad0", mode="wrap"))
    node_named(m, "relu0").input[0] = "padded"
    case("unsup/pad_wrap.onnx", m, 4, "node 'pad0' \\(Pad\\): mode 'wrap' is not supported")

    m = copy_model()
    node_named(m, "conv0").attribute.append(helper.make_attribute("auto_pad", "BOGUS"))
    case("unsup/auto_pad_bogus.onnx", m, 3, "node 'conv0' \\(Conv\\): auto_pad 'BOGUS' is not one of")

    # attributes of another type than ONNX defines: refused at the node when loading
    m = copy_model()
    a = attr_named(node_named(m, "conv0"), "pads")
    a.CopyFrom(helper.make_attribute("pads", [1.0, 1.0, 1.0, 1.0]))
    case("graph/attr_pads_floats.onnx", m, 3, "node 'conv0' \\(Conv\\): attribute 'pads' has type FLOATS, ONNX defines it as INTS")
    m = copy_model()
    a = attr_named(node_named(m, "bn0"), "epsilon")
    a.CopyFrom(helper.make_attribute("epsilon", 1))
    case("graph/attr_epsilon_int.onnx", m, 3, "node 'bn0' \\(BatchNormalization\\): attribute 'epsilon' has type INT",
         cmd="compress")

    m = copy_model()
    node_named(m, "conv0").attribute.append(helper.make_attribute("frobnicate", 1))
    case("unsup/unknown_attribute.onnx", m, 4, "node 'conv0' \\(Conv\\): attribute 'frobnicate' is not supported")

    m = copy_model()
    n = node_named(m, "bn0")
    n.attribute.append(helper.make_attribute("training_mode", 1))
    case("unsup/bn_training_mode.onnx", m, 4, "node 'bn0' \\(BatchNormalization\\): training_mode=1")

    m = base_model(opset=3)
    case("unsup/opset_3.onnx", m, 4, "opset 3 is outside the supported")
    m = base_model(opset=99)
    case("unsup/opset_99.onnx", m, 4, "opset 99 is outside the supported", cmd="compress")
    m = base_model(ir_version=1)
    case("unsup/ir_version_1.onnx", m, 4, "ir_version 1 is outside the supported")
    m = base_model(ir_version=99)
    case("unsup/ir_version_99.onnx", m, 4, "ir_version 99 is outside the supported")

    m = copy_model()
    del m.opset_import[:]
    case("unsup/no_opset.onnx", m, 3, "no opset_import for the default ONNX domain")

    m = copy_model()
    m.graph.input[0].type.ClearField("tensor_type")
    m.graph.input[0].type.sequence_type.elem_type.tensor_type.elem_type = TensorProto.FLOAT
    case("unsup/sequence_input.onnx", m, 4, "value 'input': only tensor types are supported")

    # A supported op the channel tracer cannot see through: report works, and
    # compress leaves the channels reaching it whole instead of refusing.
    m = copy_model()
    m.graph.node.insert(3, helper.make_node("Transpose", ["r"], ["t"], name="tr0", perm=[0, 1, 3, 2]))
    node_named(m, "gap0").input[0] = "t"
    case("unsup/transpose_report_ok.onnx", m, 0, None)
    record("unsup/transpose_report_ok.onnx", 0, None, cmd="compress")


def escape_cases():
    evil = "\x1b]0;owned\x07\x1b[2J\rname\nnext line"
    m = copy_model()
    m.graph.node.insert(3, helper.make_node("LSTM", ["r"], ["lstm_y"], name=evil, hidden_size=4))
    case("escape/node_name.onnx", m, 4, "node '\\\\x1b\\]0;owned\\\\x07\\\\x1b\\[2J\\\\x0dname\\\\x0anext line' "
         "\\(LSTM\\): operator not supported")

    m = copy_model()
    node_named(m, "relu0").input[0] = "in\nput\x1b[31m"
    case("escape/value_name.onnx", m, 3, "input 'in\\\\x0aput\\\\x1b\\[31m' is not produced", cmd="compress")

    m = copy_model()
    node_named(m, "relu0").op_type = "Re\x1b[5mlu\x7f"
    case("escape/op_type.onnx", m, 4, "\\(Re\\\\x1b\\[5mlu\\\\x7f\\): operator not supported")

    # C1 controls encoded in UTF-8 (U+009B is CSI for some terminals).
    m = copy_model()
    node_named(m, "relu0").op_type = "Relu\u009b31m"
    case("escape/op_type_c1.onnx", m, 4, "\\(Relu\\\\xc2\\\\x9b31m\\): operator not supported")

    m = copy_model()
    n = node_named(m, "conv0")
    n.attribute.append(helper.make_attribute("auto_pad", "\x1b[31mX\n"))
    case("escape/attr_value.onnx", m, 3, "auto_pad '\\\\x1b\\[31mX\\\\x0a' is not one of")

    m = copy_model()
    node_named(m, "relu0").input[0] = "L" * 20000
    case("escape/long_name.onnx", m, 3, "node 'relu0' \\(Relu\\): input 'LLLL")

    m = copy_model()
    init_named(m, "conv.w").name = "w\x1b[1m"
    node_named(m, "conv0").input[1] = "w\x1b[1m"
    set_float_init(m, "w\x1b[1m", np.zeros((4, 2, 3, 3)))
    case("escape/init_name.onnx", m, 3, "weight 'w\\\\x1b\\[1m' expects 2 input channels")


def external_cases():
    """External data must stay inside the model's folder and inside the file."""
    def ext_model(location, offset=None, length=None):
        m = copy_model()
        t = init_named(m, "conv.b")
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        e = t.external_data.add()
        e.key, e.value = "location", location
        if offset is not None:
            e = t.external_data.add()
            e.key, e.value = "offset", str(offset)
        if length is not None:
            e = t.external_data.add()
            e.key, e.value = "length", str(length)
        return m

    ext = os.path.join(OUT, "ext")
    os.makedirs(ext, exist_ok=True)
    with open(os.path.join(OUT, "outside.bin"), "wb") as f:
        f.write(b"\x00" * 64)
    with open(os.path.join(ext, "weights.bin"), "wb") as f:
        f.write(np.arange(8, dtype=np.float32).tobytes())
    case("ext/ok.onnx", ext_model("weights.bin", 0, 16), 0, None)
    case("ext/ok_offset.onnx", ext_model("weights.bin", 16), 0, None, cmd="compress")
    case("ext/parent.onnx", ext_model("../outside.bin"), 3,
         "tensor 'conv.b': external data '../outside.bin' lies outside the model's folder")
    case("ext/absolute.onnx", ext_model("/etc/passwd"), 3, "external data path '/etc/passwd' is absolute")
    link = os.path.join(ext, "passwd_link")
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink("/etc/passwd", link)
    case("ext/symlink_out.onnx", ext_model("passwd_link"), 3, "external data 'passwd_link' lies outside the model's folder",
         cmd="compress")
    fifo = os.path.join(ext, "fifo.bin")
    if os.path.lexists(fifo):
        os.unlink(fifo)
    os.mkfifo(fifo)
    case("ext/fifo.onnx", ext_model("fifo.bin"), 3, "external data 'fifo.bin' is not a regular file")
    os.makedirs(os.path.join(ext, "subdir"), exist_ok=True)
    case("ext/directory.onnx", ext_model("subdir"), 3, "external data 'subdir' is not a regular file")
    case("ext/past_end.onnx", ext_model("weights.bin", 24), 3,
         "external data 'weights.bin' has 32 bytes, offset 24 \\+ length 16 runs past its end")
    case("ext/offset_huge.onnx", ext_model("weights.bin", (1 << 64) - 8), 3, "runs past its end")
    case("ext/offset_negative.onnx", ext_model("weights.bin", -8), 3, "external data offset is not a number")
    case("ext/length_wrong.onnx", ext_model("weights.bin", 0, 8), 3,
         "external data length 8 does not match its dims \\(16 bytes\\)")
    case("ext/missing.onnx", ext_model("nothere.bin"), 3, "external data file 'nothere.bin': No such file")
    case("ext/no_location.onnx", ext_model(""), 3, "external data without a location")
    m = ext_model("weights.bin", 0, 16)
    init_named(m, "conv.b").raw_data = np.zeros(4, np.float32).tobytes()
    case("ext/raw_and_external.onnx", m, 3,
         "initializer 'conv.b': holds its values twice \\(raw_data and an external data location\\)")
    # The model file itself is a FIFO: refused at once, never read (no hang).
    mfifo = os.path.join(OUT, "ext", "model_fifo.onnx")
    if os.path.lexists(mfifo):
        os.unlink(mfifo)
    os.mkfifo(mfifo)
    record("ext/model_fifo.onnx", 1, "model_fifo.onnx: not a regular file")
    os.makedirs(os.path.join(OUT, "ext", "model_dir.onnx"), exist_ok=True)
    record("ext/model_dir.onnx", 1, "model_dir.onnx: not a regular file")
    record("ext/does_not_exist.onnx", 1, "does_not_exist.onnx: cannot open: No such file")


def input_cases():
    # Two data inputs added together: report works at the declared shapes
    # (the batch stays as declared: batch-free rewriting needs one data input);
    # compress finds nothing to prune in the input-coupled stream but still works.
    m = copy_model()
    m.graph.input.append(helper.make_tensor_value_info("input2", TensorProto.FLOAT, [1, 3, 8, 8]))
    m.graph.node.insert(0, helper.make_node("Add", ["input", "input2"], ["sum"], name="add_in"))
    node_named(m, "conv0").input[0] = "sum"
    case("inputs/two_data_inputs.onnx", m, 0, None)
    record("inputs/two_data_inputs.onnx", 0, None, cmd="compress")
    # Old-style export listing initializers as graph inputs too: one data input.
    m = copy_model()
    for t in m.graph.initializer:
        m.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    case("inputs/inits_as_inputs.onnx", m, 0, None)
    # 2^23 declared channels: shapes need no memory (report works), but tracing
    # channel groups would need ~2 GB, so compress refuses before allocating.
    m = copy_model()
    del m.graph.node[:]
    m.graph.node.extend([helper.make_node("Relu", ["input"], ["r"], name="relu_wide"),
                         helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap_wide"),
                         helper.make_node("Flatten", ["p"], ["output"], name="flat_wide")])
    m.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 1 << 23
    m.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 1 << 23
    del m.graph.initializer[:]
    case("inputs/channels_2p23.onnx", m, 0, None)
    record("inputs/channels_2p23.onnx", 4, "more than 1048576 channels and features to trace", cmd="compress")
    # No data input at all: the graph computes from constants only.
    m = copy_model()
    del m.graph.input[:]
    case("inputs/no_data_input.onnx", m, 3, "input 'input' is not produced by any node, initializer or graph input")


def long_name_cases():
    """Names longer than the fixed buffers that unique names were once built in
    (truncation made every candidate equal: an endless loop)."""
    long_bias = "B" * 700
    rng = np.random.default_rng(1)
    nodes, inits = [], [numpy_helper.from_array(np.zeros(4, np.float32), long_bias)]
    x = "input"
    for i in range(3):
        inits.append(numpy_helper.from_array(rng.standard_normal((4, 4 if i else 3, 3, 3)).astype(np.float32), "w%d" % i))
        nodes.append(helper.make_node("Conv", [x, "w%d" % i, long_bias], ["c%d" % i], name="conv%d" % i,
                                      kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", ["c%d" % i], ["r%d" % i], name="relu%d" % i))
        x = "r%d" % i
    inits.append(numpy_helper.from_array(rng.standard_normal((2, 4)).astype(np.float32), "fc.w"))
    nodes += [helper.make_node("GlobalAveragePool", [x], ["p"], name="gap"),
              helper.make_node("Flatten", ["p"], ["f"], name="flat"),
              helper.make_node("Gemm", ["f", "fc.w"], ["output"], name="fc", transB=1)]
    g = helper.make_graph(nodes, "shared", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 2])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    case("names/long_shared_bias.onnx", m, 0, None, cmd="compress")

    # Three Reshapes share a long-named target that froze the export batch (2).
    long_shape = "S" * 700
    nodes = [helper.make_node("Reshape", ["input", long_shape], ["a"], name="reshape_a"),
             helper.make_node("Reshape", ["input", long_shape], ["b"], name="reshape_b"),
             helper.make_node("Reshape", ["input", long_shape], ["c"], name="reshape_c"),
             helper.make_node("Add", ["a", "b"], ["ab"], name="add_ab"),
             helper.make_node("Add", ["ab", "c"], ["output"], name="add")]
    g = helper.make_graph(nodes, "reshapes", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 3, 4, 4])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [2, 48])],
                          [numpy_helper.from_array(np.array([2, -1], np.int64), long_shape)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    case("names/long_shared_reshape_target.onnx", m, 0, None)


def int32_constant_cases():
    """Shape constants in int32 (ONNX says int64; the loader reads both): the
    rewriters once wrote int64 values into them, past the end of the data."""
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "wa"),
             numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "wb"),
             numpy_helper.from_array(np.array([0, 2, 0, 0, 0, 2, 0, 0], np.int32), "pads32"),
             numpy_helper.from_array(rng.standard_normal((2, 8)).astype(np.float32), "fc.w")]
    nodes = [helper.make_node("Conv", ["input", "wa"], ["a"], name="conv_a", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["ra"], name="relu_a"),
             helper.make_node("Pad", ["ra", "pads32"], ["p"], name="pad_channels"),
             helper.make_node("Conv", ["input", "wb"], ["b"], name="conv_b", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["p", "b"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["rs"], name="relu_s"),
             helper.make_node("GlobalAveragePool", ["rs"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fc.w"], ["output"], name="fc", transB=1)]
    g = helper.make_graph(nodes, "pad32", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 2])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    case("shape/pad_int32_pads.onnx", m, 0, None, cmd="compress")


def function_cases():
    """Model-local functions are inlined on load: a function calling itself,
    and calls of calls that double the nodes 30 times over."""
    mk = helper.make_node
    ops = [helper.make_opsetid("", 13), helper.make_opsetid("local", 1)]
    x = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])]
    y = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    loop = helper.make_function("local", "Loop", ["a"], ["b"], [mk("Loop", ["a"], ["b"], domain="local")], ops, [])
    g = helper.make_graph([mk("Loop", ["x"], ["y"], domain="local", name="forever")], "fn", x, y)
    case("function/recursive.onnx", helper.make_model(g, opset_imports=ops, functions=[loop]), 3,
         "node 'forever/.*' \\(Loop\\): function calls nest deeper than 32")
    fns = [helper.make_function("local", "F0", ["a"], ["b"], [mk("Relu", ["a"], ["b"])], ops, [])]
    for k in range(1, 31):
        fns.append(helper.make_function("local", f"F{k}", ["a"], ["b"],
                                        [mk(f"F{k - 1}", ["a"], ["t"], domain="local"),
                                         mk(f"F{k - 1}", ["t"], ["b"], domain="local")], ops, []))
    g = helper.make_graph([mk("F30", ["x"], ["y"], domain="local", name="bomb")], "fn", x, y)
    case("function/bomb.onnx", helper.make_model(g, opset_imports=ops, functions=fns), 3,
         "node 'bomb/.*': inlining the model's functions would make too many nodes")


def regress_cases():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regress")
    for name, runs in sorted(REGRESS.items()):
        src = os.path.join(here, name)
        dst = os.path.join(OUT, "regress", name)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
        for cmd, code, pattern in runs:
            record("regress/" + name, code, pattern, cmd)


def main():
    global OUT, BASE
    if len(sys.argv) != 2:
        sys.stderr.write("usage: gen_bad_models.py OUTDIR\n")
        return 2
    OUT = sys.argv[1]
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    BASE = base_model()
    onnx.checker.check_model(BASE)
    good = BASE.SerializeToString()
    case("good.onnx", good, 0, None)
    record("good.onnx", 0, None, cmd="compress")
    wire_cases(good)
    nesting_cases()
    tensor_cases()
    graph_cases()
    shape_cases()
    unsupported_cases()
    escape_cases()
    external_cases()
    input_cases()
    long_name_cases()
    int32_constant_cases()
    function_cases()
    regress_cases()
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(CASES, f, indent=1)
    with open(os.path.join(OUT, "cases.tsv"), "w") as f:
        for c in CASES:
            for field in (c["file"], c["pattern"] or ""):
                assert "\t" not in field and "\n" not in field, field
            f.write("%s\t%s\t%d\t%s\n" % (c["file"], c["cmd"], c["exit"], c["pattern"] or ""))
    print("gen_bad_models: %d cases in %s" % (len(CASES), OUT))
    return 0


BASE = None
if __name__ == "__main__":
    sys.exit(main())
