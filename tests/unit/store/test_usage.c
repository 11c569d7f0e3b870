/*
 * test_usage.c: mailbox_usage on Maildirs in a temporary directory: a
 * missing mailbox is empty; delivered messages count their wire sizes
 * from their names; messages a session moved to cur/ (and recorded in
 * the index) count the index's sizes; files without sizes count their
 * stored octets; dot files and directories do not count.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

struct fx {
	char	root[64];
	char	mbox[160];
};

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
	snprintf(f->root, sizeof(f->root), "/tmp/test_usage.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->mbox, sizeof(f->mbox), "%s/alice", f->root);
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

static void
put(const struct fx *f, const char *rel, const char *data)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", f->mbox, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
}

static void
deliver(const struct fx *f, const char *msg, uint64_t *wire_r)
{
	struct delivery_info info;
	char err[256];
	int fd = open("/dev/null", O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(mailbox_deliver(f->mbox, msg, strlen(msg), fd,
	    UINT64_MAX, &info, err, sizeof(err)), STORE_OK);
	close(fd);
	*wire_r = info.size;
}

static void
test_missing_is_empty(void **state)
{
	struct fx *f = *state;
	uint64_t bytes = 1;
	uint32_t count = 1;
	char err[256];

	assert_int_equal(mailbox_usage(f->mbox, &bytes, &count, err,
	    sizeof(err)), STORE_OK);
	assert_int_equal(bytes, 0);
	assert_int_equal(count, 0);
}

static void
test_sizes(void **state)
{
	struct fx *f = *state;
	struct mailbox_opts o = { .create = false };
	struct mailbox *mb;
	uint64_t w1, w2, bytes;
	uint32_t count;
	char err[256], dir[256];

	deliver(f, "Subject: a\n\nLF lines\n", &w1);
	deliver(f, "Subject: b\r\n\r\nCRLF\r\n", &w2);
	assert_int_equal(w1, strlen("Subject: a\n\nLF lines\n") + 3);
	assert_int_equal(mailbox_usage(f->mbox, &bytes, &count, err,
	    sizeof(err)), STORE_OK);
	assert_int_equal(count, 2);
	assert_int_equal(bytes, w1 + w2);
	/* A session moves them to cur/ and writes the index. */
	assert_int_equal(mailbox_open(f->mbox, &o, &mb, err, sizeof(err)),
	    STORE_OK);
	assert_int_equal(mailbox_count(mb), 2);
	mailbox_close(&mb);
	assert_int_equal(mailbox_usage(f->mbox, &bytes, &count, err,
	    sizeof(err)), STORE_OK);
	assert_int_equal(count, 2);
	assert_int_equal(bytes, w1 + w2);
	/* A file with no sizes in its name counts its octets; dot files
	 * and directories do not count. */
	put(f, "new/1700000000.M1P1.host", "0123456789");
	put(f, "cur/.hidden", "xxxxxxxx");
	snprintf(dir, sizeof(dir), "%s/cur/adir", f->mbox);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mailbox_usage(f->mbox, &bytes, &count, err,
	    sizeof(err)), STORE_OK);
	assert_int_equal(count, 3);
	assert_int_equal(bytes, w1 + w2 + 10);
}

static void
test_corrupt_index_is_ignored(void **state)
{
	struct fx *f = *state;
	uint64_t w1, bytes;
	uint32_t count;
	char err[256];

	deliver(f, "Subject: c\n\nx\n", &w1);
	put(f, "postern.index", "garbage\n");
	assert_int_equal(mailbox_usage(f->mbox, &bytes, &count, err,
	    sizeof(err)), STORE_OK);
	assert_int_equal(count, 1);
	assert_int_equal(bytes, w1);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_missing_is_empty),
		T(test_sizes),
		T(test_corrupt_index_is_ignored),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
