#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# Scenario 21's judge, run by realboot-check.service in the booted Debian
# root once multi-user.target is reached. Everything goes to the serial
# console, the verdict channel (one LUKSIPC-VERDICT line), then power off.
#
# First run (the boot that finished the conversion): the root must be on
# dm-crypt; then the admin notes are followed literally: every line of
# `luksipc status --state ... --notes` that starts with exactly "  $ " is
# run in order with sh -c as root, a new passphrase (/etc/realboot.pass)
# on its stdin. Notes without such lines are a FAIL: the admin would have
# nothing to follow. On success it leaves /var/lib/realboot/notes-followed.
# Next run (the boot after the notes): the root must be on dm-crypt, the
# kernel command line must have no rd.luksipc flag, and no unit may have
# failed.
# shellcheck source=../../lib/realboot-judge.sh
. /usr/local/lib/realboot-judge.sh

[ "$type" = crypt ] || verdict "FAIL the root '$src' is not on dm-crypt (type '$type')"

if [ -e /var/lib/realboot/notes-followed ]; then
	! grep -q 'rd\.luksipc' /proc/cmdline ||
		verdict "FAIL after the notes the kernel command line still has rd.luksipc flags: $(cat /proc/cmdline)"
	judge_no_failed_units "flagless boot"
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
mkdir -p /var/lib/realboot && touch /var/lib/realboot/notes-followed
verdict "PASS followed $n note commands"
