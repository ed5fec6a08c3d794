#!/usr/bin/python3
"""Run a command on a pseudo-terminal and answer its prompts, like expect.

Usage: ttyrun.py PROMPT ANSWER [PROMPT ANSWER ...] -- CMD [ARG ...]
Each ANSWER (a newline is appended) is typed once PROMPT has appeared in the
output since the previous answer. Prints the output and exits with the
command's exit status; 124 if it does not finish within 60 s or a prompt
never comes.
"""
import os
import pty
import select
import sys
import time


def main():
    sep = sys.argv.index("--")
    pairs = sys.argv[1:sep]
    cmd = sys.argv[sep + 1:]
    script = list(zip(pairs[0::2], pairs[1::2]))
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    seen = b""
    deadline = time.time() + 60
    while True:
        if time.time() > deadline:
            os.kill(pid, 9)
            sys.stdout.write(seen.decode(errors="replace"))
            print("\nttyrun: timed out waiting for %r" % (script[0][0] if script else "exit"))
            sys.exit(124)
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                break
            seen += data
        if script and script[0][0].encode() in seen:
            time.sleep(0.2)  # let the program switch the terminal to no-echo
            os.write(fd, script[0][1].encode() + b"\n")
            sys.stdout.write(seen.decode(errors="replace"))
            seen = b""
            script.pop(0)
    sys.stdout.write(seen.decode(errors="replace"))
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
