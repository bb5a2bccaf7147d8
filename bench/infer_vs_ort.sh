#!/bin/sh
# Benchmark (issue 3): inference images/s of our runtime next to ONNX Runtime
# (2 threads both, same machine, same run) for CIFAR ResNet-20 and ResNet-56
# at batch 1 and 128, and the ratio ours / ORT.
set -eu
BUILD=${BUILD:-build}
OUT=$BUILD/bench-infer
mkdir -p "$OUT"
/usr/bin/python3 tools/export_refs.py "$BUILD/refs" >/dev/null
printf "%-30s %6s %14s %14s %8s\n" model batch "ours img/s" "ORT img/s" ratio
for name in resnet20_a_concat_fused_op13 resnet56_a_concat_fused_op13; do
    src=$OUT/$name.onnx   # batch-free copy (the export fixed batch 1)
    "$BUILD/onnx-sfp" compress "$BUILD/refs/$name.onnx" "$src" --epochs 0 --rate 0 --quiet >/dev/null
    for batch in 1 128; do
        ours=$("$BUILD/onnx-sfp" bench "$src" --batch "$batch" --threads 2 --seconds 3 --json |
               /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["models"][0]["infer_images_per_s"])')
        ort=$(node bench/ort_time.js "$src" --shape 3,32,32 --batch "$batch" --threads 2 --iters 30 |
              /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_s"])')
        /usr/bin/python3 -c "import sys; o,r=float(sys.argv[1]),float(sys.argv[2]); print('%-30s %6s %14.1f %14.1f %8.2f' % ('${name%%_*}', '$batch', o, r, o/r))" "$ours" "$ort"
    done
done
