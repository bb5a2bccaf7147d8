#!/bin/sh
# Every JSON output against its definition in docs/json-schemas.json (tests/check_json_schemas.py).
exec /usr/bin/python3 tests/check_json_schemas.py
