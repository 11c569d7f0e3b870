/*
 * linebuf.h: the one bounded line reader.
 *
 * Lines end with LF; one CR just before the LF is removed.  A bare CR is
 * not a line end.  A line longer than max octets (terminator excluded) is
 * reported once as LINE_TOO_LONG as soon as max is exceeded, and the rest
 * of it is discarded up to and including its LF, so input that never
 * sends LF cannot grow any buffer.  A line holding a NUL is reported as
 * LINE_HAS_NUL and consumed.
 */
#ifndef POSTERN_LINEBUF_H
#define POSTERN_LINEBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum line_rc {
	LINE_OK = 1,
	LINE_MORE = 0,
	LINE_TOO_LONG = -1,
	LINE_HAS_NUL = -2,
};

struct linebuf {
	size_t	max;		/* longest line accepted, without CRLF */
	bool	discarding;	/* inside an overlong line, waiting for LF */
};

void	linebuf_init(struct linebuf *, size_t max);

/*
 * Looks at [data, data + len).  Always sets *consumed_r to the number of
 * octets the caller must drop from its input.  On LINE_OK the line is
 * data[0 .. *line_len_r) (no terminator, not NUL-terminated).  On
 * LINE_MORE nothing is consumed unless an overlong line is being
 * discarded.
 */
enum line_rc linebuf_scan(struct linebuf *, const uint8_t *data, size_t len,
    size_t *line_len_r, size_t *consumed_r);

/*
 * The same on an evbuffer: on LINE_OK copies the line into out
 * (NUL-terminated, outsize must exceed max) and drains it with its
 * terminator.
 */
enum line_rc linebuf_next(struct linebuf *, struct evbuffer *in, char *out,
    size_t outsize, size_t *len_r);

#endif
