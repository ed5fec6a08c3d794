# shellcheck shell=bash
# shellcheck disable=SC2034 # INITRD_ERR is for the callers
# Sourceable: build dracut and initramfs-tools images that carry the luksipc
# boot integration staged in STAGE (`make -f mk/install.mk install-boot
# DESTDIR=STAGE`), for kernel $KVER, without touching the host's
# /usr/lib/dracut or /etc/initramfs-tools. Used by the boot scenarios and
# by tools/demo-vm.sh. Each function returns non-zero with the reason in
# INITRD_ERR; logs go to WORK/*.log.
# (No grep -q after a pipe: callers may run with pipefail, and an early
# exit of grep would fail the listing with SIGPIPE.)
#
# INITRD_TEST_HOOKS=1 makes a test image: it also holds
# /etc/luksipc/test-hooks, without which the boot library ignores the
# rd.luksipc.test-* flags and drops LUKSIPC_TEST_* from the converter's
# environment. Pair it with a test build of the converter (LUKSIPC_BIN=
# build/luksipc.static.test, `make static-test`): the shipped build has no
# test hooks at all.

# initrd_test_marker WORK: the marker file's source, printed.
initrd_test_marker() {
	printf '%s\n' "luksipc QEMU test image: rd.luksipc.test-* and LUKSIPC_TEST_* are honoured" \
		>"$1/test-hooks"
	printf '%s\n' "$1/test-hooks"
}

# initrd_check_marker LISTING: the image holds the marker iff INITRD_TEST_HOOKS.
initrd_check_marker() {
	case "$1" in
	*etc/luksipc/test-hooks*) [ -n "${INITRD_TEST_HOOKS:-}" ] ||
		{ INITRD_ERR="the image holds etc/luksipc/test-hooks but is not a test image"; return 1; } ;;
	*) [ -z "${INITRD_TEST_HOOKS:-}" ] ||
		{ INITRD_ERR="the test image lacks etc/luksipc/test-hooks"; return 1; } ;;
	esac
}

# initrd_dracut OUT STAGE WORK [--no-systemd]: dracut only reads modules
# from $dracutbasedir/modules.d, so it gets a copy of the host's dracut base
# whose modules.d also holds the staged 55luksipc.
initrd_dracut() {
	local out=$1 stage=$2 work=$3 base=$3/dracut-base m omit=plymouth
	local -a test=()
	[ -z "${INITRD_TEST_HOOKS:-}" ] || test=(--include "$(initrd_test_marker "$work")" /etc/luksipc/test-hooks)
	[ "${4:-}" != --no-systemd ] ||
		omit="plymouth systemd systemd-initrd dracut-systemd systemd-udevd systemd-journald systemd-sysusers"
	mkdir -p "$base/modules.d" "$work/dracut-conf.d"
	for m in /usr/lib/dracut/*; do
		[ "${m##*/}" = modules.d ] || ln -sfn "$m" "$base/${m##*/}"
	done
	for m in /usr/lib/dracut/modules.d/*; do
		ln -sfn "$m" "$base/modules.d/${m##*/}"
	done
	ln -sfn "$stage/usr/lib/dracut/modules.d/55luksipc" "$base/modules.d/55luksipc"
	dracutbasedir=$base dracut --force --no-hostonly --no-hostonly-cmdline \
		--conf /dev/null --confdir "$work/dracut-conf.d" --tmpdir "$work" \
		--kver "$KVER" --add luksipc --omit "$omit" \
		--add-drivers "virtio_blk virtio_pci" --no-early-microcode \
		--compress "zstd -1" "${test[@]}" "$out" >"$work/dracut.log" 2>&1 || {
		INITRD_ERR="dracut failed: $(tail -n 5 "$work/dracut.log")"
		return 1
	}
	lsinitrd "$out" 2>/dev/null | grep 'usr/sbin/luksipc$' >/dev/null || {
		INITRD_ERR="the dracut image lacks usr/sbin/luksipc"
		return 1
	}
	lsinitrd "$out" 2>/dev/null | grep 'usr/lib/luksipc/luksipc-lib\.sh$' >/dev/null || {
		INITRD_ERR="the dracut image lacks usr/lib/luksipc/luksipc-lib.sh"
		return 1
	}
	initrd_check_marker "$(lsinitrd "$out" 2>/dev/null)"
}

# initrd_itools OUT STAGE WORK: mkinitramfs -d CONFDIR includes
# CONFDIR/hooks and CONFDIR/scripts beside /usr/share/initramfs-tools;
# LUKSIPC_LIBDIR points the hook at the staged library.
initrd_itools() {
	local out=$1 stage=$2 conf=$3/itools-conf
	mkdir -p "$conf/hooks" "$conf/scripts/local-top" "$conf/conf.d"
	cp "$stage/usr/share/initramfs-tools/hooks/luksipc" "$conf/hooks/"
	cp "$stage/usr/share/initramfs-tools/scripts/local-top/luksipc" "$conf/scripts/local-top/"
	printf '%s\n' MODULES=list BUSYBOX=y KEYMAP=n COMPRESS=zstd COMPRESSLEVEL=1 \
		RUNSIZE=10% FSTYPE=ext4 >"$conf/initramfs.conf"
	# Only the disk driver is loaded by force. A stock image (MODULES=most)
	# does not load ext4 or vfat before local-top either: the root mount's
	# `mount -t` makes the kernel load it, the luksipc hook must do the same
	# for the key device (and puts the modules in the image).
	printf '%s\n' virtio_pci virtio_blk >"$conf/modules"
	rm -f "$conf/hooks/luksipc-test-hooks" # left by an earlier test image in WORK
	if [ -n "${INITRD_TEST_HOOKS:-}" ]; then
		# an extra hook, run by mkinitramfs -d like the luksipc one
		# shellcheck disable=SC2016 # expanded by the hook, not here
		printf '%s\n' '#!/bin/sh' '[ "$1" != prereqs ] || exit 0' \
			"install -D -m 0644 '$(initrd_test_marker "$3")' \"\$DESTDIR/etc/luksipc/test-hooks\"" \
			>"$conf/hooks/luksipc-test-hooks"
		chmod 755 "$conf/hooks/luksipc-test-hooks"
	fi
	LUKSIPC_LIBDIR=$stage/usr/lib/luksipc mkinitramfs -d "$conf" -o "$out" "$KVER" \
		>"$3/mkinitramfs.log" 2>&1 || {
		INITRD_ERR="mkinitramfs failed: $(tail -n 5 "$3/mkinitramfs.log")"
		return 1
	}
	lsinitramfs "$out" 2>/dev/null | grep 'scripts/local-top/luksipc$' >/dev/null || {
		INITRD_ERR="the initramfs-tools image lacks scripts/local-top/luksipc"
		return 1
	}
	lsinitramfs "$out" 2>/dev/null | grep 'usr/lib/luksipc/luksipc-lib\.sh$' >/dev/null || {
		INITRD_ERR="the initramfs-tools image lacks usr/lib/luksipc/luksipc-lib.sh"
		return 1
	}
	initrd_check_marker "$(lsinitramfs "$out" 2>/dev/null)"
}
