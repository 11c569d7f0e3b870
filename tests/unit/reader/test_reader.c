/*
 * test_reader.c: the offline reader without GMime: safe file names
 * (traversal, hidden, control characters, long names), numbered
 * duplicates, text cleaned for a terminal, the HTML tag stripper, the
 * mboxrd transducer and scanner, and the Maildir ids and changes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "reader/folder.h"
#include "reader/mboxrd.h"
#include "reader/reader_limits.h"
#include "reader/text.h"

static void
safe_is(const char *in, unsigned int part, const char *want)
{
	char out[READER_MAX_FILENAME + 64];

	assert_int_equal(rd_safe_filename(in, part, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void
test_safe_filename(void **state)
{
	char out[READER_MAX_FILENAME + 64], longname[600];
	size_t i;

	(void)state;
	safe_is("report.pdf", 2, "report.pdf");
	safe_is("../../etc/passwd", 2, "_.._etc_passwd");
	safe_is("..", 3, "part-3");
	safe_is(".", 3, "part-3");
	safe_is("", 4, "part-4");
	safe_is(NULL, 5, "part-5");
	safe_is(".hidden", 2, "hidden");
	safe_is("...  .x", 2, "x");
	safe_is("/abs", 2, "_abs");
	safe_is("a\\b", 2, "a_b");
	safe_is("tab\there\x7f\x1b[0m", 2, "tab_here__[0m");
	safe_is("c1\xc2\x85x", 2, "c1_x");		/* U+0085 */
	safe_is("bad\xff\xfeutf8", 2, "bad__utf8");
	safe_is("trailing. . ", 2, "trailing");
	safe_is("\xc3\xa9t\xc3\xa9.txt", 2, "\xc3\xa9t\xc3\xa9.txt");
	/* Long: cut on a character boundary, the extension kept. */
	for (i = 0; i + 2 < 500; i += 2)
		memcpy(longname + i, "\xc3\xa9", 2);
	memcpy(longname + 498, ".pdf", 5);
	assert_int_equal(rd_safe_filename(longname, 1, out, sizeof(out)), 0);
	assert_true(strlen(out) <= READER_MAX_FILENAME);
	assert_true(strlen(out) >= READER_MAX_FILENAME - 1);
	assert_string_equal(out + strlen(out) - 4, ".pdf");
	assert_int_not_equal((unsigned char)out[strlen(out) - 5], 0xc3);
	/* A long extension is not one. */
	memset(longname, 'a', 300);
	memcpy(longname + 300, ".bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 38);
	assert_int_equal(rd_safe_filename(longname, 1, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), READER_MAX_FILENAME);
	assert_null(strchr(out, '.'));
	/* Too small an output. */
	assert_int_equal(rd_safe_filename("x", 1, out, 10), -1);
}

static void
test_numbered_name(void **state)
{
	char out[300];

	(void)state;
	assert_int_equal(rd_numbered_name("report.pdf", 1, out, sizeof(out)),
	    0);
	assert_string_equal(out, "report (1).pdf");
	assert_int_equal(rd_numbered_name("notes", 12, out, sizeof(out)), 0);
	assert_string_equal(out, "notes (12)");
	assert_int_equal(rd_numbered_name("_.._etc_passwd", 1, out,
	    sizeof(out)), 0);
	assert_string_equal(out, "_.._etc_passwd (1)");
	assert_int_equal(rd_numbered_name("a.tar.gz", 2, out, sizeof(out)),
	    0);
	assert_string_equal(out, "a.tar (2).gz");
	assert_int_equal(rd_numbered_name("x.pdf", 1, out, 6), -1);
}

static void
clean_is(const char *in, size_t len, bool one_line, const char *want)
{
	struct buf b;

	buf_init(&b, 1024);
	assert_int_equal(rd_clean_text(&b, in, len, one_line), 0);
	assert_non_null(buf_str(&b));
	assert_string_equal(b.data, want);
	buf_clear(&b);
}

static void
test_clean_text(void **state)
{
	struct buf b;

	(void)state;
	clean_is("a\x1b[2Jb\x07\r\nc\td\n", 13, false, "a?[2Jb?\nc\td\n");
	clean_is("x\ry", 3, false, "x?y");
	clean_is("bad \xff\xc3", 6, false, "bad \xef\xbf\xbd\xef\xbf\xbd");
	clean_is("\xc2\x9b" "31m", 5, false, "?31m");	/* C1 CSI */
	clean_is("\xed\xa0\x80", 3, false,
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");	/* a surrogate */
	clean_is("\xc0\xaf", 2, false, "\xef\xbf\xbd\xef\xbf\xbd");
	clean_is("one\n  two\t\tthree\r\n", 18, true, "one two three ");
	clean_is("nul\0x", 5, false, "nul?x");
	assert_int_equal(rd_utf8_width("\xc3\xa9t\xc3\xa9", 5), 3);
	assert_int_equal(rd_utf8_prefix("\xc3\xa9t\xc3\xa9", 5, 2), 3);
	/* The ceiling. */
	buf_init(&b, 4);
	assert_int_equal(rd_clean_text(&b, "abcdef", 6, false), -1);
	buf_clear(&b);
}

static void
strip_is(const char *html, const char *want)
{
	struct buf b;

	buf_init(&b, 4096);
	assert_int_equal(rd_strip_tags(&b, html, strlen(html)), 0);
	assert_non_null(buf_str(&b));
	assert_string_equal(b.data, want);
	buf_clear(&b);
}

static void
test_strip_tags(void **state)
{
	(void)state;
	strip_is("<p>Hello &amp; <b>world</b></p><p>two</p>",
	    "Hello & world\ntwo\n");
	strip_is("<script>if (a<b) x()</script>ok<style>p{}</style>",
	    "ok\n");
	strip_is("a<br>b<BR/>c", "a\nb\nc\n");
	strip_is("&#233;&#xe9;&lt;&gt;&quot;&nbsp;&bogus; &", "\xc3\xa9\xc3\xa9"
	    "<>\" &bogus; &\n");
	strip_is("x<!-- <p>hidden</p> -->y", "xy\n");
	strip_is("&#0;&#x110000;&#55296;", "\xef\xbf\xbd\xef\xbf\xbd"
	    "\xef\xbf\xbd\n");
	strip_is("unterminated <b", "unterminated\n");
	strip_is("<!-- no end", "");
	strip_is("", "");
}

static void
filter_is(bool quote, const char *in, const char *want, size_t step)
{
	struct mboxrd_filter f;
	struct buf b;
	size_t i, n = strlen(in);

	buf_init(&b, 1 << 20);
	mboxrd_filter_init(&f, quote);
	/* Fed in pieces of step octets: a line start may be split. */
	for (i = 0; i < n; i += step)
		assert_int_equal(mboxrd_filter_run(&f, in + i, n - i < step ?
		    n - i : step, &b), 0);
	assert_int_equal(mboxrd_filter_end(&f, &b), 0);
	assert_non_null(buf_str(&b));
	assert_string_equal(b.data, want);
	buf_clear(&b);
}

static void
test_mboxrd_filter(void **state)
{
	static const char plain[] = "From me\n>From x\n>>From y\nFromage\n"
	    " From z\n>>>\n>Fro\nFrom";
	static const char quoted[] = ">From me\n>>From x\n>>>From y\nFromage\n"
	    " From z\n>>>\n>Fro\nFrom";
	size_t step;

	(void)state;
	for (step = 1; step <= sizeof(plain); step++) {
		filter_is(true, plain, quoted, step);
		filter_is(false, quoted, plain, step);
	}
	/* Unquoting a From_ line without '>' leaves it. */
	filter_is(false, "From x\n", "From x\n", 3);
}

static int
memfd_with(const char *data, size_t len)
{
	char path[] = "/tmp/postern-test-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static void
test_mbox_scan(void **state)
{
	static const char mbox[] =
	    "From a Mon Jan  1 00:00:00 2024\nSubject: one\n\n>From q\nx\n\n"
	    "From b Tue Jan  2 00:00:00 2024\nSubject: two\n\nlast";
	struct mbox_msg *m;
	size_t n;
	char err[256], out[128];
	int fd, tfd;
	ssize_t got;

	(void)state;
	fd = memfd_with(mbox, sizeof(mbox) - 1);
	assert_int_equal(mbox_scan(fd, 10, &m, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_string_equal(m[0].from_line, "From a Mon Jan  1 00:00:00 2024");
	assert_int_equal(m[0].from_off, 0);
	assert_int_equal(m[0].len, strlen("Subject: one\n\n>From q\nx\n"));
	assert_string_equal(m[1].from_line, "From b Tue Jan  2 00:00:00 2024");
	assert_int_equal(m[1].len, strlen("Subject: two\n\nlast"));
	tfd = memfd_with("", 0);
	assert_int_equal(mbox_spool(fd, &m[0], tfd), 0);
	got = pread(tfd, out, sizeof(out), 0);
	assert_int_equal(got, strlen("Subject: one\n\nFrom q\nx\n"));
	assert_memory_equal(out, "Subject: one\n\nFrom q\nx\n", (size_t)got);
	close(tfd);
	free(m);
	/* The limit, and files that are not mboxes. */
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(mbox_scan(fd, 1, &m, &n, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than 1"));
	close(fd);
	fd = memfd_with("Subject: x\n\nFrom y\n", 19);
	assert_int_equal(mbox_scan(fd, 10, &m, &n, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not an mbox"));
	close(fd);
	fd = memfd_with("", 0);
	assert_int_equal(mbox_scan(fd, 10, &m, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	close(fd);
}

static void
test_mbox_write(void **state)
{
	static const char msg[] = "Subject: w\n\nFrom here\n>From there";
	char out[256];
	int in, outfd;
	ssize_t got;

	(void)state;
	in = memfd_with(msg, sizeof(msg) - 1);
	outfd = memfd_with("", 0);
	assert_int_equal(mbox_write_message(outfd, "From s Mon Jan  1 00:00:00"
	    " 2024", in, sizeof(msg) - 1), 0);
	got = pread(outfd, out, sizeof(out) - 1, 0);
	assert_true(got > 0);
	out[got] = '\0';
	assert_string_equal(out, "From s Mon Jan  1 00:00:00 2024\n"
	    "Subject: w\n\n>From here\n>>From there\n\n");
	assert_int_equal(mbox_write_message(outfd, "Frm x", in, 1), -1);
	assert_int_equal(mbox_write_message(outfd, "From x\ny", in, 1), -1);
	close(in);
	close(outfd);
}

/* A Maildir in a fresh temporary directory. */
static char *
make_maildir(void)
{
	char *d = strdup("/tmp/postern-md-XXXXXX");
	char p[512];

	assert_non_null(mkdtemp(d));
	snprintf(p, sizeof(p), "%s/new", d);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/cur", d);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/tmp", d);
	assert_int_equal(mkdir(p, 0700), 0);
	return d;
}

static void
put(const char *dir, const char *name, const char *data)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_non_null(f = fopen(p, "w"));
	fputs(data, f);
	fclose(f);
}

static bool
exists(const char *dir, const char *name)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

static void
test_maildir_changes(void **state)
{
	struct rd_box box;
	struct rd_entry *e;
	char err[512], id[RD_HASH_HEX + 1], cmd[600];
	char *d = make_maildir();

	(void)state;
	put(d, "new/111.a.host", "Subject: a\n\n");
	put(d, "cur/222.b.host:2,RF", "Subject: b\n\n");
	put(d, "new/.dotfile", "not a message");
	assert_int_equal(rd_box_open_maildir(&box, d, NULL, err, sizeof(err)),
	    0);
	assert_int_equal(box.count, 2);
	/* Find by a prefix of the hash of "111.a.host". */
	e = &box.entries[0];
	if (strcmp(e->name, "new/111.a.host") != 0)
		e = &box.entries[1];
	assert_string_equal(e->name, "new/111.a.host");
	assert_false(e->seen);
	memcpy(id, e->hash, 8);
	id[8] = '\0';
	assert_ptr_equal(rd_box_find(&box, id, err, sizeof(err)), e);
	assert_null(rd_box_find(&box, "xyz", err, sizeof(err)));
	assert_null(rd_box_find(&box, "", err, sizeof(err)));
	/* Seen: new/ to cur/ with the info, flags in order. */
	assert_int_equal(rd_set_seen(&box, e, true, err, sizeof(err)), 0);
	assert_true(exists(d, "cur/111.a.host:2,S"));
	assert_false(exists(d, "new/111.a.host"));
	assert_ptr_equal(rd_box_find(&box, box.entries[0].hash, err,
	    sizeof(err)), &box.entries[0]);
	e = strstr(box.entries[0].name, "222") != NULL ? &box.entries[0] :
	    &box.entries[1];
	assert_int_equal(rd_set_seen(&box, e, true, err, sizeof(err)), 0);
	assert_true(exists(d, "cur/222.b.host:2,FRS"));
	assert_int_equal(rd_set_seen(&box, e, false, err, sizeof(err)), 0);
	assert_true(exists(d, "cur/222.b.host:2,FR"));
	/* Move and purge. */
	assert_int_equal(rd_move(&box, e, "Work.2024", err, sizeof(err)), 0);
	assert_true(exists(d, ".Work.2024/cur/222.b.host:2,FR"));
	assert_true(exists(d, ".Work.2024/maildirfolder"));
	assert_true(exists(d, ".Work.2024/tmp"));
	assert_int_equal(rd_move(&box, e, "../x", err, sizeof(err)), -1);
	rd_box_close(&box);
	/* The id survives the move. */
	assert_int_equal(rd_box_open_maildir(&box, d, "Work.2024", err,
	    sizeof(err)), 0);
	assert_int_equal(box.count, 1);
	e = &box.entries[0];
	assert_int_equal(rd_purge(&box, e, err, sizeof(err)), 0);
	assert_false(exists(d, ".Work.2024/cur/222.b.host:2,FR"));
	rd_box_close(&box);
	assert_int_equal(rd_box_open_maildir(&box, d, "..", err, sizeof(err)),
	    -1);
	assert_int_equal(rd_box_open_maildir(&box, d, "None", err,
	    sizeof(err)), -1);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	assert_int_equal(system(cmd), 0);
	free(d);
}

static void
test_folder_names(void **state)
{
	char longname[READER_MAX_FOLDER + 2];

	(void)state;
	assert_true(rd_folder_name_ok("Archive"));
	assert_true(rd_folder_name_ok("Archive.2024"));
	assert_true(rd_folder_name_ok("a_b-c"));
	assert_false(rd_folder_name_ok(""));
	assert_false(rd_folder_name_ok(".x"));
	assert_false(rd_folder_name_ok("x."));
	assert_false(rd_folder_name_ok("a..b"));
	assert_false(rd_folder_name_ok("a/b"));
	assert_false(rd_folder_name_ok("a b"));
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_false(rd_folder_name_ok(longname));
	longname[READER_MAX_FOLDER] = '\0';
	assert_true(rd_folder_name_ok(longname));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_safe_filename),
		cmocka_unit_test(test_numbered_name),
		cmocka_unit_test(test_clean_text),
		cmocka_unit_test(test_strip_tags),
		cmocka_unit_test(test_mboxrd_filter),
		cmocka_unit_test(test_mbox_scan),
		cmocka_unit_test(test_mbox_write),
		cmocka_unit_test(test_maildir_changes),
		cmocka_unit_test(test_folder_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
