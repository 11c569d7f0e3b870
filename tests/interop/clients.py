"""
Helpers for the interop tests: running a client, reading what it stored,
removing the header fields a client documents that it adds, and comparing
the rest byte for byte with the source messages (corpus.py).
"""

import os
import poplib
import shutil
import subprocess

import pytest

import corpus

CLIENT_TIMEOUT = 120        # seconds, one client run (1 MB message incl.)


def require(binary):
    """Path of a client binary; skips the test when it is not installed."""
    path = shutil.which(binary)
    if path is None:
        pytest.skip("%s is not installed (scripts/install-deps installs it)"
                    % binary)
    return path


def run(argv, *, env=None, cwd=None, timeout=CLIENT_TIMEOUT, ok=(0,)):
    """Runs a client; fails the test on a timeout or an exit status not in
    ok.  Returns the CompletedProcess (text, errors replaced)."""
    try:
        r = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail("%s timed out after %ds\n--- stdout:\n%s\n--- stderr:\n%s"
                    % (argv[0], timeout, _tail(e.stdout), _tail(e.stderr)),
                    pytrace=False)
    if r.returncode not in ok:
        pytest.fail("%s exited %d (expected %s)\n--- stdout:\n%s\n"
                    "--- stderr:\n%s" % (" ".join(argv), r.returncode,
                                         " or ".join(map(str, ok)),
                                         _tail(r.stdout), _tail(r.stderr)),
                    pytrace=False)
    return r


def _tail(data, n=4000):
    if data is None:
        return ""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return data[-n:]


def client_env(home):
    """A minimal environment with a private HOME, so that no rc file of
    the user running the tests is read."""
    os.makedirs(home, exist_ok=True)
    env = {
        "HOME": home,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": home,
        "FETCHMAILHOME": home,
    }
    return env


def write_private(path, text):
    """Writes a client's rc file with mode 0600 (fetchmail, mpop and
    getmail refuse or warn about rc files others can read)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def make_maildir(path, owner=None):
    for d in (path, path + "/cur", path + "/new", path + "/tmp"):
        os.makedirs(d, 0o755, exist_ok=True)
        if owner is not None:
            os.chown(d, owner[0], owner[1])
    return path


def maildir_messages(path):
    """{file path: bytes} of the messages in a Maildir's new/ and cur/."""
    out = {}
    for sub in ("new", "cur"):
        d = os.path.join(path, sub)
        for f in sorted(os.listdir(d)):
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[p] = fh.read()
    return out


def dir_messages(path):
    out = {}
    for f in sorted(os.listdir(path)):
        p = os.path.join(path, f)
        with open(p, "rb") as fh:
            out[p] = fh.read()
    return out


# ------------------------------------------------------------ comparison

def strip_top_headers(data, names, where="message"):
    """Removes the header fields named in names, in that order, from the
    top of the header block (each with its continuation lines).  Fails if
    a named field is not the next one: a client that documents adding a
    field must add it exactly there, and nothing else may be removed."""
    for name in names:
        want = name.lower().encode("ascii") + b":"
        first = data.split(b"\n", 1)[0]
        assert first.lower().startswith(want), (
            "%s: expected an added %s: field at the top, found %r"
            % (where, name, first[:120]))
        rest = data.split(b"\n", 1)[1] if b"\n" in data else b""
        while rest[:1] in (b" ", b"\t"):
            rest = rest.split(b"\n", 1)[1] if b"\n" in rest else b""
        data = rest
    return data


def top_fields(data, count):
    """The first count header fields (unfolded lines) of a message."""
    out = []
    for line in data.split(b"\n"):
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t") and out:
            out[-1] += b"\n" + line
            continue
        if len(out) == count or not line:
            break
        out.append(line)
    return out


def first_difference(got, want):
    n = min(len(got), len(want))
    i = next((k for k in range(n) if got[k] != want[k]), n)
    return ("lengths %d (got) and %d (expected), first difference at octet "
            "%d:\n  got      %r\n  expected %r"
            % (len(got), len(want), i, got[max(0, i - 60):i + 60],
               want[max(0, i - 60):i + 60]))


def check_messages(stored, form, strip=(), what="client"):
    """stored: {where: bytes} as a client stored them.  Every corpus
    message must be there exactly once and, after removing the added
    header fields in strip, equal form(source) byte for byte."""
    seen = {}
    for where, data in stored.items():
        data = strip_top_headers(data, strip, where)
        mid = corpus.message_id(data)
        assert mid in corpus.BY_ID, (
            "%s stored a message that is not in the mailbox (%s): %r"
            % (what, where, data[:300]))
        assert mid not in seen, (
            "%s stored %s twice: %s and %s" % (what, mid.decode(),
                                              seen[mid][0], where))
        seen[mid] = (where, data)
    missing = sorted(corpus.BY_ID[m][0] for m in set(corpus.BY_ID) - set(seen))
    assert not missing, "%s did not store: %s" % (what, ", ".join(missing))
    for mid, (where, data) in seen.items():
        label, source = corpus.BY_ID[mid]
        want = form(source)
        assert data == want, "%s: message %r (%s) differs: %s" % (
            what, label, where, first_difference(data, want))


def check_late(mb, before, after, form, strip=(), what="client"):
    """After mb.add_late() and one more keep run: the client stored exactly
    one new message, corpus.LATE, and the server still holds all."""
    new = {p: d for p, d in after.items() if p not in before}
    assert len(new) == 1, "%s stored %d messages after one arrived: %r" % (
        what, len(new), sorted(new))
    assert set(before) <= set(after), "%s removed stored messages" % what
    (where, data), = new.items()
    data = strip_top_headers(data, strip, where)
    want = form(corpus.LATE)
    assert data == want, "%s: the late message (%s) differs: %s" % (
        what, where, first_difference(data, want))
    count, octets, uidls = pop_state(mb)
    assert (count, octets) == (len(corpus.MESSAGES) + 1,
                               corpus.TOTAL_WIRE + len(corpus.wire(corpus.LATE)))
    assert set(mb.uidls.values()) < set(uidls.values()), (mb.uidls, uidls)


# --------------------------------------------------------- server state

def pop_session(mb):
    p = poplib.POP3(mb.host, mb.port, timeout=30)
    p.user(mb.user)
    p.pass_(mb.password)
    return p


def pop_state(mb):
    """(STAT count, STAT octets, {n: uidl}) seen by poplib."""
    p = pop_session(mb)
    try:
        count, octets = p.stat()
        _, lines, _ = p.uidl()
        uidls = {}
        for line in lines:
            n, u = line.split(b" ", 1)
            uidls[int(n)] = u.decode("ascii")
    finally:
        p.quit()
    return count, octets, uidls


def assert_untouched(mb):
    """Keep mode: every message is still on the server, same UIDLs."""
    count, octets, uidls = pop_state(mb)
    assert (count, octets) == (len(corpus.MESSAGES), corpus.TOTAL_WIRE), \
        "STAT after a keep run: %d %d" % (count, octets)
    assert sorted(uidls.values()) == sorted(mb.uidls.values()), \
        "UIDLs changed: %r -> %r" % (mb.uidls, uidls)
    files = mb.server.message_files(mb.user)
    assert sorted(files) == sorted(mb.bases), \
        "server Maildir changed: %r" % sorted(files)


def assert_emptied(mb):
    """Delete mode: STAT 0 0 and no message file left in the Maildir."""
    count, octets, uidls = pop_state(mb)
    assert (count, octets) == (0, 0), \
        "STAT after a delete run: %d %d" % (count, octets)
    assert uidls == {}
    files = mb.server.message_files(mb.user)
    assert files == {}, "files left in the server Maildir: %r" % files
