#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# Scenario 22's judge, run in the booted Debian root after
# luksipc-finalize.service. Everything goes to the serial console, the
# verdict channel (one LUKSIPC-VERDICT line), then power off.
#
# The first boot (plain root, no flag, the kernel booted by the host):
# grub-install /dev/vda, then `luksipc arm` as an admin would (the root
# and, with --also, the data partition on /srv/data),
# with the key file on the KEYS partition; then /var/lib/realboot/armed.
# Later boots, the root on dm-crypt:
#  - while /etc/luksipc/armed is there, finalize must have done its first
#    step (finalize=boot-config): crypttab written, flags gone from GRUB;
#  - once it is gone: no rd.luksipc flag on the command line, the state
#    store wiped (luksipc status refuses it), no failed unit.
# shellcheck source=../../lib/realboot-judge.sh
. /usr/local/lib/realboot-judge.sh

say "luksipc-finalize.service: $(systemctl show -p ActiveState,Result --value luksipc-finalize.service | tr '\n' ' ')"

if ! [ -e /var/lib/realboot/armed ]; then
	[ "$type" = part ] || verdict "FAIL the first boot's root '$src' is not a plain partition (type '$type')"
	judge_grub_install
	[ "$(lsblk -n -d -o TYPE "$(findmnt -n -o SOURCE /srv/data)")" = part ] ||
		verdict "FAIL /srv/data is not mounted from a plain partition in the first boot"
	luksipc arm --state PARTLABEL=luksipc-state --key-file /luksipc.key:LABEL=KEYS \
		--also PARTLABEL=data,PARTLABEL=state-data,data --dry-run ||
		verdict "FAIL luksipc arm --dry-run exited $?"
	luksipc arm --state PARTLABEL=luksipc-state --key-file /luksipc.key:LABEL=KEYS \
		--also PARTLABEL=data,PARTLABEL=state-data,data ||
		verdict "FAIL luksipc arm exited $?"
	sed 's/^/realboot: armed| /' /etc/luksipc/armed
	sed 's/^/realboot: grub.d| /' /etc/default/grub.d/luksipc.cfg
	mkdir -p /var/lib/realboot && touch /var/lib/realboot/armed
	verdict "PASS armed: $(sed -n 's/^flags=//p' /etc/luksipc/armed)"
fi

[ "$type" = crypt ] || verdict "FAIL the root '$src' is not on dm-crypt (type '$type')"
# the second device (arm --also): /srv/data on dm-crypt, named data, its file intact
dsrc=$(findmnt -n -o SOURCE /srv/data)
say "/srv/data is $dsrc ($(lsblk -n -d -o TYPE "$dsrc" 2>/dev/null))"
if [ "$(lsblk -n -d -o TYPE "$dsrc" 2>/dev/null)" != crypt ] || [ "$(lsblk -n -d -o NAME "$dsrc")" != data ]; then
	verdict "FAIL /srv/data is not mounted from the dm-crypt device 'data' ($dsrc)"
fi
(cd /srv/data && sha256sum -c --quiet data.sha256) || verdict "FAIL /srv/data/data.bin differs from what was written"
if [ -e /etc/luksipc/armed ]; then
	sed 's/^/realboot: armed| /' /etc/luksipc/armed
	grep -q '^finalize=boot-config$' /etc/luksipc/armed ||
		verdict "FAIL luksipc-finalize.service did not do its first step"
	sed 's/^/realboot: crypttab| /' /etc/crypttab
	grep -q '^data UUID=[^ ]* /luksipc.key:LABEL=KEYS luks' /etc/crypttab ||
		verdict "FAIL finalize wrote no crypttab entry for the second device (data)"
	[ ! -e /etc/default/grub.d/luksipc.cfg ] || verdict "FAIL the GRUB drop-in with the rd.luksipc flags is still there"
	verdict "PASS finalize, first step: $(grep -v '^#' /etc/crypttab | tr '\n' ' ')"
fi
! grep -q 'rd\.luksipc' /proc/cmdline ||
	verdict "FAIL after finalize the kernel command line still has rd.luksipc flags: $(cat /proc/cmdline)"
if luksipc status --state "$state" >/dev/null 2>&1; then
	verdict "FAIL the state store $state still holds a conversion after finalize"
fi
if luksipc status --state /dev/disk/by-partlabel/state-data >/dev/null 2>&1; then
	verdict "FAIL the second device's state store still holds a conversion after finalize"
fi
say "systemd-cryptsetup@data: $(systemctl show -p ActiveState,Result --value systemd-cryptsetup@data.service | tr '\n' ' ')"
judge_no_failed_units "the last boot"
verdict "PASS finalized: flagless boot to multi-user with / on dm-crypt ($src) and /srv/data on 'data', both state stores wiped"
