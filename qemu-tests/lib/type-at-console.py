#!/usr/bin/python3
"""Type answers at a QEMU serial console served on a unix socket.

Usage: type-at-console.py SOCK PROMPT ANSWER [PROMPT ANSWER ...]

Connects to SOCK (run-qemu --serial-sock; waits up to 60 s for it), reads
what the guest prints and, each time the next PROMPT has appeared, types
ANSWER and Enter. Exits 0 once every answer is typed (and has had 10 s to
be read), 1 if the console closes or TYPE_AT_CONSOLE_TIMEOUT seconds
(default 300) pass first. Like a person at the console, it never types
before the prompt is there.

An ANSWER of the form @last:REGEX types the last match of REGEX in what the
guest printed since the previous answer: a secret the guest showed once
(luksipc finalize's recovery key), typed back as the admin would.
"""
import os
import re
import socket
import sys
import time


def main():
    sock_path = sys.argv[1]
    pairs = list(zip(sys.argv[2::2], sys.argv[3::2]))
    deadline = time.time() + 60
    while not os.path.exists(sock_path):
        if time.time() > deadline:
            print("type-at-console: no socket %s" % sock_path, file=sys.stderr)
            return 1
        time.sleep(0.1)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    while True:
        try:
            s.connect(sock_path)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    s.settimeout(1.0)
    seen = b""
    deadline = time.time() + int(os.environ.get("TYPE_AT_CONSOLE_TIMEOUT", "300"))
    while pairs:
        if time.time() > deadline:
            print("type-at-console: no prompt %r" % pairs[0][0], file=sys.stderr)
            return 1
        try:
            data = s.recv(4096)
        except socket.timeout:
            continue
        if not data:
            print("type-at-console: console closed before %r" % pairs[0][0], file=sys.stderr)
            return 1
        seen += data
        prompt, answer = pairs[0]
        if prompt.encode() in seen:
            if answer.startswith("@last:"):
                # whole matches: findall would return a group of the regex
                found = [m.group(0) for m in re.finditer(answer[6:].encode(), seen)]
                if not found:
                    print("type-at-console: nothing matches %r before %r" % (answer[6:], prompt), file=sys.stderr)
                    return 1
                typed = found[-1]
            else:
                typed = answer.encode()
            time.sleep(0.5)  # the guest turns echo off after printing the prompt
            s.sendall(typed + b"\r")
            seen = b""
            pairs.pop(0)
    # Stay connected a while: QEMU feeds the guest's UART from the socket a
    # FIFO-full at a time, and drops what is unread when the client leaves.
    end = time.time() + 10
    while time.time() < end:
        try:
            if not s.recv(4096):
                break
        except socket.timeout:
            pass
    s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
