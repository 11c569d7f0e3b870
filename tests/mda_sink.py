#!/usr/bin/python3
"""An MDA for the tests of `postern fetch` (mda = ... in fetch.conf):
reads the whole message from standard input and writes it, byte for
byte, to a new file in the directory given as the first argument.

A message that holds "X-Mda-Exit: N" is not stored: the script exits N
instead.  One that holds "X-Mda-Stop" is not read to its end: the script
exits 0 at once (a broken MDA).
"""

import os
import re
import sys
import time


def main():
    out = sys.argv[1]
    if b"X-Mda-Stop" in sys.stdin.buffer.peek(65536)[:65536]:
        return 0
    data = sys.stdin.buffer.read()
    m = re.search(rb"X-Mda-Exit: (\d+)", data)
    if m:
        return int(m.group(1))
    name = "%d.%d" % (time.time_ns(), os.getpid())
    tmp = os.path.join(out, "." + name)
    with open(tmp, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(out, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
