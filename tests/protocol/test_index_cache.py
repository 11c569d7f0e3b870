"""
index_cache_size: a pop3 worker keeps the parsed index of a big Maildir
(1,000 messages and more) for the next login to it.  What a session sees
must be exactly what it would see without the cache: new mail, deletions,
another user's mailbox and an index file changed behind the server's back
(even with its size and mtime put back) all show at the next login.
"""

import os
import re

import pytest

from harness import assert_glob

BIG = 1200          # above INDEX_CACHE_MIN_MESSAGES (1000)
FROM_CACHE = r"mailbox \S+/%s: index from the cache, (\d+) messages"


def fill(srv, user, n, tag):
    """Writes n small messages straight into new/ (no fsync: a test
    mailbox, made fast); returns {base name: body}."""
    md = srv.ensure_maildir(user)
    out = {}
    for i in range(n):
        base = "17000%05d.M%dP1.%s" % (i, i, tag)
        body = b"Subject: %s %d\n\nbody %d of %s\n" % (
            tag.encode(), i, i, tag.encode())
        path = os.path.join(md, "new", base)
        with open(path, "wb") as f:
            f.write(body)
        srv._fix_owner(path)
        out[base] = body
    return out


def listing(srv, user):
    """(UIDL map, LIST map) of one session, which ends with QUIT."""
    with srv.login(user) as c:
        u = c.uidl()
        sizes = c.list()
        c.quit()
    return u, sizes


def hits(srv, user):
    return [int(m.group(1)) for m in
            re.finditer(FROM_CACHE % user, srv.log_text())]


@pytest.fixture
def srv(make_server):
    s = make_server(config={"workers": 1, "log_debug": "yes"})
    s.bodies = fill(s, "alice", BIG, "alice")
    return s


def test_second_login_is_served_from_the_cache(srv):
    first = listing(srv, "alice")
    assert len(first[0]) == BIG
    assert hits(srv, "alice") == []
    second = listing(srv, "alice")
    assert second == first
    assert hits(srv, "alice") == [BIG]


def test_small_mailbox_is_not_kept(srv):
    fill(srv, "bob", 20, "bob")
    assert listing(srv, "bob") == listing(srv, "bob")
    assert hits(srv, "bob") == []


def test_cache_off(make_server):
    s = make_server(config={"workers": 1, "log_debug": "yes",
                            "index_cache_size": "0"})
    fill(s, "alice", BIG, "alice")
    assert listing(s, "alice") == listing(s, "alice")
    assert hits(s, "alice") == []


def test_new_mail_shows(srv):
    u1, _ = listing(srv, "alice")
    new = srv.add_message("alice", b"Subject: late\n\nlate\n")
    with srv.login("alice") as c:
        u2 = c.uidl()
        assert len(u2) == BIG + 1
        assert {k: v for k, v in u2.items() if k <= BIG} == u1
        m = c.uidl_map()
        assert c.retr(m[new]) == b"Subject: late\r\n\r\nlate\r\n"
        c.quit()


def test_deletions_show(srv):
    u1, _ = listing(srv, "alice")
    with srv.login("alice") as c:
        for n in (1, 7, BIG):
            assert_glob(c.command("DELE %d" % n), "+OK*")
        c.quit()
    gone = {u1[1], u1[7], u1[BIG]}
    u2, sizes = listing(srv, "alice")
    assert len(u2) == BIG - 3 == len(sizes)
    assert set(u2.values()) == set(u1.values()) - gone
    # The index that UPDATE wrote is the one the cache now holds.
    u3, _ = listing(srv, "alice")
    assert u3 == u2
    assert hits(srv, "alice")[-1] == BIG - 3


def test_other_users_do_not_mix(srv):
    fill(srv, "bob", BIG + 10, "bob")
    for _ in range(2):
        a, _ = listing(srv, "alice")
        b, _ = listing(srv, "bob")
        assert len(a) == BIG and len(b) == BIG + 10
        assert all(u.startswith("17000") and u.endswith(".alice")
                   for u in a.values())
        assert all(u.endswith(".bob") for u in b.values())
    assert hits(srv, "alice") and hits(srv, "bob")


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h


def test_index_changed_in_place_is_read_again(srv):
    """A valid edit of postern.index that keeps its size and mtime: the
    kernel still changes its ctime, and the next login reads the file
    again instead of the cached copy."""
    u1, _ = listing(srv, "alice")
    listing(srv, "alice")
    assert hits(srv, "alice") == [BIG]
    index = os.path.join(srv.maildir("alice"), "postern.index")
    st = os.stat(index)
    with open(index, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    old = u1[5].encode()
    new = b"EDITED" + old[6:]
    k = next(i for i, ln in enumerate(lines)
             if ln.split(b" ")[1:2] == [old])
    lines[k] = lines[k].replace(b" " + old + b" ", b" " + new + b" ", 1)
    body = b"\n".join(lines[:-2]) + b"\n"
    count = lines[-2].split(b" ")[1]
    edited = body + b"end %s %016x\n" % (count, fnv1a64(body))
    assert len(edited) == len(data)
    with open(index, "r+b") as f:
        f.write(edited)
    os.utime(index, ns=(st.st_atime_ns, st.st_mtime_ns))
    st2 = os.stat(index)
    assert (st2.st_size, st2.st_mtime_ns, st2.st_ino) == \
        (st.st_size, st.st_mtime_ns, st.st_ino)
    u2, _ = listing(srv, "alice")
    assert u2[5] == new.decode()
    assert {k: v for k, v in u2.items() if k != 5} == \
        {k: v for k, v in u1.items() if k != 5}
    assert hits(srv, "alice") == [BIG]


def test_damaged_index_is_rebuilt_not_served(srv):
    u1, _ = listing(srv, "alice")
    listing(srv, "alice")
    index = os.path.join(srv.maildir("alice"), "postern.index")
    with open(index, "r+b") as f:
        f.seek(100)
        f.write(b"\x00damage\x00")
    u2, _ = listing(srv, "alice")
    assert u2 == u1
    srv.wait_log(r"mailbox \S+/alice: .*rebuilding")
