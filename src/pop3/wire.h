/*
 * wire.h: stored message bytes to POP3 wire form (RFC 1939 section 3).
 *
 * The stored form may end lines with LF or CRLF and may lack a final
 * newline.  The wire form is defined as: split the stored bytes at each
 * LF; drop one CR just before each LF; send every line followed by CRLF;
 * a last line without LF is sent followed by CRLF if it is non-empty; an
 * empty message is zero octets.  A CR that is not just before an LF is
 * an ordinary octet.  Every line that starts with '.' gets one more '.'
 * in front (byte-stuffing) when stuffing is on.
 *
 * The size of a message (STAT, LIST) is the number of wire octets before
 * byte-stuffing; wire_enc counts exactly that in octets, so that size and
 * RETR come from one piece of code and cannot disagree.
 *
 * TOP n: the header lines, the empty line that ends them, then at most n
 * body lines.  A message without an empty line is all header.
 */
#ifndef POSTERN_WIRE_H
#define POSTERN_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define WIRE_ALL_LINES	UINT64_MAX

struct wire_enc {
	uint64_t	octets;		/* wire octets so far, stuffing excluded */
	uint64_t	body_lines_left;	/* TOP budget, or WIRE_ALL_LINES */
	bool		stuff;		/* byte-stuff lines starting with '.' */
	bool		bol;		/* at the start of a stored line */
	bool		pending_cr;	/* a CR was the last octet seen */
	bool		line_empty;	/* the current line has no octets yet */
	bool		in_body;	/* the header/body empty line was seen */
	bool		done;		/* TOP budget used: ignore further input */
	bool		all_clean;	/* so far stored bytes == wire bytes */
	bool		mboxrd;		/* unquote ">From " lines (mboxrd) */
	uint8_t		quote;		/* mboxrd match held back: 0 none,
					 * 1 one '>', 2..5 and "From"[0..n) */
};

void	wire_enc_init(struct wire_enc *, bool stuff, uint64_t top_lines);

/*
 * After wire_enc_init: the stored bytes are an mboxrd message body, in
 * which a line matching ^>+From  carries one '>' of quoting that is not
 * part of the message.  The encoder drops that one '>' (sizes count the
 * unquoted form).  Lines ^From  are left as they are.
 */
void	wire_enc_mboxrd(struct wire_enc *);

/* Converts in[0..len) and appends the wire octets to out (out may be
 * NULL to count only).  0, or -1 if out could not grow. */
int	wire_enc_feed(struct wire_enc *, const uint8_t *in, size_t len,
	    struct evbuffer *out);

/* At end of input: completes a last line that lacks its LF.  0 or -1. */
int	wire_enc_finish(struct wire_enc *, struct evbuffer *out);

/* True once a TOP budget is used up: the caller may stop reading. */
bool	wire_enc_done(const struct wire_enc *);

/*
 * Whole-buffer helpers.  wire_size returns the wire size of a stored
 * message; *clean_r (may be NULL) says whether the stored bytes already
 * are the exact wire form with no line needing a stuffed '.', so that
 * they can be sent as they are (sendfile).
 */
uint64_t wire_size(const uint8_t *in, size_t len, bool *clean_r);

/* The same over a file descriptor, read from offset 0 to EOF in chunks.
 * 0, or -1 with errno set; *stored_r gets the stored octets read. */
int	wire_size_fd(int fd, uint64_t *size_r, uint64_t *stored_r,
	    bool *clean_r);

/*
 * Stored bytes that are the wire form before byte-stuffing (every LF
 * follows a CR, and the last line ends with CRLF) can go out as they are
 * apart from the stuffing: the kernel sends the runs between the lines
 * that start with '.', and a '.' is put before each of those lines.
 * wire_dots checks stored bytes, fed in chunks of any size, for that
 * form and collects the offsets of the lines that start with '.', in
 * order, into dots[0..max).
 */
struct wire_dots {
	uint64_t	 off;		/* stored octets fed so far */
	uint64_t	*dots;
	size_t		 max;
	size_t		 n;		/* offsets in dots */
	bool		 bol;		/* the next octet starts a line */
	bool		 cr;		/* the last octet fed was a CR */
	bool		 bad;		/* not that form, or over max */
};

void	wire_dots_init(struct wire_dots *, uint64_t *dots, size_t max);
void	wire_dots_feed(struct wire_dots *, const uint8_t *in, size_t len);

/* At the end of the input: how many lines start with '.', or -1 when the
 * bytes are not in that form or more than max lines start with '.'.  An
 * empty input has no lines: 0. */
long	wire_dots_end(const struct wire_dots *);

/* The same over one buffer. */
long	wire_dot_lines(const uint8_t *in, size_t len, uint64_t *dots,
	    size_t max);

#endif
