#!/bin/sh
# Inputs with symbolic C/H/W and --input-shape (tests/check_input_shape.py).
exec /usr/bin/python3 tests/check_input_shape.py
