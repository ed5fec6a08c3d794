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
UNIT_SRCS := $(wildcard tests/unit/*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/unit/%)

.PHONY: all deps check unit-check host-check qemu-check qemu-check-ci demo install clean
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

$(BUILD)/unit/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Isrc -o $@ $^ $(LDFLAGS) $(LDLIBS)

unit-check: $(UNIT_BINS)
	@./tests/run-unit-tests.sh $(UNIT_BINS)

host-check: $(BUILD)/luksipc
	@./tests/run-host-tests.sh

# Every host test: unit tests, then the image-file tests.
check: $(BUILD)/luksipc $(UNIT_BINS)
	@./tests/run-all.sh

# Every QEMU scenario (qemu-tests/scenarios/NN-*); about 20 minutes.
qemu-check: $(BUILD)/luksipc static
	@./qemu-tests/run-all

# The subset CI runs: dm-crypt equivalence, a flagged boot with dracut and
# with initramfs-tools, 3 power cuts, a no-op reboot, LUKS to LUKS at boot
# and through --readdev, a passphrase typed at the console, and the
# busybox-only initramfs with the static
# binary.
QEMU_CI_SCENARIOS ?= 01 10 11 12 13 17 18 19 20
qemu-check-ci: $(BUILD)/luksipc static
	@LUKSIPC_QEMU_CUTS=3 ./qemu-tests/run-all $(QEMU_CI_SCENARIOS)

demo: $(BUILD)/luksipc
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
	rm -rf $(BUILD)/obj $(BUILD)/unit $(BUILD)/luksipc

-include mk/static.mk
-include mk/install.mk
-include mk/fuzz.mk
