/*
 * fuzz_wire.c: the wire encoder on arbitrary stored messages.  Checks
 * that the size equals the un-stuffed output length, that chunked and
 * one-shot encoding agree, that every output line ends in CRLF, and that
 * a TOP never sends more than the whole message.
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
		if (wire_size(data, size, &clean) != oa)
			abort();
		if (clean && (oa != size || memcmp(p, data, size) != 0))
			abort();
	} else if (oa > wire_size(data, size, NULL))
		abort();
	evbuffer_free(a);
	evbuffer_free(b);
	return 0;
}
