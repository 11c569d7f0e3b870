/*
 * mbox_parse.h: the mboxrd format without a file system: the scanner
 * that finds messages in a stream of mbox octets, the quoting of a
 * message for appending, and the mbox index file (its parser and
 * serializer).  Internal to src/store; unit tests and the fuzz target
 * call it directly.
 *
 * mboxrd, as read here: a message starts with a "From " line at the
 * start of the file or after an empty line (LF, or CR LF); that From_
 * line is not part of the message.  The empty line just before the next
 * From_ line, or at the end of the file, is the separator and not part
 * of the message either.  Inside a message, a line matching ^>+From  is
 * quoted: reading removes one '>' (pop3/wire.h, wire_enc_mboxrd), and
 * appending adds one to every line matching ^>*From .  Content-Length
 * headers are never read.
 */
#ifndef POSTERN_STORE_MBOX_PARSE_H
#define POSTERN_STORE_MBOX_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/attrs.h"
#include "lib/limits.h"
#include "pop3/wire.h"

struct buf;

/* Octets of a line's start kept for the From_ test and the X-UIDL
 * header ("X-UIDL:", blanks, 70 octets of UIDL, CR). */
#define MBOX_HEAD_MAX		128

/* One message found by the scanner. */
struct mbox_found {
	uint64_t	from_off;	/* offset of its From_ line */
	uint64_t	from_len;	/* octets of that line, without LF */
	uint64_t	from_hash;	/* FNV-1a 64 of those octets */
	uint64_t	data_off;	/* offset of the first message octet */
	uint64_t	stored;		/* message octets, still quoted */
	uint64_t	wire;		/* wire size, unquoted (pop3/wire.h) */
	uint64_t	head_hash;	/* FNV-1a 64 of the header lines */
	char		xuidl[UIDL_MAX_LEN + 1];	/* X-UIDL or "" */
};

/* Called for each message in file order; a -1 return stops the scan. */
typedef int mbox_found_fn(void *arg, const struct mbox_found *);

struct mbox_scan {
	uint64_t	off;		/* file offset of the next octet */
	uint64_t	line_off;	/* offset of the current line */
	uint64_t	line_len;	/* octets of it so far, without LF */
	uint8_t		head[MBOX_HEAD_MAX];
	size_t		head_len;	/* octets of the line start kept */
	bool		bol;		/* the next octet starts a line */
	bool		decided;	/* the line is known From_ or not */
	bool		is_from;	/* it is a From_ line */
	bool		first;		/* no line seen yet */
	bool		prev_blank;	/* the last complete line was empty */
	uint8_t		held_len;	/* that empty line, held back: 1 or 2 */
	bool		in_msg;		/* a message is open */
	bool		in_header;	/* before its first empty line */
	bool		garbage;	/* octets before the first From_ line */
	bool		tail_ok;	/* after finish: a From_ line appended
					 * at the end starts a new message */
	struct wire_enc	 enc;
	struct mbox_found cur;
};

/*
 * Starts a scan at file offset start.  The first line is taken as if an
 * empty line came before it: start is 0 or the end of a file whose scan
 * ended with tail_ok.
 */
void	mbox_scan_init(struct mbox_scan *, uint64_t start);
/* 0, or -1 if found returned -1. */
int	mbox_scan_feed(struct mbox_scan *, const uint8_t *data, size_t len,
	    mbox_found_fn *found, void *arg) ATTR_WARN_UNUSED;
/* At the end of the file: the last message.  0 or -1 as above. */
int	mbox_scan_finish(struct mbox_scan *, mbox_found_fn *found, void *arg)
	    ATTR_WARN_UNUSED;

/*
 * Quoting for appending: feeds message octets and writes the mboxrd form
 * (one more '>' on every line matching ^>*From ) to out, holding back at
 * most four octets between calls.  finish writes what is held.  The
 * caller adds the From_ line before and the end of line and empty
 * separator line after.
 */
struct mbox_quote {
	bool		bol;
	uint8_t		held;		/* octets of "From" matched */
};

void	mbox_quote_init(struct mbox_quote *);
int	mbox_quote_feed(struct mbox_quote *, const uint8_t *data, size_t len,
	    struct buf *out) ATTR_WARN_UNUSED;
int	mbox_quote_finish(struct mbox_quote *, struct buf *out)
	    ATTR_WARN_UNUSED;

/* ---- the index file ---- */

#define MBOX_PREFIX_LEN		16	/* hex digits of the UIDL prefix */
/* A From_ line longer than this is not rechecked (it is still hashed). */
#define MBOX_FROM_CHECK_MAX	4096

struct mbox_entry {
	uint64_t	from_off;
	uint64_t	from_len;
	uint64_t	from_hash;
	uint64_t	data_off;
	uint64_t	stored;
	uint64_t	wire;
	uint64_t	head_hash;
	int64_t		retr_time;	/* first RETR, or 0 */
	char		*uidl;		/* owned */
};

struct mbox_index {
	struct mbox_entry *v;		/* owned, in file order */
	size_t		 n;
	size_t		 cap;
	/* The mbox file the entries describe. */
	uint64_t	 dev;
	uint64_t	 ino;
	uint64_t	 size;
	int64_t		 mtime_sec;
	long		 mtime_nsec;
	bool		 tail_ok;	/* mbox_scan.tail_ok at its end */
	/* New UIDLs: <prefix>.<n> with n = next_uid, next_uid + 1, ... */
	char		 prefix[MBOX_PREFIX_LEN + 1];
	uint64_t	 next_uid;
};

void	mbox_index_init(struct mbox_index *);
void	mbox_index_free(struct mbox_index *);
/* Takes uidl (malloc'd, may be NULL until assigned).  0 or -1. */
int	mbox_index_append(struct mbox_index *, const struct mbox_found *,
	    int64_t retr_time, char *uidl) ATTR_WARN_UNUSED;

/*
 * Parses an index file; any fault returns -1 with a one-line reason in
 * err and leaves idx empty.  Checks every number, the order and bounds
 * of the offsets, the UIDLs (valid, unique) and the checksum.
 */
int	mbox_index_parse(const char *data, size_t len, struct mbox_index *idx,
	    char *err, size_t errsize) ATTR_WARN_UNUSED;
/* 0, or -1 with errno (EINVAL for an entry without a valid UIDL). */
int	mbox_index_serialize(const struct mbox_index *, struct buf *out)
	    ATTR_WARN_UNUSED;

#endif
