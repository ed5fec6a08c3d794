#!/bin/sh
# luksipc arm and disarm on image files, the system they configure moved to
# a directory (LUKSIPC_TEST_SYSROOT, test build only) and update-initramfs,
# dracut and update-grub stubbed on PATH (their calls logged in order).
#
# arm writes the record, rebuilds the initramfs, then the GRUB drop-in and
# update-grub, in that order, and never a byte of the device or the state
# store. --dry-run writes nothing and runs nothing. Every refusal is one
# line, exit 3 (2 for usage), with the system tree, the device and the
# store unchanged. disarm restores what arm changed, byte for byte, and
# refuses once the state store shows a conversion.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

N=$((64 * MiB))
H=$((16 * MiB))

# sys_setup [grub] [kcmd] [dracut]: the system tree root/ and the stubs in bin/.
sys_setup() {
	mkdir -p root/etc/default root/usr/share/initramfs-tools/hooks root/usr/lib/dracut/modules.d/55luksipc bin
	: >calls
	for tool in update-initramfs dracut update-grub; do
		cat >bin/$tool <<SH
#!/bin/sh
echo "$tool \$*" >>"$T/calls"
exit \${STUB_RC_$(echo $tool | tr -- - _):-0}
SH
	done
	chmod 755 bin/*
	for what in "$@"; do
		case $what in
		grub) printf 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX="quiet"\n' >root/etc/default/grub ;;
		kcmd) mkdir -p root/etc/kernel && printf 'root=UUID=1234 ro quiet\n' >root/etc/kernel/cmdline ;;
		itools) : >root/usr/share/initramfs-tools/hooks/luksipc ;;
		dracut) : >root/usr/lib/dracut/modules.d/55luksipc/module-setup.sh ;;
		esac
	done
	[ -e root/etc/default/grub ] || rm -f bin/update-grub
}

# la ARGS...: luksipc in the moved system, the stubs first on PATH.
la() {
	LUKSIPC_TEST_SYSROOT=$T/root PATH=$T/bin:$PATH "$LUKSIPC" "$@"
}

tree_sha() {
	(cd root && find . -type f | sort | xargs -r sha256sum) | sha256sum | cut -d' ' -f1
}

# refuse_arm RC ARGS...: la ARGS exits RC with one error line; the tree,
# dev.img and st.img unchanged and no tool run.
refuse_arm() {
	want=$1
	shift
	before="$(tree_sha) $(sha dev.img) $(sha st.img)"
	: >calls
	run_rc "$want" la "$@"
	echo "refused: $(cat "$T/err")"
	assert_one_error_line "$T/err"
	assert_eq "$(tree_sha) $(sha dev.img) $(sha st.img)" "$before" "tree, device and store after a refusal"
	[ ! -s calls ] || fail "a refused arm ran: $(cat calls)"
}

fixture() {
	fx_make ext4 dev.img $N $H
	truncate -s $((20 * MiB)) st.img
}

t_arm_disarm_grub() {
	need_luksipc
	fixture
	sys_setup grub itools
	cp root/etc/default/grub grub.orig
	before="$(sha dev.img) $(sha st.img)"
	tree0=$(tree_sha)
	run_rc 0 la arm -d dev.img --state st.img --dry-run
	cat out
	assert_grep '^flags: +rd\.luksipc=.*/dev\.img rd\.luksipc\.state=.*/st\.img$' out
	assert_grep '^dry run: nothing written$' out
	assert_eq "$(tree_sha)" "$tree0" "tree after --dry-run"
	[ ! -s calls ] || fail "--dry-run ran: $(cat calls)"

	run_rc 0 la arm -d dev.img --state st.img
	cat out err
	assert_eq "$(tr '\n' '|' <calls)" "update-initramfs -u -k all|update-grub |" "tools run, in order"
	assert_grep "^flags=rd\.luksipc=$T/dev\.img rd\.luksipc\.state=$T/st\.img\$" root/etc/luksipc/armed
	assert_grep "^GRUB_CMDLINE_LINUX=\"\\\$GRUB_CMDLINE_LINUX rd\.luksipc=$T/dev\.img rd\.luksipc\.state=$T/st\.img\"\$" \
		root/etc/default/grub.d/luksipc.cfg
	cmp root/etc/default/grub grub.orig || fail "arm changed /etc/default/grub (it writes a drop-in)"
	# what GRUB's shell makes of the drop-in
	# shellcheck disable=SC2016 # expanded by the inner shell
	line=$(sh -c '. ./root/etc/default/grub && . ./root/etc/default/grub.d/luksipc.cfg && echo "$GRUB_CMDLINE_LINUX"')
	assert_eq "$line" "quiet rd.luksipc=$T/dev.img rd.luksipc.state=$T/st.img" "GRUB_CMDLINE_LINUX after the drop-in"
	assert_eq "$(sha dev.img) $(sha st.img)" "$before" "device and store after arm"

	refuse_arm 3 arm -d dev.img --state st.img
	assert_grep 'already armed' err

	: >calls
	run_rc 0 la disarm
	cat out
	assert_eq "$(tr '\n' '|' <calls)" "update-grub |update-initramfs -u -k all|" "disarm: boot loader first"
	assert_eq "$(tree_sha)" "$tree0" "tree after disarm"
	run_rc 0 la disarm
	assert_grep 'not armed' out
}

t_kernel_cmdline_dracut() {
	need_luksipc
	fixture
	sys_setup kcmd dracut
	rm -f bin/update-initramfs
	cp root/etc/kernel/cmdline kcmd.orig
	tree0=$(tree_sha)
	random_key keydev.img
	run_rc 0 la arm -d dev.img --state st.img --key-file "/luksipc.key:$T/keydev.img" --framework dracut
	cat out
	assert_eq "$(tr '\n' '|' <calls)" "dracut -f --regenerate-all|" "tools run"
	assert_eq "$(cat root/etc/kernel/cmdline)" \
		"root=UUID=1234 ro quiet rd.luksipc=$T/dev.img rd.luksipc.state=$T/st.img rd.luksipc.key=/luksipc.key:$T/keydev.img" \
		"/etc/kernel/cmdline"
	assert_grep '^framework=dracut$' root/etc/luksipc/armed
	run_rc 0 la disarm
	cmp root/etc/kernel/cmdline kcmd.orig || fail "disarm did not restore /etc/kernel/cmdline"
	assert_eq "$(tree_sha)" "$tree0" "tree after disarm"
}

# dracut_check: the real module's check() against the moved system (dracut's
# helpers stubbed); prints its return code.
dracut_check() {
	mkdir -p moddir root/usr/local/sbin
	cp "$TESTS_ROOT/boot/luksipc-lib.sh" moddir/
	printf '#!/bin/sh\n' >root/usr/local/sbin/luksipc
	chmod 755 root/usr/local/sbin/luksipc
	# shellcheck disable=SC2016 # expanded by bash
	dracutsysrootdir=$T/root moddir=$T/moddir bash -c '
		require_binaries() { :; }
		derror() { echo "$*" >&2; }
		. "$1"
		check
		echo "$?"' bash "$TESTS_ROOT/dracut-module/55luksipc/module-setup.sh"
}

# Debian's dracut is not host-only and its kernel hook runs plain `dracut
# -f`, which leaves out a module whose check() says "only when asked" (255):
# arm's own rebuild had no luksipc in it (QEMU 23). The module is in while
# arm's record is there.
t_dracut_module_armed() {
	need_luksipc
	fixture
	sys_setup grub dracut
	rm -f bin/update-initramfs
	assert_eq "$(dracut_check)" 255 "check() before arm (only when asked)"
	run_rc 0 la arm -d dev.img --state st.img --framework dracut
	assert_eq "$(dracut_check)" 0 "check() while armed"
	run_rc 0 la disarm
	assert_eq "$(dracut_check)" 255 "check() after disarm"
}

t_resize_planned() {
	need_luksipc
	# ext4 filling the whole device, mostly empty: the shrink at boot is planned
	truncate -s $N dev.img
	mkfs.ext4 -q -F dev.img
	truncate -s $((20 * MiB)) st.img
	sys_setup grub itools
	run_rc 0 la arm -d dev.img --state st.img --dry-run
	assert_grep '^resize: .*shrunk at boot by 16 MiB' out
	assert_grep 'rd\.luksipc\.resize=1$' out
	# full to the brim: refused, says how much to free
	mkdir full
	head -c $((50 * MiB)) /dev/urandom >full/big
	truncate -s $N dev.img
	mkfs.ext4 -q -F -d full dev.img
	refuse_arm 3 arm -d dev.img --state st.img
	assert_grep "fills it and has .* free; the shrink at boot needs about .*: free .* more, or grow the partition" err
	# xfs filling its device cannot shrink
	fx_make xfs dev.img $N 0
	refuse_arm 3 arm -d dev.img --state st.img
	assert_grep "the xfs filesystem on '.*dev\.img' fills it; luksipc needs 16 MiB after it .* xfs cannot shrink at boot" err
}

t_refusals() {
	need_luksipc
	fixture
	sys_setup grub itools
	refuse_arm 2 arm -d dev.img
	# the store lies on the device
	refuse_arm 3 arm -d dev.img --state dev.img
	assert_grep "lies on the device to convert" err
	# the store holds a filesystem
	mkfs.ext4 -q -F st.img
	refuse_arm 3 arm -d dev.img --state st.img
	assert_grep "state store 'st.img' holds a ext4; name an empty partition, or wipe this one \(wipefs -a\)" err
	# too small
	rm st.img && truncate -s $((4 * MiB)) st.img
	refuse_arm 3 arm -d dev.img --state st.img
	assert_grep "has 4 MiB; it needs at least" err
	rm st.img && truncate -s $((20 * MiB)) st.img
	# no such store, key device, device
	refuse_arm 3 arm -d dev.img --state PARTLABEL=no-such-luksipc-state
	refuse_arm 3 arm -d dev.img --state st.img --key-file /luksipc.key:LABEL=no-such-luksipc-keys
	assert_grep "key device 'LABEL=no-such-luksipc-keys' not found; plug it in" err
	refuse_arm 2 arm -d dev.img --state st.img --key-file /luksipc.key
	refuse_arm 3 arm -d no-such.img --state st.img
	# already LUKS
	cp dev.img plain.img
	cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file st.img \
		--keyfile-size 64 dev.img
	refuse_arm 3 arm -d dev.img --state st.img
	assert_grep "is LUKS already" err
	cp plain.img dev.img
	# no boot integration; no boot loader
	rm root/usr/share/initramfs-tools/hooks/luksipc
	refuse_arm 3 arm -d dev.img --state st.img
	assert_grep "integration is not installed .*luksipc-initramfs package" err
	: >root/usr/share/initramfs-tools/hooks/luksipc
	rm root/etc/default/grub
	refuse_arm 3 arm -d dev.img --state st.img
	assert_grep "add these flags to the kernel command line by hand: rd\.luksipc=" err
}

t_started() {
	need_luksipc
	fixture
	sys_setup grub itools
	random_key key
	run_rc 0 la arm -d dev.img --state st.img --key-file "/luksipc.key:$T/key"
	tree1=$(tree_sha)
	# the boot starts the conversion and is cut
	LUKSIPC_TEST_FAULT=write:3:EIO run_rc 5 conv -d dev.img --state st.img --key-file key
	before="$(sha dev.img) $(sha st.img)"
	: >calls
	run_rc 3 la disarm
	assert_one_error_line "$T/err"
	assert_grep "the conversion has started .*disarm cannot undo it" err
	assert_eq "$(tree_sha) $(sha dev.img) $(sha st.img)" "$tree1 $before" "after a refused disarm"
	[ ! -s calls ] || fail "a refused disarm ran: $(cat calls)"
	# and a store with a conversion is not armed again
	rm root/etc/luksipc/armed
	refuse_arm 3 arm -d dev.img --state st.img
	assert_grep "holds a luksipc conversion already" err
}

t_failed_rebuild() {
	need_luksipc
	fixture
	sys_setup grub itools
	STUB_RC_update_initramfs=1 run_rc 5 la arm -d dev.img --state st.img
	cat err
	assert_grep "update-initramfs failed \(exit 1\)" err
	assert_grep "run luksipc disarm to undo it" err
	# the flags never reached GRUB
	[ ! -e root/etc/default/grub.d/luksipc.cfg ] || fail "the GRUB drop-in was written after a failed rebuild"
	assert_eq "$(tr '\n' '|' <calls)" "update-initramfs -u -k all|" "tools run"
	run_rc 0 la disarm
	[ ! -e root/etc/luksipc/armed ] || fail "disarm left the record"
}

# armed_and_converted FW: arm (GRUB, a key device), the unit installed, and
# the conversion run to the end as the boot would (notes facts included);
# root/proc/cmdline carries the flags of that boot.
armed_and_converted() {
	fixture
	sys_setup grub "$1"
	mkdir -p root/usr/lib/systemd/system
	cp "$TESTS_ROOT/systemd/luksipc-finalize.service" root/usr/lib/systemd/system/
	random_key key
	run_rc 0 la arm -d dev.img --state st.img --key-file "/luksipc.key:$T/key" --framework "$2"
	[ -L root/etc/systemd/system/multi-user.target.wants/luksipc-finalize.service ] ||
		fail "arm did not enable luksipc-finalize.service"
	mkdir -p root/proc
	sed -n 's/^flags=//p' root/etc/luksipc/armed | sed 's/^/root=UUID=1234 ro /' >root/proc/cmdline
	run_rc 0 la finalize --if-done
	assert_grep 'not finished; nothing to finalize yet' err
	run_rc 3 la finalize
	assert_one_error_line "$T/err"
	cp dev.img orig.img
	run_rc 0 conv -d dev.img --state st.img --key-file key --note-key-file /luksipc.key:LABEL=KEYS \
		--note-framework "$2" --note-name luks-root
	: >calls
}

t_finalize_itools() {
	need_luksipc
	armed_and_converted itools initramfs-tools
	printf '# <target> <source> <key> <options>\nswap UUID=aaaa /dev/urandom swap\nluks-root UUID=old none luks\n' >root/etc/crypttab
	st_before=$(sha st.img)
	# first boot after the conversion: crypttab, initramfs, flags gone; the state kept
	run_rc 0 la finalize --if-done
	cat out
	assert_eq "$(tr '\n' '|' <calls)" "update-initramfs -u -k all|update-grub |" "tools run, in order"
	U=$(cryptsetup luksUUID dev.img)
	assert_eq "$(cat root/etc/crypttab)" "# <target> <source> <key> <options>
swap UUID=aaaa /dev/urandom swap
luks-root UUID=$U /luksipc.key:LABEL=KEYS luks,keyscript=/usr/lib/luksipc/keydev" "/etc/crypttab"
	[ ! -e root/etc/default/grub.d/luksipc.cfg ] || fail "the GRUB drop-in with the rd.luksipc flags is still there"
	assert_eq "$(sha st.img)" "$st_before" "state store after the first finalize step"
	assert_grep '^finalize=boot-config$' root/etc/luksipc/armed
	# the same boot again (or a cut before the reboot): it waits
	: >calls
	run_rc 0 la finalize --if-done
	assert_grep 'waiting for a boot without the rd.luksipc flags' out
	[ ! -s calls ] || fail "a waiting finalize ran: $(cat calls)"
	# the boot without the flags: the state is wiped, nothing of arm is left
	echo "root=UUID=1234 ro" >root/proc/cmdline
	run_rc 0 la finalize --if-done
	cat out
	run_rc 3 lx status --state st.img
	[ ! -e root/etc/luksipc/armed ] || fail "the record is still there"
	[ ! -e root/etc/systemd/system/multi-user.target.wants/luksipc-finalize.service ] || fail "the unit is still enabled"
	# finalize never wrote the device: it decrypts to the original
	verify_plain dev.img key orig.img $((N - H))
	run_rc 2 la finalize --if-done
	assert_grep 'finalize needs --state PATH, or a system armed by luksipc arm' err
}

t_finalize_dracut_cut() {
	need_luksipc
	armed_and_converted dracut dracut
	rm -f bin/update-initramfs
	# the rebuild fails (a cut, a full /boot): exit 5, the flags stay, rerun finishes
	STUB_RC_dracut=1 run_rc 5 la finalize --if-done
	assert_grep 'the rd.luksipc flags still open the device: run luksipc finalize again' err
	assert_grep 'rd\.luksipc=' root/etc/default/grub.d/luksipc.cfg
	run_rc 0 la finalize --if-done
	U=$(cryptsetup luksUUID dev.img)
	assert_eq "$(grep -c . root/etc/crypttab)" 1 "crypttab entries after a rerun"
	assert_grep "^luks-root UUID=$U /luksipc.key:LABEL=KEYS luks\$" root/etc/crypttab
	assert_eq "$(sed -n 2p root/etc/default/grub.d/luksipc.cfg)" \
		"GRUB_CMDLINE_LINUX=\"\$GRUB_CMDLINE_LINUX rd.luks.uuid=$U rd.luks.name=$U=luks-root rd.luks.key=$U=/luksipc.key:LABEL=KEYS\"" \
		"GRUB drop-in: dracut's flags only"
	echo "root=UUID=1234 ro rd.luks.uuid=$U" >root/proc/cmdline
	# a cut after the wipe, before the record went: the next boot finishes
	cp root/etc/luksipc/armed armed.keep
	run_rc 0 la finalize --if-done
	run_rc 3 lx status --state st.img
	[ ! -e root/etc/luksipc/armed ] || fail "the record is still there"
	cp armed.keep root/etc/luksipc/armed
	run_rc 0 la finalize --if-done
	assert_grep '^finalized' out
	[ ! -e root/etc/luksipc/armed ] || fail "the record is still there after the rerun"
}

run_test "arm with GRUB: plan, record, initramfs then update-grub; disarm restores the tree" t_arm_disarm_grub
run_test "arm with /etc/kernel/cmdline and dracut, a key device; disarm restores the file" t_kernel_cmdline_dracut
run_test "the dracut module is in every dracut -f while armed, only when asked otherwise" t_dracut_module_armed
run_test "arm plans the ext4 shrink at boot, refuses a full ext4 with how much to free" t_resize_planned
run_test "arm refusals: one line, nothing written, nothing run" t_refusals
run_test "disarm refuses once the conversion has started; arm refuses that store" t_started
run_test "a failed initramfs rebuild stops arm before the boot loader; disarm cleans up" t_failed_rebuild
run_test "finalize (initramfs-tools): crypttab, initramfs, flags gone; the state wiped on the boot without them" t_finalize_itools
run_test "finalize (dracut) cut by a failed rebuild, run again: one entry, rd.luks flags, state wiped" t_finalize_dracut_cut
test_done
