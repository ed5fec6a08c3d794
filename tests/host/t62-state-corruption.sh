#!/bin/sh
# A damaged state store never converts data twice. The state of an
# interrupted conversion (plaintext to LUKS, and LUKS to LUKS with a journal)
# is damaged in many ways: 4 KiB blocks zeroed at its start, its end or its
# header image, truncated, bits flipped, plus a seeded random set (fixed seed
# so that CI repeats it; CORRUPT_SEED and CORRUPT_RANDOM change it). Each
# time the same convert command runs again and must either refuse (exit 3,
# device unchanged) or resume to a correct result (tests/lib/luksdecrypt.py);
# exit 0 with wrong data, or any other exit code, fails. The exit codes are
# tallied in the output.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

SEED=${CORRUPT_SEED:-20261202}
NRANDOM=${CORRUPT_RANDOM:-100}

# corrupt.py list SIZE | corrupt.py apply FILE SPEC: the corruptions of a
# store of SIZE bytes, one spec per line; apply one to FILE.
write_corrupt_py() {
	cat >corrupt.py <<'PYEOF'
import os, random, sys
K = 4096
def listing(size, seed, nrand):
    tail = size // K * K - K
    out = []
    for start in (0, K):
        for n in (1, 2, 4):
            out.append("zero %d %d" % (start, n * K))
    out += ["zero 8192 4096", "zero 8192 8192", "zero 12288 4096", "zero %d 4096" % tail,
            "zero %d 8192" % (tail - K), "zero 1048576 4096", "zero 1048576 1048576",
            "zero 65536 65536", "zero 0 16384+tail", "zero 0 8192+tail",
            "zero 0 1052672", "zero 0 1052672+tail"]
    for t in (0, 100, 4096, 4853, 8192, 8704, 12288, 16384, 1048576, 1048576 + 4096,
              size // 2, size - K, size - 1):
        out.append("truncate %d" % t)
    for off in (40, 200, 4064, K + 100, 8192 + 40, 8192 + 100, 12288 + 40, 12288 + 460,
                65536 + 10, 1048576 + 1, 1048576 + 5000, tail + 100, tail + 4064):
        out.append("flip %d 1" % off)
    rnd = random.Random(seed)
    for _ in range(nrand):
        k = rnd.choice(["zero", "zero", "flip", "flip", "truncate", "zeroblocks"])
        hot = rnd.choice([0, 0, 8192, 12288, 1048576, tail, rnd.randrange(size)])
        if k == "zero":
            out.append("zero %d %d" % (max(0, hot + rnd.randrange(-4096, 4096)) // 512 * 512,
                                       rnd.choice([512, 4096, 8192, 65536])))
        elif k == "zeroblocks":
            out.append("zero %d %d" % (rnd.randrange(0, 8) * K, rnd.randrange(1, 6) * K))
        elif k == "flip":
            out.append("flip %d %d" % (min(size - 1, hot + rnd.randrange(0, 4096)), rnd.randrange(1, 9)))
        else:
            out.append("truncate %d" % rnd.randrange(0, size))
    return out
def apply(path, spec):
    w = spec.split()
    size = os.path.getsize(path)
    tail = size // K * K - K
    with open(path, "r+b") as f:
        if w[0] == "zero":
            off, ln = int(w[1]), w[2]
            extra = ln.endswith("+tail")
            ln = int(ln.split("+")[0])
            f.seek(off); f.write(bytes(min(ln, max(0, size - off))))
            if extra:
                f.seek(tail); f.write(bytes(K))
        elif w[0] == "truncate":
            f.truncate(int(w[1]))
        elif w[0] == "flip":
            off, bits = int(w[1]), int(w[2])
            rnd = random.Random(spec)
            for _ in range(bits):
                o = min(size - 1, off + rnd.randrange(0, 64))
                f.seek(o); b = f.read(1)[0]
                f.seek(o); f.write(bytes([b ^ (1 << rnd.randrange(8))]))
if sys.argv[1] == "list":
    print("\n".join(listing(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))
else:
    apply(sys.argv[2], sys.argv[3])
PYEOF
}

# sweep VERIFY_LEN CMD...: for every corruption of st.int, run CMD on a copy
# of dev.int with the damaged state "st"; check and tally the outcome.
sweep() {
	len=$1
	shift
	write_corrupt_py
	"$PY" corrupt.py list "$(fsize st.int)" "$SEED" "$NRANDOM" >specs
	dint=$(sha dev.int)
	# the intact state resumes to the reference result, checked once
	cp dev.int dev.img
	cp st.int st
	run_rc 0 "$@"
	verify_plain dev.img key orig.img "$len"
	dref=$(sha dev.img)
	c0=0 cf=0 c3=0 bad=0 total=0
	while IFS= read -r spec; do
		total=$((total + 1))
		cp dev.int dev.img
		cp st.int st
		"$PY" corrupt.py apply st "$spec"
		set +e
		"$@" >out 2>err </dev/null
		rc=$?
		set -e
		case $rc in
		0)
			if [ "$(sha dev.img)" = "$dref" ]; then
				c0=$((c0 + 1))
				echo "[$spec] exit 0, resumed to the reference result"
			elif "$PY" "$LUKSDECRYPT" dev.img --key-file key --expect orig.img --length "$len" >dec.log 2>&1; then
				cf=$((cf + 1))
				echo "[$spec] exit 0, started afresh, decrypts correctly"
			else
				bad=$((bad + 1))
				echo "BAD [$spec] exit 0 but the data is wrong: $(tail -n 1 dec.log)"
				grep -v '^luksipc: *[0-9]*:' err | sed 's/^/    | /'
			fi
			;;
		3)
			if [ "$(sha dev.img)" = "$dint" ]; then
				c3=$((c3 + 1))
				echo "[$spec] exit 3: $(grep error err | head -n 1)"
			else
				bad=$((bad + 1))
				echo "BAD [$spec] exit 3 but the device changed"
			fi
			;;
		*)
			bad=$((bad + 1))
			echo "BAD [$spec] exit $rc: $(grep error err | head -n 1)"
			;;
		esac
	done <specs
	echo "tally: $total corruptions: exit 0: $((c0 + cf)) ($c0 resumed, $cf started afresh, all decrypt correctly); exit 3: $c3 (device unchanged); bad: $bad"
	[ "$bad" -eq 0 ] || fail "$bad corruptions ended wrongly"
}

# ext4 with 1 MiB block groups, so that backup superblocks lie in the range
# converted first and a fresh start over the half-converted device can tell
# (t64-fresh-start-signs.sh); the cut comes after 4 MiB, past the one at 7 MiB.
t_plain() {
	need_luksipc
	n=$((10 * MiB + 5 * 4096)) h=$((2 * MiB))
	fx_payload payload $((n / 8))
	truncate -s $n dev.img
	fsz=$(((n - h) / 4096))
	mke2fs -q -F -t ext4 -b 1024 -g 1024 -E nodiscard -d payload dev.img $((fsz * 4))
	rm -rf payload
	cp dev.img orig.img
	random_key key
	set -- conv -d dev.img --state st --key-file key --type luks1 --step-size $((256 * 1024))
	LUKSIPC_TEST_FAULT=write:17:EIO run_rc 5 "$@"
	cp dev.img dev.int
	cp st st.int
	sweep $((n - h)) "$@"
}

t_reencrypt_journal() {
	need_luksipc
	sz=$((12 * MiB + 3 * 4096)) h=$((2 * MiB))
	fx_make ext4 dev.img $sz $h
	cp dev.img orig.img
	random_key old
	random_key key
	run_rc 0 conv -d dev.img --state st.src --key-file old --type luks1
	set -- conv --reencrypt -d dev.img --state st --old-key-file old --key-file key --type luks1 \
		--step-size $((512 * 1024))
	LUKSIPC_TEST_FAULT=write:7:EIO run_rc 5 "$@"
	d=$(status_field st "done")
	[ "$d" -gt 0 ] || fail "nothing converted before the fault"
	cp dev.img dev.int
	cp st st.int
	sweep $((sz - h)) "$@"
}

# A 4 KiB-block ext4: no backup superblock in the converted range, so only
# the store can tell that the conversion started. Every damage that leaves
# one whole superblock copy but no record (truncated after copy A or B,
# copies A and B zeroed with the records and the header image) must be
# refused: the superblock's started mark says the device was written
# (docs/format.md, "Started"). Before it, these resumed as a preparation cut
# short and encrypted the first part twice (found by the [proof] audit).
t_superblock_left() {
	need_luksipc
	mkdir payload
	head -c $((30 * MiB)) /dev/urandom >payload/big
	truncate -s $((64 * MiB)) dev.img
	mke2fs -q -F -t ext4 -b 4096 -E nodiscard -d payload dev.img 44M
	rm -rf payload
	cp dev.img orig.img
	random_key key
	set -- conv -d dev.img --state st --key-file key --step-size $MiB
	LUKSIPC_TEST_FAULT=write:40:EIO run_rc 5 "$@"
	cp dev.img dev.int
	cp st.int st 2>/dev/null || cp st st.int
	write_corrupt_py
	dint=$(sha dev.int)
	tail=$(( $(fsize st.int) / 4096 * 4096 - 4096 ))
	for spec in "truncate 4096" "truncate 4097" "truncate 8192" "truncate 12288" "zero 8192 8192" \
		"zero 0 $((MiB + 16 * MiB))" "zero 4096 $((MiB + 16 * MiB))" "zero 8192 $((tail - 8192))"; do
		cp dev.int dev.img
		cp st.int st
		"$PY" corrupt.py apply st "$spec"
		run_rc 3 "$@"
		echo "[$spec] $(grep error err | head -n 1)"
		assert_eq "$(sha dev.img)" "$dint" "device after [$spec]"
	done
	# the intact store still resumes, and the result decrypts
	cp st.int st
	run_rc 0 "$@"
	verify_plain dev.img key orig.img $((44 * MiB))
}

run_test "damaged state of an interrupted plaintext to LUKS run: refused (3) or resumed correctly" t_plain
run_test "damaged state of an interrupted LUKS to LUKS run (journal): refused (3) or resumed correctly" t_reencrypt_journal
run_test "a store left with a superblock but no record after the device was written: refused (3), device unchanged" t_superblock_left
test_done
