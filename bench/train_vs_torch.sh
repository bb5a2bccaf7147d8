#!/bin/sh
# Benchmark (issue 4): one training step (forward in training mode,
# cross-entropy, backward, SGD with momentum and weight decay) of ResNet-20
# and ResNet-56 (MODELS) at batch 128 with THREADS threads (2), onnx-sfp
# (bench/train_step.c) against PyTorch (tools/torch_step.py --bench) on the
# same model. The two run in turn ROUNDS
# times and the best of each is kept: on a shared machine the best run is the
# one least disturbed by other work. Prints images/s and the ratio.
set -eu
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-2}
# ResNet-20 with its BN (shortcut B), and ResNet-56 as exported with BN folded
# (the references have no unfused ResNet-56; both sides train the same graph).
# lr 0.001 on both sides: without BN ResNet-56 leaves finite numbers at 0.01.
MODELS=${MODELS:-${MODEL:-resnet20_b_unfused_op9 resnet56_a_concat_fused_op13}}
/usr/bin/python3 tools/export_refs.py "$BUILD/refs" >/dev/null
for model in $MODELS; do
    best_sfp=0
    best_torch=0
    i=0
    while [ "$i" -lt "$ROUNDS" ]; do
        s=$("$BUILD/bench/train_step" "$BUILD/refs/$model.onnx" --batch 128 --threads "$THREADS" --iters 10 --lr 0.001 |
            sed 's/.*"images_per_s": \([0-9.]*\).*/\1/')
        t=$(/usr/bin/python3 tools/torch_step.py "$BUILD/refs" "$model" --bench --batch 128 --threads "$THREADS" --iters 10 --lr 0.001 |
            sed 's/.*"images_per_s": \([0-9.]*\).*/\1/')
        echo "$model round $i: onnx-sfp $s images/s, PyTorch $t images/s"
        best_sfp=$(/usr/bin/python3 -c "print(max($best_sfp, $s))")
        best_torch=$(/usr/bin/python3 -c "print(max($best_torch, $t))")
        i=$((i + 1))
    done
    /usr/bin/python3 -c "print('%s batch 128, %d threads, best of %d: onnx-sfp %.1f images/s, PyTorch %.1f images/s, ratio %.2f' % ('$model', $THREADS, $ROUNDS, $best_sfp, $best_torch, $best_sfp / $best_torch))"
done
