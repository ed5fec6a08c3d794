#!/bin/sh
# luksipc-lib.sh: boot-time conversion logic shared by the dracut module and
# the initramfs-tools script. POSIX sh, sourced, never executed.
#
# Contract with the framework adapter that sources this file:
#   - it may set LIPC_CMDLINE (default: /proc/cmdline), LIPC_BIN
#     (default: luksipc from PATH) and LIPC_FRAMEWORK (initramfs-tools,
#     dracut or other, for the admin notes; default: guessed);
#   - it may call lipc_wanted first, to learn whether there is anything to
#     do (rd.luksipc= on the command line or from a credential);
#   - it calls lipc_run once; lipc_run returns 0 when there was nothing to do
#     or when the device is converted and opened, and 1 otherwise with the
#     one-line reason in LIPC_ERROR; the adapter then enters its emergency
#     path (dracut: die / OnFailure=emergency.target, initramfs-tools: panic)
#     and writes nothing more.
#   initramfs-tools/keydev (a crypttab keyscript) also calls lipc_arg,
#   lipc_is_uint, lipc_fail, lipc_key_spec and lipc_release_key.
#
# POSIX sh plus `local`, which every shell it runs in has (dash, busybox ash,
# klibc sh, bash). Functions keep their own variables local; the globals are
# the state the steps share. Every function and global starts with lipc_ or
# LIPC_.
#
# Sections: util, cmdline, credentials, devices, keys, header, resize,
# progress, convert, open, run (the entry point).
# shellcheck disable=SC3043 # local: see above

LIPC_BIN=${LIPC_BIN:-luksipc}
LIPC_RUN=${LIPC_RUN:-/run/luksipc}
LIPC_ERROR=
LIPC_KEYFILE=
LIPC_OLDKEYFILE=
LIPC_CONVKEY=
LIPC_NOTEKEY=
LIPC_PASS=
LIPC_KEYMNT=
LIPC_HEADER=
LIPC_HDRMNT=
LIPC_MODE=encrypt
LIPC_STATES_SEEN=
# LIPC_STATES_SEEN: the state stores of the devices handled so far in this
# boot; LIPC_IDX: the device in hand ('' the first, N for rd.luksipc.N=).
# Also shared, set by the steps: LIPC_CMDLINE, LIPC_CRED_FLAGS and
# LIPC_WANTED_DONE (credentials, lipc_wanted); LIPC_DEVSPEC and LIPC_TIMEOUT (cmdline,
# lipc_main); LIPC_STATE, LIPC_DEV, LIPC_STATUS and LIPC_PHASE (devices);
# LIPC_RZ_* (resize: the ext superblock).
# Present only in the QEMU test images (qemu-tests/lib/initrd-builders.sh).
# Set here, not taken from the environment: initramfs-tools turns NAME=value
# words of the kernel command line into environment variables.
LIPC_TEST_HOOKS=/etc/luksipc/test-hooks
# Present in an initramfs built while `luksipc arm` is in force (the hooks
# copy the arm record): luksipc-finalize.service in the booted system
# writes crypttab, hands the keys over and removes the flags, so the boot
# says that instead of printing the admin's manual steps.
LIPC_ARMED=/etc/luksipc/armed
# luksipc arm --bootstrap-key: the key's copy in the image (ARM_BOOTSTRAP_KEY_IMAGE in src/arm.h)
LIPC_BOOTSTRAP_KEY=/etc/luksipc/bootstrap.key
LIPC_TEST_HOLD=


# ==== util ==================================================================
# Messages (console and plymouth), the one-line error, and small pure
# helpers the other sections share.

lipc_log() {
    echo "luksipc: ${LIPC_IDX:+[$LIPC_IDX] }$*" >&2
    lipc_plymouth_msg "luksipc: ${LIPC_IDX:+[$LIPC_IDX] }$*"
}

lipc_plymouth_msg() {
    command -v plymouth >/dev/null 2>&1 || return 0
    plymouth --ping 2>/dev/null || return 0
    plymouth display-message --text="$1" 2>/dev/null || :
}

lipc_fail() {
    # shellcheck disable=SC2034 # read by the adapter
    LIPC_ERROR="luksipc: error: ${LIPC_IDX:+device $LIPC_IDX (rd.luksipc.$LIPC_IDX.*): }$*"
    return 1
}

lipc_uptime() {
    local t
    read -r t _ </proc/uptime
    echo "${t%%.*}"
}

lipc_is_uint() {
    case $1 in '' | *[!0-9]*) return 1 ;; esac
}

# lipc_size_bytes SIZE: bytes from "N", "NK", "NM" or "NG" (binary).
lipc_size_bytes() {
    local n
    n=${1%[KkMmGg]}
    lipc_is_uint "$n" || return 1
    case $1 in
    *[Kk]) echo $((n * 1024)) ;;
    *[Mm]) echo $((n * 1048576)) ;;
    *[Gg]) echo $((n * 1073741824)) ;;
    *) echo "$n" ;;
    esac
}

# lipc_oneline TEXT...: TEXT with every run of blanks and newlines made one
# space, so that a tool's message fits the one-line error.
lipc_oneline() {
    set -f
    # shellcheck disable=SC2048,SC2086 # splitting on blanks is the point
    set -- $*
    set +f
    printf '%s\n' "$*"
}


# ==== cmdline ===============================================================
# The kernel command line (LIPC_CMDLINE, else /proc/cmdline): rd.luksipc=
# and root=. The other rd.luksipc.* flags are read where they are used.
#
# Several devices per boot (docs/cmdline.md): rd.luksipc= is the first
# device, rd.luksipc.N= (N = 2..9) the others, each with its own
# rd.luksipc.N.state= and, when they differ, rd.luksipc.N.X= for any other
# flag. While device N is handled (LIPC_IDX=N), lipc_arg rd.luksipc.X reads
# rd.luksipc.N.X; for the flags that describe the boot rather than one
# device (key, timeout, pbkdf, ...) it falls back to rd.luksipc.X, never for
# state, name, mode, old-key, resize and used-only.

# lipc_arg NAME: the value of NAME for the device in hand (see above).
lipc_arg() {
    local sub
    [ -n "${LIPC_IDX:-}" ] || { lipc_arg_raw "$1"; return; }
    case $1 in
    rd.luksipc) lipc_arg_raw "rd.luksipc.$LIPC_IDX" ;;
    rd.luksipc.state | rd.luksipc.name | rd.luksipc.mode | rd.luksipc.old-key | rd.luksipc.resize | rd.luksipc.used-only | rd.luksipc.header)
        lipc_arg_raw "rd.luksipc.$LIPC_IDX.${1#rd.luksipc.}"
        ;;
    rd.luksipc.*)
        sub=${1#rd.luksipc.}
        lipc_arg_raw "rd.luksipc.$LIPC_IDX.$sub" || lipc_arg_raw "$1"
        ;;
    *) lipc_arg_raw "$1" ;;
    esac
}

# lipc_devices: the indexes of the devices to convert, in order: "-" for
# rd.luksipc= (when set and not 0), then each N of rd.luksipc.N=.
lipc_devices() {
    local n v
    v=$(lipc_arg_raw rd.luksipc) && [ -n "$v" ] && [ "$v" != 0 ] && echo -
    for n in 2 3 4 5 6 7 8 9; do
        v=$(lipc_arg_raw "rd.luksipc.$n") && [ -n "$v" ] && [ "$v" != 0 ] && echo "$n"
    done
    return 0
}

# lipc_arg_raw NAME: print the value of the last NAME=VALUE on the command
# line; false when NAME= is absent.
lipc_arg_raw() {
    local found val w
    found=1
    val=
    set -f
    # shellcheck disable=SC2086 # word splitting of the command line is wanted
    for w in ${LIPC_CMDLINE-$(cat /proc/cmdline 2>/dev/null)}; do
        case $w in
        "$1"=*)
            val=${w#*=}
            found=0
            ;;
        esac
    done
    set +f
    [ "$found" = 0 ] || return 1
    printf '%s\n' "$val"
}

# ==== credentials ===========================================================
# The same settings from system credentials, so that one image can ship
# without the flags and each machine gets them from its VMM or systemd
# (docs/cmdline.md, "Settings from credentials"): the credential
# luksipc.device=V is rd.luksipc=V, luksipc.NAME=V is rd.luksipc.NAME=V
# (luksipc.2=V, luksipc.2.state=V: the second device).
# Read from the credentials systemd imported (LIPC_CRED_DIR), QEMU's
# fw_cfg (LIPC_FWCFG_DIR: opt/io.systemd.credentials/NAME) and SMBIOS
# type 11 strings (LIPC_DMI_DIR: io.systemd.credential:NAME=V). They go
# before the kernel command line, so its flags win (lipc_arg takes the
# last). The directories are variables for the tests.
LIPC_CRED_DIR=${LIPC_CRED_DIR:-/run/credentials/@system}
LIPC_FWCFG_DIR=${LIPC_FWCFG_DIR:-/sys/firmware/qemu_fw_cfg/by_name/opt/io.systemd.credentials}
LIPC_DMI_DIR=${LIPC_DMI_DIR:-/sys/firmware/dmi/entries}

# lipc_cred_word NAME VALUE: the flag for credential NAME, or nothing (and
# a log line for a luksipc.* name or a value it cannot take).
lipc_cred_word() {
    local flag
    case $1 in
    luksipc.device) flag=rd.luksipc ;;
    luksipc. | luksipc.*[!a-z0-9.-]* | *..* | *.)
        lipc_log "ignoring the credential '$1': not a luksipc setting (luksipc.device, luksipc.state, ...)"
        return 0
        ;;
    luksipc.*) flag=rd.$1 ;;
    *) return 0 ;;
    esac
    case $2 in
    '' | *[[:space:]]*)
        lipc_log "ignoring the credential '$1': its value is empty or holds blanks"
        return 0
        ;;
    esac
    printf '%s=%s\n' "$flag" "$2"
}

# lipc_cred_words: the flags of every luksipc.* credential, one per line.
lipc_cred_words() {
    local f n v
    if ! [ -d "${LIPC_FWCFG_DIR%/by_name/*}" ] && command -v modprobe >/dev/null 2>&1; then
        modprobe -q qemu_fw_cfg 2>/dev/null || :
    fi
    for f in "$LIPC_CRED_DIR"/luksipc.*; do
        [ -f "$f" ] && lipc_cred_word "${f##*/}" "$(cat "$f")"
    done
    for f in "$LIPC_FWCFG_DIR"/luksipc.*/raw; do
        [ -f "$f" ] || continue
        n=${f%/raw}
        lipc_cred_word "${n##*/}" "$(cat "$f")"
    done
    for f in "$LIPC_DMI_DIR"/11-*/raw; do
        [ -f "$f" ] || continue
        tr '\000' '\n' <"$f" |
            sed -n 's/^.*io\.systemd\.credential:\(luksipc\.[^=]*\)=\(.*\)$/\1 \2/p' |
            while read -r n v; do
                lipc_cred_word "$n" "$v"
            done
    done
    return 0
}

# lipc_wanted: whether rd.luksipc= or rd.luksipc.N= is set, on the command line
# (LIPC_CMDLINE, else /proc/cmdline) or by a credential; sets LIPC_CMDLINE
# to the credentials' flags followed by the command line. The adapters ask
# it before anything else.
lipc_wanted() {
    local creds
    creds=$(lipc_cred_words | tr '\n' ' ')
    LIPC_CRED_FLAGS=$creds
    LIPC_CMDLINE="$creds${LIPC_CMDLINE-$(cat /proc/cmdline 2>/dev/null)}"
    LIPC_WANTED_DONE=1
    [ -n "$(lipc_devices)" ]
}

# lipc_setup: LIPC_DEVSPEC from rd.luksipc=; false when it is absent, empty
# or 0 (nothing to do).
lipc_setup() {
    LIPC_DEVSPEC=$(lipc_arg rd.luksipc) || return 1
    [ "$LIPC_DEVSPEC" != 0 ] || return 1
    [ -n "$LIPC_DEVSPEC" ] || return 1
    return 0
}

# lipc_root_spec: the device root= names ("block:" prefix of dracut removed).
lipc_root_spec() {
    local spec
    spec=$(lipc_arg root) || return 1
    spec=${spec#block:}
    [ -n "$spec" ] && echo "$spec"
}


# ==== devices ===============================================================
# The device to convert and the state store: waiting for a device to
# appear, sysfs, and what `luksipc status` recorded (LIPC_STATUS,
# LIPC_PHASE).

# lipc_resolve SPEC: print the block device node SPEC names, if present.
lipc_resolve() {
    local dev
    dev=
    case $1 in
    UUID=*) dev=/dev/disk/by-uuid/${1#UUID=} ;;
    PARTUUID=*) dev=/dev/disk/by-partuuid/${1#PARTUUID=} ;;
    LABEL=*) dev=/dev/disk/by-label/${1#LABEL=} ;;
    PARTLABEL=*) dev=/dev/disk/by-partlabel/${1#PARTLABEL=} ;;
    /dev/*) dev=$1 ;;
    *) return 1 ;;
    esac
    if ! [ -b "$dev" ]; then
        case $1 in
        /dev/*) return 1 ;;
        esac
        command -v blkid >/dev/null 2>&1 || return 1
        dev=$(blkid -l -t "$1" -o device 2>/dev/null) || return 1
        [ -b "$dev" ] || return 1
    fi
    readlink -f "$dev" 2>/dev/null || echo "$dev"
}

lipc_settle() {
    command -v udevadm >/dev/null 2>&1 || return 0
    udevadm settle --timeout="${1:-5}" >/dev/null 2>&1 || :
}

# lipc_wait WHAT SPEC...: wait up to LIPC_TIMEOUT seconds until one of the
# SPECs resolves (see lipc_resolve), print its node. The path recorded in
# the state, confirmed by luksipc status, is lipc_find_device's fallback.
lipc_wait() {
    local what end said spec dev
    what=$1
    shift
    end=$(($(lipc_uptime) + LIPC_TIMEOUT))
    said=
    while :; do
        for spec in "$@"; do
            dev=$(lipc_resolve "$spec") || continue
            echo "$dev"
            return 0
        done
        [ "$(lipc_uptime)" -lt "$end" ] || return 1
        if [ -z "$said" ]; then
            lipc_log "waiting up to ${LIPC_TIMEOUT} s for $what $1"
            said=1
        fi
        lipc_settle 1
        sleep 1
    done
}

lipc_sysname() {
    local path
    path=$(readlink -f "$1" 2>/dev/null) || path=$1
    echo "${path##*/}"
}

# lipc_holder DEV: print the dm name of a mapping stacked on DEV, if any.
lipc_holder() {
    local h
    for h in /sys/class/block/"$(lipc_sysname "$1")"/holders/*; do
        [ -r "$h/dm/name" ] || continue
        cat "$h/dm/name"
        return 0
    done
    return 1
}

lipc_is_crypt_mapping() {
    local uuid_file
    uuid_file=/sys/class/block/$(lipc_sysname "$1")/dm/uuid
    [ -r "$uuid_file" ] || return 1
    case $(cat "$uuid_file") in CRYPT-*) return 0 ;; esac
    return 1
}

lipc_dev_bytes() {
    local sectors
    read -r sectors <"/sys/class/block/$(lipc_sysname "$1")/size" || return 1
    echo $((sectors * 512))
}

# lipc_status_get FIELD: value of "FIELD: value" in LIPC_STATUS.
lipc_status_get() {
    local line v
    printf '%s\n' "$LIPC_STATUS" | while IFS= read -r line; do
        case $line in
        "$1":*)
            v=${line#*:}
            v=${v# *}
            printf '%s\n' "${v%% *}"
            break
            ;;
        esac
    done
}

# lipc_load_status: LIPC_PHASE is the recorded phase, or "none" when the
# state store holds no luksipc state yet (blank side partition).
lipc_load_status() {
    if LIPC_STATUS=$("$LIPC_BIN" status --state "$LIPC_STATE" 2>/dev/null); then
        LIPC_PHASE=$(lipc_status_get phase)
        [ -n "$LIPC_PHASE" ] || LIPC_PHASE=none
    else
        LIPC_STATUS=
        LIPC_PHASE=none
    fi
}

# lipc_find_device: set LIPC_DEV, the device to convert (or converted).
# Once the header is written the original spelling may no longer resolve
# (a filesystem UUID or root=UUID=), so the LUKS UUID and the path recorded
# in the state are tried as well; a recorded path must match the state.
lipc_find_device() {
    local luks_uuid recorded
    luks_uuid=
    recorded=
    if [ "$LIPC_PHASE" != none ]; then
        luks_uuid=$(lipc_status_get luks-uuid)
        recorded=$(lipc_status_get device)
    fi
    case $LIPC_PHASE in
    header | 'done')
        # a detached header leaves no signature on the device: the path
        # recorded in the state (checked below) instead of its LUKS UUID
        if [ -n "$LIPC_HEADER" ]; then
            set -- "$LIPC_DEVSPEC" ${recorded:+"$recorded"}
        else
            set -- ${luks_uuid:+"UUID=$luks_uuid"} "$LIPC_DEVSPEC"
        fi
        ;;
    *)
        set -- "$LIPC_DEVSPEC"
        ;;
    esac
    if ! LIPC_DEV=$(lipc_wait device "$@"); then
        if [ -n "$recorded" ] && [ -b "$recorded" ] &&
            "$LIPC_BIN" status --state "$LIPC_STATE" -d "$recorded" >/dev/null 2>&1; then
            LIPC_DEV=$(readlink -f "$recorded")
        else
            lipc_fail "device '$LIPC_DEVSPEC' did not appear within ${LIPC_TIMEOUT} s; check rd.luksipc= and rd.luksipc.timeout="
            return 1
        fi
    fi
    if lipc_is_crypt_mapping "$LIPC_DEV"; then
        lipc_fail "device '$LIPC_DEV' is an open LUKS mapping, not the raw device; point rd.luksipc= at the partition underneath"
        return 1
    fi
    if [ "$LIPC_PHASE" != none ] &&
        ! "$LIPC_BIN" status --state "$LIPC_STATE" -d "$LIPC_DEV" >/dev/null 2>&1; then
        lipc_fail "state on '$LIPC_STATE' does not match device '$LIPC_DEV'; check rd.luksipc= and rd.luksipc.state="
        return 1
    fi
}


# ==== keys ==================================================================
# The key: a passphrase asked the way this initramfs asks, or a key file
# on a key device mounted read-only (also used by initramfs-tools/keydev);
# how it is handed to luksipc and cryptsetup, and released.

# lipc_read_tty PROMPT: read a line without echo from the console.
lipc_read_tty() {
    local tty pass rc
    tty=/dev/console
    [ -t 0 ] && tty=/dev/stdin
    printf '%s' "$1" >"$tty"
    stty -echo <"$tty" 2>/dev/null
    IFS= read -r pass <"$tty"
    rc=$?
    stty echo <"$tty" 2>/dev/null
    echo >"$tty"
    [ "$rc" = 0 ] || return 1
    printf '%s' "$pass"
    pass=
}

# lipc_ask PROMPT: print one passphrase, asked the way this initrd asks.
lipc_ask() {
    if [ -d /run/systemd/system ] && command -v systemd-ask-password >/dev/null 2>&1; then
        systemd-ask-password --timeout=0 --id="luksipc:$LIPC_DEVSPEC" "$1"
    elif command -v plymouth >/dev/null 2>&1 && plymouth --ping 2>/dev/null; then
        plymouth ask-for-password --prompt="$1"
    else
        lipc_read_tty "$1 "
    fi
}

lipc_ask_passphrase() {
    local again
    if [ "$LIPC_PHASE" = 'done' ]; then
        # converted already: the flags stay until finalize; this only opens it
        LIPC_PASS=$(lipc_ask "Passphrase to open $LIPC_DEV (converted):") ||
            { lipc_fail "no passphrase entered for '$LIPC_DEV'"; return 1; }
    elif [ "$LIPC_PHASE" != none ]; then
        LIPC_PASS=$(lipc_ask "Passphrase to resume converting $LIPC_DEV:") ||
            { lipc_fail "no passphrase entered for '$LIPC_DEV'"; return 1; }
    elif [ "$LIPC_MODE" = reencrypt ] && [ -z "$LIPC_OLDKEYFILE" ]; then
        # the current passphrase stays; only the volume key is replaced
        LIPC_PASS=$(lipc_ask "Passphrase of $LIPC_DEV (kept, the volume key is replaced):") ||
            { lipc_fail "no passphrase entered for '$LIPC_DEV'"; return 1; }
    else
        LIPC_PASS=$(lipc_ask "New passphrase for $LIPC_DEV:") ||
            { lipc_fail "no passphrase entered for '$LIPC_DEV'"; return 1; }
        again=$(lipc_ask "Repeat the passphrase for $LIPC_DEV:") ||
            { lipc_fail "no passphrase entered for '$LIPC_DEV'"; return 1; }
        if [ "$LIPC_PASS" != "$again" ]; then
            again=
            lipc_fail "passphrases for '$LIPC_DEV' differ; reboot to try again"
            return 1
        fi
        again=
    fi
    [ -n "$LIPC_PASS" ] || { lipc_fail "empty passphrase for '$LIPC_DEV'"; return 1; }
}

# lipc_fstype DEV: the filesystem type blkid finds on DEV, its module
# loaded (quietly: it may be built in); false when blkid finds none.
lipc_fstype() {
    local fstype
    fstype=$(blkid -p -s TYPE -o value "$1" 2>/dev/null)
    [ -n "$fstype" ] || return 1
    if command -v modprobe >/dev/null 2>&1; then
        modprobe -q "fs-$fstype" 2>/dev/null || modprobe -q "$fstype" 2>/dev/null || :
    fi
    echo "$fstype"
}

# lipc_mount_ro DEV MNT WHERE: mount the key device DEV read-only on MNT;
# WHERE names what gave the device ("rd.luksipc.key=", or the crypttab key
# field) for the message. mount without -t tries only the types the kernel
# already has, and a stock initramfs has not loaded ext4 or vfat by
# local-top; so name the type blkid finds and load its module (quietly: it
# may be built in).
lipc_mount_ro() {
    local fstype err
    if ! fstype=$(lipc_fstype "$1"); then
        lipc_fail "key device '$1' holds no filesystem that blkid recognises; check $3 names the device that holds the key file"
        return 1
    fi
    if ! err=$(mount -t "$fstype" -o ro "$1" "$2" 2>&1); then
        lipc_fail "cannot mount key device '$1' ($fstype) read-only: $(lipc_oneline "${err:-mount gave no reason}"); check $3 and that the initramfs has the $fstype module"
        return 1
    fi
}

# lipc_key_file FLAG MNT: print the file that FLAG=PATH[:KEYDEV] names (see
# lipc_key_spec); false when FLAG is absent.
lipc_key_file() {
    local val
    val=$(lipc_arg "$1") || return 1
    lipc_key_spec "$1=$val" "$val" "$2"
}

# lipc_key_spec WHERE SPEC MNT: print the file that SPEC (PATH[:KEYDEV])
# names, mounting KEYDEV read-only on $LIPC_RUN/MNT (or reusing the mount of
# an earlier key with the same KEYDEV); returns 2 with LIPC_ERROR set when
# it cannot. WHERE names where SPEC came from (the flag and its value), for
# the messages. Mounts are
# recorded in LIPC_KEYMNT.
lipc_key_spec() {
    local path keydev dev mnt m file spec
    spec=$2
    path=${spec%%:*}
    keydev=
    case $spec in *:*) keydev=${spec#*:} ;; esac
    if [ -z "$path" ]; then
        lipc_fail "$1 names no key file; write it as PATH[:DEVICE]"
        return 2
    fi
    if [ -n "$keydev" ]; then
        dev=$(lipc_wait "key device" "$keydev") || {
            lipc_fail "key device '$keydev' did not appear within ${LIPC_TIMEOUT} s; check $1"
            return 2
        }
        mnt=
        for m in $LIPC_KEYMNT; do
            [ "$(cat "$m.dev" 2>/dev/null)" = "$dev" ] && mnt=$m
        done
        if [ -z "$mnt" ]; then
            mnt=$LIPC_RUN/$3
            mkdir -p "$mnt"
            lipc_mount_ro "$dev" "$mnt" "$1" || return 2
            echo "$dev" >"$mnt.dev"
            LIPC_KEYMNT="$LIPC_KEYMNT $mnt"
        fi
        file=$mnt/${path#/}
    else
        file=$path
    fi
    if ! [ -f "$file" ] || ! [ -s "$file" ]; then
        lipc_fail "key file '$path' is missing or empty; check $1"
        return 2
    fi
    echo "$file"
}

# lipc_get_key: LIPC_KEYFILE (rd.luksipc.key=PATH[:DEVICE]) or LIPC_PASS;
# in reencrypt mode also LIPC_OLDKEYFILE (rd.luksipc.old-key=, else the
# same key). LIPC_NOTEKEY is the key file as the admin knows it: the flag's
# value, or "-" (none) for a passphrase. The key files are read in the
# caller's shell, so LIPC_KEYMNT survives for lipc_release_key.
lipc_get_key() {
    if [ "$LIPC_MODE" = reencrypt ] && [ "$LIPC_PHASE" != 'done' ]; then
        lipc_key_file rd.luksipc.old-key oldkeydev >"$LIPC_RUN/kf"
        case $? in
        0) read -r LIPC_OLDKEYFILE <"$LIPC_RUN/kf" ;;
        2) return 1 ;;
        esac
    fi
    lipc_key_file rd.luksipc.key keydev >"$LIPC_RUN/kf"
    case $? in
    0)
        read -r LIPC_KEYFILE <"$LIPC_RUN/kf"
        LIPC_NOTEKEY=$(lipc_arg rd.luksipc.key)
        ;;
    2) return 1 ;;
    *)
        LIPC_NOTEKEY=-
        lipc_ask_passphrase || return 1
        if [ "$LIPC_MODE" = reencrypt ] && [ -z "$LIPC_OLDKEYFILE" ]; then
            # The passphrase is the old and the new key; luksipc reads a
            # key from stdin once, so hand it over in a private file.
            LIPC_CONVKEY=$LIPC_RUN/passphrase
            (umask 077 && printf '%s' "$LIPC_PASS" >"$LIPC_CONVKEY") ||
                { lipc_fail "cannot write '$LIPC_CONVKEY'"; return 1; }
        fi
        ;;
    esac
}

lipc_release_key() {
    local mnt
    LIPC_PASS=
    if [ -n "$LIPC_CONVKEY" ]; then
        rm -f "$LIPC_CONVKEY"
        LIPC_CONVKEY=
    fi
    rm -f "$LIPC_RUN/kf"
    for mnt in $LIPC_KEYMNT; do
        umount "$mnt" 2>/dev/null
        rm -f "$mnt.dev"
    done
    LIPC_KEYMNT=
}

# lipc_with_key CMD...: run CMD with the key on stdin (passphrase) or with
# "--key-file FILE" appended.
lipc_with_key() {
    if [ -n "$LIPC_KEYFILE" ]; then
        "$@" --key-file "$LIPC_KEYFILE" </dev/null
    else
        printf '%s' "$LIPC_PASS" | "$@" --key-file -
    fi
}

# lipc_convert_key CMD...: lipc_with_key, except that a passphrase that is
# both the old and the new key is passed as a file.
lipc_convert_key() {
    if [ -n "$LIPC_CONVKEY" ]; then
        "$@" --key-file "$LIPC_CONVKEY" </dev/null
    else
        lipc_with_key "$@"
    fi
}


# ==== header ================================================================
# rd.luksipc.header=DEVICE[:/PATH] (encrypt mode): a detached LUKS header,
# on the raw partition DEVICE, or in the file PATH of the filesystem on
# DEVICE (mounted read-write on $LIPC_RUN/hdr while luksipc and cryptsetup
# need it, then unmounted before the boot goes on). The data is encrypted
# where it lies: no shrink, so XFS and full filesystems convert too.

# lipc_header_setup: LIPC_HEADER (and LIPC_HDRMNT) from rd.luksipc.header=;
# nothing without the flag.
lipc_header_setup() {
    local spec devspec path dev fstype err mnt
    LIPC_HEADER=
    spec=$(lipc_arg rd.luksipc.header) || return 0
    if [ "$LIPC_MODE" = reencrypt ]; then
        lipc_fail "rd.luksipc.header= works with rd.luksipc.mode=encrypt or decrypt; a re-encryption keeps its header on the device: drop rd.luksipc.header="
        return 1
    fi
    # DEVICE:/PATH splits at the first ":/"; a colon without "/" after it
    # belongs to the device's name (by-path and USB by-id names have them),
    # except after a UUID=, LABEL=... tag, where it is a relative PATH
    case $spec in
    ?*:/*)
        devspec=${spec%%:/*}
        path=/${spec#*:/}
        ;;
    UUID=*:* | PARTUUID=*:* | LABEL=*:* | PARTLABEL=*:*)
        lipc_fail "bad rd.luksipc.header='$spec': the file after ':' needs an absolute path (DEVICE:/PATH), or name a whole partition (DEVICE)"
        return 1
        ;;
    '')
        lipc_fail "rd.luksipc.header= is empty: name the partition for the LUKS header, or DEVICE:/PATH of a file in a filesystem"
        return 1
        ;;
    *)
        devspec=$spec
        path=
        ;;
    esac
    dev=$(lipc_wait "header device" "$devspec") ||
        { lipc_fail "header device '$devspec' did not appear within ${LIPC_TIMEOUT} s; check rd.luksipc.header= and rd.luksipc.timeout="; return 1; }
    if [ -z "$path" ]; then
        LIPC_HEADER=$dev
        return 0
    fi
    if ! fstype=$(lipc_fstype "$dev"); then
        lipc_fail "header device '$dev' holds no filesystem that blkid recognises, so it cannot hold the file '$path'; check rd.luksipc.header="
        return 1
    fi
    mnt=$LIPC_RUN/hdr${LIPC_IDX:+.$LIPC_IDX}
    mkdir -p "$mnt" || { lipc_fail "cannot make '$mnt'"; return 1; }
    if ! err=$(mount -t "$fstype" -o rw,nosuid,nodev,noexec "$dev" "$mnt" 2>&1); then
        lipc_fail "cannot mount header device '$dev' ($fstype) read-write: $(lipc_oneline "${err:-mount gave no reason}"); check rd.luksipc.header= (it cannot also be the key device, which is mounted read-only) and that the initramfs has the $fstype module"
        return 1
    fi
    LIPC_HDRMNT=$mnt
    LIPC_HEADER=$mnt$path
}

# lipc_header_release: unmount what lipc_header_setup mounted.
lipc_header_release() {
    [ -n "$LIPC_HDRMNT" ] || return 0
    if ! umount "$LIPC_HDRMNT" 2>/dev/null; then
        lipc_log "cannot unmount the header device from '$LIPC_HDRMNT'; it stays mounted there"
    fi
    LIPC_HDRMNT=
}


# ==== resize ================================================================
# rd.luksipc.resize=1: shrink an ext2/3/4 filesystem by the header size
# before the conversion starts (dumpe2fs, e2fsck, resize2fs).

# lipc_header_bytes: the header size the conversion will use:
# rd.luksipc.header-size=, else luksipc's default for the LUKS version
# (LUKS2_HEADER_SIZE_DEFAULT and LUKS1_HEADER_SIZE_DEFAULT in src/luks.h,
# shown by luksipc --help). The library's only copy of those defaults.
lipc_header_bytes() {
    local size
    if size=$(lipc_arg rd.luksipc.header-size); then
        lipc_size_bytes "$size"
    elif [ "$(lipc_arg rd.luksipc.type)" = luks1 ]; then
        echo 2097152
    else
        echo 16777216
    fi
}

# lipc_dumpe2fs_get TEXT FIELD: the first word after "FIELD:" in TEXT,
# dumpe2fs -h output.
lipc_dumpe2fs_get() {
    local field line v
    field=$2
    printf '%s\n' "$1" | while IFS= read -r line; do
        case $line in
        "$field:"*)
            v=${line#*:}
            # shellcheck disable=SC2086 # split off the first word
            set -- $v
            echo "$1"
            break
            ;;
        esac
    done
}

# lipc_sb_read: LIPC_RZ_* from the superblock of LIPC_DEV (dumpe2fs -h,
# read only); false when it cannot be read.
lipc_sb_read() {
    local sb icount ifree v
    sb=$(dumpe2fs -h "$LIPC_DEV" 2>/dev/null) || return 1
    LIPC_RZ_BS=$(lipc_dumpe2fs_get "$sb" "Block size")
    LIPC_RZ_BC=$(lipc_dumpe2fs_get "$sb" "Block count")
    LIPC_RZ_FREE=$(lipc_dumpe2fs_get "$sb" "Free blocks")
    LIPC_RZ_FIRST=$(lipc_dumpe2fs_get "$sb" "First block")
    LIPC_RZ_BPG=$(lipc_dumpe2fs_get "$sb" "Blocks per group")
    LIPC_RZ_IPG=$(lipc_dumpe2fs_get "$sb" "Inodes per group")
    icount=$(lipc_dumpe2fs_get "$sb" "Inode count")
    ifree=$(lipc_dumpe2fs_get "$sb" "Free inodes")
    for v in "$LIPC_RZ_BS" "$LIPC_RZ_BC" "$LIPC_RZ_FREE" "$LIPC_RZ_FIRST" \
        "$LIPC_RZ_BPG" "$LIPC_RZ_IPG" "$icount" "$ifree"; do
        lipc_is_uint "$v" || return 1
    done
    [ "$LIPC_RZ_BS" -gt 0 ] && [ "$LIPC_RZ_BPG" -gt 0 ] || return 1
    LIPC_RZ_IUSED=$((icount - ifree))
}

# lipc_tail_free FROM: print how many blocks at or above block FROM are
# free, from dumpe2fs's per-group free ranges (read only).
lipc_tail_free() {
    local from dump inside line last ranges r a b free
    from=$1
    dump=$(dumpe2fs "$LIPC_DEV" 2>/dev/null) || return 1
    printf '%s\n' "$dump" | {
        free=0
        inside=
        while IFS= read -r line; do
            case $line in
            'Group '*'(Blocks '*-*')'*)
                last=${line#*(Blocks }
                last=${last%%)*}
                last=${last#*-}
                inside=
                [ "$last" -lt "$from" ] || inside=1
                ;;
            '  Free blocks: '*)
                [ -n "$inside" ] || continue
                ranges=${line#*: }
                IFS=', '
                set -f
                # shellcheck disable=SC2086 # one range per word
                set -- $ranges
                set +f
                IFS=' 	
'
                for r in "$@"; do
                    a=${r%-*}
                    b=${r#*-}
                    [ "$a" -ge "$from" ] || a=$from
                    [ "$b" -lt "$a" ] || free=$((free + b - a + 1))
                done
                ;;
            esac
        done
        echo "$free"
    }
}

lipc_mib_up() {
    echo $((($1 * LIPC_RZ_BS + 1048575) / 1048576))
}

# lipc_resize_room LIM: whether the filesystem can end at block LIM, from
# its free blocks (read only); the one-line refusal in LIPC_ERROR if not.
# The used blocks at or above LIM (m) must move below it, and each moved
# block may cost one new extent-tree block in the worst case (its own
# extent, in an inode that needs a new leaf: resize2fs's own worst case),
# plus 64 blocks for directory and journal bookkeeping. So the free blocks
# below LIM must be at least 2m + 64. resize2fs -P is not asked: its
# estimate adds a flex group's worth of inode tables and whole groups, and
# refuses filesystems that have ample room (issue 16).
lipc_resize_room() {
    local tail tail_free move have need groups
    tail=$((LIPC_RZ_BC - $1))
    if ! tail_free=$(lipc_tail_free "$1") || ! lipc_is_uint "$tail_free"; then
        lipc_fail "cannot read the free blocks of '$LIPC_DEV' (dumpe2fs)"
        return 1
    fi
    move=$((tail - tail_free))
    have=$((LIPC_RZ_FREE - tail_free))
    need=$((2 * move + 64))
    if [ "$have" -lt "$need" ]; then
        lipc_fail "filesystem on '$LIPC_DEV' is too full to give up its last $(lipc_mib_up "$tail") MiB to the LUKS header: it needs $(lipc_mib_up "$need") MiB free below the new end and has $(lipc_mib_up "$have") MiB; free $(lipc_mib_up $((need - have))) MiB more (delete files) or make the partition that much bigger, then reboot"
        return 1
    fi
    groups=$((($1 - LIPC_RZ_FIRST) / LIPC_RZ_BPG))
    [ "$groups" -ge 1 ] || groups=1
    if [ "$LIPC_RZ_IUSED" -gt $((groups * LIPC_RZ_IPG)) ]; then
        lipc_fail "filesystem on '$LIPC_DEV' has too many files ($LIPC_RZ_IUSED inodes) to give up its last $(lipc_mib_up "$tail") MiB: the groups left hold $((groups * LIPC_RZ_IPG)); delete files or make the partition bigger, then reboot"
        return 1
    fi
}

# lipc_resize: shrink an ext2/3/4 filesystem that reaches past device size
# - header size so that it ends at or before the marker's block - header
# size (4 KiB less, and at most 8 KiB less), by exactly that much. Only before a conversion
# has started. Nothing is written when the free blocks do not allow it;
# otherwise e2fsck -f -y, the room checked again on the repaired counts,
# resize2fs -f, then e2fsck -fn must be clean and the block count within
# the limit before the conversion may start.
lipc_resize() {
    local fstype hdr size max
    fstype=$(blkid -p -s TYPE -o value "$LIPC_DEV" 2>/dev/null)
    case $fstype in
    ext2 | ext3 | ext4) ;;
    *)
        lipc_log "rd.luksipc.resize=1: '$LIPC_DEV' holds '${fstype:-no filesystem}', not ext2/3/4; not resizing"
        return 0
        ;;
    esac
    hdr=$(lipc_header_bytes) || { lipc_fail "bad rd.luksipc.header-size="; return 1; }
    size=$(lipc_dev_bytes "$LIPC_DEV") || { lipc_fail "cannot read the size of '$LIPC_DEV'"; return 1; }
    lipc_sb_read || { lipc_fail "cannot read the ext superblock of '$LIPC_DEV'"; return 1; }
    [ "$size" -gt "$hdr" ] || { lipc_fail "device '$LIPC_DEV' is smaller than the header"; return 1; }
    max=$(((size - hdr) / LIPC_RZ_BS))
    if [ "$LIPC_RZ_BC" -le "$max" ]; then
        lipc_log "filesystem on '$LIPC_DEV' already leaves room for the header; not resizing"
        return 0
    fi
    # a shrink also leaves the device's last whole 4 KiB to the converter's
    # in-progress marker (docs/format.md, "The device-side marker")
    max=$(((size / 4096 * 4096 - 4096 - hdr) / LIPC_RZ_BS))
    lipc_resize_room "$max" || return 1
    lipc_log "checking the filesystem on '$LIPC_DEV' before shrinking it"
    e2fsck -f -y "$LIPC_DEV" >&2
    [ $? -lt 4 ] || { lipc_fail "e2fsck found errors it could not fix on '$LIPC_DEV'; nothing converted; run e2fsck -f by hand"; return 1; }
    lipc_sb_read || { lipc_fail "cannot read the ext superblock of '$LIPC_DEV' after e2fsck"; return 1; }
    lipc_resize_room "$max" || return 1
    lipc_log "shrinking the filesystem on '$LIPC_DEV' from $LIPC_RZ_BC to $max blocks of $LIPC_RZ_BS bytes"
    resize2fs -f "$LIPC_DEV" "$max" >&2 ||
        { lipc_fail "resize2fs failed on '$LIPC_DEV'; nothing converted; run e2fsck -f and resize2fs by hand"; return 1; }
    if ! e2fsck -f -n "$LIPC_DEV" >&2; then
        lipc_fail "the filesystem on '$LIPC_DEV' is not clean after resize2fs; nothing converted; run e2fsck -f by hand"
        return 1
    fi
    if ! lipc_sb_read || [ "$LIPC_RZ_BC" -gt "$max" ]; then
        lipc_fail "the filesystem on '$LIPC_DEV' still ends after block $max after resize2fs; nothing converted; shrink it by hand"
        return 1
    fi
}


# ==== progress ==============================================================
# The converter's --progress-json lines, shown on the console and plymouth.

# lipc_json LINE KEY: the value of "KEY": in the one-line JSON object LINE.
lipc_json() {
    local v
    v=${1#*\""$2"\":}
    v=${v%%[,\}]*}
    v=${v#\"}
    echo "${v%\"}"
}

# lipc_progress: turn --progress-json lines into console and plymouth
# lines; anything else (warnings, errors) is passed through.
lipc_progress() {
    local last line pct copied total eta msg
    last=
    while IFS= read -r line; do
        case $line in
        '{"phase":"header"'*)
            if [ "$LIPC_MODE" = decrypt ]; then
                lipc_log "all data of $LIPC_DEV decrypted; wiping the old LUKS header"
            else
                lipc_log "all data of $LIPC_DEV converted; writing the new LUKS header"
            fi
            ;;
        '{'*'"percent"'*)
            pct=$(lipc_json "$line" percent)
            copied=$(lipc_json "$line" 'done')
            total=$(lipc_json "$line" total)
            eta=$(lipc_json "$line" eta_s)
            eta=${eta%%.*}
            lipc_is_uint "$eta" || eta=0
            lipc_is_uint "$copied" || copied=0
            lipc_is_uint "$total" || total=0
            msg=$(printf 'converting %s: %s%% (%s / %s MiB, ETA %d:%02d)' \
                "$LIPC_DEV" "$pct" $((copied / 1048576)) \
                $((total / 1048576)) $((eta / 60)) $((eta % 60)))
            [ "$msg" = "$last" ] || lipc_log "$msg"
            last=$msg
            ;;
        *) printf '%s\n' "$line" >&2 ;;
        esac
    done
}


# ==== convert ===============================================================
# Running `luksipc convert`: the mode the state allows, the test-hook
# environment, the options passed through, the exit code as one line, and
# the admin notes afterwards.

# lipc_check_mode: a started or finished state must be of the mode asked for.
lipc_check_mode() {
    local mode
    [ "$LIPC_PHASE" != none ] || return 0
    mode=$(lipc_status_get mode)
    [ -n "$mode" ] || mode=encrypt
    [ "$mode" != "$LIPC_MODE" ] || return 0
    if [ "$LIPC_PHASE" != 'done' ]; then
        lipc_fail "the state on '$LIPC_STATE' is an unfinished $mode conversion; set rd.luksipc.mode=$mode to resume it"
        return 1
    fi
    if [ "$LIPC_MODE" = reencrypt ] || [ "$LIPC_MODE" = decrypt ] || [ "$mode" = decrypt ]; then
        lipc_fail "the state on '$LIPC_STATE' holds a finished $mode conversion; for rd.luksipc.mode=$LIPC_MODE wipe it first (luksipc finalize --state $LIPC_STATE) or name another state partition"
        return 1
    fi
    # rd.luksipc.mode=encrypt (or none) after a finished re-encryption:
    # the device is LUKS, only open it
    LIPC_MODE=$mode
}

# lipc_test_env: outside a test image, no LUKSIPC_TEST_* variable reaches
# luksipc (the shipped binary ignores them too) and rd.luksipc.test-* is
# ignored. In a test image, rd.luksipc.test-header-delay=MS holds a test
# build between the header write and the record "done" (LIPC_TEST_HOLD),
# so that a power cut can land there.
lipc_test_env() {
    local l v
    if [ -e "$LIPC_TEST_HOOKS" ]; then
        LIPC_TEST_HOLD=$(lipc_arg rd.luksipc.test-header-delay) && lipc_is_uint "$LIPC_TEST_HOLD" || LIPC_TEST_HOLD=
        return 0
    fi
    ! lipc_arg rd.luksipc.test-header-delay >/dev/null ||
        lipc_log "ignoring rd.luksipc.test-header-delay: this initramfs is not a test image"
    for v in $(export -p | while IFS= read -r l; do
        l=${l#export }
        l=${l#declare -x }
        case ${l%%=*} in
        LUKSIPC_TEST_* ) printf '%s\n' "${l%%=*}" ;;
        esac
    done); do
        case $v in *[!A-Za-z0-9_]*) continue ;; esac
        unset "$v"
    done
    unset LUKSIPC_TEST_TRACE LUKSIPC_TEST_FAULT LUKSIPC_TEST_DELAY_MS LUKSIPC_TEST_HEADER_DELAY_MS
}

# lipc_convert_args: the pass-through rd.luksipc.* options, the mode, the
# old key and what the admin notes should name; one word a line.
lipc_convert_args() {
    local v opt fstype
    for opt in type sector-size pbkdf pbkdf-force-iterations header-size step-size; do
        v=$(lipc_arg "rd.luksipc.$opt") || continue
        printf '%s\n' "--$opt" "$v"
    done
    if [ "$LIPC_MODE" = reencrypt ]; then
        echo --reencrypt
        [ -z "$LIPC_OLDKEYFILE" ] || printf '%s\n' --old-key-file "$LIPC_OLDKEYFILE"
    fi
    [ "$LIPC_MODE" != decrypt ] || echo --decrypt
    # rd.luksipc.used-only=1|wipe: only what an ext2/3/4 or vfat uses
    # (encrypt mode). Another filesystem falls back to the whole device: a
    # refusal would leave the machine unbootable over a speed-up.
    if [ "$LIPC_MODE" = encrypt ] && v=$(lipc_arg rd.luksipc.used-only); then
        case $v in
        1 | wipe)
            fstype=$(blkid -p -s TYPE -o value "$LIPC_DEV" 2>/dev/null)
            case $fstype in
            ext2 | ext3 | ext4 | vfat) [ "$v" = 1 ] && echo --used-only || echo --used-only=wipe ;;
            *) lipc_log "rd.luksipc.used-only=$v: '$LIPC_DEV' holds ${fstype:-no filesystem blkid knows}, whose allocation map luksipc cannot read (it reads ext2/3/4 and vfat); converting the whole device" ;;
            esac
            ;;
        0) ;;
        *) lipc_log "ignoring rd.luksipc.used-only=$v: expected 1, wipe or 0" ;;
        esac
    fi
    if v=$(lipc_arg rd.luksipc.name); then
        printf '%s\n' --note-name "$v"
    fi
    [ -z "$LIPC_NOTEKEY" ] || printf '%s\n' --note-key-file "$LIPC_NOTEKEY"
    # the header where luksipc writes it, and how the booted system finds it (the flag)
    [ -z "$LIPC_HEADER" ] || printf '%s\n' --header "$LIPC_HEADER" --note-header "$(lipc_arg rd.luksipc.header)"
    printf '%s\n' --note-framework "$LIPC_FRAMEWORK"
}

lipc_convert() {
    local args rcfile what code
    args=$(lipc_convert_args)
    rcfile=$LIPC_RUN/convert.rc
    echo 1 >"$rcfile"
    case $LIPC_MODE in
    encrypt) what="to LUKS" ;;
    decrypt) what="from LUKS back to plaintext" ;;
    *) what="from LUKS to LUKS with a new volume key" ;;
    esac
    if [ "$LIPC_PHASE" = none ]; then
        lipc_log "converting '$LIPC_DEV' $what in place, state on '$LIPC_STATE'; do not power off (a cut resumes at the next boot)"
    else
        lipc_log "resuming the conversion of '$LIPC_DEV' $what ($(lipc_status_get 'done') of $(lipc_status_get data-size) bytes done, phase $LIPC_PHASE), state on '$LIPC_STATE'"
    fi
    # shellcheck disable=SC2086 # one option or value per line, no blanks
    {
        (IFS='
'
            set -f
            if [ -n "$LIPC_TEST_HOLD" ]; then
                LUKSIPC_TEST_HEADER_DELAY_MS=$LIPC_TEST_HOLD
                export LUKSIPC_TEST_HEADER_DELAY_MS
            fi
            lipc_convert_key "$LIPC_BIN" convert -d "$LIPC_DEV" --state "$LIPC_STATE" \
                --batch --progress-json $args 2>&1)
        echo $? >"$rcfile"
    } | lipc_progress
    read -r code <"$rcfile"
    case $code in
    0) return 0 ;;
    2) lipc_fail "bad rd.luksipc.* option for '$LIPC_DEV'; fix the kernel command line" ;;
    3)
        what="the device or the state store '$LIPC_STATE'"
        [ -z "$LIPC_HEADER" ] || what="the device, the state store '$LIPC_STATE' or the header target '$LIPC_HEADER'"
        lipc_fail "conversion of '$LIPC_DEV' refused by a safety check ($what, named above), nothing written; rebooting will not help: fix what the message names"
        ;;
    4) lipc_fail "key rejected for '$LIPC_DEV', nothing written; check rd.luksipc.key= or the passphrase" ;;
    5) lipc_fail "I/O error converting '$LIPC_DEV' (a read, write or flush failed; see the message above and dmesg); the state is consistent: fix the disk and reboot to resume" ;;
    6) lipc_fail "conversion of '$LIPC_DEV' interrupted; reboot to resume" ;;
    *) lipc_fail "luksipc failed with exit code $code on '$LIPC_DEV'; reboot to resume" ;;
    esac
}

# lipc_armed_here: luksipc arm planned this device (its record is in the
# image): the first device, or device N when the record has device.N=
# (luksipc arm --also); luksipc-finalize.service then finishes it.
lipc_armed_here() {
    local line
    [ -f "$LIPC_ARMED" ] || return 1
    [ -n "${LIPC_IDX:-}" ] || return 0
    while IFS= read -r line; do
        case $line in
        "device.$LIPC_IDX="*) return 0 ;;
        esac
    done <"$LIPC_ARMED"
    return 1
}

lipc_notes() {
    local fw line
    fw=
    [ "$LIPC_FRAMEWORK" = other ] || fw=$LIPC_FRAMEWORK
    if lipc_armed_here; then
        "$LIPC_BIN" status --state "$LIPC_STATE" --notes ${fw:+--framework "$fw"} \
            >"$LIPC_RUN/notes${LIPC_IDX:+.$LIPC_IDX}" 2>/dev/null
        lipc_log "'$LIPC_DEV' is now LUKS; luksipc-finalize.service finishes in the booted system (crypttab, keys, boot flags; luksipc status shows its steps)"
        return 0
    fi
    if [ "$LIPC_MODE" = decrypt ]; then
        lipc_log "'$LIPC_DEV' is plaintext again; what to do next (also in $LIPC_RUN/notes${LIPC_IDX:+.$LIPC_IDX}):"
    elif [ "$LIPC_MODE" = encrypt ]; then
        lipc_log "'$LIPC_DEV' is now LUKS; what to do next (also in $LIPC_RUN/notes${LIPC_IDX:+.$LIPC_IDX}):"
    else
        lipc_log "'$LIPC_DEV' is re-encrypted with a new volume key; what to do next (also in $LIPC_RUN/notes${LIPC_IDX:+.$LIPC_IDX}):"
    fi
    "$LIPC_BIN" status --state "$LIPC_STATE" --notes ${fw:+--framework "$fw"} \
        >"$LIPC_RUN/notes${LIPC_IDX:+.$LIPC_IDX}" 2>/dev/null
    while IFS= read -r line; do
        echo "luksipc:   $line" >&2
    done <"$LIPC_RUN/notes${LIPC_IDX:+.$LIPC_IDX}"
}


# ==== open ==================================================================
# Opening the LUKS device, so that root= finds the filesystem inside.

# lipc_refresh DEV: the header replaced the filesystem signature; make udev
# drop the stale by-uuid link before the mapping brings it back.
lipc_refresh() {
    command -v udevadm >/dev/null 2>&1 || return 0
    udevadm trigger --action=change "$1" >/dev/null 2>&1 || :
    lipc_settle 10
}

# lipc_open: open the LUKS device so that root=UUID=<filesystem> resolves.
lipc_open() {
    local name uuid
    if name=$(lipc_holder "$LIPC_DEV"); then
        lipc_log "'$LIPC_DEV' is already open as '$name'"
        return 0
    fi
    uuid=$(lipc_status_get luks-uuid)
    [ -n "$uuid" ] || uuid=$(cryptsetup luksUUID "${LIPC_HEADER:-$LIPC_DEV}" 2>/dev/null)
    name=$(lipc_arg rd.luksipc.name) || name=luks-$uuid
    if [ -n "$LIPC_HEADER" ]; then
        lipc_log "opening '$LIPC_DEV' as '$name' with the header in '$LIPC_HEADER'"
    else
        lipc_log "opening '$LIPC_DEV' as '$name'"
    fi
    if ! lipc_with_key cryptsetup open ${LIPC_HEADER:+--header "$LIPC_HEADER"} "$LIPC_DEV" "$name" >&2; then
        lipc_fail "cannot open '$LIPC_DEV' as '$name': wrong key or damaged header; check rd.luksipc.key= or the passphrase"
        return 1
    fi
    lipc_settle 10
}


# ==== run ===================================================================
# The entry point for the adapters (see the contract at the top) and the
# order of the steps.

# lipc_framework: LIPC_FRAMEWORK, unless the adapter set it.
lipc_framework() {
    case ${LIPC_FRAMEWORK-} in
    initramfs-tools | dracut | other) return 0 ;;
    esac
    if [ -e /scripts/functions ]; then
        LIPC_FRAMEWORK=initramfs-tools
    elif [ -e /lib/dracut-lib.sh ]; then
        LIPC_FRAMEWORK=dracut
    else
        LIPC_FRAMEWORK=other
    fi
}

lipc_main() {
    local name statespec
    lipc_framework
    LIPC_MODE=$(lipc_arg rd.luksipc.mode) || LIPC_MODE=encrypt
    case $LIPC_MODE in
    encrypt) ;;
    decrypt)
        # with rd.luksipc.header=: the detached header; without: the one on the device
        if [ "$LIPC_DEVSPEC" = root ]; then
            lipc_fail "rd.luksipc=root cannot name a LUKS device before it is decrypted (root= names the filesystem inside); use rd.luksipc=PARTUUID= or PARTLABEL="
            return 1
        fi
        ;;
    reencrypt)
        if [ "$LIPC_DEVSPEC" = root ]; then
            lipc_fail "rd.luksipc=root cannot name a LUKS device before it is opened (root= names the filesystem inside); use rd.luksipc=UUID=<LUKS UUID> (cryptsetup luksUUID) or PARTUUID="
            return 1
        fi
        ;;
    *)
        lipc_fail "bad rd.luksipc.mode='$LIPC_MODE'; use encrypt, reencrypt or decrypt"
        return 1
        ;;
    esac
    [ "$LIPC_DEVSPEC" != root ] || LIPC_DEVSPEC=$(lipc_root_spec) ||
        { lipc_fail "rd.luksipc=root but no root= on the kernel command line"; return 1; }
    statespec=$(lipc_arg rd.luksipc.state) || statespec=
    if [ -z "$statespec" ]; then
        lipc_fail "rd.luksipc.state= is missing; name the raw side partition that holds the state"
        return 1
    fi
    LIPC_TIMEOUT=$(lipc_arg rd.luksipc.timeout) || LIPC_TIMEOUT=30
    lipc_is_uint "$LIPC_TIMEOUT" || { lipc_fail "bad rd.luksipc.timeout='$LIPC_TIMEOUT'"; return 1; }
    command -v "$LIPC_BIN" >/dev/null 2>&1 || { lipc_fail "'$LIPC_BIN' is not in the initramfs; rebuild it with the luksipc module"; return 1; }
    mkdir -p "$LIPC_RUN" && chmod 700 "$LIPC_RUN"

    LIPC_STATE=$(lipc_wait "state device" "$statespec") ||
        { lipc_fail "state device '$statespec' did not appear within ${LIPC_TIMEOUT} s; check rd.luksipc.state="; return 1; }
    lipc_state_unique "$LIPC_STATE" || return 1
    # the header first: status matches a finished detached conversion by it
    lipc_header_setup || return 1
    lipc_load_status
    lipc_check_mode || return 1
    lipc_find_device || return 1

    if [ "$LIPC_PHASE" = 'done' ] && [ "$LIPC_MODE" = decrypt ]; then
        lipc_log "'$LIPC_DEV' is already decrypted; remove rd.luksipc from the kernel command line"
        return 0
    fi
    if [ "$LIPC_PHASE" = 'done' ]; then
        if lipc_armed_here; then
            lipc_log "'$LIPC_DEV' is already converted; luksipc-finalize.service in the booted system removes the rd.luksipc flags"
        elif [ -n "$LIPC_HEADER" ]; then
            lipc_log "'$LIPC_DEV' is already converted; its header is detached ('$LIPC_HEADER'): keep the rd.luksipc flags, they open it at every boot (see: luksipc status --state $LIPC_STATE --notes)"
        else
            lipc_log "'$LIPC_DEV' is already converted; remove rd.luksipc from the kernel command line (see: luksipc status --state $LIPC_STATE --notes)"
        fi
        if name=$(lipc_holder "$LIPC_DEV"); then
            lipc_log "'$LIPC_DEV' is already open as '$name'"
            return 0
        fi
        lipc_get_key || return 1
        lipc_open
        return
    fi
    if [ "$LIPC_MODE" = reencrypt ] && name=$(lipc_holder "$LIPC_DEV"); then
        lipc_fail "'$LIPC_DEV' is already open as '$name' (by cryptroot, systemd-cryptsetup or rd.luks.*); luksipc will not re-encrypt it underneath: let luksipc open it instead (drop it from the initramfs crypttab and rd.luks.uuid=, or add rd.luks=0), then reboot"
        return 1
    fi
    if [ "$LIPC_MODE" = encrypt ] && [ "$LIPC_PHASE" = none ] &&
        [ "$(lipc_arg rd.luksipc.resize)" = 1 ]; then
        if [ -n "$LIPC_HEADER" ]; then
            lipc_log "rd.luksipc.resize=1: the header goes to '$LIPC_HEADER', so nothing needs to shrink; not resizing"
        else
            lipc_resize || return 1
        fi
    fi
    lipc_get_key || return 1
    lipc_convert || return 1
    lipc_load_status
    lipc_notes
    lipc_refresh "$LIPC_DEV"
    # decrypted: the filesystem is on the device itself, nothing to open
    [ "$LIPC_MODE" = decrypt ] || lipc_open
}

# lipc_run: entry point for the adapters; see the contract at the top.
lipc_run() {
    local rc idx
    if [ -z "${LIPC_WANTED_DONE:-}" ]; then
        lipc_wanted || return 0
    fi
    [ -z "${LIPC_CRED_FLAGS:-}" ] || lipc_log "settings from credentials: $LIPC_CRED_FLAGS"
    # before anything is written: arm's bootstrap key opens the root only;
    # finalize retires it from the root's header and deletes it, which
    # would lock any other device that took it out
    for idx in $(lipc_devices); do
        [ "$idx" != - ] || continue
        LIPC_IDX=$idx
        if [ "$(lipc_arg rd.luksipc.key)" = "$LIPC_BOOTSTRAP_KEY" ]; then
            lipc_fail "luksipc arm's bootstrap key ($LIPC_BOOTSTRAP_KEY) is the root's alone: finalize retires it and would lock this device out; give it its own key with rd.luksipc.$idx.key= (nothing converted)"
            LIPC_IDX=
            return 1
        fi
    done
    rc=0
    for idx in $(lipc_devices); do
        lipc_device_reset
        [ "$idx" = - ] || LIPC_IDX=$idx
        lipc_setup || continue
        lipc_test_env
        lipc_main
        rc=$?
        lipc_release_key
        lipc_header_release
        [ "$rc" = 0 ] || break
    done
    LIPC_IDX=
    [ "$rc" = 0 ] && lipc_log "done; continuing the boot"
    return "$rc"
}

# lipc_state_unique NODE: NODE is not the state store of a device handled
# earlier in this boot (one store holds one conversion: a second device
# would be taken for the first, already converted one); records it.
lipc_state_unique() {
    local real seen
    real=$(readlink -f "$1" 2>/dev/null) || real=$1
    for seen in $LIPC_STATES_SEEN; do
        if [ "$seen" = "$real" ]; then
            lipc_fail "state store '$1' is also the state of another device of this boot; give each device its own (rd.luksipc.N.state=)"
            return 1
        fi
    done
    LIPC_STATES_SEEN="$LIPC_STATES_SEEN $real"
}

# lipc_device_reset: the per-device state back to what a boot starts with.
lipc_device_reset() {
    LIPC_IDX=
    LIPC_KEYFILE='' LIPC_OLDKEYFILE='' LIPC_CONVKEY='' LIPC_NOTEKEY='' LIPC_PASS='' LIPC_KEYMNT='' LIPC_HEADER='' LIPC_HDRMNT=''
    LIPC_MODE=encrypt LIPC_DEVSPEC='' LIPC_STATE='' LIPC_DEV='' LIPC_STATUS='' LIPC_PHASE=''
}
