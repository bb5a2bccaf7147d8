#!/bin/sh
# onnx-sfp train: convergence, metadata, resume after SIGINT, divergence (tests/check_train.py).
exec /usr/bin/python3 tests/check_train.py
