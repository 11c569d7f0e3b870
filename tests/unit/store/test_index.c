/*
 * test_index.c: the index file parser and serializer, UIDL derivation and
 * the hash map, without a file system.  The parser must reject every kind
 * of damage and never crash.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "store/index.h"
#include "store/store.h"

static uint64_t
fnv(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* body + a correct trailer with count n, as a malloc'd string. */
static char *
with_trailer(const char *body, size_t n)
{
	size_t bl = strlen(body);
	char *out = malloc(bl + 64);

	assert_non_null(out);
	snprintf(out, bl + 64, "%send %zu %016llx\n", body, n,
	    (unsigned long long)fnv(body, bl));
	return out;
}

static int
parse_str(const char *s, struct index *idx)
{
	char err[256];

	return index_parse(s, strlen(s), idx, err, sizeof(err));
}

#define HDR	"postern-index 1\nstate 1700000000 5 1700000100 0 10\n"

static void
accept_body(const char *body, size_t n)
{
	struct index idx;
	char *s = with_trailer(body, n);

	assert_int_equal(parse_str(s, &idx), 0);
	assert_int_equal(idx.n, n);
	index_free(&idx);
	free(s);
}

static void
reject_body(const char *body, size_t n)
{
	struct index idx;
	char *s = with_trailer(body, n);

	if (parse_str(s, &idx) != -1) {
		fprintf(stderr, "accepted: %s", s);
		fail();
	}
	assert_int_equal(idx.n, 0);
	assert_null(idx.v);
	free(s);
}

static void
add(struct index *idx, uint64_t seq, const char *uidl, const char *name,
    uint64_t size, uint64_t stored, int64_t rt, unsigned int flags)
{
	char *u = uidl != NULL ? strdup(uidl) : NULL, *n = strdup(name);

	assert_non_null(n);
	assert_int_equal(index_append(idx, seq, size, stored, rt, flags, u, n),
	    0);
}

static void
make_sample(struct index *idx)
{
	index_init(idx);
	idx->cur_mtime.sec = 1700000000;
	idx->cur_mtime.nsec = 123456789;
	idx->scanned.sec = 1700000100;
	idx->scanned.nsec = 42;
	add(idx, 1, "1700000000.M1.host", "1700000000.M1.host:2,S", 120, 115,
	    0, 0);
	add(idx, 2, "0123456789abcdef0123456789abcdef",
	    "name with spaces%and\tcontrol\x01\xff:2,", 10, 10, 1700000500,
	    MSG_WIRE_CLEAN);
	add(idx, 7, "x", "x", 0, 0, 0, 0);
}

static void
test_roundtrip(void **state)
{
	struct index a, b;
	struct buf s1, s2;
	char err[256];
	size_t i;

	(void)state;
	make_sample(&a);
	buf_init(&s1, 1 << 20);
	buf_init(&s2, 1 << 20);
	assert_int_equal(index_serialize(&a, &s1), 0);
	assert_int_equal(index_parse(s1.data, s1.len, &b, err, sizeof(err)),
	    0);
	assert_int_equal(b.n, a.n);
	assert_int_equal(b.next_seq, 8);
	assert_int_equal(b.cur_mtime.sec, a.cur_mtime.sec);
	assert_int_equal(b.cur_mtime.nsec, a.cur_mtime.nsec);
	assert_int_equal(b.scanned.sec, a.scanned.sec);
	assert_int_equal(b.scanned.nsec, a.scanned.nsec);
	for (i = 0; i < a.n; i++) {
		assert_int_equal(b.v[i].seq, a.v[i].seq);
		assert_string_equal(b.v[i].uidl, a.v[i].uidl);
		assert_string_equal(b.v[i].name, a.v[i].name);
		assert_int_equal(b.v[i].size, a.v[i].size);
		assert_int_equal(b.v[i].stored_size, a.v[i].stored_size);
		assert_int_equal(b.v[i].retr_time, a.v[i].retr_time);
		assert_int_equal(b.v[i].flags, a.v[i].flags);
	}
	/* The form is canonical: serializing again gives the same bytes. */
	assert_int_equal(index_serialize(&b, &s2), 0);
	assert_int_equal(s1.len, s2.len);
	assert_memory_equal(s1.data, s2.data, s1.len);
	/* The escaped name travels as one field. */
	assert_non_null(strstr(buf_str(&s1),
	    " name%20with%20spaces%25and%09control%01%FF:2,\n"));
	index_free(&a);
	index_free(&b);
	buf_clear(&s1);
	buf_clear(&s2);
}

/* Entry by entry, field by field. */
static void
assert_same(const struct index *a, const struct index *b)
{
	size_t i;

	assert_int_equal(b->n, a->n);
	assert_int_equal(b->next_seq, a->next_seq);
	assert_int_equal(b->cur_mtime.sec, a->cur_mtime.sec);
	assert_int_equal(b->cur_mtime.nsec, a->cur_mtime.nsec);
	assert_int_equal(b->scanned.sec, a->scanned.sec);
	assert_int_equal(b->scanned.nsec, a->scanned.nsec);
	for (i = 0; i < a->n; i++) {
		assert_int_equal(b->v[i].seq, a->v[i].seq);
		assert_string_equal(b->v[i].uidl, a->v[i].uidl);
		assert_string_equal(b->v[i].name, a->v[i].name);
		assert_int_equal(b->v[i].size, a->v[i].size);
		assert_int_equal(b->v[i].stored_size, a->v[i].stored_size);
		assert_int_equal(b->v[i].retr_time, a->v[i].retr_time);
		assert_int_equal(b->v[i].flags, a->v[i].flags);
	}
}

/* Whether p lies in idx's block of strings. */
static bool
in_strings(const struct index *idx, const char *p)
{
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)idx->strings;

	return idx->strings != NULL && a >= b && a - b < idx->strings_len;
}

/*
 * A parsed index keeps its strings in one block; a copy has a block of
 * its own and owes nothing to the original; a name or UIDL given later
 * is its own allocation, and freeing any of them frees each string once
 * (the sanitizer build would see a double or a stray free).
 */
static void
test_copy_and_block(void **state)
{
	struct index a, b, c;
	struct buf s;
	char err[256], *nm;
	size_t i;

	(void)state;
	make_sample(&a);
	buf_init(&s, 1 << 20);
	assert_int_equal(index_serialize(&a, &s), 0);
	assert_int_equal(index_parse(s.data, s.len, &b, err, sizeof(err)),
	    0);
	for (i = 0; i < b.n; i++) {
		assert_true(in_strings(&b, b.v[i].uidl));
		assert_true(in_strings(&b, b.v[i].name));
	}
	assert_int_equal(index_copy(&c, &a), 0);	/* from malloc'd ones */
	assert_same(&a, &c);
	index_free(&a);
	assert_int_equal(index_copy(&a, &b), 0);	/* from a block */
	assert_same(&b, &a);
	for (i = 0; i < a.n; i++) {
		assert_true(in_strings(&a, a.v[i].uidl));
		assert_false(in_strings(&b, a.v[i].uidl));
	}
	nm = strdup("renamed:2,S");
	assert_non_null(nm);
	index_set_name(&b, 1, nm);
	assert_string_equal(b.v[1].name, "renamed:2,S");
	assert_true(index_bytes(&b) >= b.strings_len + 12);
	nm = strdup("again:2,");
	assert_non_null(nm);
	index_set_name(&b, 1, nm);
	assert_string_equal(b.v[1].name, "again:2,");
	nm = strdup("imported-uidl");
	assert_non_null(nm);
	index_set_uidl(&b, 0, nm);
	assert_string_equal(b.v[0].uidl, "imported-uidl");
	index_free(&b);
	assert_same(&c, &a);
	index_free(&a);
	index_free(&c);
	buf_clear(&s);
}

/* An index of n entries with names and UIDLs that tell which. */
static void
make_big(struct index *idx, size_t n, const char *tag)
{
	char u[64], nm[64];
	size_t i;

	index_init(idx);
	for (i = 0; i < n; i++) {
		snprintf(u, sizeof(u), "%s-%zu", tag, i);
		snprintf(nm, sizeof(nm), "%zu.M%zu.%s:2,", 1700000000 + i, i,
		    tag);
		add(idx, i + 1, u, nm, 100 + i, 99 + i, 0, 0);
	}
}

static struct index_file_id
file_id_of(uint64_t ino, int64_t ctime_nsec)
{
	struct index_file_id id;

	memset(&id, 0, sizeof(id));
	id.dev = 8;
	id.ino = ino;
	id.size = 4096;
	id.mtime_sec = id.ctime_sec = 1700000000;
	id.ctime_nsec = ctime_nsec;
	return id;
}

/*
 * The cache hands out a copy only for the same path and the same file
 * (any field of the id differing drops the entry), keeps nothing below
 * INDEX_CACHE_MIN_MESSAGES or over its budget, lets the entry used
 * longest ago go first, and nothing at all with a budget of 0.
 */
static void
test_index_cache(void **state)
{
	struct index big, other, small, got;
	struct index_file_id id = file_id_of(1, 0), id2 = file_id_of(2, 0);
	size_t one;

	(void)state;
	make_big(&big, INDEX_CACHE_MIN_MESSAGES, "a");
	make_big(&other, INDEX_CACHE_MIN_MESSAGES + 5, "b");
	make_big(&small, INDEX_CACHE_MIN_MESSAGES - 1, "c");

	/* Off until given a budget. */
	index_cache_put("/m/a", &id, &big);
	assert_false(index_cache_get("/m/a", &id, &got));

	index_cache_budget(64u << 20);
	index_cache_put("/m/a", &id, &big);
	assert_true(index_cache_get("/m/a", &id, &got));
	assert_same(&big, &got);
	index_free(&got);
	assert_false(index_cache_get("/m/b", &id, &got));
	index_cache_put("/m/c", &id2, &small);
	assert_false(index_cache_get("/m/c", &id2, &got));

	/* Another version of the file: the entry is dropped. */
	id2 = file_id_of(1, 1);
	assert_false(index_cache_get("/m/a", &id2, &got));
	assert_false(index_cache_get("/m/a", &id, &got));

	/* A put replaces what the path had; a get for another version of
	 * the file drops it. */
	index_cache_put("/m/a", &id, &big);
	index_cache_put("/m/a", &id2, &other);
	assert_true(index_cache_get("/m/a", &id2, &got));
	assert_same(&other, &got);
	index_free(&got);
	assert_false(index_cache_get("/m/a", &id, &got));
	assert_false(index_cache_get("/m/a", &id2, &got));

	/* Room for two: the one used longest ago goes. */
	index_cache_budget(0);
	assert_int_equal(index_copy(&got, &other), 0);
	one = index_bytes(&got) + 64 + 200;
	index_free(&got);
	index_cache_budget(2 * one + one / 2);
	index_cache_put("/m/1", &id, &big);
	index_cache_put("/m/2", &id, &big);
	assert_true(index_cache_get("/m/1", &id, &got));
	index_free(&got);
	index_cache_put("/m/3", &id, &big);
	assert_true(index_cache_get("/m/1", &id, &got));
	index_free(&got);
	assert_false(index_cache_get("/m/2", &id, &got));
	assert_true(index_cache_get("/m/3", &id, &got));
	index_free(&got);

	/* Too big for the budget: not kept. */
	index_cache_budget(one / 2);
	assert_false(index_cache_get("/m/1", &id, &got));
	index_cache_put("/m/1", &id, &big);
	assert_false(index_cache_get("/m/1", &id, &got));

	index_cache_budget(0);
	index_free(&big);
	index_free(&other);
	index_free(&small);
}

static void
test_empty_index(void **state)
{
	struct index a, b;
	struct buf s;
	char err[256];

	(void)state;
	index_init(&a);
	buf_init(&s, 4096);
	assert_int_equal(index_serialize(&a, &s), 0);
	assert_int_equal(index_parse(s.data, s.len, &b, err, sizeof(err)), 0);
	assert_int_equal(b.n, 0);
	index_free(&b);
	buf_clear(&s);
}

static void
test_serialize_refuses_bad_entries(void **state)
{
	struct index a;
	struct buf s;

	(void)state;
	buf_init(&s, 1 << 16);
	index_init(&a);
	add(&a, 1, NULL, "f", 2, 1, 0, 0);
	assert_int_equal(index_serialize(&a, &s), -1);
	assert_int_equal(s.len, 0);
	index_free(&a);
	add(&a, 1, "u", ".hidden", 2, 1, 0, 0);
	assert_int_equal(index_serialize(&a, &s), -1);
	index_free(&a);
	add(&a, 1, "u", "f", 10, 1, 0, 0);	/* size > 2 * stored + 2 */
	assert_int_equal(index_serialize(&a, &s), -1);
	index_free(&a);
	add(&a, 1, "u", "f", 3, 2, 0, MSG_WIRE_CLEAN);
	assert_int_equal(index_serialize(&a, &s), -1);
	index_free(&a);
	add(&a, 2, "u", "f", 3, 2, 0, 0);
	add(&a, 2, "v", "g", 3, 2, 0, 0);	/* seq not increasing */
	assert_int_equal(index_serialize(&a, &s), -1);
	index_free(&a);
	/* A buffer too small fails cleanly. */
	make_sample(&a);
	buf_clear(&s);
	buf_init(&s, 64);
	assert_int_equal(index_serialize(&a, &s), -1);
	assert_int_equal(s.len, 0);
	index_free(&a);
	buf_clear(&s);
}

static void
test_truncated_and_flipped(void **state)
{
	struct index a, b;
	struct buf s;
	char err[256], *copy;
	size_t i;
	int bit;

	(void)state;
	make_sample(&a);
	buf_init(&s, 1 << 20);
	assert_int_equal(index_serialize(&a, &s), 0);
	copy = malloc(s.len);
	assert_non_null(copy);
	/* Every proper prefix is rejected. */
	for (i = 0; i < s.len; i++) {
		memcpy(copy, s.data, i);
		assert_int_equal(index_parse(copy, i, &b, err, sizeof(err)),
		    -1);
		assert_int_equal(b.n, 0);
	}
	/* Every single bit flip is rejected (the checksum or the syntax). */
	for (i = 0; i < s.len; i++) {
		for (bit = 0; bit < 8; bit++) {
			memcpy(copy, s.data, s.len);
			copy[i] = (char)(copy[i] ^ (1 << bit));
			assert_int_equal(index_parse(copy, s.len, &b, err,
			    sizeof(err)), -1);
		}
	}
	/* Trailing garbage after the trailer. */
	{
		char *more = malloc(s.len + 2);

		assert_non_null(more);
		memcpy(more, s.data, s.len);
		memcpy(more + s.len, "x\n", 2);
		assert_int_equal(index_parse(more, s.len + 2, &b, err,
		    sizeof(err)), -1);
		free(more);
	}
	free(copy);
	index_free(&a);
	buf_clear(&s);
}

static void
test_bad_checksum_and_trailer(void **state)
{
	struct index idx;

	(void)state;
	assert_int_equal(parse_str(HDR "1 a 2 1 0 0 a\n"
	    "end 1 0000000000000000\n", &idx), -1);
	assert_int_equal(parse_str(HDR "1 a 2 1 0 0 a\n", &idx), -1);
	assert_int_equal(parse_str("", &idx), -1);
	assert_int_equal(parse_str("\n", &idx), -1);
	assert_int_equal(parse_str("end 0 cbf29ce484222325\n", &idx), -1);
	{
		/* Upper-case checksum is not the canonical form. */
		char *s = with_trailer(HDR, 0), *p = strrchr(s, ' ');
		size_t i;

		for (i = 1; p[i] != '\n'; i++)
			if (p[i] >= 'a' && p[i] <= 'f')
				p[i] = (char)(p[i] - 'a' + 'A');
		if (strpbrk(p, "ABCDEF") != NULL)
			assert_int_equal(parse_str(s, &idx), -1);
		free(s);
	}
}

static void
test_header_and_state(void **state)
{
	(void)state;
	accept_body(HDR, 0);
	reject_body("postern-index 2\nstate 1 0 1 0 1\n", 0);
	reject_body("postern-index 1 \nstate 1 0 1 0 1\n", 0);
	reject_body("postern-index 1\n", 0);
	reject_body("state 1 0 1 0 1\npostern-index 1\n", 0);
	reject_body("postern-index 1\nstate 1 0 1 0 0\n", 0);
	reject_body("postern-index 1\nstate 1 1000000000 1 0 1\n", 0);
	reject_body("postern-index 1\nstate 1 0 1 0\n", 0);
	reject_body("postern-index 1\nstate 1 0 1 0 1 1\n", 0);
	reject_body("postern-index 1\nstate  1 0 1 0 1\n", 0);
	reject_body("postern-index 1\nstate 01 0 1 0 1\n", 0);
	reject_body("postern-index 1\nstate -1 0 1 0 1\n", 0);
	reject_body("postern-index 1\nstate 1 0 1 0 18446744073709551616\n",
	    0);
	reject_body("postern-index 1\nstate 999999999999 0 1 0 1\n", 0);
	reject_body("postern-index 1\nstate 1 0 1 0 1\nstate 1 0 1 0 1\n", 0);
}

static void
test_bad_entries(void **state)
{
	char name[400], line[600];

	(void)state;
	accept_body(HDR "1 a 2 1 0 0 a\n2 b 4 4 0 1 b:2,S\n", 2);
	/* Counts. */
	reject_body(HDR "1 a 2 1 0 0 a\n", 2);
	reject_body(HDR "1 a 2 1 0 0 a\n2 b 2 1 0 0 b\n", 1);
	reject_body(HDR "1 a 2 1 0 0 a\n", 10000001);
	/* Numbers. */
	reject_body(HDR "01 a 2 1 0 0 a\n", 1);
	reject_body(HDR "+1 a 2 1 0 0 a\n", 1);
	reject_body(HDR "1 a 2x 1 0 0 a\n", 1);
	reject_body(HDR "1 a 2 1 -5 0 a\n", 1);
	reject_body(HDR "1 a 99999999999999999999999 1 0 0 a\n", 1);
	reject_body(HDR "1 a 2 2251799813685249 0 0 a\n", 1);
	reject_body(HDR "1 a 5 1 0 0 a\n", 1);	/* > 2 * stored + 2 */
	reject_body(HDR "1 a 0 1 0 0 a\n", 1);	/* 0 wire, 1 stored */
	reject_body(HDR "1 a 2 0 0 0 a\n", 1);
	reject_body(HDR "1 a 2 1 0 2 a\n", 1);	/* unknown flag */
	reject_body(HDR "1 a 2 1 0 1 a\n", 1); /* clean, size != stored */
	reject_body(HDR "1 a 2 1 253402300800 0 a\n", 1);
	/* Sequence numbers. */
	reject_body(HDR "2 a 2 1 0 0 a\n2 b 2 1 0 0 b\n", 2);
	reject_body(HDR "3 a 2 1 0 0 a\n2 b 2 1 0 0 b\n", 2);
	reject_body(HDR "10 a 2 1 0 0 a\n", 1);	/* not below next */
	/* Field structure. */
	reject_body(HDR "1 a 2 1 0 0\n", 1);
	reject_body(HDR "1 a 2 1 0 0 a b\n", 1);
	reject_body(HDR "1  a 2 1 0 0 a\n", 1);
	reject_body(HDR "1 a 2 1 0 0 a \n", 1);
	reject_body(HDR "\n", 0);
	reject_body(HDR "1 a 2 1 0 0 a\r\n", 1);
	/* UIDLs. */
	reject_body(HDR "1 a 2 1 0 0 a\n2 a 2 1 0 0 b\n", 2);
	reject_body(HDR "1 a\x7f 2 1 0 0 a\n", 1);
	reject_body(HDR "1 a\x01 2 1 0 0 a\n", 1);
	reject_body(HDR "1 \xc3\xa9 2 1 0 0 a\n", 1);
	memset(name, 'u', 71);
	name[71] = '\0';
	snprintf(line, sizeof(line), HDR "1 %s 2 1 0 0 a\n", name);
	reject_body(line, 1);
	name[70] = '\0';
	snprintf(line, sizeof(line), HDR "1 %s 2 1 0 0 a\n", name);
	accept_body(line, 1);
	/* Names. */
	reject_body(HDR "1 a 2 1 0 0 a\n2 b 2 1 0 0 a\n", 2);
	reject_body(HDR "1 a 2 1 0 0 .a\n", 1);
	reject_body(HDR "1 a 2 1 0 0 %2Ea\n", 1);
	reject_body(HDR "1 a 2 1 0 0 a%2Fb\n", 1);
	reject_body(HDR "1 a 2 1 0 0 a%00b\n", 1);
	reject_body(HDR "1 a 2 1 0 0 %41\n", 1);	/* needless escape */
	reject_body(HDR "1 a 2 1 0 0 a%0a\n", 1);	/* lower-case hex */
	reject_body(HDR "1 a 2 1 0 0 a%0\n", 1);
	reject_body(HDR "1 a 2 1 0 0 a%\n", 1);
	reject_body(HDR "1 a 2 1 0 0 a%G0\n", 1);
	reject_body(HDR "1 a 2 1 0 0 a/b\n", 1);
	accept_body(HDR "1 a 2 1 0 0 a%20b%25\n", 1);
	memset(name, 'n', 256);
	name[256] = '\0';
	snprintf(line, sizeof(line), HDR "1 a 2 1 0 0 %s\n", name);
	reject_body(line, 1);
	name[255] = '\0';
	snprintf(line, sizeof(line), HDR "1 a 2 1 0 0 %s\n", name);
	accept_body(line, 1);
	/* A NUL in the middle of the file. */
	{
		struct index idx;
		char err[128];
		char *s = with_trailer(HDR "1 a 2 1 0 0 a\n", 1);
		size_t len = strlen(s);

		s[strlen(HDR) + 2] = '\0';
		assert_int_equal(index_parse(s, len, &idx, err, sizeof(err)),
		    -1);
		free(s);
	}
}

/* Random damage to a valid file, with the checksum made right again so
 * the parser's field checks are what stands in the way.  Must not crash;
 * whatever it accepts must serialize again. */
static void
test_random_damage(void **state)
{
	static const char pool[] = "0123456789 a%\n\x7f.:/-AF";
	struct index a, b;
	struct buf s, out;
	char err[256];
	unsigned int seed = 7;
	int round, k;

	(void)state;
	make_sample(&a);
	buf_init(&s, 1 << 20);
	assert_int_equal(index_serialize(&a, &s), 0);
	for (round = 0; round < 20000; round++) {
		char *body, *doc, *t;
		size_t bl;

		t = strstr(s.data, "end ");
		assert_non_null(t);
		bl = (size_t)(t - s.data);
		body = malloc(bl + 1);
		assert_non_null(body);
		memcpy(body, s.data, bl);
		body[bl] = '\0';
		for (k = 0; k < 3; k++) {
			seed = seed * 1103515245u + 12345u;
			body[(seed >> 8) % bl] =
			    pool[(seed >> 20) % (sizeof(pool) - 1)];
		}
		seed = seed * 1103515245u + 12345u;
		doc = with_trailer(body, (seed >> 16) % 4);
		if (index_parse(doc, strlen(doc), &b, err, sizeof(err)) == 0) {
			buf_init(&out, 1 << 20);
			assert_int_equal(index_serialize(&b, &out), 0);
			buf_clear(&out);
			index_free(&b);
		}
		free(doc);
		free(body);
	}
	index_free(&a);
	buf_clear(&s);
}

static void
test_uidl_for(void **state)
{
	char out[UIDL_MAX_LEN + 1], long_name[100];
	char out2[UIDL_MAX_LEN + 1];

	(void)state;
	assert_int_equal(index_uidl_for("1700000000.M1.host", 18, 0, out), 0);
	assert_string_equal(out, "1700000000.M1.host");
	/* SHA-256("") = e3b0c442 98fc1c14 9afbf4c8 996fb924 27ae41e4 ... */
	assert_int_equal(index_uidl_for("", 0, 0, out), 0);
	assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb924");
	/* SHA-256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 ... */
	assert_int_equal(index_uidl_for("abc x", 3, 1, out), 0);
	assert_int_equal(strlen(out), 32);
	assert_string_not_equal(out, "ba7816bf8f01cfea414140de5dae2223");
	assert_int_equal(index_uidl_for("a c", 3, 0, out), 0);
	assert_int_equal(strlen(out), 32);
	assert_int_equal(strspn(out, "0123456789abcdef"), 32);
	memset(long_name, 'z', 71);
	assert_int_equal(index_uidl_for(long_name, 71, 0, out), 0);
	assert_int_equal(strlen(out), 32);
	assert_int_equal(index_uidl_for(long_name, 70, 0, out2), 0);
	assert_int_equal(strlen(out2), 70);
	/* A function of the name: the same again. */
	assert_int_equal(index_uidl_for(long_name, 71, 0, out2), 0);
	assert_string_equal(out, out2);
	assert_int_equal(index_uidl_for(long_name, 71, 2, out2), 0);
	assert_string_not_equal(out, out2);
	assert_true(index_uidl_valid("a", 1));
	assert_false(index_uidl_valid("", 0));
	assert_false(index_uidl_valid("a b", 3));
	assert_int_equal(index_base_len("abc:2,S"), 3);
	assert_int_equal(index_base_len("abc"), 3);
	assert_int_equal(index_base_len(":2,"), 0);
}

static void
test_assign_uidls(void **state)
{
	struct index idx;
	char hashed[UIDL_MAX_LEN + 1];
	char long_name[100];
	size_t i, j;

	(void)state;
	memset(long_name, 'q', 80);
	long_name[80] = '\0';
	assert_int_equal(index_uidl_for(long_name, 80, 0, hashed), 0);
	index_init(&idx);
	add(&idx, 1, "a", "a:2,S", 2, 1, 0, 0);
	add(&idx, 2, NULL, "a:2,T", 2, 1, 0, 0);	/* same base */
	add(&idx, 3, NULL, hashed, 2, 1, 0, 0);	/* named as a hash */
	add(&idx, 4, NULL, long_name, 2, 1, 0, 0);
	add(&idx, 5, NULL, "b:2,", 2, 1, 0, 0);
	assert_int_equal(index_assign_uidls(&idx), 0);
	assert_string_equal(idx.v[0].uidl, "a");
	assert_string_equal(idx.v[2].uidl, hashed);
	assert_string_equal(idx.v[4].uidl, "b");
	assert_int_equal(strlen(idx.v[1].uidl), 32);
	assert_int_equal(strlen(idx.v[3].uidl), 32);
	assert_string_not_equal(idx.v[3].uidl, hashed);
	for (i = 0; i < idx.n; i++)
		for (j = i + 1; j < idx.n; j++)
			assert_string_not_equal(idx.v[i].uidl, idx.v[j].uidl);
	index_free(&idx);
}

static void
test_map(void **state)
{
	struct index_map m;
	char keys[2000][8];
	size_t i, it, hits;
	uint32_t v;

	(void)state;
	assert_int_equal(index_map_init(&m, 0), 0);
	for (i = 0; i < 2000; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%zu", i % 1000);
		assert_int_equal(index_map_add(&m, keys[i], strlen(keys[i]),
		    (uint32_t)i), 0);
	}
	for (i = 0; i < 1000; i++) {
		it = 0;
		hits = 0;
		while (index_map_find(&m, keys[i], strlen(keys[i]), &it, &v)) {
			assert_int_equal(v % 1000, i);
			hits++;
		}
		assert_int_equal(hits, 2);
	}
	it = 0;
	assert_false(index_map_find(&m, "nope", 4, &it, &v));
	index_map_free(&m);
}

/* add_unique: one key once, whatever its length (the hash takes eight
 * octets at a time, then the rest), also across the table's growth. */
static void
test_map_unique(void **state)
{
	struct index_map m;
	static char keys[3000][40];
	size_t i, it;
	uint32_t v;

	(void)state;
	assert_int_equal(index_map_init(&m, 0), 0);
	for (i = 0; i < 3000; i++)
		snprintf(keys[i], sizeof(keys[i]), "%.*s%zu",
		    (int)(i % 24), "1700000000.M123P4242Q8.h", i % 1500);
	for (i = 0; i < 3000; i++) {
		int r = index_map_add_unique(&m, keys[i], strlen(keys[i]),
		    (uint32_t)i);

		/* The 3000 keys all differ: keys[i] and keys[i + 1500]
		 * have prefixes of different lengths (1500 % 24 == 12). */
		assert_int_equal(r, 1);
	}
	for (i = 0; i < 3000; i++) {
		assert_int_equal(index_map_add_unique(&m, keys[i],
		    strlen(keys[i]), 9), 0);
		it = 0;
		assert_true(index_map_find(&m, keys[i], strlen(keys[i]), &it,
		    &v));
		assert_int_equal(v, i);
		assert_false(index_map_find(&m, keys[i], strlen(keys[i]), &it,
		    &v));
	}
	assert_int_equal(m.n, 3000);
	/* A key that is a prefix of another is a key of its own. */
	it = 0;
	assert_false(index_map_find(&m, keys[2999], strlen(keys[2999]) - 1,
	    &it, &v));
	index_map_free(&m);
}

static void
test_index_name_sizes(void **state)
{
	static const char *const bad[] = {
		"1.a.h", "1.a.h,S=1", "1.a.h,W=1", "1.a.h,S=,W=1",
		"1.a.h,S=1,W=", "1.a.h,S=01,W=1", "1.a.h,S=1,W=1,S=1",
		"1.a.h,S=-1,W=1", "1.a.h,S=1 ,W=1", "1.a.h,S=1,W=1x",
		"1.a.h,S=99999999999999999999,W=1",
		/* One more than INDEX_MAX_MSG_OCTETS. */
		"1.a.h,S=1125899906842625,W=1",
	};
	uint64_t s = 0, w = 0;
	const char *n;
	size_t i;

	(void)state;
	n = "1.a.h,S=12,W=13";
	assert_true(index_name_sizes(n, strlen(n), &s, &w));
	assert_int_equal(s, 12);
	assert_int_equal(w, 13);
	n = "1.a.h,W=0,foo=bar,S=0,Sx=1";
	assert_true(index_name_sizes(n, strlen(n), &s, &w));
	assert_int_equal(s, 0);
	assert_int_equal(w, 0);
	n = "1.a.h,S=1125899906842624,W=1125899906842624";
	assert_true(index_name_sizes(n, strlen(n), &s, &w));
	/* Only the base: what follows is not looked at. */
	n = "1.a.h,S=5,W=6,S=7";
	assert_true(index_name_sizes(n, 13, &s, &w));
	assert_int_equal(s, 5);
	assert_int_equal(w, 6);
	for (i = 0; i < N_ELEMENTS(bad); i++) {
		if (index_name_sizes(bad[i], strlen(bad[i]), &s, &w))
			fprintf(stderr, "accepted %s\n", bad[i]);
		assert_false(index_name_sizes(bad[i], strlen(bad[i]), &s, &w));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_empty_index),
		cmocka_unit_test(test_serialize_refuses_bad_entries),
		cmocka_unit_test(test_truncated_and_flipped),
		cmocka_unit_test(test_bad_checksum_and_trailer),
		cmocka_unit_test(test_header_and_state),
		cmocka_unit_test(test_bad_entries),
		cmocka_unit_test(test_random_damage),
		cmocka_unit_test(test_uidl_for),
		cmocka_unit_test(test_assign_uidls),
		cmocka_unit_test(test_map),
		cmocka_unit_test(test_map_unique),
		cmocka_unit_test(test_index_name_sizes),
		cmocka_unit_test(test_copy_and_block),
		cmocka_unit_test(test_index_cache),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
