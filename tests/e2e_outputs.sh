#!/bin/sh
# Where outputs land (DESIGN.md, "Paths"), run as root as CI containers do:
# "-" is stdout (and stdout then holds the JSON alone); a FIFO, a character
# device and a name of the process's own stdout are written in place, never
# renamed over; a symlink is followed (the link stays, its target is
# replaced); another name of IN (hard link, symlink) is refused with exit 2
# and IN left untouched; a socket or a folder is refused and left as it is.
# Device nodes and links are made inside the test's folder, never in /dev.
BUILD=${BUILD:-build}
BIN=$BUILD/onnx-sfp
DIR=$BUILD/outputs
[ -x "$BIN" ] || { echo "e2e_outputs: $BIN missing (run make)"; exit 1; }
rm -rf "$DIR"
mkdir -p "$DIR/sub"
ERR=$DIR/stderr.txt
checks=0
failed=0

check() { # MESSAGE CMD...: CMD must succeed
    msg=$1
    shift
    checks=$((checks + 1))
    "$@" || { failed=$((failed + 1)); echo "FAIL: $msg"; sed -n '1,3p' "$ERR" 2>/dev/null | sed 's/^/    stderr: /'; }
}

is_json() { /usr/bin/python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["models"] and d["layers"]' "$1" 2>/dev/null; }
sum() { cksum <"$1" 2>/dev/null; }
no_temp() { ! ls "$1".tmp.* >/dev/null 2>&1; }

# status_is WANT PATTERN CMD...: exit status WANT and an error line matching PATTERN
status_is() {
    want=$1 pattern=$2
    shift 2
    "$BIN" "$@" >"$DIR/stdout.txt" 2>"$ERR"
    got=$?
    [ "$got" -eq "$want" ] || { echo "    exit $got, expected $want"; return 1; }
    [ -z "$pattern" ] || grep -Eq -- "$pattern" "$ERR"
}

IN=$DIR/in.onnx
"$BIN" init resnet20 "$IN" --input 1x8x8 --classes 4 --quiet 2>"$ERR" || { echo "e2e_outputs: init failed"; exit 1; }
IN_SUM=$(sum "$IN")
PRUNE="--epochs 0 --rate 0.5 --quiet"
# shellcheck disable=SC2086
"$BIN" compress "$IN" "$DIR/ref.onnx" $PRUNE >/dev/null 2>"$ERR" || { echo "e2e_outputs: compress failed"; exit 1; }
# shellcheck disable=SC2086
"$BIN" compress "$IN" "$DIR/ref2.onnx" $PRUNE >/dev/null 2>"$ERR"
check "two runs write the same bytes (the comparisons below rely on it)" cmp -s "$DIR/ref.onnx" "$DIR/ref2.onnx"

# ---------------------------------------------------------------- "-" and stdout
# shellcheck disable=SC2086
check "--report-json -: exit 0" status_is 0 "" compress "$IN" "$DIR/a.onnx" $PRUNE --report-json -
check "--report-json -: stdout is the JSON alone" is_json "$DIR/stdout.txt"
check "--report-json -: no file named '-'" test ! -e ./- -a ! -e "$DIR/-"
# shellcheck disable=SC2086
"$BIN" compress "$IN" "$DIR/a.onnx" $PRUNE --report-json - 2>"$ERR" | cat >"$DIR/piped.json"
check "--report-json - into a pipe" is_json "$DIR/piped.json"
# A link to the process's own stdout, as /dev/stdout is (a private one, so a
# regression cannot replace /dev/stdout on the machine running the test).
ln -s /proc/self/fd/1 "$DIR/stdout"
# shellcheck disable=SC2086
"$BIN" compress "$IN" "$DIR/a.onnx" $PRUNE --report-json "$DIR/stdout" 2>"$ERR" | cat >"$DIR/piped2.json"
check "--report-json LINK-TO-STDOUT (a pipe): the JSON arrives" is_json "$DIR/piped2.json"
check "--report-json LINK-TO-STDOUT: the link is still a link" test -L "$DIR/stdout"
# shellcheck disable=SC2086
"$BIN" compress "$IN" "$DIR/a.onnx" $PRUNE --report-json "$DIR/stdout" >"$DIR/redirected.json" 2>"$ERR"
check "--report-json LINK-TO-STDOUT > FILE: FILE holds the JSON alone" is_json "$DIR/redirected.json"
check "--report-json LINK-TO-STDOUT > FILE: the link is still a link" test -L "$DIR/stdout"
check "a model to '-' is a usage error" status_is 2 "OUT '-': a model is not written to stdout" compress "$IN" - --epochs 0
check "--keep-masked '-' is a usage error" status_is 2 "--keep-masked '-'" compress "$IN" "$DIR/a.onnx" --epochs 0 --keep-masked -

# ---------------------------------------------------------------- FIFO and character device
mkfifo "$DIR/fifo"
cat "$DIR/fifo" >"$DIR/from_fifo.onnx" &
reader=$!
# shellcheck disable=SC2086
check "OUT a FIFO: exit 0" status_is 0 "" compress "$IN" "$DIR/fifo" $PRUNE
wait $reader
check "OUT a FIFO: still a FIFO" test -p "$DIR/fifo"
check "OUT a FIFO: the reader got the model" cmp -s "$DIR/from_fifo.onnx" "$DIR/ref.onnx"
cat "$DIR/fifo" >"$DIR/from_fifo.json" &
reader=$!
# shellcheck disable=SC2086
check "--report-json a FIFO: exit 0" status_is 0 "" compress "$IN" "$DIR/a.onnx" $PRUNE --report-json "$DIR/fifo"
wait $reader
check "--report-json a FIFO: the reader got the JSON" is_json "$DIR/from_fifo.json"
if [ "$(id -u)" -eq 0 ]; then
    mknod "$DIR/null" c 1 3 # the null device, as a node of our own
    # shellcheck disable=SC2086
    check "OUT a character device: exit 0" status_is 0 "" compress "$IN" "$DIR/null" $PRUNE --keep-masked "$DIR/null2"
    check "OUT a character device: still that device" test -c "$DIR/null"
    check "OUT a character device: nothing beside it" no_temp "$DIR/null"
else
    echo "e2e_outputs: note: not root, the character device case is skipped"
fi

# ---------------------------------------------------------------- symlinks
ln -s target.onnx "$DIR/link.onnx" # dangling: the target is created
# shellcheck disable=SC2086
check "OUT a dangling symlink: exit 0" status_is 0 "" compress "$IN" "$DIR/link.onnx" $PRUNE
check "OUT a dangling symlink: the link stays" test -L "$DIR/link.onnx"
check "OUT a dangling symlink: its target holds the model" cmp -s "$DIR/target.onnx" "$DIR/ref.onnx"
printf 'old' >"$DIR/target.onnx"
# shellcheck disable=SC2086
check "OUT a symlink to a file: exit 0" status_is 0 "" compress "$IN" "$DIR/link.onnx" $PRUNE
check "OUT a symlink to a file: the link stays" test -L "$DIR/link.onnx"
check "OUT a symlink to a file: the target replaced" cmp -s "$DIR/target.onnx" "$DIR/ref.onnx"
check "OUT a symlink to a file: no temporary file" no_temp "$DIR/target.onnx"
ln -s ../far.onnx "$DIR/sub/rel.onnx" # relative to the link's folder
ln -s ../far.json "$DIR/sub/rel.json"
ln -s sub/rel.json "$DIR/chain.json"  # a chain of two
# shellcheck disable=SC2086
check "relative link chain: exit 0" status_is 0 "" compress "$IN" "$DIR/sub/rel.onnx" $PRUNE --report-json "$DIR/chain.json"
check "relative link chain: links stay" test -L "$DIR/sub/rel.onnx" -a -L "$DIR/chain.json" -a -L "$DIR/sub/rel.json"
check "relative link: the model lands where it points" cmp -s "$DIR/far.onnx" "$DIR/ref.onnx"
check "link chain: the JSON lands where it ends" is_json "$DIR/far.json"
ln -s new.onnx "$DIR/new_link.onnx"
check "two outputs naming one new file (a dangling link and its target): exit 2" status_is 2 "is also OUT" \
    compress "$IN" "$DIR/new.onnx" --epochs 0 --keep-masked "$DIR/new_link.onnx"

# ---------------------------------------------------------------- other names of IN
ln "$IN" "$DIR/hard.onnx"
ln -s in.onnx "$DIR/in_link.onnx"
check "OUT a hard link of IN: exit 2" status_is 2 "OUT must differ from IN" compress "$IN" "$DIR/hard.onnx" --epochs 0
check "--report-json a hard link of IN: exit 2" status_is 2 "--report-json .*would overwrite IN" \
    compress "$IN" "$DIR/a.onnx" --epochs 0 --report-json "$DIR/hard.onnx"
check "--keep-masked a symlink to IN: exit 2" status_is 2 "--keep-masked .*would overwrite IN" \
    compress "$IN" "$DIR/a.onnx" --epochs 0 --keep-masked "$DIR/in_link.onnx"
check "train OUT a hard link of IN: exit 2" status_is 2 "is IN" train "$IN" "$DIR/hard.onnx" --epochs 1 --data "$DIR"
check "IN untouched by all of them" test "$(sum "$IN")" = "$IN_SUM"
check "IN's hard link still shares its inode" test "$DIR/hard.onnx" -ef "$IN"

# ---------------------------------------------------------------- refused kinds
if /usr/bin/python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$DIR/sock" 2>/dev/null; then
    check "OUT a socket: exit 1" status_is 1 "sock.*: is a socket" compress "$IN" "$DIR/sock" --epochs 0 --quiet
    check "OUT a socket: still a socket" test -S "$DIR/sock"
fi
mkdir "$DIR/folder.json"
check "--report-json a folder: exit 1" status_is 1 "folder.json.*: is a directory" \
    compress "$IN" "$DIR/a.onnx" --epochs 0 --quiet --report-json "$DIR/folder.json"
check "--report-json a folder: still a folder" test -d "$DIR/folder.json"

echo "e2e_outputs: $checks checks, $((checks - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
