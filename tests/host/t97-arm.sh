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

run_test "arm with GRUB: plan, record, initramfs then update-grub; disarm restores the tree" t_arm_disarm_grub
run_test "arm with /etc/kernel/cmdline and dracut, a key device; disarm restores the file" t_kernel_cmdline_dracut
run_test "arm plans the ext4 shrink at boot, refuses a full ext4 with how much to free" t_resize_planned
run_test "arm refusals: one line, nothing written, nothing run" t_refusals
run_test "disarm refuses once the conversion has started; arm refuses that store" t_started
run_test "a failed initramfs rebuild stops arm before the boot loader; disarm cleans up" t_failed_rebuild
test_done
