#!/bin/sh
# A ResNet trained a few steps in PyTorch, exported with BN kept and folded:
# run = ONNX Runtime, eval = PyTorch at 1 and 2 threads, train writes the
# function it trained (tests/check_trained_bn.py).
exec /usr/bin/python3 tests/check_trained_bn.py
