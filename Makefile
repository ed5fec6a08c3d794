# luksipc: one plain Makefile. Override CC, CFLAGS, PREFIX, DESTDIR as usual.
CC ?= gcc
PREFIX ?= /usr/local
DESTDIR ?=
BUILD := build
PKG_CONFIG ?= pkg-config

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes
ifeq ($(CI),true)
WARN += -Werror
endif
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 $(WARN) -pthread -D_FORTIFY_SOURCE=2 -fstack-protector-strong
CPPFLAGS += $(shell $(PKG_CONFIG) --cflags libcryptsetup blkid libcrypto 2>/dev/null)
LDLIBS += $(shell $(PKG_CONFIG) --libs libcryptsetup blkid libcrypto 2>/dev/null) -pthread

SRCS := $(wildcard src/*.c)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
OBJS := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o)
# The test build: the same sources with the LUKSIPC_TEST_* hooks compiled in
# (src/testhooks.h), in separate objects. The host tests run it; only
# build/luksipc (and build/luksipc.static) is installed.
TEST_DEFS := -DLUKSIPC_TEST_HOOKS
TEST_OBJS := $(SRCS:src/%.c=$(BUILD)/test-obj/%.o)
TEST_BIN := $(BUILD)/test/luksipc
UNIT_SRCS := $(wildcard tests/unit/*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/unit/%)

.PHONY: all deps check unit-check host-check qemu-check qemu-check-ci mutation-check demo install clean
all: $(BUILD)/luksipc

deps:
	@./tools/install-deps.sh

$(BUILD)/deps.stamp: tools/install-deps.sh $(wildcard tools/deps/*.list)
	@./tools/install-deps.sh
	@mkdir -p $(BUILD) && touch $@

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/deps.stamp
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/luksipc: $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test-obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/deps.stamp
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(TEST_DEFS) $(CFLAGS) -c -o $@ $<

$(TEST_BIN): $(TEST_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/unit/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Isrc -o $@ $^ $(LDFLAGS) $(LDLIBS)

unit-check: $(UNIT_BINS)
	@./tests/run-unit-tests.sh $(UNIT_BINS)

# The host tests run the test build (LUKSIPC= overrides it); t95 also runs
# the shipped build/luksipc to check it ignores every test hook.
host-check: $(BUILD)/luksipc $(TEST_BIN)
	@./tests/run-host-tests.sh

# Every host test: unit tests, then the image-file tests.
check: $(BUILD)/luksipc $(TEST_BIN) $(UNIT_BINS)
	@./tests/run-all.sh

# The crash tier must fail for every mutant of the write order: one per
# flush call in src/ and one per ordering decision (tests/mutation/, and
# docs/testing.md). Built with these flags and -DLUKSIPC_TEST_HOOKS in
# build/mutants/; prints `mutants: N killed, 0 survived`. A few minutes.
mutation-check: | $(BUILD)/deps.stamp
	@CC="$(CC)" CPPFLAGS="$(CPPFLAGS) -DLUKSIPC_TEST_HOOKS" CFLAGS="$(CFLAGS)" \
		LDFLAGS="$(LDFLAGS)" LDLIBS="$(LDLIBS)" BUILD="$(BUILD)" \
		/usr/bin/python3 tests/mutation/run.py

# Every QEMU scenario (qemu-tests/scenarios/NN-*); about 30 minutes. The
# scenarios that cut the power at a chosen point need the test builds.
qemu-check: $(BUILD)/luksipc $(TEST_BIN) static static-test
	@./qemu-tests/run-all

# The subset CI runs: dm-crypt equivalence, a flagged boot with dracut and
# with initramfs-tools, 3 power cuts, a no-op reboot, LUKS to LUKS at boot
# and through --readdev, a passphrase typed at the console, and the
# busybox-only initramfs with the static
# binary.
QEMU_CI_SCENARIOS ?= 01 10 11 12 13 17 18 19 20
qemu-check-ci: $(BUILD)/luksipc $(TEST_BIN) static static-test
	@LUKSIPC_QEMU_CUTS=3 ./qemu-tests/run-all $(QEMU_CI_SCENARIOS)

# The demo slows its first run down with a test hook (build/test/luksipc).
demo: $(BUILD)/luksipc $(TEST_BIN)
	@./tools/demo.sh

# The binary, the man pages, the dracut module and the initramfs-tools hook;
# the static binary too when `make static` has built it (the boot hooks
# prefer it).
install: $(BUILD)/luksipc install-boot
	install -D -m 0755 $(BUILD)/luksipc $(DESTDIR)$(PREFIX)/sbin/luksipc
	install -D -m 0644 docs/luksipc.8 $(DESTDIR)$(PREFIX)/share/man/man8/luksipc.8
	if [ -x $(BUILD)/luksipc.static ]; then \
		install -D -m 0755 $(BUILD)/luksipc.static $(DESTDIR)/usr/lib/luksipc/luksipc.static; fi

clean:
	rm -rf $(BUILD)/obj $(BUILD)/unit $(BUILD)/luksipc $(BUILD)/test-obj $(BUILD)/test

-include mk/static.mk
-include mk/install.mk
-include mk/fuzz.mk
