#!/bin/sh
# Runs every CMocka test binary given as arguments, then every end-to-end
# script tests/e2e_*.sh, and ends with one summary line. Exit 1 if anything failed.
BUILD=${BUILD:-build}
export BUILD
passed=0
failed=0
failed_names=""
for t in "$@"; do
    name=$(basename "$t")
    if "$t"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failed_names="$failed_names $name"
    fi
done
for s in tests/e2e_*.sh; do
    [ -f "$s" ] || continue
    name=$(basename "$s" .sh)
    echo "[ RUN      ] $name"
    if sh "$s"; then
        echo "[       OK ] $name"
        passed=$((passed + 1))
    else
        echo "[  FAILED  ] $name"
        failed=$((failed + 1))
        failed_names="$failed_names $name"
    fi
done
echo "==== test summary: $passed suites passed, $failed failed${failed_names:+ (}${failed_names# }${failed_names:+)}"
[ "$failed" -eq 0 ]
