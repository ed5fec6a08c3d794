#!/bin/sh
# I/O error injection (LUKSIPC_TEST_FAULT): EIO and ENOSPC on the Nth read,
# write or flush of the device (and of the state store), for every N until
# the run no longer reaches the fault. Each faulted run must exit 5 with one
# error line; the same command without the fault must then exit 0 with a
# correct result.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

N_DEV=$((6 * MiB + 5 * 4096 + 512))
H_DEV=$((2 * MiB))

c1() {
	conv -d dev.img --state st --key-file key --type luks1 --step-size $((512 * 1024))
}

# fault_once SPEC: 0 when the fault hit (exit 5, then resumed correctly),
# 10 when the run never reached it (and was correct anyway).
fault_once() {
	cp orig.img dev.img
	rm -f st
	set +e
	LUKSIPC_TEST_FAULT=$1 c1 >out 2>err
	rc=$?
	set -e
	if [ "$rc" -eq 0 ]; then
		verify_plain dev.img key orig.img $((N_DEV - H_DEV)) >/dev/null
		return 10
	fi
	[ "$rc" -eq 5 ] || {
		sed 's/^/  | /' err >&2
		fail "LUKSIPC_TEST_FAULT=$1: exit $rc, expected 5"
	}
	assert_one_error_line err
	echo "$1: exit 5: $(grep error err)"
	run_rc 0 c1
	verify_plain dev.img key orig.img $((N_DEV - H_DEV)) >/dev/null
	return 0
}

# fault_sweep OP ERRNO: N = 1, 2, ... until the fault is not reached.
fault_sweep() {
	need_luksipc
	small_fixture $N_DEV $H_DEV
	hit=0
	i=1
	while :; do
		r=0
		fault_once "$1:$i:$2" || r=$?
		case "$r" in
		0) hit=$((hit + 1)) ;;
		10) break ;;
		*) exit "$r" ;;
		esac
		[ "$i" -lt 400 ] || fail "the fault still hits at N=$i"
		# every N early on, then sparser
		if [ "$i" -lt 12 ]; then i=$((i + 1)); else i=$((i + i / 4)); fi
	done
	echo "$1 $2: $hit faulted runs resumed correctly; not reached at N=$i"
	[ "$hit" -gt 0 ] || fail "$1:1:$2 did not make the run fail (it exited 0)"
}

t_read_eio() { fault_sweep read EIO; }
t_write_eio() { fault_sweep write EIO; }
t_flush_eio() { fault_sweep flush EIO; }
t_write_enospc() { fault_sweep write ENOSPC; }
t_read_enospc() { fault_sweep read ENOSPC; }
t_flush_enospc() { fault_sweep flush ENOSPC; }
t_state_write_eio() { fault_sweep state-write EIO; }
t_state_flush_eio() { fault_sweep state-flush EIO; }
t_state_write_enospc() { fault_sweep state-write ENOSPC; }

# Faults on resume itself: a first run interrupted, then the resume faulted
# again (device and state both), then a clean resume.
t_double_fault() {
	need_luksipc
	small_fixture $N_DEV $H_DEV
	LUKSIPC_TEST_FAULT=write:4:EIO run_rc 5 c1
	LUKSIPC_TEST_FAULT=state-read:2:EIO,flush:3:EIO run_rc 5 c1
	assert_one_error_line "$T/err"
	LUKSIPC_TEST_FAULT=write:2:ENOSPC run_rc 5 c1
	run_rc 0 c1
	verify_plain dev.img key orig.img $((N_DEV - H_DEV))
}

run_test "EIO on the Nth device read" t_read_eio
run_test "EIO on the Nth device write" t_write_eio
run_test "EIO on the Nth device flush" t_flush_eio
run_test "ENOSPC on the Nth device write" t_write_enospc
run_test "ENOSPC on the Nth device read" t_read_enospc
run_test "ENOSPC on the Nth device flush" t_flush_enospc
run_test "EIO on the Nth state write" t_state_write_eio
run_test "EIO on the Nth state flush" t_state_flush_eio
run_test "ENOSPC on the Nth state write" t_state_write_enospc
run_test "faults on resume, then a clean resume" t_double_fault
test_done
