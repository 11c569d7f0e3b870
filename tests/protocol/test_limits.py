"""
Per-session limits: max_pipelined_commands (PIPELINING, RFC 2449 section
6.6, is throttled, never refused) and session_memory_limit (a mailbox too
large for one session is refused at login; the session stays in
AUTHORIZATION).  See postern.conf(5), LIMITS.
"""

import os
import random
import re
import threading
import time

import pytest

from harness import assert_glob, expected_uidl, multiline_body, wire_size

# limits.h: SESSION_MEM_FIXED and SESSION_MEM_PER_MESSAGE.
SESSION_MEM_FIXED = (64 + 256 + 2 * 64 + 128 + 64 + 32 + 128) * 1024
SESSION_MEM_PER_MESSAGE = 256
DEFAULT_SESSION_MEMORY_LIMIT = 1 << 30

THROTTLED = (r"pipelining throttled commands=(\d+) queued=(\d+)"
             r" max_pipelined_commands=%d")
TOO_LARGE = ("-ERR [SYS/PERM] The mailbox is too large for this server"
             " (session_memory_limit); contact the administrator.")
REFUSED = (r"warning: pop3 session=[0-9a-f]{16} login refused user=%s"
           r" reason=session-memory-limit messages=%d estimated_bytes=(\d+)"
           r" session_memory_limit=%d\n")


def add_messages(srv, user, n):
    """Returns the stored messages, each of its own size, in the order
    the store numbers them."""
    msgs = [b"Subject: p%d\n\n%s\n" % (i, b"x" * i) for i in range(1, n + 1)]
    for m in msgs:
        srv.add_message(user, m)
    return msgs


def fill_mailbox(srv, user, n):
    """n small messages written straight into new/ (no fsync, no
    tmp/): quick enough for thousands, while the server is not in the
    mailbox."""
    md = srv.ensure_maildir(user)
    pid = os.getpid()
    for i in range(n):
        name = "%d.M%06dP%dQ%d.limits" % (1700000000 + i, i, pid, i)
        with open(os.path.join(md, "new", name), "wb") as f:
            f.write(b"Subject: %d\n\nbody %d\n" % (i, i))
    srv.chown_mail_root()


def estimate(srv, user):
    """The server's estimate for the mailbox as it is in cur/ (after a
    login moved the mail there): SESSION_MEM_FIXED plus, per message,
    SESSION_MEM_PER_MESSAGE, its UIDL and twice "cur/" + its name."""
    total = SESSION_MEM_FIXED
    for name in os.listdir(os.path.join(srv.maildir(user), "cur")):
        base = name.split(":2,", 1)[0]
        total += (SESSION_MEM_PER_MESSAGE + len(expected_uidl(base)) +
                  2 * len("cur/" + name))
    return total


def throttle_lines(srv, limit, start=0):
    return re.findall(THROTTLED % limit, srv.log_text()[start:])


# ---------------------------------------------------- max_pipelined_commands

@pytest.mark.parametrize("limit", [1, 5])
def test_pipelined_500_throttled_in_order(make_server, limit):
    """500 commands in one send to a client that does not read for a
    second: the server takes at most `limit` at a time, queues at most
    `limit` replies, logs that once at debug level, and every reply
    arrives, correct and in order, with no -ERR."""
    s = make_server(config={"max_pipelined_commands": limit,
                            "log_debug": True})
    msgs = add_messages(s, "alice", 10)
    with s.login("alice") as c:
        sizes = c.list()
        assert sorted(sizes.values()) == sorted(wire_size(m) for m in msgs)
        total = sum(sizes.values())
        cmds, expect = [], []
        for i in range(500):
            k = i % len(msgs) + 1
            if i % 3 == 0:
                cmds.append("LIST %d" % k)
                expect.append("+OK %d %d" % (k, sizes[k]))
            elif i % 3 == 1:
                cmds.append("NOOP")
                expect.append("+OK")
            else:
                cmds.append("STAT")
                expect.append("+OK %d %d" % (len(msgs), total))
        start = len(s.log_text())
        c.send("".join(x + "\r\n" for x in cmds))
        time.sleep(1.0)
        m = s.wait_log(THROTTLED % limit, start=start)
        assert int(m.group(1)) == limit
        longest = max(len(e) + 2 for e in expect)
        assert 0 < int(m.group(2)) <= limit * longest, m.group(0)
        for k, want in enumerate(expect):
            st = c.status(timeout=20)
            assert st == want, "reply %d to %r: %r" % (k, cmds[k], st)
        assert c.command("NOOP") == "+OK"
        assert c.stat() == (len(msgs), total)
        assert len(throttle_lines(s, limit)) == 1, "logged once a session"


def test_pipelined_within_limit_not_throttled(make_server):
    s = make_server(config={"max_pipelined_commands": 5, "log_debug": True})
    add_messages(s, "alice", 3)
    with s.login("alice") as c:
        c.send("NOOP\r\n" * 5)
        for _ in range(5):
            assert c.status() == "+OK"
        assert c.command("NOOP") == "+OK"
        time.sleep(0.3)
        assert throttle_lines(s, 5) == []
        # One more than the limit in one send: held back, not refused.
        c.send("NOOP\r\n" * 50)
        for _ in range(50):
            assert c.status() == "+OK"
        s.wait_log(THROTTLED % 5)
        assert c.command("STAT").startswith("+OK 3 ")


@pytest.mark.parametrize("tls", [False, True])
def test_pipelined_mix_with_long_replies(make_server, tls):
    """RETR, TOP, LIST and UIDL (long replies that resume as output
    drains) mixed with one-line commands, limit 2, over plain TCP (RETR
    by sendfile) and TLS."""
    s = make_server(config={"max_pipelined_commands": 2, "log_debug": True},
                    tls=tls)
    # Stored with LF and a line that needs byte-stuffing (the encoder);
    # in wire form (CRLF, no line starting with '.'), which RETR sends
    # by sendfile; and in wire form with lines starting with '.', sent
    # by sendfile in runs with a '.' put between them.
    msgs = []
    for i in range(1, 7):
        body = b"".join(b"line %d of message %d\n" % (k, i)
                        for k in range(i * 1000))
        if i % 3 == 1:
            msgs.append(b"Subject: m%d\n\n.dot line\n" % i + body)
        elif i % 3 == 2:
            msgs.append((b"Subject: m%d\n\n" % i + body).replace(
                b"\n", b"\r\n"))
        else:
            msgs.append((b"Subject: m%d\n\n.dot\n" % i + body +
                         b"..\n.\n").replace(b"\n", b"\r\n"))
    for m in msgs:
        s.add_message("alice", m)
    rng = random.Random(2449)
    c = s.login_tls("alice") if tls else s.login("alice")
    with c:
        sizes = c.list()
        by_size = {wire_size(m): m for m in msgs}
        cmds, expect = [], []
        for _ in range(200):
            kind = rng.choice(["NOOP", "LIST", "UIDL", "RETR", "TOP",
                               "LISTN"])
            i = rng.randint(1, len(msgs))
            if kind == "NOOP":
                cmds.append("NOOP")
                expect.append(("eq", "+OK", None))
            elif kind == "LISTN":
                cmds.append("LIST %d" % i)
                expect.append(("eq", "+OK %d %d" % (i, sizes[i]), None))
            elif kind == "LIST":
                cmds.append("LIST")
                body = "".join("%d %d\r\n" % (n, sizes[n])
                               for n in sorted(sizes)) + ".\r\n"
                expect.append(("multi", None, body.encode()))
            elif kind == "UIDL":
                cmds.append("UIDL")
                expect.append(("multi", None, None))
            elif kind == "RETR":
                cmds.append("RETR %d" % i)
                expect.append(("multi", None,
                               multiline_body(by_size[sizes[i]])))
            else:
                cmds.append("TOP %d 3" % i)
                expect.append(("multi", None,
                               multiline_body(by_size[sizes[i]], top=3)))
        data = "".join(x + "\r\n" for x in cmds).encode()
        # An ssl socket must not be written by one thread while another
        # reads it; the commands (a few KB) fit in the socket buffers
        # anyway, so the TLS case sends them all before reading.
        sender = threading.Thread(target=c.send, args=(data,))
        if tls:
            c.send(data)
        else:
            sender.start()
        try:
            for k, (how, want, body) in enumerate(expect):
                st = c.status(timeout=30)
                where = "reply %d to %r" % (k, cmds[k])
                if how == "eq":
                    assert st == want, (where, st)
                    continue
                assert st.startswith("+OK"), (where, st)
                raw = c.read_multiline(timeout=30)
                if body is not None:
                    assert raw == body, where
        finally:
            if not tls:
                sender.join(30)
        assert_glob(c.command("NOOP"), "+OK*")
        assert len(throttle_lines(s, 2)) <= 1


# ------------------------------------------------------ session_memory_limit
# The first login on a mailbox of thousands of files builds its index,
# which takes seconds on a loaded machine (or under ASan): the timeouts
# here are generous on purpose.

def test_memory_limit_refuses_large_mailbox(make_server):
    """A 3000-message mailbox under a 1 MiB ceiling: the exact reply, a
    warning with the numbers, no message touched, the session lock
    released, and the session still in AUTHORIZATION: once the mailbox
    is smaller, the same session logs in."""
    s = make_server(config={"session_memory_limit": "1M",
                            "lock_session": True})
    fill_mailbox(s, "alice", 3000)
    with s.connect(timeout=120) as c:
        assert c.try_login("alice", s.users["alice"]) == TOO_LARGE
        m = s.wait_log(REFUSED % ("alice", 3000, 1 << 20), timeout=60)
        assert int(m.group(1)) == estimate(s, "alice")
        assert int(m.group(1)) > 1 << 20
        assert c.command("STAT") == "-ERR Command not valid in this state."
        assert "USER" in c.capa()
        # The lock went with the mailbox: another session's login is
        # refused for the size again, not as [IN-USE].
        with s.connect(timeout=120) as c2:
            assert c2.try_login("alice", s.users["alice"]) == TOO_LARGE
        assert len(s.message_files("alice")) == 3000
        assert "login user=alice" not in s.log_text()

        cur = os.path.join(s.maildir("alice"), "cur")
        for name in sorted(os.listdir(cur))[200:]:
            os.unlink(os.path.join(cur, name))
        st = c.try_login("alice", s.users["alice"])
        assert st.startswith("+OK Logged in, 200 messages"), st
        assert c.stat()[0] == 200
        assert c.quit().startswith("+OK")


def test_memory_limit_boundary(make_server):
    """The limit is the estimate, to the byte: a ceiling equal to it lets
    the login in, one byte less refuses it."""
    s = make_server(config={"session_memory_limit": "1M"})
    fill_mailbox(s, "alice", 3000)
    with s.connect(timeout=120) as c:
        assert c.try_login("alice", s.users["alice"]) == TOO_LARGE
    est = int(s.wait_log(REFUSED % ("alice", 3000, 1 << 20),
                         timeout=60).group(1))
    assert est == estimate(s, "alice")

    s.set_config(session_memory_limit=str(est))
    s.restart()
    with s.login("alice", timeout=120) as c:
        assert c.stat()[0] == 3000
        assert c.quit().startswith("+OK")
    s.wait_log(r"login user=alice method=USER messages=3000"
               r" estimated_bytes=%d\n" % est, timeout=60)

    s.set_config(session_memory_limit=str(est - 1))
    s.restart()
    with s.connect(timeout=120) as c:
        assert c.try_login("alice", s.users["alice"]) == TOO_LARGE
    s.wait_log(REFUSED % ("alice", 3000, est - 1), timeout=60)


def test_memory_limit_default_allows_normal_mailbox(make_server):
    """With the default ceiling a mailbox of thousands of messages logs
    in, and by the same estimate one of 1,000,000 messages would too,
    even with names of the longest kind (255 octets in cur/)."""
    s = make_server()
    fill_mailbox(s, "alice", 5000)
    with s.login("alice", timeout=120) as c:
        n, _ = c.stat()
        assert n == 5000
        uidl = c.uidl()
        assert len(uidl) == 5000
        c.quit()
    est = int(s.wait_log(r"login user=alice method=USER messages=5000"
                         r" estimated_bytes=(\d+)\n", timeout=60).group(1))
    assert est == estimate(s, "alice")
    per_msg = (est - SESSION_MEM_FIXED) / 5000
    assert SESSION_MEM_FIXED + 1000000 * per_msg < \
        DEFAULT_SESSION_MEMORY_LIMIT
    longest = SESSION_MEM_PER_MESSAGE + 70 + 2 * len("cur/" + "x" * 255)
    assert SESSION_MEM_FIXED + 1000000 * longest < \
        DEFAULT_SESSION_MEMORY_LIMIT


def test_memory_limit_small_mailbox_fits_smallest_limit(make_server):
    """The smallest ceiling still leaves room for the I/O buffers and a
    few hundred messages."""
    s = make_server(config={"session_memory_limit": "1M"})
    fill_mailbox(s, "alice", 300)
    with s.login("alice", timeout=120) as c:
        assert c.stat()[0] == 300
        st, raw = c.multi("RETR 300")
        assert st.startswith("+OK")
        assert c.quit().startswith("+OK")
