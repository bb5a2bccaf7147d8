#!/bin/sh
# onnx-sfp detect against ONNX Runtime on generated defect images: classes, confidences,
# scores, the HTML page and bad input (tests/check_detect.py).
exec /usr/bin/python3 tests/check_detect.py
