/*
 * test_deliver.c: mailbox_deliver in a temporary directory: the Maildir
 * is created, the file shows up only in new/, the sizes its name records
 * are the ones POP3 reports, every error leaves nothing behind, names
 * stay unique in a tight loop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "pop3/wire.h"
#include "store/index.h"
#include "store/store.h"

#define NO_LIMIT	UINT64_MAX

struct fx {
	char	root[64];
	char	mbox[160];
};

static void
xpath(char *out, size_t size, const struct fx *f, const char *rel)
{
	int n = snprintf(out, size, "%s/%s", f->mbox, rel);

	assert_true(n > 0 && (size_t)n < size);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/test_deliver.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	/* Not there yet: the first delivery creates it, parents too. */
	snprintf(f->mbox, sizeof(f->mbox), "%s/mail/example.org/alice",
	    f->root);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	assert_int_equal(nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
	free(f);
	return 0;
}

/* The regular files of a subdirectory: count, and the first name. */
static int
files_in(const struct fx *f, const char *sub, char *first, size_t size)
{
	struct dirent *de;
	char p[512];
	DIR *d;
	int n = 0;

	xpath(p, sizeof(p), f, sub);
	if ((d = opendir(p)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n++ == 0 && first != NULL)
			snprintf(first, size, "%s", de->d_name);
	}
	closedir(d);
	return n;
}

static void
assert_empty(const struct fx *f)
{
	assert_int_equal(files_in(f, "tmp", NULL, 0), 0);
	assert_int_equal(files_in(f, "new", NULL, 0), 0);
	assert_int_equal(files_in(f, "cur", NULL, 0), 0);
}

/* Reads new/name (or any relative path) whole into a malloc'd buffer. */
static char *
slurp(const struct fx *f, const char *rel, size_t *len_r)
{
	char p[512];
	struct stat st;
	char *buf;
	int fd;

	xpath(p, sizeof(p), f, rel);
	fd = open(p, O_RDONLY);
	assert_true(fd != -1);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len_r = (size_t)st.st_size;
	return buf;
}

/* The POP3 wire form of stored octets, through the one encoder. */
static struct evbuffer *
wire_of(const void *data, size_t len)
{
	struct evbuffer *out = evbuffer_new();
	struct wire_enc e;

	assert_non_null(out);
	wire_enc_init(&e, false, WIRE_ALL_LINES);
	assert_int_equal(wire_enc_feed(&e, data, len, out), 0);
	assert_int_equal(wire_enc_finish(&e, out), 0);
	return out;
}

static void
assert_same_wire(const void *a, size_t alen, const void *b, size_t blen)
{
	struct evbuffer *x = wire_of(a, alen), *y = wire_of(b, blen);
	size_t n = evbuffer_get_length(x);

	assert_int_equal(n, evbuffer_get_length(y));
	if (n > 0)
		assert_memory_equal(evbuffer_pullup(x, -1),
		    evbuffer_pullup(y, -1), n);
	evbuffer_free(x);
	evbuffer_free(y);
}

/* Delivers data in pieces of chunk octets; returns the rc. */
static enum store_rc
deliver_chunks(const struct fx *f, const char *data, size_t len,
    size_t chunk, uint64_t max, struct delivery_info *info)
{
	struct delivery *d;
	char err[512] = "";
	enum store_rc rc;
	size_t o, n;

	rc = mailbox_deliver_begin(f->mbox, max, &d, err, sizeof(err));
	if (rc != STORE_OK)
		return rc;
	assert_non_null(d);
	for (o = 0; o < len; o += n) {
		n = len - o < chunk ? len - o : chunk;
		rc = mailbox_deliver_write(d, data + o, n, err, sizeof(err));
		if (rc != STORE_OK) {
			assert_true(strlen(err) > 0);
			assert_null(strchr(err, '\n'));
			mailbox_deliver_abort(&d);
			assert_null(d);
			return rc;
		}
	}
	rc = mailbox_deliver_commit(&d, info, err, sizeof(err));
	assert_null(d);
	if (rc != STORE_OK)
		fprintf(stderr, "commit: %d %s\n", rc, err);
	return rc;
}

static struct mailbox *
open_mb(const struct fx *f)
{
	struct mailbox_opts o = { .create = false };
	struct mailbox *mb = NULL;
	char err[256] = "";
	enum store_rc rc = mailbox_open(f->mbox, &o, &mb, err, sizeof(err));

	if (rc != STORE_OK)
		fprintf(stderr, "mailbox_open: %d %s\n", rc, err);
	assert_int_equal(rc, STORE_OK);
	return mb;
}

/* The first delivery makes the Maildir; the file is only in new/. */
static void
test_creates_maildir_file_only_in_new(void **state)
{
	struct fx *f = *state;
	static const char msg[] = "Subject: hi\n\nbody\n";
	struct delivery_info info;
	struct stat st;
	char name[300], rel[320], p[512];
	const char *sub[] = { "cur", "new", "tmp" };
	size_t i, len;
	char *got;

	assert_int_equal(deliver_chunks(f, msg, strlen(msg), 4096, NO_LIMIT,
	    &info), STORE_OK);
	for (i = 0; i < 3; i++) {
		xpath(p, sizeof(p), f, sub[i]);
		assert_int_equal(stat(p, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 0777, 0700);
	}
	assert_int_equal(files_in(f, "tmp", NULL, 0), 0);
	assert_int_equal(files_in(f, "cur", NULL, 0), 0);
	assert_int_equal(files_in(f, "new", name, sizeof(name)), 1);
	assert_string_equal(name, info.name);
	snprintf(rel, sizeof(rel), "new/%s", name);
	xpath(p, sizeof(p), f, rel);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	got = slurp(f, rel, &len);
	assert_int_equal(len, strlen(msg));
	assert_memory_equal(got, msg, len);
	free(got);
	/* The Maildir convention: time, unique part, host, then sizes. */
	assert_non_null(strstr(name, ",S=18,W=21"));
	assert_null(strchr(name, ':'));
	assert_null(strchr(name, '/'));
	assert_int_equal(info.stored_size, 18);
	assert_int_equal(info.size, 21);
}

/* Sizes equal what POP3 reports and sends, for every kind of line end,
 * however the octets arrive; a last line without LF gets one, and the
 * wire form stays what it was. */
static void
test_sizes_are_the_wire_sizes(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char	*in;
		const char	*stored;	/* NULL: the same as in */
	} cases[] = {
		{ "Subject: a\n\nbody\n", NULL },
		{ "Subject: a\r\n\r\nbody\r\n", NULL },
		{ "Subject: a\r\n\r\nmixed\nlines\r\n", NULL },
		{ "Subject: a\n\nno newline", "Subject: a\n\nno newline\n" },
		{ "Subject: a\r\n\r\nno newline",
		    "Subject: a\r\n\r\nno newline\r\n" },
		{ "Subject: a\n\ntrailing CR\r",
		    "Subject: a\n\ntrailing CR\r\r\n" },
		{ "Subject: a\n\n.dot\n..two\n.\n", NULL },
		{ "Subject: a\n\nbare\rCR\n", NULL },
		{ "\n", NULL },
		{ "x", "x\n" },
		{ "", NULL },
	};
	static const size_t chunks[] = { 1, 2, 3, 7, 65536 };
	struct mailbox *mb;
	struct delivery_info info;
	char rel[320];
	size_t c, k, len;
	uint32_t n = 0;
	char *got;

	for (c = 0; c < N_ELEMENTS(cases); c++) {
		for (k = 0; k < N_ELEMENTS(chunks); k++) {
			const char *in = cases[c].in;
			const char *want = cases[c].stored != NULL ?
			    cases[c].stored : in;

			assert_int_equal(deliver_chunks(f, in, strlen(in),
			    chunks[k], NO_LIMIT, &info), STORE_OK);
			snprintf(rel, sizeof(rel), "new/%s", info.name);
			got = slurp(f, rel, &len);
			assert_int_equal(len, strlen(want));
			assert_memory_equal(got, want, len);
			assert_int_equal(info.stored_size, len);
			assert_int_equal(info.size, wire_size((const uint8_t *)
			    got, len, NULL));
			assert_same_wire(got, len, in, strlen(in));
			free(got);
			n++;
		}
	}
	/* The first session takes every size from the names. */
	mb = open_mb(f);
	assert_int_equal(mailbox_count(mb), n);
	for (uint32_t i = 0; i < n; i++) {
		const struct msg_info *m = mailbox_msg(mb, i);
		int fd;
		char buf[256];
		ssize_t r;

		assert_int_equal(mailbox_msg_open(mb, i, &fd), STORE_OK);
		r = read(fd, buf, sizeof(buf));
		close(fd);
		assert_true(r >= 0);
		assert_int_equal(m->stored_size, (uint64_t)r);
		assert_int_equal(m->size, wire_size((const uint8_t *)buf,
		    (size_t)r, NULL));
	}
	mailbox_close(&mb);
}

/* A big message streamed from a descriptor, header in front. */
static void
test_deliver_from_fd(void **state)
{
	struct fx *f = *state;
	static const char head[] = "Return-Path: <a@b>\nDelivered-To: c\n";
	struct delivery_info info;
	char tmpl[] = "/tmp/test_deliver_in.XXXXXX", err[512] = "", rel[320];
	size_t total = 3 * 1024 * 1024 + 17, i, len;
	char *body, *got;
	int fd;

	body = malloc(total);
	assert_non_null(body);
	for (i = 0; i < total; i++)
		body[i] = i % 61 == 60 ? '\n' : (char)('a' + i % 26);
	fd = mkstemp(tmpl);
	assert_true(fd != -1);
	unlink(tmpl);
	assert_int_equal(write(fd, body, total), (ssize_t)total);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(mailbox_deliver(f->mbox, head, strlen(head), fd,
	    NO_LIMIT, &info, err, sizeof(err)), STORE_OK);
	close(fd);
	snprintf(rel, sizeof(rel), "new/%s", info.name);
	got = slurp(f, rel, &len);
	/* body ends without LF: one was added. */
	assert_int_equal(len, strlen(head) + total + 1);
	assert_memory_equal(got, head, strlen(head));
	assert_memory_equal(got + strlen(head), body, total);
	assert_int_equal(got[len - 1], '\n');
	assert_int_equal(info.size, wire_size((const uint8_t *)got, len, NULL));
	free(got);
	free(body);
	assert_int_equal(files_in(f, "tmp", NULL, 0), 0);
}

/* The limit: exactly max octets pass, one more leaves nothing. */
static void
test_size_limit(void **state)
{
	struct fx *f = *state;
	static const char msg[] = "Subject: 12345\n\n67890\n";	/* 22 */
	struct delivery_info info;
	char err[512] = "";
	int p[2];

	assert_int_equal(deliver_chunks(f, msg, 22, 5, 21, &info),
	    STORE_TOO_BIG);
	assert_empty(f);
	assert_int_equal(deliver_chunks(f, msg, 22, 65536, 21, &info),
	    STORE_TOO_BIG);
	assert_empty(f);
	/* Through a descriptor, the head counting too. */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], msg + 10, 12), 12);
	close(p[1]);
	assert_int_equal(mailbox_deliver(f->mbox, msg, 10, p[0], 21, &info,
	    err, sizeof(err)), STORE_TOO_BIG);
	close(p[0]);
	assert_non_null(strstr(err, "size limit"));
	assert_empty(f);
	/* The newline the store adds is not counted. */
	assert_int_equal(deliver_chunks(f, msg, 21, 3, 21, &info), STORE_OK);
	assert_int_equal(info.stored_size, 22);
	assert_int_equal(files_in(f, "new", NULL, 0), 1);
	assert_int_equal(files_in(f, "tmp", NULL, 0), 0);
}

/* A write that fails half way (here EFBIG from the file size limit, as
 * a full disk fails with ENOSPC) removes the tmp/ file. */
static void
test_write_failure_leaves_nothing(void **state)
{
	struct fx *f = *state;
	struct delivery_info info;
	struct rlimit old, lim;
	void (*oldsig)(int);
	size_t len = 1024 * 1024;
	char *big;
	enum store_rc rc;

	/* The Maildir exists first, so that only the message is limited. */
	assert_int_equal(deliver_chunks(f, "x\n", 2, 2, NO_LIMIT, &info),
	    STORE_OK);
	assert_int_equal(files_in(f, "new", NULL, 0), 1);
	big = malloc(len);
	assert_non_null(big);
	memset(big, 'y', len);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 64 * 1024;
	oldsig = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	rc = deliver_chunks(f, big, len, 100000, NO_LIMIT, &info);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);
	free(big);
	assert_int_equal(rc, STORE_TOO_BIG);
	assert_int_equal(files_in(f, "tmp", NULL, 0), 0);
	assert_int_equal(files_in(f, "new", NULL, 0), 1);
	assert_int_equal(files_in(f, "cur", NULL, 0), 0);
}

/* A read error of the input: STORE_TEMP, nothing left. */
static void
test_read_error_leaves_nothing(void **state)
{
	struct fx *f = *state;
	struct delivery_info info;
	char err[512] = "";
	int fd;

	fd = open(f->root, O_RDONLY | O_DIRECTORY);	/* read(): EISDIR */
	assert_true(fd != -1);
	assert_int_equal(mailbox_deliver(f->mbox, "head\n", 5, fd, NO_LIMIT,
	    &info, err, sizeof(err)), STORE_TEMP);
	close(fd);
	assert_non_null(strstr(err, "reading the message"));
	assert_empty(f);
}

static void
test_abort_leaves_nothing(void **state)
{
	struct fx *f = *state;
	struct delivery *d = NULL;
	char err[256];

	assert_int_equal(mailbox_deliver_begin(f->mbox, NO_LIMIT, &d, err,
	    sizeof(err)), STORE_OK);
	assert_int_equal(files_in(f, "tmp", NULL, 0), 1);
	assert_int_equal(mailbox_deliver_write(d, "Subject: x\n", 11, err,
	    sizeof(err)), STORE_OK);
	mailbox_deliver_abort(&d);
	assert_null(d);
	mailbox_deliver_abort(&d);	/* NULL is fine */
	assert_empty(f);
}

/* A Maildir whose tmp/ is not a directory: an error, and no file
 * anywhere (also as root, which permissions would not stop). */
static void
test_broken_maildir(void **state)
{
	struct fx *f = *state;
	struct delivery_info info;
	char p[512], err[512] = "";
	int fd;

	assert_int_equal(deliver_chunks(f, "x\n", 2, 2, NO_LIMIT, &info),
	    STORE_OK);
	xpath(p, sizeof(p), f, "tmp");
	assert_int_equal(rmdir(p), 0);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd != -1);
	close(fd);
	assert_int_equal(mailbox_deliver(f->mbox, "y\n", 2, -1, NO_LIMIT,
	    &info, err, sizeof(err)), STORE_PERM);
	assert_non_null(strstr(err, "tmp/"));
	assert_int_equal(files_in(f, "new", NULL, 0), 1);
}

/* 1000 deliveries in a tight loop: 1000 names, 1000 UIDLs. */
static void
test_unique_names(void **state)
{
	struct fx *f = *state;
	struct delivery_info info;
	struct mailbox *mb;
	char msg[64];
	uint32_t i, j;
	int len;

	for (i = 0; i < 1000; i++) {
		len = snprintf(msg, sizeof(msg), "Subject: %u\n\n%u\n", i, i);
		assert_int_equal(deliver_chunks(f, msg, (size_t)len, 64,
		    NO_LIMIT, &info), STORE_OK);
	}
	assert_int_equal(files_in(f, "new", NULL, 0), 1000);
	assert_int_equal(files_in(f, "tmp", NULL, 0), 0);
	mb = open_mb(f);
	assert_int_equal(mailbox_count(mb), 1000);
	for (i = 0; i < 1000; i++)
		for (j = i + 1; j < 1000; j++)
			assert_string_not_equal(mailbox_msg(mb, i)->uidl,
			    mailbox_msg(mb, j)->uidl);
	/* Arrival order is delivery order. */
	for (i = 0; i < 1000; i++) {
		const struct msg_info *m = mailbox_msg(mb, i);
		char buf[64];
		int fd;
		ssize_t r;

		len = snprintf(msg, sizeof(msg), "Subject: %u\n\n%u\n", i, i);
		assert_int_equal(mailbox_msg_open(mb, i, &fd), STORE_OK);
		r = read(fd, buf, sizeof(buf));
		close(fd);
		assert_int_equal(r, len);
		assert_memory_equal(buf, msg, (size_t)len);
		assert_int_equal(m->size, (uint64_t)len + 3);
	}
	mailbox_close(&mb);
}

/* UIDLs of delivered mail survive later sessions and a rebuilt index. */
static void
test_uidls_stable(void **state)
{
	struct fx *f = *state;
	struct delivery_info info;
	struct mailbox *mb;
	char first[128], again[128], p[512];

	assert_int_equal(deliver_chunks(f, "a\n", 2, 2, NO_LIMIT, &info),
	    STORE_OK);
	mb = open_mb(f);
	assert_int_equal(mailbox_count(mb), 1);
	snprintf(first, sizeof(first), "%s", mailbox_msg(mb, 0)->uidl);
	mailbox_close(&mb);
	assert_int_equal(deliver_chunks(f, "b\n", 2, 2, NO_LIMIT, &info),
	    STORE_OK);
	mb = open_mb(f);
	assert_int_equal(mailbox_count(mb), 2);
	assert_string_equal(mailbox_msg(mb, 0)->uidl, first);
	snprintf(again, sizeof(again), "%s", mailbox_msg(mb, 1)->uidl);
	mailbox_close(&mb);
	xpath(p, sizeof(p), f, "postern.index");
	assert_int_equal(unlink(p), 0);
	mb = open_mb(f);
	assert_int_equal(mailbox_count(mb), 2);
	assert_string_equal(mailbox_msg(mb, 0)->uidl, first);
	assert_string_equal(mailbox_msg(mb, 1)->uidl, again);
	mailbox_close(&mb);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_creates_maildir_file_only_in_new),
		T(test_sizes_are_the_wire_sizes),
		T(test_deliver_from_fd),
		T(test_size_limit),
		T(test_write_failure_leaves_nothing),
		T(test_read_error_leaves_nothing),
		T(test_abort_leaves_nothing),
		T(test_broken_maildir),
		T(test_unique_names),
		T(test_uidls_stable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
