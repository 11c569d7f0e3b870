"""
`postern migrate-uidl --from dovecot` against a real Dovecot (the
private one of test_fetch_dovecot.py): Dovecot serves a Maildir, poplib
records the UIDL it shows for each message (and reads the messages, so
that Dovecot moves them to cur/ and writes its dovecot-uidlist); the
Maildir is then copied, file names unchanged, into the mail root of a
posternd, migrate-uidl imports it, and posternd must show exactly the
same UIDL for each message, matched by content.  Mail delivered after
the migration gets UIDLs of its own, colliding with none, and a lost
index changes nothing.

Three ways Dovecot makes UIDLs: its default pop3_uidl_format
(%08Xu%08Xv), another format given to migrate-uidl with --uidl-format
(%v.%u), and pop3_save_uidl = yes, where Dovecot records the UIDLs it
showed as P records, which migrate-uidl takes whatever the format.

Skipped when Dovecot is not installed or this is not root.
"""

import os
import poplib
import shutil

import pytest

from harness import postern
from test_fetch_dovecot import PASSWORD, USER, Dovecot

N = 12

pytestmark = pytest.mark.skipif(
    shutil.which("dovecot") is None or os.geteuid() != 0,
    reason="needs Dovecot (dovecot-core, dovecot-pop3d) and root")


def message(i):
    return (b"From: sender%d@example.test\nSubject: message %d\n\n"
            b"body of message %d\n" % (i, i, i))


def dovecot_uidls(dc):
    """{content: UIDL} as Dovecot shows them; RETR marks them seen."""
    p = poplib.POP3("127.0.0.1", dc.port, timeout=10)
    try:
        p.user(USER)
        p.pass_(PASSWORD)
        out = {}
        for line in p.uidl()[1]:
            n, uidl = line.decode().split(" ", 1)
            lines = p.retr(int(n))[1]
            out[b"\r\n".join(lines) + b"\r\n"] = uidl
        p.quit()
    finally:
        p.close()
    return out


def posternd_uidls(srv):
    with srv.login(USER) as c:
        u = c.uidl()
        out = {c.retr(n): v for n, v in u.items()}
        c.quit()
    return out


def copy_maildir(src, srv):
    """The Maildir as it is, names and dovecot-uidlist included."""
    dst = srv.maildir(USER)
    shutil.copytree(src, dst)
    srv.chown_mail_root()
    return dst


@pytest.fixture
def run(make_server):
    started = []

    def go(extra="", fmt=None, save=False):
        dc = Dovecot(extra=extra)
        started.append(dc)
        for i in range(N):
            dc.add(message(i))
        dc.start()
        want = dovecot_uidls(dc)
        assert len(want) == N and len(set(want.values())) == N
        if save:
            # The P records are there: even a wrong format is no harm.
            with open(os.path.join(dc.maildir, "dovecot-uidlist")) as f:
                assert f.read().count(" P") == N
        srv = make_server(users={USER: PASSWORD})
        md = copy_maildir(dc.maildir, srv)
        dc.stop()
        args = ["migrate-uidl", "-c", srv.conf_path, "--from", "dovecot",
                "-u", USER]
        if fmt is not None:
            args += ["--uidl-format", fmt]
        r = postern(*args)
        out = r.stdout.decode()
        assert r.returncode == 0, r.stderr.decode()
        assert "%d records, %d matched" % (N, N) in out, out
        assert "0 skipped" in out, out
        return srv, md, want

    yield go
    for dc in started:
        dc.stop()


def check_after(srv, md, want):
    got = posternd_uidls(srv)
    assert got == want
    # New mail: fresh UIDLs that collide with none of the imported ones.
    for i in range(N, N + 3):
        srv.add_message(USER, message(i))
    got = posternd_uidls(srv)
    assert len(got) == N + 3 and len(set(got.values())) == N + 3
    for content, uidl in want.items():
        assert got[content] == uidl
    # A lost index changes nothing.
    os.unlink(os.path.join(md, "postern.index"))
    assert posternd_uidls(srv) == got
    srv.wait_log(r"UIDL guard: postern.index was missing or damaged")


def test_default_format(run):
    srv, md, want = run()
    # Dovecot's default: the UID and the UIDVALIDITY, 8 hex digits each.
    assert all(len(u) == 16 for u in want.values())
    check_after(srv, md, want)


def test_other_format(run):
    srv, md, want = run(extra="pop3_uidl_format = %v.%u", fmt="%v.%u")
    assert all("." in u for u in want.values())
    check_after(srv, md, want)


def test_saved_uidls(run):
    srv, md, want = run(extra="pop3_uidl_format = %g-%u\n"
                              "pop3_save_uidl = yes", save=True)
    check_after(srv, md, want)


def test_format_is_applied(run):
    """Without P records, --uidl-format alone makes the UIDLs: given
    another format than Dovecot's, posternd shows what that format
    says (which is why it must be the old server's)."""
    srv, md, want = run(extra="pop3_uidl_format = %v.%u", fmt="%u")
    got = posternd_uidls(srv)
    assert set(got) == set(want)
    for content, uidl in want.items():
        assert got[content] == uidl.split(".", 1)[1]
