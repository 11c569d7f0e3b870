/*
 * linebuf.c: bounded line reading.  Trusts nothing in the input.
 */
#include <string.h>

#include <event2/buffer.h>

#include "linebuf.h"

void
linebuf_init(struct linebuf *lb, size_t max)
{
	lb->max = max;
	lb->discarding = false;
}

enum line_rc
linebuf_scan(struct linebuf *lb, const uint8_t *data, size_t len,
    size_t *line_len_r, size_t *consumed_r)
{
	const uint8_t *lf;
	size_t n, look;

	*line_len_r = 0;
	*consumed_r = 0;
	if (lb->discarding) {
		lf = memchr(data, '\n', len);
		if (lf == NULL) {
			*consumed_r = len;
			return LINE_MORE;
		}
		lb->discarding = false;
		*consumed_r = (size_t)(lf - data) + 1;
		return LINE_MORE;
	}
	/* A line of max octets may carry CR LF after it. */
	look = len < lb->max + 2 ? len : lb->max + 2;
	lf = memchr(data, '\n', look);
	if (lf == NULL) {
		if (len <= lb->max + 1)
			return LINE_MORE;	/* could still fit */
		/* max + 2 octets and no LF: overlong.  Drop them. */
		lb->discarding = true;
		*consumed_r = look;
		return LINE_TOO_LONG;
	}
	n = (size_t)(lf - data);
	*consumed_r = n + 1;
	if (n > 0 && data[n - 1] == '\r')
		n--;
	if (n > lb->max)
		return LINE_TOO_LONG;
	if (memchr(data, '\0', n) != NULL)
		return LINE_HAS_NUL;
	*line_len_r = n;
	return LINE_OK;
}

enum line_rc
linebuf_next(struct linebuf *lb, struct evbuffer *in, char *out,
    size_t outsize, size_t *len_r)
{
	for (;;) {
		size_t avail = evbuffer_get_length(in);
		size_t want, line_len, consumed;
		const uint8_t *p;
		enum line_rc rc;

		if (avail == 0)
			return LINE_MORE;
		want = lb->discarding ? avail :
		    (avail < lb->max + 2 ? avail : lb->max + 2);
		if (lb->discarding) {
			/* Search in place, chunk by chunk. */
			struct evbuffer_ptr pos = evbuffer_search(in, "\n", 1,
			    NULL);

			if (pos.pos < 0) {
				evbuffer_drain(in, avail);
				return LINE_MORE;
			}
			evbuffer_drain(in, (size_t)pos.pos + 1);
			lb->discarding = false;
			continue;
		}
		p = evbuffer_pullup(in, (ev_ssize_t)want);
		if (p == NULL)
			return LINE_MORE;
		rc = linebuf_scan(lb, p, want, &line_len, &consumed);
		if (rc == LINE_OK) {
			if (line_len >= outsize) {
				evbuffer_drain(in, consumed);
				return LINE_TOO_LONG;
			}
			memcpy(out, p, line_len);
			out[line_len] = '\0';
			*len_r = line_len;
		}
		evbuffer_drain(in, consumed);
		if (rc == LINE_MORE && consumed == 0)
			return LINE_MORE;
		if (rc != LINE_MORE)
			return rc;
	}
}
