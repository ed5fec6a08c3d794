#!/bin/sh
# /sbin/init of the test root that mkdisk.sh builds (busybox sh, PID 1).
#
# Proves the boot reached this root, with its files intact, through
# device-mapper: checks /manifest.sha256, finds the device / is mounted
# from and requires it to be a dm device (a dm-crypt one when the dm uuid
# says so), prints exactly one "LUKSIPC-VERDICT:" line and powers off.
# With qt.expect=plain on the kernel command line (a decrypted root, QEMU
# 32) it requires the opposite: / straight on its partition, no dm.
# shellcheck disable=SC1091 # installed from lib/guest-lib.sh
. /lib/qemu-test.sh
qt_mounts 2>/dev/null

reason=''
if sha256sum -c /manifest.sha256 >/tmp/manifest.out 2>&1; then
	qt_say "manifest: ok ($(wc -l </manifest.sha256) files)"
else
	qt_say "manifest: $(grep -v ': OK$' /tmp/manifest.out | head -n 3 | tr '\n' ' ')"
	reason="manifest mismatch"
fi

rootdev=$(awk '$2 == "/" { d = $1 } END { print d }' /proc/mounts)
qt_say "root-device: $rootdev"
for n in /sys/block/dm-*/dm/name; do
	[ -r "$n" ] || continue
	b=${n%/dm/name}
	qt_say "dm: ${b##*/} name=$(cat "$n") uuid=$(cat "$b/dm/uuid" 2>/dev/null)"
done

# The device number of / is authoritative; /proc/mounts may say /dev/root.
d=$(stat -c %d /)
majmin=$((((d >> 8) & 0xfff) | ((d >> 32) & ~0xfff))):$(((d & 0xff) | ((d >> 12) & ~0xff)))
sysdev=/sys/dev/block/$majmin
expect=crypt
case " $(cat /proc/cmdline) " in *" qt.expect=plain "*) expect=plain ;; esac
if [ "$expect" = plain ]; then
	root=$rootdev
	[ ! -r "$sysdev/dm/name" ] || reason="${reason:+$reason, }root is on device-mapper device '$(cat "$sysdev/dm/name")', not on its partition"
elif [ -r "$sysdev/dm/name" ]; then
	dmname=$(cat "$sysdev/dm/name")
	dmuuid=$(cat "$sysdev/dm/uuid" 2>/dev/null)
	case "$dmuuid" in
	CRYPT-*) ;;
	*) reason="${reason:+$reason, }root dm device '$dmname' is not dm-crypt (uuid '$dmuuid')" ;;
	esac
	root="/dev/mapper/$dmname"
else
	reason="${reason:+$reason, }root $majmin ($rootdev) is not a device-mapper device"
fi

if [ -z "$reason" ]; then
	qt_verdict PASS "root=$root"
else
	qt_verdict FAIL "$reason"
fi
