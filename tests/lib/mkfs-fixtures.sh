# shellcheck shell=sh
# Filesystem image fixtures for the luksipc host tests.
#
#   fx_payload DIR BYTES       a tree of a few hundred random files and a few
#                              larger ones, about BYTES in total
#   fx_make TYPE IMG N H       IMG of N bytes holding a TYPE (ext4, xfs,
#                              btrfs, vfat) filesystem full of a payload, that
#                              ends at or before N - H
#   fx_fs_end TYPE IMG         bytes from the start of IMG to the end of the
#                              filesystem, read from its own superblock
#
# ext4 is made over the whole image by `mke2fs -d` and then shrunk by H with
# resize2fs, as an admin would before converting (tiny ones that resize2fs
# cannot shrink are made at the reduced size); the others are made at the
# reduced size directly. Every fixture checks its own end against N - H.
# Needs: e2fsprogs, xfsprogs, btrfs-progs, dosfstools, mtools.

fx_payload() {
	/usr/bin/python3 - "$1" "$2" <<'PYEOF'
import os, random, sys
root, budget = sys.argv[1], int(sys.argv[2])
rnd = random.Random(os.urandom(8))
os.makedirs(root, exist_ok=True)
big = [budget // 6, budget // 8, budget // 10]
for i, n in enumerate(big):
    with open(os.path.join(root, "big%d.bin" % i), "wb") as f:
        f.write(os.urandom(n))
left = budget - sum(big)
i = 0
while left > 0 and i < 400:
    d = os.path.join(root, "dir%02d" % (i % 17), "sub%d" % (i % 3))
    os.makedirs(d, exist_ok=True)
    n = min(left, rnd.choice([0, 1, 100, 511, 512, 513, 4095, 4096, 4097, 12000, 30000, 65536]))
    with open(os.path.join(d, "file%03d.dat" % i), "wb") as f:
        f.write(os.urandom(n))
    left -= max(n, 1)
    i += 1
PYEOF
}

fx_fs_end() {
	case "$1" in
	ext4)
		dumpe2fs -h "$2" 2>/dev/null | awk -F: '
			/^Block count/ {c = $2} /^Block size/ {b = $2}
			END {printf "%d\n", c * b}'
		;;
	xfs)
		xfs_db -r -c 'sb 0' -c 'p dblocks' -c 'p blocksize' "$2" |
			awk -F' = ' '/^dblocks/ {d = $2} /^blocksize/ {b = $2} END {printf "%d\n", d * b}'
		;;
	btrfs)
		btrfs inspect-internal dump-super "$2" | awk '$1 == "total_bytes" {print $2; exit}'
		;;
	vfat)
		/usr/bin/python3 - "$2" <<'PYEOF'
import struct, sys
b = open(sys.argv[1], "rb").read(512)
bps = struct.unpack_from("<H", b, 11)[0]
tot = struct.unpack_from("<H", b, 19)[0] or struct.unpack_from("<I", b, 32)[0]
print(bps * tot)
PYEOF
		;;
	*)
		echo "fx_fs_end: unknown type $1" >&2
		return 1
		;;
	esac
}

# Payload bytes that fit comfortably in a filesystem of $1 bytes.
fx_budget() {
	if [ "$1" -lt 33554432 ]; then
		echo $(($1 * 15 / 100))
	else
		echo $(($1 * 30 / 100))
	fi
}

fx_ext4() {
	mke2fs -q -F -t ext4 -b 4096 -E nodiscard -d "$fx_dir" "$fx_img"
	if ! resize2fs -f "$fx_img" "$((fx_fs / 1024))K" >"$fx_img.log" 2>&1; then
		# tiny filesystems cannot always shrink by half (journal
		# placement): make one of the reduced size directly
		rm -f "$fx_img"
		truncate -s "$fx_n" "$fx_img"
		mke2fs -q -F -t ext4 -b 4096 -E nodiscard -d "$fx_dir" "$fx_img" \
			"$((fx_fs / 1024))K" || {
			cat "$fx_img.log" >&2
			return 1
		}
	fi
	rm -f "$fx_img.log"
	# resize2fs also shrinks an image file; give the device its size back
	truncate -s "$fx_n" "$fx_img"
}

fx_make() {
	fx_type=$1
	fx_img=$2
	fx_n=$3
	fx_h=$4
	# The filesystem ends 4 KiB below the header's room, so that luksipc
	# has its in-progress marker (docs/format.md); FX_FILL=1: it fills the
	# room exactly, and the conversion runs without one.
	if [ "${FX_FILL:-0}" = 1 ]; then
		fx_fs=$(((fx_n - fx_h) / 4096 * 4096))
	else
		fx_fs=$(((fx_n - fx_h) / 4096 * 4096 - 4096))
	fi
	fx_dir=$fx_img.payload
	rm -rf "$fx_dir" "$fx_img"
	fx_payload "$fx_dir" "$(fx_budget "$fx_fs")"
	truncate -s "$fx_n" "$fx_img"
	case "$fx_type" in
	ext4)
		fx_ext4
		;;
	xfs)
		# mkfs.xfs refuses < 300 MB unless run under fstests' variables.
		fx_proto "$fx_dir" >"$fx_img.proto"
		QA_CHECK_FS=1 TEST_DIR=/tmp TEST_DEV=fixture \
			mkfs.xfs -q -f -K -d size="$fx_fs" -p "$fx_img.proto" "$fx_img" >/dev/null
		rm -f "$fx_img.proto"
		;;
	btrfs)
		mkfs.btrfs -q -f -M -K -b "$fx_fs" --rootdir "$fx_dir" "$fx_img" >/dev/null 2>&1
		;;
	vfat)
		mkfs.vfat -S 512 "$fx_img" "$((fx_fs / 1024))" >/dev/null 2>&1
		MTOOLS_SKIP_CHECK=1 mcopy -s -Q -i "$fx_img" "$fx_dir"/* ::/
		;;
	*)
		echo "fx_make: unknown type $fx_type" >&2
		return 1
		;;
	esac
	rm -rf "$fx_dir"
	fx_end=$(fx_fs_end "$fx_type" "$fx_img")
	[ "$(stat -c %s "$fx_img")" -eq "$fx_n" ] || {
		echo "fx_make: $fx_type changed the size of $fx_img" >&2
		return 1
	}
	if [ -z "$fx_end" ] || [ "$fx_end" -le 0 ] || [ "$fx_end" -gt $((fx_n - fx_h)) ]; then
		echo "fx_make: $fx_type ends at '$fx_end', past N-H = $((fx_n - fx_h))" >&2
		return 1
	fi
	# After the filesystem: zeros, as on a new partition (a shrink leaves
	# old metadata there). luksipc gives up [P - 4 KiB, P) to its marker and
	# leaves ciphertext of zeros there; the tests compare the first N - H
	# bytes.
	dd if=/dev/zero of="$fx_img" bs=512 seek=$((fx_end / 512)) count=$(((fx_n - fx_end) / 512)) \
		conv=notrunc status=none
}

# An xfs prototype file (mkfs.xfs -p) that copies the tree DIR.
fx_proto() {
	/usr/bin/python3 - "$1" <<'PYEOF'
import os, sys
root = sys.argv[1]
print("/dev/null\n0 0\nd--755 0 0")
def walk(d, depth):
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        ind = " " * depth
        if os.path.isdir(p):
            print("%s%s d--755 0 0" % (ind, name))
            walk(p, depth + 1)
            print("%s$" % ind)
        else:
            print("%s%s ---644 0 0 %s" % (ind, name, os.path.abspath(p)))
walk(root, 1)
print("$")
PYEOF
}
