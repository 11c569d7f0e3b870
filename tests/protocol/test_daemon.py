"""
The daemon: shutdown on SIGTERM, reload on SIGHUP, `posternd -t`,
privilege separation when started as root, the master's process model.
"""

import os
import pwd
import re
import signal
import socket
import time

import pytest

from harness import (assert_glob, is_root, pid_alive, postern, posternd,
                     proc_uids, wire_form)


def msg(i):
    return b"Subject: m%d\n\nbody %d\n" % (i, i)


# ------------------------------------------------------------- SIGTERM

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_with_open_sessions(make_server, sig):
    s = make_server()
    for i in range(3):
        s.add_message("alice", msg(i))
    idle = s.connect()
    half = s.connect()
    half.command("USER alice")
    a = s.login("alice")
    assert_glob(a.command("DELE 1"), "+OK*")
    assert_glob(a.command("DELE 2"), "+OK*")
    b = s.login("bob")
    status = s.stop(sig=sig)
    assert status == 0, "exit status %s" % status
    for c in (idle, half, a, b):
        rest = c.wait_closed(5)
        assert re.match(rb"-ERR \[SYS/TEMP\][^\r\n]*\r\n\Z", rest), rest
        c.close()
    assert len(s.message_files("alice")) == 3
    s.start()
    with s.login("alice") as c:
        assert c.stat()[0] == 3


def test_shutdown_idle(server):
    assert server.stop() == 0


def test_shutdown_during_large_retr(make_server):
    s = make_server()
    big = b"Subject: big\n\n" + b"0123456789" * 7 + b"\n"
    s.add_message("alice", big * 40000)
    c = s.login("alice")
    c.sendline("RETR 1")
    c.readline()
    assert s.stop() == 0
    c.wait_closed(10)
    c.close()
    assert len(s.message_files("alice")) == 1


# -------------------------------------------------------------- SIGHUP

def wait_greeting(srv, pattern, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        with srv.connect() as c:
            g = c.greeting
        if re.match(pattern, g) or time.monotonic() > deadline:
            return g
        time.sleep(0.1)


def test_sighup_applies_new_config(make_server):
    s = make_server(config={"greeting": "First greeting."})
    s.add_message("alice", msg(1))
    assert_glob(wait_greeting(s, r"\+OK First"), "+OK First greeting.*")
    old = s.login("alice")
    s.update_config({"greeting": "Second greeting.", "login_delay": "7s"})
    s.reload()
    assert_glob(wait_greeting(s, r"\+OK Second"), "+OK Second greeting.*")
    with s.connect() as c:
        assert "LOGIN-DELAY 7 USER" in [l.upper() for l in c.capa()]
    # the session opened before the reload goes on
    assert old.stat()[0] == 1
    old.quit()
    assert s.running()


def test_sighup_with_broken_config_keeps_old(make_server):
    s = make_server(config={"greeting": "Still the old one."})
    mark = len(s.log_text())
    with open(s.conf_path, "a") as f:
        f.write("no_such_key = 1\nworkers = lots\n")
    s.reload()
    time.sleep(1)
    assert s.running(), "posternd exited on a bad config:\n" + s.log_text()
    with s.connect() as c:
        assert_glob(c.greeting, "+OK Still the old one.*")
    with s.login("alice") as c:
        c.quit()
    # the error names the file and line
    s.wait_log(re.escape(s.conf_path) + r":\d+:", start=mark)
    # a good config afterwards is taken again
    s.update_config({"greeting": "Fixed."})
    s.reload()
    assert_glob(wait_greeting(s, r"\+OK Fixed"), "+OK Fixed.*")


def test_sighup_keeps_serving(make_server):
    s = make_server()
    before = set(s.worker_pids(None))
    s.reload()
    time.sleep(0.5)
    with s.login("alice") as c:
        c.quit()
    assert s.running()
    # workers may be replaced, but their number stays
    assert len(s.worker_pids(None)) == len(before)


# ---------------------------------------------------------- process model

@pytest.mark.parametrize("pop3,auth", [(2, 2), (3, 1)])
def test_worker_processes(make_server, pop3, auth):
    s = make_server(config={"workers": pop3, "auth_workers": auth})
    s.wait_log(r"ready")
    time.sleep(0.2)
    assert len(s.wait_workers("pop3", pop3)) == pop3
    assert len(s.wait_workers("auth", auth)) == auth
    assert len(s.worker_pids(None)) == pop3 + auth


def test_session_ids_unique(server):
    """Each session's log lines carry an id that tells it from every other
    session in the same log, whichever worker serves it."""
    ports = []
    for _ in range(12):
        with server.connect() as c:
            ports.append(c.sock.getsockname()[1])
            c.quit()
    ids = []
    for p in ports:
        m = server.wait_log(r"pop3 session=(\S+) connect ip=127\.0\.0\.1 "
                            r"port=%d\b" % p)
        ids.append(m.group(1))
    assert len(set(ids)) == len(ids), ids


def test_short_idle_timeout_warns(make_server):
    s = make_server(config={"idle_timeout": "30s"})
    s.wait_log(r"(?i)warn.*idle_timeout|idle_timeout.*(?i:warn|RFC)")


def test_no_warning_for_default_idle_timeout(server):
    assert "idle_timeout" not in server.log_text()


# ------------------------------------------------------------ posternd -t

def run_posternd(*args, timeout=30):
    return posternd(*args, timeout=timeout)


@pytest.fixture
def conf_dir(make_server):
    return make_server(start=False)


def test_check_good_config(conf_dir):
    conf_dir.write_config()
    r = run_posternd("-t", "-c", conf_dir.conf_path)
    assert r.returncode == 0, r.stderr
    out = (r.stdout + r.stderr).decode()
    assert conf_dir.conf_path in out and "ok" in out, out


def test_check_with_comments_and_blank_lines(conf_dir):
    text = conf_dir.config_text()
    with open(conf_dir.conf_path, "w") as f:
        f.write("# a comment\n\n" + text + "\n# end\n")
    r = run_posternd("-t", "-c", conf_dir.conf_path)
    assert r.returncode == 0, r.stderr


BAD_LINES = [
    "no_such_key = 1",
    "workers = lots",
    "lock_session = maybe",
    "idle_timeout = 0s",
    "idle_timeout = 25h",
    "max_line_length = 100",
    "max_line_length = 100000",
    "expire = -1",
    "listen = nonsense",
    "mail_root = relative/path",
    "plaintext_networks = 10.0.0.0/99",
    "greeting",
]


@pytest.mark.parametrize("bad", BAD_LINES)
def test_check_bad_config(conf_dir, bad):
    key = bad.split("=")[0].strip()
    if key != "listen":
        conf_dir.overrides[key] = None      # no duplicate of the bad key
    text = conf_dir.config_text().splitlines()
    text.insert(2, bad)
    with open(conf_dir.conf_path, "w") as f:
        f.write("\n".join(text) + "\n")
    r = run_posternd("-t", "-c", conf_dir.conf_path)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    err = r.stderr.decode()
    assert "%s:3:" % conf_dir.conf_path in err, err


def test_check_duplicate_key(conf_dir):
    text = conf_dir.config_text() + "workers = 3\n"
    with open(conf_dir.conf_path, "w") as f:
        f.write(text)
    line = text.count("\n")
    r = run_posternd("-t", "-c", conf_dir.conf_path)
    assert r.returncode == 1
    assert "%s:%d:" % (conf_dir.conf_path, line) in r.stderr.decode()


def test_check_missing_file(conf_dir):
    r = run_posternd("-t", "-c", conf_dir.conf_path + ".missing")
    assert r.returncode == 1
    assert (conf_dir.conf_path + ".missing") in r.stderr.decode()


def test_postern_check(conf_dir):
    conf_dir.write_config()
    assert postern("check", "-c", conf_dir.conf_path).returncode == 0
    with open(conf_dir.conf_path, "a") as f:
        f.write("bogus = 1\n")
    r = postern("check", "-c", conf_dir.conf_path)
    assert r.returncode == 1
    assert re.search(re.escape(conf_dir.conf_path) + r":\d+:",
                     r.stderr.decode())


def test_start_with_bad_config_fails(conf_dir):
    conf_dir.overrides["workers"] = "lots"
    conf_dir.write_config()
    r = run_posternd("-c", conf_dir.conf_path)
    assert r.returncode != 0
    assert conf_dir.conf_path in r.stderr.decode()


def test_version():
    r = run_posternd("-V")
    assert r.returncode == 0
    assert re.search(rb"\d+\.\d+", r.stdout + r.stderr)


def test_unknown_option():
    r = run_posternd("-Z")
    assert r.returncode != 0


# ------------------------------------------------------ privilege drop

@pytest.mark.skipif(not is_root(), reason="needs root to drop privileges")
def test_root_drops_to_mail_and_auth_user(make_server):
    s = make_server(config={"mail_user": "nobody", "auth_user": "nobody"},
                    start=False)
    nobody = pwd.getpwnam("nobody").pw_uid
    s.add_message("alice", msg(1))
    s.chown_mail_root()
    s.start()
    pop3 = s.wait_workers("pop3", 1)
    auth = s.wait_workers("auth", 1)
    assert set(pop3).isdisjoint(auth), "pop3 and auth workers not told apart"
    # a child is root for the moment between fork and its drop
    deadline = time.monotonic() + 5
    for pid in pop3 + auth:
        while proc_uids(pid) != [nobody] * 4 and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc_uids(pid) == [nobody] * 4, pid
    assert proc_uids(s.pid)[0] == 0
    with s.login("alice") as c:
        assert c.retr(1) == wire_form(msg(1))
        assert_glob(c.command("DELE 1"), "+OK*")
        c.quit()
    assert s.message_files("alice") == {}
    assert os.stat(s.maildir("alice")).st_uid == nobody


def test_shutdown_during_auth_delay(make_server):
    s = make_server(config={"auth_fail_delay": "5s",
                            "auth_fail_delay_max": "5s"})
    c = s.connect()
    c.command("USER alice")
    c.sendline("PASS wrong")
    time.sleep(0.3)
    t0 = time.monotonic()
    assert s.stop() == 0
    assert time.monotonic() - t0 < 5
    rest = c.wait_closed(5)
    assert rest == b"" or re.match(rb"-ERR[^\r\n]*\r\n\Z", rest), rest
    c.close()


def test_shutdown_with_client_not_reading(make_server):
    """A client that stops reading a big RETR cannot hold up shutdown."""
    s = make_server()
    s.add_message("alice", (b"z" * 99 + b"\n") * 200000)
    c = s.connect()
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.login("alice", s.users["alice"])
    c.sendline("RETR 1")
    time.sleep(0.5)
    t0 = time.monotonic()
    assert s.stop() == 0
    assert time.monotonic() - t0 < 8
    c.close()
    assert len(s.message_files("alice")) == 1


def test_master_killed_leaves_nothing_behind(make_server):
    """If the master dies, its workers go too and the port can be bound
    again by a new master."""
    s = make_server()
    workers = s.wait_workers(None, 4)
    c = s.login("alice")
    os.kill(s.pid, signal.SIGKILL)
    s.proc.wait(5)
    deadline = time.monotonic() + 5
    while any(pid_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in workers if pid_alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    c.close()
    assert not left, "workers outlived the master: %r" % left
    s.start()
    with s.login("alice") as c2:
        c2.quit()


def test_log_has_no_control_characters(server):
    with server.connect() as c:
        c.send(b"USER evil\x1b[31m\x07\rname\r\n")
        c.status()
        c.command("PASS wrong")
        c.send(b"X\x1b]0;title\x07\r\n")
        c.status()
        c.quit()
    time.sleep(0.2)
    with open(server.log_path, "rb") as f:
        raw = f.read()
    bad = sorted({b for b in raw if b < 0x20 and b not in (0x09, 0x0a)} |
                 ({0x7f} & set(raw)))
    assert not bad, "control octets %r in the log" % bad


def test_port_in_use(make_server):
    s = make_server(start=False)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        s.overrides["listen"] = "127.0.0.1:%d" % blocker.getsockname()[1]
        s.write_config()
        r = posternd("-c", s.conf_path, timeout=15)
    assert r.returncode != 0
    assert r.stderr.strip()
