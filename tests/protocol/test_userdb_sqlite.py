"""
A live posternd with its users in SQLite (user_db_type = sqlite): logins
with USER/PASS, changes made by `postern user` while it runs, bad rows,
and a database that appears only after the start.  The auth workers read
the database under their sandbox (Landlock: the database's directory,
read-only; seccomp allow-list).
"""

import sqlite3

import pytest

from harness import DEFAULT_USERS, Server, assert_glob, postern


@pytest.fixture
def sqserver():
    srv = Server(user_db_type="sqlite")
    try:
        for name, pw in DEFAULT_USERS.items():
            srv.add_user(name, pw)
        srv.start()
        yield srv
    finally:
        srv.cleanup()


def user_cmd(srv, *args, password=None):
    r = postern("user", *args[:1], "--db", srv.user_db, "--db-type",
                "sqlite", *args[1:],
                input=None if password is None else password + "\n")
    assert r.returncode == 0, r.stderr
    srv._fix_owner(srv.user_db, "auth")


def try_login(srv, user, password):
    with srv.connect() as c:
        st = c.command("USER " + user)
        if not st.startswith("+OK"):
            return st
        return c.command("PASS " + password)


def test_login_user_pass(sqserver):
    assert "user_db_type = sqlite" in sqserver.config_text()
    for name in ("alice", "bob"):
        with sqserver.login(name) as c:
            assert c.stat() == (0, 0)
    assert_glob(try_login(sqserver, "alice", "not-it"), "-ERR [AUTH]*")
    assert_glob(try_login(sqserver, "nobody-here", "x"), "-ERR [AUTH]*")
    assert "landlock" in sqserver.log_text()


def test_changes_seen_while_running(sqserver):
    sqserver.add_user("carol", "carol-pw-1")
    with sqserver.login("carol") as c:
        assert c.stat() == (0, 0)

    user_cmd(sqserver, "passwd", "carol", password="carol-pw-2")
    assert_glob(try_login(sqserver, "carol", "carol-pw-1"), "-ERR [AUTH]*")
    assert_glob(try_login(sqserver, "carol", "carol-pw-2"), "+OK*")

    user_cmd(sqserver, "set", "--disable", "carol")
    assert_glob(try_login(sqserver, "carol", "carol-pw-2"), "-ERR [AUTH]*")
    user_cmd(sqserver, "set", "--enable", "carol")
    assert_glob(try_login(sqserver, "carol", "carol-pw-2"), "+OK*")

    user_cmd(sqserver, "del", "carol")
    assert_glob(try_login(sqserver, "carol", "carol-pw-2"), "-ERR [AUTH]*")
    with sqserver.login("alice") as c:
        assert c.stat() == (0, 0)


def test_bad_row_is_absent_and_logged_once(sqserver):
    con = sqlite3.connect(sqserver.user_db)
    con.execute("INSERT INTO users (name, password, scram_sha256) VALUES "
                "('eve', '{PLAIN}eve-pw', '4096,not-base64,x,y')")
    con.commit()
    con.close()
    mark = len(sqserver.log_text())
    for _ in range(3):
        assert_glob(try_login(sqserver, "eve", "eve-pw"), "-ERR [AUTH]*")
    sqserver.wait_log(r"user 'eve': ", start=mark)
    log = sqserver.log_text()[mark:]
    # Once per auth worker at most, never the value.
    assert 1 <= log.count("user 'eve': ") <= 2, log
    assert "eve-pw" not in log and "not-base64" not in log
    with sqserver.login("alice") as c:
        assert c.stat() == (0, 0)


def test_database_made_after_start():
    srv = Server(user_db_type="sqlite")
    try:
        srv.start()
        st = try_login(srv, "alice", DEFAULT_USERS["alice"])
        assert st.startswith("-ERR"), st
        srv.add_user("alice", DEFAULT_USERS["alice"])
        with srv.login("alice") as c:
            assert c.stat() == (0, 0)
    finally:
        srv.cleanup()
