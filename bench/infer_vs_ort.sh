#!/bin/sh
# Benchmark: inference images/s of our runtime next to ONNX Runtime (2
# threads both, same machine, same run) for CIFAR ResNet-20 and ResNet-56 at
# batch 1 and 128, the ratio ours / ORT, and our achieved GFLOP/s (2 x MACs
# per image) beside OpenBLAS sgemm's on the same CPU. The two run in turn
# ROUNDS times per row; each round's ratio is printed, and the best of each
# side (the run least disturbed by other work on a shared machine) gives the
# final ratio. Builds what it needs.
set -eu
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-2}
OUT=$BUILD/bench-infer
make -s BUILD="$BUILD" all "$BUILD/bench/conv_gflops" >/dev/null
mkdir -p "$OUT"
/usr/bin/python3 tools/export_refs.py "$BUILD/refs" >/dev/null
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/bench/conv_gflops" --threads 2 --sgemm
printf "%-10s %6s %14s %14s %8s %9s %7s   %s\n" model batch "ours img/s" "ORT img/s" ratio "GFLOP/s" isa "per round (ours/ORT)"
for name in resnet20_a_concat_fused_op13 resnet56_a_concat_fused_op13; do
    src=$OUT/$name.onnx   # batch-free copy (the export fixed batch 1)
    "$BUILD/onnx-sfp" compress "$BUILD/refs/$name.onnx" "$src" --epochs 0 --rate 0 --quiet >/dev/null
    for batch in 1 128; do
        best_ours=0
        best_ort=0
        rounds=""
        macs=0
        isa=""
        i=0
        while [ "$i" -lt "$ROUNDS" ]; do
            set -- $("$BUILD/onnx-sfp" bench "$src" --batch "$batch" --threads 2 --seconds "$SECONDS_EACH" --json --quiet |
                     /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); m=j["models"][0]
print(m["infer_images_per_s"], m["macs"], j["isa"])')
            ours=$1 macs=$2 isa=$3
            ort=$(node bench/ort_time.js "$src" --shape 3,32,32 --batch "$batch" --threads 2 --iters 30 |
                  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_s"])')
            best_ours=$(/usr/bin/python3 -c "print(max($best_ours, $ours))")
            best_ort=$(/usr/bin/python3 -c "print(max($best_ort, $ort))")
            rounds="$rounds $(/usr/bin/python3 -c "print('%.2f' % ($ours / $ort))")"
            i=$((i + 1))
        done
        /usr/bin/python3 -c "import sys; o,r,m=float(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); print('%-10s %6s %14.1f %14.1f %8.2f %9.1f %7s  %s' % ('${name%%_*}', '$batch', o, r, o/r, o*2*m/1e9, '$isa', sys.argv[4]))" "$best_ours" "$best_ort" "$macs" "$rounds"
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
