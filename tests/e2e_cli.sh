#!/bin/sh
# run with NumPy .npy files, repeated --input, options before the command, "did you mean" (tests/check_cli.py).
exec /usr/bin/python3 tests/check_cli.py
