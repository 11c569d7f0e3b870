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
