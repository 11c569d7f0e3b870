#!/usr/bin/python3
"""
xmit_sink.py: a submission command for XTND XMIT tests.

    xmit_sink.py DIR [ARGS...]

Records its whole argv and standard input as DIR/msg-<n>.json
({"argv": [...], "stdin": "<latin-1 text>", "uid": N, "gid": N,
"groups": [...], "env": {...}, "fds": [...]}, fds being the descriptors
open when it started), written to a temporary name and renamed, then exits with the status written in DIR/exit_code (0 when
the file is absent).  DIR/sleep (seconds) makes it wait first, for
timeout tests.  Standard library only; runs as posternd's mail user.
"""

import json
import os
import sys
import time


def main():
    fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
    out = sys.argv[1]
    data = sys.stdin.buffer.read()
    try:
        with open(os.path.join(out, "sleep")) as f:
            time.sleep(min(float(f.read().strip() or 0), 60))
    except FileNotFoundError:
        pass
    n = 0
    while os.path.exists(os.path.join(out, "msg-%d.json" % n)):
        n += 1
    tmp = os.path.join(out, ".tmp-%d" % os.getpid())
    with open(tmp, "w") as f:
        json.dump({"argv": sys.argv, "stdin": data.decode("latin-1"),
                   "uid": os.getuid(), "gid": os.getgid(),
                   "groups": os.getgroups(), "env": dict(os.environ),
                   "fds": fds}, f)
    os.rename(tmp, os.path.join(out, "msg-%d.json" % n))
    try:
        with open(os.path.join(out, "exit_code")) as f:
            return int(f.read().strip())
    except FileNotFoundError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
