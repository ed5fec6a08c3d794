#!/bin/sh
# make demo: the main job, in two parts.
#
# Part 1, on an image file (seconds): an ext4 filesystem with files is
# converted to LUKS2 in place; the conversion is killed with SIGKILL halfway
# (as a crash would), resumed by running the same command again, and the
# result is verified with a decryptor independent of luksipc and with
# cryptsetup itself.
#
# Part 2, tools/demo-vm.sh (a few minutes under QEMU TCG): the real job. A
# VM boots with the rd.luksipc= kernel flags, its initramfs encrypts the
# root partition in place, the power is cut mid-way, the next boot resumes
# by itself and ends in the encrypted root, and the host verifies the
# result. DEMO_VM=0 skips part 2.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
t0=$(date +%s)
luksipc=$top/build/luksipc
# the test build, only to slow the first run down (LUKSIPC_TEST_DELAY_MS)
luksipc_test=$top/build/test/luksipc
work=$(mktemp -d "${TMPDIR:-/var/tmp}/luksipc-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

say() { printf '\n== %s\n' "$*"; }

printf '\nPart 1: converting an image file on the host\n'
say "1. a 96 MiB image with an ext4 filesystem of 80 MiB holding files"
mkdir root
head -c 30M /dev/urandom >root/big.bin
seq 1 200000 >root/numbers.txt
cp -r /usr/share/doc/e2fsprogs root/docs 2>/dev/null || true
truncate -s 96M disk.img
mke2fs -q -t ext4 -L demo -d root disk.img 80M
head -c 80M disk.img >plain.orig
(cd root && find . -type f -exec sha256sum {} + | sort -k2) >files.sha256
echo "filesystem: $(blkid -o value -s TYPE disk.img), $(wc -l <files.sha256) files"

say "2. convert with a generated key file, slowed down so we can cut it off"
args="convert -d disk.img --state state.bin --generate-key-file demo.key --batch --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --step-size 2M"
cmd="$luksipc $args"
echo "\$ LUKSIPC_TEST_DELAY_MS=200 build/test/luksipc $args"
echo "(the test build of luksipc: it sleeps 200 ms after each 2 MiB step; the installed build has no such hook)"
# shellcheck disable=SC2086 # args is a list of words
LUKSIPC_TEST_DELAY_MS=200 "$luksipc_test" $args &
pid=$!
sleep 3
kill -9 "$pid"
wait "$pid" 2>/dev/null || echo "(killed with SIGKILL, exit $?)"

say "3. the state store tells where it stopped"
"$luksipc" status --state state.bin -d disk.img

say "4. run the same command again (the build that is installed): it resumes"
echo "\$ $cmd"
$cmd

say "5. verify with an independent decryptor (python3-cryptography + the volume key from cryptsetup)"
/usr/bin/python3 "$top/tests/lib/luksdecrypt.py" disk.img --key-file demo.key --length "$(stat -c %s plain.orig)" --expect plain.orig
echo "decrypted plaintext equals the original 80 MiB byte for byte"
cryptsetup open --test-passphrase --key-file demo.key disk.img
echo "cryptsetup accepts the key: $(cryptsetup luksDump disk.img | sed -n 's/^Version:[[:space:]]*/LUKS/p'), $(cryptsetup luksDump disk.img | grep -m1 'cipher:' | tr -d '\t')"
/usr/bin/python3 "$top/tests/lib/luksdecrypt.py" disk.img --key-file demo.key --length "$(stat -c %s plain.orig)" --out plain.dec
mkdir files && debugfs -R "rdump / files" plain.dec >/dev/null 2>&1
(cd files && find . -type f ! -path './lost+found*' -exec sha256sum {} + | sort -k2) >files2.sha256
cmp files.sha256 files2.sha256 && echo "all $(wc -l <files.sha256) files read back from the decrypted filesystem match"

say "6. running it once more is a no-op"
before=$(sha256sum disk.img)
$cmd
[ "$before" = "$(sha256sum disk.img)" ] && echo "image unchanged"
"$luksipc" status --state state.bin --notes

if [ "${DEMO_VM:-1}" != 0 ]; then
	printf '\nPart 2: the real job, at boot, in a QEMU guest (a few minutes under TCG)\n'
	cd /
	"$top/tools/demo-vm.sh" 7
fi

say "demo passed ($(($(date +%s) - t0))s)"
