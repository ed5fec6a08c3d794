#!/bin/sh
# shellcheck disable=SC2154 # hookdir: set by dracut-lib.sh
# cmdline hook (initrd without systemd): hold the initqueue until the
# conversion has run and the LUKS device is open, so that the root device
# the queue waits for can appear.

_lipc=$(getarg rd.luksipc=)
if [ -n "$_lipc" ] && [ "$_lipc" != 0 ]; then
    echo '[ -e /run/luksipc/boot-done ]' > "$hookdir/initqueue/finished/luksipc.sh"
    echo '[ -e /run/luksipc/boot-done ] || /usr/sbin/luksipc-boot' > "$hookdir/initqueue/settled/luksipc.sh"
fi
unset _lipc
