#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# Scenario 24's judge, run in the booted Debian root after
# luksipc-finalize.service. Everything goes to the serial console, the
# verdict channel (one LUKSIPC-VERDICT line), then power off.
#
# The first boot (plain root, no flag, the kernel booted by the host):
# grub-install /dev/vda, `luksipc arm --bootstrap-key
# --enroll passphrase,recovery`; then /var/lib/realboot/armed.
# Later boots, the root on dm-crypt:
#  - while /etc/luksipc/armed is there, finalize must have done its first
#    step: both keys enrolled (done), crypttab with the key field none,
#    flags gone from GRUB, the bootstrap keyslot still there;
#  - once it is gone: no rd.luksipc flag, the bootstrap key file gone from
#    /boot and from the initramfs, two keyslots left, the state store
#    wiped, no failed unit.
# shellcheck source=../../lib/realboot-judge.sh
. /usr/local/lib/realboot-judge.sh

say "luksipc-finalize.service: $(systemctl show -p ActiveState,Result --value luksipc-finalize.service | tr '\n' ' ')"

if ! [ -e /var/lib/realboot/armed ]; then
	[ "$type" = part ] || verdict "FAIL the first boot's root '$src' is not a plain partition (type '$type')"
	judge_grub_install
	luksipc arm --state PARTLABEL=luksipc-state --bootstrap-key --enroll passphrase,recovery ||
		verdict "FAIL luksipc arm exited $?"
	sed 's/^/realboot: armed| /' /etc/luksipc/armed
	say "bootstrap key: $(stat -c '%a %s' /boot/luksipc/bootstrap.key)"
	for img in /boot/initrd.img-*; do
		say "$img: mode $(stat -c %a "$img"); $(lsinitramfs "$img" | grep -c 'etc/luksipc/bootstrap.key$') bootstrap key(s) inside"
		[ "$(stat -c %a "$img")" = 600 ] || verdict "FAIL $img holding the bootstrap key is mode $(stat -c %a "$img"), not 600"
		lsinitramfs "$img" | grep -q 'etc/luksipc/bootstrap.key$' || verdict "FAIL $img lacks the bootstrap key"
	done
	mkdir -p /var/lib/realboot && touch /var/lib/realboot/armed
	verdict "PASS armed: $(sed -n 's/^flags=//p' /etc/luksipc/armed)"
fi

[ "$type" = crypt ] || verdict "FAIL the root '$src' is not on dm-crypt (type '$type')"
dev=$(sed -n 's/^device=//p' /etc/luksipc/armed 2>/dev/null | tail -n 1)
if [ -e /etc/luksipc/armed ]; then
	luksipc status | sed 's/^/realboot: status| /'
	grep -q '^finalize=boot-config$' /etc/luksipc/armed ||
		verdict "FAIL luksipc-finalize.service did not do its first step"
	grep -q '^enroll.passphrase=done ' /etc/luksipc/armed || verdict "FAIL the passphrase is not enrolled"
	grep -q '^enroll.recovery=done ' /etc/luksipc/armed || verdict "FAIL the recovery key is not enrolled"
	sed 's/^/realboot: crypttab| /' /etc/crypttab
	grep -q '^luks-[^ ]* UUID=[^ ]* none luks$' /etc/crypttab || verdict "FAIL the crypttab entry does not ask for a typed key"
	[ ! -e /etc/default/grub.d/luksipc.cfg ] || verdict "FAIL the GRUB drop-in with the rd.luksipc flags is still there"
	n=$(cryptsetup luksDump "$dev" | grep -cE '^  [0-9]+: luks2')
	[ "$n" = 3 ] || verdict "FAIL $n keyslots after the first step, not 3 (bootstrap, passphrase, recovery)"
	verdict "PASS finalize, first step: 3 keyslots; $(grep -v '^#' /etc/crypttab | tr '\n' ' ')"
fi
! grep -q 'rd\.luksipc' /proc/cmdline ||
	verdict "FAIL after finalize the kernel command line still has rd.luksipc flags: $(cat /proc/cmdline)"
if luksipc status --state "$state" >/dev/null 2>&1; then
	verdict "FAIL the state store $state still holds a conversion after finalize"
fi
[ ! -e /boot/luksipc/bootstrap.key ] || verdict "FAIL /boot/luksipc/bootstrap.key is still there"
for img in /boot/initrd.img-*; do
	! lsinitramfs "$img" | grep -q 'etc/luksipc/bootstrap.key$' || verdict "FAIL $img still holds the bootstrap key"
done
luks=$(lsblk -n -s -o PATH,TYPE "$src" | awk '$2 == "part" {print $1}' | head -n 1)
n=$(cryptsetup luksDump "$luks" | grep -cE '^  [0-9]+: luks2')
[ "$n" = 2 ] || verdict "FAIL $n keyslots on $luks after finalize, not 2 (passphrase, recovery)"
judge_no_failed_units "the last boot"
verdict "PASS finalized: a typed passphrase opened / ($src), 2 keyslots, the bootstrap key and the state gone"
