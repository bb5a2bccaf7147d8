#!/bin/sh
# Benchmark (accuracy of the training runtime): ResNet-20 made by `onnx-sfp
# init` (1x28x28, 10 classes, seed 1) and trained on all 60,000 Fashion-MNIST
# training images with the same recipe and epochs by onnx-sfp (`train
# --val-split 0`, then `eval` on the 10,000 test images) and by PyTorch
# (tools/torch_train.py from the same init file, its module first checked
# against `onnx-sfp run` on a random input to 1e-4) reaches the same test
# accuracy within TOL points. Recipe: lr 0.1 cosine to 0 stepped every
# iteration, batch 128 (drop_last), SGD momentum 0.9, weight decay 5e-4 on
# every parameter, random crop (3 pixels of black padding) and flip,
# normalisation by the training images' mean/std; both sides draw their own
# shuffles and crops, so the two runs differ as two seeds do.
#
# Prints both test accuracies and their difference in points, the loss of
# every epoch on both sides, training seconds and images/s of both, and the
# onnx-sfp/PyTorch ratios of training and evaluation images/s. Exit 1 when
# the accuracies differ by more than TOL (not checked with LIMIT set).
#
#   sh bench/accuracy_vs_torch.sh [EPOCHS]      EPOCHS (default 5) also from the environment
#   env: THREADS=2 TOL=0.5 DATA=/usr/share/datasets/fashion-mnist BUILD=build
#        LIMIT=N (train on the first N images only: a smoke test, no verdict)
# A full run takes ~35 minutes on 2 free cores (each side trains 5 x 468
# steps at ~250-300 images/s), so `make bench` runs it only with ACCURACY=1.
# Files go to $BUILD/bench/accuracy/ (training logs, models, JSON).
set -eu
BUILD=${BUILD:-build}
EPOCHS=${1:-${EPOCHS:-5}}
THREADS=${THREADS:-2}
TOL=${TOL:-0.5}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
LIMIT=${LIMIT:-}
SFP=$BUILD/onnx-sfp
OUT=$BUILD/bench/accuracy
mkdir -p "$OUT"
# word splitting of $limit_opt is wanted: nothing, or "--limit N"
limit_opt=${LIMIT:+--limit $LIMIT}
fail_with_log() {
    echo "accuracy_vs_torch: $1 failed; its log:" >&2
    cat "$2" >&2
    exit 1
}

"$SFP" init resnet20 "$OUT/init.onnx" --input 1x28x28 --classes 10 --seed 1 --quiet
/usr/bin/python3 tools/torch_train.py "$OUT/init.onnx" --make-input "$OUT/check_x.pb"
"$SFP" run "$OUT/init.onnx" --input "$OUT/check_x.pb" --output "$OUT/check_y.pb" --threads "$THREADS" --quiet

echo "onnx-sfp: training $EPOCHS epochs (log: $OUT/sfp_train.log)"
# shellcheck disable=SC2086
"$SFP" train "$OUT/init.onnx" "$OUT/sfp.onnx" --data "$DATA" --val-split 0 --epochs "$EPOCHS" --lr 0.1 \
    --batch 128 --threads "$THREADS" $limit_opt >"$OUT/sfp_train.out" 2>"$OUT/sfp_train.log" ||
    fail_with_log "onnx-sfp train" "$OUT/sfp_train.log"
"$SFP" eval "$OUT/sfp.onnx" --data "$DATA" --json --threads "$THREADS" --quiet >"$OUT/sfp_eval.json"

echo "PyTorch: training $EPOCHS epochs (log: $OUT/torch_train.log)"
# shellcheck disable=SC2086
/usr/bin/python3 tools/torch_train.py "$OUT/init.onnx" --reference "$OUT/check_x.pb" "$OUT/check_y.pb" \
    --data "$DATA" --epochs "$EPOCHS" --lr 0.1 --batch 128 --threads "$THREADS" $limit_opt \
    >"$OUT/torch.json" 2>"$OUT/torch_train.log" || fail_with_log "tools/torch_train.py" "$OUT/torch_train.log"

/usr/bin/python3 - "$OUT" "$TOL" "$LIMIT" <<'EOF'
import json, re, sys
out, tol, limit = sys.argv[1], float(sys.argv[2]), sys.argv[3]
torch = json.load(open(f"{out}/torch.json"))
ours = json.load(open(f"{out}/sfp_eval.json"))
# onnx-sfp's epoch lines: "epoch 1/5 loss 0.5123 acc 81.20% lr 0.09 123.4s 280 img/s ETA ..."
epochs = [(float(m[0]), float(m[1]), float(m[2])) for m in
          re.findall(r"^epoch \d+/\d+ loss (\S+) acc .*? ([0-9.]+)s ([0-9.]+) img/s", open(f"{out}/sfp_train.log").read(),
                     re.M)]
if len(epochs) != torch["epochs"]:
    sys.exit(f"accuracy_vs_torch: {len(epochs)} epoch lines in {out}/sfp_train.log, expected {torch['epochs']}")
sfp_seconds = sum(e[1] for e in epochs)
sfp_rate = sum(e[1] * e[2] for e in epochs) / sfp_seconds
print(f"ResNet-20 from init on {torch['train_images']} Fashion-MNIST training images, {torch['epochs']} epochs, "
      f"batch {torch['batch']}, lr {torch['lr']} cosine per step, {torch['threads']} threads; "
      f"PyTorch module = onnx-sfp run to {torch['module_vs_reference']:.1e}")
print("epoch  train loss onnx-sfp  PyTorch")
for i, (e, t) in enumerate(zip(epochs, torch["epoch_loss"])):
    print(f"{i + 1:5}  {e[0]:19.4f}  {t:7.4f}")
a, b = 100.0 * ours["accuracy"], 100.0 * torch["test_accuracy"]
print(f"test accuracy ({ours['images']} images): onnx-sfp {a:.2f} %, PyTorch {b:.2f} %, difference {a - b:+.2f} points"
      f" (test loss {ours['loss']:.4f} vs {torch['test_loss']:.4f})")
print(f"training: onnx-sfp {sfp_seconds:.0f} s ({sfp_rate:.0f} images/s), PyTorch {torch['seconds']:.0f} s "
      f"({torch['images_per_s']:.0f} images/s), images/s ratio {sfp_rate / torch['images_per_s']:.2f}")
print(f"evaluation: onnx-sfp {ours['images_per_s']:.0f} images/s, PyTorch {torch['eval_images_per_s']:.0f} images/s, "
      f"ratio {ours['images_per_s'] / torch['eval_images_per_s']:.2f}")
if limit:
    print(f"LIMIT={limit}: smoke run, no verdict")
elif abs(a - b) <= tol:
    print(f"within {tol} points: yes")
else:
    print(f"within {tol} points: NO")
    sys.exit(1)
EOF
