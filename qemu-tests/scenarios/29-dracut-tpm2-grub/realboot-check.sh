#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# Scenario 29's judge, run in the booted Debian root (dracut, a TPM 2.0
# from swtpm) after luksipc-finalize.service. Everything goes to the serial
# console, the verdict channel (one LUKSIPC-VERDICT line), then power off.
#
# The first boot (plain root, no flag, the kernel booted by the host):
# grub-install /dev/vda (so every later boot is SeaBIOS -> GRUB -> the
# kernel, with the command line update-grub wrote), then `luksipc arm
# --bootstrap-key --enroll recovery,tpm2 --recovery-key-file
# /root/recovery.key`; then /var/lib/realboot/armed.
# Later boots, the root on dm-crypt:
#  - while /etc/luksipc/armed is there, finalize must have done its first
#    step: the recovery key and the TPM2 enrolled (done), a systemd-tpm2
#    token, crypttab with none and tpm2-device=auto, the GRUB drop-in with
#    rd.luks.options=U=tpm2-device=auto and no rd.luksipc flag, dracut's
#    tpm2-tss module in the initramfs, the bootstrap keyslot still there;
#  - once it is gone: no rd.luksipc flag and no rd.luks.key, two keyslots
#    (recovery, TPM2), the bootstrap key
#    gone from /boot and the initramfs, the state wiped, no failed unit;
#    the recovery key is printed for the host's check (a test system).
# shellcheck source=../../lib/realboot-judge.sh
. /usr/local/lib/realboot-judge.sh

say "luksipc-finalize.service: $(systemctl show -p ActiveState,Result --value luksipc-finalize.service | tr '\n' ' ')"
say "TPM: $(cat /sys/class/tpm/tpm0/tpm_version_major 2>/dev/null || echo none); command line: $(cat /proc/cmdline)"

if ! [ -e /var/lib/realboot/armed ]; then
	[ "$type" = part ] || verdict "FAIL the first boot's root '$src' is not a plain partition (type '$type')"
	judge_grub_install
	t=$(date +%s)
	luksipc arm --state PARTLABEL=luksipc-state --bootstrap-key --enroll recovery,tpm2 \
		--recovery-key-file /root/recovery.key || verdict "FAIL luksipc arm exited $?"
	say "luksipc arm took $(($(date +%s) - t))s (dracut -f --regenerate-all and update-grub)"
	sed 's/^/realboot: armed| /' /etc/luksipc/armed
	grep -q '^framework=dracut$' /etc/luksipc/armed || verdict "FAIL arm did not detect dracut"
	mkdir -p /var/lib/realboot && touch /var/lib/realboot/armed
	verdict "PASS armed: $(sed -n 's/^flags=//p' /etc/luksipc/armed)"
fi

[ "$type" = crypt ] || verdict "FAIL the root '$src' is not on dm-crypt (type '$type')"
luks=/dev/disk/by-partlabel/root
uuid=$(cryptsetup luksUUID "$luks" 2>/dev/null)
[ -n "$uuid" ] || verdict "FAIL cannot read the LUKS UUID of the root partition"
slots() { cryptsetup luksDump "$luks" | grep -cE '^  [0-9]+: luks2'; }
tokens() { cryptsetup luksDump "$luks" | grep -cE '^  [0-9]+: systemd-tpm2'; }
if [ -e /etc/luksipc/armed ]; then
	luksipc status | sed 's/^/realboot: status| /'
	grep -q '^finalize=boot-config$' /etc/luksipc/armed ||
		verdict "FAIL luksipc-finalize.service did not do its first step"
	grep -q '^enroll.recovery=done ' /etc/luksipc/armed || verdict "FAIL the recovery key is not enrolled"
	grep -q '^enroll.tpm2=done ' /etc/luksipc/armed || verdict "FAIL the TPM2 is not enrolled"
	sed 's/^/realboot: crypttab| /' /etc/crypttab
	grep -q "^luks-$uuid UUID=$uuid none luks,tpm2-device=auto\$" /etc/crypttab ||
		verdict "FAIL /etc/crypttab lacks 'luks-$uuid UUID=$uuid none luks,tpm2-device=auto'"
	sed 's/^/realboot: grub.d| /' /etc/default/grub.d/luksipc.cfg
	! grep -q 'rd\.luksipc' /etc/default/grub.d/luksipc.cfg || verdict "FAIL the GRUB drop-in still has rd.luksipc flags"
	grep -q "rd.luks.options=$uuid=tpm2-device=auto" /etc/default/grub.d/luksipc.cfg ||
		verdict "FAIL the GRUB drop-in lacks rd.luks.options=$uuid=tpm2-device=auto"
	for img in /boot/initrd.img-*; do
		lsinitrd "$img" | grep -q 'libtss2-esys\.so' || verdict "FAIL $img has no TPM2 libraries (dracut's tpm2-tss module)"
	done
	[ "$(slots)" = 3 ] || verdict "FAIL $(slots) keyslots after the first step, not 3 (bootstrap, recovery, TPM2)"
	[ "$(tokens)" = 1 ] || verdict "FAIL $(tokens) systemd-tpm2 tokens, not 1"
	verdict "PASS finalize, first step: 3 keyslots, a TPM2 token; $(grep -v '^#' /etc/crypttab | tr '\n' ' ')"
fi
! grep -q 'rd\.luksipc' /proc/cmdline ||
	verdict "FAIL after finalize the kernel command line still has rd.luksipc flags: $(cat /proc/cmdline)"
if luksipc status --state "$state" >/dev/null 2>&1; then
	verdict "FAIL the state store $state still holds a conversion after finalize"
fi
[ ! -e /boot/luksipc/bootstrap.key ] || verdict "FAIL /boot/luksipc/bootstrap.key is still there"
for img in /boot/initrd.img-*; do
	! lsinitrd "$img" | grep -q 'etc/luksipc/bootstrap.key$' || verdict "FAIL $img still holds the bootstrap key"
done
journalctl -b -o cat -u "systemd-cryptsetup@luks\\x2d$(echo "$uuid" | sed 's/-/\\x2d/g').service" 2>/dev/null |
	sed 's/^/realboot: cryptsetup| /'
# systemd 252's systemd-cryptsetup logs nothing about the token when it
# works; what opened the root is shown by elimination: no key file is
# configured (rd.luks.key, the crypttab key field none), nothing is typed
# (the host fails the boot on a passphrase prompt), and after the
# retirement only the recovery and TPM2 keyslots are left (boot 5)
! grep -q 'rd\.luks\.key' /proc/cmdline || verdict "FAIL the command line names a key file: $(cat /proc/cmdline)"
[ "$(slots)" = 2 ] || verdict "FAIL $(slots) keyslots after finalize, not 2 (recovery, TPM2)"
[ "$(tokens)" = 1 ] || verdict "FAIL $(tokens) systemd-tpm2 tokens after finalize, not 1"
judge_no_failed_units "the last boot"
say "recovery-key: $(cat /root/recovery.key)"
verdict "PASS finalized: the TPM2 opened / ($src) with nothing typed, 2 keyslots, the bootstrap key and the state gone"
