"""
SASL AUTH (RFC 5034) and its mechanisms: PLAIN (RFC 4616), LOGIN,
CRAM-MD5 (RFC 2195), SCRAM-SHA-1/-256 and their -PLUS variants (RFC 5802,
RFC 7677, channel bindings tls-unique RFC 5929 and tls-exporter RFC 9266),
OAUTHBEARER (RFC 7628) and XOAUTH2 with signed JWTs (RS256, ES256),
EXTERNAL with a verified TLS client certificate; the SASL capability
(RFC 2449) under each condition, master users, per-user LOGIN-DELAY and
session caps, line limits, and what the log shows.

The client side (SCRAM, JWT minting, channel bindings) is tests/sasl_util.py;
the SCRAM keys are computed here and written with Server.add_user_line().

Most tests share one module server (TLS, client certificates, two OAuth
issuers, master user admin) with a failure delay of 10-20 ms so that the
many negative tests stay fast; the growth of that delay is
test_bruteforce.py's subject.
"""

import hmac
import json
import os
import re
import ssl
import time

import pytest

import harness
import sasl_util as su
from harness import assert_glob, tls_client_context, wire_size
from sasl_util import b64e, b64d

FAIL = "-ERR [AUTH] Authentication failed."
UNSUPPORTED = "-ERR Unsupported authentication mechanism."
BAD_B64 = "-ERR Invalid base64 data."
CANCELLED = "-ERR Authentication cancelled."
TOO_LONG = "-ERR Line too long."
MALFORMED = "-ERR Malformed authentication data."
PLAINTEXT_STLS = ("-ERR [AUTH] Plaintext authentication is not allowed on "
                  "this connection; use STLS.")
PLAINTEXT_NO_TLS = ("-ERR [AUTH] Plaintext authentication is not allowed on "
                    "this connection.")

ALL_PLAIN = ["SCRAM-SHA-256", "SCRAM-SHA-1", "OAUTHBEARER", "XOAUTH2",
             "CRAM-MD5", "PLAIN", "LOGIN"]
ALL_TLS = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS",
           "SCRAM-SHA-1", "OAUTHBEARER", "XOAUTH2", "CRAM-MD5", "PLAIN",
           "LOGIN"]
ALL_TLS_CERT = ALL_TLS[:6] + ["EXTERNAL"] + ALL_TLS[6:]

ISSUER = "https://issuer.example.test"
EC_ISSUER = "https://ec.example.test"
AUDIENCE = "pop.example.test"

PW = {
    "alice": "Alice-Sasl-Pass-91c",
    "bob": "bob-plain secret 7",
    "carol": "Carol-Scram-Only-3e",
    "dave": "Dave-Disabled-55a",
    "admin": "Admin-Master-Key-8d",
}

MAIL = {
    "alice": [b"From: a@example.org\nSubject: one\n\nalice one\n",
              b"From: a@example.org\nSubject: two\n\nalice two\n.dot\n"],
    "bob": [b"From: b@example.org\nSubject: bob\n\nbob's only\n"],
    "carol": [b"Subject: c1\n\nc\n", b"Subject: c2\n\ncc\n",
              b"Subject: c3\n\nccc\n"],
    "dave": [b"Subject: d\n\nd\n"],
}


def mailbox_state(user):
    msgs = MAIL.get(user, [])
    return len(msgs), sum(wire_size(m) for m in msgs)


def logged_in(user):
    n, octets = mailbox_state(user)
    return "+OK Logged in, %d messages (%d octets)." % (n, octets)


def user_lines(pw=PW):
    return [
        su.passwd_line("alice", password=pw["alice"],
                       scram=("sha1", "sha256"), secret=pw["alice"]),
        su.passwd_line("bob", plain=pw["bob"]),
        carol_line(),
        su.passwd_line("dave", plain=pw["dave"], scram=("sha1", "sha256"),
                       disabled="yes"),
        su.passwd_line("admin", password=pw["admin"], scram=("sha256",)),
    ]


def carol_line():
    # carol: no password, SCRAM-SHA-256 keys only.
    return "carol:::::::" + su.scram_extra(PW["carol"], "sha256")


def fill(srv, users=MAIL):
    for user, msgs in users.items():
        srv.ensure_maildir(user)
        for m in msgs:
            srv.add_message(user, m)


def crypt_users(srv):
    """alice and bob with SHA512-CRYPT passwords only (written here, not by
    `postern user add`, which may add other credential forms)."""
    for name in ("alice", "bob"):
        srv.add_user_line(su.passwd_line(name, password=PW[name]))


def oauth_config(keys):
    return {
        "oauth_issuer": ["%s %s" % (ISSUER, keys.pub("rsa")),
                         "%s %s" % (EC_ISSUER, keys.pub("ec"))],
        "oauth_audience": AUDIENCE,
    }


@pytest.fixture(autouse=True)
def _workers_survive(make_server):
    """No posternd worker may die during a test (a crash the client side
    might not notice: the master restarts the worker)."""
    marks = {s: len(s.log_text()) for s in list(harness.Server.live)}
    yield
    for s in list(harness.Server.live):
        m = re.search(r"[^\n]*worker pid=\d+ died(?! \(signal 9\))[^\n]*",
                      s.log_text()[marks.get(s, 0):])
        assert not m, "posternd: %s (files in %s)" % (m.group(0), s.dir)


@pytest.fixture(scope="module")
def keys():
    return su.jwt_keys()


@pytest.fixture(scope="module")
def srv(make_module_server, keys):
    pki = harness.tls_pki()
    cfg = {"tls_client_cert": True, "tls_client_ca": pki.ca_cert,
           "auth_master_users": "admin",
           "auth_fail_delay": "10ms", "auth_fail_delay_max": "20ms"}
    cfg.update(oauth_config(keys))
    s = make_module_server(config=cfg, users={}, start=False, tls=True)
    for line in user_lines():
        s.add_user_line(line)
    fill(s)
    boot(s)
    return s


def boot(s, tls=False):
    """Starts s and waits until its workers offer SASL (the start-up race
    itself is test_sasl_offered_from_the_start's business)."""
    s.start()
    su.wait_sasl_offered(s, tls=tls)


def cert_context(srv, cn, email=None):
    cert, key = harness.tls_pki().issue_client(cn, email)
    return tls_client_context(srv.ca_file, cert=cert, key=key)


# ------------------------------------------------------------------ helpers

COMMAND_LINE_MAX = 512      # max_line_length's default


def start(c, mech, ir=None):
    """AUTH mech [initial response]; ir: bytes (b"" is sent as "=").  An
    initial response that would make the AUTH line longer than a command
    line may be (an RS256 token) is sent as the response to the first,
    empty, challenge instead, as RFC 5034 section 4 tells clients to."""
    if ir is None:
        return c.command("AUTH " + mech)
    arg = b64e(ir) if ir else "="
    line = "AUTH %s %s" % (mech, arg)
    if len(line) <= COMMAND_LINE_MAX:
        return c.command(line)
    st = c.command("AUTH " + mech)
    if st != "+ ":
        return st
    return c.command(arg)


def respond(c, data):
    return c.command(b64e(data) if data else "")


def challenge(st):
    assert st.startswith("+ "), "expected a challenge, got %r" % st
    return b64d(st[2:])


def sasl_names(c):
    lines = [l for l in c.capa() if l.split()[0].upper() == "SASL"]
    assert len(lines) <= 1, lines
    return lines[0].split()[1:] if lines else None


def auth_listing(c):
    st, lines = c.multi_lines("AUTH")
    assert st == "+OK Mechanisms follow", st
    return lines


def plain_msg(authcid, password, authzid=""):
    return ("%s\0%s\0%s" % (authzid, authcid, password)).encode("utf-8")


def assert_session(c, user):
    """The session is user's: STAT shows user's mailbox."""
    assert c.stat() == mailbox_state(user)


def scram_mech(hash_name, plus=False):
    return {"sha1": "SCRAM-SHA-1", "sha256": "SCRAM-SHA-256"}[hash_name] + \
        ("-PLUS" if plus else "")


def scram_run(c, client, mech, ir=True):
    """Runs a SCRAM exchange through client-final; returns the reply to
    client-final (None if the server failed at client-first: then the
    reply is in client.first_reply)."""
    if ir:
        st = start(c, mech, client.first())
    else:
        st = start(c, mech)
        assert st == "+ ", "SCRAM without initial response: %r" % st
        st = respond(c, client.first())
    client.first_reply = st
    if not st.startswith("+ "):
        return None
    return respond(c, client.final(challenge(st)))


def scram_login(c, client, mech, user, ir=True):
    st = scram_run(c, client, mech, ir)
    assert st is not None, "SCRAM client-first refused: %r" % \
        client.first_reply
    client.verify(challenge(st))
    assert c.command("") == logged_in(user)


def scram_fails(c, client, mech, ir=True, early_ok=False):
    """The exchange ends in the [AUTH] failure.  early_ok: the server may
    refuse at client-first already (it can tell there)."""
    st = scram_run(c, client, mech, ir)
    if st is None:
        assert early_ok, "SCRAM failed at client-first: %r" % \
            client.first_reply
        assert client.first_reply == FAIL
        return
    assert st == FAIL, "SCRAM client-final answered %r" % st


def oauth_invalid(c, st):
    """RFC 7628 section 3.2.2: the error challenge, the client's ^A, then
    the failure."""
    data = challenge(st)
    assert json.loads(data) == {"status": "invalid_token"}, data
    assert c.command("AQ==") == FAIL


# ---------------------------------------------------------- AUTH basics

def test_capa_sasl_plain_connection(srv):
    with srv.connect() as c:
        assert sasl_names(c) == ALL_PLAIN
        assert auth_listing(c) == ALL_PLAIN


def test_capa_sasl_implicit_tls(srv):
    with srv.connect_tls() as c:
        assert sasl_names(c) == ALL_TLS
        assert auth_listing(c) == ALL_TLS


def test_capa_sasl_after_stls(srv):
    with srv.connect() as c:
        assert_glob(c.stls(srv.ca_file), "+OK*")
        assert sasl_names(c) == ALL_TLS
        assert auth_listing(c) == ALL_TLS


def test_capa_sasl_with_client_certificate(srv):
    with srv.connect_tls(context=cert_context(srv, "alice")) as c:
        assert sasl_names(c) == ALL_TLS_CERT
        assert auth_listing(c) == ALL_TLS_CERT


def test_capa_no_sasl_after_login(srv):
    with srv.connect() as c:
        assert start(c, "PLAIN", plain_msg("alice", PW["alice"])) == \
            logged_in("alice")
        assert sasl_names(c) is None
        assert not any(l.startswith("USER") for l in c.capa())


def test_capa_policy_lines_before_and_after_login(make_server):
    s = make_server(start=False, users={})
    s.add_user_line(su.passwd_line("frank", plain="Frank-Pw-1",
                                   login_delay=45, expire=7))
    s.add_user_line(su.passwd_line("gina", plain="Gina-Pw-2"))
    boot(s)
    with s.connect() as c:
        capa = c.capa()
        assert "EXPIRE NEVER USER" in capa and "LOGIN-DELAY 0 USER" in capa
        assert start(c, "PLAIN", plain_msg("frank", "Frank-Pw-1")) == \
            "+OK Logged in, 0 messages (0 octets)."
        capa = c.capa()
        assert "EXPIRE 7" in capa and "LOGIN-DELAY 45" in capa, capa
        assert not [l for l in capa if l.endswith(" USER")], capa
    with s.connect() as c:
        assert start(c, "PLAIN", plain_msg("gina", "Gina-Pw-2")).startswith(
            "+OK Logged in")
        capa = c.capa()
        assert "EXPIRE NEVER" in capa and "LOGIN-DELAY 0" in capa, capa


def test_sasl_offered_from_the_start(make_server, keys):
    """Once posternd greets, every session can authenticate: no window in
    which a pop3 worker accepts sessions before it knows what the auth
    workers can verify (so CAPA would list no SASL and AUTH would call
    every mechanism unsupported) -- neither at start-up nor after a
    worker restart."""
    s = make_server(config=oauth_config(keys), users={}, start=False,
                    tls=True)
    for line in user_lines():
        s.add_user_line(line)
    s.start()
    ok = "+OK Logged in, 0 messages (0 octets)."
    with s.connect() as c:
        assert start(c, "PLAIN", plain_msg("admin", PW["admin"])) == ok
    for _ in range(6):
        with s.connect() as c:
            assert sasl_names(c) == ALL_PLAIN
    old = set(s.kill_worker("pop3", all=True))
    deadline = time.monotonic() + 10
    while len(set(s.worker_pids("pop3")) - old) < 2:
        assert time.monotonic() < deadline, "pop3 workers not restarted"
        time.sleep(0.01)
    for i in range(6):
        with s.connect() as c:
            if i % 2:
                assert start(c, "PLAIN", plain_msg("admin", PW["admin"])) \
                    == ok
            else:
                assert sasl_names(c) == ALL_PLAIN


@pytest.mark.parametrize("mech", ["BOGUS", "GSSAPI", "DIGEST-MD5", "NTLM",
                                  "SCRAM-SHA-512", "PLAINX"])
def test_unknown_mechanism(srv, mech):
    with srv.connect() as c:
        assert start(c, mech) == UNSUPPORTED
        assert start(c, mech, b"x") == UNSUPPORTED
        assert c.capa()


@pytest.mark.parametrize("mech", ["EXTERNAL", "SCRAM-SHA-256-PLUS",
                                  "SCRAM-SHA-1-PLUS"])
def test_mechanism_not_offered_on_plain_connection(srv, mech):
    with srv.connect() as c:
        assert start(c, mech) == UNSUPPORTED
        assert start(c, mech, b"n,,n=alice,r=abcdefgh") == UNSUPPORTED
        assert_glob(c.command("NOOP"), "-ERR*")     # still AUTHORIZATION


def test_external_not_offered_without_client_certificate(srv):
    with srv.connect_tls() as c:
        assert start(c, "EXTERNAL", b"") == UNSUPPORTED
        assert start(c, "EXTERNAL") == UNSUPPORTED


def test_auth_in_transaction_state(srv):
    with srv.connect() as c:
        assert start(c, "PLAIN", plain_msg("bob", PW["bob"])) == \
            logged_in("bob")
        assert_glob(start(c, "PLAIN", plain_msg("bob", PW["bob"])), "-ERR*")
        assert c.stat() == mailbox_state("bob")


# --------------------------------------------------------------- PLAIN

def test_plain_initial_response(srv):
    with srv.connect() as c:
        assert start(c, "PLAIN", plain_msg("alice", PW["alice"])) == \
            logged_in("alice")
        assert_session(c, "alice")
        assert_glob(c.quit(), "+OK*")


def test_plain_without_initial_response(srv):
    with srv.connect() as c:
        assert start(c, "PLAIN") == "+ "
        assert respond(c, plain_msg("bob", PW["bob"])) == logged_in("bob")
        assert_session(c, "bob")


def test_plain_password_with_spaces(srv):
    assert " " in PW["bob"]
    with srv.connect() as c:
        assert start(c, "PLAIN", plain_msg("bob", PW["bob"])) == \
            logged_in("bob")


def test_plain_over_tls(srv):
    with srv.connect_tls() as c:
        assert start(c, "PLAIN", plain_msg("alice", PW["alice"])) == \
            logged_in("alice")


def test_plain_wrong_password_and_unknown_user_same_reply(srv):
    with srv.connect() as c:
        assert start(c, "PLAIN", plain_msg("alice", "wrong")) == FAIL
        assert start(c, "PLAIN", plain_msg("nosuchuser", "wrong")) == FAIL
        # carol has no password at all: PLAIN cannot succeed
        assert start(c, "PLAIN", plain_msg("carol", PW["carol"])) == FAIL
    with srv.connect() as c:
        assert start(c, "PLAIN") == "+ "
        assert respond(c, plain_msg("alice", PW["alice"] + "x")) == FAIL
        # the session goes on after a failure
        assert start(c, "PLAIN", plain_msg("alice", PW["alice"])) == \
            logged_in("alice")


def test_plain_password_taken_verbatim(srv):
    with srv.connect() as c:
        assert start(c, "PLAIN", plain_msg("alice", PW["alice"] + " ")) == \
            FAIL
        assert start(c, "PLAIN", plain_msg("alice", PW["alice"].upper())) \
            == FAIL


def test_plain_authzid_same_as_authcid(srv):
    with srv.connect() as c:
        assert start(c, "PLAIN", plain_msg("alice", PW["alice"],
                                           authzid="alice")) == \
            logged_in("alice")


def test_plain_authzid_refused_for_ordinary_user(srv):
    with srv.connect() as c:
        # bob's credentials are right, but bob may not act as alice
        assert start(c, "PLAIN", plain_msg("bob", PW["bob"],
                                           authzid="alice")) == FAIL
        assert c.capa()


def test_plain_master_user(srv):
    with srv.connect() as c:
        assert start(c, "PLAIN", plain_msg("admin", PW["admin"],
                                           authzid="carol")) == \
            logged_in("carol")
        assert_session(c, "carol")
        assert c.retr(3) == harness.wire_form(MAIL["carol"][2])
    srv.wait_log(r"login user=carol method=PLAIN")


@pytest.mark.parametrize("authzid,password", [
    ("alice", "wrong-admin-password"),      # the master's own password
    ("dave", PW["admin"]),                  # disabled target
    ("nosuchuser", PW["admin"]),            # unknown target
])
def test_plain_master_user_refused(srv, authzid, password):
    with srv.connect() as c:
        assert start(c, "PLAIN", plain_msg("admin", password,
                                           authzid=authzid)) == FAIL


def test_plain_master_user_alone_is_itself(srv):
    with srv.connect() as c:
        assert start(c, "PLAIN", plain_msg("admin", PW["admin"])) == \
            logged_in("admin")


def test_plain_malformed(srv):
    # Valid base64, but no NUL separators; or too many.  PLAIN via a SASL
    # library may call this a failure rather than a malformed message.
    for msg in (b"alice" + PW["alice"].encode(), b"\0alice",
                b"a\0b\0c\0d"):
        with srv.connect() as c:
            st = start(c, "PLAIN", msg)
            assert st in (MALFORMED, FAIL), (msg, st)
            assert c.capa()


def test_plain_empty_initial_response(srv):
    # RFC 5034 section 4: "=" is an initial response of zero octets, not
    # an absent one; for PLAIN that is a message without its NULs.
    with srv.connect() as c:
        assert c.command("AUTH PLAIN =") in (MALFORMED, FAIL)
        assert c.capa()


# --------------------------------------------------------------- LOGIN

def login_mech(c, user, password, ir=False):
    if ir:
        st = start(c, "LOGIN", user.encode())
    else:
        st = start(c, "LOGIN")
        challenge(st)
        st = respond(c, user.encode())
    challenge(st)
    return respond(c, password.encode())


def test_login_mechanism(srv):
    with srv.connect() as c:
        assert login_mech(c, "alice", PW["alice"]) == logged_in("alice")
        assert_session(c, "alice")


def test_login_mechanism_password_with_spaces(srv):
    with srv.connect() as c:
        assert login_mech(c, "bob", PW["bob"]) == logged_in("bob")


def test_login_mechanism_failures(srv):
    with srv.connect() as c:
        assert login_mech(c, "alice", "wrong") == FAIL
        assert login_mech(c, "nosuchuser", "wrong") == FAIL
    with srv.connect() as c:
        assert login_mech(c, "dave", PW["dave"]) == FAIL


def test_login_mechanism_cancel(srv):
    with srv.connect() as c:
        challenge(start(c, "LOGIN"))
        challenge(respond(c, b"alice"))
        assert c.command("*") == CANCELLED
        assert login_mech(c, "alice", PW["alice"]) == logged_in("alice")


# ------------------------------------------------------------ CRAM-MD5

CRAM_CHALLENGE = re.compile(rb"<[^<>@\s]+@[^<>@\s]+>\Z")


def cram(c, user, secret):
    ch = challenge(start(c, "CRAM-MD5"))
    assert CRAM_CHALLENGE.match(ch), "CRAM-MD5 challenge %r" % ch
    return respond(c, su.cram_md5_response(user, secret, ch)), ch


def test_cram_md5(srv):
    with srv.connect() as c:
        st, ch1 = cram(c, "alice", PW["alice"])
        assert st == logged_in("alice")
        assert_session(c, "alice")
    with srv.connect() as c:
        st, ch2 = cram(c, "bob", PW["bob"])        # {PLAIN} is a secret
        assert st == logged_in("bob")
    assert ch1 != ch2


def test_cram_md5_over_tls(srv):
    with srv.connect_tls() as c:
        assert cram(c, "bob", PW["bob"])[0] == logged_in("bob")


def test_cram_md5_failures(srv):
    with srv.connect() as c:
        assert cram(c, "alice", "wrong")[0] == FAIL
        assert cram(c, "nosuchuser", PW["alice"])[0] == FAIL
        # carol has no secret (SCRAM keys only)
        assert cram(c, "carol", PW["carol"])[0] == FAIL
    with srv.connect() as c:
        assert cram(c, "dave", PW["dave"])[0] == FAIL


def test_cram_md5_replay_of_other_challenge(srv):
    with srv.connect() as c1, srv.connect() as c2:
        ch1 = challenge(start(c1, "CRAM-MD5"))
        ch2 = challenge(start(c2, "CRAM-MD5"))
        assert ch1 != ch2
        # c2 answers with the digest of c1's challenge
        assert respond(c2, su.cram_md5_response("alice", PW["alice"],
                                                ch1)) == FAIL
        assert respond(c1, su.cram_md5_response("alice", PW["alice"],
                                                ch1)) == logged_in("alice")


def test_cram_md5_malformed(srv):
    with srv.connect() as c:
        challenge(start(c, "CRAM-MD5"))
        assert respond(c, b"alice-without-a-digest") in (MALFORMED, FAIL)
        assert c.capa()


# --------------------------------------------------------------- SCRAM

@pytest.mark.parametrize("hash_name", ["sha1", "sha256"])
@pytest.mark.parametrize("ir", [True, False], ids=["ir", "no-ir"])
def test_scram(srv, hash_name, ir):
    mech = scram_mech(hash_name)
    with srv.connect() as c:
        cl = su.ScramClient("alice", PW["alice"], hash_name)
        scram_login(c, cl, mech, "alice", ir=ir)
        assert cl.iterations == 4096
        assert_session(c, "alice")
        assert_glob(c.quit(), "+OK*")
    srv.wait_log(r"login user=alice method=%s messages=2" % mech)


def test_scram_user_with_scram_keys_only(srv):
    with srv.connect() as c:
        scram_login(c, su.ScramClient("carol", PW["carol"]),
                    "SCRAM-SHA-256", "carol")
        assert_session(c, "carol")


def test_scram_salt_and_nonce_fresh(srv):
    nonces = set()
    for _ in range(2):
        with srv.connect() as c:
            cl = su.ScramClient("alice", PW["alice"])
            scram_login(c, cl, "SCRAM-SHA-256", "alice")
            nonces.add(cl.server_nonce[len(cl.nonce):])
    assert len(nonces) == 2


@pytest.mark.parametrize("hash_name", ["sha1", "sha256"])
def test_scram_wrong_password(srv, hash_name):
    with srv.connect() as c:
        scram_fails(c, su.ScramClient("alice", "wrong", hash_name),
                    scram_mech(hash_name))
        assert c.capa()


@pytest.mark.parametrize("hash_name", ["sha1", "sha256"])
def test_scram_unknown_user_looks_like_wrong_password(srv, hash_name):
    """The server may not reveal that a user does not exist: a server-first
    message (salt, iterations) all the same, then the same failure."""
    with srv.connect() as c:
        cl = su.ScramClient("nosuchuser", "whatever", hash_name)
        st = scram_run(c, cl, scram_mech(hash_name))
        assert st == FAIL, (cl.first_reply, st)


def test_scram_sha1_without_sha1_keys(srv):
    # carol has SCRAM-SHA-256 keys only; SCRAM-SHA-1 fails like a wrong
    # password.
    with srv.connect() as c:
        cl = su.ScramClient("carol", PW["carol"], "sha1")
        assert scram_run(c, cl, "SCRAM-SHA-1") == FAIL


def test_scram_disabled_user(srv):
    with srv.connect() as c:
        cl = su.ScramClient("dave", PW["dave"])
        assert scram_run(c, cl, "SCRAM-SHA-256") == FAIL


def test_scram_user_without_scram_keys(srv):
    # bob has only a {PLAIN} password: no SCRAM keys to check against.
    with srv.connect() as c:
        assert scram_run(c, su.ScramClient("bob", PW["bob"]),
                         "SCRAM-SHA-256") == FAIL


def test_scram_tampered_proof_nonce_and_binding(srv):
    with srv.connect() as c:
        cl = su.ScramClient("alice", PW["alice"])
        sf = challenge(start(c, "SCRAM-SHA-256", cl.first()))
        assert respond(c, cl.final(sf, proof=os.urandom(32))) == FAIL
    with srv.connect() as c:
        cl = su.ScramClient("alice", PW["alice"])
        sf = challenge(start(c, "SCRAM-SHA-256", cl.first()))
        final = cl.final(sf, nonce=cl.nonce + "forged")
        assert respond(c, final) in (FAIL, MALFORMED)
    with srv.connect() as c:
        # c= must repeat the gs2 header of client-first
        cl = su.ScramClient("alice", PW["alice"])
        sf = challenge(start(c, "SCRAM-SHA-256", cl.first()))
        final = cl.final(sf).replace(b"c=biws", b"c=" + b64e(
            b"y,,").encode())
        assert respond(c, final) in (FAIL, MALFORMED)


def test_scram_master_user_authzid(srv):
    with srv.connect() as c:
        scram_login(c, su.ScramClient("admin", PW["admin"],
                                      authzid="alice"),
                    "SCRAM-SHA-256", "alice")
        assert_session(c, "alice")


def test_scram_authzid_refused_for_ordinary_user(srv):
    with srv.connect() as c:
        cl = su.ScramClient("carol", PW["carol"], authzid="alice")
        scram_fails(c, cl, "SCRAM-SHA-256", early_ok=True)


def test_scram_y_flag_on_plain_connection(srv):
    # "y": the client could bind but thinks the server cannot.  On a
    # plain connection, where no -PLUS is offered, that is the truth.
    with srv.connect() as c:
        scram_login(c, su.ScramClient("alice", PW["alice"], cb_flag="y"),
                    "SCRAM-SHA-256", "alice")


@pytest.mark.parametrize("hash_name", ["sha1", "sha256"])
def test_scram_downgrade_detected_on_tls(srv, hash_name):
    # On TLS the server offers -PLUS; "y" means someone removed it
    # (RFC 5802 section 6).
    with srv.connect_tls() as c:
        cl = su.ScramClient("alice", PW["alice"], hash_name, cb_flag="y")
        scram_fails(c, cl, scram_mech(hash_name), early_ok=True)
    with srv.connect() as c:
        assert_glob(c.stls(srv.ca_file), "+OK*")
        cl = su.ScramClient("alice", PW["alice"], hash_name, cb_flag="y")
        scram_fails(c, cl, scram_mech(hash_name), early_ok=True)


def test_scram_without_binding_on_tls(srv):
    # "n": a client that does not support channel binding at all.
    with srv.connect_tls() as c:
        scram_login(c, su.ScramClient("alice", PW["alice"]),
                    "SCRAM-SHA-256", "alice")


def test_scram_cancel(srv):
    with srv.connect() as c:
        cl = su.ScramClient("alice", PW["alice"])
        challenge(start(c, "SCRAM-SHA-256", cl.first()))
        assert c.command("*") == CANCELLED
        assert c.capa()
        scram_login(c, su.ScramClient("alice", PW["alice"]),
                    "SCRAM-SHA-256", "alice")


def test_scram_final_empty_response_required(srv):
    # After v=, the client's next line must be empty; anything else
    # ends the exchange without a login.
    with srv.connect() as c:
        cl = su.ScramClient("alice", PW["alice"])
        st = scram_run(c, cl, "SCRAM-SHA-256")
        cl.verify(challenge(st))
        st = respond(c, b"unexpected")
        assert st in (FAIL, MALFORMED), st
        assert_glob(c.command("STAT"), "-ERR*")


def test_scram_malformed_client_first(srv):
    for msg in (b"x,,n=alice,r=abc", b"n,,r=abc", b"n,,n=alice",
                b"n,,n=,r=abc", b"p,,n=alice,r=abc"):
        with srv.connect() as c:
            st = start(c, "SCRAM-SHA-256", msg)
            assert st in (MALFORMED, FAIL), (msg, st)
            assert c.capa()


# ----------------------------------------------------------- SCRAM -PLUS

def tls12_context(srv, **kw):
    return tls_client_context(srv.ca_file,
                              max_version=ssl.TLSVersion.TLSv1_2, **kw)


def tls13_context(srv, **kw):
    return tls_client_context(srv.ca_file,
                              min_version=ssl.TLSVersion.TLSv1_3, **kw)


@pytest.mark.parametrize("hash_name", ["sha1", "sha256"])
def test_scram_plus_tls_unique(srv, hash_name):
    with srv.connect_tls(context=tls12_context(srv)) as c:
        assert c.tls_version == "TLSv1.2"
        cl = su.ScramClient("alice", PW["alice"], hash_name, cb_flag="p",
                            cb_name="tls-unique", cb_data=su.tls_unique(c))
        scram_login(c, cl, scram_mech(hash_name, plus=True), "alice")
        assert_session(c, "alice")


@pytest.mark.parametrize("hash_name", ["sha1", "sha256"])
def test_scram_plus_tls_exporter_tls13(srv, hash_name):
    with srv.connect_tls(context=tls13_context(srv)) as c:
        assert c.tls_version == "TLSv1.3"
        cl = su.ScramClient("alice", PW["alice"], hash_name, cb_flag="p",
                            cb_name="tls-exporter",
                            cb_data=su.tls_exporter(c))
        scram_login(c, cl, scram_mech(hash_name, plus=True), "alice")
    srv.wait_log(r"login user=alice method=%s " % scram_mech(hash_name,
                                                           True))


def test_scram_plus_tls_unique_resumed_session(srv):
    # RFC 5929 section 3.1: on a resumed handshake tls-unique is the
    # server's Finished message, the first one sent.
    ctx = tls12_context(srv)
    with srv.connect_tls(context=ctx) as c:
        assert_glob(c.command("NOOP"), "-ERR*")   # session ticket arrives
        session = c.tls.session
        assert_glob(c.quit(), "+OK*")
    with srv.connect_tls(context=ctx, session=session) as c:
        assert c.tls.session_reused, "the TLS 1.2 session was not resumed"
        cl = su.ScramClient("alice", PW["alice"], cb_flag="p",
                            cb_name="tls-unique", cb_data=su.tls_unique(c))
        scram_login(c, cl, "SCRAM-SHA-256-PLUS", "alice")


def test_scram_plus_tls_exporter_tls12_with_ems(srv):
    # OpenSSL negotiates the extended master secret by default, so
    # tls-exporter is offered on TLS 1.2 too (RFC 9266 section 4.2).
    with srv.connect_tls(context=tls12_context(srv)) as c:
        cl = su.ScramClient("alice", PW["alice"], cb_flag="p",
                            cb_name="tls-exporter",
                            cb_data=su.tls_exporter(c))
        scram_login(c, cl, "SCRAM-SHA-256-PLUS", "alice")


def test_scram_plus_after_stls(srv):
    with srv.connect() as c:
        assert_glob(c.stls(context=tls13_context(srv)), "+OK*")
        cl = su.ScramClient("carol", PW["carol"], cb_flag="p",
                            cb_name="tls-exporter",
                            cb_data=su.tls_exporter(c))
        scram_login(c, cl, "SCRAM-SHA-256-PLUS", "carol")


def test_scram_plus_master_user(srv):
    with srv.connect_tls(context=tls13_context(srv)) as c:
        cl = su.ScramClient("admin", PW["admin"], authzid="bob", cb_flag="p",
                            cb_name="tls-exporter",
                            cb_data=su.tls_exporter(c))
        scram_login(c, cl, "SCRAM-SHA-256-PLUS", "bob")
        assert_session(c, "bob")


def test_scram_plus_exporter_from_openssl_s_client(srv):
    """tls-exporter as `openssl s_client -keymatexport` reports it for its
    own connection: an implementation of RFC 9266 independent of this
    test's ctypes route."""
    for starttls, port in ((False, srv.tls_port), (True, srv.port)):
        with su.SClientPop3(srv.host, port, srv.ca_file,
                            starttls=starttls) as c:
            if not starttls:
                assert_glob(c.greeting, "+OK*")
            cl = su.ScramClient("alice", PW["alice"], cb_flag="p",
                                cb_name="tls-exporter", cb_data=c.exporter)
            st = c.command("AUTH SCRAM-SHA-256-PLUS " + b64e(cl.first()))
            st = c.command(b64e(cl.final(challenge(st))))
            cl.verify(challenge(st))
            assert c.command("") == logged_in("alice")
            assert_glob(c.command("STAT"), "+OK 2 *")
            assert_glob(c.command("QUIT"), "+OK*")


@pytest.mark.parametrize("version,cb_name", [
    ("1.3", "tls-exporter"), ("1.2", "tls-exporter"), ("1.2", "tls-unique")])
def test_scram_plus_wrong_binding(srv, version, cb_name):
    ctx = tls13_context(srv) if version == "1.3" else tls12_context(srv)
    with srv.connect_tls(context=ctx) as c:
        real = su.tls_exporter(c) if cb_name == "tls-exporter" else \
            su.tls_unique(c)
        wrong = bytes(b ^ 0x5a for b in real)
        cl = su.ScramClient("alice", PW["alice"], cb_flag="p",
                            cb_name=cb_name, cb_data=wrong)
        scram_fails(c, cl, "SCRAM-SHA-256-PLUS")


def test_scram_plus_binding_of_another_connection(srv):
    with srv.connect_tls(context=tls13_context(srv)) as other, \
            srv.connect_tls(context=tls13_context(srv)) as c:
        cl = su.ScramClient("alice", PW["alice"], cb_flag="p",
                            cb_name="tls-exporter",
                            cb_data=su.tls_exporter(other))
        scram_fails(c, cl, "SCRAM-SHA-256-PLUS")


def test_scram_plus_tls_unique_on_tls13_refused(srv):
    # RFC 9266: tls-unique is not defined for TLS 1.3.
    with srv.connect_tls(context=tls13_context(srv)) as c:
        cb = c.tls.get_channel_binding("tls-unique") or b"\0" * 12
        cl = su.ScramClient("alice", PW["alice"], cb_flag="p",
                            cb_name="tls-unique", cb_data=cb)
        scram_fails(c, cl, "SCRAM-SHA-256-PLUS", early_ok=True)


def test_scram_plus_unknown_binding_type(srv):
    with srv.connect_tls(context=tls13_context(srv)) as c:
        cl = su.ScramClient("alice", PW["alice"], cb_flag="p",
                            cb_name="tls-server-end-point",
                            cb_data=os.urandom(32))
        scram_fails(c, cl, "SCRAM-SHA-256-PLUS", early_ok=True)


def test_scram_plus_without_binding_flag_refused(srv):
    # A -PLUS mechanism with gs2 flag "n" or "y" is a contradiction.
    for flag in ("n", "y"):
        with srv.connect_tls() as c:
            cl = su.ScramClient("alice", PW["alice"], cb_flag=flag)
            st = scram_run(c, cl, "SCRAM-SHA-256-PLUS")
            if st is None:
                assert cl.first_reply in (FAIL, MALFORMED), cl.first_reply
            else:
                assert st == FAIL, st


def test_scram_plain_mechanism_with_p_flag_refused(srv):
    # "p=" with the non-PLUS mechanism (RFC 5802 section 5.1) fails.
    with srv.connect_tls(context=tls13_context(srv)) as c:
        cl = su.ScramClient("alice", PW["alice"], cb_flag="p",
                            cb_name="tls-exporter",
                            cb_data=su.tls_exporter(c))
        st = scram_run(c, cl, "SCRAM-SHA-256")
        if st is None:
            assert cl.first_reply in (FAIL, MALFORMED), cl.first_reply
        else:
            assert st == FAIL, st


# --------------------------------------------------------------- OAuth

def token(keys, sub="alice", key="rsa", iss=ISSUER, aud=AUDIENCE, **kw):
    return su.make_jwt(keys, key, su.claims(iss, aud, sub, **kw))


@pytest.mark.parametrize("key,iss", [("rsa", ISSUER), ("ec", EC_ISSUER)])
def test_oauthbearer(srv, keys, key, iss):
    tok = token(keys, key=key, iss=iss)
    with srv.connect() as c:
        assert start(c, "OAUTHBEARER", su.oauthbearer_message(
            tok, "alice")) == logged_in("alice")
        assert_session(c, "alice")
        assert_glob(c.quit(), "+OK*")
    srv.wait_log(r"login user=alice method=OAUTHBEARER ")


def test_oauthbearer_without_authzid(srv, keys):
    # No a=: the token's subject names the user.
    with srv.connect() as c:
        assert start(c, "OAUTHBEARER", su.oauthbearer_message(
            token(keys, sub="carol"))) == logged_in("carol")


def test_oauthbearer_host_and_port_keys(srv, keys):
    # What curl and mpop send: host= and port= before auth=.
    msg = su.oauthbearer_message(token(keys), "alice", extra=(
        ("host", "127.0.0.1"), ("port", str(srv.port))))
    with srv.connect() as c:
        assert start(c, "OAUTHBEARER", msg) == logged_in("alice")


def test_oauthbearer_without_initial_response(srv, keys):
    with srv.connect() as c:
        assert start(c, "OAUTHBEARER") == "+ "
        assert respond(c, su.oauthbearer_message(token(keys), "alice")) == \
            logged_in("alice")


@pytest.mark.parametrize("key,iss", [("rsa", ISSUER), ("ec", EC_ISSUER)])
def test_xoauth2(srv, keys, key, iss):
    with srv.connect() as c:
        assert start(c, "XOAUTH2", su.xoauth2_message(
            "bob", token(keys, "bob", key=key, iss=iss))) == logged_in("bob")
    srv.wait_log(r"login user=bob method=XOAUTH2 ")


def test_xoauth2_without_initial_response(srv, keys):
    with srv.connect_tls() as c:
        assert start(c, "XOAUTH2") == "+ "
        assert respond(c, su.xoauth2_message("bob", token(keys, "bob"))) == \
            logged_in("bob")


def test_oauth_long_token_in_response_line(srv, keys):
    """A response line far beyond 255 octets (RFC 5034 section 4 exempts
    responses from the command line limit)."""
    tok = token(keys, pad="x" * 1500)
    msg = su.oauthbearer_message(tok, "alice")
    assert len(b64e(msg)) > 2000
    with srv.connect() as c:
        assert start(c, "OAUTHBEARER") == "+ "
        assert respond(c, msg) == logged_in("alice")


def test_oauth_token_within_leeway(srv, keys):
    now = int(time.time())
    # expired 30 s ago, issued 30 s in the future: both within 60 s
    for tok in (token(keys, now=now - 3630),
                token(keys, now=now + 30)):
        with srv.connect() as c:
            assert start(c, "OAUTHBEARER", su.oauthbearer_message(
                tok, "alice")) == logged_in("alice")


def bad_tokens(keys):
    now = int(time.time())
    good = token(keys)
    h, p, s = good.split(".")
    forged_payload = su.b64url(json.dumps(su.claims(ISSUER, AUDIENCE,
                                                    "bob")))
    with open(keys.pub("rsa"), "rb") as f:
        pub_pem = f.read()
    hs_input = "%s.%s" % (su.b64url(json.dumps({"alg": "HS256",
                                                "typ": "JWT"})), p)
    hs256 = hs_input + "." + su.b64url(hmac.new(
        pub_pem, hs_input.encode(), "sha256").digest())
    return {
        "expired": token(keys, now=now - 7200),
        "expired-beyond-leeway": token(keys, now=now - 3720),
        "not-yet-valid": su.make_jwt(keys, "rsa", dict(
            su.claims(ISSUER, AUDIENCE, "alice"), nbf=now + 600)),
        "issued-in-future": su.make_jwt(keys, "rsa", dict(
            su.claims(ISSUER, AUDIENCE, "alice"), iat=now + 600)),
        "wrong-audience": token(keys, aud="other.example.test"),
        "unknown-issuer": token(keys, key="rsa_other",
                                iss="https://evil.example.test"),
        "issuer-with-other-key": token(keys, key="rsa_other"),
        "ec-issuer-signed-by-rsa-key": token(keys, key="rsa",
                                             iss=EC_ISSUER),
        "ec-issuer-other-ec-key": token(keys, key="ec_other",
                                        iss=EC_ISSUER),
        "tampered-payload": "%s.%s.%s" % (h, forged_payload, s),
        "tampered-signature": "%s.%s.%s" % (h, p, s[:-6] + (
            "AAAAAA" if not s.endswith("AAAAAA") else "BBBBBB")),
        "alg-none": su.make_jwt(keys, "rsa", su.claims(ISSUER, AUDIENCE,
                                                       "alice"), alg="none"),
        "alg-none-with-signature": su.make_jwt(
            keys, "rsa", su.claims(ISSUER, AUDIENCE, "alice"),
            alg="none") + s,
        "hs256-with-public-key": hs256,
        "no-signature-part": "%s.%s" % (h, p),
        "garbage": "not.a.jwt",
    }


BAD_TOKEN_NAMES = ["expired", "expired-beyond-leeway", "not-yet-valid",
                   "issued-in-future", "wrong-audience", "unknown-issuer",
                   "issuer-with-other-key", "ec-issuer-signed-by-rsa-key",
                   "ec-issuer-other-ec-key", "tampered-payload",
                   "tampered-signature", "alg-none",
                   "alg-none-with-signature", "hs256-with-public-key",
                   "no-signature-part", "garbage"]


@pytest.fixture(scope="module")
def bad(keys):
    return bad_tokens(keys)


@pytest.mark.parametrize("name", BAD_TOKEN_NAMES)
def test_oauthbearer_bad_token(srv, bad, name):
    tok = bad[name]
    with srv.connect() as c:
        oauth_invalid(c, start(c, "OAUTHBEARER",
                               su.oauthbearer_message(tok, "alice")))
        assert c.capa()


@pytest.mark.parametrize("name", ["expired", "wrong-audience",
                                  "unknown-issuer", "tampered-payload",
                                  "alg-none"])
def test_xoauth2_bad_token(srv, bad, name):
    with srv.connect() as c:
        oauth_invalid(c, start(c, "XOAUTH2",
                               su.xoauth2_message("alice", bad[name])))


def test_oauth_bad_token_without_initial_response(srv, bad):
    with srv.connect() as c:
        assert start(c, "OAUTHBEARER") == "+ "
        oauth_invalid(c, respond(c, su.oauthbearer_message(bad["expired"],
                                                           "alice")))


def test_oauth_token_user_mismatch(srv, keys):
    tok = token(keys, sub="alice")
    with srv.connect() as c:
        oauth_invalid(c, start(c, "OAUTHBEARER",
                               su.oauthbearer_message(tok, "bob")))
    with srv.connect() as c:
        oauth_invalid(c, start(c, "XOAUTH2", su.xoauth2_message("bob", tok)))


def test_oauth_token_for_disabled_user(srv, keys):
    tok = token(keys, sub="dave")
    with srv.connect() as c:
        oauth_invalid(c, start(c, "OAUTHBEARER",
                               su.oauthbearer_message(tok, "dave")))
    with srv.connect() as c:
        oauth_invalid(c, start(c, "XOAUTH2", su.xoauth2_message("dave", tok)))


def test_oauth_token_for_user_not_in_database(srv, keys):
    # By design the issuer vouches for the user: a valid token logs in a
    # user the database does not know (with the site's defaults and an
    # empty mailbox); the database can only add settings or disable.
    tok = token(keys, sub="tokenonly")
    with srv.connect() as c:
        assert start(c, "OAUTHBEARER", su.oauthbearer_message(
            tok, "tokenonly")) == "+OK Logged in, 0 messages (0 octets)."
        assert c.stat() == (0, 0)
    srv.wait_log(r"login user=tokenonly method=OAUTHBEARER ")


def test_oauth_failure_dummy_response_other_than_ctrl_a(srv, bad):
    # After the error challenge only ^A is valid; anything else still
    # ends in a failure, never a login.
    with srv.connect() as c:
        challenge(start(c, "OAUTHBEARER", su.oauthbearer_message(
            bad["expired"], "alice")))
        assert respond(c, b"x") in (FAIL, MALFORMED)
        assert_glob(c.command("STAT"), "-ERR*")


def test_oauth_cancel(srv, keys):
    with srv.connect() as c:
        assert start(c, "OAUTHBEARER") == "+ "
        assert c.command("*") == CANCELLED
        assert start(c, "OAUTHBEARER", su.oauthbearer_message(
            token(keys), "alice")) == logged_in("alice")


def test_oauth_malformed(srv, keys):
    tok = token(keys)
    for msg in (b"n,a=alice,auth=Bearer " + tok.encode(),
                b"n,a=alice,\x01auth=Basic " + tok.encode() + b"\x01\x01",
                b"\x01auth=Bearer " + tok.encode() + b"\x01\x01"):
        with srv.connect() as c:
            st = start(c, "OAUTHBEARER", msg)
            if st.startswith("+ "):
                oauth_invalid(c, st)
            else:
                assert st in (MALFORMED, FAIL), (msg, st)


def test_oauth_user_claim(make_server, keys):
    cfg = oauth_config(keys)
    cfg["oauth_user_claim"] = "email"
    s = make_server(config=cfg, users={}, start=False)
    s.add_user_line(su.passwd_line("hana@example.test", password="x-1"))
    s.add_user_line(su.passwd_line("hana", password="x-2"))
    boot(s)
    tok = token(keys, sub="hana", email="hana@example.test")
    with s.connect() as c:
        assert start(c, "OAUTHBEARER", su.oauthbearer_message(tok)) == \
            "+OK Logged in, 0 messages (0 octets)."
    s.wait_log(r"login user=hana@example\.test method=OAUTHBEARER ")
    with s.connect() as c:
        oauth_invalid(c, start(c, "OAUTHBEARER",
                               su.oauthbearer_message(tok, "hana")))


# ------------------------------------------------------------ EXTERNAL

def test_external_empty_authzid(srv):
    with srv.connect_tls(context=cert_context(srv, "alice")) as c:
        assert start(c, "EXTERNAL", b"") == logged_in("alice")
        assert_session(c, "alice")
        assert_glob(c.quit(), "+OK*")
    srv.wait_log(r"login user=alice method=EXTERNAL ")


def test_external_matching_authzid(srv):
    with srv.connect_tls(context=cert_context(srv, "alice")) as c:
        assert start(c, "EXTERNAL", b"alice") == logged_in("alice")


def test_external_without_initial_response(srv):
    with srv.connect_tls(context=cert_context(srv, "bob")) as c:
        assert start(c, "EXTERNAL") == "+ "
        assert respond(c, b"") == logged_in("bob")


def test_external_after_stls(srv):
    with srv.connect() as c:
        assert_glob(c.stls(context=cert_context(srv, "alice")), "+OK*")
        assert "EXTERNAL" in sasl_names(c)
        assert start(c, "EXTERNAL", b"") == logged_in("alice")


def test_external_other_authzid_refused(srv):
    with srv.connect_tls(context=cert_context(srv, "alice")) as c:
        assert start(c, "EXTERNAL", b"bob") == FAIL
        assert start(c, "EXTERNAL", b"") == logged_in("alice")


def test_external_master_user_certificate_cannot_switch_user(srv):
    # auth_master_users is about PLAIN and SCRAM authzids; a client
    # certificate names exactly one user.
    with srv.connect_tls(context=cert_context(srv, "admin")) as c:
        assert start(c, "EXTERNAL", b"alice") == FAIL
        assert start(c, "EXTERNAL", b"") == logged_in("admin")


def test_external_unknown_or_disabled_user(srv):
    pki = harness.tls_pki()
    ctx = tls_client_context(srv.ca_file, cert=pki.client_cert,
                             key=pki.client_key)     # CN postern-client
    with srv.connect_tls(context=ctx) as c:
        assert "EXTERNAL" in sasl_names(c)
        assert start(c, "EXTERNAL", b"") == FAIL
    with srv.connect_tls(context=cert_context(srv, "dave")) as c:
        assert start(c, "EXTERNAL", b"") == FAIL


def test_external_not_offered_without_tls_client_cert(make_server, pki):
    s = make_server(tls=True)
    ctx = tls_client_context(s.ca_file, cert=pki.client_cert,
                             key=pki.client_key)
    with s.connect_tls(context=ctx) as c:
        assert "EXTERNAL" not in (sasl_names(c) or [])
        assert start(c, "EXTERNAL", b"") == UNSUPPORTED


def test_external_user_email(make_server, pki):
    s = make_server(config={"tls_client_cert": True,
                            "tls_client_ca": pki.ca_cert,
                            "external_user": "email"},
                    users={}, start=False, tls=True)
    s.add_user_line(su.passwd_line("erin@example.test", password="e-1"))
    s.add_user_line(su.passwd_line("erin-cn", password="e-2"))
    boot(s)
    with s.connect_tls(context=cert_context(s, "erin-cn",
                                            "erin@example.test")) as c:
        assert "EXTERNAL" in sasl_names(c)
        assert start(c, "EXTERNAL", b"") == \
            "+OK Logged in, 0 messages (0 octets)."
    s.wait_log(r"login user=erin@example\.test method=EXTERNAL ")
    # a certificate without an email address names nobody
    with s.connect_tls(context=cert_context(s, "erin-cn")) as c:
        assert "EXTERNAL" not in (sasl_names(c) or [])
        assert start(c, "EXTERNAL", b"") == UNSUPPORTED


# ---------------------------------------------------- cancel, base64, lines

@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5",
                                  "SCRAM-SHA-256", "OAUTHBEARER",
                                  "XOAUTH2"])
def test_cancel_first_challenge(srv, mech):
    with srv.connect() as c:
        challenge(start(c, mech))
        assert c.command("*") == CANCELLED
        assert_glob(c.command("STAT"), "-ERR*")
        assert start(c, "PLAIN", plain_msg("alice", PW["alice"])) == \
            logged_in("alice")


@pytest.mark.parametrize("ir", ["!!!!", "abc", "YWJj=", "YW=j", "=YWJ",
                                "YWJjZA===", "YW-j", "YW_j", "\u00e4bcd"])
def test_bad_base64_initial_response(srv, ir):
    with srv.connect() as c:
        assert c.command("AUTH PLAIN " + ir) == BAD_B64
        assert c.capa()
        assert start(c, "PLAIN", plain_msg("alice", PW["alice"])) == \
            logged_in("alice")


@pytest.mark.parametrize("mech", ["PLAIN", "SCRAM-SHA-256", "OAUTHBEARER"])
def test_bad_base64_response(srv, mech):
    with srv.connect() as c:
        challenge(start(c, mech))
        assert c.command("@@@@") == BAD_B64
        # the exchange is over: the next line is a command again
        assert c.capa()
        assert start(c, "PLAIN", plain_msg("alice", PW["alice"])) == \
            logged_in("alice")


def test_bad_base64_counts_as_bad_command(make_server):
    s = make_server(config={"max_bad_commands": 3}, users={}, start=False)
    s.add_user_line(su.passwd_line("alice", plain=PW["alice"]))
    boot(s)
    with s.connect() as c:
        assert c.command("AUTH PLAIN !!!!") == BAD_B64
        challenge(start(c, "PLAIN"))
        assert c.command("####") == BAD_B64
        assert c.command("AUTH PLAIN ####") == BAD_B64
        assert c.status() == "-ERR Too many bad commands."
        assert c.wait_closed(5) == b""


def test_initial_response_at_255_octets(make_server):
    user = "lena"
    pw = "L" * (183 - 2 - len(user))
    s = make_server(users={}, start=False)
    s.add_user_line(su.passwd_line(user, plain=pw))
    boot(s)
    line = "AUTH PLAIN " + b64e(plain_msg(user, pw))
    assert len(line) == 255
    with s.connect() as c:
        assert c.command(line) == "+OK Logged in, 0 messages (0 octets)."


def test_long_initial_response(srv, keys):
    """An initial response is the client's first SASL response, not a
    command argument: max_sasl_line_length bounds it, not max_line_length
    (512).  mpop sends any bearer token this way: an RS256 token makes an
    AUTH line of about 800 octets."""
    line = "AUTH OAUTHBEARER " + b64e(su.oauthbearer_message(
        token(keys), "alice", extra=(("host", "127.0.0.1"),
                                     ("port", str(srv.port)))))
    assert 700 < len(line) < 1200, len(line)
    with srv.connect() as c:
        assert c.command(line) == logged_in("alice")


def test_initial_response_beyond_sasl_line_limit(make_server):
    s = make_server(config={"max_sasl_line_length": 1024}, users={},
                    start=False)
    s.add_user_line(su.passwd_line("alice", plain=PW["alice"]))
    boot(s)
    with s.connect() as c:
        assert c.command("AUTH PLAIN " + b64e(b"\0alice\0" +
                                              b"p" * 1500)) == TOO_LONG
        assert c.capa()
        assert start(c, "PLAIN", plain_msg("alice", PW["alice"])) == \
            "+OK Logged in, 0 messages (0 octets)."


def test_response_line_limit(make_server):
    s = small_server(make_server, {"max_sasl_line_length": 1024})
    at_limit = b64e(plain_msg("alice", "p" * (768 - 8)))
    assert len(at_limit) == 1024
    with s.connect() as c:
        assert start(c, "PLAIN") == "+ "
        assert c.command(at_limit) == FAIL
        assert start(c, "PLAIN") == "+ "
        assert c.command(b64e(plain_msg("alice", "p" * 763))) == TOO_LONG
        # the exchange is over, the session usable
        assert c.capa()
        assert start(c, "PLAIN", plain_msg("alice", PW["alice"])) == \
            "+OK Logged in, 0 messages (0 octets)."


def small_server(make_server, config=None):
    """alice ({PLAIN}) alone, on a server of the test's own (for tests
    that may crash a worker: the module server stays clean)."""
    s = make_server(config=config, users={}, start=False)
    s.add_user_line(su.passwd_line("alice", plain=PW["alice"]))
    boot(s)
    return s


def test_response_line_with_nul(make_server):
    s = small_server(make_server)
    with s.connect() as c:
        assert start(c, "PLAIN") == "+ "
        c.send(b"AGFsaWNl\0AHB3\r\n")
        assert c.status() == "-ERR Line contains a NUL octet."
        assert c.capa()
        assert start(c, "PLAIN", plain_msg("alice", PW["alice"])) == \
            "+OK Logged in, 0 messages (0 octets)."


def test_response_line_limit_default_16k(make_server, keys):
    s = small_server(make_server, oauth_config(keys))
    tok = token(keys, pad="y" * 10000)
    msg = b64e(su.oauthbearer_message(tok, "alice"))
    assert 16384 + 100 < len(msg) < 32768, len(msg)
    with s.connect() as c:
        assert start(c, "OAUTHBEARER") == "+ "
        assert c.command(msg) == TOO_LONG
        assert c.capa()


def test_too_many_failures_close(srv):
    with srv.connect() as c:
        assert start(c, "PLAIN", plain_msg("alice", "bad1")) == FAIL
        assert scram_run(c, su.ScramClient("alice", "bad2"),
                         "SCRAM-SHA-256") == FAIL
        assert cram(c, "alice", "bad3")[0] == FAIL
        assert c.status() == "-ERR Too many failed logins."
        assert c.wait_closed(5) == b""


# ------------------------------------------------- CAPA under conditions

def test_capa_plaintext_policy(make_server, keys):
    cfg = {"disable_plaintext_auth": "yes",
           "plaintext_networks": "127.0.0.1/32"}
    cfg.update(oauth_config(keys))
    s = make_server(config=cfg, users={}, start=False, tls=True)
    for line in user_lines():
        s.add_user_line(line)
    fill(s)
    boot(s)
    with s.connect(source="127.0.0.2") as c:
        # PLAIN, LOGIN and bearer tokens would cross the wire in clear
        assert sasl_names(c) == ["SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5"]
        assert auth_listing(c) == ["SCRAM-SHA-256", "SCRAM-SHA-1",
                                   "CRAM-MD5"]
        for mech, ir in (("PLAIN", plain_msg("alice", PW["alice"])),
                         ("LOGIN", None),
                         ("OAUTHBEARER", su.oauthbearer_message(
                             token(keys), "alice")),
                         ("XOAUTH2", su.xoauth2_message("alice",
                                                         token(keys)))):
            assert start(c, mech, ir) == PLAINTEXT_STLS, mech
        scram_login(c, su.ScramClient("alice", PW["alice"]),
                    "SCRAM-SHA-256", "alice")
    with s.connect(source="127.0.0.2") as c:
        assert cram(c, "bob", PW["bob"])[0] == logged_in("bob")
    with s.connect(source="127.0.0.2") as c:
        assert_glob(c.stls(s.ca_file), "+OK*")
        assert sasl_names(c) == ALL_TLS
        assert start(c, "PLAIN", plain_msg("alice", PW["alice"])) == \
            logged_in("alice")
    with s.connect() as c:              # 127.0.0.1 is in plaintext_networks
        assert sasl_names(c) == ALL_PLAIN


def test_capa_plaintext_refused_without_tls(make_server):
    s = make_server(config={"disable_plaintext_auth": "yes",
                            "plaintext_networks": "127.0.0.1/32"},
                    users={}, start=False)
    s.add_user_line(su.passwd_line("alice", plain=PW["alice"]))
    boot(s)
    with s.connect(source="127.0.0.2") as c:
        assert sasl_names(c) == ["CRAM-MD5"]
        assert start(c, "PLAIN", plain_msg("alice", PW["alice"])) == \
            PLAINTEXT_NO_TLS
        assert start(c, "LOGIN") == PLAINTEXT_NO_TLS


def test_capa_passwords_only(make_server):
    # crypt passwords only: no secret, no SCRAM keys, no issuer
    s = make_server(users={}, start=False, tls=True)
    crypt_users(s)
    boot(s)
    with s.connect() as c:
        assert sasl_names(c) == ["PLAIN", "LOGIN"]
        assert start(c, "CRAM-MD5") == UNSUPPORTED
        assert start(c, "SCRAM-SHA-256", b"n,,n=alice,r=abcdefgh") == \
            UNSUPPORTED
        assert start(c, "OAUTHBEARER") == UNSUPPORTED
    with s.connect_tls() as c:
        assert sasl_names(c) == ["PLAIN", "LOGIN"]
        assert start(c, "PLAIN", plain_msg("alice", PW["alice"])) == \
            "+OK Logged in, 0 messages (0 octets)."


def test_capa_scram_keys_only(make_server):
    s = make_server(users={}, start=False, tls=True)
    s.add_user_line(carol_line())
    boot(s)
    with s.connect() as c:
        assert sasl_names(c) == ["SCRAM-SHA-256"]
    with s.connect_tls() as c:
        assert sasl_names(c) == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]


def test_capa_credentials_of_disabled_users_do_not_count(make_server):
    s = make_server(users={}, start=False, tls=True)
    crypt_users(s)
    s.add_user_line(su.passwd_line("dave", plain=PW["dave"],
                                   scram=("sha1", "sha256"),
                                   disabled="yes"))
    boot(s)
    with s.connect_tls() as c:
        assert sasl_names(c) == ["PLAIN", "LOGIN"]


def test_capa_no_usable_credentials_no_sasl(make_server):
    s = make_server(users={}, start=False, tls=True)
    s.add_user_line(su.passwd_line("dave", plain=PW["dave"],
                                   scram=("sha256",), disabled="yes"))
    s.start()
    with s.connect_tls() as c:
        assert sasl_names(c) is None
        assert auth_listing(c) == []
        assert start(c, "PLAIN", plain_msg("dave", PW["dave"])) == \
            UNSUPPORTED


def test_capa_issuer_alone_offers_tokens(make_server, keys):
    s = make_server(config=oauth_config(keys), users={}, start=False)
    crypt_users(s)
    boot(s)
    with s.connect() as c:
        assert sasl_names(c) == ["OAUTHBEARER", "XOAUTH2", "PLAIN", "LOGIN"]
        assert start(c, "XOAUTH2", su.xoauth2_message(
            "alice", token(keys))) == "+OK Logged in, 0 messages (0 octets)."


@pytest.mark.parametrize("mechs,plain,tls", [
    ("SCRAM-SHA-256 PLAIN", ["SCRAM-SHA-256", "PLAIN"],
     ["SCRAM-SHA-256", "PLAIN"]),
    ("PLAIN SCRAM-SHA-256-PLUS SCRAM-SHA-256",
     ["SCRAM-SHA-256", "PLAIN"],
     ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"]),
    ("SCRAM-SHA-1-PLUS", None, ["SCRAM-SHA-1-PLUS"]),
    ("EXTERNAL LOGIN XOAUTH2", ["XOAUTH2", "LOGIN"], ["XOAUTH2", "LOGIN"]),
    ("none", None, None),
])
def test_auth_mechanisms_setting(make_server, keys, mechs, plain, tls):
    cfg = {"auth_mechanisms": mechs}
    cfg.update(oauth_config(keys))
    s = make_server(config=cfg, users={}, start=False, tls=True)
    for line in user_lines():
        s.add_user_line(line)
    fill(s)
    s.start()
    if plain or tls:
        su.wait_sasl_offered(s, tls=not plain)
    with s.connect() as c:
        assert sasl_names(c) == plain
        assert auth_listing(c) == (plain or [])
        if "PLAIN" not in (plain or []):
            assert start(c, "PLAIN", plain_msg("alice", PW["alice"])) == \
                UNSUPPORTED
        if "CRAM-MD5" not in (plain or []):
            assert start(c, "CRAM-MD5") == UNSUPPORTED
    with s.connect_tls() as c:
        assert sasl_names(c) == tls
        if "SCRAM-SHA-1" not in (tls or []):
            assert start(c, "SCRAM-SHA-1", b"n,,n=alice,r=abcdefgh") == \
                UNSUPPORTED
        if "PLAIN" in (tls or []):
            assert start(c, "PLAIN", plain_msg("alice", PW["alice"])) == \
                logged_in("alice")
    with s.connect() as c:
        # USER/PASS is no SASL mechanism
        assert c.try_login("alice", PW["alice"]) == logged_in("alice")


# ------------------------------------------------ disabled user, per family

def test_disabled_user_every_mechanism(srv, keys):
    """dave holds every credential form and is disabled: each mechanism
    answers exactly as for a wrong password."""
    with srv.connect() as c:
        assert start(c, "PLAIN", plain_msg("dave", PW["dave"])) == FAIL
        assert login_mech(c, "dave", PW["dave"]) == FAIL
    with srv.connect() as c:
        assert cram(c, "dave", PW["dave"])[0] == FAIL
        assert scram_run(c, su.ScramClient("dave", PW["dave"], "sha1"),
                         "SCRAM-SHA-1") == FAIL
    with srv.connect_tls(context=tls13_context(srv)) as c:
        cl = su.ScramClient("dave", PW["dave"], cb_flag="p",
                            cb_name="tls-exporter",
                            cb_data=su.tls_exporter(c))
        assert scram_run(c, cl, "SCRAM-SHA-256-PLUS") == FAIL
        oauth_invalid(c, start(c, "XOAUTH2", su.xoauth2_message(
            "dave", token(keys, "dave"))))
    with srv.connect_tls(context=cert_context(srv, "dave")) as c:
        assert start(c, "EXTERNAL", b"") == FAIL
    with srv.connect() as c:
        assert c.try_login("dave", PW["dave"]) == FAIL


# ------------------------------------------------------------ LOGIN-DELAY

def test_login_delay_per_user(make_server):
    s = make_server(users={}, start=False, tls=True)
    s.add_user_line(su.passwd_line("frank", password="Frank-Pw-1",
                                   scram=("sha256",), login_delay=30))
    s.add_user_line(su.passwd_line("gina", plain="Gina-Pw-2"))
    boot(s)
    refused = "-ERR [LOGIN-DELAY] Minimum time between logins is 30 seconds."
    ok = "+OK Logged in, 0 messages (0 octets)."
    with s.connect() as c:
        assert start(c, "PLAIN", plain_msg("frank", "Frank-Pw-1")) == ok
        assert_glob(c.quit(), "+OK*")
    with s.connect() as c:
        # a wrong password is a failure, whatever the delay
        assert start(c, "PLAIN", plain_msg("frank", "wrong")) == FAIL
        assert start(c, "PLAIN", plain_msg("frank", "Frank-Pw-1")) == \
            refused
    with s.connect() as c:
        cl = su.ScramClient("frank", "Frank-Pw-1")
        st = scram_run(c, cl, "SCRAM-SHA-256")
        if st.startswith("+ "):
            cl.verify(challenge(st))
            st = c.command("")
        assert st == refused
        assert scram_run(c, su.ScramClient("frank", "wrong"),
                         "SCRAM-SHA-256") == FAIL
    with s.connect() as c:
        assert c.try_login("frank", "Frank-Pw-1") == refused
    # gina has no login_delay: back to back is fine
    for _ in range(2):
        with s.connect() as c:
            assert start(c, "PLAIN", plain_msg("gina", "Gina-Pw-2")) == ok
            assert_glob(c.quit(), "+OK*")
    s.wait_log(r"login refused user=frank reason=login-delay")


def test_login_delay_expires(make_server):
    s = make_server(users={}, start=False)
    s.add_user_line(su.passwd_line("frank", plain="Frank-Pw-1",
                                   login_delay=1))
    boot(s)
    ok = "+OK Logged in, 0 messages (0 octets)."
    with s.connect() as c:
        assert start(c, "PLAIN", plain_msg("frank", "Frank-Pw-1")) == ok
    with s.connect() as c:
        assert start(c, "PLAIN", plain_msg("frank", "Frank-Pw-1")) == \
            "-ERR [LOGIN-DELAY] Minimum time between logins is 1 seconds."
    time.sleep(2.1)
    with s.connect() as c:
        assert start(c, "PLAIN", plain_msg("frank", "Frank-Pw-1")) == ok


# ------------------------------------------------- max_connections_per_user

IN_USE = "-ERR [IN-USE] Too many sessions for this user; close one and try " \
    "again."


def retry_login(s, fn, deadline=3.0):
    """fn(conn) -> reply; retried on fresh connections until it is not
    IN-USE (the master learns of a session's end asynchronously)."""
    end = time.monotonic() + deadline
    while True:
        c = s.connect()
        st = fn(c)
        if st != IN_USE or time.monotonic() > end:
            return c, st
        c.close()
        time.sleep(0.1)


def test_max_connections_per_user(make_server):
    s = make_server(config={"max_connections_per_user": 1,
                            "auth_master_users": "admin"},
                    users={}, start=False)
    for line in user_lines():
        s.add_user_line(line)
    fill(s)
    boot(s)
    first = s.connect()
    assert start(first, "PLAIN", plain_msg("alice", PW["alice"])) == \
        logged_in("alice")
    try:
        with s.connect() as c:
            # SCRAM: the credentials are right, the cap says no
            st = scram_run(c, su.ScramClient("alice", PW["alice"]),
                           "SCRAM-SHA-256")
            if st.startswith("+ "):
                st = c.command("")
            assert st == IN_USE
            # the session goes on in AUTHORIZATION
            assert c.try_login("alice", PW["alice"]) == IN_USE
            assert start(c, "PLAIN", plain_msg("admin", PW["admin"],
                                               authzid="alice")) == IN_USE
            assert start(c, "PLAIN", plain_msg("bob", PW["bob"])) == \
                logged_in("bob")
        # a wrong password is still just a failure
        with s.connect() as c:
            assert start(c, "PLAIN", plain_msg("alice", "wrong")) == FAIL
    finally:
        assert_glob(first.quit(), "+OK*")
        first.close()
    c, st = retry_login(s, lambda c: start(c, "PLAIN", plain_msg(
        "alice", PW["alice"])))
    with c:
        assert st == logged_in("alice")
    s.wait_log(r"login refused user=alice reason=too-many-sessions")


def test_session_slot_freed_on_disconnect_and_refusal(make_server):
    s = make_server(config={"max_connections_per_user": 1}, users={},
                    start=False)
    s.add_user_line(su.passwd_line("frank", plain="Frank-Pw-1"))
    boot(s)
    ok = "+OK Logged in, 0 messages (0 octets)."
    login = lambda c: start(c, "PLAIN", plain_msg("frank", "Frank-Pw-1"))
    # a session dropped without QUIT gives its slot back
    c = s.connect()
    assert login(c) == ok
    c.close()
    holder, st = retry_login(s, login)
    assert st == ok
    # refused logins take no slot
    with s.connect() as c:
        for _ in range(3):
            assert login(c) == IN_USE
    assert_glob(holder.quit(), "+OK*")
    holder.close()
    c1, st = retry_login(s, login)
    with c1:
        assert st == ok
        with s.connect() as c2:
            assert login(c2) == IN_USE      # and the cap still holds


# ------------------------------------------------------------------- logs

def test_log_mechanism_and_reason(srv, keys, bad):
    start_at = len(srv.log_text())
    with srv.connect() as c:
        assert start(c, "PLAIN", plain_msg("alice", "wrong-pw-Qz1")) == FAIL
        assert scram_run(c, su.ScramClient("alice", "wrong-pw-Qz2"),
                         "SCRAM-SHA-256") == FAIL
    with srv.connect() as c:
        oauth_invalid(c, start(c, "OAUTHBEARER", su.oauthbearer_message(
            bad["expired"], "alice")))
        assert cram(c, "alice", "wrong-pw-Qz3")[0] == FAIL
    for mech in ("PLAIN", "SCRAM-SHA-256", "OAUTHBEARER", "CRAM-MD5"):
        srv.wait_log(r"login failed user=\S* method=%s reason=[a-z][a-z-]*"
                     % mech, start=start_at)


def test_log_no_secrets(make_server, keys, pki):
    cfg = {"tls_client_cert": True, "tls_client_ca": pki.ca_cert,
           "auth_master_users": "admin", "log_debug": "yes"}
    cfg.update(oauth_config(keys))
    s = make_server(config=cfg, users={}, start=False, tls=True)
    for line in user_lines():
        s.add_user_line(line)
    fill(s)
    boot(s)
    good_tok = token(keys)
    bad_tok = token(keys, aud="other.example.test")
    wrong = "Wrong-Secret-Zq93"
    sent = []

    def send_start(c, mech, ir=None):
        if ir is not None:
            sent.append(b64e(ir))
        return start(c, mech, ir)

    with s.connect_tls(context=tls13_context(s)) as c:
        assert send_start(c, "PLAIN", plain_msg("alice", wrong)) == FAIL
        assert send_start(c, "PLAIN", plain_msg(
            "admin", PW["admin"], authzid="alice")) == logged_in("alice")
    with s.connect_tls(context=tls13_context(s)) as c:
        cl = su.ScramClient("alice", PW["alice"], cb_flag="p",
                            cb_name="tls-exporter",
                            cb_data=su.tls_exporter(c))
        st = scram_run(c, cl, "SCRAM-SHA-256-PLUS")
        cl.verify(challenge(st))
        assert c.command("") == logged_in("alice")
    with s.connect() as c:
        st, ch = cram(c, "bob", PW["bob"])
        assert st == logged_in("bob")
    with s.connect() as c:
        assert login_mech(c, "alice", wrong) == FAIL
        assert login_mech(c, "alice", PW["alice"]) == logged_in("alice")
    with s.connect() as c:
        oauth_invalid(c, send_start(c, "OAUTHBEARER",
                                    su.oauthbearer_message(bad_tok,
                                                           "alice")))
        assert send_start(c, "XOAUTH2", su.xoauth2_message(
            "alice", good_tok)) == logged_in("alice")
    s.wait_log(r"login user=alice method=XOAUTH2 ")
    assert s.stop() == 0
    log = s.log_text()
    secrets = [PW["alice"], PW["admin"], PW["bob"], wrong, good_tok,
               bad_tok, good_tok.split(".")[2], bad_tok.split(".")[2],
               b64e(PW["alice"]), b64e(PW["bob"]), b64e(wrong)] + sent
    for secret in secrets:
        assert secret not in log, "secret %r in the log" % secret[:40]


def test_refused_login_then_other_user_on_same_connection(make_server):
    # A login refused after the credentials (LOGIN-DELAY) has already been
    # counted for its user; another user's login on that connection must
    # move the count, not be refused as IN-USE.
    s = make_server(config={"max_connections_per_user": 1,
                            "login_delay": "60s"},
                    users={}, start=False)
    for line in user_lines():
        s.add_user_line(line)
    fill(s)
    boot(s)
    with s.connect() as c:
        assert start(c, "PLAIN", plain_msg("alice", PW["alice"])) == \
            logged_in("alice")
        assert_glob(c.quit(), "+OK*")
    c2, st = retry_login(s, lambda c: start(
        c, "PLAIN", plain_msg("alice", PW["alice"])))
    try:
        assert_glob(st, "-ERR [LOGIN-DELAY]*")
        assert start(c2, "PLAIN", plain_msg("bob", PW["bob"])) == \
            logged_in("bob")
        # alice is no longer counted on c2: the delay, not the cap
        with s.connect() as c3:
            assert_glob(start(c3, "PLAIN", plain_msg("alice", PW["alice"])),
                        "-ERR [LOGIN-DELAY]*")
        assert_glob(c2.quit(), "+OK*")
    finally:
        c2.close()
