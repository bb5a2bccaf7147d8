#!/bin/sh
# tools/gen_defects.py: deterministic bytes per seed, layout, PNG format, usage errors, speed
# (tests/check_gen_defects.py).
exec /usr/bin/python3 tests/check_gen_defects.py
