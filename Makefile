# luksipc: one plain Makefile. `make` builds build/luksipc and installs
# nothing; `make deps` installs the build dependencies (root). CC, CFLAGS,
# CPPFLAGS, LDFLAGS, LDLIBS, PREFIX and DESTDIR work as usual: the flags add
# to the ones luksipc needs (REQ_*), they never replace them.
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
REQ_CFLAGS := -std=c11 $(WARN) -pthread -fstack-protector-strong
# A _FORTIFY_SOURCE level in CPPFLAGS (Debian's dpkg-buildflags sets one)
# takes the place of ours instead of redefining it.
REQ_CPPFLAGS := $(if $(filter -D_FORTIFY_SOURCE%,$(CPPFLAGS)),,-D_FORTIFY_SOURCE=2)
# _FORTIFY_SOURCE does nothing without optimisation: Debian 12's glibc drops
# it silently, older ones with a #warning (an error under CI=true). So when
# the last -O of CFLAGS is -O0, or there is none, -Og is appended: the level
# meant for debugging, at which the __*_chk checks are compiled in.
OPT_FLOOR := $(if $(filter-out -O0,$(lastword $(filter -O%,$(CFLAGS)))),,-Og)
ifneq ($(OPT_FLOOR),)
$(info luksipc: CFLAGS has no optimisation; adding -Og, the least that _FORTIFY_SOURCE works with)
endif
# Recursive (=): pkg-config runs when a recipe needs the flags, after the
# build-deps check (and, for make check & co., after apt) has run.
PKG_CPPFLAGS = $(shell $(PKG_CONFIG) --cflags libcryptsetup blkid libcrypto ext2fs com_err 2>/dev/null)
PKG_LDLIBS = $(shell $(PKG_CONFIG) --libs libcryptsetup blkid libcrypto ext2fs com_err 2>/dev/null)
ALL_CFLAGS = $(REQ_CFLAGS) $(CFLAGS) $(OPT_FLOOR)
ALL_CPPFLAGS = $(PKG_CPPFLAGS) $(REQ_CPPFLAGS) $(CPPFLAGS)
ALL_LDLIBS = $(PKG_LDLIBS) -pthread $(LDLIBS)

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

.PHONY: all deps build-deps check unit-check host-check qemu-check qemu-check-ci qemu-ci-lists qemu-lifecycle-prep qemu-check-lifecycle-ci mutation-check demo install clean
all: $(BUILD)/luksipc

# Debian packages, by tools/deps/NAME.list. `make` and `make install`
# install none: build-deps only checks the build dependencies, and names
# the -dev package that is missing. These goals install their lists first
# (as root; tools/install-deps.sh), before anything is compiled.
GOAL_LISTS_deps := build
GOAL_LISTS_check := build tests
GOAL_LISTS_unit-check := build
GOAL_LISTS_host-check := build tests
GOAL_LISTS_mutation-check := build tests
GOAL_LISTS_fuzz := build tests
GOAL_LISTS_fuzz-check := build tests
GOAL_LISTS_sanitize-check := build tests
GOAL_LISTS_demo := build tests qemu
GOAL_LISTS_qemu-check := build tests qemu static
GOAL_LISTS_qemu-check-ci := build tests qemu static
GOAL_LISTS_qemu-lifecycle-prep := build tests qemu static
GOAL_LISTS_qemu-check-lifecycle-ci := build tests qemu
GOAL_LISTS_static-check := build static
GOAL_LISTS_static-smoke := build static
GOAL_LISTS_deb := build static deb
GOAL_LISTS_deb-check := build static deb
GOAL_LISTS := $(sort $(foreach g,$(MAKECMDGOALS),$(GOAL_LISTS_$(g))))

deps:
	@./tools/install-deps.sh $(GOAL_LISTS)

# Every compiled object waits for this (order-only): the packages the goals
# need, then the check that the compiler and the libraries are there.
build-deps:
ifneq ($(GOAL_LISTS),)
	@./tools/install-deps.sh $(GOAL_LISTS)
endif
	@./tools/check-build-deps.sh "$(CC)" "$(PKG_CONFIG)"

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | build-deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/luksipc: $(OBJS)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(ALL_LDLIBS)

$(BUILD)/test-obj/%.o: src/%.c $(wildcard src/*.h) | build-deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) $(TEST_DEFS) $(ALL_CFLAGS) -c -o $@ $<

$(TEST_BIN): $(TEST_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(ALL_LDLIBS)

$(BUILD)/unit/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -Isrc -o $@ $^ $(LDFLAGS) $(ALL_LDLIBS)

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
mutation-check: | build-deps
	@CC="$(CC)" CPPFLAGS="$(ALL_CPPFLAGS) -DLUKSIPC_TEST_HOOKS" CFLAGS="$(ALL_CFLAGS)" \
		LDFLAGS="$(LDFLAGS)" LDLIBS="$(ALL_LDLIBS)" BUILD="$(BUILD)" \
		/usr/bin/python3 tests/mutation/run.py

# Every QEMU scenario (qemu-tests/scenarios/NN-*); about 30 minutes. The
# scenarios that cut the power at a chosen point need the test builds.
qemu-check: $(BUILD)/luksipc $(TEST_BIN) static static-test
	@./qemu-tests/run-all

# The subset CI runs: dm-crypt equivalence, a flagged boot with dracut, 2
# power cuts (3 in qemu-check; 2 keep CI nearer its 25 minutes), a no-op reboot (every byte unchanged), LUKS to LUKS at boot
# and through --readdev, a passphrase typed at the console, the
# busybox-only initramfs with the static binary, and settings from
# credentials. 11 (a flagged boot with initramfs-tools) left it when CI's
# lifecycle (qemu-check-lifecycle-ci) came: its boots 1-2 convert with
# initramfs-tools on a real Debian root.
QEMU_CI_SCENARIOS ?= 01 10 12 13 17 18 19 20 26
# .ci/run splits them: QEMU_CI_BG runs after the lifecycle, beside the host
# tiers' end; the rest in the foreground. Together they are the list above.
QEMU_CI_BG := 17 19 26
QEMU_CI_FG := $(filter-out $(QEMU_CI_BG),$(QEMU_CI_SCENARIOS))
qemu-check-ci: $(BUILD)/luksipc $(TEST_BIN) static static-test
	@LUKSIPC_QEMU_CUTS=2 ./qemu-tests/run-all $(QEMU_CI_SCENARIOS)

# CI's lifecycle on a real Debian 12 root (issue 13): QEMU scenario 22 (GRUB
# installed on the disk and arm --also /srv/data in the running system, a
# cut mid-conversion, finalize cut in update-grub, a boot without flags,
# every boot after the first from the disk's GRUB) with the guest's
# initramfs-tools at MODULES=dep and
# a 560 MiB root, so each rebuild under TCG takes about a minute. .ci/run
# starts it beside the host tiers, after qemu-lifecycle-prep has installed
# the packages and built what it installs into the root.
# It also builds what every QEMU target needs, so that the makes CI runs
# side by side never build the same file.
qemu-lifecycle-prep: $(BUILD)/luksipc $(TEST_BIN) static static-test
qemu-ci-lists:
	@echo "QEMU_CI_BG='$(QEMU_CI_BG)' QEMU_CI_FG='$(QEMU_CI_FG)'"
qemu-check-lifecycle-ci: $(BUILD)/luksipc
	@REALBOOT_ROOT_MIB=560 REALBOOT_FULL_PCT=60 REALBOOT_MODULES=dep ./qemu-tests/run-all 22

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
	rm -rf $(BUILD)/obj $(BUILD)/unit $(BUILD)/luksipc $(BUILD)/test-obj $(BUILD)/test $(BUILD)/deb

-include mk/static.mk
-include mk/install.mk
-include mk/fuzz.mk
-include mk/deb.mk
