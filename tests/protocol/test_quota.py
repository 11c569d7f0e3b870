"""
Quotas: per-user limits on the octets (wire sizes, as LIST counts them)
and the number of messages of a mailbox, from the passwd-file
(quota_bytes=, quota_messages=) or the SQLite columns, else the site's
quota_bytes and quota_messages.  Enforced by the lmtp process (552
5.2.2, or 452 4.2.2 with quota_temporary = yes; at RCPT already when
MAIL gave SIZE=) and by `postern deliver` (exit 73, or 75).  `postern
user set --quota-bytes/--quota-messages` edits them and `list` shows
them.
"""

import os

from harness import lmtp_data, lmtp_headers, postern

SENDER = "q@example.org"
EX_OK = 0
EX_USAGE = 64
CLI_EXIT_USAGE = 1          # postern user: a bad command line
EX_CANTCREAT = 73
EX_TEMPFAIL = 75


def deliver_lmtp(srv, rcpts, msg, size=None):
    """One transaction; [(code, text)] of the RCPTs refused at RCPT time
    and of the replies after DATA, in order."""
    c = srv.lmtp_connect()
    c.ehlo("x")
    opts = ["SIZE=%d" % size] if size is not None else []
    assert c.mail(SENDER, opts)[0] == 250
    out, ok = [], 0
    for r in rcpts:
        code, text = c.rcpt(r)
        if code == 250:
            ok += 1
        else:
            out.append((r, code, text))
    if ok:
        out += [("DATA",) + rep for rep in lmtp_data(c, msg, ok)]
    c.quit()
    return out


def count(srv, user):
    md = srv.maildir(user)
    n = 0
    for sub in ("new", "cur"):
        d = os.path.join(md, sub)
        if os.path.isdir(d):
            n += len([f for f in os.listdir(d) if not f.startswith(".")])
    return n


def msg_of(size):
    """A message of size octets (CRLF lines of at most 80)."""
    head = b"Subject: q\r\n\r\n"
    body = size - len(head)
    full, rest = divmod(body, 80)
    out = head + (b"x" * 78 + b"\r\n") * full
    if rest:
        out = out[:-2] + b"x" * rest + b"\r\n" if rest < 2 else \
            out + b"x" * (rest - 2) + b"\r\n"
    assert len(out) == size
    return out


def test_passwd_file_bytes_quota(make_lmtp_server):
    srv = make_lmtp_server()
    trace = len(lmtp_headers(SENDER, "carol"))
    srv.add_user_line("carol:{PLAIN}pw::::::quota_bytes=1k")
    m = msg_of(400)
    assert len(m) + trace < 512
    # Two fit in 1024 octets, the third does not.
    for _ in range(2):
        assert deliver_lmtp(srv, ["carol"], m)[0][1] == 250
    r = deliver_lmtp(srv, ["carol", "alice"], m)
    assert r == [("DATA", 552, b"5.2.2 <carol> Mailbox over quota"),
                 ("DATA", 250, b"2.0.0 <alice> Delivered")]
    assert count(srv, "carol") == 2
    # The usage is the sum of LIST sizes.
    with srv.login("carol", "pw") as p:
        assert p.stat() == (2, 2 * (len(m) + trace))
        p.close()
    # A smaller message still fits.
    small = msg_of(1024 - 2 * (len(m) + trace) - trace)
    assert deliver_lmtp(srv, ["carol"], small)[0][1] == 250
    assert count(srv, "carol") == 3


def test_temporary_quota_and_rcpt_time_check(make_lmtp_server):
    srv = make_lmtp_server(config={"quota_temporary": True})
    srv.add_user_line("carol:{PLAIN}pw::::::quota_bytes=1000")
    assert deliver_lmtp(srv, ["carol"], msg_of(600))[0][1] == 250
    r = deliver_lmtp(srv, ["carol"], msg_of(600))
    assert r == [("DATA", 452, b"4.2.2 <carol> Mailbox over quota")]
    # With SIZE= the RCPT is refused already.
    r = deliver_lmtp(srv, ["carol", "bob"], msg_of(600), size=600)
    assert r[0] == ("carol", 452, b"4.2.2 <carol> Mailbox over quota")
    assert r[1][1] == 250
    assert count(srv, "carol") == 1
    assert count(srv, "bob") == 1


def test_message_count_quota_and_site_default(make_lmtp_server):
    srv = make_lmtp_server(config={"quota_messages": 2})
    srv.add_user_line("carol:{PLAIN}pw::::::quota_messages=3")
    # Messages already there (no sizes in their names) count too.
    srv.add_message("alice", b"Subject: old\n\nx\n")
    srv.chown_mail_root()
    m = b"Subject: n\r\n\r\nx\r\n"
    assert deliver_lmtp(srv, ["alice"], m)[0][1] == 250
    r = deliver_lmtp(srv, ["alice"], m)
    assert r == [("DATA", 552, b"5.2.2 <alice> Mailbox over quota")]
    for _ in range(3):
        assert deliver_lmtp(srv, ["carol"], m)[0][1] == 250
    assert deliver_lmtp(srv, ["carol"], m)[0][1] == 552
    assert count(srv, "alice") == 2 and count(srv, "carol") == 3
    # Deleting over POP3 makes room again.
    with srv.login("alice") as p:
        assert p.command("DELE 1").startswith("+OK")
        p.quit()
    assert deliver_lmtp(srv, ["alice"], m)[0][1] == 250


def test_sqlite_quota_via_user_set(make_lmtp_server):
    srv = make_lmtp_server(user_db_type="sqlite")
    db = ["--db", srv.user_db, "--db-type", "sqlite"]
    r = postern("user", "set", *db, "--quota-messages", "1",
                "--quota-bytes", "64k", "bob")
    assert r.returncode == 0, r.stderr
    r = postern("user", "list", *db)
    assert b"bob" in r.stdout and b"quota_bytes=65536 quota_messages=1" \
        in r.stdout
    m = b"Subject: s\r\n\r\nx\r\n"
    assert deliver_lmtp(srv, ["bob"], m)[0][1] == 250
    assert deliver_lmtp(srv, ["bob"], m)[0][1:] == (
        552, b"5.2.2 <bob> Mailbox over quota")
    # default gives back the site's (unlimited).
    r = postern("user", "set", *db, "--quota-messages", "default", "bob")
    assert r.returncode == 0, r.stderr
    assert b"quota_messages" not in postern("user", "list", *db).stdout
    assert deliver_lmtp(srv, ["bob"], m)[0][1] == 250
    assert count(srv, "bob") == 2


def test_user_set_quota_passwd_file(make_server):
    srv = make_server()
    db = ["--db", srv.user_db]
    r = postern("user", "set", *db, "--quota-bytes", "2M", "alice")
    assert r.returncode == 0, r.stderr
    with open(srv.user_db) as f:
        line = [ln for ln in f if ln.startswith("alice:")][0]
    assert "quota_bytes=2097152" in line
    assert line.startswith("alice:{SHA512-CRYPT}")
    r = postern("user", "list", *db)
    assert b"quota_bytes=2097152" in r.stdout
    r = postern("user", "add", *db, "--quota-messages", "5", "--scheme",
                "sha512-crypt", "dora", input="dora-pw\n")
    assert r.returncode == 0, r.stderr
    assert b"dora crypt,scram-sha-1,scram-sha-256 quota_messages=5" in \
        postern("user", "list", *db).stdout
    # The user can still log in: the other fields were kept.
    with srv.login("alice") as p:
        p.quit()
    for args in (["--quota-bytes", "lots"], ["--quota-messages", "-1"],
                 ["--quota-bytes", "2P"]):
        r = postern("user", "set", *db, *args, "alice")
        assert r.returncode == CLI_EXIT_USAGE, r
        assert len(r.stderr.strip().split(b"\n")) == 1
    r = postern("user", "passwd", *db, "--quota-bytes", "1k", "alice",
                input="x\n")
    assert r.returncode == CLI_EXIT_USAGE


def test_bad_quota_in_passwd_file_is_refused(make_server, tmp_path):
    srv = make_server()
    srv.add_user_line("eve:{PLAIN}pw::::::quota_bytes=12x")
    r = postern("user", "list", "--db", srv.user_db)
    assert r.returncode != 0
    assert b"quota_bytes" in r.stderr


def deliver(srv, user, data, conf=None):
    return postern("deliver", "-c", conf or srv.conf_path, "-f", SENDER,
                   "-u", user, input=data)


def test_deliver_exit_codes(make_server):
    srv = make_server(config={"quota_messages": 1})
    m = b"Subject: d\n\nx\n"
    assert deliver(srv, "alice", m).returncode == EX_OK
    r = deliver(srv, "alice", m)
    assert r.returncode == EX_CANTCREAT, r.stderr
    assert b"quota" in r.stderr
    assert len(r.stderr.strip().split(b"\n")) == 1
    srv.update_config({"quota_temporary": True})
    r = deliver(srv, "alice", m)
    assert r.returncode == EX_TEMPFAIL, r.stderr
    # The byte quota bounds what is stored.
    srv.update_config({"quota_messages": None, "quota_temporary": None,
                       "quota_bytes": "1k"})
    r = deliver(srv, "bob", b"Subject: big\n\n" + b"y" * 2000 + b"\n")
    assert r.returncode == EX_CANTCREAT, r.stderr
    assert count(srv, "bob") == 0
    tmp = os.path.join(srv.maildir("bob"), "tmp")
    assert not os.path.isdir(tmp) or os.listdir(tmp) == []
    assert deliver(srv, "bob", b"Subject: small\n\nz\n").returncode == EX_OK
    assert count(srv, "bob") == 1


def test_sqlite_database_without_quota_columns(make_lmtp_server):
    """A database made before quotas is read as having none; the first
    `postern user set` adds the columns, and the running auth workers
    see them."""
    import sqlite3
    srv = make_lmtp_server(user_db_type="sqlite", users={}, start=False)
    con = sqlite3.connect(srv.user_db)
    con.execute("CREATE TABLE users (name TEXT PRIMARY KEY NOT NULL, "
                "password TEXT, scram_sha1 TEXT, scram_sha256 TEXT, "
                "secret TEXT, login_delay INTEGER, expire_days INTEGER, "
                "disabled INTEGER NOT NULL DEFAULT 0)")
    con.execute("INSERT INTO users (name, password) VALUES ('old', "
                "'{PLAIN}old-pw')")
    con.commit()
    con.close()
    srv._fix_owner(srv.user_db, "auth")
    srv.start()
    m = b"Subject: o\r\n\r\nx\r\n"
    assert deliver_lmtp(srv, ["old"], m)[0][1] == 250
    db = ["--db", srv.user_db, "--db-type", "sqlite"]
    r = postern("user", "set", *db, "--quota-messages", "2", "old")
    assert r.returncode == 0, r.stderr
    assert deliver_lmtp(srv, ["old"], m)[0][1] == 250
    assert deliver_lmtp(srv, ["old"], m)[0][1] == 552
    assert count(srv, "old") == 2
