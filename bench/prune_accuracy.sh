#!/bin/sh
# Benchmark (issue 6): test accuracy after pruning while fine-tuning, per
# method and rate, beside PyTorch's SFP on the same starting weights, data,
# channel groups and budget (tools/torch_sfp.py).
#
# For each rate in RATES and each method in METHODS:
#   onnx-sfp compress MODEL OUT --data DATA --val-split 0 --epochs EPOCHS
#       --rate R --method M --lr LR --batch 128 --seed SEED [--limit LIMIT]
#   onnx-sfp eval OUT on the 10,000 test images
# and tools/torch_sfp.py with the groups of `report MODEL --groups --json`.
# Prints one row per run: test accuracy before and after, the change in
# points, MAC and parameter reduction counted on the emitted graph (the
# PyTorch run masks the same channels, so its reductions are the same), and
# the training seconds.
#
#   sh bench/prune_accuracy.sh
#   env: MODEL=models/fmnist-resnet20.onnx (or models/fmnist-resnet56.onnx;
#        both made by `models/build.sh`) EPOCHS=1 LIMIT=N (first N training
#        images; unset: all 60,000) RATES="0.3 0.4 0.6" METHODS="sfp smooth
#        hybrid" LR=0.01 SEED=1 THREADS=2 TORCH=1 (0: skip PyTorch)
#        DATA=/usr/share/datasets/fashion-mnist BUILD=build
#        OUT=$BUILD/bench/prune-accuracy/<model>-e<EPOCHS>-s<SEED> (files)
# A full ResNet-20 run (60,000 images, 1 epoch, 9 onnx-sfp + 3 PyTorch runs)
# took 43 min with THREADS=1 while another job had the other core; one
# ResNet-56 rate (3 onnx-sfp + 1 PyTorch run) about 65 min, three of them
# side by side on 2 cores (RATES=R OUT=DIR each, THREADS=1).
# `make bench` runs it only with PRUNE=1.
set -eu
BUILD=${BUILD:-build}
MODEL=${MODEL:-models/fmnist-resnet20.onnx}
EPOCHS=${EPOCHS:-1}
LIMIT=${LIMIT:-}
RATES=${RATES:-0.3 0.4 0.6}
METHODS=${METHODS:-sfp smooth hybrid}
LR=${LR:-0.01}
THREADS=${THREADS:-2}
TORCH=${TORCH:-1}
SEED=${SEED:-1}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
SFP=$BUILD/onnx-sfp
OUT=${OUT:-$BUILD/bench/prune-accuracy/$(basename "$MODEL" .onnx)-e$EPOCHS-s$SEED}
mkdir -p "$OUT"
# word splitting of $limit_opt is wanted: nothing, or "--limit N"
limit_opt=${LIMIT:+--limit $LIMIT}
py() { /usr/bin/python3 -c "$@"; }

"$SFP" report "$MODEL" --groups --json >"$OUT/groups.json"
before=$("$SFP" eval "$MODEL" --data "$DATA" --json --quiet --threads "$THREADS" |
         py 'import json,sys; print(json.load(sys.stdin)["accuracy"])')
echo "model $MODEL, $EPOCHS epochs of fine-tuning on ${LIMIT:-all} training images, lr $LR cosine, batch 128, seed $SEED;"
echo "test accuracy on the 10,000 test images; reductions counted on the emitted graph"
printf "%-5s %-15s %9s %9s %8s %8s %8s %9s\n" rate method before after points "MACs-%" "params-%" seconds
for rate in $RATES; do
    for method in $METHODS; do
        out=$OUT/$method-$rate.onnx
        start=$(date +%s)
        # shellcheck disable=SC2086
        if ! "$SFP" compress "$MODEL" "$out" --data "$DATA" --val-split 0 --epochs "$EPOCHS" --rate "$rate" \
            --method "$method" --lr "$LR" --batch 128 --seed "$SEED" --threads "$THREADS" $limit_opt \
            --report-json "$OUT/$method-$rate.json" --quiet >"$OUT/$method-$rate.log" 2>&1; then
            echo "prune_accuracy: compress --method $method --rate $rate failed:" >&2
            cat "$OUT/$method-$rate.log" >&2
            exit 1
        fi
        seconds=$(($(date +%s) - start))
        after=$("$SFP" eval "$out" --data "$DATA" --json --quiet --threads "$THREADS" |
                py 'import json,sys; print(json.load(sys.stdin)["accuracy"])')
        py 'import json,sys
r = json.load(open(sys.argv[1]))["reduction"]
b, a = float(sys.argv[4]), float(sys.argv[5])
print("%-5s %-15s %8.2f%% %8.2f%% %+8.2f %7.2f%% %7.2f%% %9s" % (sys.argv[2], sys.argv[3], 100 * b, 100 * a,
      100 * (a - b), 100 * r["macs"], 100 * r["params"], sys.argv[6]))' \
            "$OUT/$method-$rate.json" "$rate" "$method" "$before" "$after" "$seconds"
    done
    if [ "$TORCH" = 1 ]; then
        # shellcheck disable=SC2086
        if ! /usr/bin/python3 tools/torch_sfp.py "$MODEL" --groups "$OUT/groups.json" --rate "$rate" --data "$DATA" \
            --epochs "$EPOCHS" --lr "$LR" --batch 128 --seed "$SEED" --threads "$THREADS" $limit_opt \
            >"$OUT/torch-$rate.json" 2>"$OUT/torch-$rate.log"; then
            echo "prune_accuracy: tools/torch_sfp.py --rate $rate failed:" >&2
            cat "$OUT/torch-$rate.log" >&2
            exit 1
        fi
        py 'import json,os,sys
t = json.load(open(sys.argv[1]))
b, a = t["test_accuracy_before"], t["test_accuracy_after"]
red = "%8s %8s" % ("(same)", "(same)")
if os.path.exists(sys.argv[2]):  # the same channels as onnx-sfp sfp: the same emitted graph
    r = json.load(open(sys.argv[2]))["reduction"]
    red = "%7.2f%% %7.2f%%" % (100 * r["macs"], 100 * r["params"])
print("%-5s %-15s %8.2f%% %8.2f%% %+8.2f %s %9.0f" % (sys.argv[3], "sfp (PyTorch)", 100 * b, 100 * a,
      100 * (a - b), red, t["seconds"]))' "$OUT/torch-$rate.json" "$OUT/sfp-$rate.json" "$rate"
    fi
done
