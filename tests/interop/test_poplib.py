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


def _retrieve_all(p):
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
    # SPEC.md: the UIDL of a Maildir message is derived from its base name.
    assert sorted(mailbox.uidls.values()) == \
        sorted(harness.expected_uidl(b) for b in mailbox.bases)
    p = clients.pop_session(mailbox)
    try:
        got, sizes = _retrieve_all(p)
    finally:
        assert p.quit().startswith(b"+OK")
    _check(got, sizes)
    clients.assert_untouched(mailbox)

    # A second session sees the same messages under the same numbers.
    p = clients.pop_session(mailbox)
    try:
        again, _ = _retrieve_all(p)
    finally:
        p.quit()
    assert again == got

    # A message arrives: it gets a new UIDL; the others keep theirs.
    mailbox.add_late()
    p = clients.pop_session(mailbox)
    try:
        _, lines, _ = p.uidl()
        uidls = {int(a): b.decode("ascii")
                 for a, b in (l.split(b" ", 1) for l in lines)}
        assert len(uidls) == len(corpus.MESSAGES) + 1
        old = set(mailbox.uidls.values())
        assert old < set(uidls.values()), (mailbox.uidls, uidls)
        n, = [k for k, v in uidls.items() if v not in old]
        _, lines, octets = p.retr(n)
        assert b"".join(l + b"\r\n" for l in lines) == corpus.wire(corpus.LATE)
        assert octets == len(corpus.wire(corpus.LATE))
    finally:
        p.quit()


def test_poplib_delete(mailbox):
    p = clients.pop_session(mailbox)
    try:
        got, sizes = _retrieve_all(p)
        for n in sorted(got):
            assert p.dele(n).startswith(b"+OK")
        assert p.stat() == (0, 0)
    finally:
        assert p.quit().startswith(b"+OK")
    _check(got, sizes)
    clients.assert_emptied(mailbox)
