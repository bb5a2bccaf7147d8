#!/bin/sh
# The installed library as a user gets it: `make install` into a temporary
# root, docs/example.c built against the installed headers with
# `pkg-config --cflags --libs onnxsfp` (shared) and `--static`, run on the
# shipped ResNet-20: both binaries write a model that `report` counts with
# fewer MACs, and the shared one needs nothing but -lonnxsfp.
set -u
BUILD=${BUILD:-build}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
fail() { echo "FAIL e2e_library: $*"; exit 1; }
make -s install BUILD="$BUILD" DESTDIR="$root" PREFIX=/usr >"$root/install.log" 2>&1 || { cat "$root/install.log"; fail "make install"; }
for f in usr/lib/libonnxsfp.so.0 usr/lib/libonnxsfp.so usr/lib/libonnxsfp.a usr/include/onnxsfp/compress.h usr/lib/pkgconfig/onnxsfp.pc; do
    [ -e "$root/$f" ] || fail "$f not installed"
done
pc="pkg-config --define-variable=prefix=$root/usr"
export PKG_CONFIG_PATH="$root/usr/lib/pkgconfig"
libs=$($pc --libs onnxsfp | sed "s/ *$//") || fail "pkg-config --libs"
[ "$libs" = "-L$root/usr/lib -lonnxsfp" ] || fail "pkg-config --libs gave '$libs'"
cc -std=c11 -Wall -Werror docs/example.c $($pc --cflags onnxsfp) $libs -o "$root/example" || fail "shared build"
cc -std=c11 -Wall -Werror docs/example.c $($pc --cflags onnxsfp) -Wl,-Bstatic -lonnxsfp -Wl,-Bdynamic \
    $($pc --static --libs-only-other --libs-only-L onnxsfp) \
    $(pkg-config --libs libprotobuf-c openblas json-c) -lz -lm -lpthread -o "$root/example-static" || fail "static build"
for bin in example example-static; do
    out=$(LD_LIBRARY_PATH="$root/usr/lib" "$root/$bin" models/fmnist-resnet20.onnx "$root/$bin.onnx" 0.4 2>&1) || fail "$bin: $out"
    before=$("$BUILD/onnx-sfp" report models/fmnist-resnet20.onnx --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["models"][0]["total"]["macs"])')
    after=$("$BUILD/onnx-sfp" report "$root/$bin.onnx" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["models"][0]["total"]["macs"])')
    [ "$after" -lt "$before" ] || fail "$bin: MACs $before -> $after"
    echo "$out" | grep -q "$after MACs" || fail "$bin printed '$out', report says $after MACs"
done
ldd "$root/example" | grep -q "libonnxsfp.so.0 => $root/usr/lib" 2>/dev/null || LD_LIBRARY_PATH="$root/usr/lib" ldd "$root/example" | grep -q "libonnxsfp.so.0 => $root" || fail "example does not use the installed libonnxsfp.so.0"
echo "ok   installed library: example built with pkg-config (shared: -lonnxsfp alone; static), MACs $before -> $after"
