"""
Offline reading: `postern list`, `show`, `save`, `mark`, `delete`,
`move` and `export` on Maildirs and mbox files that the tests build with
Python's email package (never with GMime, the parser under test).

Covered: ISO-8859-1 and UTF-8 quoted-printable text; RFC 2047 subjects
and senders; base64 attachments with RFC 2231 continuation file names
and RFC 2047 ones; a nested message/rfc822; HTML only, through w3m and
through the tag stripper when no renderer is in PATH; a 20 MB
attachment saved byte-exact with bounded memory (normal build only);
malformed input (no boundary, bad base64, unknown charset, 200-deep
nesting, a header folded 10,000 times) giving warnings and the best
effort; path traversal and hidden names saved inside the target
directory; numbered duplicates; mark read/unread, delete to the trash
and --purge, move; mboxrd export read back byte for byte; list filters,
date order and --json; the exit statuses; the pager on a terminal only;
and that posternd links neither GMime nor GLib.
"""

import base64
import email.policy
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from email.message import EmailMessage

import pytest

import harness

EX_OK, EX_USAGE, EX_FAIL, EX_NOMSG = 0, 1, 2, 3

SMTP = email.policy.SMTP.clone(linesep="\n")


def run(*args, env=None, timeout=60, input=None):
    """postern ARGS with env (added to the environment); bytes out."""
    e = dict(os.environ)
    e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    e.pop("PAGER", None)
    if env:
        e.update(env)
    r = subprocess.run([harness.postern_path()] + [str(a) for a in args],
                       input=input, stdin=None if input else
                       subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=e)
    harness.check_sanitizer_output(r.stderr, "postern " + " ".join(
        str(a) for a in args))
    return r


def make_maildir(path):
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    return path


_seq = [0]


def deliver(maildir, raw, sub="new", info=""):
    """Writes raw into maildir/sub; returns the file's base name."""
    _seq[0] += 1
    base = "1700000000.P%dQ%d.test" % (os.getpid(), _seq[0])
    with open(os.path.join(maildir, sub, base + info), "wb") as f:
        f.write(raw)
    return base


def listing(maildir, *extra):
    r = run("list", "--maildir", maildir, "--json", *extra)
    assert r.returncode == EX_OK, r.stderr
    return [json.loads(line) for line in r.stdout.decode().splitlines()]


def id_of(maildir, subject, *extra):
    ids = [m["id"] for m in listing(maildir, *extra)
           if m["subject"] == subject]
    assert len(ids) == 1, (subject, listing(maildir, *extra))
    return ids[0]


def body_of(show_out):
    """The text after the header block of `show`."""
    text = show_out.decode("utf-8")
    return text.split("\n\n", 1)[1]


def simple(subject, text, charset="utf-8", cte="quoted-printable",
           date="Mon, 01 Jan 2024 10:00:00 +0000", sender="a@example.org"):
    m = EmailMessage(policy=SMTP)
    m["From"] = sender
    m["To"] = "me@example.org"
    m["Subject"] = subject
    m["Date"] = date
    m.set_content(text, charset=charset, cte=cte)
    return m


@pytest.fixture
def md(tmp_path):
    return make_maildir(str(tmp_path / "Mail"))


# ------------------------------------------------------------ linking

def test_posternd_links_neither_gmime_nor_glib():
    out = subprocess.run(["ldd", harness.posternd_path()],
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    assert "libssl" in out          # ldd did list the libraries
    for lib in ("libgmime", "libglib", "libgobject", "libgio"):
        assert lib not in out, out
    out = subprocess.run(["ldd", harness.postern_path()],
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    assert "libgmime-3.0" in out


# ------------------------------------------------------------ text

def test_quoted_printable_latin1_and_utf8(md):
    latin = "Grüße aus Köln, ½ Preis\nzweite Zeile = gleich\n"
    utf = "Ωμέγα ☃ naïve café " + "x" * 90 + "\nend\n"
    deliver(md, bytes(simple("latin", latin, charset="iso-8859-1")))
    deliver(md, bytes(simple("utf", utf, charset="utf-8")))
    raw = open(os.path.join(md, "new", os.listdir(
        os.path.join(md, "new"))[0]), "rb").read()
    assert b"=" in raw          # really quoted-printable on disk
    for subject, text in (("latin", latin), ("utf", utf)):
        r = run("show", "--maildir", md, id_of(md, subject))
        assert r.returncode == EX_OK, r.stderr
        assert r.stderr == b""
        head, body = r.stdout.decode().split("\n\n", 1)
        assert head == ("From: a@example.org\nTo: me@example.org\n"
                        "Date: Mon, 01 Jan 2024 10:00:00 +0000\n"
                        "Subject: %s" % subject)
        assert body == text


def test_rfc2047_subject_and_sender_decoded(md):
    m = simple("x", "body\n")
    del m["Subject"], m["From"]
    m["Subject"] = "=?utf-8?b?" + base64.b64encode(
        "Rapport d'été ✓".encode()).decode() + "?="
    m["From"] = "=?iso-8859-1?q?J=FCrgen_M=FCller?= <jm@example.org>"
    raw = m.as_bytes(policy=SMTP)
    assert b"=?utf-8?b?" in raw
    deliver(md, raw)
    (msg,) = listing(md)
    assert msg["subject"] == "Rapport d'été ✓"
    assert msg["from"] == "Jürgen Müller"
    assert msg["from_address"] == "jm@example.org"
    r = run("list", "--maildir", md)
    line = r.stdout.decode()
    assert "Jürgen Müller" in line and "Rapport d'été ✓" in line
    r = run("show", "--maildir", md, msg["id"])
    assert "From: Jürgen Müller <jm@example.org>\n" in r.stdout.decode()
    assert "Subject: Rapport d'été ✓\n" in r.stdout.decode()


def attachment_message(subject, parts, text="see attached\n"):
    """parts: list of (raw Content-Disposition/Type header lines, data)."""
    b = "==b0und4ry=="
    out = ["From: a@example.org", "To: me@example.org",
           "Subject: " + subject, "Date: Mon, 01 Jan 2024 10:00:00 +0000",
           "MIME-Version: 1.0",
           'Content-Type: multipart/mixed; boundary="%s"' % b, "",
           "--" + b, "Content-Type: text/plain; charset=utf-8", "", text]
    for headers, data in parts:
        enc = base64.encodebytes(data).decode()
        out += ["--" + b] + headers + [
            "Content-Transfer-Encoding: base64", "", enc]
    out += ["--" + b + "--", ""]
    return "\n".join(out).encode()


def test_base64_attachment_rfc2231_continuation_name(md, tmp_path):
    data = os.urandom(50000)
    data2 = b"second \x00\xff attachment"
    raw = attachment_message("=?utf-8?q?pi=C3=A8ces_jointes?=", [
        (["Content-Type: application/pdf",
          "Content-Disposition: attachment;",
          " filename*0*=utf-8''%C3%A9t%C3%A9%20rapport;",
          " filename*1*=%20final.pdf"], data),
        (["Content-Type: application/octet-stream;",
          ' name="=?utf-8?q?d=C3=A9j=C3=A0_vu=2Ebin?="',
          "Content-Disposition: attachment"], data2),
    ])
    deliver(md, raw)
    mid = id_of(md, "pièces jointes")
    (msg,) = listing(md)
    assert msg["attachments"] is True
    r = run("show", "--maildir", md, mid)
    assert r.returncode == EX_OK, r.stderr
    text = r.stdout.decode()
    assert body_of(r.stdout).startswith("see attached\n")
    assert ("    2  application/pdf  été rapport final.pdf  (50000 octets)"
            in text)
    assert ("    3  application/octet-stream  déjà vu.bin  (%d octets)"
            % len(data2) in text)
    out = tmp_path / "out"
    out.mkdir()
    r = run("save", "--maildir", md, "--dir", out, mid)
    assert r.returncode == EX_OK, r.stderr
    assert sorted(os.listdir(out)) == ["déjà vu.bin", "été rapport final.pdf"]
    assert (out / "été rapport final.pdf").read_bytes() == data
    assert (out / "déjà vu.bin").read_bytes() == data2
    assert r.stdout.decode() == ("part 2 saved as été rapport final.pdf\n"
                                 "part 3 saved as déjà vu.bin\n")
    # One part, to a file and to standard output.
    only = tmp_path / "only"
    only.mkdir()
    r = run("save", "--maildir", md, "--dir", only, "--part", "3", mid)
    assert r.returncode == EX_OK, r.stderr
    assert os.listdir(only) == ["déjà vu.bin"]
    r = run("save", "--maildir", md, "--part", "2", "--stdout", mid)
    assert r.returncode == EX_OK and r.stdout == data
    r = run("save", "--maildir", md, "--part", "1", "--stdout", mid)
    assert r.stdout == b"see attached\n"
    r = run("save", "--maildir", md, "--part", "9", "--stdout", mid)
    assert r.returncode == EX_NOMSG
    assert b"no part 9 (the message has parts 1 to 3)" in r.stderr


def test_nested_message_rfc822(md, tmp_path):
    inner = EmailMessage(policy=SMTP)
    inner["From"] = "=?utf-8?q?In=C3=A8s?= <ines@example.org>"
    inner["Subject"] = "inner subject"
    inner["Date"] = "Sun, 31 Dec 2023 08:00:00 +0000"
    inner.set_content("the inner text, été\n", charset="iso-8859-1",
                      cte="quoted-printable")
    inner.add_attachment(b"INNER-ATTACHMENT", maintype="application",
                         subtype="octet-stream", filename="inner.bin")
    outer = simple("outer", "the outer text\n")
    outer.add_attachment(inner)
    deliver(md, outer.as_bytes(policy=SMTP))
    mid = id_of(md, "outer")
    r = run("show", "--maildir", md, mid)
    assert r.returncode == EX_OK, r.stderr
    assert body_of(r.stdout) == (
        "the outer text\n"
        "\n"
        "---------- message (part 2) ----------\n"
        "From: Inès <ines@example.org>\n"
        "Date: Sun, 31 Dec 2023 08:00:00 +0000\n"
        "Subject: inner subject\n"
        "\n"
        "the inner text, été\n"
        "\n"
        "Attachments:\n"
        "    2  message/rfc822  -  (%d octets)\n"
        "    4  application/octet-stream  inner.bin  (16 octets)\n"
        % len(inner.as_bytes(policy=SMTP)))
    r = run("save", "--maildir", md, "--part", "4", "--stdout", mid)
    assert r.stdout == b"INNER-ATTACHMENT"
    out = tmp_path / "o"
    out.mkdir()
    r = run("save", "--maildir", md, "--dir", out, "--part", "2", mid)
    assert r.returncode == EX_OK, r.stderr
    assert os.listdir(out) == ["message-2.eml"]
    saved = (out / "message-2.eml").read_bytes()
    assert b"Subject: inner subject" in saved
    assert b"INNER-ATTACHMENT" not in saved     # base64 in the file
    assert base64.b64encode(b"INNER-ATTACHMENT") in saved


# ------------------------------------------------------------ HTML

HTML = ("<html><head><style>p { color: red }</style></head><body>"
        "<h1>Caf&eacute; news</h1><ul><li>one</li><li>two</li></ul>"
        "<p>Hello &amp; <b>w\u00f6rld</b>&#33;</p>"
        "<script>alert('x')</script></body></html>")


def html_message(md):
    m = simple("html only", "x")
    m.set_content(HTML, subtype="html", charset="utf-8",
                  cte="quoted-printable")
    deliver(md, m.as_bytes(policy=SMTP))
    return id_of(md, "html only")


def test_html_only_rendered_by_w3m(md):
    assert shutil.which("w3m"), "w3m is installed by scripts/install-deps"
    mid = html_message(md)
    r = run("show", "--maildir", md, mid)
    assert r.returncode == EX_OK, r.stderr
    assert r.stderr == b""
    body = body_of(r.stdout)
    want = subprocess.run(
        ["w3m", "-dump", "-T", "text/html", "-I", "UTF-8", "-O", "UTF-8",
         "-cols", "78"], input=HTML.encode(), stdout=subprocess.PIPE,
        check=True).stdout.decode()
    assert body == want
    assert "\u2022 one" in body and "Hello & w\u00f6rld!" in body
    assert "alert" not in body and "<b>" not in body


def test_html_only_tags_stripped_without_renderer(md, tmp_path):
    mid = html_message(md)
    empty = tmp_path / "bin"
    empty.mkdir()
    r = run("show", "--maildir", md, mid, env={"PATH": str(empty)})
    assert r.returncode == EX_OK, r.stderr
    assert body_of(r.stdout) == "Caf&eacute; news\none\ntwo\nHello & w\u00f6rld!\n"


def test_multipart_alternative_prefers_plain(md):
    m = simple("alt", "the plain version\n")
    m.add_alternative("<p>the <b>HTML</b> version</p>", subtype="html")
    deliver(md, m.as_bytes(policy=SMTP))
    r = run("show", "--maildir", md, id_of(md, "alt"))
    assert body_of(r.stdout) == "the plain version\n"
    (msg,) = listing(md)
    assert msg["attachments"] is False


# ------------------------------------------------------------ 20 MB

def test_large_attachment_bounded_memory(md, tmp_path):
    if harness.sanitizer_build():
        pytest.skip("memory is measured in the normal build only")
    data = os.urandom(20 * 1024 * 1024)
    raw = attachment_message("big", [(
        ["Content-Type: application/octet-stream",
         'Content-Disposition: attachment; filename="big.bin"'], data)])
    deliver(md, raw)
    mid = id_of(md, "big")
    out = tmp_path / "out"
    out.mkdir()
    # A fresh process measures only the peak of its own child.
    probe = ("import resource, subprocess, sys\n"
             "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
             "print(r.returncode, resource.getrusage("
             "resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    for args in (["save", "--maildir", md, "--dir", out, mid],
                 ["show", "--maildir", md, mid],
                 ["list", "--maildir", md]):
        p = subprocess.run([sys.executable, "-c", probe,
                            harness.postern_path()] + [str(a) for a in args],
                           stdout=subprocess.PIPE, check=True, timeout=120)
        rc, kib = map(int, p.stdout.split())
        assert rc == 0, args
        assert kib < 40 * 1024, "%s: peak RSS %d KiB" % (args[0], kib)
    assert (out / "big.bin").read_bytes() == data


# ------------------------------------------------------------ malformed

def test_missing_boundary(md):
    raw = (b"From: a@example.org\nSubject: noboundary\n"
           b"Date: Mon, 01 Jan 2024 10:00:00 +0000\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/mixed\n\n"
           b"--x\nContent-Type: text/plain\n\nhidden\n--x--\n")
    deliver(md, raw)
    r = run("show", "--maildir", md, id_of(md, "noboundary"))
    assert r.returncode == EX_OK
    assert b"warning: " in r.stderr and b"boundary" in r.stderr


def test_bad_base64_and_unknown_charset(md, tmp_path):
    good = base64.b64encode(b"payload bytes 0123456789").decode()
    broken = good[:8] + "!!*%" + good[8:16] + "\x01" + good[16:]
    raw = ("From: a@example.org\nSubject: broken\n"
           "Date: Mon, 01 Jan 2024 10:00:00 +0000\nMIME-Version: 1.0\n"
           'Content-Type: multipart/mixed; boundary="b"\n\n'
           "--b\nContent-Type: text/plain; charset=x-no-such-charset\n"
           "Content-Transfer-Encoding: 8bit\n\nna\u00efve text\n"
           "--b\nContent-Type: application/octet-stream\n"
           'Content-Disposition: attachment; filename="p.bin"\n'
           "Content-Transfer-Encoding: base64\n\n" + broken + "\n"
           "--b--\n").encode()
    deliver(md, raw)
    mid = id_of(md, "broken")
    r = run("show", "--maildir", md, mid)
    assert r.returncode == EX_OK
    assert body_of(r.stdout).startswith("na\u00efve text\n")
    err = r.stderr.decode()
    assert "unknown charset 'x-no-such-charset'" in err
    out = tmp_path / "o"
    out.mkdir()
    r = run("save", "--maildir", md, "--dir", out, mid)
    assert r.returncode == EX_OK, r.stderr
    assert "part 2: 5 octets that are not base64 skipped" in r.stderr.decode()
    assert (out / "p.bin").read_bytes() == b"payload bytes 0123456789"


def test_deep_nesting(md):
    depth = 200
    lines = ["From: a@example.org", "Subject: deep",
             "Date: Mon, 01 Jan 2024 10:00:00 +0000", "MIME-Version: 1.0"]
    for i in range(depth):
        lines += ['Content-Type: multipart/mixed; boundary="b%d"' % i, "",
                  "--b%d" % i]
    lines += ["Content-Type: text/plain", "", "deepest text"]
    for i in reversed(range(depth)):
        lines += ["--b%d--" % i]
    deliver(md, ("\n".join(lines) + "\n").encode())
    start = time.monotonic()
    mid = id_of(md, "deep")
    r = run("show", "--maildir", md, mid, timeout=30)
    assert r.returncode == EX_OK
    assert b"nested" in r.stderr and b"warning" in r.stderr
    assert b"deepest text" not in r.stdout
    assert time.monotonic() - start < 30


def test_header_folded_10000_times(md):
    words = ["w%d" % i for i in range(10000)]
    raw = ("From: a@example.org\nDate: Mon, 01 Jan 2024 10:00:00 +0000\n"
           "Subject: start\n " + "\n ".join(words) +
           "\n\nbody after the long header\n").encode()
    deliver(md, raw)
    r = run("list", "--maildir", md, "--json")
    assert r.returncode == EX_OK
    assert b"Subject is" in r.stderr and b"cut to 16384" in r.stderr
    (msg,) = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert msg["subject"].startswith("start w0 w1 w2 ")
    assert len(msg["subject"].encode()) <= 16384
    r = run("show", "--maildir", md, msg["id"])
    assert r.returncode == EX_OK
    assert body_of(r.stdout) == "body after the long header\n"


def test_garbage_never_crashes(md):
    blobs = [b"", b"\n\n\n", b"\x00" * 100, b"Subject: x\n\n" + bytes(range(256)),
             b"Content-Type: multipart/mixed; boundary=\"\"\n\n--\n--\n",
             b"Content-Type: message/rfc822\n\n" * 500,
             b"From: \x1b[31m<evil@x>\nSubject: \x1b]0;title\x07\n\n\x1b[2J"]
    for b in blobs:
        deliver(md, b)
    for m in listing(md):
        r = run("show", "--maildir", md, m["id"], timeout=30)
        assert r.returncode == EX_OK, r.stderr
        assert b"\x1b" not in r.stdout and b"\x07" not in r.stdout


# ------------------------------------------------------------ save safety

def test_unsafe_names_saved_inside_the_directory(md, tmp_path):
    names = ["../../etc/passwd", "..", ".hidden", "/abs/path.txt",
             "back\\slash", "\x1b[31mred\x07.txt", "  . .", "ok.txt"]
    parts = []
    for i, n in enumerate(names):
        # RFC 2231 (no quoted-string, where a backslash would quote).
        enc = "".join("%%%02X" % c for c in n.encode())
        parts.append((["Content-Type: application/octet-stream",
                       "Content-Disposition: attachment; filename*=utf-8''"
                       + enc], b"data %d" % i))
    deliver(md, attachment_message("names", parts))
    mid = id_of(md, "names")
    target = tmp_path / "in" / "target"
    target.mkdir(parents=True)
    before = sorted(os.listdir(tmp_path))
    r = run("save", "--maildir", md, "--dir", target, mid)
    assert r.returncode == EX_OK, r.stderr
    assert sorted(os.listdir(tmp_path)) == before
    assert os.listdir(tmp_path / "in") == ["target"]
    got = {f: (target / f).read_bytes() for f in os.listdir(target)}
    assert got == {
        "_.._etc_passwd": b"data 0",
        "part-3": b"data 1",
        "hidden": b"data 2",
        "_abs_path.txt": b"data 3",
        "back_slash": b"data 4",
        "_[31mred_.txt": b"data 5",
        "part-8": b"data 6",
        "ok.txt": b"data 7",
    }
    for f in os.listdir(target):
        assert not os.path.islink(target / f)
        assert os.stat(target / f).st_mode & 0o777 == 0o600


def test_duplicates_numbered_never_overwritten(md, tmp_path):
    parts = [(["Content-Type: application/pdf",
               'Content-Disposition: attachment; filename="report.pdf"'],
              b"first"),
             (["Content-Type: application/pdf",
               'Content-Disposition: attachment; filename="report.pdf"'],
              b"second"),
             (["Content-Type: text/plain",
               'Content-Disposition: attachment; filename="notes"'],
              b"n")]
    deliver(md, attachment_message("dups", parts))
    mid = id_of(md, "dups")
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes").write_bytes(b"mine")
    os.symlink("/etc/hostname", out / "notes (1)")
    r = run("save", "--maildir", md, "--dir", out, mid)
    assert r.returncode == EX_OK, r.stderr
    r = run("save", "--maildir", md, "--dir", out, "--part", "2", mid)
    assert r.returncode == EX_OK, r.stderr
    got = {f: (out / f).read_bytes() for f in os.listdir(out)
           if not os.path.islink(out / f)}
    assert got == {"report.pdf": b"first", "report (1).pdf": b"second",
                   "report (2).pdf": b"first", "notes": b"mine",
                   "notes (2)": b"n"}
    assert os.readlink(out / "notes (1)") == "/etc/hostname"


# ------------------------------------------------------------ Maildir changes

def test_mark_read_and_unread(md):
    base = deliver(md, bytes(simple("m", "x\n")))
    other = deliver(md, bytes(simple("o", "y\n")), sub="cur", info=":2,FR")
    mid = id_of(md, "m")
    assert listing(md, "--unread")[0]["id"] == mid or \
        len(listing(md, "--unread")) == 2
    r = run("mark", "--maildir", md, "read", mid)
    assert r.returncode == EX_OK, r.stderr
    assert os.listdir(os.path.join(md, "new")) == []
    assert sorted(os.listdir(os.path.join(md, "cur"))) == sorted(
        [base + ":2,S", other + ":2,FR"])
    assert id_of(md, "m") == mid            # the id survives
    assert [m["subject"] for m in listing(md, "--unread")] == ["o"]
    oid = id_of(md, "o")
    r = run("mark", "--maildir", md, "read", oid)
    assert other + ":2,FRS" in os.listdir(os.path.join(md, "cur"))
    r = run("mark", "--maildir", md, "unread", mid, oid)
    assert r.returncode == EX_OK, r.stderr
    assert sorted(os.listdir(os.path.join(md, "cur"))) == sorted(
        [base + ":2,", other + ":2,FR"])
    assert len(listing(md, "--unread")) == 2
    r = run("list", "--maildir", md)
    assert r.stdout.decode().count("  N---  ") == 2


def test_delete_to_trash_purge_and_move(md):
    raw = bytes(simple("d", "to delete\n"))
    base = deliver(md, raw)
    deliver(md, bytes(simple("k", "keep\n")))
    mid = id_of(md, "d")
    r = run("delete", "--maildir", md, mid)
    assert r.returncode == EX_OK, r.stderr
    trash = os.path.join(md, ".Trash")
    assert sorted(os.listdir(trash)) == ["cur", "maildirfolder", "new", "tmp"]
    assert open(os.path.join(trash, "new", base), "rb").read() == raw
    assert [m["subject"] for m in listing(md)] == ["k"]
    r = run("list", "--maildir", md, "--folder", "Trash", "--json")
    assert [json.loads(x)["id"] for x in r.stdout.decode().splitlines()] \
        == [mid]
    # Deleting from the trash needs --purge.
    r = run("delete", "--maildir", md, "--folder", "Trash", mid)
    assert r.returncode == EX_FAIL and b"--purge" in r.stderr
    # Back, then to a folder, then purged there.
    r = run("move", "--maildir", md, "--folder", "Trash", mid, "INBOX")
    assert r.returncode == EX_OK, r.stderr
    assert open(os.path.join(md, "new", base), "rb").read() == raw
    r = run("move", "--maildir", md, mid, "Archive.2024")
    assert r.returncode == EX_OK, r.stderr
    assert os.listdir(os.path.join(md, ".Archive.2024", "new")) == [base]
    r = run("move", "--maildir", md, "--folder", "Archive.2024", mid,
            "Archive.2024")
    assert r.returncode == EX_FAIL
    r = run("delete", "--maildir", md, "--folder", "Archive.2024",
            "--purge", mid)
    assert r.returncode == EX_OK, r.stderr
    assert os.listdir(os.path.join(md, ".Archive.2024", "new")) == []
    for bad in ("../x", ".hidden", "a..b", "a/b", ""):
        r = run("move", "--maildir", md, id_of(md, "k"), bad)
        assert r.returncode == EX_USAGE, bad
    assert [m["subject"] for m in listing(md)] == ["k"]


def test_unknown_ids_change_nothing(md):
    deliver(md, bytes(simple("a", "x\n")))
    mid = id_of(md, "a")
    before = sorted(os.listdir(os.path.join(md, "new")))
    r = run("delete", "--maildir", md, mid, "ffffffffff")
    assert r.returncode == EX_NOMSG
    assert b"no message ffffffffff" in r.stderr
    assert sorted(os.listdir(os.path.join(md, "new"))) == before
    r = run("show", "--maildir", md, "zz")
    assert r.returncode == EX_NOMSG
    r = run("show", "--maildir", md)
    assert r.returncode == EX_USAGE


def test_ambiguous_prefix_and_long_ids(md):
    for i in range(40):
        deliver(md, bytes(simple("s%d" % i, "x\n")))
    msgs = listing(md)
    ids = [m["id"] for m in msgs]
    assert len(set(ids)) == 40
    assert all(len(i) >= 8 for i in ids)
    first = {}
    for i in ids:
        first.setdefault(i[0], []).append(i)
    shared = [v for v in first.values() if len(v) > 1][0]
    r = run("show", "--maildir", md, shared[0][0])
    assert r.returncode == EX_NOMSG and b"ambiguous" in r.stderr
    r = run("show", "--maildir", md, shared[0].upper())
    assert r.returncode == EX_OK


# ------------------------------------------------------------ export

def test_export_mbox_round_trip(md, tmp_path):
    bodies = [b"From: a@example.org\nSubject: one\n"
              b"Date: Mon, 01 Jan 2024 10:00:00 +0000\n\n"
              b"From me, with love\n>From quoted\n>>From twice\nFromage\n",
              b"From: =?utf-8?q?B=C3=A9a?= <bea@example.org>\n"
              b"Subject: two\nDate: Tue, 02 Jan 2024 10:00:00 +0000\n\n"
              b"line\n\nFrom \n\n",
              b"Subject: three\nDate: Wed, 03 Jan 2024 10:00:00 +0000\n"
              b"\r\ncrlf\r\n"]
    for b in bodies:
        deliver(md, b)
    out = tmp_path / "x.mbox"
    r = run("export", "--maildir", md, "-o", out)
    assert r.returncode == EX_OK, r.stderr
    data = out.read_bytes()
    assert data.startswith(b"From a@example.org Mon Jan  1 10:00:00 2024\n")
    assert b"\n>From me, with love\n>>From quoted\n>>>From twice\n" \
        b"Fromage\n\n" in data
    assert b"\nFrom bea@example.org Tue Jan  2 10:00:00 2024\n" in data
    assert b"\nFrom MAILER-DAEMON Wed Jan  3 10:00:00 2024\n" in data
    assert os.stat(out).st_mode & 0o777 == 0o600
    # Read back: the same octets, in date order.
    back = [json.loads(x) for x in run(
        "list", "--mbox", out, "--json").stdout.decode().splitlines()]
    assert [m["subject"] for m in back] == ["one", "two", "three"]
    for m, want in zip(back, bodies):
        r = run("show", "--mbox", out, "--raw", m["id"])
        assert r.returncode == EX_OK, r.stderr
        assert r.stdout == want
    # An existing file is never overwritten without --force.
    r = run("export", "--maildir", md, "-o", out, id_of(md, "two"))
    assert r.returncode == EX_FAIL and b"--force" in r.stderr
    assert out.read_bytes() == data
    r = run("export", "--maildir", md, "-o", out, "--force",
            id_of(md, "two"))
    assert r.returncode == EX_OK, r.stderr
    assert out.read_bytes().startswith(b"From bea@example.org ")
    assert out.read_bytes().count(b"\nSubject: ") == 1
    assert sorted(os.listdir(tmp_path)) == ["Mail", "x.mbox"]
    # Filters select; standard output without -o.
    r = run("export", "--maildir", md, "--subject", "THREE")
    assert r.stdout == (b"From MAILER-DAEMON Wed Jan  3 10:00:00 2024\n" +
                        bodies[2] + b"\n")


def test_mbox_is_read_only(md, tmp_path):
    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(b"From x Mon Jan  1 00:00:00 2024\nSubject: m1\n\n"
                     b">From here\nbody\n\nFrom y Mon Jan  1 00:00:00 2024\n"
                     b"Subject: m2\nStatus: RO\n\nsecond\n")
    before = mbox.read_bytes()
    msgs = [json.loads(x) for x in run(
        "list", "--mbox", mbox, "--json").stdout.decode().splitlines()]
    assert [(m["subject"], m["unread"]) for m in msgs] == \
        [("m1", True), ("m2", False)]
    r = run("show", "--mbox", mbox, msgs[0]["id"])
    assert body_of(r.stdout) == "From here\nbody\n"
    r = run("mark", "--mbox", mbox, "read", msgs[0]["id"])
    assert r.returncode == EX_FAIL
    r = run("delete", "--mbox", mbox, "--purge", msgs[0]["id"])
    assert r.returncode == EX_FAIL
    assert mbox.read_bytes() == before
    (tmp_path / "bad.mbox").write_bytes(b"Subject: not an mbox\n\n")
    r = run("list", "--mbox", tmp_path / "bad.mbox")
    assert r.returncode == EX_FAIL and b"not an mbox" in r.stderr


# ------------------------------------------------------------ list

def test_list_filters_sorting_and_json(md):
    specs = [("c-third", "Fri, 05 Jan 2024 09:00:00 +0000", "carol@x.org"),
             ("a-first", "Mon, 01 Jan 2024 09:00:00 +0000", "alice@x.org"),
             ("b-second", "Wed, 03 Jan 2024 09:00:00 +0000", "Bob <bob@x.org>")]
    for subject, date, sender in specs:
        deliver(md, bytes(simple(subject, "t\n", date=date, sender=sender)))
    deliver(md, attachment_message("with-att", [(
        ["Content-Type: image/png",
         'Content-Disposition: attachment; filename="i.png"'], b"png")]))
    deliver(md, bytes(simple("seen", "t\n",
                             date="Tue, 02 Jan 2024 09:00:00 +0000")),
            sub="cur", info=":2,S")
    msgs = listing(md)
    assert [m["subject"] for m in msgs] == [
        "a-first", "with-att", "seen", "b-second", "c-third"]
    for m in msgs:
        assert set(m) == {"id", "date", "timestamp", "from", "from_address",
                          "subject", "size", "unread", "attachments",
                          "encrypted", "signed"}
    assert msgs[0]["date"] == "2024-01-01T09:00:00Z"
    assert msgs[0]["timestamp"] == 1704099600
    assert msgs[3]["from"] == "Bob" and msgs[3]["from_address"] == "bob@x.org"
    sub = lambda *a: [m["subject"] for m in listing(md, *a)]  # noqa: E731
    assert sub("--from", "BOB") == ["b-second"]
    assert sub("--from", "x.org") == ["a-first", "b-second", "c-third"]
    assert sub("--subject", "IRS") == ["a-first"]
    assert sub("--attachments") == ["with-att"]
    assert "seen" not in sub("--unread") and len(sub("--unread")) == 4
    env_tz = {"TZ": "UTC"}
    r = run("list", "--maildir", md, "--json", "--since", "2024-01-02",
            "--before", "2024-01-05", env=env_tz)
    assert [json.loads(x)["subject"] for x in r.stdout.decode().splitlines()] \
        == ["seen", "b-second"]
    r = run("list", "--maildir", md, env=env_tz)
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 5
    first = lines[0].split()
    assert first[0] == msgs[0]["id"]
    assert first[1:4] == ["2024-01-01", "09:00", "N---"]
    assert first[4] == str(msgs[0]["size"])
    assert "-A--" not in lines[0] and "NA--" in lines[1]
    assert lines[2].split()[3] == "----"
    for bad in (["--since", "2024-13-01"], ["--before", "2024-02-30"],
                ["--since", "yesterday"], ["--json", "--raw"],
                ["--part", "1"], ["--maildir", md, "--mbox", "/x"]):
        r = run("list", "--maildir", md, *bad)
        assert r.returncode == EX_USAGE, bad
        assert r.stderr.count(b"\n") == 1


def test_encrypted_and_signed_markers(md):
    enc = (b"From: a@example.org\nSubject: enc\nMIME-Version: 1.0\n"
           b"Date: Mon, 01 Jan 2024 10:00:00 +0000\n"
           b'Content-Type: multipart/encrypted; protocol="application/'
           b'pgp-encrypted"; boundary="e"\n\n--e\n'
           b"Content-Type: application/pgp-encrypted\n\nVersion: 1\n--e\n"
           b"Content-Type: application/octet-stream\n\n-----BEGIN PGP "
           b"MESSAGE-----\nxx\n-----END PGP MESSAGE-----\n--e--\n")
    sig = (b"From: a@example.org\nSubject: sig\nMIME-Version: 1.0\n"
           b"Date: Tue, 02 Jan 2024 10:00:00 +0000\n"
           b'Content-Type: multipart/signed; protocol="application/'
           b'pgp-signature"; micalg=pgp-sha256; boundary="s"\n\n--s\n'
           b"Content-Type: text/plain\n\nsigned text\n--s\n"
           b"Content-Type: application/pgp-signature\n\nSIG\n--s--\n")
    smime = (b"From: a@example.org\nSubject: smime\nMIME-Version: 1.0\n"
             b"Date: Wed, 03 Jan 2024 10:00:00 +0000\n"
             b"Content-Type: application/pkcs7-mime; smime-type="
             b"enveloped-data; name=smime.p7m\n"
             b"Content-Transfer-Encoding: base64\n\nAAAA\n")
    for raw in (enc, sig, smime):
        deliver(md, raw)
    got = {m["subject"]: (m["encrypted"], m["signed"], m["attachments"])
           for m in listing(md)}
    assert got == {"enc": (True, False, False), "sig": (False, True, False),
                   "smime": (True, False, False)}
    r = run("show", "--maildir", md, id_of(md, "sig"))
    assert body_of(r.stdout) == "signed text\n"
    r = run("show", "--maildir", md, id_of(md, "enc"))
    assert "[encrypted part: not decrypted]" in body_of(r.stdout)
    r = run("list", "--maildir", md)
    assert "  N-E-  " in r.stdout.decode() and "  N--S  " in r.stdout.decode()


def test_account_from_fetch_conf(md, tmp_path):
    deliver(md, bytes(simple("via account", "x\n")))
    conf = tmp_path / "fetch.conf"
    conf.write_text("account other\nhost = h\nuser = u\n"
                    "password_file = /nonexistent\nmaildir = %s/none\n"
                    "account work\nhost = h\nuser = u\n"
                    "password_file = /nonexistent\nmaildir = %s\n"
                    % (tmp_path, md))
    r = run("list", "-f", conf, "work")
    assert r.returncode == EX_OK, r.stderr
    assert "via account" in r.stdout.decode()
    mid = r.stdout.decode().split()[0]
    r = run("show", "-f", conf, "-a", "work", mid)
    assert r.returncode == EX_OK and b"Subject: via account" in r.stdout
    r = run("list", "-f", conf)          # the first account: no Maildir
    assert r.returncode == EX_FAIL
    r = run("list", "-f", conf, "nosuch")
    assert r.returncode == EX_USAGE
    r = run("list", env={"XDG_CONFIG_HOME": str(tmp_path / "none"),
                         "HOME": str(tmp_path)})
    assert r.returncode == EX_USAGE


# ------------------------------------------------------------ pager

def test_pager_on_a_terminal_only(md, tmp_path):
    deliver(md, bytes(simple("paged", "paged text\n")))
    mid = id_of(md, "paged")
    log = tmp_path / "pager.out"
    pager = tmp_path / "mypager"
    pager.write_text("#!/bin/sh\necho \"args:$*\" > %s\ncat >> %s\n"
                     % (log, log))
    pager.chmod(0o755)
    # Not a terminal: no pager.
    r = run("show", "--maildir", md, mid, env={"PAGER": str(pager)})
    assert b"paged text" in r.stdout and not log.exists()
    # A terminal: the pager, its words split on blanks, no shell.
    master, slave = pty.openpty()
    e = dict(os.environ, PAGER="%s -x  'y;z'" % pager)
    p = subprocess.Popen([harness.postern_path(), "show", "--maildir", md,
                          mid], stdin=subprocess.DEVNULL, stdout=slave,
                         stderr=subprocess.PIPE, env=e)
    os.close(slave)
    deadline = time.monotonic() + 30
    while p.poll() is None and time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                os.read(master, 4096)
            except OSError:
                break
    p.wait(timeout=30)
    os.close(master)
    assert p.returncode == EX_OK, p.stderr.read()
    text = log.read_text()
    assert text.startswith("args:-x 'y;z'\n")
    assert "Subject: paged\n\npaged text\n" in text
    # A pager that is not installed: the text goes to the terminal.
    master, slave = pty.openpty()
    e = dict(os.environ, PAGER="no-such-pager-here")
    p = subprocess.Popen([harness.postern_path(), "show", "--maildir", md,
                          mid], stdin=subprocess.DEVNULL, stdout=slave,
                         stderr=subprocess.PIPE, env=e)
    os.close(slave)
    got = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
        elif p.poll() is not None:
            break
    p.wait(timeout=30)
    os.close(master)
    assert p.returncode == EX_OK
    assert b"paged text" in got



# ------------------------------------------------------------ end to end

def test_fetch_from_posternd_then_read_offline(tmp_path, make_server):
    """postern fetch from a live posternd into a Maildir, then list,
    show and save through the account's name in the same fetch.conf."""
    pdf = os.urandom(3000)
    m = simple("=?utf-8?q?r=C3=A9sum=C3=A9?=", "Bonjour \u00e0 tous\n",
               charset="iso-8859-1")
    m.add_attachment(pdf, maintype="application", subtype="pdf",
                     filename="cv.pdf")
    srv = make_server(start=False)
    srv.ensure_maildir("alice")
    srv.add_message("alice", m.as_bytes(policy=SMTP))
    srv.start()
    home = tmp_path / "home"
    home.mkdir()
    pw = home / "pw"
    pw.write_text(harness.DEFAULT_USERS["alice"] + "\n")
    pw.chmod(0o600)
    conf = home / "fetch.conf"
    conf.write_text("account acct\nhost = 127.0.0.1\nport = %d\n"
                    "tls = none\ninsecure = yes\nuser = alice\n"
                    "password_file = %s\nmaildir = %s\ntimeout = 10s\n"
                    % (srv.port, pw, home / "Mail"))
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / "cfg"),
           "XDG_STATE_HOME": str(home / "state")}
    r = run("fetch", "-f", conf, env=env, timeout=120)
    assert r.returncode == EX_OK, r.stderr
    r = run("list", "-f", conf, "acct", "--json", env=env)
    assert r.returncode == EX_OK, r.stderr
    (msg,) = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert msg["subject"] == "r\u00e9sum\u00e9"
    assert msg["unread"] and msg["attachments"]
    r = run("show", "-f", conf, "-a", "acct", msg["id"], env=env)
    assert r.returncode == EX_OK, r.stderr
    assert body_of(r.stdout).startswith("Bonjour \u00e0 tous\n")
    out = tmp_path / "saved"
    out.mkdir()
    r = run("save", "-f", conf, "-a", "acct", "--dir", out, msg["id"],
            env=env)
    assert r.returncode == EX_OK, r.stderr
    assert (out / "cv.pdf").read_bytes() == pdf
    # The default account is the first of the default fetch.conf.
    (home / "cfg" / "postern").mkdir(parents=True)
    shutil.copy(conf, home / "cfg" / "postern" / "fetch.conf")
    r = run("mark", "read", msg["id"], env=env)
    assert r.returncode == EX_OK, r.stderr
    assert [json.loads(x)["unread"] for x in run(
        "list", "--json", env=env).stdout.decode().splitlines()] == [False]


def test_all_headers_decoded_and_bounded(md):
    extra = "".join("X-Filler-%d: v%d\n" % (i, i) for i in range(1500))
    raw = ("From: a@example.org\nSubject: =?utf-8?q?h=C3=A9?=\n"
           "X-Custom: =?iso-8859-1?q?=E9t=E9?= ok\n" + extra +
           "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
           "\nbody\n").encode()
    deliver(md, raw)
    mid = listing(md)[0]["id"]
    r = run("show", "--maildir", md, "--headers", mid)
    assert r.returncode == EX_OK
    head, body = r.stdout.decode().split("\n\n", 1)
    lines = head.split("\n")
    assert lines[:3] == ["From: a@example.org", "Subject: h\u00e9",
                         "X-Custom: \u00e9t\u00e9 ok"]
    assert len(lines) == 1000
    assert lines[-1] == "X-Filler-996: v996"
    assert b"more than 1000 header fields" in r.stderr
    assert body == "body\n"
    # Few fields: the Content-* ones of the message are there too.
    deliver(md, bytes(simple("few", "t\n")))
    r = run("show", "--maildir", md, "--headers", id_of(md, "few"))
    head = r.stdout.decode().split("\n\n", 1)[0]
    assert "\nContent-Type: text/plain; charset=\"utf-8\"" in head
    assert "\nContent-Transfer-Encoding: quoted-printable" in head
    assert r.stderr == b""


def test_mbox_waits_for_a_writers_lock(tmp_path):
    import fcntl
    mbox = tmp_path / "locked.mbox"
    mbox.write_bytes(b"From x Mon Jan  1 00:00:00 2024\nSubject: l\n\nbody\n")
    with open(mbox, "r+b") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        p = subprocess.Popen([harness.postern_path(), "list", "--mbox",
                              mbox], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL)
        time.sleep(1.0)
        assert p.poll() is None         # waiting for the lock
        fcntl.lockf(f, fcntl.LOCK_UN)
        out, err = p.communicate(timeout=30)
    harness.check_sanitizer_output(err, "postern list --mbox")
    assert p.returncode == EX_OK, err
    assert b"  l\n" in out


def test_unusual_sender_addresses(md):
    deliver(md, "From: j\u00fcrgen@ex\u00e4mple.org\nSubject: eai\n"
            "Date: Mon, 01 Jan 2024 10:00:00 +0000\n\nt\n".encode())
    deliver(md, b"From: \"a b\"@example.org\nSubject: quoted\n"
            b"Date: Tue, 02 Jan 2024 10:00:00 +0000\n\nt\n")
    msgs = listing(md)
    assert [(m["subject"], m["from_address"]) for m in msgs] == [
        ("eai", None), ("quoted", None)]
    r = run("export", "--maildir", md)
    assert r.returncode == EX_OK, r.stderr
    assert r.stdout.startswith(b"From MAILER-DAEMON Mon Jan  1 10:00:00 2024\n")
    assert b"\nFrom MAILER-DAEMON Tue Jan  2 10:00:00 2024\n" in r.stdout
