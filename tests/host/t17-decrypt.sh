#!/bin/sh
# convert --decrypt --header: LUKS with a detached header back to plaintext
# in place. The LUKS side is made without luksipc: `cryptsetup luksFormat
# --header HDR --offset 0` writes the header, tests/lib/xtsencrypt.py (no
# code of src/) encrypts the filesystem image under its volume key, and
# tests/lib/luksdecrypt.py --header must read it back before luksipc runs.
# After luksipc the device must be byte-identical to the original
# plaintext, the header's bytes zeros, and the store say done. Refusals
# leave the device, the header and the store as they were (hashes).
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
	i=0 kills=0
	while [ "$i" -lt 12 ]; do
		conv_bg -d dev.img --state st --header hdr --key-file key --decrypt --step-size 1M
		sleep "0.$(rand_between 05 40)"
		kill -9 "$BG_PID" 2>/dev/null && kills=$((kills + 1))
		wait "$BG_PID" 2>/dev/null || true
		i=$((i + 1))
	done
	echo "killed $kills times"
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
	refused 2 -d dev.img --state st --key-file key --decrypt
	assert_grep "detached header only" "$T/err"
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
	# a device that carries its own header: not supported yet
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
	refused 2 -d dev.img --state st --key-file key --decrypt
	assert_grep "give it with --header" "$T/err"
	refused 3 -d dev.img --state st --key-file key --header dev.img --decrypt
	run_rc 0 conv -d dev.img --state st --header hdr --key-file key --decrypt --step-size 1M
	check_decrypted
}

run_test "LUKS2 (512-byte sectors) over an XFS that fills the device: decrypted byte for byte, header wiped" t_luks2_xfs
run_test "LUKS2, 4096-byte sectors, odd size: decrypted byte for byte" t_luks2_4k
run_test "LUKS1, 256-bit key, a size not a multiple of 4 KiB: decrypted byte for byte" t_luks1
run_test "kill -9 twelve times during --decrypt, then resumed: byte for byte" t_kill9
run_test "refusals (wrong key exit 4; no --header, --reencrypt exit 2; not LUKS, the device itself, a data offset, aes-cbc, an attached header, a resume with the device as header exit 3; a resume without --header exit 2): nothing written" t_refusals
test_done
