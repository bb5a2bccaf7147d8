#!/bin/sh
# onnx-sfp eval against ONNX Runtime + numpy on Fashion-MNIST (tests/check_eval.py).
exec /usr/bin/python3 tests/check_eval.py
