#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# Scenario 23's judge, run in the booted Debian root (dracut) after
# luksipc-finalize.service. Everything goes to the serial console, the
# verdict channel (one LUKSIPC-VERDICT line), then power off.
#
# The first boot (plain root, no flag, the kernel booted by the host):
# grub-install /dev/vda, then `luksipc arm` as an admin would,
# with the key file on the KEYS partition (framework: dracut, detected);
# then /var/lib/realboot/armed.
# Later boots, the root on dm-crypt:
#  - while /etc/luksipc/armed is there, finalize must have done its first
#    step (finalize=boot-config): crypttab in systemd's spelling, the GRUB
#    drop-in holding dracut's rd.luks.uuid/name/key and no rd.luksipc flag;
#  - once it is gone: no rd.luksipc flag on the command line, the
#    rd.luks flags there, the state store wiped (luksipc status refuses
#    it), no failed unit.
# shellcheck source=../../lib/realboot-judge.sh
. /usr/local/lib/realboot-judge.sh

say "luksipc-finalize.service: $(systemctl show -p ActiveState,Result --value luksipc-finalize.service | tr '\n' ' ')"

if ! [ -e /var/lib/realboot/armed ]; then
	[ "$type" = part ] || verdict "FAIL the first boot's root '$src' is not a plain partition (type '$type')"
	judge_grub_install
	luksipc arm --state PARTLABEL=luksipc-state --key-file /luksipc.key:LABEL=KEYS --dry-run ||
		verdict "FAIL luksipc arm --dry-run exited $?"
	t=$(date +%s)
	luksipc arm --state PARTLABEL=luksipc-state --key-file /luksipc.key:LABEL=KEYS ||
		verdict "FAIL luksipc arm exited $?"
	say "luksipc arm took $(($(date +%s) - t))s (dracut -f --regenerate-all and update-grub)"
	sed 's/^/realboot: armed| /' /etc/luksipc/armed
	sed 's/^/realboot: grub.d| /' /etc/default/grub.d/luksipc.cfg
	grep -q '^framework=dracut$' /etc/luksipc/armed || verdict "FAIL arm did not detect dracut"
	mkdir -p /var/lib/realboot && touch /var/lib/realboot/armed
	verdict "PASS armed: $(sed -n 's/^flags=//p' /etc/luksipc/armed)"
fi

[ "$type" = crypt ] || verdict "FAIL the root '$src' is not on dm-crypt (type '$type')"
uuid=$(cryptsetup luksUUID "/dev/disk/by-partlabel/root" 2>/dev/null)
[ -n "$uuid" ] || verdict "FAIL cannot read the LUKS UUID of the root partition"
if [ -e /etc/luksipc/armed ]; then
	sed 's/^/realboot: armed| /' /etc/luksipc/armed
	grep -q '^finalize=boot-config$' /etc/luksipc/armed ||
		verdict "FAIL luksipc-finalize.service did not do its first step"
	sed 's/^/realboot: crypttab| /' /etc/crypttab
	sed 's/^/realboot: grub.d| /' /etc/default/grub.d/luksipc.cfg
	grep -q "^luks-$uuid UUID=$uuid /luksipc.key:LABEL=KEYS luks\$" /etc/crypttab ||
		verdict "FAIL /etc/crypttab lacks 'luks-$uuid UUID=$uuid /luksipc.key:LABEL=KEYS luks'"
	! grep -q 'rd\.luksipc' /etc/default/grub.d/luksipc.cfg ||
		verdict "FAIL the GRUB drop-in still has rd.luksipc flags"
	grep -q "rd.luks.uuid=$uuid rd.luks.name=$uuid=luks-$uuid rd.luks.key=$uuid=/luksipc.key:LABEL=KEYS" \
		/etc/default/grub.d/luksipc.cfg || verdict "FAIL the GRUB drop-in lacks dracut's rd.luks flags for $uuid"
	verdict "PASS finalize, first step: $(grep -v '^#' /etc/crypttab | tr '\n' ' ')"
fi
! grep -q 'rd\.luksipc' /proc/cmdline ||
	verdict "FAIL after finalize the kernel command line still has rd.luksipc flags: $(cat /proc/cmdline)"
grep -q "rd\.luks\.uuid=$uuid" /proc/cmdline ||
	verdict "FAIL after finalize the kernel command line lacks rd.luks.uuid=$uuid: $(cat /proc/cmdline)"
if luksipc status --state "$state" >/dev/null 2>&1; then
	verdict "FAIL the state store $state still holds a conversion after finalize"
fi
judge_no_failed_units "the last boot"
verdict "PASS finalized: flagless boot to multi-user with / on dm-crypt ($src) unlocked by systemd-cryptsetup, state store wiped"
