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

# --- a prepared state (header image, no progress record), replayed later ---

# record1_write TRACE: the number (1-based) of the state-store write that
# commits the first progress record (512 bytes at 8 KiB or 12 KiB).
record1_write() {
	"$PY" - "$1" <<'PYEOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
p = n = 0
while p < len(b):
    op, t, z, l, o = struct.unpack_from("<BBHIQ", b, p)
    p += 16 + (l if op == ord("W") else 0)
    if op == ord("W") and t == 1:
        n += 1
        if o in (8192, 12288) and l == 512:
            print(n)
            break
PYEOF
}

# prepared_replay CMD...: CMD (a conversion of dev.img with state $STATE)
# is cut by an I/O error on the write of its first record, which leaves a
# prepared state and the device untouched; a copy of that state is kept,
# the conversion is finished with the original, and the copy, replayed, must
# be refused (3) with the device and the copy unchanged. The write's number
# comes from a traced run on a copy of the device.
prepared_replay() {
	cp dev.img pristine.img
	LUKSIPC_TEST_TRACE=$T/trace run_rc 0 "$@"
	wn=$(record1_write trace)
	[ -n "$wn" ] || fail "no first record in the trace"
	echo "the first record is state write $wn"
	cp pristine.img dev.img
	rm -f st trace
	LUKSIPC_TEST_FAULT=state-write:$wn:EIO run_rc 5 "$@"
	assert_eq "$(status_field st phase)" new "phase after the fault"
	assert_eq "$(sha dev.img)" "$(sha pristine.img)" "the device before the first record"
	cp st st.real
	mv st stale
	mv st.real st
	run_rc 0 "$@"
	dsum=$(sha dev.img)
	ssum=$(sha stale)
	mv st st.done
	mv stale st
	run_rc 3 "$@"
	assert_one_error_line "$T/err"
	assert_eq "$(sha dev.img)" "$dsum" "the stale prepared state changed the device"
	assert_eq "$(sha st)" "$ssum" "the stale prepared state was rewritten"
}

t_prepared_replay_plain() {
	need_luksipc
	small_fixture $N $H
	prepared_replay c1 st
	verify_plain dev.img key orig.img $((N - H))
}

# A LUKS1 source (2 MiB header) made by luksipc from ext4 ending before N - HNEW.
luks1_src() {
	fx_make ext4 dev.img "$1" "$2"
	cp dev.img orig.img
	random_key old
	random_key key
	run_rc 0 conv -d dev.img --state st.src --key-file old --type luks1
	rm -f st.src
}

# LUKS1 2M -> LUKS1 2M: the journal geometry.
t_prepared_replay_journal() {
	need_luksipc
	sz=$((24 * MiB + 3 * 4096))
	luks1_src $sz $((2 * MiB))
	prepared_replay conv --reencrypt -d dev.img --state st --old-key-file old --key-file key \
		--type luks1 --step-size $((1 * MiB))
	verify_plain dev.img key orig.img $((sz - 4 * MiB))
}

# LUKS1 2M -> LUKS2 8M: the shift geometry (6 MiB shift, 2 MiB steps).
t_prepared_replay_shift() {
	need_luksipc
	sz=$((30 * MiB + 5 * 4096))
	luks1_src $sz $((8 * MiB))
	prepared_replay conv --reencrypt -d dev.img --state st --old-key-file old --key-file key \
		--header-size $((8 * MiB)) --step-size $((2 * MiB))
	verify_plain dev.img key orig.img $((sz - 8 * MiB))
}

run_test "stale state copied at an I/O error: refused (3), device unchanged" t_stale_fault
run_test "stale state copied at SIGTERM: refused (3), device unchanged" t_stale_term
run_test "stale state copied before any data moved: refused (3)" t_stale_early
run_test "rerun after completion: exit 0, 'already converted', nothing written" t_rerun_after_completion
run_test "finished state on another device: refused (3)" t_done_state_other_device
run_test "prepared state replayed after completion (plaintext): refused (3), device unchanged" t_prepared_replay_plain
run_test "prepared state replayed after completion (--reencrypt, journal): refused (3)" t_prepared_replay_journal
run_test "prepared state replayed after completion (--reencrypt, shift): refused (3)" t_prepared_replay_shift
test_done
