# shellcheck shell=sh
# shellcheck disable=SC2034 # src, type and state are for the judge that sources this
# Sourced by the judges of scenarios 21 to 24, 29, 31 and 34 (scenarios/*/realboot-check.sh)
# in the booted Debian root; lib/realdisk.sh installs it as
# /usr/local/lib/realboot-judge.sh. Everything goes to the serial console,
# the verdict channel: one LUKSIPC-VERDICT line, then power off.
#
#   say TEXT...            a realboot: line
#   verdict TEXT...        the verdict line, then power off and exit
#   judge_grub_install     grub-install /dev/vda (BIOS, the disk's EF02
#                          partition), so that every later boot is SeaBIOS
#                          -> GRUB -> the kernel with the command line the
#                          guest's update-grub wrote; FAIL verdict if it
#                          leaves no core.img
#   judge_no_failed_units WHAT
#                          verdict "FAIL WHAT: failed units: ..." if any
#                          unit failed (their status on the console first)
# Sets src (the root's device), type (its lsblk type: part, crypt) and
# state (the state partition's by-partlabel path), and says them.
exec >/dev/ttyS0 2>&1
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

say() { printf 'realboot: %s\n' "$*"; }
verdict() {
	sync
	printf 'LUKSIPC-VERDICT: %s\n' "$*"
	systemctl poweroff --no-block
	exit 0
}

judge_grub_install() {
	grub-install --target=i386-pc /dev/vda 2>&1 | sed 's/^/realboot: grub-install| /'
	[ -s /boot/grub/i386-pc/core.img ] || verdict "FAIL grub-install /dev/vda left no /boot/grub/i386-pc/core.img"
}

judge_no_failed_units() {
	failed=$(systemctl list-units --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')
	[ -z "$failed" ] && return 0
	# shellcheck disable=SC2086 # one word per unit
	systemctl status --no-pager $failed 2>&1 | sed 's/^/realboot: | /'
	verdict "FAIL $1: failed units: $failed"
}

state=/dev/disk/by-partlabel/luksipc-state
src=$(findmnt -n -o SOURCE /)
type=$(lsblk -n -d -o TYPE "$src" 2>/dev/null)
say "multi-user.target is $(systemctl is-active multi-user.target); / is $src ($type)"
