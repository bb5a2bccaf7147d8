#!/bin/sh
# ConvTranspose, Resize and LayerNormalization in a PyTorch export: report
# and compress without fine-tuning work from shapes alone, run and
# fine-tuning refuse the op they cannot run (tests/check_shape_only.py).
exec /usr/bin/python3 tests/check_shape_only.py
