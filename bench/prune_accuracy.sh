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
#        VARIANTS="plain" (also: distill, global, global+distill: compress
#        --distill and/or --global; DISTILL_OPTS="--distill-weight 0.5
#        --temperature 4") BUDGET=rate (flops: each value of RATES is a
#        --flops MAC target instead, for every variant; PyTorch then uses the
#        uniform rate the plain sfp run chose, so plain sfp must be in the set)
#        NICE=0 (>0: run every process under `nice -n NICE`)
# A rate of 0 in RATES (BUDGET=rate, METHODS=sfp) fine-tunes the unpruned
# model on the same budget, here and in PyTorch: the accuracy a pruned run
# has to be compared with when the input model is not trained to the end.
# The long-budget table (ResNet-20 and ResNet-56, all 60,000 images, 10
# epochs, at least 50 % fewer MACs, every method with and without
# distillation, uniform and global, beside PyTorch SFP):
#   MODEL=models/fmnist-resnet56.onnx EPOCHS=10 BUDGET=flops RATES=0.5 \
#     VARIANTS="plain distill global global+distill" sh bench/prune_accuracy.sh
# (about 12x the 1-epoch time per row: many CPU-hours on 2 cores).
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
VARIANTS=${VARIANTS:-plain}
DISTILL_OPTS=${DISTILL_OPTS:---distill-weight 0.5 --temperature 4}
BUDGET=${BUDGET:-rate}
NICE=${NICE:-0}
[ "$BUDGET" = rate ] || [ "$BUDGET" = flops ] || { echo "prune_accuracy: BUDGET must be rate or flops" >&2; exit 2; }
nice_cmd() { if [ "$NICE" -gt 0 ]; then nice -n "$NICE" "$@"; else "$@"; fi; }
variant_opts() {
    case $1 in
        plain) echo "" ;;
        distill) echo "--distill $DISTILL_OPTS" ;;
        global) echo "--global" ;;
        global+distill) echo "--global --distill $DISTILL_OPTS" ;;
        *) echo "prune_accuracy: unknown variant $1" >&2; exit 2 ;;
    esac
}
OUT=${OUT:-$BUILD/bench/prune-accuracy/$(basename "$MODEL" .onnx)-e$EPOCHS-s$SEED}
mkdir -p "$OUT"
# word splitting of $limit_opt is wanted: nothing, or "--limit N"
limit_opt=${LIMIT:+--limit $LIMIT}
py() { /usr/bin/python3 -c "$@"; }

"$SFP" report "$MODEL" --groups --json >"$OUT/groups.json"
before=$(nice_cmd "$SFP" eval "$MODEL" --data "$DATA" --json --quiet --threads "$THREADS" |
         py 'import json,sys; print(json.load(sys.stdin)["accuracy"])')
echo "model $MODEL, $EPOCHS epochs of fine-tuning on ${LIMIT:-all} training images, lr $LR cosine, batch 128, seed $SEED;"
echo "test accuracy on the 10,000 test images; reductions counted on the emitted graph; budget: --$BUDGET"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-5s %-22s %9s %9s %8s %8s %8s %9s\n" rate method before after points "MACs-%" "params-%" seconds
for rate in $RATES; do
    for variant in $VARIANTS; do
    for method in $METHODS; do
        tag=$method-$variant
        [ "$variant" = plain ] && tag=$method
        out=$OUT/$tag-$rate.onnx
        start=$(date +%s)
        # shellcheck disable=SC2086
        if ! nice_cmd "$SFP" compress "$MODEL" "$out" --data "$DATA" --val-split 0 --epochs "$EPOCHS" --"$BUDGET" "$rate" \
            --method "$method" --lr "$LR" --batch 128 --seed "$SEED" --threads "$THREADS" $limit_opt \
            $(variant_opts "$variant") --report-json "$OUT/$tag-$rate.json" --quiet >"$OUT/$tag-$rate.log" 2>&1; then
            echo "prune_accuracy: compress --method $method --$BUDGET $rate ($variant) failed:" >&2
            cat "$OUT/$tag-$rate.log" >&2
            exit 1
        fi
        seconds=$(($(date +%s) - start))
        after=$(nice_cmd "$SFP" eval "$out" --data "$DATA" --json --quiet --threads "$THREADS" |
                py 'import json,sys; print(json.load(sys.stdin)["accuracy"])')
        py 'import json,sys
r = json.load(open(sys.argv[1]))["reduction"]
b, a = float(sys.argv[4]), float(sys.argv[5])
print("%-5s %-22s %8.2f%% %8.2f%% %+8.2f %7.2f%% %7.2f%% %9s" % (sys.argv[2], sys.argv[3], 100 * b, 100 * a,
      100 * (a - b), 100 * r["macs"], 100 * r["params"], sys.argv[6]))' \
            "$OUT/$tag-$rate.json" "$rate" "$tag" "$before" "$after" "$seconds"
    done
    done
    if [ "$TORCH" = 1 ]; then
        torch_rate=$rate
        if [ "$BUDGET" = flops ]; then  # the uniform rate the plain sfp run chose for this MAC target
            torch_rate=$(py 'import json,sys; print(json.load(open(sys.argv[1]))["rate"])' "$OUT/sfp-$rate.json")
        fi
        # shellcheck disable=SC2086
        if ! nice_cmd /usr/bin/python3 tools/torch_sfp.py "$MODEL" --groups "$OUT/groups.json" --rate "$torch_rate" --data "$DATA" \
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
print("%-5s %-22s %8.2f%% %8.2f%% %+8.2f %s %9.0f" % (sys.argv[3], "sfp (PyTorch)", 100 * b, 100 * a,
      100 * (a - b), red, t["seconds"]))' "$OUT/torch-$rate.json" "$OUT/sfp-$rate.json" "$rate"
    fi
done
