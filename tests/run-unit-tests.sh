#!/bin/sh
# Runs the C unit tests given as arguments; prints one line per test binary
# and a closing "N passed, N failed" line.
pass=0
fail=0
for t in "$@"; do
	if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
