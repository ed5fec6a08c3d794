#!/bin/sh
# kill -9 at random moments (startup, PBKDF, mid-step, between steps), at
# least 20 times during one conversion, then the same command completes it;
# the result decrypts to the original bytes.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

kill9_loop() {
	need_luksipc
	type=$1 n=$2 h=$3 step=$4 ss=$5 want=$6
	small_fixture "$n" "$h"
	kills=0
	runs=0
	while [ "$kills" -lt "$want" ]; do
		runs=$((runs + 1))
		[ "$runs" -le $((want * 3)) ] || fail "only $kills kills in $runs runs"
		LUKSIPC_TEST_DELAY_MS=15 conv_bg -d dev.img --state st --key-file key --type "$type" \
			--header-size "$h" --step-size "$step" --sector-size "$ss"
		pid=$BG_PID
		# mostly mid-conversion, sometimes right at startup
		sleep "0.$(printf '%03d' "$(rand_between 5 300)")"
		kill -9 "$pid" 2>/dev/null || true
		set +e
		wait "$pid"
		rc=$?
		set -e
		case "$rc" in
		137) kills=$((kills + 1)) ;;
		0) fail "run $runs completed before $want kills; make the conversion slower" ;;
		*)
			cat "$T/bg.log" >&2
			fail "run $runs exited $rc before it was killed"
			;;
		esac
	done
	echo "$kills kills in $runs runs"
	d=$(status_field st "done")
	echo "done before the final run: $d of $((n - h))"
	if [ -z "$d" ] || [ "$d" -le 0 ] || [ "$d" -ge $((n - h)) ]; then
		fail "after $kills kills done is '$d': the kills did not land mid-conversion"
	fi
	run_rc 0 conv -d dev.img --state st --key-file key --type "$type" \
		--header-size "$h" --step-size "$step" --sector-size "$ss"
	verify_plain dev.img key orig.img $((n - h))
	assert_eq "$(status_field st phase)" "done" "phase after completion"
}

t_kill9_luks2() { kill9_loop luks2 $((40 * MiB + 3 * 4096 + 512)) $((4 * MiB)) $((128 * 1024)) 512 20; }
t_kill9_luks1() { kill9_loop luks1 $((24 * MiB + 4096)) $((2 * MiB)) $((64 * 1024)) 512 20; }

run_test "kill -9 >= 20 times during a LUKS2 conversion, then complete" t_kill9_luks2
run_test "kill -9 >= 20 times during a LUKS1 conversion, then complete" t_kill9_luks1
test_done
