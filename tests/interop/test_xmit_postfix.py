"""
XTND XMIT end to end through a private Postfix (tests/postfix.py): a
message sent over POP3 goes from posternd to Postfix (its sendmail with
-C, or SMTP to its smtpd through xmit_relay, in the clear or with
STARTTLS), Postfix delivers the test domain with `postern deliver -u
USER` as a pipe(8) transport into posternd's Maildirs, and POP3 fetches
it back byte-exact apart from the trace fields added on the way.  Also
mail injected into Postfix with swaks.  Skipped only when Postfix cannot
run here (not root, or not installed).
"""

import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import harness  # noqa: E402
import postfix  # noqa: E402

DOMAIN = "example.test"
USERS = {"alice": "Alice-Secret-7f3e", "bob": "bob has a long pass phrase",
         "carol": "Carol-Secret-9a1b"}


def stuff(data):
    lines = data.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n"
                    for l in lines) + b".\r\n"


@pytest.fixture
def setup(make_server):
    why = postfix.available()
    if why:
        pytest.skip(why)
    srv = make_server(users=USERS, start=False)
    pf = postfix.Postfix(
        transports={DOMAIN: "postern:"},
        # deliver takes one user: one recipient per pipe run.
        main={"postern_destination_recipient_limit": "1"},
        services=[postfix.pipe_service("postern", [
            harness.postern_path(), "deliver", "-c", srv.conf_path,
            "-f", "${sender}", "-u", "${user}"])])
    srv.update_config({"xmit": True, "xmit_domain": DOMAIN,
                       "xmit_command": pf.sendmail_command("-i")})
    for u in USERS:
        srv.ensure_maildir(u)
    pf.start()
    try:
        srv.start()
        yield srv, pf
    finally:
        pf.cleanup()


def fetch_all(srv, pf, user, want, timeout=60):
    """Waits until user's mailbox holds want messages; returns them."""
    deadline = time.monotonic() + timeout
    while True:
        c = srv.login(user)
        n, _ = c.stat()
        if n >= want or time.monotonic() > deadline:
            msgs = [c.retr(i) for i in range(1, n + 1)]
            c.quit()
            assert n == want, "%s has %d messages, not %d\n%s" % (
                user, n, want, pf.log_text()[-6000:])
            return msgs
        c.quit()
        time.sleep(0.3)


def message(subject, bcc=b""):
    return (b"From: Alice <alice@example.test>\r\n"
            b"To: Bob <bob@example.test>\r\n" + bcc +
            b"Subject: " + subject + b"\r\n"
            b"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
            b"Message-ID: <" + subject.replace(b" ", b"-") +
            b"@example.test>\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\n"
            b"\r\n"
            b"Hello Bob,\r\n"
            b".a line that starts with a dot\r\n"
            b"..and one with two\r\n"
            b"\r\n"
            b"trailing spaces   \r\n"
            b"-- \r\n"
            b"Alice\r\n")


def send(srv, user, data):
    c = srv.login(user)
    assert c.command("XTND XMIT") == "+OK Start sending message."
    c.send(stuff(data))
    assert c.status(timeout=60) == "+OK Message sent successfully"
    c.quit()


def test_xmit_through_postfix_sendmail(setup):
    srv, pf = setup
    bcc = b"Bcc: Carol <carol@example.test>\r\n"
    sent = message(b"via sendmail", bcc)
    send(srv, "alice", sent)
    pf.wait_queue_empty()
    expect = sent.replace(bcc, b"")
    for user in ("bob", "carol"):
        [got] = fetch_all(srv, pf, user, 1)
        assert postfix.strip_trace(got) == expect
        assert b"\r\nbcc:" not in b"\r\n" + got.lower()
        assert b"carol" not in postfix.strip_trace(got).lower()
    # The envelope sender is the From address.
    [got] = fetch_all(srv, pf, "bob", 1)
    assert got.startswith(b"Return-Path: <alice@example.test>\r\n")
    srv.wait_log(r"xmit user=alice msgid=<via-sendmail@example.test>"
                 r" rcpts=2 size=%d outcome=sent exit=0" % len(sent))


def test_xmit_through_postfix_smtpd(setup):
    srv, pf = setup
    srv.update_config({"xmit_relay": "%s:%d" % (pf.host, pf.port)})
    srv.reload()
    srv.wait_log(r"configuration reloaded")
    bcc = b"Bcc: carol@example.test\r\n"
    sent = message(b"via smtpd", bcc)
    # A new session lands on the new generation of workers.
    send(srv, "alice", sent)
    pf.wait_queue_empty()
    expect = sent.replace(bcc, b"")
    for user in ("bob", "carol"):
        [got] = fetch_all(srv, pf, user, 1)
        assert postfix.strip_trace(got) == expect
        assert b"\r\nbcc:" not in b"\r\n" + got.lower()
    assert "smtpd" in pf.log_text()


def test_xmit_through_postfix_smtpd_starttls(make_server):
    why = postfix.available()
    if why:
        pytest.skip(why)
    pki = harness.tls_pki()
    srv = make_server(users=USERS, start=False)
    pf = postfix.Postfix(
        transports={DOMAIN: "postern:"},
        main={"postern_destination_recipient_limit": "1",
              "smtpd_tls_security_level": "may",
              "smtpd_tls_cert_file": pki.cert,
              "smtpd_tls_key_file": pki.key,
              "smtpd_tls_loglevel": "1"},
        services=[postfix.pipe_service("postern", [
            harness.postern_path(), "deliver", "-c", srv.conf_path,
            "-f", "${sender}", "-u", "${user}"])])
    srv.update_config({"xmit": True, "xmit_domain": DOMAIN,
                       "xmit_relay": "localhost:%d" % pf.port,
                       "xmit_relay_starttls": True,
                       "xmit_relay_ca": pki.ca_cert})
    for u in USERS:
        srv.ensure_maildir(u)
    pf.start()
    try:
        srv.start()
        bcc = b"Bcc: carol@example.test\r\n"
        sent = message(b"via smtpd over tls", bcc)
        send(srv, "alice", sent)
        pf.wait_queue_empty()
        for user in ("bob", "carol"):
            [got] = fetch_all(srv, pf, user, 1)
            assert postfix.strip_trace(got) == sent.replace(bcc, b"")
        assert "TLS connection established from localhost" in pf.log_text()
        srv.wait_log(r"submit: relay localhost:%d TLS TLSv1\.[23]" % pf.port)
    finally:
        pf.cleanup()


def test_swaks_into_postfix_then_pop3(setup):
    srv, pf = setup
    if not os.access("/usr/bin/swaks", os.X_OK):
        pytest.skip("swaks is not installed (scripts/install-deps)")
    data = message(b"via swaks").replace(b"To: Bob <bob@example.test>",
                                         b"To: bob@example.test")
    path = os.path.join(pf.dir, "swaks.eml")
    with open(path, "wb") as f:
        # swaks ends DATA with CRLF "." CRLF itself.
        f.write(data[:-2])
    r = subprocess.run(["/usr/bin/swaks", "--server", pf.host, "--port",
                        str(pf.port), "--from", "sender@example.net",
                        "--to", "bob@example.test", "--helo", "localhost",
                        "--data", path, "--silent", "2"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    pf.wait_queue_empty()
    [got] = fetch_all(srv, pf, "bob", 1)
    assert postfix.strip_trace(got) == data
    assert got.startswith(b"Return-Path: <sender@example.net>\r\n")
