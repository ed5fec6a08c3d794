#!/usr/bin/python3
"""Negative controls of the crash tier: a copy of a trace (LUKSIPC_TEST_TRACE,
format in docs/interface.md) without the first flush ('F') of TARGET that
follows a write ('W') to it. enumerate.py must then find crash states that
the real order does not allow.

Usage: dropflush.py TRACE OUT [TARGET]   (TARGET default 3, a detached header)
Exit 0, or 1 when there is no such flush.
"""
import struct
import sys


def main():
    src, dst = sys.argv[1], sys.argv[2]
    target = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    buf = open(src, "rb").read()
    out, pos, dropped, written = bytearray(), 0, False, False
    while pos < len(buf):
        op, t, _, n, _off = struct.unpack_from("<BBHIQ", buf, pos)
        size = 16 + (n if op == ord("W") else 0)
        rec = buf[pos:pos + size]
        pos += size
        if t == target and op == ord("W"):
            written = True
        elif t == target and op == ord("F") and written and not dropped:
            dropped = True
            continue
        out += rec
    if not dropped:
        print("dropflush.py: no flush of target %d after a write to it in %s" % (target, src), file=sys.stderr)
        return 1
    open(dst, "wb").write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
