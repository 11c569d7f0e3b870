/*
 * wire.c: the one encoder from stored message bytes to the POP3 wire form
 * (RFC 1939 section 3), used for RETR, TOP and for the sizes of STAT and
 * LIST, so that a size and the octets sent cannot disagree.
 *
 * Owns: nothing beyond the caller's struct wire_enc.  Trusts nothing in
 * the input: any octet sequence is a valid stored message.
 *
 * The encoder copies runs of octets that need no change (lines already
 * ending in CRLF and not starting with '.') in one memcpy, and only
 * breaks a run where the wire form differs from the stored form: a bare
 * LF, a stuffed '.', a CR held back at the end of a chunk, or the end of
 * a TOP budget.  LF is found with memchr, never byte by byte.  A chunk
 * is encoded straight into space reserved in the output evbuffer, sized
 * for the worst case (every octet doubled), and committed once: one
 * buffer operation a chunk, not two a line.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "lib/limits.h"
#include "pop3/wire.h"

void
wire_enc_init(struct wire_enc *e, bool stuff, uint64_t top_lines)
{
	e->octets = 0;
	e->body_lines_left = top_lines;
	e->stuff = stuff;
	e->bol = true;
	e->pending_cr = false;
	e->line_empty = true;
	e->in_body = false;
	e->done = false;
	e->all_clean = true;
	e->mboxrd = false;
	e->quote = 0;
}

void
wire_enc_mboxrd(struct wire_enc *e)
{
	e->mboxrd = true;
}

/* Where encoded octets go: reserved output space, or nowhere (sizes). */
struct sink {
	uint8_t	*p;		/* NULL: count only */
};

/* Output for n input octets is at most this: an LF becomes CRLF and a
 * '.' at a line start becomes "..", and a CR held back from the previous
 * chunk, or up to five octets of an mboxrd quote held back, come out
 * first. */
#define WORST_CASE(n)	(2 * (n) + 8)

/* Appends wire octets that count towards the size. */
static int
put(struct wire_enc *e, struct sink *k, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	e->octets += n;
	if (k->p != NULL) {
		memcpy(k->p, p, n);
		k->p += n;
	}
	return 0;
}

/* Appends octets that do not count (byte-stuffing). */
static void
put_uncounted(struct sink *k, const void *p, size_t n)
{
	if (k->p != NULL) {
		memcpy(k->p, p, n);
		k->p += n;
	}
}

/* Reserves WORST_CASE(len) octets of out for k; -1 if it cannot grow. */
static int
sink_open(struct sink *k, struct evbuffer *out, size_t len,
    struct evbuffer_iovec *v)
{
	k->p = NULL;
	if (out == NULL)
		return 0;
	if (len > (SIZE_MAX - 2) / 2 ||
	    evbuffer_reserve_space(out, (ev_ssize_t)WORST_CASE(len), v, 1) <
	    1 || v->iov_len < WORST_CASE(len))
		return -1;
	k->p = v->iov_base;
	return 0;
}

static int
sink_close(struct sink *k, struct evbuffer *out, struct evbuffer_iovec *v)
{
	if (out == NULL)
		return 0;
	v->iov_len = (size_t)(k->p - (uint8_t *)v->iov_base);
	return evbuffer_commit_space(out, v, 1);
}

/*
 * A stored line ended (its LF was consumed, or the input ended after a
 * non-empty last line).  The CRLF itself was already put.  Advances the
 * TOP state: the first empty line ends the header; after it, every line
 * spends one unit of the budget.
 */
static void
end_line(struct wire_enc *e, bool stored_crlf)
{
	bool was_empty = e->line_empty;

	if (!stored_crlf)
		e->all_clean = false;
	e->bol = true;
	e->line_empty = true;
	if (!e->in_body) {
		if (was_empty) {
			e->in_body = true;
			if (e->body_lines_left == 0)
				e->done = true;
		}
		return;
	}
	if (e->body_lines_left == WIRE_ALL_LINES)
		return;
	if (e->body_lines_left > 0)
		e->body_lines_left--;
	if (e->body_lines_left == 0)
		e->done = true;
}

/*
 * mboxrd unquoting.  At a line start a '>' is held back (quote 1); more
 * '>' pass through (they are all alike, so which one is dropped does not
 * matter); then "From " is matched octet by octet (quote 2..5 hold
 * "From"[0..quote-1)).  On the space the held '>' is dropped; on any
 * other octet the held octets come out and that octet is an ordinary
 * one.  At most five octets are ever held, whatever the chunking.
 * Returns the first octet not consumed.
 */
static const uint8_t *
unquote(struct wire_enc *e, const uint8_t *p, const uint8_t *end,
    struct sink *out)
{
	static const char from[] = "From ";

	while (p < end && e->quote != 0) {
		if (e->quote == 1 && *p == '>') {
			(void)put(e, out, ">", 1);
			p++;
		} else if (*p == (uint8_t)from[e->quote - 1]) {
			p++;
			if (++e->quote == sizeof(from)) {
				(void)put(e, out, from, sizeof(from) - 1);
				e->quote = 0;
				e->all_clean = false;
			}
		} else {
			(void)put(e, out, ">", 1);
			(void)put(e, out, from, e->quote - 1u);
			e->quote = 0;
		}
	}
	return p;
}

/* Ends a held mboxrd match at the end of the input: nothing dropped. */
static void
unquote_flush(struct wire_enc *e, struct sink *out)
{
	if (e->quote == 0)
		return;
	(void)put(e, out, ">", 1);
	(void)put(e, out, "From ", e->quote - 1u);
	e->quote = 0;
}

static int
encode(struct wire_enc *e, const uint8_t *in, size_t len, struct sink *out)
{
	const uint8_t *p = in, *end = in + len, *run = in, *nl, *q;

	while (p < end && !e->done) {
		if (e->pending_cr) {
			/* The previous chunk ended with CR; p == in == run. */
			e->pending_cr = false;
			if (*p == '\n') {
				if (put(e, out, "\r\n", 2) == -1)
					return -1;
				p++;
				run = p;
				end_line(e, true);
				continue;
			}
			/* Not before LF: an ordinary octet of the line. */
			if (put(e, out, "\r", 1) == -1)
				return -1;
			e->line_empty = false;
		}
		if (e->quote != 0) {
			/* Held from the previous chunk; p == in == run. */
			p = run = unquote(e, p, end, out);
			if (p == end)
				break;
		}
		if (e->bol) {
			e->bol = false;
			if (*p == '>' && e->mboxrd) {
				if (put(e, out, run, (size_t)(p - run)) == -1)
					return -1;
				e->line_empty = false;
				e->quote = 1;
				p = run = unquote(e, p + 1, end, out);
				if (p == end)
					break;
			} else if (*p == '.') {
				e->all_clean = false;
				if (e->stuff) {
					if (put(e, out, run,
					    (size_t)(p - run)) == -1)
						return -1;
					run = p;
					/* Sizes exclude stuffing. */
					put_uncounted(out, ".", 1);
				}
			}
		}
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL) {
			/* The line continues in the next chunk.  Hold back a
			 * final CR: only the next octet says if it is part of
			 * a CRLF. */
			q = end;
			if (q[-1] == '\r') {
				e->pending_cr = true;
				q--;
			}
			if (q > p)
				e->line_empty = false;
			if (put(e, out, run, (size_t)(q - run)) == -1)
				return -1;
			p = run = end;
			break;
		}
		if (nl > p && nl[-1] == '\r') {
			/* Stored CRLF is the wire form: extend the run. */
			if (nl - 1 > p)
				e->line_empty = false;
			p = nl + 1;
			end_line(e, true);
			continue;
		}
		/* Bare LF: the run stops before it and CRLF replaces it. */
		if (nl > p)
			e->line_empty = false;
		if (put(e, out, run, (size_t)(nl - run)) == -1 ||
		    put(e, out, "\r\n", 2) == -1)
			return -1;
		p = run = nl + 1;
		end_line(e, false);
	}
	/* When a TOP budget ran out mid-chunk, p is just past that line. */
	return put(e, out, run, (size_t)(p - run));
}

#if defined(__SSE2__)
/*
 * RETR's common case in one pass: every line, stuffing on, no mboxrd.
 * Sixteen octets at a time are copied to the output and compared with
 * LF; a block without LF costs one load, one compare and one store, and
 * only an LF stops the copy.  The output is the same as encode()'s (the
 * model test and the wire fuzz target hold them to one definition);
 * k->p has WORST_CASE(len) octets of room, which the 16-octet stores
 * never pass: every input octet but a held-back final CR makes at least
 * one output octet.
 */
static void
encode_all(struct wire_enc *e, const uint8_t *in, size_t len, struct sink *k)
{
	const __m128i lf = _mm_set1_epi8('\n');
	const uint8_t *p = in, *end = in + len, *line = in;
	uint8_t *o = k->p, *o0 = k->p;
	uint64_t stuffed = 0;
	bool empty = e->line_empty;

	if (e->pending_cr) {
		/* The previous chunk ended with CR; len > 0. */
		e->pending_cr = false;
		*o++ = '\r';
		if (*p == '\n') {
			*o++ = '\n';
			line = ++p;
			e->bol = empty = true;
		} else
			empty = false;
	}
	while (p < end) {
		if (e->bol) {
			e->bol = false;
			if (*p == '.') {
				*o++ = '.';
				stuffed++;
				e->all_clean = false;
			}
		}
		/* Copy up to the next LF, or to the end of the chunk. */
		for (;;) {
			__m128i v;
			unsigned int m;

			if (end - p < 16) {
				while (p < end && *p != '\n')
					*o++ = *p++;
				break;
			}
			v = _mm_loadu_si128((const __m128i *)(const void *)p);
			_mm_storeu_si128((__m128i *)(void *)o, v);
			m = (unsigned int)_mm_movemask_epi8(
			    _mm_cmpeq_epi8(v, lf));
			if (m != 0) {
				m = (unsigned int)__builtin_ctz(m);
				p += m;
				o += m;
				break;
			}
			p += 16;
			o += 16;
		}
		if (p == end) {
			/* The line goes on in the next chunk.  A final CR is
			 * held back: only the next octet says if it ends the
			 * line. */
			if (end[-1] == '\r') {
				e->pending_cr = true;
				o--;
				p--;
			}
			if (p > line)
				empty = false;
			break;
		}
		/* *p is LF; a CR before it in this chunk was copied already
		 * (one held back from the previous chunk was dealt with
		 * above, so p == in means no CR). */
		if (p > in && p[-1] == '\r')
			*o++ = '\n';
		else {
			*o++ = '\r';
			*o++ = '\n';
			e->all_clean = false;
		}
		line = ++p;
		e->bol = empty = true;
	}
	e->line_empty = empty;
	e->octets += (uint64_t)(o - o0) - stuffed;
	k->p = o;
}
#endif

int
wire_enc_feed(struct wire_enc *e, const uint8_t *in, size_t len,
    struct evbuffer *out)
{
	struct evbuffer_iovec v;
	struct sink k;

	if (len == 0 || e->done)
		return 0;
	if (sink_open(&k, out, len, &v) == -1)
		return -1;
#if defined(__SSE2__)
	if (k.p != NULL && e->stuff && !e->mboxrd &&
	    e->body_lines_left == WIRE_ALL_LINES) {
		encode_all(e, in, len, &k);
		return sink_close(&k, out, &v);
	}
#endif
	(void)encode(e, in, len, &k);
	return sink_close(&k, out, &v);
}

static int
finish(struct wire_enc *e, struct sink *out)
{
	unquote_flush(e, out);
	if (e->pending_cr) {
		/* A CR at the very end is not before an LF: ordinary. */
		e->pending_cr = false;
		if (put(e, out, "\r", 1) == -1)
			return -1;
		e->line_empty = false;
	}
	if (!e->line_empty) {
		/* A last line without LF: stored and wire forms differ. */
		if (put(e, out, "\r\n", 2) == -1)
			return -1;
		end_line(e, false);
	}
	return 0;
}

int
wire_enc_finish(struct wire_enc *e, struct evbuffer *out)
{
	struct evbuffer_iovec v;
	struct sink k;

	if (e->done)
		return 0;
	if (sink_open(&k, out, 1, &v) == -1)
		return -1;
	(void)finish(e, &k);
	return sink_close(&k, out, &v);
}

bool
wire_enc_done(const struct wire_enc *e)
{
	return e->done;
}

uint64_t
wire_size(const uint8_t *in, size_t len, bool *clean_r)
{
	struct wire_enc e;

	wire_enc_init(&e, false, WIRE_ALL_LINES);
	/* Counting mode cannot fail: out is NULL. */
	(void)wire_enc_feed(&e, in, len, NULL);
	(void)wire_enc_finish(&e, NULL);
	if (clean_r != NULL)
		*clean_r = e.all_clean;
	return e.octets;
}

int
wire_size_fd(int fd, uint64_t *size_r, uint64_t *stored_r, bool *clean_r)
{
	uint8_t chunk[RETR_CHUNK];
	struct wire_enc e;
	uint64_t off = 0;
	ssize_t n;

	wire_enc_init(&e, false, WIRE_ALL_LINES);
	for (;;) {
		if (off > (uint64_t)INT64_MAX - sizeof(chunk)) {
			errno = EFBIG;
			return -1;
		}
		n = pread(fd, chunk, sizeof(chunk), (off_t)off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		off += (uint64_t)n;
		(void)wire_enc_feed(&e, chunk, (size_t)n, NULL);
	}
	(void)wire_enc_finish(&e, NULL);
	*size_r = e.octets;
	if (stored_r != NULL)
		*stored_r = off;
	if (clean_r != NULL)
		*clean_r = e.all_clean;
	return 0;
}

void
wire_dots_init(struct wire_dots *d, uint64_t *dots, size_t max)
{
	d->off = 0;
	d->dots = dots;
	d->max = max;
	d->n = 0;
	d->bol = true;
	d->cr = false;
	d->bad = false;
}

void
wire_dots_feed(struct wire_dots *d, const uint8_t *in, size_t len)
{
	const uint8_t *p = in, *end = in + len, *nl;

	while (p < end && !d->bad) {
		if (d->bol) {
			d->bol = false;
			if (*p == '.') {
				if (d->n == d->max) {
					d->bad = true;
					break;
				}
				d->dots[d->n++] = d->off + (uint64_t)(p - in);
			}
		}
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL) {
			d->cr = end[-1] == '\r';
			break;
		}
		/* The octet before this LF is in this chunk or was the last
		 * one of the previous chunk. */
		if (nl > in ? nl[-1] != '\r' : !d->cr) {
			d->bad = true;
			break;
		}
		p = nl + 1;
		d->bol = true;
		d->cr = false;
	}
	d->off += len;
}

long
wire_dots_end(const struct wire_dots *d)
{
	/* A last line without its CRLF is not in wire form. */
	if (d->bad || !d->bol)
		return -1;
	return (long)d->n;
}

long
wire_dot_lines(const uint8_t *in, size_t len, uint64_t *dots, size_t max)
{
	struct wire_dots d;

	wire_dots_init(&d, dots, max);
	wire_dots_feed(&d, in, len);
	return wire_dots_end(&d);
}
