#!/bin/sh
# Hostile and broken data sets (tests/bad_data/gen_bad_data.py) through
# `onnx-sfp eval MODEL --data BAD` on a ResNet-8 for 1x28x28 images and 10
# classes: each must give its expected exit status and, when it fails,
# exactly one stderr line "onnx-sfp: error: ..." matching the case's pattern
# and naming the file, with no raw control bytes and no signal.
# Each case runs under a 2 GB address-space limit (VLIMIT_KB; "unlimited"
# for an ASan build, whose shadow memory needs more), so an allocation the
# files do not justify (the 3 GiB gzip bomb) fails the case, and a 20 s timeout.
. tests/bad_input.sh
DIR=$BUILD/bad_data
[ -x "$BIN" ] || { echo "e2e_bad_data: $BIN missing (run make)"; exit 1; }
/usr/bin/python3 tests/bad_data/gen_bad_data.py "$DIR/cases" >/dev/null || { echo "e2e_bad_data: generator failed"; exit 1; }
MODEL=$DIR/resnet8.onnx
"$BIN" init resnet8 "$MODEL" --input 1x28x28 --classes 10 --quiet || { echo "e2e_bad_data: init failed"; exit 1; }

ERR=$DIR/stderr.txt
while IFS="$TAB" read -r name data want pattern named; do
    n=$((n + 1))
    run_limited "$VLIMIT_KB" 20 "$BIN" eval "$MODEL" --data "$DIR/cases/$data" --quiet
    problem=$(status_problem "$want")
    if [ -z "$problem" ] && [ "$want" -eq 0 ]; then
        if [ -s "$ERR" ]; then problem="exit 0 but stderr is not empty"; fi
    elif [ -z "$problem" ]; then
        problem=$(error_line_problem "$pattern" "$DIR/cases/$named")
        [ -n "$problem" ] || problem=$(control_bytes_problem)
    fi
    if [ -n "$problem" ]; then fail "$name ($data)" "$problem"; continue; fi
    passed=$((passed + 1))
done <"$DIR/cases/cases.tsv"
echo "e2e_bad_data: $n cases, $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$n" -ge 50 ]
