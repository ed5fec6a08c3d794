# shellcheck shell=bash
# shellcheck disable=SC2034 # REALROOT_ERR is for the callers
# Sourceable: a real Debian 12 root for the QEMU scenarios, made with
# mmdebstrap from the host's own apt sources and cached.
#
#   realroot_base          make sure the cached base root exists (build it
#                          with mmdebstrap if not); sets REALROOT_TAR, the
#                          tarball, and REALROOT_SECS, how long this call
#                          took (the build, or nearly 0 when cached).
#                          Returns 1 with the reason in REALROOT_ERR.
#   realroot_unpack DIR    extract the base root into DIR (empty or new)
#   realroot_chroot DIR CMD [ARG...]
#                          run CMD in DIR as root in a private mount
#                          namespace with /proc, /sys and /dev mounted: the
#                          mounts vanish with the namespace, so removing DIR
#                          afterwards cannot reach the host's /dev
#   realroot_kver DIR      the kernel version installed in DIR
#
# The base root: bookworm, variant apt, with systemd, systemd-sysv, udev,
# linux-image-amd64, initramfs-tools, cryptsetup, cryptsetup-initramfs,
# e2fsprogs, kmod, grub-pc (not installed to a disk), zstd and STOCK
# initramfs-tools settings (MODULES=most). Kept small by dpkg path
# excludes: no docs, man pages, locales, and only the kernel modules a
# virtio q35 guest can use (fs, crypto, lib, arch, block, drivers/{md,
# block,virtio,...} and the scsi/ata basics); the exclusion happens as dpkg
# unpacks, so depmod and the package's own update-initramfs see the
# trimmed tree, as they would on a system configured that way.
#
# It is the root BEFORE luksipc is installed; a scenario installs luksipc
# into a copy the way a user would (make install DESTDIR=) and runs the
# root's own update-initramfs -u (realroot_chroot).
#
# Cache: ${QEMU_CACHE:-/var/cache/luksipc-qemu}/realroot-HASH.tar, HASH over
# the recipe below and the apt sources, so a changed recipe builds a new
# root and a rerun skips mmdebstrap. The build log is kept beside it
# (realroot-HASH.log) with the build time (realroot-HASH.secs).
# REALROOT_SOURCES: the apt sources file to use (default: the host's
# /etc/apt/sources.list.d/debian.sources, else /etc/apt/sources.list).
#
# REALROOT_FRAMEWORK: initramfs-tools (the default, the root above) or
# dracut: the same root with Debian's dracut package in place of
# initramfs-tools and cryptsetup-initramfs, so its initramfs is a systemd
# initrd that unlocks with systemd-cryptsetup. Its package list differs, so
# it has a cache tarball of its own; the default's hash is unchanged.
#
# REALROOT_EXTRA_PACKAGES: more packages on top (e.g. tpm2-tools for
# scenario 29); a root of its own in the cache, the others' hashes unchanged.

REALROOT_SUITE=bookworm
REALROOT_VARIANT=apt
# grub-pc: the admin notes update GRUB (update-grub) as on an installed
# system; the scenarios boot the kernel directly with the command line that
# GRUB's generated grub.cfg holds.
# zstd: initramfs-tools recommends it and compresses with it by default
# (without it, gzip -9 in a TCG guest takes minutes).
REALROOT_PACKAGES="systemd systemd-sysv udev linux-image-amd64 initramfs-tools cryptsetup cryptsetup-initramfs e2fsprogs kmod grub-pc zstd"
# dracut: Debian's package (it conflicts with initramfs-tools and provides
# linux-initramfs-tool for the kernel); systemd-cryptsetup is in bookworm's
# systemd package. pigz: dracut-core recommends it and compresses with it
# when present, else with gzip -9 on one core: Debian's dracut is not
# host-only, and gzip -9 of its ~75 MiB image took 21 s of CPU natively.
REALROOT_PACKAGES_DRACUT="systemd systemd-sysv udev linux-image-amd64 dracut cryptsetup e2fsprogs kmod grub-pc zstd pigz"
# Module directories (under kernel/drivers/) kept; everything else in
# drivers/, and all of sound/ and net/, is excluded. Of scsi/ and ata/ only
# the basics: MODULES=most copies every host adapter driver into the
# initramfs, and each one costs time when the guest rebuilds it under TCG.
REALROOT_KEEP_DRIVERS="md block virtio char cdrom acpi nvdimm dax base input pci platform tty firmware"
REALROOT_KEEP_MODULES="scsi/scsi_mod.ko scsi/scsi_common.ko scsi/sd_mod.ko scsi/sr_mod.ko scsi/sg.ko scsi/virtio_scsi.ko ata/libata.ko ata/libahci.ko ata/ahci.ko ata/ata_piix.ko ata/ata_generic.ko"
# Bump when the recipe changes in a way the lists above do not show.
REALROOT_RECIPE_VERSION=1

realroot_sources() {
	if [ -n "${REALROOT_SOURCES:-}" ]; then
		echo "$REALROOT_SOURCES"
	elif [ -r /etc/apt/sources.list.d/debian.sources ]; then
		echo /etc/apt/sources.list.d/debian.sources
	else
		echo /etc/apt/sources.list
	fi
}

# The mmdebstrap options: one per line (the hash is taken over them).
realroot_opts() {
	local d pkgs=$REALROOT_PACKAGES
	[ "${REALROOT_FRAMEWORK:-initramfs-tools}" = dracut ] && pkgs=$REALROOT_PACKAGES_DRACUT
	[ -z "${REALROOT_EXTRA_PACKAGES:-}" ] || pkgs="$pkgs $REALROOT_EXTRA_PACKAGES"
	echo "--variant=$REALROOT_VARIANT"
	echo "--include=$(echo "$pkgs" | tr ' ' ,)"
	for d in /usr/share/doc /usr/share/man /usr/share/info /usr/share/locale \
		/usr/share/lintian /usr/share/bug; do
		echo "--dpkgopt=path-exclude=$d/*"
	done
	# Bookworm's kernel package still ships /lib/modules (merged-/usr
	# makes that /usr/lib/modules on disk); dpkg matches package paths.
	for d in /lib/modules /usr/lib/modules; do
		echo "--dpkgopt=path-exclude=$d/*/kernel/sound/*"
		echo "--dpkgopt=path-exclude=$d/*/kernel/net/*"
		echo "--dpkgopt=path-exclude=$d/*/kernel/drivers/*"
		for k in $REALROOT_KEEP_DRIVERS; do
			echo "--dpkgopt=path-include=$d/*/kernel/drivers/$k/*"
		done
		for k in $REALROOT_KEEP_MODULES; do
			echo "--dpkgopt=path-include=$d/*/kernel/drivers/$k"
		done
	done
	echo "--customize-hook=echo realboot >\"\$1/etc/hostname\""
	echo "--customize-hook=rm -f \"\$1\"/var/cache/apt/*.bin"
}

realroot_base() {
	local cache=${QEMU_CACHE:-/var/cache/luksipc-qemu} src hash t0=$SECONDS opts=()
	REALROOT_ERR=''
	case ${REALROOT_FRAMEWORK:-initramfs-tools} in
	initramfs-tools | dracut) ;;
	*) REALROOT_ERR="REALROOT_FRAMEWORK='$REALROOT_FRAMEWORK': give initramfs-tools or dracut"; return 1 ;;
	esac
	src=$(realroot_sources)
	[ -r "$src" ] || { REALROOT_ERR="cannot read apt sources '$src'; set REALROOT_SOURCES"; return 1; }
	command -v mmdebstrap >/dev/null ||
		{ REALROOT_ERR="mmdebstrap not installed (tools/deps/qemu.list)"; return 1; }
	mkdir -p "$cache" || { REALROOT_ERR="cannot make cache dir '$cache'"; return 1; }
	mapfile -t opts < <(realroot_opts)
	hash=$({
		echo "v$REALROOT_RECIPE_VERSION $REALROOT_SUITE"
		printf '%s\n' "${opts[@]}"
		cat "$src"
	} | sha256sum | cut -c1-16)
	REALROOT_TAR=$cache/realroot-$hash.tar
	# One builder at a time; a second run waits and then finds the cache.
	exec {lock}>"$cache/realroot.lock"
	flock "$lock"
	if [ ! -s "$REALROOT_TAR" ]; then
		echo "  building the Debian 12 root (${REALROOT_FRAMEWORK:-initramfs-tools}) with mmdebstrap (cache $REALROOT_TAR)" >&2
		if ! mmdebstrap --format=tar "${opts[@]}" "$REALROOT_SUITE" "$REALROOT_TAR.tmp" "$src" \
			>"$cache/realroot-$hash.log" 2>&1; then
			REALROOT_ERR="mmdebstrap failed: $(tail -n 5 "$cache/realroot-$hash.log")"
			rm -f "$REALROOT_TAR.tmp"
			exec {lock}>&-
			return 1
		fi
		mv "$REALROOT_TAR.tmp" "$REALROOT_TAR"
		echo $((SECONDS - t0)) >"$cache/realroot-$hash.secs"
	fi
	exec {lock}>&-
	REALROOT_SECS=$((SECONDS - t0))
	export REALROOT_TAR REALROOT_SECS
}

realroot_unpack() {
	mkdir -p "$1" && tar -C "$1" --numeric-owner -xpf "$REALROOT_TAR"
}

realroot_chroot() {
	local dir=$1
	shift
	# shellcheck disable=SC2016 # expanded by the inner sh
	unshare --mount --propagation private -- sh -ec '
		d=$1; shift
		mount -t proc proc "$d/proc"
		mount -t sysfs sys "$d/sys"
		mount -t devtmpfs dev "$d/dev"
		exec chroot "$d" "$@"' sh "$dir" "$@"
}

realroot_kver() {
	# shellcheck disable=SC2012 # version-sorted names, no odd characters
	ls "$1/boot" | sed -n 's/^vmlinuz-//p' | sort -V | tail -n 1
}
