# shellcheck shell=bash source-path=SCRIPTDIR
# Shared by the boot scenarios 10-19: stage the boot integration the way
# `make install-boot` installs it, build dracut and initramfs-tools images
# that use it, make key disks, boot, and judge. Sourced by */run (bash).
#
#   boot_init NAME        common.sh + kernel.sh + work dir $T + staging;
#                         skips (77) when a prerequisite is missing
#   build_dracut OUT [--no-systemd]   dracut initrd (--no-hostonly) with
#                         luksipc; systemd unless --no-systemd
#   build_itools OUT      initramfs-tools initrd with the luksipc hook
#   mk_keydisk IMG LABEL [KEYTEXT]   small ext2 holding /luksipc.key
#   keydisk_file IMG PATH OUT   copy PATH out of the key disk IMG (debugfs),
#                         the key exactly as the guest read it
#   host_check_root KEYFILE   after the last boot: the host decrypts the
#                         root partition (luksdecrypt.py, KEYFILE) and the
#                         whole filesystem must hash as mkdisk.sh made it
#                         (needs mkdisk's variables and $T/orig.fs)
#   base_cmdline          the flags every scenario uses (needs mkdisk vars)
#   boot LOG INITRD CMDLINE [run-qemu args...]   run-qemu, sets BOOT_RC and
#                         BOOT_SECS
#   expect_pass LOG / expect_failed LOG REGEX   judge one boot
#
# The converter comes from $LUKSIPC_BIN, else build/luksipc.static, else
# build/luksipc. A scenario that sets BOOT_TEST_HOOKS=1 before boot_init
# (it uses rd.luksipc.test-*) gets test images (INITRD_TEST_HOOKS) and the
# test build instead: build/luksipc.static.test (make static-test), else
# build/test/luksipc. The scenarios use pbkdf2 with 1000 iterations.

SCEN_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/common.sh
. "$SCEN_DIR/../../lib/common.sh"
# shellcheck source=../lib/initrd-builders.sh
. "$SCEN_DIR/../../lib/initrd-builders.sh"

boot_init() {
	# shellcheck source=../lib/kernel.sh
	. "$QTEST_DIR/lib/kernel.sh" || skip "no usable kernel (see above)"
	[ "$(id -u)" = 0 ] || skip "needs root (dracut and mkinitramfs read the host's modules)"
	command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"
	local bins=("$TOP/build/luksipc.static" "$TOP/build/luksipc")
	if [ -n "${BOOT_TEST_HOOKS:-}" ]; then
		bins=("$TOP/build/luksipc.static.test" "$TOP/build/test/luksipc")
		export INITRD_TEST_HOOKS=1
	fi
	if [ -z "${LUKSIPC_BIN:-}" ]; then
		for b in "${bins[@]}"; do
			[ -x "$b" ] && { LUKSIPC_BIN=$b; break; }
		done
	fi
	if [ -z "${LUKSIPC_BIN:-}" ] || [ ! -x "$LUKSIPC_BIN" ]; then
		skip "converter not built (run make static${BOOT_TEST_HOOKS:+-test}; or set LUKSIPC_BIN)"
	fi
	export LUKSIPC_BIN
	qemu_tmp_init "$1" || fail "cannot make a work dir"
	STAGE=$T/stage
	make -s -C "$TOP" -f mk/install.mk install-boot DESTDIR="$STAGE" PREFIX=/usr \
		>"$T/install.log" 2>&1 || fail "make install-boot failed: $(tail -n 3 "$T/install.log")"
	# shellcheck disable=SC2034 # used by the scenarios
	BOOT_T0=$SECONDS
}

# build_dracut OUT [--no-systemd], build_itools OUT: images with the staged
# boot integration (qemu-tests/lib/initrd-builders.sh).
build_dracut() {
	initrd_dracut "$1" "$STAGE" "$T" "${2:-}" || fail "$INITRD_ERR"
	if [ "${2:-}" = --no-systemd ] && lsinitrd "$1" 2>/dev/null | grep -q 'luksipc.service$'; then
		fail "dracut image without systemd still has luksipc.service"
	fi
}

build_itools() {
	initrd_itools "$1" "$STAGE" "$T" || fail "$INITRD_ERR"
}

mk_keydisk() {
	local tree=$T/keytree.$2
	mkdir -p "$tree"
	printf '%s' "${3:-luksipc test key $(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}" >"$tree/luksipc.key"
	truncate -s 4M "$1"
	mke2fs -q -F -t ext2 -L "$2" -d "$tree" "$1" || fail "mke2fs for the key disk failed"
}

keydisk_file() {
	rm -f "$3"
	debugfs -R "dump $2 $3" "$1" 2>/dev/null
	[ -s "$3" ] || fail "cannot read $2 back from the key disk ${1##*/}"
}

host_check_root() {
	host_fs_check "$T/disk.img" "$ROOT_OFFSET" "$ROOT_BYTES" "$1" \
		"$ROOT_FS_BYTES" "$ROOT_FS_SHA256" "$T/orig.fs" ||
		fail "after the last boot the decrypted filesystem differs from the original: $HOST_CHECK_MSG"
	echo "  host: $HOST_CHECK_MSG"
}

# needs ROOT_UUID, ROOT_PARTUUID, STATE_PARTUUID from mkdisk.sh
base_cmdline() {
	echo "root=UUID=$ROOT_UUID ro rd.luksipc=PARTUUID=$ROOT_PARTUUID" \
		"rd.luksipc.state=PARTUUID=$STATE_PARTUUID" \
		"rd.luksipc.key=/luksipc.key:LABEL=lipckey" \
		"rd.luksipc.pbkdf=pbkdf2 rd.luksipc.pbkdf-force-iterations=1000" \
		"rd.luksipc.timeout=20 rd.shell=0 rd.emergency=poweroff" \
		"systemd.show_status=1"
}

boot() {
	local log=$1 initrd=$2 cmdline=$3 t0=$SECONDS
	shift 3
	"$RUN_QEMU" --kernel "$KERNEL" --initrd "$initrd" --append "$cmdline" \
		--log "$log" --timeout "${BOOT_TIMEOUT:-240}" --mem 1024 "$@"
	BOOT_RC=$?
	BOOT_SECS=$((SECONDS - t0))
	echo "  boot ${log##*/}: exit $BOOT_RC after ${BOOT_SECS}s, verdict $(verdict "$log")"
}

expect_pass() {
	[ "$(verdict "$1")" = PASS ] || {
		qemu_log_tail "$1" 60
		fail "${1##*/}: no PASS verdict (run-qemu exit $BOOT_RC)"
	}
}

# expect_failed LOG REGEX: the boot stopped with our one-line error
# matching REGEX and never reached the root.
expect_failed() {
	[ "$(verdict "$1")" = NONE ] || {
		qemu_log_tail "$1" 60
		fail "${1##*/}: reached the root (verdict $(verdict "$1")) but should have stopped"
	}
	grep -a -q -E "luksipc: error: .*$2" "$1" || {
		qemu_log_tail "$1" 60
		fail "${1##*/}: no 'luksipc: error:' line matching '$2'"
	}
}

# hash of bytes [OFF, OFF+LEN) of IMG
range_hash() {
	dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none |
		sha256sum | cut -d' ' -f1
}
