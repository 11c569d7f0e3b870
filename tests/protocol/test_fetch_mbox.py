"""
`postern fetch` into an mbox (the account key `mbox = PATH`) from a live
posternd: every message byte-exact (in LF form, mboxrd-quoted in the
file and unquoted again by the reference parser), a second run stores
nothing, the mbox's locks are the server's (a dotlock held by another
program makes the run wait and then fail with exit 75, storing
nothing), maildir, mbox and mda exclude each other, and runs killed with
SIGKILL at random instants while mail arrives leave every message in the
mbox exactly once: the intent file lets the next run recognise a
message appended just before the kill.
"""

import os
import random
import time

import harness
from .test_fetch import (EX_OK, EX_TEMP, EX_USAGE, MESSAGES, Client, fill,
                         kill_runs, lf_form)

FROM_LINES = [
    b"Subject: from lines\n\nFrom the start of a line\n>From quoted once\n"
    b">>From quoted twice\nFrom\n",
]


def mbox_of(c):
    return os.path.join(c.home, "Mail", "inbox.mbox")


def read_msgs(c):
    with open(mbox_of(c), "rb") as f:
        return harness.split_mbox(f.read())


def test_into_mbox_byte_exact_then_nothing_new(tmp_path, make_server):
    s = make_server(start=False)
    fill(s, MESSAGES + FROM_LINES)
    s.start()
    c = Client(tmp_path, s)
    os.makedirs(os.path.dirname(mbox_of(c)))
    c.write(c.account(maildir=None, mbox=mbox_of(c), keep="no"))
    st, out, err = c.run()
    assert st == EX_OK, err
    got = read_msgs(c)
    want = [lf_form(m) for m in MESSAGES + FROM_LINES]
    assert sorted(got) == sorted(want)
    # In the file the From lines of the body carry one more '>'.
    with open(mbox_of(c), "rb") as f:
        raw = f.read()
    assert b"\n>From the start of a line\n>>From quoted once\n" \
           b">>>From quoted twice\n" in raw
    assert s.message_files("alice") == {}
    # Nothing is left to do, and the intent file is empty.
    st, out, err = c.run()
    assert st == EX_OK, err
    assert out.startswith("acct: 0 messages fetched"), out
    assert sorted(read_msgs(c)) == sorted(want)
    assert os.path.getsize(os.path.join(c.state, "acct.mbox-intent")) == 0


def test_new_mail_appended_after_the_old(tmp_path, make_server):
    s = make_server(start=False)
    fill(s, MESSAGES[:2])
    s.start()
    c = Client(tmp_path, s)
    os.makedirs(os.path.dirname(mbox_of(c)))
    c.write(c.account(maildir=None, mbox=mbox_of(c), keep="yes"))
    assert c.run()[0] == EX_OK
    fill(s, MESSAGES[2:4])
    assert c.run()[0] == EX_OK
    got = read_msgs(c)
    assert sorted(got[:2]) == sorted(lf_form(m) for m in MESSAGES[:2])
    assert sorted(got[2:]) == sorted(lf_form(m) for m in MESSAGES[2:4])


def test_locked_mbox_is_a_temporary_failure(tmp_path, make_server):
    s = make_server(start=False)
    fill(s, MESSAGES[:2])
    s.start()
    c = Client(tmp_path, s)
    os.makedirs(os.path.dirname(mbox_of(c)))
    c.write(c.account(maildir=None, mbox=mbox_of(c), keep="no"))
    lock = mbox_of(c) + ".lock"
    with open(lock, "w") as f:
        f.write("%d\n" % os.getpid())
    try:
        st, out, err = c.run(timeout=60)
    finally:
        os.unlink(lock)
    assert st == EX_TEMP, (st, err)
    assert "lock" in err, err
    # Nothing was stored and nothing deleted; the next run does it all.
    assert not os.path.exists(mbox_of(c)) or read_msgs(c) == []
    assert len(s.message_files("alice")) == 2
    st, out, err = c.run()
    assert st == EX_OK, err
    assert sorted(read_msgs(c)) == sorted(lf_form(m) for m in MESSAGES[:2])


def test_targets_exclude_each_other(tmp_path, make_server):
    s = make_server()
    c = Client(tmp_path, s)
    c.write(c.account(mbox=mbox_of(c)))
    st, out, err = c.run()
    assert st == EX_USAGE
    assert "exactly one delivery target: maildir, mbox or mda" in err, err


KILL_ROUNDS = 25 if harness.sanitizer_build() else 80
KILL_SECONDS = 120


def test_kill_9_while_mail_arrives_stores_each_message_once(tmp_path,
                                                            make_server):
    s = make_server(start=False)
    rnd = random.Random(4155)
    serial = [0]

    def new_messages(n):
        out = []
        for _ in range(n):
            i = serial[0]
            serial[0] += 1
            body = (b"From line %d\n" % i) * rnd.choice((1, 30, 2000))
            out.append(b"Subject: message %d\n\n%s" % (i, body))
        return out

    sent = new_messages(20)
    fill(s, sent)
    s.start()
    c = Client(tmp_path, s)
    os.makedirs(os.path.dirname(mbox_of(c)))
    c.write(c.account(maildir=None, mbox=mbox_of(c), keep="no"))

    def arrive():
        more = new_messages(rnd.randint(0, 3))
        fill(s, more)
        sent.extend(more)

    rounds, kills = kill_runs(
        c, rnd, KILL_ROUNDS, KILL_SECONDS, arrive,
        lambda: os.path.getsize(mbox_of(c))
        if os.path.exists(mbox_of(c)) else 0)
    assert rounds >= min(KILL_ROUNDS, 20), rounds
    assert kills >= rounds // 3, kills
    for _ in range(50):
        st, out, err = c.run()
        if st != EX_TEMP:
            break
        time.sleep(0.2)
    assert st == EX_OK, err
    assert s.message_files("alice") == {}
    got = read_msgs(c)
    assert len(got) == len(sent), (len(got), len(sent))
    assert sorted(got) == sorted(lf_form(m) for m in sent)
    print("mbox fetch runs: %d, killed: %d" % (rounds, kills))
