#!/bin/sh
# Rebuilds the shipped models from scratch with onnx-sfp itself (init + train),
# then records their test accuracy (eval) in models/accuracy-NAME.txt, the
# figures models/README.md quotes. Deterministic for a thread count: same
# seed, same data, same file.
#
#   models/build.sh fmnist      # ResNet-20 on Fashion-MNIST (~20 min on 2 cores)
#   models/build.sh defects     # ResNet-20 on the synthetic defect set (tools/gen_defects.py, ~20 min)
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
    # The synthetic NEU-like defect set at 48x48 grayscale, 7 classes: 1,500
    # train images per class (10 % of them held out for validation) and 200
    # test images per class that training never sees (gen_defects.py's test/
    # split, images of their own indices). Many distinct images, few epochs,
    # small batches and no random crop: on 2 busy cores the budget (~25 min,
    # ~32,000 image passes) is too small to learn the faint defects from
    # augmented copies of a small set (8 epochs of 5,040 images at batch 64
    # with crops were at 39 % train accuracy after 3 epochs).
    DATA=$TMP/defects
    /usr/bin/python3 tools/gen_defects.py "$DATA" --split 1500,200 --size 48 --seed 1 --force
    "$SFP" init resnet20 "$TMP/defects-init.onnx" --input 1x48x48 --classes 7 --seed 1
    "$SFP" train "$TMP/defects-init.onnx" models/defects-resnet20.onnx --data "$DATA" --val-split 0.1 \
        --epochs 3 --batch 32 --lr 0.05 --schedule cosine --momentum 0.9 --wd 5e-4 --crop-pad 0 --seed 1 \
        --threads "$THREADS"
    "$SFP" eval models/defects-resnet20.onnx --data "$DATA" --json --threads "$THREADS" | tee models/accuracy-defects-resnet20.txt
    ;;
*)
    echo "usage: models/build.sh fmnist|fmnist56|defects" >&2
    exit 2
    ;;
esac
