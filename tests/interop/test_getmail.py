"""
getmail6 (Debian 12: 6.18.11) against posternd, SimplePOP3Retriever into
a Maildir destination.

What getmail6 does to a message, as observed and as its source
(getmailcore/message.py, Message.flatten) says:
- It re-writes the message through Python's email generator with the
  platform line ending: LF line endings, un-stuffed, a last line without
  LF completed.  Header lines longer than 78 columns would be folded
  again (corpus.py keeps every header line shorter).
- It always adds "Return-Path: <SENDER>" as the first field (SENDER is
  taken from an existing Return-Path: or Sender: field, else "unknown"),
  and removes any Return-Path: field the message had.  No option turns
  this off.
- Then "Delivered-To: unknown" unless [options] delivered_to = false, then
  "Received: from ... getmail6 ..." unless [options] received = false.
- read_all = false with the oldmail file in the getmaildir: a second run
  retrieves nothing.  delete = true: DELE after each message.
- As root, the Maildir destination refuses to deliver ("refuse to deliver
  mail as root") unless [destination] user = names another user; the test
  then lets "nobody" own the destination Maildir.
"""

import os
import pwd
import shutil
import tempfile

import pytest

import clients
import corpus


@pytest.fixture
def destination():
    """A Maildir for getmail6 to deliver into, and the [destination] user
    line it needs when the tests run as root."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam("nobody")
        top = tempfile.mkdtemp(prefix="postern-getmail-")
        os.chmod(top, 0o755)
        dest = clients.make_maildir(os.path.join(top, "Maildir"),
                                    owner=(pw.pw_uid, pw.pw_gid))
        yield dest, "user = nobody\n"
        shutil.rmtree(top, ignore_errors=True)
    else:
        top = tempfile.mkdtemp(prefix="postern-getmail-")
        yield clients.make_maildir(os.path.join(top, "Maildir")), ""
        shutil.rmtree(top, ignore_errors=True)


def _getmail(mb, workdir, destination, delete, added_fields):
    getmail = clients.require("getmail")
    dest, user_line = destination
    gdir = os.path.join(workdir, "getmail")
    os.makedirs(gdir, exist_ok=True)
    rc = clients.write_private(os.path.join(gdir, "getmailrc"), (
        "[retriever]\n"
        "type = SimplePOP3Retriever\n"
        "server = 127.0.0.1\n"
        "port = %d\n"
        "username = %s\n"
        "password = %s\n"
        "timeout = 60\n"
        "\n"
        "[destination]\n"
        "type = Maildir\n"
        "path = %s/\n"
        "%s"
        "\n"
        "[options]\n"
        "delete = %s\n"
        "read_all = false\n"
        "delivered_to = %s\n"
        "received = %s\n"
        "message_log_syslog = false\n"
        "verbose = 1\n"
    ) % (mb.port, mb.user, mb.password, dest, user_line,
         "true" if delete else "false",
         "true" if added_fields else "false",
         "true" if added_fields else "false"))
    env = clients.client_env(os.path.join(workdir, "home"))
    return [getmail, "--getmaildir", gdir, "--rcfile", rc], env, dest


def test_getmail_keep(mailbox, workdir, destination):
    argv, env, dest = _getmail(mailbox, workdir, destination, delete=False,
                               added_fields=False)
    clients.run(argv, env=env)
    stored = clients.maildir_messages(dest)
    for where, data in stored.items():
        assert clients.top_fields(data, 1) == [b"Return-Path: <unknown>"], \
            where
    clients.check_messages(stored, corpus.unix, strip=("Return-Path",),
                           what="getmail6")
    clients.assert_untouched(mailbox)

    # Second run: the oldmail file lists every UIDL, nothing is retrieved.
    r = clients.run(argv, env=env)
    assert clients.maildir_messages(dest).keys() == stored.keys(), \
        "second getmail run stored messages again:\n" + r.stdout.decode(
            "utf-8", "replace")
    assert b"0 messages" in r.stdout, r.stdout
    clients.assert_untouched(mailbox)

    # A message arrives: the next run fetches that one only.
    mailbox.add_late()
    clients.run(argv, env=env)
    clients.check_late(mailbox, stored, clients.maildir_messages(dest),
                       corpus.unix, strip=("Return-Path",), what="getmail6")


def test_getmail_keep_added_fields(mailbox, workdir, destination):
    # getmail6's defaults: Return-Path, Delivered-To and Received on top.
    argv, env, dest = _getmail(mailbox, workdir, destination, delete=False,
                               added_fields=True)
    clients.run(argv, env=env)
    stored = clients.maildir_messages(dest)
    for where, data in stored.items():
        top = clients.top_fields(data, 3)
        assert top[0] == b"Return-Path: <unknown>", (where, top)
        assert top[1] == b"Delivered-To: unknown", (where, top)
        assert b"getmail6" in top[2], (where, top)
    clients.check_messages(stored, corpus.unix,
                           strip=("Return-Path", "Delivered-To", "Received"),
                           what="getmail6")
    clients.assert_untouched(mailbox)


def test_getmail_delete(mailbox, workdir, destination):
    argv, env, dest = _getmail(mailbox, workdir, destination, delete=True,
                               added_fields=False)
    clients.run(argv, env=env)
    clients.check_messages(clients.maildir_messages(dest), corpus.unix,
                           strip=("Return-Path",), what="getmail6")
    clients.assert_emptied(mailbox)
