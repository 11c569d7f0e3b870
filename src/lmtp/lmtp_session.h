/*
 * lmtp_session.h: one LMTP session (RFC 2033) as a state machine
 * without I/O: it takes lines from the bounded line reader and answers
 * through a small table of operations, so that the lmtp process and the
 * fuzz target drive the same code.
 *
 * The session knows nothing of sockets, the user database or the store:
 *	reply		queues reply text (whole lines, CRLF included)
 *	lookup		looks recipient names up (asynchronously: the answer
 *			comes back through lmtp_rcpt_answer; until then the
 *			session is waiting and must not be fed)
 *	spool_*		the private copy of the message being received
 *			(spool_end, optional: the transaction is over, the
 *			spool's space may be given back)
 *	deliver		stores the spooled message for one recipient
 *	over_quota	(optional) whether a message of size octets would
 *			exceed a recipient's quota, for RCPT after SIZE=
 */
#ifndef POSTERN_LMTP_SESSION_H
#define POSTERN_LMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/attrs.h"
#include "lib/limits.h"
#include "lib/linebuf.h"

/* At most this many names are tried for one recipient (see
 * lmtp_candidates). */
#define LMTP_MAX_CANDIDATES	3

/* The spool is written in chunks of this size. */
#define LMTP_SPOOL_CHUNK	(64 * 1024)

enum lmtp_state {
	LMTP_S_START,		/* greeted, waiting for LHLO */
	LMTP_S_READY,		/* after LHLO, no transaction */
	LMTP_S_MAIL,		/* MAIL FROM given, RCPT TO may follow */
	LMTP_S_DATA,		/* receiving the message */
	LMTP_S_QUIT,		/* QUIT answered, or closed on errors */
};

/* The answer to a recipient lookup. */
enum lmtp_user {
	LMTP_USER_OK = 0,
	LMTP_USER_UNKNOWN = 1,
	LMTP_USER_DISABLED = 2,
	LMTP_USER_TEMPFAIL = 3,
};
#define LMTP_USER_MAX	LMTP_USER_TEMPFAIL

/* The outcome of storing the message for one recipient. */
enum lmtp_result {
	LMTP_R_OK,		/* on disk: 250 */
	LMTP_R_TEMP,		/* disk full, I/O: 451 4.3.0 */
	LMTP_R_TOO_BIG,		/* the store's size limit: 552 5.3.4 */
	LMTP_R_QUOTA,		/* 552 5.2.2, or 452 4.2.2 */
};

struct lmtp_rcpt {
	char		*addr;		/* as given between < >; owned */
	char		 user[MAX_USERNAME_LEN + 1];	/* the user found */
	uint64_t	 quota_bytes;	/* in force: 0 unlimited */
	uint64_t	 quota_messages;
};

struct lmtp_params {
	const char	*hostname;
	uint64_t	 max_size;	/* octets of a message (SIZE) */
	unsigned int	 max_recipients;
	unsigned int	 max_bad_commands;	/* then 421 and close */
	unsigned int	 max_line_length;	/* a text line in DATA */
	bool		 quota_temporary;
	char		 delimiter;	/* recipient detail, or '\0' */
	uint64_t	 site_quota_bytes;	/* 0: unlimited */
	uint64_t	 site_quota_messages;
};

struct lmtp_session;

struct lmtp_ops {
	void	(*reply)(void *ctx, const char *text, size_t len);
	/* Starts the lookup of names[0..n), tried in that order; 0, or
	 * -1 if no lookup can be made now (a temporary failure).  May
	 * answer before it returns. */
	int	(*lookup)(void *ctx, const char *const *names, size_t n);
	/* A new, empty spool; 0 or -1. */
	int	(*spool_begin)(void *ctx);
	/* Appends to the spool; 0 or -1. */
	int	(*spool_write)(void *ctx, const void *data, size_t len);
	/* The message was answered (or dropped); may be NULL. */
	void	(*spool_end)(void *ctx);
	enum lmtp_result (*deliver)(void *ctx, const struct lmtp_session *,
		    const struct lmtp_rcpt *);
	bool	(*over_quota)(void *ctx, const struct lmtp_rcpt *,
		    uint64_t size);
};

/*
 * The session, after the greeting was queued.  p, ops and ctx must
 * outlive it.  NULL on ENOMEM.
 */
struct lmtp_session *lmtp_session_new(const struct lmtp_params *p,
    const struct lmtp_ops *ops, void *ctx);
void	lmtp_session_free(struct lmtp_session **);

/* Feeds one result of the line reader: LINE_OK with the line (no CRLF,
 * len octets), LINE_TOO_LONG or LINE_HAS_NUL. */
void	lmtp_session_line(struct lmtp_session *, enum line_rc,
	    const char *line, size_t len);
/* The answer to the lookup in progress; user is the name found. */
void	lmtp_rcpt_answer(struct lmtp_session *, enum lmtp_user,
	    const char *user, uint64_t quota_bytes, uint64_t quota_messages);
/* A lookup is in progress: feed nothing until it is answered. */
bool	lmtp_session_waiting(const struct lmtp_session *);
/* QUIT was answered (or the session gave up): close once the replies
 * are sent. */
bool	lmtp_session_done(const struct lmtp_session *);
/* Receiving a message: the lines are text lines (the longer limit). */
bool	lmtp_session_in_data(const struct lmtp_session *);
/* Ends the session with a 421 (shutdown, idle timeout). */
void	lmtp_session_abort(struct lmtp_session *, const char *why);

/* The envelope of the transaction, for the deliver operation. */
const char *lmtp_session_sender(const struct lmtp_session *);
/* The size the message has in the spool (CRLF line ends). */
uint64_t lmtp_session_size(const struct lmtp_session *);

/*
 * The user names a recipient address may be, in the order to try
 * (postern.conf(5), lmtp_recipient_delimiter): the address with its
 * domain lowercased, then the local part, then the local part
 * lowercased; a detail after the delimiter is removed from the local
 * part first.  Names longer than MAX_USERNAME_LEN and repeats are left
 * out.  Returns the count; buf holds the strings.
 */
size_t	lmtp_candidates(const char *addr, char delimiter,
	    char buf[LMTP_MAX_CANDIDATES][MAX_USERNAME_LEN + 1]);

#endif
