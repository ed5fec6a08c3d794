#!/bin/sh
# Moving a LUKS header between the device and a detached file, with a new
# volume key (convert --reencrypt --old-header, and --reencrypt --header).
#
# convert --reencrypt --old-header: a LUKS device whose header is detached
# (data offset 0) gets a new volume key and a header of its own on the
# device; the data shifts up by the new header's size (the backward walk),
# so the filesystem must leave that much free at the device's end. The LUKS
# side is made without luksipc: `cryptsetup luksFormat --header HDR --offset
# 0` writes the old header, tests/lib/xtsencrypt.py (no code of src/)
# encrypts the device under its volume key, and tests/lib/luksdecrypt.py
# --header must read the filesystem back before luksipc runs. After luksipc
# the device must be LUKS and decrypt (luksdecrypt.py, from the device's
# own header, with the new key) to the original filesystem byte for byte;
# the old header file is left as it was. Refusals leave the device, the old
# header and the store as they were (hashes).
#
# Crash states: one traced run, then tests/crash/enumerate.py rebuilds the
# device and the store at every write/flush boundary (sampled in the full
# tier) and resumes each; every resume must give the uninterrupted run's
# device, or, where nothing had reached the device, a fresh header that
# decrypts to the original (as t25).
#
# convert --reencrypt --header NEW: a device that carries its header gets a
# new volume key and a detached header in NEW (data offset 0); the data
# moves down by the old data offset into the old header's place (the
# forward walk). Checked: NEW is LUKS with data offset 0, mode 0600; the
# device decrypts through NEW with the new key to the original filesystem
# (luksdecrypt.py --header), carries no signature, and its last (old data
# offset) bytes are zeros. Its crash tier has NEW as trace target 3
# (enumerate.py {hdr}, --ref-header).
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

XTSENC=$TESTS_ROOT/tests/lib/xtsencrypt.py

# luks_detached FS N ROOM TYPE SECTOR KEYBITS: plain.img (FS filling N -
# ROOM bytes), hdr (the old detached header, data offset 0), dev.img (N
# bytes: plain.img and ROOM zeros, encrypted), key, newkey; P = N - ROOM.
luks_detached() {
	fs=$1 n=$2 room=$3 type=$4 ss=$5 kb=$6
	P=$((n - room))
	need_cmd cryptsetup
	FX_FILL=1 fx_make "$fs" plain.img "$P" 0
	cp plain.img dev.img
	truncate -s "$n" dev.img
	random_key key
	random_key newkey
	truncate -s 4M hdr
	set -- --type "$type" --key-size "$kb" --pbkdf pbkdf2 --pbkdf-force-iterations 1000
	[ "$type" = luks1 ] || set -- "$@" --sector-size "$ss" --luks2-metadata-size 16k --luks2-keyslots-size 1m
	cryptsetup luksFormat -q --header hdr --offset 0 --key-file key "$@" dev.img 2>/dev/null ||
		fail "cryptsetup luksFormat --header failed"
	"$PY" "$XTSENC" hdr dev.img --key-file key || fail "xtsencrypt.py failed"
	"$PY" "$LUKSDECRYPT" dev.img --header hdr --key-file key --length "$P" --expect plain.img >/dev/null ||
		fail "the fixture does not decrypt independently"
	HSUM=$(sha hdr)
}

# check_reencrypted: dev.img is LUKS and decrypts with newkey to plain.img; hdr unchanged; the store done.
check_reencrypted() {
	cryptsetup isLuks dev.img || fail "the device carries no LUKS header after the re-encryption"
	"$PY" "$LUKSDECRYPT" dev.img --key-file newkey --length "$P" --expect plain.img >/dev/null ||
		fail "the device does not decrypt (its own header, the new key) to the original filesystem"
	if "$PY" "$LUKSDECRYPT" dev.img --key-file key --length 4096 >/dev/null 2>&1; then
		fail "the old key opens the new header"
	fi
	assert_eq "$(sha hdr)" "$HSUM" "the old header file"
	assert_eq "$(status_field st mode)" reencrypt "status mode"
	assert_eq "$(status_field st phase)" "done" "status phase"
}

roundtrip() {
	need_luksipc
	luks_detached "$@"
	shift 6
	run_rc 0 conv -d dev.img --state st --reencrypt --old-header hdr --old-key-file key --key-file newkey "$@"
	check_reencrypted
	run_rc 0 conv -d dev.img --state st --reencrypt --old-header hdr --old-key-file key --key-file newkey "$@"
	assert_grep "already converted" "$T/err"
}

t_luks2() { roundtrip ext4 $((40 * MiB)) $((2 * MiB)) luks2 512 512 --header-size 2M; }
t_luks1_to_luks2_4k() { roundtrip ext4 $((30 * MiB)) $((16 * MiB)) luks1 512 256 --sector-size 4096; }
t_xfs() { roundtrip xfs $((320 * MiB)) $((16 * MiB)) luks2 4096 512; }

# Interrupted by kill -9 at random points, resumed by the same command.
t_kill9() {
	need_luksipc
	luks_detached ext4 $((48 * MiB)) $((2 * MiB)) luks2 512 512
	# 46 steps of 1M, 60 ms each at least: 2.7 s of work, more than 10 kills after at most 150 ms
	LUKSIPC_TEST_DELAY_MS=60
	export LUKSIPC_TEST_DELAY_MS
	kill_loop 10 150 st -d dev.img --state st --reencrypt --old-header hdr --old-key-file key --key-file newkey --header-size 2M --step-size 1M
	unset LUKSIPC_TEST_DELAY_MS
	run_rc 0 conv -d dev.img --state st --reencrypt --old-header hdr --old-key-file key --key-file newkey --header-size 2M --step-size 1M
	check_reencrypted
}

# refused CODE ARGS...: exit CODE, one error line, nothing written.
refused() {
	code=$1
	shift
	before="$(sha dev.img) $(sha hdr) $( [ ! -e st ] || sha st)"
	run_rc "$code" conv "$@"
	assert_one_error_line "$T/err"
	after="$(sha dev.img) $(sha hdr) $( [ ! -e st ] || sha st)"
	assert_eq "$after" "$before" "device, old header and store after the refusal"
	[ ! -e st ] || [ -n "${KEEP_ST:-}" ] || fail "a refused start left a state store"
}

t_refusals() {
	need_luksipc
	luks_detached ext4 $((24 * MiB)) $((2 * MiB)) luks2 512 512
	random_key wrong
	refused 4 -d dev.img --state st --reencrypt --old-header hdr --old-key-file wrong --key-file newkey --header-size 2M
	assert_grep "old key does not open" "$T/err"
	refused 2 -d dev.img --state st --old-header hdr --key-file key
	refused 3 -d dev.img --state st --reencrypt --key-file key
	assert_grep "give it with --old-header" "$T/err"
	# the new header does not fit after the filesystem: it fills all but 2 MiB
	refused 3 -d dev.img --state st --reencrypt --old-header hdr --old-key-file key --key-file newkey
	assert_grep "too large for the LUKS header" "$T/err"
	head -c 1M /dev/urandom >junk
	refused 3 -d dev.img --state st --reencrypt --old-header junk --old-key-file key --key-file newkey --header-size 2M
	assert_grep "cannot read a LUKS header in 'junk'" "$T/err"
	# an old header that puts the data at an offset
	truncate -s 4M off.hdr
	cryptsetup luksFormat -q --header off.hdr --offset 8192 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file key \
		--luks2-metadata-size 16k --luks2-keyslots-size 1m dev.img 2>/dev/null || fail "luksFormat --offset failed"
	refused 3 -d dev.img --state st --reencrypt --old-header off.hdr --old-key-file key --key-file newkey --header-size 2M
	assert_grep "data offset" "$T/err"
	# a device that carries its own header
	truncate -s 12M att.img
	cryptsetup luksFormat -q --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file key --luks2-metadata-size 16k \
		--luks2-keyslots-size 1m att.img 2>/dev/null || fail "luksFormat failed"
	h=$(sha att.img)
	run_rc 3 conv -d att.img --state st2 --reencrypt --old-header hdr --old-key-file key --key-file newkey
	assert_one_error_line "$T/err"
	assert_grep "carries its own LUKS header" "$T/err"
	assert_eq "$(sha att.img)" "$h" "the attached LUKS device after the refusal"
}

# --- crash states ------------------------------------------------------

# A 6M + 12K ext4 in an 8M + 12K device under a detached LUKS2 header,
# re-encrypted onto the device with a 2M header in 1M steps, traced.
t_crash() {
	need_luksipc
	luks_detached ext4 $((8 * MiB + 3 * 4096)) $((2 * MiB)) luks2 512 512
	cp dev.img orig.img
	# shellcheck disable=SC2086 # $CONV_FAST: options
	run_rc 0 env LUKSIPC_TEST_TRACE="$T/trace" "$LUKSIPC" convert --reencrypt -d "$T/dev.img" --state "$T/st" \
		--old-header "$T/hdr" --old-key-file "$T/key" --key-file "$T/newkey" --header-size 2M --step-size 1M $CONV_FAST
	[ -s trace ] || fail "LUKSIPC_TEST_TRACE wrote nothing"
	check_reencrypted
	# the trace has about 370 distinct states: quick 200, full 300
	min=200
	[ "${CRASH_TIER:-full}" = quick ] || min=300
	rc=0
	# shellcheck disable=SC2086 # $CONV_FAST: options
	"$PY" "$TESTS_ROOT/tests/crash/enumerate.py" --orig orig.img --plain plain.img \
		--trace trace --ref dev.img --ref-state st --key newkey --data-length "$P" \
		--workdir "$T/work" --jobs "${CRASH_JOBS:-3}" --min-states "$min" --boundary-fraction 1 \
		--max-failures "${CRASH_MAX_FAILURES:-0}" ${CRASH_KEEP:+--keep-failures "$CRASH_KEEP"} \
		-- "$LUKSIPC" convert --reencrypt -d '{dev}' --state '{state}' --old-header "$T/hdr" --old-key-file "$T/key" \
		--key-file "$T/newkey" --header-size 2M --step-size 1M $CONV_FAST >enum.log 2>&1 || rc=$?
	rm -rf "$T/work"
	cat enum.log
	crash_check enum.log "$rc" "$min"
}

# --- on the device -> detached (--header) --------------------------------

# luks_attached FS P HO TYPE SECTOR KEYBITS: plain.img (FS filling P bytes),
# dev.img (a LUKS header with data offset HO, then plain.img encrypted),
# key, newkey (as t18).
luks_attached() {
	fs=$1 P=$2 HO=$3 type=$4 ss=$5 kb=$6
	need_cmd cryptsetup
	FX_FILL=1 fx_make "$fs" plain.img "$P" 0
	rm -f dev.img
	truncate -s $((P + HO)) dev.img
	random_key key
	random_key newkey
	set -- --type "$type" --key-size "$kb" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --offset $((HO / 512))
	[ "$type" = luks1 ] || set -- "$@" --sector-size "$ss" --luks2-metadata-size 16k --luks2-keyslots-size 256k
	cryptsetup luksFormat -q --key-file key "$@" dev.img 2>/dev/null || fail "cryptsetup luksFormat failed"
	"$PY" "$XTSENC" dev.img dev.img --key-file key --plain plain.img || fail "xtsencrypt.py --plain failed"
	"$PY" "$LUKSDECRYPT" dev.img --key-file key --expect plain.img >/dev/null ||
		fail "the fixture does not decrypt independently"
}

# check_detached: new.hdr is LUKS (data offset 0, mode 0600) and opens
# dev.img with newkey to plain.img; dev.img carries no signature and ends
# with HO zeros; the store done.
check_detached() {
	cryptsetup isLuks new.hdr || fail "new.hdr is not LUKS"
	assert_eq "$(stat -c %a new.hdr)" 600 "new.hdr's mode"
	off=$("$PY" "$LUKSDECRYPT" dev.img --header new.hdr --key-file newkey --info | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["offset"])')
	assert_eq "$off" 0 "the new header's data offset"
	"$PY" "$LUKSDECRYPT" dev.img --header new.hdr --key-file newkey --length "$P" --expect plain.img >/dev/null ||
		fail "the device does not decrypt through new.hdr with the new key to the original filesystem"
	[ -z "$(blkid -p -o export dev.img 2>/dev/null)" ] || fail "the device carries a signature: $(blkid -p -o export dev.img | tr '\n' ' ')"
	[ "$(tail -c "$HO" dev.img | tr -d '\0' | wc -c)" -eq 0 ] || fail "the device's last $HO bytes are not zeros"
	assert_eq "$(status_field st mode)" reencrypt "status mode"
	assert_eq "$(status_field st phase)" "done" "status phase"
}

to_detached() {
	need_luksipc
	luks_attached "$@"
	shift 6
	run_rc 0 conv -d dev.img --state st --reencrypt --header new.hdr --old-key-file key --key-file newkey "$@"
	check_detached
	h=$(sha new.hdr) d=$(sha dev.img)
	run_rc 0 conv -d dev.img --state st --reencrypt --header new.hdr --old-key-file key --key-file newkey "$@"
	assert_grep "already converted" "$T/err"
	assert_eq "$(sha new.hdr) $(sha dev.img)" "$h $d" "header and device after the rerun"
}

t_to_detached_luks2() { to_detached ext4 $((24 * MiB + 4096)) $((2 * MiB)) luks2 512 512 --header-size 1M; }
# ext4 here: the forward walk is the same for any filesystem, and t18 runs it over an XFS (300 MiB at least)
t_to_detached_luks1_4k() { to_detached ext4 $((32 * MiB + 8192)) $((2 * MiB)) luks1 512 256 --sector-size 4096; }

t_to_detached_kill9() {
	need_luksipc
	luks_attached ext4 $((40 * MiB)) $((1 * MiB)) luks2 512 512
	# 80 steps of 512K, 30 ms each at least: 2.4 s of work, more than 10 kills after at most 150 ms
	LUKSIPC_TEST_DELAY_MS=30
	export LUKSIPC_TEST_DELAY_MS
	kill_loop 10 150 st -d dev.img --state st --reencrypt --header new.hdr --old-key-file key --key-file newkey --header-size 1M --step-size 512K
	unset LUKSIPC_TEST_DELAY_MS
	run_rc 0 conv -d dev.img --state st --reencrypt --header new.hdr --old-key-file key --key-file newkey --header-size 1M --step-size 512K
	check_detached
}

t_to_detached_refusals() {
	need_luksipc
	luks_attached ext4 $((12 * MiB)) $((2 * MiB)) luks2 512 512
	random_key wrong
	before() { echo "$(sha dev.img) $( [ ! -e new.hdr ] || sha new.hdr)"; }
	b=$(before)
	run_rc 4 conv -d dev.img --state st --reencrypt --header new.hdr --old-key-file wrong --key-file newkey --header-size 1M
	assert_one_error_line "$T/err"
	assert_eq "$(before)" "$b" "device and header after a wrong old key"
	[ ! -e st ] || fail "a refused start left a state store"
	run_rc 2 conv -d dev.img --state st --reencrypt --header new.hdr --old-header x.hdr --key-file newkey
	run_rc 2 conv -d dev.img --state st --reencrypt --header new.hdr --old-key-file key --key-file newkey --step-size 4M
	assert_grep "at most the data offset" "$T/err"
	run_rc 3 conv -d dev.img --state st --reencrypt --header dev.img --old-key-file key --key-file newkey --header-size 1M
	head -c 1M /dev/urandom >full.hdr
	run_rc 3 conv -d dev.img --state st --reencrypt --header full.hdr --old-key-file key --key-file newkey --header-size 1M
	assert_grep "not empty" "$T/err"
	assert_eq "$(before)" "$b" "the device after the refusals"
	run_rc 2 conv -d dev.img --state st --reencrypt --header new.hdr --old-key-file key --key-file newkey --readdev /dev/null
	# 4096-byte sectors on a device that is no whole number of them: dm-crypt could not open the result
	cp dev.img odd.img
	truncate -s $((14 * MiB + 512)) odd.img
	h=$(sha odd.img)
	run_rc 3 conv -d odd.img --state st4 --reencrypt --header odd.hdr --old-key-file key --key-file newkey --sector-size 4096 --header-size 1M
	assert_one_error_line "$T/err"
	assert_grep "no whole number of 4096-byte sectors" "$T/err"
	assert_eq "$(sha odd.img)" "$h" "the odd-sized device"
	# plaintext, not LUKS: nothing to move off it
	FX_FILL=1 fx_make ext4 plain2.img $((8 * MiB)) 0
	h=$(sha plain2.img)
	run_rc 3 conv -d plain2.img --state st3 --reencrypt --header new2.hdr --key-file newkey --header-size 1M
	assert_grep "carries no LUKS header" "$T/err"
	assert_eq "$(sha plain2.img)" "$h" "the plaintext device"
}

# A 5M + 12K ext4 under a 1 MiB data offset, to a detached 1M header in 256K
# steps, traced; new.hdr is trace target 3 and absent before the run.
t_to_detached_crash() {
	need_luksipc
	luks_attached ext4 $((5 * MiB + 3 * 4096)) $((1 * MiB)) luks2 512 512
	cp dev.img orig.img
	# shellcheck disable=SC2086 # $CONV_FAST: options
	run_rc 0 env LUKSIPC_TEST_TRACE="$T/trace" "$LUKSIPC" convert --reencrypt -d "$T/dev.img" --state "$T/st" 		--header "$T/new.hdr" --old-key-file "$T/key" --key-file "$T/newkey" --header-size 1M --step-size 256K $CONV_FAST
	[ -s trace ] || fail "LUKSIPC_TEST_TRACE wrote nothing"
	check_detached
	# the trace has about 400 distinct states: quick 200, full 350
	min=200
	[ "${CRASH_TIER:-full}" = quick ] || min=350
	rc=0
	# shellcheck disable=SC2086 # $CONV_FAST: options
	"$PY" "$TESTS_ROOT/tests/crash/enumerate.py" --orig orig.img --plain plain.img \
		--trace trace --ref dev.img --ref-state st --ref-header new.hdr --key newkey --data-length "$P" \
		--workdir "$T/work" --jobs "${CRASH_JOBS:-3}" --min-states "$min" --boundary-fraction 1 \
		--max-failures "${CRASH_MAX_FAILURES:-0}" ${CRASH_KEEP:+--keep-failures "$CRASH_KEEP"} \
		-- "$LUKSIPC" convert --reencrypt -d '{dev}' --state '{state}' --header '{hdr}' --old-key-file "$T/key" \
		--key-file "$T/newkey" --header-size 1M --step-size 256K $CONV_FAST >enum.log 2>&1 || rc=$?
	rm -rf "$T/work"
	cat enum.log
	crash_check enum.log "$rc" "$min"
	grep -q '^trace: .*W3=' enum.log || fail "the trace has no write to the new header file"
}

run_test "LUKS2 detached -> LUKS2 on the device (2M header), ext4 with 2 MiB free: byte for byte, new key" t_luks2
run_test "LUKS1 detached -> LUKS2 on the device, 4096-byte sectors: byte for byte" t_luks1_to_luks2_4k
run_test "XFS, LUKS2 detached (4096-byte sectors) -> LUKS2 on the device (16M header): byte for byte" t_xfs
run_test "kill -9 ten times during --reencrypt --old-header, then resumed: byte for byte" t_kill9
run_test "refusals (wrong old key exit 4; --old-header without --reencrypt exit 2; no --old-header, no room, junk, a data offset, an attached device exit 3): nothing written" t_refusals
run_test "crash states, --reencrypt --old-header, LUKS2 2M header, 1M steps" t_crash
run_test "LUKS2 on the device -> detached (--header, 1M): moved down, byte for byte, new key, no signature left" t_to_detached_luks2
run_test "LUKS1 on the device -> LUKS2 detached, 4096-byte sectors: byte for byte" t_to_detached_luks1_4k
run_test "kill -9 ten times during --reencrypt --header, then resumed: byte for byte" t_to_detached_kill9
run_test "refusals of --reencrypt --header (wrong old key exit 4; with --old-header or --readdev, a step above the data offset exit 2; the device as header, a header target with data, 4096-byte sectors on an odd size, a plaintext device exit 3): nothing written" t_to_detached_refusals
run_test "crash states, --reencrypt --header (forward walk, header file target 3), LUKS2, 256K steps" t_to_detached_crash
test_done
