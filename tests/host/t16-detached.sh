#!/bin/sh
# convert --header HDR: the LUKS header goes to HDR (a file or a block
# device), the whole device is encrypted in place from byte 0 (data offset
# 0, no shrink). P is the device size in whole sectors, or, when the
# filesystem leaves luksipc room for its in-progress marker, the marker's
# offset (the device's last whole 4 KiB, left as ciphertext of zeros).
#
# Round trips (checked with the independent tests/lib/luksdecrypt.py
# --header), resumes after SIGINT and kill -9 (HDR stays zeros until the
# end), every refusal with the device, the state store and HDR unchanged,
# and the crash-state enumeration with HDR as a third traced target
# (tests/crash/enumerate.py {hdr}, --ref-header), with negative controls
# that show that enumeration can fail.
#
# Environment: CRASH_TIER=quick (fewer random crash states), CRASH_JOBS,
# CRASH_KEEP=DIR, CRASH_MAX_FAILURES=N, as in t20-crash-states.sh.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

FAST="--pbkdf pbkdf2 --pbkdf-force-iterations 1000 --batch"

# hdr_verify DEV HDR KEY ORIG LEN: DEV, with the detached header HDR and
# KEY, decrypts from its byte 0 to the first LEN bytes of ORIG; cryptsetup
# accepts KEY on HDR and shows data offset 0.
hdr_verify() {
	"$PY" "$LUKSDECRYPT" "$1" --header "$2" --key-file "$3" --expect "$4" --length "$5" ||
		fail "$1 decrypted with the header $2 differs from $4 (first $5 bytes)"
	cryptsetup open --test-passphrase --key-file "$3" "$2" ||
		fail "cryptsetup does not accept the key on the header $2"
	assert_eq "$(luks_info "$2" offset)" 0 "data offset in $2"
	echo "verified: $1 with header $2 decrypts to the first $5 bytes of $4"
}

# all_zero FILE: FILE holds only zero bytes (or nothing).
all_zero() {
	[ "$(tr -d '\000' <"$1" | head -c 1 | wc -c)" -eq 0 ]
}

# fp FILE: what a refused run must not change: absent, or size, mode and
# sha256 (a block device: its contents).
fp() {
	if [ -e "$1" ]; then
		echo "$(stat -Lc '%s %a' "$1") $(sha "$1")"
	else
		echo absent
	fi
}

# refuse RC PATTERN FILE... -- CMD...: CMD exits RC with exactly one error
# line, which matches PATTERN (grep -E), and leaves every FILE as it was
# (still absent when it was).
refuse() {
	want=$1 pat=$2
	shift 2
	files=
	k=0
	while [ "$1" != -- ]; do
		files="$files $1"
		k=$((k + 1))
		fp "$1" >"$T/.fp.$k"
		shift
	done
	shift
	run_rc "$want" "$@"
	echo "refused ($want): $(grep error "$T/err")"
	assert_one_error_line "$T/err"
	assert_grep "$pat" "$T/err"
	k=0
	for f in $files; do
		k=$((k + 1))
		assert_eq "$(fp "$f")" "$(cat "$T/.fp.$k")" "$f changed by a refused run"
	done
}

# hconv ARGS...: convert with fast key slots, no prompt.
hconv() {
	# shellcheck disable=SC2086
	"$LUKSIPC" convert "$@" $FAST
}

# fixture FS N FILL: dev.img of N bytes, a FS filesystem filling it (FILL=1)
# or leaving the marker's 4 KiB (FILL=0); orig.img, key. Sets P (bytes of
# plaintext converted) for sector size $ss.
fixture() {
	FX_FILL=$3 fx_make "$1" dev.img "$2" 0
	cp dev.img orig.img
	random_key key
	if [ "$3" = 1 ]; then
		P=$(($2 / ss * ss))
	else
		P=$(payload_size "$2" 0)
	fi
}

# roundtrip FS N FILL TYPE SECTOR HSIZE [options...]: HSIZE "-" is the
# default header size (16M for luks2, 2M for luks1).
roundtrip() {
	need_luksipc
	fs=$1 n=$2 fill=$3 type=$4 ss=$5 hs=$6
	shift 6
	need_cmd "mkfs.$fs"
	fixture "$fs" "$n" "$fill"
	if [ "$hs" = - ]; then
		hopt=
		hs=$((16 * MiB))
		[ "$type" = luks2 ] || hs=$((2 * MiB))
	else
		hopt="--header-size $hs"
	fi
	# shellcheck disable=SC2086
	run_rc 0 hconv -d dev.img --state st --header hdr --key-file key \
		--type "$type" --sector-size "$ss" $hopt "$@"
	assert_eq "$(fsize dev.img)" "$n" "device size"
	assert_eq "$(stat -c %a hdr)" 600 "mode of the header file luksipc created"
	assert_eq "$(fsize hdr)" "$hs" "size of the header file"
	assert_eq "$(luks_info hdr version)" "${type#luks}" "LUKS version"
	assert_eq "$(luks_info hdr sector_size)" "$ss" "sector size"
	cryptsetup luksDump hdr >dump
	if [ "$type" = luks2 ]; then
		assert_grep '^[[:space:]]+offset:[[:space:]]+0 \[bytes\]' dump
	else
		assert_grep '^Payload offset:[[:space:]]+0$' dump
	fi
	hdr_verify dev.img hdr key orig.img "$P"
	if [ "$fill" = 0 ]; then
		# the marker's 4 KiB end up as ciphertext of zeros
		hdr_verify dev.img hdr key orig.img $((P + 4096))
	fi
	if blkid -p dev.img >blkid.out 2>&1; then
		cat blkid.out
		fail "a signature is left on the converted device"
	fi
	run_rc 0 lx status --state st
	assert_grep '^phase: done$' "$T/out"
	assert_grep "^data-size: $P\$" "$T/out"
	assert_grep "^done: $P\$" "$T/out"
	# converted: the same command is a no-op that changes nothing
	dsum=$(sha dev.img) hsum=$(sha hdr)
	# shellcheck disable=SC2086
	run_rc 0 hconv -d dev.img --state st --header hdr --key-file key \
		--type "$type" --sector-size "$ss" $hopt "$@"
	assert_eq "$(sha dev.img)" "$dsum" "a rerun after the end changed the device"
	assert_eq "$(sha hdr)" "$hsum" "a rerun after the end changed the header"
}

# Converted at boot: the notes name the header the way the booted system
# finds it (the flag, --note-header), not the initramfs's mount point, and
# say to keep the flags and the store (the boot reads it every time).
t_notes_boot() {
	need_luksipc
	FX_FILL=1 fx_make ext4 dev.img $((12 * MiB)) 0
	random_key key
	run_rc 0 conv -d dev.img --state st --header hdr --header-size 1M --key-file key \
		--note-header UUID=0b9c-77aa:/luks-root.hdr --note-framework dracut
	lx status --state st --notes >notes.txt
	assert_grep "it is the file /luks-root.hdr in the filesystem UUID=0b9c-77aa" notes.txt
	assert_grep '^  \$ mkdir -p /run/luksipc-hdr && mount /dev/disk/by-uuid/0b9c-77aa /run/luksipc-hdr$' notes.txt
	assert_grep '^  \$ cp /run/luksipc-hdr/luks-root.hdr /root/' notes.txt
	assert_grep "Keep the rd.luksipc flags" notes.txt
	assert_grep "as long as the flags stay" notes.txt
	assert_no_grep "finalize" notes.txt
	# finalize finds no header where it was written (moved): it wants --header
	mv hdr moved.hdr
	h=$(sha st)
	run_rc 3 lx finalize --state st --batch
	assert_grep "give its path now with --header" "$T/err"
	assert_eq "$(sha st)" "$h" "the store after the refused finalize"
	run_rc 0 lx finalize --state st --header moved.hdr --batch
	assert_grep "now the only copy" "$T/err"
}

# Converted at boot, the device a partition (its PARTUUID from the test
# hook): the notes hand the root over to crypttab with header= and a copy
# of the header under /etc/luksipc that the initramfs carries, and remove
# the flags. dracut: ",force" (its host-only filter), no rd.luks flags (the
# device has no LUKS UUID); initramfs-tools: the keyscript, a root-only image.
t_notes_handover() {
	need_luksipc
	FX_FILL=1 fx_make ext4 dev.img $((12 * MiB)) 0
	random_key key
	run_rc 0 conv -d dev.img --state st --header hdr --header-size 1M --key-file key \
		--note-header UUID=0b9c-77aa:/luks-root.hdr --note-framework initramfs-tools --note-key-file /k.key:LABEL=KEYS \
		--note-name root
	pu=4d1e2f3a-0b1c-4d5e-8f90-a1b2c3d4e5f6
	LUKSIPC_TEST_PARTUUID=$pu lx status --state st --notes >itools.txt
	LUKSIPC_TEST_PARTUUID=$pu lx status --state st --notes --framework dracut >dracut.txt
	for f in itools.txt dracut.txt; do
		assert_grep '^  \$ mkdir -p /run/luksipc-hdr && mount /dev/disk/by-uuid/0b9c-77aa /run/luksipc-hdr$' $f
		assert_grep '^  \$ mkdir -p -m 0700 /etc/luksipc && install -m 0600 /run/luksipc-hdr/luks-root.hdr /etc/luksipc/root.luks-header$' $f
		assert_grep "^  \\$ umount /run/luksipc-hdr\$" $f
		assert_grep "Keep one more copy off this disk" $f
		assert_grep "Remove the rd.luksipc flags from the kernel command line\$" $f
		assert_grep '^  \$ update-grub$' $f
		assert_no_grep "Keep the rd.luksipc flags" $f
		assert_no_grep "rd\\.luks\\.uuid" $f
		assert_grep "finalize --state st --header /etc/luksipc/root.luks-header" $f
	done
	assert_grep "printf '%s\\\\n' 'root PARTUUID=$pu /k.key:LABEL=KEYS luks,keyscript=/usr/lib/luksipc/keydev,header=/etc/luksipc/root.luks-header' >>/etc/crypttab\$" itools.txt
	assert_grep "^  \\$ printf 'UMASK=0077\\\\n' >/etc/initramfs-tools/conf.d/luksipc-header\$" itools.txt
	assert_grep '^  \$ update-initramfs -u$' itools.txt
	assert_grep "printf '%s\\\\n' 'root PARTUUID=$pu /k.key:LABEL=KEYS luks,header=/etc/luksipc/root.luks-header,force' >>/etc/crypttab\$" dracut.txt
	assert_grep '^  \$ dracut -f$' dracut.txt
	# the lines run in order as sh, against a scratch root: crypttab gets
	# exactly one entry for the name, an older one for it goes
	printf 'root UUID=old none luks\nother PARTUUID=zz none luks\n' >crypttab
	sed -n 's/^  \$ //p' itools.txt | grep crypttab | sed "s|/etc/crypttab|$T/crypttab|g" >cmds.sh
	run_rc 0 sh -e cmds.sh
	assert_eq "$(grep -c '^root ' crypttab)" 1 "entries for root in crypttab"
	assert_grep '^other PARTUUID=zz none luks$' crypttab
	assert_grep "^root PARTUUID=$pu " crypttab
	# no PARTUUID (an image file here): the notes fall back to keeping the flags
	lx status --state st --notes >none.txt
	assert_grep "has no PARTUUID here" none.txt
	assert_grep "Keep the rd.luksipc flags" none.txt
}

t_xfs_fill_luks2_512() {
	roundtrip xfs $((36 * MiB)) 1 luks2 512 $((1 * MiB)) --step-size $((4 * MiB))
}
t_ext4_fill_luks2_4096() {
	roundtrip ext4 $((24 * MiB + 3 * 4096)) 1 luks2 4096 $((1 * MiB)) --step-size $((1 * MiB))
}
t_ext4_marker_luks1() {
	roundtrip ext4 $((20 * MiB)) 0 luks1 512 - --step-size $((512 * 1024))
}
# not a multiple of 1 MiB (nor of 4096), LUKS2 with the default 16M header
# and the default step
t_odd_size_default_header() {
	roundtrip ext4 $((17 * MiB + 5 * 4096 + 1536)) 0 luks2 512 -
}
# filling the device up to a tail of less than 4 KiB: no marker
t_odd_size_fill() {
	roundtrip ext4 $((14 * MiB + 3 * 4096 + 3584)) 1 luks2 512 $((1 * MiB)) --step-size $((768 * 1024))
}

# An existing empty file, and one of zeros, are accepted as HDR; luksipc
# leaves a file it did not create with its mode.
t_existing_zero_file() {
	need_luksipc
	ss=512
	fixture ext4 $((12 * MiB)) 0
	: >hdr
	chmod 640 hdr
	run_rc 0 hconv -d dev.img --state st --header hdr --key-file key --header-size 1M \
		--step-size 1M
	assert_eq "$(fsize hdr)" $((1 * MiB)) "size of the header file"
	assert_eq "$(stat -c %a hdr)" 640 "mode of an existing header file"
	hdr_verify dev.img hdr key orig.img "$P"
	fixture ext4 $((12 * MiB)) 0
	rm -f st hdr
	head -c $((1 * MiB)) /dev/zero >hdr
	run_rc 0 hconv -d dev.img --state st --header hdr --key-file key --header-size 1M \
		--type luks2 --step-size 1M
	hdr_verify dev.img hdr key orig.img "$P"
}

# HDR a block device (a loop device of zeros), at least the header size.
t_block_device_header() {
	need_luksipc
	need_cmd losetup
	ss=512
	fixture ext4 $((12 * MiB)) 0
	truncate -s $((2 * MiB)) hdr.img
	loop=$(losetup -f --show hdr.img 2>/dev/null) || skip "losetup cannot attach a loop device here"
	test_cleanup "losetup -d $loop"
	run_rc 0 hconv -d dev.img --state st --header "$loop" --key-file key --header-size 1M \
		--step-size 1M
	hdr_verify dev.img "$loop" key orig.img "$P"
	assert_eq "$(fsize hdr.img)" $((2 * MiB)) "size of the file behind the loop device"
}

# interrupted_start SIG ARGS...: a slowed conversion with ARGS, stopped by
# SIG (INT: exit 6; KILL: 137) after its first recorded progress.
interrupted_start() {
	sig=$1
	shift
	# background jobs of a non-interactive shell ignore SIGINT: restore it
	# shellcheck disable=SC2086
	LUKSIPC_TEST_DELAY_MS=40 env --default-signal=INT,HUP,TERM \
		"$LUKSIPC" convert "$@" $FAST >run.log 2>&1 &
	pid=$!
	wait_state_progress st || {
		kill -9 $pid
		cat run.log
		fail "no progress recorded"
	}
	sleep 0.2
	kill "-$sig" $pid
	set +e
	wait $pid
	rc=$?
	set -e
	cat run.log
	case "$sig" in
	INT) assert_eq "$rc" 6 "exit status after SIGINT" ;;
	KILL) assert_eq "$rc" 137 "exit status after kill -9" ;;
	esac
	d=$(status_field st "done")
	echo "done after SIG$sig: $d of $P"
	if [ -z "$d" ] || [ "$d" -le 0 ] || [ "$d" -ge "$P" ]; then
		fail "done is '$d' after SIG$sig: not mid-conversion"
	fi
}

N_RESUME=$((10 * MiB + 3 * 4096))
STEP_RESUME=$((256 * 1024))

t_resume_sigint() {
	need_luksipc
	ss=4096
	fixture ext4 $N_RESUME 0
	set -- -d dev.img --state st --header hdr --key-file key --header-size 1M \
		--sector-size 4096 --step-size $STEP_RESUME
	interrupted_start INT "$@"
	assert_eq "$(fsize hdr)" $((1 * MiB)) "size of the header file mid-conversion"
	all_zero hdr || fail "the header file holds data before the conversion ended"
	assert_eq "$(status_field st phase)" converting "phase after SIGINT"
	run_rc 0 hconv "$@"
	hdr_verify dev.img hdr key orig.img "$P"
}

# kill -9 at random moments, 8 times, then the same command completes it.
t_resume_kill9() {
	need_luksipc
	ss=512
	fixture ext4 $N_RESUME 1
	set -- -d dev.img --state st --header hdr --key-file key --header-size 1M \
		--type luks2 --step-size $((128 * 1024))
	kills=0 runs=0
	while [ "$kills" -lt 8 ]; do
		runs=$((runs + 1))
		[ "$runs" -le 24 ] || fail "only $kills kills in $runs runs"
		# 80 steps of 40 ms at least: 3.2 s of work, more than 8 sleeps of at
		# most 250 ms can use up (at 15 ms a run once completed, CI 2026-12-03)
		# shellcheck disable=SC2086
		LUKSIPC_TEST_DELAY_MS=40 "$LUKSIPC" convert "$@" $FAST >>bg.log 2>&1 &
		pid=$!
		sleep "0.$(printf '%03d' "$(rand_between 5 250)")"
		kill -9 "$pid" 2>/dev/null || true
		set +e
		wait "$pid"
		rc=$?
		set -e
		case "$rc" in
		137) kills=$((kills + 1)) ;;
		0) fail "run $runs completed before 8 kills; make the conversion slower" ;;
		*)
			cat bg.log >&2
			fail "run $runs exited $rc before it was killed"
			;;
		esac
		[ ! -e hdr ] || all_zero hdr || fail "the header file holds data after kill $kills"
	done
	echo "$kills kills in $runs runs"
	d=$(status_field st "done")
	echo "done before the final run: $d of $P"
	if [ -z "$d" ] || [ "$d" -le 0 ] || [ "$d" -ge "$P" ]; then
		fail "after $kills kills done is '$d': the kills did not land mid-conversion"
	fi
	run_rc 0 hconv "$@"
	hdr_verify dev.img hdr key orig.img "$P"
}

N_REF=$((10 * MiB + 5 * 4096))

t_refuse_hdr_is_device() {
	need_luksipc
	ss=512
	fixture ext4 $N_REF 0
	ln -s dev.img sym.img
	ln dev.img hard.img
	for h in dev.img "$T/dev.img" sym.img hard.img; do
		refuse 3 "header target '$h' is on the device being converted" dev.img st "$h" -- \
			hconv -d dev.img --state st --header "$h" --key-file key --header-size 1M
	done
}

t_refuse_hdr_is_state() {
	need_luksipc
	ss=512
	fixture ext4 $N_REF 0
	# no state yet: the same path for both
	refuse 3 "header target .* is the state store" dev.img st -- \
		hconv -d dev.img --state st --header st --key-file key --header-size 1M
	refuse 3 "header target .* is the state store" dev.img st -- \
		hconv -d dev.img --state st --header "$T/st" --key-file key --header-size 1M
	# an empty state file, by a symlink too
	: >st
	ln -s st st.sym
	refuse 3 "header target .* is the state store" dev.img st -- \
		hconv -d dev.img --state st --header st --key-file key --header-size 1M
	refuse 3 "header target .* is the state store" dev.img st -- \
		hconv -d dev.img --state st --header st.sym --key-file key --header-size 1M
}

# A file that holds anything but zeros is never overwritten: random bytes
# shorter than the header, one non-zero byte at the end of a header-sized
# file, a LUKS header of cryptsetup's.
t_refuse_hdr_has_data() {
	need_luksipc
	ss=512
	fixture ext4 $N_REF 0
	head -c 4096 /dev/urandom >small.hdr
	refuse 3 "header target 'small\.hdr' is not empty" dev.img st small.hdr -- \
		hconv -d dev.img --state st --header small.hdr --key-file key --header-size 1M
	head -c $((1 * MiB - 1)) /dev/zero >tail.hdr
	printf '\001' >>tail.hdr
	refuse 3 "header target 'tail\.hdr' is not empty" dev.img st tail.hdr -- \
		hconv -d dev.img --state st --header tail.hdr --key-file key --header-size 1M
	truncate -s $((4 * MiB)) other.img
	cryptsetup luksFormat -q --type luks2 --header luks.hdr --offset 0 --pbkdf pbkdf2 \
		--pbkdf-force-iterations 1000 --key-file key other.img
	refuse 3 "header target 'luks\.hdr' is not empty" dev.img st luks.hdr -- \
		hconv -d dev.img --state st --header luks.hdr --key-file key --header-size 1M
	# positive control: the same, all zeros, is accepted
	head -c $((1 * MiB)) /dev/zero >tail.hdr
	run_rc 0 hconv -d dev.img --state st --header tail.hdr --key-file key --header-size 1M
	hdr_verify dev.img tail.hdr key orig.img "$P"
}

# A block device: smaller than the header, or with a signature.
t_refuse_hdr_block_device() {
	need_luksipc
	need_cmd losetup mkfs.vfat
	ss=512
	fixture ext4 $N_REF 0
	truncate -s $((512 * 1024)) small.img
	small=$(losetup -f --show small.img 2>/dev/null) || skip "losetup cannot attach a loop device here"
	test_cleanup "losetup -d $small"
	refuse 3 "header target '$small' is too small" dev.img st "$small" -- \
		hconv -d dev.img --state st --header "$small" --key-file key --header-size 1M
	refuse 3 "header target '$small' is too small" dev.img st "$small" -- \
		hconv -d dev.img --state st --header "$small" --key-file key
	truncate -s $((2 * MiB)) sig.img
	mkfs.vfat sig.img >/dev/null
	sig=$(losetup -f --show sig.img)
	test_cleanup "losetup -d $sig"
	refuse 3 "header target '$sig' is not empty" dev.img st "$sig" -- \
		hconv -d dev.img --state st --header "$sig" --key-file key --header-size 1M
	# positive control: the same device without its signature
	wipefs -q -a "$sig"
	dd if=/dev/zero of="$sig" bs=1M count=2 conv=fsync status=none
	run_rc 0 hconv -d dev.img --state st --header "$sig" --key-file key --header-size 1M
	hdr_verify dev.img "$sig" key orig.img "$P"
}

# A conversion started with --header resumes only with it; one started
# without it refuses it.
t_refuse_resume_mismatch() {
	need_luksipc
	ss=512
	fixture ext4 $N_RESUME 0
	set -- -d dev.img --state st --key-file key --step-size $STEP_RESUME
	interrupted_start INT "$@" --header hdr --header-size 1M
	refuse 3 "keeps its LUKS header apart.*--header '$T/hdr'" dev.img st hdr -- hconv "$@"
	refuse 3 "keeps its LUKS header apart.*--header '$T/hdr'" dev.img st hdr -- \
		hconv "$@" --header-size 1M
	run_rc 0 hconv "$@" --header hdr --header-size 1M
	hdr_verify dev.img hdr key orig.img "$P"

	# started without --header (the header on the device, H = 2M)
	rm -f st hdr
	fx_make ext4 dev.img $N_RESUME $((2 * MiB))
	cp dev.img orig.img
	P=$(payload_size $N_RESUME $((2 * MiB)))
	interrupted_start INT "$@" --header-size 2M
	refuse 3 "writes its LUKS header onto 'dev.img' itself; drop --header" dev.img st hdr -- \
		hconv "$@" --header-size 2M --header hdr
	refuse 3 "writes its LUKS header onto 'dev.img' itself; drop --header" dev.img st hdr -- \
		hconv "$@" --header hdr
	run_rc 0 hconv "$@" --header-size 2M
	verify_plain dev.img key orig.img $((N_RESUME - 2 * MiB))
	[ ! -e hdr ] || fail "a header file was created"
}

t_usage() {
	need_luksipc
	ss=512
	fixture ext4 $N_REF 0
	cp key old.key
	# plaintext: --reencrypt --header moves an existing header off a LUKS device (t19)
	refuse 3 "carries no LUKS header; --reencrypt --header moves a header off the device" dev.img st hdr -- \
		hconv -d dev.img --state st --header hdr --key-file key --reencrypt --old-key-file old.key
	refuse 2 "--used-only does not work with --header" dev.img st hdr -- \
		hconv -d dev.img --state st --header hdr --key-file key --used-only
	refuse 2 "--used-only does not work with --header" dev.img st hdr -- \
		hconv -d dev.img --state st --header hdr --key-file key --used-only=wipe
}

# --- crash states ------------------------------------------------------

# enum LOG [enumerate options...]: enumerate.py on the traced run in $T,
# its output in LOG; sets rc.
enum() {
	log=$1
	shift
	rc=0
	# shellcheck disable=SC2086 # $FAST: options
	"$PY" "$TESTS_ROOT/tests/crash/enumerate.py" --orig orig.img --trace trace \
		--ref dev.img --ref-state st --key key --data-length "$P" \
		--workdir "$T/work" --jobs "${CRASH_JOBS:-3}" \
		${CRASH_KEEP:+--keep-failures "$CRASH_KEEP"} "$@" \
		-- "$LUKSIPC" convert -d '{dev}' --state '{state}' --header '{hdr}' \
		--key-file "$T/key" --type luks2 --header-size 1M --step-size 1M \
		--sector-size "$ss" $FAST >"$log" 2>&1 || rc=$?
	rm -rf "$T/work"
}

# crash_enum SECTOR FILL MIN: a 6M + 12K ext4, LUKS2, 1M steps, 1M header
# file; FILL=0 leaves the marker's room, FILL=1 fills the device.
crash_enum() {
	need_luksipc
	ss=$1 fill=$2 min=$3
	fixture ext4 $((6 * MiB + 3 * 4096)) "$fill"
	# shellcheck disable=SC2086
	run_rc 0 env LUKSIPC_TEST_TRACE="$T/trace" "$LUKSIPC" convert -d "$T/dev.img" \
		--state "$T/st" --header "$T/hdr" --key-file "$T/key" --type luks2 --header-size 1M \
		--step-size 1M --sector-size "$ss" $FAST
	[ -s trace ] || fail "LUKSIPC_TEST_TRACE wrote nothing"
	hdr_verify dev.img hdr key orig.img "$P"
	[ "${CRASH_TIER:-full}" = quick ] || min=$((min * 2))
	enum enum.log --ref-header hdr --min-states "$min" --boundary-fraction 1 \
		--max-failures "${CRASH_MAX_FAILURES:-0}"
	cat enum.log
	crash_check enum.log "$rc" "$min"
	grep -q '^trace: .*W3=' enum.log || fail "the trace has no write to the header file"
}

# Every boundary (about 250 states each); in the full tier, random states
# on top up to 2 x MIN.
t_crash_512_marker() { crash_enum 512 0 200; }
t_crash_4096_fill() { crash_enum 4096 1 200; }

# The enumeration can fail: a reference header that is not the traced
# run's, and a header write whose flush is dropped from the trace (the
# 'done' record can then reach the disk before the header).
t_crash_negative() {
	need_luksipc
	ss=512
	fixture ext4 $((6 * MiB + 3 * 4096)) 0
	# shellcheck disable=SC2086
	run_rc 0 env LUKSIPC_TEST_TRACE="$T/trace" "$LUKSIPC" convert -d "$T/dev.img" \
		--state "$T/st" --header "$T/hdr" --key-file "$T/key" --type luks2 --header-size 1M \
		--step-size 1M --sector-size "$ss" $FAST
	cp hdr bad.hdr
	printf '\377' | dd of=bad.hdr bs=1 seek=$((512 * 1024 + 7)) conv=notrunc status=none
	enum neg1.log --ref-header bad.hdr --min-states 1
	sed 's/^/neg1| /' neg1.log
	[ "$rc" -ne 0 ] || fail "enumerate.py passed with a wrong --ref-header"
	assert_grep "does not give the reference detached header" neg1.log
	"$PY" "$TESTS_ROOT/tests/crash/dropflush.py" trace trace.noflush 3 ||
		fail "the trace has no flush of the header file after its write"
	mv trace trace.orig
	mv trace.noflush trace
	enum neg2.log --ref-header hdr --min-states 1
	sed 's/^/neg2| /' neg2.log
	[ "$rc" -ne 0 ] || fail "enumerate.py passed with the header's flush dropped from the trace"
	# a resume after 'done' leaves the header file as the cut left it
	assert_grep '^FAIL state [0-9]+ .*: detached header file differs from the reference one' neg2.log
}

run_test "xfs filling its device, LUKS2 512, 1M header file" t_xfs_fill_luks2_512
run_test "ext4 filling its device, LUKS2 4096-byte sectors" t_ext4_fill_luks2_4096
run_test "ext4 with the marker's room, LUKS1, default 2M header file" t_ext4_marker_luks1
run_test "odd size (not a multiple of 1M or 4K), LUKS2 default 16M header and step" t_odd_size_default_header
run_test "odd size filled to a tail < 4K (no marker), 768K steps" t_odd_size_fill
run_test "HDR an existing empty or all-zero file: accepted" t_existing_zero_file
run_test "HDR a block device (loop) of zeros" t_block_device_header
run_test "SIGINT: exit 6, HDR still zeros, resume" t_resume_sigint
run_test "kill -9 8 times, HDR still zeros, resume" t_resume_kill9
run_test "HDR is the device (path, symlink, hard link): refused (3)" t_refuse_hdr_is_device
run_test "HDR is the state store: refused (3)" t_refuse_hdr_is_state
run_test "HDR holds data (short random, one byte, a LUKS header): refused (3)" t_refuse_hdr_has_data
run_test "HDR a block device too small or with a signature: refused (3)" t_refuse_hdr_block_device
run_test "resume without --header, or --header on a plain resume: refused (3)" t_refuse_resume_mismatch
run_test "--header with --reencrypt on plaintext (3) or --used-only (2): refused" t_usage
run_test "admin notes: the header by the boot flag's DEVICE:/PATH, mounted to copy it; keep the flags and the store" t_notes_boot
run_test "admin notes, a partition: crypttab with PARTUUID= and header=, the copy in /etc/luksipc for the initramfs, the flags removed" t_notes_handover
run_test "crash states, LUKS2 512, marker, 1M steps, 1M header file" t_crash_512_marker
run_test "crash states, LUKS2 4096, filled device, 1M steps, 1M header file" t_crash_4096_fill
# not named "crash states": the mutation check runs those cases per mutant
run_test "negative control: enumerate.py fails on a wrong --ref-header, a dropped header flush" t_crash_negative
test_done
