#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# Scenario 31's judge, run by realboot-check.service in the booted Debian
# root once multi-user.target is reached, at every boot that gets there.
# It does NOT follow the admin notes: for a detached header they say to keep
# the rd.luksipc flags (luksipc opens the root with the header at every
# boot), and their "cryptsetup open" line would fail on the open root. It
# only shows them on the console. It checks:
# - / is on a dm-crypt mapping with data offset 0 (the header is detached);
# - the command line still has the rd.luksipc flags with the header;
# - the initramfs unmounted the header's filesystem: nothing is mounted on
#   /run/luksipc/hdr (initramfs-tools and dracut move /run into the root),
#   and /boot is mounted once, by the system's fstab;
# - /boot/luks-root.hdr exists, is LUKS, mode 0600;
# - no unit failed.
# shellcheck source=../../lib/realboot-judge.sh
. /usr/local/lib/realboot-judge.sh

n=$(($(cat /var/lib/realboot/boots 2>/dev/null || echo 0) + 1))
mkdir -p /var/lib/realboot && echo "$n" >/var/lib/realboot/boots
say "multi-user boot $n of the system"

[ "$type" = crypt ] || verdict "FAIL the root '$src' is not on dm-crypt (type '$type')"
st=$(cryptsetup status "$src" 2>&1)
printf '%s\n' "$st" | sed 's/^/realboot: status| /'
printf '%s\n' "$st" | grep -q -E '^[[:space:]]*offset:[[:space:]]+0 sectors' ||
	verdict "FAIL the root mapping '$src' does not start at offset 0 (no detached header?)"

grep -q 'rd\.luksipc\.header=' /proc/cmdline ||
	verdict "FAIL the kernel command line lost rd.luksipc.header: $(cat /proc/cmdline)"

if mountpoint -q /run/luksipc/hdr 2>/dev/null || grep -q ' /run/luksipc' /proc/self/mounts; then
	grep ' /run/luksipc' /proc/self/mounts | sed 's/^/realboot: mounts| /'
	verdict "FAIL the header's filesystem is still mounted under /run/luksipc (the initramfs did not unmount it)"
fi
mountpoint -q /boot || verdict "FAIL /boot is not mounted"
bootdev=$(findmnt -n -o SOURCE /boot)
nboot=$(awk -v d="$(readlink -f "$bootdev")" '$1 == d' /proc/self/mounts | wc -l)
[ "$nboot" = 1 ] || verdict "FAIL /boot's device $bootdev is mounted $nboot times: $(grep "$bootdev" /proc/self/mounts | tr '\n' ';')"

hdr=/boot/luks-root.hdr
[ -f "$hdr" ] || verdict "FAIL $hdr does not exist"
mode=$(stat -c %a "$hdr")
[ "$mode" = 600 ] || verdict "FAIL $hdr has mode $mode, not 0600"
cryptsetup isLuks "$hdr" || verdict "FAIL $hdr is not a LUKS header"
say "$hdr: LUKS, mode $mode, $(stat -c %s "$hdr") bytes; /boot is $bootdev"

# the notes, shown only (a detached header: keep the flags)
notes=$(luksipc status --state "$state" --notes 2>&1) || say "luksipc status --notes exited $?"
printf '%s\n' "$notes" | sed 's/^/realboot: notes| /'
# where the notes say the header is (the initramfs's mount point, gone now)
nh=$(printf '%s\n' "$notes" | sed -n 's/^Its LUKS header is not on .*: it is in \(.*\)\. Without.*/\1/p' | head -n 1)
[ -z "$nh" ] || say "the header path in the notes, $nh, $([ -e "$nh" ] && echo exists || echo 'does not exist') in the booted system"

judge_no_failed_units "multi-user boot $n"
verdict "PASS multi-user boot $n: multi-user, / on dm-crypt ($src, detached header, offset 0), $hdr mode 0600, header filesystem unmounted by the initramfs"
