#!/bin/sh
# Hostile-input corpus (tests/bad/gen_bad_models.py): every broken model must
# give the expected exit status and exactly one stderr line
# "onnx-sfp: error: ..." matching the case's pattern, with no raw control
# bytes, naming the file, no signal, and (compress) no output or temporary
# file left behind.
# Runs each case under a 2 GB address-space limit (VLIMIT_KB; "unlimited" for
# an ASan build, whose shadow memory needs more) and a 10 s timeout.
. tests/bad_input.sh
DIR=$BUILD/bad
[ -x "$BIN" ] || { echo "e2e_bad_models: $BIN missing (run make)"; exit 1; }
/usr/bin/python3 tests/bad/gen_bad_models.py "$DIR" >/dev/null || { echo "e2e_bad_models: generator failed"; exit 1; }

OUTDIR=$DIR/out
mkdir -p "$OUTDIR"
ERR=$DIR/stderr.txt
while IFS="$TAB" read -r file cmd want pattern; do
    n=$((n + 1))
    out=$OUTDIR/case$n.onnx
    rm -f "$out" "$out".tmp.*
    if [ "$cmd" = compress ]; then
        set -- compress "$DIR/$file" "$out" --epochs 0 --quiet
    else
        set -- report "$DIR/$file"
    fi
    run_limited "$VLIMIT_KB" 10 "$BIN" "$@"
    problem=$(status_problem "$want")
    if [ -z "$problem" ] && [ "$want" -eq 0 ]; then
        if grep -q 'error' "$ERR"; then problem="exit 0 but an error line"; fi
    elif [ -z "$problem" ]; then
        problem=$(error_line_problem "$pattern" "$DIR/$file")
    fi
    [ -n "$problem" ] || problem=$(control_bytes_problem)
    if [ -n "$problem" ]; then fail "$file ($cmd)" "$problem"; continue; fi
    if [ "$cmd" = compress ]; then
        if [ "$want" -ne 0 ] && [ -e "$out" ]; then fail "$file ($cmd)" "output written although it failed"; continue; fi
        if ls "$out".tmp.* >/dev/null 2>&1; then fail "$file ($cmd)" "temporary file left behind"; continue; fi
    fi
    passed=$((passed + 1))
done <"$DIR/cases.tsv"
rm -rf "$OUTDIR"
echo "e2e_bad_models: $n cases, $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$n" -ge 45 ]
