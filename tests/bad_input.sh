#!/bin/sh
# Sourced by tests/e2e_bad_models.sh and tests/e2e_bad_data.sh: case counters,
# how a run on hostile input is confined, and the checks of what it wrote on
# "$ERR" (set by the script).

# The build under test, and a 2 GB address-space limit per run ("unlimited"
# for an ASan build, whose shadow memory needs more).
BUILD=${BUILD:-build}
BIN=$BUILD/onnx-sfp
VLIMIT_KB=${VLIMIT_KB:-2000000}
case "$BUILD" in *asan*) VLIMIT_KB=unlimited ;; esac

TAB=$(printf '\t')
n=0
passed=0
failed=0

# fail CASE PROBLEM: counts a failed case and shows it with the start of $ERR.
fail() {
    failed=$((failed + 1))
    echo "FAIL $1: $2"
    sed -n '1,5p' "$ERR" | cat -v | sed 's/^/    stderr: /'
}

# run_limited KB SECONDS CMD...: CMD under an address-space limit of KB (or
# "unlimited"), without core files, killed after SECONDS; stdout discarded,
# stderr to $ERR. Sets $got to the exit status.
run_limited() {
    kb=$1 secs=$2
    shift 2
    (ulimit -v "$kb"; ulimit -c 0; exec timeout "$secs" "$@") >/dev/null 2>"$ERR"
    got=$?
}

# status_problem WANT: why $got is not WANT (a hang, a signal, another
# status); nothing when it is.
status_problem() {
    [ "$got" -eq "$1" ] && return 0
    if [ "$got" -eq 124 ]; then echo "timed out (hang?)"
    elif [ "$got" -gt 128 ]; then echo "killed by signal $((got - 128))"
    else echo "exit $got, expected $1"; fi
}

# error_line_problem PATTERN NAMED: why $ERR is not exactly one line
# "onnx-sfp: error: ..." matching the extended regex PATTERN and naming the
# path NAMED; nothing when it is.
error_line_problem() {
    lines=$(wc -l <"$ERR")
    if [ "$lines" -ne 1 ] || [ "$(wc -c <"$ERR")" -ne "$(head -n 1 "$ERR" | wc -c)" ]; then
        echo "stderr is not exactly one line ($lines lines)"
    elif ! grep -q '^onnx-sfp: error: ' "$ERR"; then echo "stderr does not start with 'onnx-sfp: error: '"
    elif ! grep -Eq -- "$1" "$ERR"; then echo "stderr does not match /$1/"
    elif ! grep -Fq -- "$2" "$ERR"; then echo "the error line does not name $2"
    fi
}

# control_bytes_problem: raw control bytes (C0, DEL, UTF-8-encoded C1) in
# $ERR, which a name taken from a file could use to forge terminal output.
control_bytes_problem() {
    if tr -d '\n' <"$ERR" | LC_ALL=C grep -q '[[:cntrl:]]' ||
        LC_ALL=C grep -q "$(printf '\302')[$(printf '\200')-$(printf '\237')]" "$ERR"; then
        echo "raw control bytes in stderr"
    fi
}
