#!/bin/sh
# The interactive path, on a pseudo-terminal (tests/lib/ttyrun.py answers
# the prompts): without --batch the conversion asks for YES, a new
# conversion asks for the passphrase twice, a resume asks once. A refused
# confirmation, passphrases that differ and a wrong passphrase on resume
# write nothing. The typed passphrase (no newline) is the key cryptsetup
# accepts.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

N=$((16 * MiB + 3 * 4096))
H=$((4 * MiB))
TTYRUN=$TESTS_ROOT/tests/lib/ttyrun.py
ARGS="--header-size $H --step-size 256K --pbkdf pbkdf2 --pbkdf-force-iterations 1000"

# tty PROMPT ANSWER ... -- ARGS: luksipc convert on a terminal, answering.
tty() {
	"$PY" "$TTYRUN" "$@" >"$T/tty.log" 2>&1
}

t_prompts() {
	need_luksipc
	small_fixture $N $H
	# shellcheck disable=SC2086
	set -- "$LUKSIPC" convert -d "$T/dev.img" --state "$T/st" $ARGS
	# no YES: refused, nothing written, no state
	before=$(sha dev.img)
	set +e
	tty "Type YES" "no" -- "$@"
	rc=$?
	set -e
	cat "$T/tty.log"
	assert_eq "$rc" 3 "exit status without YES"
	assert_eq "$(sha dev.img)" "$before" "device hash after a refused confirmation"
	[ ! -e st ] || fail "a state store was created by a refused run"
	# passphrases that differ: key error, nothing written
	set +e
	tty "Type YES" "YES" "Enter passphrase" "secret one" "Verify passphrase" "secret two" -- "$@"
	rc=$?
	set -e
	cat "$T/tty.log"
	assert_eq "$rc" 4 "exit status when the passphrases differ"
	assert_eq "$(sha dev.img)" "$before" "device hash after differing passphrases"
	assert_grep 'passphrases do not match' "$T/tty.log"
	# the real run, interrupted by an injected write error
	set +e
	LUKSIPC_TEST_FAULT=write:4:EIO tty "Type YES" "YES" "Enter passphrase" "correct horse" \
		"Verify passphrase" "correct horse" -- "$@"
	rc=$?
	set -e
	cat "$T/tty.log"
	assert_eq "$rc" 5 "exit status of the interrupted run"
	assert_no_grep 'correct horse' "$T/tty.log"
	# resume: one prompt; a wrong passphrase first changes nothing
	mid=$(sha dev.img)
	set +e
	tty "Enter passphrase" "wrong horse" -- "$@" --batch
	rc=$?
	set -e
	assert_eq "$rc" 4 "exit status for a wrong passphrase on resume"
	assert_eq "$(sha dev.img)" "$mid" "device hash after a wrong passphrase"
	tty "Enter passphrase" "correct horse" -- "$@" --batch || {
		cat "$T/tty.log"
		fail "the resume with the right passphrase failed"
	}
	cat "$T/tty.log"
	assert_no_grep 'Verify passphrase' "$T/tty.log"
	printf '%s' "correct horse" >key
	verify_plain dev.img key orig.img $((N - H))
}

run_test "confirmation and passphrase prompts on a terminal, resume asks once" t_prompts
test_done
