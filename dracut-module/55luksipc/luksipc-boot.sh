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
    # With nothing to do (no flag, no credential) lipc_run made no
    # $LIPC_RUN. A failed redirection of the special built-in ':' ends a
    # POSIX shell with an error; the unit then failed and OnFailure= took a
    # flagless boot to the emergency shell (QEMU 29). printf is a regular
    # built-in.
    mkdir -p "$LIPC_RUN" && printf '' > "$LIPC_RUN/boot-done"
    exit 0
fi
if [ -n "$DRACUT_SYSTEMD" ]; then
    # the journal and the console; then OnFailure=emergency.target
    echo "$LIPC_ERROR" >&2
    exit 1
fi
# die logs it to the console (kmsg) and stops the boot
die "$LIPC_ERROR"
