"""
The mbox store (mboxrd) against a live posternd: `mailbox_path =
mbox:%u`, or an existing regular file found by autodetection.  RETR is
byte-exact against the wire form of the unquoted message, ">From"
quoting round-trips, UIDLs stay across sessions and restarts, X-UIDL
headers are imported, DELE+QUIT rewrites the file keeping the others
byte for byte (and mail appended meanwhile), both locks (dotlock and
fcntl) give -ERR [IN-USE], `postern deliver` appends, and a full disk
leaves the old mbox as it was (for a delivery and for a rewrite).
EXPIRE and LOGIN-DELAY work on an mbox.  Deliveries killed mid-append
leave no partial message, and a delivery killed before any one of its
system calls leaves no lock behind.  The crash test kills the pop3
worker during rewrites of a large mbox and checks the file after each
kill.
"""

import fcntl
import os
import random
import shutil
import re
import subprocess
import threading
import time

import pytest

import harness
from harness import postern, wire_form, wire_size

EX_OK = 0
EX_TEMPFAIL = 75

FROM_RE = re.compile(rb"^>*From ")


def quote(msg):
    """mboxrd quoting: one more '>' on every line matching ^>*From ."""
    out = []
    for line in msg.split(b"\n"):
        out.append(b">" + line if FROM_RE.match(line) else line)
    return b"\n".join(out)


def mbox_entry(msg, sender=b"someone@example.org",
               date=b"Sat Nov 21 10:00:00 2026"):
    """One message as an MTA appends it: From_ line, quoted message with
    a final newline, an empty line."""
    if not msg.endswith(b"\n"):
        msg += b"\n"
    return b"From " + sender + b" " + date + b"\n" + quote(msg) + b"\n"


def mbox_path(srv, user):
    return os.path.join(srv.mail_root, user)


def write_mbox(srv, user, msgs):
    path = mbox_path(srv, user)
    with open(path, "wb") as f:
        for m in msgs:
            f.write(mbox_entry(m))
    srv._fix_owner(path)
    return path


def append_mbox(srv, user, msg):
    with open(mbox_path(srv, user), "ab") as f:
        f.write(mbox_entry(msg))


def read_mbox(srv, user):
    with open(mbox_path(srv, user), "rb") as f:
        return f.read()


def msg(i, extra=b""):
    return (b"Subject: message %d\nMessage-ID: <%d@test>\n\n" % (i, i) +
            b"body of message %d\n" % i + extra)


MBOX_CONF = {"mailbox_path": "mbox:%u", "mbox_lock_timeout": "2s"}


@pytest.fixture
def mbox_server(make_server):
    srv = make_server(config=MBOX_CONF, start=False)
    srv.chown_mail_root()
    srv.start()
    return srv


def check_retr_all(c, msgs):
    assert c.stat() == (len(msgs), sum(wire_size(m) for m in msgs))
    sizes = c.list()
    for i, m in enumerate(msgs, 1):
        assert sizes[i] == wire_size(m)
        assert c.retr(i) == wire_form(m)


def test_retr_byte_exact(mbox_server):
    msgs = [msg(1), msg(2, b".dot line\n..two\n"),
            b"Subject: crlf\r\n\r\nline one\r\nline two\r\n",
            b"Subject: no final newline\n\nlast",
            msg(5, b"\n\n\ntrailing empty lines\n\n")]
    write_mbox(mbox_server, "alice", msgs)
    with mbox_server.login("alice") as c:
        check_retr_all(c, [m if m.endswith(b"\n") else m + b"\n"
                           for m in msgs])
        assert c.top(2, 1) == wire_form(msgs[1], top=1)
        assert c.top(1, 0) == wire_form(msgs[0], top=0)
        c.quit()


def test_from_quoting_round_trip(mbox_server):
    body = (b"Subject: quoting\n\nFrom the start of a line\n"
            b">From one quote\n>>From two quotes\n>>>From three\n"
            b"From\n>From\nFromage\n> From not quoted\n"
            b"From here to the end")
    write_mbox(mbox_server, "alice", [body, msg(2)])
    raw = read_mbox(mbox_server, "alice")
    assert b"\n>From the start" in raw
    assert b"\n>>From one quote" in raw
    assert b"\n>>>From two quotes" in raw
    assert b"\n>>>>From three" in raw
    with mbox_server.login("alice") as c:
        check_retr_all(c, [body + b"\n", msg(2)])
        c.quit()


def test_from_without_blank_line_is_body(mbox_server):
    """"From " after a non-empty line does not start a message; the
    Content-Length header is never believed."""
    path = mbox_path(mbox_server, "alice")
    data = (b"From a@b Sat Nov 21 10:00:00 2026\n"
            b"Subject: one\nContent-Length: 3\n\nline\n"
            b"From inside the body, unquoted\nmore\n\n"
            b"From c@d Sat Nov 21 10:00:01 2026\nSubject: two\n\nx\n\n")
    with open(path, "wb") as f:
        f.write(data)
    mbox_server._fix_owner(path)
    one = (b"Subject: one\nContent-Length: 3\n\nline\n"
           b"From inside the body, unquoted\nmore\n")
    with mbox_server.login("alice") as c:
        check_retr_all(c, [one, b"Subject: two\n\nx\n"])
        c.quit()


def test_autodetect_regular_file_is_mbox(make_server):
    srv = make_server(config={"mbox_lock_timeout": "2s"}, start=False)
    srv.chown_mail_root()
    srv.start()
    write_mbox(srv, "alice", [msg(1), msg(2)])
    srv.add_message("bob", msg(3))          # a Maildir for bob
    with srv.login("alice") as c:
        check_retr_all(c, [msg(1), msg(2)])
        assert c.command("DELE 1").startswith("+OK")
        c.quit()
    assert harness.split_mbox(read_mbox(srv, "alice")) == [msg(2)]
    with srv.login("bob") as c:
        check_retr_all(c, [msg(3)])
        c.quit()
    assert os.path.isdir(srv.maildir("bob"))


def test_maildir_prefix_and_directory_as_mbox(make_server):
    """maildir:%u makes every mailbox a Maildir; mbox:%u on a
    directory is a permanent error."""
    srv = make_server(config={"mailbox_path": "maildir:%u"}, start=False)
    srv.chown_mail_root()
    srv.start()
    srv.add_message("alice", msg(1))
    with srv.login("alice") as c:
        check_retr_all(c, [msg(1)])
        c.quit()
    srv.set_config(mailbox_path="mbox:%u")
    srv.reload()
    deadline = time.monotonic() + 10
    while True:
        c = srv.connect()
        c.command("USER alice")
        r = c.command("PASS " + srv.users["alice"])
        c.close()
        if r.startswith("-ERR") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.startswith("-ERR [SYS/PERM]"), r


def test_missing_mbox_is_empty(mbox_server):
    with mbox_server.login("alice") as c:
        assert c.stat() == (0, 0)
        c.quit()
    assert not os.path.exists(mbox_path(mbox_server, "alice"))


def test_uidl_stable_across_sessions_and_restart(mbox_server):
    write_mbox(mbox_server, "alice", [msg(i) for i in range(1, 6)])
    with mbox_server.login("alice") as c:
        first = c.uidl()
        c.quit()
    assert len(set(first.values())) == 5
    # Mail appended by an MTA keeps the old UIDLs and gets new ones.
    append_mbox(mbox_server, "alice", msg(6))
    with mbox_server.login("alice") as c:
        second = c.uidl()
        c.quit()
    assert {k: second[k] for k in first} == first
    assert second[6] not in first.values()
    mbox_server.restart()
    with mbox_server.login("alice") as c:
        assert c.uidl() == second
        c.quit()


def test_xuidl_import(mbox_server):
    msgs = [b"X-UIDL: qpop-0001\nSubject: a\n\na\n",
            b"Subject: b\nX-UIDL:    qpop-0002   \n\nb\n",
            b"X-UIDL: qpop-0001\nSubject: duplicate\n\nc\n",
            b"X-UIDL: " + b"x" * 71 + b"\nSubject: too long\n\nd\n",
            b"Subject: body only\n\nX-UIDL: not-a-header\n"]
    write_mbox(mbox_server, "alice", msgs)
    with mbox_server.login("alice") as c:
        u = c.uidl()
        c.quit()
    assert u[1] == "qpop-0001"
    assert u[2] == "qpop-0002"
    assert u[3] not in ("qpop-0001", "qpop-0002")
    assert u[4] != "x" * 71 and len(u[4]) <= 70
    assert u[5] != "not-a-header"
    assert len(set(u.values())) == 5
    # A deleted UIDL never comes back, not even through an X-UIDL
    # header that names it.
    with mbox_server.login("alice") as c:
        assert c.command("DELE 3").startswith("+OK")
        assert c.quit().startswith("+OK")
    append_mbox(mbox_server, "alice",
                b"X-UIDL: " + u[3].encode() + b"\n\nreplay\n")
    with mbox_server.login("alice") as c:
        u2 = c.uidl()
        c.quit()
    assert len(u2) == 5
    assert u[3] not in u2.values()
    assert u2[1] == "qpop-0001"


def test_dele_quit_rewrites_keeping_others(mbox_server):
    msgs = [msg(i, b"From quoted line %d\n" % i) for i in range(1, 8)]
    write_mbox(mbox_server, "alice", msgs)
    before = read_mbox(mbox_server, "alice")
    entries = [mbox_entry(m) for m in msgs]
    st = os.stat(mbox_path(mbox_server, "alice"))
    os.chmod(mbox_path(mbox_server, "alice"), 0o640)
    with mbox_server.login("alice") as c:
        uidls = c.uidl()
        for n in (2, 5, 7):
            assert c.command("DELE %d" % n).startswith("+OK")
        assert c.quit().startswith("+OK")
    after = read_mbox(mbox_server, "alice")
    assert after == b"".join(entries[i] for i in (0, 2, 3, 5))
    assert after != before
    st2 = os.stat(mbox_path(mbox_server, "alice"))
    assert st2.st_mode & 0o7777 == 0o640
    assert (st2.st_uid, st2.st_gid) == (st.st_uid, st.st_gid)
    with mbox_server.login("alice") as c:
        assert c.uidl() == {1: uidls[1], 2: uidls[3], 3: uidls[4],
                            4: uidls[6]}
        check_retr_all(c, [msgs[i] for i in (0, 2, 3, 5)])
        c.quit()
    assert not os.path.exists(mbox_path(mbox_server, "alice") + ".lock")


def test_rset_and_dropped_connection_delete_nothing(mbox_server):
    write_mbox(mbox_server, "alice", [msg(1), msg(2)])
    before = read_mbox(mbox_server, "alice")
    with mbox_server.login("alice") as c:
        assert c.command("DELE 1").startswith("+OK")
        assert c.command("RSET").startswith("+OK")
        c.quit()
    c = mbox_server.login("alice")
    assert c.command("DELE 2").startswith("+OK")
    c.close()
    time.sleep(0.3)
    assert read_mbox(mbox_server, "alice") == before


def test_mail_appended_during_session_survives(mbox_server):
    write_mbox(mbox_server, "alice", [msg(1), msg(2)])
    with mbox_server.login("alice") as c:
        uidls = c.uidl()
        assert c.command("DELE 1").startswith("+OK")
        append_mbox(mbox_server, "alice", msg(3))
        assert c.quit().startswith("+OK")
    assert read_mbox(mbox_server, "alice") == mbox_entry(msg(2)) + \
        mbox_entry(msg(3))
    with mbox_server.login("alice") as c:
        u = c.uidl()
        assert u[1] == uidls[2]
        assert u[2] not in uidls.values()
        check_retr_all(c, [msg(2), msg(3)])
        c.quit()


def test_dotlock_held_gives_in_use(mbox_server):
    write_mbox(mbox_server, "alice", [msg(1)])
    lock = mbox_path(mbox_server, "alice") + ".lock"
    with open(lock, "wb"):
        pass
    try:
        c = mbox_server.connect()
        c.command("USER alice")
        t0 = time.monotonic()
        r = c.command("PASS " + mbox_server.users["alice"])
        elapsed = time.monotonic() - t0
        assert r.startswith("-ERR [IN-USE]"), r
        assert 1.5 <= elapsed < 6, elapsed
        c.close()
    finally:
        os.unlink(lock)
    with mbox_server.login("alice") as c:
        assert c.stat()[0] == 1
        c.quit()


def test_stale_dotlock_is_broken(mbox_server):
    write_mbox(mbox_server, "alice", [msg(1)])
    lock = mbox_path(mbox_server, "alice") + ".lock"
    with open(lock, "wb"):
        pass
    old = time.time() - 3600
    os.utime(lock, (old, old))
    with mbox_server.login("alice") as c:
        assert c.stat()[0] == 1
        c.quit()
    assert not os.path.exists(lock)


def test_fcntl_lock_held_gives_in_use(mbox_server):
    path = write_mbox(mbox_server, "alice", [msg(1)])
    with open(path, "r+b") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        c = mbox_server.connect()
        c.command("USER alice")
        r = c.command("PASS " + mbox_server.users["alice"])
        assert r.startswith("-ERR [IN-USE]"), r
        c.close()
        fcntl.lockf(f, fcntl.LOCK_UN)
    with mbox_server.login("alice") as c:
        assert c.stat()[0] == 1
        c.quit()


def test_lock_session_second_session_in_use(make_server):
    srv = make_server(config=dict(MBOX_CONF, lock_session=True),
                      start=False)
    srv.chown_mail_root()
    srv.start()
    write_mbox(srv, "alice", [msg(1), msg(2)])
    with srv.login("alice") as c:
        d = srv.connect()
        d.command("USER alice")
        r = d.command("PASS " + srv.users["alice"])
        assert r.startswith("-ERR [IN-USE]"), r
        d.close()
        assert os.path.exists(mbox_path(srv, "alice") + ".lock")
        # What an MTA or MUA sees: the fcntl lock is taken, and O_EXCL
        # on the dotlock fails.
        with open(mbox_path(srv, "alice"), "r+b") as f:
            with pytest.raises(OSError):
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(FileExistsError):
            os.open(mbox_path(srv, "alice") + ".lock",
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        assert c.command("DELE 1").startswith("+OK")
        assert c.quit().startswith("+OK")
    assert not os.path.exists(mbox_path(srv, "alice") + ".lock")
    assert harness.split_mbox(read_mbox(srv, "alice")) == [msg(2)]


def deliver(srv, user, data, *args):
    return postern("deliver", "-c", srv.conf_path, *args, "-u", user,
                   input=data)


def delivered_form(data, user, sender):
    head = b"Return-Path: <" + sender.encode() + b">\nDelivered-To: " + \
        user.encode() + b"\n"
    return head + data


def test_deliver_into_mbox_then_retr(mbox_server):
    write_mbox(mbox_server, "alice", [msg(1)])
    data = (b"Subject: delivered\n\nFrom the start\n>From quoted\n"
            b".dot\nno final newline")
    r = deliver(mbox_server, "alice", data, "-f", "s@example.org")
    assert r.returncode == EX_OK, r.stderr
    raw = read_mbox(mbox_server, "alice")
    assert raw.startswith(mbox_entry(msg(1)))
    tail = raw[len(mbox_entry(msg(1))):]
    assert tail.startswith(b"From s@example.org ")
    assert tail.endswith(b"\n>From the start\n>>From quoted\n.dot\n"
                         b"no final newline\n\n")
    expect = delivered_form(data, "alice", "s@example.org") + b"\n"
    with mbox_server.login("alice") as c:
        check_retr_all(c, [msg(1), expect])
        c.quit()
    # Into a missing mbox: it is created; no sender gives MAILER-DAEMON.
    r = deliver(mbox_server, "bob", b"Subject: x\n\ny\n")
    assert r.returncode == EX_OK, r.stderr
    assert read_mbox(mbox_server, "bob").startswith(b"From MAILER-DAEMON ")
    with mbox_server.login("bob") as c:
        check_retr_all(c, [delivered_form(b"Subject: x\n\ny\n", "bob",
                                          "")])
        c.quit()


def test_deliver_updates_index(mbox_server):
    """The index learns each delivered message, so a session after a
    delivery scans nothing: the index describes the file exactly."""
    for i in range(3):
        r = deliver(mbox_server, "alice", msg(i))
        assert r.returncode == EX_OK, r.stderr
    idx = os.path.join(mbox_server.mail_root, ".alice.postern-index")
    with open(idx, "rb") as f:
        text = f.read()
    st = os.stat(mbox_path(mbox_server, "alice"))
    fileline = text.split(b"\n")[1].split(b" ")
    assert int(fileline[2]) == st.st_ino
    assert int(fileline[3]) == st.st_size
    assert text.count(b"\nm ") == 3
    with mbox_server.login("alice") as c:
        assert c.stat()[0] == 3
        c.quit()


def test_disk_full_deliver_leaves_mbox(make_server):
    srv = make_server(config=MBOX_CONF, start=False)
    why = srv.mount_small_mail_root()
    if why:
        pytest.skip(why)
    try:
        srv.start()
        assert deliver(srv, "alice", msg(1)).returncode == EX_OK
        before = read_mbox(srv, "alice")
        big = b"Subject: big\n\n" + (b"b" * 99 + b"\n") * 20000  # 2 MB
        r = deliver(srv, "alice", big)
        assert r.returncode == EX_TEMPFAIL, r.stderr
        assert b"No space left" in r.stderr
        assert read_mbox(srv, "alice") == before
        with srv.login("alice") as c:
            assert c.stat()[0] == 1
            c.quit()
        assert deliver(srv, "alice", msg(2)).returncode == EX_OK
        with srv.login("alice") as c:
            assert c.stat()[0] == 2
            c.quit()
        # A rewrite that does not fit: -ERR, and the mbox as it was.
        half = b"Subject: half\n\n" + (b"h" * 99 + b"\n") * 6000
        assert deliver(srv, "alice", half).returncode == EX_OK
        before = read_mbox(srv, "alice")
        with srv.login("alice") as c:
            assert c.command("DELE 1").startswith("+OK")
            r = c.quit()
            assert r.startswith("-ERR [SYS/TEMP]"), r
        assert read_mbox(srv, "alice") == before
        assert not os.path.exists(os.path.join(srv.mail_root,
                                               ".alice.postern-new"))
        with srv.login("alice") as c:
            assert c.stat()[0] == 3
            c.quit()
    finally:
        srv.unmount_mail_root()


def test_changed_by_other_program_keeps_uidls(mbox_server):
    """Another MUA deletes a message by rewriting the file in place: the
    index no longer matches, the mbox is scanned again and the others
    keep their UIDLs."""
    msgs = [msg(i) for i in range(1, 5)]
    write_mbox(mbox_server, "alice", msgs)
    with mbox_server.login("alice") as c:
        u = c.uidl()
        c.quit()
    path = mbox_path(mbox_server, "alice")
    with open(path, "r+b") as f:
        data = b"".join(mbox_entry(m) for m in (msgs[0], msgs[2], msgs[3]))
        f.write(data)
        f.truncate(len(data))
    with mbox_server.login("alice") as c:
        assert c.uidl() == {1: u[1], 2: u[3], 3: u[4]}
        check_retr_all(c, [msgs[0], msgs[2], msgs[3]])
        c.quit()


def test_not_an_mbox_is_permanent(mbox_server):
    path = mbox_path(mbox_server, "alice")
    with open(path, "wb") as f:
        f.write(b"this is not an mbox\n")
    mbox_server._fix_owner(path)
    c = mbox_server.connect()
    c.command("USER alice")
    r = c.command("PASS " + mbox_server.users["alice"])
    assert r.startswith("-ERR [SYS/PERM]"), r
    c.close()


def test_expire_on_mbox(make_server):
    """EXPIRE: retrieval times are kept in the mbox index; with expire
    0 what a session retrieved goes at its QUIT, with 5 days nothing
    fresh goes and the time survives the next session."""
    srv = make_server(config=dict(MBOX_CONF, expire=0), start=False)
    srv.chown_mail_root()
    srv.start()
    write_mbox(srv, "alice", [msg(1), msg(2), msg(3)])
    with srv.login("alice") as c:
        assert c.retr(2) == wire_form(msg(2))
        assert c.quit().startswith("+OK")
    assert harness.split_mbox(read_mbox(srv, "alice")) == [msg(1), msg(3)]
    srv.set_config(expire=5)
    srv.reload()
    time.sleep(0.5)
    with srv.login("alice") as c:
        c.retr(1)
        c.quit()
    idx = os.path.join(srv.mail_root, ".alice.postern-index")
    with open(idx, "rb") as f:
        lines = [l.split(b" ") for l in f.read().split(b"\n")
                 if l.startswith(b"m ")]
    assert int(lines[0][8]) > 0 and int(lines[1][8]) == 0
    assert harness.split_mbox(read_mbox(srv, "alice")) == [msg(1), msg(3)]


def test_login_delay_on_mbox(make_server):
    srv = make_server(config=dict(MBOX_CONF, login_delay="2s"),
                      start=False)
    srv.chown_mail_root()
    srv.start()
    write_mbox(srv, "alice", [msg(1)])
    with srv.login("alice") as c:
        c.quit()
    assert os.path.exists(os.path.join(srv.mail_root,
                                       ".alice.postern-login"))
    with srv.connect() as c:
        r = c.try_login("alice", srv.users["alice"])
        assert r.startswith("-ERR [LOGIN-DELAY]"), r


def test_killed_deliveries_leave_no_partial_message(mbox_server):
    """postern deliver killed at random instants of an append: the next
    locker cuts the half-written message away; every delivery that
    exited 0 is there once and whole, a killed one not at all or (if
    the kill came after its fsync) whole."""
    srv = mbox_server
    rng = random.Random(7)
    line = b"y" * 79 + b"\n"
    done = []
    kills = 0
    for i in range(14):
        body = b"Subject: killed %d\n\n" % i + line * rng.randrange(
            1000, 30000)
        p = subprocess.Popen([harness.postern_path(), "deliver", "-c",
                              srv.conf_path, "-u", "alice"],
                             stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL,
                             env=harness._child_env())

        def feed(p=p, body=body):
            try:
                p.stdin.write(body)
                p.stdin.close()
            except (BrokenPipeError, ValueError, OSError):
                pass

        t = threading.Thread(target=feed, daemon=True)
        t.start()
        if i % 2 == 0:
            time.sleep(rng.uniform(0.0, 0.15))
            p.kill()
        st = p.wait(timeout=60)
        t.join(timeout=10)
        whole = delivered_form(body, "alice", "")
        if st == 0:
            done.append(whole)
        else:
            kills += 1
        with srv.login("alice") as c:
            if st != 0 and c.stat()[0] == len(done) + 1:
                # Killed after its fsync (before it could exit 0): the
                # message must then be there whole; the MTA's retry
                # gives a duplicate, never a loss.
                assert c.retr(len(done) + 1) == wire_form(whole)
                done.append(whole)
            n, _ = c.stat()
            assert n == len(done)
            for k, want in enumerate(done, 1):
                assert c.list()[k] == wire_size(want)
            c.quit()
    with srv.login("alice") as c:
        for k, want in enumerate(done, 1):
            assert c.retr(k) == wire_form(want)
        c.quit()
    assert harness.split_mbox(read_mbox(srv, "alice")) == done
    cut = srv.log_text().count("removing a delivery that did not finish")
    print("mbox deliveries: %d killed, %d cut back by the next session"
          % (kills, cut))
    assert kills > 0


def test_crash_during_rewrite(mbox_server):
    """kill -9 of the pop3 worker at random instants of DELE+QUIT
    rewrites of a large mbox: after each kill the file is the old or the
    new mailbox exactly, survivors keep their UIDLs, and no message that
    was not deleted is gone."""
    if harness.sanitizer_build():
        pytest.skip("runs once, in the normal build")
    srv = mbox_server
    # The killed worker is back at once, not after the default second.
    srv.update_config({"restart_interval": "50ms"})
    srv.restart()
    pad = b"x" * 76 + b"\n"
    count = 120
    msgs = [msg(i, b"From line %d\n" % i + pad * 600) for i in range(count)]
    write_mbox(srv, "alice", msgs)
    with srv.login("alice") as c:
        uidl_of = {}
        for n, u in c.uidl().items():
            uidl_of[u] = msgs[n - 1]
        c.quit()
    expected_entries = {u: mbox_entry(m) for u, m in uidl_of.items()}
    rng = random.Random(5)
    kills = 0
    rounds = 0
    outcome = {"old": 0, "new": 0}
    deadline = time.monotonic() + 60
    while kills < 60 and time.monotonic() < deadline and rounds < 400:
        rounds += 1
        old = read_mbox(srv, "alice")
        with srv.login("alice") as c:
            u = c.uidl()
            assert len(u) >= 2
            victim = rng.randrange(1, len(u) + 1)
            assert c.command("DELE %d" % victim).startswith("+OK")
            c.sendline("QUIT")
            time.sleep(rng.uniform(0, 0.03))
            killed = srv.kill_worker("pop3", all=True)
        if killed:
            kills += 1
        # The master restarts the worker; wait for logins to work.
        for attempt in range(100):
            try:
                c = srv.login("alice")
                break
            except Exception:
                time.sleep(0.1)
        else:
            pytest.fail("no login after a kill")
        with c:
            now_uidl = c.uidl()
            c.quit()
        new = read_mbox(srv, "alice")
        old_msgs = harness.split_mbox(old)
        new_msgs = harness.split_mbox(new)
        # The old or the new mailbox, never a torn one.
        assert new == old or (len(new_msgs) == len(old_msgs) - 1 and
                              new == b"".join(
                                  mbox_entry(m) for k, m in
                                  enumerate(old_msgs) if k != victim - 1))
        # Survivors keep their UIDLs and content.
        for n, uid in now_uidl.items():
            assert expected_entries[uid] == mbox_entry(new_msgs[n - 1])
        outcome["old" if new == old else "new"] += 1
        if new == old:
            assert set(now_uidl.values()) == set(u.values())
        else:
            assert set(now_uidl.values()) == set(u.values()) - {u[victim]}
        if len(now_uidl) < 10:
            break
    torn = srv.log_text().count("of a rewrite that did not finish")
    print("mbox crash test: %d kills in %d rounds, %d left the old"
          " mailbox (%d of them in the middle of the copy), %d the new" %
          (kills, rounds, outcome["old"], torn, outcome["new"]))
    assert kills >= 30, (kills, rounds)


# malloc's calls: how many varies from run to run, and a kill before one
# is a kill between its neighbours.
MEMORY_CALLS = ("brk", "mmap", "munmap", "mremap", "mprotect", "madvise")


def _strace_lines(path):
    """The system calls of one strace -o file, in order (signal and exit
    lines left out)."""
    with open(path, errors="replace") as f:
        return [ln for ln in f.read().splitlines()
                if ln and not ln.startswith(("---", "+++"))]


def test_deliver_killed_before_each_system_call_leaves_no_lock(
        mbox_server, tmp_path):
    """postern deliver is killed (SIGKILL, by strace) just before each
    system call it makes from opening the mbox to its exit, one call per
    run.  After every kill the next session logs in at once: no dotlock
    or fcntl lock is left that nobody holds, whatever instant the kill
    came.  The mbox holds every finished delivery whole, and the killed
    one whole or not at all."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (scripts/install-deps)")
    srv = mbox_server
    write_mbox(srv, "alice", [msg(1)])
    body = b"Subject: traced\n\n" + b"z" * 70 + b"\n"
    whole = delivered_form(body, "alice", "")
    cmd = [harness.postern_path(), "deliver", "-c", srv.conf_path,
           "-u", "alice"]
    env = harness._child_env()
    # LeakSanitizer cannot run under a tracer.
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"

    def run(*pre):
        return subprocess.run(list(pre) + cmd, input=body,
                              capture_output=True, env=env, timeout=60)

    # Each killed run starts where this traced one did: right after a
    # delivery that finished.
    assert run().returncode == EX_OK
    log = str(tmp_path / "trace")
    r = run(strace, "-o", log)
    assert r.returncode == EX_OK, r.stderr
    want = [msg(1), whole, whole]
    calls = _strace_lines(log)
    first = next(i for i, ln in enumerate(calls, 1)
                 if '"%s"' % srv.mail_root in ln)
    names = [re.match(r"(\w+)\(", ln).group(1) for ln in calls]
    for k in range(first, len(calls) + 1):
        # strace counts each system call on its own: the k-th call is
        # the n-th call of its name.
        name = names[k - 1]
        if name in MEMORY_CALLS:
            continue
        n = names[:k].count(name)
        r = run(strace, "-o", "/dev/null", "-e",
                "inject=%s:signal=KILL:when=%d" % (name, n))
        assert r.returncode != EX_OK, "not killed at call %d: %s" % (
            k, calls[k - 1])
        with srv.connect() as c:
            t0 = time.monotonic()
            st = c.try_login("alice", srv.users["alice"])
            assert st.startswith("+OK") and time.monotonic() - t0 < 1.0, \
                "after a kill at call %d (%s): %s" % (k, calls[k - 1], st)
            n = c.stat()[0]
            if n == len(want) + 1:
                # Killed after its fsync: there whole, a duplicate for
                # the MTA's retry, never a loss.
                want.append(whole)
            assert n == len(want), "kill at call %d: %s" % (
                k, calls[k - 1])
            for i, m in enumerate(want, 1):
                assert c.retr(i) == wire_form(m)
            c.quit()
        left = sorted(f for f in os.listdir(srv.mail_root)
                      if f.startswith(("alice.", ".alice.")) and
                      f not in (".alice.postern-index",
                                ".alice.postern-append",
                                ".alice.postern-lock"))
        assert left == [], "kill at call %d (%s) left %s" % (
            k, calls[k - 1], left)
        assert run().returncode == EX_OK
        want.append(whole)
