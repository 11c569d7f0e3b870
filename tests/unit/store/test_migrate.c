/*
 * test_migrate.c: the parsers of postern migrate-uidl's sources
 * (dovecot-uidlist, courierpop3dsizelist, X-UIDL headers), Dovecot's
 * pop3_uidl_format, and the UIDL map (postern.uidls) with the UIDL
 * assignment that consults it, without a file system.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/limits.h"
#include "store/index.h"
#include "store/migrate.h"

static int
dovecot(const char *text, const char *fmt, struct migrate_list *l)
{
	char err[256];

	migrate_list_init(l);
	return migrate_parse_dovecot(text, strlen(text), fmt, l, err,
	    sizeof(err));
}

static int
courier(const char *text, struct migrate_list *l, char *err, size_t n)
{
	migrate_list_init(l);
	return migrate_parse_courier(text, strlen(text), l, err, n);
}

static void
want(const struct migrate_list *l, size_t i, const char *base,
    const char *uidl)
{
	assert_true(i < l->n);
	assert_string_equal(l->v[i].base, base);
	assert_string_equal(l->v[i].uidl, uidl);
}

static void
test_dovecot_default_format(void **state)
{
	struct migrate_list l;

	(void)state;
	assert_int_equal(dovecot("3 V1795340538 N4 Gf56e\n"
	    "1 W69 :1795340538.M1P29714.host,S=69\n"
	    "26 :1795340538.M2P29714.host:2,S\n", MIGRATE_DOVECOT_FORMAT,
	    &l), 0);
	assert_int_equal(l.n, 2);
	want(&l, 0, "1795340538.M1P29714.host,S=69", "000000016b02b8fa");
	want(&l, 1, "1795340538.M2P29714.host", "0000001a6b02b8fa");
	migrate_list_free(&l);
}

static void
test_dovecot_p_and_g(void **state)
{
	struct migrate_list l;

	(void)state;
	assert_int_equal(dovecot("3 V5 N9\n"
	    "1 Pfrom-before W1 :a\n"
	    "2 P :b\n"
	    "3 G0a0b :c\n"
	    "4 :d e\n", "%g/%u", &l), 0);
	assert_int_equal(l.n, 4);
	want(&l, 0, "a", "from-before");
	want(&l, 1, "b", "b");			/* empty P: the base name */
	want(&l, 2, "c", "0a0b/3");		/* G: the GUID */
	want(&l, 3, "d e", "d e/4");		/* invalid: kept, reported */
	migrate_list_free(&l);
}

static void
test_dovecot_refused(void **state)
{
	static const char *const bad[] = {
		"",
		"3 V1 N2",				/* no newline */
		"1 1600000000 3\n",			/* version 1 */
		"2 V1\n",
		"4 V1\n",
		"3 N2\n",				/* no V */
		"3 V0\n",
		"3 Vx\n",
		"3  V1\n",
		"3 V1\nx :a\n",
		"3 V1\n0 :a\n",
		"3 V1\n1 W1\n",				/* no name */
		"3 V1\n1 :\n",
		"3 V1\n1 w1 :a\n",			/* not a key */
		"3 V1\n1  :a\n",
		"3 V1\n4294967296 :a\n",
		"3 V1\n1 :a\0b\n",
	};
	struct migrate_list l;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = i == 16 ? 12 : strlen(bad[i]);

		migrate_list_init(&l);
		assert_int_equal(migrate_parse_dovecot(bad[i], len,
		    MIGRATE_DOVECOT_FORMAT, &l, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "dovecot-uidlist"));
		migrate_list_free(&l);
	}
}

static void
test_format(void **state)
{
	char out[200], err[256];

	(void)state;
	assert_int_equal(migrate_format_expand("%08Xu%08Xv", 1, 1795340538,
	    "g", "f", out, sizeof(out)), 0);
	assert_string_equal(out, "000000016b02b8fa");
	assert_int_equal(migrate_format_expand("%v.%u", 7, 77, "g", "f", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "77.7");
	assert_int_equal(migrate_format_expand("%Uf-%Lg-%3f-%{uid}%%", 7, 77,
	    "GuId", "abcdef", out, sizeof(out)), 0);
	assert_string_equal(out, "ABCDEF-guid-abc-7%");
	assert_int_equal(migrate_format_expand("%{uidvalidity}-%{filename}",
	    7, 77, "g", "f", out, sizeof(out)), 0);
	assert_string_equal(out, "77-f");
	/* Cut to fit, and said so. */
	assert_int_equal(migrate_format_expand("%f", 1, 1, "g", "abcdef",
	    out, 4), -1);
	assert_string_equal(out, "abc");

	assert_int_equal(migrate_format_check("%08Xu%08Xv", err,
	    sizeof(err)), 0);
	assert_int_equal(migrate_format_check("%m", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "MD5"));
	assert_int_equal(migrate_format_check("%{md5}", err, sizeof(err)),
	    -1);
	assert_int_equal(migrate_format_check("%Xg", err, sizeof(err)), -1);
	assert_int_equal(migrate_format_check("%-1.2u", err, sizeof(err)),
	    -1);
	assert_int_equal(migrate_format_check("%1.2u", err, sizeof(err)), -1);
	assert_int_equal(migrate_format_check("%{nope}", err, sizeof(err)),
	    -1);
	assert_int_equal(migrate_format_check("%{uid", err, sizeof(err)), -1);
	assert_int_equal(migrate_format_check("%", err, sizeof(err)), -1);
	assert_int_equal(migrate_format_check("%071u", err, sizeof(err)), -1);
	assert_int_equal(migrate_format_check("a\tb", err, sizeof(err)), -1);
	assert_int_equal(migrate_format_check("", err, sizeof(err)), -1);
}

static void
test_courier(void **state)
{
	struct migrate_list l;
	char err[256];

	(void)state;
	assert_int_equal(courier("/2 9 1600000000\n"
	    "a:2,S 20 1:1600000000\n"
	    "name with spaces:2, 30 2:1600000000\n"
	    "c 5 3:0\n"
	    "d+'\":2,S 5 0:0\n", &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 4);
	want(&l, 0, "a", "UID1-1600000000");
	want(&l, 1, "name with spaces", "UID2-1600000000");
	want(&l, 2, "c", "UID3");
	want(&l, 3, "d+'\"", "d+2B+27+22");
	migrate_list_free(&l);

	assert_int_equal(courier("/3 9 7\nx:2,S 20 4:7:1\ny 1 5:7:0\n", &l,
	    err, sizeof(err)), 0);
	want(&l, 0, "x", "UID4-7");
	want(&l, 1, "y", "UID5-7");
	migrate_list_free(&l);

	/* A header without UIDVALIDITY is Courier's too. */
	assert_int_equal(courier("/2 9\n", &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 0);
	migrate_list_free(&l);
}

static void
test_courier_refused(void **state)
{
	static const char *const bad[] = {
		"",
		"a 20\n",
		"/1 2 3\n",
		"/4 2 3\n",
		"/x 2 3\n",
		"/2\n",
		"/2 1 2 3\n",
		"/2 1 2\na 20 1:2",		/* no newline */
		"/2 1 2\na\n",
		"/2 1 2\na 20\n",
		"/2 1 2\n 20 1:2\n",
		"/2 1 2\na x 1:2\n",
		"/2 1 2\na 20 1\n",
		"/2 1 2\na 20 1:x\n",
		"/2 1 2\na 20 1:2:3\n",		/* utf8 is 0 or 1 */
		"/2 1 2\na 20 :2\n",
		"/2 1 2\n:2,S 20 1:2\n",	/* empty base name */
	};
	struct migrate_list l;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(courier(bad[i], &l, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "courierpop3dsizelist"));
		migrate_list_free(&l);
	}
}

static char *
xuidl(const char *text)
{
	char *u = NULL;
	int r = migrate_xuidl(text, strlen(text), &u);

	assert_true(r == 0 || r == 1);
	assert_true((r == 1) == (u != NULL));
	return u;
}

static void
test_xuidl(void **state)
{
	char *u;

	(void)state;
	u = xuidl("Subject: x\nX-UIDL: abc\n\nbody\n");
	assert_string_equal(u, "abc");
	free(u);
	u = xuidl("x-uidl :\t abc \r\n\r\n");
	assert_string_equal(u, "abc");
	free(u);
	u = xuidl("X-Uidl: ab\n cd\nX-UIDL: second\n\n");
	assert_string_equal(u, "ab cd");	/* unfolded; invalid later */
	free(u);
	u = xuidl("X-UIDL:\n\tfolded\nSubject: y\n\n");
	assert_string_equal(u, "folded");
	free(u);
	assert_null(xuidl("Subject: x\n\nX-UIDL: in the body\n"));
	assert_null(xuidl("X-UIDLS: no\n\n"));
	assert_null(xuidl("X-UID: no\n\n"));
	assert_null(xuidl(""));
	/* An overlong line before it is skipped, not fatal. */
	{
		size_t n = MIGRATE_MAX_LINE * 2;
		char *big = malloc(n + 64);

		assert_non_null(big);
		memcpy(big, "Received: ", 10);
		memset(big + 10, 'a', n - 10);
		strcpy(big + n, "\nX-UIDL: after\n\n");
		u = xuidl(big);
		assert_string_equal(u, "after");
		free(u);
		free(big);
	}
}

static void
test_uidl_map_roundtrip(void **state)
{
	struct uidl_map m, back;
	struct buf b;
	char err[256];

	(void)state;
	uidl_map_init(&m);
	assert_int_equal(uidl_map_put(&m, "a b%c", 5, "UID1-2"), 0);
	assert_int_equal(uidl_map_put(&m, "plain:2,S", 5, "UID2-2"), 0);
	assert_int_equal(uidl_map_put(&m, "plain", 5, "UID2-2"), 0);
	assert_int_equal(uidl_map_put(&m, "plain", 5, "other"), -1);
	assert_int_equal(uidl_map_put(&m, "x", 1, "UID1-2"), -1);
	assert_int_equal(uidl_map_put(&m, "y", 1, "bad uidl"), -1);
	assert_int_equal(uidl_map_put(&m, ".dot", 4, "ok"), -1);
	assert_int_equal(uidl_map_put(&m, "a:2,S", 5, "ok"), -1);
	assert_int_equal(m.n, 2);
	assert_string_equal(uidl_map_get(&m, "plain:2,S", 5), "UID2-2");
	assert_null(uidl_map_get(&m, "plai", 4));
	assert_true(uidl_map_has_uidl(&m, "UID1-2"));

	buf_init(&b, 1 << 20);
	assert_int_equal(uidl_map_serialize(&m, &b), 0);
	assert_int_equal(uidl_map_parse(b.data, b.len, &back, err,
	    sizeof(err)), 0);
	assert_int_equal(back.n, 2);
	assert_string_equal(uidl_map_get(&back, "a b%c", 5), "UID1-2");
	assert_non_null(strstr(b.data, "UID1-2 a%20b%25c\n"));
	/* Any change of a byte is refused. */
	b.data[b.len / 2] ^= 1;
	uidl_map_free(&back);
	assert_int_equal(uidl_map_parse(b.data, b.len, &back, err,
	    sizeof(err)), -1);
	assert_int_equal(back.n, 0);
	buf_clear(&b);
	uidl_map_free(&m);
}

static void
test_uidl_map_refused(void **state)
{
	static const char *const bad[] = {
		"",
		"postern-uidls 1\n",
		"postern-uidls 2\nend 0 0000000000000000\n",
		"postern-uidls 1\nend 1 0000000000000000\n",
	};
	struct uidl_map m;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(uidl_map_parse(bad[i], strlen(bad[i]), &m,
		    err, sizeof(err)), -1);
		assert_non_null(strstr(err, "uidl map"));
	}
}

static void
test_salvage(void **state)
{
	static const char text[] =
	    "postern-index 1\n"
	    "state 1 0 1 0 9\n"
	    "1 u-one 10 10 0 0 one:2,S\n"
	    "2 u-two 10 10 0 0 t%20wo\n"
	    "3 bad line\n"
	    "4 u-one 10 10 0 0 other\n"		/* a repeated UIDL */
	    "5 u-five 10 10 0 0 one:2,T\n"		/* a repeated base */
	    "end 5 0000000000000000\n"
	    "6 u-six 10 10 0 0 cut";
	struct uidl_map m;
	struct index idx;
	char err[256];

	(void)state;
	assert_int_equal(index_parse(text, sizeof(text) - 1, &idx, err,
	    sizeof(err)), -1);
	uidl_map_init(&m);
	assert_int_equal(index_salvage(text, sizeof(text) - 1, &m), 0);
	assert_int_equal(m.n, 2);
	assert_string_equal(uidl_map_get(&m, "one", 3), "u-one");
	assert_string_equal(uidl_map_get(&m, "t wo", 4), "u-two");
	uidl_map_free(&m);
}

static void
test_assign_with_map(void **state)
{
	struct index idx;
	struct uidl_map m;
	struct uidl_assign_stats st;

	(void)state;
	index_init(&idx);
	uidl_map_init(&m);
	/* b's recorded UIDL is a's name: the map wins, a gets a hash. */
	assert_int_equal(uidl_map_put(&m, "b", 1, "a"), 0);
	assert_int_equal(uidl_map_put(&m, "c", 1, "kept-c"), 0);
	assert_int_equal(index_append(&idx, 1, 1, 1, 0, 0, NULL,
	    strdup("a:2,S")), 0);
	assert_int_equal(index_append(&idx, 2, 1, 1, 0, 0, NULL,
	    strdup("b:2,")), 0);
	assert_int_equal(index_append(&idx, 3, 1, 1, 0, 0, strdup("kept-c"),
	    strdup("d")), 0);
	assert_int_equal(index_append(&idx, 4, 1, 1, 0, 0, NULL,
	    strdup("c")), 0);
	assert_int_equal(index_assign_uidls_map(&idx, &m, &st), 0);
	assert_string_equal(idx.v[1].uidl, "a");
	assert_int_equal(strlen(idx.v[0].uidl), 32);	/* attempt 1 */
	assert_string_not_equal(idx.v[3].uidl, "kept-c");
	assert_string_equal(idx.v[3].uidl, "c");
	assert_int_equal(st.from_map, 1);
	assert_int_equal(st.map_differ, 1);
	assert_int_equal(st.map_taken, 1);
	assert_int_equal(st.derived, 2);
	index_free(&idx);
	uidl_map_free(&m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dovecot_default_format),
		cmocka_unit_test(test_dovecot_p_and_g),
		cmocka_unit_test(test_dovecot_refused),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_courier),
		cmocka_unit_test(test_courier_refused),
		cmocka_unit_test(test_xuidl),
		cmocka_unit_test(test_uidl_map_roundtrip),
		cmocka_unit_test(test_uidl_map_refused),
		cmocka_unit_test(test_salvage),
		cmocka_unit_test(test_assign_with_map),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
