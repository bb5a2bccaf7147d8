#!/bin/sh
# Benchmark (issue 5): ONNX Runtime latency (batch 1 and 128, 2 threads) of
# ResNet-56 and ResNet-18 compressed by `compress --epochs 0` at rates
# 0.3/0.5/0.7 against the original, next to the MAC reduction.
set -eu
BUILD=${BUILD:-build}
OUT=$BUILD/bench-compress
mkdir -p "$OUT"
/usr/bin/python3 tools/export_refs.py "$BUILD/refs" >/dev/null
printf "%-34s %6s %12s %10s %10s %12s %10s\n" model rate "MACs" "MACs -%" "b1 ms" "b128 img/s" "speed-up"
for spec in "resnet56_a_concat_fused_op13:3,32,32:128" "resnet18_tv_fused_op13:3,224,224:128"; do
    name=${spec%%:*}; rest=${spec#*:}; shape=${rest%%:*}; big=${rest#*:}
    # the export may have a fixed batch: rate 0 gives the same network, batch-free
    src=$OUT/$name.r0.onnx
    "$BUILD/onnx-sfp" compress "$BUILD/refs/$name.onnx" "$src" --epochs 0 --rate 0 --quiet >/dev/null
    base_b1=$(node bench/ort_time.js "$src" --shape "$shape" --batch 1 --iters 30 | sed 's/.*"ms":\([0-9.]*\).*/\1/')
    base_bb=$(node bench/ort_time.js "$src" --shape "$shape" --batch "$big" --iters 5 | sed 's/.*"images_per_s":\([0-9.]*\).*/\1/')
    base_macs=$("$BUILD/onnx-sfp" report "$src" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["models"][0]["total"]["macs"])')
    printf "%-34s %6s %12s %10s %10.3f %12.1f %10s\n" "$name" "-" "$base_macs" "0" "$base_b1" "$base_bb" "1.00"
    for rate in 0.3 0.5 0.7; do
        dst=$OUT/$name.r$rate.onnx
        "$BUILD/onnx-sfp" compress "$src" "$dst" --epochs 0 --rate "$rate" --quiet >/dev/null
        b1=$(node bench/ort_time.js "$dst" --shape "$shape" --batch 1 --iters 30 | sed 's/.*"ms":\([0-9.]*\).*/\1/')
        bb=$(node bench/ort_time.js "$dst" --shape "$shape" --batch "$big" --iters 5 | sed 's/.*"images_per_s":\([0-9.]*\).*/\1/')
        macs=$("$BUILD/onnx-sfp" report "$dst" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["models"][0]["total"]["macs"])')
        /usr/bin/python3 -c "import sys; a=[float(x) for x in sys.argv[1:]]; print('%-34s %6s %12d %10.1f %10.3f %12.1f %10.2f' % ('$name', '$rate', a[0], 100*(1-a[0]/a[1]), a[2], a[3], a[3]/a[4]))" "$macs" "$base_macs" "$b1" "$bb" "$base_bb"
    done
done
