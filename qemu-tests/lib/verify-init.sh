#!/bin/sh
# /init of a verifying initramfs: open LUKS devices with cryptsetup, that is
# with dm-crypt, and compare what they decrypt to with known plaintext.
#
# /etc/verify.conf, one device a line:
#   NAME DEV KEYFILE BYTES SHA256 ACTION
# opens DEV as /dev/mapper/NAME with KEYFILE, requires the sha256 of its
# first BYTES bytes to be SHA256, then per ACTION:
#   check  mount it read-only, run `sha256sum -c /manifest.sha256` inside,
#          unmount and close it
#   boot   mount it and switch_root into its /sbin/init, which prints the
#          verdict (must be the last line)
# With only "check" lines, prints LUKSIPC-VERDICT: PASS when all pass. Any
# failure prints LUKSIPC-VERDICT: FAIL with the reason.
# shellcheck disable=SC1091 # installed from lib/guest-lib.sh
. /lib/qemu-test.sh
qt_mounts
load-modules || qt_say "verify: some modules did not load"
export DM_DISABLE_UDEV=1

n=0
while read -r name dev key bytes sha action; do
	case "$name" in '' | '#'*) continue ;; esac
	qt_wait_dev "$dev" 15 || qt_verdict FAIL "$name: no device $dev"
	out=$(cryptsetup open --disable-locks -q --key-file "$key" "$dev" "$name" 2>&1) ||
		qt_verdict FAIL "$name: cryptsetup open $dev failed: $out"
	qt_say "verify: $name: opened $dev: $(cryptsetup status "$name" 2>/dev/null |
		awk '$1 == "type:" || $1 == "sector" || $1 == "offset:" { printf "%s ", $0 }' | tr -s ' ')"
	size=$(blockdev --getsize64 "/dev/mapper/$name")
	[ "$size" -ge "$bytes" ] || qt_verdict FAIL "$name: mapped size $size < $bytes"
	got=$(head -c "$bytes" "/dev/mapper/$name" | sha256sum | cut -d' ' -f1)
	[ "$got" = "$sha" ] || qt_verdict FAIL "$name: plaintext sha256 $got != $sha"
	qt_say "verify: $name: first $bytes bytes match sha256 $sha"
	mkdir -p "/mnt/$name"
	case "$action" in
	check)
		mount -t ext4 -o ro "/dev/mapper/$name" "/mnt/$name" ||
			qt_verdict FAIL "$name: cannot mount"
		out=$(chroot "/mnt/$name" /bin/sha256sum -c /manifest.sha256 2>&1) ||
			qt_verdict FAIL "$name: manifest: $(echo "$out" | grep -v ': OK$' | head -n 2 | tr '\n' ' ')"
		qt_say "verify: $name: manifest ok ($(echo "$out" | grep -c ': OK$') files)"
		umount "/mnt/$name"
		cryptsetup close "$name" || qt_verdict FAIL "$name: cannot close"
		;;
	boot)
		mount -t ext4 "/dev/mapper/$name" /newroot || qt_verdict FAIL "$name: cannot mount"
		qt_say "verify: $name: switching root"
		umount /proc /sys /run /tmp 2>/dev/null
		mount --move /dev /newroot/dev
		exec switch_root /newroot /sbin/init
		;;
	*) qt_verdict FAIL "bad action '$action' in /etc/verify.conf" ;;
	esac
	n=$((n + 1))
done </etc/verify.conf
[ "$n" -gt 0 ] || qt_verdict FAIL "nothing to verify"
qt_verdict PASS "dm-crypt opened $n device(s), plaintext matches"
