"""
Wire form (RFC 1939 section 3, src/pop3/wire.h): RETR and TOP byte for
byte, byte-stuffing, and STAT/LIST sizes equal to the un-stuffed octets.
"""

import random
import re
import time

import pytest

from harness import multiline_body, unstuff, wire_form, wire_size

CORPUS = {
    "lf": b"From: a@example.org\nSubject: lf\n\nline one\nline two\n",
    "crlf": b"From: a@example.org\r\nSubject: crlf\r\n\r\nline one\r\n"
            b"line two\r\n",
    "mixed": b"A: 1\r\nB: 2\n\r\nbody 1\nbody 2\r\nbody 3\n",
    "no-final-newline": b"Subject: nofinal\n\nfirst\nlast line, no newline",
    "no-final-newline-crlf": b"Subject: x\r\n\r\nfirst\r\nlast",
    "empty": b"",
    "only-newline": b"\n",
    "only-crlf": b"\r\n",
    "dots": b"Subject: dots\n\n.starts with a dot\n..two dots\n.\n"
            b"after a lone dot\n. \n...\nends with a dot.\n\n.\n",
    "dot-first-line": b".Weird-Header: x\nSubject: d\n\nbody\n",
    "dot-only": b".\n",
    "dot-no-final-newline": b"Subject: d\n\nbody\n.",
    "dot-crlf": b"Subject: d\r\n\r\n.\r\n..\r\n.x\r\n",
    "lone-cr": b"Subject: cr\n\nab\rcd\nx\r\ry\r\nend\r\n",
    "cr-cr-lf": b"Subject: crcr\n\na\r\r\nb\n",
    "no-blank-line": b"Subject: x\nFrom: y\nno separator here\n",
    "body-only": b"\nbody right away\nsecond\n",
    "blank-lines-body": b"S: x\n\n\n\n\nafter blanks\n",
    "long-line": b"Subject: long\n\n" + b"x" * 5000 + b"\n.y" + b"z" * 3000
                 + b"\n",
    "eight-bit": b"Subject: 8bit\n\n\xc3\xa4\xc3\xb6\xff\xfe\x80 octets\n"
                 b"nul\x00inside\n\ttab line\n",
    "crlf-dots-clean": b"Subject: c\r\n\r\nplain\r\nlines\r\n",
    "trailing-cr": b"Subject: t\n\nlast line ends in CR\r",
    "only-cr": b"\r",
    "cr-before-blank": b"Subject: x\r\r\n\r\nbody\n",
    # Stored in wire form but for byte-stuffing: plain RETR sends the
    # runs between the lines that start with '.' by sendfile, up to 64
    # such lines (more go through the encoder).
    "crlf-dot-only": b".\r\n",
    "crlf-dot-first-and-last": b".x: y\r\n\r\nbody\r\n..\r\n.\r\n",
    "crlf-lone-cr-dots": b"S: x\r\n\r\na\rb\r\n.\rc\r\n\r\r\n.\r\n",
    "crlf-64-dots": b"S: x\r\n\r\n" + b"".join(b".%d\r\nz\r\n" % i
                                               for i in range(64)),
    "crlf-65-dots": b"S: x\r\n\r\n" + b"".join(b".%d\r\nz\r\n" % i
                                               for i in range(65)),
    "crlf-bare-lf-at-end": b"S: x\r\n\r\n.a\r\nb\n",
    "crlf-big-dots": b"S: x\r\n\r\n" + b"".join(
        (b".%05d" if i % 997 == 0 else b"l%05d") % i + b"y" * 70 + b"\r\n"
        for i in range(6000)),
}


def boundary_message(pos, pair, size):
    """A message of size octets with pair written at pos-1, pos: the two
    octets either side of a read-chunk boundary."""
    line = b"y" * 71 + b"\n"
    data = bytearray(b"Subject: boundary\n\n" + line * (size // len(line)))
    data[pos - 1:pos + 1] = pair
    return bytes(data)


for _b in (4096, 8192, 16384, 32768, 65536, 131072):
    CORPUS["crlf-split-%d" % _b] = boundary_message(_b, b"\r\n", 3 * _b)
    CORPUS["dot-after-split-%d" % _b] = boundary_message(_b, b"\n.",
                                                         3 * _b)
    CORPUS["lone-cr-at-%d" % _b] = boundary_message(_b, b"\rz", 3 * _b)
    CORPUS["end-cr-at-%d" % _b] = boundary_message(_b, b"\ry", 3 * _b)[:_b]
    CORPUS["end-lf-at-%d" % _b] = boundary_message(_b, b"\ny", 3 * _b)[:_b]
    CORPUS["blank-split-%d" % _b] = (
        b"Subject: " + b"h" * (_b - 11) + b"\n\r\nbody\n.\nend\n")

TOP_COUNTS = [0, 1, 2, 3, 1000]


@pytest.fixture(scope="module")
def srv(make_module_server):
    s = make_module_server()
    s.names = {}
    for i, (key, data) in enumerate(CORPUS.items()):
        s.names[key] = s.add_message("alice", data,
                                     name="1700000%03d.wire-%s.test"
                                     % (i, key))
    return s


@pytest.fixture
def conn(srv):
    with srv.login("alice") as c:
        c.num = c.uidl_map()
        yield c


def num(conn, srv, key):
    return conn.num[srv.names[key]]


def check_octets_status(st, stored):
    assert st.startswith("+OK"), st
    m = re.match(r"\+OK (\d+) octets", st)
    if m:
        assert int(m.group(1)) == wire_size(stored), st


@pytest.mark.parametrize("key", list(CORPUS))
def test_retr_byte_exact(srv, conn, key):
    st, raw = conn.retr_raw(num(conn, srv, key))
    check_octets_status(st, CORPUS[key])
    assert raw == multiline_body(CORPUS[key])
    assert unstuff(raw) == wire_form(CORPUS[key])


@pytest.mark.parametrize("key", list(CORPUS))
@pytest.mark.parametrize("n", TOP_COUNTS)
def test_top_byte_exact(srv, conn, key, n):
    st, raw = conn.multi("TOP %d %d" % (num(conn, srv, key), n))
    assert st.startswith("+OK"), st
    assert raw == multiline_body(CORPUS[key], top=n), \
        "TOP %d of %s" % (n, key)


@pytest.mark.parametrize("key", list(CORPUS))
def test_list_size_is_wire_size(srv, conn, key):
    i = num(conn, srv, key)
    assert conn.command("LIST %d" % i) == "+OK %d %d" % (
        i, wire_size(CORPUS[key]))


def test_stat_total(conn):
    n, octets = conn.stat()
    assert n == len(CORPUS)
    assert octets == sum(wire_size(d) for d in CORPUS.values())


def test_sizes_equal_retr_octets(conn):
    sizes = conn.list()
    for i, size in sizes.items():
        assert len(conn.retr(i)) == size, "message %d" % i


def test_reference_wire_form():
    """Checks the reference implementation itself against wire.h."""
    assert wire_form(b"") == b""
    assert wire_form(b"\n") == b"\r\n"
    assert wire_form(b"a") == b"a\r\n"
    assert wire_form(b"a\r\nb") == b"a\r\nb\r\n"
    assert wire_form(b"a\rb\n") == b"a\rb\r\n"
    assert wire_form(b"a\r\r\n") == b"a\r\r\n"
    assert wire_form(b".\n..\nx", stuff=True) == b"..\r\n...\r\nx\r\n"
    assert wire_form(b"h\n\nb1\nb2\n", top=1) == b"h\r\n\r\nb1\r\n"
    assert wire_form(b"h\nh2\n", top=0) == b"h\r\nh2\r\n"
    assert unstuff(b"..\r\nx\r\n.\r\n") == b".\r\nx\r\n"
    assert unstuff(b".\r\n") == b""


# ---------------------------------------------------------- large messages

def big_message(size, crlf, seed):
    rng = random.Random(seed)
    eol = b"\r\n" if crlf else b"\n"
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789")
                   for _ in range(rng.randint(1, 12))) for _ in range(500)]
    parts = [b"From: big@example.org", b"Subject: big", b""]
    total = 40
    n = 0
    while total < size:
        n += 1
        line = b" ".join(rng.choices(words, k=rng.randint(0, 14)))
        if n % 53 == 0:
            line = b"." + line
        if n % 997 == 0:
            line = b"."
        parts.append(line)
        total += len(line) + len(eol)
    return eol.join(parts) + eol


@pytest.fixture(scope="module")
def big(make_module_server):
    s = make_module_server(users={"bob": "bob-big-pw"})
    s.msgs = {
        "lf": big_message(10 << 20, False, 1),
        "crlf": big_message(10 << 20, True, 2),
    }
    s.names = {k: s.add_message("bob", v) for k, v in s.msgs.items()}
    return s


@pytest.mark.parametrize("kind", ["lf", "crlf"])
def test_ten_megabyte_retr(big, kind):
    stored = big.msgs[kind]
    with big.login("bob") as c:
        i = c.uidl_map()[big.names[kind]]
        assert c.command("LIST %d" % i) == "+OK %d %d" % (i, wire_size(stored))
        t0 = time.monotonic()
        st, raw = c.retr_raw(i, timeout=60)
        elapsed = time.monotonic() - t0
        check_octets_status(st, stored)
        assert raw == multiline_body(stored)
        assert elapsed < 10, "RETR of 10 MB took %.1fs" % elapsed
        # TOP of the same message stops early
        st, raw = c.multi("TOP %d 5" % i)
        assert raw == multiline_body(stored, top=5)
        assert_ok = c.command("NOOP")
        assert assert_ok.startswith("+OK")


def test_sizes_from_names_never_send_bare_lf(make_server):
    """A file named with ,S= and ,W= is sized from its name without being
    read.  W equal to S says it is stored in wire form, which RETR sends
    by sendfile; RETR checks that form first, so a name that lies about
    it still gives CRLF on the wire, never a bare LF."""
    s = make_server()
    good = b"S: x\r\n\r\n.a\r\nb\r\n..\r\n"
    liar = b"S: x\r\n\r\n.a\nb\n..\n"
    names = {}
    for key, data in (("good", good), ("liar", liar)):
        names[key] = s.add_message(
            "alice", data, name="1700000001.%s,S=%d,W=%d" % (
                key, len(data), len(data)))
    with s.login("alice") as c:
        nums = c.uidl_map()
        st, raw = c.retr_raw(nums[names["good"]])
        assert st == "+OK %d octets" % len(good)
        assert raw == multiline_body(good)
        st, raw = c.retr_raw(nums[names["liar"]])
        assert st.startswith("+OK"), st
        assert b"\n" not in raw.replace(b"\r\n", b"")
        assert unstuff(raw) == wire_form(liar)
