"""
The POP3 session (RFC 1939, RFC 2449): every command in every state, the
reply forms, strict argument parsing and the bad-command limit.
"""

import re

import pytest

from harness import assert_glob, unstuff, wire_form, wire_size

MESSAGES = [
    b"From: one@example.org\nSubject: one\n\nbody of one\nsecond line\n",
    b"From: two@example.org\r\nSubject: two\r\n\r\nbody of two\r\n",
    b"From: three@example.org\nSubject: three\n\n.dotted\nend\n",
]


@pytest.fixture(scope="module")
def srv(make_module_server):
    s = make_module_server()
    s.names = [s.add_message("alice", m) for m in MESSAGES]
    return s


def login(srv, user="alice"):
    return srv.login(user)


def assert_still_works(c, state):
    """The connection answers a valid command after an error."""
    if state == "auth":
        assert c.capa(), "CAPA after an error"
    else:
        assert_glob(c.command("NOOP"), "+OK*")


def assert_one_err(c, cmd, state):
    """cmd gets exactly one -ERR line and the session continues."""
    st = c.command(cmd)
    assert_glob(st, "-ERR*")
    assert_still_works(c, state)


def capa_names(lines):
    return [l.split()[0].upper() for l in lines if l.strip()]


# ---------------------------------------------------------------- greeting

def test_greeting_is_ok(srv):
    with srv.connect() as c:
        assert_glob(c.greeting, "+OK*")


def test_greeting_text_is_configurable(make_server):
    s = make_server(config={"greeting": "Mail hub at your service."})
    with s.connect() as c:
        assert_glob(c.greeting, "+OK Mail hub at your service.*")


# --------------------------------------------------------- AUTHORIZATION

AUTH_STATE_INVALID = ["STAT", "LIST", "LIST 1", "RETR 1", "DELE 1", "NOOP",
                      "RSET", "TOP 1 0", "UIDL", "UIDL 1"]


@pytest.mark.parametrize("cmd", AUTH_STATE_INVALID)
def test_transaction_command_in_authorization_state(srv, cmd):
    with srv.connect() as c:
        assert_one_err(c, cmd, "auth")
        # and a login still works afterwards
        c.login("alice", srv.users["alice"])
        assert c.stat()[0] == len(MESSAGES)


def test_pass_without_user(srv):
    with srv.connect() as c:
        assert_one_err(c, "PASS " + srv.users["alice"], "auth")
        c.login("alice", srv.users["alice"])


def test_user_reply_is_ok_for_unknown_user(srv):
    with srv.connect() as c:
        assert_glob(c.command("USER alice"), "+OK*")
    with srv.connect() as c:
        assert_glob(c.command("USER nosuchuser"), "+OK*")


def test_quit_in_authorization(srv):
    with srv.connect() as c:
        assert_glob(c.command("QUIT"), "+OK*")
        assert c.wait_closed() == b""


def test_quit_after_user(srv):
    with srv.connect() as c:
        c.command("USER alice")
        assert_glob(c.command("QUIT"), "+OK*")
        c.wait_closed()


# ------------------------------------------------------------- TRANSACTION

@pytest.mark.parametrize("cmd", ["USER alice", "PASS x", "USER bob",
                                 "APOP alice 0123456789abcdef0123456789abcdef"])
def test_authorization_command_in_transaction_state(srv, cmd):
    with login(srv) as c:
        assert_one_err(c, cmd, "trans")
        assert c.stat()[0] == len(MESSAGES)


def test_login_reply(srv):
    with srv.connect() as c:
        st = c.login("alice", srv.users["alice"])
        assert_glob(st, "+OK*")


def test_stat(srv):
    with login(srv) as c:
        n, octets = c.stat()
        assert n == len(MESSAGES)
        assert octets == sum(wire_size(m) for m in MESSAGES)


def test_list_and_uidl_agree_with_stat(srv):
    with login(srv) as c:
        n, octets = c.stat()
        sizes = c.list()
        uidls = c.uidl()
        assert sorted(sizes) == list(range(1, n + 1))
        assert sorted(uidls) == list(range(1, n + 1))
        assert sum(sizes.values()) == octets
        for i in range(1, n + 1):
            assert c.command("LIST %d" % i) == "+OK %d %d" % (i, sizes[i])
            assert c.command("UIDL %d" % i) == "+OK %d %s" % (i, uidls[i])


def test_list_sizes_match_messages(srv):
    with login(srv) as c:
        by_uidl = c.uidl_map()
        sizes = c.list()
        for name, msg in zip(srv.names, MESSAGES):
            assert sizes[by_uidl[name]] == wire_size(msg)


@pytest.mark.parametrize("cmd", ["LIST 4", "RETR 4", "TOP 4 0", "DELE 4",
                                 "UIDL 4", "LIST 1000000"])
def test_message_number_out_of_range(srv, cmd):
    with login(srv) as c:
        assert_one_err(c, cmd, "trans")
        assert c.stat()[0] == len(MESSAGES)


def test_noop(srv):
    with login(srv) as c:
        assert_glob(c.command("NOOP"), "+OK*")


def test_retr_each_message(srv):
    with login(srv) as c:
        by_uidl = c.uidl_map()
        for name, msg in zip(srv.names, MESSAGES):
            assert c.retr(by_uidl[name]) == wire_form(msg)


def test_dele_marks_and_rset_restores(srv):
    with login(srv) as c:
        n, octets = c.stat()
        sizes = c.list()
        uidls = c.uidl()
        assert_glob(c.command("DELE 2"), "+OK*")
        assert_glob(c.command("DELE 2"), "-ERR*")
        assert c.stat() == (n - 1, octets - sizes[2])
        assert 2 not in c.list()
        assert 2 not in c.uidl()
        for cmd in ("LIST 2", "RETR 2", "TOP 2 0", "UIDL 2"):
            assert_glob(c.command(cmd), "-ERR*")
        # the others are untouched
        assert c.command("LIST 1") == "+OK 1 %d" % sizes[1]
        assert c.command("UIDL 3") == "+OK 3 %s" % uidls[3]
        assert_glob(c.command("RSET"), "+OK*")
        assert c.stat() == (n, octets)
        assert c.list() == sizes
        assert c.uidl() == uidls
        assert_glob(c.command("QUIT"), "+OK*")
        c.wait_closed()
    with login(srv) as c:
        assert c.stat()[0] == len(MESSAGES)


def test_quit_in_transaction(srv):
    with login(srv) as c:
        assert_glob(c.command("QUIT"), "+OK*")
        assert c.wait_closed() == b""
    with login(srv) as c:
        assert c.stat()[0] == len(MESSAGES)


def test_top(srv):
    with login(srv) as c:
        by_uidl = c.uidl_map()
        i = by_uidl[srv.names[0]]
        assert c.top(i, 0) == b"From: one@example.org\r\nSubject: one\r\n\r\n"
        assert c.top(i, 1) == (b"From: one@example.org\r\nSubject: one\r\n"
                               b"\r\nbody of one\r\n")


def test_empty_mailbox(srv):
    # bob has no Maildir yet: it is created at login
    with login(srv, "bob") as c:
        assert c.stat() == (0, 0)
        assert c.list() == {}
        assert c.uidl() == {}
        assert_glob(c.command("LIST 1"), "-ERR*")
        assert_glob(c.command("RETR 1"), "-ERR*")
        assert_glob(c.command("QUIT"), "+OK*")


# ------------------------------------------------------------------- CAPA

REQUIRED_CAPS = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
                 "EXPIRE", "LOGIN-DELAY", "IMPLEMENTATION"]


def test_capa_in_authorization(srv):
    with srv.connect() as c:
        lines = c.capa()
        names = capa_names(lines)
        for cap in REQUIRED_CAPS + ["USER"]:
            assert cap in names, "CAPA lacks %s: %r" % (cap, lines)
        assert len(names) == len(set(names)), lines


def test_capa_in_transaction(srv):
    with login(srv) as c:
        lines = c.capa()
        names = capa_names(lines)
        for cap in REQUIRED_CAPS:
            assert cap in names, "CAPA lacks %s: %r" % (cap, lines)
        assert "USER" not in names, lines
        assert_glob(c.command("NOOP"), "+OK*")


def test_capa_default_values(srv):
    # RFC 2449 6.5, 6.7: "USER" before login, since the user database may
    # set other values per user; the user's own values after it
    for c, tail in ((srv.connect(), ["USER"]), (login(srv), [])):
        with c:
            caps = {l.split()[0].upper(): l.split()[1:] for l in c.capa()}
            assert [a.upper() for a in caps["EXPIRE"]] == ["NEVER"] + tail
            assert caps["LOGIN-DELAY"] == ["0"] + tail
            assert caps["IMPLEMENTATION"], "IMPLEMENTATION needs an argument"


# ------------------------------------------------------ syntax and errors

@pytest.mark.parametrize("cmd", ["capa", "CaPa", "Capa"])
def test_capa_case_insensitive(srv, cmd):
    with srv.connect() as c:
        st, lines = c.multi_lines(cmd)
        assert_glob(st, "+OK*")
        assert "TOP" in capa_names(lines)


def test_commands_case_insensitive(srv):
    with srv.connect() as c:
        assert_glob(c.command("user alice"), "+OK*")
        assert_glob(c.command("pAsS " + srv.users["alice"]), "+OK*")
        assert re.match(r"\+OK 3 \d+", c.command("stat"))
        st, raw = c.multi("list")
        assert_glob(st, "+OK*")
        assert re.match(r"\+OK 1 \d+\Z", c.command("List 1"))
        st, raw = c.multi("uidl")
        assert_glob(st, "+OK*")
        assert re.match(r"\+OK 1 \S+\Z", c.command("uIdL 1"))
        assert_glob(c.command("noop"), "+OK*")
        st, raw = c.multi("retr 1")
        assert_glob(st, "+OK*")
        st, raw = c.multi("tOp 1 0")
        assert_glob(st, "+OK*")
        assert_glob(c.command("dele 1"), "+OK*")
        assert_glob(c.command("rset"), "+OK*")
        assert c.stat()[0] == 3
        assert_glob(c.command("quit"), "+OK*")
        c.wait_closed()


def test_apop_lowercase_is_known(srv):
    # APOP is a known command even when not offered: [AUTH], not "unknown"
    with srv.connect() as c:
        st = c.command("apop alice 0123456789abcdef0123456789abcdef")
        assert_glob(st, "-ERR*")
        assert_still_works(c, "auth")


@pytest.mark.parametrize("cmd", ["FOO", "XYZZY 1 2", "STATS", "LISTX 1",
                                 "RETR1", "QUIT2", "\x7f", "NOOP\x01"])
@pytest.mark.parametrize("state", ["auth", "trans"])
def test_unknown_command(srv, cmd, state):
    c = srv.connect() if state == "auth" else login(srv)
    with c:
        assert_one_err(c, cmd, state)


@pytest.mark.parametrize("state", ["auth", "trans"])
def test_empty_line_gets_at_most_one_error(srv, state):
    c = srv.connect() if state == "auth" else login(srv)
    with c:
        c.send(b"\r\n")
        c.sendline("CAPA")
        st = c.status()
        if st.startswith("-ERR"):
            st = c.status()
        assert_glob(st, "+OK*")
        c.read_multiline()
        assert_still_works(c, state)


@pytest.mark.parametrize("cmd", [
    "LIST 4294967297", "LIST 4294967296", "LIST 18446744073709551617",
    "LIST 0", "LIST -1", "LIST +1", "LIST 1x", "LIST 1 2", "LIST x",
    "LIST 0x1", "RETR", "RETR 0", "RETR -1", "RETR 1x", "RETR 4294967297",
    "RETR 1 2", "TOP", "TOP 1", "TOP 1 -1", "TOP 1 x", "TOP x 1", "TOP 0 1",
    "TOP 4294967297 1", "TOP 1 1 1", "DELE", "DELE 0", "DELE 1x", "DELE -1",
    "DELE 4294967297", "UIDL 0", "UIDL 1x", "UIDL 4294967297", "UIDL -1",
])
def test_strict_numbers(srv, cmd):
    with login(srv) as c:
        before = c.stat()
        assert_one_err(c, cmd, "trans")
        assert c.stat() == before, "%r changed the mailbox" % cmd


def test_large_number_does_not_wrap(srv):
    with login(srv) as c:
        size1 = c.list()[1]
        st = c.command("LIST 4294967297")
        assert st != "+OK 1 %d" % size1
        assert_glob(st, "-ERR*")


@pytest.mark.parametrize("cmd,pattern", [
    ("LIST  1", "+OK 1 *"),
    ("LIST 1 ", "+OK 1 *"),
    ("LIST   2   ", "+OK 2 *"),
    ("UIDL  3", "+OK 3 *"),
])
def test_extra_spaces_tolerated(srv, cmd, pattern):
    with login(srv) as c:
        assert_glob(c.command(cmd), pattern)


def test_top_extra_spaces_tolerated(srv):
    with login(srv) as c:
        expected = c.top(1, 0)
        st, raw = c.multi("TOP  1   0 ")
        assert_glob(st, "+OK*")
        assert unstuff(raw) == expected


# ----------------------------------------------------- bad command limit

def send_bad_until_closed(c, cmd, most):
    """Sends cmd until the server closes; returns how many got a reply."""
    replies = 0
    for _ in range(most):
        try:
            c.sendline(cmd)
        except OSError:
            return replies
        try:
            st = c.status()
        except AssertionError:
            # Closed (or reset) without a reply: the limit was reached
            assert c.is_closed(2), "no reply and not closed"
            return replies
        assert_glob(st, "-ERR*")
        replies += 1
    if c.is_closed(2):
        return replies
    raise AssertionError("still open after %d bad commands" % most)


def test_bad_command_limit_default(srv):
    with srv.connect() as c:
        for _ in range(9):
            assert_glob(c.command("FOO"), "-ERR*")
        assert c.capa()
        n = send_bad_until_closed(c, "FOO", 20)
        assert n <= 2, "%d more bad commands accepted after 9" % n


@pytest.mark.parametrize("state", ["auth", "trans"])
def test_bad_command_limit_configured(make_server, state):
    s = make_server(config={"max_bad_commands": 3})
    s.add_message("alice", MESSAGES[0])
    c = s.connect() if state == "auth" else s.login("alice")
    with c:
        bad = "RETR 1" if state == "auth" else "USER alice"
        assert_glob(c.command(bad), "-ERR*")
        assert_glob(c.command("FOO"), "-ERR*")
        assert_still_works(c, state)
        n = send_bad_until_closed(c, "LIST x" if state == "trans" else "FOO",
                                  10)
        assert n <= 2
    # nothing changed, a new session works
    with s.login("alice") as c:
        assert c.stat()[0] == 1


@pytest.mark.parametrize("cmd", ["USER", "PASS", "APOP", "APOP alice"])
def test_authorization_commands_missing_arguments(srv, cmd):
    with srv.connect() as c:
        if cmd == "PASS":
            c.command("USER alice")
        assert_one_err(c, cmd, "auth")
        c.login("alice", srv.users["alice"])


def test_top_with_largest_count(srv):
    with login(srv) as c:
        i = c.uidl_map()[srv.names[2]]
        st, raw = c.multi("TOP %d 4294967295" % i)
        assert_glob(st, "+OK*")
        assert unstuff(raw) == wire_form(MESSAGES[2])
