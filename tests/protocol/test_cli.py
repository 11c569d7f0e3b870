"""
`postern user add|passwd|del|list --db FILE [--scheme S] NAME`: the
password comes from stdin (one line) when it is not a tty, never from the
command line.  Exit 0 ok, 1 usage, 2 error (one line on stderr).
"""

import os
import tempfile

import pytest

from harness import postern


@pytest.fixture
def db():
    d = tempfile.mkdtemp(prefix="postern-cli-")
    path = os.path.join(d, "users")
    open(path, "w").close()
    yield path
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    os.rmdir(d)


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def entries(path):
    out = {}
    for line in read(path).splitlines():
        if line and not line.startswith("#"):
            name, rest = line.split(":", 1)
            out[name] = rest.split(":", 1)[0]
    return out


def one_line_error(r):
    err = r.stderr.decode("utf-8", "replace").strip()
    assert err, "no message on stderr"
    assert "\n" not in err, "more than one line on stderr: %r" % err


def add(db, name, pw, scheme=None):
    args = ["user", "add", "--db", db]
    if scheme:
        args += ["--scheme", scheme]
    return postern(*(args + [name]), input=pw + "\n")


def test_add_and_list(db):
    for name, pw in (("alice", "pw-alice-1"), ("bob", "pw bob 2")):
        r = add(db, name, pw, "sha512-crypt")
        assert r.returncode == 0, r.stderr
    e = entries(db)
    assert set(e) == {"alice", "bob"}
    for name, pw in (("alice", "pw-alice-1"), ("bob", "pw bob 2")):
        assert e[name].upper().startswith("{SHA512-CRYPT}$6$"), e[name]
        assert pw not in read(db)
    r = postern("user", "list", "--db", db)
    assert r.returncode == 0
    listed = r.stdout.decode().split()
    assert "alice" in listed and "bob" in listed
    assert "pw-alice-1" not in r.stdout.decode()


@pytest.mark.parametrize("scheme,prefix", [
    ("yescrypt", "{YESCRYPT}$y$"),
    ("sha512-crypt", "{SHA512-CRYPT}$6$"),
    ("bcrypt", "{BLF-CRYPT}$2"),
    ("plain", "{PLAIN}secret-1"),
])
def test_schemes(db, scheme, prefix):
    r = add(db, "alice", "secret-1", scheme)
    assert r.returncode == 0, r.stderr
    assert entries(db)["alice"].startswith(prefix), entries(db)


def test_default_scheme_hashes(db):
    assert add(db, "alice", "secret-1").returncode == 0
    field = entries(db)["alice"]
    assert field.startswith("{") and "secret-1" not in field, field


def test_hash_verifies(db):
    crypt = pytest.importorskip("crypt")
    assert add(db, "alice", "the password", "sha512-crypt").returncode == 0
    h = entries(db)["alice"].split("}", 1)[1]
    assert crypt.crypt("the password", h) == h
    assert crypt.crypt("the passwordx", h) != h


def test_add_existing_user(db):
    assert add(db, "alice", "one").returncode == 0
    before = read(db)
    r = add(db, "alice", "two")
    assert r.returncode == 2
    one_line_error(r)
    assert read(db) == before


def test_passwd(db):
    assert add(db, "alice", "old-pw", "plain").returncode == 0
    assert add(db, "bob", "bob-pw", "plain").returncode == 0
    r = postern("user", "passwd", "--db", db, "--scheme", "plain", "alice",
                input="new-pw\n")
    assert r.returncode == 0, r.stderr
    e = entries(db)
    assert e["alice"] == "{PLAIN}new-pw"
    assert e["bob"] == "{PLAIN}bob-pw"


def test_passwd_unknown_user(db):
    assert add(db, "alice", "pw").returncode == 0
    before = read(db)
    r = postern("user", "passwd", "--db", db, "nobody-here", input="x\n")
    assert r.returncode == 2
    one_line_error(r)
    assert read(db) == before


def test_del(db):
    assert add(db, "alice", "pw").returncode == 0
    assert add(db, "bob", "pw").returncode == 0
    r = postern("user", "del", "--db", db, "alice")
    assert r.returncode == 0, r.stderr
    assert set(entries(db)) == {"bob"}
    listed = postern("user", "list", "--db", db).stdout.decode().split()
    assert "alice" not in listed and "bob" in listed
    r = postern("user", "del", "--db", db, "alice")
    assert r.returncode == 2
    one_line_error(r)


def test_del_keeps_other_lines(db):
    with open(db, "w") as f:
        f.write("# managed by hand\ncarol:{PLAIN}c::::::disabled=yes\n")
    assert add(db, "alice", "pw").returncode == 0
    assert postern("user", "del", "--db", db, "alice").returncode == 0
    text = read(db)
    assert "carol:{PLAIN}c::::::disabled=yes" in text
    assert "alice" not in text


def test_password_not_accepted_from_argv(db):
    for args in (["user", "add", "--db", db, "alice", "secret-argv"],
                 ["user", "add", "--db", db, "--password", "secret-argv",
                  "alice"],
                 ["user", "add", "--db", db, "-p", "secret-argv", "alice"]):
        r = postern(*args, input="other\n")
        assert r.returncode == 1, (args, r.returncode)
        assert "alice" not in entries(db)
        assert "secret-argv" not in read(db)


def test_password_from_stdin_first_line_only(db):
    r = add(db, "alice", "first-line\nsecond-line", "plain")
    assert r.returncode == 0
    assert entries(db)["alice"] == "{PLAIN}first-line"


def test_no_password_on_stdin(db):
    r = postern("user", "add", "--db", db, "alice", input="")
    assert r.returncode in (1, 2)
    one_line_error(r)
    assert "alice" not in entries(db)


@pytest.mark.parametrize("args", [
    [],
    ["user"],
    ["user", "frobnicate", "--db", "DB", "alice"],
    ["user", "add", "--db", "DB"],
    ["user", "add", "--db", "DB", "alice", "extra"],
    ["user", "add", "--db", "DB", "--no-such-option", "alice"],
    ["user", "add", "--db"],
    ["user", "del", "--db", "DB"],
    ["no-such-command"],
])
def test_usage_errors(db, args):
    args = [db if a == "DB" else a for a in args]
    r = postern(*args, input="pw\n")
    assert r.returncode == 1, (args, r.returncode, r.stderr)
    assert r.stderr.strip()
    assert entries(db) == {}


def test_unknown_scheme(db):
    r = add(db, "alice", "pw", "rot13")
    assert r.returncode in (1, 2)
    assert r.stderr.strip()
    assert entries(db) == {}


@pytest.mark.parametrize("name", ["../evil", ".hidden", "a:b", "a b",
                                  "-dash", "x" * 300, "a..b", ""])
def test_bad_user_names(db, name):
    r = add(db, name, "pw")
    assert r.returncode in (1, 2), (name, r.returncode)
    assert r.stderr.strip()
    assert entries(db) == {}


def test_unwritable_db(db):
    r = add(os.path.join(db + ".d", "missing", "users"), "alice", "pw")
    assert r.returncode == 2
    one_line_error(r)


def test_add_creates_missing_db(db):
    os.unlink(db)
    r = add(db, "alice", "pw")
    assert r.returncode == 0, r.stderr
    assert set(entries(db)) == {"alice"}


# ---- credential forms, stores, set and list ---------------------------

import base64
import hashlib
import hmac
import sqlite3


def extra_fields(db, name):
    """The key=value pairs of a passwd-file user's extra field."""
    for line in read(db).splitlines():
        if line.startswith(name + ":"):
            parts = line.split(":", 7)
            if len(parts) < 8:
                return {}
            return dict(t.split("=", 1) for t in parts[7].split())
    raise AssertionError("no line for %s" % name)


def check_scram(text, password, algo):
    """text is ITER,SALT,STOREDKEY,SERVERKEY of password (RFC 5802)."""
    it, salt, stored, server = text.split(",")
    salted = hashlib.pbkdf2_hmac(algo, password.encode(),
                                 base64.b64decode(salt), int(it))
    client_key = hmac.new(salted, b"Client Key", algo).digest()
    assert base64.b64decode(stored) == hashlib.new(algo, client_key).digest()
    assert base64.b64decode(server) == \
        hmac.new(salted, b"Server Key", algo).digest()
    assert len(base64.b64decode(salt)) == 16
    return int(it)


def rows(path):
    con = sqlite3.connect(path)
    try:
        con.row_factory = sqlite3.Row
        return {r["name"]: dict(r) for r in con.execute(
            "SELECT * FROM users")}
    finally:
        con.close()


def write_conf(d, **kw):
    path = os.path.join(d, "postern.conf")
    kw.setdefault("mail_root", d)
    with open(path, "w") as f:
        for k, v in kw.items():
            f.write("%s = %s\n" % (k, v))
    return path


@pytest.fixture
def sqdb(db):
    return os.path.join(os.path.dirname(db), "users.db")


def test_add_default_forms(db):
    """--db alone: a crypt hash and both SCRAM verifiers, no secret."""
    r = add(db, "alice", "pencil sharp")
    assert r.returncode == 0, r.stderr
    assert entries(db)["alice"].startswith("{YESCRYPT}$y$")
    ex = extra_fields(db, "alice")
    assert set(ex) == {"scram-sha-1", "scram-sha-256"}
    assert check_scram(ex["scram-sha-1"], "pencil sharp", "sha1") == 10000
    assert check_scram(ex["scram-sha-256"], "pencil sharp", "sha256") == 10000
    assert "pencil" not in read(db)


def test_add_secret_flag(db):
    r = postern("user", "add", "--db", db, "--secret", "alice",
                input="tan:sta af\n")
    assert r.returncode == 0, r.stderr
    ex = extra_fields(db, "alice")
    assert base64.b64decode(ex["secret"]) == b"tan:sta af"
    assert "scram-sha-256" in ex and entries(db)["alice"].startswith("{")


def test_add_forms_from_config(db):
    conf = write_conf(os.path.dirname(db), user_db=db,
                      password_forms="scram-sha-256 secret",
                      scram_iterations=4096)
    r = postern("user", "add", "-c", conf, "alice", input="pw-1\n")
    assert r.returncode == 0, r.stderr
    assert entries(db)["alice"] == ""
    ex = extra_fields(db, "alice")
    assert set(ex) == {"scram-sha-256", "secret"}
    assert check_scram(ex["scram-sha-256"], "pw-1", "sha256") == 4096
    assert base64.b64decode(ex["secret"]) == b"pw-1"
    # --db with -c: that file, the configuration's forms.
    other = db + ".2"
    r = postern("user", "add", "-c", conf, "--db", other, "bob",
                input="pw-2\n")
    assert r.returncode == 0, r.stderr
    assert set(extra_fields(other, "bob")) == {"scram-sha-256", "secret"}
    # --scheme asks for a crypt hash even when the forms do not.
    r = postern("user", "add", "-c", conf, "--scheme", "sha512-crypt",
                "carol", input="pw-3\n")
    assert r.returncode == 0, r.stderr
    assert entries(db)["carol"].startswith("{SHA512-CRYPT}$6$")


def test_passwd_rewrites_forms_keeps_options(db):
    r = postern("user", "add", "--db", db, "--secret", "alice",
                input="one\n")
    assert r.returncode == 0, r.stderr
    assert postern("user", "set", "--db", db, "--expire", "never",
                   "--login-delay", "60", "alice").returncode == 0
    before = extra_fields(db, "alice")
    r = postern("user", "passwd", "--db", db, "alice", input="two\n")
    assert r.returncode == 0, r.stderr
    ex = extra_fields(db, "alice")
    assert "secret" not in ex
    assert ex["expire"] == "never" and ex["login_delay"] == "60"
    assert ex["scram-sha-256"] != before["scram-sha-256"]
    check_scram(ex["scram-sha-256"], "two", "sha256")


def test_set_and_list_passwd_file(db):
    assert add(db, "alice", "pw").returncode == 0
    assert add(db, "bob", "pw", "plain").returncode == 0
    r = postern("user", "set", "--db", db, "--disable", "--login-delay",
                "300", "--expire", "30", "bob")
    assert r.returncode == 0, r.stderr
    ex = extra_fields(db, "bob")
    assert ex["disabled"] == "yes" and ex["login_delay"] == "300"
    assert ex["expire"] == "30"
    r = postern("user", "list", "--db", db)
    assert r.returncode == 0
    assert r.stdout.decode().splitlines() == [
        "alice crypt,scram-sha-1,scram-sha-256",
        "bob plain,scram-sha-1,scram-sha-256 disabled login_delay=300 "
        "expire=30",
    ]
    r = postern("user", "set", "--db", db, "--enable", "--login-delay",
                "default", "--expire", "default", "bob")
    assert r.returncode == 0, r.stderr
    assert set(extra_fields(db, "bob")) == {"scram-sha-1", "scram-sha-256"}


def test_sqlite_add_passwd_set_list(sqdb):
    r = postern("user", "add", "--db", sqdb, "--db-type", "sqlite",
                "--secret", "alice", input="pencil\n")
    assert r.returncode == 0, r.stderr
    assert os.stat(sqdb).st_mode & 0o7777 == 0o600
    u = rows(sqdb)["alice"]
    assert u["password"].startswith("{YESCRYPT}$y$")
    check_scram(u["scram_sha1"], "pencil", "sha1")
    check_scram(u["scram_sha256"], "pencil", "sha256")
    assert base64.b64decode(u["secret"]) == b"pencil"
    assert u["login_delay"] is None and u["expire_days"] is None
    assert u["disabled"] == 0
    con = sqlite3.connect(sqdb)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()

    r = postern("user", "passwd", "--db", sqdb, "--db-type", "sqlite",
                "--scheme", "sha512-crypt", "alice", input="quill\n")
    assert r.returncode == 0, r.stderr
    u = rows(sqdb)["alice"]
    assert u["password"].startswith("{SHA512-CRYPT}$6$")
    assert u["secret"] is None
    check_scram(u["scram_sha256"], "quill", "sha256")

    r = postern("user", "set", "--db", sqdb, "--db-type", "sqlite",
                "--disable", "--expire", "never", "--login-delay", "5",
                "alice")
    assert r.returncode == 0, r.stderr
    u = rows(sqdb)["alice"]
    assert (u["disabled"], u["expire_days"], u["login_delay"]) == (1, -1, 5)
    r = postern("user", "list", "--db", sqdb, "--db-type", "sqlite")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == ("alice crypt,scram-sha-1,scram-sha-256 "
                                 "disabled login_delay=5 expire=never\n")

    r = postern("user", "add", "--db", sqdb, "--db-type", "sqlite", "alice",
                input="x\n")
    assert r.returncode == 2
    one_line_error(r)
    assert "already exists" in r.stderr.decode()
    r = postern("user", "del", "--db", sqdb, "--db-type", "sqlite", "alice")
    assert r.returncode == 0, r.stderr
    assert rows(sqdb) == {}
    r = postern("user", "del", "--db", sqdb, "--db-type", "sqlite", "alice")
    assert r.returncode == 2
    one_line_error(r)


def test_sqlite_from_config(db, sqdb):
    conf = write_conf(os.path.dirname(db), user_db=sqdb,
                      user_db_type="sqlite",
                      password_forms="crypt scram-sha-1",
                      scram_iterations=5000)
    r = postern("user", "add", "-c", conf, "alice", input="pw\n")
    assert r.returncode == 0, r.stderr
    u = rows(sqdb)["alice"]
    assert check_scram(u["scram_sha1"], "pw", "sha1") == 5000
    assert u["scram_sha256"] is None and u["secret"] is None
    assert postern("user", "set", "-c", conf, "--disable",
                   "alice").returncode == 0
    assert rows(sqdb)["alice"]["disabled"] == 1
    r = postern("user", "list", "-c", conf)
    assert r.stdout.decode() == "alice crypt,scram-sha-1 disabled\n"
    assert postern("check", "-c", conf).returncode == 0


def test_list_never_prints_secrets(db, sqdb):
    pw = "Very-Secret-42"
    for store in ([db], [sqdb, "--db-type", "sqlite"]):
        for name, scheme in (("alice", "plain"), ("bob", "sha512-crypt")):
            r = postern("user", "add", "--db", *store, "--secret",
                        "--scheme", scheme, name, input=pw + "\n")
            assert r.returncode == 0, r.stderr
        r = postern("user", "list", "--db", *store)
        assert r.returncode == 0, r.stderr
        out = r.stdout.decode()
        assert out.splitlines() == [
            "alice plain,scram-sha-1,scram-sha-256",
            "bob crypt,scram-sha-1,scram-sha-256,secret"]
        encoded = base64.b64encode(pw.encode()).decode()
        for bad in (pw, encoded, "$6$", "$y$", "{", "="):
            assert bad not in out, (bad, out)


@pytest.mark.parametrize("args", [
    ["user", "set", "--db", "DB", "alice"],
    ["user", "set", "--db", "DB", "--login-delay", "soon", "alice"],
    ["user", "set", "--db", "DB", "--login-delay", "2592001", "alice"],
    ["user", "set", "--db", "DB", "--expire", "-1", "alice"],
    ["user", "set", "--db", "DB", "--expire", "100001", "alice"],
    ["user", "set", "--db", "DB", "--disable", "--enable", "alice"],
    ["user", "set", "--db", "DB", "--disable"],
    ["user", "add", "--db", "DB", "--disable", "alice"],
    ["user", "del", "--db", "DB", "--secret", "alice"],
    ["user", "list", "--db-type", "sqlite"],
    ["user", "list", "--db", "DB", "--db-type", "mysql"],
])
def test_new_usage_errors(db, args):
    assert add(db, "alice", "pw").returncode == 0
    before = read(db)
    args = [db if a == "DB" else a for a in args]
    r = postern(*args, input="pw\n")
    assert r.returncode == 1, (args, r.returncode, r.stderr)
    one_line_error(r)
    assert "see 'postern user help'" in r.stderr.decode()
    assert read(db) == before


def test_set_unknown_user(db, sqdb):
    assert add(db, "alice", "pw").returncode == 0
    r = postern("user", "set", "--db", db, "--disable", "bob")
    assert r.returncode == 2
    one_line_error(r)
    assert "no user 'bob'" in r.stderr.decode()
    r = postern("user", "set", "--db", sqdb, "--db-type", "sqlite",
                "--disable", "bob")
    assert r.returncode == 2
    one_line_error(r)
    assert not os.path.exists(sqdb)


def test_wrong_store_type(db):
    assert add(db, "alice", "pw").returncode == 0
    r = postern("user", "list", "--db", db, "--db-type", "sqlite")
    assert r.returncode == 2
    one_line_error(r)
    assert "not an SQLite database" in r.stderr.decode()
    r = postern("user", "add", "--db", db, "--db-type", "sqlite", "bob",
                input="pw\n")
    assert r.returncode == 2
    one_line_error(r)
    assert "alice" in read(db) and "bob" not in read(db)


def test_scram_refuses_control_characters(db):
    r = add(db, "alice", "bell\x07pw")
    assert r.returncode == 2
    one_line_error(r)
    assert "SASLprep" in r.stderr.decode()
    assert entries(db) == {}


def test_check_opens_the_store(db, sqdb):
    d = os.path.dirname(db)
    with open(db, "w") as f:
        f.write("alice:{PLAIN}x\nbob:{PLAIN}y::::::expire=soon\n")
    conf = write_conf(d, user_db=db)
    r = postern("check", "-c", conf)
    assert r.returncode == 1
    one_line_error(r)
    assert "%s:2: expire= wants" % db in r.stderr.decode()
    conf = write_conf(d, user_db=db, user_db_type="sqlite")
    r = postern("check", "-c", conf)
    assert r.returncode == 1
    assert "not an SQLite database" in r.stderr.decode()
    conf = write_conf(d, user_db=sqdb, user_db_type="sqlite")
    r = postern("check", "-c", conf)
    assert r.returncode == 1
    assert "'postern user add' creates it" in r.stderr.decode()
    assert postern("user", "add", "-c", conf, "alice",
                   input="pw\n").returncode == 0
    r = postern("check", "-c", conf)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == "%s: ok\n" % conf
