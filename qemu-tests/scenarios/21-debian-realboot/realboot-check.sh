#!/bin/sh
# Scenario 21's judge, run by realboot-check.service in the booted Debian
# root once multi-user.target is reached. Everything goes to the serial
# console, the verdict channel (one LUKSIPC-VERDICT line), then power off.
#
# With rd.luksipc on the kernel command line (the converting boots): the
# root must be on dm-crypt; then the admin notes are followed literally:
# every line of `luksipc status --state ... --notes` that starts with
# exactly "  $ " is run in order with sh -c as root, a new passphrase on
# its stdin (REALBOOT_PASS, /etc/realboot.pass). Notes without such lines
# are a FAIL: the admin would have nothing to follow.
# Without rd.luksipc (the flagless boot): the root must be on dm-crypt and
# no unit may have failed.
exec >/dev/ttyS0 2>&1
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

say() { echo "realboot: $*"; }
verdict() {
	sync
	echo "LUKSIPC-VERDICT: $*"
	systemctl poweroff --no-block
	exit 0
}

src=$(findmnt -n -o SOURCE /)
type=$(lsblk -n -d -o TYPE "$src" 2>/dev/null)
say "multi-user.target is $(systemctl is-active multi-user.target); / is $src ($type)"
[ "$type" = crypt ] || verdict "FAIL the root '$src' is not on dm-crypt (type '$type')"

if ! grep -q 'rd\.luksipc' /proc/cmdline; then
	failed=$(systemctl list-units --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')
	[ -z "$failed" ] || {
		# shellcheck disable=SC2086 # one word per unit
		systemctl status --no-pager $failed 2>&1 | sed 's/^/realboot: | /'
		verdict "FAIL flagless boot: failed units: $failed"
	}
	verdict "PASS flagless boot reached multi-user with / on dm-crypt ($src)"
fi

pass=$(cat /etc/realboot.pass)
state=/dev/disk/by-partlabel/luksipc-state
notes=$(luksipc status --state "$state" --notes) ||
	verdict "FAIL luksipc status --state $state --notes failed (exit $?)"
printf '%s\n' "$notes" | sed 's/^/realboot: notes| /'
printf '%s\n' "$notes" | sed -n 's/^  \$ //p' >/run/realboot-cmds
[ -s /run/realboot-cmds ] ||
	verdict "FAIL the admin notes have no '  \$ cmd' line to follow (luksipc status --notes)"
n=0
while IFS= read -r cmd <&3; do
	n=$((n + 1))
	say "note command $n: $cmd"
	# sh is the last command of the pipe: $? is its exit status
	printf '%s\n' "$pass" | sh -c "$cmd"
	rc=$?
	say "note command $n exited $rc"
	[ "$rc" = 0 ] || verdict "FAIL note command $n failed (exit $rc): $cmd"
done 3</run/realboot-cmds
verdict "PASS followed $n note commands"
