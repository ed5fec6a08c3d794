#!/bin/sh
# A stale copy of the state store (taken mid-run, before the run was
# resumed to completion) is refused (exit 3) and the device is untouched.
# After completion, the same command is a no-op that says "already converted".
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

N=$((10 * MiB + 5 * 4096))
H=$((2 * MiB))

c1() {
	conv -d dev.img --state "$1" --key-file key --type luks1 --step-size $((256 * 1024))
}

stale_after() {
	need_luksipc
	small_fixture $N $H
	interrupt_run
	cp st stale
	run_rc 0 c1 st
	verify_plain dev.img key orig.img $((N - H))
	dsum=$(sha dev.img)
	ssum=$(sha stale)
	run_rc 3 c1 stale
	assert_one_error_line "$T/err"
	assert_eq "$(sha dev.img)" "$dsum" "a stale state changed the device"
	assert_eq "$(sha stale)" "$ssum" "the stale state was rewritten"
	verify_plain dev.img key orig.img $((N - H))
}

interrupt_fault() {
	LUKSIPC_TEST_FAULT=write:9:EIO run_rc 5 c1 st
}

interrupt_term() {
	LUKSIPC_TEST_DELAY_MS=40 conv_bg -d dev.img --state st --key-file key --type luks1 \
		--step-size $((256 * 1024))
	pid=$BG_PID
	wait_state_progress st || {
		kill -9 $pid
		fail "no progress recorded in the state"
	}
	kill -TERM $pid
	set +e
	wait $pid
	rc=$?
	set -e
	assert_eq $rc 6 "exit status after SIGTERM"
}

t_stale_fault() {
	interrupt_run() { interrupt_fault; }
	stale_after
}

t_stale_term() {
	interrupt_run() { interrupt_term; }
	stale_after
}

# A copy taken before anything moved (only the header on the state store).
t_stale_early() {
	interrupt_run() { LUKSIPC_TEST_FAULT=write:1:EIO run_rc 5 c1 st; }
	stale_after
}

t_rerun_after_completion() {
	need_luksipc
	small_fixture $N $H
	run_rc 0 c1 st
	dsum=$(sha dev.img)
	ssum=$(sha st)
	run_rc 0 c1 st
	cat "$T/out" "$T/err" >all
	assert_grep "already converted" all
	assert_eq "$(sha dev.img)" "$dsum" "rerun changed the device"
	assert_eq "$(sha st)" "$ssum" "rerun changed the state store"
	# also with another key: still a no-op, not a key error
	random_key other
	run_rc 0 conv -d dev.img --state st --key-file other --type luks1 --step-size $((256 * 1024))
	assert_eq "$(sha dev.img)" "$dsum" "rerun with another key changed the device"
	verify_plain dev.img key orig.img $((N - H))
}

# The finished state copied to another, fresh device must not convert it
# as if it were done, nor touch it.
t_done_state_other_device() {
	need_luksipc
	small_fixture $N $H
	run_rc 0 c1 st
	fx_make ext4 other.img $N $H
	osum=$(sha other.img)
	set +e
	conv -d other.img --state st --key-file key --type luks1 --step-size $((256 * 1024)) >out 2>err
	rc=$?
	set -e
	cat out err
	assert_eq "$rc" 3 "a finished state used on another device"
	assert_eq "$(sha other.img)" "$osum" "the other device changed"
}

run_test "stale state copied at an I/O error: refused (3), device unchanged" t_stale_fault
run_test "stale state copied at SIGTERM: refused (3), device unchanged" t_stale_term
run_test "stale state copied before any data moved: refused (3)" t_stale_early
run_test "rerun after completion: exit 0, 'already converted', nothing written" t_rerun_after_completion
run_test "finished state on another device: refused (3)" t_done_state_other_device
test_done
