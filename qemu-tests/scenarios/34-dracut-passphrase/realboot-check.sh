#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# Scenario 34's judge, run in the booted Debian root (dracut) after
# luksipc-finalize.service. Everything goes to the serial console, the
# verdict channel (one LUKSIPC-VERDICT line), then power off.
#
# The first boot (plain root, no flag, the kernel booted by the host):
# grub-install /dev/vda, then `luksipc arm --state PARTLABEL=luksipc-state
# --enroll recovery --recovery-key-file /root/recovery.key` (no key named:
# a passphrase typed at boot; framework dracut, detected); then
# /var/lib/realboot/armed.
# Later boots, the root on dm-crypt:
#  - while /etc/luksipc/armed is there, finalize must have done its first
#    step: the recovery key enrolled (done) and in its file (0600),
#    crypttab `NAME UUID=U none luks`, the GRUB drop-in with dracut's
#    rd.luks.uuid/name and neither a key file nor an rd.luksipc flag, two
#    keyslots (the typed passphrase's, the recovery key's);
#  - once it is gone: no rd.luksipc flag and no key file on the command
#    line, still two keyslots (a typed passphrase is the admin's own key:
#    finalize keeps it), the state wiped, no failed unit; the recovery key
#    is printed for the host's check (a test system).
# shellcheck source=../../lib/realboot-judge.sh
. /usr/local/lib/realboot-judge.sh

say "luksipc-finalize.service: $(systemctl show -p ActiveState,Result --value luksipc-finalize.service | tr '\n' ' ')"

if ! [ -e /var/lib/realboot/armed ]; then
	[ "$type" = part ] || verdict "FAIL the first boot's root '$src' is not a plain partition (type '$type')"
	judge_grub_install
	luksipc arm --state PARTLABEL=luksipc-state --enroll recovery --recovery-key-file /root/recovery.key --dry-run ||
		verdict "FAIL luksipc arm --dry-run exited $?"
	t=$(date +%s)
	luksipc arm --state PARTLABEL=luksipc-state --enroll recovery --recovery-key-file /root/recovery.key ||
		verdict "FAIL luksipc arm exited $?"
	say "luksipc arm took $(($(date +%s) - t))s (dracut -f --regenerate-all and update-grub)"
	sed 's/^/realboot: armed| /' /etc/luksipc/armed
	grep -q '^framework=dracut$' /etc/luksipc/armed || verdict "FAIL arm did not detect dracut"
	grep -q '^key=passphrase$' /etc/luksipc/armed || verdict "FAIL arm did not plan a passphrase typed at boot"
	mkdir -p /var/lib/realboot && touch /var/lib/realboot/armed
	verdict "PASS armed: $(sed -n 's/^flags=//p' /etc/luksipc/armed)"
fi

[ "$type" = crypt ] || verdict "FAIL the root '$src' is not on dm-crypt (type '$type')"
part=/dev/disk/by-partlabel/root
uuid=$(cryptsetup luksUUID "$part" 2>/dev/null)
[ -n "$uuid" ] || verdict "FAIL cannot read the LUKS UUID of the root partition"
nslots=$(cryptsetup luksDump "$part" | grep -cE '^  [0-9]+: luks2')
if [ -e /etc/luksipc/armed ]; then
	sed 's/^/realboot: armed| /' /etc/luksipc/armed
	grep -q '^finalize=boot-config$' /etc/luksipc/armed ||
		verdict "FAIL luksipc-finalize.service did not do its first step"
	grep -q '^enroll.recovery=done ' /etc/luksipc/armed || verdict "FAIL the recovery key is not enrolled"
	[ "$(stat -c %a /root/recovery.key 2>/dev/null)" = 600 ] ||
		verdict "FAIL /root/recovery.key is missing or not mode 600 ($(stat -c %a /root/recovery.key 2>&1))"
	sed 's/^/realboot: crypttab| /' /etc/crypttab
	sed 's/^/realboot: grub.d| /' /etc/default/grub.d/luksipc.cfg
	grep -q "^luks-$uuid UUID=$uuid none luks\$" /etc/crypttab ||
		verdict "FAIL /etc/crypttab lacks 'luks-$uuid UUID=$uuid none luks'"
	! grep -q 'rd\.luksipc\|rd\.luks\.key' /etc/default/grub.d/luksipc.cfg ||
		verdict "FAIL the GRUB drop-in still has an rd.luksipc flag or a key file"
	grep -q "rd.luks.uuid=$uuid rd.luks.name=$uuid=luks-$uuid" /etc/default/grub.d/luksipc.cfg ||
		verdict "FAIL the GRUB drop-in lacks dracut's rd.luks flags for $uuid"
	[ "$nslots" = 2 ] || verdict "FAIL $nslots keyslots after the first step, not 2 (passphrase, recovery)"
	verdict "PASS finalize, first step: 2 keyslots; $(grep -v '^#' /etc/crypttab | tr '\n' ' ')"
fi
! grep -q 'rd\.luksipc' /proc/cmdline ||
	verdict "FAIL after finalize the kernel command line still has rd.luksipc flags: $(cat /proc/cmdline)"
! grep -q 'rd\.luks\.key' /proc/cmdline ||
	verdict "FAIL after finalize the kernel command line names a key file: $(cat /proc/cmdline)"
if luksipc status --state "$state" >/dev/null 2>&1; then
	verdict "FAIL the state store $state still holds a conversion after finalize"
fi
[ "$nslots" = 2 ] || verdict "FAIL $nslots keyslots after finalize, not 2 (passphrase, recovery)"
judge_no_failed_units "the last boot"
say "recovery-key: $(cat /root/recovery.key)"
verdict "PASS finalized: a passphrase typed in dracut's initrd opened / ($src), 2 keyslots, the state gone"
