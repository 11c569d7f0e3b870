"""
SIGKILL at random instants during the UPDATE state of Maildir sessions:
the pop3 worker alone (the master restarts it), and the whole of
posternd at once (started again).  After every kill a new session
checks the storage invariants of doc/design.md:

  - no message that was not marked for deletion is gone;
  - every message left is byte for byte what was delivered, and LIST
    gives its exact wire size;
  - the UIDLs of the survivors are unchanged;
  - no message appears that was not delivered;
  - the Maildir holds no file a killed process left behind, apart from
    the index's next version under its one fixed name.

A message marked for deletion may be gone or still there: the kill may
land before, during or after the unlinks.  The kill instants are spread
over the measured length of an UPDATE, so that most land inside one.
The rounds are bounded in count and in time; under the sanitizer build
there are fewer of them.
"""

import os
import random
import time

import harness
from harness import expected_uidl, wire_form, wire_size

MAILBOX = 80            # messages kept in the mailbox before each round
# What a Maildir's root may hold after any kill: the index's next
# version has one fixed name, so a kill never leaves one file per process.
MAILDIR_ROOT = {"cur", "new", "tmp", "postern.index", "postern.index.new",
                "postern.lock", "postern.login"}
TIME_LIMIT = 30.0       # seconds, per test


def message(rnd, i):
    body = b"".join(b"line %d of message %d\n" % (j, i)
                    for j in range(rnd.randint(0, 60)))
    if i % 7 == 0:
        body += b".starts with a dot\n..and two\n"
    return b"Subject: crash test %d\nMessage-ID: <%d@crash.test>\n\n%s" % (
        i, i, body)


class Mailbox:
    """What the test delivered and what it expects to find."""

    def __init__(self, srv, rnd):
        self.srv = srv
        self.rnd = rnd
        self.next = 0
        self.content = {}       # uidl -> delivered bytes

    def fill(self):
        while len(self.content) < MAILBOX:
            data = message(self.rnd, self.next)
            self.next += 1
            base = self.srv.add_message("alice", data)
            self.content[expected_uidl(base)] = data

    def check(self, c, marked):
        """Checks the invariants through session c; drops from the
        expectation what is gone (it must have been marked)."""
        uidls = c.uidl()
        sizes = c.list()
        seen = set(uidls.values())
        assert len(seen) == len(uidls), "a UIDL given twice: %r" % uidls
        unknown = seen - set(self.content)
        assert not unknown, "messages that were never delivered: %r" % (
            sorted(unknown),)
        lost = set(self.content) - seen - marked
        assert not lost, "unmarked messages gone: %r" % (sorted(lost),)
        for n, u in uidls.items():
            assert sizes[n] == wire_size(self.content[u]), (n, u)
        for n in self.rnd.sample(sorted(uidls), min(5, len(uidls))):
            assert c.retr(n) == wire_form(self.content[uidls[n]]), n
        for u in set(self.content) - seen:
            del self.content[u]
        return len(set(marked) & seen)


def mark_and_quit(c, rnd):
    """DELEs a random share of the mailbox in one pipelined burst and
    sends QUIT without waiting; returns the UIDLs marked."""
    uidls = c.uidl()
    nums = sorted(uidls)
    chosen = rnd.sample(nums, rnd.randint(len(nums) // 4, len(nums)))
    c.send(b"".join(b"DELE %d\r\n" % n for n in chosen))
    for n in chosen:
        st = c.status()
        assert st.startswith("+OK"), "DELE %d: %r" % (n, st)
    c.send(b"QUIT\r\n")
    return {uidls[n] for n in chosen}


def wait_login(srv, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return srv.login("alice", timeout=2)
        except (OSError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def update_length(srv, box, rnd):
    """Seconds from QUIT to the end of the connection, for one UPDATE
    of a full mailbox without a kill."""
    box.fill()
    c = srv.login("alice")
    marked = mark_and_quit(c, rnd)
    t0 = time.monotonic()
    c.wait_closed(10)
    spent = time.monotonic() - t0
    c.close()
    with srv.login("alice") as c2:
        kept = box.check(c2, marked)
        c2.quit()
    assert kept == 0, "a clean UPDATE kept %d marked messages" % kept
    return max(spent, 0.002)


def run_rounds(srv, kill, rounds):
    rnd = random.Random(2033)
    box = Mailbox(srv, rnd)
    span = update_length(srv, box, rnd)
    kills = partial = 0
    deadline = time.monotonic() + TIME_LIMIT
    for _ in range(rounds):
        if time.monotonic() > deadline:
            break
        box.fill()
        c = wait_login(srv)
        marked = mark_and_quit(c, rnd)
        time.sleep(rnd.uniform(0.0, span * 1.2))
        kill()
        kills += 1
        c.close()
        with wait_login(srv) as c2:
            kept = box.check(c2, marked)
            c2.quit()
        left = set(os.listdir(srv.maildir("alice"))) - MAILDIR_ROOT
        assert not left, "a kill left %r behind" % (sorted(left),)
        if 0 < kept < len(marked):
            partial += 1
    return kills, partial


def test_pop3_worker_killed_during_update(make_server):
    # The killed worker is back at once, not after the default second.
    srv = make_server(config={"workers": 1, "restart_interval": "50ms"})
    rounds = 25 if harness.sanitizer_build() else 70
    kills, partial = run_rounds(
        srv, lambda: srv.kill_worker("pop3", all=True), rounds)
    print("pop3 worker kills during UPDATE: %d (%d left a partial "
          "deletion)" % (kills, partial))
    assert kills >= min(rounds, 20), kills
    assert srv.running(), "the master died"


def test_posternd_killed_during_update(make_server):
    srv = make_server()

    def crash():
        srv.crash()
        srv.start()

    rounds = 25 if harness.sanitizer_build() else 100
    kills, partial = run_rounds(srv, crash, rounds)
    print("posternd kills during UPDATE: %d (%d left a partial deletion)"
          % (kills, partial))
    assert kills >= min(rounds, 40), kills
