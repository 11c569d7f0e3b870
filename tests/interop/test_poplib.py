"""
Python's poplib against posternd.

poplib adds nothing: POP3.retr(n) returns (reply, lines, octets) where the
lines are the wire lines without CRLF, already un-stuffed (a leading '..'
becomes '.'), and octets counts the un-stuffed lines plus CRLF each, i.e.
the wire size that LIST announces.
"""

import harness

import clients
import corpus


def _retrieve_all(mb, p):
    """RETR every message of a session; {n: lines}, checked against LIST
    and the '+OK S octets' reply."""
    _, listing, _ = p.list()
    sizes = {int(a): int(b) for a, b in (l.split() for l in listing)}
    assert sorted(sizes) == list(range(1, len(corpus.MESSAGES) + 1))
    got = {}
    for n, size in sorted(sizes.items()):
        resp, lines, octets = p.retr(n)
        assert resp.startswith(b"+OK"), resp
        assert octets == size, \
            "RETR %d delivered %d octets, LIST said %d" % (n, octets, size)
        words = resp.split()
        if len(words) >= 2 and words[1].isdigit():
            assert int(words[1]) == size, "RETR %d reply %r" % (n, resp)
        got[n] = lines
    return got, sizes


def _check(got, sizes):
    stored = {}
    for n, lines in got.items():
        stored["message %d" % n] = b"".join(l + b"\r\n" for l in lines)
    clients.check_messages(stored, corpus.wire, what="poplib")
    for n, lines in got.items():
        _, source = corpus.BY_ID[corpus.message_id(stored["message %d" % n])]
        assert lines == harness.wire_lines(source)
        assert sizes[n] == harness.wire_size(source)


def test_poplib_keep(mailbox):
    p = clients.pop_session(mailbox)
    try:
        got, sizes = _retrieve_all(mailbox, p)
    finally:
        assert p.quit().startswith(b"+OK")
    _check(got, sizes)
    clients.assert_untouched(mailbox)

    # A second session sees the same messages under the same numbers.
    p = clients.pop_session(mailbox)
    try:
        again, _ = _retrieve_all(mailbox, p)
    finally:
        p.quit()
    assert again == got


def test_poplib_delete(mailbox):
    p = clients.pop_session(mailbox)
    try:
        got, sizes = _retrieve_all(mailbox, p)
        for n in sorted(got):
            assert p.dele(n).startswith(b"+OK")
        assert p.stat() == (0, 0)
    finally:
        assert p.quit().startswith(b"+OK")
    _check(got, sizes)
    clients.assert_emptied(mailbox)
