#!/bin/sh
# A fresh start checks the device for signs of a conversion in progress.
# With the backward shift the plaintext superblock stays readable until the
# last step, so a conversion whose state store is lost makes the device look
# new. Each case interrupts a conversion far enough for the first copy a
# filesystem spreads over the device to be overwritten (ext4 backup
# superblocks, XFS allocation group headers, the btrfs mirror at 64 MiB, the
# second FAT; for --reencrypt, the top of the filesystem that decrypts with
# the old key to noise), deletes the state, and runs the same command again:
# it must refuse (3) with the device unchanged, name what it found, and go
# ahead with --no-seatbelt only. The fresh conversions of every filesystem
# in t10-roundtrip.sh are the check against false alarms.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

# lost_state SIGN CMD...: the first run of CMD is cut by the fault in
# $FAULT (exit 5); the state is deleted; CMD again must exit 3, leave the
# device as it was and say SIGN (an extended regex). NO_MARKER=1: the
# in-progress marker is zeroed first, so that the filesystem's signs are
# what the run must find.
lost_state() {
	sign=$1
	shift
	LUKSIPC_TEST_FAULT=$FAULT run_rc 5 "$@"
	d=$(status_field st "done")
	echo "converted before the cut: $d bytes"
	rm -f st
	if [ -n "${NO_MARKER:-}" ]; then
		# the filesystem's own signs, as for a run without the marker
		m=$(($(fsize dev.img) / 4096 * 4096 - 4096))
		dd if=/dev/zero of=dev.img bs=4096 seek=$((m / 4096)) count=1 conv=notrunc status=none
	fi
	dsum=$(sha dev.img)
	run_rc 3 "$@"
	assert_one_error_line "$T/err"
	assert_grep "sign of a conversion in progress" "$T/err"
	assert_grep "$sign" "$T/err"
	assert_eq "$(sha dev.img)" "$dsum" "the refused run changed the device"
	[ ! -e st ] || fail "the refused run left a state store"
}

# fs_image TYPE N H: dev.img of N bytes with a small TYPE filesystem that
# ends at N - H, laid out so that a copy lies in the range a conversion
# overwrites first; orig.img its copy; key.
fs_image() {
	fs=$1 n=$2 h=$3
	fsz=$(((n - h) / 4096 * 4096))
	need_cmd "mkfs.$fs"
	fx_payload payload $((fsz / 8))
	truncate -s "$n" dev.img
	case $fs in
	ext4) # 1 MiB groups: backups at 1, 3, 5, 7 MiB
		mke2fs -q -F -t ext4 -b 1024 -g 1024 -E nodiscard -d payload dev.img $((fsz / 1024)) ;;
	xfs) # four 16 MiB allocation groups
		fx_proto payload >proto
		QA_CHECK_FS=1 TEST_DIR=/tmp TEST_DEV=fixture \
			mkfs.xfs -q -f -K -d size="$fsz",agcount=4 -p proto dev.img >/dev/null ;;
	btrfs) # a mirror superblock at 64 MiB
		mkfs.btrfs -q -f -M -K -b "$fsz" --rootdir payload dev.img >/dev/null 2>&1 ;;
	vfat) # 8192 reserved sectors: the FATs start at 4 MiB, above the 2 MiB header
		need_cmd mcopy
		mkfs.vfat -S 512 -R 8192 dev.img $((fsz / 1024)) >/dev/null
		MTOOLS_SKIP_CHECK=1 mcopy -s -Q -i dev.img payload/* ::/ ;;
	esac
	rm -rf payload proto
	assert_eq "$(fsize dev.img)" "$n" "image size"
	cp dev.img orig.img
	random_key key
}

c1() {
	conv -d dev.img --state st --key-file key --type luks1 "$@"
}

t_ext4() {
	need_luksipc
	fs_image ext4 $((10 * MiB + 5 * 4096)) $((2 * MiB))
	NO_MARKER=1 FAULT=write:17:EIO lost_state "ext4 backup superblock of group 7" c1 --step-size $((256 * 1024))
	# with --no-seatbelt the admin's word overrides it
	run_rc 0 c1 --step-size $((256 * 1024)) --no-seatbelt
	assert_grep "sign of a conversion in progress" "$T/err"
}

t_xfs() {
	need_luksipc
	fs_image xfs $((66 * MiB + 3 * 4096)) $((2 * MiB))
	NO_MARKER=1 FAULT=write:11:EIO lost_state "XFS superblock copy of allocation group 3" c1
}

t_btrfs() {
	need_luksipc
	fs_image btrfs $((80 * MiB + 4096)) $((2 * MiB))
	NO_MARKER=1 FAULT=write:10:EIO lost_state "btrfs mirror superblock at byte 67108864" c1
}

t_vfat() {
	need_luksipc
	fs_image vfat $((20 * MiB + 5 * 512)) $((2 * MiB))
	NO_MARKER=1 FAULT=write:70:EIO lost_state "second FAT" c1 --step-size $((256 * 1024))
}

# A LUKS1 source (2 MiB header) made by luksipc from ext4 ending before N - HNEW.
luks1_src() {
	fx_make ext4 dev.img "$1" "$2"
	cp dev.img orig.img
	random_key old
	random_key key
	run_rc 0 conv -d dev.img --state st.src --key-file old --type luks1
	rm -f st.src
}

t_reencrypt_journal() {
	need_luksipc
	luks1_src $((12 * MiB + 3 * 4096)) $((2 * MiB))
	FAULT=write:7:EIO lost_state "decrypts to random data, as data a run already converted does" \
		conv --reencrypt -d dev.img --state st --old-key-file old --key-file key --type luks1 \
		--step-size $((1 * MiB))
}

t_reencrypt_shift() {
	need_luksipc
	luks1_src $((30 * MiB + 5 * 4096)) $((8 * MiB))
	FAULT=write:6:EIO lost_state "decrypts to random data, as data a run already converted does" \
		conv --reencrypt -d dev.img --state st --old-key-file old --key-file key \
		--header-size $((8 * MiB)) --step-size $((2 * MiB))
}

# The device-side marker (docs/format.md): an ext4 of 4 KiB blocks in one
# group leaves no backup superblock in reach, the window the filesystem
# checks cannot close; the fixture ends 4 KiB below N - H, so the run has
# its marker at M, the device's last whole 4 KiB.
marker_image() {
	fx_make ext4 dev.img "$1" "$2"
	cp dev.img orig.img
	random_key key
	M=$(($(fsize dev.img) / 4096 * 4096 - 4096))
}

# has_marker IMG: the 4 KiB at M start with the marker's magic.
has_marker() {
	[ "$(dd if="$1" bs=4096 skip=$((M / 4096)) count=1 status=none | head -c 16)" = LUKSIPC-INFLIGHT ]
}

t_marker_lost_store() {
	need_luksipc
	marker_image $((40 * MiB + 3 * 512)) $((2 * MiB))
	# 3 steps of 1 MiB are on the device: no filesystem check can tell
	FAULT=write:5:EIO lost_state "in-progress marker at byte $M \(LUKS UUID [0-9a-f-]{36}, started on [0-9-]+ at [0-9:]+ UTC, state store '[^']*/st', state UUID [0-9a-f]{32}\)" \
		c1 --step-size $((1 * MiB))
	# another --header-size looks in the same place
	dsum=$(sha dev.img)
	run_rc 3 conv -d dev.img --state st --key-file key --header-size $((4 * MiB))
	assert_grep "in-progress marker at byte $M" "$T/err"
	assert_eq "$(sha dev.img)" "$dsum" "the refused run changed the device"
	# without the marker, nothing tells: the window the marker closes
	dd if=/dev/zero of=dev.img bs=4096 seek=$((M / 4096)) count=1 conv=notrunc status=none
	run_rc 0 c1 --step-size $((1 * MiB))
	assert_no_grep "sign of a conversion in progress" "$T/err"
}

t_marker_resume() {
	need_luksipc
	marker_image $((24 * MiB + 5 * 512)) $((2 * MiB))
	LUKSIPC_TEST_FAULT=write:4:EIO run_rc 5 c1 --step-size $((1 * MiB))
	has_marker dev.img || fail "no marker at byte $M after the first steps"
	# a cut between the started mark and the marker: the resume writes it
	dd if=/dev/zero of=dev.img bs=4096 seek=$((M / 4096)) count=1 conv=notrunc status=none
	LUKSIPC_TEST_FAULT=write:3:EIO run_rc 5 c1 --step-size $((1 * MiB))
	has_marker dev.img || fail "the resume did not write the missing marker"
	run_rc 0 c1 --step-size $((1 * MiB))
	has_marker dev.img && fail "the marker is still there after the conversion"
	# the data area ends with ciphertext of zeros where the marker was
	verify_plain dev.img key orig.img $(($(fsize dev.img) - 2 * MiB))
}

t_marker_other() {
	need_luksipc
	marker_image $((24 * MiB + 5 * 512)) $((2 * MiB))
	cp dev.img dev2.img
	LUKSIPC_TEST_FAULT=write:4:EIO run_rc 5 c1 --step-size $((1 * MiB))
	LUKSIPC_TEST_FAULT=write:4:EIO run_rc 5 conv -d dev2.img --state st2 --key-file key --type luks1 --step-size $((1 * MiB))
	# the marker of the other conversion over this one's
	dd if=dev2.img of=dev.img bs=4096 skip=$((M / 4096)) seek=$((M / 4096)) count=1 conv=notrunc status=none
	dsum=$(sha dev.img)
	run_rc 3 c1 --step-size $((1 * MiB))
	assert_one_error_line "$T/err"
	assert_grep "carries the in-progress marker of another luksipc conversion \(state store '[^']*/st2'\)" "$T/err"
	assert_eq "$(sha dev.img)" "$dsum" "the refused resume changed the device"
}

t_marker_no_room() {
	need_luksipc
	FX_FILL=1 marker_image $((24 * MiB + 5 * 512)) $((2 * MiB))
	run_rc 0 c1
	assert_grep "leaves no 4 KiB after it for luksipc's in-progress marker" "$T/err"
	verify_plain dev.img key orig.img $(($(fsize dev.img) - 2 * MiB))
}

run_test "in-progress marker, ext4 with no copy in reach, state lost mid-run: refused (3), device unchanged" t_marker_lost_store
run_test "in-progress marker written again by a resume, overwritten at the end" t_marker_resume
run_test "in-progress marker of another conversion: resume refused (3), device unchanged" t_marker_other
run_test "filesystem filling N - H: no marker, a warning, a correct result" t_marker_no_room
run_test "ext4 (backup superblocks), state lost mid-run: refused (3), device unchanged" t_ext4
run_test "xfs (allocation group headers), state lost mid-run: refused (3)" t_xfs
run_test "btrfs (mirror at 64 MiB), state lost mid-run: refused (3)" t_btrfs
run_test "vfat (second FAT above the header), state lost mid-run: refused (3)" t_vfat
run_test "--reencrypt (journal), state lost mid-run: refused (3)" t_reencrypt_journal
run_test "--reencrypt (shift), state lost mid-run: refused (3)" t_reencrypt_shift
test_done
