#!/bin/sh
# onnx-sfp run on real PyTorch exports against PyTorch's outputs, at the export
# batch and at 3x it (tests/check_run.py).
exec /usr/bin/python3 tests/check_run.py
