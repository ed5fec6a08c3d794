#!/bin/sh
# convert --decrypt --header: LUKS with a detached header back to plaintext
# in place. The LUKS side is made without luksipc: `cryptsetup luksFormat
# --header HDR --offset 0` writes the header, tests/lib/xtsencrypt.py (no
# code of src/) encrypts the filesystem image under its volume key, and
# tests/lib/luksdecrypt.py --header must read it back before luksipc runs.
# After luksipc the device must be byte-identical to the original
# plaintext, the header's bytes zeros, and the store say done. Refusals
# leave the device, the header and the store as they were (hashes).
#
# Crash states: one traced --decrypt run, then tests/crash/enumerate.py
# rebuilds the device, the store and the header file (trace target 3, there
# before the run: --orig-header) at every write/flush boundary and resumes
# each; every resume must end byte-identical to the traced run (the
# original plaintext, the header's bytes zeros). A decryption has one
# result, so a state whose device is untouched gets no "fresh header"
# leeway (--deterministic). A negative control shows the enumeration fails.
# Environment: CRASH_TIER=quick (the LUKS2 case only, every boundary),
# CRASH_JOBS, CRASH_KEEP=DIR, CRASH_MAX_FAILURES=N, as in t16 and t20.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

XTSENC=$TESTS_ROOT/tests/lib/xtsencrypt.py

# luks_detached FS N TYPE SECTOR KEYBITS [luksFormat options...]: plain.img
# (FS filling N bytes), hdr (its detached header, data offset 0), dev.img
# (plain.img encrypted), key.
luks_detached() {
	fs=$1 n=$2 type=$3 ss=$4 kb=$5
	shift 5
	need_cmd cryptsetup
	FX_FILL=1 fx_make "$fs" plain.img "$n" 0
	cp plain.img dev.img
	random_key key
	truncate -s 4M hdr
	set -- --type "$type" --key-size "$kb" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "$@"
	[ "$type" = luks1 ] || set -- "$@" --sector-size "$ss" --luks2-metadata-size 16k --luks2-keyslots-size 1m
	cryptsetup luksFormat -q --header hdr --offset 0 --key-file key "$@" dev.img 2>/dev/null ||
		fail "cryptsetup luksFormat --header failed"
	"$PY" "$XTSENC" hdr dev.img --key-file key || fail "xtsencrypt.py failed"
	! cmp -s dev.img plain.img || fail "the fixture is still plaintext"
	"$PY" "$LUKSDECRYPT" dev.img --header hdr --key-file key --expect plain.img >/dev/null ||
		fail "the fixture does not decrypt independently"
	rm -f hdr.bak
	cryptsetup luksHeaderBackup hdr --header-backup-file hdr.bak || fail "luksHeaderBackup failed"
	HLEN=$(fsize hdr.bak)
}

# check_decrypted: dev.img is plain.img again, the header's bytes zeros, the store done.
check_decrypted() {
	cmp dev.img plain.img || fail "the decrypted device differs from the original plaintext"
	! cryptsetup isLuks hdr 2>/dev/null || fail "the header is still LUKS after --decrypt"
	[ "$(head -c "$HLEN" hdr | tr -d '\0' | wc -c)" -eq 0 ] || fail "the header's $HLEN bytes are not zeros"
	assert_eq "$(status_field st mode)" decrypt "status mode"
	assert_eq "$(status_field st phase)" "done" "status phase"
	assert_eq "$(status_field st matches-device)" yes "status matches-device"
}

roundtrip() {
	need_luksipc
	luks_detached "$@"
	run_rc 0 conv -d dev.img --state st --header hdr --key-file key --decrypt
	check_decrypted
	run_rc 0 conv -d dev.img --state st --header hdr --key-file key --decrypt
	assert_grep "already decrypted" "$T/err"
	lx status --state st --notes >notes.txt
	assert_grep "plaintext again" notes.txt
	run_rc 0 lx finalize --state st --batch
	cmp dev.img plain.img || fail "finalize changed the device"
}

t_luks2_xfs() { roundtrip xfs $((300 * MiB)) luks2 512 512; }
t_luks2_4k() { roundtrip ext4 $((24 * MiB + 8192)) luks2 4096 512; }
t_luks1() { roundtrip ext4 $((20 * MiB + 3 * 512)) luks1 512 256; }

# Interrupted by kill -9 at random points, resumed by the same command.
t_kill9() {
	need_luksipc
	luks_detached ext4 $((40 * MiB)) luks2 512 512
	# 40 steps of 1M, 60 ms each at least: 2.4 s of work, more than 12 kills after at most 150 ms
	LUKSIPC_TEST_DELAY_MS=60
	export LUKSIPC_TEST_DELAY_MS
	kill_loop 12 150 st -d dev.img --state st --header hdr --key-file key --decrypt --step-size 1M
	unset LUKSIPC_TEST_DELAY_MS
	run_rc 0 conv -d dev.img --state st --header hdr --key-file key --decrypt --step-size 1M
	check_decrypted
}

# refused CODE ARGS...: exit CODE, one error line, nothing written.
refused() {
	code=$1
	shift
	before="$(sha dev.img) $(sha hdr) $( [ ! -e st ] || sha st)"
	run_rc "$code" conv "$@"
	assert_one_error_line "$T/err"
	after="$(sha dev.img) $(sha hdr) $( [ ! -e st ] || sha st)"
	assert_eq "$after" "$before" "device, header and store after the refusal"
}

t_refusals() {
	need_luksipc
	luks_detached ext4 $((12 * MiB)) luks2 512 512
	random_key wrong
	refused 4 -d dev.img --state st --header hdr --key-file wrong --decrypt
	assert_grep "does not open" "$T/err"
	[ ! -e st ] || fail "a refused start left a state store"
	refused 3 -d dev.img --state st --key-file key --decrypt
	assert_grep "carries no LUKS header; if its header is detached, give it with --header" "$T/err"
	refused 2 -d dev.img --state st --header hdr --key-file key --decrypt --reencrypt
	head -c 1M /dev/urandom >junk
	cp junk junk.orig
	refused 3 -d dev.img --state st --header junk --key-file key --decrypt
	assert_grep "holds no LUKS header" "$T/err"
	cmp junk junk.orig || fail "the junk header target changed"
	refused 3 -d dev.img --state st --header dev.img --key-file key --decrypt
	# a header that puts the data at an offset, and one with another cipher
	truncate -s 4M off.hdr
	cryptsetup luksFormat -q --header off.hdr --offset 8192 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file key \
		--luks2-metadata-size 16k --luks2-keyslots-size 1m dev.img 2>/dev/null || fail "luksFormat --offset failed"
	refused 3 -d dev.img --state st --header off.hdr --key-file key --decrypt
	assert_grep "data offset" "$T/err"
	truncate -s 4M cbc.hdr
	cryptsetup luksFormat -q --header cbc.hdr --offset 0 --cipher aes-cbc-essiv:sha256 --key-size 256 --pbkdf pbkdf2 \
		--pbkdf-force-iterations 1000 --key-file key --luks2-metadata-size 16k --luks2-keyslots-size 1m dev.img 2>/dev/null ||
		fail "luksFormat --cipher failed"
	refused 3 -d dev.img --state st --header cbc.hdr --key-file key --decrypt
	assert_grep "aes-cbc" "$T/err"
	# the header of another device, which the same key opens: what it decrypts is no filesystem
	mkdir other
	(cd other && cp ../key key && luks_detached ext4 $((12 * MiB)) luks2 512 512 >/dev/null 2>&1) ||
		fail "cannot make the second fixture"
	# luks_detached made a new key in other/: the header opens with that one
	refused 3 -d dev.img --state st --header other/hdr --key-file other/key --decrypt
	assert_grep "does not decrypt 'dev.img' to a filesystem" "$T/err"
	# a device that carries its own header, with --header: decrypted with its own (t18), not this one
	truncate -s 12M att.img
	cryptsetup luksFormat -q --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file key --luks2-metadata-size 16k \
		--luks2-keyslots-size 1m att.img 2>/dev/null || fail "luksFormat failed"
	h=$(sha att.img)
	run_rc 3 conv -d att.img --state st2 --header hdr --key-file key --decrypt
	assert_one_error_line "$T/err"
	assert_grep "carries its own LUKS header" "$T/err"
	assert_eq "$(sha att.img)" "$h" "the attached LUKS device after the refusal"
	# started, then resumed without --header
	LUKSIPC_TEST_DELAY_MS=300
	export LUKSIPC_TEST_DELAY_MS
	conv_bg -d dev.img --state st --header hdr --key-file key --decrypt --step-size 1M
	wait_state_progress st || fail "the decryption made no progress"
	kill -9 "$BG_PID" 2>/dev/null || true
	wait "$BG_PID" 2>/dev/null || true
	unset LUKSIPC_TEST_DELAY_MS
	assert_eq "$(status_field st phase)" converting "phase after the kill"
	refused 3 -d dev.img --state st --key-file key --decrypt
	assert_grep "run the same command with --header" "$T/err"
	refused 3 -d dev.img --state st --key-file key --header dev.img --decrypt
	run_rc 0 conv -d dev.img --state st --header hdr --key-file key --decrypt --step-size 1M
	check_decrypted
}

# --- crash states ------------------------------------------------------

# traced_fixture TYPE SECTOR KEYBITS: a 6M + 12K ext4 filling its device,
# encrypted under a detached header (luks_detached; orig.img the ciphertext,
# orig.hdr the header file before the run), decrypted in one traced run with
# 1M steps; the result must be the original plaintext, the header wiped.
traced_fixture() {
	need_luksipc
	luks_detached ext4 $((6 * MiB + 3 * 4096)) "$1" "$2" "$3"
	cp dev.img orig.img
	cp hdr orig.hdr
	# shellcheck disable=SC2086 # $CONV_FAST: options
	run_rc 0 env LUKSIPC_TEST_TRACE="$T/trace" "$LUKSIPC" convert --decrypt -d "$T/dev.img" \
		--state "$T/st" --header "$T/hdr" --key-file "$T/key" --step-size 1M $CONV_FAST
	[ -s trace ] || fail "LUKSIPC_TEST_TRACE wrote nothing"
	check_decrypted
}

# enum LOG [enumerate options...]: enumerate.py on the traced run in $T,
# every state resumed with the same --decrypt command; its output in LOG;
# sets rc. The header file exists before the run (--orig-header) and a
# decryption has one result (--deterministic): every state must end as the
# traced run did, the device the original plaintext, the header zeros.
enum() {
	log=$1
	shift
	rc=0
	# shellcheck disable=SC2086 # $CONV_FAST: options
	"$PY" "$TESTS_ROOT/tests/crash/enumerate.py" --orig orig.img --orig-header orig.hdr \
		--trace trace --ref dev.img --ref-state st --plain plain.img --deterministic \
		--key key --data-length "$(fsize plain.img)" \
		--workdir "$T/work" --jobs "${CRASH_JOBS:-3}" \
		${CRASH_KEEP:+--keep-failures "$CRASH_KEEP"} "$@" \
		-- "$LUKSIPC" convert --decrypt -d '{dev}' --state '{state}' --header '{hdr}' \
		--key-file "$T/key" --step-size 1M $CONV_FAST >"$log" 2>&1 || rc=$?
	rm -rf "$T/work"
}

# crash_enum TYPE SECTOR KEYBITS MIN: every boundary of the traced run
# (CRASH_TIER=quick); in the full tier, random states on top up to 2 x MIN.
crash_enum() {
	min=$4
	traced_fixture "$1" "$2" "$3"
	[ "${CRASH_TIER:-full}" = quick ] || min=$((min * 2))
	enum enum.log --ref-header hdr --min-states "$min" --boundary-fraction 1 \
		--max-failures "${CRASH_MAX_FAILURES:-0}"
	cat enum.log
	crash_check enum.log "$rc" "$min"
	grep -q '^trace: .*W3=' enum.log || fail "the trace has no write (the wipe) to the header file"
	assert_grep ' 0 fresh-header decrypted\)' enum.log
}

# About 245 states each (76 traced operations).
t_crash_luks2() { crash_enum luks2 512 512 200; }
t_crash_luks1() { crash_enum luks1 512 256 200; }

# The enumeration can fail: a reference header with one byte flipped, a
# --plain that the uninterrupted result is not, and the wipe's flush
# dropped from the trace (the 'done' record can then reach the disk before
# the wipe, and a resume after 'done' leaves the header as the cut left it).
t_crash_negative() {
	traced_fixture luks2 512 512
	cp hdr bad.hdr
	printf '\377' | dd of=bad.hdr bs=1 seek=$((512 * 1024 + 7)) conv=notrunc status=none
	enum neg1.log --ref-header bad.hdr --min-states 1
	sed 's/^/neg1| /' neg1.log
	[ "$rc" -ne 0 ] || fail "enumerate.py passed with a wrong --ref-header"
	assert_grep "does not give the reference detached header" neg1.log
	cp plain.img plain.good
	printf '\377' | dd of=plain.img bs=1 seek=$((3 * MiB + 11)) conv=notrunc status=none
	enum neg2.log --ref-header hdr --min-states 1
	sed 's/^/neg2| /' neg2.log
	[ "$rc" -ne 0 ] || fail "enumerate.py passed with a --plain the result is not"
	assert_grep "reference device differs from --plain at byte $((3 * MiB + 11)) " neg2.log
	mv plain.good plain.img
	"$PY" "$TESTS_ROOT/tests/crash/dropflush.py" trace trace.noflush 3 ||
		fail "the trace has no flush of the header file after its wipe"
	mv trace trace.orig
	mv trace.noflush trace
	enum neg3.log --ref-header hdr --min-states 1 --max-failures 3
	sed 's/^/neg3| /' neg3.log
	[ "$rc" -ne 0 ] || fail "enumerate.py passed with the wipe's flush dropped from the trace"
	assert_grep '^FAIL state [0-9]+ .*: detached header file differs from the reference one' neg3.log
}

run_test "LUKS2 (512-byte sectors) over an XFS that fills the device: decrypted byte for byte, header wiped" t_luks2_xfs
run_test "LUKS2, 4096-byte sectors, odd size: decrypted byte for byte" t_luks2_4k
run_test "LUKS1, 256-bit key, a size not a multiple of 4 KiB: decrypted byte for byte" t_luks1
run_test "kill -9 twelve times during --decrypt, then resumed: byte for byte" t_kill9
run_test "refusals (wrong key exit 4; --reencrypt exit 2; no --header, not LUKS, the device itself, a data offset, aes-cbc, another device's header, an attached header, a resume with the device as header, a resume without --header exit 3): nothing written" t_refusals
run_test "crash states, --decrypt, LUKS2 512, 1M steps, 1M header file" t_crash_luks2
# CRASH_TIER=quick: one case, which the mutation check runs per mutant
# (its pattern "crash states" must select exactly one)
[ "${CRASH_TIER:-full}" = quick ] ||
	run_test "crash states, --decrypt, LUKS1 256-bit key, 1M steps" t_crash_luks1
# not named "crash states": the mutation check runs those cases per mutant
run_test "negative control: enumerate.py fails on a wrong --ref-header or --plain, a dropped wipe flush" t_crash_negative
test_done
