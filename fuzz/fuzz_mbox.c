/*
 * fuzz_mbox.c: arbitrary bytes as an mbox file through the scanner, as
 * mbox.c reads it (whole, and again in chunks whose sizes the first
 * input bytes choose: the results must agree), with the invariants of
 * what it finds checked; the same bytes as an mbox index file through
 * its parser, whose accepted input must serialize and parse back the
 * same; the bytes quoted for an append must scan back as one message of
 * the same wire size; and the wire encoder's unquoting must give the
 * same octets whatever the chunking.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "lib/buf.h"
#include "pop3/wire.h"
#include "store/mbox_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_KEEP	64

struct found {
	struct mbox_found v[MAX_KEEP];
	size_t n;
	uint64_t end;		/* end of the last message seen */
	uint64_t size;
};

static int
on_found(void *arg, const struct mbox_found *f)
{
	struct found *l = arg;

	/* In order, inside the file, the From_ line before the data. */
	if (f->from_off < l->end || f->data_off < f->from_off + f->from_len ||
	    f->data_off > f->from_off + f->from_len + 1 ||
	    f->data_off + f->stored > l->size || f->wire > 2 * f->stored + 2)
		abort();
	l->end = f->data_off + f->stored;
	if (l->n < MAX_KEEP)
		l->v[l->n] = *f;
	l->n++;
	return 0;
}

static void
scan(const uint8_t *data, size_t size, size_t chunk, struct found *l,
    struct mbox_scan *s)
{
	size_t off = 0, n;

	memset(l, 0, sizeof(*l));
	l->size = size;
	mbox_scan_init(s, 0);
	while (off < size) {
		n = size - off < chunk ? size - off : chunk;
		if (mbox_scan_feed(s, data + off, n, on_found, l) == -1)
			abort();
		off += n;
	}
	if (mbox_scan_finish(s, on_found, l) == -1)
		abort();
}

static void
index_round_trip(const uint8_t *data, size_t size)
{
	struct mbox_index a, b;
	struct buf out;
	char err[256];
	size_t i;

	if (mbox_index_parse((const char *)data, size, &a, err,
	    sizeof(err)) == -1)
		return;
	buf_init(&out, 64u * 1024 * 1024);
	if (mbox_index_serialize(&a, &out) == -1 ||
	    mbox_index_parse(out.data, out.len, &b, err, sizeof(err)) == -1 ||
	    a.n != b.n)
		abort();
	for (i = 0; i < a.n; i++)
		if (a.v[i].from_off != b.v[i].from_off ||
		    a.v[i].stored != b.v[i].stored ||
		    strcmp(a.v[i].uidl, b.v[i].uidl) != 0)
			abort();
	mbox_index_free(&a);
	mbox_index_free(&b);
	buf_clear(&out);
}

/* From_ line + quoted data + LF if needed + empty line: one message
 * whose wire size is the data's. */
static void
quote_round_trip(const uint8_t *data, size_t size)
{
	static const char from[] = "From fuzz Sat Nov 21 10:00:00 2026\n";
	struct mbox_quote q;
	struct found l;
	struct mbox_scan s;
	struct buf out;
	bool nul_free = memchr(data, '\0', size) == NULL;

	buf_init(&out, 64u * 1024 * 1024);
	mbox_quote_init(&q);
	if (buf_addstr(&out, from) == -1 ||
	    mbox_quote_feed(&q, data, size, &out) == -1 ||
	    mbox_quote_finish(&q, &out) == -1)
		abort();
	if (size > 0 && data[size - 1] != '\n' && buf_addstr(&out,
	    data[size - 1] == '\r' ? "\r\n" : "\n") == -1)
		abort();
	if (buf_addc(&out, '\n') == -1)
		abort();
	scan((const uint8_t *)out.data, out.len, out.len + 1, &l, &s);
	if (l.n != 1 || s.garbage || !s.tail_ok ||
	    l.v[0].wire != wire_size(data, size, NULL))
		abort();
	(void)nul_free;
	buf_clear(&out);
}

/* The wire encoder in mboxrd mode, whole and in chunks: the same octets,
 * as many as it counts, with stuffing or a TOP budget alike. */
static void
unquote_chunks(const uint8_t *data, size_t size, size_t chunk, bool stuff,
    uint64_t top)
{
	struct evbuffer *a = evbuffer_new(), *b = evbuffer_new();
	struct wire_enc ea, eb;
	size_t off = 0, n, la, lb;

	if (a == NULL || b == NULL)
		abort();
	wire_enc_init(&ea, stuff, top);
	wire_enc_mboxrd(&ea);
	wire_enc_init(&eb, stuff, top);
	wire_enc_mboxrd(&eb);
	if (wire_enc_feed(&ea, data, size, a) == -1 ||
	    wire_enc_finish(&ea, a) == -1)
		abort();
	while (off < size) {
		n = size - off < chunk ? size - off : chunk;
		if (wire_enc_feed(&eb, data + off, n, b) == -1)
			abort();
		off += n;
	}
	if (wire_enc_finish(&eb, b) == -1)
		abort();
	la = evbuffer_get_length(a);
	lb = evbuffer_get_length(b);
	if (la != lb || ea.octets != eb.octets || (!stuff && ea.octets != la) ||
	    (la > 0 && memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1),
	    la) != 0))
		abort();
	evbuffer_free(a);
	evbuffer_free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct found whole, part;
	struct mbox_scan s1, s2;
	size_t chunk, i, n;

	scan(data, size, size + 1, &whole, &s1);
	chunk = size > 0 ? (size_t)data[0] % 17 + 1 : 1;
	scan(data, size, chunk, &part, &s2);
	if (whole.n != part.n || s1.garbage != s2.garbage ||
	    s1.tail_ok != s2.tail_ok)
		abort();
	n = whole.n < MAX_KEEP ? whole.n : MAX_KEEP;
	for (i = 0; i < n; i++)
		if (memcmp(&whole.v[i], &part.v[i], sizeof(whole.v[i])) != 0)
			abort();
	index_round_trip(data, size);
	quote_round_trip(data, size);
	unquote_chunks(data, size, chunk, false, WIRE_ALL_LINES);
	unquote_chunks(data, size, chunk, true,
	    size > 1 ? (uint64_t)data[1] % 5 : WIRE_ALL_LINES);
	return 0;
}
