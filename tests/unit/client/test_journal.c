/*
 * test_journal.c: the fetch journal (client/journal.h): records survive
 * a reopen, a cut-short or corrupted line is dropped and the file
 * rewritten so that later appends stay intact, a foreign file is
 * refused, compaction keeps exactly what it is told, a batch of records
 * is appended whole or not at all.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/client_limits.h"
#include "client/journal.h"
#include "lib/buf.h"
#include "lib/fsutil.h"

struct fx {
	char	dir[64];
	char	path[128];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/postern-journal.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/a.journal", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static struct journal *
open_ok(const struct fx *f, unsigned int want_dropped)
{
	struct journal *j;
	unsigned int dropped;
	char err[512];

	if (journal_open(f->path, &j, &dropped, err, sizeof(err)) != 0)
		fail_msg("journal_open: %s", err);
	assert_int_equal(dropped, want_dropped);
	return j;
}

static void
append_ok(struct journal *j, const char *uidl)
{
	char err[512];

	if (journal_append(j, uidl, err, sizeof(err)) != 0)
		fail_msg("journal_append %s: %s", uidl, err);
}

static void
file_text(const struct fx *f, struct buf *b)
{
	buf_init(b, 1 << 20);
	assert_int_equal(read_file(f->path, 1 << 20, b), 0);
	assert_non_null(buf_str(b));
}

static void
put_text(const struct fx *f, const char *text, size_t len)
{
	assert_int_equal(write_atomic(f->path, text, len, 0600), 0);
}

static void
test_roundtrip(void **state)
{
	struct fx *f = *state;
	struct journal *j = open_ok(f, 0);
	struct buf b;

	assert_int_equal(journal_count(j), 0);
	append_ok(j, "uid-2");
	append_ok(j, "uid-1");
	append_ok(j, "uid-1");	/* a repeat adds no second entry */
	assert_true(journal_has(j, "uid-1"));
	assert_false(journal_has(j, "uid-3"));
	journal_close(&j);
	assert_null(j);

	j = open_ok(f, 0);
	assert_int_equal(journal_count(j), 2);
	assert_string_equal(journal_uidl(j, 0), "uid-1");
	assert_string_equal(journal_uidl(j, 1), "uid-2");
	journal_close(&j);

	file_text(f, &b);
	assert_true(strncmp(b.data, JOURNAL_HEADER "\n",
	    strlen(JOURNAL_HEADER) + 1) == 0);
	buf_clear(&b);
}

static void
test_cut_short_tail_dropped_and_appends_stay_intact(void **state)
{
	struct fx *f = *state;
	struct journal *j = open_ok(f, 0);
	struct buf b;

	append_ok(j, "first");
	append_ok(j, "second");
	journal_close(&j);
	file_text(f, &b);
	put_text(f, b.data, b.len - 4);	/* "second" cut short */
	buf_clear(&b);

	j = open_ok(f, 1);
	assert_true(journal_has(j, "first"));
	assert_false(journal_has(j, "second"));
	append_ok(j, "third");
	journal_close(&j);

	j = open_ok(f, 0);
	assert_int_equal(journal_count(j), 2);
	assert_true(journal_has(j, "third"));
	journal_close(&j);
}

static void
test_bad_checksum_dropped(void **state)
{
	struct fx *f = *state;
	struct journal *j;
	char text[256];
	int n;

	/* The checksum covers the time too: "bad" claims another one,
	 * "v1" is a version 1 record in a version 2 file, "neg" a time
	 * that is no number of seconds. */
	n = snprintf(text, sizeof(text), "%s\ngood 100 %08x\n"
	    "bad 200 %08x\nbad 00000000\nalso-good 0 %08x\nnospace\n"
	    "v1 %08x\nneg -1 %08x\n", JOURNAL_HEADER,
	    journal_hash("good 100", 8), journal_hash("bad 100", 7),
	    journal_hash("also-good 0", 11), journal_hash("v1", 2),
	    journal_hash("neg -1", 6));
	put_text(f, text, (size_t)n);
	j = open_ok(f, 5);
	assert_int_equal(journal_count(j), 2);
	assert_true(journal_has(j, "good"));
	assert_true(journal_has(j, "also-good"));
	assert_false(journal_has(j, "bad"));
	assert_int_equal(journal_time(j, 0), 0);	/* also-good */
	assert_int_equal(journal_time(j, 1), 100);	/* good */
	journal_close(&j);
	j = open_ok(f, 0);	/* rewritten without the bad lines */
	journal_close(&j);
}

static void
test_version_1_read_and_rewritten_as_version_2(void **state)
{
	struct fx *f = *state;
	struct journal *j;
	struct buf b;
	char text[256];
	time_t before = time(NULL);
	int n;

	n = snprintf(text, sizeof(text), "postern-fetch-journal 1\n"
	    "old-1 %08x\nold-2 %08x\ncut", journal_hash("old-1", 5),
	    journal_hash("old-2", 5));
	put_text(f, text, (size_t)n);
	j = open_ok(f, 1);
	assert_int_equal(journal_count(j), 2);
	assert_true(journal_has(j, "old-1"));
	/* No time in version 1: the records count from their reading. */
	assert_true(journal_time(j, 0) >= before);
	assert_true(journal_time(j, 1) <= time(NULL));
	append_ok(j, "new");
	journal_close(&j);
	file_text(f, &b);
	assert_true(strncmp(b.data, "postern-fetch-journal 2\n", 24) == 0);
	buf_clear(&b);
	j = open_ok(f, 0);
	assert_int_equal(journal_count(j), 3);
	journal_close(&j);
}

static void
test_foreign_file_refused(void **state)
{
	struct fx *f = *state;
	struct journal *j;
	unsigned int dropped;
	char err[512];

	put_text(f, "something else\n", 15);
	assert_int_equal(journal_open(f->path, &j, &dropped, err,
	    sizeof(err)), -1);
	assert_null(j);
	assert_non_null(strstr(err, "not a postern fetch journal"));
}

static void
test_empty_file_is_new(void **state)
{
	struct fx *f = *state;
	struct journal *j;

	put_text(f, "", 0);	/* cut short while being created */
	j = open_ok(f, 0);
	append_ok(j, "x");
	journal_close(&j);
	j = open_ok(f, 0);
	assert_true(journal_has(j, "x"));
	journal_close(&j);
}

static void
test_invalid_uidl_refused(void **state)
{
	struct fx *f = *state;
	struct journal *j = open_ok(f, 0);
	char err[512], longer[FETCH_MAX_ID + 2];

	assert_int_equal(journal_append(j, "has space", err, sizeof(err)),
	    -1);
	assert_int_equal(journal_append(j, "", err, sizeof(err)), -1);
	memset(longer, 'u', FETCH_MAX_ID + 1);
	longer[FETCH_MAX_ID + 1] = '\0';
	assert_int_equal(journal_append(j, longer, err, sizeof(err)), -1);
	longer[FETCH_MAX_ID] = '\0';
	append_ok(j, longer);
	journal_close(&j);
}

static void
test_compact(void **state)
{
	struct fx *f = *state;
	struct journal *j = open_ok(f, 0);
	bool keep[3] = { true, false, true };
	char err[512];

	struct buf b;
	char text[256];
	int n;

	/* Times survive compaction. */
	n = snprintf(text, sizeof(text), "%s\na 11 %08x\nb 22 %08x\n"
	    "c 33 %08x\n", JOURNAL_HEADER, journal_hash("a 11", 4),
	    journal_hash("b 22", 4), journal_hash("c 33", 4));
	put_text(f, text, (size_t)n);
	journal_close(&j);
	j = open_ok(f, 0);
	assert_int_equal(journal_compact(j, keep, err, sizeof(err)), 0);
	assert_int_equal(journal_time(j, 1), 33);
	assert_int_equal(journal_count(j), 2);
	assert_false(journal_has(j, "b"));
	append_ok(j, "d");	/* the journal is appendable after a rewrite */
	journal_close(&j);
	j = open_ok(f, 0);
	assert_int_equal(journal_count(j), 3);
	assert_true(journal_has(j, "a"));
	assert_false(journal_has(j, "b"));
	assert_true(journal_has(j, "d"));
	assert_int_equal(journal_time(j, 0), 11);
	assert_int_equal(journal_time(j, 1), 33);
	journal_close(&j);
	file_text(f, &b);
	assert_non_null(strstr(b.data, "\nc 33 "));
	buf_clear(&b);
}

/* A batch is one write: all its records, or (one invalid) none. */
static void
test_append_all(void **state)
{
	struct fx *f = *state;
	const char *good[] = { "b-2", "a-1", "c-3" };
	const char *bad[] = { "d-4", "has space", "e-5" };
	struct journal *j = open_ok(f, 0);
	char err[512];
	struct buf b;

	assert_int_equal(journal_append_all(j, good, 3, err, sizeof(err)), 0);
	assert_int_equal(journal_append_all(j, good, 0, err, sizeof(err)), 0);
	assert_int_equal(journal_append_all(j, bad, 3, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "invalid UIDL"));
	assert_int_equal(journal_count(j), 3);
	assert_false(journal_has(j, "d-4"));
	journal_close(&j);
	j = open_ok(f, 0);
	assert_int_equal(journal_count(j), 3);
	assert_string_equal(journal_uidl(j, 0), "a-1");
	assert_string_equal(journal_uidl(j, 2), "c-3");
	journal_close(&j);
	file_text(f, &b);
	assert_null(strstr(b.data, "d-4"));
	buf_clear(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_cut_short_tail_dropped_and_appends_stay_intact, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_checksum_dropped,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_version_1_read_and_rewritten_as_version_2, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_foreign_file_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_file_is_new,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_uidl_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_compact, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_append_all, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
