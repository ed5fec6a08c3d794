#!/bin/sh
# Crash-state enumeration: one traced conversion (LUKSIPC_TEST_TRACE), then
# tests/crash/enumerate.py rebuilds the device and the state store at every
# write/flush boundary (pending writes dropped, applied, in random subsets,
# torn) and resumes each with the same convert command. Every resume must
# exit 0 with a device identical to the uninterrupted run's, which is itself
# checked with the independent decryptor. CRASH_MIN_STATES (default 2000).
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

# crash_enum TYPE N H STEP SECTOR MIN_STATES BOUNDARY_FRACTION
crash_enum() {
	need_luksipc
	type=$1 n=$2 h=$3 step=$4 ss=$5 min=$6 frac=$7
	fx_make ext4 orig.img "$n" "$h"
	cp orig.img dev.img
	random_key key
	set -- --key-file "$T/key" --type "$type" --header-size "$h" --step-size "$step" \
		--sector-size "$ss" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --batch
	LUKSIPC_TEST_TRACE=$T/trace run_rc 0 "$LUKSIPC" convert -d "$T/dev.img" --state "$T/st" "$@"
	[ -s trace ] || fail "LUKSIPC_TEST_TRACE wrote nothing"
	verify_plain dev.img key orig.img $((n - h))
	"$PY" "$TESTS_ROOT/tests/crash/enumerate.py" --orig orig.img --trace trace \
		--ref dev.img --ref-state st --key key --data-length $((n - h)) \
		--workdir "$T/work" --jobs "${CRASH_JOBS:-3}" --min-states "$min" \
		--boundary-fraction "$frac" \
		${CRASH_KEEP:+--keep-failures "$CRASH_KEEP"} \
		-- "$LUKSIPC" convert -d '{dev}' --state '{state}' "$@" | tee enum.log
	grep -q '^crash states: [0-9]* run' enum.log || fail "no summary from enumerate.py"
	sed -n 's/^crash states: \([0-9]*\) run.*/\1/p' enum.log >count
	[ "$(cat count)" -ge "$min" ] || fail "only $(cat count) crash states"
}

# Many small steps: a 6M + 12K image, LUKS2 with a 2M header, 32K steps
# (129 steps, about 530 traced operations).
t_luks2() {
	crash_enum luks2 $((6 * MiB + 3 * 4096)) $((2 * MiB)) $((32 * 1024)) 512 \
		"${CRASH_MIN_STATES:-2000}" 1
}
# LUKS1, and LUKS2 with 4096-byte sectors: fewer states each.
t_luks1() {
	crash_enum luks1 $((6 * MiB + 5 * 512)) $((2 * MiB)) $((128 * 1024)) 512 150 0.3
}
t_luks2_4096() {
	crash_enum luks2 $((8 * MiB + 4096)) $((4 * MiB)) $((256 * 1024)) 4096 150 0.3
}

run_test "crash states, LUKS2 512, 128K steps (>= ${CRASH_MIN_STATES:-2000} states)" t_luks2
run_test "crash states, LUKS1, 128K steps" t_luks1
run_test "crash states, LUKS2 4096-byte sectors, 256K steps" t_luks2_4096
test_done
