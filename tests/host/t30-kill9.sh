#!/bin/sh
# kill -9 at random moments (startup, PBKDF, mid-step, between steps), at
# least 20 times during one conversion, then the same command completes it;
# the result decrypts to the original bytes.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

# kill9_loop TYPE N H STEP SECTOR KILLS [--used-only]: with --used-only, an
# ext4 whose files are spread over it (tests/lib/usedfs.py), the result
# compared over the used blocks dumpe2fs lists, and scanned for live plaintext.
kill9_loop() {
	need_luksipc
	type=$1 n=$2 h=$3 step=$4 ss=$5 want=$6 used=${7:-}
	if [ -n "$used" ]; then
		truncate -s "$n" dev.img
		mkfs.ext4 -q -F dev.img "$(((n - h) / 1024))k" >/dev/null
		"$PY" "$TESTS_ROOT/tests/lib/usedfs.py" populate dev.img 99 0.3 tree
		"$PY" "$TESTS_ROOT/tests/lib/usedfs.py" ranges dev.img >used.txt
		cp dev.img orig.img
		random_key key
	else
		small_fixture "$n" "$h"
	fi
	kills=0
	runs=0
	while [ "$kills" -lt "$want" ]; do
		runs=$((runs + 1))
		[ "$runs" -le $((want * 3)) ] || fail "only $kills kills in $runs runs"
		# shellcheck disable=SC2086 # $used: the option or nothing
		LUKSIPC_TEST_DELAY_MS=15 conv_bg -d dev.img --state st --key-file key --type "$type" \
			--header-size "$h" --step-size "$step" --sector-size "$ss" $used
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
	# shellcheck disable=SC2086
	run_rc 0 conv -d dev.img --state st --key-file key --type "$type" \
		--header-size "$h" --step-size "$step" --sector-size "$ss" $used
	if [ -n "$used" ]; then
		"$PY" "$LUKSDECRYPT" dev.img --key-file key --length $((n - h)) --out plain.img
		"$PY" "$TESTS_ROOT/tests/lib/usedfs.py" compare plain.img orig.img used.txt ||
			fail "a used block differs after decryption"
		e2fsck -fn plain.img || fail "e2fsck -fn finds errors in the decrypted filesystem"
		"$PY" "$TESTS_ROOT/tests/lib/usedfs.py" scan dev.img tree || fail "live plaintext left on the device"
	else
		verify_plain dev.img key orig.img $((n - h))
	fi
	assert_eq "$(status_field st phase)" "done" "phase after completion"
}

t_kill9_luks2() { kill9_loop luks2 $((40 * MiB + 3 * 4096 + 512)) $((4 * MiB)) $((128 * 1024)) 512 20; }
t_kill9_luks1() { kill9_loop luks1 $((24 * MiB + 4096)) $((2 * MiB)) $((64 * 1024)) 512 20; }

run_test "kill -9 >= 20 times during a LUKS2 conversion, then complete" t_kill9_luks2
run_test "kill -9 >= 20 times during a LUKS1 conversion, then complete" t_kill9_luks1
t_kill9_used() { kill9_loop luks2 $((40 * MiB + 3 * 4096)) $((4 * MiB)) $((128 * 1024)) 512 20 --used-only; }
run_test "kill -9 >= 20 times during a --used-only conversion, then complete" t_kill9_used
test_done
