#!/usr/bin/python3
"""Independent LUKS1/LUKS2 aes-xts-plain64 decryptor for the luksipc tests.

Shares no code with src/. The header is read with the cryptsetup CLI only:
  - `cryptsetup luksDump IMG` gives the version, the data offset and the
    encryption sector size;
  - `cryptsetup luksDump --dump-volume-key` with the key file gives the
    volume key.
The data segment is then decrypted here: aes-xts with the plain64 IV, the
little-endian 64-bit count of 512-byte sectors from the start of the data
segment, also when the encryption sector size is 4096 (each 4096-byte unit
uses the IV of its first 512-byte sector), as dm-crypt does for LUKS2
without iv_large_sectors.

With --header HDR (a detached header, `luksipc convert --header`,
`cryptsetup --header`) the header, and so the volume key, is read from HDR
and the data of IMG is decrypted from the header's data offset (0 for a
header made for a detached use).

Usage:
  luksdecrypt.py IMG --key-file K [--header HDR] [--length N] [--out FILE]
                     [--expect FILE | --expect-sha256 HEX] [--info]
  luksdecrypt.py IMG --volume-key-file VK ...   (skip the keyslot)

--length N: only the first N plaintext bytes (default: the whole data area).
--expect FILE: compare with the first N bytes of FILE (N defaults to the
  data area; FILE must be at least N bytes long).
--info: print the parsed header geometry as one JSON object on stdout
  (with --header: also "header", its path; "image_size" and "data_area"
  are those of IMG).

Exit: 0 ok (or equal), 1 plaintext differs, 2 error.
"""
import argparse
import ctypes
import ctypes.util
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CHUNK = 1 << 20  # bytes decrypted per read


class Error(Exception):
    pass


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise Error("%s failed (exit %d): %s" % (" ".join(cmd), p.returncode,
                                                  p.stderr.decode(errors="replace").strip()))
    return p.stdout.decode(errors="replace")


def parse_dump(text):
    """Return dict(version, offset, sector_size, cipher, key_bits, uuid, label)."""
    info = {}
    m = re.search(r"^Version:\s*(\d+)", text, re.M)
    if not m:
        raise Error("luksDump: no Version line")
    info["version"] = int(m.group(1))
    m = re.search(r"^UUID:\s*(\S+)", text, re.M)
    info["uuid"] = m.group(1) if m else None
    if info["version"] == 1:
        name = re.search(r"^Cipher name:\s*(\S+)", text, re.M).group(1)
        mode = re.search(r"^Cipher mode:\s*(\S+)", text, re.M).group(1)
        info["cipher"] = "%s-%s" % (name, mode)
        info["offset"] = int(re.search(r"^Payload offset:\s*(\d+)", text, re.M).group(1)) * 512
        info["sector_size"] = 512
        info["key_bits"] = int(re.search(r"^MK bits:\s*(\d+)", text, re.M).group(1))
        info["label"] = None
    elif info["version"] == 2:
        m = re.search(r"^Label:\s*(.*)$", text, re.M)
        info["label"] = m.group(1).strip() if m else None
        if info["label"] == "(no label)":
            info["label"] = None
        seg = re.search(r"^Data segments:\n(.*?)(?=^\S)", text, re.M | re.S)
        if not seg:
            raise Error("luksDump: no Data segments section")
        segs = seg.group(1)
        if len(re.findall(r"^\s+\d+: ", segs, re.M)) != 1:
            raise Error("luksDump: expected exactly one data segment")
        info["offset"] = int(re.search(r"offset:\s*(\d+) \[bytes\]", segs).group(1))
        info["sector_size"] = int(re.search(r"sector:\s*(\d+) \[bytes\]", segs).group(1))
        info["cipher"] = re.search(r"cipher:\s*(\S+)", segs).group(1)
        m = re.search(r"length:\s*(\d+) \[bytes\]", segs)
        info["segment_length"] = int(m.group(1)) if m else None
        m = re.search(r"^Keyslots:\n.*?Key:\s*(\d+) bits", text, re.M | re.S)
        info["key_bits"] = int(m.group(1)) if m else None
    else:
        raise Error("unknown LUKS version %d" % info["version"])
    if info["cipher"] != "aes-xts-plain64":
        raise Error("unsupported cipher %r" % info["cipher"])
    return info


def data_area(info, img_size):
    """Bytes of the data segment on an image of img_size bytes: from the
    data offset to the end of the image (or of the segment's fixed length),
    in whole encryption sectors."""
    area = img_size - info["offset"]
    if info.get("segment_length"):
        area = min(area, info["segment_length"])
    return area - area % info["sector_size"]


def volume_key(img, key_file):
    with tempfile.TemporaryDirectory() as d:
        vkf = os.path.join(d, "vk")
        out = run(["cryptsetup", "luksDump", "--dump-volume-key", "-q",
                   "--key-file", key_file, "--volume-key-file", vkf, img])
        if os.path.exists(vkf):
            with open(vkf, "rb") as f:
                return f.read()
    # older cryptsetup: parse the hex dump
    m = re.search(r"^(?:MK dump|Volume key):\s*((?:[0-9a-f]{2}\s*)+)", out, re.M | re.I)
    if not m:
        raise Error("cannot find the volume key in luksDump output")
    return bytes.fromhex("".join(m.group(1).split()))


class LibcryptoXts:
    """Fast path: one EVP context, re-keyed with a new IV per sector."""

    def __init__(self, key):
        name = ctypes.util.find_library("crypto")
        if not name:
            raise OSError("no libcrypto")
        lc = ctypes.CDLL(name)
        lc.EVP_CIPHER_CTX_new.restype = ctypes.c_void_p
        lc.EVP_CIPHER_CTX_free.argtypes = [ctypes.c_void_p]
        lc.EVP_aes_128_xts.restype = ctypes.c_void_p
        lc.EVP_aes_256_xts.restype = ctypes.c_void_p
        lc.EVP_DecryptInit_ex.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                          ctypes.c_char_p, ctypes.c_char_p]
        lc.EVP_DecryptUpdate.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                         ctypes.POINTER(ctypes.c_int), ctypes.c_void_p, ctypes.c_int]
        self.lc = lc
        cipher = {32: lc.EVP_aes_128_xts, 64: lc.EVP_aes_256_xts}[len(key)]()
        self.ctx = lc.EVP_CIPHER_CTX_new()
        if not self.ctx or lc.EVP_DecryptInit_ex(self.ctx, cipher, None, key, None) != 1:
            raise OSError("EVP_DecryptInit_ex failed")
        self.outl = ctypes.c_int()

    def decrypt(self, data, first_sector, unit):
        n = len(data)
        src = (ctypes.c_char * n).from_buffer(data)
        out = bytearray(n)
        dst = (ctypes.c_char * n).from_buffer(out)
        s, d = ctypes.addressof(src), ctypes.addressof(dst)
        step = unit // 512
        lc, ctx, outl = self.lc, self.ctx, ctypes.byref(self.outl)
        for i in range(n // unit):
            iv = (first_sector + i * step).to_bytes(16, "little")
            if lc.EVP_DecryptInit_ex(ctx, None, None, None, iv) != 1 or \
               lc.EVP_DecryptUpdate(ctx, d + i * unit, outl, s + i * unit, unit) != 1:
                raise OSError("EVP_DecryptUpdate failed")
        del src, dst
        return out

    def __del__(self):
        if getattr(self, "ctx", None):
            self.lc.EVP_CIPHER_CTX_free(self.ctx)


class ReferenceXts:
    """python3-cryptography, one Cipher per sector (slow, used as the reference)."""

    def __init__(self, key):
        self.key = key

    def decrypt(self, data, first_sector, unit):
        out = bytearray()
        step = unit // 512
        for i in range(len(data) // unit):
            iv = (first_sector + i * step).to_bytes(16, "little")
            d = Cipher(algorithms.AES(self.key), modes.XTS(iv)).decryptor()
            out += d.update(bytes(data[i * unit:(i + 1) * unit])) + d.finalize()
        return out


def make_decryptor(key, unit, sample):
    ref = ReferenceXts(key)
    try:
        fast = LibcryptoXts(key)
    except (OSError, KeyError, AttributeError):
        return ref
    # The fast path must agree with the reference before it is trusted.
    probe = bytearray(sample[: 4 * unit]) if len(sample) >= 4 * unit else bytearray(os.urandom(4 * unit))
    if fast.decrypt(probe, 12345, unit) != ref.decrypt(probe, 12345, unit):
        return ref
    return fast


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("image")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--key-file")
    g.add_argument("--volume-key-file")
    ap.add_argument("--header", help="detached LUKS header: read the header from this"
                    " file, the data from IMG")
    ap.add_argument("--length", type=int)
    ap.add_argument("--out")
    e = ap.add_mutually_exclusive_group()
    e.add_argument("--expect")
    e.add_argument("--expect-sha256")
    ap.add_argument("--info", action="store_true")
    a = ap.parse_args()

    hdr = a.header or a.image
    info = parse_dump(run(["cryptsetup", "luksDump", hdr]))
    if a.header:
        info["header"] = a.header
    if a.volume_key_file:
        with open(a.volume_key_file, "rb") as f:
            key = f.read()
    else:
        key = volume_key(hdr, a.key_file)
    if info["key_bits"] is not None and len(key) * 8 != info["key_bits"]:
        raise Error("volume key is %d bits, header says %d" % (len(key) * 8, info["key_bits"]))
    if len(key) not in (32, 64):
        raise Error("unexpected volume key length %d" % len(key))
    img_size = os.path.getsize(a.image)
    unit = info["sector_size"]
    area = data_area(info, img_size)
    info["data_area"] = area
    info["image_size"] = img_size
    if a.info:
        print(json.dumps(info, sort_keys=True))
    length = area if a.length is None else a.length
    if length > area or length < 0:
        raise Error("requested %d bytes but the data area holds %d" % (length, area))

    exp = None
    if a.expect:
        exp = open(a.expect, "rb")
        if os.path.getsize(a.expect) < length:
            raise Error("expected file %s is shorter than %d bytes" % (a.expect, length))
    out = open(a.out, "wb") if a.out else None
    h = hashlib.sha256()
    chunk = CHUNK - CHUNK % unit
    dec = None
    with open(a.image, "rb") as f:
        pos = 0
        while pos < length:
            want = min(chunk, length - pos)
            units = (want + unit - 1) // unit * unit
            f.seek(info["offset"] + pos)
            data = bytearray(f.read(units))
            if len(data) != units:
                raise Error("short read at %d" % (info["offset"] + pos))
            if dec is None:
                dec = make_decryptor(key, unit, data)
            plain = dec.decrypt(data, pos // 512, unit)[:want]
            if out:
                out.write(plain)
            h.update(plain)
            if exp is not None:
                ref = exp.read(want)
                if ref != plain:
                    bad = next(i for i in range(want) if ref[i] != plain[i])
                    print("luksdecrypt: plaintext differs at data offset %d (sector %d)"
                          % (pos + bad, (pos + bad) // 512), file=sys.stderr)
                    return 1
            pos += want
    if out:
        out.close()
    if a.expect_sha256 and h.hexdigest() != a.expect_sha256.lower():
        print("luksdecrypt: sha256 of %d plaintext bytes is %s, expected %s"
              % (length, h.hexdigest(), a.expect_sha256), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Error as exc:
        print("luksdecrypt: error: %s" % exc, file=sys.stderr)
        sys.exit(2)
