#!/bin/sh
# make check: the C unit tests, then the host tests on image files. Prints
# each tier's summary and, last, one combined "N passed, N failed, N skipped".
set -u
here=$(dirname "$0")
log=$(mktemp)
trap 'rm -f "$log"' EXIT

status=0
"$here"/run-unit-tests.sh build/unit/* 2>&1 | tee "$log" || status=1
"$here"/run-host-tests.sh 2>&1 | tee -a "$log" || status=1

# Only the tiers' closing lines: "[word: ]N passed, N failed[, N skipped]".
summary=$(grep -E '^([a-z-]+: )?[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log")
sum() { printf '%s\n' "$summary" | sed -n "s/.*[ ^]\([0-9][0-9]*\) $1.*/\1/p" | awk '{ s += $1 } END { print s + 0 }'; }
passed=$(printf '%s\n' "$summary" | sed -n 's/^\([a-z-]*: \)\{0,1\}\([0-9][0-9]*\) passed.*/\2/p' | awk '{ s += $1 } END { print s + 0 }')
failed=$(sum failed)
skipped=$(sum skipped)
echo
echo "total: $passed passed, $failed failed, $skipped skipped"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
