"""
TLS: STLS (RFC 2595) on the plain port, implicit TLS (RFC 8314) on a
second listener, as TLS.md specifies: CAPA, the STLS state rules, the
pipelining-injection defence, the plaintext policy, verification, SNI,
hostile handshakes, protocol versions, resumption, many sessions, SIGHUP
certificate reload, `posternd -t` on certificates, client certificates.

Every server here runs with Server(tls=True): the test PKI's localhost
certificate, STLS on srv.port, implicit TLS on srv.tls_port.
"""

import functools
import hashlib
import os
import re
import resource
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import warnings

import pytest

import harness
from harness import (Closed, Pop3Conn, Timeout, assert_glob, cert_names,
                     tls_client_context, wire_form, wire_lines, wire_size)

OPENSSL_TIMEOUT = 20

SMALL = [
    b"From: one@example.org\nSubject: one\n\nbody of one\nsecond line\n",
    b"From: two@example.org\r\nSubject: two\r\n\r\nbody of two\r\n",
    b"From: three@example.org\nSubject: three\n\n.dotted\n..two\n.\nend",
]

BIG_USER = "big"
BIG_PASSWORD = "Big-Pass-10m"


@functools.lru_cache(maxsize=None)
def big_message(size=10 * 1024 * 1024):
    """About 10 MB: mixed LF/CRLF lines of 0..149 octets, dot lines, no
    final newline."""
    out = [b"From: Big <big@example.org>\n"
           b"To: big@example.org\n"
           b"Subject: ten megabytes\n"
           b"Message-ID: <big-10m@example.org>\n"
           b"\n"]
    total = len(out[0])
    i = 0
    while total < size:
        i += 1
        h = hashlib.sha256(b"%d" % i).hexdigest()
        line = (h * 3)[:i % 150]
        if i % 101 == 0:
            line = "." + line
        if i % 307 == 0:
            line = "."
        b = line.encode() + (b"\r\n" if i % 5 == 0 else b"\n")
        out.append(b)
        total += len(b)
    out.append(b"the last line has no newline")
    return b"".join(out)


def capa_names(lines):
    return [l.split()[0].upper() for l in lines if l.strip()]


@pytest.fixture(scope="module")
def srv(make_module_server):
    s = make_module_server(users=dict(harness.DEFAULT_USERS,
                                      **{BIG_USER: BIG_PASSWORD}),
                           tls=True, start=False)
    s.names = [s.add_message("alice", m) for m in SMALL]
    s.add_message(BIG_USER, big_message())
    s.add_message(BIG_USER, SMALL[2])
    s.start()
    return s


def log_mark(srv):
    return len(srv.log_text())


def handshake_failures(srv, start=0):
    return re.findall(r"pop3 session=\S+ tls handshake failed ip=(\S+) "
                      r"reason=(\S.*)", srv.log_text()[start:])


def wait_failures(srv, start, count=1, timeout=5.0):
    """Waits for count handshake-failure lines after start; then a moment
    more to see that no extra one follows; returns them."""
    deadline = time.monotonic() + timeout
    while True:
        got = handshake_failures(srv, start)
        if len(got) >= count:
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                "expected %d 'tls handshake failed' log lines, found %d:\n%s"
                % (count, len(got), srv.log_text()[start:][-3000:]))
        time.sleep(0.05)
    time.sleep(0.3)
    return handshake_failures(srv, start)


def worker_of(srv, conn, start=0, timeout=5.0):
    """The pop3 worker pid that logged the connect line of conn (by the
    client's port)."""
    port = conn.sock.getsockname()[1]
    m = srv.wait_log(r"posternd/pop3\[(\d+)\][^\n]*connect ip=\S+ "
                     r"port=%d\b" % port, timeout=timeout, start=start)
    return int(m.group(1))


def assert_healthy(srv, pids, start=0):
    """Master and the same pop3 workers alive (nothing crashed or was
    restarted), and fresh sessions work over both kinds of TLS."""
    assert srv.running(), "posternd exited"
    assert sorted(srv.worker_pids("pop3")) == sorted(pids), \
        "pop3 workers changed: %s -> %s" % (sorted(pids),
                                            sorted(srv.worker_pids("pop3")))
    text = srv.log_text()[start:]
    assert "died" not in text, text[-3000:]
    with srv.login_tls("alice") as c:
        assert c.stat()[0] == len(SMALL)
        assert c.retr(1) == wire_form(SMALL[0])
        assert_glob(c.quit(), "+OK*")
    with srv.login_stls("alice") as c:
        assert c.stat()[0] == len(SMALL)
        assert_glob(c.quit(), "+OK*")


def run_openssl(args, input=b"", timeout=OPENSSL_TIMEOUT):
    try:
        return subprocess.run(["openssl"] + args, input=input,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("openssl %s timed out after %ds; stdout %r "
                             "stderr %r" % (" ".join(args), timeout,
                                            e.stdout, e.stderr)) from None


def client_hello(server_hostname="localhost", **kw):
    """The octets of a ClientHello as Python's ssl would send it."""
    ctx = tls_client_context(verify=False, **kw)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def rst_close(sock):
    """Closes with an RST (SO_LINGER 0): an abrupt client disappearance."""
    raw = sock
    try:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                       struct.pack("ii", 1, 0))
    except OSError:
        pass
    raw.close()


# ------------------------------------------------------------------ basics

def test_implicit_tls_greeting_and_session(srv):
    start = log_mark(srv)
    with srv.connect_tls() as c:
        assert_glob(c.greeting, "+OK*")
        assert c.tls_version in ("TLSv1.2", "TLSv1.3")
        cn, sans = cert_names(c.peer_cert())
        assert "localhost" in sans and "127.0.0.1" in sans, sans
        c.login("alice", srv.users["alice"])
        assert c.stat() == (len(SMALL), sum(wire_size(m) for m in SMALL))
        for i, m in enumerate(SMALL, 1):
            assert c.retr(i) == wire_form(m)
            assert c.top(i, 0) == wire_form(m, top=0)
        assert_glob(c.quit(), "+OK*")
    m = srv.wait_log(r"pop3 session=\S+ tls established "
                     r"version=(TLSv1\.[23]) cipher=\S+", start=start)
    assert m.group(1) == "TLSv1.3", "default handshake was %s" % m.group(1)


def test_stls_upgrade_and_session(srv):
    with srv.connect() as c:
        assert_glob(c.greeting, "+OK*")
        st = c.stls(srv.ca_file)
        assert_glob(st, "+OK*")
        assert c.tls_version in ("TLSv1.2", "TLSv1.3")
        c.login("alice", srv.users["alice"])
        assert c.stat()[0] == len(SMALL)
        assert c.retr(3) == wire_form(SMALL[2])
        assert c.uidl_map().keys() == {harness.expected_uidl(n)
                                       for n in srv.names}
        assert_glob(c.quit(), "+OK*")


def test_tls12_client_works_by_default(srv):
    ctx = tls_client_context(srv.ca_file,
                             max_version=ssl.TLSVersion.TLSv1_2)
    with srv.connect_tls(context=ctx) as c:
        assert c.tls_version == "TLSv1.2"
        c.login("alice", srv.users["alice"])
        assert c.retr(2) == wire_form(SMALL[1])
        c.quit()
    with srv.connect() as c:
        assert_glob(c.stls(context=ctx), "+OK*")
        assert c.tls_version == "TLSv1.2"
        c.login("alice", srv.users["alice"])
        c.quit()


@pytest.mark.parametrize("how", ["implicit", "stls"])
def test_close_notify_after_quit(srv, how):
    # RFC 8446 6.1: each party sends close_notify before closing its write
    # side; s_client and others report a truncation attack otherwise.
    c = srv.login_tls("alice") if how == "implicit" else \
        srv.login_stls("alice")
    with c:
        assert_glob(c.command("QUIT"), "+OK*")
        assert c.wait_closed() == b""
        assert not c.tls_unexpected_eof, \
            "the server closed the TLS connection without close_notify"


def test_shutdown_reaches_tls_sessions(make_server):
    s = make_server(tls=True)
    conns = [s.login_tls("alice"), s.login_stls("bob"), s.connect_tls()]
    try:
        st = s.stop()
        assert st == 0, "exit status %s" % st
        for c in conns:
            assert_glob(c.status(), "-ERR [SYS/TEMP]*")
            c.wait_closed()
    finally:
        for c in conns:
            c.close()


def test_idle_timeout_over_tls(make_server):
    s = make_server(config={"idle_timeout": "2s"}, tls=True)
    with s.login_tls("alice") as a, s.connect() as b:
        assert_glob(b.stls(s.ca_file), "+OK*")
        for c in (a, b):
            assert_glob(c.status(timeout=6), "-ERR*")
            c.wait_closed()


def test_bad_command_limit_over_tls(srv):
    # max_bad_commands (10) over TLS: -ERR replies, then the close.
    with srv.connect_tls() as c:
        n = 0
        try:
            for _ in range(15):
                assert_glob(c.command("BOGUS"), "-ERR*")
                n += 1
        except (Closed, OSError):
            pass
        else:
            pytest.fail("still open after 15 bad commands")
        assert 10 <= n <= 12, n


def test_tls_no_compression(srv):
    with srv.connect_tls() as c:
        assert c.tls.compression() is None


# ------------------------------------------------ records and pipelining

def test_two_commands_in_one_record(srv):
    # Both are in one TLS record: the second must be answered without
    # more input from the client (the server drains what TLS buffered).
    with srv.login_tls("alice") as c:
        c.send(b"STAT\r\nNOOP\r\n")
        assert_glob(c.status(timeout=3), "+OK %d *" % len(SMALL))
        assert_glob(c.status(timeout=3), "+OK*")


def test_command_one_octet_per_record(srv):
    with srv.connect_tls() as c:
        for b in b"USER alice\r\n":
            c.send(bytes([b]))
        assert_glob(c.status(), "+OK*")
        for b in ("PASS %s\r\n" % srv.users["alice"]).encode():
            c.send(bytes([b]))
        assert_glob(c.status(), "+OK*")
        assert c.stat()[0] == len(SMALL)


def test_pipelining_over_tls(srv):
    cmds = [b"NOOP"] * 300 + [b"RETR %d" % (i % 3 + 1) for i in range(60)] \
        + [b"STAT"] * 300
    with srv.login_tls("alice", timeout=30) as c:
        c.send(b"".join(x + b"\r\n" for x in cmds))     # ~6 KB, records
        for x in cmds:
            st = c.status(timeout=10)
            assert_glob(st, "+OK*")
            if x.startswith(b"RETR"):
                i = int(x.split()[1])
                assert harness.unstuff(c.read_multiline(10)) == \
                    wire_form(SMALL[i - 1])
        c.send(b"NOOP\r\n" * 5000)                     # 30 KB, records
        for _ in range(5000):
            assert_glob(c.status(timeout=10), "+OK*")
        assert_glob(c.quit(), "+OK*")


def test_long_line_over_tls(srv):
    with srv.connect_tls() as c:
        assert_glob(c.command("NOOP " + "x" * 3000), "-ERR*")
        assert capa_names(c.capa())
        c.login("alice", srv.users["alice"])


# ------------------------------------------------------ openssl s_client

def _s_client_ok(r, what):
    # The exit status is not checked here: s_client exits 1 when the
    # server closes without close_notify, which test_close_notify_* covers
    # on its own.
    err = r.stderr.decode("utf-8", "replace")
    out = r.stdout.decode("latin-1")
    assert "Verification: OK" in err, "%s: exit %d\nstderr:\n%s\n" \
        "stdout:\n%s" % (what, r.returncode, err, out)
    assert re.search(r"Protocol version: TLSv1\.[23]", err), err
    return out


def test_openssl_s_client_starttls(srv):
    r = run_openssl(["s_client", "-starttls", "pop3", "-connect",
                     "127.0.0.1:%d" % srv.port, "-servername", "localhost",
                     "-verify_hostname", "localhost",
                     "-CAfile", srv.ca_file, "-verify_return_error",
                     "-brief", "-ign_eof", "-nocommands"],
                    input=b"CAPA\r\nQUIT\r\n")
    out = _s_client_ok(r, "s_client -starttls pop3")
    # s_client read the greeting and the STLS reply itself; what is left
    # is the CAPA reply and the QUIT reply, both over TLS.
    lines = out.split("\r\n")
    assert lines[0].startswith("+OK"), out
    end = lines.index(".")
    caps = capa_names(lines[1:end])
    assert "STLS" not in caps and "USER" in caps, caps
    assert_glob(lines[end + 1], "+OK*")


def test_openssl_s_client_implicit(srv):
    r = run_openssl(["s_client", "-connect", "127.0.0.1:%d" % srv.tls_port,
                     "-servername", "localhost",
                     "-verify_hostname", "localhost",
                     "-CAfile", srv.ca_file, "-verify_return_error",
                     "-brief", "-ign_eof", "-nocommands"],
                    input=b"CAPA\r\nQUIT\r\n")
    out = _s_client_ok(r, "s_client (implicit)")
    lines = out.split("\r\n")
    assert_glob(lines[0], "+OK Postern ready.*")
    assert lines[1].startswith("+OK"), out
    end = lines.index(".")
    caps = capa_names(lines[2:end])
    assert "STLS" not in caps and "USER" in caps, caps
    assert_glob(lines[end + 1], "+OK*")


# -------------------------------------------------------------------- CAPA

def test_capa_stls_on_plain_before_login(srv):
    with srv.connect() as c:
        caps = capa_names(c.capa())
        assert "STLS" in caps, caps
        assert "USER" in caps, caps     # loopback is a plaintext network


def test_capa_after_stls(srv):
    with srv.connect() as c:
        assert_glob(c.stls(srv.ca_file), "+OK*")
        caps = capa_names(c.capa())
        assert "STLS" not in caps and "USER" in caps, caps
        for name in ("TOP", "UIDL", "RESP-CODES", "PIPELINING"):
            assert name in caps, caps


def test_capa_on_implicit_port(srv):
    with srv.connect_tls() as c:
        caps = capa_names(c.capa())
        assert "STLS" not in caps and "USER" in caps, caps


@pytest.mark.parametrize("how", ["plain", "stls", "implicit"])
def test_capa_after_login(srv, how):
    c = {"plain": srv.login, "stls": srv.login_stls,
         "implicit": srv.login_tls}[how]("alice")
    with c:
        caps = capa_names(c.capa())
        assert "STLS" not in caps and "USER" not in caps, caps
        assert_glob(c.command("STLS"), "-ERR*")
        assert_glob(c.command("NOOP"), "+OK*")


def test_no_certificate_no_stls(make_server):
    s = make_server(config={"plaintext_networks": "127.0.0.1/32"})
    with s.connect() as c:
        assert "STLS" not in capa_names(c.capa())
        st = c.command("STLS")
        assert_glob(st, "-ERR*")
        # still a plain-text session that works
        c.login("alice", s.users["alice"])
        assert_glob(c.command("NOOP"), "+OK*")
    with s.connect(source="127.0.0.2") as c:
        caps = capa_names(c.capa())
        assert "STLS" not in caps and "USER" not in caps, caps
        st = c.command("USER alice")
        assert_glob(st, "-ERR [AUTH]*")
        assert "STLS" not in st, "STLS suggested without TLS: %r" % st


def test_user_listed_after_stls_for_remote_client(make_server):
    s = make_server(config={"plaintext_networks": "127.0.0.1/32"}, tls=True)
    with s.connect(source="127.0.0.2") as c:
        caps = capa_names(c.capa())
        assert "STLS" in caps and "USER" not in caps, caps
        assert_glob(c.stls(s.ca_file), "+OK*")
        caps = capa_names(c.capa())
        assert "USER" in caps and "STLS" not in caps, caps


# ----------------------------------------------------------- STLS state

def test_stls_twice(srv):
    with srv.connect() as c:
        assert_glob(c.stls(srv.ca_file), "+OK*")
        st = c.command("STLS")
        assert_glob(st, "-ERR*")
        # the TLS session goes on
        assert capa_names(c.capa())
        c.login("alice", srv.users["alice"])
        assert c.stat()[0] == len(SMALL)
        c.quit()


def test_stls_on_implicit_port(srv):
    with srv.connect_tls() as c:
        assert_glob(c.command("STLS"), "-ERR*")
        c.login("alice", srv.users["alice"])
        assert c.stat()[0] == len(SMALL)
        c.quit()


def test_stls_in_transaction(srv):
    with srv.login("alice") as c:
        st = c.command("STLS")
        assert_glob(st, "-ERR*")
        assert c.tls is None
        assert c.stat()[0] == len(SMALL)
        assert c.retr(1) == wire_form(SMALL[0])


def test_user_before_stls_is_forgotten(srv):
    with srv.connect() as c:
        assert_glob(c.command("USER alice"), "+OK*")
        assert_glob(c.stls(srv.ca_file), "+OK*")
        assert_glob(c.command("PASS " + srv.users["alice"]), "-ERR*")
        assert_glob(c.command("STAT"), "-ERR*")
        c.login("alice", srv.users["alice"])
        assert c.stat()[0] == len(SMALL)
        c.quit()


# ------------------------------------------------------- STLS injection

def _pipelined_stls(srv, tail):
    c = srv.connect()
    c.send(b"STLS\r\n" + tail)
    st = c.status()
    assert_glob(st, "+OK*")
    assert not c.buf, "clear-text octets after the STLS +OK: %r" % bytes(
        c.buf)
    c.start_tls(srv.ca_file)
    return c


def test_stls_injection_capa(srv):
    with _pipelined_stls(srv, b"CAPA\r\n") as c:
        with pytest.raises(Timeout):
            line = c.readline(timeout=1.5)
            pytest.fail("the server sent %r over TLS before the client "
                        "sent anything: the pipelined CAPA was executed"
                        % line)
        caps = capa_names(c.capa())
        assert "STLS" not in caps and "USER" in caps, caps
        c.login("alice", srv.users["alice"])
        assert c.stat()[0] == len(SMALL)
        assert_glob(c.quit(), "+OK*")


def test_stls_injection_login(srv):
    tail = ("USER alice\r\nPASS %s\r\n" % srv.users["alice"]).encode()
    with _pipelined_stls(srv, tail) as c:
        with pytest.raises(Timeout):
            line = c.readline(timeout=1.5)
            pytest.fail("the server sent %r over TLS before the client "
                        "sent anything: the pipelined USER/PASS ran" % line)
        # Not logged in, and the USER was not remembered either.
        assert_glob(c.command("STAT"), "-ERR*")
        assert_glob(c.command("PASS " + srv.users["alice"]), "-ERR*")
        c.login("alice", srv.users["alice"])
        assert c.stat()[0] == len(SMALL)
        assert_glob(c.quit(), "+OK*")


def test_stls_injection_after_separate_write(srv):
    # The injected command arrives in its own segment right behind STLS,
    # before the client has seen +OK.
    c = srv.connect()
    with c:
        c.send(b"STLS\r\n")
        c.send(b"CAPA\r\n")
        st = c.status()
        assert_glob(st, "+OK*")
        assert not c.buf, bytes(c.buf)
        # The server either discards the CAPA (then the handshake works
        # and nothing arrives unasked) or fails the handshake on it; it
        # never answers it.
        try:
            c.start_tls(srv.ca_file)
        except (ssl.SSLError, OSError):
            return
        with pytest.raises((Timeout, Closed)):
            line = c.readline(timeout=1.5)
            pytest.fail("unasked %r over TLS" % line)


# ------------------------------------------------------ plaintext policy

REMOTE = "127.0.0.2"


@pytest.fixture(scope="module")
def remote_srv(make_module_server):
    s = make_module_server(config={"plaintext_networks": "127.0.0.1/32",
                                   "disable_plaintext_auth": True},
                           tls=True, start=False)
    s.add_message("alice", SMALL[0])
    s.start()
    return s


def test_plaintext_refused_before_stls(remote_srv):
    s = remote_srv
    with s.connect(source=REMOTE) as c:
        caps = capa_names(c.capa())
        assert "USER" not in caps and "STLS" in caps, caps
        st = c.command("USER alice")
        assert_glob(st, "-ERR [AUTH]*")
        assert "STLS" in st, "the refusal should point to STLS: %r" % st
        assert_glob(c.command("PASS " + s.users["alice"]), "-ERR*")
        assert_glob(c.stls(s.ca_file), "+OK*")
        caps = capa_names(c.capa())
        assert "USER" in caps and "STLS" not in caps, caps
        c.login("alice", s.users["alice"])
        assert c.stat() == (1, wire_size(SMALL[0]))
        assert c.retr(1) == wire_form(SMALL[0])
        assert_glob(c.quit(), "+OK*")


def test_plaintext_allowed_on_implicit_port(remote_srv):
    s = remote_srv
    with s.connect_tls(source=REMOTE) as c:
        caps = capa_names(c.capa())
        assert "USER" in caps and "STLS" not in caps, caps
        c.login("alice", s.users["alice"])
        assert c.stat() == (1, wire_size(SMALL[0]))
        assert_glob(c.quit(), "+OK*")


# ------------------------------------------------------------------ poplib

def _poplib_check(p, expect):
    count, octets = p.stat()
    assert (count, octets) == (len(expect),
                               sum(wire_size(m) for m in expect))
    for i, m in enumerate(expect, 1):
        resp, lines, size = p.retr(i)
        assert resp.startswith(b"+OK"), resp
        assert size == wire_size(m), (i, size, wire_size(m))
        assert lines == wire_lines(m), "RETR %d over TLS differs" % i


def test_poplib_stls(srv):
    import poplib
    ctx = tls_client_context(srv.ca_file)
    p = poplib.POP3(srv.host, srv.port, timeout=30)
    try:
        assert p.stls(ctx).startswith(b"+OK")
        p.user("alice")
        p.pass_(srv.users["alice"])
        _poplib_check(p, SMALL)
    finally:
        assert p.quit().startswith(b"+OK")


def test_poplib_pop3_ssl_with_10mb(srv):
    import poplib
    ctx = tls_client_context(srv.ca_file)
    p = poplib.POP3_SSL(srv.host, srv.tls_port, context=ctx, timeout=60)
    try:
        # POP3_SSL checks the host name against 127.0.0.1: the IP SAN.
        p.user(BIG_USER)
        p.pass_(BIG_PASSWORD)
        _poplib_check(p, [big_message(), SMALL[2]])
    finally:
        assert p.quit().startswith(b"+OK")


def test_raw_10mb_retr_over_both_tls_kinds(srv):
    want = harness.multiline_body(big_message())
    for connect in (srv.login_tls, srv.login_stls):
        with connect(BIG_USER, BIG_PASSWORD, timeout=60) as c:
            sizes = c.list()
            assert sizes[1] == wire_size(big_message())
            st, raw = c.retr_raw(1)
            assert_glob(st, "+OK*")
            assert raw == want, "10 MB RETR over TLS differs"
            assert_glob(c.quit(), "+OK*")


# ------------------------------------------------------------ verification

def test_client_trusting_another_ca_fails(srv):
    pids = srv.worker_pids("pop3")
    start = log_mark(srv)
    with pytest.raises(ssl.SSLCertVerificationError):
        c = Pop3Conn.connect_tls(srv.host, srv.tls_port,
                                 ca_file=srv.pki.other_ca_cert)
        c.close()
    got = wait_failures(srv, start, 1)
    assert len(got) == 1, got
    assert got[0][0] == "127.0.0.1", got
    # the same over STLS
    start = log_mark(srv)
    with srv.connect() as c:
        with pytest.raises(ssl.SSLCertVerificationError):
            c.stls(srv.pki.other_ca_cert)
    got = wait_failures(srv, start, 1)
    assert len(got) == 1, got
    assert_healthy(srv, pids, start)


def test_client_rejects_wrong_hostname(srv):
    with pytest.raises(ssl.SSLCertVerificationError):
        Pop3Conn.connect_tls(srv.host, srv.tls_port, ca_file=srv.ca_file,
                             server_hostname="wrong.example.test").close()


# -------------------------------------------------------------------- SNI

@pytest.fixture(scope="module")
def sni_srv(make_module_server, pki):
    s = make_module_server(config={"tls_sni": [
        "mail.example.test %s %s" % (pki.mail_cert, pki.mail_key),
        "OTHER.Example.Test %s %s" % (pki.other_cert, pki.other_key)]},
        tls=True, start=False)
    s.add_message("alice", SMALL[0])
    s.start()
    return s


def _peer(srv, name, stls=False):
    ctx = tls_client_context(srv.ca_file)
    ctx.check_hostname = False      # see what is sent, verified chain
    if stls:
        with srv.connect() as c:
            assert_glob(c.stls(context=ctx, server_hostname=name), "+OK*")
            return cert_names(c.peer_cert())
    with srv.connect_tls(context=ctx, server_hostname=name) as c:
        return cert_names(c.peer_cert())


@pytest.mark.parametrize("stls", [False, True], ids=["implicit", "stls"])
def test_sni_selects_certificate(sni_srv, stls):
    s = sni_srv
    assert _peer(s, "mail.example.test", stls) == \
        ("mail.example.test", ["mail.example.test"])
    assert _peer(s, "other.example.test", stls) == \
        ("other.example.test", ["other.example.test"])
    # SNI is case-insensitive
    assert _peer(s, "Mail.Example.TEST", stls)[0] == "mail.example.test"
    # a name not configured, and no SNI at all (an IP address): default
    for name in ("nothere.example.test", "localhost", "127.0.0.1"):
        cn, sans = _peer(s, name, stls)
        assert cn == "localhost" and "localhost" in sans, (name, cn, sans)


def test_sni_verified_session(sni_srv):
    # A client that verifies the name it asked for logs in normally.
    with sni_srv.connect_tls(server_hostname="mail.example.test") as c:
        c.login("alice", sni_srv.users["alice"])
        assert c.retr(1) == wire_form(SMALL[0])
        c.quit()


def test_sni_wildcard(make_server, pki):
    s = make_server(config={"tls_sni": "*.example.test %s %s"
                            % (pki.mail_cert, pki.mail_key)}, tls=True)
    assert _peer(s, "pop.example.test")[0] == "mail.example.test"
    # one label only
    assert _peer(s, "a.b.example.test")[0] == "localhost"
    assert _peer(s, "example.test")[0] == "localhost"


# ------------------------------------------------------- hostile clients

def test_garbage_instead_of_client_hello(srv):
    pids = srv.worker_pids("pop3")
    start = log_mark(srv)
    s = socket.create_connection((srv.host, srv.tls_port), timeout=10)
    with s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n" + os.urandom(2000))
        s.settimeout(5)
        deadline = time.monotonic() + 5
        try:
            while s.recv(65536):
                assert time.monotonic() < deadline, "server kept it open"
        except ConnectionResetError:
            pass
        except socket.timeout:
            pytest.fail("the server neither answered nor closed after "
                        "garbage instead of a ClientHello")
    got = wait_failures(srv, start, 1)
    assert len(got) == 1, got
    # also plain POP3 sent to the implicit port
    start2 = log_mark(srv)
    with socket.create_connection((srv.host, srv.tls_port), timeout=10) as s:
        s.sendall(b"CAPA\r\nUSER alice\r\n")
        s.settimeout(5)
        data = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
        except ConnectionResetError:
            pass
        assert b"+OK" not in data, data
    wait_failures(srv, start2, 1)
    assert_healthy(srv, pids, start)


def test_garbage_after_stls(srv):
    pids = srv.worker_pids("pop3")
    start = log_mark(srv)
    with srv.connect() as c:
        assert_glob(c.command("STLS"), "+OK*")
        c.send(b"USER alice\r\n" + os.urandom(500))
        data = c.wait_closed(5)
        assert b"+OK" not in data, data
    wait_failures(srv, start, 1)
    assert_healthy(srv, pids, start)


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_old_protocol_client_refused(srv, version):
    v = getattr(ssl.TLSVersion, version)
    pids = srv.worker_pids("pop3")
    start = log_mark(srv)
    ctx = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = v
            ctx.maximum_version = v
            inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
            try:
                ctx.wrap_bio(inc, out).do_handshake()
            except ssl.SSLWantReadError:
                pass
            if not out.read():
                ctx = None
        except (ValueError, ssl.SSLError):
            ctx = None
    if ctx is not None:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            Pop3Conn(srv.host, srv.tls_port, tls_context=ctx,
                     server_hostname="localhost").close()
    else:
        flag = {"TLSv1": "-tls1", "TLSv1_1": "-tls1_1"}[version]
        r = run_openssl(["s_client", "-connect",
                         "127.0.0.1:%d" % srv.tls_port, flag, "-cipher",
                         "DEFAULT@SECLEVEL=0", "-brief"], input=b"")
        err = r.stderr.decode("utf-8", "replace")
        if "no protocols available" in err.lower():
            pytest.skip("neither Python's ssl nor openssl s_client can "
                        "offer %s here" % version)
        assert r.returncode != 0, "a %s handshake succeeded: %s" % (
            version, err)
    got = wait_failures(srv, start, 1)
    assert len(got) == 1, got
    assert_healthy(srv, pids, start)


def test_cbc_only_client_refused(srv):
    # The default TLS 1.2 list has AEAD suites only.
    pids = srv.worker_pids("pop3")
    start = log_mark(srv)
    ctx = tls_client_context(srv.ca_file,
                             max_version=ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        srv.connect_tls(context=ctx).close()
    wait_failures(srv, start, 1)
    assert_healthy(srv, pids, start)


def test_configured_ciphers(make_server):
    s = make_server(config={
        "tls_ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384",
        "tls_ciphersuites": "TLS_CHACHA20_POLY1305_SHA256"}, tls=True)
    ctx12 = tls_client_context(s.ca_file,
                               max_version=ssl.TLSVersion.TLSv1_2)
    with s.connect_tls(context=ctx12) as c:
        assert c.tls.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384", \
            c.tls.cipher()
    with s.connect_tls() as c:
        assert c.tls.cipher()[0] == "TLS_CHACHA20_POLY1305_SHA256", \
            c.tls.cipher()
        c.login("alice", s.users["alice"])
        c.quit()


def test_renegotiation_refused(srv):
    # s_client's "R" command (command letters work without -ign_eof, so
    # stdin stays open) asks for a TLS 1.2 renegotiation: the server
    # refuses it (no_renegotiation), and nothing else breaks.
    pids = srv.worker_pids("pop3")
    start = log_mark(srv)
    p = subprocess.Popen(["openssl", "s_client", "-connect",
                          "127.0.0.1:%d" % srv.tls_port, "-tls1_2",
                          "-CAfile", srv.ca_file],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        try:
            p.stdin.write(b"R\n")
            p.stdin.flush()
            time.sleep(1.0)
            p.stdin.write(b"NOOP\r\nQUIT\r\n")
            p.stdin.flush()
        except BrokenPipeError:
            pass
        out, err = p.communicate(timeout=OPENSSL_TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    out = out.decode("latin-1")
    err = err.decode("latin-1")
    assert "+OK Postern ready." in out, out
    assert "RENEGOTIATING" in err, err
    assert "no renegotiation" in err, \
        "renegotiation was not refused:\n%s\n%s" % (out[-1000:], err)
    time.sleep(0.3)
    assert_healthy(srv, pids, start)


def test_many_stalled_handshakes_do_not_block(make_server):
    s = make_server(config={"tls_handshake_timeout": "3s",
                            "max_connections_per_ip": 1000}, tls=True)
    s.add_message("alice", SMALL[0])
    pids = s.worker_pids("pop3")
    hello = client_hello()
    stalled = []
    try:
        for i in range(100):
            sock = socket.create_connection((s.host, s.tls_port),
                                            timeout=10)
            stalled.append(sock)
            if i % 2:
                sock.sendall(hello[:len(hello) // 2])
        t0 = time.monotonic()
        for connect in (s.login_tls, s.login_stls):
            with connect("alice") as c:
                assert c.retr(1) == wire_form(SMALL[0])
                c.quit()
        assert time.monotonic() - t0 < 2.5, \
            "sessions took %.1fs beside 100 stalled handshakes" % (
                time.monotonic() - t0)
    finally:
        for sock in stalled:
            sock.close()
    assert sorted(s.worker_pids("pop3")) == sorted(pids)


def test_expired_certificate_is_served_and_refused_by_clients(make_server,
                                                              pki):
    s = make_server(config={"tls_cert": pki.expired_cert,
                            "tls_key": pki.expired_key}, tls=True)
    with pytest.raises(ssl.SSLCertVerificationError) as e:
        s.connect_tls().close()
    assert "expired" in str(e.value), e.value
    assert s.running()


def test_tls_min_version_13(make_server):
    s = make_server(config={"tls_min_version": "TLSv1.3"}, tls=True)
    pids = s.worker_pids("pop3")
    start = log_mark(s)
    ctx12 = tls_client_context(s.ca_file,
                               max_version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        s.connect_tls(context=ctx12).close()
    with s.connect() as c:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            c.stls(context=ctx12)
    wait_failures(s, start, 2)
    ctx13 = tls_client_context(s.ca_file,
                               min_version=ssl.TLSVersion.TLSv1_3)
    with s.connect_tls(context=ctx13) as c:
        assert c.tls_version == "TLSv1.3"
        c.login("alice", s.users["alice"])
        c.quit()
    with s.login_stls("alice") as c:
        assert c.tls_version == "TLSv1.3"
        c.quit()
    assert sorted(s.worker_pids("pop3")) == sorted(pids)


@pytest.fixture(scope="module")
def slow_srv(make_module_server):
    s = make_module_server(config={"tls_handshake_timeout": "2s"},
                           tls=True, start=False)
    for m in SMALL:
        s.add_message("alice", m)
    s.start()
    return s


def _assert_dropped_by_timeout(s, sock_or_conn, start, sent_at):
    deadline = time.monotonic() + 8
    sock = getattr(sock_or_conn, "sock", sock_or_conn)
    sock.settimeout(0.5)
    while True:
        try:
            d = sock.recv(65536)
            if not d:
                break
        except ConnectionResetError:
            break
        except socket.timeout:
            pass
        assert time.monotonic() < deadline, \
            "stalled handshake still open %.1fs later" % (
                time.monotonic() - sent_at)
    took = time.monotonic() - sent_at
    assert 1.5 <= took <= 6.0, "closed after %.2fs (timeout 2s)" % took
    got = wait_failures(s, start, 1)
    assert len(got) == 1, got
    assert got[0][1].split()[0] == "timeout", got


def test_half_client_hello_times_out(slow_srv):
    s = slow_srv
    pids = s.worker_pids("pop3")
    start = log_mark(s)
    hello = client_hello()
    with socket.create_connection((s.host, s.tls_port), timeout=10) as sock:
        sock.sendall(hello[:len(hello) // 2])
        t0 = time.monotonic()
        # Meanwhile others are served by the same workers.
        with s.login_tls("alice") as c:
            assert c.stat()[0] == len(SMALL)
            c.quit()
        _assert_dropped_by_timeout(s, sock, start, t0)
    assert_healthy(s, pids, start)


def test_reset_mid_handshake(srv):
    pids = srv.worker_pids("pop3")
    start = log_mark(srv)
    hello = client_hello()
    for port in (srv.tls_port, srv.port):
        sock = socket.create_connection((srv.host, port), timeout=10)
        if port == srv.port:
            f = sock.makefile("rb")
            assert f.readline().startswith(b"+OK")
            sock.sendall(b"STLS\r\n")
            assert f.readline().startswith(b"+OK")
            f.close()
        sock.sendall(hello[:len(hello) // 2])
        time.sleep(0.2)
        rst_close(sock)
    got = wait_failures(srv, start, 2)
    assert len(got) == 2, got
    assert all(r[1].split()[0] != "timeout" for r in got), got
    assert_healthy(srv, pids, start)


def test_silent_implicit_client_times_out(slow_srv):
    s = slow_srv
    start = log_mark(s)
    with socket.create_connection((s.host, s.tls_port), timeout=10) as sock:
        _assert_dropped_by_timeout(s, sock, start, time.monotonic())


def test_silent_after_stls_times_out(slow_srv):
    s = slow_srv
    start = log_mark(s)
    with s.connect() as c:
        assert_glob(c.command("STLS"), "+OK*")
        _assert_dropped_by_timeout(s, c, start, time.monotonic())


def test_handshake_timeout_not_idle_timeout(slow_srv):
    # After the handshake only idle_timeout (10m) applies.
    with slow_srv.login_tls("alice") as c:
        time.sleep(3)
        assert_glob(c.command("NOOP"), "+OK*")
        c.quit()


def test_abrupt_close_mid_retr(srv):
    pids = srv.worker_pids("pop3")
    start = log_mark(srv)
    for round_ in range(2):
        c = srv.login_tls(BIG_USER, BIG_PASSWORD, timeout=30)
        c.sendline("RETR 1")
        got = 0
        while got < 200000:
            got += len(c.tls.recv(65536))
        rst_close(c.tls)
    # and a STLS one
    c = srv.login_stls(BIG_USER, BIG_PASSWORD, timeout=30)
    c.sendline("RETR 1")
    c.tls.recv(65536)
    rst_close(c.tls)
    time.sleep(0.5)
    assert_healthy(srv, pids, start)
    with srv.login_tls(BIG_USER, BIG_PASSWORD, timeout=60) as c:
        st, raw = c.retr_raw(1)
        assert raw == harness.multiline_body(big_message())
        c.quit()


def test_slow_reader_bounded_memory(srv):
    """Five pipelined RETRs of 10 MB to a client that does not read yet:
    the worker streams with back-pressure (no sendfile over TLS) instead
    of queueing 50 MB of records."""
    start = log_mark(srv)
    with srv.login_tls(BIG_USER, BIG_PASSWORD, timeout=30) as c:
        pid = worker_of(srv, c, start)
        before = _rss_kb(pid)
        c.send(b"RETR 1\r\n" * 5)
        time.sleep(1.5)
        grown = _rss_kb(pid) - before
        assert grown < 24 * 1024, \
            "worker RSS grew by %d kB while the client did not read" % grown
        want = harness.multiline_body(big_message())
        for k in range(5):
            assert_glob(c.status(60), "+OK*")
            assert c.read_multiline(60) == want, "RETR %d" % k
        assert_glob(c.command("NOOP"), "+OK*")


def _rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


# ----------------------------------------------------------- resumption

def _resumption_rounds(s, ctx, rounds):
    start = log_mark(s)
    first = s.connect_tls(context=ctx)
    sess = first.tls.session
    first_pid = worker_of(s, first, start)
    assert sess is not None
    held = [first]
    results = []
    try:
        for _ in range(rounds):
            c = s.connect_tls(context=ctx, session=sess)
            held.append(c)      # held open: the master spreads them
            results.append((c.tls.session_reused, worker_of(s, c, start),
                            c.tls_version))
            assert_glob(c.greeting, "+OK*")
            c.login("alice", s.users["alice"])
            assert c.stat()[0] == len(SMALL)
    finally:
        for c in held:
            c.close()
    return first_pid, results


@pytest.mark.parametrize("version", ["TLSv1_3", "TLSv1_2"])
def test_session_resumption_across_workers(srv, version):
    v = getattr(ssl.TLSVersion, version)
    ctx = tls_client_context(srv.ca_file, min_version=v, max_version=v)
    first_pid, results = _resumption_rounds(srv, ctx, 8)
    assert all(r[2] == version.replace("_", ".") for r in results), results
    not_resumed = [r for r in results if not r[0]]
    assert not not_resumed, \
        "%d of %d connections were not resumed (first on pid %d): %s" % (
            len(not_resumed), len(results), first_pid, results)
    assert any(pid != first_pid for _, pid, _ in results), \
        "every connection went to worker %d; cannot tell whether the " \
        "ticket keys are shared: %s" % (first_pid, results)


def test_session_resumption_stls(srv):
    ctx = tls_client_context(srv.ca_file)
    with srv.connect() as c:
        c.stls(context=ctx)
        c.capa()            # TLS 1.3 tickets arrive after the handshake
        sess = c.tls.session
    for _ in range(3):
        with srv.connect() as c:
            assert_glob(c.stls(context=ctx, session=sess), "+OK*")
            assert c.tls.session_reused
            c.login("alice", srv.users["alice"])
            c.quit()


# -------------------------------------------------------- many sessions

def test_1000_concurrent_tls_sessions(make_server):
    n = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 500:
        want = min(hard, n * 4) if hard != resource.RLIM_INFINITY \
            else n * 4
        if want < n + 500:
            pytest.skip("RLIMIT_NOFILE hard limit %d is too low" % hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    s = make_server(config={"max_connections_per_ip": 5000,
                            "max_connections_per_user": 5000,
                            "max_connections": 5000}, users={}, tls=True)
    users = ["tls%02d" % i for i in range(20)]
    for u in users:
        s.add_user(u, "pw-" + u, scheme="plain")
        s.add_message(u, b"Subject: " + u.encode() + b"\n\nhello\n")
    ctx = tls_client_context(s.ca_file)
    barrier = threading.Barrier(n, timeout=60)
    errors = []
    t0 = time.monotonic()

    def session(k):
        u = users[k % len(users)]
        try:
            c = Pop3Conn.connect_tls(s.host, s.tls_port, context=ctx,
                                     timeout=60)
            with c:
                assert_glob(c.greeting, "+OK*")
                c.login(u, "pw-" + u)
                barrier.wait()      # all 1000 logged in at once
                assert c.stat() == (1, len(b"Subject: ") + len(u) + 11)
                assert_glob(c.quit(), "+OK*")
        except BaseException as e:
            errors.append("session %d: %r" % (k, e))
            barrier.abort()

    old = threading.stack_size()
    threading.stack_size(256 * 1024)
    try:
        threads = [threading.Thread(target=session, args=(k,))
                   for k in range(n)]
        for t in threads:
            t.start()
    finally:
        threading.stack_size(old)
    for t in threads:
        t.join(max(1, 90 - (time.monotonic() - t0)))
    assert not any(t.is_alive() for t in threads), "sessions hung"
    assert not errors, "%d sessions failed, e.g. %s" % (len(errors),
                                                       errors[:5])
    assert time.monotonic() - t0 < 60, "1000 sessions took %.0fs" % (
        time.monotonic() - t0)


# ------------------------------------------------------- configuration

def test_explicit_starttls_listener_word(make_server):
    s = make_server(tls=True, start=False)
    s.set_config(listen=["127.0.0.1:%d tls=starttls" % s.port,
                         "127.0.0.1:%d tls=implicit" % s.tls_port])
    s.start()
    with s.connect() as c:
        assert "STLS" in capa_names(c.capa())
        assert_glob(c.stls(s.ca_file), "+OK*")
        c.login("alice", s.users["alice"])
        c.quit()
    with s.login_tls("alice") as c:
        c.quit()


def test_relative_certificate_paths(make_server, pki):
    # Resolved against the config file's directory, not the cwd.
    s = make_server(tls=True, start=False)
    os.mkdir(os.path.join(s.dir, "certs"))
    for src, name in ((pki.cert, "c.pem"), (pki.key, "k.pem")):
        shutil.copy(src, os.path.join(s.dir, "certs", name))
        os.chmod(os.path.join(s.dir, "certs", name), 0o644)
    s.set_config(tls_cert="certs/c.pem", tls_key="certs/k.pem")
    assert os.getcwd() != s.dir
    r = harness.posternd("-t", "-c", s.conf_path)
    assert r.returncode == 0, r.stderr
    s.start()
    with s.login_tls("alice") as c:
        c.quit()


# ------------------------------------------------------------ SIGHUP

def _cert_der(srv, stls=False):
    if stls:
        with srv.connect() as c:
            c.stls(srv.ca_file)
            return c.peer_cert_der(), cert_names(c.peer_cert())[0]
    with srv.connect_tls() as c:
        return c.peer_cert_der(), cert_names(c.peer_cert())[0]


def _wait_cert(srv, cn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        got = _cert_der(srv)[1]
        if got == cn:
            return
        if time.monotonic() > deadline:
            raise AssertionError("new connections still get %r, not %r, "
                                 "%.0fs after SIGHUP" % (got, cn, timeout))
        time.sleep(0.2)


def _open_sessions(s):
    a = s.login_tls("alice")
    b = s.login_stls("bob")
    for c in (a, b):
        assert c.stat()[0] == 1
    return a, b


def _finish_sessions(sessions, s):
    for c, user in zip(sessions, ("alice", "bob")):
        assert c.retr(1) == wire_form(SMALL[0 if user == "alice" else 1])
        assert_glob(c.command("NOOP"), "+OK*")
        assert_glob(c.quit(), "+OK*")
        c.close()


def _swap_server(make_server, pki):
    s = make_server(tls=True, start=False)
    cert = os.path.join(s.dir, "tls-cert.pem")
    key = os.path.join(s.dir, "tls-key.pem")
    shutil.copy(pki.cert, cert)
    shutil.copy(pki.key, key)
    os.chmod(key, 0o644)
    s.set_config(tls_cert=cert, tls_key=key)
    s.add_message("alice", SMALL[0])
    s.add_message("bob", SMALL[1])
    s.start()
    return s, cert, key


def _replace(path, src):
    tmp = path + ".new"
    shutil.copy(src, tmp)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def test_sighup_swaps_certificate_files(make_server, pki):
    s, cert, key = _swap_server(make_server, pki)
    assert _cert_der(s)[1] == "localhost"
    sessions = _open_sessions(s)
    _replace(cert, pki.swap_cert)
    _replace(key, pki.swap_key)
    s.reload()
    _wait_cert(s, "localhost swap")
    assert _cert_der(s, stls=True)[1] == "localhost swap"
    _finish_sessions(sessions, s)
    assert s.running()


def test_sighup_new_tls_cert_in_config(make_server, pki):
    s, cert, key = _swap_server(make_server, pki)
    sessions = _open_sessions(s)
    s.set_config(tls_cert=pki.swap_cert, tls_key=pki.swap_key)
    s.reload()
    _wait_cert(s, "localhost swap")
    _finish_sessions(sessions, s)


def test_sighup_with_mismatched_key_keeps_old(make_server, pki):
    s, cert, key = _swap_server(make_server, pki)
    sessions = _open_sessions(s)
    before = _cert_der(s)[0]
    start = log_mark(s)
    s.set_config(tls_cert=pki.swap_cert, tls_key=pki.wrong_key)
    s.reload()
    s.wait_log(r"does not match|cannot load|error", start=start)
    time.sleep(0.5)
    assert s.running()
    assert _cert_der(s)[0] == before
    _finish_sessions(sessions, s)


# ---------------------------------------------------------- posternd -t

def _check_config(srv):
    srv.write_config()
    return harness.posternd("-t", "-c", srv.conf_path)


def _one_line_error(r):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    err = r.stderr.decode("utf-8", "replace").strip()
    assert err and len(err.splitlines()) == 1, \
        "expected one error line, got %r" % err
    return err


def test_check_config_ok(pki):
    s = harness.Server(tls=True)
    try:
        r = _check_config(s)
        assert r.returncode == 0, r.stderr
        assert b"ok" in r.stdout + r.stderr
    finally:
        s.cleanup()


def test_check_mismatched_key(pki):
    s = harness.Server(tls=True, config={"tls_key": pki.wrong_key})
    try:
        err = _one_line_error(_check_config(s))
        assert "does not match" in err, err
        assert pki.wrong_key in err, err
    finally:
        s.cleanup()


def test_check_missing_cert(pki):
    s = harness.Server(tls=True)
    missing = os.path.join(s.dir, "no-such-cert.pem")
    s.set_config(tls_cert=missing)
    try:
        err = _one_line_error(_check_config(s))
        assert "cannot load the certificate" in err, err
        assert missing in err, err
    finally:
        s.cleanup()


def test_check_garbage_cert(pki):
    s = harness.Server(tls=True)
    bad = os.path.join(s.dir, "garbage.pem")
    with open(bad, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                "-----END CERTIFICATE-----\n")
    s.set_config(tls_cert=bad)
    try:
        err = _one_line_error(_check_config(s))
        assert "cannot load the certificate" in err, err
    finally:
        s.cleanup()


@pytest.mark.parametrize("change", [
    {"tls_key": None},
    {"tls_cert": None},
    {"tls_cert": None, "tls_key": None},        # implicit listener, no cert
    {"tls_min_version": "TLSv1.1"},
    {"tls_min_version": "tls1.3"},
    {"tls_client_cert": "yes"},
    {"tls_handshake_timeout": "0s"},
    {"tls_handshake_timeout": "6m"},
    {"tls_sni": "mail.example.test"},
    {"listen": "127.0.0.1:1 tls=sometimes"},
], ids=lambda c: ",".join("%s=%s" % kv for kv in c.items()))
def test_check_tls_config_errors(pki, change):
    s = harness.Server(tls=True, config=change)
    try:
        err = _one_line_error(_check_config(s))
        assert re.match(re.escape(s.conf_path) + r":\d+: ", err), err
    finally:
        s.cleanup()


def test_check_tls_sni_without_cert(pki):
    s = harness.Server(config={"tls_sni": "mail.example.test %s %s"
                               % (pki.mail_cert, pki.mail_key)})
    try:
        err = _one_line_error(_check_config(s))
        assert re.match(re.escape(s.conf_path) + r":\d+: ", err), err
    finally:
        s.cleanup()


# ------------------------------------------------- client certificates

def test_optional_client_certificate(make_server, pki):
    s = make_server(config={"tls_client_cert": True,
                            "tls_client_ca": pki.ca_cert}, tls=True)
    with_cert = tls_client_context(s.ca_file, cert=pki.client_cert,
                                   key=pki.client_key)
    for ctx in (with_cert, tls_client_context(s.ca_file)):
        with s.connect_tls(context=ctx) as c:
            c.login("alice", s.users["alice"])
            assert c.stat() == (0, 0)
            assert_glob(c.quit(), "+OK*")
        with s.connect() as c:
            assert_glob(c.stls(context=ctx), "+OK*")
            c.login("alice", s.users["alice"])
            assert_glob(c.quit(), "+OK*")


def test_client_certificate_request_names_ca(make_server, pki):
    s = make_server(config={"tls_client_cert": True,
                            "tls_client_ca": pki.ca_cert}, tls=True)
    r = run_openssl(["s_client", "-connect", "127.0.0.1:%d" % s.tls_port,
                     "-CAfile", s.ca_file, "-verify_return_error",
                     "-ign_eof", "-nocommands", "-cert", pki.client_cert,
                     "-key", pki.client_key], input=b"QUIT\r\n")
    out = r.stdout.decode("latin-1")
    assert "Verify return code: 0 (ok)" in out, (out, r.stderr)
    assert "Postern Test CA" in out.split("Acceptable client certificate "
                                          "CA names", 1)[-1][:500], out
    assert "+OK" in out
