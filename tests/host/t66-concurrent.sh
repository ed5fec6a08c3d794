#!/bin/sh
# Two runs on one device or one state store: the second is refused at once
# (exit 3, one line naming what is locked and by which pid), writes nothing,
# and the first completes and decrypts to the original bytes. `status`
# takes no lock: it answers while a conversion runs and does not stop it.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

N=$((24 * MiB + 3 * 4096))
H=$((2 * MiB))
S=$((256 * 1024))

c2() {
	dev=$1 st=$2
	shift 2
	conv -d "$dev" --state "$st" --key-file key --type luks2 --header-size $H \
		--step-size $S --sector-size 512 "$@"
}

# first_bg DEV STATE: the first run, slowed down (100 ms per step, about 9 s
# in all), in the background as BG_PID; returns once it has committed a step.
first_bg() {
	LUKSIPC_TEST_DELAY_MS=100 conv_bg -d "$1" --state "$2" --key-file key --type luks2 \
		--header-size $H --step-size $S --sector-size 512
	FIRST=$BG_PID
	test_cleanup "kill $FIRST 2>/dev/null || :"
	wait_state_progress "$2" || {
		cat "$T/bg.log" >&2
		fail "the first run made no progress"
	}
}

# second_refused CMD...: CMD exits 3 within 3 s with one error line that
# says what is locked and the first run's pid.
second_refused() {
	t0=$(date +%s)
	run_rc 3 "$@"
	t1=$(date +%s)
	cat "$T/err"
	[ $((t1 - t0)) -le 3 ] || fail "the second run took $((t1 - t0)) s to be refused"
	assert_one_error_line "$T/err"
	assert_grep "pid $FIRST\b" "$T/err"
	kill -0 "$FIRST" 2>/dev/null || fail "the first run ended before the second was refused; slow it down"
}

# first_completes LEN: the first run exits 0 and dev.img decrypts right.
first_completes() {
	set +e
	wait "$FIRST"
	rc=$?
	set -e
	[ "$rc" -eq 0 ] || {
		cat "$T/bg.log" >&2
		fail "the first run exited $rc"
	}
	verify_plain dev.img key orig.img $((N - H))
}

# Both runs resume the same interrupted conversion (same image, same state).
t_same_device_same_state() {
	need_luksipc
	small_fixture $N $H
	LUKSIPC_TEST_FAULT=write:3:EIO run_rc 5 c2 dev.img st
	first_bg dev.img st
	second_refused c2 dev.img st
	assert_grep "'dev\.img'" "$T/err"
	first_completes
}

# The same image with two state stores: the second run must not start a
# conversion of its own on top of the first.
t_same_device_two_states() {
	need_luksipc
	small_fixture $N $H
	first_bg dev.img st1
	second_refused c2 dev.img st2
	assert_grep "device 'dev\.img'" "$T/err"
	[ ! -e st2 ] || fail "the refused run created its state store st2"
	first_completes
}

# Two images, one state store: the second run must not touch the store
# (nor its own device) while the first records progress in it.
t_two_devices_same_state() {
	need_luksipc
	small_fixture $N $H
	fx_make ext4 other.img $N $H
	cp other.img other.orig
	first_bg dev.img st
	second_refused c2 other.img st
	assert_grep "state store 'st'" "$T/err"
	assert_eq "$(sha other.img)" "$(sha other.orig)" "other.img after the refused run"
	first_completes
}

# status reads without a lock while the conversion runs, and does not stop it.
t_status_during_run() {
	need_luksipc
	small_fixture $N $H
	first_bg dev.img st
	t0=$(date +%s)
	run_rc 0 lx status --state st -d dev.img
	assert_grep '^phase: converting$' "$T/out"
	[ $(($(date +%s) - t0)) -le 2 ] || fail "status took too long"
	kill -0 "$FIRST" 2>/dev/null || fail "the run ended before status was read"
	first_completes
}

# need_loop: a loop device can be attached here, else skip with the reason.
need_loop() {
	need_cmd losetup
	[ "$(id -u)" -eq 0 ] || skip "loop devices need root"
	truncate -s 1M probe.img
	l=$(losetup -f --show probe.img 2>"$T/losetup.err") || skip "losetup cannot attach a loop device here: $(cat "$T/losetup.err")"
	losetup -d "$l"
}

# attach FILE: a loop device backed by FILE, detached after the case.
attach() {
	LOOP=$(losetup -f --show "$1") || fail "losetup $1"
	test_cleanup "losetup -d $LOOP"
}

# --state naming the file behind the loop device being converted.
t_state_is_loop_backing() {
	need_luksipc
	need_loop
	small_fixture $N $H
	fx_make ext4 other.img $N $H
	cp other.img other.orig
	attach dev.img
	first_bg "$LOOP" st
	# --force-state: the ext4 signature on dev.img must not be what refuses it
	run_rc 3 c2 other.img dev.img --force-state
	cat "$T/err"
	assert_one_error_line "$T/err"
	# the run on the loop device holds the file's lock; attached to a loop device is also refused
	assert_grep "state store 'dev\.img' is (locked by pid $FIRST\b|in use: attached to $LOOP)" "$T/err"
	assert_eq "$(sha other.img)" "$(sha other.orig)" "other.img after the refused run"
	# the loop device itself, with another state: O_EXCL refuses, the lock names the run
	second_refused c2 "$LOOP" st2
	[ ! -e st2 ] || fail "the refused run created its state store st2"
	first_completes
}

# -d naming the file behind a loop device: refused as a device in use.
t_device_is_loop_backing() {
	need_luksipc
	need_loop
	small_fixture $N $H
	attach dev.img
	run_rc 3 c2 dev.img st
	cat "$T/err"
	assert_one_error_line "$T/err"
	assert_grep "$LOOP" "$T/err"
	[ ! -e st ] || fail "the refused run created its state store"
	assert_eq "$(sha dev.img)" "$(sha orig.img)" "dev.img after the refused run"
}

# A run on the image file, then one on a loop device attached to it later.
t_loop_of_file_in_use() {
	need_luksipc
	need_loop
	small_fixture $N $H
	first_bg dev.img st
	attach dev.img
	second_refused c2 "$LOOP" st2
	assert_grep "loop device of '.*dev\.img'" "$T/err"
	[ ! -e st2 ] || fail "the refused run created its state store st2"
	first_completes
}

run_test "two runs resume one conversion: the second exits 3 at once" t_same_device_same_state
run_test "one device, two state stores: the second exits 3, writes nothing" t_same_device_two_states
run_test "two devices, one state store: the second exits 3, writes nothing" t_two_devices_same_state
run_test "status answers during a run and does not stop it" t_status_during_run
run_test "--state is the file behind the loop device being converted: exit 3" t_state_is_loop_backing
run_test "-d is the file behind an attached loop device: exit 3" t_device_is_loop_backing
run_test "-d is a loop device of the image file being converted: exit 3" t_loop_of_file_in_use
test_done
