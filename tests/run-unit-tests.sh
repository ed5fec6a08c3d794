#!/bin/sh
# Runs the C unit tests given as arguments; prints one line per test binary
# and a closing "N passed, N failed" line. Exit 1 if one failed or if none
# ran (no binary given, or a glob that matched nothing).
pass=0
fail=0
for t in "$@"; do
	if [ ! -x "$t" ]; then
		echo "FAIL $t: not an executable unit test"
		fail=$((fail + 1))
	elif "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
if [ "$pass" -eq 0 ] && [ "$fail" -eq 0 ]; then
	echo "FAIL no unit test ran: a run that tests nothing is not green"
	fail=1
fi
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
