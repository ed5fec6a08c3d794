# mk/install.mk: install the boot integration (included by the top Makefile).
#
#   make install-boot [DESTDIR=...] [PREFIX=...]
#
# dracut module      -> $(DESTDIR)/usr/lib/dracut/modules.d/55luksipc/
# initramfs-tools    -> $(DESTDIR)/usr/share/initramfs-tools/{hooks,scripts/local-top}/luksipc
# shared sh library  -> $(DESTDIR)/usr/lib/luksipc/luksipc-lib.sh
# crypttab keyscript -> $(DESTDIR)/usr/lib/luksipc/keydev (PATH:DEVICE keys
#                       for Debian's cryptroot, see src/notes.c)
# finalize unit      -> $(DESTDIR)/usr/lib/systemd/system/luksipc-finalize.service
#                       (enabled by `luksipc arm`, not by the install)
# man page           -> $(DESTDIR)$(PREFIX)/share/man/man7/luksipc.cmdline.7
#
# The framework paths are fixed (dracut and initramfs-tools only look
# there), PREFIX moves only the man page. Both frameworks put the converter
# into the initramfs from /usr/lib/luksipc/luksipc.static when present,
# else from luksipc in /usr/local/sbin, /usr/sbin or /sbin.

PREFIX ?= /usr/local
INSTALL ?= install
BOOT_DRACUTDIR := /usr/lib/dracut/modules.d/55luksipc
BOOT_ITDIR := /usr/share/initramfs-tools
BOOT_LIBDIR := /usr/lib/luksipc
BOOT_MAN7DIR := $(PREFIX)/share/man/man7
BOOT_UNITDIR := /usr/lib/systemd/system
BOOT_SRC := dracut-module/55luksipc
# The boot library, shared by both frameworks and keydev
BOOT_LIB := boot/luksipc-lib.sh

.PHONY: install-boot uninstall-boot

install-boot:
	$(INSTALL) -d $(DESTDIR)$(BOOT_DRACUTDIR) $(DESTDIR)$(BOOT_LIBDIR) \
		$(DESTDIR)$(BOOT_ITDIR)/hooks $(DESTDIR)$(BOOT_ITDIR)/scripts/local-top \
		$(DESTDIR)$(BOOT_MAN7DIR) $(DESTDIR)$(BOOT_UNITDIR)
	$(INSTALL) -m 755 $(BOOT_SRC)/module-setup.sh $(BOOT_SRC)/luksipc-boot.sh \
		$(BOOT_SRC)/parse-luksipc.sh $(DESTDIR)$(BOOT_DRACUTDIR)/
	$(INSTALL) -m 644 $(BOOT_LIB) $(BOOT_SRC)/luksipc.service \
		$(BOOT_SRC)/luksipc-fsck.conf $(DESTDIR)$(BOOT_DRACUTDIR)/
	$(INSTALL) -m 644 $(BOOT_LIB) $(DESTDIR)$(BOOT_LIBDIR)/
	$(INSTALL) -m 755 initramfs-tools/keydev $(DESTDIR)$(BOOT_LIBDIR)/keydev
	$(INSTALL) -m 755 initramfs-tools/hooks/luksipc $(DESTDIR)$(BOOT_ITDIR)/hooks/luksipc
	$(INSTALL) -m 755 initramfs-tools/scripts/local-top/luksipc \
		$(DESTDIR)$(BOOT_ITDIR)/scripts/local-top/luksipc
	$(INSTALL) -m 644 docs/luksipc.cmdline.7 $(DESTDIR)$(BOOT_MAN7DIR)/
	$(INSTALL) -m 644 systemd/luksipc-finalize.service $(DESTDIR)$(BOOT_UNITDIR)/

uninstall-boot:
	rm -rf $(DESTDIR)$(BOOT_DRACUTDIR)
	rm -f $(DESTDIR)$(BOOT_LIBDIR)/luksipc-lib.sh $(DESTDIR)$(BOOT_LIBDIR)/keydev \
		$(DESTDIR)$(BOOT_ITDIR)/hooks/luksipc \
		$(DESTDIR)$(BOOT_ITDIR)/scripts/local-top/luksipc \
		$(DESTDIR)$(BOOT_MAN7DIR)/luksipc.cmdline.7 \
		$(DESTDIR)$(BOOT_UNITDIR)/luksipc-finalize.service
