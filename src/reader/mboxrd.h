/*
 * mboxrd.h: reading and writing mbox files in the mboxrd form: each
 * message starts with a "From " line (the From_ line), every line of a
 * message that matches ^>*From  gets one more '>' when written and one
 * less when read, and a blank line ends each message.  Reading never
 * writes to the mbox; it holds a shared fcntl lock meanwhile.
 */
#ifndef POSTERN_READER_MBOXRD_H
#define POSTERN_READER_MBOXRD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/attrs.h"
#include "reader/reader_limits.h"

struct buf;

struct mbox_msg {
	off_t		 from_off;	/* of its From_ line */
	off_t		 off;		/* of its first octet */
	uint64_t	 len;		/* stored (quoted) octets */
	char		 from_line[READER_MBOX_FROM_LINE + 1];
};

/* Takes a shared fcntl lock on the whole of fd, waiting up to
 * READER_MBOX_LOCK_TIMEOUT_MS for a writer.  0 or -1 (errno). */
int	mbox_lock_shared(int fd) ATTR_WARN_UNUSED;

/*
 * Finds the messages of the mbox open at fd (read from offset 0): at
 * most max, else an error.  An empty file has none; a file that does
 * not start with "From " is not an mbox.  *msgs (free() it) and
 * *count; 0, or -1 with a reason in err.
 */
int	mbox_scan(int fd, size_t max, struct mbox_msg **msgs, size_t *count,
	    char *err, size_t errsize) ATTR_WARN_UNUSED;

/* The mboxrd quoting (quote: add one '>' to ^>*From  lines) or
 * unquoting (remove one), as a stream transducer that keeps no line. */
struct mboxrd_filter {
	bool		 quote;
	int		 state;
	size_t		 quotes;	/* '>' at the line's start */
	size_t		 matched;	/* octets of "From " matched */
};

void	mboxrd_filter_init(struct mboxrd_filter *, bool quote);
/* Appends the transformed in[0..len) to out.  0 or -1 (out's ceiling,
 * which must allow 2 * len + 8 plus the '>'s of the line pending). */
int	mboxrd_filter_run(struct mboxrd_filter *, const char *in, size_t len,
	    struct buf *out) ATTR_WARN_UNUSED;
/* Flushes what is pending at the end of the input. */
int	mboxrd_filter_end(struct mboxrd_filter *, struct buf *out)
	    ATTR_WARN_UNUSED;

/* Writes message m of the mbox at fd, unquoted, to outfd.  0 or -1
 * (errno). */
int	mbox_spool(int fd, const struct mbox_msg *m, int outfd)
	    ATTR_WARN_UNUSED;

/* Appends one message to outfd in mboxrd form: from_line (without its
 * LF, must start with "From "), then len octets of infd from its
 * offset 0, quoted, a LF if they did not end with one, and the blank
 * line that ends the message.  0 or -1 (errno). */
int	mbox_write_message(int outfd, const char *from_line, int infd,
	    uint64_t len) ATTR_WARN_UNUSED;

#endif
