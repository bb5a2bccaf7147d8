#!/bin/sh
# Rebuilds the shipped models from scratch with onnx-sfp itself (init + train),
# then records their test accuracy (eval) in models/accuracy-NAME.txt, the
# figures models/README.md quotes. Deterministic for a thread count: same
# seed, same data, same file.
#
#   models/build.sh fmnist      # ResNet-20 on Fashion-MNIST (~20 min on 2 cores)
#   models/build.sh defects     # ResNet-20, 96x96 input, on the synthetic defect set at 200x200
#                               # (tools/gen_defects.py): hours of one core, resumable
#   models/build.sh fmnist56    # ResNet-56, same recipe as fmnist (the starting point of the
#                               # ResNet-56 pruning table; ~1 h with 1 thread on a core of its own)
set -eu
cd "$(dirname "$0")/.."
SFP=${SFP:-build/onnx-sfp}
THREADS=${THREADS:-2}
FMNIST=/usr/share/datasets/fashion-mnist
TMP=build/models-tmp
mkdir -p "$TMP"

case "${1:-}" in
fmnist)
    # CIFAR-style ResNet-20 (shortcut A) for 1x28x28 images, 10 classes.
    "$SFP" init resnet20 "$TMP/fmnist-init.onnx" --input 1x28x28 --classes 10 --seed 1
    "$SFP" train "$TMP/fmnist-init.onnx" models/fmnist-resnet20.onnx --data "$FMNIST" --val-split 0.1 \
        --epochs 6 --batch 128 --lr 0.1 --schedule cosine --momentum 0.9 --wd 5e-4 --seed 1 --threads "$THREADS"
    "$SFP" eval models/fmnist-resnet20.onnx --data "$FMNIST" --json --threads "$THREADS" | tee models/accuracy-fmnist-resnet20.txt
    ;;
fmnist56)
    # CIFAR-style ResNet-56 (shortcut A) for 1x28x28 images, the fmnist recipe.
    "$SFP" init resnet56 "$TMP/fmnist56-init.onnx" --input 1x28x28 --classes 10 --seed 1
    "$SFP" train "$TMP/fmnist56-init.onnx" models/fmnist-resnet56.onnx --data "$FMNIST" --val-split 0.1 \
        --epochs 6 --batch 128 --lr 0.1 --schedule cosine --momentum 0.9 --wd 5e-4 --seed 1 --threads "$THREADS"
    "$SFP" eval models/fmnist-resnet56.onnx --data "$FMNIST" --json --threads "$THREADS" |
        tee models/accuracy-fmnist-resnet56.txt
    ;;
defects)
    # The synthetic NEU-like defect set at the generator's default 200x200,
    # 7 classes: 1,500 train images a class (10 % held out for validation)
    # and 200 test images a class of their own indices; fitted to a 96x96
    # grayscale ResNet-20 input the way detect fits them (stb_image_resize,
    # Mitchell), which the model records. Hours of one core: run niced with
    # one thread beside other work; a checkpoint after every epoch, and a
    # second run of this script resumes from it (CKPT, default
    # build/models-tmp/defects.ckpt; keep it outside the work tree to resume
    # in another checkout). Two cosine cycles: 12 epochs from init at lr
    # 0.05, then a warm restart of 20 epochs at lr 0.02 (1 warm-up epoch,
    # another shuffling seed) from the first cycle's model; the second has
    # its own checkpoint (CKPT2). Then the accuracy on the test split (eval)
    # and on 700 fresh images of another seed (detect: escape rate, recall).
    DATA=$TMP/defects200
    FRESH=$TMP/defects200-fresh
    CKPT=${CKPT:-$TMP/defects.ckpt}
    CKPT2=${CKPT2:-$TMP/defects-cycle2.ckpt}
    [ -d "$DATA/test" ] ||
        /usr/bin/python3 tools/gen_defects.py "$DATA" --split 1500,200 --seed 1 --force
    [ -d "$FRESH/test" ] ||
        /usr/bin/python3 tools/gen_defects.py "$FRESH" --split 1,100 --seed 2 --force
    "$SFP" init resnet20 "$TMP/defects-init.onnx" --input 1x96x96 --classes 7 --seed 1
    if [ ! -f "$TMP/defects-cycle1.onnx" ]; then
        RESUME=""
        [ -f "$CKPT" ] && RESUME="--resume $CKPT"
        # shellcheck disable=SC2086
        nice -n 10 "$SFP" train "$TMP/defects-init.onnx" "$TMP/defects-cycle1.onnx" --data "$DATA" --val-split 0.1 \
            --epochs 12 --batch 32 --lr 0.05 --schedule cosine --momentum 0.9 --wd 5e-4 --crop-pad 8 --seed 1 \
            --threads 1 --checkpoint "$CKPT" $RESUME
    fi
    RESUME=""
    [ -f "$CKPT2" ] && RESUME="--resume $CKPT2"
    # shellcheck disable=SC2086
    nice -n 10 "$SFP" train "$TMP/defects-cycle1.onnx" models/defects-resnet20.onnx --data "$DATA" --val-split 0.1 \
        --epochs 20 --batch 32 --lr 0.02 --warmup 1 --schedule cosine --momentum 0.9 --wd 5e-4 --crop-pad 8 \
        --seed 2 --threads "$THREADS" --checkpoint "$CKPT2" $RESUME
    "$SFP" eval models/defects-resnet20.onnx --data "$DATA" --json --threads "$THREADS" |
        tee models/accuracy-defects-resnet20.txt
    "$SFP" detect models/defects-resnet20.onnx "$FRESH" --json --quiet --threads "$THREADS" |
        /usr/bin/python3 -c 'import json, sys; d = json.load(sys.stdin); print(json.dumps({k: d[k] for k in
            ("accuracy", "balanced_accuracy", "escape_rate", "recall", "labelled")}))' |
        tee -a models/accuracy-defects-resnet20.txt
    ;;
*)
    echo "usage: models/build.sh fmnist|fmnist56|defects" >&2
    exit 2
    ;;
esac
