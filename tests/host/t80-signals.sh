#!/bin/sh
# SIGTERM, SIGINT and SIGHUP during a slowed-down run (LUKSIPC_TEST_DELAY_MS)
# end it with exit 6 after the current step; the same command resumes to
# a correct result.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

N=$((16 * MiB + 3 * 4096 + 512))
H=$((4 * MiB))

c2() {
	conv -d dev.img --state st --key-file key --header-size $H --step-size $((128 * 1024))
}

signal_case() {
	need_luksipc
	small_fixture $N $H
	# background jobs of a non-interactive shell ignore SIGINT: restore it
	LUKSIPC_TEST_DELAY_MS=30 env --default-signal=INT,HUP,TERM \
		"$LUKSIPC" convert -d dev.img --state st --key-file key --header-size $H \
		--step-size $((128 * 1024)) --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
		--batch >run.log 2>&1 &
	pid=$!
	wait_state_progress st || {
		kill -9 $pid
		fail "no progress recorded"
	}
	sleep 0.2
	kill "-$1" $pid
	set +e
	wait $pid
	rc=$?
	set -e
	cat run.log
	assert_eq $rc 6 "exit status after SIG$1"
	d=$(status_field st "done")
	if [ "$d" -le 0 ] || [ "$d" -ge $((N - H)) ]; then
		fail "done is $d after SIG$1"
	fi
	run_rc 0 c2
	verify_plain dev.img key orig.img $((N - H))
}

t_term() { signal_case TERM; }
t_int() { signal_case INT; }
t_hup() { signal_case HUP; }

run_test "SIGTERM: exit 6, then resume" t_term
run_test "SIGINT: exit 6, then resume" t_int
run_test "SIGHUP: exit 6, then resume" t_hup
test_done
