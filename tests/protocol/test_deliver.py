"""
`postern deliver [-c CONFIG] [-f SENDER] [--max-size N] -u USER`: one
message on stdin into the user's Maildir of a live posternd, then read
back over POP3: RETR gives the message with "Return-Path: <SENDER>" and
"Delivered-To: USER" in front, in wire form, byte for byte; LIST sizes
are exact; UIDLs stay the same across sessions.  Exit statuses follow
sysexits(3): 0 delivered, 64 usage, 67 no such (or disabled) user, 73
too big, 75 temporary failure (user database, full disk).  A delivery
killed at any instant leaves no partial message visible, and every one
that exited 0 is there exactly once.
"""

import os
import pwd
import random
import shutil
import signal
import subprocess
import threading
import time

import pytest

import harness
from harness import (expected_uidl, is_root, postern, postern_path,
                     wire_form, wire_size)

SENDER = "sender@example.org"

EX_OK = 0
EX_USAGE = 64
EX_NOUSER = 67
EX_CANTCREAT = 73
EX_TEMPFAIL = 75


@pytest.fixture(autouse=True)
def no_sender_env(monkeypatch):
    """Without -f, the sender comes from $SENDER: none unless a test
    sets one."""
    monkeypatch.delenv("SENDER", raising=False)


def deliver(srv, user, data, *args, conf=None):
    return postern("deliver", "-c", conf or srv.conf_path, *args,
                   "-u", user, input=data)


def stored_form(data, user, sender=SENDER):
    """What the Maildir file holds: the two header lines (with the line
    end of the message's first line), the message without a leading
    "From " line, and a newline after a last line that has none."""
    if data.startswith(b"From ") and data[5:6] not in (b" ", b"\t", b":",
                                                       b"\r", b"\n") \
            and b"\n" in data:
        data = data[data.index(b"\n") + 1:]
    first = data.split(b"\n", 1)
    eol = b"\r\n" if len(first) == 2 and first[0].endswith(b"\r") else b"\n"
    head = b"Return-Path: <" + sender.encode() + b">" + eol + \
        b"Delivered-To: " + user.encode() + eol
    out = head + data
    if not out.endswith(b"\n"):
        out += b"\r\n" if out.endswith(b"\r") or eol == b"\r\n" else b"\n"
    return out


def one_line(r):
    err = r.stderr.decode("utf-8", "replace").strip()
    assert err, "no message on stderr"
    assert "\n" not in err, "more than one line on stderr: %r" % err
    return err


def new_and_cur(srv, user):
    md = srv.maildir(user)
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(md, sub)
        if os.path.isdir(d):
            out += [os.path.join(sub, f) for f in os.listdir(d)
                    if not f.startswith(".")]
    return sorted(out)


def tmp_files(srv, user):
    d = os.path.join(srv.maildir(user), "tmp")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def conf_copy(srv, **changes):
    """A configuration file like the server's, with changes."""
    cfg = dict(srv.config)
    cfg.update(changes)
    lines = []
    for k, v in cfg.items():
        for one in (v if isinstance(v, (list, tuple)) else [v]):
            if isinstance(one, bool):
                one = "yes" if one else "no"
            lines.append("%s = %s" % (k, one))
    path = os.path.join(srv.dir, "deliver-%d.conf" % random.getrandbits(32))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


MESSAGES = [
    b"Subject: plain\n\nHello.\n",
    b"Subject: crlf\r\n\r\nLine one.\r\nLine two.\r\n",
    b"Subject: no final newline\n\nlast line",
    b"Subject: crlf, no final newline\r\n\r\nlast line",
    b"Subject: dots\n\n.leading dot\n..two\n.\nend\n",
    b"Subject: mixed\r\n\r\nbare LF\ncrlf\r\nbare\rCR\n",
    b"Subject: 8bit\n\n\xe4\xf6\xfc \x00 nul and \xff\n",
    b"Subject: trailing CR\n\nend\r",
    b"\n",
    b"",
    b"Subject: long\n\n" + b"x" * 200000 + b"\n" + b"y" * 70000,
]


def test_deliver_then_retr_byte_exact(server):
    expected = []
    for m in MESSAGES:
        r = deliver(server, "alice", m, "-f", SENDER)
        assert r.returncode == EX_OK, r.stderr
        assert r.stderr == b"" and r.stdout == b""
        expected.append(stored_form(m, "alice"))
    files = new_and_cur(server, "alice")
    assert len(files) == len(MESSAGES)
    assert all(f.startswith("new/") for f in files)
    assert tmp_files(server, "alice") == []
    if is_root():
        nobody = pwd.getpwnam("nobody").pw_uid
        for f in files + [""]:
            st = os.stat(os.path.join(server.maildir("alice"), f))
            assert st.st_uid == nobody, f
    bases = set(server.message_files("alice"))
    with server.login("alice") as c:
        assert c.stat() == (len(expected), sum(wire_size(e)
                                               for e in expected))
        assert c.list() == {i + 1: wire_size(e)
                            for i, e in enumerate(expected)}
        for i, e in enumerate(expected):
            assert c.retr(i + 1) == wire_form(e), "message %d" % (i + 1)
            st, raw = c.retr_raw(i + 1)
            assert st == "+OK %d octets" % wire_size(e)
            assert raw == harness.multiline_body(e)
        uidls = c.uidl()
        assert set(uidls.values()) == {expected_uidl(b) for b in bases}
        c.quit()
    # The same UIDLs in the next sessions, also with new mail.
    with server.login("alice") as c:
        assert c.uidl() == uidls
        c.quit()
    r = deliver(server, "alice", b"Subject: later\n\nx\n", "-f", SENDER)
    assert r.returncode == EX_OK, r.stderr
    with server.login("alice") as c:
        now = c.uidl()
        assert {n: u for n, u in now.items() if n <= len(uidls)} == uidls
        assert len(now) == len(uidls) + 1
        assert c.retr(len(now)) == wire_form(
            stored_form(b"Subject: later\n\nx\n", "alice"))
        c.quit()


def test_delivery_during_a_session_waits_for_the_next(server):
    assert deliver(server, "bob", b"Subject: 1\n\n1\n").returncode == EX_OK
    with server.login("bob") as c:
        assert c.stat()[0] == 1
        assert deliver(server, "bob", b"Subject: 2\n\n2\n").returncode == 0
        assert c.stat()[0] == 1
        assert c.retr(1) == wire_form(stored_form(b"Subject: 1\n\n1\n", "bob",
                                                  ""))
        c.quit()
    with server.login("bob") as c:
        assert c.stat()[0] == 2
        c.quit()


def first_lines(srv, user, n=2):
    files = new_and_cur(srv, user)
    assert len(files) == 1
    path = os.path.join(srv.maildir(user), files[0])
    with open(path, "rb") as f:
        data = f.read()
    os.unlink(path)
    return data.split(b"\n")[:n], data


def test_sender_sources(server, monkeypatch):
    msg = b"Subject: s\n\nbody\n"
    monkeypatch.setenv("SENDER", "env@example.org")
    assert deliver(server, "alice", msg, "-f", "opt@example.org"
                   ).returncode == EX_OK
    assert first_lines(server, "alice")[0] == [
        b"Return-Path: <opt@example.org>", b"Delivered-To: alice"]
    assert deliver(server, "alice", msg).returncode == EX_OK
    assert first_lines(server, "alice")[0][0] == \
        b"Return-Path: <env@example.org>"
    assert deliver(server, "alice", msg, "--from", "<br@example.org>"
                   ).returncode == EX_OK
    assert first_lines(server, "alice")[0][0] == \
        b"Return-Path: <br@example.org>"
    monkeypatch.setenv("SENDER", "")        # Postfix's null sender
    assert deliver(server, "alice", msg).returncode == EX_OK
    assert first_lines(server, "alice")[0][0] == b"Return-Path: <>"
    monkeypatch.delenv("SENDER")
    assert deliver(server, "alice", msg).returncode == EX_OK
    lines, data = first_lines(server, "alice", 3)
    assert lines == [b"Return-Path: <>", b"Delivered-To: alice",
                     b"Subject: s"]
    assert data == b"Return-Path: <>\nDelivered-To: alice\n" + msg


def test_from_line_dropped_and_crlf_headers(server):
    msg = b"From sender@example.org  Sat Nov 22 07:00:00 2026\n" \
        b"Subject: f\r\nFrom: someone@example.org\r\n\r\nbody\r\n"
    assert deliver(server, "alice", msg, "-f", SENDER).returncode == EX_OK
    _, data = first_lines(server, "alice")
    assert data == b"Return-Path: <" + SENDER.encode() + \
        b">\r\nDelivered-To: alice\r\nSubject: f\r\n" \
        b"From: someone@example.org\r\n\r\nbody\r\n"
    assert data == stored_form(msg, "alice")
    # "From:" and "From :" are header fields, not envelope lines.
    for msg in (b"From: a@example.org\n\nx\n", b"From : a@example.org\n\nx\n"):
        assert deliver(server, "alice", msg, "-f", SENDER).returncode == 0
        _, data = first_lines(server, "alice")
        assert data.endswith(msg)


def test_unknown_and_disabled_users(server):
    for user in ("carol", "../alice", "alice/../bob", ".hidden", "a" * 300):
        r = deliver(server, user, b"Subject: x\n\nx\n")
        assert r.returncode == EX_NOUSER, (user, r.stderr)
        one_line(r)
    assert sorted(os.listdir(server.mail_root)) == []
    r = postern("user", "set", "--db", server.user_db, "--disable", "bob")
    assert r.returncode == 0, r.stderr
    r = deliver(server, "bob", b"Subject: x\n\nx\n")
    assert r.returncode == EX_NOUSER
    assert "disabled" in one_line(r)
    assert not os.path.exists(server.maildir("bob"))
    r = postern("user", "set", "--db", server.user_db, "--enable", "bob")
    assert r.returncode == 0, r.stderr
    assert deliver(server, "bob", b"Subject: x\n\nx\n").returncode == EX_OK


def test_sqlite_user_db():
    srv = harness.Server(user_db_type="sqlite",
                         users={"alice": "pw-alice-sqlite"})
    try:
        srv.start()
        r = deliver(srv, "alice", b"Subject: q\n\nsqlite\n")
        assert r.returncode == EX_OK, r.stderr
        r = deliver(srv, "nobody-here", b"Subject: q\n\nsqlite\n")
        assert r.returncode == EX_NOUSER, r.stderr
        with srv.login("alice") as c:
            assert c.retr(1) == wire_form(stored_form(
                b"Subject: q\n\nsqlite\n", "alice", ""))
            c.quit()
    finally:
        srv.cleanup()


def test_size_limit(server):
    body = b"Subject: size\n\n"
    body += b"z" * (100 - len(body) - 1) + b"\n"
    assert len(body) == 100
    r = deliver(server, "alice", body + b"!", "--max-size", "100")
    assert r.returncode == EX_CANTCREAT, r.stderr
    assert "100" in one_line(r)
    assert new_and_cur(server, "alice") == []
    assert tmp_files(server, "alice") == []
    r = deliver(server, "alice", body, "--max-size", "100")
    assert r.returncode == EX_OK, r.stderr
    # The "From " line counts: the limit is on standard input.
    r = deliver(server, "alice", b"From a@b  Sat Nov 22 07:00:00 2026\n" +
                body, "--max-size", "100")
    assert r.returncode == EX_CANTCREAT
    # A big one against the default limit is fine; k/M/G units.
    big = b"Subject: big\n\n" + (b"0123456789" * 100 + b"\n") * 3000
    assert deliver(server, "alice", big).returncode == EX_OK
    r = deliver(server, "alice", big, "--max-size", "2M")
    assert r.returncode == EX_CANTCREAT
    assert deliver(server, "alice", big, "--max-size", "4M").returncode == 0
    assert len(new_and_cur(server, "alice")) == 3
    assert tmp_files(server, "alice") == []


def test_size_limit_from_configuration(server):
    # deliver_max_size sets the default; --max-size overrides it
    conf = conf_copy(server, deliver_max_size="1k")
    body = b"Subject: conf size\n\n" + b"q" * 2000 + b"\n"
    r = deliver(server, "alice", body, conf=conf)
    assert r.returncode == EX_CANTCREAT, r.stderr
    assert "1024" in one_line(r)
    assert new_and_cur(server, "alice") == []
    r = deliver(server, "alice", body, "--max-size", "4k", conf=conf)
    assert r.returncode == EX_OK, r.stderr
    assert len(new_and_cur(server, "alice")) == 1


@pytest.mark.parametrize("args", [
    [],
    ["-u"],
    ["-u", "alice", "extra"],
    ["-u", "alice", "--bogus"],
    ["-u", "alice", "--max-size", "lots"],
    ["-u", "alice", "--max-size", "-5"],
    ["-u", "alice", "--max-size", "2000G"],
    ["-u", "alice", "-f", "a@b\r\nX-Injected: yes"],
    ["-u", "alice", "-f", "a\tb"],
    ["-u", "alice", "-f", "a" * 901],
])
def test_usage_errors(server, args):
    r = postern("deliver", "-c", server.conf_path, *args,
                input=b"Subject: x\n\nx\n")
    assert r.returncode == EX_USAGE, (args, r.stderr)
    one_line(r)
    assert not os.path.exists(server.maildir("alice"))


def test_help():
    r = postern("deliver", "-h")
    assert r.returncode == 0
    assert b"usage: postern deliver" in r.stdout
    r = postern("help")
    assert b"deliver" in r.stdout


def test_user_db_trouble_is_temporary(server):
    msg = b"Subject: t\n\nt\n"
    missing = conf_copy(server, user_db=os.path.join(server.dir, "nope"))
    r = deliver(server, "alice", msg, conf=missing)
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert "user_db" in one_line(r)
    bad = os.path.join(server.dir, "bad-users")
    with open(bad, "w") as f:
        f.write("alice:{PLAIN}x\nthis line is not a user\n")
    r = deliver(server, "alice", msg, conf=conf_copy(server, user_db=bad))
    assert r.returncode == EX_TEMPFAIL, r.stderr
    one_line(r)
    r = deliver(server, "alice", msg, conf=os.path.join(server.dir, "none"))
    assert r.returncode == EX_TEMPFAIL, r.stderr
    one_line(r)
    assert not os.path.exists(server.maildir("alice"))
    if not is_root():
        # As an ordinary user, a file it may not read.
        locked = os.path.join(server.dir, "locked-users")
        shutil.copy(server.user_db, locked)
        os.chmod(locked, 0)
        r = deliver(server, "alice", msg,
                    conf=conf_copy(server, user_db=locked))
        assert r.returncode == EX_TEMPFAIL, r.stderr


def test_full_disk_is_temporary(make_server):
    srv = make_server(start=False)
    why = srv.mount_small_mail_root()
    if why:
        pytest.skip(why)
    try:
        srv.start()
        small = b"Subject: small\n\nfits\n"
        assert deliver(srv, "alice", small).returncode == EX_OK
        big = b"Subject: big\n\n" + (b"b" * 99 + b"\n") * 20000  # 2 MB
        r = deliver(srv, "alice", big)
        assert r.returncode == EX_TEMPFAIL, r.stderr
        assert "No space left" in one_line(r)
        assert len(new_and_cur(srv, "alice")) == 1
        assert tmp_files(srv, "alice") == []
        with srv.login("alice") as c:
            assert c.stat() == (1, wire_size(stored_form(small, "alice",
                                                         "")))
            c.quit()
        # The space is back: the next delivery goes through.
        assert deliver(srv, "alice", small).returncode == EX_OK
        with srv.login("alice") as c:
            assert c.stat()[0] == 2
            c.quit()
    finally:
        srv.unmount_mail_root()


def crash_message(i, size):
    head = b"Subject: crash %d\nX-Marker: %d\n\n" % (i, i)
    line = (b"%08d " % i) + b"k" * 70 + b"\n"
    return head + line * (size // len(line))


def run_deliver(srv, data, kill_after=None):
    """Runs postern deliver fed from a thread; SIGKILL after kill_after
    seconds.  Returns the exit status (negative: killed)."""
    p = subprocess.Popen([postern_path(), "deliver", "-c", srv.conf_path,
                          "-f", SENDER, "-u", "alice"],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=harness._child_env())

    def feed():
        try:
            p.stdin.write(data)
            p.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    if kill_after is not None:
        try:
            p.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
    err = p.stderr.read()
    status = p.wait(timeout=120)
    t.join(10)
    if status >= 0:
        harness.check_sanitizer_output(err, "postern deliver")
    return status, err


def test_sigkill_at_random_instants(server):
    size = 2 * 1024 * 1024
    rng = random.Random(os.environ.get("POSTERN_SEED", "deliver"))
    # How long one whole delivery takes here (ASan builds are slower).
    t0 = time.monotonic()
    st, err = run_deliver(server, crash_message(0, size))
    took = time.monotonic() - t0
    assert st == EX_OK, err
    sent = {0: crash_message(0, size)}
    delivered = {0}
    killed = 0
    deadline = time.monotonic() + 120
    # The kill window follows the fastest whole delivery seen, so that a
    # loaded machine (slow first run, fast later ones) still cuts most
    # deliveries short; bounded in count and time.
    for i in range(1, 101):
        if time.monotonic() > deadline or (killed >= 30 and i > 50):
            break
        sent[i] = crash_message(i, size)
        t0 = time.monotonic()
        st, err = run_deliver(server, sent[i],
                              kill_after=rng.uniform(0, took * 1.1))
        if st == EX_OK:
            delivered.add(i)
            took = min(took, time.monotonic() - t0)
        else:
            assert st == -signal.SIGKILL, (i, st, err)
            killed += 1
    assert killed >= 10, "only %d deliveries were cut short" % killed
    # Two ordinary deliveries afterwards still work.
    for i in (1001, 1002):
        sent[i] = crash_message(i, 1000)
        st, err = run_deliver(server, sent[i])
        assert st == EX_OK, err
        delivered.add(i)
    seen = {}
    with server.login("alice") as c:
        sizes = c.list()
        for n in sorted(sizes):
            got = c.retr(n, timeout=60)
            marker = int(got.split(b"X-Marker: ", 1)[1].split(b"\r\n", 1)[0])
            want = wire_form(stored_form(sent[marker], "alice"))
            assert got == want, "message %d (marker %d) is damaged" % (
                n, marker)
            assert sizes[n] == len(want)
            seen[marker] = seen.get(marker, 0) + 1
        c.quit()
    assert all(v == 1 for v in seen.values()), \
        "delivered more than once: %r" % {k: v for k, v in seen.items()
                                          if v > 1}
    missing = delivered - set(seen)
    assert not missing, "exit 0 but not in the mailbox: %r" % sorted(missing)
    # Cut-short deliveries leave at most their tmp/ file, never more.
    assert len(tmp_files(server, "alice")) <= killed
