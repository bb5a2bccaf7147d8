# make fuzz: the libFuzzer harnesses built with clang, ASan and UBSan into
# $(BUILD)/fuzz (the library sources compiled again with clang and the
# fuzzer's coverage flags; the gcc objects are not reused), each run for
# FUZZ_SECONDS from a seed corpus:
#   fuzz_model (tests/fuzz/fuzz_model.c): the hostile-input generator's valid
#     models and ONNX's PyTorch test models; crashers in $(FUZZ_DIR)/crashes;
#   fuzz_idx, fuzz_cifar, fuzz_image (tests/fuzz/fuzz_data.c, one per data
#     format): seeds from tests/bad_data/gen_bad_data.py --fuzz-seeds;
#     crashers in $(FUZZ_DIR)/data-crashes/<harness>/.
#   make fuzz FUZZ_SECONDS=900          longer runs
#   make fuzz-model | fuzz-data         one side only
#   make fuzz-build                     only build the harnesses
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_MAX_LEN ?= 300000
FUZZ_JOBS ?= 1
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -g -O1 -std=c11 -Wall -Wextra -Wno-unused-parameter $(FUZZ_SAN)
# Objects record their header dependencies (the top Makefile includes every
# .d under $(BUILD)), so an incremental fuzz build recompiles what a header
# change touches instead of linking objects built against an older header.
FUZZ_DEPFLAGS := -MMD -MP
FUZZ_OBJ := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o) $(FUZZ_DIR)/obj/onnx.pb-c.o
FUZZ_TESTDATA ?= /usr/share/libonnx-testdata/data/pytorch-converted

FUZZ_DATA_HARNESSES := idx cifar image
FUZZ_DATA_MAX_LEN ?= 65536
# The data harnesses decode images in-process (SFP_IMAGE_IN_PROCESS), so
# image.c is compiled a second time for them.
FUZZ_DATA_OBJ := $(filter-out $(FUZZ_DIR)/obj/src/data/image.o,$(FUZZ_OBJ)) $(FUZZ_DIR)/obj/image_in_process.o

.PHONY: fuzz fuzz-build fuzz-seeds fuzz-model fuzz-data fuzz-data-seeds

fuzz-build: $(FUZZ_DIR)/fuzz_model $(FUZZ_DATA_HARNESSES:%=$(FUZZ_DIR)/fuzz_%)

$(FUZZ_DIR)/obj/%.o: %.c | $(GEN)/onnx.pb-c.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_DEPFLAGS) -fsanitize=fuzzer-no-link -Iinclude -Isrc -I$(GEN) $(PKG_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/obj/onnx.pb-c.o: $(GEN)/onnx.pb-c.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -I$(GEN) $(PKG_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/fuzz_model: tests/fuzz/fuzz_model.c $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Iinclude -Isrc -I$(GEN) $(PKG_CFLAGS) $^ $(PKG_LIBS) -lz -lm -lpthread -o $@

# stb_image's JPEG decoder shifts by a negative count on corrupt Huffman
# streams (stb_image.h:2065, stbi__grow_buffer_unsafe; found by fuzz_image):
# undefined in C, a masked count on x86, no memory touched, and in real runs
# the decoder lives in a child process. Likewise stb_image.h:5130 computes
# idata + 0 with idata still NULL for a first IDAT chunk of length 0, then
# memcpy(NULL, src, 0) (stb_image.h:1663; found by fuzz_image in CI; nothing
# is read or written). Shift, pointer-overflow and nonnull-attribute checks
# are off for this file so the fuzzer looks for what matters here (memory
# errors, our own UB).
$(FUZZ_DIR)/obj/image_in_process.o: src/data/image.c | $(GEN)/onnx.pb-c.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_DEPFLAGS) -fno-sanitize=shift,pointer-overflow,nonnull-attribute -fsanitize=fuzzer-no-link -DSFP_IMAGE_IN_PROCESS -Iinclude -Isrc -I$(GEN) $(PKG_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_data.c $(FUZZ_DATA_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -DFUZZ_DATA_$(shell echo $* | tr a-z A-Z) -Iinclude -Isrc -I$(GEN) \
	  $(PKG_CFLAGS) $^ $(PKG_LIBS) -lz -lm -lpthread -o $@

# Seeds: the valid models of the hostile-input corpus, the regression files,
# and ONNX's small PyTorch-converted test models (when libonnx-testdata is there).
fuzz-seeds:
	@mkdir -p $(FUZZ_DIR)/seeds $(FUZZ_DIR)/corpus $(FUZZ_DIR)/crashes
	/usr/bin/python3 tests/bad/gen_bad_models.py $(FUZZ_DIR)/gen >/dev/null
	cp $(FUZZ_DIR)/gen/good.onnx $(FUZZ_DIR)/gen/inputs/*.onnx $(FUZZ_DIR)/gen/unsup/transpose_report_ok.onnx \
	   $(FUZZ_DIR)/gen/nest/if_3.onnx $(FUZZ_DIR)/seeds/
	-cp tests/bad/regress/*.onnx $(FUZZ_DIR)/seeds/ 2>/dev/null
	@if [ -d $(FUZZ_TESTDATA) ]; then for d in $(FUZZ_TESTDATA)/*/; do \
	  f=$$d/model.onnx; [ -f $$f ] && [ $$(stat -c %s $$f) -le $(FUZZ_MAX_LEN) ] && \
	  cp $$f $(FUZZ_DIR)/seeds/$$(basename $$d).onnx; done; true; fi

fuzz: fuzz-model fuzz-data

fuzz-model: $(FUZZ_DIR)/fuzz_model fuzz-seeds
	cd $(FUZZ_DIR) && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ./fuzz_model -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAX_LEN) -rss_limit_mb=2048 \
	  -timeout=20 -dict=$(CURDIR)/tests/fuzz/onnx.dict -jobs=$(FUZZ_JOBS) -workers=$(FUZZ_JOBS) -artifact_prefix=crashes/ -print_final_stats=1 corpus seeds

# Data seeds: small valid IDX (raw, .gz), CIFAR-10/100 batches and images of
# every format, each behind the harness's variant byte; then the regression
# files of tests/bad_data/regress/<harness>/.
fuzz-data-seeds:
	@rm -rf $(FUZZ_DIR)/data-seeds
	/usr/bin/python3 tests/bad_data/gen_bad_data.py --fuzz-seeds $(FUZZ_DIR)/data-seeds >/dev/null
	@for h in $(FUZZ_DATA_HARNESSES); do mkdir -p $(FUZZ_DIR)/data-corpus/$$h $(FUZZ_DIR)/data-crashes/$$h; \
	  if [ -d tests/bad_data/regress/$$h ]; then cp tests/bad_data/regress/$$h/* $(FUZZ_DIR)/data-seeds/$$h/; fi; done

# Each data harness for FUZZ_SECONDS; allocations above 512 MB count as
# findings (no input of FUZZ_DATA_MAX_LEN bytes justifies them).
fuzz-data: $(FUZZ_DATA_HARNESSES:%=$(FUZZ_DIR)/fuzz_%) fuzz-data-seeds
	@set -e; for h in $(FUZZ_DATA_HARNESSES); do echo "== fuzz_$$h"; \
	  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(FUZZ_DIR)/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_DATA_MAX_LEN) -rss_limit_mb=2048 \
	  -malloc_limit_mb=512 -timeout=20 $(if $(filter-out 1,$(FUZZ_JOBS)),-jobs=$(FUZZ_JOBS) -workers=$(FUZZ_JOBS)) \
	  -artifact_prefix=$(FUZZ_DIR)/data-crashes/$$h/ -print_final_stats=1 \
	  $(FUZZ_DIR)/data-corpus/$$h $(FUZZ_DIR)/data-seeds/$$h; done
