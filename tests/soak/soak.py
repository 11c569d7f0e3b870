#!/usr/bin/python3
"""
soak.py: run posternd for a while under mixed load and faults, then check
that no mail was lost, duplicated or damaged.  See tests/soak/README.md.

Standard library only; the server, the test PKI and the POP3 client come
from tests/harness.py.  Everything runs on 127.0.0.1.  Exit status 0 when
every invariant held, 1 when one did not, 2 on a usage error.
"""

import argparse
import collections
import errno
import hashlib
import os
import random
import re
import shutil
import signal
import smtplib
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import harness  # noqa: E402
from harness import (Closed, Pop3Conn, Server, Timeout,  # noqa: E402
                     expected_uidl, lmtp_headers, tls_client_context,
                     unstuff, wire_form)

HOST = "127.0.0.1"
CLIENT_TIMEOUT = 20.0           # a reply slower than this is a stall
HANDSHAKE_TIMEOUT_S = 5         # tls_handshake_timeout in the config
FETCH_USERS = ["fetch0", "fetch1", "fetch2", "fetch3"]
STORM_USER = "storm"
STORM_MESSAGES = 30
STORE_CAP = 16 << 20            # deliveries pause above this many octets
DELIVERERS = 2                  # LMTP client threads
WORKERS = {"pop3": 2, "auth": 2, "lmtp": 1}     # processes of each kind
DOMAIN = "postern.test"
TMPFS_SIZE_MIB = 64
DRAIN_TIMEOUT = 90.0
SETTLE_S = 3.0


def now():
    return time.monotonic()


# ------------------------------------------------------------------ stats

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.errors = collections.Counter()
        self.violations = []
        self.notes = []

    def add(self, key, n=1):
        with self.lock:
            self.counts[key] += n

    def error(self, kind):
        with self.lock:
            self.errors[kind] += 1

    def violation(self, what):
        with self.lock:
            if len(self.violations) < 1000:
                self.violations.append(what)
        log("VIOLATION: " + what)

    def note(self, what):
        with self.lock:
            self.notes.append(what)
        log("note: " + what)


STATS = Stats()
_print_lock = threading.Lock()
T0 = now()


def log(msg):
    with _print_lock:
        print("[%7.1fs] %s" % (now() - T0, msg), flush=True)


def reply_kind(st):
    """A reply line reduced to its kind (numbers removed)."""
    return re.sub(r"\d+", "N", st.strip())[:80]


def exc_kind(e):
    if isinstance(e, Closed):
        return "connection closed by the server"
    if isinstance(e, Timeout):
        return "timeout"
    if isinstance(e, ssl.SSLError):
        return "ssl: %s" % (getattr(e, "reason", None) or type(e).__name__)
    if isinstance(e, OSError):
        return "%s" % (errno.errorcode.get(e.errno, type(e).__name__)
                       if e.errno else type(e).__name__)
    return type(e).__name__


# ----------------------------------------------------------------- ledger

def msg_key(msgid, user):
    return "%s %s" % (msgid, user)


class Msg:
    """One message for one recipient (an LMTP transaction with several
    recipients makes one Msg per recipient, with the same Message-ID)."""
    __slots__ = ("key", "msgid", "user", "uidl", "wire_sha", "size",
                 "state", "seq")

    def __init__(self, msgid, user, uidl, wire_sha, size, seq):
        self.key = msg_key(msgid, user)
        self.msgid = msgid
        self.user = user
        self.uidl = uidl        # None until a RETR shows it (LMTP)
        self.wire_sha = wire_sha
        self.size = size
        # pending -> acked (250) | failed (a 4xx reply) | dropped (the
        # connection ended before its reply)
        self.state = "pending"
        self.seq = seq


class Sess:
    __slots__ = ("kind", "user", "mode", "pass_t", "seen", "retrieved",
                 "deleted", "outcome", "quit_t", "nmsgs")

    def __init__(self, kind, user, mode):
        self.kind = kind
        self.user = user
        self.mode = mode
        self.pass_t = None      # when PASS was sent (before the snapshot)
        self.seen = ()          # UIDLs listed
        self.retrieved = []     # msgids retrieved and verified
        self.deleted = []       # msgids whose DELE got +OK
        self.outcome = "broken"
        self.quit_t = None      # when "+OK Bye" arrived
        self.nmsgs = None


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.msgs = {}          # key -> Msg
        self.by_uidl = {}       # (user, UIDL) -> key
        self.sessions = []      # Sess of the fetch users
        self.seq = 0

    def next_seq(self):
        with self.lock:
            self.seq += 1
            seq = self.seq
        return seq

    def register(self, m):
        with self.lock:
            self.msgs[m.key] = m
            if m.uidl is not None:
                self.by_uidl[(m.user, m.uidl)] = m.key

    def seen_at(self, m, uidl):
        """Records the UIDL a message was retrieved under; returns the
        one recorded before when it differs (stored twice), else None."""
        with self.lock:
            if m.uidl is None:
                m.uidl = uidl
                self.by_uidl[(m.user, uidl)] = m.key
                return None
            return m.uidl if m.uidl != uidl else None

    def add_session(self, s):
        with self.lock:
            self.sessions.append(s)


LEDGER = Ledger()


# --------------------------------------------------------------- messages

_WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet "
          "kilo lima mike november oscar papa quebec romeo sierra tango "
          "uniform victor whiskey xray yankee zulu").split()


def make_body(rng, size):
    """Random text lines of about size octets, with lines that need
    byte-stuffing."""
    lines = []
    total = 0
    while total < size:
        r = rng.random()
        if r < 0.03:
            line = "."
        elif r < 0.08:
            line = ".." + " ".join(rng.choice(_WORDS) for _ in range(3))
        elif r < 0.12:
            line = ""
        else:
            line = " ".join(rng.choice(_WORDS)
                            for _ in range(rng.randint(1, 14)))
        lines.append(line)
        total += len(line) + 2
    return lines


def make_message(rng, rcpts, seq, size):
    """(message bytes, msgid) of a new message; line ends CRLF or LF,
    sometimes none after the last line."""
    msgid = "<soak.%d.%s@postern.test>" % (seq, os.urandom(6).hex())
    body_lines = make_body(rng, size)
    eol = "\r\n" if rng.random() < 0.3 else "\n"
    body = eol.join(body_lines)
    if rng.random() < 0.9:
        body += eol             # else: no final line end
    body_wire = wire_form(body.encode())
    headers = [
        "From: Soak <soak@postern.test>",
        "To: %s" % ", ".join(rcpts),
        "Subject: soak message %d" % seq,
        "Date: %s" % time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                                   time.gmtime()),
        "Message-ID: %s" % msgid,
        "X-Soak-Body-SHA256: %s" % hashlib.sha256(body_wire).hexdigest(),
    ]
    return (eol.join(headers) + eol + eol + body).encode(), msgid


def lmtp_payload(msg):
    """msg as DATA sends it: dot-stuffed, the last line ended, then the
    final dot.  Bare LF lines are sent as they are (the lmtp process
    stores them with CRLF)."""
    if not msg.endswith(b"\n"):
        msg += b"\r\n"
    return re.sub(rb"(?m)^\.", b"..", msg) + b".\r\n"


def parse_message(wire):
    """(msgid, body checksum ok) of a message as RETR sent it."""
    i = wire.find(b"\r\n\r\n")
    if i < 0:
        return None, False
    head, body = wire[:i].decode("latin-1"), wire[i + 4:]
    msgid = want = None
    for line in head.split("\r\n"):
        k, _, v = line.partition(":")
        if k.lower() == "message-id":
            msgid = v.strip()
        elif k.lower() == "x-soak-body-sha256":
            want = v.strip()
    return msgid, want == hashlib.sha256(body).hexdigest()


_uniq_lock = threading.Lock()
_uniq = [0]


def unique_name():
    with _uniq_lock:
        _uniq[0] += 1
        q = _uniq[0]
    t = time.time()
    return "%d.M%dP%dQ%d.soak" % (int(t), int((t % 1) * 1e6), os.getpid(), q)


# ---------------------------------------------------------------- the run

class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.minutes = args.minutes
        self.stop_load = threading.Event()      # storms, abrupt, faults
        self.stop_deliver = threading.Event()
        self.stop_deliver_t = None
        self.stop_all = threading.Event()
        self.srv = None
        self.pki = None
        self.tmpfs = False
        self.mail_ids = None    # (uid, gid) of mail_user when root
        self.storm_stat = None
        self.storm_uidls = None
        self.store_bytes = 0
        self.store_lock = threading.Lock()
        self.disk_full = threading.Event()
        self.disk_lock = threading.Lock()
        self.hello = None
        self.mem_start = None
        self.mem_end = None
        self.mem_peak = 0
        self.mem_enforced = True
        self.threads = []
        self.drained = {}

    # -- set-up

    def setup(self):
        self.pki = harness.tls_pki()
        cfg = {
            "idle_timeout": "30s",
            "tls_handshake_timeout": "%ds" % HANDSHAKE_TIMEOUT_S,
            "max_connections": 2000,
            "max_connections_per_ip": 1000,
            "max_connections_per_user": 1000,
            "auth_fail_delay": "100ms",
            "auth_fail_delay_max": "400ms",
            "greeting": "Postern soak gen 0.",
        }
        self.srv = Server(config=cfg, tls=True, pki=self.pki, lmtp=True,
                          lmtp_socket=True)
        if os.geteuid() == 0 and not self.args.no_disk_full:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                                "size=%dm,mode=0755" % TMPFS_SIZE_MIB,
                                "postern-soak", self.srv.mail_root],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            if r.returncode == 0:
                self.tmpfs = True
            else:
                STATS.note("cannot mount a tmpfs on the mail root (%s): "
                           "the disk-full fault is skipped"
                           % r.stdout.decode().strip())
        elif os.geteuid() != 0:
            STATS.note("not running as root: no tmpfs can be mounted, "
                       "the disk-full fault is skipped")
        else:
            STATS.note("--no-disk-full: the disk-full fault is skipped")
        self.mail_ids = self.srv._ids("mail")
        if self.mail_ids:
            os.chown(self.srv.mail_root, *self.mail_ids)
        for u in FETCH_USERS:
            self.srv.add_user(u, "pw-%s-%s" % (u, os.urandom(4).hex()))
            self.srv.ensure_maildir(u)
        self.srv.add_user(STORM_USER, "storm pass %s" % os.urandom(4).hex(),
                          scheme="plain")
        self.srv.ensure_maildir(STORM_USER)
        rng = random.Random(self.args.seed + 1)
        for i in range(STORM_MESSAGES):
            size = rng.choice((300, 2000, 9000, 40000)) if i % 15 else \
                1 << 20
            if not self.deliver_direct(rng, STORM_USER, size):
                raise RuntimeError("cannot deliver the storm mailbox")
        self.srv.start()
        # A ClientHello to cut short.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        self.hello = out.read()
        log("posternd pid %d, plain port %d, TLS port %d, LMTP port %d "
            "and %s, dir %s%s"
            % (self.srv.pid, self.srv.port, self.srv.tls_port,
               self.srv.lmtp_port, self.srv.lmtp_socket, self.srv.dir,
               ", mail root on a %d MiB tmpfs" % TMPFS_SIZE_MIB
               if self.tmpfs else ""))

    # -- the storm mailbox, written before the start as an MTA does

    def deliver_direct(self, rng, user, size):
        """True when the message is in new/ and flushed."""
        seq = LEDGER.next_seq()
        msg, msgid = make_message(rng, ["%s@%s" % (user, DOMAIN)], seq,
                                  size)
        stored = lmtp_headers("soak@" + DOMAIN, "%s@%s" % (user, DOMAIN)) + \
            msg
        wire = wire_form(stored)
        name = unique_name()
        md = self.srv.maildir(user)
        m = Msg(msgid, user, expected_uidl(name),
                hashlib.sha256(wire).hexdigest(), len(wire), seq)
        tmp = os.path.join(md, "tmp", name)
        try:
            with open(tmp, "xb") as f:
                f.write(stored)
                f.flush()
                os.fsync(f.fileno())
                if self.mail_ids:
                    os.fchown(f.fileno(), *self.mail_ids)
            os.rename(tmp, os.path.join(md, "new", name))
            dfd = os.open(os.path.join(md, "new"), os.O_RDONLY |
                          os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            log("cannot write the storm mailbox: %s" % e)
            return False
        m.state = "acked"
        LEDGER.register(m)
        return True

    # -- deliveries over LMTP

    def lmtp_open(self, rng):
        """A greeted LMTP client (TCP, or now and then the Unix socket)
        after LHLO, or None."""
        unix = rng.random() < 0.2
        how = "unix" if unix else "tcp"
        try:
            c = self.srv.lmtp_connect(timeout=CLIENT_TIMEOUT, unix=unix)
        except smtplib.SMTPConnectError as e:
            # 421 4.3.2 from the master while the lmtp process restarts.
            STATS.error("lmtp: greeting %s" % reply_kind(
                "%s %s" % (e.smtp_code, e.smtp_error.decode("latin-1"))))
            return None
        except (smtplib.SMTPException, OSError) as e:
            self.lmtp_exc("connect", e)
            return None
        STATS.add("lmtp sessions %s" % how)
        try:
            code, text = c.ehlo("soak.%s" % DOMAIN)
        except (smtplib.SMTPException, OSError) as e:
            self.lmtp_exc("LHLO", e)
            c.close()
            return None
        if code != 250:
            STATS.error("lmtp: LHLO %s" % reply_kind(
                "%d %s" % (code, text.decode("latin-1"))))
            c.close()
            return None
        return c

    def lmtp_exc(self, phase, e):
        """Counts a failed LMTP client call; a stall is a violation."""
        text = str(e)
        if isinstance(e, (socket.timeout, TimeoutError)) or \
                "timed out" in text:
            STATS.error("lmtp: timeout during %s" % phase)
            STATS.violation("lmtp: no reply within %.0fs during %s"
                            % (CLIENT_TIMEOUT, phase))
        elif isinstance(e, smtplib.SMTPServerDisconnected):
            STATS.error("lmtp: connection closed during %s" % phase)
        else:
            STATS.error("lmtp: %s during %s" % (exc_kind(e), phase))

    def lmtp_reply(self, what, m, code, text):
        """Records the reply of one recipient."""
        if code == 250:
            m.state = "acked"
            STATS.add("deliveries acknowledged")
            with self.store_lock:
                self.store_bytes += m.size
            return
        m.state = "failed"
        k = reply_kind("%d %s" % (code, text.decode("latin-1")))
        if 400 <= code < 500:
            STATS.add("deliveries failed (4xx)")
            STATS.error("lmtp: %s %s" % (what, k))
        else:
            STATS.add("deliveries refused (5xx)")
            STATS.violation("lmtp: %s for %s: %s" % (what, m.user, k))

    def lmtp_transaction(self, c, rng):
        """One transaction of 1 to 3 recipients; False when the
        connection is gone."""
        users = rng.sample(FETCH_USERS, rng.choice((1, 1, 1, 2, 2, 3)))
        rcpts = ["%s@%s" % (u, DOMAIN) for u in users]
        sender = "" if rng.random() < 0.1 else "soak@" + DOMAIN
        r = rng.random()
        size = (rng.randint(200, 8000) if r < 0.7 else
                rng.randint(8000, 64000) if r < 0.95 else
                rng.randint(128000, 512000))
        seq = LEDGER.next_seq()
        msg, msgid = make_message(rng, rcpts, seq, size)
        body = wire_form(msg)
        ms = []
        for u, a in zip(users, rcpts):
            wire = lmtp_headers(sender, a) + body
            m = Msg(msgid, u, None, hashlib.sha256(wire).hexdigest(),
                    len(wire), seq)
            LEDGER.register(m)
            ms.append(m)
        STATS.add("lmtp transactions")
        STATS.add("lmtp recipients", len(ms))
        payload = lmtp_payload(msg)
        phase = "MAIL"
        accepted = []
        try:
            opts = ["SIZE=%d" % len(payload)] if rng.random() < 0.5 else []
            code, text = c.mail(sender, opts)
            if code != 250:
                for m in ms:
                    self.lmtp_reply("MAIL", m, code, text)
                c.rset()
                return True
            phase = "RCPT"
            for m, a in zip(ms, rcpts):
                code, text = c.rcpt(a)
                if code == 250:
                    accepted.append(m)
                else:
                    self.lmtp_reply("RCPT", m, code, text)
            if not accepted:
                c.rset()
                return True
            phase = "DATA"
            code, text = c.docmd("DATA")
            if code != 354:
                for m in accepted:
                    self.lmtp_reply("DATA", m, code, text)
                return True
            c.send(payload)
            phase = "the replies after DATA"
            while accepted:
                code, text = c.getreply()
                self.lmtp_reply("after DATA", accepted.pop(0), code, text)
            return True
        except (smtplib.SMTPException, OSError) as e:
            self.lmtp_exc(phase, e)
            for m in ms:
                if m.state == "pending":
                    m.state = "dropped"
                    STATS.add("deliveries without reply" if m in accepted
                              and phase != "DATA" else
                              "deliveries cut off before the end of DATA")
            return False

    def deliverer(self, idx):
        rng = random.Random(self.args.seed + 2 + 1000 * idx)
        c = None
        left = 0
        while not self.stop_deliver.is_set():
            with self.store_lock:
                full = self.store_bytes > STORE_CAP
            if full:
                STATS.add("delivery pauses (store cap)")
                self.stop_deliver.wait(0.5)
                continue
            if c is None:
                c = self.lmtp_open(rng)
                left = rng.randint(1, 8)
                if c is None:
                    self.stop_deliver.wait(0.2)
                    continue
            ok = self.lmtp_transaction(c, rng)
            left -= 1
            if not ok or left <= 0:
                if ok and rng.random() < 0.9:
                    try:
                        c.quit()
                    except (smtplib.SMTPException, OSError) as e:
                        self.lmtp_exc("QUIT", e)
                else:
                    if ok:
                        STATS.add("disconnects lmtp without QUIT")
                c.close()
                c = None
            self.stop_deliver.wait(rng.uniform(0.0, 0.15))
        if c is not None:
            try:
                c.quit()
            except (smtplib.SMTPException, OSError):
                pass
            c.close()

    def forget_bytes(self, n):
        with self.store_lock:
            self.store_bytes = max(0, self.store_bytes - n)

    # -- client connections

    def password(self, user):
        return self.srv.users[user]

    def open_conn(self, mode, ctx):
        """A connection in AUTHORIZATION, or (None, reason)."""
        if mode == "tls":
            c = Pop3Conn.connect_tls(HOST, self.srv.tls_port, context=ctx,
                                     timeout=CLIENT_TIMEOUT)
        else:
            c = Pop3Conn(HOST, self.srv.port, timeout=CLIENT_TIMEOUT)
        if not c.greeting.startswith("+OK"):
            c.close()
            return None, "greeting " + reply_kind(c.greeting)
        if mode == "stls":
            st = c.stls(context=ctx)
            if not st.startswith("+OK"):
                c.close()
                return None, "STLS " + reply_kind(st)
        return c, None

    def do_login(self, c, user, sess=None):
        st = c.command("USER " + user)
        if not st.startswith("+OK"):
            return st
        if sess is not None:
            sess.pass_t = now()
        return c.command("PASS " + self.password(user))

    def check_retr(self, where, user, uidl, size, data):
        """Verifies one retrieved message; returns its Msg or None."""
        msgid, body_ok = parse_message(data)
        m = LEDGER.msgs.get(msg_key(msgid, user)) if msgid else None
        if m is None:
            others = [k for k in (msg_key(msgid, u)
                                  for u in FETCH_USERS + [STORM_USER])
                      if k in LEDGER.msgs] if msgid else []
            if others:
                STATS.violation("%s: %s: message %s (UIDL %s) was not sent "
                                "to this user but to %s"
                                % (where, user, msgid, uidl,
                                   ", ".join(k.split()[1] for k in others)))
                return None
            STATS.violation("%s: %s: message UIDL %s is not one we "
                            "delivered (partial or foreign): %d octets, "
                            "starts %r" % (where, user, uidl, len(data),
                                           data[:120]))
            return None
        bad = []
        if not body_ok:
            bad.append("body checksum mismatch")
        if hashlib.sha256(data).hexdigest() != m.wire_sha:
            bad.append("octets differ from what was delivered "
                       "(%d received, %d delivered)" % (len(data), m.size))
        if size is not None and size != len(data):
            bad.append("LIST size %d but RETR sent %d" % (size, len(data)))
        before = LEDGER.seen_at(m, uidl)
        if before is not None:
            bad.append("stored twice: UIDL %s, and %s before" % (uidl,
                                                                before))
        if bad:
            STATS.violation("%s: %s: message %s: %s" % (where, user, msgid,
                                                        "; ".join(bad)))
        return m

    # -- fetch-and-delete sessions

    def fetch_session(self, user, mode, ctx, rng):
        s = Sess("fetch", user, mode)
        c = None
        phase = "connect"
        try:
            c, why = self.open_conn(mode, ctx)
            if c is None:
                s.outcome = "refused"
                STATS.error("fetch: %s" % why)
                return s
            phase = "login"
            st = self.do_login(c, user, s)
            if not st.startswith("+OK"):
                s.outcome = "refused"
                STATS.error("fetch: login: " + reply_kind(st))
                return s
            phase = "UIDL"
            uidls = c.uidl()
            s.seen = frozenset(uidls.values())
            s.nmsgs = len(uidls)
            phase = "LIST"
            sizes = c.list()
            if set(sizes) != set(uidls):
                STATS.violation("fetch %s: LIST and UIDL disagree: %s / %s"
                                % (user, sorted(sizes), sorted(uidls)))
            todo = sorted(uidls)
            if len(todo) > 200:
                todo = todo[:200]
            for n in todo:
                phase = "RETR"
                st, raw = c.retr_raw(n)
                if not st.startswith("+OK"):
                    STATS.error("fetch: RETR: " + reply_kind(st))
                    continue
                try:
                    data = unstuff(raw)
                except ValueError as e:
                    STATS.violation("fetch %s: RETR %d: malformed "
                                    "multi-line reply: %s" % (user, n, e))
                    continue
                STATS.add("RETR (fetch)")
                m = self.check_retr("fetch", user, uidls[n], sizes.get(n),
                                    data)
                if m is None:
                    continue
                s.retrieved.append(m.key)
                phase = "DELE"
                st = c.command("DELE %d" % n)
                if st.startswith("+OK"):
                    s.deleted.append(m.key)
                else:
                    STATS.error("fetch: DELE: " + reply_kind(st))
            phase = "QUIT"
            s.outcome = "quit-unknown"
            st = c.command("QUIT")
            if st.startswith("+OK"):
                s.quit_t = now()
                s.outcome = "completed"
                want = "+OK Bye, %d message%s deleted." % (
                    len(s.deleted), "" if len(s.deleted) == 1 else "s")
                if st != want:
                    STATS.violation("fetch %s: QUIT said %r after %d DELE"
                                    % (user, st, len(s.deleted)))
            else:
                s.outcome = "quit-err"
                STATS.error("fetch: QUIT: " + reply_kind(st))
            try:
                c.wait_closed(CLIENT_TIMEOUT)
            except (AssertionError, OSError):
                pass
        except (Closed, Timeout, OSError) as e:
            STATS.error("fetch: %s during %s" % (exc_kind(e), phase))
            if isinstance(e, Timeout):
                STATS.violation("fetch %s (%s): no reply within %.0fs "
                                "during %s" % (user, mode, CLIENT_TIMEOUT,
                                               phase))
        except AssertionError as e:
            STATS.violation("fetch %s (%s) during %s: %s"
                            % (user, mode, phase, e))
        finally:
            if c is not None:
                c.close()
        return s

    def fetcher(self, idx, user):
        rng = random.Random(self.args.seed + 10 + idx)
        modes = ("plain", "tls", "stls")
        ctx = tls_client_context(self.pki.ca_cert)
        k = idx
        drain_start = None
        while not self.stop_all.is_set():
            mode = modes[k % 3]
            k += 1
            s = self.fetch_session(user, mode, ctx, rng)
            LEDGER.add_session(s)
            STATS.add("sessions fetch")
            STATS.add("sessions fetch %s %s" % (mode, s.outcome))
            if s.outcome == "completed":
                n = 0
                for mid in s.deleted:
                    n += LEDGER.msgs[mid].size
                self.forget_bytes(n)
            if self.stop_deliver.is_set():
                if drain_start is None:
                    drain_start = now()
                if s.outcome == "completed" and s.nmsgs == 0 and \
                        s.pass_t > self.stop_deliver_t:
                    self.drained[user] = now() - drain_start
                    return
                self.stop_all.wait(0.05)
            else:
                self.stop_all.wait(rng.uniform(0.05, 1.5))

    # -- storm sessions (read-only user)

    def storm_session(self, mode, ctx, rng):
        c = None
        phase = "connect"
        try:
            c, why = self.open_conn(mode, ctx)
            if c is None:
                STATS.error("storm: %s" % why)
                return "refused"
            phase = "login"
            st = self.do_login(c, STORM_USER)
            if not st.startswith("+OK"):
                STATS.error("storm: login: " + reply_kind(st))
                return "refused"
            phase = "STAT"
            stat = c.stat()
            if stat != self.storm_stat:
                STATS.violation("storm: STAT %r, expected %r (nothing "
                                "deletes from this mailbox)"
                                % (stat, self.storm_stat))
            phase = "LIST"
            sizes = c.list()
            phase = "UIDL"
            uidls = c.uidl()
            if uidls != self.storm_uidls:
                STATS.violation("storm: UIDL listing changed: %r"
                                % sorted(set(uidls.items()) ^
                                         set(self.storm_uidls.items()))[:6])
            for n in rng.sample(sorted(uidls), min(len(uidls),
                                                   rng.randint(0, 4))):
                phase = "RETR"
                if sizes.get(n, 0) > 100000 and rng.random() < 0.7:
                    continue
                st, raw = c.retr_raw(n)
                if not st.startswith("+OK"):
                    STATS.error("storm: RETR: " + reply_kind(st))
                    continue
                STATS.add("RETR (storm)")
                self.check_retr("storm", STORM_USER, uidls[n],
                                sizes.get(n), unstuff(raw))
            if rng.random() < 0.3:
                phase = "TOP"
                st, raw = c.multi("TOP %d 3" % rng.randint(1, len(uidls)))
                if not st.startswith("+OK"):
                    STATS.error("storm: TOP: " + reply_kind(st))
            phase = "QUIT"
            st = c.command("QUIT")
            if st != "+OK Bye, 0 messages deleted.":
                STATS.violation("storm: QUIT without DELE said %r" % st)
            return "completed"
        except (Closed, Timeout, OSError) as e:
            STATS.error("storm: %s during %s" % (exc_kind(e), phase))
            if isinstance(e, Timeout):
                STATS.violation("storm (%s): no reply within %.0fs during "
                                "%s" % (mode, CLIENT_TIMEOUT, phase))
            return "broken"
        except (AssertionError, ValueError) as e:
            STATS.violation("storm (%s) during %s: %s" % (mode, phase, e))
            return "broken"
        finally:
            if c is not None:
                c.close()

    def stormer(self, idx):
        rng = random.Random(self.args.seed + 100 + idx)
        ctx = tls_client_context(self.pki.ca_cert)
        while not self.stop_load.is_set():
            mode = rng.choice(("plain", "plain", "tls", "stls"))
            out = self.storm_session(mode, ctx, rng)
            STATS.add("sessions storm")
            STATS.add("sessions storm %s" % out)
            self.stop_load.wait(rng.uniform(0.0, 0.3))

    # -- abrupt disconnects

    def rst_close(self, sock, rng):
        if rng.random() < 0.5:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
            except OSError:
                pass
        try:
            sock.close()
        except OSError:
            pass

    def abrupt_retr(self, rng, ctx, user):
        """Login, (DELE some on a fetch user), RETR, close mid-reply."""
        mode = rng.choice(("plain", "tls", "stls"))
        s = Sess("abrupt", user, mode) if user != STORM_USER else None
        try:
            c, why = self.open_conn(mode, ctx)
        except (Closed, Timeout, OSError) as e:
            STATS.error("abrupt: %s during connect" % exc_kind(e))
            return
        except AssertionError as e:
            STATS.violation("abrupt (%s, %s) during connect: %s"
                            % (user, mode, e))
            return
        if c is None:
            STATS.error("abrupt: %s" % why)
            return
        try:
            st = self.do_login(c, user, s)
            if not st.startswith("+OK"):
                STATS.error("abrupt: login: " + reply_kind(st))
                return
            sizes = c.list()
            if s is not None:
                s.seen = frozenset(c.uidl().values())
                s.nmsgs = len(sizes)
                for n in rng.sample(sorted(sizes),
                                    max(0, min(len(sizes) - 1,
                                           rng.randint(0, 3)))):
                    if c.command("DELE %d" % n).startswith("+OK"):
                        STATS.add("DELE in dropped sessions")
                        del sizes[n]
            if not sizes:
                return
            big = max(sizes, key=lambda n: sizes[n])
            st = c.command("RETR %d" % big)
            if not st.startswith("+OK"):
                STATS.error("abrupt: RETR: " + reply_kind(st))
                return
            want = rng.randint(0, min(sizes[big], 200000))
            got = len(c.buf)
            c.sock.settimeout(CLIENT_TIMEOUT)
            while got < want:
                d = c.sock.recv(65536)
                if not d:
                    break
                got += len(d)
            STATS.add("disconnects mid-RETR %s%s"
                      % (mode, " after DELE" if s else ""))
        except (Closed, Timeout, OSError) as e:
            STATS.error("abrupt: %s" % exc_kind(e))
        except AssertionError as e:
            STATS.violation("abrupt (%s, %s): %s" % (user, mode, e))
        finally:
            self.rst_close(c.sock, rng)
            if s is not None:
                LEDGER.add_session(s)

    def abrupt_tls(self, rng, how):
        """A TLS handshake cut short: nothing, or part of a ClientHello,
        on the implicit-TLS port or after STLS."""
        try:
            if how.startswith("stls"):
                c = Pop3Conn(HOST, self.srv.port, timeout=CLIENT_TIMEOUT)
                if not c.greeting.startswith("+OK"):
                    c.close()
                    STATS.error("abrupt: greeting " + reply_kind(c.greeting))
                    return
                st = c.command("STLS")
                if not st.startswith("+OK"):
                    c.close()
                    STATS.error("abrupt: STLS " + reply_kind(st))
                    return
                sock = c.sock
            else:
                sock = socket.create_connection((HOST, self.srv.tls_port),
                                                timeout=CLIENT_TIMEOUT)
            if how.endswith("partial"):
                sock.sendall(self.hello[:rng.randint(1, len(self.hello) - 1)])
            self.rst_close(sock, rng)
            STATS.add("disconnects mid-handshake %s" % how)
        except (Closed, Timeout, OSError) as e:
            STATS.error("abrupt: %s" % exc_kind(e))

    def abrupter(self):
        rng = random.Random(self.args.seed + 200)
        ctx = tls_client_context(self.pki.ca_cert)
        while not self.stop_load.is_set():
            r = rng.random()
            if r < 0.25:
                self.abrupt_retr(rng, ctx, STORM_USER)
            elif r < 0.45:
                self.abrupt_retr(rng, ctx, rng.choice(FETCH_USERS))
            elif r < 0.55:
                c = self.lmtp_partial(rng)
                if c is not None:
                    self.rst_close(c.sock, rng)
                    c.close()
                    STATS.add("disconnects mid-DATA lmtp")
            else:
                self.abrupt_tls(rng, rng.choice(
                    ("tls-nothing", "tls-partial", "stls-nothing",
                     "stls-partial")))
            STATS.add("sessions abrupt")
            self.stop_load.wait(rng.uniform(0.05, 0.5))

    def lmtp_partial(self, rng):
        """An LMTP client in the middle of sending a message to one or
        two recipients (which can never be stored: it is not whole), or
        None."""
        c = self.lmtp_open(rng)
        if c is None:
            return None
        users = rng.sample(FETCH_USERS, rng.choice((1, 2)))
        rcpts = ["%s@%s" % (u, DOMAIN) for u in users]
        seq = LEDGER.next_seq()
        msg, msgid = make_message(rng, rcpts, seq, rng.randint(2000, 60000))
        body = wire_form(msg)
        for u, a in zip(users, rcpts):
            wire = lmtp_headers("soak@" + DOMAIN, a) + body
            m = Msg(msgid, u, None, hashlib.sha256(wire).hexdigest(),
                    len(wire), seq)
            m.state = "dropped"
            LEDGER.register(m)
        phase = "MAIL"
        try:
            code, text = c.mail("soak@" + DOMAIN)
            if code == 250:
                phase = "RCPT"
                n = 0
                for a in rcpts:
                    code, text = c.rcpt(a)
                    n += code == 250
                if n:
                    phase = "DATA"
                    code, text = c.docmd("DATA")
                    if code == 354:
                        payload = lmtp_payload(msg)
                        c.send(payload[:rng.randint(0, len(payload) - 4)])
                        return c
            STATS.error("lmtp: partial: %s %s" % (phase, reply_kind(
                "%d %s" % (code, text.decode("latin-1")))))
        except (smtplib.SMTPException, OSError) as e:
            self.lmtp_exc("partial " + phase, e)
        c.close()
        return None

    def staller(self):
        """A client that stops mid-handshake must be dropped after
        tls_handshake_timeout."""
        rng = random.Random(self.args.seed + 300)
        while not self.stop_load.wait(rng.uniform(5, 20)):
            try:
                sock = socket.create_connection((HOST, self.srv.tls_port),
                                                timeout=CLIENT_TIMEOUT)
            except OSError as e:
                STATS.error("stall: connect: %s" % exc_kind(e))
                continue
            t = now()
            limit = HANDSHAKE_TIMEOUT_S + 5
            try:
                sock.sendall(self.hello[:rng.randint(1, len(self.hello) -
                                                     1)])
                sock.settimeout(limit)
                while sock.recv(4096):
                    pass
                STATS.add("stalled handshakes dropped")
            except socket.timeout:
                STATS.violation("a TLS handshake stalled mid-ClientHello "
                                "was still open after %.1fs "
                                "(tls_handshake_timeout %ds)"
                                % (now() - t, HANDSHAKE_TIMEOUT_S))
            except OSError:
                STATS.add("stalled handshakes dropped")
            finally:
                sock.close()

    # -- faults

    def current_workers(self, kind):
        """Live workers of the current generation (started after the last
        reload)."""
        text = self.srv.log_text()
        i = text.rfind("received SIGHUP")
        started = set(int(p) for p in re.findall(
            r"started %s worker pid=(\d+)" % kind, text[max(i, 0):]))
        return [p for p in harness.children_of(self.srv.pid) if p in started]

    def wait_workers(self, kind, count, timeout):
        deadline = now() + timeout
        while now() < deadline:
            if len(self.current_workers(kind)) >= count:
                return True
            time.sleep(0.1)
        return False

    def held_session(self, rng, ctx):
        """A session left in the middle of a RETR, after DELEs on a fetch
        user: (Pop3Conn, Sess or None, pid of its pop3 worker) or None."""
        user = rng.choice(FETCH_USERS + [STORM_USER])
        mode = rng.choice(("plain", "tls", "stls"))
        try:
            c, why = self.open_conn(mode, ctx)
        except (AssertionError, OSError) as e:
            STATS.error("held: %s" % exc_kind(e))
            return None
        if c is None:
            STATS.error("held: %s" % why)
            return None
        s = Sess("held", user, mode) if user != STORM_USER else None
        try:
            port = c.sock.getsockname()[1]
            st = self.do_login(c, user, s)
            if not st.startswith("+OK"):
                STATS.error("held: login: " + reply_kind(st))
                c.close()
                return None
            sizes = c.list()
            if s is not None:
                s.seen = frozenset(c.uidl().values())
                s.nmsgs = len(sizes)
                for n in sorted(sizes)[:-1]:
                    if c.command("DELE %d" % n).startswith("+OK"):
                        STATS.add("DELE in sessions of killed workers")
                        del sizes[n]
                LEDGER.add_session(s)
            if sizes:
                big = max(sizes, key=lambda n: sizes[n])
                c.sendline("RETR %d" % big)
            m = self.srv.wait_log(
                r"posternd/pop3\[(\d+)\]:? info: pop3 session=\S+ connect "
                r"ip=127\.0\.0\.1 port=%d\b" % port, timeout=5)
            return c, s, int(m.group(1))
        except (AssertionError, OSError) as e:
            STATS.error("held: %s" % exc_kind(e))
            c.close()
            return None

    def fault_kill(self, kind, rng, ctx):
        pids = self.current_workers(kind)
        if not pids:
            STATS.violation("no live %s worker to kill" % kind)
            return
        pid = rng.choice(pids)
        held = None
        if kind == "pop3" and rng.random() < 0.7:
            held = self.held_session(rng, ctx)
            if held is not None and held[2] in pids:
                pid = held[2]
        held_lmtp = None
        if kind == "lmtp" and rng.random() < 0.7:
            held_lmtp = self.lmtp_partial(rng)
        start = len(self.srv.log_text())
        os.kill(pid, signal.SIGKILL)
        STATS.add("kills %s" % kind)
        log("fault: SIGKILL %s worker %d%s" % (
            kind, pid, "" if held is None or held[2] != pid else
            " (holding a %s session of %s mid-RETR)"
            % (held[1].mode if held[1] else "storm",
               held[1].user if held[1] else STORM_USER)) +
            ("" if held_lmtp is None else " (a session in the middle of "
             "DATA open)"))
        if held_lmtp is not None:
            t = now()
            try:
                held_lmtp.sock.settimeout(10)
                while held_lmtp.sock.recv(4096):
                    if now() - t > 10:
                        raise socket.timeout()
                STATS.add("held sessions killed with their worker")
            except socket.timeout:
                STATS.violation("an LMTP session of killed lmtp process "
                                "%d was still open 10s later" % pid)
            except OSError:
                STATS.add("held sessions killed with their worker")
            held_lmtp.close()
        if held is not None:
            c = held[0]
            if held[2] == pid:
                try:
                    c.wait_closed(10)
                    STATS.add("held sessions killed with their worker")
                except Timeout:
                    STATS.violation("a session of killed pop3 worker %d "
                                    "was still open 10s later" % pid)
                except OSError:
                    STATS.add("held sessions killed with their worker")
            c.close()
        try:
            self.srv.wait_log(r"%s worker pid=%d died \(signal 9\), "
                              r"restarting" % (kind, pid), timeout=10,
                              start=start)
        except AssertionError:
            STATS.violation("the master logged no restart within 10s after "
                            "SIGKILL of %s worker %d" % (kind, pid))
            return
        if not self.wait_workers(kind, WORKERS[kind], 10):
            STATS.violation("%s workers not back to %d within 10s after "
                            "SIGKILL of %d: %s"
                            % (kind, WORKERS[kind], pid,
                               self.current_workers(kind)))

    def fault_reload(self, gen):
        start = len(self.srv.log_text())
        swap = gen % 2 == 1
        self.srv.update_config({
            "greeting": "Postern soak gen %d." % gen,
            "tls_cert": self.pki.swap_cert if swap else self.pki.cert,
            "tls_key": self.pki.swap_key if swap else self.pki.key,
        })
        self.srv.reload()
        STATS.add("reloads")
        log("fault: SIGHUP (generation %d)" % gen)
        try:
            self.srv.wait_log(r"configuration reloaded", timeout=10,
                              start=start)
        except AssertionError:
            STATS.violation("no 'configuration reloaded' within 10s of "
                            "SIGHUP %d: %s" % (gen, self.srv.log_text()[
                                start:][-500:]))
            return
        for kind in WORKERS:
            if not self.wait_workers(kind, WORKERS[kind], 10):
                STATS.violation("after SIGHUP %d: %s workers of the new "
                                "generation: %s" % (gen, kind,
                                                    self.current_workers(
                                                        kind)))

    def filler_path(self):
        return os.path.join(self.srv.mail_root, ".soak-filler")

    def disk_fill(self):
        """Fills the tmpfs; returns the octets written."""
        with self.disk_lock:
            fd = os.open(self.filler_path(), os.O_WRONLY | os.O_CREAT |
                         os.O_TRUNC, 0o600)
            total = 0
            try:
                for chunk in (1 << 20, 4096):
                    buf = b"\0" * chunk
                    while True:
                        try:
                            total += os.write(fd, buf)
                        except OSError as e:
                            if e.errno != errno.ENOSPC:
                                raise
                            break
            finally:
                os.close(fd)
            self.disk_full.set()
        return total

    def disk_free(self):
        with self.disk_lock:
            if self.disk_full.is_set():
                try:
                    os.unlink(self.filler_path())
                except FileNotFoundError:
                    pass
                self.disk_full.clear()

    def faulter(self, end_t):
        rng = random.Random(self.args.seed + 400)
        ctx = tls_client_context(self.pki.ca_cert)
        kinds = ["kill pop3", "kill auth", "kill lmtp", "reload"]
        if self.tmpfs:
            kinds.append("disk full")
        first = kinds[:]
        rng.shuffle(first)
        # Every kind at least once, then at random.
        span = max(10.0, (end_t - now() - 20) / (len(first) + 1))
        gen = 0
        full_until = None
        last_full = -1e9
        next_t = now() + rng.uniform(3, min(span, 10))
        while not self.stop_load.is_set():
            t = now()
            if full_until is not None and t >= full_until:
                self.disk_free()
                log("fault: disk space back")
                full_until = None
            if t < next_t:
                self.stop_load.wait(min(0.2, next_t - t))
                continue
            if first:
                kind = first.pop()
            else:
                kind = rng.choices(kinds,
                                   weights=(3, 2, 2, 2, 1)[:len(kinds)])[0]
            if kind == "disk full" and (full_until is not None or
                                        t - last_full < 40 or
                                        end_t - t < 25):
                kind = "reload"
            if kind == "kill pop3":
                self.fault_kill("pop3", rng, ctx)
            elif kind == "kill auth":
                self.fault_kill("auth", rng, ctx)
            elif kind == "kill lmtp":
                self.fault_kill("lmtp", rng, ctx)
            elif kind == "reload":
                gen += 1
                self.fault_reload(gen)
            else:
                n = self.disk_fill()
                hold = rng.uniform(6, 15)
                full_until = now() + hold
                last_full = now()
                STATS.add("disk-full periods")
                STATS.add("disk-full seconds", int(round(hold)))
                log("fault: disk full (%d MiB filler) for %.0fs"
                    % (n >> 20, hold))
            next_t = now() + (rng.uniform(3, span) if first else
                              rng.uniform(4, 15))
        if full_until is not None:
            self.disk_free()
            log("fault: disk space back")

    # -- memory

    def pss(self):
        """{pid: (kind, PSS in KiB)} of the master and its live children."""
        out = {}
        kinds = {}
        text = self.srv.log_text()
        for k, p in re.findall(r"started (pop3|auth|lmtp) worker pid=(\d+)",
                               text):
            kinds[int(p)] = k
        for p in [self.srv.pid] + harness.children_of(self.srv.pid):
            try:
                with open("/proc/%d/smaps_rollup" % p) as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            out[p] = ("master" if p == self.srv.pid else
                                      kinds.get(p, "?"), int(line.split()[1]))
                            break
            except OSError:
                pass
        return out

    def monitor(self):
        last = now()
        while not self.stop_all.wait(1.0):
            m = self.pss()
            self.mem_peak = max(self.mem_peak, sum(v for _, v in m.values()))
            if now() - last >= 30:
                last = now()
                c = STATS.counts
                log("progress: %d sessions, %d delivered, %d fetched "
                    "sessions completed, %d kills, %d reloads, %d disk-full, "
                    "PSS %d KiB, %d violations"
                    % (c["sessions fetch"] + c["sessions storm"] +
                       c["sessions abrupt"], c["deliveries acknowledged"],
                       sum(v for k, v in c.items()
                           if k.startswith("sessions fetch ") and
                           k.endswith(" completed")),
                       c["kills pop3"] + c["kills auth"] + c["kills lmtp"],
                       c["reloads"],
                       c["disk-full periods"], sum(v for _, v in m.values()),
                       len(STATS.violations)))

    def warm_up(self):
        ctx = tls_client_context(self.pki.ca_cert)
        rng = random.Random(0)
        for mode in ("plain", "tls", "stls") * 2:
            c, why = self.open_conn(mode, ctx)
            assert c is not None, why
            st = self.do_login(c, STORM_USER)
            assert st.startswith("+OK"), st
            if self.storm_stat is None:
                self.storm_stat = c.stat()
                self.storm_uidls = c.uidl()
                assert self.storm_stat[0] == STORM_MESSAGES, self.storm_stat
            for n in range(1, 4):
                self.check_retr("warm-up", STORM_USER, self.storm_uidls[n],
                                None, c.retr(n))
            c.quit()
            c.close()
        for u in FETCH_USERS:
            s = self.fetch_session(u, "tls", ctx, rng)
            assert s.outcome == "completed", s.outcome

    # -- main

    def thread(self, name, fn, *a):
        def run():
            try:
                fn(*a)
            except Exception:
                STATS.violation("thread %s crashed:\n%s"
                                % (name, traceback.format_exc()))
        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def run(self):
        total = self.minutes * 60.0
        # Set-up, drain and checks take about half a minute of the total.
        load_s = max(60.0, total - 30.0)
        self.setup()
        self.warm_up()
        time.sleep(SETTLE_S)
        self.mem_start = self.pss()
        log("memory at start: %s" % fmt_mem(self.mem_start))
        end_t = now() + load_s
        mon = self.thread("monitor", self.monitor)
        dlv = [self.thread("deliver-%d" % i, self.deliverer, i)
               for i in range(DELIVERERS)]
        fetchers = [self.thread("fetch-%s" % u, self.fetcher, i, u)
                    for i, u in enumerate(FETCH_USERS)]
        load = [self.thread("storm-%d" % i, self.stormer, i)
                for i in range(3)]
        load.append(self.thread("abrupt", self.abrupter))
        load.append(self.thread("stall", self.staller))
        load.append(self.thread("faults", self.faulter, end_t))
        log("load for %.0fs" % load_s)
        while now() < end_t:
            time.sleep(min(1.0, max(0.0, end_t - now())))
        log("stopping deliveries and faults, draining the mailboxes")
        self.stop_deliver_t = now()
        self.stop_deliver.set()
        self.stop_load.set()
        hung = []
        for t in load + dlv:
            t.join(max(0.1, 2 * CLIENT_TIMEOUT + 15 - (now() -
                                                      self.stop_deliver_t)))
            if t.is_alive():
                hung.append(t.name)
        if self.disk_full.is_set():
            self.disk_free()
        deadline = now() + DRAIN_TIMEOUT
        for t in fetchers:
            t.join(max(0.1, deadline - now()))
        not_drained = [u for u in FETCH_USERS if u not in self.drained]
        self.stop_all.set()
        for t in fetchers + [mon]:
            t.join(max(0.1, 2 * CLIENT_TIMEOUT + 5 - max(0, now() -
                                                          deadline)))
            if t.is_alive():
                hung.append(t.name)
        if not_drained:
            STATS.violation("mailboxes not drained within %.0fs: %s"
                            % (DRAIN_TIMEOUT, ", ".join(not_drained)))
        if hung:
            STATS.violation("client threads still running (hung): %s"
                            % ", ".join(hung))
        log("drained in %s" % ", ".join("%s %.1fs" % (u, self.drained[u])
                                        for u in sorted(self.drained)))
        self.check_store()
        self.check_ledger()
        self.check_memory()
        self.stop_server()

    # -- final checks

    def check_store(self):
        for u in FETCH_USERS:
            left = self.srv.message_files(u)
            if left:
                names = ["%s (%s)" % (b, LEDGER.by_uidl.get(
                    (u, expected_uidl(b))))
                         for b in sorted(left)[:10]]
                STATS.violation("%s: %d message(s) still in the store after "
                                "draining: %s" % (u, len(left),
                                                  ", ".join(names)))
            tmp = os.listdir(os.path.join(self.srv.maildir(u), "tmp"))
            if tmp and STATS.counts["kills lmtp"]:
                # A SIGKILL between the write to tmp/ and the rename
                # leaves the file; it was never visible nor acknowledged.
                STATS.add("tmp/ files left (lmtp killed)", len(tmp))
            elif tmp:
                STATS.violation("%s: files left in tmp/: %s"
                                % (u, tmp[:10]))
        n = len(self.srv.message_files(STORM_USER))
        if n != STORM_MESSAGES:
            STATS.violation("storm mailbox holds %d messages, not %d"
                            % (n, STORM_MESSAGES))

    def check_ledger(self):
        done = collections.defaultdict(list)    # msgid -> [quit_t]
        uncertain = set()
        broken_dele = set()
        for s in LEDGER.sessions:
            if s.outcome == "completed":
                for mid in s.deleted:
                    done[mid].append(s.quit_t)
            elif s.outcome in ("quit-err", "quit-unknown"):
                uncertain.update(s.deleted)
            else:
                broken_dele.update(s.deleted)
        # Twice by completed sessions.
        for mid, ts in done.items():
            if len(ts) > 1:
                STATS.violation("message %s (%s) fetched and deleted by %d "
                                "completed sessions" %
                                (LEDGER.msgs[mid].msgid,
                                 LEDGER.msgs[mid].user, len(ts)))
        # Seen again by a session that logged in after the QUIT.
        first_done = {mid: min(ts) for mid, ts in done.items()}
        reappeared = 0
        for s in LEDGER.sessions:
            if s.pass_t is None:
                continue
            for uidl in s.seen:
                mid = LEDGER.by_uidl.get((s.user, uidl))
                if mid is None:
                    continue
                t = first_done.get(mid)
                if t is not None and s.pass_t > t:
                    reappeared += 1
                    if reappeared <= 10:
                        STATS.violation(
                            "message %s of %s reappeared in a %s session "
                            "(%s) %.3fs after a completed session deleted it"
                            % (LEDGER.msgs[mid].msgid, s.user, s.kind,
                               s.mode, s.pass_t - t))
        left = set()
        for u in FETCH_USERS:
            for b in self.srv.message_files(u):
                mid = LEDGER.by_uidl.get((u, expected_uidl(b)))
                if mid:
                    left.add(mid)
        lost = []
        acked = 0
        unacked = collections.Counter()
        for mid, m in LEDGER.msgs.items():
            if m.user == STORM_USER:
                continue
            if m.state != "acked":
                # Stored although its recipient never got a 250: allowed
                # (the MTA delivers it again) if whole and there once,
                # which check_retr and the counts below see to.
                if m.uidl is not None or mid in left:
                    unacked[m.state] += 1
                continue
            acked += 1
            if mid in done or mid in uncertain or mid in left:
                continue
            lost.append(m)
        for m in lost[:20]:
            how = ("DELE'd only in dropped sessions"
                   if m.key in broken_dele else "never retrieved")
            STATS.violation("LOST: message %s (seq %d, %s, UIDL %s) was "
                            "acknowledged and is gone (%s)"
                            % (m.msgid, m.seq, m.user, m.uidl, how))
        if len(lost) > 20:
            STATS.violation("... %d lost messages in all" % len(lost))
        STATS.counts["fetched (completed sessions)"] = len(done)
        STATS.counts["fetched (QUIT failed or unanswered)"] = len(
            uncertain - set(done))
        STATS.counts["acknowledged deliveries checked"] = acked
        STATS.counts["lost"] = len(lost)
        STATS.counts["stored but unacknowledged (no reply)"] = \
            unacked["dropped"]
        STATS.counts["stored but unacknowledged (4xx reply)"] = \
            unacked["failed"] + unacked["pending"]
        STATS.counts["duplicated"] = sum(1 for ts in done.values()
                                         if len(ts) > 1)
        STATS.counts["reappeared after deletion"] = reappeared

    def check_memory(self):
        time.sleep(SETTLE_S)
        # Old-generation workers leave once their sessions are over.
        deadline = now() + 15
        while now() < deadline:
            m = self.pss()
            if len(m) == len(self.mem_start):
                break
            time.sleep(0.5)
        self.mem_end = self.pss()
        log("memory at end:   %s" % fmt_mem(self.mem_end))
        if len(self.mem_end) != len(self.mem_start):
            STATS.violation("%d posternd processes at the end, %d at the "
                            "start: %s" % (len(self.mem_end),
                                           len(self.mem_start),
                                           fmt_mem(self.mem_end)))
        a = sum(v for _, v in self.mem_start.values())
        b = sum(v for _, v in self.mem_end.values())
        bound = self.args.mem_bound_mib * 1024
        if is_asan(harness.posternd_path()) and \
                not os.environ.get("SOAK_MEM_BOUND_MIB"):
            self.mem_enforced = False
            STATS.note("AddressSanitizer build: its quarantine and "
                       "allocator caches grow by design, so the memory "
                       "bound is not enforced (set SOAK_MEM_BOUND_MIB to "
                       "enforce one)")
            return
        if b > a + bound:
            STATS.violation("PSS of posternd grew from %d KiB to %d KiB "
                            "(bound: start + %d KiB)" % (a, b, bound))
        ma = [v for k, v in self.mem_start.values() if k == "master"]
        mb = [v for k, v in self.mem_end.values() if k == "master"]
        if ma and mb and mb[0] > ma[0] + bound // 2:
            STATS.violation("PSS of the master grew from %d KiB to %d KiB"
                            % (ma[0], mb[0]))

    def stop_server(self):
        t = now()
        try:
            st = self.srv.stop(timeout=15)
        except AssertionError as e:
            STATS.violation("stopping posternd: %s" % e)
            return
        STATS.counts["posternd exit status"] = st
        log("posternd stopped in %.1fs, exit status %s" % (now() - t, st))
        if st != 0:
            STATS.violation("posternd exit status %s after SIGTERM" % st)
        try:
            self.srv.check_log()
        except AssertionError as e:
            STATS.violation(str(e)[:6000])

    def unmount(self):
        if not self.tmpfs:
            return
        for _ in range(20):
            r = subprocess.run(["umount", self.srv.mail_root],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            if r.returncode == 0:
                self.tmpfs = False
                return
            time.sleep(0.25)
        subprocess.run(["umount", "-l", self.srv.mail_root])
        self.tmpfs = False

    def cleanup(self):
        if self.srv is None:
            return
        if self.srv.running():
            self.srv._kill_all()
        if self.tmpfs and STATS.violations:
            # The tmpfs goes away: keep a copy of the mail for a look.
            try:
                shutil.copytree(self.srv.mail_root,
                                os.path.join(self.srv.dir, "mail-copy"),
                                symlinks=True,
                                ignore=shutil.ignore_patterns(".soak-filler"))
            except OSError as e:
                log("cannot copy the mail root: %s" % e)
        self.unmount()


_KINDS = (
    ("crashed", "soak thread crashed"),
    ("aborted", "soak aborted"),
    ("LOST", "lost messages"),
    ("completed sessions", "duplicated messages"),
    ("reappeared", "messages back after deletion"),
    ("partial or foreign", "unknown or partial messages"),
    ("checksum", "damaged messages"),
    ("octets differ", "damaged messages"),
    ("PSS", "memory growth"),
    ("posternd processes at the end", "processes left"),
    ("no reply within", "stalled replies"),
    ("stalled mid-ClientHello", "stalled handshake not dropped"),
    ("still open 10s", "killed worker's session open"),
    ("restart", "no restart"),
    ("workers", "workers not back"),
    ("reloaded", "reload not done"),
    ("hung", "hung"),
    ("did not exit", "hung"),
    ("left behind", "processes left"),
    ("not drained", "mailboxes not drained"),
    ("still in the store", "messages left"),
    ("tmp/", "tmp files left"),
    ("storm", "storm mailbox changed or bad replies"),
    ("exit status", "exit status"),
    ("contains", "sanitizer report or panic"),
)


def violation_kind(v):
    for key, kind in _KINDS:
        if key in v:
            return kind
    return " ".join(re.sub(r"\d+", "N", v).split()[:4])


def is_asan(path):
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def fmt_mem(m):
    by = collections.defaultdict(list)
    for pid, (kind, kib) in sorted(m.items()):
        by[kind].append(kib)
    return "total %d KiB (%s)" % (
        sum(v for _, v in m.values()),
        ", ".join("%s %s" % (k, "+".join(str(v) for v in by[k]))
                  for k in ("master", "pop3", "auth", "lmtp", "?")
                  if k in by))


def log_kinds(text):
    """Lines of the server log other than info, and TLS handshake
    failures, by kind."""
    out = collections.Counter()
    for line in text.splitlines():
        m = re.search(r" posternd(?:/\w+)?\[\d+\]:? (\w+): (.*)", line)
        if m is None:
            k = line
        elif m.group(1) != "info" or "handshake failed" in line:
            k = m.group(1) + ": " + m.group(2)
        else:
            continue
        k = re.sub(r"session=[0-9a-f]+", "session=S", k)
        k = re.sub(r"/[^ :]+", "PATH", k)
        k = re.sub(r"\d+", "N", k)
        out[k[:120]] += 1
    return out


def summary(soak, elapsed):
    c = STATS.counts
    rows = []

    def row(k, v):
        rows.append((k, v))

    row("run time", "%.0fs (%s min asked)" % (elapsed, soak.minutes))
    row("sessions", c["sessions fetch"] + c["sessions storm"] +
        c["sessions abrupt"] + c["lmtp sessions tcp"] +
        c["lmtp sessions unix"])
    for k in sorted(c):
        if k.startswith("sessions "):
            row("  " + k[len("sessions "):], c[k])
    row("  lmtp tcp / unix", "%d / %d" % (c["lmtp sessions tcp"],
                                          c["lmtp sessions unix"]))
    row("lmtp transactions / recipients", "%d / %d"
        % (c["lmtp transactions"], c["lmtp recipients"]))
    row("deliveries acknowledged (250)", c["deliveries acknowledged"])
    row("deliveries failed (4xx)", c["deliveries failed (4xx)"])
    row("deliveries without reply after DATA (connection lost)",
        c["deliveries without reply"])
    row("deliveries cut off before the end of DATA",
        c["deliveries cut off before the end of DATA"])
    row("deliveries refused (5xx)", c["deliveries refused (5xx)"])
    row("stored but unacknowledged (no reply / 4xx)", "%d / %d"
        % (c["stored but unacknowledged (no reply)"],
           c["stored but unacknowledged (4xx reply)"]))
    row("fetched (completed sessions)", c["fetched (completed sessions)"])
    row("fetched (QUIT failed or unanswered)",
        c["fetched (QUIT failed or unanswered)"])
    row("RETR verified", c["RETR (fetch)"] + c["RETR (storm)"])
    row("kills pop3 / auth / lmtp", "%d / %d / %d"
        % (c["kills pop3"], c["kills auth"], c["kills lmtp"]))
    if c["tmp/ files left (lmtp killed)"]:
        row("tmp/ files left (lmtp killed)",
            c["tmp/ files left (lmtp killed)"])
    row("reloads", c["reloads"])
    row("disk-full periods (seconds)", "%d (%d)"
        % (c["disk-full periods"], c["disk-full seconds"]))
    n = sum(v for k, v in c.items() if k.startswith("disconnects "))
    row("disconnects", n)
    for k in sorted(c):
        if k.startswith("disconnects "):
            row("  " + k[len("disconnects "):], c[k])
    row("stalled handshakes dropped", c["stalled handshakes dropped"])
    row("DELE in dropped sessions", c["DELE in dropped sessions"])
    row("held sessions killed with their worker",
        c["held sessions killed with their worker"])
    row("DELE in sessions of killed workers",
        c["DELE in sessions of killed workers"])
    row("lost / duplicated / reappeared", "%d / %d / %d"
        % (c["lost"], c["duplicated"], c["reappeared after deletion"]))
    if soak.mem_start and soak.mem_end:
        a = sum(v for _, v in soak.mem_start.values())
        b = sum(v for _, v in soak.mem_end.values())
        row("PSS start / end / peak (KiB)", "%d / %d / %d (%s)"
            % (a, b, soak.mem_peak, "bound +%d" % (
                soak.args.mem_bound_mib * 1024) if soak.mem_enforced
               else "bound not enforced"))
    if "posternd exit status" in c:
        row("posternd exit status", c["posternd exit status"])
    w = max(len(k) for k, _ in rows)
    print("\n---- soak summary " + "-" * 50)
    for k, v in rows:
        print("%-*s  %s" % (w, k, v))
    print("errors by kind (clients):")
    for k, v in sorted(STATS.errors.items(), key=lambda kv: -kv[1]):
        print("  %6d  %s" % (v, k))
    if soak.srv is not None:
        print("server log warnings by kind:")
        for k, v in log_kinds(soak.srv.log_text()).most_common(25):
            print("  %6d  %s" % (v, k))
    for n in STATS.notes:
        print("note: " + n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    ap.add_argument("--minutes", type=float,
                    default=float(os.environ.get("SOAK_MINUTES") or 30))
    ap.add_argument("--seed", type=int,
                    default=int(os.environ.get("SOAK_SEED") or
                                random.randrange(1 << 30)))
    ap.add_argument("--mem-bound-mib", type=float,
                    default=float(os.environ.get("SOAK_MEM_BOUND_MIB") or 8))
    ap.add_argument("--no-disk-full", action="store_true",
                    default=bool(os.environ.get("SOAK_NO_DISK_FULL")))
    args = ap.parse_args()
    if args.minutes < 2:
        print("soak: SOAK_MINUTES must be at least 2 (got %g)"
              % args.minutes, file=sys.stderr)
        return 2
    log("soak: %g minutes, seed %d, posternd %s" % (args.minutes, args.seed,
                                                   harness.posternd_path()))
    soak = Soak(args)
    t0 = now()
    hard_limit = args.minutes * 60 + 300

    done = threading.Event()

    def dog():
        if done.wait(hard_limit):
            return
        STATS.violation("the soak did not finish within %.0fs: hung"
                        % hard_limit)
        try:
            soak.cleanup()
        finally:
            summary(soak, now() - t0)
            print("soak: FAILED (hung)", flush=True)
            os._exit(1)
    threading.Thread(target=dog, daemon=True).start()
    try:
        soak.run()
    except Exception:
        STATS.violation("soak aborted:\n" + traceback.format_exc())
    finally:
        soak.cleanup()
        done.set()
    summary(soak, now() - t0)
    if STATS.violations:
        reasons = collections.Counter(violation_kind(v)
                                      for v in STATS.violations)
        print("violations:")
        for v in STATS.violations[:50]:
            print("  - " + v.replace("\n", "\n    "))
        if soak.srv is not None:
            print("server files kept in %s" % soak.srv.dir)
        print("soak: FAILED (%s)" % "; ".join(
            "%s x%d" % kv for kv in reasons.most_common(8)))
        return 1
    if soak.srv is not None:
        if os.environ.get("SOAK_KEEP"):
            print("server files kept in %s" % soak.srv.dir)
        else:
            shutil.rmtree(soak.srv.dir, ignore_errors=True)
    print("soak: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
