#!/bin/bash
# mkdisk.sh: build a test disk image without loop devices or mounts.
#
#   mkdisk.sh OUT [--root-mib N (64)] [--state-mib N (24)]
#                 [--header-mib N (16)] [--fill] [--whole]
#                 [--payload-kib N (3072)] [--fill-data]
#   (MKDISK_ID=1..f in the environment: other UUIDs, for a second disk)
#
# Default: OUT is a GPT disk (sgdisk on the image file):
#   partition 1 "luksipc-state", --state-mib, raw and zeroed
#   partition 2 "root", --root-mib, holding an ext4 labelled "root" with a
#               fixed UUID, sized (root-mib - header-mib) less 4 KiB so a
#               LUKS header of header-mib and luksipc's in-progress marker
#               fit, or the whole partition with --fill
# --whole: OUT is just the root partition's content (an ext4 in a file of
#   root-mib), for converting a whole device or image file.
#
# The ext4 (4 KiB blocks, so it mounts on 4096-byte dm-crypt sectors) is
# built with mke2fs -d from a tree holding a busybox userland, /etc/os-release,
# /sbin/init (lib/root-init.sh, which prints the LUKSIPC-VERDICT line),
# /lib/qemu-test.sh, /payload/* (random data, about --payload-kib in total)
# and /manifest.sha256 over the payload.
#
# --fill-data: also fill the ext4 to within FILL_MARGIN_BLOCKS (32) 4 KiB
#   blocks of full with random files (non-sparse: no zero block for mke2fs
#   to leave out), so that live data spans the whole converted range and a
#   power cut anywhere lands in bytes the final hash covers: /var/fill/NNN.bin
#   of 4 MiB, then the large /var/fill/zz-top.bin (a quarter of the space, at
#   most 16 MiB); mke2fs -d allocates first fit in name order and /var is
#   the last top-level directory, so zz-top.bin lands at the top of the
#   filesystem. debugfs `stat` checks that it ends
#   within 1 MiB of the end, and dumpe2fs that no free extent reaches 1 MiB
#   (the scenarios' step size); otherwise mkdisk.sh fails. The fill files
#   are not in /manifest.sha256 (the guest would spend minutes hashing them
#   under TCG); the whole-filesystem hash covers them.
#
# Prints on stdout, as shell-sourceable lines:
#   ROOT_UUID=  ROOT_PARTUUID=  STATE_PARTUUID=  DISK_GUID=
#   ROOT_FS_BYTES=   size of the ext4 (the plaintext P to compare)
#   ROOT_FS_SHA256=  sha256 of those bytes
#   ROOT_OFFSET=  STATE_OFFSET=  byte offsets of the partitions (0 with --whole)
#   ROOT_BYTES=  STATE_BYTES=    partition sizes
# and with --fill-data:
#   ROOT_FS_FILL_BYTES=     bytes of random data under /var/fill
#   ROOT_FS_TOP_FILE=       /var/fill/zz-top.bin
#   ROOT_FS_TOP_START=  ROOT_FS_TOP_END=   byte offsets in the ext4 of the
#                           top file's first block and of the end of its
#                           last block
#   ROOT_FS_FREE_MAX=       bytes of the largest free extent
# and a one-line summary of the placement on stderr.
set -eu

here=$(cd "$(dirname "$0")" && pwd)

# MKDISK_ID (one hex digit, default 0): a second disk of the same boot
# gets other UUIDs (a boot with two devices to convert)
id=${MKDISK_ID:-0}
case $id in [0-9a-f]) ;; *) echo "mkdisk.sh: MKDISK_ID must be one hex digit" >&2; exit 1 ;; esac
ROOT_UUID=5e1f0c1e-2b4d-4c3a-9a7e-10c5a1ce${id}001
ROOT_PARTUUID=5e1f0c1e-2b4d-4c3a-9a7e-10c5a1ce${id}002
STATE_PARTUUID=5e1f0c1e-2b4d-4c3a-9a7e-10c5a1ce${id}003
DISK_GUID=5e1f0c1e-2b4d-4c3a-9a7e-10c5a1ce${id}004

die() {
	echo "mkdisk.sh: $*" >&2
	exit 1
}

num() {
	case "$1" in '' | *[!0-9]*) die "bad number '$1'" ;; esac
	echo "$1"
}

[ $# -ge 1 ] || die "usage: mkdisk.sh OUT [--root-mib N] [--state-mib N] [--header-mib N] [--fill] [--whole]"
out=$1
shift
root_mib=64 state_mib=24 header_mib=16 fill=0 whole=0 payload_kib=3072 fill_data=0
while [ $# -gt 0 ]; do
	case "$1" in
	--fill) fill=1; shift; continue ;;
	--fill-data) fill_data=1; shift; continue ;;
	--whole) whole=1; shift; continue ;;
	esac
	[ $# -ge 2 ] || die "option '$1' needs a value"
	case "$1" in
	--root-mib) root_mib=$(num "$2") ;;
	--state-mib) state_mib=$(num "$2") ;;
	--header-mib) header_mib=$(num "$2") ;;
	--payload-kib) payload_kib=$(num "$2") ;;
	*) die "unknown option '$1'" ;;
	esac
	shift 2
done
fs_mib=$root_mib
[ "$fill" = 1 ] || fs_mib=$((root_mib - header_mib))
[ "$fs_mib" -ge 8 ] || die "filesystem of ${fs_mib} MiB is too small; raise --root-mib"
for tool in mke2fs sgdisk busybox debugfs dumpe2fs; do
	command -v "$tool" >/dev/null || die "'$tool' not found; see tools/deps/qemu.list"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/mkdisk.XXXXXX")
trap 'rm -rf "$work"' EXIT
tree=$work/root

# The root tree.
mkdir -p "$tree"/{bin,sbin,etc,dev,proc,sys,run,tmp,mnt,root,lib,payload}
cp "$(command -v busybox)" "$tree/bin/busybox"
for applet in $(busybox --list); do
	[ "$applet" = busybox ] || ln -sf busybox "$tree/bin/$applet"
done
install -m 755 "$here/root-init.sh" "$tree/sbin/init"
install -m 644 "$here/guest-lib.sh" "$tree/lib/qemu-test.sh"
cat >"$tree/etc/os-release" <<'EOF'
NAME="luksipc test root"
ID=luksipc-test
PRETTY_NAME="luksipc test root"
VERSION_ID=1
EOF
echo "root:x:0:0:root:/root:/bin/sh" >"$tree/etc/passwd"
echo "root:x:0:" >"$tree/etc/group"
# Payload: one odd-sized file, the rest in 512 KiB files.
left=$((payload_kib * 1024))
i=0
head -c 70001 /dev/urandom >"$tree/payload/odd.bin"
while [ "$left" -gt 0 ]; do
	n=$((left < 524288 ? left : 524288))
	head -c "$n" /dev/urandom >"$tree/payload/data$i.bin"
	left=$((left - n))
	i=$((i + 1))
done
(cd "$tree" && find payload etc/os-release sbin/init -type f | sort | xargs sha256sum) |
	sed 's|  |  /|' >"$tree/manifest.sha256"

fs=$work/root.ext4
mkfs() {
	rm -f "$fs"
	# 4 KiB short of the header's room: luksipc's in-progress marker takes the
	# device's last 4 KiB (docs/format.md), so the power-cut scenarios cut
	# through its write and its overwrite too; --fill fills the partition
	if [ "$fill" = 1 ]; then
		truncate -s "${fs_mib}M" "$fs"
	else
		truncate -s $((fs_mib * 1048576 - 4096)) "$fs"
	fi
	mke2fs -q -F -t ext4 -b 4096 -L root -U "$ROOT_UUID" -d "$tree" \
		-E lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0,nodiscard \
		"$fs"
}
# dumpe2fs_field NAME: the value of "NAME:" in dumpe2fs -h of $fs
dumpe2fs_field() {
	dumpe2fs -h "$fs" 2>/dev/null | sed -n "s/^$1:[[:space:]]*//p"
}
mkfs
fill_lines=''
if [ "$fill_data" = 1 ]; then
	# What the tree above leaves free, less a margin for the directory
	# and extent blocks of the fill files themselves.
	free=$(dumpe2fs_field 'Free blocks')
	total=$(dumpe2fs_field 'Block count')
	margin=$(num "${FILL_MARGIN_BLOCKS:-32}")
	[ "$free" -gt $((margin + 256)) ] || die "only $free blocks free in the ${fs_mib} MiB filesystem; nothing to fill"
	left=$(((free - margin) * 4096))
	top=$((left / 4))
	[ "$top" -le 16777216 ] || top=16777216
	fill_bytes=$left
	left=$((left - top))
	mkdir -p "$tree/var/fill"
	i=0
	while [ "$left" -gt 0 ]; do
		n=$((left < 4194304 ? left : 4194304))
		head -c "$n" /dev/urandom >"$tree/var/fill/$(printf %03d "$i").bin"
		left=$((left - n))
		i=$((i + 1))
	done
	head -c "$top" /dev/urandom >"$tree/var/fill/zz-top.bin"
	mkfs || die "the fill files do not fit; raise FILL_MARGIN_BLOCKS"
	# The top file's extents, "(0-4095):16320-20415, (4096):20416, ...":
	# its first block and its highest one.
	ext=$(debugfs -R "stat /var/fill/zz-top.bin" "$fs" 2>/dev/null |
		sed -n '/^EXTENTS:/{n;p;}' | tr ',' '\n' |
		sed -n 's/.*):\([0-9]*\)\(-\([0-9]*\)\)\{0,1\}[[:space:]]*$/\1 \3/p')
	[ -n "$ext" ] || die "debugfs shows no extents for /var/fill/zz-top.bin"
	first=$(echo "$ext" | awk 'NR == 1 { print $1 }')
	last=$(echo "$ext" | awk '{ e = ($2 == "" ? $1 : $2); if (e > m) m = e } END { print m }')
	# The largest run of free blocks, from dumpe2fs's "Free blocks: a-b, c".
	free_max=$(dumpe2fs "$fs" 2>/dev/null | sed -n 's/^  Free blocks: //p' | tr ',' '\n' |
		awk -F- 'NF { n = ($2 == "" ? 1 : $2 - $1 + 1); if (n > m) m = n } END { print m + 0 }')
	end=$(((last + 1) * 4096)) size=$((total * 4096))
	[ $((size - end)) -lt 1048576 ] ||
		die "/var/fill/zz-top.bin ends at byte $end, $((size - end)) bytes below the end of the filesystem"
	[ $((free_max * 4096)) -lt 1048576 ] ||
		die "a free extent of $((free_max * 4096)) bytes is left in the filesystem"
	echo "mkdisk.sh: $((fill_bytes >> 20)) MiB of fill in $((i + 1)) files; /var/fill/zz-top.bin at blocks" \
		"$first..$last of $total (bytes $((first * 4096))..$end of $size); largest free extent $((free_max * 4)) KiB" >&2
	fill_lines="ROOT_FS_FILL_BYTES=$fill_bytes
ROOT_FS_TOP_FILE=/var/fill/zz-top.bin
ROOT_FS_TOP_START=$((first * 4096))
ROOT_FS_TOP_END=$end
ROOT_FS_FREE_MAX=$((free_max * 4096))"
fi
fs_bytes=$(stat -c %s "$fs")
fs_sha=$(sha256sum "$fs" | cut -d' ' -f1)

rm -f "$out"
if [ "$whole" = 1 ]; then
	mv "$fs" "$out"
	truncate -s "${root_mib}M" "$out"
	state_off=0 root_off=0 state_mib=0
else
	# 1 MiB in front for the GPT, 1 MiB behind for its backup.
	mib=1048576
	state_off=$mib
	root_off=$(((1 + state_mib) * mib))
	truncate -s $(((2 + state_mib + root_mib) * mib)) "$out"
	sgdisk -o -U "$DISK_GUID" \
		-n "1:$((state_off / 512)):+${state_mib}M" -c 1:luksipc-state -t 1:8300 -u "1:$STATE_PARTUUID" \
		-n "2:$((root_off / 512)):+${root_mib}M" -c 2:root -t 2:8300 -u "2:$ROOT_PARTUUID" \
		"$out" >/dev/null
	dd if="$fs" of="$out" bs=1M seek=$((root_off / mib)) conv=notrunc,sparse status=none
fi

cat <<EOF
ROOT_UUID=$ROOT_UUID
ROOT_PARTUUID=$ROOT_PARTUUID
STATE_PARTUUID=$STATE_PARTUUID
DISK_GUID=$DISK_GUID
ROOT_FS_BYTES=$fs_bytes
ROOT_FS_SHA256=$fs_sha
ROOT_OFFSET=$root_off
ROOT_BYTES=$((root_mib * 1048576))
STATE_OFFSET=$state_off
STATE_BYTES=$((state_mib * 1048576))
EOF
[ -z "$fill_lines" ] || printf '%s\n' "$fill_lines"
