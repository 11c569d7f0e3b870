"""
mpop (Debian 12: 1.4.18) against posternd, delivering into a Maildir.

What mpop does to a message, as observed and as its manual says:
- "delivery maildir DIR" writes each message into DIR/new with LF line
  endings: the wire form, un-stuffed, CRLF turned into LF, the LF that
  completes a last line without one kept.
- It adds one Received: field at the very top unless "received_header
  off", folded over three lines:
      Received: from 127.0.0.1 (localhost [127.0.0.1])
      \tby HOST (mpop-1.4.18) with POP3
      \tfor <LOCAL USER>; DATE
  Nothing else is added.
- It pipelines (CAPA PIPELINING): STAT, LIST, UIDL, then every RETR in
  one go, then with "keep off" every DELE, then QUIT.
- "keep on" with a uidls_file: a second run fetches nothing new.
"""

import os

import clients
import corpus


def _mpop(mb, workdir, keep, received_header):
    mpop = clients.require("mpop")
    dest = clients.make_maildir(os.path.join(workdir, "Maildir"))
    conf = clients.write_private(os.path.join(workdir, "mpoprc"), (
        "defaults\n"
        "account demo\n"
        "host 127.0.0.1\n"
        "port %d\n"
        "tls off\n"
        "auth user\n"
        "user %s\n"
        "password %s\n"
        "delivery maildir %s\n"
        "keep %s\n"
        "uidls_file %s\n"
        "%s"
        "timeout 60\n"
    ) % (mb.port, mb.user, mb.password, dest, "on" if keep else "off",
         os.path.join(workdir, "uidls"),
         "" if received_header else "received_header off\n"))
    env = clients.client_env(os.path.join(workdir, "home"))
    return [mpop, "-C", conf, "-a"], env, dest


def test_mpop_keep(mailbox, workdir):
    argv, env, dest = _mpop(mailbox, workdir, keep=True,
                            received_header=False)
    clients.run(argv, env=env)
    stored = clients.maildir_messages(dest)
    clients.check_messages(stored, corpus.unix, what="mpop")
    clients.assert_untouched(mailbox)

    # Second run: the uidls_file knows every message.
    r = clients.run(argv, env=env)
    assert clients.maildir_messages(dest).keys() == stored.keys(), \
        "second mpop run stored messages again:\n" + r.stdout.decode(
            "utf-8", "replace")
    clients.assert_untouched(mailbox)

    # A message arrives: the next run fetches that one only.
    mailbox.add_late()
    clients.run(argv, env=env)
    clients.check_late(mailbox, stored, clients.maildir_messages(dest),
                       corpus.unix, what="mpop")


def test_mpop_keep_received_header(mailbox, workdir):
    # mpop's default: one Received: field added on top.
    argv, env, dest = _mpop(mailbox, workdir, keep=True,
                            received_header=True)
    clients.run(argv, env=env)
    stored = clients.maildir_messages(dest)
    for where, data in stored.items():
        first = clients.top_fields(data, 1)[0]
        assert b"(mpop-" in first and b"POP3" in first, (where, first)
    clients.check_messages(stored, corpus.unix, strip=("Received",),
                           what="mpop")
    clients.assert_untouched(mailbox)


def test_mpop_delete(mailbox, workdir):
    argv, env, dest = _mpop(mailbox, workdir, keep=False,
                            received_header=False)
    clients.run(argv, env=env)
    clients.check_messages(clients.maildir_messages(dest), corpus.unix,
                           what="mpop")
    clients.assert_emptied(mailbox)
