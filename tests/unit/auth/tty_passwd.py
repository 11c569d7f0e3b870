"""Runs `postern ARGS...` on a pseudo-terminal and answers its password
prompts with the given answers.

usage: tty_passwd.py ANSWER1 ANSWER2 -- POSTERN ARGS...

Prints the exit status on the first line, then everything the program
wrote to the terminal.  Exits 3 if a prompt does not come.
"""
import os
import pty
import select
import sys
import time


def read_until(fd, want, out, deadline):
    while want not in out[0]:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            return False
        try:
            data = os.read(fd, 1024)
        except OSError:
            return False
        if not data:
            return False
        out[0] += data
    return True


def main():
    sep = sys.argv.index("--")
    answers = sys.argv[1:sep]
    cmd = sys.argv[sep + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(cmd[0], cmd)
    out = [b""]
    deadline = time.monotonic() + 20
    prompts = [b"Password: ", b"Retype password: "]
    for prompt, answer in zip(prompts, answers):
        if not read_until(fd, prompt, out, deadline):
            break
        # The program flushes typed-ahead input when it turns echo off:
        # answer only once the prompt is there.
        os.write(fd, answer.encode() + b"\n")
        out[0] = out[0].replace(prompt, b"<" + prompt.strip() + b">", 1)
    while read_until(fd, b"\x00never", out, deadline):
        pass
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status))
    sys.stdout.write(out[0].decode(errors="replace"))


main()
