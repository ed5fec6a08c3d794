#!/usr/bin/python3
"""make mutation-check: the crash tier must fail for every mutant.

Builds one mutant per flush call in src/*.c (found here, by scanning the
source, and each checked against FLUSH_SITES in mutants.py) and one per
write-ordering decision (ORDER in mutants.py). Each mutant is a patched copy
of src/ in BUILD/mutants/NAME/src, compiled with the flags make passes in
(CC, CPPFLAGS, CFLAGS, LDFLAGS, LDLIBS; the Makefile adds
-DLUKSIPC_TEST_HOOKS), only its patched file recompiled and the rest linked
from an unpatched build with the same flags (BUILD/mutants/base).

First the unpatched build must pass the whole crash tier (CRASH_TIER=quick
runs of t20, t25, t16, t17 and t18; see CASES in mutants.py). Then each mutant runs the
cases, its own first, until one fails: the mutant is killed. A mutant
for which every case passes survived. A case that is skipped, or a patch
that does not apply exactly once, or a build that fails, is an error.

Prints one line per mutant and, last, `mutants: N killed, S survived`.
Exit 0 only when every mutant was killed and nothing went wrong.

Options: --jobs N (mutants run at a time, default 2), --crash-jobs N
(resumes each enumeration runs at a time, default 1), --max-failures N
(a case stops after N failed crash states, default 3), --only NAME...,
--all (also run the mutants listed as equivalent), --list, --keep (keep
each mutant's source and logs even when it was killed).
"""
import argparse
import concurrent.futures
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import mutants as M  # noqa: E402

FLUSH_CALL = re.compile(r"\b(dev_flush|fsync|fdatasync|syncfs|sync_file_range|msync)\s*\(")
FUNC_HEAD = re.compile(r"^[A-Za-z_][\w \t\*]*?\b(\w+)\s*\(")


def blank_comments(text):
    """The text with comments and string literals replaced by spaces
    (newlines kept), so that offsets still match the original."""
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif text[i] == '"' or text[i] == "'":
            q, j = text[i], i + 1
            while j < n and text[j] != q:
                j += 2 if text[j] == "\\" else 1
            j += 1
        else:
            i += 1
            continue
        for k in range(i, min(j, n)):
            if out[k] != "\n":
                out[k] = " "
        i = j
    return "".join(out)


def call_end(text, start):
    """Offset just past the call whose name starts at start (balanced parens)."""
    i = text.index("(", start)
    depth = 0
    while True:
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1


def flush_sites(srcdir):
    """{site id: (file, start, end)} for every flush call in srcdir/*.c.

    A site is FILE:FUNCTION:K, the K-th flush call in FUNCTION. A function
    starts at a line in column 0 that names it and ends at a `}` in column
    0 (the kernel style src/ is written in). A call outside any function
    (the definition of dev_flush itself) is not a site."""
    sites = {}
    for name in sorted(os.listdir(srcdir)):
        if not name.endswith(".c"):
            continue
        text = open(os.path.join(srcdir, name)).read()
        code = blank_comments(text)
        func, head, count, pos = None, None, {}, 0
        for line in code.splitlines(keepends=True):
            m = FUNC_HEAD.match(line)
            if m and not line.rstrip().endswith(";"):
                head = m.group(1)
            if line.startswith("{"):
                func = head
            elif line.startswith("}"):
                func = None
            if func:
                for c in FLUSH_CALL.finditer(line):
                    count[func] = count.get(func, 0) + 1
                    start = pos + c.start()
                    sites["%s:%s:%d" % (name, func, count[func])] = (name, start, call_end(code, start))
            pos += len(line)
    return sites


def flush_mutant(text, start, end):
    """The call at [start, end) replaced by a flush that does nothing."""
    before = text[:start].rstrip()
    repl = "(void)0" if before.endswith((";", "{", "}")) else "0"
    return text[:start] + repl + text[end:]


def apply_patch(text, hunks, what):
    for k, (old, new) in enumerate(hunks):
        n = text.count(old)
        if n != 1:
            raise RuntimeError("%s: hunk %d matches %d times, not once:\n%s" % (what, k + 1, n, old))
        text = text.replace(old, new)
    return text


def make_mutants(srcdir, args):
    """[(name, file, mutated text, cases, what it breaks)] and notes."""
    sites = flush_sites(srcdir)
    errors, notes, out = [], [], []
    for sid in sorted(set(sites) - set(M.FLUSH_SITES)):
        errors.append("flush site %s has no entry in tests/mutation/mutants.py FLUSH_SITES:"
                      " add what dropping it breaks and the case that kills it" % sid)
    for sid in sorted(set(M.FLUSH_SITES) - set(sites)):
        errors.append("FLUSH_SITES names %s, which is not a flush call in src/ any more" % sid)
    texts = {}
    for sid in sorted(set(sites) & set(M.FLUSH_SITES)):
        e = M.FLUSH_SITES[sid]
        f, start, end = sites[sid]
        if "outside" in e:
            notes.append("outside the crash model: %s (%s)" % (sid, e["outside"]))
            continue
        if "equivalent" in e and not args.all:
            notes.append("equivalent, not run: %s (%s)" % (sid, e["equivalent"]))
            continue
        text = texts.setdefault(f, open(os.path.join(srcdir, f)).read())
        name = "flush-" + sid.replace(".c:", "-").replace(":", "-")
        out.append((name, f, flush_mutant(text, start, end), e.get("kill", []),
                    e.get("breaks") or "equivalent? " + e["equivalent"]))
    for m in M.ORDER:
        text = texts.setdefault(m["file"], open(os.path.join(srcdir, m["file"])).read())
        try:
            out.append((m["name"], m["file"], apply_patch(text, m["patch"], m["name"]),
                        m["kill"], m["breaks"]))
        except RuntimeError as ex:
            errors.append(str(ex))
    names = [o[0] for o in out]
    for n in set(names):
        if names.count(n) > 1:
            errors.append("two mutants are named %s" % n)
    for o in out:
        for c in o[3]:
            if c not in M.CASES:
                errors.append("%s names an unknown case %s" % (o[0], c))
    return out, notes, errors


class Build:
    def __init__(self, build):
        env = os.environ
        self.cc = shlex.split(env.get("CC", "cc"))
        self.cflags = shlex.split(env.get("CPPFLAGS", "")) + shlex.split(env.get("CFLAGS", "-O2 -g"))
        self.ldflags = shlex.split(env.get("LDFLAGS", ""))
        self.ldlibs = shlex.split(env.get("LDLIBS", ""))
        self.root = os.path.abspath(os.path.join(build, "mutants"))

    def compile(self, src, obj):
        p = subprocess.run(self.cc + self.cflags + ["-c", "-o", obj, src],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise RuntimeError("cannot compile %s:\n%s" % (src, p.stdout.decode(errors="replace")))

    def link(self, objs, out):
        p = subprocess.run(self.cc + self.cflags + self.ldflags + ["-o", out] + objs + self.ldlibs,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise RuntimeError("cannot link %s:\n%s" % (out, p.stdout.decode(errors="replace")))

    def base(self, jobs):
        """The unpatched build: a copy of src/, every object, the binary."""
        d = os.path.join(self.root, "base")
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(os.path.join(ROOT, "src"), os.path.join(d, "src"))
        os.makedirs(os.path.join(d, "obj"))
        cs = sorted(f for f in os.listdir(os.path.join(d, "src")) if f.endswith(".c"))
        objs = [os.path.join(d, "obj", c[:-2] + ".o") for c in cs]
        with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
            list(ex.map(lambda c: self.compile(os.path.join(d, "src", c),
                                               os.path.join(d, "obj", c[:-2] + ".o")), cs))
        self.objs = dict(zip(cs, objs))
        self.link(objs, os.path.join(d, "luksipc"))
        return os.path.join(d, "src"), os.path.join(d, "luksipc")

    def mutant(self, name, f, text):
        d = os.path.join(self.root, name)
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(os.path.join(self.root, "base", "src"), os.path.join(d, "src"))
        with open(os.path.join(d, "src", f), "w") as fh:
            fh.write(text)
        obj = os.path.join(d, f[:-2] + ".o")
        self.compile(os.path.join(d, "src", f), obj)
        objs = [obj if c == f else o for c, o in sorted(self.objs.items())]
        self.link(objs, os.path.join(d, "luksipc"))
        return d, os.path.join(d, "luksipc")


def run_case(case, binary, logdir, args):
    """(result, detail): 'pass', 'fail' or 'error' for one crash-tier case."""
    test, pattern = M.CASES[case]
    env = dict(os.environ, LUKSIPC=binary, CRASH_TIER="quick", TEST_ONLY=pattern,
               CRASH_JOBS=str(args.crash_jobs), CRASH_MAX_FAILURES=str(args.max_failures))
    for k in ("VERBOSE", "KEEP_TMP", "CRASH_KEEP"):
        env.pop(k, None)
    log = os.path.join(logdir, case + ".log")
    with open(log, "w") as fh:
        p = subprocess.run(["sh", os.path.join(ROOT, test)], env=env, stdout=fh,
                           stderr=subprocess.STDOUT, cwd=ROOT)
    out = open(log).read()
    m = re.search(r"^# counts (\d+) (\d+) (\d+)$", out, re.M)
    if not m:
        return "error", "%s exited %d without its counts (log %s)" % (test, p.returncode, log)
    passed, failed, skipped = map(int, m.groups())
    if skipped or passed + failed != 1:
        skip = re.search(r"^SKIP .*$", out, re.M)
        return "error", "case %s ran %d/%d/%d (passed/failed/skipped)%s" % (
            case, passed, failed, skipped, ": " + skip.group(0) if skip else "")
    if failed == 0 and p.returncode == 0:
        return "pass", ""
    if failed == 0:
        return "error", "%s exited %d although its case passed (log %s)" % (test, p.returncode, log)
    summ = re.findall(r"crash states: \d+ run .*", out)
    why = re.findall(r"FAILED: (.*)", out)
    return "fail", summ[-1] if summ else (why[-1] if why else "failed")


def try_mutant(b, name, f, text, cases, args):
    """(verdict, detail, seconds) for one mutant."""
    t0 = time.time()
    try:
        d, binary = b.mutant(name, f, text)
    except RuntimeError as ex:
        return "error", str(ex), time.time() - t0
    order = list(cases) + [c for c in args.tier if c not in cases]
    for case in order:
        res, detail = run_case(case, binary, d, args)
        if res == "fail":
            if not args.keep:
                shutil.rmtree(os.path.join(d, "src"), ignore_errors=True)
            return "killed", "by %s: %s" % (case, detail), time.time() - t0
        if res == "error":
            return "error", detail, time.time() - t0
    return "survived", "every case passed: %s (logs in %s)" % (", ".join(order), d), time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("MUTATION_JOBS", "2")))
    ap.add_argument("--crash-jobs", type=int, default=1)
    ap.add_argument("--max-failures", type=int, default=3)
    ap.add_argument("--tier", nargs="+", default=["t20-limit", "t25-journal", "t20-used", "t16-crash", "t17-crash", "t18-crash"],
                    help="the crash-tier cases every mutant must fail one of")
    ap.add_argument("--only", nargs="+")
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--skip-baseline", action="store_true", help="for debugging the list only")
    args = ap.parse_args()
    t0 = time.time()
    b = Build(os.environ.get("BUILD", os.path.join(ROOT, "build")))

    os.makedirs(b.root, exist_ok=True)
    try:
        srcdir, base_bin = b.base(max(args.jobs, 1))
    except RuntimeError as ex:
        print("mutation: the unpatched build fails: %s" % ex)
        return 2
    mutants, notes, errors = make_mutants(srcdir, args)
    for c in args.tier:
        if c not in M.CASES:
            errors.append("unknown case %s in --tier" % c)
    if args.only:
        mutants = [m for m in mutants if m[0] in args.only]
        unknown = set(args.only) - {m[0] for m in mutants}
        if unknown:
            errors.append("no such mutant: %s" % ", ".join(sorted(unknown)))
    if errors:
        for e in errors:
            print("mutation: error: %s" % e)
        return 2
    if args.list:
        for name, f, _, cases, breaks in mutants:
            print("%-36s %-9s %s: %s" % (name, f, "/".join(cases), breaks))
        for n in notes:
            print("  " + n)
        return 0
    print("mutation: %d mutants; crash tier: %s (CRASH_TIER=quick)" % (len(mutants), ", ".join(args.tier)),
          flush=True)

    if not args.skip_baseline:
        logdir = os.path.join(b.root, "base")
        with concurrent.futures.ThreadPoolExecutor(max(args.jobs, 1)) as ex:
            res = list(ex.map(lambda c: (c, run_case(c, base_bin, logdir, args)), args.tier))
        bad = [(c, r) for c, r in res if r[0] != "pass"]
        for c, (r, detail) in bad:
            print("mutation: error: the unpatched build does not pass %s: %s %s" % (c, r, detail))
        if bad:
            return 2
        print("baseline: the unpatched build passes %s (%.0fs)" % (", ".join(args.tier), time.time() - t0),
              flush=True)

    counts = {"killed": 0, "survived": 0, "error": 0}
    with concurrent.futures.ThreadPoolExecutor(max(args.jobs, 1)) as ex:
        futs = [(m[0], m[4], ex.submit(try_mutant, b, m[0], m[1], m[2], m[3], args)) for m in mutants]
        for name, breaks, fut in futs:
            verdict, detail, secs = fut.result()
            counts[verdict] += 1
            print("%-8s %-36s %s (%.0fs)" % (verdict, name, detail, secs), flush=True)
            if verdict != "killed":
                print("         what it breaks: %s" % breaks, flush=True)
    for n in notes:
        print("note: " + n)
    print("mutation check: %.0fs" % (time.time() - t0))
    if counts["error"]:
        print("mutants: %d killed, %d survived, %d could not be tested"
              % (counts["killed"], counts["survived"], counts["error"]))
        return 1
    print("mutants: %d killed, %d survived" % (counts["killed"], counts["survived"]))
    return 1 if counts["survived"] else 0


if __name__ == "__main__":
    sys.exit(main())
