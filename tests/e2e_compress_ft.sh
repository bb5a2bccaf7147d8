#!/bin/sh
# compress --epochs N: each pruning method while fine-tuning on a Fashion-MNIST
# subset, the --max-accuracy-drop gate, SIGINT and --resume
# (tests/check_compress_ft.py).
exec /usr/bin/python3 tests/check_compress_ft.py
