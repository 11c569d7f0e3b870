"""
`postern fetch` against a real POP3 server: a private Dovecot (Debian's
dovecot-core and dovecot-pop3d) on 127.0.0.1, plain text and STLS on one
port, implicit TLS on another, its certificate from the harness's test
PKI.  Byte-exact delivery of the messages put in Dovecot's Maildir (LF
form, as Dovecot stores them), keep = yes and no, a second run fetching
nothing, STLS and implicit TLS verified against the test CA, a wrong CA
refused (exit 77 naming the host), --check counting without fetching,
max_size by Dovecot's LIST sizes (skip, and headers by TOP with --json
events), an MDA byte for byte, tls_pin right and wrong, and each SASL
mechanism Dovecot offers
that fetch supports (Dovecot restricted to that one mechanism, its log's
method= and fetch's "login" word both checked).

Dovecot runs as root in the foreground (-F) with its own base_dir and
state_dir, and is stopped by its PID.  Skipped when Dovecot is not
installed or this is not root (Dovecot's privileged parent needs it).
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import harness
from harness import postern_path

USER = "alice"
PASSWORD = "dove-Pass 42"

EX_OK, EX_PERM = 0, 77

# As Dovecot stores them: LF line ends, each ending in a newline.
MESSAGES = [
    b"Subject: one\n\nplain body\n",
    b"Subject: dots\n\n.leading dot\n..two dots\n.\nend\n",
    b"Subject: long\n\n" + (b"y" * 998 + b"\n") * 40,
    b"Subject: 8bit\n\n\xe9t\xe9 \xff\n\n\n",
    b"From: a@example.test\nSubject: empty body\n\n",
]

# The SASL mechanisms of Dovecot (auth_mechanisms) that fetch supports,
# with the name fetch reports.
MECHS = [
    ("plain", "PLAIN"),
    ("cram-md5", "CRAM-MD5"),
    ("scram-sha-1", "SCRAM-SHA-1"),
    ("scram-sha-256", "SCRAM-SHA-256"),
]

pytestmark = pytest.mark.skipif(
    shutil.which("dovecot") is None or os.geteuid() != 0,
    reason="needs Dovecot (dovecot-core, dovecot-pop3d) and root")


def _wait_port(port, proc, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Dovecot:
    """A private Dovecot: .port (plain text, STLS), .tls_port (implicit
    TLS), .ca_file (the test CA), .maildir (the user's Maildir, owned by
    the mail user), .log_text().  extra: more lines for dovecot.conf
    (e.g. pop3_uidl_format)."""

    def __init__(self, mechs="plain login cram-md5 scram-sha-1 "
                 "scram-sha-256", extra=""):
        self.pki = harness.tls_pki()
        self.ca_file = self.pki.ca_cert
        # World-searchable: the mail, login and auth processes each run
        # as their own user and must reach their part of it.
        self.dir = tempfile.mkdtemp(prefix="postern-dovecot-")
        os.chmod(self.dir, 0o755)
        for sub in ("run", "state"):
            os.makedirs(os.path.join(self.dir, sub))
        self.port, self.tls_port = harness.free_ports(2)
        self.logf = os.path.join(self.dir, "dovecot.log")
        mail_user = pwd.getpwnam("nobody")
        internal = pwd.getpwnam("dovecot")
        self.home = os.path.join(self.dir, "mail", USER)
        self.maildir = self.home
        for sub in ("", "cur", "new", "tmp"):
            os.makedirs(os.path.join(self.home, sub), exist_ok=True)
        for root, dirs, _ in os.walk(os.path.join(self.dir, "mail")):
            os.chown(root, mail_user.pw_uid, mail_user.pw_gid)
        users = os.path.join(self.dir, "users")
        with open(users, "w") as f:
            f.write("%s:{PLAIN}%s::::::\n" % (USER, PASSWORD))
        os.chown(users, internal.pw_uid, internal.pw_gid)
        os.chmod(users, 0o600)
        dh = "/usr/share/dovecot/dh.pem"
        conf = """# written by tests/interop/test_fetch_dovecot.py
base_dir = {d}/run
state_dir = {d}/state
instance_name = postern-test-{port}
protocols = pop3
listen = 127.0.0.1
log_path = {log}
auth_verbose = yes
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
{dh}
disable_plaintext_auth = no
auth_mechanisms = {mechs}
mail_location = maildir:~
first_valid_uid = {uid}
last_valid_uid = 0
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {port}
  }}
  inet_listener pop3s {{
    port = {tls_port}
    ssl = yes
  }}
}}
{extra}
""".format(d=self.dir, port=self.port, tls_port=self.tls_port,
           log=self.logf, cert=self.pki.cert, key=self.pki.key,
           dh=("ssl_dh = <%s" % dh) if os.path.exists(dh) else "",
           mechs=mechs, uid=mail_user.pw_uid, gid=mail_user.pw_gid,
           users=users, mail=os.path.join(self.dir, "mail"), extra=extra)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.proc = None
        self._n = 0

    def add(self, data):
        """Puts data in the Maildir's new/ (as the mail user)."""
        self._n += 1
        fn = "%d.M%dP%d.postern-test" % (int(time.time()), self._n,
                                         os.getpid())
        path = os.path.join(self.home, "new", fn)
        with open(path, "wb") as f:
            f.write(data)
        nobody = pwd.getpwnam("nobody")
        os.chown(path, nobody.pw_uid, nobody.pw_gid)

    def count(self):
        """Messages left in the Maildir."""
        return sum(len(os.listdir(os.path.join(self.home, s)))
                   for s in ("new", "cur"))

    def start(self):
        err = open(os.path.join(self.dir, "dovecot.stderr"), "ab")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=err,
                                     stderr=err)
        err.close()
        if not (_wait_port(self.port, self.proc) and
                _wait_port(self.tls_port, self.proc)):
            text = self.log_text() + self._stderr()
            self.stop()
            pytest.fail("Dovecot did not start:\n" + text)
        return self

    def _stderr(self):
        try:
            with open(os.path.join(self.dir, "dovecot.stderr"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_text(self):
        try:
            with open(self.logf, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        if not os.environ.get("POSTERN_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def make_dovecot():
    started = []

    def make(**kw):
        d = Dovecot(**kw)
        started.append(d)
        for m in MESSAGES:
            d.add(m)
        return d.start()

    yield make
    for d in started:
        d.stop()


@pytest.fixture
def dovecot(make_dovecot):
    return make_dovecot()


class Client:
    """A user of `postern fetch` with an account on the Dovecot."""

    def __init__(self, tmp_path, dc):
        self.home = str(tmp_path / "home")
        os.makedirs(self.home, exist_ok=True)
        self.dc = dc
        self.conf = os.path.join(self.home, "fetch.conf")
        self.pwfile = os.path.join(self.home, "pw")
        with open(self.pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(self.pwfile, 0o600)
        self.maildir = os.path.join(self.home, "Mail")

    def write(self, tls="starttls", **kw):
        keys = {
            "host": "127.0.0.1" if tls == "none" else "localhost",
            "port": self.dc.tls_port if tls == "implicit" else self.dc.port,
            "tls": tls,
            "user": USER,
            "password_file": self.pwfile,
            "maildir": self.maildir,
            "timeout": "10s",
        }
        if tls == "none":
            keys["insecure"] = "yes"
        else:
            keys["ca_file"] = self.dc.ca_file
        keys.update(kw)
        with open(self.conf, "w") as f:
            f.write("account dove\n" + "".join(
                "%s = %s\n" % (k, v) for k, v in keys.items()
                if v is not None))

    def run(self, *args):
        env = dict(os.environ, HOME=self.home)
        env.pop("XDG_STATE_HOME", None)
        env.pop("XDG_CONFIG_HOME", None)
        r = subprocess.run([postern_path(), "fetch", "-f", self.conf] +
                           list(args), env=env, capture_output=True,
                           timeout=120)
        out = r.stdout.decode("utf-8", "replace")
        err = r.stderr.decode("utf-8", "replace")
        harness.check_sanitizer_output(err, "postern fetch")
        return r.returncode, out, err

    def delivered(self):
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir, sub)
            if os.path.isdir(d):
                for fn in os.listdir(d):
                    with open(os.path.join(d, fn), "rb") as f:
                        out.append(f.read())
        return sorted(out)


def test_keep_byte_exact_then_nothing_new(tmp_path, dovecot):
    c = Client(tmp_path, dovecot)
    c.write(keep="yes")
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("dove: %d messages fetched" % len(MESSAGES)), out
    assert "0 deleted" in out
    assert c.delivered() == sorted(MESSAGES)
    assert dovecot.count() == len(MESSAGES)
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("dove: 0 messages fetched"), out
    assert len(c.delivered()) == len(MESSAGES)
    # A message that arrives later is the only one fetched next.
    late = b"Subject: late\n\nafter the first run\n"
    dovecot.add(late)
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("dove: 1 message fetched"), out
    assert c.delivered() == sorted(MESSAGES + [late])


def test_keep_no_deletes_on_dovecot(tmp_path, dovecot):
    c = Client(tmp_path, dovecot)
    c.write(tls="implicit", keep="no")
    st, out, err = c.run()
    assert st == EX_OK, err
    assert "%d deleted, 0 on the server" % len(MESSAGES) in out, out
    assert dovecot.count() == 0
    assert c.delivered() == sorted(MESSAGES)
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("dove: 0 messages fetched"), out
    assert len(c.delivered()) == len(MESSAGES)


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_tls_verified_against_the_test_ca(tmp_path, dovecot, tls):
    c = Client(tmp_path, dovecot)
    c.write(tls=tls)
    st, out, err = c.run()
    assert st == EX_OK, err
    assert c.delivered() == sorted(MESSAGES)
    # Everything offered: the strongest both have.  Dovecot 2.3 has no
    # channel binding, so no -PLUS.
    assert "login SCRAM-SHA-256" in out, out
    assert "method=SCRAM-SHA-256," in dovecot.log_text()


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_wrong_ca_is_exit_77_naming_the_host(tmp_path, dovecot, tls):
    c = Client(tmp_path, dovecot)
    c.write(tls=tls, ca_file=dovecot.pki.other_ca_cert)
    st, out, err = c.run()
    assert st == EX_PERM, (st, out, err)
    assert "TLS verification of localhost failed" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert c.delivered() == []
    assert "Login: user=" not in dovecot.log_text()


def test_plain_text_to_loopback(tmp_path, dovecot):
    c = Client(tmp_path, dovecot)
    c.write(tls="none", keep="yes")
    st, out, err = c.run()
    assert st == EX_OK, err
    assert c.delivered() == sorted(MESSAGES)
    assert "login SCRAM-SHA-256" in out, out


@pytest.mark.parametrize("mech,name", MECHS)
def test_each_mechanism(tmp_path, make_dovecot, mech, name):
    dc = make_dovecot(mechs=mech)
    c = Client(tmp_path, dc)
    c.write(tls="starttls")
    st, out, err = c.run()
    assert st == EX_OK, err
    assert "login %s\n" % name in out, out
    assert "method=%s," % name in dc.log_text(), dc.log_text()
    assert c.delivered() == sorted(MESSAGES)


def test_wrong_password_is_exit_77(tmp_path, dovecot):
    c = Client(tmp_path, dovecot)
    with open(c.pwfile, "w") as f:
        f.write("not the password\n")
    c.write(tls="implicit")
    st, out, err = c.run()
    assert st == EX_PERM, (st, out, err)
    assert c.delivered() == []
    assert dovecot.count() == len(MESSAGES)


def test_check_counts_without_fetching(tmp_path, dovecot):
    c = Client(tmp_path, dovecot)
    c.write(keep="no")
    n = len(MESSAGES)
    st, out, err = c.run("--check")
    assert st == EX_OK, err
    assert out == "dove: %d new messages, %d on the server\n" % (n, n)
    assert dovecot.count() == n
    assert c.delivered() == []
    assert c.run()[0] == EX_OK
    st, out, err = c.run("--check")
    assert st == EX_OK, err
    assert out == "dove: 0 new messages, 0 on the server\n", out


def test_max_size_skips_by_dovecots_list_size(tmp_path, dovecot):
    c = Client(tmp_path, dovecot)
    c.write(keep="no", max_size="2k")
    st, out, err = c.run()
    assert st == EX_OK, err
    small = [m for m in MESSAGES if len(m) < 2048]
    assert len(small) == len(MESSAGES) - 1
    assert out.startswith("dove: %d messages fetched" % len(small)), out
    assert len(err.strip().splitlines()) == 1, err
    assert "larger than max_size (2048); left on the server" in err
    assert c.delivered() == sorted(small)
    assert dovecot.count() == 1


MDA = os.path.join(harness.REPO, "tests", "mda_sink.py")


def test_mda_byte_exact_from_dovecot(tmp_path, dovecot):
    c = Client(tmp_path, dovecot)
    out_dir = str(tmp_path / "mda")
    os.makedirs(out_dir)
    c.write(keep="no", maildir=None, mda="%s %s" % (MDA, out_dir))
    st, out, err = c.run()
    assert st == EX_OK, err
    got = []
    for fn in os.listdir(out_dir):
        with open(os.path.join(out_dir, fn), "rb") as f:
            got.append(f.read())
    assert sorted(got) == sorted(MESSAGES)
    assert dovecot.count() == 0


def test_mbox_byte_exact_from_dovecot(tmp_path, dovecot):
    c = Client(tmp_path, dovecot)
    mbox = str(tmp_path / "inbox.mbox")
    c.write(keep="no", maildir=None, mbox=mbox)
    st, out, err = c.run()
    assert st == EX_OK, err
    with open(mbox, "rb") as f:
        got = harness.split_mbox(f.read())
    assert sorted(got) == sorted(MESSAGES)
    assert dovecot.count() == 0
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("dove: 0 messages fetched"), out


def test_tls_pin_against_dovecot(tmp_path, dovecot):
    import base64
    import hashlib
    der = subprocess.run(["openssl", "x509", "-in", dovecot.pki.cert,
                          "-outform", "DER"], capture_output=True,
                         check=True).stdout
    pin = "sha256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()
    c = Client(tmp_path, dovecot)
    c.write(tls="implicit", tls_pin=pin, tls_min_version="1.2")
    st, out, err = c.run()
    assert st == EX_OK, err
    assert c.delivered() == sorted(MESSAGES)
    c2 = Client(tmp_path / "wrong", dovecot)
    c2.write(tls="starttls", tls_pin="sha256:" + base64.b64encode(
        hashlib.sha256(b"not it").digest()).decode())
    st, out, err = c2.run()
    assert st == EX_PERM
    assert "TLS verification of localhost failed: its certificate" \
        " matches no tls_pin" in err, err
    assert c2.delivered() == []


def test_max_size_headers_and_json_against_dovecot(tmp_path, dovecot):
    import json
    c = Client(tmp_path, dovecot)
    c.write(keep="no", max_size="2k", max_size_action="headers")
    st, out, err = c.run("--json")
    assert st == EX_OK, err
    ev = [json.loads(ln) for ln in out.splitlines()]
    assert [e["event"] for e in ev] == ["account"] + \
        ["message"] * len(MESSAGES) + ["done", "summary"], ev
    assert ev[-2]["deleted"] == len(MESSAGES) - 1
    big = [m for m in MESSAGES if len(m) >= 2048][0]
    head = big.split(b"\n\n", 1)[0] + b"\n\n"
    got = c.delivered()
    assert len(got) == len(MESSAGES)
    marked = [m for m in got if m.startswith(b"X-Postern-Headers-Only: ")]
    assert len(marked) == 1 and marked[0].endswith(head), marked
    assert dovecot.count() == 1
    st, out, err = c.run("--json")
    assert st == EX_OK, err
    assert json.loads(out.splitlines()[-2])["fetched"] == 0
