#!/bin/sh
# Every CNN family users bring (tools/export_zoo.py), BN folded and kept,
# opsets 9-17, random and trained weights: report MACs = an independent count,
# run = ONNX Runtime, compress checker-clean with pruned = masked, or the
# expected refusal (tests/check_zoo.py); prints a family x outcome table.
exec /usr/bin/python3 tests/check_zoo.py
