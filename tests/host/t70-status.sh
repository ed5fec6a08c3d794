#!/bin/sh
# `luksipc status` reports phase and progress that match what happened,
# in plain `key: value` lines and as one JSON object.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

N=$((12 * MiB + 7 * 4096))
H=$((4 * MiB))
S=$((512 * 1024))
UUID=0d7c2a55-4a57-4bd6-9d8e-3f1c1b2a9e01

c2() {
	conv -d dev.img --state st --key-file key --type luks2 --header-size $H \
		--step-size $S --sector-size 4096 --key-size 256 --uuid $UUID
}

# check_json PHASE DONE_CMP: the JSON agrees with the plain output.
check_json() {
	run_rc 0 lx status --state st -d dev.img --json
	"$PY" - "$T/out" "$T/plain" "$1" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1]))
plain = dict(l.split(":", 1) for l in open(sys.argv[2]).read().splitlines() if ":" in l)
plain = {k.strip(): v.strip() for k, v in plain.items()}
assert j["phase"] == sys.argv[3], j
for k in ("device-size", "header-size", "step-size", "data-size", "done", "key-size", "sector-size"):
    jk = k.replace("-", "_")
    v = j.get(jk, j.get(k))
    assert isinstance(v, int) and not isinstance(v, bool), (k, v)
    assert str(v) == plain[k], (k, v, plain[k])
for k in ("type", "cipher", "luks-uuid", "phase"):
    assert str(j.get(k.replace("-", "_"), j.get(k))) == plain[k], (k, j, plain[k])
assert j["matches_device"] is True, j
print("json ok:", j)
PYEOF
}

t_status_interrupted() {
	need_luksipc
	small_fixture $N $H
	LUKSIPC_TEST_FAULT=write:5:EIO run_rc 5 c2
	run_rc 0 lx status --state st -d dev.img
	cp "$T/out" plain
	cat plain
	assert_grep '^phase: converting$' plain
	assert_grep "^device-size: $N\$" plain
	assert_grep "^header-size: $H\$" plain
	assert_grep "^step-size: $S\$" plain
	assert_grep "^data-size: $(payload_size $N $H)\$" plain
	assert_grep '^type: luks2$' plain
	assert_grep '^cipher: aes-xts-plain64$' plain
	assert_grep '^key-size: 256$' plain
	assert_grep '^sector-size: 4096$' plain
	assert_grep "^luks-uuid: $UUID\$" plain
	assert_grep '^matches-device: yes$' plain
	d=$(awk '$1 == "done:" {print $2}' plain)
	# four steps were committed before the fifth write failed
	if [ "$d" -le 0 ] || [ "$d" -ge "$(payload_size $N $H)" ]; then
		fail "done is $d"
	fi
	[ "$d" -le $((4 * S)) ] || fail "done $d is more than the 4 committed steps"
	check_json converting
	# the device and progress agree: resume finishes
	run_rc 0 c2
	verify_plain dev.img key orig.img $((N - H))
}

t_status_done() {
	need_luksipc
	small_fixture $N $H
	run_rc 0 c2
	run_rc 0 lx status --state st -d dev.img
	cp "$T/out" plain
	assert_grep '^phase: done$' plain
	assert_grep "^done: $(payload_size $N $H)\$" plain
	assert_grep "^data-size: $(payload_size $N $H)\$" plain
	assert_grep '^matches-device: yes$' plain
	check_json "done"
	run_rc 0 lx status --state st --notes
	[ -s "$T/out" ] || fail "--notes printed nothing"
	assert_grep "$UUID" "$T/out"
}

t_status_mismatch() {
	need_luksipc
	small_fixture $N $H
	LUKSIPC_TEST_FAULT=write:3:EIO run_rc 5 c2
	fx_make ext4 other.img $N $H
	run_rc 3 lx status --state st -d other.img
	assert_grep '^matches-device: no$' "$T/out"
	run_rc 3 lx status --state st -d other.img --json
	"$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["matches_device"] is False, j' "$T/out"
}

t_status_not_state() {
	need_luksipc
	head -c $((1 * MiB)) /dev/urandom >junk
	run_rc 3 lx status --state junk
	truncate -s $((1 * MiB)) zeros
	run_rc 3 lx status --state zeros
	run_rc 3 lx status --state "$T/missing"
}

run_test "status after an interruption: converting, 0 < done < data-size" t_status_interrupted
run_test "status after completion: done == data-size, --json, --notes" t_status_done
run_test "status -d another device: matches-device no, exit 3" t_status_mismatch
run_test "status of something that is not a state: exit 3" t_status_not_state
test_done
