#!/bin/sh
# Distillation loss and gradient against PyTorch, compress --distill end to end (tests/check_distill.py).
exec /usr/bin/python3 tests/check_distill.py
