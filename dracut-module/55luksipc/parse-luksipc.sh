#!/bin/sh
# shellcheck disable=SC2154 # hookdir: set by dracut-lib.sh
# cmdline hook (initrd without systemd): hold the initqueue until the
# conversion has run and the LUKS device is open, so that the root device
# the queue waits for can appear. The settled job is named 00-luksipc.sh so
# that it runs before crypt's cryptroot-ask-<dev> jobs (the queue runs them
# in name order): with rd.luksipc.mode=reencrypt the device is LUKS from the
# start and must not be opened before it is re-encrypted.

_lipc=$(getarg rd.luksipc=)
if [ -n "$_lipc" ] && [ "$_lipc" != 0 ]; then
    echo '[ -e /run/luksipc/boot-done ]' > "$hookdir/initqueue/finished/luksipc.sh"
    echo '[ -e /run/luksipc/boot-done ] || /usr/sbin/luksipc-boot' > "$hookdir/initqueue/settled/00-luksipc.sh"
fi
unset _lipc
