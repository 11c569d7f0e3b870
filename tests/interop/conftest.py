"""
Fixtures of the interop tests (tests/conftest.py provides make_server).

    mailbox     a started posternd whose user "demo" holds every message of
                corpus.MESSAGES; attributes server, host, port, user,
                password, bases (Maildir base names), uidls ({n: uidl} as
                first seen by poplib), sizes ({n: LIST size}).
    tls_mailbox the same on a posternd with TLS (harness Server(tls=True)):
                also tls_port (implicit TLS) and ca_file (the test CA); the
                plain port offers STLS
    workdir     a private temp dir for a client's rc file, HOME and output
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import clients  # noqa: E402
import corpus  # noqa: E402
import harness  # noqa: E402


class Mailbox:
    def __init__(self, server, bases):
        self.server = server
        self.host = server.host
        self.port = server.port
        self.tls_port = server.tls_port
        self.ca_file = server.ca_file
        self.user = corpus.USER
        self.password = corpus.PASSWORD
        self.bases = bases
        self.uidls = {}
        self.sizes = {}

    def add_late(self):
        """Delivers corpus.LATE (after a first download)."""
        self.server.add_message(self.user, corpus.LATE)

    def url(self, n=""):
        return "pop3://%s:%d/%s" % (self.host, self.port, n)


@pytest.fixture
def mailbox(make_server):
    return _mailbox(make_server, tls=False)


@pytest.fixture
def tls_mailbox(make_server):
    return _mailbox(make_server, tls=True)


def _mailbox(make_server, tls):
    srv = make_server(users={corpus.USER: corpus.PASSWORD}, start=False,
                      tls=tls)
    bases = []
    for label, data in corpus.MESSAGES:
        if label in corpus.IN_CUR:
            # Already seen by a mail reader: in cur/ with the S flag.
            bases.append(srv.add_message(
                corpus.USER, data,
                name=harness.maildir_unique_name() + ":2,S", subdir="cur"))
        else:
            bases.append(srv.add_message(corpus.USER, data))
    srv.start()
    mb = Mailbox(srv, bases)
    p = clients.pop_session(mb)
    try:
        count, octets = p.stat()
        assert (count, octets) == (len(corpus.MESSAGES), corpus.TOTAL_WIRE), \
            "STAT of the fresh mailbox: %d %d" % (count, octets)
        _, lines, _ = p.uidl()
        for line in lines:
            n, u = line.split(b" ", 1)
            mb.uidls[int(n)] = u.decode("ascii")
        _, lines, _ = p.list()
        for line in lines:
            n, s = line.split(b" ", 1)
            mb.sizes[int(n)] = int(s)
    finally:
        p.quit()
    return mb


@pytest.fixture
def workdir(tmp_path):
    return str(tmp_path)
