#!/bin/bash
# busybox-initrd.sh: build a minimal test initramfs (cpio, gzip).
#
#   busybox-initrd.sh OUT --init SCRIPT [--add-binary PATH[:DEST]]...
#                     [--add-file SRC:DEST]... [--modules "LIST"]
#                     [--add-modules "LIST"]
#
# Contents:
#   /bin/busybox (busybox-static) and a symlink per applet in /bin
#   /init                  SCRIPT
#   /lib/qemu-test.sh      guest helpers (lib/guest-lib.sh)
#   /bin/load-modules      insmods /etc/modules.order, in order
#   /etc/modules.order     "path [params]" lines from `modprobe -S $KVER
#                          --show-depends`, dependencies first, deduplicated
#   /lib/modules/$KVER/... the modules, decompressed to plain .ko
#   each --add-binary at DEST (default /bin/NAME) with the shared libraries
#                          ldd lists, at their own paths, unless static
#   each --add-file SRC at DEST
#
# --modules replaces the default module list, --add-modules extends it.
# Default: virtio_pci virtio_blk dm-crypt xts aesni-intel algif_skcipher
# af_alg ext4. The kernel is the one lib/kernel.sh picks (or $KVER).
# SCRIPT must call load-modules itself.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=qemu-tests/lib/kernel.sh
. "$here/kernel.sh"

die() {
	echo "busybox-initrd.sh: $*" >&2
	exit 1
}

[ $# -ge 1 ] || die "usage: busybox-initrd.sh OUT --init SCRIPT [options]"
out=$1
shift
init=''
modules="virtio_pci virtio_blk dm-crypt xts aesni-intel algif_skcipher af_alg ext4"
binaries=() files=()
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || die "option '$1' needs a value"
	case "$1" in
	--init) init=$2 ;;
	--add-binary) binaries+=("$2") ;;
	--add-file) files+=("$2") ;;
	--modules) modules=$2 ;;
	--add-modules) modules="$modules $2" ;;
	*) die "unknown option '$1'" ;;
	esac
	shift 2
done
[ -r "$init" ] || die "cannot read init script '$init'"
busybox=$(command -v busybox) || die "busybox not found; apt-get install busybox-static"
file -L "$busybox" | grep -q 'statically linked' ||
	die "'$busybox' is not static; apt-get install busybox-static"

stage=$(mktemp -d "${TMPDIR:-/tmp}/bbinitrd.XXXXXX")
trap 'rm -rf "$stage"' EXIT

mkdir -p "$stage"/{bin,sbin,etc,dev,proc,sys,run,tmp,mnt,newroot,root,lib,usr/bin,usr/sbin}
cp "$busybox" "$stage/bin/busybox"
for applet in $("$busybox" --list); do
	[ "$applet" = busybox ] || ln -sf busybox "$stage/bin/$applet"
done
mknod -m 600 "$stage/dev/console" c 5 1
mknod -m 666 "$stage/dev/null" c 1 3
install -m 755 "$init" "$stage/init"
install -m 644 "$here/guest-lib.sh" "$stage/lib/qemu-test.sh"

# Modules, in dependency order.
: >"$stage/etc/modules.order"
declare -A seen=()
for m in $modules; do
	deps=$(modprobe -S "$KVER" --show-depends "$m" 2>&1) ||
		die "module '$m' not found for kernel $KVER: $deps"
	while read -r verb path params; do
		[ "$verb" = insmod ] || continue
		[ -z "${seen[$path]:-}" ] || continue
		seen[$path]=1
		rel=${path#/}
		case "$rel" in
		*.ko.xz) dec="xz -dc"; rel=${rel%.xz} ;;
		*.ko.zst) dec="zstd -qdc"; rel=${rel%.zst} ;;
		*.ko.gz) dec="gzip -dc"; rel=${rel%.gz} ;;
		*) dec="cat" ;;
		esac
		mkdir -p "$stage/$(dirname "$rel")"
		$dec "$path" >"$stage/$rel"
		echo "$rel${params:+ $params}" >>"$stage/etc/modules.order"
	done <<<"$deps"
done
cat >"$stage/bin/load-modules" <<'EOF'
#!/bin/sh
# Load /etc/modules.order in order; report failures other than "already
# loaded" and carry on.
rc=0
while read -r path params; do
	# shellcheck disable=SC2086
	if ! err=$(insmod "/$path" $params 2>&1); then
		case "$err" in
		*"File exists"*) ;;
		*) echo "load-modules: $path: $err" >&2; rc=1 ;;
		esac
	fi
done </etc/modules.order
exit $rc
EOF
chmod 755 "$stage/bin/load-modules"

copy_lib() {
	[ -e "$stage$1" ] && return 0
	mkdir -p "$stage$(dirname "$1")"
	cp -L "$1" "$stage$1"
}

for spec in "${binaries[@]}"; do
	src=${spec%%:*}
	dest=/bin/$(basename "$src")
	[ "$spec" = "$src" ] || dest=${spec#*:}
	[ -x "$src" ] || die "cannot find executable '$src'"
	mkdir -p "$stage$(dirname "$dest")"
	rm -f "$stage$dest"
	cp -L "$src" "$stage$dest"
	if ldd "$src" >/dev/null 2>&1; then
		for lib in $(ldd "$src" | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p'); do
			copy_lib "$lib"
		done
		# glibc dlopens libgcc_s for thread cancellation.
		lib=/lib/x86_64-linux-gnu/libgcc_s.so.1
		[ ! -e "$lib" ] || copy_lib "$lib"
	fi
done

for spec in "${files[@]}"; do
	src=${spec%%:*}
	dest=${spec#*:}
	[ "$spec" != "$src" ] || die "--add-file wants SRC:DEST, got '$spec'"
	[ -r "$src" ] || die "cannot read '$src'"
	mkdir -p "$stage$(dirname "$dest")"
	cp -L "$src" "$stage$dest"
done

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
