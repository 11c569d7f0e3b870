"""
`postern fetch` against a live posternd and scripted servers:
plain text to loopback (insecure = yes), STLS and implicit TLS verified
against the test CA; a wrong CA and a server without STLS are refused
(exit 77, never a fall-back); keep = yes and no; a second run fetches
nothing; the delivered files are byte for byte the server's messages in
LF form; SCRAM-SHA-256(-PLUS) and USER/PASS logins (the server log's
method=); the account lock; a damaged journal; and 200 runs killed with
SIGKILL at random instants while new mail keeps arriving, after which
every message the server had is delivered exactly once; --check, which counts the new
messages and sends nothing but UIDL and QUIT; the journal's times
(version 2, version 1 still read), keep_days, only_new and max_size.
"""

import fcntl
import os
import random
import signal
import ssl
import subprocess
import time

import pytest

import harness
from harness import postern_path, wire_form

PW = harness.DEFAULT_USERS["alice"]

EX_OK, EX_USAGE, EX_TEMP, EX_PERM = 0, 1, 75, 77

MESSAGES = [
    b"Subject: one\n\nplain body\n",
    b"Subject: dots\n\n.leading dot\n..two dots\n.\nend\n",
    b"Subject: crlf\r\n\r\nwindows line ends\r\n",
    b"Subject: no final newline\n\nlast line",
    b"Subject: bare cr\n\na\rb\r\r\nc\n",
    b"Subject: long\n\n" + b"x" * 5000 + b"\n",
    b"Subject: 8bit\n\n\xe9t\xe9 \xff\n\n\n",
]


def lf_form(stored):
    """What fetch stores: the wire form with CRLF turned into LF."""
    return wire_form(stored).replace(b"\r\n", b"\n")


class Client:
    """A user of `postern fetch`: a home directory, a fetch.conf, a
    password file."""

    def __init__(self, tmp_path, srv):
        self.home = str(tmp_path / "home")
        os.makedirs(self.home, exist_ok=True)
        self.srv = srv
        self.conf = os.path.join(self.home, "fetch.conf")
        self.pwfile = os.path.join(self.home, "pw")
        with open(self.pwfile, "w") as f:
            f.write(PW + "\n")
        os.chmod(self.pwfile, 0o600)
        self.state = os.path.join(self.home, ".local/state/postern")

    def maildir(self, name="acct"):
        return os.path.join(self.home, "Mail", name)

    def account(self, name="acct", tls="none", **kw):
        srv = self.srv
        port = {"none": srv.port, "starttls": srv.port,
                "implicit": srv.tls_port}[tls]
        keys = {
            "host": "127.0.0.1" if tls == "none" else "localhost",
            "port": port,
            "tls": tls,
            "user": "alice",
            "password_file": self.pwfile,
            "maildir": self.maildir(name),
            "timeout": "10s",
        }
        if tls == "none":
            keys["insecure"] = "yes"
        elif srv.ca_file:
            keys["ca_file"] = srv.ca_file
        keys.update(kw)
        lines = ["account " + name]
        lines += ["%s = %s" % (k, v) for k, v in keys.items()
                  if v is not None]
        return "\n".join(lines) + "\n"

    def write(self, *accounts):
        with open(self.conf, "w") as f:
            f.write("# test accounts\n\n" + "\n".join(accounts))

    def env(self):
        env = dict(os.environ, HOME=self.home)
        env.pop("XDG_STATE_HOME", None)
        env.pop("XDG_CONFIG_HOME", None)
        return env

    def run(self, *args, timeout=120):
        r = subprocess.run([postern_path(), "fetch", "-f", self.conf] +
                           list(args), env=self.env(), capture_output=True,
                           timeout=timeout)
        out = r.stdout.decode("utf-8", "replace")
        err = r.stderr.decode("utf-8", "replace")
        harness.check_sanitizer_output(err, "postern fetch")
        return r.returncode, out, err

    def popen(self, *args):
        return subprocess.Popen([postern_path(), "fetch", "-q", "-f",
                                 self.conf] + list(args), env=self.env(),
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)

    def delivered(self, name="acct"):
        """{file name: contents} of new/ and cur/."""
        out = {}
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir(name), sub)
            if not os.path.isdir(d):
                continue
            for fn in os.listdir(d):
                with open(os.path.join(d, fn), "rb") as f:
                    out[fn] = f.read()
        return out

    def journal(self, name="acct"):
        with open(os.path.join(self.state, name + ".journal"), "rb") as f:
            return f.read()


def server_messages(srv, user="alice"):
    out = []
    for path in srv.message_files(user).values():
        with open(path, "rb") as f:
            out.append(f.read())
    return out


def fill(srv, msgs=MESSAGES, user="alice"):
    srv.ensure_maildir(user)
    for m in msgs:
        srv.add_message(user, m)


@pytest.fixture
def tls_srv(make_server):
    s = make_server(tls=True, start=False)
    fill(s)
    s.start()
    return s


@pytest.fixture
def plain_srv(make_server):
    s = make_server(start=False)
    fill(s)
    s.start()
    return s


def test_plain_loopback_keep_byte_exact_then_nothing_new(tmp_path,
                                                         plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(keep="yes"))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("acct: %d messages fetched" % len(MESSAGES)), out
    got = sorted(c.delivered().values())
    assert got == sorted(lf_form(m) for m in MESSAGES)
    for fn in c.delivered():
        assert fn.startswith("acct.") and ",S=" in fn and ",W=" in fn
    # keep = yes: all still on the server.
    assert len(plain_srv.message_files("alice")) == len(MESSAGES)
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("acct: 0 messages fetched"), out
    assert len(c.delivered()) == len(MESSAGES)
    # Plain text to loopback: SCRAM-SHA-256, no -PLUS without TLS.
    assert "method=SCRAM-SHA-256 " in plain_srv.log_text()


def test_delivered_sizes_in_names_are_what_pop3_reports(tmp_path,
                                                        plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account())
    assert c.run()[0] == EX_OK
    for fn, data in c.delivered().items():
        s = int(fn.split(",S=")[1].split(",")[0])
        w = int(fn.split(",W=")[1].split(":")[0])
        assert s == len(data)
        assert w == harness.wire_size(data)


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_tls_modes_verified_with_ca_file(tmp_path, tls_srv, mode):
    c = Client(tmp_path, tls_srv)
    c.write(c.account(tls=mode))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert sorted(c.delivered().values()) == \
        sorted(lf_form(m) for m in MESSAGES)
    assert "method=SCRAM-SHA-256-PLUS " in tls_srv.log_text()
    assert "login SCRAM-SHA-256-PLUS" in out


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_wrong_ca_is_exit_77_naming_the_host(tmp_path, tls_srv, mode):
    c = Client(tmp_path, tls_srv)
    c.write(c.account(tls=mode, ca_file=tls_srv.pki.other_ca_cert))
    st, out, err = c.run()
    assert st == EX_PERM
    assert "TLS verification of localhost failed" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert c.delivered() == {}
    assert "login user=" not in tls_srv.log_text()


def test_system_cas_do_not_trust_the_test_ca(tmp_path, tls_srv):
    c = Client(tmp_path, tls_srv)
    c.write(c.account(tls="implicit", ca_file=None))
    st, out, err = c.run()
    assert st == EX_PERM
    assert "TLS verification of localhost failed" in err, err


def test_starttls_without_stls_never_falls_back(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(tls="starttls", host="127.0.0.1", ca_file="/dev/null"))
    st, out, err = c.run()
    assert st == EX_PERM
    assert "does not offer STLS" in err, err
    assert "login user=" not in plain_srv.log_text()


def test_keep_no_deletes_after_delivery(tmp_path, tls_srv):
    c = Client(tmp_path, tls_srv)
    c.write(c.account(tls="implicit", keep="no"))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert "%d deleted, 0 on the server" % len(MESSAGES) in out
    assert tls_srv.message_files("alice") == {}
    assert sorted(c.delivered().values()) == \
        sorted(lf_form(m) for m in MESSAGES)
    # The journal forgets what the server no longer has.
    assert c.journal() == b"postern-fetch-journal 2\n"
    st, out, err = c.run()
    assert st == EX_OK and out.startswith("acct: 0 messages fetched")


def test_user_pass_over_tls_when_no_sasl(tmp_path, make_server):
    s = make_server(tls=True, start=False,
                    config={"auth_mechanisms": "none"})
    fill(s)
    s.start()
    c = Client(tmp_path, s)
    c.write(c.account(tls="starttls"))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert "method=USER " in s.log_text()
    assert len(c.delivered()) == len(MESSAGES)


def test_no_user_pass_in_clear_text_to_a_remote_looking_server(
        tmp_path, make_server):
    """Without SASL and without TLS, USER/PASS is refused unless the peer
    is loopback with insecure = yes; here insecure is yes, and loopback,
    so it works; and SCRAM off leaves only USER."""
    s = make_server(start=False, config={"auth_mechanisms": "none",
                                         "disable_plaintext_auth": False})
    fill(s)
    s.start()
    c = Client(tmp_path, s)
    c.write(c.account())
    st, out, err = c.run()
    assert st == EX_OK, err
    assert "method=USER " in s.log_text()


def test_wrong_password_is_exit_77(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    with open(c.pwfile, "w") as f:
        f.write("not the password\n")
    c.write(c.account())
    st, out, err = c.run()
    assert st == EX_PERM
    assert "acct:" in err and "refused" in err, err
    assert c.delivered() == {}


def test_password_command_without_a_shell(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(password_file=None,
                      password_command="cat " + c.pwfile))
    st, out, err = c.run()
    assert st == EX_OK, err
    # Shell syntax is not interpreted: "cat FILE;true" names a file.
    c.write(c.account(password_file=None,
                      password_command="cat %s;true" % c.pwfile))
    st, out, err = c.run()
    assert st == EX_PERM
    assert "password_command" in err


def test_password_file_readable_by_others_is_refused(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    os.chmod(c.pwfile, 0o644)
    c.write(c.account())
    st, out, err = c.run()
    assert st == EX_PERM
    assert "chmod 600" in err, err
    assert "login user=" not in plain_srv.log_text()


def test_config_errors_name_file_and_line(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(insecure=None))
    st, out, err = c.run()
    assert st == EX_USAGE
    assert "%s:3: account acct: tls = none" % c.conf in err, err
    c.write(c.account() + "colour = blue\n")
    st, out, err = c.run()
    assert st == EX_USAGE
    assert "%s:12: unknown key 'colour'" % c.conf in err, err
    c.write(c.account(), c.account())
    st, out, err = c.run()
    assert st == EX_USAGE and "given twice" in err
    c.write(c.account())
    st, out, err = c.run("nosuch")
    assert st == EX_USAGE and "no account 'nosuch'" in err


def test_accounts_by_name(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account("one"), c.account("two"))
    st, out, err = c.run("two")
    assert st == EX_OK, err
    assert out.startswith("two:") and "one:" not in out
    assert c.delivered("one") == {}
    assert len(c.delivered("two")) == len(MESSAGES)
    st, out, err = c.run("--quiet")
    assert st == EX_OK and out == ""
    assert len(c.delivered("one")) == len(MESSAGES)


def test_second_run_on_a_locked_account_fails_at_once(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account())
    os.makedirs(c.state, exist_ok=True)
    fd = os.open(os.path.join(c.state, "acct.lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        t0 = time.monotonic()
        st, out, err = c.run()
        assert time.monotonic() - t0 < 5
        assert st == EX_TEMP
        assert "another postern fetch is running" in err, err
    finally:
        os.close(fd)
    assert c.delivered() == {}
    assert c.run()[0] == EX_OK


def test_damaged_journal_tail_is_survived(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account())
    assert c.run()[0] == EX_OK
    j = c.journal()
    assert j.count(b"\n") == 1 + len(MESSAGES)
    with open(os.path.join(c.state, "acct.journal"), "wb") as f:
        f.write(j[:-5])        # the last record cut short
    st, out, err = c.run()
    assert st == EX_OK, err
    assert "warning" in err and "1 damaged line" in err, err
    assert out.startswith("acct: 0 messages fetched"), out
    assert len(c.delivered()) == len(MESSAGES)
    assert c.journal().count(b"\n") == 1 + len(MESSAGES)


def test_lost_journal_does_not_duplicate(tmp_path, plain_srv):
    """A crash after the file reached new/ and before the journal record:
    the file name derived from the UIDL keeps the message from being
    stored twice, in new/ or once a reader moved it to cur/."""
    c = Client(tmp_path, plain_srv)
    c.write(c.account())
    assert c.run()[0] == EX_OK
    first = c.delivered()
    md = c.maildir()
    name = sorted(os.listdir(md + "/new"))[0]
    os.rename(md + "/new/" + name, md + "/cur/" + name + ":2,S")
    os.unlink(os.path.join(c.state, "acct.journal"))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("acct: 0 messages fetched"), out
    assert sorted(c.delivered().values()) == sorted(first.values())


def test_server_unreachable_is_exit_75(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(port=harness.free_port()))
    st, out, err = c.run()
    assert st == EX_TEMP
    assert "connecting to 127.0.0.1" in err, err


# Runs killed by test_kill_9_...: the issue asks for at least 200; the
# sanitizer build, several times slower, runs a fifth of them.
KILL_ROUNDS = 40 if harness.sanitizer_build() else 200
KILL_SECONDS = 300


def kill_runs(c, rnd, rounds, seconds, arrive, progress):
    """Starts client c's `postern fetch` again and again, at most rounds
    times within seconds, calling arrive() before each run, and kills it
    with SIGKILL: every other run at a random instant of its first 80
    ms, the others just after progress() (the stored messages, say)
    grew.  Returns (runs, kills)."""
    kills = done = 0
    deadline = time.monotonic() + seconds
    while done < rounds and time.monotonic() < deadline:
        arrive()
        p = c.popen()
        if done % 2 == 0:
            time.sleep(rnd.uniform(0.0, 0.08))
        else:
            # Aim at a delivery: wait for it, then kill within the next
            # few milliseconds.
            have = progress()
            until = time.monotonic() + 2
            while p.poll() is None and time.monotonic() < until and \
                    progress() <= have:
                time.sleep(0.0005)
            time.sleep(rnd.uniform(0.0, 0.003))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
        harness.check_sanitizer_output(
            p.stderr.read().decode("utf-8", "replace"), "postern fetch")
        p.stderr.close()
        done += 1
    return done, kills


def test_kill_9_at_random_instants_while_mail_arrives(tmp_path, make_server):
    """postern fetch (keep = no) is started again and again and killed
    with SIGKILL at random instants, while new messages keep arriving on
    the server between runs; afterwards every message the server ever
    had is delivered exactly once, byte for byte, and the server is
    empty."""
    s = make_server(start=False)
    rnd = random.Random(1939)
    serial = [0]

    def new_messages(n):
        out = []
        for _ in range(n):
            i = serial[0]
            serial[0] += 1
            # Mostly small, now and then large enough for a kill to
            # land inside its body.
            body = (b"line %d\n" % i) * (rnd.choice((1, 5, 40, 3000))
                                         if i % 7 else 20000)
            out.append(b"Subject: message %d\n\n.dot %d\n%s" % (i, i, body))
        return out

    sent = new_messages(30)
    fill(s, sent)
    s.start()
    c = Client(tmp_path, s)
    c.write(c.account(keep="no"))
    new = c.maildir() + "/new"

    def arrive():
        more = new_messages(rnd.randint(0, 4))
        fill(s, more)
        sent.extend(more)

    rounds, kills = kill_runs(
        c, rnd, KILL_ROUNDS, KILL_SECONDS, arrive,
        lambda: len(os.listdir(new)) if os.path.isdir(new) else 0)
    assert rounds == KILL_ROUNDS, "only %d runs in %d s" % (rounds,
                                                            KILL_SECONDS)
    assert kills >= rounds // 3, kills
    # A killed session may keep the mailbox locked for a moment.
    for _ in range(50):
        st, out, err = c.run()
        if st != EX_TEMP:
            break
        time.sleep(0.2)
    assert st == EX_OK, err
    assert s.message_files("alice") == {}
    got = sorted(c.delivered().values())
    assert len(got) == len(sent)
    assert got == sorted(lf_form(m) for m in sent)
    # What killed runs left in tmp/ is gone after the clean run.
    assert os.listdir(c.maildir() + "/tmp") == []


# ------------------------------------------------- a scripted fake server

class FakePop3:
    """A one-connection-at-a-time POP3 server on loopback that serves
    msgs, answers PASS with pass_reply, and records for each RETR how
    many more RETRs were already waiting behind it (pipelining)."""

    def __init__(self, msgs, capa=("USER", "UIDL"), pass_reply="+OK",
                 drop_at_retr=None, uidls=None, tls_ctx=None):
        import socket
        import threading
        self.msgs = list(msgs)
        # uidls: the UIDL of each message (default u0, u1...); False: the
        # server has no UIDL command.
        self.uidls = uidls
        self.tls_ctx = tls_ctx
        self.drop_at_retr = drop_at_retr
        self.retrs = []
        self.deleted = []
        self.capa = capa
        self.pass_reply = pass_reply
        self.outstanding = []
        self.commands = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                if self.tls_ctx is not None:
                    conn.settimeout(10)
                    conn = self.tls_ctx.wrap_socket(conn, server_side=True)
                    conn.settimeout(None)
                self.session(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def session(self, conn):
        marked = len(self.deleted)
        conn.sendall(b"+OK fake ready\r\n")
        buf = b""
        while True:
            while b"\r\n" not in buf:
                d = conn.recv(65536)
                if not d:
                    return
                buf += d
            line, buf = buf.split(b"\r\n", 1)
            cmd = line.decode().split(" ")
            self.commands.append(cmd[0])
            if cmd[0] == "CAPA":
                conn.sendall(b"+OK\r\n" + b"".join(
                    c.encode() + b"\r\n" for c in self.capa) + b".\r\n")
            elif cmd[0] == "USER":
                conn.sendall(b"+OK\r\n")
            elif cmd[0] == "PASS":
                conn.sendall(self.pass_reply.encode() + b"\r\n")
            elif cmd[0] == "UIDL" and self.uidls is False:
                conn.sendall(b"-ERR unknown command\r\n")
            elif cmd[0] == "UIDL":
                u = self.uidls or ["u%d" % i for i in range(len(self.msgs))]
                conn.sendall(b"+OK\r\n" + b"".join(
                    b"%d %s\r\n" % (i + 1, u[i].encode())
                    for i in range(len(self.msgs)) if self.msgs[i]
                    is not None) + b".\r\n")
            elif cmd[0] == "LIST":
                conn.sendall(b"+OK\r\n" + b"".join(
                    b"%d %d\r\n" % (i + 1, harness.wire_size(m))
                    for i, m in enumerate(self.msgs) if m is not None) +
                    b".\r\n")
            elif cmd[0] == "TOP" and "TOP" in self.capa:
                self.tops = getattr(self, "tops", 0) + 1
                m = self.msgs[int(cmd[1]) - 1]
                conn.sendall(b"+OK\r\n" + harness.multiline_body(m, top=0))
            elif cmd[0] == "RETR" and int(cmd[1]) == self.drop_at_retr:
                self.drop_at_retr = None
                conn.sendall(b"+OK\r\nSubject: cut")
                return
            elif cmd[0] == "RETR":
                self.retrs.append(int(cmd[1]))
                # Give a pipelining client time to send more.
                time.sleep(0.05)
                conn.setblocking(False)
                try:
                    buf += conn.recv(65536)
                except (BlockingIOError, ssl.SSLWantReadError):
                    pass
                conn.setblocking(True)
                self.outstanding.append(buf.count(b"RETR "))
                m = self.msgs[int(cmd[1]) - 1]
                conn.sendall(b"+OK\r\n" + harness.multiline_body(m))
            elif cmd[0] == "DELE":
                self.deleted.append(int(cmd[1]))
                conn.sendall(b"+OK\r\n")
            elif cmd[0] == "QUIT":
                # UPDATE: what this session deleted is gone (the other
                # messages keep their numbers, a simplification).
                for n in self.deleted[marked:]:
                    self.msgs[n - 1] = None
                conn.sendall(b"+OK bye\r\n")
                return
            else:
                conn.sendall(b"-ERR unknown\r\n")

    def close(self):
        self.sock.close()


@pytest.fixture
def fake():
    made = []

    def make(*a, **kw):
        f = FakePop3(*a, **kw)
        made.append(f)
        return f
    yield make
    for f in made:
        f.close()


class FakeSrv:
    def __init__(self, port):
        self.port = port
        self.tls_port = None
        self.ca_file = None


@pytest.mark.parametrize("pipelining", [True, False])
def test_pipelining_window(tmp_path, fake, pipelining):
    msgs = [b"Subject: %d\n\n.x\n" % i for i in range(40)]
    capa = ("USER", "UIDL") + (("PIPELINING",) if pipelining else ())
    f = fake(msgs, capa=capa)
    c = Client(tmp_path, FakeSrv(f.port))
    c.write(c.account(keep="no"))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert sorted(c.delivered().values()) == sorted(lf_form(m)
                                                    for m in msgs)
    assert f.commands.count("DELE") == len(msgs)
    if pipelining:
        # Up to a window of 16 RETRs out at once, never more.
        assert max(f.outstanding) >= 1
        assert max(f.outstanding) <= 15
        # The second window's RETRs go out before the first window's
        # DELEs (the server sends while the client flushes).
        cmds = f.commands
        assert cmds.index("RETR", cmds.index("RETR") + 16) < \
            cmds.index("DELE"), cmds
    else:
        assert max(f.outstanding) == 0


@pytest.mark.parametrize("pipelining", [True, False])
def test_connection_lost_inside_a_window_keeps_what_came_whole(
        tmp_path, fake, pipelining):
    msgs = [b"Subject: %d\n\nbody\n" % i for i in range(20)]
    capa = ("USER", "UIDL") + (("PIPELINING",) if pipelining else ())
    f = fake(msgs, capa=capa, drop_at_retr=5)
    c = Client(tmp_path, FakeSrv(f.port))
    c.write(c.account(keep="no"))
    st, out, err = c.run()
    assert st == EX_TEMP, err
    assert "closed the connection" in err, err
    # Messages 1 to 4 came whole: stored and journaled, not deleted.
    assert sorted(c.delivered().values()) == sorted(msgs[:4])
    assert sorted(journal_records(c)) == ["u0", "u1", "u2", "u3"]
    assert "DELE" not in f.commands
    assert os.listdir(c.maildir() + "/tmp") == []
    f.retrs.clear()
    st, out, err = c.run()
    assert st == EX_OK, err
    assert sorted(f.retrs) == list(range(5, 21))
    assert f.commands.count("DELE") == len(msgs)
    assert sorted(c.delivered().values()) == sorted(msgs)


def test_server_without_uidl_gets_digest_identities(tmp_path, fake):
    """No UIDL: each message is known by a digest of its headers and
    size, with one warning per run; two copies alike in headers and
    size are both delivered; nothing is fetched twice."""
    msgs = [b"Subject: a\n\nfirst\n", b"Subject: b\n\n.second\n",
            b"Subject: a\n\nfirsT\n", b"Subject: a\n\nlonger one\n",
            b"Subject: c\r\n\r\nthird\r\n"]
    f = fake(msgs, capa=("USER", "TOP", "PIPELINING"), uidls=False)
    c = Client(tmp_path, FakeSrv(f.port))
    c.write(c.account(keep="yes"))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("acct: 5 messages fetched"), out
    assert err.count("has no UIDL") == 1, err
    assert "1 message under an identity another message has" in err, err
    assert sorted(c.delivered().values()) == sorted(lf_form(m)
                                                    for m in msgs)
    ids = journal_records(c)
    assert len(ids) == 5
    assert all(u.startswith("postern-digest-") or
               u.startswith("postern-dup-") for u in ids)
    assert all(len(u) > 70 for u in ids)
    assert sum(u.startswith("postern-dup-") for u in ids) == 1
    # A second run: the same identities, nothing new.
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("acct: 0 messages fetched"), out
    assert sorted(journal_records(c)) == sorted(ids)
    # A new message arrives: only it is fetched.
    f.msgs.append(b"Subject: d\n\nnew\n")
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("acct: 1 message fetched"), out
    assert len(c.delivered()) == 6


def test_server_without_uidl_or_top_is_refused(tmp_path, fake):
    f = fake([b"Subject: a\n\nx\n"], capa=("USER",), uidls=False)
    c = Client(tmp_path, FakeSrv(f.port))
    c.write(c.account(keep="no"))
    st, out, err = c.run()
    assert st == EX_PERM, err
    assert "without UIDL, fetch needs TOP" in err, err
    assert c.delivered() == {} and "DELE" not in f.commands


def test_duplicate_uidls_are_all_fetched_then_deleted(tmp_path, fake):
    msgs = [b"Subject: %d\n\nbody %d\n" % (i, i) for i in range(5)]
    f = fake(msgs, capa=("USER", "UIDL", "PIPELINING"),
             uidls=["x", "y", "x", "z", "x"])
    c = Client(tmp_path, FakeSrv(f.port))
    c.write(c.account(keep="yes"))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert "2 messages under an identity another message has" in err, err
    assert sorted(c.delivered().values()) == sorted(msgs)
    ids = journal_records(c)
    assert {"x", "y", "z"} <= set(ids) and len(ids) == 5
    st, out, err = c.run()
    assert st == EX_OK and out.startswith("acct: 0 messages fetched"), out
    # keep = no now: the ambiguous ones were stored by an earlier run,
    # so they are fetched again before they are deleted; the others are
    # deleted without being fetched again.
    c.write(c.account(keep="no"))
    f.retrs.clear()
    st, out, err = c.run()
    assert st == EX_OK, err
    assert sorted(f.retrs) == [1, 3, 5]
    assert sorted(f.deleted) == [1, 2, 3, 4, 5]
    got = list(c.delivered().values())
    assert len(got) == 8
    assert all(got.count(msgs[i]) == 2 for i in (0, 2, 4))
    assert all(got.count(msgs[i]) == 1 for i in (1, 3))


def test_duplicate_uidls_never_delete_what_this_run_did_not_store(
        tmp_path, fake):
    """A message listed under a UIDL another one has is deleted (keep =
    no) only after this run stored it."""
    msgs = [b"Subject: %d\n\nbody %d\n" % (i, i) for i in range(3)]
    f = fake(msgs, capa=("USER", "UIDL"), uidls=["x", "x", "y"])
    c = Client(tmp_path, FakeSrv(f.port))
    c.write(c.account(keep="no"))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert sorted(f.retrs) == [1, 2, 3]
    assert sorted(f.deleted) == [1, 2, 3]
    assert sorted(c.delivered().values()) == sorted(msgs)


@pytest.mark.parametrize("reply,status", [
    ("-ERR [IN-USE] mailbox locked", EX_TEMP),
    ("-ERR [LOGIN-DELAY] wait 10 minutes", EX_TEMP),
    ("-ERR [SYS/TEMP] disk trouble", EX_TEMP),
    ("-ERR [AUTH] invalid password", EX_PERM),
    ("-ERR no", EX_PERM),
])
def test_login_reply_codes_decide_the_exit_status(tmp_path, fake, reply,
                                                   status):
    f = fake([b"x\n"], pass_reply=reply)
    c = Client(tmp_path, FakeSrv(f.port))
    c.write(c.account())
    st, out, err = c.run()
    assert st == status, err
    assert reply in err
    assert c.delivered() == {}


def test_keep_yes_then_no_deletes_what_was_fetched(tmp_path, plain_srv):
    """Journaled UIDLs still on the server are deleted once keep = no,
    without being fetched again."""
    c = Client(tmp_path, plain_srv)
    c.write(c.account(keep="yes"))
    assert c.run()[0] == EX_OK
    c.write(c.account(keep="no"))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("acct: 0 messages fetched"), out
    assert "%d deleted" % len(MESSAGES) in out
    assert plain_srv.message_files("alice") == {}
    assert len(c.delivered()) == len(MESSAGES)


def test_silent_server_times_out_with_exit_75(tmp_path):
    import socket
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        c = Client(tmp_path, FakeSrv(ls.getsockname()[1]))
        c.write(c.account(timeout="1s"))
        t0 = time.monotonic()
        st, out, err = c.run()
        assert st == EX_TEMP
        assert "no answer within 1 s" in err, err
        assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("offered,want", [
    ("SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN", "SCRAM-SHA-256"),
    ("SCRAM-SHA-1 CRAM-MD5 PLAIN", "SCRAM-SHA-1"),
    ("CRAM-MD5 PLAIN", "CRAM-MD5"),
    ("PLAIN", "PLAIN"),
])
def test_strongest_offered_mechanism_wins(tmp_path, make_server, offered,
                                          want):
    s = make_server(tls=True, start=False, users={},
                    config={"auth_mechanisms": offered})
    s.add_user("alice", PW, extra=["--secret"])
    fill(s)
    s.start()
    c = Client(tmp_path, s)
    c.write(c.account(tls="implicit"))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert "method=%s " % want in s.log_text()
    assert "login %s\n" % want in out
    assert len(c.delivered()) == len(MESSAGES)


def test_certificate_for_another_name_is_refused(tmp_path, make_server):
    pki = harness.tls_pki()
    s = make_server(tls=True, start=False,
                    config={"tls_cert": pki.mail_cert,
                            "tls_key": pki.mail_key})
    fill(s)
    s.start()
    c = Client(tmp_path, s)
    c.write(c.account(tls="implicit"))
    st, out, err = c.run()
    assert st == EX_PERM
    assert "TLS verification of localhost failed: hostname mismatch" \
        in err, err
    assert c.delivered() == {}


def test_only_own_leftover_tmp_files_are_removed(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    md = c.maildir("a")
    c.write(c.account("a", maildir=md), c.account("a.b", maildir=md))
    tmp = md + "/tmp"
    os.makedirs(tmp)
    h = "0123456789abcdef" * 2
    for fn in ("a.%s.999" % h, "a.b.%s.999" % h, "other"):
        with open(os.path.join(tmp, fn), "w") as f:
            f.write("partial")
    st, out, err = c.run("a")
    assert st == EX_OK, err
    assert sorted(os.listdir(tmp)) == sorted(["a.b.%s.999" % h, "other"])
    assert len(c.delivered("a")) == len(MESSAGES)


def test_write_failure_is_exit_75_and_the_next_run_completes(tmp_path,
                                                             plain_srv):
    """A file size limit (as good as a full disk) fails the big message
    with exit 75, leaves no part of it in new/ and deletes nothing; the
    next run stores the rest, each message once."""
    import resource
    c = Client(tmp_path, plain_srv)
    c.write(c.account(keep="no"))

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
    r = subprocess.run([postern_path(), "fetch", "-f", c.conf],
                       env=c.env(), capture_output=True, timeout=60,
                       preexec_fn=limit)
    err = r.stderr.decode()
    assert r.returncode == EX_TEMP, err
    assert "File too large" in err, err
    assert b"x" * 2000 not in b"".join(c.delivered().values())
    assert len(plain_srv.message_files("alice")) == len(MESSAGES)
    st, out, err = c.run()
    assert st == EX_OK, err
    assert sorted(c.delivered().values()) == \
        sorted(lf_form(m) for m in MESSAGES)
    assert plain_srv.message_files("alice") == {}


def test_check_counts_new_messages_and_changes_nothing(tmp_path,
                                                       plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(keep="no"), c.account("other", keep="no"))
    st, out, err = c.run("--check")
    assert st == EX_OK, err
    n = len(MESSAGES)
    assert out == ("acct: %d new messages, %d on the server\n"
                   "other: %d new messages, %d on the server\n"
                   % (n, n, n, n)), out
    assert err == ""
    # Nothing retrieved, nothing deleted, no Maildir made.
    assert len(plain_srv.message_files("alice")) == n
    assert not os.path.exists(c.maildir())
    # A fetch of one account, then a check counts only what is new.
    c.write(c.account(keep="yes"))
    assert c.run()[0] == EX_OK
    plain_srv.add_message("alice", b"Subject: late\n\nnew one\n")
    st, out, err = c.run("-c")
    assert st == EX_OK, err
    assert out == "acct: 1 new message, %d on the server\n" % (n + 1), out
    assert len(c.delivered()) == n
    st, out, err = c.run("--check", "--quiet")
    assert (st, out) == (EX_OK, ""), err


def test_check_sends_only_uidl_and_quit(tmp_path, fake):
    f = fake([b"Subject: a\n\nx\n", b"Subject: b\n\ny\n"],
             capa=("USER", "UIDL", "PIPELINING"))
    c = Client(tmp_path, FakeSrv(f.port))
    c.write(c.account(keep="no"))
    st, out, err = c.run("--check")
    assert st == EX_OK, err
    assert out == "acct: 2 new messages, 2 on the server\n", out
    assert f.commands[-2:] == ["UIDL", "QUIT"], f.commands
    assert "RETR" not in f.commands and "DELE" not in f.commands


def test_check_reports_failures_like_a_fetch(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    with open(c.pwfile, "w") as f:
        f.write("wrong\n")
    c.write(c.account())
    st, out, err = c.run("--check")
    assert st == EX_PERM
    assert out == ""
    assert err.startswith("postern fetch: acct: "), err


def fnv1a(data):
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xffffffff
    return h


def journal_records(c, name="acct"):
    """{uidl: time} of the account's (version 2) journal."""
    lines = c.journal(name).decode().splitlines()
    assert lines[0] == "postern-fetch-journal 2"
    out = {}
    for ln in lines[1:]:
        uidl, t, h = ln.split(" ")
        assert int(h, 16) == fnv1a(("%s %s" % (uidl, t)).encode())
        out[uidl] = int(t)
    return out


def write_journal(c, records, version=2, name="acct"):
    lines = ["postern-fetch-journal %d" % version]
    for uidl, t in records.items():
        body = uidl if version == 1 else "%s %d" % (uidl, t)
        lines.append("%s %08x" % (body, fnv1a(body.encode())))
    with open(os.path.join(c.state, name + ".journal"), "w") as f:
        f.write("\n".join(lines) + "\n")


def test_journal_records_the_time_of_each_uidl(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account())
    before = int(time.time())
    assert c.run()[0] == EX_OK
    recs = journal_records(c)
    assert len(recs) == len(MESSAGES)
    assert all(before <= t <= time.time() for t in recs.values())


def test_version_1_journal_is_read_and_upgraded(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account())
    assert c.run()[0] == EX_OK
    uidls = list(journal_records(c))
    write_journal(c, {u: 0 for u in uidls}, version=1)
    st, out, err = c.run()
    assert st == EX_OK, err
    assert err == ""
    assert out.startswith("acct: 0 messages fetched"), out
    assert sorted(journal_records(c)) == sorted(uidls)


def test_keep_days_deletes_what_was_journaled_long_ago(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(keep="yes"))
    assert c.run()[0] == EX_OK
    recs = journal_records(c)
    uidls = sorted(recs)
    now = int(time.time())
    old = uidls[:3]
    # Three journaled 10 days ago, one just short of 3 days, the rest now.
    for u in old:
        recs[u] = now - 10 * 86400
    recs[uidls[3]] = now - 3 * 86400 + 3600
    write_journal(c, recs)
    late = b"Subject: late\n\nnot yet fetched\n"
    plain_srv.add_message("alice", late)
    c.write(c.account(keep="yes", keep_days="3"))
    st, out, err = c.run()
    assert st == EX_OK, err
    n = len(MESSAGES)
    assert out.startswith("acct: 1 message fetched"), out
    assert "3 deleted, %d on the server" % (n + 1 - 3) in out, out
    assert len(plain_srv.message_files("alice")) == n + 1 - 3
    left = journal_records(c)
    assert len(left) == n + 1 - 3
    assert not set(left) & set(old)
    assert left[uidls[3]] == recs[uidls[3]]     # times survive compaction
    assert len(c.delivered()) == n + 1
    # Nothing else is old enough: a second run deletes nothing.
    st, out, err = c.run()
    assert st == EX_OK, err
    assert "0 deleted" in out, out


@pytest.mark.parametrize("keys,why", [
    ({"keep": "no", "keep_days": "3"}, "keep_days needs keep = yes"),
    ({"keep_days": "0"}, "keep_days wants a number of days"),
    ({"keep_days": "36501"}, "keep_days wants a number of days"),
    ({"keep_days": "3d"}, "keep_days wants a number of days"),
])
def test_keep_days_config_errors(tmp_path, plain_srv, keys, why):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(**keys))
    st, out, err = c.run()
    assert st == EX_USAGE
    assert why in err, err
    assert c.delivered() == {}


def test_only_new_no_fetches_every_message_again(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(keep="yes", only_new="no"))
    n = len(MESSAGES)
    want = sorted(lf_form(m) for m in MESSAGES)
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("acct: %d messages fetched" % n), out
    journal = journal_records(c)
    late = b"Subject: late\n\nfetched with the others\n"
    plain_srv.add_message("alice", late)
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("acct: %d messages fetched" % (n + 1)), out
    got = sorted(c.delivered().values())
    assert got == sorted(want * 2 + [late])
    # Fetched again, not journaled again; the new one is journaled.
    after = journal_records(c)
    assert len(after) == n + 1
    assert all(after[u] == t for u, t in journal.items())
    # Each copy has a file name of its own.
    assert len(set(fn.split(",")[0] for fn in c.delivered())) == 2 * n + 1
    # only_new = yes (the default) again: nothing is fetched.
    c.write(c.account(keep="yes"))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("acct: 0 messages fetched"), out


def test_only_new_no_with_keep_no(tmp_path, plain_srv):
    """Journaled but not yet deleted (keep was yes): fetched again, then
    deleted."""
    c = Client(tmp_path, plain_srv)
    c.write(c.account(keep="yes"))
    assert c.run()[0] == EX_OK
    c.write(c.account(keep="no", only_new="no"))
    st, out, err = c.run()
    assert st == EX_OK, err
    n = len(MESSAGES)
    assert out.startswith("acct: %d messages fetched" % n), out
    assert "%d deleted, 0 on the server" % n in out, out
    assert len(c.delivered()) == 2 * n
    assert plain_srv.message_files("alice") == {}


def test_only_new_wants_yes_or_no(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(only_new="maybe"))
    st, out, err = c.run()
    assert st == EX_USAGE
    assert "only_new wants yes or no" in err, err


def test_max_size_leaves_larger_messages_on_the_server(tmp_path,
                                                       make_server):
    big = b"Subject: big\n\n" + b"z" * 20000 + b"\n"
    small = [b"Subject: small %d\n\nbody\n" % i for i in range(3)]
    s = make_server(start=False)
    fill(s, [small[0], big] + small[1:])
    s.start()
    c = Client(tmp_path, s)
    c.write(c.account(keep="no", max_size="10k"))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("acct: 3 messages fetched"), out
    assert "3 deleted, 1 on the server" in out, out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("postern fetch: warning: acct: message ")
    assert "larger than max_size (10240); left on the server" in lines[0]
    assert sorted(c.delivered().values()) == sorted(small)
    assert list(s.message_files("alice").values())
    assert len(journal_records(c)) == 0     # deleted ones are forgotten
    # Still too large next time: warned again, not fetched.
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("acct: 0 messages fetched"), out
    assert "larger than max_size" in err
    # A larger limit lets it through, byte for byte.
    c.write(c.account(keep="no", max_size="1M"))
    st, out, err = c.run()
    assert (st, err) == (EX_OK, "")
    assert out.startswith("acct: 1 message fetched"), out
    assert sorted(c.delivered().values()) == sorted(small + [big])
    assert s.message_files("alice") == {}


@pytest.mark.parametrize("value", ["0", "2G", "10x", "-1", "1.5M"])
def test_max_size_config_errors(tmp_path, plain_srv, value):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(max_size=value))
    st, out, err = c.run()
    assert st == EX_USAGE
    assert "max_size wants a size from 1 to 1G" in err, err


# ------------------------------------------------------ delivery via an MDA

MDA = os.path.join(harness.REPO, "tests", "mda_sink.py")


def mda_files(d):
    out = []
    for fn in os.listdir(d):
        if not fn.startswith("."):
            with open(os.path.join(d, fn), "rb") as f:
                out.append(f.read())
    return sorted(out)


def test_mda_gets_each_message_byte_exact_then_nothing_new(tmp_path,
                                                           plain_srv):
    c = Client(tmp_path, plain_srv)
    out_dir = str(tmp_path / "mda")
    os.makedirs(out_dir)
    c.write(c.account(maildir=None, keep="no",
                      mda="%s %s" % (MDA, out_dir)))
    st, out, err = c.run()
    assert (st, err) == (EX_OK, ""), err
    assert out.startswith("acct: %d messages fetched" % len(MESSAGES)), out
    assert mda_files(out_dir) == sorted(lf_form(m) for m in MESSAGES)
    assert plain_srv.message_files("alice") == {}
    assert not os.path.exists(c.maildir())
    st, out, err = c.run()
    assert st == EX_OK and out.startswith("acct: 0 messages fetched"), out
    assert len(mda_files(out_dir)) == len(MESSAGES)


def test_mda_refusal_leaves_the_message_and_goes_on(tmp_path, make_server):
    good = [b"Subject: good %d\n\nbody\n" % i for i in range(3)]
    refused = b"Subject: refused\nX-Mda-Exit: 67\n\nno\n"
    unread = b"Subject: unread\nX-Mda-Stop: yes\n\n" + b"u" * 200000 + b"\n"
    s = make_server(start=False)
    fill(s, [good[0], refused, good[1], unread, good[2]])
    s.start()
    c = Client(tmp_path, s)
    out_dir = str(tmp_path / "mda")
    os.makedirs(out_dir)
    c.write(c.account(maildir=None, keep="no",
                      mda="%s %s" % (MDA, out_dir)))
    st, out, err = c.run()
    assert st == EX_PERM, err
    assert "exited 67; left on the server" in err, err
    assert "exited 0 without reading the whole message" in err, err
    assert "acct: the mda refused 2 messages (left on the server)" in err
    assert mda_files(out_dir) == sorted(good)
    left = sorted(server_messages(s))
    assert left == sorted([refused, unread])
    # Refused again next time, never lost, never deleted.
    st, out, err = c.run()
    assert st == EX_PERM, err
    assert sorted(server_messages(s)) == left
    assert mda_files(out_dir) == sorted(good)


def test_mda_temporary_failure_stops_the_account_with_75(tmp_path,
                                                         make_server):
    first = b"Subject: first\n\nbody\n"
    later = b"Subject: later\n\nbody\n"
    temp = b"Subject: temp\nX-Mda-Exit: 75\n\nbody\n"
    s = make_server(start=False)
    fill(s, [first, temp, later])
    s.start()
    c = Client(tmp_path, s)
    out_dir = str(tmp_path / "mda")
    os.makedirs(out_dir)
    c.write(c.account(maildir=None, keep="no",
                      mda="%s %s" % (MDA, out_dir)))
    st, out, err = c.run()
    assert st == EX_TEMP, err
    assert "exited 75 (temporary failure); it stays on the server" in err
    assert mda_files(out_dir) == [first]
    # Nothing deleted: the run stopped before its window's DELEs; the
    # first message is journaled and deleted by the next run.
    assert len(server_messages(s)) == 3
    assert len(journal_records(c)) == 1


@pytest.mark.parametrize("keys", [
    {"mda": "/bin/cat"},
    {"maildir": None},
])
def test_exactly_one_delivery_target(tmp_path, plain_srv, keys):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(**keys))
    st, out, err = c.run()
    assert st == EX_USAGE
    assert "account acct needs exactly one delivery target: maildir," \
        " mbox or mda" in err, err


# ----------------------------------------------------------------- output

def json_events(out):
    import json
    return [json.loads(line) for line in out.splitlines()]


def test_json_events_and_summary(tmp_path, make_server):
    big = b"Subject: big\n\n" + b"z" * 20000 + b"\n"
    s = make_server(start=False)
    fill(s, MESSAGES[:3] + [big])
    s.start()
    c = Client(tmp_path, s)
    c.write(c.account(keep="no", max_size="10k"),
            c.account("bad", port=harness.free_port()))
    st, out, err = c.run("--json")
    assert st == EX_TEMP, err
    ev = json_events(out)
    kinds = [e["event"] for e in ev]
    assert kinds == ["account", "skipped"] + ["message"] * 3 + \
        ["done", "account", "error", "summary"], kinds
    assert ev[0] == {"event": "account", "account": "acct",
                     "host": "127.0.0.1"}
    assert ev[1]["reason"] == "max_size"
    assert ev[1]["octets"] == harness.wire_size(big)
    stored = {lf_form(m) for m in MESSAGES[:3]}
    assert {e["octets"] for e in ev[2:5]} == {len(m) for m in stored}
    jr = set(e["id"] for e in ev[2:5])
    assert len(jr) == 3
    done = ev[5]
    assert (done["fetched"], done["deleted"], done["listed"],
            done["new"]) == (3, 3, 4, 4)
    assert done["octets"] == sum(len(m) for m in stored)
    assert done["login"] == "SCRAM-SHA-256" and done["seconds"] >= 0
    assert ev[7]["account"] == "bad" and ev[7]["status"] == EX_TEMP
    assert "connecting to 127.0.0.1" in ev[7]["reason"]
    sm = ev[8]
    assert (sm["accounts"], sm["failed"], sm["fetched"], sm["deleted"],
            sm["status"]) == (2, 1, 3, 3, EX_TEMP)
    # The error is on stderr as well, as one line.
    assert "postern fetch: bad: connecting to" in err
    # --check with --json.
    st, out, err = c.run("--json", "--check", "acct")
    assert st == EX_OK, err
    ev = json_events(out)
    assert [e["event"] for e in ev] == ["account", "check", "summary"]
    assert (ev[1]["new"], ev[1]["listed"]) == (1, 1)


def test_json_strings_are_escaped(tmp_path, fake):
    f = fake([b"Subject: a\n\nx\n"], uidls=['we"ird\\uid'])
    c = Client(tmp_path, FakeSrv(f.port))
    c.write(c.account())
    st, out, err = c.run("--json")
    assert st == EX_OK, err
    ev = json_events(out)
    assert ev[1]["id"] == 'we"ird\\uid'


def test_no_mail_status_is_opt_in(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(keep="yes"))
    assert c.run("--no-mail-status")[0] == EX_OK      # new mail fetched
    assert c.run()[0] == EX_OK                         # nothing new: 0
    st, out, err = c.run("--no-mail-status")
    assert (st, err) == (2, "")
    assert c.run("--check", "--no-mail-status")[0] == 2
    plain_srv.add_message("alice", b"Subject: late\n\nx\n")
    assert c.run("--check", "-n")[0] == EX_OK
    assert c.run("-n")[0] == EX_OK
    # A failure is never hidden behind 2.
    c.write(c.account(port=harness.free_port()))
    assert c.run("--no-mail-status")[0] == EX_TEMP


def run_on_a_terminal(c, *args):
    """Runs postern fetch with stderr (and stdout) on a pseudo-terminal;
    returns (status, what the terminal showed)."""
    import pty
    import select
    master, slave = pty.openpty()
    p = subprocess.Popen([postern_path(), "fetch", "-f", c.conf] +
                         list(args), env=c.env(), stdout=slave,
                         stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    got = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                d = os.read(master, 65536)
            except OSError:
                break
            if not d:
                break
            got += d
        elif p.poll() is not None:
            break
    os.close(master)
    return p.wait(timeout=30), got.decode("utf-8", "replace")


def test_progress_bar_only_on_a_terminal(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(keep="yes"))
    st, shown = run_on_a_terminal(c)
    assert st == EX_OK, shown
    n = len(MESSAGES)
    assert "\racct: %d/%d messages, " % (n, n) in shown, repr(shown)
    assert " MB/s\x1b[K" in shown and "\r\x1b[K" in shown, repr(shown)
    assert "acct: %d messages fetched" % n in shown
    # Not with --quiet, nor --json, nor when stderr is not a terminal.
    for name in ("q", "j"):
        c2 = Client(tmp_path / name, plain_srv)
        c2.write(c2.account(keep="yes"))
        st, shown = run_on_a_terminal(c2, "--quiet" if name == "q" else
                                      "--json")
        assert st == EX_OK and "MB/s" not in shown, repr(shown)
    c3 = Client(tmp_path / "p", plain_srv)
    c3.write(c3.account(keep="yes"))
    st, out, err = c3.run()
    assert st == EX_OK and err == "" and "\r" not in out


# ------------------------------------------------------------------ --every

@pytest.mark.parametrize("args,why", [
    (["--every", "0"], "--every wants a duration from 1s to 7d"),
    (["--every", "500ms"], "--every wants a duration from 1s to 7d"),
    (["--every", "5x"], "--every wants a duration from 1s to 7d"),
    (["--every", "8d"], "--every wants a duration from 1s to 7d"),
    (["--every", "5m", "--no-mail-status"], "exclude each other"),
])
def test_every_usage_errors(tmp_path, plain_srv, args, why):
    c = Client(tmp_path, plain_srv)
    c.write(c.account())
    st, out, err = c.run(*args)
    assert st == EX_USAGE
    assert why in err, err
    assert c.delivered() == {}


def poll_for(c, seconds, *args):
    """Runs postern fetch --every ... for about seconds, then SIGTERM;
    returns (status, stdout, stderr)."""
    p = subprocess.Popen([postern_path(), "fetch", "-f", c.conf] +
                         list(args), env=c.env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    time.sleep(seconds)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    err = err.decode("utf-8", "replace")
    harness.check_sanitizer_output(err, "postern fetch")
    return p.returncode, out.decode(), err


def test_every_polls_until_sigterm(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(keep="yes"))
    late = b"Subject: late\n\narrives while polling\n"
    p = subprocess.Popen([postern_path(), "fetch", "-f", c.conf,
                          "--every", "1s"], env=c.env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while len(c.delivered()) < len(MESSAGES) and time.monotonic() < deadline:
        time.sleep(0.05)
    plain_srv.add_message("alice", late)
    while len(c.delivered()) < len(MESSAGES) + 1 and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)
    assert p.poll() is None      # still polling
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert time.monotonic() - t0 < 10
    harness.check_sanitizer_output(err.decode(), "postern fetch")
    assert p.returncode == EX_OK, err
    lines = out.decode().splitlines()
    assert lines[0].startswith("acct: %d messages fetched" % len(MESSAGES))
    assert any(ln.startswith("acct: 1 message fetched") for ln in lines)
    assert len(lines) >= 3, lines
    assert sorted(c.delivered().values()) == \
        sorted([lf_form(m) for m in MESSAGES] + [late])


def test_every_honours_the_servers_login_delay(tmp_path, make_server):
    s = make_server(start=False, config={"login_delay": "3s"})
    fill(s)
    s.start()
    c = Client(tmp_path, s)
    c.write(c.account(keep="yes"))
    st, out, err = poll_for(c, 5.5, "--every", "1s")
    assert st == EX_OK, err
    # Polled every second, but logged in only when LOGIN-DELAY (3 s,
    # plus a second of margin) allowed: never refused by the server.
    assert "LOGIN-DELAY" not in err, err
    logins = out.splitlines()
    assert 1 <= len(logins) <= 2, out
    assert s.log_text().count("login user=alice") == len(logins)


# ------------------------------------------------- TLS options per account

def sha256_pins(cert):
    """(pin of the certificate, pin of its public key) as tls_pin wants."""
    import base64
    import hashlib
    der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    spki = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey",
                           "-noout"], capture_output=True,
                          check=True).stdout
    spki_der = subprocess.run(["openssl", "pkey", "-pubin", "-outform",
                               "DER"], input=spki, capture_output=True,
                              check=True).stdout
    return tuple("sha256:" + base64.b64encode(hashlib.sha256(d).digest())
                 .decode() for d in (der, spki_der))


def test_tls_pin_of_the_certificate_or_its_key(tmp_path, tls_srv):
    cert_pin, spki_pin = sha256_pins(tls_srv.pki.cert)
    other_pin, _ = sha256_pins(tls_srv.pki.other_cert)
    for pins in ([cert_pin], [other_pin, spki_pin]):
        c = Client(tmp_path / str(len(pins)), tls_srv)
        c.write(c.account(tls="implicit") +
                "".join("tls_pin = %s\n" % p for p in pins))
        st, out, err = c.run()
        assert st == EX_OK, err
        assert len(c.delivered()) == len(MESSAGES)
    c = Client(tmp_path / "wrong", tls_srv)
    c.write(c.account(tls="starttls") + "tls_pin = %s\n" % other_pin)
    logins = tls_srv.log_text().count("login user=")
    st, out, err = c.run()
    assert st == EX_PERM
    assert "TLS verification of localhost failed: its certificate matches" \
        " no tls_pin" in err, err
    assert c.delivered() == {}
    assert tls_srv.log_text().count("login user=") == logins


@pytest.mark.parametrize("line,why", [
    ("tls_pin = sha1:AAAA", "tls_pin wants sha256:"),
    ("tls_pin = sha256:" + "A" * 44, "tls_pin wants sha256:"),
    ("tls_pin = sha256:" + "A" * 42 + "==", "tls_pin wants sha256:"),
    ("tls_min_version = 1.1", "tls_min_version wants 1.2 or 1.3"),
    ("tls_cert = /x.pem", "tls_cert and tls_key go together"),
])
def test_tls_option_errors(tmp_path, tls_srv, line, why):
    c = Client(tmp_path, tls_srv)
    c.write(c.account(tls="implicit") + line + "\n")
    st, out, err = c.run()
    assert st == EX_USAGE
    assert why in err, err


def test_tls_options_need_tls(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account() + "tls_min_version = 1.3\n")
    st, out, err = c.run()
    assert st == EX_USAGE
    assert "need TLS" in err, err


def test_tls_min_version(tmp_path, fake, tls_srv):
    import ssl
    pki = tls_srv.pki
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.cert, pki.key)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    f = fake([b"Subject: a\n\nx\n"], tls_ctx=ctx)
    srv = FakeSrv(None)
    srv.tls_port = f.port
    srv.ca_file = pki.ca_cert
    c = Client(tmp_path, srv)
    c.write(c.account(tls="implicit", tls_min_version="1.3"))
    st, out, err = c.run()
    assert st in (EX_TEMP, EX_PERM), err
    assert "TLS handshake with localhost failed" in err, err
    assert c.delivered() == {}
    c.write(c.account(tls="implicit", tls_min_version="1.2"))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert len(c.delivered()) == 1
    # posternd speaks TLS 1.3.
    c2 = Client(tmp_path / "pd", tls_srv)
    c2.write(c2.account(tls="implicit", tls_min_version="1.3"))
    st, out, err = c2.run()
    assert st == EX_OK, err


def test_client_certificate_logs_in_with_external(tmp_path, make_server):
    pki = harness.tls_pki()
    s = make_server(tls=True, start=False,
                    config={"tls_client_cert": True,
                            "tls_client_ca": pki.ca_cert})
    fill(s)
    s.start()
    cert, key = pki.issue_client("alice")
    c = Client(tmp_path, s)
    c.write(c.account(tls="implicit", password_file=None, tls_cert=cert,
                      tls_key=key))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert "login EXTERNAL" in out, out
    assert "method=EXTERNAL " in s.log_text()
    assert len(c.delivered()) == len(MESSAGES)
    # Another user's certificate is refused for alice.
    cert, key = pki.issue_client("bob")
    c2 = Client(tmp_path / "bob", s)
    c2.write(c2.account(tls="implicit", password_file=None, tls_cert=cert,
                        tls_key=key))
    st, out, err = c2.run()
    assert st == EX_PERM, err
    # Without a password, a server without EXTERNAL is refused.
    c3 = Client(tmp_path / "nopw", s)
    c3.write(c3.account(tls="starttls", host="127.0.0.1",
                        password_file=None, tls_cert=pki.wrong_key,
                        tls_key=pki.wrong_key))
    st, out, err = c3.run()
    assert st == EX_PERM, err
    assert "tls_cert" in err, err


# ------------------------------------------------------- password prompt

def run_with_a_controlling_terminal(c, answer, *args):
    """Runs postern fetch on a new pseudo-terminal (its controlling
    terminal), answers answer to a password prompt; returns (status,
    what the terminal showed)."""
    import pty
    import select
    pid, master = pty.fork()
    if pid == 0:
        try:
            os.execve(postern_path(), [postern_path(), "fetch", "-f",
                                       c.conf] + list(args), c.env())
        finally:
            os._exit(127)
    got = b""
    sent = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.5)
        if not r:
            continue
        try:
            d = os.read(master, 65536)
        except OSError:
            break
        if not d:
            break
        got += d
        if not sent and b"Password for" in got:
            os.write(master, answer + b"\n")
            sent = True
    os.close(master)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), got.decode("utf-8", "replace")


def test_password_asked_on_the_terminal(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(password_file=None))
    st, shown = run_with_a_controlling_terminal(c, PW.encode())
    assert st == EX_OK, shown
    assert "Password for alice@127.0.0.1 (account acct): " in shown
    assert PW not in shown          # no echo
    assert len(c.delivered()) == len(MESSAGES)
    # A wrong answer is a refused login, exit 77.
    c2 = Client(tmp_path / "wrong", plain_srv)
    c2.write(c2.account(password_file=None))
    st, shown = run_with_a_controlling_terminal(c2, b"not it")
    assert st == EX_PERM, shown
    # No terminal to ask on (a new session has none): a clear error,
    # exit 77.
    r = subprocess.run([postern_path(), "fetch", "-f", c2.conf],
                       env=c2.env(), capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL, start_new_session=True)
    st, err = r.returncode, r.stderr.decode()
    assert st == EX_PERM
    assert "no password: the account has no password_file or" \
        " password_command" in err, err


# ------------------------------------------- auth list, OAuth bearer tokens

ISSUER = "https://issuer.fetch.test"
AUDIENCE = "pop3-fetch-test"


@pytest.fixture
def oauth_srv(make_server):
    import sasl_util as su
    keys = su.jwt_keys()
    s = make_server(tls=True, start=False, users={}, config={
        "oauth_issuer": ["%s %s" % (ISSUER, keys.pub("rsa"))],
        "oauth_audience": AUDIENCE,
        "auth_mechanisms": "SCRAM-SHA-256 CRAM-MD5 PLAIN OAUTHBEARER"
                           " XOAUTH2"})
    s.add_user("alice", PW, extra=["--secret"])
    fill(s)
    s.start()
    s.jwt_keys = keys
    return s


def token_file(tmp_path, keys, sub="alice", aud=AUDIENCE):
    import sasl_util as su
    path = str(tmp_path / ("token-%s-%s" % (sub, aud)))
    with open(path, "w") as f:
        f.write(su.make_jwt(keys, "rsa", su.claims(ISSUER, aud, sub)) +
                "\n")
    return path


@pytest.mark.parametrize("mech", ["OAUTHBEARER", "XOAUTH2"])
def test_bearer_token_from_token_command(tmp_path, oauth_srv, mech):
    tok = token_file(tmp_path, oauth_srv.jwt_keys)
    c = Client(tmp_path, oauth_srv)
    c.write(c.account(tls="implicit", password_file=None,
                      token_command="cat " + tok, auth=mech))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert "login %s\n" % mech in out, out
    assert "method=%s " % mech in oauth_srv.log_text()
    assert len(c.delivered()) == len(MESSAGES)


def test_bearer_token_is_tried_first_and_refusal_is_77(tmp_path,
                                                       oauth_srv):
    c = Client(tmp_path, oauth_srv)
    good = token_file(tmp_path, oauth_srv.jwt_keys)
    c.write(c.account(tls="implicit", token_command="cat " + good))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert "login OAUTHBEARER\n" in out, out
    bad = token_file(tmp_path, oauth_srv.jwt_keys, aud="someone-else")
    c2 = Client(tmp_path / "bad", oauth_srv)
    c2.write(c2.account(tls="implicit", password_file=None,
                        token_command="cat " + bad))
    st, out, err = c2.run()
    assert st == EX_PERM, err
    assert "(OAUTHBEARER) refused" in err, err
    c3 = Client(tmp_path / "fail", oauth_srv)
    c3.write(c3.account(tls="implicit", password_file=None,
                        token_command="false"))
    st, out, err = c3.run()
    assert st == EX_PERM
    assert "token_command false failed" in err, err


@pytest.mark.parametrize("auth,want", [
    ("CRAM-MD5", "CRAM-MD5"),
    ("PLAIN SCRAM-SHA-256", "PLAIN"),
    ("SCRAM-SHA-1 CRAM-MD5", "CRAM-MD5"),   # SCRAM-SHA-1 not offered
])
def test_auth_list_orders_and_restricts(tmp_path, oauth_srv, auth, want):
    c = Client(tmp_path, oauth_srv)
    c.write(c.account(tls="implicit", auth=auth))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert "login %s\n" % want in out, out
    assert "method=%s " % want in oauth_srv.log_text()


def test_auth_list_without_a_usable_method(tmp_path, oauth_srv):
    c = Client(tmp_path, oauth_srv)
    c.write(c.account(tls="implicit", auth="SCRAM-SHA-1 EXTERNAL"))
    st, out, err = c.run()
    assert st == EX_PERM
    assert "offers no login method this account can use" in err, err
    assert "among its auth list" in err, err
    assert "login user=" not in oauth_srv.log_text()


@pytest.mark.parametrize("value", ["KERBEROS_V4", "PLAIN PLAIN", "SCRAM-MD5"])
def test_auth_list_errors(tmp_path, plain_srv, value):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(auth=value))
    st, out, err = c.run()
    assert st == EX_USAGE
    assert "is unknown or given twice" in err, err


@pytest.mark.parametrize("target", ["maildir", "mda"])
def test_max_size_headers_stores_the_headers_once(tmp_path, make_server,
                                                  target):
    big = b"Subject: big\nFrom: a@example.org\n\n" + b"z" * 20000 + b"\n"
    small = [b"Subject: small %d\n\nbody\n" % i for i in range(2)]
    s = make_server(start=False)
    fill(s, [small[0], big, small[1]])
    s.start()
    c = Client(tmp_path, s)
    out_dir = str(tmp_path / "mda")
    os.makedirs(out_dir)
    keys = {"keep": "no", "max_size": "10k", "max_size_action": "headers"}
    if target == "mda":
        keys.update(maildir=None, mda="%s %s" % (MDA, out_dir))

    def got():
        if target == "mda":
            return mda_files(out_dir)
        return sorted(c.delivered().values())
    c.write(c.account(**keys))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("acct: 3 messages fetched"), out
    assert "2 deleted, 1 on the server" in out, out
    assert "only its headers are stored, it stays on the server" in err
    head = (b"X-Postern-Headers-Only: %d octets, left on the server"
            b" (max_size)\n" % harness.wire_size(big) +
            b"Subject: big\nFrom: a@example.org\n\n")
    assert got() == sorted(small + [head])
    assert server_messages(s) == [big]
    recs = journal_records(c)
    assert len(recs) == 1 and list(recs)[0].startswith("postern-headers-")
    # Not again, and no warning: its headers are journaled.
    st, out, err = c.run()
    assert (st, err) == (EX_OK, "")
    assert out.startswith("acct: 0 messages fetched"), out
    assert got() == sorted(small + [head])
    assert journal_records(c) == recs
    # Let it through: the whole message comes, and is deleted.
    keys["max_size"] = "1M"
    c.write(c.account(**keys))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("acct: 1 message fetched"), out
    assert got() == sorted(small + [head, big])
    assert s.message_files("alice") == {}


def test_max_size_action_errors(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(max_size_action="headers"))
    st, out, err = c.run()
    assert st == EX_USAGE and "max_size_action needs max_size" in err, err
    c.write(c.account(max_size="1M", max_size_action="truncate"))
    st, out, err = c.run()
    assert st == EX_USAGE and "max_size_action wants skip or headers" in err


def test_apop_between_cram_md5_and_plain(tmp_path, make_server):
    s = make_server(start=False, users={},
                    config={"apop": "yes", "hostname": "pop.test.example",
                            "auth_mechanisms": "PLAIN",
                            "disable_plaintext_auth": False})
    s.add_user("alice", PW, extra=["--secret"])
    fill(s)
    s.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with s.connect() as conn:
            if "<" in conn.greeting:
                break
        time.sleep(0.05)
    c = Client(tmp_path, s)
    c.write(c.account())
    st, out, err = c.run()
    assert st == EX_OK, err
    assert "login APOP\n" in out, out
    assert "method=APOP " in s.log_text()
    assert sorted(c.delivered().values()) == sorted(lf_form(m)
                                                    for m in MESSAGES)
    # auth = PLAIN passes over it.
    c2 = Client(tmp_path / "plain", s)
    c2.write(c2.account(auth="PLAIN"))
    st, out, err = c2.run()
    assert st == EX_OK, err
    assert "login PLAIN\n" in out, out


def test_apop_needs_the_greetings_timestamp(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    c.write(c.account(auth="APOP"))
    st, out, err = c.run()
    assert st == EX_PERM
    assert "offers no login method this account can use" in err, err


def test_mda_arguments_name_the_account_and_user(tmp_path, plain_srv):
    c = Client(tmp_path, plain_srv)
    base = tmp_path / "mda"
    out_dir = base / "acct-alice-100%"
    os.makedirs(out_dir)
    c.write(c.account(maildir=None, mda="%s %s/%%a-%%u-100%%%%" %
                      (MDA, base)))
    st, out, err = c.run()
    assert st == EX_OK, err
    assert mda_files(str(out_dir)) == sorted(lf_form(m) for m in MESSAGES)
    c.write(c.account(maildir=None, mda="%s %s/%%x" % (MDA, base)))
    st, out, err = c.run()
    assert st == EX_USAGE
    assert "mda: % must be followed by a (the account), u (the user)" \
        " or %" in err, err
