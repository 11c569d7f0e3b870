"""
curl's pop3:// URLs against posternd.

curl adds nothing: pop3://HOST:PORT/N sends RETR N and writes the message
as it came on the wire, with CRLF line endings and the byte-stuffing
removed; pop3://HOST:PORT/ writes the LIST lines ("n size" CRLF).  A
custom command (-X) is sent instead of LIST/RETR; for a single-line reply
such as DELE curl needs -I (no body), as its manual says.  Every curl run
is one session that ends with QUIT, so a DELE takes effect when it exits.
"""

import os

import clients
import corpus


def _curl(mb, workdir, *args):
    curl = clients.require("curl")
    env = clients.client_env(os.path.join(workdir, "home"))
    argv = [curl, "-sS", "--max-time", "100", "--user",
            "%s:%s" % (mb.user, mb.password)] + list(args)
    return clients.run(argv, env=env)


def _listing(out):
    text = out.decode("ascii")
    assert text.endswith("\r\n"), "curl listing %r" % text[-40:]
    rows = {}
    for line in text.split("\r\n")[:-1]:
        n, val = line.split(" ", 1)
        rows[int(n)] = val
    return rows


def test_curl_keep(mailbox, workdir):
    r = _curl(mailbox, workdir, mailbox.url())
    assert {n: int(s) for n, s in _listing(r.stdout).items()} == \
        mailbox.sizes
    r = _curl(mailbox, workdir, "-X", "UIDL", mailbox.url())
    assert _listing(r.stdout) == mailbox.uidls

    stored = {}
    for n in sorted(mailbox.sizes):
        r = _curl(mailbox, workdir, mailbox.url(n))
        assert len(r.stdout) == mailbox.sizes[n], \
            "curl got %d octets of message %d, LIST said %d" % (
                len(r.stdout), n, mailbox.sizes[n])
        stored["message %d" % n] = r.stdout
    clients.check_messages(stored, corpus.wire, what="curl")
    clients.assert_untouched(mailbox)


def test_curl_delete(mailbox, workdir):
    # Highest number first: message numbers below it do not change when
    # a session deletes it.  Each run: RETR N, then DELE N, then QUIT.
    stored = {}
    count = len(mailbox.sizes)
    for n in sorted(mailbox.sizes, reverse=True):
        out = os.path.join(workdir, "msg.%d" % n)
        _curl(mailbox, workdir, "-o", out, mailbox.url(n), "--next",
              "-sS", "--user", "%s:%s" % (mailbox.user, mailbox.password),
              "-X", "DELE", "-I", mailbox.url(n))
        with open(out, "rb") as f:
            stored[out] = f.read()
        count -= 1
        st = clients.pop_state(mailbox)
        assert st[0] == count, \
            "after RETR+DELE %d: STAT says %d messages" % (n, st[0])
    clients.check_messages(stored, corpus.wire, what="curl")
    clients.assert_emptied(mailbox)
