/*
 * fetch.h: one run of `postern fetch` for one account, exactly once.
 *
 * The order for every message (doc/design.md, client promises):
 *
 *	RETR, streamed into tmp/ of the Maildir (dot-unstuffed, LF line
 *	ends), fsync, rename into new/ under a name derived from the
 *	account and the UIDL, fsync of new/; then the UIDL is appended to
 *	the account's journal and fsync'd; only then, with keep = no, DELE.
 *
 * Each step is taken for a window of FETCH_PIPELINE_WINDOW messages at
 * once (the files fsync'd and renamed, one fsync of new/, one journal
 * append and fsync, then the DELEs), which keeps the order for every
 * message and shares the flushes.
 *
 * Killed at any instant, the next run neither loses nor duplicates a
 * message: a UIDL in the journal is not fetched again (and is deleted
 * if keep = no); a message whose file is already in new/ or cur/ (a
 * crash after the rename and before the journal) is journaled without
 * being stored again; nothing is deleted on the server before its UIDL
 * is in the journal.  The journal keeps only the UIDLs the server still
 * lists.
 *
 * A server without UIDL: each message is known by FETCH_DIGEST_PREFIX
 * and the SHA-256 (hex) of its LIST size and its headers (TOP n 0), with
 * a warning.  Messages listed under the same identity (duplicate UIDLs,
 * or copies alike in headers and size) are ambiguous: the first keeps
 * it, the n-th is known by FETCH_DUP_PREFIX and the SHA-256 of
 * "identity\nn".  Both kinds are longer than any UIDL (70 octets), so
 * they never equal one.  An ambiguous message is never deleted unless
 * this very run stored it: one journaled by an earlier run that is to be
 * deleted now is fetched again first (at least once, never lost).
 *
 * With an mda instead of a Maildir (mda.h), each message is journaled
 * as soon as the command exits 0 (a delivery through a command cannot be
 * recognised afterwards: a kill between the two hands that one message
 * to the command again); one it refuses stays on the server, unjournaled.
 *
 * With max_size_action = headers, a message larger than max_size is
 * stored as its headers (TOP n 0) after an X-Postern-Headers-Only line,
 * once, journaled as FETCH_HEADERS_PREFIX and the SHA-256 of its
 * identity, and never deleted: the message stays on the server, and is
 * fetched whole once max_size lets it through.
 *
 * Two options relax "once" on purpose: only_new = no retrieves the
 * journaled messages again (each copy under a name of its own), and
 * keep_days deletes a kept message once its record is that old.
 */
#ifndef POSTERN_CLIENT_FETCH_H
#define POSTERN_CLIENT_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/account.h"

/* Exit statuses of `postern fetch` (sysexits(3) values). */
#define FETCH_EXIT_OK		0
#define FETCH_EXIT_USAGE	1	/* command line or fetch.conf */
#define FETCH_EXIT_NO_MAIL	2	/* --no-mail-status: nothing new */
#define FETCH_EXIT_TEMP		75	/* EX_TEMPFAIL: try again later */
#define FETCH_EXIT_PERM		77	/* EX_NOPERM: fix something first */

#define FETCH_DIGEST_PREFIX	"postern-digest-"
#define FETCH_DUP_PREFIX	"postern-dup-"
#define FETCH_HEADERS_PREFIX	"postern-headers-"

struct report;

struct fetch_stats {
	uint32_t	 listed;	/* messages on the server */
	uint32_t	 fetched;	/* stored by this run */
	uint64_t	 octets;	/* octets stored by this run */
	uint32_t	 deleted;	/* deleted on the server */
	uint32_t	 fresh;		/* listed, not in the journal */
	const char	*method;	/* how we logged in */
	uint32_t	 login_delay;	/* the server's LOGIN-DELAY (s) */
	int64_t		 login_ms;	/* when we logged in (monotonic); 0 */
};

/*
 * The directory of the journals and lock files: $XDG_STATE_HOME/postern
 * if XDG_STATE_HOME is an absolute path, else $HOME/.local/state/postern.
 * 0, or -1 if neither is set.
 */
int	fetch_state_dir(char *out, size_t size);

/*
 * Fetches the mail of a; state_dir holds NAME.journal and NAME.lock.
 * With check_only, only counts the messages whose UIDL is not in the
 * journal (st->fresh): no RETR, no DELE, the Maildir untouched and the
 * journal not compacted.  Events go to rep (report.h).  Returns a
 * FETCH_EXIT_* status; on failure err holds one line.  Warnings (a
 * journal line dropped) go to stderr.
 */
int	fetch_account(const struct account *a, const char *state_dir,
	    bool check_only, struct report *rep, struct fetch_stats *st,
	    char *err, size_t errsize);

/* The Maildir base name of a message: "<account>.<32 hex digits of
 * SHA-256(UIDL)>".  0 or -1. */
int	fetch_base_name(const char *account, const char *uidl, char *out,
	    size_t size);

#endif
