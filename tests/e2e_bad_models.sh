#!/bin/sh
# Hostile-input corpus (tests/bad/gen_bad_models.py): every broken model must
# give the expected exit status and exactly one stderr line
# "onnx-sfp: error: ..." matching the case's pattern, with no raw control
# bytes, naming the file, no signal, and (compress) no output or temporary
# file left behind.
# Runs each case under a 2 GB address-space limit (VLIMIT_KB; "unlimited" for
# an ASan build, whose shadow memory needs more) and a 10 s timeout.
BUILD=${BUILD:-build}
VLIMIT_KB=${VLIMIT_KB:-2000000}
case "$BUILD" in *asan*) VLIMIT_KB=unlimited ;; esac
BIN=$BUILD/onnx-sfp
DIR=$BUILD/bad
[ -x "$BIN" ] || { echo "e2e_bad_models: $BIN missing (run make)"; exit 1; }
/usr/bin/python3 tests/bad/gen_bad_models.py "$DIR" >/dev/null || { echo "e2e_bad_models: generator failed"; exit 1; }

OUTDIR=$DIR/out
mkdir -p "$OUTDIR"
ERR=$DIR/stderr.txt
TAB=$(printf '\t')
n=0
passed=0
failed=0

fail() {
    failed=$((failed + 1))
    echo "FAIL $file ($cmd): $*"
    sed -n '1,5p' "$ERR" | cat -v | sed 's/^/    stderr: /'
}

while IFS="$TAB" read -r file cmd want pattern; do
    n=$((n + 1))
    out=$OUTDIR/case$n.onnx
    rm -f "$out" "$out".tmp.*
    if [ "$cmd" = compress ]; then
        set -- compress "$DIR/$file" "$out" --epochs 0 --quiet
    else
        set -- report "$DIR/$file"
    fi
    (ulimit -v "$VLIMIT_KB"; ulimit -c 0; exec timeout 10 "$BIN" "$@") >/dev/null 2>"$ERR"
    got=$?
    if [ "$got" -ne "$want" ]; then
        if [ "$got" -eq 124 ]; then fail "timed out (hang?)"
        elif [ "$got" -gt 128 ]; then fail "killed by signal $((got - 128))"
        else fail "exit $got, expected $want"; fi
        continue
    fi
    lines=$(wc -l <"$ERR")
    if [ "$want" -eq 0 ]; then
        if grep -q 'error' "$ERR"; then fail "exit 0 but an error line"; continue; fi
    else
        if [ "$lines" -ne 1 ] || [ "$(wc -c <"$ERR")" -ne "$(head -n 1 "$ERR" | wc -c)" ]; then
            fail "stderr is not exactly one line ($lines lines)"; continue
        fi
        if ! grep -q '^onnx-sfp: error: ' "$ERR"; then fail "stderr does not start with 'onnx-sfp: error: '"; continue; fi
        if ! grep -Eq -- "$pattern" "$ERR"; then fail "stderr does not match /$pattern/"; continue; fi
        if ! grep -Fq -- "$DIR/$file" "$ERR"; then fail "the error line does not name the file"; continue; fi
    fi
    # No raw control bytes (C0, DEL) nor UTF-8-encoded C1 controls.
    if tr -d '\n' <"$ERR" | LC_ALL=C grep -q '[[:cntrl:]]' ||
        LC_ALL=C grep -q "$(printf '\302')[$(printf '\200')-$(printf '\237')]" "$ERR"; then
        fail "raw control bytes in stderr"; continue
    fi
    if [ "$cmd" = compress ]; then
        if [ "$want" -ne 0 ] && [ -e "$out" ]; then fail "output written although it failed"; continue; fi
        if ls "$out".tmp.* >/dev/null 2>&1; then fail "temporary file left behind"; continue; fi
    fi
    passed=$((passed + 1))
done <"$DIR/cases.tsv"
rm -rf "$OUTDIR"
echo "e2e_bad_models: $n cases, $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$n" -ge 45 ]
