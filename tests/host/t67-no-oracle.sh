#!/bin/sh
# The state store is no oracle on the data: it holds no plain SHA-256 of
# any 4 KiB-aligned plaintext range near the frontier (where the evidence
# samples are taken), and a store of an older format version is refused
# with exit 3 and nothing written.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

N=$((12 * MiB + 5 * 4096))
H=$((2 * MiB))
S=$((512 * 1024))

c2() {
	conv -d dev.img --state st --key-file key --type luks2 --header-size $H \
		--step-size $S --sector-size 512 "$@"
}

# no_plain_digest STATE ORIG FRONTIER: no SHA-256 of ORIG[a, b), a and b
# 4 KiB-aligned, b within 1 MiB of FRONTIER, b - a <= 1 MiB, occurs anywhere
# in STATE. The frontier is in payload bytes; here the payload starts at 0.
no_plain_digest() {
	"$PY" - "$1" "$2" "$3" <<'PYEOF'
import hashlib, sys
state = open(sys.argv[1], "rb").read()
orig = open(sys.argv[2], "rb").read()
f = int(sys.argv[3])
K, M = 4096, 1 << 20
end_lo, end_hi = max(K, f - M), min(len(orig), f + M)
digests = {}
for a in range(max(0, end_lo - M), end_hi, K):
    h = hashlib.sha256()
    for b in range(a + K, min(a + M, end_hi) + 1, K):
        h.update(orig[b - K:b])
        if b >= end_lo:
            digests[h.copy().digest()] = (a, b)
found = [(i, digests[state[i:i + 32]]) for i in range(len(state) - 31) if state[i:i + 32] in digests]
print("frontier %d: %d plaintext digests searched in %d state bytes" % (f, len(digests), len(state)))
for i, (a, b) in found[:5]:
    print("state byte %d holds SHA-256 of plaintext [%d, %d)" % (i, a, b))
sys.exit(1 if found else 0)
PYEOF
}

frontier() {
	echo $(($(status_field st data-size) - $(status_field st "done")))
}

t_first_record() {
	need_luksipc
	small_fixture $N $H
	LUKSIPC_TEST_FAULT=write:1:EIO run_rc 5 c2
	no_plain_digest st orig.img "$(frontier)" || fail "the state holds a plain hash of plaintext"
	run_rc 0 c2
	verify_plain dev.img key orig.img $((N - H))
}

t_mid_run() {
	need_luksipc
	small_fixture $N $H
	LUKSIPC_TEST_FAULT=write:6:EIO run_rc 5 c2
	f=$(frontier)
	[ "$f" -lt $((N - H)) ] || fail "no step was recorded"
	no_plain_digest st orig.img "$f" || fail "the state holds a plain hash of plaintext"
	# the keyed evidence still does its job: a resume checks and finishes
	run_rc 0 c2
	verify_plain dev.img key orig.img $((N - H))
}

# set_format STATE V: rewrite both superblock copies as format V, with a
# valid checksum, as an older luksipc would have left them.
set_format() {
	"$PY" - "$1" "$2" <<'PYEOF'
import hashlib, struct, sys
with open(sys.argv[1], "r+b") as f:
    for off in (0, 4096):
        f.seek(off)
        sb = bytearray(f.read(4096))
        sb[8:12] = struct.pack("<I", int(sys.argv[2]))
        sb[4064:4096] = hashlib.sha256(sb[:4064]).digest()
        f.seek(off)
        f.write(sb)
PYEOF
}

t_old_format_refused() {
	need_luksipc
	small_fixture $N $H
	LUKSIPC_TEST_FAULT=write:4:EIO run_rc 5 c2
	set_format st 1
	cp dev.img dev.before
	cp st st.before
	run_rc 3 c2
	cat "$T/err"
	assert_one_error_line "$T/err"
	assert_grep "format version 1" "$T/err"
	assert_eq "$(sha dev.img)" "$(sha dev.before)" "device after the refused run"
	assert_eq "$(sha st)" "$(sha st.before)" "state after the refused run"
	run_rc 3 lx status --state st
	assert_grep "format version 1" "$T/err"
	run_rc 3 lx finalize --state st --batch
	assert_eq "$(sha st)" "$(sha st.before)" "state after the refused finalize"
}

run_test "first record: no plain hash of plaintext in the state" t_first_record
run_test "mid-run: no plain hash of plaintext near the frontier" t_mid_run
run_test "a store of format version 1 is refused, nothing written" t_old_format_refused
test_done
