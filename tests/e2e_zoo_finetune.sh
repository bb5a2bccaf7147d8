#!/bin/sh
# compress --data on the export zoo's MobileNetV2, fused and BN kept
# (tests/check_zoo_finetune.py).
exec /usr/bin/python3 tests/check_zoo_finetune.py
