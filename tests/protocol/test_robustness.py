"""
Input handling and load: PIPELINING (RFC 2449 section 6.6), line length
limits, NUL octets, bare LF, the idle timer, many concurrent sessions and
the per-IP connection limit.
"""

import os
import random
import re
import socket
import threading
import time

import pytest

from harness import (Closed, Pop3Conn, assert_glob, multiline_body,
                     wire_size)


def msg(i, size=0):
    body = b"".join(b"line %d of message %d\n" % (k, i)
                    for k in range(size))
    return b"Subject: m%d\n\n.dot line\n" % i + body


@pytest.fixture(scope="module")
def srv(make_module_server):
    s = make_module_server()
    s.msgs = [msg(i, i * 3) for i in range(1, 6)]
    s.names = [s.add_message("alice", m) for m in s.msgs]
    return s


# ----------------------------------------------------------- PIPELINING

def test_pipelining_1000_commands(srv):
    rng = random.Random(2449)
    with srv.login("alice") as c:
        num = c.uidl_map()
        by_num = {num[n]: m for n, m in zip(srv.names, srv.msgs)}
        uidl_of = {v: k for k, v in num.items()}
        total = sum(wire_size(m) for m in srv.msgs)
        cmds, expect = [], []
        for k in range(1000):
            kind = rng.choice(["NOOP", "STAT", "LIST", "UIDL", "RETR"])
            i = rng.randint(1, len(srv.msgs))
            if kind == "NOOP":
                cmds.append("NOOP")
                expect.append(("glob", "+OK*"))
            elif kind == "STAT":
                cmds.append("STAT")
                expect.append(("re", r"\+OK %d %d(?: .*)?\Z"
                               % (len(srv.msgs), total)))
            elif kind == "LIST":
                cmds.append("LIST %d" % i)
                expect.append(("eq", "+OK %d %d" % (i, wire_size(by_num[i]))))
            elif kind == "UIDL":
                cmds.append("UIDL %d" % i)
                expect.append(("eq", "+OK %d %s" % (i, uidl_of[i])))
            else:
                cmds.append("RETR %d" % i)
                expect.append(("multi", multiline_body(by_num[i])))
        data = "".join(x + "\r\n" for x in cmds).encode()
        sender = threading.Thread(target=c.send, args=(data,))
        sender.start()
        try:
            for k, (how, want) in enumerate(expect):
                st = c.status(timeout=20)
                where = "reply %d to %r" % (k, cmds[k])
                if how == "glob":
                    assert_glob(st, want)
                elif how == "re":
                    assert re.match(want, st), (where, st)
                elif how == "eq":
                    assert st == want, (where, st)
                else:
                    assert st.startswith("+OK"), (where, st)
                    assert c.read_multiline(timeout=20) == want, where
        finally:
            sender.join(20)
        assert_glob(c.command("NOOP"), "+OK*")
        assert c.is_closed(0.2) is False


def test_pipelined_login(srv):
    with srv.connect() as c:
        c.send("USER alice\r\nPASS %s\r\nSTAT\r\nQUIT\r\n"
               % srv.users["alice"])
        assert_glob(c.status(), "+OK*")
        assert_glob(c.status(), "+OK*")
        assert re.match(r"\+OK %d \d+" % len(srv.msgs), c.status())
        assert_glob(c.status(), "+OK*")
        c.wait_closed()


def test_pipelined_commands_after_quit_ignored(srv):
    with srv.login("alice") as c:
        c.send("QUIT\r\nDELE 1\r\nNOOP\r\n")
        assert_glob(c.status(), "+OK*")
        rest = c.wait_closed()
        assert rest == b"", rest
    with srv.login("alice") as c:
        assert c.stat()[0] == len(srv.msgs)


# ---------------------------------------------------------- long lines

@pytest.mark.parametrize("state", ["auth", "trans"])
def test_line_1000_octets(srv, state):
    c = srv.connect() if state == "auth" else srv.login("alice")
    with c:
        c.send(b"NOOP " + b"x" * 995 + b"\r\n")
        assert_glob(c.status(), "-ERR*")
        c.sendline("CAPA")
        assert_glob(c.status(), "+OK*")
        c.read_multiline()


def test_line_1000_octets_without_lf(srv):
    with srv.login("alice") as c:
        c.send(b"Y" * 1000)
        time.sleep(0.3)
        c.send(b"\r\nNOOP\r\n")
        assert_glob(c.status(), "-ERR*")
        assert_glob(c.status(), "+OK*")
        assert c.stat()[0] == len(srv.msgs)


@pytest.mark.parametrize("lf", [True, False])
def test_line_100000_octets(srv, lf):
    """A 100000-octet line: one -ERR; then the session either continues
    (the rest of the line discarded) or is closed.  lf=False sends the
    line end only after a pause."""
    with srv.login("alice") as c:
        data = b"LIST " + b"9" * 100000
        try:
            for k in range(0, len(data), 8192):
                c.send(data[k:k + 8192])
            if not lf:
                time.sleep(0.5)
            c.send(b"\r\nNOOP\r\n")
        except OSError:
            pass        # closed while we were still sending: allowed
        assert_glob(c.status(timeout=10), "-ERR*")
        try:
            nxt = c.status(timeout=10)
        except Closed:
            pass
        else:
            assert_glob(nxt, "+OK*")
    with srv.login("alice") as c:
        assert c.stat()[0] == len(srv.msgs)


def test_unterminated_long_input_answered(srv):
    """Input over max_line_length that never ends gets -ERR (or a close)
    without waiting for a line end (src/lib/linebuf.h: reported as soon
    as the limit is exceeded), so it cannot grow a buffer."""
    with srv.login("alice") as c:
        try:
            c.send(b"Z" * 20000)
        except OSError:
            return
        try:
            st = c.status(timeout=5)
        except Closed:
            return
        assert_glob(st, "-ERR*")


def test_max_line_length_configured(make_server):
    s = make_server(config={"max_line_length": 300})
    with s.connect() as c:
        c.send(b"USER " + b"a" * 250 + b"\r\n")
        assert_glob(c.status(), "+OK*")
        c.send(b"USER " + b"a" * 400 + b"\r\n")
        assert_glob(c.status(), "-ERR*")
        assert c.capa()


@pytest.mark.parametrize("line", [b"NO\x00OP", b"NOOP\x00", b"\x00",
                                  b"LIST \x001", b"USER al\x00ice"])
def test_nul_in_command(srv, line):
    with srv.login("alice") as c:
        c.send(line + b"\r\n")
        assert_glob(c.status(), "-ERR*")
        assert_glob(c.command("NOOP"), "+OK*")


def test_nul_in_password(srv):
    with srv.connect() as c:
        c.sendline("USER alice")
        assert_glob(c.status(), "+OK*")
        c.send(b"PASS " + srv.users["alice"].encode() + b"\x00\r\n")
        assert_glob(c.status(), "-ERR*")


def test_bare_lf_line_end(srv):
    with srv.connect() as c:
        c.send(b"USER alice\n")
        assert_glob(c.status(), "+OK*")
        c.send(b"PASS " + srv.users["alice"].encode() + b"\n")
        assert_glob(c.status(), "+OK*")
        c.send(b"NOOP\n")
        assert_glob(c.status(), "+OK*")
        c.send(b"STAT\nLIST 1\n")
        assert re.match(r"\+OK %d \d+" % len(srv.msgs), c.status())
        assert re.match(r"\+OK 1 \d+\Z", c.status())
        c.send(b"QUIT\n")
        assert_glob(c.status(), "+OK*")


def test_bare_cr_is_not_a_line_end(srv):
    with srv.login("alice") as c:
        c.send(b"NOOP\rNOOP\r\n")
        assert_glob(c.status(), "-ERR*")
        assert_glob(c.command("NOOP"), "+OK*")


def test_command_split_across_writes(srv):
    with srv.login("alice") as c:
        for ch in b"STAT\r\n":
            c.send(bytes([ch]))
            time.sleep(0.01)
        assert re.match(r"\+OK %d \d+" % len(srv.msgs), c.status())


def test_client_closes_mid_retr(srv):
    for _ in range(3):
        c = srv.login("alice")
        c.send(b"RETR 5\r\n" * 50)
        c.readline()
        c.close()
    with srv.login("alice") as c:
        assert c.stat()[0] == len(srv.msgs)


# ---------------------------------------------------------- idle timer

def test_idle_timeout(make_server):
    s = make_server(config={"idle_timeout": "2s"})
    s.add_message("alice", msg(1))
    s.add_message("alice", msg(2))
    idle_auth = s.connect()
    c = s.login("alice")
    assert_glob(c.command("DELE 1"), "+OK*")
    t0 = time.monotonic()
    rest = c.wait_closed(8)
    assert time.monotonic() - t0 >= 1.5
    assert rest == b"" or re.match(rb"-ERR[^\r\n]*\r\n\Z", rest), rest
    rest = idle_auth.wait_closed(8)
    assert rest == b"" or re.match(rb"-ERR[^\r\n]*\r\n\Z", rest), rest
    c.close()
    idle_auth.close()
    assert len(s.message_files("alice")) == 2
    with s.login("alice") as c2:
        assert c2.stat()[0] == 2


def test_activity_resets_idle_timer(make_server):
    s = make_server(config={"idle_timeout": "2s"})
    with s.login("alice") as c:
        for _ in range(4):
            time.sleep(1.0)
            assert_glob(c.command("NOOP"), "+OK*")


# --------------------------------------------------------- concurrency

def test_200_concurrent_sessions(make_server):
    s = make_server(config={"max_connections_per_ip": 1000}, users={})
    users = ["user%02d" % i for i in range(20)]
    expected = {}
    for u in users:
        s.add_user(u, "pw-" + u)
        m = b"Subject: for " + u.encode() + b"\n\n" + (u.encode() + b"\n") * 50
        s.add_message(u, m)
        s.add_message(u, b"Subject: second\n\nx\n")
        expected[u] = m
    n = 200
    barrier = threading.Barrier(n, timeout=60)
    errors = []

    def session(k):
        u = users[k % len(users)]
        try:
            with Pop3Conn(s.host, s.port, timeout=60) as c:
                assert_glob(c.greeting, "+OK*")
                barrier.wait()
                c.login(u, "pw-" + u)
                cnt, octets = c.stat()
                assert cnt == 2, (u, cnt)
                num = c.uidl_map()
                sizes = c.list()
                i = [i for i in sizes if sizes[i] == wire_size(expected[u])]
                assert i, (u, sizes)
                assert c.retr(i[0]) == expected[u].replace(b"\n", b"\r\n")
                assert len(num) == 2
                assert_glob(c.quit(), "+OK*")
        except BaseException as e:
            errors.append("%s (session %d): %r" % (u, k, e))
            barrier.abort()

    threads = [threading.Thread(target=session, args=(k,)) for k in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "sessions hung"
    assert not errors, "%d sessions failed, e.g. %s" % (len(errors),
                                                       errors[:5])
    assert time.monotonic() - t0 < 90


# --------------------------------------------------- per-IP connection cap

def test_max_connections_per_ip(make_server):
    s = make_server(config={"max_connections_per_ip": 3})
    s.add_message("alice", msg(1))
    conns = []
    deadline = time.monotonic() + 5
    # the readiness probe may still be counted for a moment
    while len(conns) < 3:
        c = s.connect(greeting=False)
        try:
            st = c.status(timeout=5)
        except AssertionError:
            st = None
        if st and st.startswith("+OK"):
            conns.append(c)
            continue
        c.close()
        assert time.monotonic() < deadline, "could not open 3 sessions"
        time.sleep(0.2)
    conns[0].login("alice", s.users["alice"])
    try:
        fourth = s.connect(greeting=False)
        try:
            data = fourth.wait_closed(5)
            assert data == b"" or re.match(rb"-ERR[^\r\n]*\r\n\Z", data), \
                data
        finally:
            fourth.close()
    except (ConnectionRefusedError, ConnectionResetError):
        pass
    # the others keep working
    assert conns[0].stat()[0] == 1
    for c in conns[1:]:
        assert c.capa()
    # another address is not limited by 127.0.0.1's connections
    with s.connect(source="127.0.0.2") as other:
        assert_glob(other.greeting, "+OK*")
    # after one closes, a new one is accepted
    conns.pop().quit()
    deadline = time.monotonic() + 5
    while True:
        c = s.connect(greeting=False)
        try:
            st = c.status(timeout=5)
        except AssertionError:
            st = ""
        c.close()
        if st.startswith("+OK") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert_glob(st, "+OK*")
    for c in conns:
        c.close()


def test_max_connections_total(make_server):
    s = make_server(config={"max_connections": 3})
    conns = []
    deadline = time.monotonic() + 5
    while len(conns) < 3:
        srcs = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        c = s.connect(source=srcs[len(conns)], greeting=False)
        try:
            st = c.status(timeout=5)
        except AssertionError:
            st = ""
        if st.startswith("+OK"):
            conns.append(c)
            continue
        c.close()
        assert time.monotonic() < deadline, "could not open 3 sessions"
        time.sleep(0.2)
    try:
        extra = s.connect(source="127.0.0.5", greeting=False)
        try:
            data = extra.wait_closed(5)
            assert data == b"" or re.match(rb"-ERR[^\r\n]*\r\n\Z", data), \
                data
        finally:
            extra.close()
    except (ConnectionRefusedError, ConnectionResetError):
        pass
    for c in conns:
        assert c.capa()
        c.close()


# ------------------------------------------- one worker, many sessions

# Stored with LF (the encoder streams it) and in wire form with lines
# that start with '.' (sendfile in runs, straight to the socket until it
# is full, then queued).
SLOW_BODIES = {
    "lf": (b"x" * 99 + b"\n") * 80000,
    "crlf-dots": b"".join(b"x" * 98 + b"\r\n" if i % 9000 else
                          b"." + b"y" * 97 + b"\r\n" for i in range(80000)),
}


@pytest.mark.parametrize("form", sorted(SLOW_BODIES))
def test_slow_reader_does_not_block_others(make_server, form):
    """A client that does not read its 8 MB RETR must not stall the other
    sessions of the same worker (one event loop per worker), and gets
    all of it, byte for byte, once it reads."""
    s = make_server(config={"workers": 1})
    body = SLOW_BODIES[form]
    s.add_message("alice", body)
    s.add_message("bob", msg(1))
    slow = s.login("alice")
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendline("RETR 1")
    time.sleep(0.5)
    t0 = time.monotonic()
    with s.login("bob", timeout=5) as c:
        assert c.retr(1) == msg(1).replace(b"\n", b"\r\n")
        c.quit()
    assert time.monotonic() - t0 < 3
    # the slow one was not dropped: its reply is coming
    assert_glob(slow.status(), "+OK*")
    want = multiline_body(body)
    assert slow.readline() == want[:want.index(b"\n") + 1]
    slow.close()


@pytest.mark.parametrize("form", sorted(SLOW_BODIES))
def test_paused_reader_gets_every_octet(make_server, form):
    """Two pipelined RETRs of 16 MB, then NOOP, read only after a pause:
    the socket fills up part-way through the first reply (in wire form,
    part-way through a sendfile run), the rest waits in the queue, and
    every octet arrives in order once the client reads."""
    s = make_server()
    body = SLOW_BODIES[form] * 2
    s.add_message("alice", body)
    with s.login("alice", timeout=60) as c:
        c.send("RETR 1\r\nRETR 1\r\nNOOP\r\n")
        time.sleep(1)
        want = multiline_body(body)
        for _ in range(2):
            assert_glob(c.status(60), "+OK*")
            assert c.read_multiline(timeout=60) == want
        assert_glob(c.status(), "+OK*")
        c.quit()


def test_message_cut_short_mid_retr(make_server):
    """A message file cut short while its RETR streams, once the client
    has read all that was sent: the session ends without the terminator,
    so the client cannot take the part for the whole, and the worker
    goes on serving its other sessions."""
    s = make_server(config={"workers": 1})
    body = SLOW_BODIES["lf"] * 4
    name = s.add_message("alice", body)
    s.add_message("bob", msg(1))
    pids = s.wait_workers("pop3")
    c = s.login("alice", timeout=30)
    c.sendline("RETR 1")
    time.sleep(0.5)
    os.truncate(s.message_files("alice")[name], 1 << 20)
    assert c.status(30) == "+OK %d octets" % wire_size(body)
    data = c.wait_closed(30)
    c.close()
    assert 0 < len(data) < wire_size(body)
    assert not data.endswith(b"\r\n.\r\n")
    with s.login("bob") as b:
        assert b.retr(1) == msg(1).replace(b"\n", b"\r\n")
        b.quit()
    assert s.worker_pids("pop3") == pids
    assert "read of message 1 failed" in s.log_text()


def test_auth_delay_does_not_block_others(make_server):
    s = make_server(config={"workers": 1, "auth_fail_delay": "2s",
                            "auth_fail_delay_max": "2s"})
    with s.connect() as bad:
        bad.command("USER alice")
        bad.sendline("PASS wrong")
        time.sleep(0.2)
        t0 = time.monotonic()
        with s.login("bob", source="127.0.0.2") as c:
            assert c.stat() == (0, 0)
            c.quit()
        assert time.monotonic() - t0 < 1.0, "served only after the delay"
        assert_glob(bad.status(timeout=10), "-ERR [AUTH]*")


def test_half_close_after_quit(srv):
    with srv.login("alice") as c:
        c.send("DELE 1\r\nRSET\r\nQUIT\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        assert_glob(c.status(), "+OK*")
        assert_glob(c.status(), "+OK*")
        assert_glob(c.status(), "+OK*")
        c.wait_closed()
    with srv.login("alice") as c:
        assert c.stat()[0] == len(srv.msgs)


def test_eof_after_dele_deletes_nothing(srv):
    with srv.login("alice") as c:
        c.send("DELE 1\r\nDELE 2\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        assert_glob(c.status(), "+OK*")
        assert_glob(c.status(), "+OK*")
        c.wait_closed()
    time.sleep(0.2)
    with srv.login("alice") as c:
        assert c.stat()[0] == len(srv.msgs)


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_pipelined_retr_does_not_buffer_everything(make_server):
    """100 pipelined RETRs of 1 MB to a client that does not read yet:
    the worker streams with back-pressure instead of queueing 100 MB."""
    s = make_server(config={"workers": 1})
    data = (b"w" * 63 + b"\n") * 16384
    s.add_message("alice", data)
    [worker] = s.wait_workers("pop3", 1)
    c = s.login("alice")
    base = vm_rss_kb(worker)
    c.send(b"RETR 1\r\n" * 100)
    time.sleep(2)
    grown = vm_rss_kb(worker) - base
    assert grown < 48 * 1024, "worker grew by %d kB" % grown
    want = multiline_body(data)
    for k in range(100):
        assert_glob(c.status(timeout=30), "+OK*")
        assert c.read_multiline(timeout=30) == want, "RETR %d" % k
    assert_glob(c.command("NOOP"), "+OK*")
    c.close()


def test_input_flood_without_reading(make_server):
    """A client that floods NOOPs and never reads: the server must not
    buffer without bound and must stay responsive to others."""
    s = make_server(config={"workers": 1})
    [worker] = s.wait_workers("pop3", 1)
    c = s.login("alice")
    base = vm_rss_kb(worker)
    chunk = b"NOOP\r\n" * 10000
    sent = 0
    c.sock.settimeout(0.5)
    try:
        while sent < 64 << 20:
            c.sock.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass            # blocked (send buffer full) or closed: both fine
    grown = vm_rss_kb(worker) - base
    assert grown < 48 * 1024, "worker grew by %d kB" % grown
    with s.login("bob", timeout=5) as other:
        assert other.stat() == (0, 0)
    c.close()
