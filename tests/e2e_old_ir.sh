#!/bin/sh
# IR version 3 models through compress: onnx.checker and ONNX Runtime on the
# outputs (tests/check_old_ir.py).
exec /usr/bin/python3 tests/check_old_ir.py
