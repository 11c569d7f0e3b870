"""
Authentication: USER/PASS, APOP, [AUTH] replies (RFC 2449, RFC 3206), the
per-IP failure delay, the failure limit, the plaintext policy, and what
the log may and may not show.
"""

import hashlib
import re
import time

import pytest

from harness import assert_glob

MSG = b"From: a@example.org\nSubject: hi\n\nhello\n"


def timed_failure(srv, user, password, source=None):
    """Seconds from PASS to its reply, and the reply."""
    with srv.connect(source=source) as c:
        assert_glob(c.command("USER " + user), "+OK*")
        c.sendline("PASS " + password)
        t0 = time.monotonic()
        st = c.status(timeout=20)
        return time.monotonic() - t0, st


# ------------------------------------------------------------- USER / PASS

def test_login(server):
    with server.connect() as c:
        assert_glob(c.command("USER alice"), "+OK*")
        assert_glob(c.command("PASS " + server.users["alice"]), "+OK*")
        assert c.stat() == (0, 0)


def test_password_with_spaces(server):
    assert " " in server.users["bob"]
    with server.login("bob") as c:
        assert c.stat() == (0, 0)


def test_password_taken_verbatim(server):
    with server.connect() as c:
        c.command("USER alice")
        assert_glob(c.command("PASS " + server.users["alice"] + " "),
                    "-ERR [AUTH]*")
        c.command("USER alice")
        assert_glob(c.command("PASS  " + server.users["alice"]),
                    "-ERR [AUTH]*")


def test_wrong_password_and_unknown_user_same_reply(server):
    _, wrong = timed_failure(server, "alice", "not-the-password")
    _, unknown = timed_failure(server, "nosuchuser", "not-the-password")
    assert_glob(wrong, "-ERR [AUTH]*")
    assert wrong == unknown


def test_unknown_user_same_time(server):
    # fresh addresses, so both are a first failure of their IP
    t_wrong, st1 = timed_failure(server, "alice", "nope", "127.0.0.3")
    t_unknown, st2 = timed_failure(server, "nosuchuser", "nope", "127.0.0.4")
    assert st1 == st2
    assert 0.09 <= t_wrong <= 2.0, t_wrong
    assert 0.09 <= t_unknown <= 2.0, t_unknown
    assert abs(t_wrong - t_unknown) < 0.3, (t_wrong, t_unknown)


def test_session_usable_after_failure(server):
    with server.connect() as c:
        assert_glob(c.try_login("alice", "bad"), "-ERR [AUTH]*")
        assert c.capa()
        c.login("alice", server.users["alice"])
        assert c.stat() == (0, 0)


def test_failure_delay_grows_per_ip(server):
    """auth_fail_delay 100ms doubling up to 400ms in the test config."""
    times = []
    for _ in range(4):
        t, st = timed_failure(server, "alice", "wrong")
        assert_glob(st, "-ERR [AUTH]*")
        times.append(t)
    assert times[0] >= 0.09, times
    assert times[2] >= 0.35, times
    assert times[2] > times[0] + 0.15, times
    assert max(times) < 3.0, "delay exceeds auth_fail_delay_max: %r" % times
    # another address is not penalised by 127.0.0.1's failures
    t, _ = timed_failure(server, "alice", "wrong", source="127.0.0.5")
    assert t < times[2] - 0.1, (t, times)


def test_successful_login_not_delayed(server):
    with server.connect() as c:
        c.command("USER alice")
        t0 = time.monotonic()
        assert_glob(c.command("PASS " + server.users["alice"]), "+OK*")
        assert time.monotonic() - t0 < 2.0


def test_max_auth_failures_closes(server):
    with server.connect() as c:
        for i in range(2):
            assert_glob(c.try_login("alice", "bad%d" % i), "-ERR [AUTH]*")
            assert c.capa(), "closed after %d failures" % (i + 1)
        assert_glob(c.try_login("alice", "bad3"), "-ERR*")
        rest = c.wait_closed(5)
        assert rest == b"" or re.match(rb"-ERR[^\r\n]*\r\n\Z", rest), rest


def test_max_auth_failures_configured(make_server):
    s = make_server(config={"max_auth_failures": 1})
    with s.connect() as c:
        assert_glob(c.try_login("alice", "bad"), "-ERR*")
        c.wait_closed(5)
    with s.login("alice") as c:
        assert c.stat() == (0, 0)


def test_disabled_user(make_server):
    s = make_server(start=False)
    s.add_user_line("carol:{PLAIN}carol-secret::::::disabled=yes")
    s.start()
    _, st = timed_failure(s, "carol", "carol-secret")
    _, ref = timed_failure(s, "nosuchuser", "carol-secret")
    assert_glob(st, "-ERR [AUTH]*")
    assert st == ref


def test_user_added_while_running(server):
    server.add_user("dave", "dave-secret-1")
    deadline = time.monotonic() + 3
    while True:
        with server.connect() as c:
            st = c.try_login("dave", "dave-secret-1")
        if st.startswith("+OK") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert_glob(st, "+OK*")


# --------------------------------------------------------- plaintext policy

REMOTE = "127.0.0.2"


def capa_names(c):
    return [l.split()[0].upper() for l in c.capa()]


def test_plaintext_refused_for_remote_client(make_server):
    s = make_server(config={"disable_plaintext_auth": "yes",
                            "plaintext_networks": "127.0.0.1/32"})
    s.add_message("alice", MSG)
    with s.connect(source=REMOTE) as c:
        assert "USER" not in capa_names(c)
        assert_glob(c.command("USER alice"), "-ERR [AUTH]*")
        st = c.command("PASS " + s.users["alice"])
        assert_glob(st, "-ERR*")
        assert "USER" not in capa_names(c)
    # the loopback client in plaintext_networks still may
    with s.connect() as c:
        assert "USER" in capa_names(c)
        c.login("alice", s.users["alice"])
        assert c.stat()[0] == 1


def test_plaintext_allowed_when_not_disabled(make_server):
    s = make_server(config={"disable_plaintext_auth": "no",
                            "plaintext_networks": "127.0.0.1/32"})
    s.add_message("alice", MSG)
    with s.connect(source=REMOTE) as c:
        assert "USER" in capa_names(c)
        c.login("alice", s.users["alice"])
        assert c.stat()[0] == 1


def test_plaintext_default_networks_cover_loopback(server):
    with server.connect(source=REMOTE) as c:
        assert "USER" in capa_names(c)
        c.login("alice", server.users["alice"])


# --------------------------------------------------------------------- APOP

TIMESTAMP_RE = re.compile(r"<[^<>\s]+>")


def apop_digest(greeting, secret):
    m = TIMESTAMP_RE.search(greeting)
    assert m, "no APOP timestamp in greeting %r" % greeting
    return hashlib.md5((m.group(0) + secret).encode()).hexdigest()


def make_apop_server(make_server):
    s = make_server(config={"apop": "yes", "hostname": "pop.test.example"},
                    start=False)
    s.add_user("carol", "carol-plain-secret", scheme="plain")
    s.add_message("carol", MSG)
    s.start()
    return s


@pytest.fixture
def apop_server(make_server):
    s = make_apop_server(make_server)
    deadline = time.monotonic() + 5
    while True:
        with s.connect() as c:
            if TIMESTAMP_RE.search(c.greeting) or \
                    time.monotonic() > deadline:
                break
        time.sleep(0.05)
    return s


def test_apop_offered_from_the_start(make_server):
    """Once posternd greets, its greetings consistently offer APOP."""
    s = make_apop_server(make_server)
    for _ in range(5):
        with s.connect() as c:
            assert TIMESTAMP_RE.search(c.greeting), c.greeting


def test_apop_login(apop_server):
    with apop_server.connect() as c:
        m = TIMESTAMP_RE.search(c.greeting)
        assert m and m.group(0).endswith("@pop.test.example>"), c.greeting
        d = apop_digest(c.greeting, "carol-plain-secret")
        assert_glob(c.command("APOP carol " + d), "+OK*")
        assert c.stat()[0] == 1
        assert_glob(c.command("QUIT"), "+OK*")


def test_apop_uppercase_digest(apop_server):
    with apop_server.connect() as c:
        d = apop_digest(c.greeting, "carol-plain-secret").upper()
        assert_glob(c.command("APOP carol " + d), "+OK*")


def test_apop_timestamp_unique(apop_server):
    seen = set()
    for _ in range(3):
        with apop_server.connect() as c:
            seen.add(TIMESTAMP_RE.search(c.greeting).group(0))
    assert len(seen) == 3


def test_apop_digest_of_other_timestamp_refused(apop_server):
    with apop_server.connect() as c1, apop_server.connect() as c2:
        d = apop_digest(c1.greeting, "carol-plain-secret")
        assert_glob(c2.command("APOP carol " + d), "-ERR [AUTH]*")


@pytest.mark.parametrize("who,secret", [
    ("carol", "wrong-secret"),
    ("nosuchuser", "carol-plain-secret"),
    ("alice", "Alice-Secret-7f3e"),     # no {PLAIN} secret
])
def test_apop_refused(apop_server, who, secret):
    with apop_server.connect() as c:
        d = apop_digest(c.greeting, secret)
        assert_glob(c.command("APOP %s %s" % (who, d)), "-ERR [AUTH]*")
        assert c.capa()


@pytest.mark.parametrize("args", ["", "carol", "carol nothex",
                                  "carol 0123"])
def test_apop_bad_arguments(apop_server, args):
    with apop_server.connect() as c:
        assert_glob(c.command(("APOP " + args).strip()), "-ERR*")
        assert c.capa()


def test_apop_disabled(make_server):
    s = make_server(start=False)
    s.add_user("carol", "carol-plain-secret", scheme="plain")
    s.start()
    with s.connect() as c:
        m = TIMESTAMP_RE.search(c.greeting)
        ts = m.group(0) if m else "<1.2.3@x>"
        d = hashlib.md5((ts + "carol-plain-secret").encode()).hexdigest()
        assert_glob(c.command("APOP carol " + d), "-ERR [AUTH]*")
        assert c.capa()
        # USER/PASS works for a {PLAIN} user
        c.login("carol", "carol-plain-secret")


def test_apop_not_offered_without_plain_secrets(make_server):
    s = make_server(config={"apop": "yes"})
    with s.connect() as c:
        assert not TIMESTAMP_RE.search(c.greeting), c.greeting


# ---------------------------------------------------------------------- log

def session_id_for(srv, client_port):
    m = srv.wait_log(r"pop3 session=([0-9a-fA-F]+) connect ip=127\.0\.0\.1 "
                     r"port=%d\b" % client_port)
    return m.group(1)


def test_log_login_logout_lines(server):
    server.add_message("alice", MSG)
    server.add_message("alice", MSG)
    with server.login("alice") as c:
        sid = session_id_for(server, c.sock.getsockname()[1])
        c.retr(1)
        assert_glob(c.command("DELE 2"), "+OK*")
        c.quit()
    server.wait_log(r"pop3 session=%s login user=alice method=USER" % sid)
    server.wait_log(r"pop3 session=%s logout user=alice reason=quit retr=1 "
                    r"bytes=\d+ dele=1 duration=\d+ms" % sid)


def test_log_login_failed_line(server):
    with server.connect() as c:
        sid = session_id_for(server, c.sock.getsockname()[1])
        c.try_login("alice", "wrong-password")
    server.wait_log(r"pop3 session=%s login failed user=alice method=USER reason=\S+"
                    % sid)


@pytest.mark.parametrize("debug", ["no", "yes"])
def test_password_never_logged(make_server, debug):
    s = make_server(config={"log_debug": debug, "apop": "yes"}, start=False)
    s.add_user("carol", "Carol-Plain-Qx81", scheme="plain")
    s.start()
    with s.login("alice") as c:
        c.quit()
    with s.login("bob") as c:
        c.quit()
    with s.connect() as c:
        c.try_login("alice", "Wrong-Pass-Zq9w")
        c.try_login("nosuchuser", "Other-Wrong-Pw4")
        c.quit()
    with s.connect() as c:
        assert_glob(c.command("APOP carol " + apop_digest(
            c.greeting, "Carol-Plain-Qx81")), "+OK*")
        c.quit()
    s.wait_log(r"logout user=carol")
    assert s.stop() == 0
    log = s.log_text()
    for secret in (s.users["alice"], s.users["bob"], "Wrong-Pass-Zq9w",
                   "Other-Wrong-Pw4", "Carol-Plain-Qx81"):
        assert secret not in log, "password %r in the log" % secret
