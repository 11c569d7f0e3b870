/*
 * test_maildir.c: the Maildir store through store.h, in a temporary
 * directory: moves, sizes, UIDL stability, renames, commits, locks,
 * damage and the readdir shortcut.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

struct fx {
	char	root[64];
	char	mbox[128];
};

static void
xpath(char *out, size_t size, const struct fx *f, const char *rel)
{
	int n = snprintf(out, size, "%s/%s", f->mbox, rel);

	assert_true(n > 0 && (size_t)n < size);
}

static void
put_file(const struct fx *f, const char *rel, const char *data, size_t len)
{
	char p[512];
	int fd;

	xpath(p, sizeof(p), f, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static void
put(const struct fx *f, const char *rel, const char *data)
{
	put_file(f, rel, data, strlen(data));
}

static bool
exists(const struct fx *f, const char *rel)
{
	char p[512];
	struct stat st;

	xpath(p, sizeof(p), f, rel);
	return lstat(p, &st) == 0;
}

static void
set_mtime(const struct fx *f, const char *rel, time_t when)
{
	char p[512];
	struct timespec ts[2];

	xpath(p, sizeof(p), f, rel);
	ts[0].tv_sec = ts[1].tv_sec = when;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void
rm_tree(const char *path)
{
	assert_int_equal(nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct mailbox *mb;
	struct mailbox_opts o = { .create = true };
	char err[256];

	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/test_maildir.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->mbox, sizeof(f->mbox), "%s/users/alice", f->root);
	/* The first open creates the Maildir. */
	assert_int_equal(mailbox_open(f->mbox, &o, &mb, err, sizeof(err)),
	    STORE_OK);
	assert_int_equal(mailbox_count(mb), 0);
	mailbox_close(&mb);
	assert_null(mb);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	rm_tree(f->root);
	free(f);
	return 0;
}

static struct mailbox *
open_mb(const struct fx *f, bool lock)
{
	struct mailbox_opts o = { .lock_session = lock, .create = false };
	struct mailbox *mb = NULL;
	char err[256] = "";
	enum store_rc rc = mailbox_open(f->mbox, &o, &mb, err, sizeof(err));

	if (rc != STORE_OK)
		fprintf(stderr, "mailbox_open: %d %s\n", rc, err);
	assert_int_equal(rc, STORE_OK);
	return mb;
}

/* All UIDLs of a mailbox as one string "u1 u2 ...". */
static char *
uidls(struct mailbox *mb)
{
	static char out[8192];
	size_t o = 0;
	uint32_t i;

	out[0] = '\0';
	for (i = 0; i < mailbox_count(mb); i++) {
		int n = snprintf(out + o, sizeof(out) - o, "%s%s",
		    i > 0 ? " " : "", mailbox_msg(mb, i)->uidl);

		assert_true(n > 0 && (size_t)n < sizeof(out) - o);
		o += (size_t)n;
	}
	return out;
}

static void
read_msg(struct mailbox *mb, uint32_t idx, char *buf, size_t size,
    size_t *len_r)
{
	int fd;
	ssize_t n;

	assert_int_equal(mailbox_msg_open(mb, idx, &fd), STORE_OK);
	n = read(fd, buf, size);
	assert_true(n >= 0);
	*len_r = (size_t)n;
	close(fd);
}

static void
test_create_layout(void **state)
{
	struct fx *f = *state;
	struct stat st;
	char p[512];

	xpath(p, sizeof(p), f, "cur");
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_true(exists(f, "new"));
	assert_true(exists(f, "tmp"));
	assert_true(exists(f, "postern.index"));
	assert_true(exists(f, "postern.lock"));
}

static void
test_missing_without_create(void **state)
{
	struct fx *f = *state;
	struct mailbox_opts o = { .create = false };
	struct mailbox *mb;
	char err[256], p[512];

	(void)f;
	snprintf(p, sizeof(p), "%s/nobody", f->root);
	assert_int_not_equal(mailbox_open(p, &o, &mb, err, sizeof(err)),
	    STORE_OK);
	assert_null(mb);
	assert_true(strlen(err) > 0);
	assert_null(strchr(err, '\n'));
}

static void
test_new_to_cur_and_sizes(void **state)
{
	struct fx *f = *state;
	struct mailbox *mb;
	const struct msg_info *m;
	char buf[256];
	size_t n;

	put(f, "new/1700000002.M2.host", "Subject: b\r\n\r\nbody\r\n");
	put(f, "new/1700000001.M1.host", "Subject: a\n\nbody\nlast");
	put(f, "new/.hidden", "not mail\n");
	put(f, "new/1700000003.M3.host:2,S", "x\n");
	put(f, "new/1700000000.M0.host", "");
	mb = open_mb(f, false);
	assert_int_equal(mailbox_count(mb), 4);
	/* Delivery order: by the leading timestamp. */
	assert_string_equal(uidls(mb), "1700000000.M0.host 1700000001.M1.host"
	    " 1700000002.M2.host 1700000003.M3.host");
	m = mailbox_msg(mb, 0);
	assert_string_equal(m->name, "cur/1700000000.M0.host:2,");
	assert_int_equal(m->size, 0);
	assert_int_equal(m->stored_size, 0);
	m = mailbox_msg(mb, 1);
	assert_string_equal(m->name, "cur/1700000001.M1.host:2,");
	/* "Subject: a\r\n\r\nbody\r\nlast\r\n" */
	assert_int_equal(m->size, 26);
	assert_int_equal(m->stored_size, 21);
	assert_int_equal(m->flags & MSG_WIRE_CLEAN, 0);
	assert_int_equal(m->retr_time, 0);
	m = mailbox_msg(mb, 2);
	assert_int_equal(m->size, 20);
	assert_int_equal(m->stored_size, 20);
	assert_int_equal(m->flags & MSG_WIRE_CLEAN, MSG_WIRE_CLEAN);
	/* A name that carries flags keeps them. */
	m = mailbox_msg(mb, 3);
	assert_string_equal(m->name, "cur/1700000003.M3.host:2,S");
	assert_null(mailbox_msg(mb, 4));
	assert_true(exists(f, "new/.hidden"));
	assert_false(exists(f, "new/1700000001.M1.host"));
	assert_true(exists(f, "cur/1700000001.M1.host:2,"));
	read_msg(mb, 2, buf, sizeof(buf), &n);
	assert_int_equal(n, 20);
	assert_memory_equal(buf, "Subject: b\r\n\r\nbody\r\n", 20);
	mailbox_close(&mb);
}

static void
test_uidl_stable_and_rebuild(void **state)
{
	struct fx *f = *state;
	struct mailbox *mb;
	char first[8192], lname[200], rel[300], p[512];

	memset(lname, 'L', 100);
	lname[100] = '\0';
	snprintf(rel, sizeof(rel), "new/%s", lname);
	put(f, rel, "long name\n");
	put(f, "new/1700000005.a b.host", "space in name\n");
	put(f, "new/1700000004.M4.host", "plain\n");
	mb = open_mb(f, false);
	snprintf(first, sizeof(first), "%s", uidls(mb));
	assert_int_equal(mailbox_count(mb), 3);
	/* Names without a leading timestamp sort by mtime: now, last. */
	assert_string_equal(mailbox_msg(mb, 0)->uidl, "1700000004.M4.host");
	/* A space, and over 70 octets: hashed. */
	assert_int_equal(strlen(mailbox_msg(mb, 1)->uidl), 32);
	assert_int_equal(strlen(mailbox_msg(mb, 2)->uidl), 32);
	mailbox_close(&mb);

	/* A second open gives the same. */
	mb = open_mb(f, false);
	assert_string_equal(uidls(mb), first);
	mailbox_close(&mb);

	/* Without the index: rebuilt from the names, the same UIDLs. */
	xpath(p, sizeof(p), f, "postern.index");
	assert_int_equal(unlink(p), 0);
	mb = open_mb(f, false);
	assert_string_equal(uidls(mb), first);
	mailbox_close(&mb);
	assert_true(exists(f, "postern.index"));

	/* Corrupt index: rebuilt, the same UIDLs. */
	put(f, "postern.index", "postern-index 1\ngarbage\n");
	mb = open_mb(f, false);
	assert_string_equal(uidls(mb), first);
	mailbox_close(&mb);
	put(f, "postern.index", "");
	mb = open_mb(f, false);
	assert_string_equal(uidls(mb), first);
	mailbox_close(&mb);
}

static void
test_flags_rename_keeps_uidl(void **state)
{
	struct fx *f = *state;
	struct mailbox *mb;
	char a[512], b[512], before[8192], buf[64];
	size_t n;

	put(f, "new/1700000010.X.host", "m1\n");
	put(f, "new/1700000011.Y.host", "m2\n");
	mb = open_mb(f, false);
	snprintf(before, sizeof(before), "%s", uidls(mb));
	mailbox_close(&mb);
	/* Another MUA marks the message seen. */
	xpath(a, sizeof(a), f, "cur/1700000010.X.host:2,");
	xpath(b, sizeof(b), f, "cur/1700000010.X.host:2,S");
	assert_int_equal(rename(a, b), 0);
	mb = open_mb(f, false);
	assert_string_equal(uidls(mb), before);
	assert_string_equal(mailbox_msg(mb, 0)->name,
	    "cur/1700000010.X.host:2,S");
	/* And renames it again while this session runs: RETR still works. */
	xpath(a, sizeof(a), f, "cur/1700000010.X.host:2,RS");
	assert_int_equal(rename(b, a), 0);
	read_msg(mb, 0, buf, sizeof(buf), &n);
	assert_int_equal(n, 3);
	assert_memory_equal(buf, "m1\n", 3);
	assert_string_equal(mailbox_msg(mb, 0)->name,
	    "cur/1700000010.X.host:2,RS");
	mailbox_close(&mb);
	/* Even a rebuild gives the same UIDL to the renamed file. */
	xpath(a, sizeof(a), f, "postern.index");
	assert_int_equal(unlink(a), 0);
	mb = open_mb(f, false);
	assert_string_equal(uidls(mb), before);
	mailbox_close(&mb);
}

static void
test_same_base_twice(void **state)
{
	struct fx *f = *state;
	struct mailbox *mb;
	char u0[128], u1[128];

	put(f, "cur/dup:2,S", "one\n");
	put(f, "cur/dup:2,T", "two\n");
	mb = open_mb(f, false);
	assert_int_equal(mailbox_count(mb), 2);
	snprintf(u0, sizeof(u0), "%s", mailbox_msg(mb, 0)->uidl);
	snprintf(u1, sizeof(u1), "%s", mailbox_msg(mb, 1)->uidl);
	assert_string_not_equal(u0, u1);
	mailbox_close(&mb);
	mb = open_mb(f, false);
	assert_string_equal(mailbox_msg(mb, 0)->uidl, u0);
	assert_string_equal(mailbox_msg(mb, 1)->uidl, u1);
	mailbox_close(&mb);
}

static void
test_commit_deletes_marked(void **state)
{
	struct fx *f = *state;
	struct mailbox *mb;
	bool del[3] = { false, true, false };
	uint32_t removed;
	char err[256];

	put(f, "new/1700000001.A.host", "a\n");
	put(f, "new/1700000002.B.host", "b\n");
	put(f, "new/1700000003.C.host", "c\n");
	mb = open_mb(f, false);
	assert_int_equal(mailbox_count(mb), 3);
	assert_int_equal(mailbox_commit(mb, del, NULL, -1, time(NULL),
	    &removed, err, sizeof(err)), STORE_OK);
	assert_int_equal(removed, 1);
	mailbox_close(&mb);
	assert_true(exists(f, "cur/1700000001.A.host:2,"));
	assert_false(exists(f, "cur/1700000002.B.host:2,"));
	assert_true(exists(f, "cur/1700000003.C.host:2,"));
	mb = open_mb(f, false);
	assert_string_equal(uidls(mb), "1700000001.A.host 1700000003.C.host");
	mailbox_close(&mb);

	/* No deletions: nothing removed. */
	mb = open_mb(f, false);
	assert_int_equal(mailbox_commit(mb, NULL, NULL, -1, time(NULL),
	    &removed, err, sizeof(err)), STORE_OK);
	assert_int_equal(removed, 0);
	mailbox_close(&mb);
	mb = open_mb(f, false);
	assert_int_equal(mailbox_count(mb), 2);
	mailbox_close(&mb);
}

static void
test_concurrent_commits_merge(void **state)
{
	struct fx *f = *state;
	struct mailbox *a, *b, *c;
	bool da[3] = { true, false, false }, db[3] = { true, true, false };
	uint32_t removed;
	char err[256];

	put(f, "new/1700000001.A.host", "a\n");
	put(f, "new/1700000002.B.host", "b\n");
	put(f, "new/1700000003.C.host", "c\n");
	a = open_mb(f, false);
	b = open_mb(f, false);
	/* Mail that arrives meanwhile survives both commits. */
	put(f, "new/1700000004.D.host", "d\n");
	c = open_mb(f, false);
	assert_int_equal(mailbox_count(c), 4);
	assert_int_equal(mailbox_commit(a, da, NULL, -1, time(NULL), &removed,
	    err, sizeof(err)), STORE_OK);
	assert_int_equal(removed, 1);
	/* b deletes A (already gone: counts) and B. */
	assert_int_equal(mailbox_commit(b, db, NULL, -1, time(NULL), &removed,
	    err, sizeof(err)), STORE_OK);
	assert_int_equal(removed, 2);
	mailbox_close(&a);
	mailbox_close(&b);
	mailbox_close(&c);
	c = open_mb(f, false);
	assert_string_equal(uidls(c), "1700000003.C.host 1700000004.D.host");
	mailbox_close(&c);
}

static void
test_lock_session(void **state)
{
	struct fx *f = *state;
	struct mailbox_opts o = { .lock_session = true };
	struct mailbox *a, *b, *c;
	char err[256];

	a = open_mb(f, true);
	/* In the same process too: OFD locks. */
	b = NULL;
	assert_int_equal(mailbox_open(f->mbox, &o, &b, err, sizeof(err)),
	    STORE_IN_USE);
	assert_null(b);
	/* Sessions that do not ask for the lock are not stopped. */
	c = open_mb(f, false);
	mailbox_close(&c);
	mailbox_close(&a);
	b = open_mb(f, true);
	mailbox_close(&b);
}

static void
test_gone(void **state)
{
	struct fx *f = *state;
	struct mailbox *mb;
	char p[512];
	int fd = -1;
	bool del[2] = { true, false };
	uint32_t removed;
	char err[256];

	put(f, "new/1700000001.A.host", "a\n");
	put(f, "new/1700000002.B.host", "b\n");
	mb = open_mb(f, false);
	xpath(p, sizeof(p), f, "cur/1700000001.A.host:2,");
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mailbox_msg_open(mb, 0, &fd), STORE_GONE);
	assert_int_equal(fd, -1);
	/* Changed size: gone too. */
	put(f, "cur/1700000002.B.host:2,", "bigger now\n");
	assert_int_equal(mailbox_msg_open(mb, 1, &fd), STORE_GONE);
	assert_int_equal(mailbox_msg_open(mb, 7, &fd), STORE_GONE);
	/* Deleting the vanished one counts as removed. */
	assert_int_equal(mailbox_commit(mb, del, NULL, -1, time(NULL),
	    &removed, err, sizeof(err)), STORE_OK);
	assert_int_equal(removed, 1);
	mailbox_close(&mb);
	mb = open_mb(f, false);
	assert_int_equal(mailbox_count(mb), 1);
	/* The changed file was sized again. */
	assert_int_equal(mailbox_msg(mb, 0)->stored_size, 11);
	mailbox_close(&mb);
}

static void
test_stale_tmp(void **state)
{
	struct fx *f = *state;
	struct mailbox *mb;
	time_t now = time(NULL);

	put(f, "tmp/old", "x");
	put(f, "tmp/fresh", "y");
	put(f, "tmp/almost", "z");
	set_mtime(f, "tmp/old", now - 37 * 3600);
	set_mtime(f, "tmp/almost", now - 35 * 3600);
	mb = open_mb(f, false);
	mailbox_close(&mb);
	assert_false(exists(f, "tmp/old"));
	assert_true(exists(f, "tmp/fresh"));
	assert_true(exists(f, "tmp/almost"));
}

static void
test_expire(void **state)
{
	struct fx *f = *state;
	struct mailbox *mb;
	bool retr[3] = { true, false, true }, del[3] = { false };
	uint32_t removed;
	char err[256];
	time_t now = time(NULL);

	put(f, "new/1700000001.A.host", "a\n");
	put(f, "new/1700000002.B.host", "b\n");
	put(f, "new/1700000003.C.host", "c\n");
	/* EXPIRE NEVER: retrieval times are recorded, nothing removed. */
	mb = open_mb(f, false);
	retr[2] = false;
	assert_int_equal(mailbox_commit(mb, del, retr, -1, now, &removed, err,
	    sizeof(err)), STORE_OK);
	assert_int_equal(removed, 0);
	mailbox_close(&mb);
	mb = open_mb(f, false);
	assert_int_equal(mailbox_msg(mb, 0)->retr_time, (int64_t)now);
	assert_int_equal(mailbox_msg(mb, 1)->retr_time, 0);
	/* EXPIRE 2, three days later: the first goes; the third, retrieved
	 * now, stays. */
	retr[0] = false;
	retr[2] = true;
	assert_int_equal(mailbox_commit(mb, del, retr, 2, now + 3 * 86400,
	    &removed, err, sizeof(err)), STORE_OK);
	assert_int_equal(removed, 1);
	mailbox_close(&mb);
	mb = open_mb(f, false);
	assert_string_equal(uidls(mb), "1700000002.B.host 1700000003.C.host");
	assert_int_equal(mailbox_msg(mb, 1)->retr_time,
	    (int64_t)(now + 3 * 86400));
	/* EXPIRE 0: what this session retrieved goes at once. */
	retr[0] = true;
	retr[1] = false;
	assert_int_equal(mailbox_commit(mb, del, retr, 0, now + 3 * 86400,
	    &removed, err, sizeof(err)), STORE_OK);
	/* Message 2 was retrieved earlier: older than 0 days too. */
	assert_int_equal(removed, 2);
	mailbox_close(&mb);
	mb = open_mb(f, false);
	assert_int_equal(mailbox_count(mb), 0);
	mailbox_close(&mb);
}

static void
test_expire_zero_only_retrieved(void **state)
{
	struct fx *f = *state;
	struct mailbox *mb;
	bool retr[2] = { false, true };
	uint32_t removed;
	char err[256];

	put(f, "new/1700000001.A.host", "a\n");
	put(f, "new/1700000002.B.host", "b\n");
	mb = open_mb(f, false);
	assert_int_equal(mailbox_commit(mb, NULL, retr, 0, time(NULL),
	    &removed, err, sizeof(err)), STORE_OK);
	assert_int_equal(removed, 1);
	mailbox_close(&mb);
	mb = open_mb(f, false);
	assert_string_equal(uidls(mb), "1700000001.A.host");
	mailbox_close(&mb);
}

/* The readdir shortcut: with cur/'s mtime old and unchanged, the index is
 * trusted; any change of the mtime makes the store list cur/ again. */
static void
test_readdir_shortcut(void **state)
{
	struct fx *f = *state;
	struct mailbox *mb;
	time_t old = time(NULL) - 1000;

	put(f, "new/1700000001.A.host", "a\n");
	mb = open_mb(f, false);
	mailbox_close(&mb);
	set_mtime(f, "cur", old);
	/* Lists cur/ and records a trustworthy state. */
	mb = open_mb(f, false);
	assert_int_equal(mailbox_count(mb), 1);
	mailbox_close(&mb);
	/* A file slipped in with the mtime put back: not seen, proving that
	 * cur/ was not listed. */
	put(f, "cur/1700000002.B.host:2,", "b\n");
	set_mtime(f, "cur", old);
	mb = open_mb(f, false);
	assert_int_equal(mailbox_count(mb), 1);
	mailbox_close(&mb);
	/* Any real change of cur/ is seen. */
	set_mtime(f, "cur", old + 1);
	mb = open_mb(f, false);
	assert_int_equal(mailbox_count(mb), 2);
	mailbox_close(&mb);
	/* New mail always makes it list cur/. */
	set_mtime(f, "cur", old);
	mb = open_mb(f, false);
	mailbox_close(&mb);
	put(f, "cur/1700000003.C.host:2,", "c\n");
	set_mtime(f, "cur", old);
	put(f, "new/1700000004.D.host", "d\n");
	mb = open_mb(f, false);
	assert_string_equal(uidls(mb), "1700000001.A.host 1700000002.B.host"
	    " 1700000003.C.host 1700000004.D.host");
	mailbox_close(&mb);
}

/* Order is by arrival: a late message with an older timestamp goes last,
 * and stays last. */
static void
test_order_stable(void **state)
{
	struct fx *f = *state;
	struct mailbox *mb;

	put(f, "new/1700000005.E.host", "e\n");
	mb = open_mb(f, false);
	mailbox_close(&mb);
	put(f, "new/1600000000.Z.host", "z\n");
	mb = open_mb(f, false);
	assert_string_equal(uidls(mb), "1700000005.E.host 1600000000.Z.host");
	mailbox_close(&mb);
	mb = open_mb(f, false);
	assert_string_equal(uidls(mb), "1700000005.E.host 1600000000.Z.host");
	mailbox_close(&mb);
}

static void
test_login_stamp(void **state)
{
	struct fx *f = *state;
	time_t prev = 99;
	char nowhere[256];

	snprintf(nowhere, sizeof(nowhere), "%s/not-yet", f->root);
	assert_int_equal(mailbox_last_login(nowhere, &prev), STORE_OK);
	assert_int_equal(prev, 0);
	assert_int_equal(mailbox_last_login(f->mbox, &prev), STORE_OK);
	assert_int_equal(prev, 0);
	assert_int_equal(mailbox_login_stamp(f->mbox, 1000, &prev), STORE_OK);
	assert_int_equal(prev, 0);
	/* Reading does not record. */
	assert_int_equal(mailbox_last_login(f->mbox, &prev), STORE_OK);
	assert_int_equal(prev, 1000);
	assert_int_equal(mailbox_last_login(f->mbox, &prev), STORE_OK);
	assert_int_equal(prev, 1000);
	assert_int_equal(mailbox_login_stamp(f->mbox, 2000, &prev), STORE_OK);
	assert_int_equal(prev, 1000);
	put(f, "postern.login", "junk");
	assert_int_equal(mailbox_login_stamp(f->mbox, 3000, &prev), STORE_OK);
	assert_int_equal(prev, 0);
	assert_int_equal(mailbox_login_stamp(f->mbox, 4000, &prev), STORE_OK);
	assert_int_equal(prev, 3000);
}

static void
test_symlink_and_dirs_ignored(void **state)
{
	struct fx *f = *state;
	struct mailbox *mb;
	char p[512], t[512];

	put(f, "new/1700000001.A.host", "a\n");
	xpath(p, sizeof(p), f, "cur/1700000009.link:2,");
	xpath(t, sizeof(t), f, "postern.lock");
	assert_int_equal(symlink(t, p), 0);
	xpath(p, sizeof(p), f, "cur/subdir");
	assert_int_equal(mkdir(p, 0700), 0);
	mb = open_mb(f, false);
	assert_string_equal(uidls(mb), "1700000001.A.host");
	mailbox_close(&mb);
}

/* Many messages: the index is read, not the files. */
static void
test_many(void **state)
{
	struct fx *f = *state;
	struct mailbox *mb;
	char rel[64];
	int i;
	uint64_t total = 0;

	for (i = 0; i < 2000; i++) {
		snprintf(rel, sizeof(rel), "new/%d.M%d.host", 1700000000 + i,
		    i);
		put(f, rel, "Subject: x\n\nbody\n");
	}
	mb = open_mb(f, false);
	assert_int_equal(mailbox_count(mb), 2000);
	mailbox_close(&mb);
	set_mtime(f, "cur", time(NULL) - 100);
	mb = open_mb(f, false);
	mailbox_close(&mb);
	mb = open_mb(f, false);
	for (i = 0; i < 2000; i++)
		total += mailbox_msg(mb, (uint32_t)i)->size;
	assert_int_equal(total, 2000 * 20);
	mailbox_close(&mb);
}

/* The index takes W= from a name only when the file bears it out; a
 * wrong W= that passes every check shows it was not read. */
static void
test_name_sizes_trusted_only_when_true(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char	*name;
		const char	*data;
		uint64_t	 size;
	} cases[] = {
		/* "a\nb\n" is 6 wire octets; W=7 passes every check. */
		{ "1700000001.A.h,S=4,W=7", "a\nb\n", 7 },
		{ "1700000002.B.h,S=4,W=9", "a\nb\n", 6 },	/* > 2 S */
		{ "1700000003.C.h,S=5,W=7", "a\nb\n", 6 },	/* S wrong */
		{ "1700000004.D.h,S=3,W=5", "a\nb", 6 },	/* no LF */
		{ "1700000005.E.h,S=4,W=07", "a\nb\n", 6 },	/* 0 */
		{ "1700000006.F.h,S=4,S=4,W=7", "a\nb\n", 6 },	/* 2 S */
		{ "1700000007.G.h,W=7", "a\nb\n", 6 },		/* no S */
		{ "1700000008.H.h,S=4,W=3", "a\nb\n", 6 },	/* < S */
		{ "1700000009.I.h,S=0,W=0", "", 0 },
		{ "1700000010.J.h,S=0,W=2", "", 0 },
		{ "1700000011.K.h,S=4,W=x7", "a\nb\n", 6 },
		{ "1700000012.L.h,S=4,X=1,W=7,Z", "a\nb\n", 7 },
	};
	struct mailbox *mb;
	char rel[128];
	size_t i;

	for (i = 0; i < N_ELEMENTS(cases); i++) {
		snprintf(rel, sizeof(rel), "new/%s", cases[i].name);
		put(f, rel, cases[i].data);
	}
	mb = open_mb(f, false);
	assert_int_equal(mailbox_count(mb), N_ELEMENTS(cases));
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		const struct msg_info *m = mailbox_msg(mb, (uint32_t)i);

		assert_string_equal(m->uidl, cases[i].name);
		if (m->size != cases[i].size)
			fprintf(stderr, "%s: %llu\n", cases[i].name,
			    (unsigned long long)m->size);
		assert_int_equal(m->size, cases[i].size);
		assert_int_equal(m->stored_size, strlen(cases[i].data));
	}
	mailbox_close(&mb);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_create_layout),
		T(test_missing_without_create),
		T(test_new_to_cur_and_sizes),
		T(test_uidl_stable_and_rebuild),
		T(test_flags_rename_keeps_uidl),
		T(test_same_base_twice),
		T(test_commit_deletes_marked),
		T(test_concurrent_commits_merge),
		T(test_lock_session),
		T(test_gone),
		T(test_stale_tmp),
		T(test_expire),
		T(test_expire_zero_only_retrieved),
		T(test_readdir_shortcut),
		T(test_order_stable),
		T(test_login_stamp),
		T(test_symlink_and_dirs_ignored),
		T(test_many),
		T(test_name_sizes_trusted_only_when_true),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
