"""
A real MTA delivering over LMTP: a private Postfix (tests/postfix.py)
relays the test domain to posternd's LMTP listener (TCP, and the Unix
socket), mail is injected into Postfix with swaks, and every message
comes back over POP3 byte-exact apart from the trace fields added on
the way (Postfix's Received, posternd's Return-Path and Delivered-To,
which are checked exactly).  A recipient posternd does not know gets
550 5.1.1 from the LMTP listener, which Postfix turns into a bounce to
the sender.  XTND XMIT closes the loop: a message sent over POP3 goes
through Postfix and back over LMTP to its recipients, Bcc included and
removed.  Skipped only when Postfix cannot run here (not root, or not
installed).
"""

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import postfix  # noqa: E402
from harness import wire_form  # noqa: E402

DOMAIN = "example.test"
SENDER = "carol@" + DOMAIN
USERS = {"alice": "Alice-Secret-7f3e", "bob": "bob has a long pass phrase",
         "carol": "Carol-Secret-9a1b"}


def message(n, to, body):
    return (b"From: Carol <carol@example.test>\r\n"
            b"To: " + to + b"\r\n"
            b"Subject: lmtp test " + b"%d" % n + b"\r\n"
            b"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
            b"Message-ID: <lmtp-" + b"%d" % n + b"@example.test>\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n"
            b"\r\n" + body)


BODIES = [
    b"Hello,\r\n\r\na short one.\r\n",
    b".a line that starts with a dot\r\n..and one with two\r\n.\tdot tab\r\n",
    "8 bit: \u00e9t\u00e9, \u65e5\u672c\u8a9e, \u00fc\r\n".encode(),
    b"trailing spaces   \r\n\r\n\r\nblank lines above\r\n",
    b"".join(b"line %05d of a longer message, well under 998 octets\r\n" % i
             for i in range(4000)),
]


@pytest.fixture(params=["inet", "unix"])
def setup(request, make_server):
    why = postfix.available()
    if why:
        pytest.skip(why)
    srv = make_server(users=USERS, start=False, lmtp=True, lmtp_socket=True)
    if request.param == "inet":
        nexthop = "lmtp:inet:127.0.0.1:%d" % srv.lmtp_port
    else:
        nexthop = "lmtp:unix:" + srv.lmtp_socket
        # The socket belongs to the mail user: Postfix's lmtp client
        # runs as the postfix user.
        srv.update_config({"lmtp_socket_mode": "0666"})
    pf = postfix.Postfix(transports={DOMAIN: nexthop})
    # XTND XMIT hands messages to this Postfix's sendmail.
    srv.update_config({"xmit": True, "xmit_domain": DOMAIN,
                       "xmit_command": pf.sendmail_command("-i")})
    for u in USERS:
        srv.ensure_maildir(u)
    srv.start()
    try:
        pf.start()
        yield srv, pf
    finally:
        pf.cleanup()


def swaks(pf, to, data):
    """Injects data (which ends with CRLF) into Postfix's smtpd with
    swaks, which ends the last line itself; returns its output."""
    assert data.endswith(b"\r\n")
    r = subprocess.run(
        ["swaks", "--server", "%s:%d" % (pf.host, pf.port),
         "--from", SENDER, "--to", ",".join(to), "--data", "-",
         "--helo", "localhost", "--timeout", "30"],
        input=data[:-2], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, out
    return out


def mailbox(srv, user):
    with srv.login(user) as c:
        n, _ = c.stat()
        msgs = [c.retr(i) for i in range(1, n + 1)]
        c.quit()
    return msgs


def test_postfix_delivers_over_lmtp_byte_exact(setup):
    srv, pf = setup
    sent = {"alice": [], "bob": []}
    for n, body in enumerate(BODIES):
        to = ["alice@" + DOMAIN] if n % 2 == 0 else ["alice@" + DOMAIN,
                                                     "bob@" + DOMAIN]
        data = message(n, b", ".join(a.encode() for a in to), body)
        swaks(pf, to, data)
        for a in to:
            sent[a.split("@")[0]].append(data)
    pf.wait_queue_empty(timeout=60)
    for user, msgs in sent.items():
        got = mailbox(srv, user)
        assert len(got) == len(msgs), (user, len(got), pf.log_text()[-4000:])
        by_id = {}
        for g in got:
            trace, rest = postfix.split_trace(g)
            assert trace[0] == b"Return-Path: <%s>" % SENDER.encode(), trace
            assert trace[1] == b"Delivered-To: %s@%s" % (
                user.encode(), DOMAIN.encode()), trace
            assert any(t.startswith(b"Received: from localhost") for t in
                       trace[2:]), trace
            by_id[rest.split(b"Message-ID: ", 1)[1].split(b"\r\n")[0]] = rest
        for m in msgs:
            mid = m.split(b"Message-ID: ", 1)[1].split(b"\r\n")[0]
            assert by_id[mid] == wire_form(m), mid
    assert "status=sent" in pf.log_text()
    srv.check_log()


def test_unknown_recipient_bounces_with_550_5_1_1(setup):
    srv, pf = setup
    swaks(pf, ["nobody@" + DOMAIN], message(99, b"nobody@example.test",
                                             b"to no one\r\n"))
    pf.wait_queue_empty(timeout=60)
    log = pf.log_text()
    assert "status=bounced" in log, log[-4000:]
    assert "550 5.1.1" in log, log[-4000:]
    # The bounce goes back to the sender, a local user, over LMTP too.
    [dsn] = mailbox(srv, "carol")
    assert b"Undelivered Mail Returned to Sender" in dsn
    assert b"nobody@example.test" in dsn
    assert mailbox(srv, "alice") == []


def test_xtnd_xmit_comes_back_over_lmtp(setup):
    srv, pf = setup
    bcc = b"Bcc: Carol <carol@example.test>\r\n"
    sent = (b"From: Alice <alice@example.test>\r\n"
            b"To: Bob <bob@example.test>\r\n" + bcc +
            b"Subject: round trip\r\n"
            b"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
            b"Message-ID: <round-trip@example.test>\r\n"
            b"\r\n"
            b".a line that starts with a dot\r\n")
    with srv.login("alice") as c:
        assert c.command("XTND XMIT") == "+OK Start sending message."
        c.send(wire_form(sent, stuff=True) + b".\r\n")
        assert c.status(timeout=60) == "+OK Message sent successfully"
        c.quit()
    pf.wait_queue_empty(timeout=60)
    expect = sent.replace(bcc, b"")
    for user in ("bob", "carol"):
        [got] = mailbox(srv, user)
        trace, rest = postfix.split_trace(got)
        assert rest == wire_form(expect), user
        assert trace[0] == b"Return-Path: <alice@example.test>", trace
        assert trace[1] == b"Delivered-To: %s@%s" % (user.encode(),
                                                     DOMAIN.encode())
    assert mailbox(srv, "alice") == []
