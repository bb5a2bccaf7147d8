#!/bin/sh
# Runs every CMocka test binary given as arguments, then every end-to-end
# script tests/e2e_*.sh (or those named in E2E, e.g. E2E="faults run"), and
# ends with each suite's wall time (slowest first) and one summary line.
# Exit 1 if anything failed.
BUILD=${BUILD:-build}
export BUILD
passed=0
failed=0
failed_names=""
times=$(mktemp)
trap 'rm -f "$times"' EXIT
trap 'exit 130' INT TERM
now() { date +%s.%N; }

# suite NAME CMD...: runs one suite, counts it, records its time.
suite() {
    name=$1
    shift
    t0=$(now)
    if "$@"; then
        passed=$((passed + 1))
        result=ok
    else
        failed=$((failed + 1))
        failed_names="$failed_names $name"
        result=FAILED
    fi
    echo "$(now) $t0 $name $result" >>"$times"
}

for t in "$@"; do
    suite "$(basename "$t")" "$t"
done
if [ -n "${E2E:-}" ]; then
    scripts=$(for n in $E2E; do echo "tests/e2e_$n.sh"; done)
else
    scripts=$(ls tests/e2e_*.sh)
fi
for s in $scripts; do
    [ -f "$s" ] || { echo "run-all: $s missing"; failed=$((failed + 1)); continue; }
    name=$(basename "$s" .sh)
    echo "[ RUN      ] $name"
    suite "$name" sh "$s"
    [ "$result" = ok ] && echo "[       OK ] $name" || echo "[  FAILED  ] $name"
done
echo "==== suite times (wall seconds, slowest first)"
awk '{printf "%8.1f  %s%s\n", $1 - $2, $3, $4 == "ok" ? "" : "  (FAILED)"}' "$times" | sort -rn
echo "==== test summary: $passed suites passed, $failed failed${failed_names:+ (}${failed_names# }${failed_names:+)}"
[ "$failed" -eq 0 ]
