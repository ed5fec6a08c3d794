#!/bin/sh
# convert --decrypt of a LUKS device that carries its own header: the data
# moves down by the data offset into the header's place, so the plaintext
# filesystem starts at byte 0 again (the forward walk). The LUKS side is
# made without luksipc: `cryptsetup luksFormat` writes the header onto the
# device, tests/lib/xtsencrypt.py --plain (no code of src/) encrypts the
# filesystem image under its volume key at the data offset, and
# tests/lib/luksdecrypt.py must read it back before luksipc runs. After
# luksipc the device's first P bytes (P = size - data offset) must be the
# original plaintext byte for byte, the rest zeros (the old header is gone
# from the device), and the store say done. Refusals leave the device and
# the store as they were (hashes).
#
# Crash states: one traced --decrypt run, then tests/crash/enumerate.py
# rebuilds the device and the store at every write/flush boundary and
# resumes each; every resume must end byte-identical to the traced run
# (--deterministic: a decryption has one result). A negative control shows
# the enumeration fails when a step's flush is dropped.
# Environment: CRASH_TIER=quick (the LUKS2 case only, every boundary),
# CRASH_JOBS, CRASH_KEEP=DIR, CRASH_MAX_FAILURES=N, as in t16 and t20.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

XTSENC=$TESTS_ROOT/tests/lib/xtsencrypt.py

# luks_attached FS P OFFSET TYPE SECTOR KEYBITS [luksFormat options...]:
# plain.img (FS filling P bytes), dev.img (a LUKS header with data offset
# OFFSET bytes, then plain.img encrypted: P + OFFSET bytes), key; HO is the
# data offset, P the payload's size.
luks_attached() {
	fs=$1 P=$2 HO=$3 type=$4 ss=$5 kb=$6
	shift 6
	need_cmd cryptsetup
	FX_FILL=1 fx_make "$fs" plain.img "$P" 0
	rm -f dev.img
	truncate -s $((P + HO)) dev.img
	random_key key
	set -- --type "$type" --key-size "$kb" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --offset $((HO / 512)) "$@"
	[ "$type" = luks1 ] || set -- "$@" --sector-size "$ss" --luks2-metadata-size 16k --luks2-keyslots-size 256k
	cryptsetup luksFormat -q --key-file key "$@" dev.img 2>/dev/null || fail "cryptsetup luksFormat failed"
	"$PY" "$XTSENC" dev.img dev.img --key-file key --plain plain.img || fail "xtsencrypt.py --plain failed"
	"$PY" "$LUKSDECRYPT" dev.img --key-file key --expect plain.img >/dev/null ||
		fail "the fixture does not decrypt independently"
	off=$("$PY" "$LUKSDECRYPT" dev.img --key-file key --info | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["offset"])')
	[ "$off" = "$HO" ] || fail "the fixture's data offset is '$off', not $HO"
}

# check_decrypted: dev.img starts with plain.img, zeros after it, the store done.
check_decrypted() {
	cmp -n "$P" dev.img plain.img || fail "the decrypted device differs from the original plaintext"
	[ "$(fsize dev.img)" = $((P + HO)) ] || fail "the device changed size"
	[ "$(tail -c "$HO" dev.img | tr -d '\0' | wc -c)" -eq 0 ] || fail "the $HO bytes after the data are not zeros"
	! cryptsetup isLuks dev.img 2>/dev/null || fail "the device is still LUKS after --decrypt"
	assert_eq "$(status_field st mode)" decrypt "status mode"
	assert_eq "$(status_field st phase)" "done" "status phase"
}

roundtrip() {
	need_luksipc
	luks_attached "$@"
	run_rc 0 conv -d dev.img --state st --key-file key --decrypt
	check_decrypted
	assert_grep "moved down by" "$T/err"
	run_rc 0 conv -d dev.img --state st --key-file key --decrypt
	assert_grep "already decrypted" "$T/err"
	lx status --state st --notes >notes.txt
	assert_grep "plaintext again from byte 0" notes.txt
	run_rc 0 lx finalize --state st --batch
	cmp -n "$P" dev.img plain.img || fail "finalize changed the device"
}

t_luks2_xfs() { roundtrip xfs $((300 * MiB)) $((16 * MiB)) luks2 512 512; }
t_luks2_4k() { roundtrip ext4 $((24 * MiB + 8192)) $((2 * MiB)) luks2 4096 512; }
t_luks1() { roundtrip ext4 $((20 * MiB + 3 * 512)) $((2 * MiB)) luks1 512 256; }
# a data offset that is not a whole number of steps' worth of data, and a
# payload smaller than the header: its keyslots are wiped at the end
t_small() { roundtrip ext4 $((3 * MiB + 4096)) $((4 * MiB)) luks2 512 512; }

# Interrupted by kill -9 at random points, resumed by the same command.
t_kill9() {
	need_luksipc
	luks_attached ext4 $((40 * MiB)) $((1 * MiB)) luks2 512 512
	# 80 steps of 30 ms at least: 2.4 s of work, more than 12 kills after at most 150 ms
	LUKSIPC_TEST_DELAY_MS=30
	export LUKSIPC_TEST_DELAY_MS
	kill_loop 12 150 st -d dev.img --state st --key-file key --decrypt --step-size 512K
	unset LUKSIPC_TEST_DELAY_MS
	run_rc 0 conv -d dev.img --state st --key-file key --decrypt --step-size 512K
	check_decrypted
}

# refused CODE ARGS...: exit CODE, one error line, nothing written.
refused() {
	code=$1
	shift
	before="$(sha dev.img) $( [ ! -e st ] || sha st)"
	run_rc "$code" conv "$@"
	assert_one_error_line "$T/err"
	after="$(sha dev.img) $( [ ! -e st ] || sha st)"
	assert_eq "$after" "$before" "device and store after the refusal"
}

t_refusals() {
	need_luksipc
	luks_attached ext4 $((12 * MiB)) $((2 * MiB)) luks2 512 512
	random_key wrong
	refused 4 -d dev.img --state st --key-file wrong --decrypt
	assert_grep "does not open the LUKS header of 'dev.img'" "$T/err"
	[ ! -e st ] || fail "a refused start left a state store"
	refused 2 -d dev.img --state st --key-file key --decrypt --step-size 4M
	assert_grep "at most the data offset" "$T/err"
	refused 3 -d dev.img --state st --key-file key --decrypt --header dev.img
	# aes-cbc: not luksipc's cipher
	cp dev.img keep.img
	cryptsetup luksFormat -q --cipher aes-cbc-essiv:sha256 --key-size 256 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
		--key-file key --luks2-metadata-size 16k --luks2-keyslots-size 256k dev.img 2>/dev/null || fail "luksFormat --cipher failed"
	refused 3 -d dev.img --state st --key-file key --decrypt
	assert_grep "aes-cbc" "$T/err"
	mv keep.img dev.img
	# a header whose data is not a filesystem: this key opens it, the data is noise
	cp dev.img keep.img
	dd if=/dev/urandom of=dev.img bs=1M seek=2 count=12 conv=notrunc status=none
	refused 3 -d dev.img --state st --key-file key --decrypt
	assert_grep "to a filesystem" "$T/err"
	mv keep.img dev.img
	# started, then resumed with --header: refused; then resumed as started
	LUKSIPC_TEST_DELAY_MS=300
	export LUKSIPC_TEST_DELAY_MS
	conv_bg -d dev.img --state st --key-file key --decrypt --step-size 1M
	wait_state_progress st || fail "the decryption made no progress"
	kill -9 "$BG_PID" 2>/dev/null || true
	wait "$BG_PID" 2>/dev/null || true
	unset LUKSIPC_TEST_DELAY_MS
	assert_eq "$(status_field st phase)" converting "phase after the kill"
	! cryptsetup isLuks dev.img 2>/dev/null || fail "the header is still on the device after the first steps"
	truncate -s 4M other.hdr
	refused 3 -d dev.img --state st --key-file key --decrypt --header other.hdr
	refused 4 -d dev.img --state st --key-file wrong --decrypt
	run_rc 0 conv -d dev.img --state st --key-file key --decrypt --step-size 1M
	check_decrypted
}

# --- crash states ------------------------------------------------------

# traced_fixture TYPE SECTOR KEYBITS: a 5M + 12K ext4 under a 1 MiB data
# offset (2 MiB for LUKS1, whose keyslots take more than 1 MiB)
# (luks_attached; orig.img the device before the run), decrypted in one
# traced run with 256K steps; the result must be the original plaintext,
# zeros after it.
traced_fixture() {
	need_luksipc
	ho=$((1 * MiB))
	[ "$1" != luks1 ] || ho=$((2 * MiB))
	luks_attached ext4 $((5 * MiB + 3 * 4096)) "$ho" "$1" "$2" "$3"
	cp dev.img orig.img
	# shellcheck disable=SC2086 # $CONV_FAST: options
	run_rc 0 env LUKSIPC_TEST_TRACE="$T/trace" "$LUKSIPC" convert --decrypt -d "$T/dev.img" \
		--state "$T/st" --key-file "$T/key" --step-size 256K $CONV_FAST
	[ -s trace ] || fail "LUKSIPC_TEST_TRACE wrote nothing"
	check_decrypted
}

# enum LOG [enumerate options...]: enumerate.py on the traced run in $T,
# every state resumed with the same --decrypt command; sets rc.
enum() {
	log=$1
	shift
	rc=0
	# shellcheck disable=SC2086 # $CONV_FAST: options
	"$PY" "$TESTS_ROOT/tests/crash/enumerate.py" --orig orig.img \
		--trace trace --ref dev.img --ref-state st --plain plain.img --deterministic \
		--key key --data-length "$P" \
		--workdir "$T/work" --jobs "${CRASH_JOBS:-3}" \
		${CRASH_KEEP:+--keep-failures "$CRASH_KEEP"} "$@" \
		-- "$LUKSIPC" convert --decrypt -d '{dev}' --state '{state}' \
		--key-file "$T/key" --step-size 256K $CONV_FAST >"$log" 2>&1 || rc=$?
	rm -rf "$T/work"
}

# crash_enum TYPE SECTOR KEYBITS MIN: every boundary of the traced run
# (CRASH_TIER=quick); in the full tier, random states on top up to 2 x MIN.
crash_enum() {
	min=$4
	traced_fixture "$1" "$2" "$3"
	[ "${CRASH_TIER:-full}" = quick ] || min=$((min * 2))
	enum enum.log --min-states "$min" --boundary-fraction 1 --max-failures "${CRASH_MAX_FAILURES:-0}"
	cat enum.log
	crash_check enum.log "$rc" "$min"
}

t_crash_luks2() { crash_enum luks2 512 512 200; }
t_crash_luks1() { crash_enum luks1 512 256 200; }

# The enumeration can fail: a --plain that the result is not, and the
# flushes of the device dropped from the trace (a record can then reach
# the disk before the step it records, and a resume skips that step).
t_crash_negative() {
	traced_fixture luks2 512 512
	cp plain.img plain.good
	printf '\377' | dd of=plain.img bs=1 seek=$((3 * MiB + 11)) conv=notrunc status=none
	enum neg1.log --min-states 1
	sed 's/^/neg1| /' neg1.log
	[ "$rc" -ne 0 ] || fail "enumerate.py passed with a --plain the result is not"
	assert_grep "reference device differs from --plain at byte $((3 * MiB + 11)) " neg1.log
	mv plain.good plain.img
	"$PY" "$TESTS_ROOT/tests/crash/dropflush.py" trace trace.noflush 0 ||
		fail "the trace has no flush of the device"
	mv trace trace.orig
	mv trace.noflush trace
	enum neg2.log --min-states 1 --max-failures 3
	sed 's/^/neg2| /' neg2.log
	[ "$rc" -ne 0 ] || fail "enumerate.py passed with the device's flushes dropped from the trace"
	assert_grep '^FAIL state [0-9]+ ' neg2.log
}

run_test "LUKS2 (512-byte sectors, 16 MiB data offset) over an XFS: moved down, decrypted byte for byte, zeros after it" t_luks2_xfs
run_test "LUKS2, 4096-byte sectors, odd size: decrypted byte for byte" t_luks2_4k
run_test "LUKS1, 256-bit key, a size not a multiple of 4 KiB: decrypted byte for byte" t_luks1
run_test "a payload smaller than the data offset: decrypted, the keyslots left after it wiped" t_small
run_test "kill -9 twelve times during --decrypt, then resumed: byte for byte" t_kill9
run_test "refusals (wrong key exit 4; a step above the data offset exit 2; --header, aes-cbc, data that is no filesystem, a resume with --header exit 3; a resume with a wrong key exit 4): nothing written" t_refusals
run_test "crash states, --decrypt of an attached header, LUKS2 512, 256K steps" t_crash_luks2
# CRASH_TIER=quick: one case, which the mutation check runs per mutant
[ "${CRASH_TIER:-full}" = quick ] ||
	run_test "crash states, --decrypt of an attached header, LUKS1 256-bit key, 256K steps" t_crash_luks1
# not named "crash states": the mutation check runs those cases per mutant
run_test "negative control: enumerate.py fails on a wrong --plain, the device's flushes dropped" t_crash_negative
test_done
