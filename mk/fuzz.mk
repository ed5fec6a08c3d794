# Fuzzing and sanitizer builds, included by the top-level Makefile, which
# defines BUILD, CC, SRCS and the flags ALL_CFLAGS, ALL_CPPFLAGS, ALL_LDLIBS.
#
#   make fuzz            build/fuzz/fuzz_state (libFuzzer, ASan, UBSan; clang)
#                        and its seed corpus build/fuzz/seeds, made by real
#                        runs of build/luksipc (tests/fuzz/make-seeds.sh)
#   make fuzz-check      runs it FUZZ_SECONDS (60) from the seeds; fails on
#                        any crash, leak, timeout or out-of-memory
#   make sanitize-check  build/asan/luksipc (ASan + UBSan) through a few host
#                        tests (SANITIZE_TESTS)

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS := -g -O1 -std=c11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
# The state store's parser, the I/O seam it reads through, and the engine's
# evidence check (with what the engine needs to link).
FUZZ_SRCS := src/state.c src/dev.c src/util.c src/engine.c src/geometry.c src/xts.c src/progress.c src/secmem.c src/usedmap.c
FUZZ_LIBS = $(shell $(PKG_CONFIG) --libs libcrypto) -pthread

ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
ASAN_OBJS := $(SRCS:src/%.c=$(BUILD)/asan/obj/%.o)
SANITIZE_TESTS ?= t10 t12 t60 t66 t67

.PHONY: fuzz fuzz-check sanitize-check

$(BUILD)/fuzz/fuzz_state: tests/fuzz/fuzz_state.c $(FUZZ_SRCS) $(wildcard src/*.h) | build-deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(ALL_CPPFLAGS) -Isrc -o $@ tests/fuzz/fuzz_state.c $(FUZZ_SRCS) $(FUZZ_LIBS)

# The seeds come from runs interrupted through LUKSIPC_TEST_FAULT: a binary
# that honours the test hooks.
FUZZ_SEED_LUKSIPC ?= $(TEST_BIN)

$(BUILD)/fuzz/seeds.stamp: tests/fuzz/make-seeds.sh $(FUZZ_SEED_LUKSIPC)
	rm -rf $(BUILD)/fuzz/seeds
	./tests/fuzz/make-seeds.sh $(FUZZ_SEED_LUKSIPC) $(BUILD)/fuzz/seeds
	@touch $@

fuzz: $(BUILD)/fuzz/fuzz_state $(BUILD)/fuzz/seeds.stamp

fuzz-check: fuzz
	@./tests/fuzz/run-fuzz.sh $(BUILD)/fuzz $(FUZZ_SECONDS)

$(BUILD)/asan/obj/%.o: src/%.c $(wildcard src/*.h) | build-deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) -DLUKSIPC_TEST_HOOKS $(ALL_CFLAGS) $(ASAN_FLAGS) -c -o $@ $<

$(BUILD)/asan/luksipc: $(ASAN_OBJS)
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) $(LDFLAGS) -o $@ $^ $(ALL_LDLIBS)

sanitize-check: $(BUILD)/asan/luksipc
	@ASAN_OPTIONS=abort_on_error=0:detect_leaks=1:exitcode=99 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=99 \
		LUKSIPC=$(abspath $(BUILD)/asan/luksipc) ./tests/run-host-tests.sh $(SANITIZE_TESTS)
