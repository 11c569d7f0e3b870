"""
postern migrate-uidl and the UIDL guard (doc/design.md, invariant 3).

Fabricated sources of other servers, imported into the Maildir of a
live posternd's user, then checked over POP3 by content: Courier's
courierpop3dsizelist (versions 2 and 3, uid 0 names, names with
spaces), qpopper-style X-UIDL headers (folded, any case, missing,
invalid, duplicated), Dovecot's dovecot-uidlist with P records and
pop3_uidl_format.  Invalid and duplicate UIDLs and records without a
file are skipped and reported; a dry run changes no file; a second run
imports nothing more; a UIDL posternd has shown is replaced only with
--force; new mail gets UIDLs that collide with no imported one.  The
guard: a migrated mailbox whose index is deleted or damaged keeps its
UIDLs, and the log says so; UIDLs stay across restarts.  Exit statuses
(sysexits) for bad input.
"""

import os
import re

import pytest

from harness import expected_uidl, postern

EX_OK, EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_NOUSER = 0, 64, 65, 66, 67
EX_CANTCREAT, EX_CONFIG = 73, 78


def msg(i, extra=b""):
    return b"Subject: m%d\n" % i + extra + b"\nbody %d\n" % i


def name(i):
    return "1700000%03d.M%dP42Q%d.old.example" % (i, i, i)


@pytest.fixture
def srv(make_server):
    return make_server()


def put(srv, i, extra=b"", flags=":2,S"):
    """Message i in cur/ as another server left it; its base name."""
    srv.add_message("alice", msg(i, extra), name=name(i) + flags,
                    subdir="cur")
    return name(i)


def write_source(srv, fname, text):
    path = os.path.join(srv.maildir("alice"), fname)
    with open(path, "wb") as f:
        f.write(text if isinstance(text, bytes) else text.encode())
    srv._fix_owner(path)
    return path


def migrate(srv, *args):
    r = postern("migrate-uidl", "-c", srv.conf_path, *args)
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"))


def uidls_by_body(srv, user="alice"):
    with srv.login(user) as c:
        u = c.uidl()
        out = {c.retr(n).rsplit(b"\r\n\r\n", 1)[1]: v for n, v in u.items()}
        c.quit()
    return out


def body(i):
    return b"body %d\r\n" % i


def tree(path):
    """Every file under path with its content: what a dry run must keep."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for f in filenames:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = fh.read()
    return out


COURIER_V2 = """/2 7 1600000000
{n1}:2,S 20 1:1600000000
{n2}:2,S 20 2:1600000000
{n3} 20 5:0
{gone}:2,S 20 6:1600000000
"""


def courier_setup(srv):
    n = [put(srv, i) for i in (1, 2)]
    n.append(put(srv, 3, flags=""))
    write_source(srv, "courierpop3dsizelist", COURIER_V2.format(
        n1=n[0], n2=n[1], n3=n[2], gone=name(99)))
    return n


def test_courier_v2(srv):
    courier_setup(srv)
    rc, out, err = migrate(srv, "--from", "courier", "-u", "alice")
    assert rc == EX_OK, err
    assert "4 records, 3 matched, 3 imported, 0 already, 1 skipped" in out
    assert re.search(r"skipped %s: no such file \(UIDL UID6-1600000000\)"
                     % re.escape(name(99)), out)
    got = uidls_by_body(srv)
    assert got == {body(1): "UID1-1600000000", body(2): "UID2-1600000000",
                   body(3): "UID5"}


def test_courier_v3_and_uid_zero(srv):
    a = put(srv, 1)
    # Courier's version 0 UIDL escapes +, ' and " (and octets outside
    # 0x21..0x7e) as +XX.
    odd = "1700000002.a+b'c.host"
    srv.add_message("alice", msg(2), name=odd + ":2,", subdir="cur")
    spaced = "1700000003.with space.host"
    srv.add_message("alice", msg(3), name=spaced + ":2,S", subdir="cur")
    write_source(srv, "courierpop3dsizelist",
                 "/3 9 1600000001\n%s:2,S 20 7:1600000001:1\n"
                 "%s:2, 20 0:0:0\n%s:2,S 20 8:1600000001:0\n"
                 % (a, odd, spaced))
    rc, out, err = migrate(srv, "--from", "courier", "-u", "alice")
    assert rc == EX_OK, err
    assert "3 records, 3 matched, 3 imported" in out
    got = uidls_by_body(srv)
    assert got == {body(1): "UID7-1600000001",
                   body(2): "1700000002.a+2Bb+27c.host",
                   body(3): "UID8-1600000001"}


@pytest.mark.parametrize("text,what", [
    ("/4 1 1\n", "version 4 is not supported"),
    ("/1 1 1\n", "version 1 is not supported"),
    ("name 20 1:1\n", "no '/<version>' header line"),
    ("/2 7 1600000000\nname 20 x:1\n", "line 2: bad UID field"),
    ("/2 7 1600000000\nname 20 1:1", "the last line has no newline"),
    ("/2 7 1600000000\nonefield\n", "line 2: malformed line"),
])
def test_courier_refused(srv, text, what):
    put(srv, 1)
    write_source(srv, "courierpop3dsizelist", text)
    before = tree(srv.maildir("alice"))
    rc, out, err = migrate(srv, "--from", "courier", "-u", "alice")
    assert rc == EX_DATAERR
    assert what in err and "nothing imported" in err
    assert len(err.strip().splitlines()) == 1
    assert tree(srv.maildir("alice")) == before


def test_xuidl(srv):
    put(srv, 1, b"X-UIDL: 3f8a1c2b9d\n")
    put(srv, 2, b"x-uidl:\n  folded-value\n")
    put(srv, 3)                                   # none
    put(srv, 4, b"X-UIDL: has space\n")           # invalid
    put(srv, 5, b"X-UIDL: same\n")                # duplicate
    put(srv, 6, b"X-UIDL: same\n")
    put(srv, 7, b"X-UIDL: first\nX-UIDL: second\n")
    put(srv, 8, b"X-UIDL: " + b"u" * 71 + b"\n")  # too long
    put(srv, 9, b"Subject-2: x\n\nX-UIDL: in-the-body\n")
    rc, out, err = migrate(srv, "--from", "x-uidl", "-u", "alice")
    assert rc == EX_OK, err
    assert ("7 records, 7 matched, 3 imported, 0 already, 4 skipped,"
            " 2 messages without X-UIDL") in out, out
    assert "invalid UIDL (UIDL has space)" in out
    assert out.count("duplicate UIDL (UIDL same)") == 2
    got = uidls_by_body(srv)
    assert got[body(1)] == "3f8a1c2b9d"
    assert got[body(2)] == "folded-value"
    assert got[body(7)] == "first"
    for i in (3, 4, 5, 6, 8, 9):
        assert got[body(i)] == expected_uidl(name(i))


def test_collision_with_another_message(srv):
    """An imported UIDL that another message shows is not imported."""
    other = put(srv, 1)
    put(srv, 2, b"X-UIDL: " + other.encode() + b"\n")
    rc, out, err = migrate(srv, "--from", "x-uidl", "-u", "alice")
    assert rc == EX_OK, err
    assert "another message has this UIDL" in out
    got = uidls_by_body(srv)
    assert got == {body(1): other, body(2): expected_uidl(name(2))}


def test_dovecot_p_records_and_format(srv):
    n = [put(srv, i, flags=":2,S" if i % 2 else "") for i in range(1, 6)]
    write_source(srv, "dovecot-uidlist",
                 "3 V1600000002 N9 G0123456789abcdef0123456789abcdef\n"
                 "1 :%s\n"
                 "2 W30 Pkept-from-before :%s\n"
                 "3 P :%s\n"
                 "10 G00ff :%s\n"
                 "255 S20 W21 :%s\n" % tuple(n))
    rc, out, err = migrate(srv, "--from", "dovecot", "-u", "alice")
    assert rc == EX_OK, err
    assert "5 records, 5 matched, 4 imported, 1 already" in out
    got = uidls_by_body(srv)
    assert got == {body(1): "00000001" + "5f5e1002",
                   body(2): "kept-from-before",
                   body(3): n[2],               # empty P: the base name
                   body(4): "0000000a5f5e1002",
                   body(5): "000000ff5f5e1002"}


def test_dovecot_other_format(make_server):
    srv = make_server()
    n = [put(srv, i) for i in (1, 2)]
    write_source(srv, "dovecot-uidlist",
                 "3 V77 N3 Gabc\n11 :%s\n12 G0042 :%s\n" % tuple(n))
    rc, out, err = migrate(srv, "--from", "dovecot", "-u", "alice",
                           "--uidl-format", "%v.%u-%Xu-%04Xv-%g-%%")
    assert rc == EX_OK, err
    got = uidls_by_body(srv)
    assert got == {body(1): "77.11-b-004d-%s-%%" % n[0],
                   body(2): "77.12-c-004d-0042-%"}


@pytest.mark.parametrize("fmt,what", [
    ("%m", "%m (an MD5 sum of the header"),
    ("%{md5}", "%{md5}"),
    ("%q", "unknown variable"),
    ("%3.2u", "offsets"),
    ("a b%u", "space or control character"),
])
def test_dovecot_format_refused(srv, fmt, what):
    put(srv, 1)
    write_source(srv, "dovecot-uidlist", "3 V1 N2\n1 :%s\n" % name(1))
    rc, out, err = migrate(srv, "--from", "dovecot", "-u", "alice",
                           "--uidl-format", fmt)
    assert rc == EX_USAGE
    assert what in err


@pytest.mark.parametrize("text,what", [
    ("1 1600000000 3\n1 F :x\n", "version 1 or 2"),
    ("3 N3\n1 :x\n", "no UIDVALIDITY"),
    ("3 V1 N2\nabc :x\n", "line 2: bad UID"),
    ("3 V1 N2\n1 W30\n", "line 2: no file name"),
])
def test_dovecot_refused(srv, text, what):
    put(srv, 1)
    write_source(srv, "dovecot-uidlist", text)
    rc, out, err = migrate(srv, "--from", "dovecot", "-u", "alice")
    assert rc == EX_DATAERR
    assert what in err


def test_dry_run_changes_nothing(srv):
    courier_setup(srv)
    before = tree(srv.maildir("alice"))
    rc, out, err = migrate(srv, "--from", "courier", "-u", "alice", "-n")
    assert rc == EX_OK, err
    assert out.startswith("dry run: ")
    assert "3 to import" in out
    assert tree(srv.maildir("alice")) == before
    # And the server still shows the names' UIDLs.
    got = uidls_by_body(srv)
    assert got[body(1)] == expected_uidl(name(1))


def test_twice_is_idempotent(srv):
    courier_setup(srv)
    rc, out, err = migrate(srv, "--from", "courier", "-u", "alice")
    assert rc == EX_OK and "3 imported" in out
    first = uidls_by_body(srv)
    rc, out, err = migrate(srv, "--from", "courier", "-u", "alice")
    assert rc == EX_OK, err
    assert "3 matched, 0 imported, 3 already, 1 skipped" in out
    assert uidls_by_body(srv) == first


def test_shown_uidls_need_force(srv):
    courier_setup(srv)
    shown = uidls_by_body(srv)      # posternd shows the names' UIDLs
    rc, out, err = migrate(srv, "--from", "courier", "-u", "alice")
    assert rc == EX_OK, err
    assert "0 imported" in out
    assert out.count("already shown with another UIDL (--force") == 3
    assert uidls_by_body(srv) == shown
    rc, out, err = migrate(srv, "--from", "courier", "-u", "alice",
                           "--force")
    assert rc == EX_OK, err
    assert "3 imported" in out
    assert uidls_by_body(srv)[body(1)] == "UID1-1600000000"
    assert "replaced by the imported UID1-1600000000" in err


GUARD_N = 12


def guard_setup(srv):
    for i in range(GUARD_N):
        put(srv, i, b"X-UIDL: imported-%d\n" % i)
    rc, out, err = migrate(srv, "--from", "x-uidl", "-u", "alice")
    assert rc == EX_OK and "%d imported" % GUARD_N in out, out + err
    want = {body(i): "imported-%d" % i for i in range(GUARD_N)}
    assert uidls_by_body(srv) == want
    return want


@pytest.mark.parametrize("damage", ["delete", "garbage", "truncate"])
def test_guard_keeps_uidls_of_lost_index(srv, damage):
    want = guard_setup(srv)
    index = os.path.join(srv.maildir("alice"), "postern.index")
    start = len(srv.log_text())
    if damage == "delete":
        os.unlink(index)
    elif damage == "garbage":
        with open(index, "wb") as f:
            f.write(b"not an index\n")
    else:
        with open(index, "rb+") as f:
            f.truncate(os.path.getsize(index) // 2)
    assert uidls_by_body(srv) == want
    m = srv.wait_log(r"mailbox \S+alice: UIDL guard: postern.index was"
                     r" missing or damaged; %d of %d messages would have"
                     r" changed their UIDL, kept the UIDLs recorded in"
                     r" postern.uidls" % (GUARD_N, GUARD_N), start=start)
    assert m
    # Stable across a restart, and the warning is not repeated.
    srv.restart()
    start = len(srv.log_text())
    assert uidls_by_body(srv) == want
    assert "UIDL guard" not in srv.log_text()[start:]


def test_guard_threshold_is_configurable(srv):
    srv.set_config(uidl_guard_min=GUARD_N + 1)
    srv.restart()
    want = guard_setup(srv)
    os.unlink(os.path.join(srv.maildir("alice"), "postern.index"))
    start = len(srv.log_text())
    assert uidls_by_body(srv) == want   # kept all the same
    assert "UIDL guard" not in srv.log_text()[start:]


def test_guard_says_when_files_are_renamed(srv):
    for i in range(GUARD_N):
        put(srv, i)
    uidls_by_body(srv)
    cur = os.path.join(srv.maildir("alice"), "cur")
    start = len(srv.log_text())
    for f in os.listdir(cur):
        os.rename(os.path.join(cur, f), os.path.join(cur, "r" + f))
    uidls_by_body(srv)
    srv.wait_log(r"UIDL guard: %d of %d indexed messages vanished and %d"
                 r" new files appeared at once" % (GUARD_N, GUARD_N, GUARD_N),
                 start=start)


def test_new_mail_after_migration(srv):
    put(srv, 1, b"X-UIDL: 1800000000.M1P1Q1.new.example\n")
    put(srv, 2, b"X-UIDL: plain-old\n")
    rc, out, err = migrate(srv, "--from", "x-uidl", "-u", "alice")
    assert rc == EX_OK and "2 imported" in out, out + err
    before = uidls_by_body(srv)
    # A later delivery whose name is an imported UIDL, and a normal one.
    srv.add_message("alice", msg(3), name="1800000000.M1P1Q1.new.example")
    srv.add_message("alice", msg(4))
    got = uidls_by_body(srv)
    assert got[body(1)] == before[body(1)]
    assert got[body(2)] == "plain-old"
    assert len(set(got.values())) == 4
    assert got[body(3)] != "1800000000.M1P1Q1.new.example"
    # And so it stays when the index is rebuilt.
    os.unlink(os.path.join(srv.maildir("alice"), "postern.index"))
    assert uidls_by_body(srv) == got


def test_all_users(srv):
    courier_setup(srv)
    srv.ensure_maildir("bob")       # nothing to import there
    rc, out, err = migrate(srv, "--from", "courier", "--all")
    assert rc == EX_OK, err
    assert "alice: 4 records" in out
    assert re.search(r"bob: no courierpop3dsizelist, nothing to import", out)


def test_maildir_option_and_owner(srv):
    courier_setup(srv)
    md = srv.maildir("alice")
    r = postern("migrate-uidl", "--from", "courier", "--maildir", md)
    assert r.returncode == EX_OK, r.stderr
    st = os.stat(md)
    for f in ("postern.uidls", "postern.index"):
        fs = os.stat(os.path.join(md, f))
        assert (fs.st_uid, fs.st_gid) == (st.st_uid, st.st_gid)
    assert uidls_by_body(srv)[body(2)] == "UID2-1600000000"


@pytest.mark.parametrize("args,status,what", [
    ((), EX_USAGE, "--from"),
    (("--from", "pop"), EX_USAGE, "unknown source"),
    (("--from", "courier"), EX_USAGE, "exactly one of"),
    (("--from", "courier", "-u", "alice", "--all"), EX_USAGE,
     "exactly one of"),
    (("--from", "courier", "--all", "--uidl-format", "%u"), EX_USAGE,
     "--uidl-format applies to --from dovecot only"),
    (("--from", "courier", "-u", "nobody-here"), EX_NOUSER, "no user"),
    (("--from", "courier", "-u", "alice"), EX_NOINPUT,
     "courierpop3dsizelist: no such file"),
    (("--from", "dovecot", "--maildir", "/nonexistent/md"), EX_NOINPUT,
     "no such Maildir"),
    (("--from", "x-uidl", "-u", "alice", "--bogus"), EX_USAGE,
     "unknown option"),
])
def test_exit_codes(srv, args, status, what):
    srv.ensure_maildir("alice")
    r = postern("migrate-uidl", "-c", srv.conf_path, *args)
    err = r.stderr.decode()
    assert r.returncode == status, err
    assert what in err
    assert len(err.strip().splitlines()) == 1


def test_bad_config(srv, tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("no_such_key = 1\n")
    r = postern("migrate-uidl", "-c", str(bad), "--from", "courier",
                "--all")
    assert r.returncode == EX_CONFIG
    assert "--maildir" in r.stderr.decode()


def test_damaged_map_refused(srv):
    courier_setup(srv)
    rc, out, err = migrate(srv, "--from", "courier", "-u", "alice")
    assert rc == EX_OK
    with open(os.path.join(srv.maildir("alice"), "postern.uidls"),
              "ab") as f:
        f.write(b"junk\n")
    rc, out, err = migrate(srv, "--from", "courier", "-u", "alice")
    assert rc == EX_CANTCREAT
    assert "postern.uidls is damaged" in err


def test_report_counts(srv):
    """matched counts the records whose file is there, whatever their
    UIDL; every skipped record is named once with its reason."""
    a, b = put(srv, 1), put(srv, 2)
    long_uidl = "x" * 71
    write_source(srv, "dovecot-uidlist",
                 "3 V9 N9\n1 P%s :%s\n2 Pok :%s\n3 Pgone :%s\n"
                 "4 Pdup :%s\n" % (long_uidl, a, b, name(98), b))
    rc, out, err = migrate(srv, "--from", "dovecot", "-u", "alice")
    assert rc == EX_OK, err
    assert ("4 records, 3 matched, 1 imported, 0 already, 3 skipped"
            in out), out
    assert "skipped %s: invalid UIDL (UIDL %s)" % (a, long_uidl) in out
    assert "skipped %s: no such file (UIDL gone)" % name(98) in out
    assert ("skipped %s: duplicate record for the file (UIDL dup)" % b
            in out)
    assert out.count("skipped") == 4    # the summary's and three lines
    assert uidls_by_body(srv)[body(2)] == "ok"


def test_force_never_passes_a_shown_uidl_on(srv):
    """--force replaces a shown UIDL, but never gives it to another
    message: a client that has it would skip that message."""
    a = put(srv, 1, b"X-UIDL: new-for-one\n")
    put(srv, 2, b"X-UIDL: " + a.encode() + b"\n")
    shown = uidls_by_body(srv)
    assert shown[body(1)] == a
    rc, out, err = migrate(srv, "--from", "x-uidl", "-u", "alice",
                           "--force")
    assert rc == EX_OK, err
    assert "1 imported" in out
    assert "skipped %s: another message has this UIDL" % name(2) in out
    got = uidls_by_body(srv)
    assert got == {body(1): "new-for-one", body(2): shown[body(2)]}


def test_guard_reads_what_it_can_of_a_damaged_index(srv):
    """postern.uidls gone too: the lines of the damaged index that still
    parse give their UIDLs back."""
    want = guard_setup(srv)
    md = srv.maildir("alice")
    os.unlink(os.path.join(md, "postern.uidls"))
    index = os.path.join(md, "postern.index")
    with open(index, "rb") as f:
        lines = f.read().split(b"\n")
    # A wrong checksum and one message line made unreadable.
    lines[-2] = lines[-2][:-4] + b"0000"
    lines[3] = b"garbage"
    with open(index, "wb") as f:
        f.write(b"\n".join(lines))
    start = len(srv.log_text())
    got = uidls_by_body(srv)
    lost = [c for c in want if got[c] != want[c]]
    assert len(lost) == 1
    assert len(set(got.values())) == GUARD_N
    srv.wait_log(r"UIDL guard: postern.index was missing or damaged; %d of"
                 r" %d messages would have changed their UIDL, kept the"
                 r" UIDLs recorded in postern.uidls or readable in the"
                 r" damaged index" % (GUARD_N - 1, GUARD_N), start=start)


@pytest.mark.parametrize("key,value,ok", [
    ("uidl_guard_share", "1", True),
    ("uidl_guard_share", "100", True),
    ("uidl_guard_share", "0", False),
    ("uidl_guard_share", "101", False),
    ("uidl_guard_share", "50%", False),
    ("uidl_guard_min", "1", True),
    ("uidl_guard_min", "0", False),
])
def test_guard_keys_checked(srv, key, value, ok):
    srv.set_config(**{key: value})
    r = postern("check", "-c", srv.conf_path)
    assert (r.returncode == 0) == ok, r.stderr
    if not ok:
        assert key in r.stderr.decode()
