#!/bin/sh
# Crash-state enumeration for LUKS to LUKS re-encryption: one traced
# `convert --reencrypt`, then tests/crash/enumerate.py rebuilds the device and
# the state store at the write/flush boundaries (pending writes dropped,
# applied, in random subsets, torn) and resumes each with the same command.
# Every resume must exit 0 with a device identical to the uninterrupted run's
# (itself checked with the independent decryptor against the source's
# plaintext), or, when nothing had reached the device yet, with a fresh header
# that decrypts to that plaintext. The journal path (same header size, old
# ciphertext journaled on the state store) is enumerated at every boundary;
# the shift path (LUKS1 2M -> LUKS2 4M) is sampled. A case fails when
# enumerate.py exits non-zero or its summary does not say `0 failed`.
#
# Environment: REENC_CRASH_MIN_STATES (default 500) and REENC_CRASH_FRACTION
# (0.33) for the journal path; CRASH_JOBS, CRASH_KEEP, CRASH_MAX_FAILURES as
# in t20; CRASH_TIER=quick: the journal path with 1M steps at every
# boundary and the shift path with fewer states (the mutation check's
# configuration, tests/mutation/).
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

# reenc_enum H_NEW MIN_STATES BOUNDARY_FRACTION [convert options...]: src.img
# (a LUKS source of orig.img, opened by "old") is re-encrypted with the key
# "new" in one traced run; then every crash state of that run is resumed.
reenc_enum() {
	hnew=$1 min=$2 frac=$3
	shift 3
	n=$(fsize src.img)
	p=$(((n - hnew) / 4096 * 4096))
	"$PY" "$LUKSDECRYPT" src.img --key-file old --length "$p" --out plain.img ||
		fail "cannot decrypt the source"
	cp src.img dev.img
	set -- --reencrypt --old-key-file "$T/old" --key-file "$T/new" --header-size "$hnew" \
		"$@" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --batch
	LUKSIPC_TEST_TRACE=$T/trace run_rc 0 "$LUKSIPC" convert -d "$T/dev.img" --state "$T/st" "$@"
	[ -s trace ] || fail "LUKSIPC_TEST_TRACE wrote nothing"
	assert_eq "$(luks_info dev.img offset)" "$hnew" "data offset"
	verify_plain dev.img new plain.img "$p"
	verify_plain dev.img new orig.img "$FS_END"
	if cryptsetup open --test-passphrase --key-file old dev.img 2>/dev/null; then
		fail "the old key still opens the result"
	fi
	# not piped: the exit status must reach crash_check
	rc=0
	"$PY" "$TESTS_ROOT/tests/crash/enumerate.py" --orig src.img --plain plain.img \
		--trace trace --ref dev.img --ref-state st --key new --data-length "$p" \
		--workdir "$T/work" --jobs "${CRASH_JOBS:-3}" --min-states "$min" \
		--boundary-fraction "$frac" \
		--max-failures "${CRASH_MAX_FAILURES:-0}" \
		${CRASH_KEEP:+--keep-failures "$CRASH_KEEP"} \
		-- "$LUKSIPC" convert -d '{dev}' --state '{state}' "$@" >enum.log 2>&1 || rc=$?
	cat enum.log
	crash_check enum.log "$rc" "$min"
}

quick=
[ "${CRASH_TIER:-full}" != quick ] || quick=1

# Journal path: LUKS2 2M -> LUKS2 2M, source made by cryptsetup, 64K steps
# over a 6M + 12K payload (97 steps, each journaled).
# --disable-locks: cryptsetup's reencryption lock lives in /run/cryptsetup,
# which only root may write; without it a run as another user fails there
# and the case would be skipped. The image is private to this case.
t_journal() {
	need_luksipc
	need_cmd cryptsetup mkfs.ext4
	random_key old
	random_key new
	n=$((8 * MiB + 3 * 4096))
	fx_make ext4 src.img "$n" $((4 * MiB))
	cp src.img orig.img
	FS_END=$fx_end
	cryptsetup --disable-locks reencrypt --encrypt --batch-mode --type luks2 --reduce-device-size 4M \
		--pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file old src.img 2>cs.err || {
		cat cs.err >&2
		skip_unless_ci "cryptsetup reencrypt --encrypt does not work here: $(tail -n 1 cs.err)"
	}
	assert_eq "$(luks_info src.img offset)" $((2 * MiB)) "source data offset"
	verify_plain src.img old orig.img "$FS_END"
	if [ -n "$quick" ]; then
		reenc_enum $((2 * MiB)) 50 1 --step-size $((1 * MiB))
	else
		reenc_enum $((2 * MiB)) "${REENC_CRASH_MIN_STATES:-500}" "${REENC_CRASH_FRACTION:-0.33}" --step-size $((64 * 1024))
	fi
}

# Shift path, sampled: LUKS1 2M (made by luksipc) -> LUKS2 4M, 512K steps.
t_shift() {
	need_luksipc
	random_key old
	random_key new
	n=$((8 * MiB + 5 * 4096))
	fx_make ext4 src.img "$n" $((4 * MiB))
	cp src.img orig.img
	FS_END=$fx_end
	run_rc 0 conv -d src.img --state st.src --key-file old --type luks1
	verify_plain src.img old orig.img $((n - 2 * MiB))
	if [ -n "$quick" ]; then
		reenc_enum $((4 * MiB)) 30 0.1 --type luks2 --step-size $((512 * 1024))
	else
		reenc_enum $((4 * MiB)) 100 0.3 --type luks2 --step-size $((512 * 1024))
	fi
}

if [ -n "$quick" ]; then
	run_test "re-encryption crash states, journal path, LUKS2 2M, 1M steps, every boundary" t_journal
else
	run_test "re-encryption crash states, journal path, LUKS2 2M, 64K steps (>= ${REENC_CRASH_MIN_STATES:-500} states)" t_journal
fi
run_test "re-encryption crash states, shift path LUKS1 2M -> LUKS2 4M, sampled" t_shift
test_done
