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
	STORE_TOO_BIG = -5,	/* delivery: over its size limit, or the
				 * file size limit (EFBIG) */
};

#define MSG_WIRE_CLEAN	0x1u	/* stored bytes are the exact wire form */
#define MSG_MBOXRD	0x2u	/* stored bytes are mboxrd-quoted: read them
				 * through wire_enc_mboxrd (pop3/wire.h) */

struct msg_info {
	const char	*uidl;		/* 1..70 octets in 0x21..0x7e */
	const char	*name;		/* path relative to the mailbox dir
					 * (mbox: the mbox file's name) */
	uint64_t	 size;		/* wire size (CRLF, before stuffing) */
	uint64_t	 stored_size;	/* octets in the file */
	int64_t		 retr_time;	/* first RETR (unix time), or 0 */
	unsigned int	 flags;		/* MSG_* */
};

struct mailbox_opts {
	bool	lock_session;	/* hold an exclusive lock until close */
	bool	create;		/* create the Maildir if it is missing */
	/* The UIDL guard (postern.conf(5)); 0: the defaults of limits.h. */
	unsigned int uidl_guard_share;	/* percent of the messages */
	unsigned int uidl_guard_min;	/* messages */
};

struct mailbox;

/*
 * Mailbox locations.  Every function below that takes a path takes the
 * string config_mailbox_path() returns: "mbox:FILE" is the mbox file
 * FILE (mboxrd, mbox.c), "maildir:DIR" the Maildir DIR, and a path
 * without either prefix is an mbox if it names an existing regular file
 * and a Maildir otherwise.
 *
 * The mbox lock (fcntl and FILE.lock) waits at most lock_timeout_ms and
 * breaks a dotlock whose mtime is more than dotlock_stale_s old; both
 * come from postern.conf (mbox_lock_timeout, mbox_dotlock_stale), and
 * every program that opens mailboxes sets them once before.  Without a
 * call, the defaults of limits.h apply.
 */
void	store_set_mbox_limits(uint64_t lock_timeout_ms,
	    uint64_t dotlock_stale_s);

/*
 * Lets this process keep parsed index files of big Maildirs for later
 * opens, within bytes octets (index_cache_size in postern.conf); 0, the
 * default, keeps none.  A kept index is used only while its file is
 * unchanged, so what an open returns is the same either way.
 */
void	store_set_index_cache(uint64_t bytes);

/*
 * Opens the Maildir at path: takes mail from new/ into cur/, removes
 * stale tmp/ files, reconciles the index with the files (rebuilding it
 * if missing or corrupt, never changing a UIDL it already holds, giving
 * new entries the UIDL postern.uidls records for them, else their
 * name's; the UIDL guard of opts logs when many change at once) and
 * returns the snapshot.  An mbox is read under its lock, indexed
 * (mbox.c) and unlocked again unless lock_session is set; a missing mbox
 * file is an empty mailbox.  STORE_IN_USE: the lock_session lock, or the
 * mbox lock within the timeout, is held by another.  On error, writes a
 * one-line reason to err (for the log, not for the client).
 */
enum store_rc mailbox_open(const char *path, const struct mailbox_opts *,
    struct mailbox **mb_r, char *err, size_t errsize) ATTR_WARN_UNUSED;

uint32_t mailbox_count(const struct mailbox *);
const struct msg_info *mailbox_msg(const struct mailbox *, uint32_t idx);

/*
 * Opens message idx for reading; *fd_r is positioned at the message's
 * first octet (0 in a Maildir), and the message is the stored_size
 * octets from there.  STORE_GONE if the file was removed or changed
 * size since the snapshot (mbox: if the mbox was cut or rewritten in
 * place by another program).
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

/*
 * Delivery into a Maildir (the storage invariant 1 of doc/design.md);
 * into an mbox, see mbox_deliver_* in mbox.c: the same calls lock the
 * mbox, append "From SENDER DATE", the mboxrd-quoted message and an empty
 * line, fsync, and on any error cut the file back to its old length;
 * info_r->name is then the new message's UIDL.
 *
 *	mailbox_deliver_begin	creates the Maildir (tmp/ new/ cur/, mode
 *				0700, each new directory fsync'd into its
 *				parent) if it is missing, and a file in tmp/
 *				under a unique name:
 *				<sec>.M<usec>P<pid>Q<n>R<random>.<host>
 *	mailbox_deliver_write	appends octets, as they are (LF or CRLF)
 *	mailbox_deliver_commit	completes a last line without LF (with
 *				CRLF if the message's first line ended so or
 *				the last octet is CR, else LF: the wire form
 *				stays the same), fsyncs and closes the file,
 *				renames it (never replacing) to
 *				new/<base>,S=<stored>,W=<wire>, fsyncs new/,
 *				and only then returns STORE_OK.
 *
 * S= and W= record the stored and the wire size (pop3/wire.h), so that
 * the first session sizes the message from its name instead of reading
 * it.  The base name is the message's UIDL (or its hash) for good.
 *
 * max_size bounds the octets given to write (the newline commit may add
 * is not counted): one more is STORE_TOO_BIG.  Any error (ENOSPC, EIO,
 * the limit, EFBIG from RLIMIT_FSIZE, which the caller should see as an
 * error rather than SIGXFSZ) removes the tmp/ file; after an error from
 * write only mailbox_deliver_abort may follow.  commit and abort free the
 * delivery and set *dp to NULL; abort accepts NULL.  If fsync of new/
 * fails after the rename, the file is unlinked again, so that on any
 * error nothing is visible in new/ or cur/ (a session that moved it to
 * cur/ in that instant may keep it: the sender's retry then gives a
 * duplicate, never a loss).  Errors carry a one-line reason in err.
 */
struct delivery;

struct delivery_info {
	uint64_t	 size;		/* wire size: what LIST says */
	uint64_t	 stored_size;	/* octets in the file */
	char		 name[256];	/* file name in new/ */
};

enum store_rc mailbox_deliver_begin(const char *path, uint64_t max_size,
    struct delivery **d_r, char *err, size_t errsize) ATTR_WARN_UNUSED;
enum store_rc mailbox_deliver_write(struct delivery *, const void *data,
    size_t len, char *err, size_t errsize) ATTR_WARN_UNUSED;
enum store_rc mailbox_deliver_commit(struct delivery **,
    struct delivery_info *info_r, char *err, size_t errsize)
    ATTR_WARN_UNUSED;
void	mailbox_deliver_abort(struct delivery **);

/*
 * The envelope sender for the From_ line of an mbox delivery (ignored
 * for a Maildir); without a call, or with NULL, "MAILER-DAEMON".  Only
 * before the first mailbox_deliver_write.  Octets outside 0x21..0x7e
 * are written as '_'; at most DELIVER_MAX_SENDER_LEN are kept.
 */
void	mailbox_deliver_set_sender(struct delivery *, const char *sender);

/*
 * All of it in one call: head (headlen octets, may be 0), then
 * everything read from fd until EOF, into the mailbox at path.  A read
 * error is STORE_TEMP.  info_r may be NULL.
 */
enum store_rc mailbox_deliver(const char *path, const void *head,
    size_t headlen, int fd, uint64_t max_size, struct delivery_info *info_r,
    char *err, size_t errsize) ATTR_WARN_UNUSED;

/* The rest of a begun delivery: everything read from fd until EOF, then
 * the commit; on any error the delivery is aborted.  *dp is NULL
 * afterwards. */
enum store_rc mailbox_deliver_fd(struct delivery **dp, int fd,
    struct delivery_info *info_r, char *err, size_t errsize)
    ATTR_WARN_UNUSED;

/*
 * What the mailbox at path holds, for quotas: *bytes_r the sum of the
 * wire sizes (what LIST says) and *count_r the number of messages in
 * new/ and cur/.  Cheap: sizes come from the index or the S=/W= fields
 * of the file names, and only a file that has neither is stat(2)ed (its
 * stored size then counts).  A missing mailbox is 0 and 0.  Takes no
 * lock and changes nothing: a delivery or a session running at the same
 * time may make the answer one message off.  STORE_TEMP with err set if
 * a directory cannot be read.
 */
enum store_rc mailbox_usage(const char *path, uint64_t *bytes_r,
    uint32_t *count_r, char *err, size_t errsize) ATTR_WARN_UNUSED;

/*
 * Importing the UIDLs another server showed (postern migrate-uidl), so
 * that clients see the same UIDL for the same message.  Each record
 * names a message by its Maildir base name (the file name up to the
 * first ':', as Dovecot and Courier match it) and gives its UIDL.
 * mailbox_import_uidls sets every record's status:
 *
 *	IMPORT_DONE		imported
 *	IMPORT_ALREADY		the message shows this UIDL already
 *	IMPORT_NO_FILE		no file in cur/ or new/ has this base name
 *	IMPORT_INVALID		not 1..70 octets in 0x21..0x7e (RFC 1939)
 *	IMPORT_DUPLICATE	another record gives the same UIDL: neither
 *				is imported
 *	IMPORT_DUPLICATE_FILE	a second record for the same file
 *	IMPORT_COLLISION	another message keeps this UIDL
 *	IMPORT_CONFLICT		the index or the map holds another UIDL for
 *				the message, which posternd may have shown
 *				(storage invariant 3): only IMPORT_FORCE
 *				replaces it
 *
 * The imported UIDLs that the base name would not give are recorded in
 * postern.uidls (index.h), written atomically under the index lock
 * before the index, so that a lost or rebuilt index gives them again;
 * records of files that are gone leave it.  Then new/ is moved to cur/
 * and the index is brought up to date, as mailbox_open does.  With
 * IMPORT_DRY_RUN only the statuses are set: nothing is written, no lock
 * taken.  STORE_PERM: no such Maildir, or a damaged postern.uidls;
 * STORE_TEMP: I/O errors.  err gets a one-line reason.
 */
enum uidl_import_status {
	IMPORT_PENDING = 0,
	IMPORT_DONE,
	IMPORT_ALREADY,
	IMPORT_NO_FILE,
	IMPORT_INVALID,
	IMPORT_DUPLICATE,
	IMPORT_DUPLICATE_FILE,
	IMPORT_COLLISION,
	IMPORT_CONFLICT,
};

struct uidl_import {
	char			*base;	/* the caller's; NUL-terminated */
	char			*uidl;	/* the caller's; may be invalid */
	enum uidl_import_status	 status;
};

#define IMPORT_DRY_RUN	0x1u
#define IMPORT_FORCE	0x2u

enum store_rc mailbox_import_uidls(const char *path, struct uidl_import *v,
    size_t n, unsigned int flags, char *err, size_t errsize)
    ATTR_WARN_UNUSED;

/* A few words for a status, for reports. */
const char *uidl_import_status_text(enum uidl_import_status);

#endif
