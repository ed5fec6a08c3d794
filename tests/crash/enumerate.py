#!/usr/bin/python3
"""Crash-state enumeration for luksipc (CrashMonkey / SQLite crash-test style).

Input: the original device image, the trace of one uninterrupted traced run
(LUKSIPC_TEST_TRACE, format in docs/interface.md) and that run's final
device image. Each target (0 = device, 1 = state store, 3 = the detached
LUKS header file of `convert --header`) is modelled as its initial bytes
plus the ordered writes and size changes of the trace; a flush ('F') of a
target makes that target's earlier operations durable. Target 2 (a
generated key file) is not part of the model.

At every op boundary i, the durable operations are kept and the pending
(unflushed) ones are: all dropped, all applied, applied as random subsets,
or torn (the operations before one pending write applied, that write cut at
a 512-byte boundary, written as a random subset of its sectors or with one
garbage sector, the later ones dropped). The state store and the detached
header file are absent until the trace first touches them (then they exist,
empty until a size change or write of theirs reaches the disk); with
--orig-header FILE the detached header file exists from the start and holds
FILE's bytes (`convert --decrypt --header`: the LUKS header that the run
reads and, at its end, wipes). Each distinct crash state is resumed by
running the convert command again; it must exit 0 and leave a device that
is byte-identical to the reference final image (and, with --ref-header, a
detached header file byte-identical to the uninterrupted run's). A crash
state whose device is still the original (nothing written to it yet) may
instead get a fresh header: then the result must decrypt, with the key
file, to the original plaintext (checked with luksdecrypt.py; with a
detached header, the header is read from the header file the resume left)
and cryptsetup must accept the key. The expected plaintext is --plain FILE
when given (re-encryption: --orig is the LUKS source, --plain its decrypted
payload), else --orig; with --used-ranges FILE ("start end" byte ranges per
line, --used-only) only those ranges of it are compared.

--deterministic: the conversion has one possible result (`--decrypt`: no
new header, no new volume key), so there is no fresh-header alternative:
every resumed state, one whose device is untouched too, must give the
reference device (and --ref-header) exactly; with --plain, the reference
device's first --data-length bytes must also be those of --plain (the
uninterrupted decryption gave the original plaintext back).

Usage:
  enumerate.py --orig IMG --trace TRACE --ref FINAL --key K --data-length P
               --workdir DIR [--ref-state STATE] [--ref-header HDR]
               [--orig-header HDR0] [--deterministic]
               [--plain FILE] [--jobs 2] [--min-states 2000] [--max-failures N]
               [--seed N] -- CMD... ({dev}, {state} and {hdr} are replaced)
{hdr} is the per-state path of the detached header file; a command with
{hdr} needs a trace with target-3 operations, and the other way round
(--orig-header needs both).
Prints progress and one summary line, `crash states: N run (...), F failed,
Ts`; exits 0 only when F is 0, at least --min-states distinct states were
run and nothing else went wrong (any exception exits non-zero too).
--max-failures N stops submitting states after N failed ones (the mutation
check, tests/mutation/, needs one failure, not all of them); the summary
then says `stopped after N failures`.
"""
import argparse
import concurrent.futures
import hashlib
import os
import random
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import luksdecrypt  # noqa: E402  the independent decryptor (shares no code with src/)

SECTOR = 512


class Op:
    __slots__ = ("idx", "op", "target", "offset", "data")

    def __init__(self, idx, op, target, offset, data):
        self.idx, self.op, self.target, self.offset, self.data = idx, op, target, offset, data

    def __repr__(self):
        if self.op == "W":
            return "#%d W t%d [%d,+%d)" % (self.idx, self.target, self.offset, len(self.data))
        if self.op == "S":
            return "#%d S t%d size=%d" % (self.idx, self.target, self.offset)
        return "#%d F t%d" % (self.idx, self.target)


def read_trace(path):
    ops = []
    with open(path, "rb") as f:
        buf = f.read()
    pos = 0
    while pos < len(buf):
        if pos + 16 > len(buf):
            raise SystemExit("trace: truncated record header at %d" % pos)
        op, target, zero, length, offset = struct.unpack_from("<BBHIQ", buf, pos)
        pos += 16
        op = chr(op)
        if op not in "WFS" or zero != 0 or target > 3:
            raise SystemExit("trace: bad record at %d: op=%r target=%d zero=%d"
                             % (pos - 16, op, target, zero))
        data = b""
        if op == "W":
            data = buf[pos:pos + length]
            if len(data) != length:
                raise SystemExit("trace: truncated write data at %d" % pos)
            pos += length
        if target == 2:  # a generated key file: not part of the crash model
            continue
        ops.append(Op(len(ops), op, target, offset, data))
    return ops


def apply_write(img, offset, data):
    end = offset + len(data)
    if len(img) < end:
        img.extend(bytes(end - len(img)))
    img[offset:end] = data


def apply_op(img, op, mode=None):
    """Apply op to bytearray img; mode describes a torn write."""
    if op.op == "S":
        if op.offset < len(img):
            del img[op.offset:]
        else:
            img.extend(bytes(op.offset - len(img)))
        return
    if mode is None:
        apply_write(img, op.offset, op.data)
        return
    kind = mode[0]
    pieces = split_sectors(op)
    if kind == "prefix":  # the first mode[1] sector pieces reached the disk
        for off, d in pieces[:mode[1]]:
            apply_write(img, off, d)
    elif kind == "subset":  # sector pieces selected by the bit mask mode[2]
        for k, (off, d) in enumerate(pieces):
            if mode[2] >> k & 1:
                apply_write(img, off, d)
    elif kind == "garbage":  # mode[1]: piece index; mode[2]: the rest applied?
        for k, (off, d) in enumerate(pieces):
            if k == mode[1]:
                apply_write(img, off, random.Random(op.idx * 7919 + k).randbytes(len(d)))
            elif mode[2]:
                apply_write(img, off, d)
    else:
        raise ValueError(mode)


def split_sectors(op):
    """The write cut at absolute 512-byte boundaries."""
    out = []
    off, data, pos = op.offset, op.data, 0
    while pos < len(data):
        n = min(len(data) - pos, SECTOR - (off + pos) % SECTOR)
        out.append((off + pos, data[pos:pos + n]))
        pos += n
    return out


def torn_modes(op, rnd):
    n = len(split_sectors(op)) if op.op == "W" else 0
    if n == 0:  # not a write, or a write of nothing: it cannot tear
        return []
    modes = []
    if n > 1:
        cuts = sorted({1, n // 2, n - 1, rnd.randrange(1, n)})
        modes += [("prefix", c) for c in cuts if 0 < c < n]
        mask = rnd.getrandbits(n) or 1
        modes.append(("subset", "%d/%d sectors #%08x" % (bin(mask).count("1"), n, mask & 0xffffffff), mask))
    g = rnd.randrange(n)
    modes.append(("garbage", g, True))
    if n > 1:
        modes.append(("garbage", g, False))
    return modes


TARGETS = (0, 1, 3)  # device, state store, detached header file


class Model:
    """Walk the trace; at each boundary expose durable images and pending ops."""

    def __init__(self, ops, orig, orig_header=None):
        self.ops = ops
        self.has_hdr = any(o.target == 3 for o in ops)
        self.durable = {0: bytearray(orig), 1: bytearray(),
                        3: bytearray(orig_header or b"")}
        self.state_created = False
        # --orig-header: the header file exists before the run
        self.hdr_created = orig_header is not None
        self.pending = {t: [] for t in TARGETS}
        self.per_target = {t: [o for o in ops if o.target == t and o.op != "F"] for t in TARGETS}
        self.durable_count = {t: 0 for t in TARGETS}

    @property
    def dev_durable(self):
        return self.durable[0]

    @property
    def state_durable(self):
        return self.durable[1]

    def advance(self, op):
        if op.op == "F":
            img = self.durable[op.target]
            for p in self.pending[op.target]:
                apply_op(img, p)
            self.durable_count[op.target] += len(self.pending[op.target])
            self.pending[op.target] = []
        else:
            self.pending[op.target].append(op)
        if op.target == 1:
            self.state_created = True
        if op.target == 3:
            self.hdr_created = True

    def all_pending(self):
        return sorted(self.pending[0] + self.pending[1] + self.pending[3], key=lambda o: o.idx)


def build(model, choice):
    """choice: list of (op, mode) for the pending ops that reach the disk.
    Returns (device, state or None, header file or None, device touched)."""
    imgs = {t: bytearray(model.durable[t]) for t in TARGETS}
    touched = False
    for op, mode in choice:
        apply_op(imgs[op.target], op, mode)
        touched = touched or (op.target == 0 and op.op == "W")
    return (imgs[0], (bytes(imgs[1]) if model.state_created else None),
            (bytes(imgs[3]) if model.hdr_created else None), touched)


def variants(model, boundary, rnd, extra=False):
    """Yield (description, choice) for the crash states at this boundary."""
    pend = model.all_pending()
    m = len(pend)
    if not extra:
        yield "none", []
        if m:
            yield "all", [(p, None) for p in pend]
        if m >= 2:
            # The two reorderings a write cache makes most often, always:
            # only the newest write reached the disk, or all but the oldest.
            yield "only last", [(pend[-1], None)]
            if m >= 3:
                yield "all but first", [(p, None) for p in pend[1:]]
            for _ in range(min(2 ** m - 2, 4)):
                mask = rnd.randrange(1, 2 ** m - 1) if m < 60 else rnd.getrandbits(m) or 1
                yield "subset %x" % mask, [(p, None) for k, p in enumerate(pend) if mask >> k & 1]
        writes = [k for k, p in enumerate(pend) if p.op == "W"]
        if len(writes) > 6:
            writes = sorted(set(rnd.sample(writes[:-1], 5) + [writes[-1]]))
        for k in writes:
            for mode in torn_modes(pend[k], rnd):
                yield ("torn %r %r" % (pend[k], mode[:2]),
                       [(p, None) for p in pend[:k]] + [(pend[k], mode)])
    elif m:
        k = rnd.randrange(m)
        if pend[k].op == "W" and rnd.random() < 0.7:
            modes = torn_modes(pend[k], rnd)
            mode = modes[rnd.randrange(len(modes))]
            prefix = [(p, None) for p in pend[:k] if rnd.random() < 0.8]
            yield "xtorn %r %r" % (pend[k], mode[:2]), prefix + [(pend[k], mode)]
        else:
            mask = rnd.getrandbits(m)
            yield "xsubset %x" % mask, [(p, None) for j, p in enumerate(pend) if mask >> j & 1]


def state_key(model, choice):
    """A cheap identity of a crash state: which ops reached disk, and how.

    Per target: the length of the prefix of its ops that fully reached the
    disk, then the other ops that did (with their torn mode)."""
    key = [model.state_created]
    targets = (0, 1)
    if model.has_hdr:
        key.append(model.hdr_created)
        targets = (0, 1, 3)
    for t in targets:
        done = model.durable_count[t]
        seq = model.per_target[t]
        full = {op.idx for op, mode in choice if mode is None and op.target == t}
        while done < len(seq) and seq[done].idx in full:
            done += 1
        last = seq[done - 1].idx if done else -1
        rest = tuple((op.idx, mode) for op, mode in choice
                     if op.target == t and not (mode is None and op.idx <= last))
        key += [done, rest]
    return tuple(key)


class Runner:
    def __init__(self, a, cmd, ref, ref_header=None, has_hdr=False, deterministic=False):
        self.a, self.cmd, self.ref = a, cmd, ref
        self.deterministic = deterministic
        self.ref_header, self.has_hdr = ref_header, has_hdr
        self.slots = [os.path.join(a.workdir, "w%d" % k) for k in range(a.jobs)]
        for s in self.slots:
            os.makedirs(s, exist_ok=True)
        self.free = list(self.slots)
        self.lock = threading.Lock()
        self.identical = self.decrypted = 0
        self.failures = []

    def run(self, n, boundary, desc, dev, st, hdr, touched):
        with self.lock:
            slot = self.free.pop()
        try:
            return self._run(slot, n, boundary, desc, dev, st, hdr, touched)
        finally:
            with self.lock:
                self.free.append(slot)

    def _run(self, slot, n, boundary, desc, dev, st, hdr, touched):
        devp = os.path.join(slot, "dev.img")
        stp = os.path.join(slot, "state")
        hdrp = os.path.join(slot, "hdr")
        with open(devp, "wb") as f:
            f.write(dev)
        for path, data in ((stp, st), (hdrp, hdr)):
            if os.path.exists(path):
                os.unlink(path)
            if data is not None:
                with open(path, "wb") as f:
                    f.write(data)
        argv = [c.replace("{dev}", devp).replace("{state}", stp).replace("{hdr}", hdrp)
                for c in self.cmd]
        try:
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
            rc, err = p.returncode, p.stderr.decode(errors="replace").strip()
        except subprocess.TimeoutExpired:
            rc, err = "timeout", ""
        why = None
        if rc != 0:
            why = "resume exited %s: %s" % (rc, err.splitlines()[-1] if err else "")
        else:
            with open(devp, "rb") as f:
                same = f.read() == self.ref
            if same and self.ref_header is not None:
                why = self.same_header(hdrp)
            if why:
                pass
            elif same:
                with self.lock:
                    self.identical += 1
            elif touched or self.deterministic:
                why = "device differs from the reference final image"
                if not touched:
                    why += " (device untouched; --deterministic: no fresh start allowed)"
            else:
                why = self.verify_fresh(devp, hdrp if self.has_hdr else None)
                if why is None:
                    with self.lock:
                        self.decrypted += 1
        if why:
            with self.lock:
                self.failures.append((n, boundary, desc, why))
                keep = len(self.failures) <= 3
            print("FAIL state %d (boundary %d, %s): %s" % (n, boundary, desc, why), flush=True)
            if keep and self.a.keep_failures:
                d = os.path.join(self.a.keep_failures, "state-%d" % n)
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, "dev.img"), "wb") as f:
                    f.write(dev)
                if st is not None:
                    with open(os.path.join(d, "state"), "wb") as f:
                        f.write(st)
                if hdr is not None:
                    with open(os.path.join(d, "hdr"), "wb") as f:
                        f.write(hdr)
                with open(os.path.join(d, "what.txt"), "w") as f:
                    f.write("boundary %d\n%s\n%s\n" % (boundary, desc, why))
        return why is None

    def same_header(self, hdrp):
        """None if the detached header file equals the reference one."""
        if not os.path.exists(hdrp):
            return "the detached header file %s is missing" % hdrp
        with open(hdrp, "rb") as f:
            got = f.read()
        if got == self.ref_header:
            return None
        if len(got) != len(self.ref_header):
            return ("detached header file is %d bytes, the reference one %d"
                    % (len(got), len(self.ref_header)))
        bad = next(i for i in range(len(got)) if got[i] != self.ref_header[i])
        return "detached header file differs from the reference one at byte %d" % bad

    def verify_fresh(self, devp, hdrp=None):
        if hdrp is not None and not os.path.exists(hdrp):
            return "fresh header, but the detached header file %s is missing" % hdrp
        try:
            why = decrypts_to(devp, self.a.key, self.a.plain or self.a.orig, self.a.data_length,
                              self.a.used, header=hdrp)
        except luksdecrypt.Error as ex:
            why = "luksdecrypt: error: %s" % ex
        if why:
            return "fresh header, plaintext wrong: " + why
        p = subprocess.run(["cryptsetup", "open", "--test-passphrase", "--key-file",
                            self.a.key, hdrp or devp], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        if p.returncode != 0:
            return "fresh header, cryptsetup rejects the key"
        return None


def decrypts_to(img, key_file, expect, length, used=None, header=None):
    """None if the first length plaintext bytes of the LUKS image img, opened
    with key_file, are those of expect; else why not. What `luksdecrypt.py
    IMG --key-file K [--header HDR] --expect FILE --length N` checks, in this
    process: importing the decryptor costs more than decrypting a small
    image. header: a detached header file (the data of img from its data
    offset)."""
    hdr = header or img
    info = luksdecrypt.parse_dump(luksdecrypt.run(["cryptsetup", "luksDump", hdr]))
    key = luksdecrypt.volume_key(hdr, key_file)
    if info["key_bits"] is not None and len(key) * 8 != info["key_bits"]:
        return "volume key is %d bits, header says %d" % (len(key) * 8, info["key_bits"])
    unit = info["sector_size"]
    area = luksdecrypt.data_area(info, os.path.getsize(img))
    if length > area:
        return "requested %d bytes but the data area holds %d" % (length, area)
    units = (length + unit - 1) // unit * unit
    with open(img, "rb") as f:
        f.seek(info["offset"])
        data = bytearray(f.read(units))
    with open(expect, "rb") as f:
        ref = f.read(length)
    if len(data) != units or len(ref) != length:
        return "short read"
    dec = luksdecrypt.make_decryptor(key, unit, data)
    plain = bytes(dec.decrypt(data, 0, unit)[:length])
    if used is not None:
        for a, b in used:
            if plain[a:min(b, length)] != ref[a:min(b, length)]:
                return "plaintext differs in used range [%d, %d)" % (a, b)
        return None
    if plain != ref:
        bad = next(i for i in range(length) if ref[i] != plain[i])
        return "plaintext differs at data offset %d" % bad
    return None


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--orig", required=True)
    ap.add_argument("--trace", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--ref-state")
    ap.add_argument("--ref-header", help="the uninterrupted run's final detached header"
                    " file: a resumed state must leave {hdr} identical to it")
    ap.add_argument("--orig-header", help="the detached header file as it was before the"
                    " run (default: absent until the trace first touches it)")
    ap.add_argument("--deterministic", action="store_true",
                    help="no fresh-header alternative (--decrypt): every resumed state"
                    " must give --ref exactly")
    ap.add_argument("--plain", help="expected plaintext for a fresh-header result"
                    " (default: --orig); with --deterministic, what --ref must begin with")
    ap.add_argument("--key", required=True)
    ap.add_argument("--used-ranges", help="--used-only: compare a fresh result over these"
                    " byte ranges only")
    ap.add_argument("--data-length", type=int, required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--min-states", type=int, default=2000)
    ap.add_argument("--max-states", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--boundary-fraction", type=float, default=1.0,
                    help="enumerate only this random fraction of the op boundaries")
    ap.add_argument("--keep-failures")
    ap.add_argument("--max-failures", type=int, default=0,
                    help="stop after this many failed states (0: run them all)")
    ap.add_argument("cmd", nargs="+")
    a = ap.parse_args()
    a.used = None
    if a.used_ranges:
        with open(a.used_ranges) as f:
            a.used = [tuple(map(int, line.split())) for line in f if line.strip()]

    ops = read_trace(a.trace)
    with open(a.orig, "rb") as f:
        orig = f.read()
    counts = {}
    for op in ops:
        counts[(op.op, op.target)] = counts.get((op.op, op.target), 0) + 1
    print("trace: %d ops: %s" % (len(ops), ", ".join(
        "%s%d=%d" % (k[0], k[1], v) for k, v in sorted(counts.items()))), flush=True)

    # A detached header: the command names its file ({hdr}), the trace has
    # its operations (target 3), and the reference is the traced run's.
    has_hdr = any(op.target == 3 for op in ops)
    cmd_hdr = any("{hdr}" in c for c in a.cmd)
    if cmd_hdr and not has_hdr:
        print("FAIL: the command has {hdr} but the trace has no operation on the detached"
              " header file (target 3); its I/O bypasses the traced seam", flush=True)
        return 1
    if has_hdr and not cmd_hdr:
        print("FAIL: the trace writes a detached header file (target 3) but the command"
              " has no {hdr}", flush=True)
        return 1
    if a.ref_header and not has_hdr:
        print("FAIL: --ref-header given but the trace has no target-3 operation", flush=True)
        return 1
    if a.orig_header and not has_hdr:
        print("FAIL: --orig-header given but the trace has no target-3 operation", flush=True)
        return 1
    ref_header = None
    if a.ref_header:
        with open(a.ref_header, "rb") as f:
            ref_header = f.read()
    orig_header = None
    if a.orig_header:
        with open(a.orig_header, "rb") as f:
            orig_header = f.read()

    # The trace must be complete: replaying it all gives the reference images.
    full = Model(ops, orig, orig_header)
    for op in ops:
        full.advance(op)
    dev, st, hdr, _ = build(full, [(p, None) for p in full.all_pending()])
    if hashlib.sha256(dev).hexdigest() != sha_file(a.ref):
        print("FAIL: replaying the whole trace does not give the reference device image;"
              " some device I/O bypasses the traced seam", flush=True)
        return 1
    if a.ref_state and st is not None:
        with open(a.ref_state, "rb") as f:
            if f.read() != st:
                print("FAIL: replaying the whole trace does not give the final state store",
                      flush=True)
                return 1
    if ref_header is not None and hdr != ref_header:
        print("FAIL: replaying the whole trace does not give the reference detached header"
              " file; some header I/O bypasses the traced seam", flush=True)
        return 1
    if full.all_pending():
        print("note: %d ops were never flushed at the end of the run: %r"
              % (len(full.all_pending()), full.all_pending()[:4]), flush=True)
    with open(a.ref, "rb") as f:
        ref = f.read()
    if a.deterministic and a.plain:
        with open(a.plain, "rb") as f:
            plain = f.read(a.data_length)
        if len(plain) != a.data_length or ref[:a.data_length] != plain:
            bad = next((i for i in range(min(len(plain), len(ref)))
                        if plain[i] != ref[i]), min(len(plain), len(ref)))
            print("FAIL: the reference device differs from --plain at byte %d (of the first %d):"
                  " the uninterrupted run's result is wrong" % (bad, a.data_length), flush=True)
            return 1

    rnd = random.Random(a.seed)
    runner = Runner(a, a.cmd, ref, ref_header, has_hdr, a.deterministic)
    seen = set()
    n = 0
    t0 = time.time()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs)
    inflight = []

    def stopped():
        return a.max_failures > 0 and len(runner.failures) >= a.max_failures

    def submit(model, boundary, desc, choice):
        nonlocal n, inflight
        if stopped():
            return
        key = state_key(model, choice)
        if key in seen:
            return
        seen.add(key)
        dev, st, hdr, touched = build(model, choice)
        n += 1
        inflight.append(pool.submit(runner.run, n, boundary, desc, dev, st, hdr, touched))
        if len(inflight) >= 2 * a.jobs:
            inflight[0].result()
            for f in inflight:
                if f.done():
                    f.result()  # re-raises a worker's exception
            inflight = [f for f in inflight if not f.done()]
        if n % 250 == 0:
            print("  %d states, %.0fs, %d failed" % (n, time.time() - t0, len(runner.failures)),
                  flush=True)

    def walk(extra):
        model = Model(ops, orig, orig_header)
        for i in range(len(ops) + 1):
            if n >= a.max_states or (extra and n >= a.min_states) or stopped():
                return
            if i > 0:
                model.advance(ops[i - 1])
            if extra and not model.all_pending():
                continue
            if not extra and i > 0 and rnd.random() >= a.boundary_fraction:
                continue
            for desc, choice in variants(model, i, rnd, extra=bool(extra)):
                submit(model, i, desc, choice)
            if i == 0 and not extra:
                # crash right after the state store was created, before any write
                model.state_created = True
                submit(model, 0, "empty state file", [])
                model.state_created = False

    walk(False)
    tries = 0
    while n < a.min_states and tries < 30 and not stopped():
        walk(True)
        tries += 1
    for f in inflight:
        f.result()
    pool.shutdown()
    el = time.time() - t0
    print("crash states: %d run (%d identical to the reference, %d fresh-header decrypted),"
          " %d failed%s, %.0fs" % (n, runner.identical, runner.decrypted, len(runner.failures),
                                   " (stopped after %d failures)" % len(runner.failures)
                                   if stopped() else "", el),
          flush=True)
    if runner.failures:
        bset = sorted({b for _, b, _, _ in runner.failures})
        print("failed boundaries: %s" % bset[:50], flush=True)
        for b in bset[:5]:
            print("  ops around boundary %d: %r" % (b, ops[max(0, b - 3):b + 1]), flush=True)
        return 1
    if n < a.min_states:
        print("FAIL: only %d distinct crash states, need %d" % (n, a.min_states), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
