# shellcheck shell=sh
# Shell harness for the luksipc host tests, in the style of git's t/.
#
# A test file sources this, defines one function per test case and runs
# each with `run_test NAME FUNC`, then calls `test_done`. Each case runs in
# a subshell with `set -e` in its own scratch directory "$T" (removed
# afterwards unless KEEP_TMP=1). Cleanup commands registered with
# `test_cleanup CMD` run after the case, in reverse order, pass or fail.
# A case that calls `skip REASON` is counted as skipped, never as passed.
# `skip_unless_ci REASON` is for a path the tests normally exercise (a tool
# from tools/deps/tests.list, the binary): under CI=true it fails the case.
#
# Output, one line per case: `ok N - NAME`, `FAIL N - NAME` (followed by
# the tail of the case's log) or `SKIP N - NAME (REASON)`. test_done prints
# `# FILE: P passed, F failed, S skipped` and the machine-readable line
# `# counts P F S`, and exits 1 when a case failed.
#
# Environment: LUKSIPC (binary under test, default build/test/luksipc: the
# test build, with the LUKSIPC_TEST_* hooks), LUKSIPC_SHIPPED (the build
# that is installed, default build/luksipc; t95 checks it ignores the
# hooks), TMPDIR, KEEP_TMP=1, VERBOSE=1 (print every case's log),
# TEST_ONLY=pattern (run matching cases).

set -eu

TESTS_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LUKSIPC=${LUKSIPC:-$TESTS_ROOT/build/test/luksipc}
LUKSIPC_SHIPPED=${LUKSIPC_SHIPPED:-$TESTS_ROOT/build/luksipc}
PY=/usr/bin/python3
LUKSDECRYPT=$TESTS_ROOT/tests/lib/luksdecrypt.py
TEST_FILE=$(basename "$0" .sh)
# shellcheck disable=SC2034
MiB=1048576

test_count=0
test_passed=0
test_failed=0
test_skipped=0

# Scratch root: /dev/shm when it has room (small images), else $TMPDIR.
# Tests that need a real disk call `disk_workroot` instead.
shm_workroot() {
	if [ -d /dev/shm ] && [ -w /dev/shm ] &&
		[ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -gt 2097152 ]; then
		echo /dev/shm
	else
		echo "${TMPDIR:-/tmp}"
	fi
}
disk_workroot() {
	echo "${TMPDIR:-/tmp}"
}
TEST_WORKROOT=${TEST_WORKROOT:-$(shm_workroot)}

# skip REASON: end the current case as skipped.
skip() {
	printf '%s\n' "$*" >"$T/.skip"
	exit 77
}

# skip_unless_ci REASON: skip, except under CI=true, where the case fails:
# CI installs every dependency and builds the binary, so there the skip
# would only hide a path that did not run.
skip_unless_ci() {
	[ "${CI:-}" != true ] || fail "$* (under CI=true this is a failure, not a skip)"
	skip "$@"
}

# test_cleanup CMD...: run CMD (a shell string) after the current case.
test_cleanup() {
	printf '%s\n' "$*" >>"$T/.cleanup"
}

fail() {
	echo "FAILED: $*" >&2
	exit 1
}

run_test() {
	name=$1
	func=$2
	if [ -n "${TEST_ONLY:-}" ]; then
		case "$name" in
		*$TEST_ONLY*) ;;
		*) return 0 ;;
		esac
	fi
	test_count=$((test_count + 1))
	T=$(mktemp -d "$TEST_WORKROOT/luksipc-$TEST_FILE.XXXXXX")
	start=$(date +%s)
	set +e
	(
		set -e
		cd "$T"
		"$func"
	) >"$T/.log" 2>&1
	rc=$?
	set -e
	if [ -f "$T/.cleanup" ]; then
		tac "$T/.cleanup" >"$T/.cleanup.rev"
		while IFS= read -r c; do
			(cd "$T" && eval "$c") >>"$T/.log" 2>&1 || true
		done <"$T/.cleanup.rev"
	fi
	secs=$(($(date +%s) - start))
	if [ "$rc" -eq 0 ]; then
		test_passed=$((test_passed + 1))
		echo "ok $test_count - $name (${secs}s)"
		# counts a passing test reports (crash states; the corruption tally)
		grep -E '^(crash states|tally):' "$T/.log" | sed 's/^/#   /' || true
		[ -z "${VERBOSE:-}" ] || sed 's/^/#   /' "$T/.log"
	elif [ "$rc" -eq 77 ] && [ -f "$T/.skip" ]; then
		test_skipped=$((test_skipped + 1))
		echo "SKIP $test_count - $name ($(cat "$T/.skip"))"
	else
		test_failed=$((test_failed + 1))
		echo "FAIL $test_count - $name (exit $rc, ${secs}s)"
		if [ -n "${VERBOSE:-}" ]; then
			sed 's/^/#   /' "$T/.log"
		else
			tail -n 25 "$T/.log" | sed 's/^/#   /'
		fi
	fi
	if [ -n "${KEEP_TMP:-}" ]; then
		echo "#   kept $T"
	else
		rm -rf "$T"
	fi
}

test_done() {
	echo "# $TEST_FILE: $test_passed passed, $test_failed failed, $test_skipped skipped"
	echo "# counts $test_passed $test_failed $test_skipped"
	[ "$test_failed" -eq 0 ]
}

# --- helpers for use inside cases -------------------------------------

need_luksipc() {
	[ -x "$LUKSIPC" ] || skip_unless_ci "$LUKSIPC not built (run make build/test/luksipc)"
}

need_cmd() {
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip_unless_ci "$c not installed (make deps)"
	done
}

# payload_size N H: P for a fixture that leaves luksipc its in-progress
# marker (tests/lib/mkfs-fixtures.sh): the marker's offset, the device's
# last whole 4 KiB, minus H (docs/format.md, "The device-side marker").
payload_size() {
	echo $(($1 / 4096 * 4096 - 4096 - $2))
}

sha() {
	sha256sum "$1" | cut -d' ' -f1
}

fsize() {
	stat -c %s "$1"
}

assert_eq() {
	[ "$1" = "$2" ] || fail "${3:-values differ}: got '$1', expected '$2'"
}

assert_grep() {
	grep -Eq -- "$1" "$2" || {
		sed 's/^/  | /' "$2" >&2
		fail "'$2' does not match /$1/"
	}
}

assert_no_grep() {
	if grep -Eq -- "$1" "$2"; then
		sed 's/^/  | /' "$2" >&2
		fail "'$2' matches /$1/"
	fi
}

# run_rc WANT CMD...: run CMD with stdout in $T/out and stderr in $T/err and
# fail unless it exits WANT.
run_rc() {
	want=$1
	shift
	echo "+ $* (expect exit $want)"
	set +e
	"$@" >"$T/out" 2>"$T/err"
	got=$?
	set -e
	if [ "$got" != "$want" ]; then
		sed 's/^/  stdout| /' "$T/out" >&2
		sed 's/^/  stderr| /' "$T/err" >&2
		fail "'$*' exited $got, expected $want"
	fi
}

# lx CMD...: the binary under test.
lx() {
	"$LUKSIPC" "$@"
}

# conv ARGS...: `luksipc convert` with fast key-slot settings and no prompt,
# as every test conversion runs.
CONV_FAST="--pbkdf pbkdf2 --pbkdf-force-iterations 1000 --batch"
conv() {
	# shellcheck disable=SC2086
	"$LUKSIPC" convert "$@" $CONV_FAST
}

# conv_bg ARGS...: conv in the background, the binary itself (not a
# subshell) as BG_PID, so that signals reach it. Output in $T/bg.log.
conv_bg() {
	# shellcheck disable=SC2086
	"$LUKSIPC" convert "$@" $CONV_FAST >>"$T/bg.log" 2>&1 &
	# shellcheck disable=SC2034
	BG_PID=$!
}

# kill_loop N MAX_MS STATE convert-args...: N runs of `luksipc convert ARGS`,
# each killed with -9 after 5 to MAX_MS ms; every run must die by the kill
# (a run that completes or fails first fails the case: the caller makes the
# work, with LUKSIPC_TEST_DELAY_MS, longer than N * MAX_MS). Then STATE must
# record a conversion under way: some done, not all.
kill_loop() {
	_kn=$1 _kmax=$2 _kst=$3
	shift 3
	_kills=0
	while [ "$_kills" -lt "$_kn" ]; do
		conv_bg "$@"
		sleep "$(awk -v ms="$(rand_between 5 "$_kmax")" 'BEGIN { printf "%.3f", ms / 1000 }')"
		kill -9 "$BG_PID" 2>/dev/null || true
		_krc=0
		wait "$BG_PID" || _krc=$?
		case "$_krc" in
		137) _kills=$((_kills + 1)) ;;
		0) fail "run $((_kills + 1)) completed before $_kn kills; make the conversion slower" ;;
		*) cat "$T/bg.log" >&2; fail "run $((_kills + 1)) exited $_krc before it was killed" ;;
		esac
	done
	_kd=$(status_field "$_kst" "done")
	_kp=$(status_field "$_kst" data-size)
	echo "$_kills kills; done before the final run: $_kd of $_kp"
	if [ -z "$_kd" ] || [ "$_kd" -le 0 ] || [ "$_kd" -ge "$_kp" ]; then
		fail "after $_kills kills done is '$_kd' of '$_kp': the kills did not land mid-conversion"
	fi
}

# Errors are one line: `luksipc: error: <what>: <why>[; <what to do>]`;
# by default only the prefix and the single line are checked.
# Progress lines (`luksipc:  0:12 ...` or JSON objects) are ignored.
assert_one_error_line() {
	f=${1:-$T/err}
	grep -Ev '^luksipc: +[0-9]+:[0-9]{2} |^\{' "$f" | tr -d '\r' >"$f.nonprogress" || true
	n=$(grep -c 'error' "$f.nonprogress" || true)
	[ "$n" -eq 1 ] || {
		sed 's/^/  | /' "$f" >&2
		fail "expected exactly one error line in $f, found $n"
	}
	grep -Eq '^luksipc: error: [^ ].+' "$f.nonprogress" || {
		sed 's/^/  | /' "$f" >&2
		fail "error line does not start with 'luksipc: error: '"
	}
	# the contract's full shape, `<what>: <why>`, only under STRICT_ERRORS=1
	if [ -n "${STRICT_ERRORS:-}" ]; then
		grep -Eq '^luksipc: error: .+: .+' "$f.nonprogress" || {
			sed 's/^/  | /' "$f" >&2
			fail "error line is not 'luksipc: error: <what>: <why>'"
		}
	fi
}

# verify_plain IMG KEY ORIG LEN: the LUKS image IMG, opened with KEY,
# decrypts to the first LEN bytes of ORIG, and cryptsetup accepts the key.
verify_plain() {
	"$PY" "$LUKSDECRYPT" "$1" --key-file "$2" --expect "$3" --length "$4" ||
		fail "decrypted $1 differs from $3 (first $4 bytes)"
	cryptsetup open --test-passphrase --key-file "$2" "$1" ||
		fail "cryptsetup does not accept the key for $1"
	echo "verified: $1 decrypts to the first $4 bytes of $3"
}

# luks_info IMG FIELD: a field of luksdecrypt.py --info (without key).
luks_info() {
	cryptsetup luksDump "$1" >"$T/.dump" || fail "$1 is not LUKS"
	"$PY" - "$T/.dump" "$2" <<'PYEOF'
import json, sys
sys.path.insert(0, __import__("os").environ["TESTS_LIB"])
import luksdecrypt
print(luksdecrypt.parse_dump(open(sys.argv[1]).read())[sys.argv[2]])
PYEOF
}
TESTS_LIB=$TESTS_ROOT/tests/lib
export TESTS_LIB

# random_key FILE [BYTES]
random_key() {
	head -c "${2:-64}" /dev/urandom >"$1"
}

# wait_state_progress STATE: poll `status` until done > 0 (max ~20 s).
wait_state_progress() {
	i=0
	while [ $i -lt 400 ]; do
		if [ -s "$1" ] && d=$(lx status --state "$1" 2>/dev/null | awk '$1 == "done:" {print $2}') &&
			[ -n "$d" ] && [ "$d" -gt 0 ]; then
			return 0
		fi
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

# small_fixture N H [FS]: dev.img (ext4 by default) of N bytes ending before
# N - H, its copy orig.img, and a random key file "key".
small_fixture() {
	fx_make "${3:-ext4}" dev.img "$1" "$2"
	cp dev.img orig.img
	random_key key
}

# rand_between LO HI: a random integer in [LO, HI].
rand_between() {
	echo $(($1 + $(od -An -N4 -tu4 /dev/urandom | tr -d ' ') % ($2 - $1 + 1)))
}

# status_field STATE FIELD: a field of `luksipc status --state STATE`.
status_field() {
	lx status --state "$1" | awk -v k="$2:" '$1 == k {print $2}'
}

# crash_check LOG RC MIN: the crash tier's verdict on one enumerate.py run
# (tests/crash/enumerate.py): its exit status RC, and its summary line in
# LOG says 0 failed and at least MIN states.
crash_check() {
	summary=$(grep '^crash states: [0-9]* run' "$1" || true)
	[ -n "$summary" ] || fail "no summary from enumerate.py (exit $2)"
	[ "$2" -eq 0 ] || fail "enumerate.py exited $2: $summary"
	case "$summary" in
	*"), 0 failed, "*) ;;
	*) fail "crash states failed: $summary" ;;
	esac
	count=$(printf '%s\n' "$summary" | sed -n 's/^crash states: \([0-9]*\) run.*/\1/p')
	[ "$count" -ge "$3" ] || fail "only $count crash states, need $3"
}
