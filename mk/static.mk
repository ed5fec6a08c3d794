# Fully static build of luksipc, included by the top-level Makefile, which
# defines SRCS, CC, BUILD and the flags ALL_CFLAGS and ALL_CPPFLAGS (what
# luksipc needs plus the user's CFLAGS and CPPFLAGS).
#
#   make static        build/luksipc.static (checks `file` says statically linked)
#   make static-test   build/luksipc.static.test: the same with the LUKSIPC_TEST_*
#                      hooks (TEST_DEFS), for the QEMU scenarios that need
#                      delays or faults in the guest; never installed
#   make static-check  file + ldd on build/luksipc.static; no LUKSIPC_TEST_ strings in it
#   make static-smoke  build and run static/smoke.c, statically linked
#   make static-deps   only the dependency cache (build/static-deps)
#   make static-clean  remove the static objects and binaries, keep the cache
#   make -s static-built-using
#                      the source packages the static binary holds code of,
#                      as a Debian relation list (debian/rules puts it in
#                      luksipc-initramfs's Built-Using)
#
# Debian ships no libcryptsetup.a nor libdevmapper.a: static/build-deps.sh
# builds them from Debian's source packages into $(STATIC_DEPS)/prefix once;
# its stamp file keeps later runs from redoing it (rm -rf build/static-deps,
# or edit the script, to rebuild). The other .a files come from Debian -dev
# packages (tools/deps/static.list).

STATIC_DEPS   := $(BUILD)/static-deps
STATIC_PREFIX := $(abspath $(STATIC_DEPS)/prefix)
STATIC_STAMP  := $(STATIC_DEPS)/stamp
STATIC_OBJDIR := $(BUILD)/static-obj
STATIC_BIN    := $(BUILD)/luksipc.static
STATIC_SMOKE  := $(BUILD)/static-smoke
STATIC_TEST_OBJDIR := $(BUILD)/static-test-obj
STATIC_TEST_BIN    := $(BUILD)/luksipc.static.test

STATIC_PC_MODULES := libcryptsetup blkid libcrypto ext2fs
STATIC_PKG_CONFIG := PKG_CONFIG_PATH=$(STATIC_PREFIX)/lib/pkgconfig pkg-config --static
# Recursive (=): expanded when a recipe runs, i.e. after the stamp exists.
STATIC_CFLAGS  = $(shell $(STATIC_PKG_CONFIG) --cflags $(STATIC_PC_MODULES))
# The group makes the order of the archives irrelevant (blkid <-> uuid,
# cryptsetup -> devmapper/json-c/argon2/crypto).
STATIC_LDLIBS  = -Wl,--start-group $(shell $(STATIC_PKG_CONFIG) --libs $(STATIC_PC_MODULES)) \
		 -Wl,--end-group -pthread
STATIC_LDFLAGS := -static

STATIC_OBJS := $(patsubst src/%.c,$(STATIC_OBJDIR)/%.o,$(SRCS))
STATIC_TEST_OBJS := $(patsubst src/%.c,$(STATIC_TEST_OBJDIR)/%.o,$(SRCS))

.PHONY: static static-test static-check static-smoke static-deps static-clean static-built-using

static-deps: $(STATIC_STAMP)

# After build-deps: a goal's package lists are installed first, so that the
# script does not run apt beside it (make -j).
$(STATIC_STAMP): static/build-deps.sh tools/deps/static.list | build-deps
	sh static/build-deps.sh $(STATIC_DEPS)

# Objects depend on the stamp only by order: headers of the cache must exist.
$(STATIC_OBJDIR)/%.o: src/%.c | $(STATIC_STAMP) build-deps
	@mkdir -p $(@D)
	$(CC) $(STATIC_CFLAGS) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(STATIC_TEST_OBJDIR)/%.o: src/%.c | $(STATIC_STAMP) build-deps
	@mkdir -p $(@D)
	$(CC) $(STATIC_CFLAGS) $(ALL_CPPFLAGS) $(TEST_DEFS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

-include $(STATIC_OBJS:.o=.d) $(STATIC_TEST_OBJS:.o=.d)

$(STATIC_BIN): $(STATIC_OBJS) $(STATIC_STAMP)
$(STATIC_TEST_BIN): $(STATIC_TEST_OBJS) $(STATIC_STAMP)
$(STATIC_BIN) $(STATIC_TEST_BIN):
	$(CC) $(ALL_CFLAGS) $(STATIC_LDFLAGS) -o $@ $(filter %.o,$^) $(STATIC_LDLIBS) 2>$@.link.log || \
		{ cat $@.link.log >&2; exit 1; }
	@# glibc warns that getpwnam, dlopen & co. need its shared libraries at
	@# run time; only count them here (luksipc does not use NSS or dlopen).
	@n=$$(grep -c 'statically linked applications requires at runtime' $@.link.log || true); \
	  grep -v 'statically linked applications requires at runtime' $@.link.log | \
	  grep -v ': in function' >&2 || true; \
	  [ "$$n" = 0 ] || echo "static: $$n glibc static-link notes (NSS/dlopen), see $@.link.log"
	@file -b $@ | grep -q 'statically linked' || \
		{ echo "static: $@ is not statically linked: $$(file -b $@)" >&2; rm -f $@; exit 1; }
	@strip -o $@.stripped $@
	@echo "static: $@ ($$(stat -c %s $@) bytes; stripped $$(stat -c %s $@.stripped) bytes in $@.stripped)"

static: $(STATIC_BIN)

static-test: $(STATIC_TEST_BIN)

static-check: $(STATIC_BIN)
	file $(STATIC_BIN)
	@out=$$(ldd $(STATIC_BIN) 2>&1 || true); echo "ldd: $$out"; \
	  case "$$out" in *"not a dynamic executable"*) ;; \
	  *) echo "static-check: $(STATIC_BIN) is dynamic" >&2; exit 1 ;; esac
	@if grep -a -q LUKSIPC_TEST_ $(STATIC_BIN); then \
	  echo "static-check: $(STATIC_BIN) holds LUKSIPC_TEST_ strings: the shipped static binary must be built without the test hooks" >&2; exit 1; fi
	@echo "static-check: no test hooks in $(STATIC_BIN)"

$(STATIC_SMOKE): static/smoke.c $(STATIC_STAMP)
	@mkdir -p $(@D)
	$(CC) -std=c11 -O2 -Wall -Wextra $(STATIC_CFLAGS) $(STATIC_LDFLAGS) -o $@ $< $(STATIC_LDLIBS) \
		2>$@.link.log || { cat $@.link.log >&2; exit 1; }
	@grep -v -e 'statically linked applications requires at runtime' -e ': in function' $@.link.log >&2 || true
	@file -b $@ | grep -q 'statically linked' || \
		{ echo "static-smoke: $@ is not statically linked" >&2; exit 1; }

static-smoke: $(STATIC_SMOKE)
	./$(STATIC_SMOKE)

# cryptsetup and lvm2 as static/build-deps.sh fetched them; the others as
# installed: the -dev packages of tools/deps/static.list whose .a files the
# link takes.
STATIC_DEV_PKGS := libssl-dev libjson-c-dev libargon2-dev libblkid-dev uuid-dev libc6-dev libext2fs-dev comerr-dev
static-built-using: $(STATIC_STAMP)
	@{ for d in $(STATIC_DEPS)/src/*.dsc; do \
		sed -n 's/^Source: //p; s/^Version: //p' "$$d" | paste -sd ' ' | awk '{ print $$1 " (= " $$2 ")" }'; done; \
	   dpkg-query -W -f '$${source:Package} (= $${source:Version})\n' $(STATIC_DEV_PKGS); } | \
		sort -u | paste -sd , | sed 's/,/, /g'

static-clean:
	rm -rf $(STATIC_OBJDIR) $(STATIC_BIN) $(STATIC_BIN).stripped $(STATIC_BIN).link.log \
		$(STATIC_TEST_OBJDIR) $(STATIC_TEST_BIN) $(STATIC_TEST_BIN).stripped $(STATIC_TEST_BIN).link.log \
		$(STATIC_SMOKE) $(STATIC_SMOKE).link.log
