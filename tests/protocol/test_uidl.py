"""
UIDL (RFC 1939 section 7; DESIGN.md invariant 3): 1..70 octets of
0x21..0x7e, unique in the mailbox, never changed: across sessions,
restarts, a lost index and renamed Maildir files; new mail appears in the
next session only.
"""

import os

import pytest

from harness import assert_glob, expected_uidl


def msg(i):
    return b"Subject: m%d\n\nbody %d\n" % (i, i)


@pytest.fixture
def srv(make_server):
    s = make_server()
    s.names = [s.add_message("alice", msg(i)) for i in range(6)]
    return s


def snapshot(srv):
    with srv.login("alice") as c:
        u = c.uidl()
        sizes = c.list()
        bodies = {u[i]: c.retr(i) for i in u}
        c.quit()
    return u, sizes, bodies


def test_uidl_form_and_unique(srv):
    with srv.login("alice") as c:
        u = c.uidl()        # asserts 1..70 octets of 0x21..0x7e
        assert len(u) == 6
        assert len(set(u.values())) == 6
        for i, v in u.items():
            assert c.command("UIDL %d" % i) == "+OK %d %s" % (i, v)


def test_uidl_is_maildir_base_name(make_server):
    s = make_server()
    names = {
        "plain": "1700000000.M1P2Q3.host.example",
        "seventy": "u" * 70,
        "seventy-one": "v" * 71,
        "space": "1700000001.has space.host",
        "eight-bit": "1700000002.\xe4.host",
        "flags": "1700000003.M4P5Q6.host:2,S",
    }
    for key, name in names.items():
        s.add_message("alice", b"Subject: " + key.encode() + b"\n\nx\n",
                      name=name, subdir="cur" if ":2," in name else "new")
    with s.login("alice") as c:
        got = set(c.uidl().values())
    want = {expected_uidl(n.split(":2,")[0]) for n in names.values()}
    assert got == want


def test_uidl_stable_across_sessions(srv):
    first = snapshot(srv)
    second = snapshot(srv)
    assert first[0] == second[0]
    assert first[2] == second[2]


def test_uidl_stable_across_restart(srv):
    u1, _, bodies1 = snapshot(srv)
    srv.restart()
    u2, _, bodies2 = snapshot(srv)
    assert sorted(u1.values()) == sorted(u2.values())
    assert bodies1 == bodies2


def test_uidl_stable_without_index(srv):
    u1, sizes1, bodies1 = snapshot(srv)
    assert srv.stop() == 0
    index = os.path.join(srv.maildir("alice"), "postern.index")
    assert os.path.exists(index), "no postern.index after a session"
    os.unlink(index)
    srv.start()
    u2, sizes2, bodies2 = snapshot(srv)
    assert bodies1 == bodies2           # UIDL -> same message
    assert sorted(sizes1.values()) == sorted(sizes2.values())


def test_uidl_stable_with_corrupt_index(srv):
    u1, _, bodies1 = snapshot(srv)
    assert srv.stop() == 0
    index = os.path.join(srv.maildir("alice"), "postern.index")
    with open(index, "r+b") as f:
        f.seek(0)
        f.write(b"\xff garbage \x00" * 8)
    srv.start()
    _, _, bodies2 = snapshot(srv)
    assert bodies1 == bodies2


def test_uidl_stable_when_flags_change(srv):
    u1, _, bodies1 = snapshot(srv)
    assert srv.stop() == 0
    cur = os.path.join(srv.maildir("alice"), "cur")
    for f in os.listdir(cur):
        base = f.split(":2,")[0]
        os.rename(os.path.join(cur, f), os.path.join(cur, base + ":2,S"))
    srv.start()
    _, _, bodies2 = snapshot(srv)
    assert bodies1 == bodies2


def test_new_mail_appears_in_next_session(srv):
    with srv.login("alice") as c:
        n, octets = c.stat()
        u = c.uidl()
        new = srv.add_message("alice", msg(99))
        assert c.stat() == (n, octets)
        assert c.uidl() == u
        assert_glob(c.command("LIST %d" % (n + 1)), "-ERR*")
        assert_glob(c.command("RETR %d" % (n + 1)), "-ERR*")
        c.quit()
    with srv.login("alice") as c:
        assert c.stat()[0] == n + 1
        m = c.uidl_map()
        assert new in m
        assert c.retr(m[new]) == b"Subject: m99\r\n\r\nbody 99\r\n"
        for i, v in u.items():
            assert m[v]


def test_deleted_uidl_not_reused(srv):
    u1, _, bodies1 = snapshot(srv)
    with srv.login("alice") as c:
        assert_glob(c.command("DELE 1"), "+OK*")
        gone = c.uidl()[2]
        assert_glob(c.command("DELE 2"), "+OK*")
        c.quit()
    for i in range(3):
        srv.add_message("alice", msg(100 + i))
    srv.restart()
    u2, _, bodies2 = snapshot(srv)
    assert u1[1] not in u2.values()
    assert gone not in u2.values()
    assert len(set(u2.values())) == len(u2) == 7
    for uid, body in bodies1.items():
        if uid in bodies2:
            assert bodies2[uid] == body
