#!/bin/sh
# luksipc-lib.sh: boot-time conversion logic shared by the dracut module and
# the initramfs-tools script. POSIX sh, sourced, never executed.
#
# Contract with the framework adapter that sources this file:
#   - it may set LIPC_CMDLINE (default: /proc/cmdline), LIPC_BIN
#     (default: luksipc from PATH) and LIPC_FRAMEWORK (initramfs-tools,
#     dracut or other, for the admin notes; default: guessed);
#   - it calls lipc_run once; lipc_run returns 0 when there was nothing to do
#     or when the device is converted and opened, and 1 otherwise with the
#     one-line reason in LIPC_ERROR; the adapter then enters its emergency
#     path (dracut: die / OnFailure=emergency.target, initramfs-tools: panic)
#     and writes nothing more.
# Every name this file defines starts with lipc_ or LIPC_ (no `local` in POSIX
# sh).

LIPC_BIN=${LIPC_BIN:-luksipc}
LIPC_RUN=${LIPC_RUN:-/run/luksipc}
LIPC_ERROR=
LIPC_KEYFILE=
LIPC_OLDKEYFILE=
LIPC_CONVKEY=
LIPC_NOTEKEY=
LIPC_PASS=
LIPC_KEYMNT=
LIPC_MODE=encrypt
# Present only in the QEMU test images (qemu-tests/lib/initrd-builders.sh).
# Set here, not taken from the environment: initramfs-tools turns NAME=value
# words of the kernel command line into environment variables.
LIPC_TEST_HOOKS=/etc/luksipc/test-hooks
LIPC_TEST_HOLD=

lipc_log() {
    echo "luksipc: $*" >&2
    lipc_plymouth_msg "luksipc: $*"
}

lipc_plymouth_msg() {
    command -v plymouth >/dev/null 2>&1 || return 0
    plymouth --ping 2>/dev/null || return 0
    plymouth display-message --text="$1" 2>/dev/null || :
}

lipc_fail() {
    # shellcheck disable=SC2034 # read by the adapter
    LIPC_ERROR="luksipc: error: $*"
    return 1
}

# lipc_arg NAME: print the value of the last NAME=VALUE on the command line;
# false when NAME= is absent.
lipc_arg() {
    lipc_a_found=1
    lipc_a_val=
    set -f
    # shellcheck disable=SC2086 # word splitting of the command line is wanted
    for lipc_a_w in ${LIPC_CMDLINE-$(cat /proc/cmdline 2>/dev/null)}; do
        case $lipc_a_w in
        "$1"=*)
            lipc_a_val=${lipc_a_w#*=}
            lipc_a_found=0
            ;;
        esac
    done
    set +f
    [ "$lipc_a_found" = 0 ] || return 1
    printf '%s\n' "$lipc_a_val"
}

lipc_uptime() {
    read -r lipc_u_t _ </proc/uptime
    echo "${lipc_u_t%%.*}"
}

lipc_is_uint() {
    case $1 in '' | *[!0-9]*) return 1 ;; esac
}

# lipc_size_bytes SIZE: bytes from "N", "NK", "NM" or "NG" (binary).
lipc_size_bytes() {
    lipc_s_n=${1%[KkMmGg]}
    lipc_is_uint "$lipc_s_n" || return 1
    case $1 in
    *[Kk]) echo $((lipc_s_n * 1024)) ;;
    *[Mm]) echo $((lipc_s_n * 1048576)) ;;
    *[Gg]) echo $((lipc_s_n * 1073741824)) ;;
    *) echo "$lipc_s_n" ;;
    esac
}

# lipc_resolve SPEC: print the block device node SPEC names, if present.
lipc_resolve() {
    lipc_r_dev=
    case $1 in
    UUID=*) lipc_r_dev=/dev/disk/by-uuid/${1#UUID=} ;;
    PARTUUID=*) lipc_r_dev=/dev/disk/by-partuuid/${1#PARTUUID=} ;;
    LABEL=*) lipc_r_dev=/dev/disk/by-label/${1#LABEL=} ;;
    PARTLABEL=*) lipc_r_dev=/dev/disk/by-partlabel/${1#PARTLABEL=} ;;
    /dev/*) lipc_r_dev=$1 ;;
    *) return 1 ;;
    esac
    if ! [ -b "$lipc_r_dev" ]; then
        case $1 in
        /dev/*) return 1 ;;
        esac
        command -v blkid >/dev/null 2>&1 || return 1
        lipc_r_dev=$(blkid -l -t "$1" -o device 2>/dev/null) || return 1
        [ -b "$lipc_r_dev" ] || return 1
    fi
    readlink -f "$lipc_r_dev" 2>/dev/null || echo "$lipc_r_dev"
}

# lipc_root_spec: the device root= names ("block:" prefix of dracut removed).
lipc_root_spec() {
    lipc_rs=$(lipc_arg root) || return 1
    lipc_rs=${lipc_rs#block:}
    [ -n "$lipc_rs" ] && echo "$lipc_rs"
}

lipc_settle() {
    command -v udevadm >/dev/null 2>&1 || return 0
    udevadm settle --timeout="${1:-5}" >/dev/null 2>&1 || :
}

# lipc_wait WHAT SPEC...: wait up to LIPC_TIMEOUT seconds until one of the
# SPECs resolves, print its node. A SPEC "=path" is taken as is when it is
# a block device that luksipc status confirms (see lipc_candidate_ok).
lipc_wait() {
    lipc_w_what=$1
    shift
    lipc_w_end=$(($(lipc_uptime) + LIPC_TIMEOUT))
    lipc_w_said=
    while :; do
        for lipc_w_spec in "$@"; do
            lipc_w_dev=$(lipc_resolve "$lipc_w_spec") || continue
            echo "$lipc_w_dev"
            return 0
        done
        [ "$(lipc_uptime)" -lt "$lipc_w_end" ] || return 1
        if [ -z "$lipc_w_said" ]; then
            lipc_log "waiting up to ${LIPC_TIMEOUT} s for $lipc_w_what $1"
            lipc_w_said=1
        fi
        lipc_settle 1
        sleep 1
    done
}

# lipc_status_get FIELD: value of "FIELD: value" in LIPC_STATUS.
lipc_status_get() {
    printf '%s\n' "$LIPC_STATUS" | while IFS= read -r lipc_sg_line; do
        case $lipc_sg_line in
        "$1":*)
            lipc_sg_v=${lipc_sg_line#*:}
            lipc_sg_v=${lipc_sg_v# *}
            printf '%s\n' "${lipc_sg_v%% *}"
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

lipc_sysname() {
    lipc_sn=$(readlink -f "$1" 2>/dev/null) || lipc_sn=$1
    echo "${lipc_sn##*/}"
}

# lipc_holder DEV: print the dm name of a mapping stacked on DEV, if any.
lipc_holder() {
    for lipc_h in /sys/class/block/"$(lipc_sysname "$1")"/holders/*; do
        [ -r "$lipc_h/dm/name" ] || continue
        cat "$lipc_h/dm/name"
        return 0
    done
    return 1
}

lipc_is_crypt_mapping() {
    lipc_icm=/sys/class/block/$(lipc_sysname "$1")/dm/uuid
    [ -r "$lipc_icm" ] || return 1
    case $(cat "$lipc_icm") in CRYPT-*) return 0 ;; esac
    return 1
}

lipc_dev_bytes() {
    read -r lipc_db <"/sys/class/block/$(lipc_sysname "$1")/size" || return 1
    echo $((lipc_db * 512))
}

# lipc_find_device: set LIPC_DEV, the device to convert (or converted).
# Once the header is written the original spelling may no longer resolve
# (a filesystem UUID or root=UUID=), so the LUKS UUID and the path recorded
# in the state are tried as well; a recorded path must match the state.
lipc_find_device() {
    lipc_fd_luks=
    lipc_fd_rec=
    if [ "$LIPC_PHASE" != none ]; then
        lipc_fd_luks=$(lipc_status_get luks-uuid)
        lipc_fd_rec=$(lipc_status_get device)
    fi
    case $LIPC_PHASE in
    header | 'done')
        set -- ${lipc_fd_luks:+"UUID=$lipc_fd_luks"} "$LIPC_DEVSPEC"
        ;;
    *)
        set -- "$LIPC_DEVSPEC"
        ;;
    esac
    if ! LIPC_DEV=$(lipc_wait device "$@"); then
        if [ -n "$lipc_fd_rec" ] && [ -b "$lipc_fd_rec" ] &&
            "$LIPC_BIN" status --state "$LIPC_STATE" -d "$lipc_fd_rec" >/dev/null 2>&1; then
            LIPC_DEV=$(readlink -f "$lipc_fd_rec")
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

# lipc_read_tty PROMPT: read a line without echo from the console.
lipc_read_tty() {
    lipc_rt_tty=/dev/console
    [ -t 0 ] && lipc_rt_tty=/dev/stdin
    printf '%s' "$1" >"$lipc_rt_tty"
    stty -echo <"$lipc_rt_tty" 2>/dev/null
    IFS= read -r lipc_rt_pass <"$lipc_rt_tty"
    lipc_rt_rc=$?
    stty echo <"$lipc_rt_tty" 2>/dev/null
    echo >"$lipc_rt_tty"
    [ "$lipc_rt_rc" = 0 ] || return 1
    printf '%s' "$lipc_rt_pass"
    lipc_rt_pass=
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
    if [ "$LIPC_PHASE" != none ]; then
        LIPC_PASS=$(lipc_ask "Passphrase to resume converting $LIPC_DEV:") ||
            { lipc_fail "no passphrase entered for '$LIPC_DEV'"; return 1; }
    elif [ "$LIPC_MODE" = reencrypt ] && [ -z "$LIPC_OLDKEYFILE" ]; then
        # the current passphrase stays; only the volume key is replaced
        LIPC_PASS=$(lipc_ask "Passphrase of $LIPC_DEV (kept, the volume key is replaced):") ||
            { lipc_fail "no passphrase entered for '$LIPC_DEV'"; return 1; }
    else
        LIPC_PASS=$(lipc_ask "New passphrase for $LIPC_DEV:") ||
            { lipc_fail "no passphrase entered for '$LIPC_DEV'"; return 1; }
        lipc_ap_again=$(lipc_ask "Repeat the passphrase for $LIPC_DEV:") ||
            { lipc_fail "no passphrase entered for '$LIPC_DEV'"; return 1; }
        if [ "$LIPC_PASS" != "$lipc_ap_again" ]; then
            lipc_ap_again=
            lipc_fail "passphrases for '$LIPC_DEV' differ; reboot to try again"
            return 1
        fi
        lipc_ap_again=
    fi
    [ -n "$LIPC_PASS" ] || { lipc_fail "empty passphrase for '$LIPC_DEV'"; return 1; }
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

# lipc_mount_ro DEV MNT WHERE: mount the key device DEV read-only on MNT;
# WHERE names what gave the device ("rd.luksipc.key=", or the crypttab key
# field) for the message. mount without -t tries only the types the kernel
# already has, and a stock initramfs has not loaded ext4 or vfat by
# local-top; so name the type blkid finds and load its module (quietly: it
# may be built in).
lipc_mount_ro() {
    lipc_mr_type=$(blkid -p -s TYPE -o value "$1" 2>/dev/null)
    if [ -z "$lipc_mr_type" ]; then
        lipc_fail "key device '$1' holds no filesystem that blkid recognises; check $3 names the device that holds the key file"
        return 1
    fi
    if command -v modprobe >/dev/null 2>&1; then
        modprobe -q "fs-$lipc_mr_type" 2>/dev/null || modprobe -q "$lipc_mr_type" 2>/dev/null || :
    fi
    if ! lipc_mr_err=$(mount -t "$lipc_mr_type" -o ro "$1" "$2" 2>&1); then
        lipc_fail "cannot mount key device '$1' ($lipc_mr_type) read-only: $(lipc_oneline "${lipc_mr_err:-mount gave no reason}"); check $3 and that the initramfs has the $lipc_mr_type module"
        return 1
    fi
}

# lipc_key_file FLAG MNT: print the file that FLAG=PATH[:KEYDEV] names (see
# lipc_key_spec); false when FLAG is absent.
lipc_key_file() {
    lipc_kf=$(lipc_arg "$1") || return 1
    lipc_key_spec "$1=$lipc_kf" "$lipc_kf" "$2"
}

# lipc_key_spec WHERE SPEC MNT: print the file that SPEC (PATH[:KEYDEV])
# names, mounting KEYDEV read-only on $LIPC_RUN/MNT (or reusing the mount of
# an earlier key with the same KEYDEV); returns 2 with LIPC_ERROR set when
# it cannot. WHERE names where SPEC came from (the flag and its value), for
# the messages. Mounts are
# recorded in LIPC_KEYMNT.
lipc_key_spec() {
    lipc_kf=$2
    lipc_kf_path=${lipc_kf%%:*}
    lipc_kf_spec=
    case $lipc_kf in *:*) lipc_kf_spec=${lipc_kf#*:} ;; esac
    if [ -z "$lipc_kf_path" ]; then
        lipc_fail "$1 names no key file; write it as PATH[:DEVICE]"
        return 2
    fi
    if [ -n "$lipc_kf_spec" ]; then
        lipc_kf_dev=$(lipc_wait "key device" "$lipc_kf_spec") || {
            lipc_fail "key device '$lipc_kf_spec' did not appear within ${LIPC_TIMEOUT} s; check $1"
            return 2
        }
        lipc_kf_mnt=
        for lipc_kf_m in $LIPC_KEYMNT; do
            [ "$(cat "$lipc_kf_m.dev" 2>/dev/null)" = "$lipc_kf_dev" ] && lipc_kf_mnt=$lipc_kf_m
        done
        if [ -z "$lipc_kf_mnt" ]; then
            lipc_kf_mnt=$LIPC_RUN/$3
            mkdir -p "$lipc_kf_mnt"
            lipc_mount_ro "$lipc_kf_dev" "$lipc_kf_mnt" "$1" || return 2
            echo "$lipc_kf_dev" >"$lipc_kf_mnt.dev"
            LIPC_KEYMNT="$LIPC_KEYMNT $lipc_kf_mnt"
        fi
        lipc_kf_file=$lipc_kf_mnt/${lipc_kf_path#/}
    else
        lipc_kf_file=$lipc_kf_path
    fi
    if ! [ -f "$lipc_kf_file" ] || ! [ -s "$lipc_kf_file" ]; then
        lipc_fail "key file '$lipc_kf_path' is missing or empty; check $1"
        return 2
    fi
    echo "$lipc_kf_file"
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
    LIPC_PASS=
    if [ -n "$LIPC_CONVKEY" ]; then
        rm -f "$LIPC_CONVKEY"
        LIPC_CONVKEY=
    fi
    rm -f "$LIPC_RUN/kf"
    for lipc_rk in $LIPC_KEYMNT; do
        umount "$lipc_rk" 2>/dev/null
        rm -f "$lipc_rk.dev"
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

# lipc_header_bytes: the header size the conversion will use.
lipc_header_bytes() {
    if lipc_hb=$(lipc_arg rd.luksipc.header-size); then
        lipc_size_bytes "$lipc_hb"
    elif [ "$(lipc_arg rd.luksipc.type)" = luks1 ]; then
        echo 2097152
    else
        echo 16777216
    fi
}

lipc_dumpe2fs_get() {
    printf '%s\n' "$lipc_rz_sb" | while IFS= read -r lipc_dg_line; do
        case $lipc_dg_line in
        "$1:"*)
            lipc_dg_v=${lipc_dg_line#*:}
            # shellcheck disable=SC2086 # split off the first word
            set -- $lipc_dg_v
            echo "$1"
            break
            ;;
        esac
    done
}

# lipc_sb_read: LIPC_RZ_* from the superblock of LIPC_DEV (dumpe2fs -h,
# read only); false when it cannot be read.
lipc_sb_read() {
    lipc_rz_sb=$(dumpe2fs -h "$LIPC_DEV" 2>/dev/null) || return 1
    LIPC_RZ_BS=$(lipc_dumpe2fs_get "Block size")
    LIPC_RZ_BC=$(lipc_dumpe2fs_get "Block count")
    LIPC_RZ_FREE=$(lipc_dumpe2fs_get "Free blocks")
    LIPC_RZ_FIRST=$(lipc_dumpe2fs_get "First block")
    LIPC_RZ_BPG=$(lipc_dumpe2fs_get "Blocks per group")
    LIPC_RZ_IPG=$(lipc_dumpe2fs_get "Inodes per group")
    lipc_sr_ic=$(lipc_dumpe2fs_get "Inode count")
    lipc_sr_fi=$(lipc_dumpe2fs_get "Free inodes")
    for lipc_sr_v in "$LIPC_RZ_BS" "$LIPC_RZ_BC" "$LIPC_RZ_FREE" "$LIPC_RZ_FIRST" \
        "$LIPC_RZ_BPG" "$LIPC_RZ_IPG" "$lipc_sr_ic" "$lipc_sr_fi"; do
        lipc_is_uint "$lipc_sr_v" || return 1
    done
    [ "$LIPC_RZ_BS" -gt 0 ] && [ "$LIPC_RZ_BPG" -gt 0 ] || return 1
    LIPC_RZ_IUSED=$((lipc_sr_ic - lipc_sr_fi))
}

# lipc_tail_free FROM: print how many blocks at or above block FROM are
# free, from dumpe2fs's per-group free ranges (read only).
lipc_tail_free() {
    lipc_tf_from=$1
    lipc_tf_all=$(dumpe2fs "$LIPC_DEV" 2>/dev/null) || return 1
    printf '%s\n' "$lipc_tf_all" | {
        lipc_tf=0
        lipc_tf_in=
        while IFS= read -r lipc_tf_l; do
            case $lipc_tf_l in
            'Group '*'(Blocks '*-*')'*)
                lipc_tf_e=${lipc_tf_l#*(Blocks }
                lipc_tf_e=${lipc_tf_e%%)*}
                lipc_tf_e=${lipc_tf_e#*-}
                lipc_tf_in=
                [ "$lipc_tf_e" -lt "$lipc_tf_from" ] || lipc_tf_in=1
                ;;
            '  Free blocks: '*)
                [ -n "$lipc_tf_in" ] || continue
                lipc_tf_r=${lipc_tf_l#*: }
                IFS=', '
                set -f
                # shellcheck disable=SC2086 # one range per word
                set -- $lipc_tf_r
                set +f
                IFS=' 	
'
                for lipc_tf_x in "$@"; do
                    lipc_tf_a=${lipc_tf_x%-*}
                    lipc_tf_b=${lipc_tf_x#*-}
                    [ "$lipc_tf_a" -ge "$lipc_tf_from" ] || lipc_tf_a=$lipc_tf_from
                    [ "$lipc_tf_b" -lt "$lipc_tf_a" ] || lipc_tf=$((lipc_tf + lipc_tf_b - lipc_tf_a + 1))
                done
                ;;
            esac
        done
        echo "$lipc_tf"
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
    lipc_rr_tail=$((LIPC_RZ_BC - $1))
    if ! lipc_rr_tf=$(lipc_tail_free "$1") || ! lipc_is_uint "$lipc_rr_tf"; then
        lipc_fail "cannot read the free blocks of '$LIPC_DEV' (dumpe2fs)"
        return 1
    fi
    lipc_rr_move=$((lipc_rr_tail - lipc_rr_tf))
    lipc_rr_have=$((LIPC_RZ_FREE - lipc_rr_tf))
    lipc_rr_need=$((2 * lipc_rr_move + 64))
    if [ "$lipc_rr_have" -lt "$lipc_rr_need" ]; then
        lipc_fail "filesystem on '$LIPC_DEV' is too full to give up its last $(lipc_mib_up "$lipc_rr_tail") MiB to the LUKS header: it needs $(lipc_mib_up "$lipc_rr_need") MiB free below the new end and has $(lipc_mib_up "$lipc_rr_have") MiB; free $(lipc_mib_up $((lipc_rr_need - lipc_rr_have))) MiB more (delete files) or make the partition that much bigger, then reboot"
        return 1
    fi
    lipc_rr_groups=$((($1 - LIPC_RZ_FIRST) / LIPC_RZ_BPG))
    [ "$lipc_rr_groups" -ge 1 ] || lipc_rr_groups=1
    if [ "$LIPC_RZ_IUSED" -gt $((lipc_rr_groups * LIPC_RZ_IPG)) ]; then
        lipc_fail "filesystem on '$LIPC_DEV' has too many files ($LIPC_RZ_IUSED inodes) to give up its last $(lipc_mib_up "$lipc_rr_tail") MiB: the groups left hold $((lipc_rr_groups * LIPC_RZ_IPG)); delete files or make the partition bigger, then reboot"
        return 1
    fi
}

# lipc_resize: shrink an ext2/3/4 filesystem so that it ends at or before
# device size - header size, by exactly that much. Only before a conversion
# has started. Nothing is written when the free blocks do not allow it;
# otherwise e2fsck -f -y, the room checked again on the repaired counts,
# resize2fs -f, then e2fsck -fn must be clean and the block count within
# the limit before the conversion may start.
lipc_resize() {
    lipc_rz_type=$(blkid -p -s TYPE -o value "$LIPC_DEV" 2>/dev/null)
    case $lipc_rz_type in
    ext2 | ext3 | ext4) ;;
    *)
        lipc_log "rd.luksipc.resize=1: '$LIPC_DEV' holds '${lipc_rz_type:-no filesystem}', not ext2/3/4; not resizing"
        return 0
        ;;
    esac
    lipc_rz_h=$(lipc_header_bytes) || { lipc_fail "bad rd.luksipc.header-size="; return 1; }
    lipc_rz_n=$(lipc_dev_bytes "$LIPC_DEV") || { lipc_fail "cannot read the size of '$LIPC_DEV'"; return 1; }
    lipc_sb_read || { lipc_fail "cannot read the ext superblock of '$LIPC_DEV'"; return 1; }
    [ "$lipc_rz_n" -gt "$lipc_rz_h" ] || { lipc_fail "device '$LIPC_DEV' is smaller than the header"; return 1; }
    lipc_rz_max=$(((lipc_rz_n - lipc_rz_h) / LIPC_RZ_BS))
    if [ "$LIPC_RZ_BC" -le "$lipc_rz_max" ]; then
        lipc_log "filesystem on '$LIPC_DEV' already leaves room for the header; not resizing"
        return 0
    fi
    lipc_resize_room "$lipc_rz_max" || return 1
    lipc_log "checking the filesystem on '$LIPC_DEV' before shrinking it"
    e2fsck -f -y "$LIPC_DEV" >&2
    [ $? -lt 4 ] || { lipc_fail "e2fsck found errors it could not fix on '$LIPC_DEV'; nothing converted; run e2fsck -f by hand"; return 1; }
    lipc_sb_read || { lipc_fail "cannot read the ext superblock of '$LIPC_DEV' after e2fsck"; return 1; }
    lipc_resize_room "$lipc_rz_max" || return 1
    lipc_log "shrinking the filesystem on '$LIPC_DEV' from $LIPC_RZ_BC to $lipc_rz_max blocks of $LIPC_RZ_BS bytes"
    resize2fs -f "$LIPC_DEV" "$lipc_rz_max" >&2 ||
        { lipc_fail "resize2fs failed on '$LIPC_DEV'; nothing converted; run e2fsck -f and resize2fs by hand"; return 1; }
    if ! e2fsck -f -n "$LIPC_DEV" >&2; then
        lipc_fail "the filesystem on '$LIPC_DEV' is not clean after resize2fs; nothing converted; run e2fsck -f by hand"
        return 1
    fi
    if ! lipc_sb_read || [ "$LIPC_RZ_BC" -gt "$lipc_rz_max" ]; then
        lipc_fail "the filesystem on '$LIPC_DEV' still ends after block $lipc_rz_max after resize2fs; nothing converted; shrink it by hand"
        return 1
    fi
}

# lipc_progress: turn --progress-json lines into console and plymouth
# lines; anything else (warnings, errors) is passed through.
lipc_json() {
    lipc_j=${1#*\""$2"\":}
    lipc_j=${lipc_j%%[,\}]*}
    lipc_j=${lipc_j#\"}
    echo "${lipc_j%\"}"
}

lipc_progress() {
    lipc_p_last=
    while IFS= read -r lipc_p_line; do
        case $lipc_p_line in
        '{"phase":"header"'*)
            lipc_log "all data of $LIPC_DEV converted; writing the new LUKS header"
            ;;
        '{'*'"percent"'*)
            lipc_p_pct=$(lipc_json "$lipc_p_line" percent)
            lipc_p_done=$(lipc_json "$lipc_p_line" 'done')
            lipc_p_tot=$(lipc_json "$lipc_p_line" total)
            lipc_p_eta=$(lipc_json "$lipc_p_line" eta_s)
            lipc_p_eta=${lipc_p_eta%%.*}
            lipc_is_uint "$lipc_p_eta" || lipc_p_eta=0
            lipc_is_uint "$lipc_p_done" || lipc_p_done=0
            lipc_is_uint "$lipc_p_tot" || lipc_p_tot=0
            lipc_p_msg=$(printf 'converting %s: %s%% (%s / %s MiB, ETA %d:%02d)' \
                "$LIPC_DEV" "$lipc_p_pct" $((lipc_p_done / 1048576)) \
                $((lipc_p_tot / 1048576)) $((lipc_p_eta / 60)) $((lipc_p_eta % 60)))
            [ "$lipc_p_msg" = "$lipc_p_last" ] || lipc_log "$lipc_p_msg"
            lipc_p_last=$lipc_p_msg
            ;;
        *) printf '%s\n' "$lipc_p_line" >&2 ;;
        esac
    done
}

# lipc_convert_args: the pass-through rd.luksipc.* options, the mode, the
# old key and what the admin notes should name; one word a line.
lipc_convert_args() {
    for lipc_ca in type sector-size pbkdf pbkdf-force-iterations header-size step-size; do
        lipc_ca_v=$(lipc_arg "rd.luksipc.$lipc_ca") || continue
        printf '%s\n' "--$lipc_ca" "$lipc_ca_v"
    done
    if [ "$LIPC_MODE" = reencrypt ]; then
        echo --reencrypt
        [ -z "$LIPC_OLDKEYFILE" ] || printf '%s\n' --old-key-file "$LIPC_OLDKEYFILE"
    fi
    if lipc_ca_v=$(lipc_arg rd.luksipc.name); then
        printf '%s\n' --note-name "$lipc_ca_v"
    fi
    [ -z "$LIPC_NOTEKEY" ] || printf '%s\n' --note-key-file "$LIPC_NOTEKEY"
    printf '%s\n' --note-framework "$LIPC_FRAMEWORK"
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

# lipc_test_env: outside a test image, no LUKSIPC_TEST_* variable reaches
# luksipc (the shipped binary ignores them too) and rd.luksipc.test-* is
# ignored. In a test image, rd.luksipc.test-header-delay=MS holds a test
# build between the header write and the record "done" (LIPC_TEST_HOLD),
# so that a power cut can land there.
lipc_test_env() {
    if [ -e "$LIPC_TEST_HOOKS" ]; then
        LIPC_TEST_HOLD=$(lipc_arg rd.luksipc.test-header-delay) && lipc_is_uint "$LIPC_TEST_HOLD" || LIPC_TEST_HOLD=
        return 0
    fi
    ! lipc_arg rd.luksipc.test-header-delay >/dev/null ||
        lipc_log "ignoring rd.luksipc.test-header-delay: this initramfs is not a test image"
    for lipc_te in $(export -p | while IFS= read -r lipc_te_l; do
        lipc_te_l=${lipc_te_l#export }
        lipc_te_l=${lipc_te_l#declare -x }
        case ${lipc_te_l%%=*} in
        LUKSIPC_TEST_* ) printf '%s\n' "${lipc_te_l%%=*}" ;;
        esac
    done); do
        case $lipc_te in *[!A-Za-z0-9_]*) continue ;; esac
        unset "$lipc_te"
    done
    unset LUKSIPC_TEST_TRACE LUKSIPC_TEST_FAULT LUKSIPC_TEST_DELAY_MS LUKSIPC_TEST_HEADER_DELAY_MS
}

lipc_convert() {
    lipc_c_args=$(lipc_convert_args)
    lipc_c_rc=$LIPC_RUN/convert.rc
    echo 1 >"$lipc_c_rc"
    lipc_c_what="to LUKS"
    [ "$LIPC_MODE" = encrypt ] || lipc_c_what="from LUKS to LUKS with a new volume key"
    if [ "$LIPC_PHASE" = none ]; then
        lipc_log "converting '$LIPC_DEV' $lipc_c_what in place, state on '$LIPC_STATE'; do not power off (a cut resumes at the next boot)"
    else
        lipc_log "resuming the conversion of '$LIPC_DEV' $lipc_c_what ($(lipc_status_get 'done') of $(lipc_status_get data-size) bytes done, phase $LIPC_PHASE), state on '$LIPC_STATE'"
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
                --batch --progress-json $lipc_c_args 2>&1)
        echo $? >"$lipc_c_rc"
    } | lipc_progress
    read -r lipc_c_code <"$lipc_c_rc"
    case $lipc_c_code in
    0) return 0 ;;
    2) lipc_fail "bad rd.luksipc.* option for '$LIPC_DEV'; fix the kernel command line" ;;
    3) lipc_fail "conversion of '$LIPC_DEV' refused by a safety check (the device or the state store '$LIPC_STATE', named above), nothing written; rebooting will not help: fix what the message names" ;;
    4) lipc_fail "key rejected for '$LIPC_DEV', nothing written; check rd.luksipc.key= or the passphrase" ;;
    5) lipc_fail "I/O error converting '$LIPC_DEV' (a read, write or flush failed; see the message above and dmesg); the state is consistent: fix the disk and reboot to resume" ;;
    6) lipc_fail "conversion of '$LIPC_DEV' interrupted; reboot to resume" ;;
    *) lipc_fail "luksipc failed with exit code $lipc_c_code on '$LIPC_DEV'; reboot to resume" ;;
    esac
}

lipc_notes() {
    if [ "$LIPC_MODE" = encrypt ]; then
        lipc_log "'$LIPC_DEV' is now LUKS; what to do next (also in $LIPC_RUN/notes):"
    else
        lipc_log "'$LIPC_DEV' is re-encrypted with a new volume key; what to do next (also in $LIPC_RUN/notes):"
    fi
    lipc_n_fw=
    [ "$LIPC_FRAMEWORK" = other ] || lipc_n_fw=$LIPC_FRAMEWORK
    "$LIPC_BIN" status --state "$LIPC_STATE" --notes ${lipc_n_fw:+--framework "$lipc_n_fw"} \
        >"$LIPC_RUN/notes" 2>/dev/null
    while IFS= read -r lipc_n_line; do
        echo "luksipc:   $lipc_n_line" >&2
    done <"$LIPC_RUN/notes"
}

# lipc_open: open the LUKS device so that root=UUID=<filesystem> resolves.
lipc_open() {
    if lipc_o_name=$(lipc_holder "$LIPC_DEV"); then
        lipc_log "'$LIPC_DEV' is already open as '$lipc_o_name'"
        return 0
    fi
    lipc_o_uuid=$(lipc_status_get luks-uuid)
    [ -n "$lipc_o_uuid" ] || lipc_o_uuid=$(cryptsetup luksUUID "$LIPC_DEV" 2>/dev/null)
    lipc_o_name=$(lipc_arg rd.luksipc.name) || lipc_o_name=luks-$lipc_o_uuid
    lipc_log "opening '$LIPC_DEV' as '$lipc_o_name'"
    if ! lipc_with_key cryptsetup open "$LIPC_DEV" "$lipc_o_name" >&2; then
        lipc_fail "cannot open '$LIPC_DEV' as '$lipc_o_name': wrong key or damaged header; check rd.luksipc.key= or the passphrase"
        return 1
    fi
    lipc_settle 10
}

# lipc_refresh DEV: the header replaced the filesystem signature; make udev
# drop the stale by-uuid link before the mapping brings it back.
lipc_refresh() {
    command -v udevadm >/dev/null 2>&1 || return 0
    udevadm trigger --action=change "$1" >/dev/null 2>&1 || :
    lipc_settle 10
}

lipc_setup() {
    LIPC_DEVSPEC=$(lipc_arg rd.luksipc) || return 1
    [ "$LIPC_DEVSPEC" != 0 ] || return 1
    [ -n "$LIPC_DEVSPEC" ] || return 1
    return 0
}

# lipc_check_mode: a started or finished state must be of the mode asked for.
lipc_check_mode() {
    [ "$LIPC_PHASE" != none ] || return 0
    lipc_cm=$(lipc_status_get mode)
    [ -n "$lipc_cm" ] || lipc_cm=encrypt
    [ "$lipc_cm" != "$LIPC_MODE" ] || return 0
    if [ "$LIPC_PHASE" != 'done' ]; then
        lipc_fail "the state on '$LIPC_STATE' is an unfinished $lipc_cm conversion; set rd.luksipc.mode=$lipc_cm to resume it"
        return 1
    fi
    if [ "$LIPC_MODE" = reencrypt ]; then
        lipc_fail "the state on '$LIPC_STATE' holds a finished $lipc_cm conversion; to re-encrypt, wipe it first (luksipc finalize --state $LIPC_STATE) or name another state partition"
        return 1
    fi
    # rd.luksipc.mode=encrypt (or none) after a finished re-encryption:
    # the device is LUKS, only open it
    LIPC_MODE=$lipc_cm
}

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
    lipc_framework
    LIPC_MODE=$(lipc_arg rd.luksipc.mode) || LIPC_MODE=encrypt
    case $LIPC_MODE in
    encrypt) ;;
    reencrypt)
        if [ "$LIPC_DEVSPEC" = root ]; then
            lipc_fail "rd.luksipc=root cannot name a LUKS device before it is opened (root= names the filesystem inside); use rd.luksipc=UUID=<LUKS UUID> (cryptsetup luksUUID) or PARTUUID="
            return 1
        fi
        ;;
    *)
        lipc_fail "bad rd.luksipc.mode='$LIPC_MODE'; use encrypt or reencrypt"
        return 1
        ;;
    esac
    [ "$LIPC_DEVSPEC" != root ] || LIPC_DEVSPEC=$(lipc_root_spec) ||
        { lipc_fail "rd.luksipc=root but no root= on the kernel command line"; return 1; }
    LIPC_STATESPEC=$(lipc_arg rd.luksipc.state) || LIPC_STATESPEC=
    if [ -z "$LIPC_STATESPEC" ]; then
        lipc_fail "rd.luksipc.state= is missing; name the raw side partition that holds the state"
        return 1
    fi
    LIPC_TIMEOUT=$(lipc_arg rd.luksipc.timeout) || LIPC_TIMEOUT=30
    lipc_is_uint "$LIPC_TIMEOUT" || { lipc_fail "bad rd.luksipc.timeout='$LIPC_TIMEOUT'"; return 1; }
    command -v "$LIPC_BIN" >/dev/null 2>&1 || { lipc_fail "'$LIPC_BIN' is not in the initramfs; rebuild it with the luksipc module"; return 1; }
    mkdir -p "$LIPC_RUN" && chmod 700 "$LIPC_RUN"

    LIPC_STATE=$(lipc_wait "state device" "$LIPC_STATESPEC") ||
        { lipc_fail "state device '$LIPC_STATESPEC' did not appear within ${LIPC_TIMEOUT} s; check rd.luksipc.state="; return 1; }
    lipc_load_status
    lipc_check_mode || return 1
    lipc_find_device || return 1

    if [ "$LIPC_PHASE" = 'done' ]; then
        lipc_log "'$LIPC_DEV' is already converted; remove rd.luksipc from the kernel command line (see: luksipc status --state $LIPC_STATE --notes)"
        if lipc_o_name=$(lipc_holder "$LIPC_DEV"); then
            lipc_log "'$LIPC_DEV' is already open as '$lipc_o_name'"
            return 0
        fi
        lipc_get_key || return 1
        lipc_open
        return
    fi
    if [ "$LIPC_MODE" = reencrypt ] && lipc_o_name=$(lipc_holder "$LIPC_DEV"); then
        lipc_fail "'$LIPC_DEV' is already open as '$lipc_o_name' (by cryptroot, systemd-cryptsetup or rd.luks.*); luksipc will not re-encrypt it underneath: let luksipc open it instead (drop it from the initramfs crypttab and rd.luks.uuid=, or add rd.luks=0), then reboot"
        return 1
    fi
    if [ "$LIPC_MODE" = encrypt ] && [ "$LIPC_PHASE" = none ] &&
        [ "$(lipc_arg rd.luksipc.resize)" = 1 ]; then
        lipc_resize || return 1
    fi
    lipc_get_key || return 1
    lipc_convert || return 1
    lipc_load_status
    lipc_notes
    lipc_refresh "$LIPC_DEV"
    lipc_open
}

# lipc_run: entry point for the adapters; see the contract at the top.
lipc_run() {
    lipc_setup || return 0
    lipc_test_env
    lipc_main
    lipc_run_rc=$?
    lipc_release_key
    [ "$lipc_run_rc" = 0 ] && lipc_log "done; continuing the boot"
    return "$lipc_run_rc"
}
