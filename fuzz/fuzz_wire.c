/*
 * fuzz_wire.c: the wire encoder on arbitrary stored messages.  Checks
 * that the size equals the un-stuffed output length, that chunked and
 * one-shot encoding agree, that every output line ends in CRLF, that a
 * TOP never sends more than the whole message, that RETR's one-pass
 * copy and the general encoder send the same octets, and that the sendfile
 * form (wire_dot_lines: the stored runs with a '.' put before the lines
 * it lists) is exactly what the encoder sends.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "pop3/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t
encode(const uint8_t *d, size_t n, size_t step, uint64_t top,
    struct evbuffer *out, uint64_t *octets_r)
{
	struct wire_enc e;
	size_t off = 0;

	wire_enc_init(&e, true, top);
	while (off < n) {
		size_t k = n - off < step ? n - off : step;

		if (wire_enc_feed(&e, d + off, k, out) == -1)
			abort();
		off += k;
	}
	if (wire_enc_finish(&e, out) == -1)
		abort();
	*octets_r = e.octets;
	return evbuffer_get_length(out);
}

/* Rebuilds the reply from the stored runs as RETR's sendfile path does
 * and compares it with the encoder's output wire[0..wlen). */
static void
check_dot_lines(const uint8_t *d, size_t n, const uint8_t *wire, size_t wlen,
    uint64_t octets)
{
	uint64_t dots[8], from = 0;
	size_t o = 0;
	long k, i;

	k = wire_dot_lines(d, n, dots, 8);
	if (k < 0)
		return;
	/* In that form the stored octets are the size. */
	if (octets != n || wlen != n + (size_t)k)
		abort();
	for (i = 0; i <= k; i++) {
		uint64_t to = i < k ? dots[i] : n;

		if (to < from || (i < k && d[to] != '.') ||
		    memcmp(wire + o, d + from, (size_t)(to - from)) != 0)
			abort();
		o += (size_t)(to - from);
		if (i < k && wire[o++] != '.')
			abort();
		from = to;
	}
	if (o != wlen)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evbuffer *a, *b;
	uint64_t oa, ob, top;
	size_t la, lb, i, dots = 0;
	const uint8_t *p;
	bool clean;

	if (size < 2)
		return 0;
	top = data[0] < 200 ? data[0] % 8 : WIRE_ALL_LINES;
	data++;
	size--;
	a = evbuffer_new();
	b = evbuffer_new();
	if (a == NULL || b == NULL)
		abort();
	la = encode(data, size, size, top, a, &oa);
	lb = encode(data, size, 1 + size % 7, top, b, &ob);
	if (la != lb || oa != ob)
		abort();
	p = evbuffer_pullup(a, -1);
	if (la > 0 && memcmp(p, evbuffer_pullup(b, -1), la) != 0)
		abort();
	/* Every line ends in CRLF; count the stuffed dots. */
	for (i = 0; i < la; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			abort();
		if ((i == 0 || p[i - 1] == '\n') && p[i] == '.')
			dots++;
	}
	if (la > 0 && (la < 2 || p[la - 2] != '\r' || p[la - 1] != '\n'))
		abort();
	if (la != oa + dots)
		abort();
	if (top == WIRE_ALL_LINES) {
		/* RETR's one-pass copy against the general encoder, which a
		 * TOP budget too large to run out selects. */
		struct evbuffer *c = evbuffer_new();
		uint64_t oc;

		if (c == NULL || encode(data, size, 1 + size % 5,
		    WIRE_ALL_LINES - 1, c, &oc) != la || oc != oa ||
		    (la > 0 && memcmp(p, evbuffer_pullup(c, -1), la) != 0))
			abort();
		evbuffer_free(c);
		if (wire_size(data, size, &clean) != oa)
			abort();
		if (clean && (oa != size || memcmp(p, data, size) != 0))
			abort();
		check_dot_lines(data, size, p, la, oa);
	} else if (oa > wire_size(data, size, NULL))
		abort();
	evbuffer_free(a);
	evbuffer_free(b);
	return 0;
}
