"""
XTND XMIT (qpopper's sending of mail through POP3) against a live
posternd whose xmit_command is tests/xmit_sink.py, a program that records
its argv and standard input, or whose xmit_relay is a small SMTP sink in
this file.  See postern.conf(5) (xmit_*) and posternd(8), XTND XMIT.
"""

import json
import os
import shutil
import socket
import tempfile
import threading
import time

import pytest

import harness

SINK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "xmit_sink.py")
PYTHON = "/usr/bin/python3"

START = "+OK Start sending message."
SENT = "+OK Message sent successfully"
TEMP = "-ERR [SYS/TEMP] The message was not sent, try later."
PERM = "-ERR [SYS/PERM] The mail system refused the message."

MSG = (b"From: Alice <alice@example.test>\r\n"
       b"To: bob@example.test\r\n"
       b"Subject: hello\r\n"
       b"Message-ID: <m1@example.test>\r\n"
       b"\r\n"
       b"Hello Bob.\r\n")


class Sink:
    """The recording submission command's directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="postern-xmit-")
        os.chmod(self.dir, 0o777)

    @property
    def command(self):
        return "%s %s %s" % (PYTHON, SINK, self.dir)

    def set_exit(self, code):
        with open(os.path.join(self.dir, "exit_code"), "w") as f:
            f.write("%d\n" % code)
        os.chmod(os.path.join(self.dir, "exit_code"), 0o644)

    def set_sleep(self, seconds):
        with open(os.path.join(self.dir, "sleep"), "w") as f:
            f.write("%d\n" % seconds)

    def messages(self):
        out = []
        n = 0
        while True:
            path = os.path.join(self.dir, "msg-%d.json" % n)
            if not os.path.exists(path):
                return out
            with open(path) as f:
                rec = json.load(f)
            # argv[0] is the script (python3 runs it): what posternd
            # passed follows the sink's directory.
            rec["args"] = rec["argv"][2:]
            rec["data"] = rec["stdin"].encode("latin-1")
            out.append(rec)
            n += 1


@pytest.fixture
def sink():
    s = Sink()
    yield s
    shutil.rmtree(s.dir, ignore_errors=True)


def xmit_config(sink, **kw):
    c = {"xmit": True, "xmit_domain": "example.test",
         "xmit_command": sink.command}
    c.update(kw)
    return c


def stuff(data):
    """Byte-stuffs a message (CRLF lines) and adds the end mark."""
    lines = data.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n"
                    for l in lines) + b".\r\n"


def xmit(c, data, expect=SENT):
    st = c.command("XTND XMIT")
    assert st == START
    c.send(stuff(data))
    st = c.status(timeout=30)
    if expect is not None:
        assert st == expect
    return st


def lf(data):
    return data.replace(b"\r\n", b"\n")


# ------------------------------------------------------------ the command

def test_disabled_not_advertised_and_unknown(make_server):
    srv = make_server()
    c = srv.connect()
    assert not any(l.startswith("XTND") for l in c.capa())
    assert c.command("XTND XMIT") == "-ERR Unknown command."
    c.login("alice", srv.users["alice"])
    assert not any(l.startswith("XTND") for l in c.capa())
    assert c.command("XTND XMIT") == "-ERR Unknown command."
    assert c.command("NOOP") == "+OK"
    c.quit()


def test_advertised_and_wrong_state(make_server, sink):
    srv = make_server(config=xmit_config(sink))
    c = srv.connect()
    assert "XTND XMIT" in c.capa()
    assert c.command("XTND XMIT") == "-ERR Command not valid in this state."
    c.login("alice", srv.users["alice"])
    assert "XTND XMIT" in c.capa()
    assert c.command("XTND FOO") == "-ERR Unknown command."
    assert c.command("XTND") == "-ERR Unknown command."
    c.quit()
    assert sink.messages() == []


def test_send_exact_replies_argv_and_spool(make_server, sink):
    srv = make_server(config=xmit_config(sink))
    c = srv.login("alice")
    msg = (b"From: Alice <alice@example.test>\r\n"
           b"To: Bob <bob@example.test>\r\n"
           b"Bcc: secret@example.test,\r\n"
           b"  other@example.test\r\n"
           b"Subject: dots\r\n"
           b"\r\n"
           b".starts with a dot\r\n"
           b"..two dots\r\n"
           b"end\r\n")
    assert c.command("XTND XMIT") == START
    c.send(stuff(msg))
    assert c.status(timeout=30) == SENT
    assert c.command("NOOP") == "+OK"
    c.quit()
    [rec] = sink.messages()
    assert rec["args"] == [
        "-f", "alice@example.test", "--", "bob@example.test",
        "secret@example.test", "other@example.test"]
    assert rec["data"] == (b"From: Alice <alice@example.test>\n"
                           b"To: Bob <bob@example.test>\n"
                           b"Subject: dots\n"
                           b"\n"
                           b".starts with a dot\n"
                           b"..two dots\n"
                           b"end\n")
    assert b"Bcc" not in rec["data"] and b"secret" not in rec["data"]
    srv.wait_log(r"info: xmit user=alice msgid=- rcpts=3 size=%d"
                 r" outcome=sent exit=0" % len(msg))


def test_command_runs_as_mail_user_with_nothing_else(make_server, sink):
    srv = make_server(config=xmit_config(sink))
    c = srv.login("alice")
    xmit(c, MSG)
    c.quit()
    [rec] = sink.messages()
    if harness.is_root():
        import pwd
        nobody = pwd.getpwnam("nobody")
        assert (rec["uid"], rec["gid"]) == (nobody.pw_uid, nobody.pw_gid)
        assert rec["groups"] in ([], [nobody.pw_gid])
    else:
        assert rec["uid"] == os.getuid()
    # Python sets LC_CTYPE itself in a C locale (PEP 538).
    rec["env"].pop("LC_CTYPE", None)
    assert rec["env"] == {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    # Standard input, output and error, and the listing's own one.
    assert rec["fds"][:3] == [0, 1, 2] and len(rec["fds"]) <= 4


def test_address_lists(make_server, sink):
    srv = make_server(config=xmit_config(sink))
    c = srv.login("alice")
    msg = (b'From: "Smith, Alice" (work) <alice@example.test>\r\n'
           b'To: Team: "Doe, John" <john@example.test>, jane@example.test;,\r\n'
           b'\t"odd local"@example.test (a comment, with a comma),\r\n'
           b'  Routed <@relay.example:route@example.test>\r\n'
           b'Cc: undisclosed-recipients:;, <lit@[192.0.2.1]>,\r\n'
           b' (nested (comment)) JOHN@example.test, john@example.test\r\n'
           b'cc: last@example.test\r\n'
           b'BCC: Hidden <hidden@example.test>\r\n'
           b'Message-ID: <abc@example.test>\r\n'
           b'\r\n'
           b'body\r\n')
    xmit(c, msg)
    c.quit()
    [rec] = sink.messages()
    assert rec["args"][:4] == ["-f", "alice@example.test", "--",
                               "john@example.test"]
    assert rec["args"][4:] == [
        "jane@example.test", '"odd local"@example.test',
        "route@example.test", "lit@[192.0.2.1]", "JOHN@example.test",
        "last@example.test", "hidden@example.test"]
    assert b"hidden" not in rec["data"].lower()
    assert rec["data"].startswith(b'From: "Smith, Alice" (work)')
    assert b"\tcomment" not in rec["data"]
    srv.wait_log(r"xmit user=alice msgid=<abc@example.test> rcpts=8 ")


@pytest.mark.parametrize("header, reason", [
    (b"To: bob", "-ERR Bad address in the To field."),
    (b"To: <bob@example.test", "-ERR Bad address in the To field."),
    (b"Cc: a@b.test, (unclosed", "-ERR Bad address in the Cc field."),
    (b"To: -oQ/tmp@example.test", "-ERR Bad address in the To field."),
    (b"To: a..b@example.test", "-ERR Bad address in the To field."),
    (b"Bcc: x@", "-ERR Bad address in the Bcc field."),
    (b"no colon here", "-ERR Malformed header line."),
])
def test_bad_headers_refused_session_in_step(make_server, sink, header,
                                              reason):
    srv = make_server(config=xmit_config(sink))
    c = srv.login("alice")
    msg = b"From: alice@example.test\r\n" + header + b"\r\n\r\nbody\r\n"
    xmit(c, msg, expect=reason)
    assert c.command("STAT") == "+OK 0 0"
    c.quit()
    assert sink.messages() == []
    srv.wait_log(r"xmit refused user=alice msgid=- rcpts=\d+ size=\d+"
                 r" reason=bad-header")


def test_no_recipients(make_server, sink):
    srv = make_server(config=xmit_config(sink))
    c = srv.login("alice")
    xmit(c, b"From: alice@example.test\r\nTo: group:;\r\n\r\nx\r\n",
         expect="-ERR No recipients: give them in To, Cc or Bcc.")
    xmit(c, b"From: alice@example.test\r\nSubject: x\r\n",
         expect="-ERR No recipients: give them in To, Cc or Bcc.")
    assert c.command("NOOP") == "+OK"
    c.quit()
    assert sink.messages() == []


def test_header_only_message(make_server, sink):
    srv = make_server(config=xmit_config(sink))
    c = srv.login("alice")
    xmit(c, b"From: alice@example.test\r\nTo: bob@example.test\r\n")
    c.quit()
    [rec] = sink.messages()
    assert rec["data"] == b"From: alice@example.test\nTo: bob@example.test\n"


def test_from_must_belong(make_server, sink):
    srv = make_server(config=xmit_config(sink))
    srv.add_user("dave@example.org", "Dave-Secret-1234")
    c = srv.login("alice")
    for frm in (b"mallory@example.test", b"alice@example.org",
                b"Alice@example.test"):
        xmit(c, b"From: " + frm + b"\r\nTo: bob@example.test\r\n\r\nx\r\n",
             expect="-ERR The From address is not one of yours.")
    # Every From mailbox and the Sender must be the user's.
    xmit(c, b"From: alice@example.test, eve@example.test\r\n"
         b"To: bob@example.test\r\n\r\nx\r\n",
         expect="-ERR The From address is not one of yours.")
    xmit(c, b"From: alice@example.test\r\nSender: eve@example.test\r\n"
         b"To: bob@example.test\r\n\r\nx\r\n",
         expect="-ERR The From address is not one of yours.")
    xmit(c, b"To: bob@example.test\r\n\r\nx\r\n",
         expect="-ERR The message has no From address.")
    # The domain in any case.
    xmit(c, b"From: alice@EXAMPLE.Test\r\nTo: bob@example.test\r\n\r\nx\r\n")
    c.quit()
    c = srv.login("dave@example.org", "Dave-Secret-1234")
    xmit(c, b"From: dave@example.test\r\nTo: bob@example.test\r\n\r\nx\r\n",
         expect="-ERR The From address is not one of yours.")
    xmit(c, b"From: dave@Example.ORG\r\nTo: bob@example.test\r\n\r\nx\r\n")
    c.quit()
    recs = sink.messages()
    assert [r["args"][1] for r in recs] == ["alice@EXAMPLE.Test",
                                           "dave@Example.ORG"]
    srv.wait_log(r"xmit refused user=alice msgid=- rcpts=1 size=\d+"
                 r" reason=foreign-from")


def test_from_check_off_and_sender_is_envelope(make_server, sink):
    srv = make_server(config=xmit_config(sink, xmit_check_from=False))
    c = srv.login("alice")
    xmit(c, b"From: list@example.net\r\nSender: owner@example.net\r\n"
         b"To: bob@example.test\r\n\r\nx\r\n")
    c.quit()
    [rec] = sink.messages()
    assert rec["args"][:2] == ["-f", "owner@example.net"]


def test_tls_required_always(make_server, sink):
    srv = make_server(config=xmit_config(sink, xmit_require_tls="always"),
                      tls=True)
    c = srv.login("alice")
    assert "XTND XMIT" not in c.capa()
    assert c.command("XTND XMIT") == \
        "-ERR XTND XMIT needs TLS on this connection."
    assert c.command("NOOP") == "+OK"
    c.quit()
    c = srv.login_tls("alice")
    assert "XTND XMIT" in c.capa()
    xmit(c, MSG)
    c.quit()
    c = srv.login_stls("alice")
    xmit(c, MSG)
    c.quit()
    assert len(sink.messages()) == 2


def test_tls_not_needed_on_loopback_by_default(make_server, sink):
    srv = make_server(config=xmit_config(sink), tls=True)
    c = srv.login("alice")
    assert "XTND XMIT" in c.capa()
    xmit(c, MSG)
    c.quit()


def test_size_limit(make_server, sink):
    srv = make_server(config=xmit_config(sink, xmit_max_size="1k"))
    c = srv.login("alice")
    head = b"From: alice@example.test\r\nTo: bob@example.test\r\n\r\n"
    body = b"x" * 70 + b"\r\n"
    fits = head + body * ((1024 - len(head)) // len(body))
    assert len(fits) <= 1024
    xmit(c, fits)
    xmit(c, fits + body,
         expect="-ERR Message too large (at most 1024 octets).")
    xmit(c, head + b"y" * 20000 + b"\r\n",
         expect="-ERR A line of the message is longer than 16384 octets.")
    assert c.command("NOOP") == "+OK"
    c.quit()
    assert len(sink.messages()) == 1
    srv.wait_log(r"xmit refused user=alice msgid=- rcpts=\d+ size=\d+"
                 r" reason=too-large")


def test_nul_refused(make_server, sink):
    srv = make_server(config=xmit_config(sink))
    c = srv.login("alice")
    xmit(c, MSG + b"a\0b\r\n",
         expect="-ERR The message contains a NUL octet.")
    assert c.command("NOOP") == "+OK"
    c.quit()
    assert sink.messages() == []


def test_recipient_limit(make_server, sink):
    srv = make_server(config=xmit_config(sink, xmit_max_recipients=3))
    c = srv.login("alice")
    to = b", ".join(b"r%d@example.test" % i for i in range(4))
    xmit(c, b"From: alice@example.test\r\nTo: " + to + b"\r\n\r\nx\r\n",
         expect="-ERR Too many recipients (at most 3).")
    to = b", ".join(b"r%d@example.test" % i for i in range(3))
    xmit(c, b"From: alice@example.test\r\nTo: " + to + b"\r\n\r\nx\r\n")
    c.quit()
    assert len(sink.messages()) == 1


def test_rate_limit_across_workers(make_server, sink):
    srv = make_server(config=xmit_config(sink, xmit_max_per_hour=2))
    conns = [srv.login("alice") for _ in range(3)]
    xmit(conns[0], MSG)
    xmit(conns[1], MSG)
    xmit(conns[2], MSG, expect="-ERR [SYS/TEMP] Too many messages sent; at"
         " most 2 an hour.")
    # Another user has a bucket of their own.
    c = srv.login("bob")
    xmit(c, MSG.replace(b"From: Alice <alice@", b"From: <bob@"))
    for c in conns + [c]:
        c.quit()
    assert len(sink.messages()) == 3
    srv.wait_log(r"xmit user=alice msgid=<m1@example.test> rcpts=1 size=\d+"
                 r" outcome=rate-limited")


@pytest.mark.parametrize("code, reply, outcome", [
    (75, TEMP, "tempfail"), (1, PERM, "permfail"), (69, PERM, "permfail")])
def test_command_exit_status(make_server, sink, code, reply, outcome):
    sink.set_exit(code)
    srv = make_server(config=xmit_config(sink))
    c = srv.login("alice")
    xmit(c, MSG, expect=reply)
    assert c.command("NOOP") == "+OK"
    c.quit()
    srv.wait_log(r"outcome=%s exit=%d" % (outcome, code))


def test_command_missing_is_temporary(make_server):
    srv = make_server(config={"xmit": True, "xmit_domain": "example.test",
                              "xmit_command": "/nonexistent/sendmail -i"})
    c = srv.login("alice")
    xmit(c, MSG, expect=TEMP)
    c.quit()
    srv.wait_log(r"cannot run /nonexistent/sendmail")


def test_command_timeout(make_server, sink):
    sink.set_sleep(20)
    srv = make_server(config=xmit_config(sink, xmit_timeout="1s"))
    c = srv.login("alice")
    t0 = time.monotonic()
    xmit(c, MSG, expect=TEMP)
    assert time.monotonic() - t0 < 10
    c.quit()
    srv.wait_log(r"outcome=tempfail signal=9 reason=timeout")
    assert sink.messages() == []


def test_pipelining_after_the_message(make_server, sink):
    srv = make_server(config=xmit_config(sink))
    c = srv.login("alice")
    c.send(b"XTND XMIT\r\n" + stuff(MSG) + b"NOOP\r\nSTAT\r\n"
           b"XTND XMIT\r\n" + stuff(MSG) + b"LIST\r\n")
    assert c.status() == START
    assert c.status(timeout=30) == SENT
    assert c.status() == "+OK"
    assert c.status() == "+OK 0 0"
    assert c.status() == START
    assert c.status(timeout=30) == SENT
    assert c.status().startswith("+OK 0 messages")
    assert c.read_multiline() == b".\r\n"
    c.quit()
    assert len(sink.messages()) == 2


@pytest.mark.parametrize("line, error", [
    ("xmit_command = /usr/sbin/sendmail -t -i",
     "xmit_command: remove -t: posternd gives the recipients as arguments"),
    ("xmit_command = sendmail -i",
     "xmit_command: 'sendmail' is not an absolute path"),
    ("xmit_relay = localhost", "xmit_relay: 'localhost' is not HOST:PORT"),
    ("xmit_relay = localhost:0", "xmit_relay: 'localhost:0' is not HOST:PORT"),
    ("xmit_relay = [::1:25", "xmit_relay: '[::1:25' is not HOST:PORT"),
    ("xmit_domain = @example.org",
     "xmit_domain: '@example.org' is not a domain"),
    ("xmit_require_tls = maybe",
     "xmit_require_tls: 'maybe' is not yes, always or no"),
    ("xmit_max_recipients = 201", "xmit_max_recipients: '201' is out of"
     " range (use 1 to 200)"),
    ("xmit_max_per_hour = 0", "xmit_max_per_hour: '0' is out of range"),
    ("xmit_max_size = 2G", "xmit_max_size: '2G' is out of range"),
    ("xmit_timeout = 0", "xmit_timeout: '0' is out of range"),
    ("xmit_relay_starttls = yes",
     "xmit_relay_starttls needs xmit_relay"),
])
def test_config_errors(tmp_path, line, error):
    conf = tmp_path / "postern.conf"
    conf.write_text("xmit = yes\n" + line + "\n")
    r = harness.posternd("-t", "-c", str(conf))
    assert r.returncode == 1
    assert ("%s:2: %s" % (conf, error)).encode() in r.stderr, r.stderr


@pytest.mark.parametrize("line", [
    "xmit_relay = [::1]:587", "xmit_relay = mail.example.org:25",
    "xmit_relay = none", "xmit_domain = example.org example.net",
    "xmit_require_tls = always", "xmit_require_tls = no",
    "xmit_command = /usr/sbin/sendmail -C /etc/postfix-out -i",
])
def test_config_accepted(tmp_path, line):
    conf = tmp_path / "postern.conf"
    conf.write_text("xmit = yes\n" + line + "\n")
    r = harness.posternd("-t", "-c", str(conf))
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------- SMTP relay

class SmtpSink:
    """A tiny SMTP server on loopback: records each transaction; replies
    chosen per command by the test (dict verb -> reply line)."""

    def __init__(self, replies=None, tls_context=None):
        self.replies = replies or {}
        self.tls_context = tls_context
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.transactions = []
        self.commands = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        deadline = time.monotonic() + 120
        while not self.stop and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            try:
                self._session(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def _session(self, conn):
        conn.settimeout(10)
        f = conn.makefile("rb")

        def say(line):
            conn.sendall(line.encode() + b"\r\n")

        say("220 sink.test ESMTP")
        tx = None
        in_tls = False
        for _ in range(1000):
            line = f.readline()
            if not line:
                return
            cmd = line.rstrip(b"\r\n").decode("latin-1")
            self.commands.append(cmd)
            verb = cmd.split(":")[0].split(" ")[0].upper()
            if verb in self.replies:
                say(self.replies[verb])
                if self.replies[verb][0] in "45":
                    continue
            if verb == "EHLO":
                say("250-sink.test\r\n250-PIPELINING\r\n250 STARTTLS"
                    if self.tls_context and not in_tls else
                    "250-sink.test\r\n250-8BITMIME\r\n250 PIPELINING")
            elif verb == "STARTTLS" and self.tls_context and not in_tls:
                say("220 go ahead")
                conn = self.tls_context.wrap_socket(conn, server_side=True)
                in_tls = True
                f = conn.makefile("rb")

                def say(line, conn=conn):
                    conn.sendall(line.encode() + b"\r\n")
            elif verb == "MAIL":
                tx = {"from": cmd, "rcpt": [], "data": b"", "tls": in_tls}
                say("250 ok")
            elif verb == "RCPT":
                tx["rcpt"].append(cmd)
                say("250 ok")
            elif verb == "DATA":
                say("354 go")
                data = b""
                while True:
                    l = f.readline()
                    if not l or l == b".\r\n":
                        break
                    data += l
                tx["data"] = data
                self.transactions.append(tx)
                say("250 queued")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:
                say("250 ok")

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def smtp_sink():
    sinks = []

    def make(replies=None, tls_context=None):
        s = SmtpSink(replies, tls_context)
        sinks.append(s)
        return s
    yield make
    for s in sinks:
        s.close()


def test_relay_mode(make_server, smtp_sink):
    relay = smtp_sink()
    srv = make_server(config={"xmit": True, "xmit_domain": "example.test",
                              "xmit_relay": "127.0.0.1:%d" % relay.port})
    c = srv.login("alice")
    msg = (b"From: alice@example.test\r\nTo: bob@example.test\r\n"
           b"Bcc: carol@example.test\r\n\r\n.dot\r\nlast line\r\n")
    xmit(c, msg)
    c.quit()
    [tx] = relay.transactions
    assert tx["from"] == "MAIL FROM:<alice@example.test>"
    assert tx["rcpt"] == ["RCPT TO:<bob@example.test>",
                          "RCPT TO:<carol@example.test>"]
    # CRLF again, and byte-stuffed on the wire (the sink does not unstuff).
    assert tx["data"] == (b"From: alice@example.test\r\n"
                          b"To: bob@example.test\r\n\r\n..dot\r\n"
                          b"last line\r\n")
    assert relay.commands[0].startswith("EHLO ")
    assert relay.commands[-1] == "QUIT"
    # The relay child is confined before it connects.
    srv.wait_log(r"posternd/submit\[\d+\] info: submit: seccomp allows"
                 r" \d+ system calls")


@pytest.mark.parametrize("verb, reply, expect", [
    ("RCPT", "550 5.1.1 no such user", PERM),
    ("RCPT", "450 4.2.0 try later", TEMP),
    ("MAIL", "451 4.3.0 busy", TEMP),
    ("DATA", "554 5.7.1 no", PERM),
])
def test_relay_refusals(make_server, smtp_sink, verb, reply, expect):
    relay = smtp_sink({verb: reply})
    srv = make_server(config={"xmit": True, "xmit_domain": "example.test",
                              "xmit_relay": "127.0.0.1:%d" % relay.port})
    c = srv.login("alice")
    xmit(c, MSG, expect=expect)
    assert c.command("NOOP") == "+OK"
    c.quit()
    assert relay.transactions == []
    assert "DATA" not in relay.commands or verb == "DATA"
    srv.wait_log(r"relay 127\.0\.0\.1:%d refused" % relay.port)


def test_relay_unreachable_is_temporary(make_server):
    port = harness.free_port()
    srv = make_server(config={"xmit": True, "xmit_domain": "example.test",
                              "xmit_relay": "127.0.0.1:%d" % port})
    c = srv.login("alice")
    xmit(c, MSG, expect=TEMP)
    c.quit()
    srv.wait_log(r"cannot connect to relay 127\.0\.0\.1:%d" % port)


def test_no_domain_warned_and_address_logins_only(make_server, sink):
    srv = make_server(config={"xmit": True, "xmit_command": sink.command})
    srv.wait_log(r"warning: xmit: no xmit_domain: only users whose login"
                 r" names are mail addresses can send with XTND XMIT")
    srv.add_user("eve@example.org", "Eve-Secret-5678")
    c = srv.login("alice")
    xmit(c, MSG, expect="-ERR The From address is not one of yours.")
    c.quit()
    c = srv.login("eve@example.org", "Eve-Secret-5678")
    xmit(c, MSG.replace(b"alice@example.test", b"eve@example.org"))
    c.quit()
    assert len(sink.messages()) == 1


def test_large_message_in_pieces(make_server, sink):
    srv = make_server(config=xmit_config(sink))
    c = srv.login("alice")
    body = b"".join(b"%07d %s\r\n" % (i, b"." * (i % 97))
                    for i in range(40000))
    msg = MSG + body
    assert c.command("XTND XMIT") == START
    data = stuff(msg)
    for i in range(0, len(data), 65521):
        c.send(data[i:i + 65521])
    assert c.status(timeout=60) == SENT
    assert c.command("NOOP") == "+OK"
    c.quit()
    [rec] = sink.messages()
    assert rec["data"] == lf(msg)
    srv.wait_log(r"rcpts=1 size=%d outcome=sent" % len(msg))


def test_disconnect_mid_message_sends_nothing(make_server, sink):
    srv = make_server(config=xmit_config(sink))
    c = srv.login("alice")
    assert c.command("XTND XMIT") == START
    c.send(MSG)
    c.close()
    srv.wait_log(r"logout user=alice reason=disconnect")
    c = srv.login("alice")
    xmit(c, MSG)
    c.quit()
    assert len(sink.messages()) == 1


def test_submission_is_not_idleness(make_server, sink):
    sink.set_sleep(3)
    srv = make_server(config=xmit_config(sink, idle_timeout="1s",
                                         xmit_timeout="20s"))
    c = srv.login("alice")
    xmit(c, MSG)
    c.quit()
    assert len(sink.messages()) == 1


def tls_server_context(pki):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.cert, pki.key)
    return ctx


def test_relay_starttls(make_server, smtp_sink, pki):
    relay = smtp_sink(tls_context=tls_server_context(pki))
    srv = make_server(config={"xmit": True, "xmit_domain": "example.test",
                              "xmit_relay": "localhost:%d" % relay.port,
                              "xmit_relay_starttls": True,
                              "xmit_relay_ca": pki.ca_cert})
    c = srv.login("alice")
    xmit(c, MSG)
    c.quit()
    [tx] = relay.transactions
    assert tx["tls"] is True
    assert tx["rcpt"] == ["RCPT TO:<bob@example.test>"]
    assert tx["data"] == MSG
    # EHLO again after the handshake (RFC 3207 section 4.2).
    assert [x.split(" ")[0] for x in relay.commands][:4] == \
        ["EHLO", "STARTTLS", "EHLO", "MAIL"]
    srv.wait_log(r"submit: relay localhost:%d TLS TLSv1\.[23]" % relay.port)


def test_relay_starttls_refused_without_it(make_server, smtp_sink, pki):
    relay = smtp_sink()
    srv = make_server(config={"xmit": True, "xmit_domain": "example.test",
                              "xmit_relay": "localhost:%d" % relay.port,
                              "xmit_relay_starttls": True,
                              "xmit_relay_ca": pki.ca_cert})
    c = srv.login("alice")
    xmit(c, MSG, expect=TEMP)
    c.quit()
    assert relay.transactions == []
    assert "MAIL" not in " ".join(relay.commands)
    srv.wait_log(r"relay localhost:%d does not offer STARTTLS" % relay.port)


def test_relay_starttls_unverified(make_server, smtp_sink, pki):
    relay = smtp_sink(tls_context=tls_server_context(pki))
    srv = make_server(config={"xmit": True, "xmit_domain": "example.test",
                              "xmit_relay": "localhost:%d" % relay.port,
                              "xmit_relay_starttls": True,
                              "xmit_relay_ca": pki.other_ca_cert})
    c = srv.login("alice")
    xmit(c, MSG, expect=TEMP)
    c.quit()
    assert relay.transactions == []
    srv.wait_log(r"TLS verification of relay localhost failed")


def test_relay_8bit_body_declared(make_server, smtp_sink):
    relay = smtp_sink()
    srv = make_server(config={"xmit": True, "xmit_domain": "example.test",
                              "xmit_relay": "127.0.0.1:%d" % relay.port})
    c = srv.login("alice")
    xmit(c, MSG)
    latin = MSG + "Grüße\r\n".encode("utf-8")
    xmit(c, latin)
    c.quit()
    first, second = relay.transactions
    assert first["from"] == "MAIL FROM:<alice@example.test>"
    assert second["from"] == "MAIL FROM:<alice@example.test> BODY=8BITMIME"
    assert second["data"] == latin
