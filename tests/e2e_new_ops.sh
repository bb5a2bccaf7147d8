#!/bin/sh
# The mobile-network ops (Clip, LeakyRelu, HardSigmoid, HardSwish, ReduceMean,
# Split, Pad reflect/edge) on PyTorch exports and one-node models: run vs
# ONNX Runtime and PyTorch, compress pruned vs --keep-masked in ONNX Runtime,
# onnx.checker (tests/check_new_ops.py).
exec /usr/bin/python3 tests/check_new_ops.py
