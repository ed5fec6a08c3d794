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
	assert_grep '^resize: .*shrunk at boot by 16388 KiB' out
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

# bootstrap_setup: the system tree for a bootstrap-key arm (GRUB,
# initramfs-tools, the unit), systemd-ask-password stubbed: each call takes
# the next line of $T/answers ("@recovery" types back the recovery key last
# shown on root/dev/tty; an empty answer fails). update-initramfs also logs
# whether the bootstrap key exists when it runs (keylog).
bootstrap_setup() {
	fixture
	sys_setup grub itools
	mkdir -p root/usr/lib/systemd/system root/dev root/proc
	cp "$TESTS_ROOT/systemd/luksipc-finalize.service" root/usr/lib/systemd/system/
	: >root/dev/tty
	: >answers
	: >keylog
	cat >bin/systemd-ask-password <<SH
#!/bin/sh
echo "ask \$*" >>"$T/asked"
a=\$(head -n 1 "$T/answers")
sed -i 1d "$T/answers"
case \$a in
'') exit 1 ;;
@recovery) a=\$(grep -Eo '[cbdefghijklnrtuv]{8}(-[cbdefghijklnrtuv]{8}){7}' "$T/root/dev/tty" | tail -n 1) ;;
esac
printf '%s\n' "\$a"
SH
	cat >bin/update-initramfs <<SH
#!/bin/sh
echo "update-initramfs \$*" >>"$T/calls"
[ -f "$T/root/boot/luksipc/bootstrap.key" ] && echo "key present" >>"$T/keylog" || echo "key absent" >>"$T/keylog"
exit 0
SH
	chmod 755 bin/*
}

# bootstrap_converted ENROLL [RECOVERY_FILE]: armed with a bootstrap key,
# converted as the boot would (the key from the image's path), the flags on
# root/proc/cmdline.
bootstrap_converted() {
	bootstrap_setup
	run_rc 0 la arm -d dev.img --state st.img --bootstrap-key --enroll "$1" ${2:+--recovery-key-file "$2"}
	sed -n 's/^flags=//p' root/etc/luksipc/armed | sed 's/^/root=UUID=1234 ro /' >root/proc/cmdline
	cp dev.img orig.img
	run_rc 0 conv -d dev.img --state st.img --key-file root/boot/luksipc/bootstrap.key \
		--note-key-file /etc/luksipc/bootstrap.key --note-framework initramfs-tools --note-name luks-root
	: >calls
	: >keylog
}

# opens IMG SECRET: cryptsetup (not luksipc) opens IMG's header with SECRET typed as a passphrase.
opens() {
	printf '%s' "$2" | cryptsetup open --test-passphrase --key-file - "$1"
}

t_bootstrap_arm_disarm() {
	need_luksipc
	bootstrap_setup
	tree0=$(tree_sha)
	before="$(sha dev.img) $(sha st.img)"
	run_rc 0 la arm -d dev.img --state st.img --bootstrap-key --enroll passphrase,recovery --dry-run
	cat out
	assert_grep '^key: +a generated bootstrap key, /boot/luksipc/bootstrap.key' out
	assert_grep '^enroll: +passphrase,recovery, added by finalize' out
	assert_grep 'rd\.luksipc\.key=/etc/luksipc/bootstrap\.key' out
	assert_eq "$(tree_sha)" "$tree0" "tree after --dry-run"
	[ ! -s calls ] || fail "--dry-run ran: $(cat calls)"
	run_rc 0 la arm -d dev.img --state st.img --bootstrap-key --enroll passphrase,recovery
	assert_eq "$(stat -c '%a %s' root/boot/luksipc/bootstrap.key)" "600 4096" "bootstrap key mode and size"
	assert_eq "$(stat -c %a root/boot/luksipc)" 700 "bootstrap key directory mode"
	assert_grep '^UMASK=0077$' root/etc/initramfs-tools/conf.d/luksipc-umask.conf
	assert_grep '^flags=.* rd\.luksipc\.key=/etc/luksipc/bootstrap\.key$' root/etc/luksipc/armed
	assert_grep '^key=bootstrap$' root/etc/luksipc/armed
	assert_grep '^enroll=passphrase,recovery$' root/etc/luksipc/armed
	assert_eq "$(tr '\n' '|' <calls)" "update-initramfs -u -k all|update-grub |" "tools run, in order"
	assert_eq "$(cat keylog)" "key present" "the initramfs rebuild saw the bootstrap key"
	assert_eq "$(sha dev.img) $(sha st.img)" "$before" "device and store after arm"
	run_rc 0 la status
	assert_grep '^  key=bootstrap$' out
	: >calls
	: >keylog
	run_rc 0 la disarm
	assert_eq "$(cat keylog)" "key absent" "disarm rebuilt the initramfs after removing the key"
	[ ! -e root/boot/luksipc ] || fail "disarm left the bootstrap key directory"
	assert_eq "$(tree_sha)" "$tree0" "tree after disarm"
}

t_bootstrap_refusals() {
	need_luksipc
	bootstrap_setup
	refuse_arm 2 arm -d dev.img --state st.img --bootstrap-key
	assert_grep 'needs --enroll passphrase, recovery or both' err
	refuse_arm 2 arm -d dev.img --state st.img --enroll passphrase,fido
	assert_grep "unknown key type 'fido'" err
	refuse_arm 2 arm -d dev.img --state st.img --bootstrap-key --enroll tpm2
	assert_grep 'tpm2 needs passphrase or recovery beside it' err
	# initramfs-tools: Debian's cryptroot has no TPM2 unlock
	refuse_arm 3 arm -d dev.img --state st.img --bootstrap-key --enroll passphrase,tpm2
	assert_grep "initramfs-tools's cryptroot cannot unlock with a TPM2" err
	refuse_arm 2 arm -d dev.img --state st.img --bootstrap-key --enroll passphrase,fido
	assert_grep "unknown key type" err
	refuse_arm 2 arm -d dev.img --state st.img --bootstrap-key --enroll recovery --recovery-key-file rk.txt
	assert_grep 'give an absolute path on the root filesystem' err
	refuse_arm 2 arm -d dev.img --state st.img --bootstrap-key --enroll passphrase --recovery-key-file /root/rk
	assert_grep 'goes with --enroll recovery' err
	refuse_arm 2 arm -d dev.img --state st.img --bootstrap-key --enroll passphrase --key-file "/k:$T/st.img"
	assert_grep 'either --bootstrap-key or --key-file' err
}

t_bootstrap_finalize() {
	need_luksipc
	bootstrap_converted passphrase,recovery
	cp root/boot/luksipc/bootstrap.key bootkey
	pass="correct horse $(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	printf '%s\n%s\n@recovery\n' "$pass" "$pass" >answers
	st_before=$(sha st.img)
	LUKSIPC_TEST_FAST_PBKDF=1 run_rc 0 la finalize --if-done
	cat out err
	rk=$(grep -Eo '[cbdefghijklnrtuv]{8}(-[cbdefghijklnrtuv]{8}){7}' root/dev/tty)
	[ "$(echo "$rk" | wc -l)" = 1 ] || fail "expected one recovery key shown on the terminal"
	# the secrets reach neither stdout nor stderr (the journal)
	! grep -qF -e "$rk" -e "$pass" out err || fail "a secret reached the log"
	assert_eq "$(grep -c 'ask ' asked)" 3 "prompts: passphrase twice, the recovery key typed back once"
	# cryptsetup, not luksipc, opens the header with each new key and with the bootstrap key still
	opens dev.img "$pass" || fail "the new passphrase does not open the header"
	opens dev.img "$rk" || fail "the recovery key does not open the header"
	cryptsetup open --test-passphrase --key-file root/boot/luksipc/bootstrap.key dev.img ||
		fail "the bootstrap key stopped opening the header before a boot without it"
	assert_grep '^bootstrap_slot=0$' root/etc/luksipc/armed
	assert_grep '^enroll.passphrase=done 1$' root/etc/luksipc/armed
	assert_grep '^enroll.recovery=done 2$' root/etc/luksipc/armed
	U=$(cryptsetup luksUUID dev.img)
	assert_eq "$(cat root/etc/crypttab)" "luks-root UUID=$U none luks" "/etc/crypttab: the key typed at boot"
	assert_eq "$(sha st.img)" "$st_before" "state store after the first finalize step"
	# the boot without the flags (the passphrase typed): the bootstrap keyslot goes, then the key, the image, the state
	assert_eq "$(cat keylog)" "key present" "phase one's initramfs still holds the bootstrap key (the flags may still be used)"
	echo "root=UUID=1234 ro" >root/proc/cmdline
	: >calls
	: >keylog
	run_rc 0 la finalize --if-done
	cat out
	if cryptsetup open --test-passphrase --key-file bootkey dev.img 2>/dev/null; then
		fail "the bootstrap key still opens the header"
	fi
	[ ! -e root/boot/luksipc/bootstrap.key ] || fail "the bootstrap key file is still there"
	assert_eq "$(cat keylog)" "key absent" "the initramfs was rebuilt without the bootstrap key"
	[ ! -e root/etc/initramfs-tools/conf.d/luksipc-umask.conf ] || fail "the UMASK setting is still there"
	assert_eq "$(cryptsetup luksDump dev.img | grep -cE '^  [0-9]+: luks2')" 2 "keyslots left: passphrase and recovery"
	opens dev.img "$pass" || fail "the passphrase stopped opening the header"
	run_rc 3 lx status --state st.img
	[ ! -e root/etc/luksipc/armed ] || fail "the record is still there"
	printf '%s' "$pass" >passfile
	verify_plain dev.img passfile orig.img $((N - H))
}

t_bootstrap_finalize_cuts() {
	need_luksipc
	bootstrap_converted passphrase,recovery
	cp root/boot/luksipc/bootstrap.key bootkey
	pass=first-pass-$$
	# the recovery key is never typed back: exit 4, nothing but the passphrase enrolled, the flags stay
	printf '%s\n%s\nwrong\nwrong\nwrong\n' "$pass" "$pass" >answers
	LUKSIPC_TEST_FAST_PBKDF=1 run_rc 4 la finalize --if-done
	assert_grep 'the recovery key was not typed back' err
	assert_grep '^enroll.recovery=pending 2$' root/etc/luksipc/armed
	assert_grep 'rd\.luksipc=' root/etc/default/grub.d/luksipc.cfg
	assert_eq "$(cryptsetup luksDump dev.img | grep -cE '^  [0-9]+: luks2')" 2 "keyslots: bootstrap and passphrase"
	# as if cut after the passphrase's keyslot was added, before it was recorded done: it is made again
	sed -i 's/^enroll.passphrase=done 1$/enroll.passphrase=pending 1/' root/etc/luksipc/armed
	pass2=second-pass-$$
	printf '%s\n%s\n@recovery\n' "$pass2" "$pass2" >answers
	: >root/dev/tty
	LUKSIPC_TEST_FAST_PBKDF=1 run_rc 0 la finalize --if-done
	rk=$(grep -Eo '[cbdefghijklnrtuv]{8}(-[cbdefghijklnrtuv]{8}){7}' root/dev/tty)
	if opens dev.img "$pass" 2>/dev/null; then fail "the unconfirmed passphrase keyslot survived"; fi
	opens dev.img "$pass2" || fail "the passphrase enrolled on the rerun does not open the header"
	opens dev.img "$rk" || fail "the recovery key does not open the header"
	assert_eq "$(cryptsetup luksDump dev.img | grep -cE '^  [0-9]+: luks2')" 3 "keyslots: bootstrap, passphrase, recovery"
	# a boot without the flags, but an enrolled keyslot has gone: the bootstrap keyslot stays, nothing wiped
	echo "root=UUID=1234 ro" >root/proc/cmdline
	slot=$(sed -n 's/^enroll.recovery=done //p' root/etc/luksipc/armed | tail -n 1)
	printf '%s' "$pass2" | cryptsetup luksKillSlot -q --key-file - dev.img "$slot"
	st_before=$(sha st.img)
	run_rc 3 la finalize --if-done
	assert_one_error_line "$T/err"
	assert_grep 'the recovery keyslot of .* is not in place' err
	cryptsetup open --test-passphrase --key-file bootkey dev.img || fail "the bootstrap keyslot went after a refusal"
	assert_eq "$(sha st.img)" "$st_before" "state store after the refusal"
}

t_bootstrap_unattended() {
	need_luksipc
	bootstrap_converted recovery /root/recovery.key
	mkdir -p root/root
	: >answers
	LUKSIPC_TEST_FAST_PBKDF=1 run_rc 0 la finalize --if-done
	[ ! -s asked ] || fail "an unattended finalize asked: $(cat asked)"
	[ ! -s root/dev/tty ] || fail "an unattended finalize wrote to the terminal"
	assert_eq "$(stat -c %a root/root/recovery.key)" 600 "recovery key file mode"
	rk=$(cat root/root/recovery.key)
	! grep -qF -e "$rk" out err || fail "the recovery key reached the log"
	opens dev.img "$rk" || fail "the recovery key in the file does not open the header"
	assert_grep '^enroll.recovery=done 1$' root/etc/luksipc/armed
}

# tpm2_setup: a dracut system with a TPM 2.0 in root/sys, GRUB, the unit;
# systemd-cryptenroll stubbed as a keyslot opened by $T/tpmsecret (made with
# the unlock key file it is given, in the first free slot, as systemd does)
# and a systemd-tpm2 token naming it; cryptsetup's token check stubbed as
# the real cryptsetup opening that token's keyslot with $T/tpmsecret. Every
# stub call is logged in calls. STUB_CE_FAIL=1: the enrollment adds its
# keyslot and token, then fails; STUB_VERIFY_FAIL=1: the token does not open.
tpm2_setup() {
	fixture
	sys_setup grub dracut
	mkdir -p root/usr/lib/systemd/system root/dev root/proc root/root root/sys/class/tpm/tpm0
	cp "$TESTS_ROOT/systemd/luksipc-finalize.service" root/usr/lib/systemd/system/
	echo 2 >root/sys/class/tpm/tpm0/tpm_version_major
	: >root/dev/tty
	: >answers
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >tpmsecret
	real=$(command -v cryptsetup)
	cat >bin/tpm2 <<SH
#!/bin/sh
exit 0
SH
	cat >bin/systemd-cryptenroll <<SH
#!/bin/sh
echo "systemd-cryptenroll \$*" >>"$T/calls"
k=''
for a; do case \$a in --unlock-key-file=*) k=\${a#*=} ;; -*) ;; *) dev=\$a ;; esac; done
if [ -z "\$k" ]; then
	[ -n "\${PASSWORD:-}" ] || exit 1
	echo "PASSWORD given" >>"$T/calls"
	k=$T/pw.tmp
	printf '%s' "\$PASSWORD" >"\$k"
fi
$real luksAddKey -q --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "\$k" "\$dev" "$T/tpmsecret" || exit 1
slot=\$($real open --test-passphrase -v --key-file "$T/tpmsecret" "\$dev" | sed -n 's/^Key slot \([0-9]*\) unlocked.*/\1/p')
echo '{"type":"systemd-tpm2","keyslots":[],"tpm2-blob":"AAAA","tpm2-pcrs":[7],"tpm2-pcr-bank":"sha256","tpm2-primary-alg":"ecc","tpm2-policy-hash":"$(printf '%064d' 0)","tpm2-pin":false}' | $real token import --json-file - --key-slot "\$slot" "\$dev" || exit 1
[ "\${STUB_CE_FAIL:-0}" = 0 ]
SH
	cat >bin/cryptsetup <<SH
#!/bin/sh
case " \$* " in
*" --token-only "*)
	echo "cryptsetup \$*" >>"$T/calls"
	[ "\${STUB_VERIFY_FAIL:-0}" = 0 ] || exit 1
	for a; do dev=\$a; done
	tok=\$(echo " \$* " | sed -n 's/.* --token-id \([0-9]*\) .*/\1/p')
	slot=\$($real token export --token-id "\$tok" "\$dev" | sed -n 's/.*"keyslots":\["\([0-9]*\)"\].*/\1/p')
	exec $real open --test-passphrase --key-slot "\$slot" --key-file "$T/tpmsecret" "\$dev" ;;
esac
exec $real "\$@"
SH
	chmod 755 bin/*
}

# tpm_tokens IMG: the number of systemd-tpm2 tokens in IMG's header.
tpm_tokens() {
	cryptsetup luksDump "$1" | grep -c 'systemd-tpm2'
}

t_tpm2_refusals() {
	need_luksipc
	tpm2_setup
	refuse_arm 2 arm -d dev.img --state st.img --bootstrap-key --enroll tpm2
	assert_grep 'tpm2 needs passphrase or recovery beside it' err
	rm bin/tpm2
	if ! command -v tpm2 >/dev/null; then
		refuse_arm 3 arm -d dev.img --state st.img --bootstrap-key --enroll recovery,tpm2 --framework dracut
		assert_grep 'install tpm2-tools' err
	fi
	echo 1 >root/sys/class/tpm/tpm0/tpm_version_major
	refuse_arm 3 arm -d dev.img --state st.img --bootstrap-key --enroll recovery,tpm2 --framework dracut
	assert_grep 'no TPM 2.0 found \(/sys/class/tpm/tpm0 is not version 2\)' err
	rm -r root/sys/class/tpm/tpm0
	refuse_arm 3 arm -d dev.img --state st.img --bootstrap-key --enroll recovery,tpm2 --framework dracut
	assert_grep 'no TPM 2.0 found \(/sys/class/tpm/tpm0 is missing\)' err
}

# tpm2_converted: armed --enroll recovery,tpm2 (unattended recovery key) on
# dracut, converted as the boot would, the flags on root/proc/cmdline.
tpm2_converted() {
	tpm2_setup
	run_rc 0 la arm -d dev.img --state st.img --bootstrap-key --enroll recovery,tpm2 --framework dracut --recovery-key-file /root/recovery.key --dry-run
	assert_grep '^enroll: +recovery,tpm2 .*\(TPM2 sealed to PCR 7\), added by finalize' out
	run_rc 0 la arm -d dev.img --state st.img --bootstrap-key --enroll recovery,tpm2 --framework dracut --recovery-key-file /root/recovery.key
	sed -n 's/^flags=//p' root/etc/luksipc/armed | sed 's/^/root=UUID=1234 ro /' >root/proc/cmdline
	cp dev.img orig.img
	cp root/boot/luksipc/bootstrap.key bootkey
	run_rc 0 conv -d dev.img --state st.img --key-file root/boot/luksipc/bootstrap.key \
		--note-key-file /etc/luksipc/bootstrap.key --note-framework dracut --note-name luks-root
	: >calls
}

t_tpm2_finalize() {
	need_luksipc
	tpm2_converted
	LUKSIPC_TEST_FAST_PBKDF=1 run_rc 0 la finalize --if-done
	cat out
	assert_grep "^systemd-cryptenroll --unlock-key-file=$T/root/boot/luksipc/bootstrap.key --tpm2-device=auto --tpm2-pcrs=7 $T/dev.img\$" calls
	assert_grep '^enroll.recovery=done 1$' root/etc/luksipc/armed
	assert_grep '^enroll.tpm2=done 2$' root/etc/luksipc/armed
	assert_grep 'keyslot 2 of .*dev.img opens with the TPM2 \(token 0, PCR 7\), verified' out
	cryptsetup open --test-passphrase --key-slot 2 --key-file tpmsecret dev.img || fail "the TPM2 keyslot does not open"
	U=$(cryptsetup luksUUID dev.img)
	assert_eq "$(cat root/etc/crypttab)" "luks-root UUID=$U none luks,tpm2-device=auto" "/etc/crypttab: TPM2 first, else a typed key"
	assert_grep "rd\.luks\.uuid=$U rd\.luks\.name=$U=luks-root rd\.luks\.options=$U=tpm2-device=auto\"" root/etc/default/grub.d/luksipc.cfg
	assert_grep '^add_dracutmodules\+=" tpm2-tss "$' root/etc/dracut.conf.d/luksipc-tpm2.conf
	assert_eq "$(tpm_tokens dev.img)" 1 "systemd-tpm2 tokens"
	# the flagless boot (the TPM unlocked it): the bootstrap keyslot goes, TPM2 and recovery stay
	echo "root=UUID=1234 ro" >root/proc/cmdline
	run_rc 0 la finalize --if-done
	if cryptsetup open --test-passphrase --key-file bootkey dev.img 2>/dev/null; then
		fail "the bootstrap key still opens the header"
	fi
	cryptsetup open --test-passphrase --key-slot 2 --key-file tpmsecret dev.img || fail "the TPM2 keyslot went with the bootstrap one"
	opens dev.img "$(cat root/root/recovery.key)" || fail "the recovery key stopped opening the header"
	assert_eq "$(tpm_tokens dev.img)" 1 "systemd-tpm2 tokens after the retirement"
	[ ! -e root/etc/luksipc/armed ] || fail "the record is still there"
	verify_plain dev.img tpmsecret orig.img $((N - H))
}

t_tpm2_finalize_cuts() {
	need_luksipc
	tpm2_converted
	# systemd-cryptenroll adds its keyslot and token, then fails (as a cut would leave it)
	STUB_CE_FAIL=1 LUKSIPC_TEST_FAST_PBKDF=1 run_rc 5 la finalize --if-done
	assert_grep 'systemd-cryptenroll could not enroll the TPM2' err
	assert_grep '^enroll.tpm2=pending 2$' root/etc/luksipc/armed
	assert_grep 'rd\.luksipc=' root/etc/default/grub.d/luksipc.cfg
	cryptsetup open --test-passphrase --key-file bootkey dev.img || fail "the bootstrap key stopped opening"
	# the token does not open: stop before "done", the flags stay
	STUB_VERIFY_FAIL=1 LUKSIPC_TEST_FAST_PBKDF=1 run_rc 5 la finalize --if-done
	assert_grep 'the TPM2 token 0 of .*dev.img does not open its keyslot 2' err
	assert_grep '^enroll.tpm2=pending 2$' root/etc/luksipc/armed
	assert_eq "$(tpm_tokens dev.img)" 1 "systemd-tpm2 tokens: the first attempt's was dropped with its keyslot"
	[ ! -e root/etc/crypttab ] || fail "crypttab written before the TPM2 keyslot was verified"
	# the rerun drops the unverified keyslot and its token and enrolls again
	oldsecret=$(cat tpmsecret)
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >tpmsecret
	LUKSIPC_TEST_FAST_PBKDF=1 run_rc 0 la finalize --if-done
	assert_grep '^enroll.tpm2=done 2$' root/etc/luksipc/armed
	assert_eq "$(tpm_tokens dev.img)" 1 "systemd-tpm2 tokens after the rerun"
	if printf '%s' "$oldsecret" | cryptsetup open --test-passphrase --key-file - dev.img 2>/dev/null; then
		fail "the unverified TPM2 keyslot survived"
	fi
	assert_eq "$(cryptsetup luksDump dev.img | grep -cE '^  [0-9]+: luks2')" 3 "keyslots: bootstrap, recovery, TPM2"
	# a boot without the flags, but the TPM2 keyslot has gone: the bootstrap keyslot stays
	echo "root=UUID=1234 ro" >root/proc/cmdline
	cryptsetup luksKillSlot -q --key-file bootkey dev.img 2
	run_rc 3 la finalize --if-done
	assert_one_error_line "$T/err"
	assert_grep 'the tpm2 keyslot of .* is not in place' err
	cryptsetup open --test-passphrase --key-file bootkey dev.img || fail "the bootstrap keyslot went after a refusal"
}

# The admin's own key file on an ext4 key device (an image mounted by
# finalize through a loop device), --enroll recovery: the key file adds the
# recovery key and stays; the key device is unmounted again.
t_enroll_with_key_file() {
	need_luksipc
	losetup -f >/dev/null 2>&1 || skip_unless_ci "no loop device to mount the key device image"
	fixture
	sys_setup grub itools
	mkdir -p root/usr/lib/systemd/system root/dev root/proc root/root kd
	cp "$TESTS_ROOT/systemd/luksipc-finalize.service" root/usr/lib/systemd/system/
	random_key kd/luksipc.key
	truncate -s 8M keydev.img
	mke2fs -q -F -t ext4 -d kd keydev.img
	run_rc 0 la arm -d dev.img --state st.img --key-file "/luksipc.key:$T/keydev.img" --enroll recovery --recovery-key-file /root/recovery.key --dry-run
	assert_grep '^enroll: +recovery .*with the key file .*; that key stays' out
	run_rc 0 la arm -d dev.img --state st.img --key-file "/luksipc.key:$T/keydev.img" --enroll recovery --recovery-key-file /root/recovery.key
	sed -n 's/^flags=//p' root/etc/luksipc/armed | sed 's/^/root=UUID=1234 ro /' >root/proc/cmdline
	cp dev.img orig.img
	run_rc 0 conv -d dev.img --state st.img --key-file kd/luksipc.key --note-key-file /luksipc.key:LABEL=KEYS \
		--note-framework initramfs-tools --note-name luks-root
	LUKSIPC_TEST_FAST_PBKDF=1 run_rc 0 la finalize --if-done
	cat out
	assert_grep 'running: mount -o ro,nosuid,nodev,noexec /.*keydev.img /run/luksipc-key\.' err
	! grep -q 'keydev.img\|luksipc-key\.' /proc/mounts || fail "the key device is still mounted: $(grep 'luksipc-key' /proc/mounts)"
	assert_grep '^enroll.recovery=done 1$' root/etc/luksipc/armed
	opens dev.img "$(cat root/root/recovery.key)" || fail "the recovery key does not open the header"
	cryptsetup open --test-passphrase --key-file kd/luksipc.key dev.img || fail "the admin's key file stopped opening"
	U=$(cryptsetup luksUUID dev.img)
	assert_eq "$(cat root/etc/crypttab)" "luks-root UUID=$U /luksipc.key:LABEL=KEYS luks,keyscript=/usr/lib/luksipc/keydev" \
		"/etc/crypttab: the key file still unlocks it"
	# the boot without the flags: nothing to retire, the state wiped, both keys open it
	echo "root=UUID=1234 ro" >root/proc/cmdline
	run_rc 0 la finalize --if-done
	[ ! -e root/etc/luksipc/armed ] || fail "the record is still there"
	cryptsetup open --test-passphrase --key-file kd/luksipc.key dev.img || fail "the admin's key file stopped opening"
	opens dev.img "$(cat root/root/recovery.key)" || fail "the recovery key stopped opening"
	verify_plain dev.img kd/luksipc.key orig.img $((N - H))
}

# Passphrase arming (nothing but a typed passphrase), --enroll
# recovery,tpm2 on dracut: finalize asks the passphrase again (a wrong one
# first), hands it to systemd-cryptenroll in PASSWORD, never in argv.
t_enroll_with_passphrase() {
	need_luksipc
	tpm2_setup
	pass="typed at boot $$"
	run_rc 0 la arm -d dev.img --state st.img --enroll recovery,tpm2 --framework dracut --recovery-key-file /root/recovery.key
	assert_grep '^key=passphrase$' root/etc/luksipc/armed
	sed -n 's/^flags=//p' root/etc/luksipc/armed | sed 's/^/root=UUID=1234 ro /' >root/proc/cmdline
	cp dev.img orig.img
	printf '%s' "$pass" >passfile
	run_rc 0 conv -d dev.img --state st.img --key-file passfile --note-key-file - --note-framework dracut --note-name luks-root
	: >calls
	mkdir -p root/usr/lib/systemd/system
	cat >bin/systemd-ask-password <<SH
#!/bin/sh
echo "ask \$*" >>"$T/asked"
a=\$(head -n 1 "$T/answers")
sed -i 1d "$T/answers"
[ -n "\$a" ] || exit 1
printf '%s\n' "\$a"
SH
	chmod 755 bin/systemd-ask-password
	printf 'not it\n%s\n' "$pass" >answers
	LUKSIPC_TEST_FAST_PBKDF=1 run_rc 0 la finalize --if-done
	cat out err
	assert_eq "$(grep -c 'the passphrase that opens luks-root now' asked)" 2 "asked for the passphrase twice (a wrong one first)"
	assert_grep 'that passphrase does not open luks-root' err
	assert_grep '^PASSWORD given$' calls
	! grep -qF "$pass" calls out err || fail "the passphrase reached argv or the log"
	assert_grep "^systemd-cryptenroll --tpm2-device=auto --tpm2-pcrs=7 $T/dev.img\$" calls
	assert_grep '^enroll.recovery=done 1$' root/etc/luksipc/armed
	assert_grep '^enroll.tpm2=done 2$' root/etc/luksipc/armed
	U=$(cryptsetup luksUUID dev.img)
	assert_eq "$(cat root/etc/crypttab)" "luks-root UUID=$U none luks,tpm2-device=auto" "/etc/crypttab"
	opens dev.img "$pass" || fail "the typed passphrase stopped opening"
	cryptsetup open --test-passphrase --key-slot 2 --key-file tpmsecret dev.img || fail "the TPM2 keyslot does not open"
	# a rerun does not ask again
	: >asked
	run_rc 0 la finalize --if-done
	[ ! -s asked ] || fail "a rerun after the keys asked: $(cat asked)"
}

# --also: a second device in the same boot (its own store, its own name).
# arm plans rd.luksipc.2.*, records it, and refuses a second device that
# shares blocks with the first or with a store, a device named twice, and
# --also with --bootstrap-key or --enroll. disarm refuses once the second
# device's store shows a conversion. finalize waits for both conversions,
# writes both crypttab entries, and on the boot without flags wipes both
# stores; neither device is written by arm or finalize.
t_also() {
	need_luksipc
	fixture
	fx_make ext4 dev2.img $((32 * MiB)) $H
	truncate -s $((20 * MiB)) st2.img
	sys_setup grub itools
	mkdir -p root/usr/lib/systemd/system root/proc
	cp "$TESTS_ROOT/systemd/luksipc-finalize.service" root/usr/lib/systemd/system/
	random_key key
	K="/luksipc.key:$T/key"
	before2="$(sha dev2.img) $(sha st2.img)"
	refuse_arm 2 arm -d dev.img --state st.img --key-file "$K" --also dev2.img
	assert_grep "give DEVICE,STATE\[,NAME\]" err
	refuse_arm 2 arm -d dev.img --state st.img --key-file "$K" --also dev2.img,st2.img,home,x
	refuse_arm 2 arm -d dev.img --state st.img --key-file "$K" --also dev2.img,st2.img,a/b
	refuse_arm 2 arm -d dev.img --state st.img --bootstrap-key --enroll passphrase --also dev2.img,st2.img
	assert_grep "^.*--also goes with --key-file or a passphrase typed at boot" err
	refuse_arm 2 arm -d dev.img --state st.img --key-file "$K" --enroll recovery --also dev2.img,st2.img
	refuse_arm 3 arm -d dev.img --state st.img --key-file "$K" --also dev2.img,st.img
	assert_grep "shares blocks with .*dev\.img or its state store" err
	refuse_arm 3 arm -d dev.img --state st.img --key-file "$K" --also dev.img,st2.img
	refuse_arm 3 arm -d dev.img --state st.img --key-file "$K" --also st.img,st2.img
	refuse_arm 3 arm -d dev.img --state st.img --key-file "$K" --also dev2.img,dev2.img
	assert_grep "lies on the device to convert" err
	truncate -s $((20 * MiB)) st3.img
	refuse_arm 3 arm -d dev.img --state st.img --key-file "$K" --also dev2.img,st2.img --also dev2.img,st3.img
	assert_grep "'dev2\.img,st3\.img': its device or state store shares blocks with $T/dev2\.img" err
	refuse_arm 3 arm -d dev.img --state st.img --key-file "$K" --also no-such.img,st2.img
	assert_eq "$(sha dev2.img) $(sha st2.img)" "$before2" "second device and store after the refusals"

	run_rc 0 la arm -d dev.img --state st.img --key-file "$K" --also dev2.img,st2.img,home --dry-run
	cat out
	assert_grep "^also \(2\): +$T/dev2\.img \(ext4, .*\), state store $T/st2\.img .*opened as home\$" out
	assert_grep " rd\.luksipc\.2=$T/dev2\.img rd\.luksipc\.2\.state=$T/st2\.img rd\.luksipc\.2\.name=home\$" out
	run_rc 0 la arm -d dev.img --state st.img --key-file "$K" --also dev2.img,st2.img,home
	assert_grep '^also=1$' root/etc/luksipc/armed
	assert_grep "^device\.2=$T/dev2\.img\$" root/etc/luksipc/armed
	assert_grep "^state\.2=$T/st2\.img\$" root/etc/luksipc/armed
	assert_grep "rd\.luksipc\.2\.name=home\"\$" root/etc/default/grub.d/luksipc.cfg
	assert_eq "$(sha dev2.img) $(sha st2.img)" "$before2" "second device and store after arm"
	sed -n 's/^flags=//p' root/etc/luksipc/armed | sed 's/^/root=UUID=1234 ro /' >root/proc/cmdline

	# the second device's conversion has started (the first store is empty): no disarm
	cp dev.img orig.img
	cp dev2.img orig2.img
	LUKSIPC_TEST_FAULT=write:3:EIO run_rc 5 conv -d dev2.img --state st2.img --key-file key \
		--note-key-file /luksipc.key:LABEL=KEYS --note-framework initramfs-tools --note-name home
	tree1=$(tree_sha)
	: >calls
	run_rc 3 la disarm
	assert_one_error_line "$T/err"
	assert_grep "the conversion has started \(state store '$T/st2\.img'\)" err
	assert_eq "$(tree_sha)" "$tree1" "tree after a refused disarm"
	[ ! -s calls ] || fail "a refused disarm ran: $(cat calls)"
	# the boot converts the first device; the second is still unfinished
	run_rc 0 conv -d dev.img --state st.img --key-file key --note-key-file /luksipc.key:LABEL=KEYS \
		--note-framework initramfs-tools --note-name luks-root
	# finalize waits for the second device too
	run_rc 0 la finalize --if-done
	assert_grep "the conversion of $T/dev2\.img in '$T/st2\.img' is not finished; nothing to finalize yet" err
	assert_eq "$(tree_sha)" "$tree1" "tree after finalize with the second device unfinished"
	[ ! -s calls ] || fail "finalize ran tools before the second device was converted: $(cat calls)"
	run_rc 3 la finalize
	assert_one_error_line "$T/err"

	# the boot resumes the second device: finalize writes both entries
	run_rc 0 conv -d dev2.img --state st2.img --key-file key --note-key-file /luksipc.key:LABEL=KEYS \
		--note-framework initramfs-tools --note-name home
	run_rc 0 la finalize --if-done
	cat out
	U=$(cryptsetup luksUUID dev.img)
	U2=$(cryptsetup luksUUID dev2.img)
	assert_eq "$(cat root/etc/crypttab)" "home UUID=$U2 /luksipc.key:LABEL=KEYS luks,keyscript=/usr/lib/luksipc/keydev
luks-root UUID=$U /luksipc.key:LABEL=KEYS luks,keyscript=/usr/lib/luksipc/keydev" "/etc/crypttab with both devices"
	assert_eq "$(tr '\n' '|' <calls)" "update-initramfs -u -k all|update-grub |" "tools run, in order"
	[ ! -e root/etc/default/grub.d/luksipc.cfg ] || fail "the GRUB drop-in with the rd.luksipc flags is still there"
	# a rerun of the same step (a cut before it was recorded) keeps one entry each
	sed -i '/^finalize=boot-config$/d' root/etc/luksipc/armed
	run_rc 0 la finalize --if-done
	assert_eq "$(grep -c . root/etc/crypttab)" 2 "crypttab entries after a rerun"

	# the boot without flags: both stores wiped, the record gone
	echo "root=UUID=1234 ro" >root/proc/cmdline
	run_rc 0 la finalize --if-done
	cat out err
	run_rc 3 lx status --state st.img
	run_rc 3 lx status --state st2.img
	[ ! -e root/etc/luksipc/armed ] || fail "the record is still there"
	verify_plain dev.img key orig.img $((N - H))
	verify_plain dev2.img key orig2.img $((32 * MiB - H))
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
run_test "arm --bootstrap-key: the key 0600 in /boot only, UMASK, flags; disarm removes it before the rebuild" t_bootstrap_arm_disarm
run_test "arm refuses key choices that do not go together: one line, exit 2, nothing written" t_bootstrap_refusals
run_test "finalize enrolls a passphrase and a recovery key, verified by cryptsetup; the flagless boot retires the bootstrap key" t_bootstrap_finalize
run_test "finalize cut: a recovery key not typed back, a keyslot never recorded done, an enrolled keyslot gone" t_bootstrap_finalize_cuts
run_test "finalize unattended: the recovery key in a 0600 file, nothing asked, nothing shown" t_bootstrap_unattended
run_test "arm --also: a second device and store; refusals; disarm and finalize cover both" t_also
run_test "arm --enroll tpm2 refusals: alone, initramfs-tools, no tpm2-tools, no TPM 2.0" t_tpm2_refusals
run_test "finalize enrolls TPM2 with systemd-cryptenroll, checks its token opens; crypttab and rd.luks.options; retire keeps it" t_tpm2_finalize
run_test "arm --key-file --enroll recovery: finalize mounts the key device read-only, adds the key, unmounts; the key file stays" t_enroll_with_key_file
run_test "passphrase arming --enroll recovery,tpm2: asked again (wrong first), PASSWORD for systemd-cryptenroll, not argv" t_enroll_with_passphrase
run_test "finalize TPM2 cut: enrollment failed after its keyslot, a token that does not open, a TPM2 keyslot gone" t_tpm2_finalize_cuts
test_done
