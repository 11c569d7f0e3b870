"""
Real POP3 clients over TLS against posternd: implicit TLS (RFC 8314) on
the mailbox's tls_port and STLS (RFC 2595) on its plain port, every
client verifying the server certificate against the test CA.  Each one
downloads the standard corpus (corpus.py) and the result is compared byte
for byte as in the plain-text interop tests (same added fields, same line
ending forms; see test_curl.py, test_fetchmail.py, test_mpop.py,
test_getmail.py, test_poplib.py for what each client does to a message).

The server log then has to show that every login of the client's run
happened on a connection with an established TLS session.
"""

import os
import poplib
import pwd
import re
import shutil
import sys
import tempfile

import pytest

import clients
import corpus
import harness


# ---------------------------------------------------------------- helpers

def log_mark(mb):
    return len(mb.server.log_text())


def assert_logins_over_tls(mb, start, what):
    """Every login logged since start was on a session that had logged
    "tls established" before it; at least one login."""
    tls = set()
    logins = []
    rx = re.compile(r"posternd/pop3\[(\d+)\][^\n]* pop3 session=(\S+) "
                    r"(tls established|login user=)")
    for m in rx.finditer(mb.server.log_text()[start:]):
        key = (m.group(1), m.group(2))
        if m.group(3) == "tls established":
            tls.add(key)
        else:
            logins.append(key)
            assert key in tls, "%s logged in without TLS (session %s):\n%s" \
                % (what, key, mb.server.log_text()[start:][-3000:])
    assert logins, "%s: no login in the log:\n%s" % (
        what, mb.server.log_text()[start:][-3000:])


def _tls_listing(out):
    text = out.decode("ascii")
    assert text.endswith("\r\n"), "curl listing %r" % text[-40:]
    rows = {}
    for line in text.split("\r\n")[:-1]:
        n, val = line.split(" ", 1)
        rows[int(n)] = val
    return rows


# -------------------------------------------------------------------- curl

def _curl(mb, workdir, *args, ok=(0,)):
    curl = clients.require("curl")
    env = clients.client_env(os.path.join(workdir, "home"))
    argv = [curl, "-sS", "--max-time", "100", "--user",
            "%s:%s" % (mb.user, mb.password)] + list(args)
    return clients.run(argv, env=env, ok=ok)


@pytest.mark.parametrize("mode", ["pop3s", "stls"])
def test_curl_tls(tls_mailbox, workdir, mode):
    mb = tls_mailbox
    if mode == "pop3s":
        base = "pop3s://127.0.0.1:%d/" % mb.tls_port
        opts = ["--cacert", mb.ca_file]
    else:
        base = "pop3://127.0.0.1:%d/" % mb.port
        opts = ["--ssl-reqd", "--cacert", mb.ca_file]
    start = log_mark(mb)
    r = _curl(mb, workdir, *(opts + [base]))
    assert {n: int(s) for n, s in _tls_listing(r.stdout).items()} == mb.sizes
    r = _curl(mb, workdir, *(opts + ["-X", "UIDL", base]))
    assert _tls_listing(r.stdout) == mb.uidls
    stored = {}
    for n in sorted(mb.sizes):
        r = _curl(mb, workdir, *(opts + [base + str(n)]))
        assert len(r.stdout) == mb.sizes[n], \
            "curl got %d octets of message %d, LIST said %d" % (
                len(r.stdout), n, mb.sizes[n])
        stored["message %d" % n] = r.stdout
    assert_logins_over_tls(mb, start, "curl " + mode)
    clients.check_messages(stored, corpus.wire, what="curl " + mode)
    clients.assert_untouched(mb)


@pytest.mark.parametrize("mode", ["pop3s", "stls"])
def test_curl_rejects_untrusted_certificate(tls_mailbox, workdir, pki, mode):
    mb = tls_mailbox
    if mode == "pop3s":
        url = "pop3s://127.0.0.1:%d/" % mb.tls_port
        opts = []
    else:
        url = "pop3://127.0.0.1:%d/" % mb.port
        opts = ["--ssl-reqd"]
    # 60: peer certificate cannot be authenticated with known CA certs
    r = _curl(mb, workdir, *(opts + ["--cacert", pki.other_ca_cert, url]),
              ok=(60,))
    assert not r.stdout
    assert mb.server.running()


# --------------------------------------------------------------- fetchmail

MDA = r"""
import os, sys, tempfile
data = sys.stdin.buffer.read()
fd, path = tempfile.mkstemp(dir=sys.argv[1], prefix="msg.")
os.write(fd, data)
os.fsync(fd)
os.close(fd)
"""


@pytest.mark.parametrize("mode", ["ssl", "stls"])
def test_fetchmail_tls(tls_mailbox, workdir, mode):
    mb = tls_mailbox
    fetchmail = clients.require("fetchmail")
    out = os.path.join(workdir, "delivered")
    os.makedirs(out, exist_ok=True)
    mda = os.path.join(workdir, "mda.py")
    with open(mda, "w") as f:
        f.write(MDA)
    # fetchmail 6.4 compares the server name with the certificate's DNS
    # names and CN only, not with IP address SANs: sslcommonname names the
    # DNS name to expect (the certificate holds localhost and 127.0.0.1).
    if mode == "ssl":
        port = mb.tls_port
        tls = "ssl sslcertck sslcertfile \"%s\"" % mb.ca_file
    else:
        port = mb.port
        tls = "sslproto tls1.2+ sslcertck sslcertfile \"%s\"" % mb.ca_file
    tls += " sslcommonname localhost"
    rc = clients.write_private(os.path.join(workdir, "fetchmailrc"), (
        "set no syslog\n"
        "set invisible\n"
        "poll 127.0.0.1 with proto POP3 port %d uidl auth password\n"
        "  user \"%s\" there with password \"%s\" is \"%s\" here\n"
        "  options keep no rewrite %s\n"
        "  mda \"%s %s %s\"\n"
    ) % (port, mb.user, mb.password, mb.user, tls, sys.executable, mda,
         out))
    env = clients.client_env(os.path.join(workdir, "home"))
    argv = [fetchmail, "--fetchmailrc", rc, "--nodetach", "-N",
            "--pidfile", os.path.join(workdir, "fetchmail.pid"),
            "--idfile", os.path.join(workdir, "fetchmail.ids"),
            "--timeout", "60"]
    start = log_mark(mb)
    clients.run(argv, env=env)
    assert_logins_over_tls(mb, start, "fetchmail " + mode)
    clients.check_messages(clients.dir_messages(out), corpus.unix,
                           what="fetchmail " + mode)
    clients.assert_untouched(mb)


# -------------------------------------------------------------------- mpop

@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_mpop_tls(tls_mailbox, workdir, mode):
    mb = tls_mailbox
    mpop = clients.require("mpop")
    dest = clients.make_maildir(os.path.join(workdir, "Maildir"))
    conf = clients.write_private(os.path.join(workdir, "mpoprc"), (
        "defaults\n"
        "account demo\n"
        "host 127.0.0.1\n"
        "port %d\n"
        "tls on\n"
        "tls_starttls %s\n"
        "tls_trust_file %s\n"
        "auth user\n"
        "user %s\n"
        "password %s\n"
        "delivery maildir %s\n"
        "keep on\n"
        "uidls_file %s\n"
        "received_header off\n"
        "timeout 60\n"
    ) % (mb.port if mode == "starttls" else mb.tls_port,
         "on" if mode == "starttls" else "off", mb.ca_file, mb.user,
         mb.password, dest, os.path.join(workdir, "uidls")))
    env = clients.client_env(os.path.join(workdir, "home"))
    start = log_mark(mb)
    clients.run([mpop, "-C", conf, "-a"], env=env)
    assert_logins_over_tls(mb, start, "mpop " + mode)
    clients.check_messages(clients.maildir_messages(dest), corpus.unix,
                           what="mpop " + mode)
    clients.assert_untouched(mb)


# ----------------------------------------------------------------- getmail

@pytest.fixture
def destination():
    """A Maildir for getmail6 (owned by nobody when run as root: getmail6
    refuses to deliver as root)."""
    top = tempfile.mkdtemp(prefix="postern-getmail-")
    os.chmod(top, 0o755)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("nobody")
        dest = clients.make_maildir(os.path.join(top, "Maildir"),
                                    owner=(pw.pw_uid, pw.pw_gid))
        yield dest, "user = nobody\n"
    else:
        yield clients.make_maildir(os.path.join(top, "Maildir")), ""
    shutil.rmtree(top, ignore_errors=True)


def _getmail_rc(mb, workdir, dest, user_line, ca_file, options):
    """Writes a getmailrc for the SSL retriever; returns its path and dir."""
    gdir = os.path.join(workdir, "getmail")
    os.makedirs(gdir, exist_ok=True)
    rc = clients.write_private(os.path.join(gdir, "getmailrc"), (
        "[retriever]\n"
        "type = SimplePOP3SSLRetriever\n"
        "server = 127.0.0.1\n"
        "port = %d\n"
        "username = %s\n"
        "password = %s\n"
        "ca_certs = %s\n"
        "ssl_cert_hostname = localhost\n"
        "timeout = 60\n"
        "\n"
        "[destination]\n"
        "type = Maildir\n"
        "path = %s/\n"
        "%s"
        "\n"
        "[options]\n"
        "%s"
    ) % (mb.tls_port, mb.user, mb.password, ca_file, dest, user_line,
         options))
    return rc, gdir


def test_getmail_pop3_ssl(tls_mailbox, workdir, destination):
    mb = tls_mailbox
    getmail = clients.require("getmail")
    dest, user_line = destination
    rc, gdir = _getmail_rc(mb, workdir, dest, user_line, mb.ca_file, (
        "delete = false\n"
        "read_all = false\n"
        "delivered_to = false\n"
        "received = false\n"
        "message_log_syslog = false\n"
        "verbose = 1\n"))
    env = clients.client_env(os.path.join(workdir, "home"))
    start = log_mark(mb)
    clients.run([getmail, "--getmaildir", gdir, "--rcfile", rc], env=env)
    assert_logins_over_tls(mb, start, "getmail6")
    stored = clients.maildir_messages(dest)
    for where, data in stored.items():
        assert clients.top_fields(data, 1) == [b"Return-Path: <unknown>"], \
            where
    clients.check_messages(stored, corpus.unix, strip=("Return-Path",),
                           what="getmail6")
    clients.assert_untouched(mb)


def test_getmail_rejects_untrusted_certificate(tls_mailbox, workdir, pki,
                                               destination):
    mb = tls_mailbox
    getmail = clients.require("getmail")
    dest, user_line = destination
    rc, gdir = _getmail_rc(mb, workdir, dest, user_line, pki.other_ca_cert, (
        "read_all = false\n"
        "message_log_syslog = false\n"))
    env = clients.client_env(os.path.join(workdir, "home"))
    start = log_mark(mb)
    r = clients.run([getmail, "--getmaildir", gdir, "--rcfile", rc],
                    env=env, ok=range(0, 256))
    assert clients.maildir_messages(dest) == {}, r.stdout
    assert "login user=" not in mb.server.log_text()[start:]
    assert mb.server.running()


# ------------------------------------------------------------------ poplib

@pytest.mark.parametrize("mode", ["pop3_ssl", "stls"])
def test_poplib_tls(tls_mailbox, mode):
    mb = tls_mailbox
    ctx = harness.tls_client_context(mb.ca_file)
    start = log_mark(mb)
    if mode == "pop3_ssl":
        p = poplib.POP3_SSL("127.0.0.1", mb.tls_port, context=ctx,
                            timeout=60)
    else:
        p = poplib.POP3("127.0.0.1", mb.port, timeout=60)
        assert p.stls(ctx).startswith(b"+OK")
    try:
        p.user(mb.user)
        p.pass_(mb.password)
        _, listing, _ = p.list()
        sizes = {int(a): int(b) for a, b in (l.split() for l in listing)}
        assert sizes == mb.sizes
        stored = {}
        for n, size in sorted(sizes.items()):
            resp, lines, octets = p.retr(n)
            assert resp.startswith(b"+OK"), resp
            assert octets == size, (n, octets, size)
            stored["message %d" % n] = b"".join(l + b"\r\n" for l in lines)
    finally:
        assert p.quit().startswith(b"+OK")
    assert_logins_over_tls(mb, start, "poplib " + mode)
    clients.check_messages(stored, corpus.wire, what="poplib " + mode)
    clients.assert_untouched(mb)
