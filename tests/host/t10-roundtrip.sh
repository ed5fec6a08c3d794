#!/bin/sh
# Round trips on image files holding real filesystems: the converted image
# decrypts (with the independent tests/lib/luksdecrypt.py) to exactly the
# original bytes of the whole data area, cryptsetup accepts the key, and the
# header geometry is the one asked for. Odd image sizes: not a multiple of
# the step nor of 1 MiB (a multiple of 4096 for 4096-byte sectors).
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

# roundtrip FS N H TYPE SECTOR STEP KEYBITS [extra convert options...]
# STEP "-" means the default step size.
roundtrip() {
	need_luksipc
	fs=$1 n=$2 h=$3 type=$4 ss=$5 step=$6 kb=$7
	shift 7
	need_cmd "mkfs.$fs"
	[ "$fs" != vfat ] || need_cmd mcopy
	fx_make "$fs" dev.img "$n" "$h"
	cp dev.img orig.img
	random_key key
	stepopt=
	[ "$step" = - ] || stepopt="--step-size $step"
	hopt="--header-size $h"
	# the default header size is part of what is tested
	if { [ "$type" = luks2 ] && [ "$h" -eq $((16 * MiB)) ]; } ||
		{ [ "$type" = luks1 ] && [ "$h" -eq $((2 * MiB)) ] && [ "$fs" = btrfs ]; }; then
		hopt=
	fi
	# shellcheck disable=SC2086
	run_rc 0 conv -d dev.img --state st --key-file key \
		--type "$type" --sector-size "$ss" --key-size "$kb" $hopt $stepopt "$@"
	cp "$T/err" conv.err
	assert_eq "$(fsize dev.img)" "$n" "image size"
	assert_eq "$(luks_info dev.img version)" "${type#luks}" "LUKS version"
	assert_eq "$(luks_info dev.img offset)" "$h" "data offset"
	assert_eq "$(luks_info dev.img sector_size)" "$ss" "sector size"
	assert_eq "$(luks_info dev.img key_bits)" "$kb" "key bits"
	verify_plain dev.img key orig.img $((n - h))
	run_rc 0 lx status --state st
	assert_grep '^phase: done$' "$T/out"
	assert_grep "^data-size: $(payload_size "$n" "$h")\$" "$T/out"
	assert_grep "^done: $(payload_size "$n" "$h")\$" "$T/out"
}

t_ext4_luks2_512() { roundtrip ext4 $((41 * MiB + 7 * 4096 + 512)) $((4 * MiB)) luks2 512 - 512; }
t_xfs_luks2_4096() { roundtrip xfs $((41 * MiB + 7 * 4096)) $((4 * MiB)) luks2 4096 $((1 * MiB)) 512; }
t_btrfs_luks1() { roundtrip btrfs $((41 * MiB + 3 * 4096 + 1024)) $((2 * MiB)) luks1 512 $((512 * 1024)) 512; }
t_vfat_luks2_default_header() { roundtrip vfat $((57 * MiB + 5 * 512)) $((16 * MiB)) luks2 512 - 512; }
t_ext4_luks2_4096_256_oddstep() { roundtrip ext4 $((30 * MiB + 11 * 4096)) $((4 * MiB)) luks2 4096 $((384 * 1024)) 256; }
t_ext4_luks1_256() { roundtrip ext4 $((20 * MiB + 3 * 4096 + 1536)) $((2 * MiB)) luks1 512 $((64 * 1024)) 256; }
t_btrfs_luks2_4096() { roundtrip btrfs $((45 * MiB + 4096)) $((8 * MiB)) luks2 4096 $((3 * MiB)) 512; }
t_xfs_luks1() { roundtrip xfs $((33 * MiB + 9 * 512)) $((2 * MiB)) luks1 512 $((1 * MiB)) 512; }

# Each step is encrypted in 8 pieces by whichever crypt thread is free (one
# thread per CPU by default): 3, 4 and 1 threads on steps that do not split
# evenly, and steps of less than 8 x 4 KiB (the last piece takes it all).
t_crypt_threads() {
	for nt in 3 4 1; do
		export LUKSIPC_CRYPT_THREADS=$nt
		roundtrip ext4 $((25 * MiB + 5 * 4096 + 512)) $((2 * MiB)) luks2 512 $((1 * MiB + 3 * 4096 + 512)) 512 -l 4
		assert_grep "encrypt .* [(]$nt threads?[)]" conv.err
		rm -f dev.img orig.img st key
	done
	export LUKSIPC_CRYPT_THREADS=4
	roundtrip ext4 $((20 * MiB + 1536)) $((2 * MiB)) luks2 512 $((12 * 1024 + 512)) 512 -l 4
	assert_grep "encrypt .* [(]4 threads[)]" conv.err
	unset LUKSIPC_CRYPT_THREADS
}

t_passphrase_stdin() {
	need_luksipc
	n=$((24 * MiB + 4096)) h=$((4 * MiB))
	fx_make ext4 dev.img $n $h
	cp dev.img orig.img
	printf 'correct horse battery staple' >pass
	printf 'correct horse battery staple' |
		run_rc 0 conv -d dev.img --state st --key-file - --header-size $h
	verify_plain dev.img pass orig.img $((n - h))
	printf 'correct horse battery stapl' >wrong
	if cryptsetup open --test-passphrase --key-file wrong dev.img; then
		fail "a prefix of the passphrase opens the image"
	fi
}

t_generate_key_file() {
	need_luksipc
	n=$((20 * MiB + 512)) h=$((2 * MiB))
	fx_make ext4 dev.img $n $h
	cp dev.img orig.img
	run_rc 0 conv -d dev.img --state st --generate-key-file gen.key --type luks1
	assert_eq "$(fsize gen.key)" 4096 "generated key size"
	assert_eq "$(stat -c %a gen.key)" 600 "generated key mode"
	verify_plain dev.img gen.key orig.img $((n - h))
	# an existing file is used, not replaced
	keysum=$(sha gen.key)
	fx_make vfat dev2.img $n $h
	cp dev2.img orig2.img
	run_rc 0 conv -d dev2.img --state st2 --generate-key-file gen.key --type luks1
	assert_eq "$(sha gen.key)" "$keysum" "existing key file was rewritten"
	verify_plain dev2.img gen.key orig2.img $((n - h))
}

t_label_uuid() {
	need_luksipc
	n=$((20 * MiB + 4096)) h=$((4 * MiB))
	fx_make ext4 dev.img $n $h
	cp dev.img orig.img
	random_key key
	uuid=5f4c1d2e-9a8b-4c7d-8e6f-0a1b2c3d4e5f
	run_rc 0 conv -d dev.img --state st --key-file key --header-size $h \
		--label luksipc-test --uuid $uuid
	cryptsetup luksDump dev.img >dump
	assert_grep "^Label:[[:space:]]+luksipc-test\$" dump
	assert_grep "^UUID:[[:space:]]+$uuid\$" dump
	assert_eq "$(cryptsetup luksUUID dev.img)" $uuid "luksUUID"
	verify_plain dev.img key orig.img $((n - h))
	fx_make ext4 dev1.img $n $((2 * MiB))
	run_rc 0 conv -d dev1.img --state st1 --key-file key --type luks1 --uuid $uuid
	assert_eq "$(cryptsetup luksUUID dev1.img)" $uuid "LUKS1 luksUUID"
}

t_progress_json() {
	need_luksipc
	n=$((12 * MiB + 4096)) h=$((2 * MiB))
	fx_make ext4 dev.img $n $h
	cp dev.img orig.img
	random_key key
	run_rc 0 conv -d dev.img --state st --key-file key --type luks1 \
		--step-size $((256 * 1024)) --progress-json
	grep '^{' "$T/err" >progress || fail "no JSON progress lines on stderr"
	"$PY" - progress "$(payload_size "$n" "$h")" <<'PYEOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
total = int(sys.argv[2])
last = lines[-1]
assert last["phase"] == "done", last
assert last["done"] == last["total"] == total, (last, total)
for o in lines:
    for k in ("phase", "done", "total", "percent", "rate_mib_s", "elapsed_s", "eta_s"):
        assert k in o, (k, o)
    assert 0 <= o["done"] <= o["total"], o
print("%d JSON progress lines, last %r" % (len(lines), last))
PYEOF
	verify_plain dev.img key orig.img $((n - h))
}

run_test "ext4, LUKS2, 512-byte sectors, default step, odd size" t_ext4_luks2_512
run_test "xfs, LUKS2, 4096-byte sectors, 1M step" t_xfs_luks2_4096
run_test "btrfs, LUKS1, default header, 512K step" t_btrfs_luks1
run_test "vfat, LUKS2, default 16M header and step" t_vfat_luks2_default_header
run_test "ext4, LUKS2, 4096 sectors, 256-bit key, 384K step" t_ext4_luks2_4096_256_oddstep
run_test "ext4, LUKS1, 256-bit key, 64K step" t_ext4_luks1_256
run_test "btrfs, LUKS2, 4096 sectors, 8M header, 3M step" t_btrfs_luks2_4096
run_test "xfs, LUKS1, 1M step" t_xfs_luks1
run_test "1, 3 and 4 crypt threads, steps that do not split evenly" t_crypt_threads
run_test "passphrase from stdin (--key-file -)" t_passphrase_stdin
run_test "--generate-key-file: 4096 bytes, mode 0600, reused when present" t_generate_key_file
run_test "LUKS2 --label and --uuid in luksDump, LUKS1 --uuid" t_label_uuid
run_test "--progress-json lines parse, last is phase done" t_progress_json
test_done
