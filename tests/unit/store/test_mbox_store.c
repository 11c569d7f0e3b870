/*
 * test_mbox_store.c: the mbox backend through store.h on a temporary
 * directory: deliveries (quoting, sizes, the index learning each one),
 * snapshots and message descriptors, the rewrite in UPDATE, the
 * recovery of an append whose process died, and the locks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/fsutil.h"
#include "store/store.h"

static char dir[64], loc[128], file[96];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/postern-mbox.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/alice", dir);
	snprintf(loc, sizeof(loc), "mbox:%s", file);
	store_set_mbox_limits(300, 300);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static char *
slurp(const char *path, size_t *len)
{
	struct buf b;

	buf_init(&b, 1 << 24);
	assert_int_equal(read_file(path, 1 << 24, &b), 0);
	*len = b.len;
	assert_non_null(buf_str(&b));
	return b.data;
}

static void
deliver(const char *msg, const char *sender, struct delivery_info *info)
{
	struct delivery *d;
	char err[256];
	size_t half = strlen(msg) / 2;

	assert_int_equal(mailbox_deliver_begin(loc, 1 << 20, &d, err,
	    sizeof(err)), STORE_OK);
	mailbox_deliver_set_sender(d, sender);
	/* In two writes, split anywhere. */
	assert_int_equal(mailbox_deliver_write(d, msg, half, err,
	    sizeof(err)), STORE_OK);
	assert_int_equal(mailbox_deliver_write(d, msg + half,
	    strlen(msg) - half, err, sizeof(err)), STORE_OK);
	assert_int_equal(mailbox_deliver_commit(&d, info, err, sizeof(err)),
	    STORE_OK);
	assert_null(d);
}

/* Reads message idx as the session does: stored_size octets from the
 * descriptor's position. */
static char *
read_msg(struct mailbox *mb, uint32_t idx)
{
	const struct msg_info *mi = mailbox_msg(mb, idx);
	char *p;
	int fd;

	assert_int_equal(mailbox_msg_open(mb, idx, &fd), STORE_OK);
	p = calloc(1, mi->stored_size + 1);
	assert_non_null(p);
	assert_int_equal(read(fd, p, mi->stored_size),
	    (ssize_t)mi->stored_size);
	close(fd);
	return p;
}

static const char *msgs[] = {
	"Subject: one\n\nFrom the start\n",
	"Subject: two\n\n>From quoted\nno newline",
	"Subject: three\r\n\r\nbody\r\n",
};

static void
test_deliver_open_commit(void **state)
{
	struct mailbox_opts o = { .create = false };
	struct delivery_info info;
	struct mailbox *mb;
	char err[256], *data, *m;
	uint32_t removed;
	bool del[3] = { false, true, false };
	size_t len, i;

	(void)state;
	/* Missing: an empty mailbox. */
	assert_int_equal(mailbox_open(loc, &o, &mb, err, sizeof(err)),
	    STORE_OK);
	assert_int_equal(mailbox_count(mb), 0);
	mailbox_close(&mb);
	for (i = 0; i < 3; i++) {
		deliver(msgs[i], i == 0 ? "a@example.org" : NULL, &info);
		assert_true(strlen(info.name) > 0);
	}
	assert_int_equal(info.size, strlen("Subject: three\r\n\r\nbody\r\n"));
	data = slurp(file, &len);
	assert_non_null(strstr(data, "From a@example.org "));
	assert_non_null(strstr(data, "\n\n>From the start\n\nFrom "
	    "MAILER-DAEMON "));
	assert_non_null(strstr(data, "\n>>From quoted\nno newline\n\n"));
	free(data);
	assert_int_equal(mailbox_open(loc, &o, &mb, err, sizeof(err)),
	    STORE_OK);
	assert_int_equal(mailbox_count(mb), 3);
	assert_string_equal(mailbox_msg(mb, 2)->uidl, info.name);
	assert_true(mailbox_msg(mb, 0)->flags & MSG_MBOXRD);
	assert_int_equal(mailbox_msg(mb, 1)->size,
	    strlen("Subject: two\r\n\r\n>From quoted\r\nno newline\r\n"));
	m = read_msg(mb, 1);
	assert_string_equal(m, "Subject: two\n\n>>From quoted\nno newline\n");
	free(m);
	assert_int_equal(mailbox_commit(mb, del, NULL, -1, 0, &removed, err,
	    sizeof(err)), STORE_OK);
	assert_int_equal(removed, 1);
	/* The snapshot still reads its (old) file. */
	m = read_msg(mb, 2);
	assert_string_equal(m, msgs[2]);
	free(m);
	mailbox_close(&mb);
	assert_int_equal(mailbox_open(loc, &o, &mb, err, sizeof(err)),
	    STORE_OK);
	assert_int_equal(mailbox_count(mb), 2);
	assert_string_equal(mailbox_msg(mb, 1)->uidl, info.name);
	m = read_msg(mb, 0);
	assert_string_equal(m, "Subject: one\n\n>From the start\n");
	free(m);
	mailbox_close(&mb);
}

/* A delivery that died after its mark and part of its message: the
 * next open cuts the file back to the mark. */
static void
test_recover_append(void **state)
{
	struct mailbox_opts o = { .create = false };
	struct mailbox *mb;
	char err[256], mark[128], *data;
	size_t len, before;
	FILE *f;

	(void)state;
	deliver(msgs[0], NULL, NULL);
	data = slurp(file, &len);
	free(data);
	before = len;
	snprintf(mark, sizeof(mark), "%s/.alice.postern-append", dir);
	f = fopen(mark, "w");
	assert_non_null(f);
	fprintf(f, "%zu\n", before);
	fclose(f);
	f = fopen(file, "a");
	assert_non_null(f);
	fputs("From x Sat Nov 21 10:00:00 2026\nSubject: half\n\nhal", f);
	fclose(f);
	assert_int_equal(mailbox_open(loc, &o, &mb, err, sizeof(err)),
	    STORE_OK);
	assert_int_equal(mailbox_count(mb), 1);
	mailbox_close(&mb);
	data = slurp(file, &len);
	free(data);
	assert_int_equal(len, before);
	data = slurp(mark, &len);
	free(data);
	assert_int_equal(len, 0);
}

/* A dotlock that another program holds: IN-USE within the timeout; one
 * left by a dead Postern delivery (marker, unlocked): removed. */
static void
test_dotlocks(void **state)
{
	struct mailbox_opts o = { .create = false };
	struct mailbox *mb;
	char err[256], lock[128];
	int fd;

	(void)state;
	deliver(msgs[0], NULL, NULL);
	snprintf(lock, sizeof(lock), "%s.lock", file);
	fd = open(lock, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd != -1);
	close(fd);
	assert_int_equal(mailbox_open(loc, &o, &mb, err, sizeof(err)),
	    STORE_IN_USE);
	fd = open(lock, O_WRONLY | O_TRUNC);
	assert_true(fd != -1);
	assert_int_equal(write(fd, "postern\n", 8), 8);
	close(fd);
	assert_int_equal(mailbox_open(loc, &o, &mb, err, sizeof(err)),
	    STORE_OK);
	assert_int_equal(mailbox_count(mb), 1);
	mailbox_close(&mb);
	assert_int_equal(access(lock, F_OK), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_deliver_open_commit,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_append, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dotlocks, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
