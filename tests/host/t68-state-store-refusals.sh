#!/bin/sh
# A bad, foreign, damaged, busy or missing-directory state store is a
# refusal (exit 3) whose one error line names what is wrong, with the device
# unchanged; exit 5 stays for I/O errors during a conversion that a rerun
# resumes.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

N=$((10 * MiB + 5 * 4096))
H=$((2 * MiB))

c1() {
	conv -d dev.img --state "$1" --key-file "${2:-key}" --type luks1 --step-size $((256 * 1024))
}

# refused3 PATTERN CMD...: CMD exits 3 with one error line matching PATTERN,
# never "Input/output error", and the device unchanged.
refused3() {
	pat=$1
	shift
	dsum=$(sha dev.img)
	run_rc 3 "$@"
	assert_one_error_line "$T/err"
	assert_grep "$pat" "$T/err"
	assert_no_grep "Input/output error" "$T/err"
	assert_eq "$(sha dev.img)" "$dsum" "a refused run changed the device"
}

t_missing_dir() {
	need_luksipc
	small_fixture $N $H
	refused3 "cannot create state file 'nodir/st': directory 'nodir' does not exist" c1 nodir/st
	[ ! -e nodir ] || fail "the directory was created"
}

# Two runs that start together: the second to create the state file finds
# it made by the first. The first run's key file is a FIFO, so that it
# waits after its checks and before it creates the store.
t_create_race() {
	need_luksipc
	small_fixture $N $H
	mkfifo kf
	dsum=$(sha dev.img)
	c1 st kf >a.out 2>&1 &
	pid=$!
	sleep 0.5
	: >st
	cat key >kf
	set +e
	wait $pid
	rc=$?
	set -e
	cat a.out
	assert_eq "$rc" 3 "exit status of the run that lost the race"
	assert_one_error_line a.out
	assert_grep "cannot create state file 'st': File exists; another luksipc run" a.out
	assert_eq "$(sha dev.img)" "$dsum" "the refused run changed the device"
}

# --state naming the device being converted (the same file, a symlink or a
# hard link to it): refused as such, not as "locked by" this very run.
t_state_is_device() {
	need_luksipc
	small_fixture $N $H
	ln -s dev.img sym
	ln dev.img hard
	for s in dev.img sym hard; do
		refused3 "state store '$s' is the device being converted \('dev\.img'\)" c1 "$s" key --force-state
		assert_no_grep "locked by pid" "$T/err"
	done
}

# A state with its records, truncated inside its header image or journal:
# refused as truncated, not as an I/O error. (Shorter than its records, it is
# a prepared state: t62-state-corruption.sh covers those.)
t_truncated() {
	need_luksipc
	small_fixture $N $H
	LUKSIPC_TEST_FAULT=write:9:EIO run_rc 5 c1 st
	for len in $((MiB + 4096)) $((MiB + MiB / 2)) $(($(fsize st) - 1)); do
		cp st st.t
		truncate -s "$len" st.t
		refused3 "state store 'st.t' is truncated: it has $len bytes" c1 st.t
	done
	run_rc 0 c1 st
	verify_plain dev.img key orig.img $((N - H))
}

# No valid superblock, but a record, the header image or a superblock of
# another format left: refused, and --force-state (when the admin knows the
# device was never written) starts afresh over it.
t_remnants() {
	need_luksipc
	small_fixture $N $H
	LUKSIPC_TEST_FAULT=write:9:EIO run_rc 5 c1 st
	cp st st.int
	size=$(fsize st)
	tail=$((size / 4096 * 4096 - 4096))
	# superblocks zeroed at both ends: the records and the header image remain
	dd if=/dev/zero of=st bs=4096 count=2 conv=notrunc 2>/dev/null
	dd if=/dev/zero of=st bs=4096 seek=$((tail / 4096)) count=1 conv=notrunc 2>/dev/null
	refused3 "holds a progress record .* but no valid superblock.*restore the state store" c1 st
	# records and admin notes zeroed too: the header image is still found
	dd if=/dev/zero of=st bs=4096 count=32 conv=notrunc 2>/dev/null
	refused3 "holds a LUKS header image at byte 1048576 but no valid superblock" c1 st
	# a superblock of another format version
	cp st.int st
	printf '\001' | dd of=st bs=1 seek=8 conv=notrunc 2>/dev/null
	printf '\001' | dd of=st bs=1 seek=4104 conv=notrunc 2>/dev/null
	printf '\001' | dd of=st bs=1 seek=$((tail + 8)) conv=notrunc 2>/dev/null
	refused3 "holds a superblock \(copy A\) marked state format 1 \(this luksipc reads formats [0-9]+ to [0-9]+\) but no valid superblock, so" c1 st
	# a prepared state (the device never written) with its superblocks
	# lost: --force-state starts afresh
	cp orig.img dev.img
	rm -f st
	LUKSIPC_TEST_FAULT=state-write:6:EIO run_rc 5 c1 st
	assert_eq "$(sha dev.img)" "$(sha orig.img)" "the device before the first record"
	dd if=/dev/zero of=st bs=4096 count=2 conv=notrunc 2>/dev/null
	dd if=/dev/zero of=st bs=4096 seek=$((($(fsize st) / 4096) - 1)) count=1 conv=notrunc 2>/dev/null
	refused3 "holds .* but no valid superblock" c1 st
	run_rc 0 conv -d dev.img --state st --key-file key --type luks1 --step-size $((256 * 1024)) --force-state
	verify_plain dev.img key orig.img $((N - H))
}

# A cut while the store was made can leave its superblocks durable but not
# its new size (the crash tier's states): that is no truncation, and the
# same command prepares the conversion again.
t_cut_while_made() {
	need_luksipc
	small_fixture $N $H
	LUKSIPC_TEST_FAULT=state-write:4:EIO run_rc 5 c1 st
	for len in 8192 8704 16384 $((MiB + 4096)); do
		cp orig.img dev.img
		cp st st.c
		truncate -s "$len" st.c
		run_rc 0 c1 st.c
		verify_plain dev.img key orig.img $((N - H))
	done
}

run_test "state file in a missing directory: refused (3), names it" t_missing_dir
run_test "two runs create the same state file: the second is refused (3)" t_create_race
run_test "--state names the device itself: refused (3) as such" t_state_is_device
run_test "state truncated inside its header image: refused (3) as truncated, not EIO" t_truncated
run_test "records or header image without a superblock, other format: refused (3); --force-state" t_remnants
run_test "store cut short while it was made: prepared again, exit 0" t_cut_while_made
test_done
