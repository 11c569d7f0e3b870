"""
harness.py: run a real posternd on loopback and talk POP3 to it byte by byte.

Shared by tests/protocol and tests/interop.  Standard library only.  The
API below is stable; extend it, do not change what exists.

Binaries
    build_dir()                 POSTERN_BUILD_DIR or <repo>/build (absolute)
    posternd_path(), postern_path()
    postern(*args, input=None, timeout=60) -> subprocess.CompletedProcess
                                runs `postern ARGS` (bytes in/out); input is
                                str or bytes fed to stdin (DEVNULL if None);
                                fails on a sanitizer report in its stderr
    posternd(*args, timeout=30) -> subprocess.CompletedProcess
                                runs `posternd ARGS` (e.g. -t), likewise
    sanitizer_build()           True when build_dir() is an ASan/UBSan build
                                (heavy tests scale their rounds down there)
    check_sanitizer_output(text, what)  fails if text holds a sanitizer
                                report or a panic

Wire form (the Python reference of src/pop3/wire.h)
    wire_lines(stored)          list of wire lines (bytes, no CRLF)
    wire_form(stored, stuff=False, top=None)
                                the wire octets; stuff=True byte-stuffs lines
                                starting with '.'; top=n gives what TOP i n
                                sends (headers, the empty line, n body lines)
    wire_size(stored)           len(wire_form(stored)): the STAT/LIST size
    multiline_body(stored, top=None)
                                exactly what follows "+OK ..." for RETR/TOP:
                                the stuffed wire form plus ".\\r\\n"
    unstuff(raw)                a raw multi-line body (through ".\\r\\n")
                                back to the wire form; raises ValueError on a
                                malformed body
    split_mbox(data)            the messages of an mbox file, mboxrd-unquoted
                                (the reference parser of the tests)
    expected_uidl(base)         the UIDL SPEC.md gives a Maildir base name

Matching
    glob_match(pattern, text)   '*' any run, '?' one char, everything else
                                literal (so "-ERR [AUTH]*" works)
    assert_glob(text, pattern)

Server(config=None, users=None, start=False, tls=False, pki=None,
       user_db_type=None)
    A posternd in a fresh temp dir (mail/, users, postern.conf, posternd.log)
    on a free 127.0.0.1 port.  config: dict of overrides; a value may be a
    str/int, a bool (yes/no), a list (repeated key) or None (key omitted).
    Default test config: listen 127.0.0.1:PORT, mail_root, user_db,
    workers 2, auth_workers 2, auth_fail_delay 100ms, auth_fail_delay_max
    400ms, idle_timeout 10m; when run as root also mail_user = auth_user =
    nobody (the mail root and user db are then chowned to those users).
    tls=True adds tls_cert/tls_key (pki, default tls_pki(): localhost) and
    a second listener "127.0.0.1:<tls_port> tls=implicit"; the plain port
    offers STLS.  An override of listen/tls_cert/tls_key wins.
    users: dict name -> password, added with `postern user add`.
    user_db_type: None (a passwd-file, "users") or "sqlite": the users
    live in "users.db", made by the first add_user, and the config says
    user_db_type = sqlite.
    lmtp=True adds "lmtp_listen = 127.0.0.1:<lmtp_port>"; lmtp_socket=True
    adds "lmtp_listen = unix:<dir>/lmtp.sock" (attribute lmtp_socket, the
    path; None without).  An override of lmtp_listen wins.
    Attributes: dir, mail_root, user_db, conf_path, log_path, host, port,
    proc (Popen or None), pid, users (name -> password), config (merged),
    tls, tls_port (None without tls), pki, ca_file (the test CA or None).
    Methods:
      add_user(name, password, scheme="sha512-crypt", extra=())
                                  via `postern user add` (extra: more
                                  arguments, e.g. ["--secret"])
      add_user_line(line)         appends a raw passwd-file line
      set_config(**kw) / update_config(dict)  change overrides, rewrite file
      write_config()              writes postern.conf from the overrides
      config_text()               the text it writes
      maildir(user) -> path       mail_root/user (mailbox_path %u)
      ensure_maildir(user)
      add_message(user, data, name=None, subdir="new") -> base name
                                  tmp/ + rename, unique Maildir name
      message_files(user) -> {base name: path} of new/ and cur/
      start(timeout=10)           waits for the port and a greeting
      stop(sig=SIGTERM, timeout=10) -> exit status; fails if it hangs or
                                  leaves a posternd process behind
      restart()
      reload()                    SIGHUP
      running()
      worker_pids(kind="pop3"|"auth"|None) -> live child pids
      kill_worker(kind="pop3", all=False) -> [pids killed with SIGKILL]
      mount_small_mail_root(size="1m") -> None, or why it cannot (not
                                  root, no tmpfs): a tmpfs of that size on
                                  mail_root, for full-disk tests; call
                                  before start(); then
      unmount_mail_root()         stops the server and unmounts it
      crash()                     SIGKILL to the master and every process of
                                  this instance at once; start() again after
      log_text(), log_lines(), wait_log(regex, timeout=5, start=0) -> match
      check_log(start=0)          fails on sanitizer reports / panics
      lmtp_connect(timeout=10, unix=False) -> smtplib.LMTP connected to
                                  lmtp_port (or the Unix socket), greeted
      connect(source=None, timeout=10, greeting=True) -> Pop3Conn
      login(user, password=None, source=None) -> Pop3Conn in TRANSACTION
      connect_tls(source=None, timeout=10, greeting=True,
                  server_hostname="localhost", context=None, session=None,
                  port=None) -> Pop3Conn over implicit TLS (tls_port),
                                  verified against ca_file unless context
      login_tls(user, ...), login_stls(user, ...)  likewise, logged in over
                                  implicit TLS / after STLS on the plain port
      cleanup()                   stop, check the log, remove the temp dir
                                  (kept on failure, or with POSTERN_KEEP_TMP)
    Server.live: the set of Server objects not yet cleaned up.

Pop3Conn(host, port, timeout=10, source=None, greeting=True,
         tls_context=None, server_hostname="localhost", session=None)
    A raw client (no poplib).  .greeting holds the greeting line (str).
    Every status/line read asserts the CRLF terminator (RFC 1939).
    With tls_context (an ssl.SSLContext) the TLS handshake comes first.
      Pop3Conn.connect_tls(host, port, ca_file=None, server_hostname=
                  "localhost", context=None, session=None, ...)
                                  implicit TLS (RFC 8314), verified against
                                  ca_file unless context is given
      stls(ca_file=None, server_hostname="localhost", context=None,
           session=None) -> str   STLS; on +OK the socket is upgraded in
                                  place (asserts no clear-text octet followed
                                  the +OK); the reply either way
      start_tls(ca_file=None, server_hostname="localhost", context=None,
                session=None)     just the handshake, on the socket as is
      .tls                        the ssl.SSLSocket or None; .tls_version;
                                  .tls_unexpected_eof (peer closed without
                                  close_notify)
      peer_cert() -> dict, peer_cert_der() -> bytes
      send(data)                  bytes or str (latin-1), sent as given
      sendline(line)              adds CRLF
      readline(timeout=None, maxlen=1 MiB) -> bytes including CRLF;
                                  raises Closed on EOF, Timeout on timeout
      status(timeout=None) -> str one reply line without CRLF
      command(cmd) -> str         sendline + status
      read_multiline(timeout=None) -> raw bytes through ".\\r\\n"
      multi(cmd) -> (status, raw or None)  raw only after "+OK"
      multi_lines(cmd) -> (status, [str lines, unstuffed])
      capa() -> [str]             asserts +OK
      stat() -> (count, octets)   asserts the RFC 1939 form
      list() -> {n: size}; uidl() -> {n: uidl}; uidl_map() -> {uidl: n}
      retr(n) -> bytes            asserts +OK, returns the unstuffed wire form
      retr_raw(n) -> (status, raw)
      top(n, lines) -> bytes      likewise for TOP
      login(user, password) -> str   USER + PASS, asserts +OK
      try_login(user, password) -> str  the reply to PASS (or to USER if
                                  that was -ERR)
      quit() -> str               QUIT, then waits for the close
      wait_closed(timeout=5) -> bytes received before EOF; Timeout if open
      is_closed(timeout=0.5) -> bool  (data received meanwhile is kept)
      close()
    Usable as a context manager.

TLS
    tls_pki() -> TlsPki         the test PKI, made once per test process
                                with the openssl command line: ca_cert,
                                cert/key (localhost, 127.0.0.1, ::1),
                                swap_cert/key (another localhost one),
                                mail_cert/key (mail.example.test),
                                other_cert/key (other.example.test),
                                expired_cert/key, client_cert/key,
                                wrong_key, other_ca_cert
    tls_client_context(ca_file=None, cert=None, key=None, min_version=None,
                       max_version=None, verify=True) -> ssl.SSLContext
    cert_names(getpeercert dict) -> (CN, [SAN values])

DEFAULT_USERS: {"alice": ..., "bob": ...} (bob's password holds spaces);
the fixtures' default accounts.

Exceptions: Closed (EOF where a reply was expected), Timeout (both are
AssertionError subclasses, so a hung or silent server fails the test).
"""

import atexit
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BAD_LOG_PATTERNS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                    "panic")

DEFAULT_TIMEOUT = 10.0

_OP_IGNORE_UNEXPECTED_EOF = getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)

DEFAULT_USERS = {
    "alice": "Alice-Secret-7f3e",
    "bob": "bob has a long pass phrase",
}


# ---------------------------------------------------------------- binaries

def build_dir():
    d = os.environ.get("POSTERN_BUILD_DIR") or os.path.join(REPO, "build")
    if not os.path.isabs(d):
        d = os.path.join(REPO, d)
    return d


def sanitizer_build():
    """True when the binaries under build_dir() were built with
    -Db_sanitize (the build-san tree of `make test`)."""
    path = os.path.join(build_dir(), "meson-info", "intro-buildoptions.json")
    try:
        with open(path) as f:
            opts = json.load(f)
    except (OSError, ValueError):
        return False
    for o in opts:
        if o.get("name") == "b_sanitize":
            return o.get("value") not in (None, "", "none")
    return False


def posternd_path():
    return os.path.join(build_dir(), "posternd")


def postern_path():
    return os.path.join(build_dir(), "postern")


def _child_env():
    env = dict(os.environ)
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


def check_sanitizer_output(text, what):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for pat in BAD_LOG_PATTERNS:
        i = text.find(pat)
        if i >= 0:
            raise AssertionError("%s: output contains %r:\n%s"
                                 % (what, pat, text[max(0, i - 500):i + 4000]))


def _run(argv, input, timeout):
    if isinstance(input, str):
        input = input.encode("utf-8")
    r = subprocess.run(
        argv, input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        timeout=timeout, env=_child_env())
    check_sanitizer_output(r.stderr, " ".join(argv))
    return r


def postern(*args, input=None, timeout=60):
    """Runs `postern ARGS`; returns the CompletedProcess (bytes)."""
    return _run([postern_path()] + [str(a) for a in args], input, timeout)


def posternd(*args, timeout=30):
    """Runs `posternd ARGS` (e.g. -t, -V); returns the CompletedProcess."""
    return _run([posternd_path()] + [str(a) for a in args], None, timeout)


# --------------------------------------------------------------- wire form

def wire_lines(stored):
    """Splits stored bytes into wire lines (no CRLF), per pop3/wire.h."""
    if not stored:
        return []
    parts = stored.split(b"\n")
    last = parts.pop()
    lines = [p[:-1] if p.endswith(b"\r") else p for p in parts]
    if last:
        lines.append(last)
    return lines


def wire_form(stored, stuff=False, top=None):
    """The wire octets of a stored message (TOP form when top is given)."""
    lines = wire_lines(stored)
    if top is not None:
        out = []
        in_body = False
        n = 0
        for line in lines:
            if in_body:
                if n >= top:
                    break
                n += 1
            out.append(line)
            if not in_body and line == b"":
                in_body = True
        lines = out
    if stuff:
        lines = [b"." + l if l.startswith(b".") else l for l in lines]
    return b"".join(l + b"\r\n" for l in lines)


def wire_size(stored):
    return len(wire_form(stored))


def multiline_body(stored, top=None):
    return wire_form(stored, stuff=True, top=top) + b".\r\n"


def unstuff(raw):
    """A multi-line response body through its ".\\r\\n" -> wire form."""
    raw = bytes(raw)
    if raw == b".\r\n":
        return b""
    if not raw.endswith(b"\r\n.\r\n"):
        raise ValueError("multi-line body does not end with CRLF.CRLF")
    body = raw[:-3]
    lines = body.split(b"\r\n")
    if lines[-1] != b"":
        raise ValueError("multi-line body does not end with CRLF")
    out = []
    for line in lines[:-1]:
        if line == b".":
            raise ValueError("unstuffed terminator inside the body")
        if line.startswith(b"."):
            line = line[1:]
        out.append(line + b"\r\n")
    return b"".join(out)


def split_mbox(data):
    """The messages of an mbox file (unquoted), the reference parser."""
    msgs = []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    cur = None
    prev_blank = True
    for line in lines:
        if prev_blank and line.startswith(b"From "):
            if cur is not None:
                if cur and cur[-1] in (b"", b"\r"):
                    cur.pop()
                msgs.append(cur)
            cur = []
        elif cur is not None:
            cur.append(line)
        prev_blank = line in (b"", b"\r")
    if cur is not None:
        if cur and cur[-1] in (b"", b"\r"):
            cur.pop()
        msgs.append(cur)
    out = []
    for m in msgs:
        body = [l[1:] if re.match(rb"^>+From ", l) else l for l in m]
        out.append(b"".join(l + b"\n" for l in body))
    return out


def expected_uidl(base):
    """SPEC.md: the base name if it is 1..70 octets of 0x21..0x7e, else the
    first 32 hex digits of SHA-256(base name)."""
    if isinstance(base, str):
        base = base.encode("utf-8", "surrogateescape")
    if 1 <= len(base) <= 70 and all(0x21 <= c <= 0x7e for c in base):
        return base.decode("ascii")
    return hashlib.sha256(base).hexdigest()[:32]


# ---------------------------------------------------------------- matching

def _glob_re(pattern):
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def glob_match(pattern, text):
    return _glob_re(pattern).match(text) is not None


def assert_glob(text, pattern):
    assert glob_match(pattern, text), \
        "reply %r does not match %r" % (text, pattern)


# ------------------------------------------------------------------ client

class Closed(AssertionError):
    """The server closed the connection where a reply was expected."""


class Timeout(AssertionError):
    """The server did not answer in time."""


class Pop3Conn:
    def __init__(self, host, port, timeout=DEFAULT_TIMEOUT, source=None,
                 greeting=True, tls_context=None, server_hostname="localhost",
                 session=None):
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False
        self.tls = None
        self.tls_unexpected_eof = False
        src = (source, 0) if source else None
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=src)
        if tls_context is not None:
            try:
                self._start_tls(tls_context, server_hostname, session)
            except BaseException:
                self.close()
                raise
        self.greeting = self.status() if greeting else None

    @classmethod
    def connect_tls(cls, host, port, ca_file=None, server_hostname="localhost",
                    context=None, session=None, timeout=DEFAULT_TIMEOUT,
                    source=None, greeting=True):
        """Implicit TLS (RFC 8314): the handshake, then the greeting.
        context: an ssl.SSLContext, else tls_client_context(ca_file)."""
        if context is None:
            context = tls_client_context(ca_file)
        return cls(host, port, timeout=timeout, source=source,
                   greeting=greeting, tls_context=context,
                   server_hostname=server_hostname, session=session)

    def _start_tls(self, context, server_hostname, session):
        # Some builds set OP_IGNORE_UNEXPECTED_EOF by default; the tests
        # want to see a close without close_notify (tls_unexpected_eof).
        if context.options & _OP_IGNORE_UNEXPECTED_EOF:
            context.options &= ~_OP_IGNORE_UNEXPECTED_EOF
        self.sock.settimeout(self.timeout)
        self.tls = context.wrap_socket(self.sock,
                                       server_hostname=server_hostname,
                                       session=session,
                                       do_handshake_on_connect=False,
                                       suppress_ragged_eofs=False)
        self.sock = self.tls
        self.tls.do_handshake()

    def stls(self, ca_file=None, server_hostname="localhost", context=None,
             session=None):
        """STLS (RFC 2595).  On "+OK" the socket is upgraded in place
        (verifying against ca_file or with context); returns the reply.
        Nothing may follow the +OK line in clear text."""
        st = self.command("STLS")
        if not st.startswith("+OK"):
            return st
        assert not self.buf, "clear-text octets after the STLS +OK: %r" \
            % bytes(self.buf[:200])
        self.start_tls(ca_file, server_hostname, context, session)
        return st

    def start_tls(self, ca_file=None, server_hostname="localhost",
                  context=None, session=None):
        """The TLS handshake on the connection as it is (after an STLS
        reply the caller read itself)."""
        if context is None:
            context = tls_client_context(ca_file)
        self._start_tls(context, server_hostname, session)

    @property
    def tls_version(self):
        return self.tls.version() if self.tls else None

    def peer_cert(self):
        """The server certificate as ssl.SSLSocket.getpeercert() gives it
        (verified contexts only; {} otherwise)."""
        return self.tls.getpeercert() if self.tls else None

    def peer_cert_der(self):
        return self.tls.getpeercert(binary_form=True) if self.tls else None

    # -- low level

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def sendline(self, line):
        if isinstance(line, str):
            line = line.encode("latin-1")
        self.send(line + b"\r\n")

    def _fill(self, deadline):
        """Reads more input into buf; False on EOF."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(262144)
        except ConnectionResetError:
            data = b""
        except ssl.SSLZeroReturnError:
            data = b""
        except ssl.SSLError as e:
            # A TLS peer that closes without close_notify.
            if not isinstance(e, ssl.SSLEOFError) and \
                    getattr(e, "reason", None) != \
                    "UNEXPECTED_EOF_WHILE_READING":
                raise
            self.tls_unexpected_eof = True
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def readline(self, timeout=None, maxlen=1 << 20):
        deadline = time.monotonic() + (timeout or self.timeout)
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > maxlen:
                raise AssertionError("reply line longer than %d octets: %r"
                                     % (maxlen, bytes(self.buf[:200])))
            start = len(self.buf)
            try:
                if not self._fill(deadline):
                    raise Closed("connection closed by the server; "
                                 "pending %r" % bytes(self.buf[:200]))
            except socket.timeout:
                raise Timeout("no reply line within %.1fs; pending %r"
                              % (timeout or self.timeout,
                                 bytes(self.buf[:200]))) from None

    def status(self, timeout=None):
        line = self.readline(timeout)
        assert line.endswith(b"\r\n"), "reply %r not ended by CRLF" % line
        return line[:-2].decode("latin-1")

    def command(self, cmd, timeout=None):
        self.sendline(cmd)
        return self.status(timeout)

    def read_multiline(self, timeout=None):
        """Raw body of a multi-line reply, through the terminating line."""
        deadline = time.monotonic() + (timeout or self.timeout)
        start = 0
        while True:
            if self.buf.startswith(b".\r\n"):
                del self.buf[:3]
                return b".\r\n"
            i = self.buf.find(b"\r\n.\r\n", start)
            if i >= 0:
                raw = bytes(self.buf[:i + 5])
                del self.buf[:i + 5]
                return raw
            start = max(0, len(self.buf) - 4)
            try:
                if not self._fill(deadline):
                    raise Closed("connection closed inside a multi-line "
                                 "reply (%d octets read)" % len(self.buf))
            except socket.timeout:
                raise Timeout("multi-line reply not finished within %.1fs "
                              "(%d octets read)" % (timeout or self.timeout,
                                                    len(self.buf))) from None

    def multi(self, cmd, timeout=None):
        st = self.command(cmd, timeout)
        if st.startswith("+OK"):
            return st, self.read_multiline(timeout)
        return st, None

    def multi_lines(self, cmd, timeout=None):
        st, raw = self.multi(cmd, timeout)
        if raw is None:
            return st, None
        text = unstuff(raw).decode("latin-1")
        return st, text.split("\r\n")[:-1] if text else []

    def wait_closed(self, timeout=5.0):
        """Waits for EOF; returns what arrived before it."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
        except socket.timeout:
            raise Timeout("connection still open after %.1fs; received %r"
                          % (timeout, bytes(self.buf[:300]))) from None
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def is_closed(self, timeout=0.5):
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
        except socket.timeout:
            return False
        except OSError:
            return True
        return True

    # -- POP3 helpers

    def try_login(self, user, password):
        st = self.command("USER " + user)
        if not st.startswith("+OK"):
            return st
        return self.command("PASS " + password)

    def login(self, user, password):
        st = self.try_login(user, password)
        assert st.startswith("+OK"), "login %s failed: %r" % (user, st)
        return st

    def capa(self):
        st, lines = self.multi_lines("CAPA")
        assert st.startswith("+OK"), "CAPA: %r" % st
        return lines

    def stat(self):
        st = self.command("STAT")
        m = re.match(r"\+OK (\d+) (\d+)(?: .*)?\Z", st)
        assert m, "STAT reply %r" % st
        return int(m.group(1)), int(m.group(2))

    def list(self):
        st, lines = self.multi_lines("LIST")
        assert st.startswith("+OK"), "LIST: %r" % st
        out = {}
        for line in lines:
            m = re.match(r"(\d+) (\d+)(?: .*)?\Z", line)
            assert m, "LIST line %r" % line
            out[int(m.group(1))] = int(m.group(2))
        return out

    def uidl(self):
        st, lines = self.multi_lines("UIDL")
        assert st.startswith("+OK"), "UIDL: %r" % st
        out = {}
        for line in lines:
            m = re.match(r"(\d+) ([\x21-\x7e]{1,70})\Z", line)
            assert m, "UIDL line %r" % line
            out[int(m.group(1))] = m.group(2)
        return out

    def uidl_map(self):
        return {u: n for n, u in self.uidl().items()}

    def retr_raw(self, n, timeout=None):
        return self.multi("RETR %d" % n, timeout)

    def retr(self, n, timeout=None):
        st, raw = self.retr_raw(n, timeout)
        assert st.startswith("+OK"), "RETR %d: %r" % (n, st)
        return unstuff(raw)

    def top(self, n, lines, timeout=None):
        st, raw = self.multi("TOP %d %d" % (n, lines), timeout)
        assert st.startswith("+OK"), "TOP %d %d: %r" % (n, lines, st)
        return unstuff(raw)

    def quit(self):
        st = self.command("QUIT")
        self.wait_closed()
        return st


# --------------------------------------------------------------------- TLS

OPENSSL_TIMEOUT = 30

_PKI_CNF = """\
[ca]
default_ca = test_ca
[test_ca]
dir = .
database = index.txt
new_certs_dir = issued
serial = serial
default_md = sha256
policy = any
copy_extensions = none
unique_subject = no
[any]
commonName = supplied
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_localhost]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
[server_mail]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:mail.example.test
[server_other]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:other.example.test
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


class TlsPki:
    """Certificates for the TLS tests (PEM files in .dir, all EC P-256).

        ca_cert, ca_key             the test CA ("Postern Test CA")
        cert, key                   server: localhost, 127.0.0.1, ::1
        swap_cert, swap_key         a second localhost certificate (other
                                    key, CN "localhost swap"): SIGHUP tests
        mail_cert, mail_key         server: mail.example.test (SNI)
        other_cert, other_key       server: other.example.test
        expired_cert, expired_key   localhost, expired in 2020
        client_cert, client_key     client certificate (CN postern-client)
        wrong_key                   a key that matches no certificate
        other_ca_cert               a different CA nothing here is signed by
        issue_client(cn, email=None) -> (cert, key)
                                    another client certificate (clientAuth)
                                    with subject CN cn and, if given, an
                                    rfc822Name subjectAltName email; made
                                    once per (cn, email)
    """

    def __init__(self, directory):
        self.dir = directory
        self.ca_cert = self.path("ca.pem")
        self.ca_key = self.path("ca.key")
        self.other_ca_cert = self.path("other-ca.pem")
        self.other_ca_key = self.path("other-ca.key")
        for name in ("cert", "swap", "mail", "other", "expired", "client"):
            pre = "" if name == "cert" else name + "_"
            base = "server" if name == "cert" else name
            setattr(self, pre + "cert", self.path(base + ".pem"))
            setattr(self, pre + "key", self.path(base + ".key"))
        self.wrong_key = self.path("wrong.key")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _openssl(self, *args):
        argv = ["openssl"] + list(args)
        try:
            r = subprocess.run(argv, cwd=self.dir, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=OPENSSL_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s timed out" % " ".join(argv)) from None
        assert r.returncode == 0, "%s: exit %d:\n%s" % (
            " ".join(argv), r.returncode, r.stderr.decode("utf-8", "replace"))
        return r

    def _key(self, path):
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
                      "ec_paramgen_curve:P-256", "-out", path)

    def _ca(self, cert, key, cn):
        self._key(key)
        self._openssl("req", "-x509", "-config", "pki.cnf", "-key", key,
                      "-subj", "/CN=" + cn, "-days", "3650", "-sha256",
                      "-extensions", "v3_ca", "-out", cert)

    def _issue(self, cert, key, cn, section, dates=None):
        self._key(key)
        csr = cert + ".csr"
        self._openssl("req", "-new", "-config", "pki.cnf", "-key", key,
                      "-subj", "/CN=" + cn, "-out", csr)
        if dates is None:
            dates = ["-startdate", time.strftime(
                "%Y%m%d%H%M%SZ", time.gmtime(time.time() - 86400)),
                "-days", "825"]
        self._openssl("ca", "-batch", "-config", "pki.cnf", "-cert",
                      self.ca_cert, "-keyfile", self.ca_key, "-in", csr,
                      "-out", cert, "-extensions", section, "-notext",
                      *dates)
        os.unlink(csr)

    def issue_client(self, cn, email=None):
        """A client certificate for cn (and email): (cert path, key path)."""
        with _pki_lock:
            made = self.__dict__.setdefault("_clients", {})
            if (cn, email) not in made:
                base = "client-%d" % len(made)
                cert, key = self.path(base + ".pem"), self.path(base + ".key")
                ext = self.path(base + ".ext")
                with open(ext, "w") as f:
                    f.write("[ext]\nbasicConstraints = critical,CA:FALSE\n"
                            "keyUsage = critical,digitalSignature\n"
                            "extendedKeyUsage = clientAuth\n"
                            "subjectKeyIdentifier = hash\n"
                            "authorityKeyIdentifier = keyid\n")
                    if email:
                        f.write("subjectAltName = email:%s\n" % email)
                self._key(key)
                csr = cert + ".csr"
                self._openssl("req", "-new", "-config", "pki.cnf", "-key", key,
                              "-subj", "/CN=" + cn, "-out", csr)
                self._openssl("ca", "-batch", "-config", "pki.cnf", "-cert",
                              self.ca_cert, "-keyfile", self.ca_key, "-in",
                              csr, "-out", cert, "-extfile", ext,
                              "-extensions", "ext", "-notext", "-startdate",
                              time.strftime("%Y%m%d%H%M%SZ", time.gmtime(
                                  time.time() - 86400)), "-days", "825")
                os.unlink(csr)
                for p in (cert, key):
                    os.chmod(p, 0o644)
                made[(cn, email)] = (cert, key)
            return made[(cn, email)]

    def create(self):
        with open(self.path("pki.cnf"), "w") as f:
            f.write(_PKI_CNF)
        with open(self.path("index.txt"), "w"):
            pass
        with open(self.path("serial"), "w") as f:
            f.write("%016X\n" % (int.from_bytes(os.urandom(7), "big") | 1))
        os.mkdir(self.path("issued"))
        self._ca(self.ca_cert, self.ca_key, "Postern Test CA")
        self._ca(self.other_ca_cert, self.other_ca_key, "Postern Other CA")
        self._issue(self.cert, self.key, "localhost", "server_localhost")
        self._issue(self.swap_cert, self.swap_key, "localhost swap",
                    "server_localhost")
        self._issue(self.mail_cert, self.mail_key, "mail.example.test",
                    "server_mail")
        self._issue(self.other_cert, self.other_key, "other.example.test",
                    "server_other")
        self._issue(self.expired_cert, self.expired_key, "localhost",
                    "server_localhost",
                    dates=["-startdate", "20200101000000Z",
                           "-enddate", "20200201000000Z"])
        self._issue(self.client_cert, self.client_key, "postern-client",
                    "client")
        self._key(self.wrong_key)
        # The workers may load the files after dropping to mail_user.
        for f in os.listdir(self.dir):
            p = self.path(f)
            if os.path.isfile(p):
                os.chmod(p, 0o644)
        return self


_pki = []
_pki_lock = threading.Lock()


def tls_pki():
    """The TlsPki of this test process, made on first use (openssl
    command line), removed at exit (kept with POSTERN_KEEP_TMP)."""
    with _pki_lock:
        if not _pki:
            d = tempfile.mkdtemp(prefix="postern-pki-")
            os.chmod(d, 0o755)
            try:
                _pki.append(TlsPki(d).create())
            except BaseException:
                shutil.rmtree(d, ignore_errors=True)
                raise
            if not os.environ.get("POSTERN_KEEP_TMP"):
                atexit.register(shutil.rmtree, d, True)
        return _pki[0]



def tls_client_context(ca_file=None, cert=None, key=None, min_version=None,
                       max_version=None, verify=True):
    """A client ssl.SSLContext.  verify=True: the server certificate must
    chain to ca_file and match the host name (ssl.create_default_context
    semantics).  cert/key: a client certificate.  min_version/max_version:
    ssl.TLSVersion values."""
    if verify:
        ctx = ssl.create_default_context(cafile=ca_file)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def cert_names(cert):
    """(commonName, [subjectAltName DNS/IP values]) of a getpeercert()
    dict."""
    cn = None
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                cn = v
    sans = [v for _, v in cert.get("subjectAltName", ())]
    return cn, sans


# ------------------------------------------------------------------ server

def free_ports(n, host="127.0.0.1"):
    """n distinct free ports: all are held at once while they are picked
    (one port picked, released and picked again could come back)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(host="127.0.0.1"):
    return free_ports(1, host)[0]


def _proc_stat(pid):
    """(state, ppid) of pid, or None if it does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    return rest[0], int(rest[1])


def pid_alive(pid):
    st = _proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def children_of(pid):
    """Live direct children of pid."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _proc_stat(int(d))
            if st and st[1] == pid and st[0] not in ("Z", "X"):
                out.append(int(d))
    return sorted(out)


def proc_uids(pid):
    """[real, effective, saved, fs] uids of pid from /proc/PID/status."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:5]]
    raise AssertionError("no Uid line for pid %d" % pid)


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("latin-1")
    except OSError:
        return ""


_uniq_lock = threading.Lock()
_uniq_counter = [0]


def maildir_unique_name():
    with _uniq_lock:
        _uniq_counter[0] += 1
        q = _uniq_counter[0]
    now = time.time()
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"
    # Microseconds zero-padded: names made in one second sort in the
    # order they were made, which is the order the store lists them.
    return "%d.M%06dP%dQ%d.%s" % (int(now), int((now % 1) * 1e6), os.getpid(),
                                q, host)


class Server:
    live = set()

    def __init__(self, config=None, users=None, start=False, tls=False,
                 pki=None, user_db_type=None, lmtp=False, lmtp_socket=False):
        self.dir = tempfile.mkdtemp(prefix="postern-test-")
        os.chmod(self.dir, 0o755)
        self.mail_root = os.path.join(self.dir, "mail")
        self.user_db_type = user_db_type
        self.user_db = os.path.join(
            self.dir, "users.db" if user_db_type == "sqlite" else "users")
        self.conf_path = os.path.join(self.dir, "postern.conf")
        self.log_path = os.path.join(self.dir, "posternd.log")
        self.host = "127.0.0.1"
        self.port, self.tls_port, self.lmtp_port = free_ports(3)
        self.tls = bool(tls)
        self.pki = (pki or tls_pki()) if tls else pki
        if not tls:
            self.tls_port = None
        if not lmtp:
            self.lmtp_port = None
        self.lmtp_socket = os.path.join(self.dir, "lmtp.sock") \
            if lmtp_socket else None
        self.ca_file = self.pki.ca_cert if self.pki else None
        self.proc = None
        self.users = {}
        self.overrides = dict(config or {})
        self._seen_children = set()
        self._log_checked = 0
        os.mkdir(self.mail_root, 0o755)
        if user_db_type != "sqlite":
            with open(self.user_db, "w"):
                pass
            os.chmod(self.user_db, 0o640)
            self._fix_owner(self.user_db, "auth")
        self._fix_owner(self.mail_root, "mail")
        Server.live.add(self)
        for name, pw in (users or {}).items():
            self.add_user(name, pw)
        if start:
            self.start()

    # -- configuration

    @property
    def config(self):
        c = {
            "listen": "%s:%d" % (self.host, self.port),
            "mail_root": self.mail_root,
            "user_db": self.user_db,
            "workers": 2,
            "auth_workers": 2,
            "auth_fail_delay": "100ms",
            "auth_fail_delay_max": "400ms",
            "idle_timeout": "10m",
        }
        if self.user_db_type:
            c["user_db_type"] = self.user_db_type
        if os.geteuid() == 0:
            c["mail_user"] = "nobody"
            c["auth_user"] = "nobody"
        if self.tls:
            c["listen"] = [c["listen"],
                           "%s:%d tls=implicit" % (self.host, self.tls_port)]
            c["tls_cert"] = self.pki.cert
            c["tls_key"] = self.pki.key
        lmtp = []
        if self.lmtp_port:
            lmtp.append("%s:%d" % (self.host, self.lmtp_port))
        if self.lmtp_socket:
            lmtp.append("unix:" + self.lmtp_socket)
        if lmtp:
            c["lmtp_listen"] = lmtp
        c.update(self.overrides)
        return c

    def config_text(self):
        out = []
        for key, val in self.config.items():
            if val is None:
                continue
            vals = val if isinstance(val, (list, tuple)) else [val]
            for v in vals:
                if isinstance(v, bool):
                    v = "yes" if v else "no"
                out.append("%s = %s" % (key, v))
        return "\n".join(out) + "\n"

    def write_config(self):
        tmp = self.conf_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(self.config_text())
        os.rename(tmp, self.conf_path)

    def update_config(self, changes):
        self.overrides.update(changes)
        self.write_config()

    def set_config(self, **kw):
        self.update_config(kw)

    def _ids(self, kind):
        """(uid, gid) the mail or auth processes run as, or None."""
        if os.geteuid() != 0:
            return None
        name = self.config.get("mail_user" if kind == "mail" else
                               "auth_user")
        if not name:
            return None
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            return None
        return pw.pw_uid, pw.pw_gid

    def _fix_owner(self, path, kind="mail"):
        ids = self._ids(kind)
        if ids is not None:
            os.chown(path, ids[0], ids[1])

    def chown_mail_root(self):
        """Gives the whole mail root to the mail user (as root only)."""
        ids = self._ids("mail")
        if ids is None:
            return
        for dirpath, dirnames, filenames in os.walk(self.mail_root):
            os.chown(dirpath, *ids)
            for f in filenames:
                os.chown(os.path.join(dirpath, f), *ids)

    # -- users

    def add_user(self, name, password, scheme="sha512-crypt", extra=()):
        db = ["--db", self.user_db]
        if self.user_db_type:
            db += ["--db-type", self.user_db_type]
        r = postern("user", "add", *db, "--scheme", scheme, *extra,
                    name, input=password + "\n")
        assert r.returncode == 0, \
            "postern user add %s: exit %d: %s" % (
                name, r.returncode, r.stderr.decode("utf-8", "replace"))
        self._fix_owner(self.user_db, "auth")
        self.users[name] = password

    def add_user_line(self, line):
        with open(self.user_db, "a") as f:
            f.write(line.rstrip("\n") + "\n")

    # -- mail

    def maildir(self, user):
        return os.path.join(self.mail_root, user)

    def ensure_maildir(self, user):
        md = self.maildir(user)
        for d in (md, md + "/cur", md + "/new", md + "/tmp"):
            if not os.path.isdir(d):
                os.makedirs(d, 0o700, exist_ok=True)
                self._fix_owner(d)
        return md

    def add_message(self, user, data, name=None, subdir="new"):
        """Delivers data into the user's Maildir; returns the base name."""
        md = self.ensure_maildir(user)
        name = name or maildir_unique_name()
        tmp = os.path.join(md, "tmp", name.split(":", 1)[0])
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        self._fix_owner(tmp)
        os.rename(tmp, os.path.join(md, subdir, name))
        return name.split(":2,", 1)[0]

    def message_files(self, user):
        """{base name: path} of the files in new/ and cur/."""
        md = self.maildir(user)
        out = {}
        for sub in ("new", "cur"):
            d = os.path.join(md, sub)
            if os.path.isdir(d):
                for f in os.listdir(d):
                    out[f.split(":2,", 1)[0]] = os.path.join(d, f)
        return out

    # -- process control

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=10.0):
        assert not self.running(), "server already running"
        assert os.access(posternd_path(), os.X_OK), \
            "no posternd binary at %s" % posternd_path()
        for attempt in range(3):
            self.write_config()
            log_start = self._log_size()
            logf = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen(
                    [posternd_path(), "-c", self.conf_path],
                    stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                    env=_child_env(), cwd=self.dir)
            finally:
                logf.close()
            err = self._wait_ready(timeout)
            if err is None:
                return
            tail = self.log_text()[log_start:]
            if not self.running() and "in use" in tail and attempt < 2 \
                    and "listen" not in self.overrides:
                self.port, tls_port, lmtp_port = free_ports(3)
                if self.tls:
                    self.tls_port = tls_port
                if self.lmtp_port is not None:
                    self.lmtp_port = lmtp_port
                continue
            if self.running():
                self._kill_all()
            raise AssertionError("posternd did not start: %s\n--- log:\n%s"
                                 % (err, tail[-4000:]))

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = "no connection"
        while time.monotonic() < deadline:
            if not self.running():
                return "exited with status %s" % self.proc.returncode
            try:
                c = Pop3Conn(self.host, self.port, timeout=max(
                    0.2, min(2.0, deadline - time.monotonic())))
            except (OSError, AssertionError) as e:
                last = repr(e)
                time.sleep(0.05)
                continue
            try:
                if not c.greeting.startswith("+OK"):
                    return "greeting %r" % c.greeting
                try:
                    c.command("QUIT")
                    c.wait_closed(2)
                except AssertionError:
                    pass
                self._remember_children()
                return None
            finally:
                c.close()
        return "no greeting within %.0fs (%s)" % (timeout, last)

    def _remember_children(self):
        if self.running():
            self._seen_children.update(children_of(self.proc.pid))

    def _started_pids(self, kind=None):
        pat = r"started (pop3|auth|lmtp) worker pid=(\d+)"
        out = []
        for m in re.finditer(pat, self.log_text()):
            if kind is None or m.group(1) == kind:
                out.append(int(m.group(2)))
        return out

    def worker_pids(self, kind="pop3"):
        """Live worker processes of the running master."""
        if not self.running():
            return []
        kids = children_of(self.proc.pid)
        self._seen_children.update(kids)
        if kind is None:
            return kids
        named = set(self._started_pids(kind))
        if named:
            return [p for p in kids if p in named]
        return kids

    def wait_workers(self, kind="pop3", count=1, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.worker_pids(kind)
            if len(pids) >= count:
                return pids
            time.sleep(0.05)
        raise AssertionError("fewer than %d %s workers after %.0fs"
                             % (count, kind, timeout))

    def kill_worker(self, kind="pop3", all=False):
        pids = self.worker_pids(kind)
        assert pids, "no %s worker to kill" % kind
        if not all:
            pids = pids[:1]
        for p in pids:
            os.kill(p, signal.SIGKILL)
        return pids

    def lmtp_connect(self, timeout=10.0, unix=False):
        """An smtplib.LMTP client, greeted, on the TCP port or the Unix
        socket."""
        if unix:
            assert self.lmtp_socket, "server made without lmtp_socket"
            c = smtplib.LMTP(self.lmtp_socket, timeout=timeout)
        else:
            assert self.lmtp_port, "server made without lmtp"
            c = smtplib.LMTP(self.host, self.lmtp_port, timeout=timeout)
        return c

    def reload(self):
        assert self.running()
        os.kill(self.proc.pid, signal.SIGHUP)

    def _our_processes(self):
        """Every live process that belongs to this server instance."""
        pids = set()
        for d in os.listdir("/proc"):
            if d.isdigit() and self.conf_path in proc_cmdline(int(d)):
                if pid_alive(int(d)):
                    pids.add(int(d))
        for p in self._seen_children | set(self._started_pids()):
            if pid_alive(p) and "posternd" in proc_cmdline(p):
                pids.add(p)
        if self.proc is not None:
            pids.discard(self.proc.pid)
        return pids

    def _kill_all(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for p in self._our_processes():
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def mount_small_mail_root(self, size="1m"):
        if not is_root():
            return "mounting a small tmpfs for a full disk needs root"
        r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            "size=%s,mode=0755" % size, "postern-test",
                            self.mail_root],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            return "cannot mount a tmpfs: %s" % r.stdout.decode().strip()
        self.chown_mail_root()
        return None

    def unmount_mail_root(self):
        self.stop()
        for _ in range(20):
            if subprocess.run(["umount", self.mail_root]).returncode == 0:
                return
            time.sleep(0.1)
        subprocess.run(["umount", "-l", self.mail_root])

    def crash(self):
        """SIGKILL to the master and to every process of this instance
        in the same instant, as a power cut would stop them."""
        assert self.running(), "server not running"
        self._remember_children()
        pids = [self.proc.pid] + sorted(self._our_processes())
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        deadline = time.monotonic() + 5
        while self._our_processes() and time.monotonic() < deadline:
            time.sleep(0.02)
        left = self._our_processes()
        assert not left, "processes left after SIGKILL: %s" % sorted(left)
        return pids

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stops the master; returns its exit status.  Fails if it hangs
        or leaves a process behind."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._remember_children()
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_all()
                raise AssertionError("posternd did not exit %.0fs after %s"
                                     % (timeout, signal.Signals(sig).name))
        status = self.proc.returncode
        deadline = time.monotonic() + 5
        left = self._our_processes()
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = self._our_processes()
        if left:
            for p in left:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            raise AssertionError("posternd processes left behind after "
                                 "stop: %s" % sorted(left))
        return status

    def restart(self):
        st = self.stop()
        assert st == 0, "posternd exit status %s on SIGTERM" % st
        self.start()

    def cleanup(self, check=True):
        """Stops the server and checks its log; removes the temp dir if
        all is well, else keeps it and names it in the failure."""
        err = None
        try:
            self.stop()
        except AssertionError as e:
            err = e
        Server.live.discard(self)
        if err is None and check:
            try:
                self.check_log()
            except AssertionError as e:
                err = e
        if err is not None:
            raise AssertionError("%s\n(files kept in %s)" % (err, self.dir))
        if not os.environ.get("POSTERN_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- log

    def _log_size(self):
        try:
            return len(self.log_text())
        except OSError:
            return 0

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_lines(self):
        return self.log_text().splitlines()

    def wait_log(self, regex, timeout=5.0, start=0):
        deadline = time.monotonic() + timeout
        rx = re.compile(regex)
        while True:
            m = rx.search(self.log_text(), start)
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError("log has no %r after %.0fs:\n%s"
                                     % (regex, timeout,
                                        self.log_text()[start:][-3000:]))
            time.sleep(0.05)

    def check_log(self, start=0):
        text = self.log_text()[start:]
        for pat in BAD_LOG_PATTERNS:
            i = text.find(pat)
            if i >= 0:
                raise AssertionError("posternd log contains %r:\n%s"
                                     % (pat, text[max(0, i - 2000):i + 6000]))

    # -- clients

    def connect(self, source=None, timeout=DEFAULT_TIMEOUT, greeting=True):
        return Pop3Conn(self.host, self.port, timeout=timeout, source=source,
                        greeting=greeting)

    def login(self, user, password=None, source=None,
              timeout=DEFAULT_TIMEOUT):
        c = self.connect(source=source, timeout=timeout)
        try:
            assert c.greeting.startswith("+OK"), c.greeting
            c.login(user, self.users[user] if password is None else password)
        except BaseException:
            c.close()
            raise
        return c

    def connect_tls(self, source=None, timeout=DEFAULT_TIMEOUT, greeting=True,
                    server_hostname="localhost", context=None, session=None,
                    port=None):
        """Implicit TLS to tls_port (or port), verified against the test
        CA unless context is given."""
        return Pop3Conn.connect_tls(
            self.host, port or self.tls_port, ca_file=self.ca_file,
            server_hostname=server_hostname, context=context,
            session=session, timeout=timeout, source=source,
            greeting=greeting)

    def login_tls(self, user, password=None, source=None,
                  timeout=DEFAULT_TIMEOUT, **kw):
        c = self.connect_tls(source=source, timeout=timeout, **kw)
        try:
            assert c.greeting.startswith("+OK"), c.greeting
            c.login(user, self.users[user] if password is None else password)
        except BaseException:
            c.close()
            raise
        return c

    def login_stls(self, user, password=None, source=None,
                   timeout=DEFAULT_TIMEOUT, **kw):
        """Plain port, STLS, then USER/PASS over TLS."""
        c = self.connect(source=source, timeout=timeout)
        try:
            st = c.stls(self.ca_file, **kw)
            assert st.startswith("+OK"), "STLS: %r" % st
            c.login(user, self.users[user] if password is None else password)
        except BaseException:
            c.close()
            raise
        return c


def is_root():
    return os.geteuid() == 0



# -------------------------------------------------------------------- LMTP

def lmtp_stuff(msg):
    """msg (bytes, CRLF lines) as DATA sends it: dot-stuffed, ending with
    CRLF "." CRLF."""
    if msg and not msg.endswith(b"\r\n"):
        msg += b"\r\n"
    out = re.sub(rb"(?m)^\.", b"..", msg)
    return out + b".\r\n"


def lmtp_data(client, msg, replies, raw=False):
    """DATA on an smtplib.LMTP client: sends msg (stuffed unless raw),
    then reads one reply per accepted recipient (RFC 2033 section 4.2),
    which smtplib's own data() does not.  Returns [(code, text)]."""
    code, text = client.docmd("DATA")
    assert code == 354, (code, text)
    client.send(msg if raw else lmtp_stuff(msg))
    return [client.getreply() for _ in range(replies)]


def lmtp_headers(sender, rcpt):
    """The trace header lines the lmtp process puts in front."""
    return b"Return-Path: <" + sender.encode() + b">\r\nDelivered-To: " + \
        rcpt.encode() + b"\r\n"
