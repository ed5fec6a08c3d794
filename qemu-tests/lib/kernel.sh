# shellcheck shell=sh
# Sourceable: pick the kernel the QEMU tests boot.
#
# Sets KVER (e.g. 6.1.0-56-amd64) and KERNEL (/boot/vmlinuz-$KVER) for the
# newest installed linux-image-*-amd64 whose vmlinuz and /lib/modules tree
# both exist. A KVER already set in the environment is honoured. Returns 1
# with a message on stderr when no usable kernel is installed, so a caller
# can write `. lib/kernel.sh || exit 77`.

kernel_pick() {
	if [ -z "${KVER:-}" ]; then
		KVER=$(dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' \
			'linux-image-[0-9]*-amd64' 2>/dev/null |
			sed -n 's/^ii *linux-image-\(.*\)$/\1/p' | sort -V |
			while read -r v; do
				if [ -r "/boot/vmlinuz-$v" ] && [ -d "/lib/modules/$v/kernel" ]; then
					echo "$v"
				fi
			done | tail -n 1)
	fi
	if [ -z "$KVER" ]; then
		echo "kernel.sh: no linux-image-*-amd64 installed with /boot/vmlinuz and /lib/modules; apt-get install linux-image-amd64" >&2
		return 1
	fi
	KERNEL=/boot/vmlinuz-$KVER
	if [ ! -r "$KERNEL" ] || [ ! -d "/lib/modules/$KVER/kernel" ]; then
		echo "kernel.sh: kernel '$KVER' is not fully installed: need $KERNEL and /lib/modules/$KVER" >&2
		return 1
	fi
	export KVER KERNEL
}

kernel_pick
