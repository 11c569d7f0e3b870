/*
 * store.c: the functions of store.h, dispatched to the Maildir backend
 * (maildir.c) or the mbox backend (mbox.c) by the mailbox location, and
 * what both share: LOGIN-DELAY stamps and the one-call delivery.
 *
 * Owns: struct mailbox and struct delivery (a tag and the backend's
 * object).  Trusts: the location string (built by config_mailbox_path).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/strnum.h"
#include "store/backend.h"
#include "store/index.h"
#include "store/store.h"

#define PREFIX_MBOX		"mbox:"
#define PREFIX_MAILDIR		"maildir:"
#define MAILDIR_LOGIN_FILE	"postern.login"
#define MBOX_LOGIN_SUFFIX	".postern-login"
#define LOGIN_FILE_MAX		32
#define DELIVER_BUF		65536

enum store_kind { KIND_MAILDIR, KIND_MBOX };

struct mailbox {
	enum store_kind		 kind;
	struct maildir		*md;
	struct mbox		*mx;
};

struct delivery {
	enum store_kind		 kind;
	struct maildir_delivery	*md;
	struct mbox_delivery	*mx;
	char			*path;		/* mbox: locked at the first
						 * write or the commit */
	uint64_t		 max_size;
	char			*sender;
};

void
store_set_index_cache(uint64_t bytes)
{
	index_cache_budget(bytes > SIZE_MAX ? SIZE_MAX : (size_t)bytes);
}

enum store_rc
store_errno_rc(int e)
{
	switch (e) {
	case EACCES:
	case EPERM:
	case ENOTDIR:
	case ELOOP:
	case ENAMETOOLONG:
	case EROFS:
	case EMSGSIZE:
	case EFBIG:
		return STORE_PERM;
	default:
		return STORE_TEMP;
	}
}

bool
store_expired(int64_t retr_time, int64_t expire_days, time_t now)
{
	if (expire_days < 0 || retr_time == 0)
		return false;
	if (expire_days == 0)
		return true;
	if (expire_days > INT64_MAX / 86400)
		return false;
	return (int64_t)now - retr_time > expire_days * 86400;
}

/* The backend and the file-system path of a location. */
static enum store_kind
locate(const char *loc, const char **path_r)
{
	struct stat st;

	if (strncmp(loc, PREFIX_MBOX, strlen(PREFIX_MBOX)) == 0) {
		*path_r = loc + strlen(PREFIX_MBOX);
		return KIND_MBOX;
	}
	if (strncmp(loc, PREFIX_MAILDIR, strlen(PREFIX_MAILDIR)) == 0) {
		*path_r = loc + strlen(PREFIX_MAILDIR);
		return KIND_MAILDIR;
	}
	*path_r = loc;
	if (stat(loc, &st) == 0 && S_ISREG(st.st_mode))
		return KIND_MBOX;
	return KIND_MAILDIR;
}

enum store_rc
mailbox_open(const char *loc, const struct mailbox_opts *opts,
    struct mailbox **mb_r, char *err, size_t errsize)
{
	struct mailbox *mb;
	const char *path;
	enum store_rc rc;

	*mb_r = NULL;
	if (loc == NULL) {
		errf(err, errsize, "no mailbox path");
		return STORE_PERM;
	}
	if ((mb = calloc(1, sizeof(*mb))) == NULL) {
		errf(err, errsize, "mailbox %s: out of memory", loc);
		return STORE_TEMP;
	}
	mb->kind = locate(loc, &path);
	if (mb->kind == KIND_MBOX)
		rc = mbox_open(path, opts, &mb->mx, err, errsize);
	else
		rc = maildir_open(path, opts, &mb->md, err, errsize);
	if (rc != STORE_OK) {
		free(mb);
		return rc;
	}
	*mb_r = mb;
	return STORE_OK;
}

uint32_t
mailbox_count(const struct mailbox *mb)
{
	return mb->kind == KIND_MBOX ? mbox_count(mb->mx) :
	    maildir_count(mb->md);
}

const struct msg_info *
mailbox_msg(const struct mailbox *mb, uint32_t idx)
{
	return mb->kind == KIND_MBOX ? mbox_msg(mb->mx, idx) :
	    maildir_msg(mb->md, idx);
}

enum store_rc
mailbox_msg_open(struct mailbox *mb, uint32_t idx, int *fd_r)
{
	return mb->kind == KIND_MBOX ? mbox_msg_open(mb->mx, idx, fd_r) :
	    maildir_msg_open(mb->md, idx, fd_r);
}

enum store_rc
mailbox_commit(struct mailbox *mb, const bool *deleted,
    const bool *retrieved, int64_t expire_days, time_t now,
    uint32_t *removed_r, char *err, size_t errsize)
{
	if (mb->kind == KIND_MBOX)
		return mbox_commit(mb->mx, deleted, retrieved, expire_days,
		    now, removed_r, err, errsize);
	return maildir_commit(mb->md, deleted, retrieved, expire_days, now,
	    removed_r, err, errsize);
}

void
mailbox_close(struct mailbox **mbp)
{
	if (*mbp == NULL)
		return;
	if ((*mbp)->kind == KIND_MBOX)
		mbox_close(&(*mbp)->mx);
	else
		maildir_close(&(*mbp)->md);
	free(*mbp);
	*mbp = NULL;
}

/* ---- LOGIN-DELAY ---- */

/* The file that records the last login of the mailbox at loc. */
static int
login_file(const char *loc, char *file, size_t size)
{
	const char *path;
	int r;

	if (locate(loc, &path) == KIND_MBOX)
		r = mbox_side_file(path, MBOX_LOGIN_SUFFIX, file, size);
	else
		r = str_fmt(file, size, "%s/%s", path, MAILDIR_LOGIN_FILE);
	if (r == -1)
		log_warnx("mailbox %s: path too long", loc);
	return r;
}

/* Reads the time in the login file into *previous_r (0 if the file or
 * the mailbox is missing; a damaged file is logged and counts as 0). */
static enum store_rc
read_login(const char *path, const char *file, time_t *previous_r)
{
	char data[LOGIN_FILE_MAX + 1];
	uint64_t v;
	ssize_t n;
	int fd, saved;

	*previous_r = 0;
	fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
	    O_NONBLOCK);
	if (fd == -1) {
		if (errno == ENOENT || errno == ENOTDIR)
			return STORE_OK;
		saved = errno;
		log_warn("mailbox %s: %s", path, file);
		return store_errno_rc(saved);
	}
	do {
		n = read(fd, data, sizeof(data) - 1);
	} while (n == -1 && errno == EINTR);
	saved = errno;
	(void)close(fd);
	if (n == -1) {
		errno = saved;
		log_warn("mailbox %s: reading %s", path, file);
		return store_errno_rc(saved);
	}
	data[n] = '\0';
	if (n > 0 && data[n - 1] == '\n')
		data[n - 1] = '\0';
	if (parse_u64(data, INDEX_MAX_TIME, &v) == PARSE_OK)
		*previous_r = (time_t)v;
	else
		log_warnx("mailbox %s: %s is not a time, ignored", path, file);
	return STORE_OK;
}

enum store_rc
mailbox_last_login(const char *path, time_t *previous_r)
{
	char file[MAX_PATH_LEN];

	*previous_r = 0;
	if (login_file(path, file, sizeof(file)) == -1)
		return STORE_PERM;
	return read_login(path, file, previous_r);
}

enum store_rc
mailbox_login_stamp(const char *path, time_t now, time_t *previous_r)
{
	char file[MAX_PATH_LEN], text[32];
	enum store_rc rc;
	int saved;

	*previous_r = 0;
	if (login_file(path, file, sizeof(file)) == -1)
		return STORE_PERM;
	if ((rc = read_login(path, file, previous_r)) != STORE_OK)
		return rc;
	if (now < 0 || str_fmt(text, sizeof(text), "%lld\n",
	    (long long)now) == -1) {
		log_warnx("mailbox %s: bad login time", path);
		return STORE_PERM;
	}
	if (write_atomic(file, text, strlen(text), 0600) == -1) {
		saved = errno;
		log_warn("mailbox %s: writing %s", path, file);
		return store_errno_rc(saved);
	}
	return STORE_OK;
}

/* ---- delivery ---- */

static void
delivery_free(struct delivery *d)
{
	free(d->path);
	free(d->sender);
	free(d);
}

enum store_rc
mailbox_deliver_begin(const char *loc, uint64_t max_size,
    struct delivery **d_r, char *err, size_t errsize)
{
	struct delivery *d;
	const char *path;
	enum store_rc rc;

	*d_r = NULL;
	if (loc == NULL) {
		errf(err, errsize, "no mailbox path");
		return STORE_PERM;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		errf(err, errsize, "mailbox %s: out of memory", loc);
		return STORE_TEMP;
	}
	d->kind = locate(loc, &path);
	d->max_size = max_size;
	if (d->kind == KIND_MBOX) {
		/* The mbox is locked once the sender is known: at the
		 * first write or the commit. */
		if ((d->path = strdup(path)) == NULL) {
			delivery_free(d);
			errf(err, errsize, "mailbox %s: out of memory", loc);
			return STORE_TEMP;
		}
		*d_r = d;
		return STORE_OK;
	}
	if ((rc = maildir_deliver_begin(path, max_size, &d->md, err,
	    errsize)) != STORE_OK) {
		delivery_free(d);
		return rc;
	}
	*d_r = d;
	return STORE_OK;
}

void
mailbox_deliver_set_sender(struct delivery *d, const char *sender)
{
	if (d->kind != KIND_MBOX || d->mx != NULL)
		return;
	free(d->sender);
	d->sender = sender != NULL ? strdup(sender) : NULL;
}

/* mbox: lock and start the append (the From_ line) if not done yet. */
static enum store_rc
mbox_started(struct delivery *d, char *err, size_t errsize)
{
	if (d->mx != NULL)
		return STORE_OK;
	if (d->path == NULL) {
		errf(err, errsize, "the delivery failed before");
		return STORE_TEMP;
	}
	return mbox_deliver_begin(d->path, d->max_size, d->sender, &d->mx,
	    err, errsize);
}

enum store_rc
mailbox_deliver_write(struct delivery *d, const void *data, size_t len,
    char *err, size_t errsize)
{
	enum store_rc rc;

	if (d->kind != KIND_MBOX)
		return maildir_deliver_write(d->md, data, len, err, errsize);
	if ((rc = mbox_started(d, err, errsize)) != STORE_OK) {
		free(d->path);
		d->path = NULL;
		return rc;
	}
	return mbox_deliver_write(d->mx, data, len, err, errsize);
}

enum store_rc
mailbox_deliver_commit(struct delivery **dp, struct delivery_info *info_r,
    char *err, size_t errsize)
{
	struct delivery *d = *dp;
	enum store_rc rc;

	*dp = NULL;
	if (d->kind != KIND_MBOX)
		rc = maildir_deliver_commit(&d->md, info_r, err, errsize);
	else if ((rc = mbox_started(d, err, errsize)) == STORE_OK)
		rc = mbox_deliver_commit(&d->mx, info_r, err, errsize);
	delivery_free(d);
	return rc;
}

void
mailbox_deliver_abort(struct delivery **dp)
{
	struct delivery *d = *dp;

	if (d == NULL)
		return;
	if (d->kind == KIND_MBOX)
		mbox_deliver_abort(&d->mx);
	else
		maildir_deliver_abort(&d->md);
	delivery_free(d);
	*dp = NULL;
}

enum store_rc
mailbox_deliver_fd(struct delivery **dp, int fd, struct delivery_info *info_r,
    char *err, size_t errsize)
{
	struct pollfd pfd;
	char chunk[DELIVER_BUF];
	enum store_rc rc;
	ssize_t n;
	int saved;

	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n == 0)
			break;
		if (n > 0) {
			if ((rc = mailbox_deliver_write(*dp, chunk, (size_t)n,
			    err, errsize)) != STORE_OK)
				goto fail;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			/* A non-blocking descriptor: wait for it. */
			pfd.fd = fd;
			pfd.events = POLLIN;
			if (poll(&pfd, 1, -1) != -1 || errno == EINTR)
				continue;
		}
		saved = errno;
		errf(err, errsize, "reading the message: %s", strerror(saved));
		rc = STORE_TEMP;
		goto fail;
	}
	return mailbox_deliver_commit(dp, info_r, err, errsize);
fail:
	mailbox_deliver_abort(dp);
	return rc;
}

enum store_rc
mailbox_deliver(const char *path, const void *head, size_t headlen, int fd,
    uint64_t max_size, struct delivery_info *info_r, char *err,
    size_t errsize)
{
	struct delivery *d;
	enum store_rc rc;

	if ((rc = mailbox_deliver_begin(path, max_size, &d, err, errsize)) !=
	    STORE_OK)
		return rc;
	if ((rc = mailbox_deliver_write(d, head, headlen, err, errsize)) !=
	    STORE_OK) {
		mailbox_deliver_abort(&d);
		return rc;
	}
	return mailbox_deliver_fd(&d, fd, info_r, err, errsize);
}

enum store_rc
mailbox_usage(const char *loc, uint64_t *bytes_r, uint32_t *count_r,
    char *err, size_t errsize)
{
	struct mailbox_opts opts = { .create = false };
	struct mbox *mx;
	const char *path;
	enum store_rc rc;
	uint32_t i, n;

	*bytes_r = 0;
	*count_r = 0;
	if (locate(loc, &path) == KIND_MAILDIR)
		return maildir_usage(path, bytes_r, count_r, err, errsize);
	/* An mbox: its index (read under the lock, brought up to date if
	 * the file grew) has every size. */
	if ((rc = mbox_open(path, &opts, &mx, err, errsize)) != STORE_OK)
		return rc;
	n = mbox_count(mx);
	for (i = 0; i < n; i++) {
		uint64_t size = mbox_msg(mx, i)->size;

		*bytes_r = size > UINT64_MAX - *bytes_r ? UINT64_MAX :
		    *bytes_r + size;
	}
	*count_r = n;
	mbox_close(&mx);
	return STORE_OK;
}

enum store_rc
mailbox_import_uidls(const char *loc, struct uidl_import *v, size_t n,
    unsigned int flags, char *err, size_t errsize)
{
	const char *path;

	if (locate(loc, &path) == KIND_MBOX) {
		errf(err, errsize, "mailbox %s: is an mbox; UIDLs are imported"
		    " into Maildirs only (an mbox keeps the X-UIDL headers of"
		    " its messages by itself)", path);
		return STORE_PERM;
	}
	return maildir_import_uidls(path, v, n, flags, err, errsize);
}
