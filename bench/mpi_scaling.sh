#!/bin/sh
# Benchmark (issue 9): data-parallel training of ResNet-20 (Fashion-MNIST
# padded to 1x32x32, global batch 128, 20 steps) on this host:
#   1 process x 1 thread, 1 process x 2 threads (plain build),
#   mpirun -np 2 x 1 thread (MPI build), with synchronised BN and --local-bn;
# images/s (best of ROUNDS), the share of the epoch spent in collectives
# (waiting for the slower process included), the collectives of one step
# timed alone (build-mpi/bench/dist_sum: the BN statistics sums and the one
# gradient sum), the bytes each process sums per step, and from those an
# estimate for 2, 4 and 8 hosts on a 10 Gbit/s link.
set -eu
BUILD=${BUILD:-build}
MPI_BUILD=${MPI_BUILD:-build-mpi}
ROUNDS=${ROUNDS:-2}
OUT=$BUILD/bench-mpi
DATA=/usr/share/datasets/fashion-mnist
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$BUILD/onnx-sfp" init resnet20 "$OUT/r20.onnx" --input 1x32x32 --classes 10 --seed 1 >/dev/null
ARGS="--data $DATA --limit 2560 --epochs 1 --batch 128 --val-split 0 --seed 1 --lr 0.05"

# one epoch, the best of ROUNDS: prints "images/s comm%"
measure() {
    best=0; comm=0
    for r in $(seq "$ROUNDS"); do
        line=$("$@" $ARGS 2>&1 >/dev/null | grep '^epoch 1/1')
        ips=$(echo "$line" | sed 's/.* \([0-9.]*\) img\/s.*/\1/')
        pct=$(echo "$line" | sed -n 's/.*processes, \([0-9.]*\)% in collectives.*/\1/p')
        if awk "BEGIN { exit !($ips > $best) }"; then best=$ips; comm=${pct:-0}; fi
    done
    echo "$best $comm"
}

set -- $(measure "$BUILD/onnx-sfp" train "$OUT/r20.onnx" "$OUT/a.onnx" --threads 1); p1t1=$1
set -- $(measure "$BUILD/onnx-sfp" train "$OUT/r20.onnx" "$OUT/b.onnx" --threads 2); p1t2=$1
set -- $(measure mpirun -q --oversubscribe -np 2 "$MPI_BUILD/onnx-sfp" train "$OUT/r20.onnx" "$OUT/c.onnx" --threads 1); p2=$1; p2comm=$2
set -- $(measure mpirun -q --oversubscribe -np 2 "$MPI_BUILD/onnx-sfp" train "$OUT/r20.onnx" "$OUT/d.onnx" --threads 1 --local-bn); p2l=$1; p2lcomm=$2

# Sizes of what a step sums: trainable floats, BN channel counts.
SIZES=$(/usr/bin/python3 - "$OUT/r20.onnx" <<'EOF'
import sys
import onnx
from onnx import numpy_helper
m = onnx.load(sys.argv[1])
init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
trainable = set()
for n in m.graph.node:
    pos = {"Conv": (1, 2), "Gemm": (1, 2), "BatchNormalization": (1, 2)}.get(n.op_type, ())
    trainable.update(n.input[i] for i in pos if i < len(n.input) and n.input[i] in init)
bn = [init[n.input[1]].size for n in m.graph.node if n.op_type == "BatchNormalization"]
print(sum(init[k].size for k in trainable), *bn)
EOF
)
ALONE=$(mpirun -q --oversubscribe -np 2 "$MPI_BUILD/bench/dist_sum" $(echo "$SIZES" | cut -d' ' -f1) 200 \
        $(echo "$SIZES" | cut -d' ' -f2-))

printf "%-44s %10s %14s\n" "ResNet-20, batch 128, this host" "images/s" "collectives"
printf "%-44s %10s %14s\n" "1 process x 1 thread" "$p1t1" "-"
printf "%-44s %10s %14s\n" "1 process x 2 threads" "$p1t2" "-"
printf "%-44s %10s %13s%%\n" "mpirun -np 2 x 1 thread (whole-batch BN)" "$p2" "$p2comm"
printf "%-44s %10s %13s%%\n" "mpirun -np 2 x 1 thread (--local-bn)" "$p2l" "$p2lcomm"
echo "collectives of one step alone, $ALONE"

# Per step each process sums: every parameter gradient (float32, one call),
# per BatchNormalization 2 x C doubles forward (mean, variance) and 2 x C
# backward (3 calls), and 4 doubles of loss/accuracy. The estimate: one host
# = this host's 2 cores at the 1 x 2 threads rate on its share of the batch
# (smaller shares run a little slower per image: not modelled); a gradient
# ring allreduce moves 2 (P-1)/P x its bytes at 1.25 GB/s; every call pays
# log2(P) latencies of 50 us (TCP on 10 GbE).
/usr/bin/python3 - "$p1t2" $SIZES <<'EOF'
import math, sys
sizes = [int(v) for v in sys.argv[2:]]
grad_bytes, bn = 4 * sizes[0], sizes[1:]
bn_bytes, calls = 8 * 4 * sum(bn), 1 + 3 * len(bn) + 1
host_ips, batch, bw, lat = float(sys.argv[1]), 128, 1.25e9, 50e-6
print(f"\nper step and process: gradients {grad_bytes / 1e6:.2f} MB (1 call), BN statistics {bn_bytes / 1e3:.1f} kB "
      f"({3 * len(bn)} calls), 1 call of 32 B")
print(f"{'hosts (10 Gbit/s, 2 cores each)':<34} {'compute ms':>10} {'comm ms':>8} {'comm %':>7} {'images/s':>9} {'speed-up':>9}")
for p in (1, 2, 4, 8):
    compute = batch / p / host_ips
    comm = 0.0 if p == 1 else 2 * (p - 1) / p * (grad_bytes + bn_bytes) / bw + calls * math.ceil(math.log2(p)) * lat
    step = compute + comm
    print(f"{p:<34} {1e3 * compute:>10.1f} {1e3 * comm:>8.2f} {100 * comm / step:>7.1f} {batch / step:>9.0f} "
          f"{batch / step / host_ips:>9.2f}")
EOF
