"""
fetchmail (Debian 12: 6.4.37) against posternd, delivering through an MDA.

What fetchmail does to a message, as observed and as its manual says:
- With an MDA it strips the CR of each CRLF ("stripcr" is the default
  for MDA delivery), so the MDA gets the wire form with LF line endings,
  un-stuffed, with the LF that completes a last line without one.
- It adds one Received: field at the very top, folded over three lines:
      Received: from 127.0.0.1 [127.0.0.1]
      \tby HOST with POP3 (fetchmail-6.4.37)
      \tfor <demo@localhost> (single-drop); DATE
  "set invisible" suppresses it (the manual: "the Received header is
  suppressed").  Nothing else is added; "no rewrite" keeps it from
  qualifying addresses in To:/From:/Cc: (ours are all qualified anyway).
- With "keep" it downloads with "TOP n 99999999" (so that the server
  marks nothing as read); with "no keep" it uses RETR and then DELE.
- With "uidl" it records the UIDLs in the idfile and a second run finds
  nothing new: exit status 1 ("no mail").
"""

import os
import sys

import clients
import corpus

# The MDA: stores each message from stdin into its own file.
MDA = r"""
import os, sys, tempfile
data = sys.stdin.buffer.read()
fd, path = tempfile.mkstemp(dir=sys.argv[1], prefix="msg.")
os.write(fd, data)
os.fsync(fd)
os.close(fd)
"""


def _fetchmail(mb, workdir, keep, invisible, name="run"):
    fetchmail = clients.require("fetchmail")
    out = os.path.join(workdir, "delivered")
    os.makedirs(out, exist_ok=True)
    mda = os.path.join(workdir, "mda.py")
    with open(mda, "w") as f:
        f.write(MDA)
    rc = clients.write_private(os.path.join(workdir, "fetchmailrc"), (
        "set no syslog\n"
        "%s"
        "poll 127.0.0.1 with proto POP3 port %d uidl auth password\n"
        "  user \"%s\" there with password \"%s\" is \"%s\" here\n"
        "  options %s no rewrite sslproto '' no sslcertck\n"
        "  mda \"%s %s %s\"\n"
    ) % ("set invisible\n" if invisible else "", mb.port, mb.user,
         mb.password, mb.user, "keep" if keep else "no keep fetchall",
         sys.executable, mda, out))
    env = clients.client_env(os.path.join(workdir, "home"))
    argv = [fetchmail, "--fetchmailrc", rc, "--nodetach", "-N",
            "--pidfile", os.path.join(workdir, "fetchmail.pid"),
            "--idfile", os.path.join(workdir, "fetchmail.ids"),
            "--timeout", "60"]
    return argv, env, out


def test_fetchmail_keep(mailbox, workdir):
    argv, env, out = _fetchmail(mailbox, workdir, keep=True, invisible=True)
    clients.run(argv, env=env)
    stored = clients.dir_messages(out)
    clients.check_messages(stored, corpus.unix, what="fetchmail")
    clients.assert_untouched(mailbox)

    with open(os.path.join(workdir, "fetchmail.ids")) as f:
        ids = f.read()
    for uidl in mailbox.uidls.values():
        assert uidl in ids, "UIDL %s not in fetchmail's idfile:\n%s" % (
            uidl, ids)

    # Second run: every UIDL is known, nothing is fetched (exit 1).
    r = clients.run(argv, env=env, ok=(1,))
    assert clients.dir_messages(out).keys() == stored.keys(), \
        "second fetchmail run stored messages again:\n" + r.stdout.decode(
            "utf-8", "replace")
    clients.assert_untouched(mailbox)

    # A message arrives: the next run fetches that one only.
    mailbox.add_late()
    clients.run(argv, env=env)
    clients.check_late(mailbox, stored, clients.dir_messages(out),
                       corpus.unix, what="fetchmail")


def test_fetchmail_keep_received_header(mailbox, workdir):
    # fetchmail's default: one Received: field added on top.
    argv, env, out = _fetchmail(mailbox, workdir, keep=True, invisible=False)
    clients.run(argv, env=env)
    stored = clients.dir_messages(out)
    for where, data in stored.items():
        first = clients.top_fields(data, 1)[0]
        assert b"(fetchmail-" in first and b"POP3" in first, (where, first)
    clients.check_messages(stored, corpus.unix, strip=("Received",),
                           what="fetchmail")
    clients.assert_untouched(mailbox)


def test_fetchmail_delete(mailbox, workdir):
    argv, env, out = _fetchmail(mailbox, workdir, keep=False, invisible=True)
    clients.run(argv, env=env)
    clients.check_messages(clients.dir_messages(out), corpus.unix,
                           what="fetchmail")
    clients.assert_emptied(mailbox)
