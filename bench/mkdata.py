#!/usr/bin/env python3
"""mkdata.py: writes the benchmark's mailboxes and user databases.

Deterministic: the same seed and sizes give the same bytes.  Messages
look like real mail: Received chains, MIME multipart/alternative and
multipart/mixed parts, base64 attachments, quoted-printable bodies, and
lines starting with '.' (a lone "." too), stored with LF line ends as
Maildir delivery agents write them; the bulk mailbox also exists with
CRLF line ends, as posternd's LMTP stores mail (its wire form before
byte-stuffing).  File names carry S= and W= (stored and wire size), as
Dovecot's own delivery writes them, so that Dovecot gets its fastest
path.

Layout under OUT:
  mail/<user>/{cur,new,tmp}   Maildirs, messages in new/
  users.postern               passwd-file for posternd
  users.dovecot               passwd-file for Dovecot (same users)
  ceiling.bin                 the bulk mailbox's messages in one file
  manifest.txt                users, counts and octets; written last

Users (the password of NAME is "pw-NAME"):
  s0000..         storm users, {PLAIN}
  bulk            the bulk mailbox
  bulkcrlf        the same messages with CRLF line ends
  big             the big mailbox
  l0000..         login-storm users, yescrypt (hashed by `postern user
                  add`, the same hash given to Dovecot as {CRYPT})
"""

import argparse
import base64
import os
import random
import shutil
import subprocess
import sys
import tempfile

WORDS = """the of and to a in is it you that he was for on are with as
his they be at one have this from or had by hot word but what some we can
out other were all there when up use your how said an each she which do
their time if will way about many then them write would like so these her
long make thing see him two has look more day could go come did number
sound no most people my over know water than call first who may down side
been now find any new work part take get place made live where after back
little only round man year came show every good me give our under name
very through just form sentence great think say help low line differ turn
cause much mean before move right boy old too same tell does set three want
air well also play small end put home read hand port large spell add even
land here must big high such follow act why ask men change went light kind
off need house picture try us again animal point mother world near build
self earth father invoice meeting schedule budget report server mailbox
quarterly delivery attached please review regards thanks tomorrow agenda
project deadline customer account password update holiday office""".split()

DOT_LINES = [".", "..", "...", ". leading dot", ".signature follows",
             ".. double", ".\t", ". ", ".-- end of quote"]

DOMAINS = ["example.org", "example.com", "example.net", "mail.example.org",
           "lists.example.com"]
NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace",
         "heidi", "ivan", "judy", "mallory", "oscar", "peggy", "trent"]


def para(rng, nwords):
    words = [rng.choice(WORDS) for _ in range(nwords)]
    words[0] = words[0].capitalize()
    lines, cur = [], ""
    for w in words:
        if len(cur) + len(w) + 1 > 72:
            lines.append(cur)
            cur = w
        else:
            cur = w if not cur else cur + " " + w
    lines.append(cur + ".")
    return "\n".join(lines) + "\n"


class Pool:
    """Paragraphs made once and reused, so generation stays fast."""

    def __init__(self, rng, n=3000):
        self.paras = []
        for i in range(n):
            p = para(rng, rng.randint(15, 120))
            if i % 7 == 0:
                # A paragraph with lines that must be byte-stuffed.
                p = p + rng.choice(DOT_LINES) + "\n" + para(rng, 12)
            if i % 11 == 0:
                p = "> " + p.replace("\n", "\n> ").rstrip("> ") + "\n"
            self.paras.append(p)

    def text(self, rng, size):
        out, n = [], 0
        while n < size:
            p = rng.choice(self.paras)
            out.append(p)
            out.append("\n")
            n += len(p) + 1
        return "".join(out)


def headers(rng, user, n, subject_extra=""):
    frm = "%s@%s" % (rng.choice(NAMES), rng.choice(DOMAINS))
    day = 1 + n % 28
    hh, mm, ss = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    date = "Mon, %02d Jan 2024 %02d:%02d:%02d +0000" % (day, hh, mm, ss)
    qid = "%08X%04X" % (rng.getrandbits(32), n & 0xFFFF)
    h = [
        "Return-Path: <%s>" % frm,
        "Delivered-To: %s@example.org" % user,
        "Received: from mx1.example.org (mx1.example.org [192.0.2.10])\n"
        "\tby mail.example.org (Postfix) with ESMTPS id %s\n"
        "\tfor <%s@example.org>; %s" % (qid, user, date),
        "Received: from client.example.net (unknown [198.51.100.%d])\n"
        "\tby mx1.example.org (Postfix) with ESMTPSA id %s;\n\t%s"
        % (rng.randint(1, 254), qid[::-1], date),
        "Date: %s" % date,
        "From: %s <%s>" % (frm.split("@")[0].capitalize(), frm),
        "To: %s@example.org" % user,
        "Subject: %s %s%s" % (rng.choice(WORDS).capitalize(),
                              " ".join(rng.choice(WORDS) for _ in range(4)),
                              subject_extra),
        "Message-ID: <%s.%d.%s@%s>" % (qid, n, user, rng.choice(DOMAINS)),
        "MIME-Version: 1.0",
    ]
    if n % 3 == 0:
        h.append("X-Mailer: Example Mail 4.%d" % (n % 10))
    return "\n".join(h) + "\n"


def b64(rng, nbytes):
    return base64.encodebytes(rng.randbytes(nbytes)).decode("ascii")


def message(rng, pool, user, n, size):
    """A message of about size octets, one of four shapes."""
    kind = n % 4
    hdr = headers(rng, user, n)
    bnd = "=_bench_%08x" % rng.getrandbits(32)
    body_size = max(200, size - len(hdr) - 120)
    if kind == 0:
        return (hdr + "Content-Type: text/plain; charset=utf-8\n"
                "Content-Transfer-Encoding: 8bit\n\n"
                + pool.text(rng, body_size))
    if kind == 1:
        t = pool.text(rng, body_size // 2)
        html = "<html><body>\n" + "".join(
            "<p>%s</p>\n" % p.strip() for p in t.split("\n\n") if p) + \
            "</body></html>\n"
        return (hdr + 'Content-Type: multipart/alternative; boundary="%s"\n'
                "\nThis is a multi-part message in MIME format.\n\n"
                "--%s\nContent-Type: text/plain; charset=utf-8\n"
                "Content-Transfer-Encoding: 8bit\n\n%s\n"
                "--%s\nContent-Type: text/html; charset=utf-8\n"
                "Content-Transfer-Encoding: 8bit\n\n%s\n--%s--\n"
                % (bnd, bnd, t, bnd, html[:body_size // 2], bnd))
    if kind == 2:
        t = pool.text(rng, body_size // 3)
        att = b64(rng, max(64, (body_size * 2 // 3) * 3 // 4))
        return (hdr + 'Content-Type: multipart/mixed; boundary="%s"\n\n'
                "--%s\nContent-Type: text/plain; charset=utf-8\n\n%s\n"
                "--%s\nContent-Type: application/pdf; name=\"doc%d.pdf\"\n"
                "Content-Disposition: attachment; filename=\"doc%d.pdf\"\n"
                "Content-Transfer-Encoding: base64\n\n%s\n--%s--\n"
                % (bnd, bnd, t, bnd, n, n, att, bnd))
    t = pool.text(rng, body_size).replace("the ", "the=20\n")
    return (hdr + "Content-Type: text/plain; charset=iso-8859-1\n"
            "Content-Transfer-Encoding: quoted-printable\n\n" + t)


def attachment_message(rng, pool, user, n, size):
    """A message of about size octets, mostly one base64 attachment."""
    hdr = headers(rng, user, n, " (attachment)")
    bnd = "=_bench_%08x" % rng.getrandbits(32)
    t = pool.text(rng, 600)
    raw = max(64, (size - len(hdr) - len(t) - 400) * 57 // 77)
    return (hdr + 'Content-Type: multipart/mixed; boundary="%s"\n\n'
            "--%s\nContent-Type: text/plain; charset=utf-8\n\n%s\n"
            "--%s\nContent-Type: application/octet-stream; "
            "name=\"data%d.bin\"\nContent-Transfer-Encoding: base64\n\n%s\n"
            "--%s--\n" % (bnd, bnd, t, bnd, n, b64(rng, raw), bnd))


class Maildir:
    def __init__(self, root, user):
        self.path = os.path.join(root, user)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.path, sub), exist_ok=True)
        self.n = 0
        self.octets = 0
        self.wire = 0

    def add(self, text, stamp, crlf=False):
        data = text.encode("utf-8")
        if crlf:
            # As posternd's LMTP stores a message: its wire form
            # before byte-stuffing.
            data = data.replace(b"\n", b"\r\n")
            wire = len(data)
        else:
            wire = len(data) + data.count(b"\n")
        name = "%d.M%06dP4242Q%d.bench,S=%d,W=%d" % (
            stamp, self.n % 1000000, self.n, len(data), wire)
        with open(os.path.join(self.path, "new", name), "wb") as f:
            f.write(data)
        self.n += 1
        self.octets += len(data)
        self.wire += wire
        return data


def yescrypt_hashes(postern, names):
    """{YESCRYPT} hashes of "pw-NAME", made by `postern user add`."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "users")
        for name in names:
            subprocess.run([postern, "user", "add", "--db", db, "--scheme",
                            "yescrypt", name], input=("pw-%s\n" % name)
                           .encode(), check=True, stdout=subprocess.DEVNULL)
        with open(db) as f:
            for line in f:
                name, _, rest = line.rstrip("\n").partition(":")
                if name in names:
                    out[name] = rest.split(":")[0]
    missing = [n for n in names if n not in out]
    if missing:
        sys.exit("mkdata: no hash for %s" % missing[0])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--storm-users", type=int, default=1000)
    ap.add_argument("--storm-msgs", type=int, default=20)
    ap.add_argument("--storm-size", type=int, default=4096)
    ap.add_argument("--bulk-msgs", type=int, default=2000)
    ap.add_argument("--bulk-size", type=int, default=102400)
    ap.add_argument("--big-msgs", type=int, default=100000)
    ap.add_argument("--big-size", type=int, default=1500)
    ap.add_argument("--login-users", type=int, default=50)
    ap.add_argument("--postern", required=True,
                    help="the postern program, to make yescrypt hashes")
    a = ap.parse_args()

    out = a.out
    if os.path.exists(out):
        shutil.rmtree(out)
    mail = os.path.join(out, "mail")
    os.makedirs(mail)
    rng = random.Random(a.seed)
    pool = Pool(rng)
    stamp = 1700000000
    manifest = []

    for u in range(a.storm_users):
        user = "s%04d" % u
        md = Maildir(mail, user)
        for i in range(a.storm_msgs):
            size = int(min(3 * a.storm_size, max(a.storm_size // 3,
                           rng.lognormvariate(0, 0.35) * a.storm_size)))
            md.add(message(rng, pool, user, i, size), stamp)
            stamp += 1
        manifest.append((user, md.n, md.octets, md.wire))

    md = Maildir(mail, "bulk")
    crlf = Maildir(mail, "bulkcrlf")
    with open(os.path.join(out, "ceiling.bin"), "wb") as ceil:
        for i in range(a.bulk_msgs):
            text = attachment_message(rng, pool, "bulk", i, a.bulk_size)
            ceil.write(md.add(text, stamp))
            crlf.add(text, stamp, crlf=True)
            stamp += 1
    manifest.append(("bulk", md.n, md.octets, md.wire))
    manifest.append(("bulkcrlf", crlf.n, crlf.octets, crlf.wire))

    md = Maildir(mail, "big")
    for i in range(a.big_msgs):
        size = int(max(600, rng.gauss(a.big_size, a.big_size / 4)))
        hdr = headers(rng, "big", i)
        body = pool.text(rng, max(100, size - len(hdr) - 60))
        md.add(hdr + "Content-Type: text/plain; charset=utf-8\n\n" + body,
               stamp)
        stamp += 1
    manifest.append(("big", md.n, md.octets, md.wire))

    logins = ["l%04d" % i for i in range(a.login_users)]
    hashes = yescrypt_hashes(a.postern, logins)
    storm = ["s%04d" % u for u in range(a.storm_users)]
    with open(os.path.join(out, "users.postern"), "w") as pf, \
            open(os.path.join(out, "users.dovecot"), "w") as df:
        for name in storm + ["bulk", "bulkcrlf", "big"]:
            pf.write("%s:{PLAIN}pw-%s\n" % (name, name))
            df.write("%s:{PLAIN}pw-%s\n" % (name, name))
        for name in logins:
            h = hashes[name]
            pf.write("%s:%s\n" % (name, h))
            df.write("%s:{CRYPT}%s\n" % (name, h[h.index("}") + 1:]
                                          if h.startswith("{") else h))
    for name in logins:
        os.makedirs(os.path.join(mail, name, "new"), exist_ok=True)
        os.makedirs(os.path.join(mail, name, "cur"), exist_ok=True)
        os.makedirs(os.path.join(mail, name, "tmp"), exist_ok=True)

    with open(os.path.join(out, "manifest.txt"), "w") as f:
        f.write("# user messages octets wire_octets\n")
        for m in manifest:
            f.write("%s %d %d %d\n" % m)


if __name__ == "__main__":
    main()
