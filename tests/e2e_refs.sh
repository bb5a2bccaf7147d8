#!/bin/sh
# Round trip and report counts on real PyTorch exports, checked by onnx.checker,
# ONNX Runtime and PyTorch forward hooks (tests/check_refs.py).
exec /usr/bin/python3 tests/check_refs.py
