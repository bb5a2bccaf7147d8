# How the ONNX schema becomes C: Debian's libonnx-dev ships onnx.proto, protoc-c
# (protobuf-c-compiler) compiles it into the build folder. Nothing generated is
# committed. Override ONNX_PROTO to build against another copy of the schema.
ONNX_PROTO ?= /usr/include/onnx/onnx.proto
PROTOC_C ?= protoc-c

# protoc-c writes both files in one run: one rule makes the header, and the
# source comes with it (two targets of one rule would run it twice under -j).
$(GEN)/onnx.pb-c.c: $(GEN)/onnx.pb-c.h ;
$(GEN)/onnx.pb-c.h: $(ONNX_PROTO) proto/schema.mk
	@mkdir -p $(GEN)
	@test -f $(ONNX_PROTO) || { echo "missing $(ONNX_PROTO): run tools/install-deps.sh (libonnx-dev)"; exit 1; }
	cp $(ONNX_PROTO) $(GEN)/onnx.proto
	cd $(GEN) && $(PROTOC_C) --c_out=. onnx.proto
