#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# Scenario 31's judge, run by realboot-check.service in the booted Debian
# root once multi-user.target is reached, at every boot that gets there.
# At every such boot it checks:
# - / is on a dm-crypt mapping with data offset 0 (the header is detached);
# - nothing is mounted under /run/luksipc (the initramfs unmounted the
#   header's filesystem) and /boot is mounted once, by the system's fstab;
# - /boot/luks-root.hdr exists, is LUKS, mode 0600;
# - no unit failed.
# First such boot (the one that finished the conversion, flags on the
# command line): then the admin notes are followed literally, as in
# scenario 21: every line of `luksipc status --notes` that starts with
# exactly "  $ " is run in order with sh -c as root. Notes without such a
# line are a FAIL. The notes must name a crypttab entry with header=.
# Next boot (after the notes): the command line must have no rd.luksipc
# flag; crypttab's entry opened the root with the header copy
# /etc/luksipc/<name>.luks-header (mode 0600, equal to /boot's), and that
# copy is in the initramfs the system booted (root-only image for
# initramfs-tools).
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
judge_no_failed_units "multi-user boot $n"

if [ -e /var/lib/realboot/notes-followed ]; then
	! grep -q 'rd\.luksipc' /proc/cmdline ||
		verdict "FAIL after the notes the kernel command line still has rd.luksipc flags: $(cat /proc/cmdline)"
	name=${src##*/}
	copy=/etc/luksipc/$name.luks-header
	[ -f "$copy" ] || verdict "FAIL no header copy $copy in the root"
	cmode=$(stat -c %a "$copy")
	[ "$cmode" = 600 ] || verdict "FAIL $copy has mode $cmode, not 0600"
	cmp -s "$copy" "$hdr" || verdict "FAIL $copy differs from $hdr"
	line=$(grep -E "^${name}[[:space:]]" /etc/crypttab)
	say "crypttab: $line"
	case "$line" in *"header=$copy"*) ;; *) verdict "FAIL the crypttab entry for $name does not name header=$copy: $line" ;; esac
	img=/boot/initrd.img-$(uname -r)
	if command -v lsinitramfs >/dev/null; then
		lsinitramfs "$img" | grep -qx "${copy#/}" || verdict "FAIL the initramfs $img does not carry $copy"
	else
		lsinitrd "$img" | grep -q " ${copy#/}\$" || verdict "FAIL the initramfs $img does not carry $copy"
	fi
	imode=$(stat -c %a "$img")
	[ "$imode" = 600 ] || verdict "FAIL the initramfs $img, which holds the header, has mode $imode, not 0600"
	say "the flagless boot: $copy mode $cmode equal to $hdr, in $img (mode $imode)"
	verdict "PASS flagless multi-user boot $n: / on dm-crypt ($src, detached header, offset 0) opened from /etc/crypttab with header=$copy"
fi

grep -q 'rd\.luksipc\.header=' /proc/cmdline ||
	verdict "FAIL the kernel command line lost rd.luksipc.header: $(cat /proc/cmdline)"
notes=$(luksipc status --state "$state" --notes) ||
	verdict "FAIL luksipc status --state $state --notes failed (exit $?)"
printf '%s\n' "$notes" | sed 's/^/realboot: notes| /'
printf '%s\n' "$notes" | sed -n 's/^  \$ //p' >/run/realboot-cmds
[ -s /run/realboot-cmds ] ||
	verdict "FAIL the admin notes have no '  \$ cmd' line to follow (luksipc status --notes)"
grep -q 'header=/etc/luksipc/' /run/realboot-cmds ||
	verdict "FAIL the admin notes name no crypttab entry with the header under /etc/luksipc"
k=0
while IFS= read -r cmd <&3; do
	k=$((k + 1))
	say "note command $k: $cmd"
	sh -c "$cmd" </dev/null
	rc=$?
	say "note command $k exited $rc"
	[ "$rc" = 0 ] || verdict "FAIL note command $k failed (exit $rc): $cmd"
done 3</run/realboot-cmds
touch /var/lib/realboot/notes-followed
verdict "PASS multi-user boot $n: / on dm-crypt ($src, detached header, offset 0), $hdr mode 0600, header filesystem unmounted by the initramfs; followed $k note commands"
