#!/bin/sh
# report --groups --json lists exactly the rows compress zeroes
# (tests/check_groups_json.py).
exec /usr/bin/python3 tests/check_groups_json.py
