"""
The lmtp process (RFC 2033) against a live posternd, with python's
smtplib.LMTP (and raw octets where smtplib would smooth them over): LHLO
and its extensions, deliveries read back byte for byte over POP3 with
exactly the Return-Path and Delivered-To lines in front, one reply per
recipient after DATA in RCPT order, the error replies and their enhanced
status codes, the limits, both kinds of listener, a restart after
SIGKILL, a full disk, and SIGKILL at random instants during a stream of
deliveries: every message that got 250 is there exactly once, whole.
"""

import os
import random
import socket
import stat
import time

import pytest

import harness
from harness import (is_root, lmtp_data, lmtp_headers)

SENDER = "sender@example.org"


def rcpt_ok(c, addr):
    code, text = c.rcpt(addr)
    assert code == 250, (addr, code, text)


def start_txn(c, *rcpts, sender=SENDER, options=()):
    code, text = c.ehlo("client.example.org")
    assert code == 250, text
    code, text = c.mail(sender, list(options))
    assert code == 250, (code, text)
    for r in rcpts:
        rcpt_ok(c, r)


def retr_all(srv, user):
    """Every message of user over POP3, in order (no QUIT: nothing is
    deleted)."""
    with srv.login(user) as p:
        sizes = p.list()
        out = []
        for n in sorted(sizes):
            got = p.retr(n, timeout=60)
            assert sizes[n] == len(got), "LIST size is not the RETR size"
            out.append(got)
        p.close()
    return out


def new_and_cur(srv, user):
    """The paths of the messages in the user's new/ and cur/."""
    return sorted(srv.message_files(user).values())


class Raw:
    """A bare LMTP client on a socket: for bare LF lines, pipelining and
    malformed input, which smtplib cannot send."""

    def __init__(self, srv, timeout=10.0):
        self.sock = socket.create_connection((srv.host, srv.lmtp_port),
                                             timeout=timeout)
        self.buf = b""
        code, _ = self.reply()
        assert code == 220

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise harness.Closed("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def reply(self):
        """(code, [texts]) of one possibly multi-line reply."""
        texts = []
        while True:
            ln = self.line()
            assert len(ln) >= 3 and ln[:3].isdigit(), ln
            texts.append(ln[4:])
            if ln[3:4] != "-":
                return int(ln[:3]), texts

    def cmd(self, line):
        self.send(line.encode("latin-1") + b"\r\n")
        code, texts = self.reply()
        return code, texts[-1]

    def closed(self, timeout=5.0):
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


# ------------------------------------------------------------- the protocol

def test_greeting_and_lhlo_capabilities(make_lmtp_server):
    srv = make_lmtp_server(config={"deliver_max_size": "10M"})
    c = srv.lmtp_connect()
    code, text = c.ehlo("client.example.org")
    assert code == 250
    lines = text.decode().split("\n")
    assert lines[1:] == ["PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME",
                         "SIZE %d" % (10 * 1024 * 1024)]
    assert c.does_esmtp
    code, _ = c.docmd("LHLO")
    assert code == 501
    c.quit()


MESSAGES = [
    b"Subject: plain\r\n\r\nHello.\r\n",
    b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n",
    b"Subject: 8bit\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"\xe4\xf6\xfc \xff and a bare\rCR\r\n",
    b"Subject: empty body\r\n\r\n",
    b"Subject: long lines\r\n\r\n" + b"x" * 1500 + b"\r\n" + b"y" * 20000 +
    b"\r\n",
    b"Subject: big\r\n\r\n" + (b"z" * 77 + b"\r\n") * 20000,
]


def test_single_and_multi_recipient_byte_exact(make_lmtp_server):
    srv = make_lmtp_server()
    c = srv.lmtp_connect()
    start_txn(c, "alice@example.org")
    assert lmtp_data(c, MESSAGES[0], 1)[0][0] == 250
    for msg in MESSAGES[1:]:
        code, _ = c.mail(SENDER, ["BODY=8BITMIME", "SIZE=%d" % len(msg)])
        assert code == 250
        rcpt_ok(c, "alice@example.org")
        rcpt_ok(c, "bob")
        replies = lmtp_data(c, msg, 2)
        assert [r[0] for r in replies] == [250, 250], replies
        assert b"<alice@example.org>" in replies[0][1]
        assert b"<bob>" in replies[1][1]
        assert replies[0][1].startswith(b"2.0.0")
    c.quit()
    got = retr_all(srv, "alice")
    assert got == [lmtp_headers(SENDER, "alice@example.org") + m
                   for m in MESSAGES]
    got = retr_all(srv, "bob")
    assert got == [lmtp_headers(SENDER, "bob") + m for m in MESSAGES[1:]]
    # Sized at delivery: the names carry S= and W=, equal for CRLF files.
    for path in new_and_cur(srv, "bob"):
        assert ",S=%d,W=%d" % (os.path.getsize(path),
                               os.path.getsize(path)) in path
    log = srv.log_text()
    assert "from=<%s> to=<bob> user=bob" % SENDER in log
    assert "Hello." not in log, "message content in the log"


def test_delivery_into_mbox_under_the_sandbox(make_lmtp_server):
    """With mailbox_path = mbox:%u the confined lmtp process takes both
    mbox locks (its dotlock is a link of .FILE.postern-lock, made in the
    mail directory) and appends; a foreign dotlock held past
    mbox_lock_timeout gives a temporary failure, and the mail comes once
    it is gone."""
    srv = make_lmtp_server(config={"mailbox_path": "mbox:%u",
                                   "mbox_lock_timeout": "1s"},
                           start=False)
    srv.chown_mail_root()
    srv.start()
    c = srv.lmtp_connect()
    for msg in MESSAGES[:2]:
        start_txn(c, "alice")
        assert lmtp_data(c, msg, 1)[0][0] == 250
    box = os.path.join(srv.mail_root, "alice")
    assert os.path.isfile(box)
    assert not os.path.exists(box + ".lock")
    assert os.path.isfile(os.path.join(srv.mail_root, ".alice.postern-lock"))
    with open(box + ".lock", "wb"):
        pass
    try:
        start_txn(c, "alice")
        code, text = lmtp_data(c, MESSAGES[2], 1)[0]
        assert 400 <= code < 500, (code, text)
    finally:
        os.unlink(box + ".lock")
    start_txn(c, "alice")
    assert lmtp_data(c, MESSAGES[2], 1)[0][0] == 250
    c.quit()
    assert retr_all(srv, "alice") == [lmtp_headers(SENDER, "alice") + m
                                      for m in MESSAGES[:3]]


def test_null_sender_and_unstuffing_on_the_wire(make_lmtp_server):
    srv = make_lmtp_server()
    r = Raw(srv)
    assert r.cmd("LHLO x")[0] == 250
    assert r.cmd("MAIL FROM:<>")[0] == 250
    assert r.cmd("RCPT TO:<alice>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    r.send(b"Subject: s\r\n\r\n..one\r\n...two\r\n.x\r\n..\r\n.\r\n")
    code, texts = r.reply()
    assert code == 250, texts
    assert r.cmd("QUIT")[0] == 221
    assert r.closed()
    assert retr_all(srv, "alice") == [
        lmtp_headers("", "alice") +
        b"Subject: s\r\n\r\n.one\r\n..two\r\nx\r\n.\r\n"]


def test_bare_lf_lines(make_lmtp_server):
    srv = make_lmtp_server()
    r = Raw(srv)
    r.send(b"LHLO x\nMAIL FROM:<a@b>\nRCPT TO:<bob>\nDATA\n")
    assert r.reply()[0] == 250
    assert r.reply()[0] == 250
    assert r.reply()[0] == 250
    assert r.reply()[0] == 354
    r.send(b"Subject: lf\n\nline\n..dot\nmixed\r\nend\n.\n")
    assert r.reply()[0] == 250
    r.close()
    assert retr_all(srv, "bob") == [
        lmtp_headers("a@b", "bob") +
        b"Subject: lf\r\n\r\nline\r\n.dot\r\nmixed\r\nend\r\n"]


def test_one_reply_per_recipient_in_rcpt_order(make_lmtp_server):
    srv = make_lmtp_server()
    srv.add_user("carol", "carol-pw")
    srv.add_user_line("dave:{PLAIN}x::::::quota_messages=1")
    srv.add_user_line("erin:{PLAIN}x::::::disabled=yes")
    srv.add_message("dave", b"Subject: old\n\nalready here\n")
    srv.chown_mail_root()
    c = srv.lmtp_connect()
    start_txn(c, "alice")
    assert c.rcpt("nobody@example.org") == (
        550, b"5.1.1 <nobody@example.org> User unknown")
    assert c.rcpt("erin") == (550, b"5.2.1 <erin> Mailbox disabled")
    rcpt_ok(c, "dave@example.org")
    rcpt_ok(c, "carol")
    replies = lmtp_data(c, b"Subject: mixed\r\n\r\nhi\r\n", 3)
    assert replies == [
        (250, b"2.0.0 <alice> Delivered"),
        (552, b"5.2.2 <dave@example.org> Mailbox over quota"),
        (250, b"2.0.0 <carol> Delivered"),
    ]
    # The transaction is over: RCPT needs a new MAIL.
    assert c.rcpt("alice")[0] == 503
    c.quit()
    assert len(retr_all(srv, "alice")) == 1
    assert len(retr_all(srv, "carol")) == 1
    assert len(new_and_cur(srv, "dave")) == 1


def test_recipient_names(make_lmtp_server):
    """The full address (domain lowercased), then the local part, then
    the local part lowercased; lmtp_recipient_delimiter strips a
    detail."""
    srv = make_lmtp_server(config={"lmtp_recipient_delimiter": "+"},
                           users={"alice": "pw", "sales@example.org": "pw",
                                  "bob": "pw"})
    c = srv.lmtp_connect()
    start_txn(c, "sales@EXAMPLE.org", "Alice@Other.Example",
              "bob+lists@x.example")
    assert c.rcpt("sales@other.example")[0] == 550
    replies = lmtp_data(c, b"Subject: names\r\n\r\nx\r\n", 3)
    assert [r[0] for r in replies] == [250, 250, 250]
    c.quit()
    assert retr_all(srv, "sales@example.org")[0].startswith(
        lmtp_headers(SENDER, "sales@EXAMPLE.org"))
    assert retr_all(srv, "alice")[0].startswith(
        lmtp_headers(SENDER, "Alice@Other.Example"))
    assert len(retr_all(srv, "bob")) == 1


def test_size_limits(make_lmtp_server):
    srv = make_lmtp_server(config={"deliver_max_size": "10k"})
    c = srv.lmtp_connect()
    c.ehlo("x")
    code, text = c.mail(SENDER, ["SIZE=10241"])
    assert (code, text) == (552, b"5.3.4 Message size exceeds the limit "
                            b"of 10240 octets")
    code, _ = c.mail(SENDER, ["SIZE=100"])
    assert code == 250
    rcpt_ok(c, "alice")
    rcpt_ok(c, "bob")
    big = b"Subject: big\r\n\r\n" + (b"b" * 78 + b"\r\n") * 200
    replies = lmtp_data(c, big, 2)
    assert [r[0] for r in replies] == [552, 552]
    assert all(r[1].startswith(b"5.3.4 ") for r in replies)
    # Exactly at the limit goes through (the trace lines are ours).
    body = b"Subject: fits\r\n\r\n"
    body += b"f" * (10240 - len(body) - 2) + b"\r\n"
    assert len(body) == 10240
    c.mail(SENDER)
    rcpt_ok(c, "alice")
    assert lmtp_data(c, body, 1)[0][0] == 250
    c.quit()
    assert retr_all(srv, "alice") == [lmtp_headers(SENDER, "alice") + body]
    assert new_and_cur(srv, "bob") == []
    tmp = os.path.join(srv.maildir("bob"), "tmp")
    assert not os.path.isdir(tmp) or os.listdir(tmp) == []


def test_rset_noop_vrfy_quit_unknown(make_lmtp_server):
    srv = make_lmtp_server()
    c = srv.lmtp_connect()
    start_txn(c, "alice")
    assert c.rset()[0] == 250
    assert c.rcpt("alice")[0] == 503
    assert c.noop() == (250, b"2.0.0 Ok")
    assert c.verify("alice")[0] == 252
    assert c.docmd("XYZZY") == (500, b"5.5.1 Command unrecognized")
    assert c.docmd("HELO", "x")[0] == 500
    assert c.docmd("EHLO", "x")[0] == 500
    code, _ = c.docmd("QUIT")
    assert code == 221
    with pytest.raises(Exception):
        c.noop()
    assert new_and_cur(srv, "alice") == []


def test_bad_sequence(make_lmtp_server):
    srv = make_lmtp_server(config={"max_bad_commands": 50})
    c = srv.lmtp_connect()
    assert c.docmd("MAIL", "FROM:<a@b>") == (503, b"5.5.1 Send LHLO first")
    c.ehlo("x")
    assert c.docmd("RCPT", "TO:<alice>") == (503, b"5.5.1 Send MAIL first")
    assert c.docmd("DATA") == (503, b"5.5.1 Send MAIL first")
    assert c.mail(SENDER)[0] == 250
    assert c.mail(SENDER) == (503, b"5.5.1 Nested MAIL command")
    assert c.docmd("DATA") == (503, b"5.5.1 No valid recipients")
    assert c.rcpt("nobody")[0] == 550
    assert c.docmd("DATA")[0] == 503
    assert c.docmd("RCPT", "TO:alice")[0] == 501
    assert c.docmd("RCPT", "TO:<alice> NOTIFY=NEVER")[0] == 555
    assert c.docmd("MAIL", "FROM:<a@b> SIZE=x")[0] == 503
    c.rset()
    assert c.docmd("MAIL", "FROM:<a@b> SIZE=x")[0] == 501
    assert c.docmd("MAIL", "FROM:<a@b> FOO=bar")[0] == 555
    assert c.docmd("MAIL", "FROM:<a@b> BODY=BINARYMIME")[0] == 501
    c.quit()


def test_too_many_errors_close(make_lmtp_server):
    srv = make_lmtp_server(config={"max_bad_commands": 3})
    r = Raw(srv)
    assert r.cmd("BOGUS")[0] == 500
    assert r.cmd("RCPT TO:<alice>")[0] == 503
    r.send(b"BOGUS\r\n")
    assert r.reply()[0] == 500
    code, texts = r.reply()
    assert code == 421 and texts[0].startswith("4.4.2 "), texts
    assert r.closed()


def test_long_lines(make_lmtp_server):
    srv = make_lmtp_server(config={"lmtp_max_line_length": 2000})
    r = Raw(srv)
    assert r.cmd("LHLO x")[0] == 250
    # A command line over 1024 octets: 500 5.5.2, and the session goes on.
    code, text = r.cmd("NOOP " + "n" * 1100)
    assert (code, text) == (500, "5.5.2 Line too long")
    assert r.cmd("MAIL FROM:<a@b>")[0] == 250
    assert r.cmd("RCPT TO:<alice>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    r.send(b"Subject: long\r\n\r\n" + b"x" * 2001 + b"\r\nafter\r\n.\r\n")
    code, texts = r.reply()
    assert code == 554 and texts[0].startswith("5.6.0 "), texts
    # Up to the limit is fine, and byte exact.
    assert r.cmd("MAIL FROM:<a@b>")[0] == 250
    assert r.cmd("RCPT TO:<alice>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    r.send(b"Subject: long\r\n\r\n" + b"x" * 2000 + b"\r\n.\r\n")
    assert r.reply()[0] == 250
    assert r.cmd("QUIT")[0] == 221
    assert retr_all(srv, "alice") == [
        lmtp_headers("a@b", "alice") + b"Subject: long\r\n\r\n" +
        b"x" * 2000 + b"\r\n"]


def test_too_many_recipients(make_lmtp_server):
    srv = make_lmtp_server(config={"lmtp_max_recipients": 3})
    c = srv.lmtp_connect()
    start_txn(c, "alice", "bob", "alice@example.org")
    assert c.rcpt("bob@example.org") == (452, b"4.5.3 Too many recipients")
    replies = lmtp_data(c, b"Subject: three\r\n\r\nx\r\n", 3)
    assert [r[0] for r in replies] == [250, 250, 250]
    assert c.noop()[0] == 250, "a fourth reply was sent after DATA"
    c.quit()
    assert len(retr_all(srv, "alice")) == 2
    assert len(retr_all(srv, "bob")) == 1


def test_pipelining(make_lmtp_server):
    srv = make_lmtp_server()
    r = Raw(srv)
    r.send(b"LHLO x\r\nMAIL FROM:<p@example.org> BODY=8BITMIME\r\n"
           b"RCPT TO:<alice>\r\nRCPT TO:<ghost>\r\nRCPT TO:<bob>\r\n"
           b"DATA\r\n")
    assert r.reply()[0] == 250
    assert r.reply()[0] == 250
    assert r.reply()[0] == 250
    assert r.reply()[0] == 550
    assert r.reply()[0] == 250
    assert r.reply()[0] == 354
    r.send(b"Subject: piped\r\n\r\nbody\r\n.\r\nRSET\r\nMAIL FROM:<q@x>\r\n"
           b"RCPT TO:<bob>\r\nDATA\r\nSubject: second\r\n\r\n.\r\n"
           b"NOOP\r\nQUIT\r\n")
    codes = [r.reply()[0] for _ in range(9)]
    assert codes == [250, 250, 250, 250, 250, 354, 250, 250, 221], codes
    assert r.closed()
    assert retr_all(srv, "alice") == [
        lmtp_headers("p@example.org", "alice") +
        b"Subject: piped\r\n\r\nbody\r\n"]
    assert retr_all(srv, "bob") == [
        lmtp_headers("p@example.org", "bob") +
        b"Subject: piped\r\n\r\nbody\r\n",
        lmtp_headers("q@x", "bob") + b"Subject: second\r\n\r\n"]


def test_unix_socket_and_tcp(make_lmtp_server):
    srv = make_lmtp_server(socket=True, config={"lmtp_socket_mode": "0620"})
    st = os.stat(srv.lmtp_socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o620
    if is_root():
        import pwd
        assert st.st_uid == pwd.getpwnam("nobody").pw_uid
    for unix in (True, False):
        c = srv.lmtp_connect(unix=unix)
        start_txn(c, "alice")
        assert lmtp_data(c, b"Subject: %d\r\n\r\n" % unix, 1)[0][0] == 250
        c.quit()
    assert len(retr_all(srv, "alice")) == 2
    assert "to=<alice> user=alice size=" in srv.log_text()
    assert "peer=unix:" in srv.log_text()
    srv.stop()
    assert not os.path.exists(srv.lmtp_socket), "socket left after stop"


def test_no_lmtp_listen_no_process(server):
    assert server.worker_pids("lmtp") == [] or \
        "started lmtp worker" not in server.log_text()
    assert "started lmtp worker" not in server.log_text()


def test_remote_address_needs_allow_remote(tmp_path):
    conf = tmp_path / "p.conf"
    base = "mail_root = %s\nuser_db = %s\n" % (tmp_path, tmp_path / "u")
    conf.write_text(base + "lmtp_listen = 192.0.2.1:24\n")
    r = harness.posternd("-t", "-c", str(conf))
    assert r.returncode != 0
    assert b"lmtp_allow_remote" in r.stderr + r.stdout
    conf.write_text(base + "lmtp_listen = 192.0.2.1:24\n"
                    "lmtp_allow_remote = yes\n")
    r = harness.posternd("-t", "-c", str(conf))
    assert b"lmtp_allow_remote" not in r.stderr + r.stdout
    conf.write_text(base + "lmtp_listen = unix:relative\n")
    r = harness.posternd("-t", "-c", str(conf))
    assert r.returncode != 0 and b"absolute" in r.stderr + r.stdout


def test_idle_timeout(make_lmtp_server):
    srv = make_lmtp_server(config={"lmtp_idle_timeout": "1s"})
    r = Raw(srv)
    assert r.cmd("LHLO x")[0] == 250
    code, texts = r.reply()
    assert code == 421 and texts[0].startswith("4.4.2 "), texts
    assert r.closed()


def test_client_that_reads_nothing_is_dropped(make_lmtp_server):
    """Pipelined commands whose replies are never read: the session
    stops taking commands, and after lmtp_idle_timeout without progress
    it is dropped, freeing its place (lmtp_max_connections = 1)."""
    srv = make_lmtp_server(config={"lmtp_idle_timeout": "2s",
                                   "lmtp_max_connections": 1})
    hog = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.connect((srv.host, srv.lmtp_port))
    hog.setblocking(False)
    chunk = b"NOOP\r\n" * 10000
    stalled_since = None
    deadline = time.monotonic() + 20
    # Send until the server stops reading for 0.3 s.
    while time.monotonic() < deadline:
        try:
            hog.send(chunk)
            stalled_since = None
        except BlockingIOError:
            now = time.monotonic()
            stalled_since = stalled_since or now
            if now - stalled_since > 0.3:
                break
            time.sleep(0.01)
    assert stalled_since is not None, "the server never stopped reading"

    def greeting():
        r = Raw.__new__(Raw)
        r.sock = socket.create_connection((srv.host, srv.lmtp_port),
                                          timeout=5)
        r.buf = b""
        try:
            return r.reply()
        finally:
            r.close()

    # While it holds the only place, others are turned away...
    code, texts = greeting()
    assert code == 421 and texts[0].startswith("4.3.2"), texts
    # ... until the idle timeout drops it.
    deadline = time.monotonic() + 10
    while greeting()[0] != 220:
        assert time.monotonic() < deadline, "the hog was never dropped"
        time.sleep(0.2)
    hog.close()


def wait_lmtp_pid(srv, old=None, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for p in srv.worker_pids("lmtp") if p != old]
        if pids:
            return pids[0]
        time.sleep(0.05)
    raise AssertionError("no lmtp process after %.0fs" % timeout)


def test_restarted_after_sigkill(make_lmtp_server):
    srv = make_lmtp_server()
    pid = wait_lmtp_pid(srv)
    c = srv.lmtp_connect()
    start_txn(c, "alice")
    os.kill(pid, 9)
    with pytest.raises(Exception):
        lmtp_data(c, b"Subject: lost\r\n\r\nx\r\n", 1)
    c.close()
    wait_lmtp_pid(srv, old=pid)
    srv.wait_log(r"lmtp worker pid=%d died" % pid)
    deadline = time.monotonic() + 10
    while True:
        try:
            c = srv.lmtp_connect()
            start_txn(c, "alice")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert lmtp_data(c, b"Subject: after\r\n\r\nx\r\n", 1)[0][0] == 250
    c.quit()
    assert retr_all(srv, "alice") == [
        lmtp_headers(SENDER, "alice") + b"Subject: after\r\n\r\nx\r\n"]


def test_full_disk_is_451(make_lmtp_server):
    srv = make_lmtp_server(start=False)
    why = srv.mount_small_mail_root()
    if why:
        pytest.skip(why)
    try:
        srv.start()
        small = b"Subject: small\r\n\r\nfits\r\n"
        c = srv.lmtp_connect()
        start_txn(c, "alice")
        assert lmtp_data(c, small, 1)[0][0] == 250
        # Fits the spool (600 KB) but not twice: the second copy fails.
        half = b"Subject: half\r\n\r\n" + (b"h" * 98 + b"\r\n") * 6000
        c.mail(SENDER)
        rcpt_ok(c, "alice")
        rcpt_ok(c, "bob")
        replies = lmtp_data(c, half, 2)
        assert replies[0][0] in (250, 451)
        assert replies[1][0] == 451, replies
        assert replies[1][1].startswith(b"4.3.0 ")
        # Too big for the spool itself: every recipient gets 451.
        big = b"Subject: big\r\n\r\n" + (b"b" * 98 + b"\r\n") * 20000
        c.mail(SENDER)
        rcpt_ok(c, "alice")
        replies = lmtp_data(c, big, 1)
        assert replies[0][0] == 451 and replies[0][1].startswith(b"4.3.0")
        c.quit()
        want = [lmtp_headers(SENDER, "alice") + small]
        if len(new_and_cur(srv, "alice")) == 2:
            want.append(lmtp_headers(SENDER, "alice") + half)
        assert retr_all(srv, "alice") == want
        assert new_and_cur(srv, "bob") == []
        for u in ("alice", "bob"):
            tmp = os.path.join(srv.maildir(u), "tmp")
            assert not os.path.isdir(tmp) or os.listdir(tmp) == []
        assert [f for f in os.listdir(srv.mail_root)
                if f.startswith(".")] == [], "a spool file was left"
        # The space is back for the next one.
        c = srv.lmtp_connect()
        start_txn(c, "bob")
        assert lmtp_data(c, small, 1)[0][0] == 250
        c.quit()
    finally:
        srv.unmount_mail_root()


def test_lmtp_process_is_confined(make_lmtp_server):
    srv = make_lmtp_server()
    pid = wait_lmtp_pid(srv)
    srv.wait_log(r"lmtp: seccomp allows \d+ system calls")
    log = srv.log_text()
    assert "lmtp: landlock abi=" in log or "lmtp: this kernel has no " \
        "Landlock" in log
    if is_root():
        import pwd
        nobody = pwd.getpwnam("nobody").pw_uid
        assert harness.proc_uids(pid) == [nobody] * 4


def test_reload_changes_listeners(make_lmtp_server):
    srv = make_lmtp_server()
    old = wait_lmtp_pid(srv)
    sock = os.path.join(srv.dir, "new.sock")
    srv.update_config({"lmtp_listen": "unix:" + sock})
    srv.reload()
    srv.wait_log(r"configuration reloaded")
    deadline = time.monotonic() + 10
    while not os.path.exists(sock) and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.lmtp_socket = sock
    c = srv.lmtp_connect(unix=True)
    start_txn(c, "bob")
    assert lmtp_data(c, b"Subject: reloaded\r\n\r\nx\r\n", 1)[0][0] == 250
    c.quit()
    # The TCP listener is gone, and so is the old lmtp process.
    with pytest.raises(OSError):
        socket.create_connection((srv.host, srv.lmtp_port), timeout=2)
    deadline = time.monotonic() + 10
    while harness.pid_alive(old) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not harness.pid_alive(old), "the old lmtp process did not exit"
    assert len(retr_all(srv, "bob")) == 1


# ------------------------------------------------------- crash safety

def crash_message(i, lines):
    return (b"Subject: crash %d\r\nX-Marker: %d\r\n\r\n" % (i, i) +
            ((b"%08d " % i) + b"c" * 70 + b"\r\n") * lines)


def test_sigkill_lmtp_at_random_instants(make_lmtp_server):
    """A stream of two-recipient deliveries while the lmtp process is
    killed at random instants, at least 60 times (every twelfth time
    with the master): after each restart every message that got 250 is
    there exactly once and every file in new/ and cur/ is a whole
    message."""
    if harness.sanitizer_build():
        pytest.skip("runs once, in the normal build")
    srv = make_lmtp_server(config={"restart_interval": "20ms"})
    rng = random.Random(os.environ.get("POSTERN_SEED", "lmtp-crash"))
    users = ("alice", "bob")
    sent, acked = {}, {u: set() for u in users}
    verified = {}                   # path -> marker, content checked

    def check_invariants():
        for user in users:
            head = lmtp_headers(SENDER, user)
            seen = {}
            for path in new_and_cur(srv, user):
                if path not in verified:
                    with open(path, "rb") as f:
                        data = f.read()
                    assert data.startswith(head), "damaged: %s" % path
                    marker = int(data.split(b"X-Marker: ", 1)[1]
                                 .split(b"\r\n")[0])
                    assert data == head + sent[marker], \
                        "partial: %s" % path
                    verified[path] = marker
                m = verified[path]
                seen[m] = seen.get(m, 0) + 1
            dup = {k: v for k, v in seen.items() if v > 1}
            assert not dup, "delivered more than once: %r" % dup
            missing = acked[user] - set(seen)
            assert not missing, "250 but not in %s's mailbox: %r" % (
                user, sorted(missing))

    kills = master_kills = 0
    i = 0
    deadline = time.monotonic() + 45
    pid = wait_lmtp_pid(srv)
    while (kills < 60 or i < 100) and time.monotonic() < deadline:
        # A few deliveries on one connection, then a kill after a random
        # delay, while one is (probably) in flight.
        try:
            c = srv.lmtp_connect(timeout=5)
            c.ehlo("x")
        except Exception:
            time.sleep(0.05)
            continue
        kill_at = time.monotonic() + rng.uniform(0, 0.05)
        killed = False
        try:
            while True:
                i += 1
                sent[i] = crash_message(i, rng.choice((1, 50, 3000)))
                if c.mail(SENDER)[0] != 250:
                    break
                rcpt_ok(c, "alice")
                rcpt_ok(c, "bob")
                c.docmd("DATA")
                c.send(harness.lmtp_stuff(sent[i]))
                if not killed and time.monotonic() >= kill_at:
                    os.kill(pid, 9)
                    killed = True
                for user in users:
                    code, _ = c.getreply()
                    if code == 250:
                        acked[user].add(i)
                if killed:
                    break
        except Exception:
            pass                # the connection died with the process
        finally:
            c.close()
        if not killed:
            os.kill(pid, 9)
        kills += 1
        if kills % 12 == 0:
            # Now and then the master goes too: posternd is started
            # again, on a mailbox the killed lmtp process was writing.
            os.kill(srv.pid, 9)
            srv.proc.wait(10)
            gone = time.monotonic() + 10
            while any(harness.pid_alive(p) for p in srv._our_processes()):
                assert time.monotonic() < gone, \
                    "children outlived the master"
                time.sleep(0.02)
            srv.start()
            master_kills += 1
        pid = wait_lmtp_pid(srv, old=pid)
        check_invariants()
    assert kills >= 60, "only %d kills in the time allowed" % kills
    assert master_kills >= 5
    assert len(acked["alice"]) >= 20, "too few deliveries between kills"
    check_invariants()
    with srv.login("bob") as p:
        count, octets = p.stat()
        assert count == len(new_and_cur(srv, "bob"))
        assert octets == sum(os.path.getsize(f)
                             for f in new_and_cur(srv, "bob"))
        p.close()


def test_unreadable_user_db_is_451_not_550(make_lmtp_server):
    """A recipient lookup that fails (an SQLite database locked by a
    writer past the readers' wait) is a temporary failure, for known and
    unknown names alike: never 550 for a user who may exist."""
    import sqlite3
    srv = make_lmtp_server(user_db_type="sqlite")
    c = srv.lmtp_connect()
    start_txn(c, "alice")
    lock = sqlite3.connect(srv.user_db, isolation_level=None, timeout=1)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        code, text = c.rcpt("bob")
        assert (code, text[:6]) == (451, b"4.3.0 "), text
        code, text = c.rcpt("nobody")
        assert (code, text[:6]) == (451, b"4.3.0 "), text
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert c.rcpt("nobody")[0] == 550
    rcpt_ok(c, "bob")
    replies = lmtp_data(c, b"Subject: after the lock\r\n\r\nx\r\n", 2)
    assert [r[0] for r in replies] == [250, 250]
    c.quit()
    assert "lookup failed" in srv.log_text()
