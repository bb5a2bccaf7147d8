#!/bin/sh
# Benchmark (issue 4, the fused-BN decision): the same network fine-tuned in
# three ways. The shipped Fashion-MNIST ResNet-20 (BatchNormalization
# separate) and the same model with every BN folded into its Conv
# (tools/fold_bn.py, what PyTorch's eval-mode export writes; ONNX Runtime
# gives both the same outputs) are each
#   - fine-tuned with `train` (EPOCHS epochs, lr LR cosine) and
#   - compressed with `compress --method smooth --rate RATE` (same budget),
# the fused one both with BN re-inserted for training and folded back
# (`--bn fold`, the default) and trained as it is (`--bn none`), and
# evaluated on the 10,000 test images. Prints test accuracy and seconds.
#
#   sh bench/fused_bn.sh
#   env: EPOCHS=2 LIMIT=10000 LR=0.01 RATE=0.4 THREADS=2 BUILD=build
#        DATA=/usr/share/datasets/fashion-mnist
set -eu
BUILD=${BUILD:-build}
EPOCHS=${EPOCHS:-2}
LIMIT=${LIMIT:-10000}
LR=${LR:-0.01}
RATE=${RATE:-0.4}
THREADS=${THREADS:-2}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
SFP=$BUILD/onnx-sfp
OUT=$BUILD/bench/fused-bn
mkdir -p "$OUT"
cp models/fmnist-resnet20.onnx "$OUT/unfused.onnx"
/usr/bin/python3 tools/fold_bn.py "$OUT/unfused.onnx" "$OUT/fused.onnx"
node tools/ort_compare.js "$OUT/unfused.onnx" "$OUT/fused.onnx" --batches 1 --tol 1e-4 >/dev/null
accuracy() {
    "$SFP" eval "$1" --data "$DATA" --json --quiet --threads "$THREADS" |
        /usr/bin/python3 -c 'import json,sys; print("%.2f%%" % (100 * json.load(sys.stdin)["accuracy"]))'
}
echo "fine-tuning $EPOCHS epochs on $LIMIT Fashion-MNIST images (lr $LR cosine, batch 128, 10% held out);"
echo "test accuracy on the 10,000 test images"
printf "%-16s %-28s %10s %10s %9s\n" form run before after seconds
for run in unfused:fold fused:fold fused:none; do
    form=${run%%:*}
    bn=${run#*:}
    before=$(accuracy "$OUT/$form.onnx")
    for job in train compress; do
        start=$(date +%s)
        if [ $job = train ]; then
            "$SFP" train "$OUT/$form.onnx" "$OUT/$form-train.onnx" --data "$DATA" --limit "$LIMIT" \
                --epochs "$EPOCHS" --lr "$LR" --batch 128 --seed 1 --threads "$THREADS" --bn "$bn" --quiet
            what="train (no pruning)"
        else
            "$SFP" compress "$OUT/$form.onnx" "$OUT/$form-compress.onnx" --data "$DATA" --limit "$LIMIT" \
                --epochs "$EPOCHS" --lr "$LR" --batch 128 --seed 1 --threads "$THREADS" --rate "$RATE" \
                --method smooth --bn "$bn" --quiet >/dev/null
            what="compress smooth rate $RATE"
        fi
        seconds=$(($(date +%s) - start))
        printf "%-16s %-28s %10s %10s %9s\n" "$form (--bn $bn)" "$what" "$before" "$(accuracy "$OUT/$form-$job.onnx")" "$seconds"
    done
done
