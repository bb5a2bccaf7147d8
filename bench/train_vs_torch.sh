#!/bin/sh
# Benchmark: one training step (forward in training mode, cross-entropy,
# backward, SGD with momentum and weight decay) of ResNet-20 and ResNet-56
# (MODELS) at batch 128 with THREADS threads (2), onnx-sfp
# (bench/train_step.c) against PyTorch (tools/torch_step.py --bench) on the
# same model, and our achieved GFLOP/s (3 x 2 x MACs per image: forward, dX
# and dW) beside OpenBLAS sgemm's on the same CPU. The two run in turn
# ROUNDS times and the best of each is kept: on a shared machine the best
# run is the one least disturbed by other work. Prints images/s and the
# ratio. Builds what it needs.
set -eu
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-2}
# ResNet-20 with its BN (shortcut B), and ResNet-56 as exported with BN folded
# (the references have no unfused ResNet-56; both sides train the same graph).
# lr 0.001 on both sides: without BN ResNet-56 leaves finite numbers at 0.01.
MODELS=${MODELS:-${MODEL:-resnet20_b_unfused_op9 resnet56_a_concat_fused_op13}}
make -s BUILD="$BUILD" all "$BUILD/bench/train_step" "$BUILD/bench/conv_gflops" >/dev/null
/usr/bin/python3 tools/export_refs.py "$BUILD/refs" >/dev/null
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/bench/conv_gflops" --threads "$THREADS" --sgemm
for model in $MODELS; do
    best_sfp=0
    best_torch=0
    i=0
    macs=$("$BUILD/onnx-sfp" report "$BUILD/refs/$model.onnx" --json |
           /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["models"][0]["total"]["macs"])')
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
    isa=$("$BUILD/bench/train_step" "$BUILD/refs/$model.onnx" --batch 2 --iters 1 | sed 's/.*"isa": "\([a-z0-9]*\)".*/\1/')
    /usr/bin/python3 -c "print('%s batch 128, %d threads, best of %d: onnx-sfp %.1f images/s (%.1f GFLOP/s, %s), PyTorch %.1f images/s, ratio %.2f' % ('$model', $THREADS, $ROUNDS, $best_sfp, $best_sfp * 6 * $macs / 1e9, '$isa', $best_torch, $best_sfp / $best_torch))"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
