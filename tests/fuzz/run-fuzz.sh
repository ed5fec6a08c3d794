#!/bin/sh
# run-fuzz.sh DIR SECONDS: run DIR/fuzz_state for SECONDS from the seeds in
# DIR/seeds (the corpus it grows stays in DIR/corpus for the next run) and
# print `fuzz: N executions in S s, C crashes`. Exit 1 on any crash, leak,
# timeout or out-of-memory; its input is kept in DIR/artifacts.
set -eu
dir=$1
secs=$2
mkdir -p "$dir/corpus"
rm -rf "$dir/artifacts"
mkdir -p "$dir/artifacts"
log=$dir/fuzz.log
set +e
"$dir/fuzz_state" -max_total_time="$secs" -max_len=135168 -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$dir/artifacts/" "$dir/corpus" "$dir/seeds" >"$log" 2>&1
rc=$?
set -e
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
crashes=$(find "$dir/artifacts" -type f | wc -l)
echo "fuzz: ${execs:-0} executions in $secs s, $crashes crashes (corpus $(find "$dir/corpus" -type f | wc -l) inputs; log $log)"
if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ] || [ -z "$execs" ]; then
	grep -A 30 'ERROR:\|runtime error' "$log" | head -n 40 >&2 || :
	echo "fuzz: FAILED (exit $rc); reproduce with $dir/fuzz_state $dir/artifacts/*" >&2
	exit 1
fi
