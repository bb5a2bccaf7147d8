# make fuzz: the libFuzzer harness tests/fuzz/fuzz_model.c built with clang,
# ASan and UBSan into $(BUILD)/fuzz (the library sources compiled again with
# clang and the fuzzer's coverage flags; the gcc objects are not reused), a
# seed corpus from the hostile-input generator's valid models and ONNX's
# PyTorch test models, then a bounded run. Crashers land in $(FUZZ_DIR)/crashes.
#   make fuzz FUZZ_SECONDS=900          longer run
#   make fuzz-build                     only build $(FUZZ_DIR)/fuzz_model
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_MAX_LEN ?= 300000
FUZZ_JOBS ?= 1
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -g -O1 -std=c11 -Wall -Wextra -Wno-unused-parameter $(FUZZ_SAN)
FUZZ_OBJ := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o) $(FUZZ_DIR)/obj/onnx.pb-c.o
FUZZ_TESTDATA ?= /usr/share/libonnx-testdata/data/pytorch-converted

.PHONY: fuzz fuzz-build fuzz-seeds

fuzz-build: $(FUZZ_DIR)/fuzz_model

$(FUZZ_DIR)/obj/%.o: %.c | $(GEN)/onnx.pb-c.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -Iinclude -Isrc -I$(GEN) $(PKG_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/obj/onnx.pb-c.o: $(GEN)/onnx.pb-c.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -I$(GEN) $(PKG_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/fuzz_model: tests/fuzz/fuzz_model.c $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Iinclude -Isrc -I$(GEN) $(PKG_CFLAGS) $^ $(PKG_LIBS) -lz -lm -lpthread -o $@

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

fuzz: fuzz-build fuzz-seeds
	cd $(FUZZ_DIR) && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ./fuzz_model -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAX_LEN) -rss_limit_mb=2048 \
	  -timeout=20 -dict=$(CURDIR)/tests/fuzz/onnx.dict -jobs=$(FUZZ_JOBS) -workers=$(FUZZ_JOBS) -artifact_prefix=crashes/ -print_final_stats=1 corpus seeds
