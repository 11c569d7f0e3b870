"""
The mailbox every interop test downloads, and the forms a client may store.

Each message is stored in the server's Maildir exactly as given here.  The
server sends the wire form (src/pop3/wire.h; harness.wire_form is its
Python reference): lines split at LF, one CR before each LF dropped, every
line sent with CRLF, a last line without LF completed with CRLF, lines
starting with '.' byte-stuffed on the wire only.

Every header line is at most 78 columns: getmail6 writes messages through
Python's email generator, which folds longer header lines again, and that
refolding is the client's own doing, not something the server may be
blamed or excused for.  test_corpus.py checks this and the coverage below.
"""

import base64
import random

import harness

USER = "demo"
PASSWORD = "Demo-Pass-4b1d"


def _large(size=1024 * 1024):
    """About 1 MB of varied printable lines, LF endings, some dot lines."""
    rng = random.Random(1939)
    alphabet = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                "0123456789 .,;:-")
    out = [
        b"Received: from relay.example.org by mx.example.org;\n",
        b"\tMon, 1 Jan 2024 10:00:00 +0000\n",
        b"From: Big Sender <big@example.org>\n",
        b"To: demo@example.org\n",
        b"Subject: large message\n",
        b"Message-ID: <large-1@example.org>\n",
        b"Date: Mon, 1 Jan 2024 10:00:00 +0000\n",
        b"\n",
    ]
    total = sum(len(x) for x in out)
    n = 0
    while total < size:
        n += 1
        line = "".join(rng.choice(alphabet)
                       for _ in range(rng.randint(0, 120)))
        if n % 97 == 0:
            line = "." + line
        if n % 331 == 0:
            line = "."
        b = line.encode() + b"\n"
        out.append(b)
        total += len(b)
    return b"".join(out)


def _mime():
    rng = random.Random(2045)
    payload = bytes(rng.randrange(256) for _ in range(6000))
    b64 = base64.encodebytes(payload)   # 76-column lines, LF
    return (
        b"From: Attacher <att@example.org>\n"
        b"To: demo@example.org\n"
        b"Subject: multipart with attachment\n"
        b"Message-ID: <mime-1@example.org>\n"
        b"Date: Mon, 1 Jan 2024 10:05:00 +0000\n"
        b"MIME-Version: 1.0\n"
        b"Content-Type: multipart/mixed; boundary=\"=-=boundary-7f3a=-=\"\n"
        b"\n"
        b"This is a multi-part message in MIME format.\n"
        b"\n"
        b"--=-=boundary-7f3a=-=\n"
        b"Content-Type: text/plain; charset=us-ascii\n"
        b"Content-Transfer-Encoding: 7bit\n"
        b"\n"
        b"See the attached file.\n"
        b"\n"
        b"--=-=boundary-7f3a=-=\n"
        b"Content-Type: application/octet-stream; name=\"data.bin\"\n"
        b"Content-Transfer-Encoding: base64\n"
        b"Content-Disposition: attachment; filename=\"data.bin\"\n"
        b"\n"
        + b64 +
        b"\n"
        b"--=-=boundary-7f3a=-=--\n"
    ), payload


MIME_MESSAGE, MIME_PAYLOAD = _mime()

# (label, stored bytes), in delivery order.
MESSAGES = [
    ("lf", (
        b"From: Alice <alice@example.org>\n"
        b"To: demo@example.org\n"
        b"Subject: plain LF message\n"
        b"Message-ID: <lf-1@example.org>\n"
        b"Date: Mon, 1 Jan 2024 09:00:00 +0000\n"
        b"\n"
        b"Hello Demo,\n"
        b"\n"
        b"this message has LF line endings.\n"
        b"From the start of a line, From is just a word.\n"
        b"-- \n"
        b"Alice\n"
    )),
    ("crlf", (
        b"From: Bob <bob@example.org>\r\n"
        b"To: demo@example.org\r\n"
        b"Subject: CRLF message\r\n"
        b"Message-ID: <crlf-1@example.org>\r\n"
        b"Date: Mon, 1 Jan 2024 09:01:00 +0000\r\n"
        b"\r\n"
        b"This message was stored with CRLF line endings.\r\n"
        b"\r\n"
        b"Second paragraph.\r\n"
    )),
    ("dots", (
        b"Received: from a.example.org by mx.example.org;\n"
        b" Mon, 1 Jan 2024 09:02:00 +0000\n"
        b"From: Carol <carol@example.org>\n"
        b"To: demo@example.org\n"
        b"Subject: dots\n"
        b"Message-ID: <dots-1@example.org>\n"
        b"Date: Mon, 1 Jan 2024 09:02:00 +0000\n"
        b"\n"
        b".starts with a dot\n"
        b"..starts with two dots\n"
        b".\n"
        b"the line above is only a dot\n"
        b". \n"
        b"...\n"
        b"a line ending in a dot.\n"
        b"\n"
        b".\n"
    )),
    ("nofinal", (
        b"From: Dave <dave@example.org>\n"
        b"To: demo@example.org\n"
        b"Subject: no final newline\n"
        b"Message-ID: <nofinal-1@example.org>\n"
        b"Date: Mon, 1 Jan 2024 09:03:00 +0000\n"
        b"\n"
        b"first line\n"
        b".a dot line before the last one\n"
        b"the last line has no newline"
    )),
    ("mime", MIME_MESSAGE),
    ("large", _large()),
    ("utf8", (
        b"From: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.org>\n"
        b"To: demo@example.org\n"
        b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\n"
        b"Message-ID: <utf8-1@example.org>\n"
        b"Date: Mon, 1 Jan 2024 09:04:00 +0000\n"
        b"MIME-Version: 1.0\n"
        b"Content-Type: text/plain; charset=utf-8\n"
        b"Content-Transfer-Encoding: 8bit\n"
        b"\n"
        + "Grüße aus Köln! Ça va? Ελληνικά, русский, 日本語, emoji 📬.\n"
        "Zweite Zeile: ßüöä ÄÖÜ €.\n".encode("utf-8")
    )),
]


# Labels of the messages stored in cur/ with flags (":2,S"), not in new/.
IN_CUR = {"crlf"}

# Delivered between two keep runs: the next run fetches exactly this one.
LATE = (
    b"From: Eve <eve@example.org>\n"
    b"To: demo@example.org\n"
    b"Subject: arrived later\n"
    b"Message-ID: <late-1@example.org>\n"
    b"Date: Mon, 1 Jan 2024 11:00:00 +0000\n"
    b"\n"
    b"This one came after the first download.\n"
    b".\n"
    b"The end.\n"
)


def wire(stored):
    """The wire form of a stored message, before byte-stuffing (CRLF)."""
    return harness.wire_form(stored)


def unix(stored):
    """The wire form with each CRLF turned into LF: what a client that
    stores with Unix line endings writes (fetchmail, mpop, getmail6)."""
    return b"".join(l + b"\n" for l in harness.wire_lines(stored))


def message_id(data):
    """The Message-ID of a message (bytes, LF or CRLF), or None."""
    for line in data.split(b"\n"):
        if not line.rstrip(b"\r"):
            break
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip()
    return None


BY_ID = {message_id(m): (label, m) for label, m in MESSAGES}
TOTAL_WIRE = sum(len(wire(m)) for _, m in MESSAGES)
