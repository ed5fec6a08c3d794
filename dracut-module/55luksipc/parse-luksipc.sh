#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2154 # hookdir: set by dracut-lib.sh
# cmdline hook (initrd without systemd): hold the initqueue until the
# conversion has run and the LUKS device is open, so that the root device
# the queue waits for can appear. The settled job is named 00-luksipc.sh so
# that it runs before crypt's cryptroot-ask-<dev> jobs (the queue runs them
# in name order): with rd.luksipc.mode=reencrypt the device is LUKS from the
# start and must not be opened before it is re-encrypted.

# rd.luksipc= or rd.luksipc.N= on the command line or from a credential.
# A subshell: the library's functions and globals stay out of dracut's.
if (
    # shellcheck source=../../boot/luksipc-lib.sh
    . /usr/lib/luksipc/luksipc-lib.sh
    # shellcheck disable=SC2034 # read by lipc_wanted
    LIPC_CMDLINE=$(getcmdline)
    lipc_wanted
); then
    echo '[ -e /run/luksipc/boot-done ]' > "$hookdir/initqueue/finished/luksipc.sh"
    echo '[ -e /run/luksipc/boot-done ] || /usr/sbin/luksipc-boot' > "$hookdir/initqueue/settled/00-luksipc.sh"
fi
