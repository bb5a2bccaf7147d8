#!/bin/sh
# Installs, idempotently, every Debian and npm package that the build, the tests
# and the demo need. Run as root (or with sudo available). Safe to run twice.
set -eu

PKGS="build-essential pkg-config clang libclang-rt-14-dev
protobuf-c-compiler libprotobuf-c-dev libonnx-dev
libcmocka-dev libopenblas-dev zlib1g-dev libstb-dev
python3 python3-numpy python3-onnx python3-torch python3-torchvision python3-pil
libonnx-testdata dataset-fashion-mnist libjson-c-dev valgrind
libopenmpi-dev openmpi-bin chromium"
# Node.js may come from elsewhere (e.g. NodeSource, which conflicts with Debian npm).
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "install-deps: installing:$missing"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
else
    echo "install-deps: Debian packages already installed"
fi

# ONNX Runtime for the reference checks (npm). The package's install script only
# fetches optional GPU extras from a host that cannot be reached, so skip it.
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$here/node/node_modules/onnxruntime-node" ]; then
    echo "install-deps: installing onnxruntime-node into tools/node"
    (cd "$here/node" && npm install --ignore-scripts --no-audit --no-fund)
fi
echo "install-deps: done"
