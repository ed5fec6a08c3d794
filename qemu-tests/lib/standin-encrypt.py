#!/usr/bin/python3
"""Stand-in converter for developing the QEMU tests without build/luksipc.

standin-encrypt.py IMG VOLUME_KEY_FILE OFFSET SECTOR_SIZE BYTES

Encrypts IMG[0:BYTES) with aes-xts-plain64 under the volume key and writes
the ciphertext to IMG[OFFSET:OFFSET+BYTES), the way dm-crypt would: the IV
is the little-endian count of 512-byte sectors from the start of the data
segment, also for 4096-byte sectors. Works backward, in place. The LUKS
header itself comes from `cryptsetup luksFormat --volume-key-file`.
"""
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def main():
    img, vk_file, offset, sector, nbytes = sys.argv[1:6]
    offset, sector, nbytes = int(offset), int(sector), int(nbytes)
    key = open(vk_file, "rb").read()
    assert nbytes % sector == 0 and offset % sector == 0
    chunk = 1 << 20
    with open(img, "r+b") as f:
        pos = nbytes
        while pos > 0:
            start = max(0, pos - chunk)
            start -= start % sector
            f.seek(start)
            data = f.read(pos - start)
            out = bytearray()
            for s in range(0, len(data), sector):
                iv = ((start + s) // 512).to_bytes(16, "little")
                enc = Cipher(algorithms.AES(key), modes.XTS(iv)).encryptor()
                out += enc.update(data[s:s + sector]) + enc.finalize()
            f.seek(offset + start)
            f.write(out)
            pos = start


if __name__ == "__main__":
    main()
