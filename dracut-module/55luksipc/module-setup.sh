#!/bin/bash
# shellcheck disable=SC2154 # dracut sets moddir, initdir, systemdsystemunitdir, ...
# dracut module: convert a block device to LUKS in place at boot, driven by
# rd.luksipc= (see luksipc.cmdline(7)). Out-of-tree, so numbered 55.

# luksipc_binary: the converter to install; the static build is preferred.
# LUKSIPC_BIN in the environment overrides the search (staging, tests).
luksipc_binary() {
    local b
    for b in "${LUKSIPC_BIN-}" \
        "$dracutsysrootdir"/usr/lib/luksipc/luksipc.static \
        "$dracutsysrootdir"/usr/local/sbin/luksipc \
        "$dracutsysrootdir"/usr/sbin/luksipc \
        "$dracutsysrootdir"/sbin/luksipc; do
        [[ -n $b && -x $b ]] && {
            printf '%s\n' "$b"
            return 0
        }
    done
    return 1
}

# The /etc/crypttab entries whose detached header= lies under /etc/luksipc
# (luksipc's notes put the copy there, docs/format.md).
luksipc_header_entries() {
    [[ -r $dracutsysrootdir/etc/crypttab ]] || return 0
    grep -E '^[^#]*[[:space:],]header=/etc/luksipc/[^[:space:],]+' "$dracutsysrootdir/etc/crypttab"
    return 0
}

# called by dracut
check() {
    require_binaries cryptsetup blkid || return 1
    luksipc_binary > /dev/null || return 1
    # the copy of boot/luksipc-lib.sh that make install-boot puts here
    if ! [[ -r $moddir/luksipc-lib.sh ]]; then
        derror "luksipc: $moddir/luksipc-lib.sh is missing; reinstall luksipc (make install-boot)"
        return 1
    fi
    # while `luksipc arm`'s record is there (armed, converting, finalizing):
    # arm and finalize rebuild with plain `dracut -f`, as a kernel update does
    [[ -e $dracutsysrootdir/etc/luksipc/armed ]] && return 0
    # a converted root with a detached header opens from crypttab: install() copies it
    [[ -n $(luksipc_header_entries) ]] && return 0
    # else only when asked for: --add luksipc or add_dracutmodules+=" luksipc "
    return 255
}

# called by dracut
depends() {
    echo crypt dm rootfs-block
    return 0
}

# called by dracut
installkernel() {
    # The host root is usually not encrypted yet, so crypt's host-only
    # guess would leave out the cipher modules: name them.
    hostonly='' instmods dm_crypt xts ecb cbc aesni_intel aes_generic \
        crypto_simd cryptd sha256_generic sha512_generic
    # The key device is mounted with the type blkid finds: the usual
    # key-device filesystems, with the character sets vfat's and exfat's
    # defaults need. instmods skips what this kernel does not have.
    hostonly='' instmods ext4 vfat nls_cp437 nls_ascii nls_utf8 exfat
    # settings from credentials passed through QEMU's fw_cfg (luksipc-lib.sh)
    hostonly='' instmods qemu_fw_cfg
    return 0
}

# called by dracut
install() {
    local bin
    bin=$(luksipc_binary) || return 1
    inst_binary "$bin" /usr/sbin/luksipc
    inst_multiple cryptsetup blkid e2fsck resize2fs dumpe2fs mount umount \
        readlink sleep cat mkdir chmod tr sed
    inst_multiple -o stty plymouth udevadm modprobe
    inst_simple "$moddir/luksipc-lib.sh" /usr/lib/luksipc/luksipc-lib.sh
    inst_script "$moddir/luksipc-boot.sh" /usr/sbin/luksipc-boot
    # luksipc arm: the record tells the boot library that
    # luksipc-finalize.service finishes the job (no secret in it)
    if [ -f /etc/luksipc/armed ]; then
        inst_simple /etc/luksipc/armed /etc/luksipc/armed
    fi
    # luksipc arm --bootstrap-key: the generated key, in the image only
    # (dracut writes its images mode 0600); gone once finalize retires it
    if [ -f /boot/luksipc/bootstrap.key ]; then
        inst_simple /boot/luksipc/bootstrap.key /etc/luksipc/bootstrap.key
        chmod 0600 "$initdir/etc/luksipc/bootstrap.key"
    fi

    # Detached headers: dracut's crypt module copies no header= file, and
    # keeps the entry only in a host-only image (with "force": the device
    # has no signature). Without the file the image could not open the
    # device, so a missing one fails the build.
    local _line _hdr
    while IFS= read -r _line; do
        _hdr=$(printf '%s\n' "$_line" | sed -n 's|^[^#]*[[:space:],]header=\(/etc/luksipc/[^[:space:],]*\).*$|\1|p')
        if [[ ! -f $dracutsysrootdir$_hdr ]]; then
            derror "luksipc: /etc/crypttab names the LUKS header $_hdr, which does not exist; put the header there (luksipc status --notes)"
            return 1
        fi
        inst_simple "$_hdr" "$_hdr"
        chmod 0700 "$initdir/etc/luksipc"
        chmod 0600 "$initdir$_hdr"
        grep -qxF -- "$_line" "$initdir/etc/crypttab" 2>/dev/null ||
            printf '%s\n' "$_line" >>"$initdir/etc/crypttab"
    done < <(luksipc_header_entries)

    if dracut_module_included systemd; then
        inst_multiple -o systemd-ask-password
        inst_simple "$moddir/luksipc.service" \
            "$systemdsystemunitdir/luksipc.service"
        inst_simple "$moddir/luksipc-fsck.conf" \
            "$systemdsystemunitdir/systemd-fsck@.service.d/luksipc.conf"
        $SYSTEMCTL -q --root "$initdir" add-wants initrd.target luksipc.service
    else
        inst_hook cmdline 90 "$moddir/parse-luksipc.sh"
        dracut_need_initqueue
    fi
}
