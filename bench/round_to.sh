#!/bin/sh
# Benchmark: does rounding the kept channel counts (compress --round-to 8)
# make pruned models faster in ONNX Runtime? ResNet-56 (CIFAR, 32x32) and
# torchvision ResNet-18 (224x224), compressed by `compress --epochs 0` at
# rates 0.3/0.5/0.7 with and without --round-to 8: latency at batch 1 and
# throughput at batch 64 (median of ITERS runs, THREADS intra-op threads),
# next to the MAC reduction and the ideal speed-up 1/(1 - MAC reduction).
# Rounding to the nearest multiple changes the MAC cut, so a third row per
# rate ("f8") asks for the unrounded row's MAC cut (--flops) with
# --round-to 8: equal budget, rounded counts.
# Prints the CPU and the load average before and after: on a shared machine
# the figures are only comparable within one run.
set -eu
BUILD=${BUILD:-build}
THREADS=${THREADS:-1}
ITERS1=${ITERS1:-30}
ITERS64=${ITERS64:-5}
OUT=$BUILD/bench-round-to
SFP=${SFP:-$BUILD/onnx-sfp}
mkdir -p "$OUT"
[ -f "$BUILD/refs/resnet18_tv_fused_op13.onnx" ] || /usr/bin/python3 tools/export_refs.py "$BUILD/refs" >/dev/null
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores; ORT threads $THREADS"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
macs_of() { "$SFP" report "$1" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["models"][0]["total"]["macs"])'; }
ms_of() { node bench/ort_time.js "$1" --shape "$2" --batch 1 --threads "$THREADS" --iters "$ITERS1" | sed 's/.*"ms":\([0-9.]*\).*/\1/'; }
ips_of() { node bench/ort_time.js "$1" --shape "$2" --batch 64 --threads "$THREADS" --iters "$ITERS64" | sed 's/.*"images_per_s":\([0-9.]*\).*/\1/'; }
printf "%-24s %5s %6s %8s %7s %9s %7s %10s %7s\n" model rate round "MACs -%" ideal "b1 ms" "b1 x" "b64 img/s" "b64 x"
for spec in "resnet56_a_concat_fused_op13:3,32,32" "resnet18_tv_fused_op13:3,224,224"; do
    name=${spec%%:*}; shape=${spec#*:}
    src=$OUT/$name.r0.onnx   # rate 0: the same network, batch-free
    "$SFP" compress "$BUILD/refs/$name.onnx" "$src" --epochs 0 --rate 0 --quiet >/dev/null
    base_macs=$(macs_of "$src"); base_ms=$(ms_of "$src" "$shape"); base_ips=$(ips_of "$src" "$shape")
    printf "%-24s %5s %6s %8s %7s %9.3f %7s %10.1f %7s\n" "${name%%_*}" - - 0 1.00 "$base_ms" 1.00 "$base_ips" 1.00
    for rate in 0.3 0.5 0.7; do
        red1=0
        for round in 1 8 f8; do
            dst=$OUT/$name.r$rate.n$round.onnx
            if [ "$round" = f8 ]; then
                if ! "$SFP" compress "$src" "$dst" --epochs 0 --flops "$red1" --round-to 8 --quiet >/dev/null 2>&1; then
                    printf "%-24s %5s %6s   (--flops %s unreachable with --round-to 8)\n" "${name%%_*}" "$rate" f8 "$red1"
                    continue
                fi
            else
                "$SFP" compress "$src" "$dst" --epochs 0 --rate "$rate" --round-to "$round" --quiet >/dev/null
            fi
            macs=$(macs_of "$dst"); ms=$(ms_of "$dst" "$shape"); ips=$(ips_of "$dst" "$shape")
            /usr/bin/python3 -c "import sys; m,bm,ms,bms,ips,bips=map(float,sys.argv[1:]); red=1-m/bm; print('%-24s %5s %6s %8.1f %7.2f %9.3f %7.2f %10.1f %7.2f' % ('${name%%_*}', '$rate', '$round', 100*red, 1/(1-red), ms, bms/ms, ips, ips/bips))" \
                "$macs" "$base_macs" "$ms" "$base_ms" "$ips" "$base_ips"
            [ "$round" = 1 ] && red1=$(/usr/bin/python3 -c "print('%.4f' % (1 - $macs / $base_macs - 1e-4))")
        done
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
