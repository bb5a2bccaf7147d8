#!/bin/sh
# What a pipeline acts on, on the shipped Fashion-MNIST ResNet-20 and 100
# test images (compress --epochs 0 measures accuracy before and after without
# training, so each run takes well under a second):
# - a failed --max-accuracy-drop exits 5, writes no model (an existing OUT
#   and --keep-masked keep their bytes) and still writes --report-json, whose
#   "gate" says what was asked, what was measured and that it failed; a gate
#   met exits 0 with "passed": true;
# - a loss above 5 points without a gate prints one warning line;
# - report --json --paper-rate is one JSON object holding "paper_style";
# - --skip matching no layer is a usage error naming the pattern;
# - train/compress on data whose class count differs from the model's
#   outputs stop before training with exit 3 naming both counts.
BUILD=${BUILD:-build}
BIN=$BUILD/onnx-sfp
DIR=$BUILD/gates
MODEL=models/fmnist-resnet20.onnx
DATA=/usr/share/datasets/fashion-mnist
[ -x "$BIN" ] || { echo "e2e_gates: $BIN missing (run make)"; exit 1; }
[ -d "$DATA" ] || { echo "e2e_gates: $DATA missing (tools/install-deps.sh)"; exit 1; }
rm -rf "$DIR"
mkdir -p "$DIR"
ERR=$DIR/stderr.txt
OUT=$DIR/stdout.txt
checks=0
failed=0

check() { # MESSAGE CMD...
    msg=$1
    shift
    checks=$((checks + 1))
    "$@" || { failed=$((failed + 1)); echo "FAIL: $msg"; sed -n '1,4p' "$ERR" | sed 's/^/    stderr: /'; }
}

# runs BIN with the arguments; true when it exits with $want
exits() {
    want=$1
    shift
    "$BIN" "$@" >"$OUT" 2>"$ERR"
    got=$?
    [ "$got" -eq "$want" ] || { echo "    exit $got, expected $want"; return 1; }
}

json_has() { # FILE PYTHON-EXPRESSION over d
    /usr/bin/python3 -c "import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1"
}

MEASURE="--epochs 0 --data $DATA --limit 100"

# ---------------------------------------------------------------- the gate
printf 'keep me' >"$DIR/out.onnx"
printf 'keep me' >"$DIR/masked.onnx"
# shellcheck disable=SC2086
check "gate not met: exit 5" exits 5 compress "$MODEL" "$DIR/out.onnx" $MEASURE --rate 0.6 --max-accuracy-drop 1 \
    --keep-masked "$DIR/masked.onnx" --report-json "$DIR/gate.json"
check "gate not met: one error line naming the gate" grep -q "^onnx-sfp: error: --max-accuracy-drop 1: .*nothing written but the report" "$ERR"
check "gate not met: OUT and --keep-masked keep their bytes" test "$(cat "$DIR/out.onnx")$(cat "$DIR/masked.onnx")" = "keep mekeep me"
check "gate not met: the report says what was asked and measured" json_has "$DIR/gate.json" \
    'd["gate"]["max_accuracy_drop"] == 1 and d["gate"]["passed"] is False and d["accuracy_before"] > 0.8 and abs(d["gate"]["accuracy_drop"] - 100 * (d["accuracy_before"] - d["accuracy_after"])) < 1e-6'
# shellcheck disable=SC2086
check "gate met: exit 0" exits 0 compress "$MODEL" "$DIR/pass.onnx" $MEASURE --rate 0.6 --max-accuracy-drop 100 \
    --report-json "$DIR/pass.json"
check "gate met: OUT written" test -s "$DIR/pass.onnx"
check "gate met: \"passed\": true" json_has "$DIR/pass.json" 'd["gate"]["passed"] is True and d["gate"]["accuracy_drop"] > 5'
# shellcheck disable=SC2086
check "no gate: exit 0" exits 0 compress "$MODEL" "$DIR/nogate.onnx" $MEASURE --rate 0.6 --quiet --report-json "$DIR/nogate.json"
check "no gate: one warning line for the loss" test "$(grep -c '^onnx-sfp: warning: validation accuracy fell' "$ERR")" -eq 1
check "no gate: \"gate\": null" json_has "$DIR/nogate.json" 'd["gate"] is None'
# shellcheck disable=SC2086
check "small loss, no gate: no warning" exits 0 compress "$MODEL" "$DIR/small.onnx" $MEASURE --rate 0.05 --quiet
check "small loss, no gate: stderr empty" test ! -s "$ERR"

# ---------------------------------------------------------------- report --json --paper-rate
check "report --json --paper-rate: exit 0" exits 0 report "$MODEL" "$DIR/pass.onnx" --json --paper-rate 0.4
check "report --json --paper-rate: stdout is one JSON object with paper_style per model" json_has "$OUT" \
    'all(m["paper_style"]["rate"] == 0.4 and 0 < m["paper_style"]["macs"] < m["total"]["macs"] for m in d["models"])'

# ---------------------------------------------------------------- --skip
check "--skip matching nothing: exit 2" exits 2 compress "$MODEL" "$DIR/skip.onnx" --epochs 0 --skip 'nomatch*'
check "--skip matching nothing: the pattern is named" grep -q "^onnx-sfp: error: --skip 'nomatch\*' matches no" "$ERR"
check "--skip matching a layer: exit 0" exits 0 compress "$MODEL" "$DIR/skip.onnx" --epochs 0 --skip '*conv2' --quiet

# ---------------------------------------------------------------- class counts
"$BIN" init resnet20 "$DIR/k4.onnx" --input 1x28x28 --classes 4 --quiet
"$BIN" init resnet20 "$DIR/k12.onnx" --input 1x28x28 --classes 12 --quiet
check "train: 10 classes of data, 4 outputs: exit 3" exits 3 train "$DIR/k4.onnx" "$DIR/k.onnx" --data "$DATA" --epochs 1 --limit 64
check "train: both counts named" grep -q "the data has 10 classes, the model .*k4.onnx has 4 outputs" "$ERR"
check "compress: 10 classes of data, 12 outputs: exit 3" exits 3 compress "$DIR/k12.onnx" "$DIR/k.onnx" --data "$DATA" --epochs 1 --limit 64
check "compress: both counts named" grep -q "the data has 10 classes, the model .*k12.onnx has 12 outputs" "$ERR"
# shellcheck disable=SC2086
check "compress --epochs 0 measuring: exit 3" exits 3 compress "$DIR/k12.onnx" "$DIR/k.onnx" $MEASURE
check "nothing written by the refused runs" test ! -e "$DIR/k.onnx"

echo "e2e_gates: $checks checks, $((checks - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
