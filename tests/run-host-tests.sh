#!/bin/sh
# Run every tests/host/*.sh and print, as the last line, exactly
# `N passed, N failed, N skipped` (read by CI). Exit 1 if any test failed,
# or if none passed (a run where everything was skipped, or no file matched,
# tested nothing). A test file that dies without reporting its counts counts
# as one failure. Every skipped case is listed again, with its reason,
# before the last line.
# Arguments: optional test file name patterns (e.g. t10 t50).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
passed=0
failed=0
skipped=0
log=$(mktemp "${TMPDIR:-/tmp}/luksipc-host-tests.XXXXXX")
skips=$(mktemp "${TMPDIR:-/tmp}/luksipc-host-skips.XXXXXX")
trap 'rm -f "$log" "$skips"' EXIT
for t in "$here"/host/*.sh; do
	if [ $# -gt 0 ]; then
		match=
		for p in "$@"; do
			case "$(basename "$t")" in *"$p"*) match=1 ;; esac
		done
		[ -n "$match" ] || continue
	fi
	echo "# $(basename "$t")"
	start=$(date +%s)
	set +e
	sh "$t" >"$log" 2>&1
	rc=$?
	set -e
	grep -v '^# counts ' "$log" || true
	grep '^SKIP ' "$log" | sed "s|^SKIP |  $(basename "$t" .sh) |" >>"$skips" || true
	counts=$(sed -n 's/^# counts \([0-9]*\) \([0-9]*\) \([0-9]*\)$/\1 \2 \3/p' "$log" | tail -n 1)
	if [ -z "$counts" ]; then
		echo "FAIL $(basename "$t") exited $rc without reporting its results"
		failed=$((failed + 1))
		continue
	fi
	p=$(echo "$counts" | cut -d' ' -f1)
	f=$(echo "$counts" | cut -d' ' -f2)
	s=$(echo "$counts" | cut -d' ' -f3)
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	if [ "$f" -eq 0 ] && [ "$rc" -ne 0 ]; then
		echo "FAIL $(basename "$t") exited $rc although no case failed"
		failed=$((failed + 1))
	fi
	echo "# $(basename "$t"): $(($(date +%s) - start))s"
done
if [ -s "$skips" ]; then
	echo "skipped cases (not tested):"
	cat "$skips"
fi
if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then
	echo "FAIL no host test passed: a run that tests nothing is not green"
	failed=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
