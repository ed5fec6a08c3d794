#!/bin/sh
# convert --used-only on ext4 images whose files are spread over the whole
# filesystem (live files written between fillers, the fillers deleted:
# tests/lib/usedfs.py populate). Each 4 KiB block of every file starts with
# a marker, LIVE for live files, DEAD for deleted ones.
#
# - round trips at 512 and 4096-byte sectors: the image decrypted by the
#   independent tests/lib/luksdecrypt.py holds every used block of the
#   original (the used blocks from dumpe2fs, not from luksipc), every file
#   reads back identical (debugfs rdump) and e2fsck -fn is clean;
# - no live plaintext: no LIVE marker and no 4 KiB block of a live file at
#   any 512-byte offset of the converted device; DEAD markers may remain
#   with --used-only, none with --used-only=wipe;
# - vfat: the same through its FAT (files compared with mtools);
# - refusals leave the device as it was: a filesystem that is not clean
#   (journal to replay, not cleanly unmounted, orphan list; a dirty vfat),
#   one luksipc has no map for, a state store that cannot hold the map;
# - a resume uses the map saved on the store, not a new read.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

USEDFS=$TESTS_ROOT/tests/lib/usedfs.py

# spread_fixture N H BLOCKSIZE FILL: dev.img of N bytes with an ext4 of
# BLOCKSIZE-byte blocks ending at N - H, files spread over it, live copies
# in tree/; orig.img, its used ranges in used.txt, and a key.
spread_fixture() {
	need_cmd mkfs.ext4
	need_cmd debugfs
	truncate -s "$1" dev.img
	mkfs.ext4 -q -F -b "$3" dev.img "$((($1 - $2) / 1024))k" >/dev/null
	"$PY" "$USEDFS" populate dev.img "$(rand_between 1 1000000)" "$4" tree
	e2fsck -fn dev.img >/dev/null 2>&1 || fail "the fixture's filesystem is not clean"
	cp dev.img orig.img
	"$PY" "$USEDFS" ranges orig.img >used.txt
	random_key key
}

# verify_used N H: the decrypted image holds the original used blocks, the
# same files, and a clean filesystem.
verify_used() {
	"$PY" "$LUKSDECRYPT" dev.img --key-file key --length $(($1 - $2)) --out plain.img ||
		fail "luksdecrypt cannot decrypt dev.img"
	"$PY" "$USEDFS" compare plain.img orig.img used.txt || fail "a used block differs after decryption"
	e2fsck -fn plain.img >fsck.log 2>&1 || { cat fsck.log; fail "e2fsck -fn finds errors in the decrypted filesystem"; }
	rm -rf got want
	mkdir got want
	debugfs -R "rdump / $T/got" plain.img >/dev/null 2>&1
	debugfs -R "rdump / $T/want" orig.img >/dev/null 2>&1
	[ "$(find want -type f | wc -l)" -gt 10 ] || fail "rdump found no files in the original"
	diff -r got want || fail "files differ after decryption"
	cryptsetup open --test-passphrase --key-file key dev.img || fail "cryptsetup does not accept the key"
	echo "verified: $(find want -type f | wc -l) files identical, e2fsck clean"
}

# no_live_plaintext: no LIVE marker, no block of a live file on dev.img.
no_live_plaintext() {
	"$PY" "$USEDFS" scan dev.img tree || fail "plaintext of a live file is on the converted device"
	live=$("$PY" "$USEDFS" markers dev.img LIVE)
	assert_eq "$live" 0 "LIVE markers on the converted device"
}

# roundtrip N H SECTOR BLOCKSIZE STEP MODE
roundtrip() {
	need_luksipc
	n=$1 h=$2 ss=$3 bs=$4 step=$5 mode=$6
	spread_fixture "$n" "$h" "$bs" 0.3
	dead_before=$("$PY" "$USEDFS" markers orig.img DEAD)
	[ "$dead_before" -gt 100 ] || fail "the fixture has only $dead_before deleted blocks"
	run_rc 0 conv -d dev.img --state st --key-file key --header-size "$h" --step-size "$step" \
		--sector-size "$ss" "$mode" --progress-json
	assert_grep "$mode: the ext4 filesystem uses" "$T/err"
	grep '^{' "$T/err" >progress || fail "no JSON progress lines"
	verify_used "$n" "$h"
	no_live_plaintext
	dead=$("$PY" "$USEDFS" markers dev.img DEAD)
	echo "deleted-file blocks with their marker: $dead_before before, $dead after"
	if [ "$mode" = --used-only=wipe ]; then
		assert_eq "$dead" 0 "DEAD markers after --used-only=wipe"
	fi
	run_rc 0 lx status --state st
	assert_grep '^phase: done$' "$T/out"
	assert_grep "^used-only: $([ "$mode" = --used-only ] && echo yes || echo wipe)\$" "$T/out"
	assert_grep '^used-bytes: [1-9][0-9]*$' "$T/out"
	# progress counts work: the used bytes with --used-only (reads and
	# writes follow them), the whole payload with =wipe (every byte written)
	if [ "$mode" = --used-only ]; then
		work=$(status_field st used-bytes)
	else
		work=$(status_field st data-size)
	fi
	"$PY" - progress "$work" <<'PYEOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
work = int(sys.argv[2])
assert lines[-1]["phase"] == "done" and lines[-1]["done"] == lines[-1]["total"] == work, (lines[-1], work)
done = [o["done"] for o in lines]
assert done == sorted(done), done
assert all(o["total"] == work for o in lines), "a line with another total"
print("%d progress lines, total %d (the work), done %s" % (len(lines), work, done[:8]))
PYEOF
	# the same command again: already converted, nothing written
	h1=$(sha dev.img)
	run_rc 0 conv -d dev.img --state st --key-file key --used-only
	assert_eq "$(sha dev.img)" "$h1" "device after a rerun"
}

t_rt_512() { roundtrip $((64 * MiB + 3 * 4096 + 512)) $((4 * MiB)) 512 1024 $((1 * MiB)) --used-only; }
t_rt_4096() { roundtrip $((72 * MiB + 5 * 4096)) $((4 * MiB)) 4096 4096 $((384 * 1024)) --used-only; }
t_rt_wipe() { roundtrip $((48 * MiB + 4096)) $((2 * MiB)) 512 4096 $((2 * MiB)) --used-only=wipe; }
t_rt_luks1() {
	need_luksipc
	spread_fixture $((40 * MiB)) $((2 * MiB)) 4096 0.2
	run_rc 0 conv -d dev.img --state st --key-file key --type luks1 --used-only
	verify_used $((40 * MiB)) $((2 * MiB))
	no_live_plaintext
}

# vfat: the FAT's map; files compared through mtools, fsck.vfat -n clean.
t_rt_vfat() {
	need_luksipc
	need_cmd mkfs.vfat
	need_cmd mcopy
	n=$((40 * MiB + 5 * 512)) h=$((2 * MiB))
	mkfs.vfat -C dev.img $(((n - h) / 1024)) >/dev/null
	truncate -s "$n" dev.img
	"$PY" "$USEDFS" populate-vfat dev.img "$(rand_between 1 1000000)" 0.3 tree
	fsck.vfat -n dev.img >/dev/null || fail "the fixture's filesystem is not clean"
	cp dev.img orig.img
	random_key key
	run_rc 0 conv -d dev.img --state st --key-file key --header-size "$h" --step-size 512K --used-only
	assert_grep "the vfat filesystem uses" "$T/err"
	"$PY" "$LUKSDECRYPT" dev.img --key-file key --length $((n - h)) --out plain.img ||
		fail "luksdecrypt cannot decrypt dev.img"
	fsck.vfat -n plain.img || fail "fsck.vfat -n finds errors in the decrypted filesystem"
	mkdir got want
	mcopy -s -n -i plain.img ::/ got/
	mcopy -s -n -i orig.img ::/ want/
	[ "$(find want -type f | wc -l)" -gt 10 ] || fail "mcopy found no files in the original"
	diff -r got want || fail "files differ after decryption"
	no_live_plaintext
	echo "deleted-file blocks with their marker: $("$PY" "$USEDFS" markers orig.img DEAD) before, $("$PY" "$USEDFS" markers dev.img DEAD) after"
	# a vfat marked dirty (the boot sector's state byte, as Linux sets it while mounted) is refused
	cp orig.img dev.img
	off=37
	[ "$(od -An -tu1 -j 22 -N 2 dev.img | tr -d ' ')" != 00 ] || off=65
	printf '\001' | dd of=dev.img bs=1 seek=$off conv=notrunc 2>/dev/null
	refuse "run fsck.vfat -a" --state st2 --header-size "$h" --used-only
}

# refuse WHY ARGS...: exit 3, one error line matching WHY, device and state untouched.
refuse() {
	why=$1
	shift
	h0=$(sha dev.img)
	run_rc 3 conv -d dev.img --key-file key "$@"
	assert_one_error_line "$T/err"
	assert_grep "$why" "$T/err"
	assert_eq "$(sha dev.img)" "$h0" "device hash after the refusal"
}

t_refuse_dirty() {
	need_luksipc
	spread_fixture $((24 * MiB)) $((2 * MiB)) 4096 0.2
	cp orig.img clean.img
	for how in "feature needs_recovery" "ssv state 0" "ssv state 3" "ssv last_orphan 12"; do
		cp clean.img dev.img
		debugfs -w -R "$how" dev.img >/dev/null 2>&1 || fail "debugfs cannot apply '$how'"
		refuse "run e2fsck -f" --state "st.$$" --header-size 2M --used-only
		[ ! -e "st.$$" ] || fail "a state file was created for a refused conversion ($how)"
		echo "refused ($how): $(grep error "$T/err")"
	done
}

t_refuse_unsupported() {
	need_luksipc
	for fs in xfs btrfs; do
		need_cmd "mkfs.$fs"
		rm -f dev.img st
		fx_make "$fs" dev.img $((40 * MiB)) $((2 * MiB))
		random_key key
		refuse "not of the $fs filesystem.*run without --used-only" --state st --header-size 2M --used-only
		[ ! -e st ] || fail "a state file was created for a refused conversion ($fs)"
	done
}

# The store is a partition (a loop device) that holds 1 MiB + the 2M
# header image + 4 KiB, what the conversion needs without the map, but not
# the map's 4 KiB more: refused, saying what size is needed.
t_refuse_store_too_small() {
	need_luksipc
	need_cmd losetup
	spread_fixture $((24 * MiB)) $((2 * MiB)) 4096 0.2
	truncate -s $((3 * MiB + 4096)) small.part
	loop=$(losetup -f --show small.part 2>/dev/null) || skip "losetup cannot attach a loop device here"
	test_cleanup "losetup -d $loop"
	refuse "state store '$loop' is too small: it needs 3080 KiB" --state "$loop" --header-size 2M --used-only
	# without the map it fits
	run_rc 0 conv -d dev.img --key-file key --state "$loop" --header-size 2M
}

# A resume uses the map saved on the store, never a new read: after an
# interruption the plaintext superblock is marked "not clean" (a new read of
# the map would refuse); the resume still completes, and the result, with
# that superblock put back, is the original. A map that fails its checksum
# is refused with the device untouched.
t_resume_saved_map() {
	need_luksipc
	n=$((48 * MiB + 4096))
	spread_fixture "$n" $((2 * MiB)) 4096 0.3
	LUKSIPC_TEST_DELAY_MS=30 conv_bg -d dev.img --state st --key-file key --header-size 2M \
		--step-size 256K --used-only
	wait_state_progress st || fail "no progress recorded"
	kill -INT "$BG_PID"
	set +e
	wait "$BG_PID"
	rc=$?
	set -e
	[ "$rc" -eq 6 ] || { cat "$T/bg.log"; fail "interrupted run exited $rc, expected 6"; }
	echo "interrupted with $(status_field st "done") bytes converted"
	# s_state (superblock offset 58) = 0: not cleanly unmounted
	printf '\000' | dd of=dev.img bs=1 seek=$((1024 + 58)) conv=notrunc 2>/dev/null
	# the map sits after the 2M header image at 1 MiB: a flipped bit there is refused
	cp st st.good
	printf '\001' | dd of=st bs=1 seek=$((3 * MiB + 8)) conv=notrunc 2>/dev/null
	h0=$(sha dev.img)
	run_rc 3 conv -d dev.img --state st --key-file key --used-only
	assert_grep "allocation map .* fails its checksum" "$T/err"
	assert_eq "$(sha dev.img)" "$h0" "device hash after the refusal"
	cp st.good st
	run_rc 0 conv -d dev.img --state st --key-file key --used-only
	"$PY" "$LUKSDECRYPT" dev.img --key-file key --out plain.img || fail "luksdecrypt cannot decrypt dev.img"
	printf '\000' | dd of=orig.img bs=1 seek=$((1024 + 58)) conv=notrunc 2>/dev/null
	"$PY" "$USEDFS" compare plain.img orig.img used.txt || fail "a used block differs after decryption"
	no_live_plaintext
}

run_test "used-only round trip, ext4 1K blocks, 512-byte sectors, 1M steps" t_rt_512
run_test "used-only round trip, ext4 4K blocks, 4096-byte sectors, 384K steps" t_rt_4096
run_test "used-only=wipe round trip: no deleted-file marker left" t_rt_wipe
run_test "used-only round trip, LUKS1, default header and step" t_rt_luks1
run_test "used-only refuses a filesystem that is not clean (device unchanged)" t_refuse_dirty
run_test "used-only round trip, vfat, and a dirty vfat refused" t_rt_vfat
run_test "used-only refuses xfs and btrfs, naming them (device unchanged)" t_refuse_unsupported
run_test "used-only refuses a state store that cannot hold the map (device unchanged)" t_refuse_store_too_small
run_test "used-only resume after an interruption uses the saved map" t_resume_saved_map
test_done
