"""
The Maildir store seen through POP3: mailbox paths, creation, odd entries
in the Maildir, storage failures and their response codes (RFC 3206).
"""

import os
import socket
import stat

import pytest

from harness import Pop3Conn, assert_glob, is_root, wire_form


def msg(i):
    return b"Subject: m%d\n\nbody %d\n" % (i, i)


def test_maildir_created_at_first_login(server):
    md = server.maildir("alice")
    assert not os.path.exists(md)
    with server.login("alice") as c:
        assert c.stat() == (0, 0)
        c.quit()
    for sub in ("cur", "new", "tmp"):
        assert os.path.isdir(os.path.join(md, sub)), sub


def test_new_mail_moves_and_stays_listed(server):
    names = [server.add_message("alice", msg(i)) for i in range(2)]
    names.append(server.add_message("alice", msg(2), name="1700000009.x.y:2,S",
                                    subdir="cur"))
    with server.login("alice") as c:
        assert sorted(c.uidl_map()) == sorted(names)
        c.quit()
    with server.login("alice") as c:
        assert sorted(c.uidl_map()) == sorted(names)


def test_tmp_files_are_not_messages(server):
    server.add_message("alice", msg(1))
    tmp = os.path.join(server.maildir("alice"), "tmp", "1700000000.partial.x")
    with open(tmp, "wb") as f:
        f.write(b"Subject: half written\n\n")
    with server.login("alice") as c:
        assert c.stat()[0] == 1


def test_odd_entries_in_maildir(server):
    server.add_message("alice", msg(1))
    md = server.maildir("alice")
    os.mkdir(os.path.join(md, "new", "a-directory"))
    os.mkdir(os.path.join(md, "cur", "another-directory:2,"))
    with open(os.path.join(md, "new", ".hidden"), "wb") as f:
        f.write(b"Subject: dotfile\n\n")
    with server.login("alice") as c:
        n, _ = c.stat()
        assert 1 <= n <= 2, n           # a dotfile may or may not count
        assert c.retr(1)
        assert_glob(c.command("NOOP"), "+OK*")
        c.quit()


def test_mailbox_path_template(make_server):
    s = make_server(config={"mailbox_path": "%d/%n"}, users={})
    s.add_user("joe@example.org", "joe-pw")
    s.add_user("ann", "ann-pw")
    md = os.path.join(s.mail_root, "example.org", "joe")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub))
    with open(os.path.join(md, "new", "1700000000.joe.x"), "wb") as f:
        f.write(msg(1))
    s.chown_mail_root()
    with s.login("joe@example.org") as c:
        assert c.stat()[0] == 1
        assert c.retr(1) == wire_form(msg(1))
        c.quit()
    # no domain: %d is empty
    with s.login("ann") as c:
        assert c.stat() == (0, 0)
        c.quit()
    assert os.path.isdir(os.path.join(s.mail_root, "ann", "cur"))


@pytest.mark.parametrize("name", ["../bob", "bob/..", "/etc", "..", ".bob",
                                  "bob\x01", "b\xe4b"])
def test_hostile_user_names(server, name):
    with server.connect() as c:
        st = c.command("USER " + name)
        if st.startswith("+OK"):
            st = c.command("PASS " + server.users["bob"])
        assert_glob(st, "-ERR*")
        assert c.capa()


def test_broken_mailbox_is_sys_code(server):
    with open(server.maildir("alice"), "wb") as f:
        f.write(b"not a directory\n")
    with server.connect() as c:
        st = c.try_login("alice", server.users["alice"])
        assert_glob(st, "-ERR [SYS/*]*")
    with server.login("bob") as c:
        c.quit()


def worker_is_root(srv):
    return is_root() and not srv.config.get("mail_user")


def test_removal_failure_in_update(server):
    if worker_is_root(server):
        pytest.skip("the pop3 worker runs as root and may unlink anything")
    names = [server.add_message("alice", msg(i)) for i in range(2)]
    with server.login("alice") as c:
        cur = os.path.join(server.maildir("alice"), "cur")
        assert sorted(server.message_files("alice")) == sorted(names)
        mode = stat.S_IMODE(os.stat(cur).st_mode)
        os.chmod(cur, 0o500)
        try:
            assert_glob(c.command("DELE 1"), "+OK*")
            st = c.command("QUIT")
            assert_glob(st, "-ERR*")
            c.wait_closed()
        finally:
            os.chmod(cur, mode)
    assert len(server.message_files("alice")) == 2
    with server.login("alice") as c:
        assert c.stat()[0] == 2


def test_unreadable_message(server):
    if worker_is_root(server):
        pytest.skip("the pop3 worker runs as root and may read anything")
    names = [server.add_message("alice", msg(i)) for i in range(2)]
    with server.login("alice") as c:
        num = c.uidl_map()
        path = server.message_files("alice")[names[0]]
        os.chmod(path, 0)
        assert_glob(c.command("RETR %d" % num[names[0]]), "-ERR*")
        assert c.retr(num[names[1]]) == wire_form(msg(1))


def test_ipv6_listener(make_server):
    s = make_server(start=False)
    with socket.socket(socket.AF_INET6) as probe:
        try:
            probe.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback")
        port6 = probe.getsockname()[1]
    s.overrides["listen"] = ["127.0.0.1:%d" % s.port, "[::1]:%d" % port6]
    s.start()
    s.add_message("alice", msg(1))
    with Pop3Conn("::1", port6) as c:
        assert_glob(c.greeting, "+OK*")
        c.login("alice", s.users["alice"])
        assert c.stat()[0] == 1
        c.quit()
    s.wait_log(r"connect ip=::1 ")
