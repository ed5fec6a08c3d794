#!/usr/bin/python3
"""Independent aes-xts-plain64 encryption of an image in place, for the
--decrypt tests: the ciphertext that luksipc must decrypt is made here,
with no code of src/, under the volume key of a detached LUKS header that
`cryptsetup luksFormat --header HDR --offset 0` made.

Usage: xtsencrypt.py HDR IMG --key-file K
       xtsencrypt.py DEV DEV --key-file K --plain PLAIN
The volume key comes from `cryptsetup luksDump --dump-volume-key`, the
sector size from the header; every whole sector of IMG from byte 0 is
encrypted (tweak: the 512-byte sector number, as dm-crypt's plain64 without
iv_large_sectors). With --plain (a header on the device itself, which
`cryptsetup luksFormat DEV` made): PLAIN's whole sectors are encrypted into
DEV at the header's data offset. Exit 0, or 2 on an error.
"""
import argparse
import os
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import luksdecrypt  # noqa: E402  the header parsing (cryptsetup CLI), shared with the decryptor

CHUNK = 1 << 20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("header")
    ap.add_argument("image")
    ap.add_argument("--key-file", required=True)
    ap.add_argument("--plain", help="the payload's plaintext, encrypted into IMG at the data offset")
    a = ap.parse_args()
    try:
        info = luksdecrypt.parse_dump(luksdecrypt.run(["cryptsetup", "luksDump", a.header]))
        vk = luksdecrypt.volume_key(a.header, a.key_file)
    except luksdecrypt.Error as e:
        print("xtsencrypt.py: %s" % e, file=sys.stderr)
        return 2
    ss = info["sector_size"]
    if a.plain:
        return encrypt_from(a.plain, a.image, info["offset"], ss, vk)
    if info["offset"] != 0:
        print("xtsencrypt.py: the header's data offset is %d, not 0" % info["offset"], file=sys.stderr)
        return 2
    with open(a.image, "r+b") as f:
        size = os.fstat(f.fileno()).st_size // ss * ss
        off = 0
        while off < size:
            n = min(CHUNK, size - off)
            f.seek(off)
            buf = f.read(n)
            out = bytearray()
            for s in range(0, n, ss):
                tweak = ((off + s) // 512).to_bytes(16, "little")
                out += Cipher(algorithms.AES(vk), modes.XTS(tweak)).encryptor().update(buf[s:s + ss])
            f.seek(off)
            f.write(out)
            off += n
    return 0


def encrypt_from(plain, image, base, ss, vk):
    """PLAIN's whole sectors, encrypted, into IMAGE at byte base."""
    with open(plain, "rb") as p, open(image, "r+b") as f:
        size = os.fstat(p.fileno()).st_size // ss * ss
        if base + size > os.fstat(f.fileno()).st_size:
            print("xtsencrypt.py: %s does not fit after the data offset %d" % (plain, base), file=sys.stderr)
            return 2
        off = 0
        while off < size:
            n = min(CHUNK, size - off)
            buf = p.read(n)
            out = bytearray()
            for s in range(0, n, ss):
                tweak = ((off + s) // 512).to_bytes(16, "little")
                out += Cipher(algorithms.AES(vk), modes.XTS(tweak)).encryptor().update(buf[s:s + ss])
            f.seek(base + off)
            f.write(out)
            off += n
    return 0


if __name__ == "__main__":
    sys.exit(main())
