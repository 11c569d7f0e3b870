"""
The UPDATE state (RFC 1939 section 6; DESIGN.md invariant 2): messages
are removed only after QUIT.  Also session locking ([IN-USE]),
LOGIN-DELAY, EXPIRE and mail removed behind the server's back.
"""

import os
import re
import time

from harness import assert_glob, unstuff, wire_form, wire_size


def msg(i):
    return b"Subject: m%d\n\nbody %d\n" % (i, i)


def fill(srv, n=3, user="alice"):
    srv.names = [srv.add_message(user, msg(i)) for i in range(n)]
    return srv.names


def count_files(srv, user="alice"):
    return len(srv.message_files(user))


# ------------------------------------------------------------ deletion

def test_dele_then_drop_deletes_nothing(server):
    fill(server)
    c = server.login("alice")
    for i in (1, 2, 3):
        assert_glob(c.command("DELE %d" % i), "+OK*")
    c.close()
    time.sleep(0.3)
    assert count_files(server) == 3
    with server.login("alice") as c:
        assert c.stat()[0] == 3


def test_dele_rset_quit_deletes_nothing(server):
    fill(server)
    with server.login("alice") as c:
        assert_glob(c.command("DELE 1"), "+OK*")
        assert_glob(c.command("DELE 3"), "+OK*")
        assert_glob(c.command("RSET"), "+OK*")
        assert_glob(c.quit(), "+OK*")
    assert count_files(server) == 3
    with server.login("alice") as c:
        assert c.stat()[0] == 3


def test_dele_quit_removes_only_deleted(server):
    names = fill(server, 4)
    with server.login("alice") as c:
        num = c.uidl_map()
        assert_glob(c.command("DELE %d" % num[names[1]]), "+OK*")
        assert_glob(c.command("DELE %d" % num[names[3]]), "+OK*")
        assert_glob(c.quit(), "+OK*")
    files = server.message_files("alice")
    assert sorted(files) == sorted([names[0], names[2]])
    with server.login("alice") as c:
        num = c.uidl_map()
        assert sorted(num) == sorted([names[0], names[2]])
        assert c.retr(num[names[0]]) == wire_form(msg(0))
        assert c.retr(num[names[2]]) == wire_form(msg(2))


def test_dele_all_then_quit(server):
    fill(server, 3)
    with server.login("alice") as c:
        for i in (1, 2, 3):
            c.command("DELE %d" % i)
        assert c.stat() == (0, 0)
        assert_glob(c.quit(), "+OK*")
    assert count_files(server) == 0
    with server.login("alice") as c:
        assert c.stat() == (0, 0)


def test_worker_killed_after_dele(make_server):
    s = make_server(config={"workers": 1})
    fill(s, 3)
    c = s.login("alice")
    assert_glob(c.command("DELE 1"), "+OK*")
    assert_glob(c.command("DELE 2"), "+OK*")
    killed = s.kill_worker("pop3", all=True)
    c.wait_closed(5)
    c.close()
    assert count_files(s) == 3
    # the master restarts the worker; new sessions work again
    deadline = time.monotonic() + 10
    while True:
        try:
            with s.login("alice", timeout=2) as c2:
                assert c2.stat()[0] == 3
                c2.quit()
            break
        except (OSError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert s.running(), "the master died"
    assert not set(killed) & set(s.worker_pids("pop3"))
    assert count_files(s) == 3


def test_auth_worker_killed(make_server):
    s = make_server()
    s.kill_worker("auth", all=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            with s.login("alice", timeout=3) as c:
                c.quit()
            break
        except (OSError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert s.running()


# --------------------------------------------------------------- locking

def test_lock_session_in_use(make_server):
    s = make_server(config={"lock_session": "yes"})
    fill(s)
    with s.login("alice") as first:
        with s.connect() as second:
            assert_glob(second.try_login("alice", s.users["alice"]),
                        "-ERR [IN-USE]*")
        # bob is not affected
        with s.login("bob") as other:
            other.quit()
        assert first.stat()[0] == 3
        first.quit()
    with s.login("alice") as again:
        assert again.stat()[0] == 3


def test_lock_released_when_connection_drops(make_server):
    s = make_server(config={"lock_session": "yes"})
    fill(s)
    c = s.login("alice")
    c.close()
    deadline = time.monotonic() + 5
    while True:
        with s.connect() as c2:
            st = c2.try_login("alice", s.users["alice"])
        if st.startswith("+OK") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert_glob(st, "+OK*")


def test_lock_released_when_worker_dies(make_server):
    s = make_server(config={"lock_session": "yes", "workers": 1})
    fill(s)
    c = s.login("alice")
    assert_glob(c.command("DELE 1"), "+OK*")
    s.kill_worker("pop3", all=True)
    c.wait_closed(5)
    c.close()
    deadline = time.monotonic() + 10
    st = ""
    while not st.startswith("+OK") and time.monotonic() < deadline:
        try:
            with s.connect(timeout=2) as c2:
                st = c2.try_login("alice", s.users["alice"])
                if st.startswith("+OK"):
                    assert c2.stat()[0] == 3
        except (OSError, AssertionError):
            time.sleep(0.2)
    assert_glob(st, "+OK*")


def test_no_lock_by_default(server):
    fill(server)
    with server.login("alice") as a, server.login("alice") as b:
        assert a.stat() == b.stat()
        assert a.uidl() == b.uidl()
        assert a.retr(1) == b.retr(1)
        a.quit()
        b.quit()


# ----------------------------------------------------------- LOGIN-DELAY

def test_login_delay(make_server):
    s = make_server(config={"login_delay": "2s"})
    fill(s, 1)
    with s.connect() as c:
        caps = [l.upper() for l in c.capa()]
        # before login: the site's value, which a user may override
        assert "LOGIN-DELAY 2 USER" in caps, caps
    with s.login("alice") as c:
        caps = [l.upper() for l in c.capa()]
        assert "LOGIN-DELAY 2" in caps, caps
        c.quit()
    with s.connect() as c:
        assert_glob(c.try_login("alice", s.users["alice"]),
                    "-ERR [LOGIN-DELAY]*")
    refused = time.monotonic()
    # another user is not affected
    with s.login("bob") as c:
        c.quit()
    time.sleep(max(0, refused + 3.1 - time.monotonic()))
    with s.login("alice") as c:
        assert c.stat()[0] == 1


# ---------------------------------------------------------------- EXPIRE

def test_expire_zero(make_server):
    s = make_server(config={"expire": 0})
    names = fill(s, 3)
    with s.connect() as c:
        caps = [l.upper() for l in c.capa()]
        assert "EXPIRE 0 USER" in caps, caps
    with s.login("alice") as c:
        num = c.uidl_map()
        c.retr(num[names[0]])
        assert_glob(c.quit(), "+OK*")
    assert sorted(s.message_files("alice")) == sorted(names[1:])


def test_expire_days_keeps_fresh_mail(make_server):
    s = make_server(config={"expire": 5})
    fill(s, 2)
    with s.connect() as c:
        assert "EXPIRE 5 USER" in [l.upper() for l in c.capa()]
    with s.login("alice") as c:
        assert "EXPIRE 5" in [l.upper() for l in c.capa()]
        c.retr(1)
        c.quit()
    assert count_files(s) == 2


def test_expire_zero_needs_quit(make_server):
    s = make_server(config={"expire": 0})
    fill(s, 2)
    c = s.login("alice")
    c.retr(1)
    c.retr(2)
    c.close()
    time.sleep(0.3)
    assert count_files(s) == 2


def test_expire_never_keeps_retrieved(server):
    fill(server, 2)
    with server.login("alice") as c:
        c.retr(1)
        c.retr(2)
        c.quit()
    assert count_files(server) == 2


# ---------------------------------------------------- external changes

def test_message_removed_externally(server):
    names = fill(server, 3)
    with server.login("alice") as c:
        num = c.uidl_map()
        path = server.message_files("alice")[names[1]]
        os.unlink(path)
        i = num[names[1]]
        assert_glob(c.command("RETR %d" % i), "-ERR*")
        assert_glob(c.command("TOP %d 0" % i), "-ERR*")
        assert_glob(c.command("NOOP"), "+OK*")
        assert c.retr(num[names[0]]) == wire_form(msg(0))
        assert c.retr(num[names[2]]) == wire_form(msg(2))
        assert_glob(c.command("DELE %d" % i), "+OK*")
        assert_glob(c.quit(), "+OK*")
    with server.login("alice") as c:
        assert sorted(c.uidl_map()) == sorted([names[0], names[2]])


def test_message_replaced_externally_with_other_size(server):
    names = fill(server, 2)
    with server.login("alice") as c:
        num = c.uidl_map()
        path = server.message_files("alice")[names[0]]
        with open(path, "ab") as f:
            f.write(b"appended by someone else\n")
        st, raw = c.retr_raw(num[names[0]])
        if st.startswith("+OK"):
            # if sent at all, it must be the size LIST promised
            size = c.list()[num[names[0]]]
            assert len(unstuff(raw)) == size
        else:
            assert_glob(st, "-ERR*")
        assert_glob(c.command("NOOP"), "+OK*")


def test_mail_arriving_during_session_survives_update(server):
    fill(server, 2)
    with server.login("alice") as c:
        late = server.add_message("alice", msg(50))
        for i in (1, 2):
            assert_glob(c.command("DELE %d" % i), "+OK*")
        assert_glob(c.quit(), "+OK*")
    assert sorted(server.message_files("alice")) == [late]
    with server.login("alice") as c:
        assert c.uidl_map() == {late: 1}
        assert c.retr(1) == wire_form(msg(50))


def test_two_sessions_delete_the_same_message(server):
    names = fill(server, 3)
    a = server.login("alice")
    b = server.login("alice")
    na, nb = a.uidl_map(), b.uidl_map()
    assert_glob(a.command("DELE %d" % na[names[0]]), "+OK*")
    assert_glob(a.quit(), "+OK*")
    # b's snapshot still lists it; reading it now fails cleanly
    i = nb[names[0]]
    st = b.command("RETR %d" % i)
    if st.startswith("+OK"):
        assert unstuff(b.read_multiline()) == wire_form(msg(0))
    else:
        assert_glob(st, "-ERR*")
    assert_glob(b.command("DELE %d" % i), "+OK*")
    assert_glob(b.command("DELE %d" % nb[names[1]]), "+OK*")
    assert_glob(b.quit(), "+OK*")
    assert sorted(server.message_files("alice")) == [names[2]]
    with server.login("alice") as c:
        assert c.uidl_map() == {names[2]: 1}


def test_large_mailbox(server):
    n = 3000
    md = server.ensure_maildir("alice")
    expect = {}
    for i in range(n):
        name = "17000%05d.M%dP1Q1.bulk" % (i, i)
        data = b"Subject: bulk %d\n\n" % i + b"x" * (i % 97) + b"\n"
        with open(os.path.join(md, "new", name), "wb") as f:
            f.write(data)
        expect[name] = wire_size(data)
    server.chown_mail_root()
    for attempt in range(2):
        t0 = time.monotonic()
        with server.login("alice", timeout=30) as c:
            assert c.stat() == (n, sum(expect.values()))
            sizes = c.list()
            uidls = c.uidl()
            assert len(sizes) == len(uidls) == n
            assert {uidls[i]: sizes[i] for i in sizes} == expect
            assert_glob(c.command("DELE %d" % n), "+OK*")
            c.command("RSET")
            c.quit()
        assert time.monotonic() - t0 < 20


def test_login_reply_counts_match_stat(server):
    """When the +OK to PASS or LIST carries counts, they are the STAT ones."""
    fill(server, 3)
    with server.connect() as c:
        st = c.login("alice", server.users["alice"])
        count, octets = c.stat()
        m = re.search(r"(\d+) messages? \((\d+) octets\)", st)
        if m:
            assert (int(m.group(1)), int(m.group(2))) == (count, octets), st
        c.command("DELE 1")
        count, octets = c.stat()
        st, raw = c.multi("LIST")
        m = re.search(r"(\d+) messages? \((\d+) octets\)", st)
        if m:
            assert (int(m.group(1)), int(m.group(2))) == (count, octets), st
        st = c.command("RSET")
        m = re.search(r"(\d+) messages? \((\d+) octets\)", st)
        if m:
            assert (int(m.group(1)), int(m.group(2))) == c.stat(), st


def test_quit_then_close_without_reading(server):
    """QUIT received is QUIT: the client need not wait for the reply."""
    names = fill(server, 2)
    c = server.login("alice")
    num = c.uidl_map()
    assert_glob(c.command("DELE %d" % num[names[0]]), "+OK*")
    c.send(b"QUIT\r\n")
    c.close()
    deadline = time.monotonic() + 5
    while names[0] in server.message_files("alice"):
        assert time.monotonic() < deadline, "QUIT ignored after close"
        time.sleep(0.1)
    assert sorted(server.message_files("alice")) == [names[1]]
