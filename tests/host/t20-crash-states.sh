#!/bin/sh
# Crash-state enumeration: one traced conversion (LUKSIPC_TEST_TRACE), then
# tests/crash/enumerate.py rebuilds the device and the state store at every
# write/flush boundary (pending writes dropped, applied, in random subsets,
# torn) and resumes each with the same convert command. Every resume must
# exit 0 with a device identical to the uninterrupted run's, which is itself
# checked with the independent decryptor. A case fails when enumerate.py
# exits non-zero or its summary does not say `0 failed`.
#
# Environment: CRASH_MIN_STATES (default 2000, the first case),
# CRASH_JOBS (3), CRASH_KEEP=DIR (keep the first failed states),
# CRASH_MAX_FAILURES=N (stop a case after N failed states),
# CRASH_TIER=quick: every boundary of the small cases, fewer random states;
# the configuration the mutation check (tests/mutation/) runs per mutant.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

# crash_enum TYPE N H STEP SECTOR MIN_STATES BOUNDARY_FRACTION [slow|used]:
# with "slow", the traced run's flushes take 20 ms each
# (tests/crash/slowsync.c); with "used", a --used-only conversion of an ext4
# whose files are spread over it and fragmented (tests/lib/usedfs.py), the
# result compared over the used blocks that dumpe2fs lists.
crash_enum() {
	need_luksipc
	type=$1 n=$2 h=$3 step=$4 ss=$5 min=$6 frac=$7 slow=${8:-}
	used=
	if [ "$slow" = used ]; then
		used=1 slow=
	fi
	pre=
	if [ -n "$slow" ]; then
		need_cmd cc
		cc -shared -fPIC -o slowsync.so "$TESTS_ROOT/tests/crash/slowsync.c" -ldl ||
			fail "cannot build tests/crash/slowsync.c"
		pre=$T/slowsync.so
	fi
	random_key key
	set -- --key-file "$T/key" --type "$type" --header-size "$h" --step-size "$step" \
		--sector-size "$ss" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --batch
	if [ -n "$used" ]; then
		truncate -s "$n" orig.img
		mkfs.ext4 -q -F -b 1024 orig.img "$(((n - h) / 1024))k" >/dev/null
		"$PY" "$TESTS_ROOT/tests/lib/usedfs.py" populate orig.img 4242 0.3 tree
		"$PY" "$TESTS_ROOT/tests/lib/usedfs.py" ranges orig.img >used.txt
		set -- "$@" --used-only
	else
		fx_make ext4 orig.img "$n" "$h"
	fi
	cp orig.img dev.img
	run_rc 0 env ${pre:+LD_PRELOAD="$pre"} LUKSIPC_TEST_TRACE="$T/trace" \
		"$LUKSIPC" convert -d "$T/dev.img" --state "$T/st" "$@"
	[ -s trace ] || fail "LUKSIPC_TEST_TRACE wrote nothing"
	if [ -n "$used" ]; then
		"$PY" "$LUKSDECRYPT" dev.img --key-file key --length $((n - h)) --out plain.img
		"$PY" "$TESTS_ROOT/tests/lib/usedfs.py" compare plain.img orig.img used.txt ||
			fail "the traced --used-only run lost a used block"
		"$PY" "$TESTS_ROOT/tests/lib/usedfs.py" scan dev.img tree ||
			fail "the traced --used-only run left live plaintext"
	else
		verify_plain dev.img key orig.img $((n - h))
	fi
	# not piped: the exit status must reach crash_check
	rc=0
	"$PY" "$TESTS_ROOT/tests/crash/enumerate.py" --orig orig.img --trace trace \
		--ref dev.img --ref-state st --key key --data-length $((n - h)) \
		--workdir "$T/work" --jobs "${CRASH_JOBS:-3}" --min-states "$min" \
		--boundary-fraction "$frac" --max-failures "${CRASH_MAX_FAILURES:-0}" \
		${CRASH_KEEP:+--keep-failures "$CRASH_KEEP"} ${used:+--used-ranges "$T/used.txt"} \
		-- "$LUKSIPC" convert -d '{dev}' --state '{state}' "$@" >enum.log 2>&1 || rc=$?
	cat enum.log
	crash_check enum.log "$rc" "$min"
}

quick=
[ "${CRASH_TIER:-full}" != quick ] || quick=1

# Many small steps: a 6M + 12K image, LUKS2 with a 2M header, 32K steps
# (129 steps, about 530 traced operations). The write limit never binds:
# up to 8 steps are in flight and 8 x 32K is far below the 2M header.
t_luks2() {
	crash_enum luks2 $((6 * MiB + 3 * 4096)) $((2 * MiB)) $((32 * 1024)) 512 \
		"${CRASH_MIN_STATES:-2000}" 1
}
# LUKS1, and LUKS2 with 4096-byte sectors: fewer states each.
t_luks1() {
	if [ -n "$quick" ]; then
		crash_enum luks1 $((6 * MiB + 5 * 512)) $((2 * MiB)) $((128 * 1024)) 512 100 1
	else
		crash_enum luks1 $((6 * MiB + 5 * 512)) $((2 * MiB)) $((128 * 1024)) 512 150 0.3
	fi
}
t_luks2_4096() {
	crash_enum luks2 $((8 * MiB + 4096)) $((4 * MiB)) $((256 * 1024)) 4096 150 0.3
}
# Steps of half the header (the default is the whole header): the output of
# a step covers the source of the step two above, so the writer must wait
# for that step's record (geometry_write_limit); the pipeline's ordering.
# The traced run's flushes are slowed, so that the writer is always at that
# limit (with instant flushes the committer keeps ahead of it anyway).
t_write_limit() {
	crash_enum luks2 $((6 * MiB + 4096)) $((2 * MiB)) $((1 * MiB)) 512 50 1 slow
}

# --used-only on a fragmented ext4 (1 KiB blocks) with files spread over
# it: steps that read nothing, steps that only overwrite the plaintext H
# above, evidence taken below the step. 256K steps of a 1M header: up to 4
# steps in flight.
t_used_only() {
	if [ -n "$quick" ]; then
		crash_enum luks2 $((10 * MiB + 3 * 512)) $((1 * MiB)) $((256 * 1024)) 512 100 1 used
	else
		crash_enum luks2 $((12 * MiB + 3 * 512)) $((1 * MiB)) $((256 * 1024)) 512 400 1 used
	fi
}

if [ -n "$quick" ]; then
	run_test "crash states, LUKS2 512, 1M steps of a 2M header (write limit binds)" t_write_limit
	run_test "crash states, LUKS1, 128K steps" t_luks1
	run_test "crash states, --used-only, fragmented ext4, 256K steps of a 1M header" t_used_only
else
	run_test "crash states, LUKS2 512, 32K steps (>= ${CRASH_MIN_STATES:-2000} states)" t_luks2
	run_test "crash states, LUKS1, 128K steps" t_luks1
	run_test "crash states, LUKS2 4096-byte sectors, 256K steps" t_luks2_4096
	run_test "crash states, LUKS2 512, 1M steps of a 2M header (write limit binds)" t_write_limit
	run_test "crash states, --used-only, fragmented ext4, 256K steps of a 1M header" t_used_only
fi
test_done
