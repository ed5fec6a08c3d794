# Debian packages, included by the top-level Makefile (BUILD, STATIC_DEPS,
# STATIC_STAMP).
#
#   make deb        dpkg-buildpackage -us -uc -b from debian/, in a copy of
#                   the tree (build/deb/luksipc: debhelper's files stay out
#                   of the tree); the packages land in build/deb/
#   make deb-check  make deb, then tests/deb/packages.sh: lintian, each
#                   package's file list, install and purge in a Debian 12
#                   root (the cached root of qemu-tests/lib/realroot.sh)
#
# The static dependencies come from this tree's cache (static/build-deps.sh,
# build/static-deps), built first if missing.

DEB_DIR := $(BUILD)/deb

.PHONY: deb deb-check

deb: $(STATIC_STAMP) | build-deps
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/luksipc
	tar -c --exclude=./build --exclude=./.git . | tar -x -C $(DEB_DIR)/luksipc
	cd $(DEB_DIR)/luksipc && LUKSIPC_STATIC_DEPS=$(abspath $(STATIC_DEPS)) \
		dpkg-buildpackage -us -uc -b >../build.log 2>&1 || \
		{ tail -n 40 $(abspath $(DEB_DIR))/build.log >&2; \
		  echo "deb: dpkg-buildpackage failed; the whole log is $(DEB_DIR)/build.log" >&2; exit 1; }
	@echo "deb: $$(cd $(DEB_DIR) && ls *.deb | tr '\n' ' ')(log: $(DEB_DIR)/build.log)"

deb-check: deb
	@VERBOSE=1 ./tests/deb/packages.sh $(DEB_DIR)
