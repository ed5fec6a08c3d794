#!/bin/bash
# tools/demo-vm.sh [FIRST_STEP]: the second half of `make demo`, the real
# job. A QEMU (TCG) guest whose root filesystem sits on a plain ext4
# partition boots with the rd.luksipc= kernel flags; its initramfs (built
# with initramfs-tools, or dracut when mkinitramfs is missing) encrypts the
# root partition in place. The power is cut mid-conversion (the disk is
# served by nbdkit with a writeback cache and nbdkit is killed with QEMU, so
# unflushed writes are lost); the next boot resumes by itself and ends in
# the encrypted root. The host then decrypts the partition with an
# independent decryptor and compares it with the original filesystem.
#
# Needs root, the packages of tools/deps/qemu.list and a built
# build/luksipc (or LUKSIPC_BIN). Headers are numbered from FIRST_STEP
# (default 1). Work files live in ${TMPDIR:-/var/tmp}/luksipc-demo-vm.*
# and are removed at the end (DEMO_KEEP=1 keeps them).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
QTEST_DIR=$top/qemu-tests
# shellcheck source=../qemu-tests/lib/common.sh disable=SC1091
. "$QTEST_DIR/lib/common.sh"
# shellcheck source=../qemu-tests/lib/initrd-builders.sh disable=SC1091
. "$QTEST_DIR/lib/initrd-builders.sh"
luksipc=$top/build/luksipc
step=${1:-1}
log=''

say() {
	printf '\n== %s. %s\n' "$step" "$1"
	step=$((step + 1))
	shift
	[ $# -eq 0 ] || printf '%s\n' "$*" | fold -s -w 76 | sed 's/^/   /'
}

# the guest's own lines from a serial log: luksipc's, the root's init's
console() {
	tr -d '\r' <"$1" | { grep -a -E "${2:-luksipc: |manifest: |root-device: |dm: |LUKSIPC-VERDICT}" || true; } |
		sed 's/^/   | /'
}

die() {
	printf '\ndemo FAILED: %s\n' "$*" >&2
	if [ -n "$log" ] && [ -s "$log" ]; then
		echo "   last lines of the guest console (${log##*/}; DEMO_KEEP=1 keeps the work files):" >&2
		qemu_log_tail "$log" 40 >&2
		[ ! -s "$log.qemu" ] || { echo "   qemu:" >&2; qemu_log_tail "$log.qemu" 5 >&2; }
	fi
	exit 1
}

# Prerequisites: tell what is missing instead of half-running.
[ "$(id -u)" = 0 ] || die "the VM part needs root (the initramfs builders read the host's modules)"
for tool in qemu-system-x86_64 nbdkit qemu-io sgdisk busybox mke2fs debugfs cryptsetup python3; do
	command -v "$tool" >/dev/null || die "'$tool' not found; run tools/install-deps.sh (make does)"
done
if command -v mkinitramfs >/dev/null; then
	builder=initramfs-tools
elif command -v dracut >/dev/null; then
	builder=dracut
else
	die "neither mkinitramfs (initramfs-tools) nor dracut is installed"
fi
# shellcheck source=../qemu-tests/lib/kernel.sh disable=SC1091
. "$QTEST_DIR/lib/kernel.sh" || die "no kernel to boot; apt-get install linux-image-amd64"
LUKSIPC_BIN=${LUKSIPC_BIN:-$luksipc}
if [ ! -x "$LUKSIPC_BIN" ] || [ ! -x "$luksipc" ]; then
	die "build/luksipc is not built; run make"
fi
export LUKSIPC_BIN

W=$(mktemp -d "${TMPDIR:-/var/tmp}/luksipc-demo-vm.XXXXXX")
cleanup() {
	if [ "${DEMO_KEEP:-0}" = 1 ]; then
		echo "   (work files kept in $W)" >&2
	else
		rm -rf "$W"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---------------------------------------------------------------------------
say "a VM disk: a state partition and an ext4 root with files" \
	"qemu-tests/lib/mkdisk.sh builds a GPT disk image: partition 1 is a small" \
	"raw partition for luksipc's resume state, partition 2 holds the root" \
	"filesystem (busybox, an /sbin/init that checks the files, random payload" \
	"files and their sha256 manifest). The filesystem leaves 16 MiB free at" \
	"the end of its partition for the LUKS2 header."
vars=$("$QTEST_DIR/lib/mkdisk.sh" "$W/disk.img" --root-mib 64) || die "mkdisk.sh failed"
eval "$vars"
sgdisk -p "$W/disk.img" | sed -n '/^Number/,$p' | sed 's/^/   /'
dd if="$W/disk.img" of="$W/root.orig" bs=1M iflag=skip_bytes,count_bytes \
	skip="$ROOT_OFFSET" count="$ROOT_FS_BYTES" status=none
[ "$(disk_hash "$W/root.orig")" = "$ROOT_FS_SHA256" ] || die "could not save the original filesystem"
echo "   root: ext4 UUID $ROOT_UUID, $((ROOT_FS_BYTES / 1048576)) MiB; original bytes saved for the final check"
# The key file lives on a second small disk labelled lipckey, as a USB
# stick would; the host keeps a copy to decrypt with at the end.
mkdir "$W/keytree"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$W/keytree/luksipc.key"
cp "$W/keytree/luksipc.key" "$W/host.key"
truncate -s 4M "$W/key.img"
mke2fs -q -F -t ext2 -L lipckey -d "$W/keytree" "$W/key.img" || die "mke2fs of the key disk failed"
echo "   key disk: ext2 labelled lipckey holding /luksipc.key (64 random hex characters)"

# ---------------------------------------------------------------------------
say "an initramfs with the luksipc boot integration ($builder)" \
	"The hook and boot script are staged the way 'make install-boot' installs" \
	"them, then the $builder initramfs for kernel $KVER is built with them" \
	"and with the luksipc binary just compiled."
t0=$SECONDS
stage=$W/stage
make -s -C "$top" -f mk/install.mk install-boot DESTDIR="$stage" PREFIX=/usr \
	>"$W/install.log" 2>&1 || die "make install-boot failed: $(tail -n 3 "$W/install.log")"
if [ "$builder" = initramfs-tools ]; then
	initrd_itools "$W/initrd.img" "$stage" "$W" || die "$INITRD_ERR"
	lsinitramfs "$W/initrd.img" 2>/dev/null | grep -E 'luksipc' | sed 's/^/   initrd: /'
else
	initrd_dracut "$W/initrd.img" "$stage" "$W" || die "$INITRD_ERR"
	lsinitrd "$W/initrd.img" 2>/dev/null | grep -o -E '[^ ]*luksipc[^ ]*$' | sed 's/^/   initrd: /'
fi
echo "   built in $((SECONDS - t0))s, $(($(stat -c %s "$W/initrd.img") / 1024)) KiB"

cmdline="root=UUID=$ROOT_UUID ro rd.luksipc=PARTUUID=$ROOT_PARTUUID"
cmdline="$cmdline rd.luksipc.state=PARTUUID=$STATE_PARTUUID rd.luksipc.key=/luksipc.key:LABEL=lipckey"
cmdline="$cmdline rd.luksipc.name=cryptroot rd.luksipc.step-size=1M"
cmdline="$cmdline rd.luksipc.pbkdf=pbkdf2 rd.luksipc.pbkdf-force-iterations=1000"
cmdline="$cmdline rd.luksipc.timeout=20 rd.shell=0 rd.emergency=poweroff"
echo "   kernel flags: $cmdline" | fold -s -w 76 | sed '2,$s/^/     /'

# boot NAME [run-qemu args...]: boots the disk through nbdkit's writeback
# cache, the key disk second; sets rc
boot() {
	log=$W/$1.log
	shift
	local t0=$SECONDS
	rc=0
	"$RUN_QEMU" --kernel "$KERNEL" --initrd "$W/initrd.img" --append "$cmdline" \
		--log "$log" --timeout "${DEMO_BOOT_TIMEOUT:-300}" --mem 1024 \
		--nbd-disk "$W/disk.img" --nbd-sock "$W/nbd.sock" --disk "$W/key.img" "$@" || rc=$?
	echo "   (QEMU ran $((SECONDS - t0))s, run-qemu exit $rc)"
}

# ---------------------------------------------------------------------------
say "first boot: the initramfs starts the conversion; the power is cut mid-way" \
	"The guest's initramfs reads the rd.luksipc flags, mounts the key disk and" \
	"runs luksipc convert on /dev/vda2. Once its progress line shows 5-89%," \
	"the host kills nbdkit (losing every write the guest has not flushed) and" \
	"QEMU at once: a power cut."
boot cut --kill-nbd --kill-after-pattern 'luksipc: converting /dev/vda2: ([5-9]|[1-8][0-9])\.[0-9]+%' \
	--kill-delay-ms 0
console "$log"
case "$rc" in
137) ;;
0) die "the guest finished before the power cut (the host is faster than expected); rerun" ;;
124) die "the first boot timed out" ;;
*) die "run-qemu exit $rc" ;;
esac
! grep -a -q 'luksipc: error' "$log" || die "the first boot reported an error"
! grep -a -q 'is now LUKS' "$log" || die "the power cut came after the conversion had ended"
echo "   >> power cut at $(grep -a -o -E 'converting /dev/vda2: [0-9.]+%' "$log" | tail -n 1 | grep -o -E '[0-9.]+%')"

# ---------------------------------------------------------------------------
say "after the cut: what the state partition says" \
	"Both partitions are copied out of the disk image as the power cut left" \
	"them. luksipc status reads the last durable record (phase, bytes done)" \
	"and, with -d, checks it against the partition's contents on both sides" \
	"of the frontier (matches-device)."
extract() { # extract OFFSET BYTES OUT
	dd if="$W/disk.img" of="$3" bs=1M iflag=skip_bytes,count_bytes \
		skip="$1" count="$2" status=none
}
extract "$STATE_OFFSET" "$STATE_BYTES" "$W/state.img"
extract "$ROOT_OFFSET" "$ROOT_BYTES" "$W/root.luks"
"$luksipc" status --state "$W/state.img" -d "$W/root.luks" >"$W/status.txt" 2>&1 ||
	die "luksipc status failed on the state after the cut: $(cat "$W/status.txt")"
sed 's/^/   /' "$W/status.txt"
grep -q '^phase: converting' "$W/status.txt" || die "the state after the cut is not mid-conversion"
grep -q '^matches-device: yes' "$W/status.txt" || die "the state after the cut does not match the partition"
echo "   >> durable progress: $(($(sed -n 's/^done: //p' "$W/status.txt") / 1048576)) of $((ROOT_FS_BYTES / 1048576)) MiB; the rest was lost with the cache or never written"

# ---------------------------------------------------------------------------
say "second boot: it resumes by itself, nothing typed" \
	"The same kernel flags, no console input (QEMU's stdin is /dev/null). The" \
	"initramfs finds the state, resumes where the last durable step ended," \
	"opens the new LUKS device as /dev/mapper/cryptroot and boots the root" \
	"from it; the root's init checks every file and prints the VERDICT line."
boot final
console "$log"
[ "$rc" = 0 ] || die "the second boot did not power off by itself (run-qemu exit $rc)"
grep -a -q 'luksipc: resuming the conversion' "$log" || die "the second boot did not resume"
[ "$(verdict "$log")" = PASS ] || die "no PASS verdict from the encrypted root"
verdict_line "$log" | grep -q 'root=/dev/mapper/cryptroot' ||
	die "the root is not /dev/mapper/cryptroot: $(verdict_line "$log")"
echo "   >> resumed without a prompt and booted into /dev/mapper/cryptroot"

# ---------------------------------------------------------------------------
say "on the host: decrypt the root partition independently and compare" \
	"tests/lib/luksdecrypt.py takes the volume key from the LUKS header" \
	"with the key file and decrypts AES-XTS with python3-cryptography, without" \
	"dm-crypt or luksipc. The first $ROOT_FS_BYTES bytes must equal the" \
	"original ext4 byte for byte, and every file read from them must match."
extract "$ROOT_OFFSET" "$ROOT_BYTES" "$W/root.luks"
echo "   partition 2 now: $(blkid -o value -s TYPE "$W/root.luks"), $(cryptsetup luksDump "$W/root.luks" |
	sed -n 's/^Version:[[:space:]]*/LUKS/p'), UUID $(blkid -o value -s UUID "$W/root.luks")"
python3 "$top/tests/lib/luksdecrypt.py" "$W/root.luks" --key-file "$W/host.key" \
	--length "$ROOT_FS_BYTES" --expect "$W/root.orig" --out "$W/root.dec" ||
	die "the decrypted partition differs from the original filesystem"
echo "   decrypted $((ROOT_FS_BYTES / 1048576)) MiB equal the original ext4 byte for byte (sha256 ${ROOT_FS_SHA256:0:16}...)"
mkdir "$W/files"
debugfs -R "rdump / $W/files" "$W/root.dec" >"$W/debugfs.log" 2>&1 || die "debugfs rdump failed"
(cd "$W/files" && sed 's|  /|  |' manifest.sha256 | sha256sum -c --quiet) >"$W/sha.log" 2>&1 ||
	die "files differ: $(head -n 3 "$W/sha.log")"
echo "   all $(wc -l <"$W/files/manifest.sha256") files of the manifest read back from the decrypted ext4 (debugfs) match"
cryptsetup open --test-passphrase --key-file "$W/host.key" "$W/root.luks" ||
	die "cryptsetup does not accept the key"
echo "   cryptsetup accepts the key file as well"

# ---------------------------------------------------------------------------
say "the state partition: phase done, and the notes for the admin" \
	"luksipc status on the state partition as the second boot left it, and" \
	"--notes: what to put in crypttab and on the kernel command line now."
extract "$STATE_OFFSET" "$STATE_BYTES" "$W/state.img"
"$luksipc" status --state "$W/state.img" -d "$W/root.luks" >"$W/status.txt" 2>&1 || die "luksipc status failed: $(cat "$W/status.txt")"
sed 's/^/   /' "$W/status.txt"
grep -q '^phase: done' "$W/status.txt" || die "the state is not in phase done"
grep -q '^matches-device: yes' "$W/status.txt" || die "the state does not match the partition"
echo
"$luksipc" status --state "$W/state.img" --notes 2>&1 | sed 's/^/   /'
log=''
