/*
 * store.h: the mailbox interface the POP3 session uses.  Protocol code
 * includes this header and never a backend's.
 *
 * A mailbox is opened once per session and gives a snapshot: the list of
 * messages with their exact wire sizes (see pop3/wire.h) and UIDLs.
 * Mail that arrives later appears in the next session.  Nothing is ever
 * deleted except by mailbox_commit(), which the session calls only in the
 * UPDATE state after QUIT.
 */
#ifndef POSTERN_STORE_H
#define POSTERN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/attrs.h"

enum store_rc {
	STORE_OK = 0,
	STORE_TEMP = -1,	/* I/O error, try later: [SYS/TEMP] */
	STORE_PERM = -2,	/* broken mailbox: [SYS/PERM] */
	STORE_IN_USE = -3,	/* lock_session and another session: [IN-USE] */
	STORE_GONE = -4,	/* the message was removed by someone else */
};

#define MSG_WIRE_CLEAN	0x1u	/* stored bytes are the exact wire form */

struct msg_info {
	const char	*uidl;		/* 1..70 octets in 0x21..0x7e */
	const char	*name;		/* path relative to the mailbox dir */
	uint64_t	 size;		/* wire size (CRLF, before stuffing) */
	uint64_t	 stored_size;	/* octets in the file */
	int64_t		 retr_time;	/* first RETR (unix time), or 0 */
	unsigned int	 flags;		/* MSG_* */
};

struct mailbox_opts {
	bool	lock_session;	/* hold an exclusive lock until close */
	bool	create;		/* create the Maildir if it is missing */
};

struct mailbox;

/*
 * Opens the Maildir at path: takes mail from new/ into cur/, removes
 * stale tmp/ files, reconciles the index with the files (rebuilding it
 * if missing or corrupt, never changing a UIDL it already holds) and
 * returns the snapshot.  On error, writes a one-line reason to err (for
 * the log, not for the client).
 */
enum store_rc mailbox_open(const char *path, const struct mailbox_opts *,
    struct mailbox **mb_r, char *err, size_t errsize) ATTR_WARN_UNUSED;

uint32_t mailbox_count(const struct mailbox *);
const struct msg_info *mailbox_msg(const struct mailbox *, uint32_t idx);

/*
 * Opens message idx for reading; *fd_r is positioned at 0.  STORE_GONE
 * if the file was removed or changed size since the snapshot.
 */
enum store_rc mailbox_msg_open(struct mailbox *, uint32_t idx, int *fd_r)
    ATTR_WARN_UNUSED;

/*
 * The UPDATE state: removes the messages with deleted[idx] set, records
 * now as the first-retrieval time of messages with retrieved[idx] set
 * (unless they have one), and with expire_days >= 0 also removes
 * messages first retrieved more than expire_days days ago (0: those
 * retrieved in this session).  Each removal is an unlink followed by an
 * fsync of the directory; then the index is rewritten atomically.
 * *removed_r gets the count of messages removed.  A message already gone
 * counts as removed.
 */
enum store_rc mailbox_commit(struct mailbox *, const bool *deleted,
    const bool *retrieved, int64_t expire_days, time_t now,
    uint32_t *removed_r, char *err, size_t errsize) ATTR_WARN_UNUSED;

/* Releases the snapshot and the session lock. */
void	mailbox_close(struct mailbox **);

/*
 * Last-login bookkeeping for LOGIN-DELAY: returns the time of the
 * previous login (0 if none) and records now.  Both through a small file
 * in the mailbox directory, written atomically.
 */
enum store_rc mailbox_login_stamp(const char *path, time_t now,
    time_t *previous_r) ATTR_WARN_UNUSED;

/* The time recorded by the last mailbox_login_stamp (0 if none),
 * without recording anything. */
enum store_rc mailbox_last_login(const char *path, time_t *previous_r)
    ATTR_WARN_UNUSED;

#endif
