#!/bin/sh
# compress --epochs 0 on real PyTorch exports: onnx.checker, ONNX Runtime
# agreement of pruned and --keep-masked models, reports (tests/check_compress.py).
exec /usr/bin/python3 tests/check_compress.py
