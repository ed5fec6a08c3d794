#!/usr/bin/python3
"""ext2/3/4 helpers for the --used-only tests, independent of src/.

The used blocks come from e2fsprogs' own `dumpe2fs` (the complement of the
"Free blocks" it lists per group), never from luksipc's map.

Usage:
  usedfs.py ranges IMG             the used byte ranges, "start end" per line
  usedfs.py compare PLAIN ORIG RANGES
                                   PLAIN equals ORIG over every range of
                                   RANGES (a file from `ranges`); exit 1 if not
  usedfs.py populate IMG SEED FILL TREE
                                   writes live files (FILL of the free space)
                                   between fillers with debugfs, then deletes
                                   the fillers; each 4 KiB block of a file
                                   starts with a marker, LIVEk:b or DEADk:b;
                                   copies of the live files go to TREE
  usedfs.py scan DEV TREE          no 4 KiB block of any file under TREE (a
                                   copy of the live files) appears at any
                                   512-byte offset of DEV; exit 1 if one does
  usedfs.py populate-vfat IMG SEED FILL TREE
                                   the same on vfat, with mtools
  usedfs.py markers DEV TAG        prints how many distinct TAG markers
                                   (LIVE or DEAD) occur in DEV
"""
import os
import random
import re
import subprocess
import sys
import tempfile


def used_ranges(img):
    out = subprocess.run(["dumpe2fs", img], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         check=True).stdout.decode()
    bs = int(re.search(r"^Block size:\s+(\d+)", out, re.M).group(1))
    count = int(re.search(r"^Block count:\s+(\d+)", out, re.M).group(1))
    first = int(re.search(r"^First block:\s+(\d+)", out, re.M).group(1))
    free = []
    for m in re.finditer(r"^\s+Free blocks: ?(.*)$", out, re.M):
        for part in m.group(1).split(","):
            part = part.strip()
            if not part:
                continue
            a, _, b = part.partition("-")
            free.append((int(a), int(b or a) + 1))
    free.sort()
    used, pos = [], first
    for a, b in free:
        if a > pos:
            used.append((pos, a))
        pos = max(pos, b)
    if pos < count:
        used.append((pos, count))
    return [(a * bs, b * bs) for a, b in used], bs


def compare(plain, orig, ranges_file):
    with open(plain, "rb") as p, open(orig, "rb") as o:
        for line in open(ranges_file):
            a, b = map(int, line.split())
            p.seek(a)
            o.seek(a)
            if p.read(b - a) != o.read(b - a):
                print("differs in used range [%d, %d)" % (a, b))
                return 1
    return 0


def debugfs(img, cmds):
    with tempfile.NamedTemporaryFile("w", delete=False) as f:
        f.write("\n".join(cmds) + "\n")
    try:
        subprocess.run(["debugfs", "-w", "-f", f.name, img], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
    finally:
        os.unlink(f.name)


def free_bytes(img):
    out = subprocess.run(["dumpe2fs", "-h", img], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         check=True).stdout.decode()
    bs = int(re.search(r"^Block size:\s+(\d+)", out, re.M).group(1))
    return int(re.search(r"^Free blocks:\s+(\d+)", out, re.M).group(1)) * bs


def marked(rnd, tag, k, size):
    """size bytes: every 4 KiB block starts with the marker TAG%06d:%06d:"""
    out = bytearray()
    for b in range((size + 4095) // 4096):
        out += b"%s%06d:%06d:" % (tag, k, b) + rnd.randbytes(4096 - 20)
    return bytes(out[:size])


def write_pair(rnd, fp, tree, k, fsize, lsize):
    """Filler k (DEAD markers, fsize bytes) at fp and live file k (LIVE markers) in tree; their paths."""
    with open(fp, "wb") as f:
        f.write(marked(rnd, b"DEAD", k, fsize))
    lp = os.path.join(tree, "live%04d" % k)
    with open(lp, "wb") as f:
        f.write(marked(rnd, b"LIVE", k, lsize))
    return fp, lp


def populate(img, seed, fill, tree):
    """Files spread over the whole filesystem: live files written between
    fillers, the fillers deleted afterwards (their blocks keep their DEAD
    markers in free space). Copies of the live files go to TREE."""
    rnd = random.Random(seed)
    room = free_bytes(img)
    os.makedirs(tree, exist_ok=True)
    writes, fillers, live = [], [], 0
    with tempfile.TemporaryDirectory() as d:
        k = 0
        while live < fill * room and (live + sum(f[1] for f in fillers)) < 0.85 * room:
            fsize = rnd.randrange(64, 512) * 4096
            lsize = rnd.choice([1, 100, 4096, 5000, 65536, 200000, rnd.randrange(1, 256) * 4096])
            fp, lp = write_pair(rnd, os.path.join(d, "filler%04d" % k), tree, k, fsize, lsize)
            writes += ["write %s /filler%04d" % (fp, k), "write %s /live%04d" % (lp, k)]
            fillers.append(("/filler%04d" % k, fsize))
            live += lsize
            k += 1
        debugfs(img, writes)
    debugfs(img, ["rm %s" % f for f, _ in fillers])


def populate_vfat(img, seed, fill, tree):
    """populate, for a vfat image, with mtools (mcopy in argument order)."""
    rnd = random.Random(seed)
    out = subprocess.run(["minfo", "-i", img, "::"], stdout=subprocess.PIPE, check=True).stdout.decode()
    spc = int(re.search(r"cluster size: (\d+) sectors", out).group(1))
    bps = int(re.search(r"^sector size: (\d+)", out, re.M).group(1))
    total = int(re.search(r"big size: (\d+)", out).group(1)) or \
        int(re.search(r"small size: (\d+)", out).group(1))
    room = total * bps * 0.85
    os.makedirs(tree, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        args, fillers, live, k = [], [], 0, 0
        while live < fill * room and live + sum(fillers) < 0.8 * room:
            fsize = rnd.randrange(16, 128) * spc * bps
            lsize = rnd.choice([1, 100, 4096, 5000, 65536, rnd.randrange(1, 64) * 4096])
            fp, lp = write_pair(rnd, os.path.join(d, "fill%04d" % k), tree, k, fsize, lsize)
            args += [fp, lp]
            fillers.append(fsize)
            live += lsize
            k += 1
        subprocess.run(["mcopy", "-i", img] + args + ["::/"], check=True)
        subprocess.run(["mdel", "-i", img] + ["::/fill%04d" % j for j in range(k)], check=True)


def count_markers(dev, tag):
    with open(dev, "rb") as f:
        data = f.read()
    return len(set(re.findall(tag + rb"\d{6}:\d{6}:", data)))


def scan(dev, tree):
    want = {}
    for root, _, names in os.walk(tree):
        for n in names:
            with open(os.path.join(root, n), "rb") as f:
                data = f.read()
            for off in range(0, len(data) - 4095, 4096):
                block = data[off:off + 4096]
                want[block[:64]] = (os.path.join(root, n), off, block)
    if not want:
        print("no 4 KiB block in %s" % tree)
        return 2
    found = 0
    with open(dev, "rb") as f:
        data = f.read()
    for off in range(0, len(data) - 4095, 512):
        hit = want.get(data[off:off + 64])
        if hit and data[off:off + 4096] == hit[2]:
            print("plaintext of %s at file offset %d found at device offset %d" % (hit[0], hit[1], off))
            found += 1
            if found >= 5:
                break
    print("%d blocks of live files looked for, %d found" % (len(want), found))
    return 1 if found else 0


def main():
    cmd = sys.argv[1]
    if cmd == "ranges":
        rs, _ = used_ranges(sys.argv[2])
        for a, b in rs:
            print(a, b)
        return 0
    if cmd == "compare":
        return compare(sys.argv[2], sys.argv[3], sys.argv[4])
    if cmd == "populate-vfat":
        populate_vfat(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
        return 0
    if cmd == "populate":
        populate(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
        return 0
    if cmd == "scan":
        return scan(sys.argv[2], sys.argv[3])
    if cmd == "markers":
        print(count_markers(sys.argv[2], sys.argv[3].encode()))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
