"""
Real clients logging in with SASL (RFC 5034) and APOP, each downloading
the standard corpus (corpus.py) and comparing it byte for byte as the
plain-text interop tests do (test_mpop.py, test_curl.py,
test_fetchmail.py say what each client does to a message).  The server
log must show every login of the run made with the mechanism under test,
so a client that quietly fell back to USER/PASS (or to another mechanism)
fails the test.

The user "demo" has a SHA512-CRYPT password, SCRAM-SHA-1 and -256 keys
and a plaintext-equivalent secret (for CRAM-MD5 and APOP), all written by
the test (sasl_util.passwd_line), not by `postern user add`.

What the clients do, as observed (Debian 12):
- mpop 1.4.18 (GNU SASL 2.2.0): "auth scram-sha-256"/"scram-sha-1" send
  the gs2 header "n,," even over TLS: mpop hands GNU SASL no channel
  binding data, so GNU SASL neither binds nor claims "y" -- not a
  downgrade, and the server accepts it while offering -PLUS.  mpop has no
  "auth scram-sha-256-plus" (its configuration refuses the word).
  "auth external" sends AUTH EXTERNAL, then the user name as authzid in
  the response to the empty challenge.  "auth oauthbearer" puts the whole
  token into an initial response on the AUTH line ("n,a=USER,^Ahost=..
  ^Aport=..^Aauth=Bearer TOKEN^A^A"), however long; "auth xoauth2" sends
  it as the response to an empty challenge.  Its rc file lines are limited
  to 500 characters, so an RS256 token (about 500 characters) comes
  through "passwordeval".
- curl 7.88.1: --login-options AUTH=MECH; without --sasl-ir every
  response follows a challenge.  With --oauth2-bearer and a server that
  offers OAUTHBEARER, curl uses OAUTHBEARER even when asked for XOAUTH2,
  so the XOAUTH2 test runs against a server that offers XOAUTH2 only.
  AUTH=EXTERNAL with --cert/--key sends the user name as authzid.
- fetchmail 6.4.37: "proto APOP" uses the greeting's timestamp; "proto
  POP3 auth cram-md5" uses AUTH CRAM-MD5.
"""

import os
import re
import sys

import pytest

import clients
import corpus
import harness
import sasl_util as su

ISSUER = "https://issuer.example.test"
AUDIENCE = "pop.example.test"


# ---------------------------------------------------------------- mailbox

class Mailbox:
    """What clients.py's helpers need (see tests/interop/conftest.py)."""

    def __init__(self, server, bases):
        self.server = server
        self.host = server.host
        self.port = server.port
        self.tls_port = server.tls_port
        self.ca_file = server.ca_file
        self.user = corpus.USER
        self.password = corpus.PASSWORD
        self.bases = bases
        self.uidls = {}
        self.sizes = {}


def sasl_mailbox(make_server, tls=False, config=None):
    pki = harness.tls_pki()
    keys = su.jwt_keys()
    cfg = {"oauth_issuer": ["%s %s" % (ISSUER, keys.pub("rsa")),
                            "%s %s" % (ISSUER + "/ec", keys.pub("ec"))],
           "oauth_audience": AUDIENCE}
    if tls:
        cfg.update({"tls_client_cert": True, "tls_client_ca": pki.ca_cert})
    cfg.update(config or {})
    srv = make_server(config=cfg, users={}, start=False, tls=tls)
    srv.add_user_line(su.passwd_line(
        corpus.USER, password=corpus.PASSWORD, scram=("sha1", "sha256"),
        secret=corpus.PASSWORD))
    bases = []
    for label, data in corpus.MESSAGES:
        if label in corpus.IN_CUR:
            bases.append(srv.add_message(
                corpus.USER, data,
                name=harness.maildir_unique_name() + ":2,S", subdir="cur"))
        else:
            bases.append(srv.add_message(corpus.USER, data))
    srv.start()
    # the pop3 workers learn what can be verified a moment after they
    # accept (see test_sasl.py test_sasl_offered_from_the_start)
    su.wait_sasl_offered(srv)
    mb = Mailbox(srv, bases)
    p = clients.pop_session(mb)
    try:
        assert p.stat() == (len(corpus.MESSAGES), corpus.TOTAL_WIRE)
        _, lines, _ = p.uidl()
        for line in lines:
            n, u = line.split(b" ", 1)
            mb.uidls[int(n)] = u.decode("ascii")
        _, lines, _ = p.list()
        for line in lines:
            n, s = line.split(b" ", 1)
            mb.sizes[int(n)] = int(s)
    finally:
        p.quit()
    return mb


def token(key="rsa"):
    iss = ISSUER if key == "rsa" else ISSUER + "/ec"
    return su.make_jwt(su.jwt_keys(), key, su.claims(iss, AUDIENCE,
                                                     corpus.USER))


def log_mark(mb):
    return len(mb.server.log_text())


def assert_logins(mb, start, method, tls=None, what="client"):
    """Every login since start was demo's with method (at least one);
    tls=True: each on a session that had established TLS first."""
    text = mb.server.log_text()[start:]
    rx = re.compile(r"pop3\[(\d+)\][^\n]* session=(\S+) "
                    r"(tls established|login user=(\S+) method=(\S+)|"
                    r"login failed[^\n]*)")
    secure, logins = set(), []
    for m in rx.finditer(text):
        key = (m.group(1), m.group(2))
        if m.group(3) == "tls established":
            secure.add(key)
        elif m.group(3).startswith("login failed"):
            pytest.fail("%s: a failed login: %s\n%s" % (what, m.group(0),
                                                         text[-3000:]))
        else:
            logins.append((key, m.group(4), m.group(5)))
    assert logins, "%s: no login in the log:\n%s" % (what, text[-3000:])
    for key, user, meth in logins:
        assert (user, meth) == (corpus.USER, method), \
            "%s logged in as %s with %s, not %s with %s" % (
                what, user, meth, corpus.USER, method)
        if tls:
            assert key in secure, "%s logged in without TLS" % what


# ------------------------------------------------------------------- mpop

def run_mpop(mb, workdir, mech, mode, password=None, cert=None,
             use_eval=False, ok=(0,)):
    """mode: plain, stls, implicit."""
    mpop = clients.require("mpop")
    dest = clients.make_maildir(os.path.join(workdir, "Maildir"))
    lines = ["defaults", "account demo", "host 127.0.0.1",
             "port %d" % (mb.tls_port if mode == "implicit" else mb.port)]
    if mode == "plain":
        lines.append("tls off")
    else:
        lines += ["tls on", "tls_starttls %s" % ("on" if mode == "stls"
                                                 else "off"),
                  "tls_trust_file %s" % mb.ca_file]
    if cert:
        lines += ["tls_cert_file %s" % cert[0], "tls_key_file %s" % cert[1]]
    password = mb.password if password is None else password
    if use_eval:
        pwfile = clients.write_private(os.path.join(workdir, "secret"),
                                       password + "\n")
        lines.append("passwordeval cat %s" % pwfile)
    else:
        lines.append("password %s" % password)
    lines += ["auth %s" % mech, "user %s" % mb.user,
              "delivery maildir %s" % dest, "keep on",
              "uidls_file %s" % os.path.join(workdir, "uidls"),
              "received_header off", "timeout 60"]
    conf = clients.write_private(os.path.join(workdir, "mpoprc"),
                                 "\n".join(lines) + "\n")
    env = clients.client_env(os.path.join(workdir, "home"))
    r = clients.run([mpop, "-C", conf, "-a"], env=env, ok=ok)
    return r, dest


MPOP_CASES = [
    # (mpop auth, server log method, connection)
    ("scram-sha-256", "SCRAM-SHA-256", "implicit"),
    ("scram-sha-256", "SCRAM-SHA-256", "stls"),
    ("scram-sha-256", "SCRAM-SHA-256", "plain"),
    ("scram-sha-1", "SCRAM-SHA-1", "implicit"),
    ("scram-sha-1", "SCRAM-SHA-1", "plain"),
    ("cram-md5", "CRAM-MD5", "plain"),
    ("cram-md5", "CRAM-MD5", "stls"),
    ("plain", "PLAIN", "implicit"),
    ("plain", "PLAIN", "plain"),
    ("login", "LOGIN", "stls"),
]


@pytest.mark.parametrize("mech,method,mode", MPOP_CASES,
                         ids=["%s-%s" % (c[0], c[2]) for c in MPOP_CASES])
def test_mpop_sasl(make_server, workdir, mech, method, mode):
    mb = sasl_mailbox(make_server, tls=mode != "plain")
    start = log_mark(mb)
    _, dest = run_mpop(mb, workdir, mech, mode)
    assert_logins(mb, start, method, tls=mode != "plain",
                  what="mpop auth " + mech)
    clients.check_messages(clients.maildir_messages(dest), corpus.unix,
                           what="mpop auth " + mech)
    clients.assert_untouched(mb)


def test_mpop_has_no_scram_plus(make_server, workdir):
    # Documented above: mpop cannot be asked for the -PLUS variants.
    mb = sasl_mailbox(make_server, tls=True)
    start = log_mark(mb)
    r, dest = run_mpop(mb, workdir, "scram-sha-256-plus", "implicit",
                       ok=range(1, 256))
    assert b"scram-sha-256-plus" in r.stderr, r.stderr
    assert " connect ip=" not in mb.server.log_text()[start:]
    assert clients.maildir_messages(dest) == {}


@pytest.mark.parametrize("mode", ["implicit", "stls"])
def test_mpop_external(make_server, workdir, mode):
    mb = sasl_mailbox(make_server, tls=True)
    cert = harness.tls_pki().issue_client(corpus.USER)
    start = log_mark(mb)
    # no password in the rc file: the certificate is the credential
    _, dest = run_mpop(mb, workdir, "external", mode, password="unused",
                       cert=cert)
    assert_logins(mb, start, "EXTERNAL", tls=True, what="mpop external")
    clients.check_messages(clients.maildir_messages(dest), corpus.unix,
                           what="mpop external")
    clients.assert_untouched(mb)


@pytest.mark.parametrize("mech,method,key", [
    ("oauthbearer", "OAUTHBEARER", "ec"),
    ("oauthbearer", "OAUTHBEARER", "rsa"),
    ("xoauth2", "XOAUTH2", "ec"),
    ("xoauth2", "XOAUTH2", "rsa"),
])
def test_mpop_oauth(make_server, workdir, mech, method, key):
    """The token as mpop's password, over implicit TLS.  ES256 tokens
    (about 250 characters) and RS256 ones (about 500: the common kind;
    mpop's OAUTHBEARER then sends an AUTH line of about 800 octets)."""
    mb = sasl_mailbox(make_server, tls=True)
    start = log_mark(mb)
    _, dest = run_mpop(mb, workdir, mech, "implicit", password=token(key),
                       use_eval=True)
    assert_logins(mb, start, method, tls=True, what="mpop " + mech)
    clients.check_messages(clients.maildir_messages(dest), corpus.unix,
                           what="mpop " + mech)
    clients.assert_untouched(mb)


# ------------------------------------------------------------------- curl

def run_curl(mb, workdir, args, urls, user=None, password=None):
    """One curl run over urls (one session, connection reused); returns
    {url: body}."""
    curl = clients.require("curl")
    env = clients.client_env(os.path.join(workdir, "home"))
    argv = [curl, "-sS", "--max-time", "100", "--user",
            "%s:%s" % (user or mb.user,
                       mb.password if password is None else password)]
    argv += args
    outs = {}
    for i, url in enumerate(urls):
        out = os.path.join(workdir, "out.%d" % i)
        argv += ["-o", out, url]
        outs[url] = out
    clients.run(argv, env=env)
    got = {}
    for url, out in outs.items():
        with open(out, "rb") as f:
            got[url] = f.read()
    return got


def curl_download(mb, workdir, args, base, user=None, password=None):
    """LIST, then every message, in one curl session; compares both."""
    urls = [base] + [base + str(n) for n in sorted(mb.sizes)]
    got = run_curl(mb, workdir, args, urls, user, password)
    listing = got.pop(base).decode("ascii")
    assert listing.endswith("\r\n"), listing[-40:]
    rows = dict(l.split(" ", 1) for l in listing.split("\r\n")[:-1])
    assert {int(n): int(s) for n, s in rows.items()} == mb.sizes
    stored = {}
    for n in sorted(mb.sizes):
        data = got[base + str(n)]
        assert len(data) == mb.sizes[n], (n, len(data), mb.sizes[n])
        stored["message %d" % n] = data
    return stored


CURL_CASES = [
    ("PLAIN", "plain"), ("PLAIN", "pop3s"), ("LOGIN", "plain"),
    ("LOGIN", "pop3s"), ("CRAM-MD5", "plain"), ("CRAM-MD5", "pop3s"),
    ("OAUTHBEARER", "plain"), ("OAUTHBEARER", "pop3s"),
    ("XOAUTH2", "plain"), ("XOAUTH2", "pop3s"),
]


@pytest.mark.parametrize("mech,mode", CURL_CASES,
                         ids=["%s-%s" % c for c in CURL_CASES])
def test_curl_sasl(make_server, workdir, mech, mode):
    config = None
    if mech == "XOAUTH2":
        # curl prefers OAUTHBEARER whenever the server offers it
        config = {"auth_mechanisms": "XOAUTH2 PLAIN LOGIN"}
    mb = sasl_mailbox(make_server, tls=mode == "pop3s", config=config)
    args = ["--login-options", "AUTH=" + mech]
    password = None
    if mech in ("OAUTHBEARER", "XOAUTH2"):
        args += ["--oauth2-bearer", token("rsa")]
        password = ""
    if mode == "pop3s":
        args += ["--cacert", mb.ca_file]
        base = "pop3s://127.0.0.1:%d/" % mb.tls_port
    else:
        base = "pop3://127.0.0.1:%d/" % mb.port
    start = log_mark(mb)
    stored = curl_download(mb, workdir, args, base, password=password)
    assert_logins(mb, start, mech, tls=mode == "pop3s",
                  what="curl AUTH=" + mech)
    clients.check_messages(stored, corpus.wire, what="curl AUTH=" + mech)
    clients.assert_untouched(mb)


def test_curl_sasl_initial_response(make_server, workdir):
    """--sasl-ir: the PLAIN response on the AUTH line.  (curl sends an
    initial response only while the AUTH line stays within 255 octets,
    as RFC 5034 asks, so a bearer token always follows a challenge.)"""
    mb = sasl_mailbox(make_server)
    base = "pop3://127.0.0.1:%d/" % mb.port
    start = log_mark(mb)
    stored = curl_download(mb, workdir, ["--sasl-ir", "--login-options",
                                         "AUTH=PLAIN"], base)
    assert_logins(mb, start, "PLAIN", what="curl --sasl-ir AUTH=PLAIN")
    clients.check_messages(stored, corpus.wire, what="curl --sasl-ir")


@pytest.mark.parametrize("stls", [False, True], ids=["pop3s", "stls"])
def test_curl_external(make_server, workdir, stls):
    mb = sasl_mailbox(make_server, tls=True)
    cert, key = harness.tls_pki().issue_client(corpus.USER)
    args = ["--login-options", "AUTH=EXTERNAL", "--cacert", mb.ca_file,
            "--cert", cert, "--key", key]
    if stls:
        args.append("--ssl-reqd")
        base = "pop3://127.0.0.1:%d/" % mb.port
    else:
        base = "pop3s://127.0.0.1:%d/" % mb.tls_port
    start = log_mark(mb)
    stored = curl_download(mb, workdir, args, base, password="")
    assert_logins(mb, start, "EXTERNAL", tls=True, what="curl EXTERNAL")
    clients.check_messages(stored, corpus.wire, what="curl EXTERNAL")
    clients.assert_untouched(mb)


# -------------------------------------------------------------- fetchmail

MDA = r"""
import os, sys, tempfile
data = sys.stdin.buffer.read()
fd, path = tempfile.mkstemp(dir=sys.argv[1], prefix="msg.")
os.write(fd, data)
os.fsync(fd)
os.close(fd)
"""


def run_fetchmail(mb, workdir, proto, auth):
    fetchmail = clients.require("fetchmail")
    out = os.path.join(workdir, "delivered")
    os.makedirs(out, exist_ok=True)
    mda = os.path.join(workdir, "mda.py")
    with open(mda, "w") as f:
        f.write(MDA)
    rc = clients.write_private(os.path.join(workdir, "fetchmailrc"), (
        "set no syslog\n"
        "set invisible\n"
        "poll 127.0.0.1 with proto %s port %d uidl auth %s\n"
        "  user \"%s\" there with password \"%s\" is \"%s\" here\n"
        "  options keep no rewrite sslproto '' no sslcertck\n"
        "  mda \"%s %s %s\"\n"
    ) % (proto, mb.port, auth, mb.user, mb.password, mb.user,
         sys.executable, mda, out))
    env = clients.client_env(os.path.join(workdir, "home"))
    argv = [fetchmail, "--fetchmailrc", rc, "--nodetach", "-N",
            "--pidfile", os.path.join(workdir, "fetchmail.pid"),
            "--idfile", os.path.join(workdir, "fetchmail.ids"),
            "--timeout", "60"]
    clients.run(argv, env=env)
    return out


def test_fetchmail_apop(make_server, workdir):
    mb = sasl_mailbox(make_server, config={"apop": "yes"})
    start = log_mark(mb)
    out = run_fetchmail(mb, workdir, "APOP", "password")
    assert_logins(mb, start, "APOP", what="fetchmail APOP")
    clients.check_messages(clients.dir_messages(out), corpus.unix,
                           what="fetchmail APOP")
    clients.assert_untouched(mb)


def test_fetchmail_cram_md5(make_server, workdir):
    mb = sasl_mailbox(make_server)
    start = log_mark(mb)
    out = run_fetchmail(mb, workdir, "POP3", "cram-md5")
    assert_logins(mb, start, "CRAM-MD5", what="fetchmail cram-md5")
    clients.check_messages(clients.dir_messages(out), corpus.unix,
                           what="fetchmail cram-md5")
    clients.assert_untouched(mb)
