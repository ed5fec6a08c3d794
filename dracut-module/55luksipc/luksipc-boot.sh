#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# luksipc-boot: run the rd.luksipc= conversion in a dracut initramfs, from
# luksipc.service (systemd) or from the initqueue (no systemd).

# shellcheck source=/dev/null
type getarg > /dev/null 2>&1 || . /lib/dracut-lib.sh
# shellcheck source=../../boot/luksipc-lib.sh
. /usr/lib/luksipc/luksipc-lib.sh

LIPC_CMDLINE=$(getcmdline)
if lipc_run; then
    : > "$LIPC_RUN/boot-done"
    exit 0
fi
if [ -n "$DRACUT_SYSTEMD" ]; then
    # the journal and the console; then OnFailure=emergency.target
    echo "$LIPC_ERROR" >&2
    exit 1
fi
# die logs it to the console (kmsg) and stops the boot
die "$LIPC_ERROR"
