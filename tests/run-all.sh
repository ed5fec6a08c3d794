#!/bin/sh
# make check: the C unit tests, then the host tests on image files. Prints
# each tier's summary and, last, one combined "N passed, N failed, N skipped".
# Exit 1 if a tier failed (its own exit status, kept in a file because the
# pipe into tee would hide it), if a case failed, or if nothing passed.
set -u
here=$(dirname "$0")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log=$tmp/log

status=0
# tier NAME CMD...: run CMD, its output shown and appended to the log, its
# exit status in $tmp/NAME.rc (tee's is the pipe's).
tier() {
	name=$1
	shift
	echo 1 >"$tmp/$name.rc"
	{
		"$@" 2>&1
		echo $? >"$tmp/$name.rc"
	} | tee -a "$log" || status=1
	rc=$(cat "$tmp/$name.rc")
	if [ "$rc" -ne 0 ]; then
		echo "run-all: the $name tier exited $rc"
		status=1
	fi
}
: >"$log"
tier unit "$here"/run-unit-tests.sh build/unit/*
tier host "$here"/run-host-tests.sh

# Only the tiers' closing lines: "[word: ]N passed, N failed[, N skipped]".
summary=$(grep -E '^([a-z-]+: )?[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log")
sum() { printf '%s\n' "$summary" | sed -n "s/.*[ ^]\([0-9][0-9]*\) $1.*/\1/p" | awk '{ s += $1 } END { print s + 0 }'; }
passed=$(printf '%s\n' "$summary" | sed -n 's/^\([a-z-]*: \)\{0,1\}\([0-9][0-9]*\) passed.*/\2/p' | awk '{ s += $1 } END { print s + 0 }')
failed=$(sum failed)
skipped=$(sum skipped)
echo
echo "total: $passed passed, $failed failed, $skipped skipped"
if [ "$passed" -eq 0 ]; then
	[ "$failed" -gt 0 ] || echo "run-all: nothing passed; a run that tests nothing is not green"
	status=1
fi
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
