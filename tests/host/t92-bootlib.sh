#!/bin/sh
# The boot library (luksipc-lib.sh) on the host, its system tools real or
# stubbed.
#
# Its pure functions answer right under sh, dash, busybox ash and bash, and
# leave no variable behind but the shared LIPC_* state (they use `local`).
#
# The key device is mounted with -t and the type blkid finds, after
# modprobe; a failed mount's own words end up in the one-line error.
#
# rd.luksipc.resize=1 (lipc_resize in the boot library) shrinks a
# ~75%-full ext4 that fills its partition by exactly the header, with data
# that must move out of the tail: e2fsck -fn is clean afterwards, the block
# count is within (size - 16 MiB) / bs and every file reads back the same.
# A filesystem that truly lacks the room is refused with one line and not
# one byte written. (Issue 16: resize2fs -P's estimate refused every such
# filesystem of 1000 MiB or less with "New size smaller than minimum".)
#
# rd.luksipc.header= (a detached header), with luksipc, cryptsetup, mount
# and the rest stubbed: DEVICE and DEVICE:/PATH, the refusals, the mount
# (-t TYPE rw,nosuid,nodev,noexec) and its unmount after the open,
# --header to convert and to cryptsetup open, a finished conversion found
# by its recorded path, no resize, rd.luksipc.N.header= per device.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"

# LIPC_LIB: another copy of the library (to watch an old one fail)
LIB=${LIPC_LIB:-$TESTS_ROOT/boot/luksipc-lib.sh}
SIZE_MIB=400
BS=4096
# the limit: the device's last 4 KiB is the converter's in-progress marker,
# then the 16 MiB header (docs/format.md, "The device-side marker")
LIM=$(((SIZE_MIB - 16) * MiB / BS - 1))

# payload DIR MIB: files of seeded random bytes, about MIB MiB in total,
# a few hundred small ones (a root's /etc) and the rest up to 4 MiB.
payload() {
	"$PY" - "$1" "$2" <<'PYEOF'
import os, random, sys
root, budget = sys.argv[1], int(sys.argv[2]) << 20
r = random.Random(16)
tot = i = 0
while tot < budget:
    n = r.randint(100, 24000) if i < 600 else r.randint(64 << 10, 4 << 20)
    n = min(n, budget - tot) or 1
    d = os.path.join(root, "d%02d" % (i % 40))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(r.randbytes(n))
    tot += n
    i += 1
PYEOF
}

# mkimg IMG SRC: ext4 with 4 KiB blocks over the whole image, from SRC.
mkimg() {
	truncate -s "${SIZE_MIB}M" "$1"
	mke2fs -q -F -t ext4 -b $BS -E nodiscard -d "$2" "$1"
}

sb_field() {
	dumpe2fs -h "$1" 2>/dev/null | sed -n "s/^$2: *//p"
}

# boot_resize IMG: run the boot library's lipc_resize on IMG as the boot
# hook would (no kernel flags but the defaults: a 16 MiB LUKS2 header);
# LIPC_ERROR on stderr when it refuses.
boot_resize() {
	(
		# shellcheck disable=SC2030 # the subshell's own
		LIPC_CMDLINE=
		# shellcheck source=boot/luksipc-lib.sh
		. "$LIB"
		lipc_dev_bytes() { stat -c %s "$1"; }
		LIPC_DEV=$1
		if ! lipc_resize; then
			printf '%s\n' "$LIPC_ERROR" >&2
			exit 1
		fi
	)
}

t_resize_75_percent() {
	need_cmd mke2fs debugfs e2fsck resize2fs dumpe2fs blkid
	# Filled to the last few blocks, then every 3rd file deleted until
	# about 75 % is used, with files left in the last 16 MiB that must move.
	payload src 356
	mkimg img src
	bc=$(sb_field img "Block count")
	free=$(sb_field img "Free blocks")
	need=$(((bc - free) * BS - 75 * SIZE_MIB * MiB / 100))
	find src -type f -printf '%s %p\n' | sort -k2 |
		awk -v need=$need 'NR % 3 == 0 && got < need { print $2; got += $1 }' >deleted
	sed 's|^src/|rm /|' deleted >rm.cmds
	debugfs -w -f rm.cmds img >/dev/null 2>&1
	while IFS= read -r f; do rm -f "$f"; done <deleted
	(cd src && find . -type f -exec sha256sum {} + | sort -k2) >want
	e2fsck -fn img >/dev/null 2>&1 || fail "fixture: e2fsck -fn not clean after the deletions"
	bc=$(sb_field img "Block count")
	free=$(sb_field img "Free blocks")
	used_pct=$(((bc - free) * 100 / bc))
	echo "fixture: $bc blocks, $free free, ${used_pct}% used, limit $LIM"
	if [ "$used_pct" -lt 70 ] || [ "$used_pct" -gt 80 ]; then fail "fixture is ${used_pct}% full, not about 75%"; fi
	[ "$bc" -gt "$LIM" ] || fail "fixture already ends within the limit"
	tail_files=$(debugfs -R "icheck $(seq -s ' ' $((LIM + 1)) 300 $((bc - 1)))" img 2>/dev/null |
		awk '$2 ~ /^[0-9]+$/' | wc -l)
	[ "$tail_files" -gt 0 ] || fail "fixture: nothing in the last 16 MiB to move"
	min=$(resize2fs -P img 2>/dev/null | sed -n 's/.*: *//p')
	echo "resize2fs -P estimates $min blocks; blocks in use in the tail (sampled): $tail_files"
	run_rc 0 boot_resize img
	cat "$T/err"
	e2fsck -fn img >fsck.out 2>&1 || { cat fsck.out; fail "e2fsck -fn not clean after lipc_resize"; }
	nbc=$(sb_field img "Block count")
	[ "$nbc" -le "$LIM" ] || fail "block count $nbc after lipc_resize, limit $LIM"
	[ "$nbc" -ge $((LIM - 64)) ] || fail "shrunk to $nbc blocks, more than needed (limit $LIM)"
	mkdir dump
	debugfs -R "rdump / $T/dump" img >/dev/null 2>&1
	(cd dump && find . -type f ! -path './lost+found/*' -exec sha256sum {} + | sort -k2) >got
	cmp -s want got || { diff want got | head; fail "files differ after lipc_resize"; }
	echo "$(wc -l <want) files identical; $bc -> $nbc blocks"
}

t_refuse_full() {
	need_cmd mke2fs e2fsck resize2fs dumpe2fs blkid
	# Full to the last few blocks: less free than the 16 MiB to give up.
	payload src 356
	mkimg img src
	free=$(sb_field img "Free blocks")
	[ "$free" -lt $((16 * MiB / BS)) ] || fail "fixture has $free free blocks, not truly full"
	before=$(sha img)
	run_rc 1 boot_resize img
	assert_eq "$(sha img)" "$before" "image hash after a refused resize"
	cat "$T/err"
	assert_one_error_line "$T/err"
	assert_grep "too full to give up its last 17 MiB.*free [0-9]+ MiB more \(delete files\) or make the partition that much bigger" "$T/err"
}

# keydev_mount TYPE MOUNT_RC: lipc_mount_ro with blkid, modprobe and mount
# stubbed (the calls logged to $T/calls); LIPC_ERROR on stderr.
keydev_mount() {
	(
		# shellcheck disable=SC2030 # the subshell's own
		LIPC_CMDLINE=
		# shellcheck source=boot/luksipc-lib.sh
		. "$LIB"
		blkid() { [ -z "$KD_TYPE" ] || echo "$KD_TYPE"; }
		modprobe() { echo "modprobe $*" >>"$T/calls"; }
		mount() {
			echo "mount $*" >>"$T/calls"
			[ "$KD_RC" = 0 ] && return 0
			echo "mount: /run/luksipc/keydev: wrong fs type, bad option, bad superblock on /dev/vdb, missing codepage or helper program, or other error."
			echo "       dmesg(1) may have more information after failed mount system call." >&2
			return "$KD_RC"
		}
		if ! lipc_mount_ro /dev/vdb /run/luksipc/keydev rd.luksipc.key=; then
			printf '%s\n' "$LIPC_ERROR" >&2
			exit 1
		fi
	)
}

t_keydev_mount() {
	: >calls
	KD_TYPE=vfat KD_RC=0 run_rc 0 keydev_mount
	assert_grep '^modprobe -q fs-vfat$' calls
	assert_grep '^mount -t vfat -o ro /dev/vdb /run/luksipc/keydev$' calls
	KD_TYPE=ext4 KD_RC=32 run_rc 1 keydev_mount
	cat "$T/err"
	assert_one_error_line "$T/err"
	assert_grep "^luksipc: error: cannot mount key device '/dev/vdb' \(ext4\) read-only: mount: /run/luksipc/keydev: wrong fs type.* or other error\. dmesg\(1\) may have more information after failed mount system call\.; check rd\.luksipc\.key= and that the initramfs has the ext4 module$" "$T/err"
	KD_TYPE='' KD_RC=0 run_rc 1 keydev_mount
	assert_one_error_line "$T/err"
	assert_grep "key device '/dev/vdb' holds no filesystem that blkid recognises; check rd\.luksipc\.key=" "$T/err"
}

# keyscript SPEC: run initramfs-tools/keydev (this tree's library in place
# of the installed path) with blkid, modprobe, mount and umount stubbed on
# PATH; the stub mount puts keydev.d/* into the mount point. The key on
# $T/out, the message on $T/err, the calls in $T/calls.
keyscript() {
	mkdir -p bin
	cat >bin/blkid <<'SH'
#!/bin/sh
echo "blkid $*" >>"$T/calls"
case $* in *-o\ device*) exit 2 ;; esac
echo vfat
SH
	cat >bin/mount <<'SH'
#!/bin/sh
echo "mount $*" >>"$T/calls"
for a; do m=$a; done
cp keydev.d/* "$m"/ 2>/dev/null || :
SH
	cat >bin/umount <<'SH'
#!/bin/sh
echo "umount $*" >>"$T/calls"
rm -f "$1"/*
SH
	cat >bin/modprobe <<'SH'
#!/bin/sh
echo "modprobe $*" >>"$T/calls"
SH
	chmod 755 bin/*
	sed "s|^LIPC_LIB=.*|LIPC_LIB=$LIB|; s|^LIPC_RUN=.*|LIPC_RUN=$T/run|" \
		"$TESTS_ROOT/initramfs-tools/keydev" >keydev.sh
	export T
	PATH=$T/bin:$PATH CRYPTTAB_NAME=luks-root LIPC_CMDLINE="rd.luksipc.timeout=1" \
		sh keydev.sh "$1" >"$T/out" 2>"$T/err"
}

t_keyscript() {
	bdev=$(find /dev -maxdepth 1 -type b | head -n 1)
	[ -n "$bdev" ] || skip "no block device node in /dev to stand for the key device"
	mkdir keydev.d
	random_key keydev.d/luksipc.key
	: >calls
	keyscript "/luksipc.key:$bdev" || { cat err; fail "the keyscript failed (exit $?)"; }
	cmp out keydev.d/luksipc.key || fail "the keyscript printed other bytes than the key file"
	assert_grep "^mount -t vfat -o ro $bdev $T/run/mnt\$" calls
	assert_grep "^umount $T/run/mnt\$" calls
	[ ! -s err ] || { cat err; fail "the keyscript wrote to stderr on success"; }
	# no key file on the device: exit 1, one line naming the crypttab entry
	rm keydev.d/luksipc.key
	run_rc 1 keyscript "/luksipc.key:$bdev"
	cat err
	assert_one_error_line err
	assert_grep "key file '/luksipc.key' is missing or empty; check the key field '/luksipc.key:$bdev' of 'luks-root' in /etc/crypttab\$" err
	[ ! -s out ] || fail "a failed keyscript printed a key"
	# a device that never appears: bounded wait, then one line
	run_rc 1 keyscript "/luksipc.key:LABEL=NO-SUCH-LABEL"
	assert_grep "key device 'LABEL=NO-SUCH-LABEL' did not appear within 1 s" err
	assert_eq "$(grep -c 'luksipc: error' err)" 1 "error lines"
	# passdev's order (DEVICE:PATH) is not taken for a path
	run_rc 1 keyscript "/luksipc.key"
	assert_one_error_line err
	assert_grep "has no device; write it as PATH:DEVICE" err
}

# lib_shell SHELL: source the library under SHELL, call its pure functions
# and a refused key spec; every answer checked, and no variable but the
# shared LIPC_* state is left behind (the functions use `local`).
lib_shell() {
	cat >smoke.sh <<'SH'
. "$1"
names() { set | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | sort -u; }
bad() { echo "bad: $*"; exit 1; }
names >before
LIPC_CMDLINE='ro root=block:UUID=abc rd.luksipc=root rd.luksipc.header-size=4M rd.luksipc.header-size=8M'
[ "$(lipc_size_bytes 16M)" = 16777216 ] || bad "lipc_size_bytes 16M"
[ "$(lipc_size_bytes 3k)" = 3072 ] || bad "lipc_size_bytes 3k"
! lipc_size_bytes 1X >/dev/null || bad "lipc_size_bytes 1X"
[ "$(lipc_arg rd.luksipc.header-size)" = 8M ] || bad "lipc_arg: not the last value"
! lipc_arg rd.luksipc.nope >/dev/null || bad "lipc_arg: an absent flag"
[ "$(lipc_header_bytes)" = 8388608 ] || bad "lipc_header_bytes"
[ "$(lipc_root_spec)" = UUID=abc ] || bad "lipc_root_spec"
[ "$(lipc_oneline "a  b
   c	d")" = "a b c d" ] || bad "lipc_oneline"
[ "$(lipc_json '{"percent":12.5,"done":100,"eta_s":"7"}' eta_s)" = 7 ] || bad "lipc_json"
lipc_setup && [ "$LIPC_DEVSPEC" = root ] || bad "lipc_setup"
# in this shell, as keydev calls it; found and val are lipc_arg's locals
found=mine val=mine
lipc_key_spec "rd.luksipc.key=" /nonexistent/key mnt >/dev/null
[ $? = 2 ] || bad "lipc_key_spec: a missing key file"
case $LIPC_ERROR in
"luksipc: error: key file '/nonexistent/key' is missing or empty; check rd.luksipc.key=") ;;
*) bad "LIPC_ERROR=$LIPC_ERROR" ;;
esac
lipc_arg root >/dev/null
[ "$found$val" = minemine ] || bad "lipc_arg changed its caller's variables"
unset found val
lipc_release_key
# rd.luksipc.used-only passes --used-only[=wipe] in encrypt mode only, for
# a filesystem with a map reader (blkid here says ext4)
blkid() { printf ext4; }
LIPC_CMDLINE='rd.luksipc.used-only=wipe rd.luksipc.step-size=1M' LIPC_MODE=encrypt LIPC_FRAMEWORK=other
[ "$(lipc_convert_args | tr '\n' ' ')" = "--step-size 1M --used-only=wipe --note-framework other " ] || bad "lipc_convert_args: rd.luksipc.used-only=wipe"
LIPC_CMDLINE='rd.luksipc.used-only=1'
[ "$(lipc_convert_args | tr '\n' ' ')" = "--used-only --note-framework other " ] || bad "lipc_convert_args: rd.luksipc.used-only=1"
LIPC_MODE=reencrypt
[ "$(lipc_convert_args | tr '\n' ' ')" = "--reencrypt --note-framework other " ] || bad "lipc_convert_args: used-only in reencrypt mode"
unset LIPC_MODE LIPC_FRAMEWORK
unset -f blkid
names >after
comm -13 before after | grep -v '^LIPC_\(CMDLINE\|DEVSPEC\|ERROR\)$' | grep -v '^_$' && bad "variables left behind"
echo ok
SH
	# shellcheck disable=SC2086 # $1 may be "busybox ash"
	$1 smoke.sh "$LIB" >smoke.out 2>&1 || { cat smoke.out; fail "$1: the library's functions misbehave"; }
	assert_grep '^ok$' smoke.out
}

t_lib_shells() {
	for sh in sh dash "busybox ash" bash; do
		command -v "${sh%% *}" >/dev/null 2>&1 || continue
		[ "$sh" != "busybox ash" ] || busybox ash -c : 2>/dev/null || continue
		lib_shell "$sh"
		echo "$sh: answers right, nothing left behind"
	done
}

# notes_at_boot ARMED [IDX]: the library's lipc_notes with a stub luksipc
# that prints two note lines; ARMED 1: the arm record is in the image (with
# device.2 from luksipc arm --also); IDX: device IDX (rd.luksipc.IDX).
notes_at_boot() {
	mkdir -p run
	printf '#!/bin/sh\necho "1. The /etc/crypttab entry"\necho "  $ update-initramfs -u"\n' >stub-luksipc
	chmod 755 stub-luksipc
	[ "$1" = 1 ] && printf 'device=/dev/vda4\nalso=1\ndevice.2=/dev/vdb1\nstate.2=/dev/vdb2\n' >armed
	(
		# shellcheck disable=SC2030 # the subshell's own
		LIPC_CMDLINE=
		# shellcheck source=boot/luksipc-lib.sh
		. "$LIB"
		LIPC_BIN=$T/stub-luksipc LIPC_RUN=$T/run LIPC_ARMED=$T/armed
		LIPC_DEV=/dev/vda4 LIPC_STATE=/dev/vda1 LIPC_FRAMEWORK=initramfs-tools LIPC_IDX=${2:-}
		lipc_notes
	) 2>"$T/err"
}

t_notes_armed() {
	notes_at_boot 0
	cat err
	assert_grep '^luksipc:     \$ update-initramfs -u$' err
	rm -f err run/notes
	notes_at_boot 1
	cat err
	assert_grep "^luksipc: '/dev/vda4' is now LUKS; luksipc-finalize.service finishes in the booted system" err
	if grep -q 'update-initramfs' err; then fail "an armed boot printed the manual steps"; fi
	assert_grep '\$ update-initramfs -u' run/notes
	# device 2, armed with --also: finalize finishes it too
	rm -f err run/notes*
	notes_at_boot 1 2
	cat err
	assert_grep "luksipc-finalize.service finishes in the booted system" err
	if grep -q 'update-initramfs' err; then fail "device 2, armed with --also, printed the manual steps"; fi
	assert_grep '\$ update-initramfs -u' run/notes.2
	# device 3, flags added by hand beside an armed root: the manual steps
	rm -f err run/notes*
	notes_at_boot 1 3
	cat err
	assert_grep '^luksipc:     \$ update-initramfs -u$' err
}

# creds CMDLINE: the library's lipc_wanted over the fake credential
# sources in $T/cred, $T/fwcfg and $T/dmi; prints its status, then
# LIPC_CMDLINE, one flag per line; the log on $T/err.
creds() {
	(
		# shellcheck source=boot/luksipc-lib.sh
		. "$LIB"
		LIPC_CRED_DIR=$T/cred LIPC_FWCFG_DIR=$T/fwcfg/by_name/opt/io.systemd.credentials LIPC_DMI_DIR=$T/dmi
		LIPC_CMDLINE=$1
		rc=0
		lipc_wanted || rc=$?
		echo "wanted: $rc"
		# shellcheck disable=SC2086 # one flag per line
		printf '%s\n' $LIPC_CMDLINE
	) 2>"$T/err"
}

# smbios_11 FILE STRING...: an SMBIOS type 11 structure (header, count,
# the strings NUL-terminated, a final NUL), as /sys/firmware/dmi exposes it.
smbios_11() {
	f=$1
	shift
	{
		printf '\013\005\001\000\00%s' "$#"
		for str in "$@"; do printf '%s\000' "$str"; done
		printf '\000'
	} >"$f"
}

t_credentials() {
	mkdir -p cred fwcfg/by_name/opt/io.systemd.credentials dmi/11-0 dmi/11-1
	# nothing anywhere: nothing to do
	creds "root=/dev/vda2 quiet" >out
	assert_grep '^wanted: 1$' out
	# systemd's imported credentials, fw_cfg, SMBIOS type 11
	printf 'PARTLABEL=root\n' >cred/luksipc.device
	printf 'PARTLABEL=luksipc-state' >cred/luksipc.state
	mkdir fwcfg/by_name/opt/io.systemd.credentials/luksipc.key
	printf '/k.key:LABEL=KEYS' >fwcfg/by_name/opt/io.systemd.credentials/luksipc.key/raw
	smbios_11 dmi/11-0/raw "io.systemd.credential:luksipc.resize=1" "vendor string" \
		"io.systemd.credential:other.thing=1" "io.systemd.credential:luksipc.Bad=1"
	smbios_11 dmi/11-1/raw "io.systemd.credential:luksipc.used-only=has blank" "io.systemd.credential:luksipc.timeout=45"
	creds "root=/dev/mapper/r rd.luksipc.timeout=60" >out
	cat out err
	assert_grep '^wanted: 0$' out
	for w in rd.luksipc=PARTLABEL=root rd.luksipc.state=PARTLABEL=luksipc-state \
		rd.luksipc.key=/k.key:LABEL=KEYS rd.luksipc.resize=1 rd.luksipc.timeout=45; do
		grep -qxF -- "$w" out || fail "no $w from the credentials"
	done
	assert_no_grep 'other\.thing|Bad|used-only|vendor' out
	assert_grep "ignoring the credential 'luksipc.Bad': not a luksipc setting" err
	assert_grep "ignoring the credential 'luksipc.used-only': its value is empty or holds blanks" err
	# the command line comes last, so its flags win
	[ "$(sed -n '$p' out)" = rd.luksipc.timeout=60 ] || fail "the command line is not last"
	[ "$(grep -n '^rd.luksipc.timeout=45$' out | cut -d: -f1)" -lt "$(grep -n '^rd.luksipc.timeout=60$' out | cut -d: -f1)" ] ||
		fail "the credential's timeout comes after the command line's"
	(
		# shellcheck source=boot/luksipc-lib.sh
		. "$LIB"
		LIPC_CMDLINE="rd.luksipc.timeout=45 root=/dev/x rd.luksipc.timeout=60"
		[ "$(lipc_arg rd.luksipc.timeout)" = 60 ]
	) || fail "lipc_arg does not take the last flag"
	# rd.luksipc=0 on the command line turns a credential's device off
	creds "rd.luksipc=0" >out
	(
		# shellcheck source=boot/luksipc-lib.sh
		. "$LIB"
		LIPC_CMDLINE=$(sed 1d out | tr '\n' ' ')
		! lipc_setup
	) || fail "rd.luksipc=0 on the command line did not win over luksipc.device"
}

# used_only_args FSTYPE FLAG: lipc_convert_args with rd.luksipc.used-only=FLAG
# and a stub blkid that says FSTYPE; the words on $T/out, the log on $T/err.
used_only_args() {
	mkdir -p stubbin
	printf '#!/bin/sh\nprintf "%%s" "%s"\n' "$1" >stubbin/blkid
	chmod 755 stubbin/blkid
	(
		# shellcheck source=boot/luksipc-lib.sh
		. "$LIB"
		# shellcheck disable=SC2030 # the subshell's own
		PATH=$T/stubbin:$PATH
		LIPC_CMDLINE="rd.luksipc=root rd.luksipc.used-only=$2"
		LIPC_MODE=encrypt LIPC_DEV=/dev/vda2 LIPC_FRAMEWORK=dracut
		lipc_convert_args
	) >"$T/out" 2>"$T/err"
}

t_used_only_fallback() {
	used_only_args ext4 1
	assert_grep '^--used-only$' out
	used_only_args vfat wipe
	assert_grep '^--used-only=wipe$' out
	for fs in xfs btrfs ""; do
		used_only_args "$fs" 1
		cat err
		assert_no_grep '^--used-only' out
		assert_grep "rd.luksipc.used-only=1: '/dev/vda2' holds ${fs:-no filesystem blkid knows}, whose allocation map luksipc cannot read .*; converting the whole device" err
	done
}

# Several devices: which flags device 2 reads (its own, or the first
# device's for the boot-wide ones), and the order of the devices.
t_several_devices() {
	(
		# shellcheck source=boot/luksipc-lib.sh
		. "$LIB"
		LIPC_CMDLINE="root=UUID=r rd.luksipc=root rd.luksipc.state=PARTLABEL=st1 rd.luksipc.key=/k:LABEL=K \
rd.luksipc.timeout=9 rd.luksipc.resize=1 rd.luksipc.name=cryptroot rd.luksipc.used-only=1 \
rd.luksipc.4=PARTLABEL=swap rd.luksipc.4.state=PARTLABEL=st4 rd.luksipc.3=0 \
rd.luksipc.2=PARTLABEL=home rd.luksipc.2.state=PARTLABEL=st2 rd.luksipc.2.timeout=60 rd.luksipc.2.mode=reencrypt"
		[ "$(lipc_devices | tr '\n' ' ')" = "- 2 4 " ] || { echo "devices: $(lipc_devices | tr '\n' ' ')"; exit 1; }
		LIPC_IDX=2
		[ "$(lipc_arg rd.luksipc)" = PARTLABEL=home ] || exit 2
		[ "$(lipc_arg rd.luksipc.state)" = PARTLABEL=st2 ] || exit 3
		[ "$(lipc_arg rd.luksipc.key)" = /k:LABEL=K ] || exit 4     # the boot's key
		[ "$(lipc_arg rd.luksipc.timeout)" = 60 ] || exit 5         # its own
		[ "$(lipc_arg rd.luksipc.mode)" = reencrypt ] || exit 6
		! lipc_arg rd.luksipc.resize >/dev/null || exit 7          # never the first device's
		! lipc_arg rd.luksipc.name >/dev/null || exit 8
		! lipc_arg rd.luksipc.used-only >/dev/null || exit 9
		[ "$(lipc_arg root)" = UUID=r ] || exit 10
		LIPC_IDX=4
		[ "$(lipc_arg rd.luksipc.timeout)" = 9 ] || exit 11
		! lipc_arg rd.luksipc.mode >/dev/null || exit 12
		lipc_fail "x" || :
		[ "$LIPC_ERROR" = "luksipc: error: device 4 (rd.luksipc.4.*): x" ] || exit 13
		LIPC_IDX=
		[ "$(lipc_arg rd.luksipc.name)" = cryptroot ] || exit 14
		[ "$(lipc_arg rd.luksipc)" = root ] || exit 15
		LIPC_CMDLINE="rd.luksipc.2=PARTLABEL=home rd.luksipc.2.state=PARTLABEL=st2"
		[ "$(lipc_devices)" = 2 ] || exit 16
		lipc_wanted || exit 17
		LIPC_CMDLINE="rd.luksipc=0 rd.luksipc.2=0 root=/dev/vda2" LIPC_WANTED_DONE=
		! lipc_wanted || exit 18
		# one store for two devices: the second is refused, not taken for the first
		LIPC_IDX=
		lipc_state_unique /dev/null || exit 19
		LIPC_IDX=2
		! lipc_state_unique /dev/null || exit 20
		[ "$LIPC_ERROR" = "luksipc: error: device 2 (rd.luksipc.2.*): state store '/dev/null' is also the state of another device of this boot; give each device its own (rd.luksipc.N.state=)" ] || exit 21
		lipc_state_unique /dev/zero || exit 22
		# arm's bootstrap key, inherited by device 3: refused before anything runs
		LIPC_IDX='' LIPC_WANTED_DONE=1 LIPC_CMDLINE="rd.luksipc=root rd.luksipc.key=/etc/luksipc/bootstrap.key rd.luksipc.3=PARTLABEL=d rd.luksipc.3.state=PARTLABEL=s3"
		! lipc_run || exit 23
		case $LIPC_ERROR in
		"luksipc: error: device 3 (rd.luksipc.3.*): luksipc arm's bootstrap key (/etc/luksipc/bootstrap.key) is the root's alone: "*"rd.luksipc.3.key= (nothing converted)") ;;
		*) echo "$LIPC_ERROR"; exit 24 ;;
		esac
	) 2>"$T/err" || fail "device scoping: check $? failed"
}

# dracut's luksipc-boot (what luksipc.service runs) on a boot with nothing
# to do: no flag, no credential, no /run/luksipc yet. It must exit 0 under
# every shell: the unit has no ConditionKernelCommandLine (settings may come
# from credentials) and OnFailure=emergency.target, so a failure here takes
# every flagless boot of an initrd with the module to the emergency shell.
t_dracut_boot_nothing_to_do() {
	mkdir -p lib run
	printf 'getcmdline() { echo "root=UUID=1234 ro quiet"; }\ngetarg() { return 1; }\ndie() { echo "die: $*"; exit 1; }\n' >lib/dracut-lib.sh
	sed -e "s|/lib/dracut-lib.sh|$T/lib/dracut-lib.sh|" -e "s|/usr/lib/luksipc/luksipc-lib.sh|$TESTS_ROOT/boot/luksipc-lib.sh|" \
		"$TESTS_ROOT/dracut-module/55luksipc/luksipc-boot.sh" >boot.sh
	for sh in sh dash "busybox sh" bash; do
		command -v "${sh%% *}" >/dev/null || continue
		rm -rf run/luksipc
		# shellcheck disable=SC2086 # "busybox sh" is two words
		LIPC_RUN=$T/run/luksipc DRACUT_SYSTEMD=1 LIPC_CRED_DIR=$T/nocreds LIPC_FWCFG_DIR=$T/nofw/by_name/x LIPC_DMI_DIR=$T/nodmi \
			run_rc 0 $sh boot.sh
		[ -e run/luksipc/boot-done ] || fail "$sh: no boot-done after a boot with nothing to do"
		! grep -q . err || fail "$sh: luksipc-boot printed on a boot with nothing to do: $(cat err)"
	done
}

# ---- rd.luksipc.header= (a detached header) --------------------------------
# The library with its tools stubbed on PATH ($T/stub): luksipc, cryptsetup,
# mount, umount, blkid (says $STUB_FSTYPE, default ext4), modprobe, udevadm,
# e2fsck, resize2fs, dumpe2fs. Every call is logged to $T/calls. Device
# specs resolve at once: /dev/* to itself, a UUID= to nothing (a device
# converted with a detached header carries no signature, so neither its
# filesystem UUID nor a LUKS UUID), anything else to /dev/stub/SPEC.
# The stub mount puts the files of $T/hdrdev into the mount point, umount
# removes them. The stub luksipc keeps "PHASE DEVICE [HEADER]" in
# $T/phase.STATE (convert writes "done", and a header file under $T/run);
# its status answers as luksipc's does (src/status.c): it prints the state,
# and exits 3 when the device (-d, else the recorded one) does not match;
# a finished conversion with a detached header matches only while that
# header can be read, i.e. while its filesystem is mounted.

hdr_stubs() {
	mkdir -p stub run
	rm -f phase.*
	random_key key
	cat >stub/luksipc <<'SH'
#!/bin/sh
echo "luksipc $*" >>"$T/calls"
cmd=$1
shift
st='' dev='' notes='' hdr=''
while [ $# -gt 0 ]; do
	case $1 in
	--state) st=$2; shift ;;
	-d) dev=$2; shift ;;
	--header) hdr=$2; shift ;;
	--notes) notes=1 ;;
	esac
	shift
done
f=$T/phase.$(printf '%s' "$st" | tr / _)
case $cmd in
status)
	[ -s "$f" ] || { echo "luksipc: error: '$st' holds no luksipc state" >&2; exit 3; }
	[ -z "$notes" ] || exit 0
	read -r phase recorded header <"$f"
	printf 'state: %s\nmode: encrypt\nphase: %s\ndevice: %s\ndata-size: 1048576\ndone: 1048576\nluks-uuid: 1234abcd\n' \
		"$st" "$phase" "$recorded"
	[ -z "$header" ] || echo "detached-header: $header"
	[ -z "$dev" ] || [ "$dev" = "$recorded" ] || exit 3
	case $phase:$header in
	done:"$T"/run/*) [ -e "$header" ] || exit 3 ;;
	esac
	;;
convert)
	echo "done $dev $hdr" >"$f"
	case $hdr in "$T"/run/*) printf 'LUKS\272\276' >"$hdr" ;; esac
	;;
esac
SH
	cat >stub/mount <<'SH'
#!/bin/sh
echo "mount $*" >>"$T/calls"
for a; do m=$a; done
cp "$T"/hdrdev/* "$m"/ 2>/dev/null || :
SH
	cat >stub/umount <<'SH'
#!/bin/sh
echo "umount $*" >>"$T/calls"
rm -f "$1"/*
SH
	mkdir -p hdrdev
	printf 'LUKS\272\276' >hdrdev/root.hdr
	# shellcheck disable=SC2016 # expanded by the stubs
	for c in cryptsetup modprobe udevadm; do
		printf '#!/bin/sh\necho "%s $*" >>"$T/calls"\n' "$c" >"stub/$c"
	done
	# shellcheck disable=SC2016 # expanded by the stubs
	for c in e2fsck resize2fs dumpe2fs; do
		printf '#!/bin/sh\necho "%s $*" >>"$T/calls"\nexit 8\n' "$c" >"stub/$c"
	done
	cat >stub/blkid <<'SH'
#!/bin/sh
echo "blkid $*" >>"$T/calls"
printf '%s\n' "${STUB_FSTYPE-ext4}"
SH
	chmod 755 stub/*
	: >calls
}

# hdr_lib CMDS: CMDS (shell text) after sourcing the library with the
# stubs; stdout on $T/out, stderr (the log, and LIPC_ERROR when CMDS
# fails) on $T/err; returns what CMDS returned.
hdr_lib() {
	export T
	# shellcheck disable=SC2031 # PATH as the case runs it
	hdr_path=$T/stub:$PATH
	(
		# shellcheck source=boot/luksipc-lib.sh
		. "$LIB"
		# shellcheck disable=SC2317 # called by the library
		lipc_resolve() {
			case $1 in
			UUID=*) return 1 ;;
			/dev/*) echo "$1" ;;
			*) printf '/dev/stub/%s\n' "$(printf '%s' "$1" | tr '=/:' '___')" ;;
			esac
		}
		PATH=$hdr_path
		LIPC_BIN=$T/stub/luksipc LIPC_RUN=$T/run LIPC_FRAMEWORK=dracut
		LIPC_ARMED=$T/no-armed LIPC_TEST_HOOKS=$T/no-test-hooks
		LIPC_CRED_DIR=$T/no-cred LIPC_FWCFG_DIR=$T/no-fwcfg/by_name/x LIPC_DMI_DIR=$T/no-dmi
		rc=0
		eval "$1" || rc=$?
		[ "$rc" = 0 ] || printf '%s\n' "$LIPC_ERROR" >&2
		exit "$rc"
	) >"$T/out" 2>"$T/err"
}

# hdr_boot CMDLINE: lipc_run on CMDLINE (+ the key file and the stubs).
hdr_boot() {
	# shellcheck disable=SC2016 # expanded in hdr_lib's subshell
	hdr_lib 'LIPC_CMDLINE="$HDR_CMDLINE rd.luksipc.key=$T/key"; lipc_run'
}

# line_of REGEX: the number of the first line of $T/calls matching REGEX.
line_of() {
	n=$(grep -n -E -- "$1" "$T/calls" | head -n 1 | cut -d: -f1)
	[ -n "$n" ] || { sed 's/^/  | /' "$T/calls" >&2; fail "no call matches /$1/"; }
	echo "$n"
}

# in_order N...: each N is smaller than the next.
in_order() {
	while [ $# -gt 1 ]; do
		[ "$1" -lt "$2" ] || return 1
		shift
	done
}

# hdr_setup SPEC: lipc_header_setup alone for rd.luksipc.header=SPEC
# ("-": no flag); prints rc, LIPC_HEADER, LIPC_HDRMNT and LIPC_ERROR.
hdr_setup() {
	: >"$T/calls"
	flag="rd.luksipc.header=$1"
	[ "$1" != - ] || flag=
	# shellcheck disable=SC2016 # expanded in hdr_lib's subshell
	HDR_FLAG=$flag hdr_lib 'LIPC_CMDLINE="rd.luksipc=PARTUUID=r $HDR_FLAG"
		r=0; lipc_header_setup || r=$?
		printf "rc=%s\nheader=%s\nhdrmnt=%s\nerror=%s\n" "$r" "$LIPC_HEADER" "$LIPC_HDRMNT" "$LIPC_ERROR"'
}

t_header_spec() {
	hdr_stubs
	# DEVICE: the raw partition itself, nothing mounted
	hdr_setup PARTLABEL=lipchdr
	assert_eq "$(sed -n 's/^rc=//p' out)" 0 "rc for DEVICE"
	assert_eq "$(sed -n 's/^header=//p' out)" /dev/stub/PARTLABEL_lipchdr "header for DEVICE"
	assert_eq "$(sed -n 's/^hdrmnt=//p' out)" "" "mount point for DEVICE"
	assert_no_grep '^(mount|blkid) ' calls
	# DEVICE:/PATH: the file PATH in the filesystem on DEVICE
	hdr_setup LABEL=lipchdr:/luks/root.hdr
	assert_eq "$(sed -n 's/^rc=//p' out)" 0 "rc for DEVICE:/PATH"
	assert_eq "$(sed -n 's/^header=//p' out)" "$T/run/hdr/luks/root.hdr" "header for DEVICE:/PATH"
	assert_eq "$(sed -n 's/^hdrmnt=//p' out)" "$T/run/hdr" "mount point for DEVICE:/PATH"
	assert_grep "^mount .* /dev/stub/LABEL_lipchdr $T/run/hdr\$" calls
	# a /dev path as DEVICE
	hdr_setup /dev/vdc:/root.hdr
	assert_eq "$(sed -n 's/^header=//p' out)" "$T/run/hdr/root.hdr" "header for /dev/vdc:/root.hdr"
	assert_grep "^mount .* /dev/vdc $T/run/hdr\$" calls
	# no flag: no header, nothing touched
	hdr_setup -
	assert_eq "$(sed -n 's/^rc=//p' out)$(sed -n 's/^header=//p' out)" 0 "no flag"
	[ ! -s calls ] || { cat calls; fail "no rd.luksipc.header= but tools were called"; }
	# refused, nothing mounted: a relative path, an empty value
	hdr_setup LABEL=lipchdr:root.hdr
	assert_eq "$(sed -n 's/^rc=//p' out)" 1 "rc for DEVICE:relative"
	assert_grep "^error=luksipc: error: bad rd\.luksipc\.header='LABEL=lipchdr:root\.hdr': the file after ':' needs an absolute path \(DEVICE:/PATH\)" out
	assert_no_grep '^mount ' calls
	hdr_setup ''
	assert_eq "$(sed -n 's/^rc=//p' out)" 1 "rc for an empty rd.luksipc.header="
	assert_grep '^error=luksipc: error: rd\.luksipc\.header= is empty' out
	assert_no_grep '^mount ' calls
	# DEVICE:/PATH on a device without a filesystem
	STUB_FSTYPE='' hdr_setup LABEL=lipchdr:/root.hdr
	assert_eq "$(sed -n 's/^rc=//p' out)" 1 "rc for a device without a filesystem"
	assert_grep "^error=luksipc: error: header device '/dev/stub/LABEL_lipchdr' holds no filesystem" out
	assert_no_grep '^mount ' calls
}

t_header_file_run() {
	hdr_stubs
	HDR_CMDLINE="rd.luksipc=PARTUUID=r rd.luksipc.state=PARTLABEL=st rd.luksipc.header=LABEL=lipchdr:/root.hdr rd.luksipc.header-size=1M"
	export HDR_CMDLINE
	run_rc 0 hdr_boot
	cat calls err
	h=$T/run/hdr/root.hdr
	m=$(line_of "^mount -t ext4 -o rw,nosuid,nodev,noexec /dev/stub/LABEL_lipchdr $T/run/hdr\$")
	c=$(line_of "^luksipc convert -d /dev/stub/PARTUUID_r --state /dev/stub/PARTLABEL_st .*--header $h( |\$)")
	o=$(line_of "^cryptsetup open --header $h /dev/stub/PARTUUID_r luks-1234abcd --key-file $T/key\$")
	u=$(line_of "^umount $T/run/hdr\$")
	in_order "$m" "$c" "$o" "$u" || fail "calls out of order: mount $m, convert $c, open $o, umount $u (want mount < convert < open < umount)"
	assert_eq "$(grep -c "^umount $T/run/hdr\$" calls)" 1 "unmounts of the header device"
	assert_grep "^luksipc convert .*--header-size 1M" calls
	# the notes name the header the way the booted system finds it: the flag
	assert_grep "^luksipc convert .*--header $h --note-header LABEL=lipchdr:/root.hdr( |\$)" calls
	assert_grep "opening '/dev/stub/PARTUUID_r' as 'luks-1234abcd' with the header in '$h'" err
	assert_grep "^luksipc: done; continuing the boot" err
}

t_header_raw_run() {
	hdr_stubs
	HDR_CMDLINE="rd.luksipc=PARTUUID=r rd.luksipc.state=PARTLABEL=st rd.luksipc.header=PARTLABEL=lipchdr"
	export HDR_CMDLINE
	run_rc 0 hdr_boot
	cat calls
	line_of "^luksipc convert -d /dev/stub/PARTUUID_r .*--header /dev/stub/PARTLABEL_lipchdr( |\$)" >/dev/null
	line_of "^cryptsetup open --header /dev/stub/PARTLABEL_lipchdr /dev/stub/PARTUUID_r luks-1234abcd " >/dev/null
	assert_no_grep '^(mount|umount) ' calls
}

t_header_done_run() {
	hdr_stubs
	# converted earlier: the state records the raw device, which no UUID
	# names any more (rd.luksipc=UUID= was the filesystem's)
	echo "done /dev/lipc-test-root $T/run/hdr/root.hdr" >phase._dev_stub_PARTLABEL_st
	HDR_CMDLINE="rd.luksipc=UUID=fs-gone rd.luksipc.state=PARTLABEL=st rd.luksipc.timeout=0 rd.luksipc.header=LABEL=lipchdr:/root.hdr"
	export HDR_CMDLINE
	hdr_boot || :
	cat calls err
	if grep -q "luksipc: converting '/dev/lipc-test-root'\|did not appear" err; then
		fail "the finished conversion was taken for a new one: luksipc status ran before the header's filesystem was mounted, so it could not call the conversion done"
	fi
	run_rc 0 hdr_boot
	assert_grep "'/dev/lipc-test-root' is already converted" err
	assert_no_grep '^luksipc convert' calls
	line_of "^luksipc status --state /dev/stub/PARTLABEL_st -d /dev/lipc-test-root\$" >/dev/null
	m=$(line_of "^mount -t ext4 -o rw,nosuid,nodev,noexec /dev/stub/LABEL_lipchdr $T/run/hdr\$")
	o=$(line_of "^cryptsetup open --header $T/run/hdr/root.hdr /dev/lipc-test-root luks-1234abcd --key-file $T/key\$")
	u=$(line_of "^umount $T/run/hdr\$")
	in_order "$m" "$o" "$u" || fail "calls out of order: mount $m, open $o, umount $u"
}

t_header_reencrypt_refused() {
	hdr_stubs
	HDR_CMDLINE="rd.luksipc=PARTUUID=r rd.luksipc.state=PARTLABEL=st rd.luksipc.mode=reencrypt rd.luksipc.header=LABEL=lipchdr:/root.hdr"
	export HDR_CMDLINE
	run_rc 1 hdr_boot
	cat err
	assert_one_error_line err
	assert_grep "^luksipc: error: rd\.luksipc\.header= works with rd\.luksipc\.mode=encrypt[^;]*; a re-encryption .*drop rd\.luksipc\.header=\$" err
	assert_no_grep '^(mount|cryptsetup|luksipc convert)' calls
}

t_header_no_resize() {
	hdr_stubs
	HDR_CMDLINE="rd.luksipc=PARTUUID=r rd.luksipc.state=PARTLABEL=st rd.luksipc.resize=1 rd.luksipc.header=PARTLABEL=lipchdr"
	export HDR_CMDLINE
	run_rc 0 hdr_boot
	cat err
	assert_grep "^luksipc: rd\.luksipc\.resize=1: the header goes to '/dev/stub/PARTLABEL_lipchdr', so nothing needs to shrink; not resizing\$" err
	assert_no_grep '^(e2fsck|resize2fs|dumpe2fs) ' calls
	line_of "^luksipc convert -d /dev/stub/PARTUUID_r .*--header /dev/stub/PARTLABEL_lipchdr" >/dev/null
	# the control: the same flags without the header do go to the resize
	# (which, with the stubs, cannot read the device's size)
	hdr_stubs
	HDR_CMDLINE="rd.luksipc=PARTUUID=r rd.luksipc.state=PARTLABEL=st rd.luksipc.resize=1"
	run_rc 1 hdr_boot
	assert_grep "^luksipc: error: cannot read the size of '/dev/stub/PARTUUID_r'" err
	assert_no_grep '^luksipc convert' calls
}

t_header_device_2() {
	hdr_stubs
	# rd.luksipc.2.header= is device 2's alone
	HDR_CMDLINE="rd.luksipc=PARTUUID=r rd.luksipc.state=PARTLABEL=st1 rd.luksipc.2=PARTUUID=d rd.luksipc.2.state=PARTLABEL=st2 rd.luksipc.2.header=LABEL=lipchdr:/data.hdr"
	export HDR_CMDLINE
	run_rc 0 hdr_boot
	cat calls
	assert_grep '^luksipc convert -d /dev/stub/PARTUUID_r ' calls
	assert_no_grep '^luksipc convert -d /dev/stub/PARTUUID_r .*--header' calls
	assert_grep '^cryptsetup open /dev/stub/PARTUUID_r ' calls
	h=$T/run/hdr.2/data.hdr
	m=$(line_of "^mount -t ext4 -o rw,nosuid,nodev,noexec /dev/stub/LABEL_lipchdr $T/run/hdr\\.2\$")
	c=$(line_of "^luksipc convert -d /dev/stub/PARTUUID_d .*--header $h( |\$)")
	o=$(line_of "^cryptsetup open --header $h /dev/stub/PARTUUID_d ")
	u=$(line_of "^umount $T/run/hdr\\.2\$")
	in_order "$m" "$c" "$o" "$u" || fail "device 2: calls out of order: mount $m, convert $c, open $o, umount $u"
	assert_grep "\\[2\\] opening '/dev/stub/PARTUUID_d' as 'luks-1234abcd' with the header in '$h'" err
	# and rd.luksipc.header= is the first device's alone: device 2 does
	# not inherit it
	hdr_stubs
	HDR_CMDLINE="rd.luksipc=PARTUUID=r rd.luksipc.state=PARTLABEL=st1 rd.luksipc.header=PARTLABEL=lipchdr rd.luksipc.2=PARTUUID=d rd.luksipc.2.state=PARTLABEL=st2"
	run_rc 0 hdr_boot
	cat calls
	assert_grep '^luksipc convert -d /dev/stub/PARTUUID_r .*--header /dev/stub/PARTLABEL_lipchdr' calls
	assert_grep '^luksipc convert -d /dev/stub/PARTUUID_d ' calls
	assert_no_grep '^luksipc convert -d /dev/stub/PARTUUID_d .*--header' calls
	assert_grep '^cryptsetup open /dev/stub/PARTUUID_d ' calls
}

run_test "the library under sh, dash, busybox ash and bash: right answers, no leaked variables" t_lib_shells
run_test "dracut's luksipc-boot with no flag and no credential exits 0 under every shell (no emergency shell)" t_dracut_boot_nothing_to_do
run_test "several devices: rd.luksipc.N= and rd.luksipc.N.X=, what device N inherits" t_several_devices
run_test "rd.luksipc.used-only on a filesystem without a map reader: the whole device, with one line" t_used_only_fallback
run_test "settings from credentials (systemd's, fw_cfg, SMBIOS type 11); the command line wins" t_credentials
run_test "the key device is mounted with -t TYPE; mount's own error in one line" t_keydev_mount
run_test "rd.luksipc.resize=1 shrinks a 75%-full ext4 by exactly the header; files unchanged" t_resize_75_percent
run_test "rd.luksipc.resize=1 refuses a full ext4 with one line, image unchanged" t_refuse_full
run_test "after the conversion: the manual steps, or on an armed system (its --also devices too) that finalize finishes (steps kept in a file)" t_notes_armed
run_test "the crypttab keyscript reads PATH:DEVICE, prints the key, unmounts; one line when it cannot" t_keyscript
run_test "detached header: rd.luksipc.header=DEVICE and DEVICE:/PATH parsed; DEVICE:relative, empty, no filesystem refused" t_header_spec
run_test "detached header in a file: mounted -t TYPE rw,nosuid,nodev,noexec, --header to convert and cryptsetup open, unmounted after" t_header_file_run
run_test "detached header on a raw partition: --header to convert and cryptsetup open, nothing mounted" t_header_raw_run
run_test "detached header, conversion done: the device found by its recorded path, opened with the header" t_header_done_run
run_test "detached header with rd.luksipc.mode=reencrypt: refused in one line, nothing run" t_header_reencrypt_refused
run_test "detached header with rd.luksipc.resize=1: not resizing" t_header_no_resize
run_test "detached header: rd.luksipc.2.header= for device 2 only, rd.luksipc.header= not inherited" t_header_device_2
test_done
