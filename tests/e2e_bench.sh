#!/bin/sh
# onnx-sfp bench: JSON contract, MACs/params and reduction as report's, speed-up ratios, --data on
# generated images, bad input (tests/check_bench.py).
exec /usr/bin/python3 tests/check_bench.py
