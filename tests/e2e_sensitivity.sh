#!/bin/sh
# onnx-sfp sensitivity against ONNX Runtime on the pruned models (tests/check_sensitivity.py).
exec /usr/bin/python3 tests/check_sensitivity.py
