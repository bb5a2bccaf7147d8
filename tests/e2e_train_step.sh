#!/bin/sh
# Two SGD steps of the training runtime against PyTorch on ResNet-20 exports
# (both shortcut styles, BN fused and not): tests/check_train_step.py runs
# tools/torch_step.py and tests/test_train_step with SFP_TRAIN_STEP_DIR set.
exec /usr/bin/python3 tests/check_train_step.py
