"""Privilege separation and confinement of the worker processes.

Each pop3 worker may reach only the mail root and each auth worker only
the directory of the user database (Landlock); neither can execute a
program.  The checks call open() and execve() inside the live worker
through a debugger, so they test the kernel's enforcement, not a log
line.
"""
import os
import re
import shutil
import subprocess

import pytest

from harness import Server


def _gdb_call(pid, expr):
    """Evaluates a C call inside process pid; returns the int result."""
    gdb = shutil.which("gdb")
    if gdb is None:
        pytest.skip("gdb is not installed")
    r = subprocess.run(
        [gdb, "-nx", "-batch", "-p", str(pid), "-ex", "call (int)" + expr],
        capture_output=True, text=True, timeout=60)
    m = re.search(r"^\$1 = (-?\d+)", r.stdout, re.M)
    assert m, "gdb gave no result:\n%s\n%s" % (r.stdout, r.stderr)
    return int(m.group(1))


def _status(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    return None


@pytest.fixture
def split_server(tmp_path):
    """A server whose user database lives apart from the mail root."""
    s = Server(users={"alice": "alice-pw"})
    dbdir = os.path.join(s.dir, "db")
    os.mkdir(dbdir, 0o755)
    newdb = os.path.join(dbdir, "users")
    shutil.move(s.user_db, newdb)
    s.user_db = newdb
    s._fix_owner(dbdir, "auth")
    s._fix_owner(newdb, "auth")
    s.update_config({"user_db": newdb})
    s.ensure_maildir("alice")
    s.add_message("alice", b"Subject: x\n\nbody\n")
    s.start()
    yield s
    s.stop()
    s.cleanup()


def _landlock(server):
    text = server.log_text()
    if "has no Landlock" in text:
        pytest.skip("this kernel has no Landlock")
    return text


def test_workers_log_their_confinement(split_server):
    text = _landlock(split_server)
    assert re.search(r"pop3: landlock abi=\d+ confines files to "
                     + re.escape(split_server.mail_root), text)
    assert re.search(r"auth: landlock abi=\d+ confines files to "
                     + re.escape(os.path.dirname(split_server.user_db))
                     + r" \(read\)", text)
    for pid in split_server.worker_pids(None):
        assert _status(pid, "NoNewPrivs") == "1"


def test_pop3_worker_cannot_open_the_user_database(split_server):
    _landlock(split_server)
    pid = split_server.worker_pids("pop3")[0]
    assert _gdb_call(pid, 'open("%s", 0)' % split_server.user_db) == -1
    # The same worker still serves mail afterwards.
    with split_server.login("alice") as c:
        assert c.stat()[0] == 1


def test_pop3_worker_cannot_execute(split_server):
    _landlock(split_server)
    pid = split_server.worker_pids("pop3")[0]
    assert _gdb_call(pid, 'execve("/bin/true", 0, 0)') == -1


def test_auth_worker_cannot_open_mail(split_server):
    _landlock(split_server)
    msg = next(iter(split_server.message_files("alice").values()))
    for pid in split_server.worker_pids("auth"):
        assert _gdb_call(pid, 'open("%s", 0)' % msg) == -1
        assert _gdb_call(pid, 'execve("/bin/true", 0, 0)') == -1
    # Logins still work: the auth worker reads its database.
    with split_server.login("alice") as c:
        assert c.stat()[0] == 1


def test_no_process_can_dump_core(split_server):
    # Every process holds secrets: TLS keys, passwords in flight.
    pids = [split_server.pid] + split_server.worker_pids(None)
    assert len(pids) >= 3
    for pid in pids:
        with open("/proc/%d/limits" % pid) as f:
            core = [l for l in f if l.startswith("Max core file size")][0]
        assert core.split()[4] == "0", (pid, core)
    # Auth workers are not dumpable, so a peer of the same uid cannot
    # trace them: the kernel then gives their /proc files to root.
    for pid in split_server.worker_pids("auth"):
        uid = int(_status(pid, "Uid").split()[0])
        if uid != 0:
            assert os.stat("/proc/%d/status" % pid).st_uid == 0


def test_missing_mail_root_is_a_clear_start_error(tmp_path):
    s = Server(users={"alice": "pw"})
    try:
        s.update_config({"mail_root": os.path.join(s.dir, "nowhere")})
        r = subprocess.run([os.path.join(os.environ.get(
            "POSTERN_BUILD_DIR", os.path.join(os.path.dirname(
                os.path.dirname(os.path.dirname(os.path.abspath(
                    __file__)))), "build")), "posternd"),
            "-c", s.conf_path], capture_output=True, text=True, timeout=20)
        assert r.returncode == 1
        assert "mail_root" in r.stderr and "not a directory" in r.stderr
    finally:
        s.cleanup()
