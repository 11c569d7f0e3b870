"""
RETR read-ahead: once a RETR has gone out and a client that waits for
each reply asks nothing more, a pop3 worker reads and encodes the next
message (16 KiB to 128 KiB) so that its RETR is answered at once.
Whatever the client asks next, it must get exactly what RETR sends
without the read-ahead.
"""

import os
import time

import pytest

from harness import assert_glob, wire_form, wire_size

KIB = 1024


def body(i, size):
    """An LF message of about size octets, with lines that start with
    '.' (stuffed on the wire) and a lone '.' line."""
    head = b"Subject: m%d\nMessage-ID: <%d@prefetch>\n\n" % (i, i)
    lines, n, k = [head], len(head), 0
    while n < size:
        line = (b"." if k % 7 == 0 else b"") + \
            b"line %d of message %d " % (k, i) + b"x" * (k % 60) + b"\n"
        if k % 97 == 50:
            line = b".\n"
        lines.append(line)
        n += len(line)
        k += 1
    return b"".join(lines)


# Sizes around both bounds of the read-ahead, and a message stored in
# wire form (CRLF), which RETR otherwise sends by sendfile.
SIZES = [10 * KIB, 20 * KIB, 100 * KIB, 127 * KIB, 140 * KIB, 64 * KIB,
         17 * KIB, 90 * KIB]


@pytest.fixture
def srv(make_server):
    s = make_server(tls=True)
    s.msgs = [body(i, n) for i, n in enumerate(SIZES, 1)]
    s.msgs[5] = s.msgs[5].replace(b"\n", b"\r\n")
    s.names = [s.add_message("alice", m) for m in s.msgs]
    return s


def session(srv, tls):
    if not tls:
        return srv.login("alice")
    c = srv.connect_tls()
    c.login("alice", srv.users["alice"])
    return c


def numbered(c, srv):
    """Message number -> stored message, by UIDL."""
    by_uidl = dict(zip(srv.names, srv.msgs))
    return {n: by_uidl[u] for n, u in c.uidl().items()}


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_sequential_retr_byte_exact(srv, tls):
    with session(srv, tls) as c:
        msgs = numbered(c, srv)
        sizes = c.list()
        for n in sorted(msgs):
            assert sizes[n] == wire_size(msgs[n])
            st, raw = c.multi("RETR %d" % n)
            assert st == "+OK %d octets" % wire_size(msgs[n])
            assert raw == wire_form(msgs[n], stuff=True) + b".\r\n", n
            time.sleep(0.05)        # the client "reads" the message
        assert_glob(c.quit(), "+OK*")


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_other_orders(srv, tls):
    """The message read ahead is not the one asked for, is asked for by
    TOP, or was deleted meanwhile: every reply is still the message the
    client names, and DELE and RSET keep their meaning."""
    with session(srv, tls) as c:
        msgs = numbered(c, srv)
        for cmd, n in [("RETR", 2), ("RETR", 4), ("RETR", 3), ("TOP", 4),
                       ("RETR", 4), ("RETR", 7), ("DELE", 8), ("RETR", 8),
                       ("RSET", 0), ("RETR", 8), ("RETR", 1)]:
            time.sleep(0.05)
            if cmd == "TOP":
                st, raw = c.multi("TOP %d 3" % n)
                assert st.startswith("+OK")
                assert raw == wire_form(msgs[n], stuff=True, top=3) + \
                    b".\r\n"
            elif cmd == "DELE":
                assert_glob(c.command("DELE %d" % n), "+OK*")
            elif cmd == "RSET":
                assert_glob(c.command("RSET"), "+OK*")
            elif cmd == "RETR" and n == 8 and c.stat()[0] == 7:
                assert_glob(c.command("RETR 8"), "-ERR*")
            else:
                st, raw = c.multi("RETR %d" % n)
                assert st == "+OK %d octets" % wire_size(msgs[n]), (cmd, n)
                assert raw == wire_form(msgs[n], stuff=True) + \
                    b".\r\n", (cmd, n)
        assert_glob(c.quit(), "+OK*")
    with srv.login("alice") as c:
        assert c.stat()[0] == len(SIZES)    # RSET undid the DELE


def test_read_ahead_is_what_was_read(srv):
    """After RETR 2 the worker reads message 3 (100 KiB) while the client
    is busy: removed from the Maildir before its RETR, it is still sent
    whole, as it was when read; so is message 6 (64 KiB, in wire form).
    Message 5 (140 KiB) is too big to be read ahead: once its file is
    gone, its RETR says so."""
    with srv.login("alice") as c:
        files = srv.message_files("alice")      # in cur/ now
        msgs = numbered(c, srv)
        assert [msgs[n] for n in (3, 5, 6)] == \
            [srv.msgs[2], srv.msgs[4], srv.msgs[5]]
        assert c.retr(2) == wire_form(msgs[2])
        time.sleep(0.3)
        os.unlink(files[srv.names[2]])
        assert c.retr(3) == wire_form(msgs[3])
        assert c.retr(4) == wire_form(msgs[4])
        time.sleep(0.3)
        os.unlink(files[srv.names[4]])
        assert_glob(c.command("RETR 5"),
                    "-ERR [SYS/TEMP] Message was removed.")
        time.sleep(0.3)
        os.unlink(files[srv.names[5]])
        assert c.retr(6) == wire_form(msgs[6])
        assert_glob(c.quit(), "+OK*")


def test_no_read_ahead_for_a_pipelining_client(srv):
    """A client that sends commands without waiting keeps the server
    busy by itself: nothing is read ahead for it."""
    with srv.login("alice") as c:
        files = srv.message_files("alice")
        msgs = numbered(c, srv)
        c.send("NOOP\r\nRETR 2\r\n")
        assert_glob(c.status(), "+OK*")
        assert_glob(c.status(), "+OK*")
        assert c.read_multiline() == wire_form(msgs[2], stuff=True) + \
            b".\r\n"
        time.sleep(0.3)
        os.unlink(files[srv.names[2]])
        assert_glob(c.command("RETR 3"),
                    "-ERR [SYS/TEMP] Message was removed.")
        assert_glob(c.quit(), "+OK*")


def test_mbox_read_ahead(make_server):
    """mboxrd messages go through the encoder (unquoting '>From ')."""
    s = make_server(config={"mailbox_path": "mbox:%u"}, start=False)
    s.chown_mail_root()
    s.start()
    msgs = [body(i, 30 * KIB) + b"From the start of a line\n>From x\n"
            for i in range(1, 5)]
    path = os.path.join(s.mail_root, "alice")
    with open(path, "wb") as f:
        for m in msgs:
            quoted = b"\n".join(b">" + ln if ln.lstrip(b">").startswith(
                b"From ") else ln for ln in m.split(b"\n"))
            f.write(b"From a@example.org Sat Nov 21 10:00:00 2026\n" +
                    quoted + b"\n")
    s._fix_owner(path)
    with s.login("alice") as c:
        for n, m in enumerate(msgs, 1):
            st, raw = c.multi("RETR %d" % n)
            assert st == "+OK %d octets" % wire_size(m)
            assert raw == wire_form(m, stuff=True) + b".\r\n", n
            time.sleep(0.05)
        assert_glob(c.quit(), "+OK*")
