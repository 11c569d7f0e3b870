"""
Fixtures shared by tests/protocol and tests/interop (see harness.py).

    make_server(config=None, users=DEFAULT_USERS, start=True, tls=False)
                -> Server
        function scope; every server made is stopped after the test, which
        then fails if posternd hangs on SIGTERM, leaves a process behind,
        or logged a sanitizer report or a panic.
    server
        make_server() with the default users alice and bob, started.
    make_module_server(...)
        the same factory, module scope: for tests that do not change the
        mailboxes (no QUIT after DELE, no expire, no login_delay).
    pki
        harness.tls_pki(), session scope: the test CA and certificates.

After every test the logs of all servers still running (module-scoped
ones included) are checked for sanitizer reports and panics too.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


class _Factory:
    def __init__(self):
        self.servers = []

    def __call__(self, config=None, users=None, start=True, tls=False,
                 **server_kw):
        """server_kw: more arguments of harness.Server (lmtp=True, ...)."""
        if users is None:
            users = harness.DEFAULT_USERS
        srv = harness.Server(config=config, tls=tls, **server_kw)
        self.servers.append(srv)
        for name, pw in users.items():
            srv.add_user(name, pw)
        if start:
            srv.start()
        return srv

    def finish(self):
        errors = []
        for srv in self.servers:
            try:
                srv.cleanup()
            except AssertionError as e:
                errors.append(str(e))
        self.servers = []
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def make_server():
    f = _Factory()
    yield f
    f.finish()


@pytest.fixture
def server(make_server):
    return make_server()


@pytest.fixture(scope="module")
def make_module_server():
    f = _Factory()
    yield f
    f.finish()


@pytest.fixture(scope="session")
def pki():
    return harness.tls_pki()


@pytest.fixture(autouse=True)
def _check_server_logs():
    marks = {srv: len(srv.log_text()) for srv in list(harness.Server.live)}
    yield
    errors = []
    for srv in list(harness.Server.live):
        try:
            srv.check_log(marks.get(srv, 0))
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def make_lmtp_server():
    """make_server's counterpart with LMTP listeners: (config=None,
    users=DEFAULT_USERS, start=True, socket=False, user_db_type=None) ->
    Server with lmtp_port (and lmtp_socket with socket=True)."""
    made = []

    def make(config=None, users=None, start=True, socket=False,
             user_db_type=None):
        srv = harness.Server(config=config, lmtp=True, lmtp_socket=socket,
                             user_db_type=user_db_type)
        made.append(srv)
        for name, pw in (harness.DEFAULT_USERS if users is None
                         else users).items():
            srv.add_user(name, pw)
        if start:
            srv.start()
        return srv

    yield make
    errors = []
    for srv in made:
        try:
            srv.cleanup()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)
