"""
postfix.py: a private Postfix instance for tests, on loopback, started and
stopped by the test that made it.  Standard library only; needs root and
the Debian postfix package (scripts/install-deps installs it unconfigured,
so that no system Postfix runs).

API
    available() -> str or None
        None when a private Postfix can run here, else why not (for
        pytest.skip): not root, or postfix not installed.

    Postfix(transports=None, services=(), main=None, port=None)
        An instance in a fresh temp dir (`dir`): config_directory
        `config_dir` (main.cf, master.cf written here), queue_directory
        `queue_dir`, data_directory, log file `log_path`
        (maillog_file).  Nothing is chrooted; every service listens on
        127.0.0.1 only; smtpd on `port` (a free one unless given);
        myhostname localhost; mydestination is empty, so no mail is
        delivered locally.
        transports: dict domain -> transport ("name:nexthop" as in
            transport(5), e.g. "postern:" for a pipe service named
            postern, or "lmtp:inet:127.0.0.1:2400", "lmtp:unix:/path");
            these domains are relay_domains that Postfix accepts from
            127.0.0.0/8 and hands to that transport.
        services: extra master.cf lines (see pipe_service()).
        main: dict of further main.cf parameters (they win).
      start(timeout=30)     `postfix -c DIR start`, waits for smtpd
      stop(timeout=30)      `postfix -c DIR stop`; then kills the master
                            PID it started if it is still there
      cleanup()             stop(), then removes `dir`
      sendmail_command(*args) -> str
                            "/usr/sbin/sendmail -C DIR ARGS..." for a
                            submission command (any user may run it:
                            DIR is listed in alternate_config_directories
                            of /etc/postfix/main.cf while the instance
                            runs)
      wait_queue_empty(timeout=30)
                            until no message is queued (incoming,
                            active, deferred, maildrop)
      deferred() -> number of messages in the deferred queue
      log_text()            the instance's maillog
    pipe_service(name, argv, user="nobody") -> str
        a master.cf line for a pipe(8) transport running argv (a list;
        pipe's $-macros such as ${user} allowed) as user, without the
        F, R or D flags: the message arrives as Postfix queued it.  For
        a command that takes one recipient (${user}), also give main
        NAME_destination_recipient_limit = 1.

    split_trace(data) -> (fields, rest)
        a message as POP3 RETR gives it (CRLF) split into the trace
        fields at the top of its header (Return-Path, Delivered-To,
        Received, X-Original-To; each with its continuation lines) and
        the rest, which is what the sender sent
    strip_trace(data) -> the rest alone

The only system file touched is /etc/postfix/main.cf: the instance's
directory is added to alternate_config_directories at start and removed
at stop, under a lock, so that instances of parallel tests do not undo
each other.  When there was no main.cf (the package installed with "No
configuration"), the file is created for the run and removed again once
no instance needs it, so the package's own Postfix stays unconfigured.
"""

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

POSTFIX = "/usr/sbin/postfix"
SENDMAIL = "/usr/sbin/sendmail"
DEFAULT_MAIN = "/etc/postfix/main.cf"
LOCK = "/etc/postfix/.postern-tests.lock"
ALT = "alternate_config_directories"
MARK = ("# Written by Postern's tests (tests/postfix.py), removed when no"
        " private instance runs.")

# master.cf without chroot: every service a relay-only Postfix uses.
MASTER_CF = """\
{host}:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
proxywrite unix - - n -  1 proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
local     unix  - n n -  - local
virtual   unix  - n n -  - virtual
lmtp      unix  - - n -  - lmtp
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


TRACE_FIELDS = (b"return-path:", b"delivered-to:", b"received:",
                b"x-original-to:")


def split_trace(data):
    lines = data.split(b"\r\n")
    fields, i = [], 0
    while i < len(lines) and lines[i].lower().startswith(TRACE_FIELDS):
        f = lines[i]
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            f += b"\r\n" + lines[i]
            i += 1
        fields.append(f)
    return fields, b"\r\n".join(lines[i:])


def strip_trace(data):
    return split_trace(data)[1]


def available():
    if os.geteuid() != 0:
        return "a private Postfix needs root"
    for path in (POSTFIX, SENDMAIL, "/usr/sbin/postdrop"):
        if not os.access(path, os.X_OK):
            return "%s is not installed (scripts/install-deps)" % path
    return None


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def pipe_service(name, argv, user="nobody"):
    return "%s unix - n n - - pipe\n  user=%s argv=%s\n" % (
        name, user, " ".join(argv))


def _edit_alternates(add=None, remove=None):
    """Adds or removes one directory in alternate_config_directories of
    the default main.cf, under a lock."""
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    with open(LOCK, "a") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        try:
            with open(DEFAULT_MAIN) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = [MARK]
        dirs = []
        rest = []
        for line in lines:
            key = line.split("=", 1)[0].strip()
            if key == ALT and "=" in line:
                dirs = line.split("=", 1)[1].replace(",", " ").split()
            else:
                rest.append(line)
        if add and add not in dirs:
            dirs.append(add)
        if remove:
            dirs = [d for d in dirs if d != remove]
        # Directories of instances that are gone are dropped too.
        dirs = [d for d in dirs if os.path.isdir(d)]
        if not dirs and rest[:1] == [MARK]:
            # Ours, and no instance needs it: without a main.cf, the
            # package's own Postfix stays unconfigured and never starts.
            try:
                os.unlink(DEFAULT_MAIN)
            except FileNotFoundError:
                pass
            return
        if dirs:
            rest.append("%s = %s" % (ALT, " ".join(dirs)))
        tmp = DEFAULT_MAIN + ".tmp.%d" % os.getpid()
        with open(tmp, "w") as f:
            f.write("\n".join(rest) + "\n")
        os.chmod(tmp, 0o644)
        os.rename(tmp, DEFAULT_MAIN)


class Postfix:
    def __init__(self, transports=None, services=(), main=None, port=None):
        self.dir = tempfile.mkdtemp(prefix="postern-postfix-")
        os.chmod(self.dir, 0o755)
        self.config_dir = os.path.join(self.dir, "etc")
        self.queue_dir = os.path.join(self.dir, "queue")
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "maillog")
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.transports = dict(transports or {})
        self.services = list(services)
        self.master_pid = None
        for d in (self.config_dir, self.queue_dir, self.data_dir):
            os.mkdir(d, 0o755)
        shutil.chown(self.data_dir, "postfix", "postfix")
        params = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "maillog_file": self.log_path,
            "maillog_file_prefixes": self.dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "localhost",
            "mydomain": "localdomain",
            "myorigin": "localhost",
            "mydestination": "",
            "inet_interfaces": self.host,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtp_bind_address": self.host,
            "lmtp_bind_address": self.host,
            "relay_domains": " ".join(sorted(self.transports)),
            "transport_maps": self._inline(self.transports),
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "smtpd_relay_restrictions":
                "permit_mynetworks, reject_unauth_destination",
            "smtputf8_enable": "no",
            "biff": "no",
            "delay_warning_time": "0",
            "maximal_queue_lifetime": "1h",
            "queue_run_delay": "5s",
            "minimal_backoff_time": "5s",
            "maximal_backoff_time": "10s",
            "import_environment": "MAIL_CONFIG MAIL_DEBUG TZ LANG=C",
        }
        params.update(main or {})
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            for k, v in params.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(host=self.host, port=self.port))
            for s in self.services:
                f.write(s if s.endswith("\n") else s + "\n")

    @staticmethod
    def _inline(mapping):
        if not mapping:
            return ""
        return "inline:{ " + ", ".join(
            "{ %s = %s }" % (k, v) for k, v in sorted(mapping.items())) + " }"

    def _postfix(self, *args, timeout=60):
        return subprocess.run([POSTFIX, "-c", self.config_dir] + list(args),
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout)

    def start(self, timeout=30):
        _edit_alternates(add=self.config_dir)
        r = self._postfix("start")
        if r.returncode != 0:
            raise AssertionError("postfix start failed: %s\n%s" % (
                r.stdout.decode(errors="replace"), self.log_text()))
        pidfile = os.path.join(self.queue_dir, "pid", "master.pid")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(pidfile) as f:
                    self.master_pid = int(f.read().split()[0])
                with socket.create_connection((self.host, self.port), 1) as s:
                    s.settimeout(5)
                    if s.recv(512).startswith(b"220"):
                        return self
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.1)
        raise AssertionError("private Postfix did not come up on %s:%d\n%s"
                             % (self.host, self.port, self.log_text()))

    def stop(self, timeout=30):
        try:
            if self.master_pid is not None:
                self._postfix("stop", timeout=timeout)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and self._alive():
                    time.sleep(0.1)
                if self._alive():
                    os.kill(self.master_pid, signal.SIGKILL)
                self.master_pid = None
        finally:
            _edit_alternates(remove=self.config_dir)

    def _alive(self):
        if self.master_pid is None:
            return False
        try:
            with open("/proc/%d/comm" % self.master_pid) as f:
                return f.read().strip() == "master"
        except FileNotFoundError:
            return False

    def cleanup(self):
        """stop(), then removes the instance's directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def sendmail_command(self, *args):
        return " ".join([SENDMAIL, "-C", self.config_dir] + list(args))

    def _queued(self, queues):
        n = 0
        for q in queues:
            for _root, _dirs, files in os.walk(os.path.join(self.queue_dir,
                                                            q)):
                n += len(files)
        return n

    def deferred(self):
        return self._queued(["deferred"])

    def wait_queue_empty(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queued(["maildrop", "incoming", "active",
                             "deferred"]) == 0:
                return
            time.sleep(0.2)
        raise AssertionError("Postfix queue not empty after %ds\n%s"
                             % (timeout, self.log_text()[-4000:]))

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""
