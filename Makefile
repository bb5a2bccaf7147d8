# onnx-sfp: make | make test | make asan | make bench | make demo | make install | make clean
CC ?= gcc
ifeq ($(origin CC),default)
CC = gcc
endif
# MPI=1: the data-parallel build (src/dist/dist_mpi.c, compiled and linked by
# mpicc) in its own folder; otherwise src/dist/dist_single.c (one process).
ifeq ($(MPI),1)
CC := mpicc
BUILD ?= build-mpi
DIST_SKIP := src/dist/dist_single.c
else
BUILD ?= build
DIST_SKIP := src/dist/dist_mpi.c
endif
GEN := $(BUILD)/gen
PREFIX ?= /usr/local
OPT ?= -O2
PKGS := libprotobuf-c openblas cmocka json-c
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS ?= $(OPT) -g
# -fPIC: the same objects make the static and the shared library.
CFLAGS += -std=c11 -Wall -Wextra -Werror -Wshadow -Wdouble-promotion -fno-strict-aliasing -fPIC $(SAN_FLAGS)
LDFLAGS += $(SAN_FLAGS)
CPPFLAGS += -Iinclude -Isrc -I$(GEN) $(PKG_CFLAGS) -MMD -MP
LDLIBS += $(PKG_LIBS) -lz -lm -lpthread

LIB_SRC := $(filter-out $(DIST_SKIP),$(shell find src -name '*.c' -not -path 'src/cli/*' | sort))
CLI_SRC := $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(GEN)/onnx.pb-c.o
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TOOL_BIN := $(BUILD)/tests/sfp-roundtrip $(BUILD)/tests/sfp-distill-loss

.PHONY: all test check asan bench demo install clean deps refs
# The shared library exports the public API only (src/onnxsfp.map) and
# records its own dependencies, so `-lonnxsfp` alone links a program.
SO_NAME := libonnxsfp.so.0
SO_FILE := libonnxsfp.so.0.1.0
SO_LIBS := $(shell pkg-config --libs libprotobuf-c openblas json-c 2>/dev/null) -lz -lm -lpthread
ifneq ($(MPI),1)
SHARED_LIB := $(BUILD)/$(SO_FILE)
endif

all: $(BUILD)/onnx-sfp $(BUILD)/libonnxsfp.a $(SHARED_LIB)

include proto/schema.mk

$(GEN)/onnx.pb-c.o: $(GEN)/onnx.pb-c.c
	$(CC) $(filter-out -Werror -Wshadow -Wdouble-promotion,$(CFLAGS)) -Wno-unused-parameter $(CPPFLAGS) -c $< -o $@

# Objects depend on the compiler and flags they were built with (a changed
# flag, such as -fPIC for the shared library, rebuilds them).
FLAGS_STAMP := $(BUILD)/.flags
BUILD_FLAGS := $(CC) $(CFLAGS) $(CPPFLAGS)
$(FLAGS_STAMP): FORCE
	@mkdir -p $(BUILD)
	@echo '$(BUILD_FLAGS)' | cmp -s - $@ || echo '$(BUILD_FLAGS)' > $@
.PHONY: FORCE
FORCE:

$(BUILD)/%.o: %.c $(FLAGS_STAMP) | $(GEN)/onnx.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CPPFLAGS) -c $< -o $@

$(BUILD)/libonnxsfp.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/$(SO_FILE): $(LIB_OBJ) src/onnxsfp.map
	$(CC) -shared $(CFLAGS) $(LDFLAGS) -Wl,-soname,$(SO_NAME) -Wl,--version-script=src/onnxsfp.map -Wl,--no-undefined \
	  $(LIB_OBJ) $(SO_LIBS) -o $@

$(BUILD)/onnx-sfp: $(CLI_OBJ) $(BUILD)/libonnxsfp.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libonnxsfp.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/sfp-roundtrip: $(BUILD)/tests/tools/sfp_roundtrip.o $(BUILD)/libonnxsfp.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/sfp-distill-loss: $(BUILD)/tests/tools/sfp_distill_loss.o $(BUILD)/libonnxsfp.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Unit tests (CMocka) first, then the end-to-end scripts against the outside
# references (PyTorch exports, onnx.checker, ONNX Runtime).
test: deps
	$(MAKE) check

# The same without installing packages. Where mpicc exists the MPI build
# (build-mpi/, no sanitizers) is made too, for tests/e2e_mpi.sh.
ifneq ($(MPI),1)
ifneq ($(shell command -v mpicc 2>/dev/null),)
MPI_BUILD := build-mpi
endif
endif

MPI_MAKE = $(MAKE) MPI=1 BUILD=$(MPI_BUILD) SAN_FLAGS= OPT=-O2
.PHONY: mpi-build
mpi-build:
	$(if $(MPI_BUILD),$(MPI_MAKE) all)

# E2E="faults run": only those end-to-end scripts (default: every tests/e2e_*.sh).
check: all $(TEST_BIN) $(TOOL_BIN) mpi-build
	@BUILD=$(BUILD) MPI_BUILD=$(MPI_BUILD) E2E="$(E2E)" tests/run-all.sh $(TEST_BIN)

# Under ASan + UBSan: every unit test, the hostile-input suites (broken models
# and data, output faults and paths, gates) and the fast end-to-end suites.
# The long runs (compress, compress_ft, train, train_step, refs, run, zoo,
# trained_bn, numbers, input_shape) are the plain pass's; the kernels meet
# ASan in test_kernels, test_conformance and the forward passes of eval,
# detect and json. e2e_mpi uses the MPI build, which has no sanitizers;
# `make asan-full` runs every suite under the sanitizers.
ASAN_E2E := bad_models bad_data old_ir faults outputs gates json cli eval detect bench groups_json gen_defects report_page
ASAN_MAKE = $(MAKE) BUILD=build-asan OPT=-O1 \
	  SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
.PHONY: asan-full
asan: deps
	$(ASAN_MAKE) E2E="$(ASAN_E2E)" check

asan-full: deps
	$(ASAN_MAKE) check

refs:
	/usr/bin/python3 tools/export_refs.py $(BUILD)/refs

deps:
	tools/install-deps.sh

# The main job on the default model: the shipped ResNet-20 trained on
# Fashion-MNIST (models/fmnist-resnet20.onnx) is compressed with soft-smooth
# pruning at rate 0.4 while fine-tuning 2 epochs on 9,000 training images
# (1,000 more held out for validation), then `report` compares both models and
# `eval` measures both on the 10,000 test images. A few minutes on 2 cores.
DEMO := $(BUILD)/demo
FMNIST := /usr/share/datasets/fashion-mnist
demo: deps
	$(MAKE) all
	@mkdir -p $(DEMO)
	$(BUILD)/onnx-sfp compress models/fmnist-resnet20.onnx $(DEMO)/fmnist-resnet20-pruned.onnx \
	  --data $(FMNIST) --limit 10000 --epochs 2 --rate 0.4 --method smooth \
	  --keep-masked $(DEMO)/fmnist-resnet20-masked.onnx --report-json $(DEMO)/report.json
	$(BUILD)/onnx-sfp report models/fmnist-resnet20.onnx $(DEMO)/fmnist-resnet20-pruned.onnx
	@echo "== test accuracy of the original and the compressed model (10,000 Fashion-MNIST test images)"
	$(BUILD)/onnx-sfp eval models/fmnist-resnet20.onnx --data $(FMNIST)
	$(BUILD)/onnx-sfp eval $(DEMO)/fmnist-resnet20-pruned.onnx --data $(FMNIST)

# The defect workflow on the shipped defect model (models/defects-resnet20.onnx,
# ResNet-20 trained on 200x200 generated images fitted to 96x96 grayscale, 7
# classes; DEFECT_MODEL=... takes another): generate fresh images at the
# generator's default size with another seed than the model's training set
# (1,000 train + 100 test a class), compress with soft-smooth pruning at rate 0.5
# (channel counts stay multiples of 8, which ONNX Runtime's blocked kernels
# need to gain from pruning) while fine-tuning 6 epochs at lr 0.005 with the
# original as teacher (--distill; DEFECT_TRAIN, DEFECT_EPOCHS, DEFECT_LR,
# DEFECT_COMPRESS change it), `detect` the 700 test images with both models
# side by side at the shipped model's operating point (--ok-threshold 0.6,
# models/README.md; DEFECT_DETECT) (text, JSON and an HTML page), time
# both at batch 1 on the same images in onnx-sfp (`bench --data`) and in ONNX
# Runtime (bench/ort_images.js), one thread each, and check the compressed
# model: accuracy and escape rate within 1 point, >= 2x faster in both.
DEMO_DEFECTS := $(BUILD)/demo-defects
DEFECT_MODEL ?= models/defects-resnet20.onnx
DEFECT_TRAIN ?= 1000
DEFECT_EPOCHS ?= 6
DEFECT_LR ?= 0.005
DEFECT_COMPRESS ?= --method smooth --distill
DEFECT_DETECT ?= --ok-threshold 0.6
.PHONY: demo-defects
demo-defects: deps
	$(MAKE) all
	@mkdir -p $(DEMO_DEFECTS)
	@grep -m1 'model name' /proc/cpuinfo
	/usr/bin/python3 tools/gen_defects.py $(DEMO_DEFECTS)/data --split $(DEFECT_TRAIN),100 --seed 7 --force
	$(BUILD)/onnx-sfp compress $(DEFECT_MODEL) $(DEMO_DEFECTS)/defects-pruned.onnx \
	  --data $(DEMO_DEFECTS)/data --epochs $(DEFECT_EPOCHS) --rate 0.5 $(DEFECT_COMPRESS) --batch 32 --lr $(DEFECT_LR) \
	  --crop-pad 8 --report-json $(DEMO_DEFECTS)/report.json
	@echo "== detect with both models on the 700 test images ($(DEMO_DEFECTS)/detect.html)"
	$(BUILD)/onnx-sfp detect $(DEFECT_MODEL) $(DEMO_DEFECTS)/defects-pruned.onnx $(DEMO_DEFECTS)/data \
	  $(DEFECT_DETECT) --html $(DEMO_DEFECTS)/detect.html --json --threads 1 > $(DEMO_DEFECTS)/detect.json
	@echo "== batch-1 latency on the same images: onnx-sfp, then ONNX Runtime (1 thread each)"
	$(BUILD)/onnx-sfp bench $(DEFECT_MODEL) $(DEMO_DEFECTS)/defects-pruned.onnx --data $(DEMO_DEFECTS)/data \
	  --limit 700 --threads 1 --json > $(DEMO_DEFECTS)/bench.json
	/usr/bin/python3 tools/defect_inputs.py $(DEFECT_MODEL) $(DEMO_DEFECTS)/data $(DEMO_DEFECTS)/x.pb \
	  $(DEMO_DEFECTS)/labels.json
	node bench/ort_images.js $(DEFECT_MODEL) $(DEMO_DEFECTS)/x.pb $(DEMO_DEFECTS)/labels.json \
	  > $(DEMO_DEFECTS)/ort-original.json
	node bench/ort_images.js $(DEMO_DEFECTS)/defects-pruned.onnx $(DEMO_DEFECTS)/x.pb $(DEMO_DEFECTS)/labels.json \
	  > $(DEMO_DEFECTS)/ort-pruned.json
	/usr/bin/python3 tools/demo_defects_check.py $(DEMO_DEFECTS)/detect.json $(DEMO_DEFECTS)/bench.json \
	  $(DEMO_DEFECTS)/ort-original.json $(DEMO_DEFECTS)/ort-pruned.json

$(BUILD)/bench/train_step: $(BUILD)/bench/train_step.o $(BUILD)/libonnxsfp.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/bench/conv_gflops: $(BUILD)/bench/conv_gflops.o $(BUILD)/libonnxsfp.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The collectives of a step alone (meaningful in the MPI build, under mpirun).
$(BUILD)/bench/dist_sum: $(BUILD)/bench/dist_sum.o $(BUILD)/libonnxsfp.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

bench: all $(BUILD)/bench/train_step $(BUILD)/bench/conv_gflops
	$(BUILD)/bench/conv_gflops --threads 1
	sh bench/infer_vs_ort.sh
	sh bench/train_vs_torch.sh
	sh bench/compress_latency.sh
	@if [ -n "$(MPI_BUILD)" ]; then $(MPI_MAKE) all $(MPI_BUILD)/bench/dist_sum && BUILD=$(BUILD) MPI_BUILD=$(MPI_BUILD) sh bench/mpi_scaling.sh; \
	  else echo "bench/mpi_scaling.sh skipped: no mpicc (apt-get install libopenmpi-dev openmpi-bin)"; fi
	@if [ "$(ACCURACY)" = 1 ]; then sh bench/accuracy_vs_torch.sh; else echo "bench/accuracy_vs_torch.sh skipped (~35 min on 2 cores): make bench ACCURACY=1"; fi
	@if [ "$(PRUNE)" = 1 ]; then sh bench/prune_accuracy.sh; else echo "bench/prune_accuracy.sh skipped (ResNet-20, all images, 1 epoch: 43 min measured with THREADS=1; LIMIT=N shortens it): make bench PRUNE=1"; fi

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/onnxsfp \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 $(BUILD)/onnx-sfp $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(BUILD)/libonnxsfp.a $(DESTDIR)$(PREFIX)/lib/
	install -m 0755 $(BUILD)/$(SO_FILE) $(DESTDIR)$(PREFIX)/lib/
	ln -sf $(SO_FILE) $(DESTDIR)$(PREFIX)/lib/$(SO_NAME)
	ln -sf $(SO_NAME) $(DESTDIR)$(PREFIX)/lib/libonnxsfp.so
	install -m 0644 include/onnxsfp/*.h $(DESTDIR)$(PREFIX)/include/onnxsfp/
	sed -e 's|@PREFIX@|$(PREFIX)|g' docs/onnxsfp.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/onnxsfp.pc
	install -m 0644 docs/onnx-sfp.1 $(DESTDIR)$(PREFIX)/share/man/man1/

clean:
	rm -rf build build-asan build-mpi

# Fuzzing and the hostile-input corpus (tests/fuzz/fuzz.mk, when present).
-include tests/fuzz/fuzz.mk
include tests/memcheck.mk

-include $(shell find $(BUILD) build-asan build-mpi -name '*.d' 2>/dev/null)
