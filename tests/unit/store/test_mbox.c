/*
 * test_mbox.c: the mboxrd parts without a file system: the scanner
 * (message boundaries, sizes, X-UIDL, any chunking), quoting for
 * appends, the wire encoder's unquoting, and the mbox index file (round
 * trip, and every kind of damage rejected).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "lib/buf.h"
#include "pop3/wire.h"
#include "store/index.h"
#include "store/mbox_parse.h"

#define MAX_FOUND	16

struct found_list {
	struct mbox_found v[MAX_FOUND];
	size_t n;
};

static int
on_found(void *arg, const struct mbox_found *f)
{
	struct found_list *l = arg;

	assert_true(l->n < MAX_FOUND);
	l->v[l->n++] = *f;
	return 0;
}

/* Scans data fed in chunks of the given size (0: all at once). */
static void
scan(const char *data, size_t len, size_t chunk, struct found_list *l,
    struct mbox_scan *s)
{
	size_t off = 0, n;

	memset(l, 0, sizeof(*l));
	mbox_scan_init(s, 0);
	if (chunk == 0)
		chunk = len == 0 ? 1 : len;
	while (off < len) {
		n = len - off < chunk ? len - off : chunk;
		assert_int_equal(mbox_scan_feed(s, (const uint8_t *)data + off,
		    n, on_found, l), 0);
		off += n;
	}
	assert_int_equal(mbox_scan_finish(s, on_found, l), 0);
}

/* The wire form of stored octets, optionally mboxrd-unquoted, fed in
 * chunks of the given size. */
static char *
encode(const char *in, size_t len, bool mboxrd, size_t chunk, size_t *outlen)
{
	struct evbuffer *out = evbuffer_new();
	struct wire_enc e;
	size_t off = 0, n;
	char *r;

	assert_non_null(out);
	wire_enc_init(&e, false, WIRE_ALL_LINES);
	if (mboxrd)
		wire_enc_mboxrd(&e);
	if (chunk == 0)
		chunk = len == 0 ? 1 : len;
	while (off < len) {
		n = len - off < chunk ? len - off : chunk;
		assert_int_equal(wire_enc_feed(&e, (const uint8_t *)in + off,
		    n, out), 0);
		off += n;
	}
	assert_int_equal(wire_enc_finish(&e, out), 0);
	*outlen = evbuffer_get_length(out);
	assert_int_equal(e.octets, *outlen);
	r = malloc(*outlen + 1);
	assert_non_null(r);
	evbuffer_remove(out, r, *outlen);
	r[*outlen] = '\0';
	evbuffer_free(out);
	return r;
}

static const char mbox3[] =
    "From a@example.org Sat Nov 21 10:00:00 2026\n"
    "X-UIDL: uidl-one\n"
    "Subject: one\n"
    "\n"
    "body\n"
    ">From quoted\n"
    "\n"
    "From b@example.org Sat Nov 21 10:00:01 2026\n"
    "Subject: two\r\n"
    "\r\n"
    "crlf body\r\n"
    "From not a separator\r\n"
    "\r\n"
    "From c Sat Nov 21 10:00:02 2026\n"
    "Subject: three\n"
    "\n"
    "\n"
    "last, two empty lines before\n";

static void
test_scan_messages(void **state)
{
	struct found_list l;
	struct mbox_scan s;
	const char *two, *three;

	(void)state;
	scan(mbox3, strlen(mbox3), 0, &l, &s);
	assert_false(s.garbage);
	assert_int_equal(l.n, 3);
	assert_true(s.tail_ok == false);	/* no empty line at the end */
	/* One: from its From_ line to the empty line before the next. */
	assert_int_equal(l.v[0].from_off, 0);
	assert_int_equal(l.v[0].from_len, strlen("From a@example.org Sat Nov"
	    " 21 10:00:00 2026"));
	assert_int_equal(l.v[0].data_off, l.v[0].from_len + 1);
	assert_int_equal(l.v[0].stored, strlen("X-UIDL: uidl-one\nSubject:"
	    " one\n\nbody\n>From quoted\n"));
	/* Wire: unquoted, CRLF. */
	assert_int_equal(l.v[0].wire, strlen("X-UIDL: uidl-one\r\nSubject:"
	    " one\r\n\r\nbody\r\nFrom quoted\r\n"));
	assert_string_equal(l.v[0].xuidl, "uidl-one");
	/* Two: a CRLF empty line separates too; "From " after a
	 * non-empty line is body. */
	two = strstr(mbox3, "From b@");
	assert_int_equal(l.v[1].from_off, (uint64_t)(two - mbox3));
	assert_int_equal(l.v[1].stored, strlen("Subject: two\r\n\r\ncrlf"
	    " body\r\nFrom not a separator\r\n"));
	assert_string_equal(l.v[1].xuidl, "");
	three = strstr(mbox3, "From c ");
	assert_int_equal(l.v[2].from_off, (uint64_t)(three - mbox3));
	assert_int_equal(l.v[2].data_off + l.v[2].stored, strlen(mbox3));
	assert_int_equal(l.v[0].from_hash, index_fnv1a64(INDEX_FNV64_OFFSET,
	    mbox3, l.v[0].from_len));
	assert_true(l.v[0].head_hash != l.v[2].head_hash);
}

/* Every chunking gives the same messages. */
static void
test_scan_chunking(void **state)
{
	struct found_list whole, part;
	struct mbox_scan s;
	size_t chunk, i;

	(void)state;
	scan(mbox3, strlen(mbox3), 0, &whole, &s);
	for (chunk = 1; chunk <= 40; chunk++) {
		scan(mbox3, strlen(mbox3), chunk, &part, &s);
		assert_int_equal(part.n, whole.n);
		for (i = 0; i < whole.n; i++)
			assert_memory_equal(&part.v[i], &whole.v[i],
			    sizeof(whole.v[i]));
	}
}

static void
test_scan_edges(void **state)
{
	struct found_list l;
	struct mbox_scan s;
	const char *t;

	(void)state;
	/* Empty: no message, a From_ line may be appended. */
	scan("", 0, 0, &l, &s);
	assert_int_equal(l.n, 0);
	assert_true(s.tail_ok);
	/* Garbage before the first From_ line. */
	t = "Subject: x\n\nFrom a b\n";
	scan(t, strlen(t), 0, &l, &s);
	assert_true(s.garbage);
	/* The separator is dropped; tail_ok after it. */
	t = "From a b\nx\n\n";
	scan(t, strlen(t), 0, &l, &s);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.v[0].stored, 2);
	assert_true(s.tail_ok);
	/* A From_ line without LF at the end: an empty message. */
	t = "From a b\nx\n\nFrom c d";
	scan(t, strlen(t), 3, &l, &s);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.v[1].stored, 0);
	assert_int_equal(l.v[1].data_off, strlen(t));
	assert_false(s.tail_ok);
	/* "From" without the space is no separator; nor ">From". */
	t = "From a b\nx\n\nFromage\n\n>From q\n";
	scan(t, strlen(t), 0, &l, &s);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.v[0].wire, strlen("x\r\n\r\nFromage\r\n\r\n"
	    "From q\r\n"));
	/* X-UIDL: only in the header, only valid values. */
	t = "From a b\nX-UIDL: " "0123456789012345678901234567890123456789"
	    "0123456789012345678901234567890\n\nX-UIDL: body\n";
	scan(t, strlen(t), 0, &l, &s);
	assert_string_equal(l.v[0].xuidl, "");
	t = "From a b\nSubject: s\nx-uidl:\tabc \n\n";
	scan(t, strlen(t), 0, &l, &s);
	assert_string_equal(l.v[0].xuidl, "abc");
}

static void
quote_str(const char *in, size_t chunk, struct buf *out)
{
	struct mbox_quote q;
	size_t off = 0, n, len = strlen(in);

	buf_init(out, 1 << 20);
	mbox_quote_init(&q);
	if (chunk == 0)
		chunk = len == 0 ? 1 : len;
	while (off < len) {
		n = len - off < chunk ? len - off : chunk;
		assert_int_equal(mbox_quote_feed(&q, (const uint8_t *)in + off,
		    n, out), 0);
		off += n;
	}
	assert_int_equal(mbox_quote_finish(&q, out), 0);
	assert_non_null(buf_str(out));
}

static const char quote_in[] =
    "From start\n>From one\n>>From two\nFrom\nFro\n>Fro\n x From y\n"
    "Fromage\n>>>\nFrom ";
static const char quote_out[] =
    ">From start\n>>From one\n>>>From two\nFrom\nFro\n>Fro\n x From y\n"
    "Fromage\n>>>\n>From ";

static void
test_quote(void **state)
{
	struct buf out;
	size_t chunk;

	(void)state;
	for (chunk = 0; chunk <= 12; chunk++) {
		quote_str(quote_in, chunk, &out);
		assert_string_equal(out.data, quote_out);
		buf_clear(&out);
	}
}

/* Quoting then unquoting (the wire encoder in mboxrd mode) gives the
 * wire form of the original, whatever the chunking. */
static void
test_unquote_round_trip(void **state)
{
	const char *orig = quote_in;
	char *want, *got;
	size_t wl, gl, chunk;
	struct buf q;

	(void)state;
	want = encode(orig, strlen(orig), false, 0, &wl);
	quote_str(orig, 0, &q);
	for (chunk = 0; chunk <= 12; chunk++) {
		got = encode(q.data, q.len, true, chunk, &gl);
		assert_int_equal(gl, wl);
		assert_memory_equal(got, want, wl);
		free(got);
	}
	/* Without mboxrd mode nothing is unquoted. */
	got = encode(">From x\n", 8, false, 0, &gl);
	assert_string_equal(got, ">From x\r\n");
	free(got);
	got = encode(">>From x\n>Fro", 13, true, 1, &gl);
	assert_string_equal(got, ">From x\r\n>Fro\r\n");
	free(got);
	buf_clear(&q);
	free(want);
}

static void
make_index(struct mbox_index *idx)
{
	struct mbox_found f;
	size_t i;

	mbox_index_init(idx);
	memcpy(idx->prefix, "0123456789abcdef", 17);
	idx->next_uid = 4;
	idx->dev = 2049;
	idx->ino = 1234;
	idx->size = 300;
	idx->mtime_sec = 1763700000;
	idx->mtime_nsec = 5;
	idx->tail_ok = true;
	for (i = 0; i < 3; i++) {
		char u[32];

		memset(&f, 0, sizeof(f));
		f.from_off = i * 100;
		f.from_len = 20;
		f.from_hash = 0x1111 * (i + 1);
		f.data_off = i * 100 + 21;
		f.stored = 70;
		f.wire = 75;
		f.head_hash = 0xabcdef00 + i;
		snprintf(u, sizeof(u), "0123456789abcdef.%zu", i + 1);
		assert_int_equal(mbox_index_append(idx, &f, (int64_t)i,
		    strdup(u)), 0);
	}
}

static void
test_index_round_trip(void **state)
{
	struct mbox_index idx, back;
	struct buf b, b2;
	char err[256];

	(void)state;
	make_index(&idx);
	buf_init(&b, 1 << 20);
	assert_int_equal(mbox_index_serialize(&idx, &b), 0);
	assert_int_equal(mbox_index_parse(b.data, b.len, &back, err,
	    sizeof(err)), 0);
	assert_int_equal(back.n, 3);
	assert_string_equal(back.v[2].uidl, "0123456789abcdef.3");
	assert_int_equal(back.v[1].head_hash, 0xabcdef01);
	assert_int_equal(back.v[2].retr_time, 2);
	assert_int_equal(back.next_uid, 4);
	assert_int_equal(back.ino, 1234);
	buf_init(&b2, 1 << 20);
	assert_int_equal(mbox_index_serialize(&back, &b2), 0);
	assert_int_equal(b.len, b2.len);
	assert_memory_equal(b.data, b2.data, b.len);
	mbox_index_free(&back);
	mbox_index_free(&idx);
	buf_clear(&b);
	buf_clear(&b2);
}

/* Every cut and every one-octet change is rejected, never crashes. */
static void
test_index_damage(void **state)
{
	struct mbox_index idx, back;
	struct buf b;
	char err[256], *copy;
	size_t i;

	(void)state;
	make_index(&idx);
	buf_init(&b, 1 << 20);
	assert_int_equal(mbox_index_serialize(&idx, &b), 0);
	copy = malloc(b.len);
	assert_non_null(copy);
	for (i = 0; i < b.len; i++) {
		assert_int_equal(mbox_index_parse(b.data, i, &back, err,
		    sizeof(err)), -1);
		assert_int_equal(back.n, 0);
		memcpy(copy, b.data, b.len);
		copy[i] ^= 0x01;
		assert_int_equal(mbox_index_parse(copy, b.len, &back, err,
		    sizeof(err)), -1);
	}
	free(copy);
	buf_clear(&b);
	/* A duplicate UIDL, and offsets out of order, with a right
	 * checksum. */
	free(idx.v[1].uidl);
	idx.v[1].uidl = strdup(idx.v[0].uidl);
	buf_init(&b, 1 << 20);
	assert_int_equal(mbox_index_serialize(&idx, &b), 0);
	assert_int_equal(mbox_index_parse(b.data, b.len, &back, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "twice"));
	buf_clear(&b);
	free(idx.v[1].uidl);
	idx.v[1].uidl = strdup("other");
	idx.v[1].from_off = 10;
	buf_init(&b, 1 << 20);
	assert_int_equal(mbox_index_serialize(&idx, &b), 0);
	assert_int_equal(mbox_index_parse(b.data, b.len, &back, err,
	    sizeof(err)), -1);
	buf_clear(&b);
	mbox_index_free(&idx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan_messages),
		cmocka_unit_test(test_scan_chunking),
		cmocka_unit_test(test_scan_edges),
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_unquote_round_trip),
		cmocka_unit_test(test_index_round_trip),
		cmocka_unit_test(test_index_damage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
