# make memcheck: valgrind's memcheck over a small end-to-end run; any invalid
# access, use of uninitialised memory or definite leak fails it (exit 99):
#   init + compress of a CIFAR ResNet-20 for 1x28x28 (--epochs 0, rate 0.5,
#   --keep-masked, --report-json), eval of the pruned model on 64 Fashion-MNIST
#   test images, report --json of both models;
#   eval on an image folder of every decoded format (the decoding child runs
#   under memcheck too) and on four broken data sets, whose error paths must
#   end in exit 3 with nothing leaked; detect of both models on the folder
#   with a corrupt PNG (skipped), with --min-confidence and the page.
# OpenBLAS runs single-threaded (its threads only slow valgrind down); our
# own thread pool and loader thread run as usual, except that the pool does
# not spin between loops (SFP_SPIN_US=0: valgrind runs one thread at a time,
# so a spinning one only waits its slice out). Reports go to one log per
# process (the image decoding child's stderr is /dev/null and the parent does
# not read its exit status): any non-empty log fails the target.
VALGRIND ?= valgrind
MEMCHECK_DIR := $(BUILD)/memcheck
MEMCHECK_FASHION ?= /usr/share/datasets/fashion-mnist
MEMCHECK_BAD := idx_gz_truncated idx_label_beyond_classes cifar_partial_record img_corrupt_png
MEMCHECK_RUN := OPENBLAS_NUM_THREADS=1 SFP_SPIN_US=0 $(VALGRIND) --error-exitcode=99 --leak-check=full \
  --errors-for-leak-kinds=definite --quiet --log-file=$(MEMCHECK_DIR)/logs/%p.log $(BUILD)/onnx-sfp

.PHONY: memcheck
memcheck: all
	@rm -rf $(MEMCHECK_DIR) && mkdir -p $(MEMCHECK_DIR)/logs
	$(MEMCHECK_RUN) init resnet20 $(MEMCHECK_DIR)/r20.onnx --input 1x28x28 --classes 10 --seed 1 --quiet
	$(MEMCHECK_RUN) compress $(MEMCHECK_DIR)/r20.onnx $(MEMCHECK_DIR)/r20-pruned.onnx --epochs 0 --rate 0.5 \
	  --keep-masked $(MEMCHECK_DIR)/r20-masked.onnx --report-json $(MEMCHECK_DIR)/compress.json --quiet
	$(MEMCHECK_RUN) eval $(MEMCHECK_DIR)/r20-pruned.onnx --data $(MEMCHECK_FASHION) --limit 64 --quiet
	$(MEMCHECK_RUN) report $(MEMCHECK_DIR)/r20.onnx $(MEMCHECK_DIR)/r20-pruned.onnx --json >$(MEMCHECK_DIR)/report.json
	/usr/bin/python3 tests/bad_data/gen_bad_data.py $(MEMCHECK_DIR)/data >/dev/null
	$(MEMCHECK_RUN) eval $(MEMCHECK_DIR)/r20-pruned.onnx --data $(MEMCHECK_DIR)/data/img_ok --quiet
	$(MEMCHECK_RUN) detect $(MEMCHECK_DIR)/r20.onnx $(MEMCHECK_DIR)/r20-pruned.onnx \
	  $(MEMCHECK_DIR)/data/img_corrupt_png --min-confidence 0.5 --html $(MEMCHECK_DIR)/detect.html --json \
	  --quiet >$(MEMCHECK_DIR)/detect.json
	@for c in $(MEMCHECK_BAD); do echo "memcheck: eval on $$c (exit 3 expected)"; \
	  $(MEMCHECK_RUN) eval $(MEMCHECK_DIR)/r20-pruned.onnx --data $(MEMCHECK_DIR)/data/$$c --quiet; \
	  rc=$$?; [ $$rc -eq 3 ] || { echo "memcheck: $$c gave exit $$rc"; exit 1; }; done
	@for f in $(MEMCHECK_DIR)/logs/*.log; do if [ -s $$f ]; then cat $$f; failed=1; fi; done; \
	  if [ -n "$$failed" ]; then echo "memcheck: errors (above)"; exit 1; fi
	@echo "memcheck: clean ($$(ls $(MEMCHECK_DIR)/logs | wc -l) processes)"
