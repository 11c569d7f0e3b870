/*
 * mbox.c: the mbox backend of store.h (mboxrd files, /var/mail style).
 *
 * Owns: struct mbox (a session's snapshot), struct mbox_delivery, and
 * the files beside an mbox FILE in its directory DIR:
 *
 *	FILE.lock			the dotlock (with the fcntl lock)
 *	DIR/.FILE.postern-lock		what our dotlock is a hard link of
 *	DIR/.FILE.postern-index		offsets, sizes and UIDLs (mbox_parse.c)
 *	DIR/.FILE.postern-index.new	the next index, before its rename
 *	DIR/.FILE.postern-session	lock_session's lock
 *	DIR/.FILE.postern-append	the offset of an append under way
 *	DIR/.FILE.postern-new		a rewrite under way
 *	DIR/.FILE.postern-login		LOGIN-DELAY (store.c)
 *
 * Trusts nothing in the mbox or the index: both go through
 * mbox_parse.c.  Other programs (Postfix local, procmail, mutt) write
 * the mbox under the same two locks.
 *
 * Locking.  Every read-modify-write of the mbox holds both an fcntl
 * write lock on the whole file and the dotlock FILE.lock, as Postfix
 * local, procmail and mutt take them.  Ours is made by link(2), which
 * fails if FILE.lock exists, from a file already locked and marked (see
 * dotlock_try).  The fcntl lock is an open-file-description lock: it
 * conflicts with the POSIX locks of other programs, and two sessions of
 * one worker conflict as well.
 * Both are tried without blocking, again every MBOX_LOCK_POLL_MS, until
 * the timeout (STORE_IN_USE).  A dotlock whose mtime is older than the
 * stale time is removed; so is one that Postern made (it holds the
 * marker line and stays OFD-locked by its maker) whose maker died.
 * After locking, the file must still be the one at the path (a rewrite
 * replaces it); otherwise the lock is taken again on the new file.
 *
 * Snapshots.  A session reads and indexes the mbox under the lock, then
 * unlocks it (unless lock_session) and keeps its descriptor: RETR reads
 * that file description, so a rewrite by rename leaves the session's
 * messages readable, and a file cut or changed in place by another
 * program gives STORE_GONE (checked by size and From_ line).
 *
 * The index.  It records the mbox's dev, inode, size and mtime.  If they
 * are unchanged it is used as it is.  If the same file only grew, each
 * indexed From_ line is checked (offset and hash) and the new part is
 * scanned from the old end.  Otherwise the whole file is scanned, and
 * each message takes the UIDL and retrieval time of the old entry with
 * the same From_ line, header lines and sizes (in order, each entry
 * once), so a
 * rewrite by another MUA, or a crash between our rewrite and the index
 * write, keeps UIDLs.  New messages get the UIDL of a valid X-UIDL
 * header (qpopper) if no other message holds it and it does not look
 * like one of ours, else <prefix>.<n>: a
 * random prefix chosen when the index is made and a counter kept in it
 * that only grows, so a UIDL is never given twice.
 *
 * UPDATE rewrites the mbox: under both locks the mbox is indexed again
 * (mail that arrived since the snapshot is kept), the messages to keep
 * are copied byte for byte into .FILE.postern-new (same mode, owner
 * where allowed, fcntl-locked), which is fsync'd and renamed over FILE,
 * and the directory is fsync'd; then the index is written.  A crash
 * leaves the old or the new mbox, and an index that matches it or is
 * rebuilt keeping UIDLs.
 *
 * Delivery appends under both locks.  First the old size goes into
 * .FILE.postern-append (fsync'd), then the From_ line, the quoted
 * message and the empty line, fsync; on any error the file is cut back
 * to the old size.  If the process dies in between, the next locker
 * finds the offset and cuts the half-written message away (only if
 * nothing else was appended after it).  The index gets the new entry, so
 * the next session scans nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/strnum.h"
#include "pop3/wire.h"
#include "store/backend.h"
#include "store/index.h"
#include "store/mbox_parse.h"
#include "store/store.h"

#define SUFFIX_INDEX		".postern-index"
#define SUFFIX_INDEX_NEW	".postern-index.new"
#define SUFFIX_SESSION		".postern-session"
#define SUFFIX_APPEND		".postern-append"
#define SUFFIX_NEW		".postern-new"
#define DOTLOCK_SUFFIX		".lock"
#define SUFFIX_DOTLOCK_LINK	".postern-lock"
#define DOTLOCK_MARKER		"postern\n"
#define MBOX_LOCK_POLL_MS	50
#define COPY_BUF		65536
#define DEFAULT_SENDER		"MAILER-DAEMON"

static uint64_t lock_timeout_ms = DEFAULT_MBOX_LOCK_TIMEOUT_MS;
static uint64_t dotlock_stale_s = DEFAULT_MBOX_DOTLOCK_STALE_SEC;

void
store_set_mbox_limits(uint64_t timeout_ms, uint64_t stale_s)
{
	lock_timeout_ms = timeout_ms;
	dotlock_stale_s = stale_s;
}

/* Both locks on one mbox, and where it is. */
struct mbox_lock {
	int		 dirfd;
	char		*dir;
	char		*name;		/* base name of the mbox */
	char		*path;
	int		 fd;		/* the mbox, O_RDWR, fcntl-locked */
	int		 dotfd;		/* FILE.lock, ours, or -1 */
	struct stat	 dotst;
};

struct mbox {
	struct mbox_lock lk;		/* dirfd and names; locks if held */
	int		 fd;		/* the snapshot's file, or -1 */
	int		 session_fd;
	struct mbox_index idx;		/* the snapshot */
	struct msg_info	*info;
	uint32_t	 count;
	uint64_t	 snap_size;
};

static void
close_fd(int *fd)
{
	if (*fd != -1) {
		(void)close(*fd);
		*fd = -1;
	}
}

int
mbox_side_file(const char *path, const char *suffix, char *out,
    size_t outsize)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return str_fmt(out, outsize, ".%s%s", path, suffix);
	return str_fmt(out, outsize, "%.*s/.%s%s", (int)(slash - path), path,
	    slash + 1, suffix);
}

/* ".<name><suffix>", relative to the directory. */
static int
side_name(const struct mbox_lock *lk, const char *suffix, char *out,
    size_t outsize)
{
	return str_fmt(out, outsize, ".%s%s", lk->name, suffix);
}

static void
lock_names_free(struct mbox_lock *lk)
{
	close_fd(&lk->dirfd);
	free(lk->dir);
	free(lk->name);
	free(lk->path);
	lk->dir = lk->name = lk->path = NULL;
}

/* Splits path into directory and name and opens the directory. */
static enum store_rc
lock_names(struct mbox_lock *lk, const char *path, char *err, size_t errsize)
{
	const char *slash;
	int saved;

	memset(lk, 0, sizeof(*lk));
	lk->dirfd = lk->fd = lk->dotfd = -1;
	if (path[0] == '\0' || strlen(path) >= MAX_PATH_LEN - 64 ||
	    path[strlen(path) - 1] == '/') {
		errf(err, errsize, "mbox path empty, too long or a directory");
		return STORE_PERM;
	}
	slash = strrchr(path, '/');
	lk->path = strdup(path);
	lk->dir = slash == NULL ? strdup(".") : slash == path ? strdup("/") :
	    strndup(path, (size_t)(slash - path));
	lk->name = strdup(slash == NULL ? path : slash + 1);
	if (lk->path == NULL || lk->dir == NULL || lk->name == NULL) {
		lock_names_free(lk);
		errf(err, errsize, "mbox %s: out of memory", path);
		return STORE_TEMP;
	}
	lk->dirfd = open(lk->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lk->dirfd == -1) {
		saved = errno;
		errf(err, errsize, "mbox %s: directory: %s", path,
		    strerror(saved));
		lock_names_free(lk);
		return store_errno_rc(saved);
	}
	return STORE_OK;
}

/* An OFD lock of type (F_WRLCK or F_RDLCK) on the whole file. */
static int
ofd_lock_type(int fd, short type, bool wait)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	while (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == -1) {
		if (errno == EINTR)
			continue;
		if (errno == EACCES)
			errno = EAGAIN;
		return -1;
	}
	return 0;
}

static int
ofd_lock(int fd, bool wait)
{
	return ofd_lock_type(fd, F_WRLCK, wait);
}

static void
sleep_ms(uint64_t ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * An existing dotlock that nobody holds any more: older than the stale
 * time, or made by Postern (marker) and no longer locked by its maker.
 * If so, removes it (if it is still the same file) and returns true.
 */
static bool
dotlock_break_stale(struct mbox_lock *lk, const char *dotname)
{
	char data[sizeof(DOTLOCK_MARKER)];
	struct stat st, st2;
	bool stale = false;
	ssize_t n;
	int fd;

	fd = openat(lk->dirfd, dotname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
	    O_NOCTTY | O_NONBLOCK);
	if (fd == -1)
		return errno == ENOENT;	/* gone already: try again */
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		(void)close(fd);
		return false;
	}
	if (st.st_mtime < time(NULL) - (time_t)dotlock_stale_s)
		stale = true;
	else {
		n = pread(fd, data, sizeof(data) - 1, 0);
		if (n == (ssize_t)strlen(DOTLOCK_MARKER) &&
		    memcmp(data, DOTLOCK_MARKER, (size_t)n) == 0 &&
		    ofd_lock_type(fd, F_RDLCK, false) == 0)
			stale = true;	/* its maker died */
	}
	if (stale && fstatat(lk->dirfd, dotname, &st2, AT_SYMLINK_NOFOLLOW) ==
	    0 && st2.st_ino == st.st_ino && st2.st_dev == st.st_dev) {
		log_warnx("mbox %s: removing a stale %s", lk->path, dotname);
		if (unlinkat(lk->dirfd, dotname, 0) == -1 && errno != ENOENT)
			stale = false;
	}
	(void)close(fd);
	return stale;
}

/*
 * One try at the dotlock: 0 held, -1 with errno (EAGAIN: busy).
 *
 * FILE.lock appears only as a hard link of .FILE.postern-lock, which is
 * OFD-locked and marked before the link is made: at no instant is there
 * a Postern dotlock that is not marked, so a dotlock whose maker was
 * killed at any point is seen as stale.  .FILE.postern-lock stays (as
 * .FILE.postern-session does); its lock says which Postern process may
 * link it, so a dotlock that already is that file is ours once we hold
 * the lock (the holder was killed between the link and the unlink).
 */
static int
dotlock_try(struct mbox_lock *lk)
{
	char dotname[NAME_MAX + 8], linkname[NAME_MAX + 24];
	struct stat st, dst;
	int fd, saved;

	if (str_fmt(dotname, sizeof(dotname), "%s%s", lk->name,
	    DOTLOCK_SUFFIX) == -1 || side_name(lk, SUFFIX_DOTLOCK_LINK,
	    linkname, sizeof(linkname)) == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = openat(lk->dirfd, linkname, O_RDWR | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0600);
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1) {
		saved = errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		saved = EPERM;
		goto fail;
	}
	if (ofd_lock(fd, false) == -1) {
		saved = errno;
		goto fail;
	}
	/* Locked, but the name may since have been given to another file. */
	if (fstatat(lk->dirfd, linkname, &dst, AT_SYMLINK_NOFOLLOW) == -1 ||
	    dst.st_ino != st.st_ino || dst.st_dev != st.st_dev) {
		saved = EAGAIN;
		goto fail;
	}
	/* The marker, and a new mtime: the link must not look old. */
	if (pwrite(fd, DOTLOCK_MARKER, strlen(DOTLOCK_MARKER), 0) !=
	    (ssize_t)strlen(DOTLOCK_MARKER) || (st.st_size !=
	    (off_t)strlen(DOTLOCK_MARKER) && ftruncate(fd,
	    (off_t)strlen(DOTLOCK_MARKER)) == -1) ||
	    futimens(fd, NULL) == -1) {
		saved = errno;
		goto fail;
	}
	for (int tries = 0; tries < 2; tries++) {
		if (linkat(lk->dirfd, linkname, lk->dirfd, dotname, 0) == 0) {
			lk->dotfd = fd;
			lk->dotst = st;
			return 0;
		}
		saved = errno;
		/* Made already (by us before a kill), or NFS lost the reply. */
		if (fstatat(lk->dirfd, dotname, &dst, AT_SYMLINK_NOFOLLOW) ==
		    0 && dst.st_ino == st.st_ino && dst.st_dev == st.st_dev) {
			lk->dotfd = fd;
			lk->dotst = st;
			return 0;
		}
		if (saved != EEXIST)
			goto fail;
		if (!dotlock_break_stale(lk, dotname)) {
			saved = EAGAIN;
			goto fail;
		}
	}
	saved = EAGAIN;
fail:
	(void)close(fd);
	errno = saved;
	return -1;
}

static void
dotlock_release(struct mbox_lock *lk)
{
	char dotname[NAME_MAX + 8];
	struct stat st;

	if (lk->dotfd == -1)
		return;
	if (str_fmt(dotname, sizeof(dotname), "%s%s", lk->name,
	    DOTLOCK_SUFFIX) == 0 && fstatat(lk->dirfd, dotname, &st,
	    AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == lk->dotst.st_ino &&
	    st.st_dev == lk->dotst.st_dev)
		(void)unlinkat(lk->dirfd, dotname, 0);
	close_fd(&lk->dotfd);
}

/* Keeps a dotlock held for a long time from looking stale. */
static void
dotlock_refresh(struct mbox_lock *lk)
{
	if (lk->dotfd != -1)
		(void)futimens(lk->dotfd, NULL);
}

static void
lock_release(struct mbox_lock *lk)
{
	dotlock_release(lk);
	close_fd(&lk->fd);
}

/*
 * Opens the mbox (creating it with mode 0600 if create) and takes both
 * locks within the timeout.  STORE_OK with lk->fd set; STORE_GONE if it
 * does not exist and !create; STORE_IN_USE on timeout.
 */
static enum store_rc
lock_take(struct mbox_lock *lk, bool create, char *err, size_t errsize)
{
	uint64_t deadline = now_ms() + lock_timeout_ms;
	struct stat st, pst;
	int saved;

	for (;;) {
		lk->fd = openat(lk->dirfd, lk->name, O_RDWR | O_CLOEXEC |
		    O_NOFOLLOW | O_NOCTTY | O_NONBLOCK |
		    (create ? O_CREAT : 0), 0600);
		if (lk->fd == -1) {
			saved = errno;
			if (saved == ENOENT && !create)
				return STORE_GONE;
			if (saved == EISDIR) {
				errf(err, errsize, "mbox %s: a directory, not an"
				    " mbox file", lk->path);
				return STORE_PERM;
			}
			errf(err, errsize, "mbox %s: %s", lk->path,
			    strerror(saved));
			return store_errno_rc(saved);
		}
		if (fstat(lk->fd, &st) == -1 || !S_ISREG(st.st_mode)) {
			saved = errno;
			close_fd(&lk->fd);
			errf(err, errsize, "mbox %s: not a regular file",
			    lk->path);
			return STORE_PERM;
		}
		(void)fcntl(lk->fd, F_SETFL, 0);
		if (ofd_lock(lk->fd, false) == 0) {
			if (dotlock_try(lk) == 0) {
				/* Still the file at the path? */
				if (fstatat(lk->dirfd, lk->name, &pst,
				    AT_SYMLINK_NOFOLLOW) == 0 &&
				    pst.st_ino == st.st_ino &&
				    pst.st_dev == st.st_dev)
					return STORE_OK;
				lock_release(lk);
				continue;
			}
			if (errno != EAGAIN) {
				saved = errno;
				close_fd(&lk->fd);
				errf(err, errsize, "mbox %s: dotlock: %s",
				    lk->path, strerror(saved));
				return store_errno_rc(saved);
			}
		} else if (errno != EAGAIN) {
			saved = errno;
			close_fd(&lk->fd);
			errf(err, errsize, "mbox %s: fcntl lock: %s", lk->path,
			    strerror(saved));
			return store_errno_rc(saved);
		}
		close_fd(&lk->fd);
		if (now_ms() >= deadline) {
			errf(err, errsize, "mbox %s: locked by another program",
			    lk->path);
			return STORE_IN_USE;
		}
		sleep_ms(MBOX_LOCK_POLL_MS);
	}
}

/* ---- reading ---- */

static int
pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = pread(fd, p, len, (off_t)off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;	/* shorter than it was */
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* The From_ line of e is still at its offset. */
static bool
from_line_ok(int fd, const struct mbox_entry *e)
{
	uint8_t buf[MBOX_FROM_CHECK_MAX];
	size_t n = e->from_len < sizeof(buf) ? (size_t)e->from_len :
	    sizeof(buf);

	if (pread_full(fd, buf, n, e->from_off) == -1 ||
	    memcmp(buf, "From ", 5) != 0)
		return false;
	return e->from_len > sizeof(buf) ||
	    index_fnv1a64(INDEX_FNV64_OFFSET, buf, n) == e->from_hash;
}

/* What a scan collects: the entries, and the X-UIDL of each. */
struct collect {
	struct mbox_index *idx;
	char		**xuidl;	/* per entry from first, or NULL */
	size_t		 first;		/* entries before the scan */
	size_t		 cap;
};

static int
collect_found(void *arg, const struct mbox_found *f)
{
	struct collect *c = arg;
	size_t i;

	if (mbox_index_append(c->idx, f, 0, NULL) == -1)
		return -1;
	i = c->idx->n - 1 - c->first;
	if (i >= c->cap) {
		size_t cap = c->cap == 0 ? 64 : c->cap * 2;
		char **x = reallocarray(c->xuidl, cap, sizeof(*x));

		if (x == NULL)
			return -1;
		memset(x + c->cap, 0, (cap - c->cap) * sizeof(*x));
		c->xuidl = x;
		c->cap = cap;
	}
	if (f->xuidl[0] != '\0' && (c->xuidl[i] = strdup(f->xuidl)) == NULL)
		return -1;
	return 0;
}

static void
collect_free(struct collect *c)
{
	size_t i;

	for (i = 0; i < c->cap; i++)
		free(c->xuidl[i]);
	free(c->xuidl);
	c->xuidl = NULL;
	c->cap = 0;
}

/*
 * Scans [start, end) of fd into c (start is 0 or the end of a scan
 * with tail_ok).  0, 1 if the file is not an mbox (octets before the
 * first From_ line), -1 on error (errno).
 */
static int
scan_range(int fd, uint64_t start, uint64_t end, struct collect *c,
    bool *tail_ok_r)
{
	static uint8_t chunk[RETR_CHUNK];
	struct mbox_scan s;
	uint64_t off = start;
	size_t n;

	mbox_scan_init(&s, start);
	while (off < end) {
		n = end - off < sizeof(chunk) ? (size_t)(end - off) :
		    sizeof(chunk);
		if (pread_full(fd, chunk, n, off) == -1)
			return -1;
		if (mbox_scan_feed(&s, chunk, n, collect_found, c) == -1)
			return -1;
		if (s.garbage)
			return 1;
		off += n;
	}
	if (mbox_scan_finish(&s, collect_found, c) == -1)
		return -1;
	if (s.garbage)
		return 1;
	*tail_ok_r = s.tail_ok;
	return 0;
}

/* Orders entries by their identity (From_ line and sizes). */
static int
cmp_key(const struct mbox_entry *a, const struct mbox_entry *b)
{
	if (a->from_hash != b->from_hash)
		return a->from_hash < b->from_hash ? -1 : 1;
	if (a->from_len != b->from_len)
		return a->from_len < b->from_len ? -1 : 1;
	if (a->stored != b->stored)
		return a->stored < b->stored ? -1 : 1;
	if (a->wire != b->wire)
		return a->wire < b->wire ? -1 : 1;
	if (a->head_hash != b->head_hash)
		return a->head_hash < b->head_hash ? -1 : 1;
	return 0;
}

static int
cmp_key_ptr(const void *x, const void *y)
{
	const struct mbox_entry *const *a = x, *const *b = y;
	int r = cmp_key(*a, *b);

	if (r != 0)
		return r;
	return *a < *b ? -1 : *a > *b;
}

/*
 * A full scan: entries of old (the previous index) pass their UIDL and
 * retrieval time to the messages with the same identity, in order.
 */
static int
inherit_uidls(struct mbox_index *idx, struct mbox_index *old)
{
	struct mbox_entry **byk;
	size_t i, lo, hi, mid;

	if (old->n == 0)
		return 0;
	if ((byk = calloc(old->n, sizeof(*byk))) == NULL)
		return -1;
	for (i = 0; i < old->n; i++)
		byk[i] = &old->v[i];
	qsort(byk, old->n, sizeof(*byk), cmp_key_ptr);
	for (i = 0; i < idx->n; i++) {
		struct mbox_entry *e = &idx->v[i];

		lo = 0;
		hi = old->n;
		while (lo < hi) {
			mid = lo + (hi - lo) / 2;
			if (cmp_key(byk[mid], e) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < old->n && cmp_key(byk[lo], e) == 0; lo++) {
			if (byk[lo]->uidl == NULL)
				continue;	/* taken by an earlier one */
			e->uidl = byk[lo]->uidl;
			e->retr_time = byk[lo]->retr_time;
			byk[lo]->uidl = NULL;
			break;
		}
	}
	free(byk);
	return 0;
}

static int
new_prefix(struct mbox_index *idx)
{
	uint64_t r;

	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		struct timespec ts;

		(void)clock_gettime(CLOCK_REALTIME, &ts);
		r = ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec ^
		    ((uint64_t)getpid() << 40);
	}
	return str_fmt(idx->prefix, sizeof(idx->prefix), "%016llx",
	    (unsigned long long)r);
}

/*
 * Gives UIDLs to the entries from c->first on that have none: a valid
 * X-UIDL no other entry holds, else <prefix>.<next_uid++> (skipping any
 * in use).
 */
static int
assign_uidls(struct mbox_index *idx, struct collect *c)
{
	struct index_map used = { 0 };
	char buf[UIDL_MAX_LEN + 1];
	size_t i, it;
	uint32_t v;
	int rc = -1;

	if (index_map_init(&used, idx->n) == -1)
		return -1;
	for (i = 0; i < idx->n; i++) {
		const char *u = idx->v[i].uidl;

		if (u != NULL && index_map_add(&used, u, strlen(u),
		    (uint32_t)i) == -1)
			goto out;
	}
	for (i = c->first; i < idx->n; i++) {
		struct mbox_entry *e = &idx->v[i];
		const char *x = i - c->first < c->cap ?
		    c->xuidl[i - c->first] : NULL;

		/* One in the form of our own UIDLs could be one that was
		 * given before and deleted: never reuse it. */
		if (x != NULL && strncmp(x, idx->prefix, MBOX_PREFIX_LEN) ==
		    0 && x[MBOX_PREFIX_LEN] == '.')
			x = NULL;

		if (e->uidl != NULL)
			continue;
		it = 0;
		if (x != NULL && !index_map_find(&used, x, strlen(x), &it,
		    &v)) {
			if ((e->uidl = strdup(x)) == NULL)
				goto out;
		} else {
			for (;;) {
				if (str_fmt(buf, sizeof(buf), "%s.%llu",
				    idx->prefix,
				    (unsigned long long)idx->next_uid++) == -1)
					goto out;
				it = 0;
				if (!index_map_find(&used, buf, strlen(buf),
				    &it, &v))
					break;
			}
			if ((e->uidl = strdup(buf)) == NULL)
				goto out;
		}
		if (index_map_add(&used, e->uidl, strlen(e->uidl),
		    (uint32_t)i) == -1)
			goto out;
	}
	rc = 0;
out:
	index_map_free(&used);
	return rc;
}

/*
 * Reads the index file.  1 loaded, 0 missing or damaged (logged), -1
 * I/O error.
 */
static int
load_index(struct mbox_lock *lk, struct mbox_index *idx, char *err,
    size_t errsize)
{
	char name[NAME_MAX + 32], why[256];
	struct buf b;
	struct stat st;
	int fd, saved;

	mbox_index_init(idx);
	if (side_name(lk, SUFFIX_INDEX, name, sizeof(name)) == -1) {
		errf(err, errsize, "mbox %s: name too long", lk->path);
		return -1;
	}
	fd = openat(lk->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
	    O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		if (errno == ELOOP || errno == ENXIO) {
			log_warnx("mbox %s: %s is not a file, rebuilding",
			    lk->path, name);
			return 0;
		}
		saved = errno;
		errf(err, errsize, "mbox %s: %s: %s", lk->path, name,
		    strerror(saved));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > INDEX_MAX_BYTES) {
		(void)close(fd);
		log_warnx("mbox %s: %s is not a file or too large, rebuilding",
		    lk->path, name);
		return 0;
	}
	buf_init(&b, INDEX_MAX_BYTES);
	for (;;) {
		char chunk[65536];
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 || (n > 0 && buf_add(&b, chunk, (size_t)n) ==
		    -1)) {
			saved = errno;
			buf_clear(&b);
			(void)close(fd);
			if (saved == EMSGSIZE)
				return 0;
			errf(err, errsize, "mbox %s: reading %s: %s", lk->path,
			    name, strerror(saved));
			return -1;
		}
		if (n == 0)
			break;
	}
	(void)close(fd);
	if (mbox_index_parse(b.data != NULL ? b.data : "", b.len, idx, why,
	    sizeof(why)) == -1) {
		log_warnx("mbox %s: %s, rebuilding", lk->path, why);
		buf_clear(&b);
		return 0;
	}
	buf_clear(&b);
	return 1;
}

static enum store_rc
write_index(struct mbox_lock *lk, const struct mbox_index *idx, char *err,
    size_t errsize)
{
	char path[MAX_PATH_LEN], tmp[MAX_PATH_LEN];
	struct buf b;
	int saved;

	if (mbox_side_file(lk->path, SUFFIX_INDEX, path, sizeof(path)) ==
	    -1 || mbox_side_file(lk->path, SUFFIX_INDEX_NEW, tmp,
	    sizeof(tmp)) == -1) {
		errf(err, errsize, "mbox %s: path too long", lk->path);
		return STORE_PERM;
	}
	buf_init(&b, INDEX_MAX_BYTES);
	if (mbox_index_serialize(idx, &b) == -1 ||
	    write_atomic_via(path, tmp, b.data, b.len, 0600) == -1) {
		saved = errno;
		buf_clear(&b);
		errf(err, errsize, "mbox %s: writing the index: %s", lk->path,
		    strerror(saved));
		return store_errno_rc(saved);
	}
	buf_clear(&b);
	return STORE_OK;
}

static void
set_file_id(struct mbox_index *idx, const struct stat *st)
{
	idx->dev = (uint64_t)st->st_dev;
	idx->ino = (uint64_t)st->st_ino;
	idx->size = (uint64_t)st->st_size;
	idx->mtime_sec = (int64_t)st->st_mtim.tv_sec;
	idx->mtime_nsec = st->st_mtim.tv_nsec;
}

static bool
same_file(const struct mbox_index *idx, const struct stat *st)
{
	return idx->dev == (uint64_t)st->st_dev &&
	    idx->ino == (uint64_t)st->st_ino;
}

/* ---- interrupted appends ---- */

/*
 * A delivery that died left its start offset in .FILE.postern-append:
 * if exactly one message lies from there to the end (its own), the file
 * is cut back to that offset.  Under both locks.  0 or -1 (errno).
 */
static int
recover_append(struct mbox_lock *lk)
{
	char name[NAME_MAX + 32], data[32];
	struct collect c = { 0 };
	struct mbox_index tmp;
	struct stat st;
	uint64_t off;
	ssize_t n;
	bool tail_ok;
	int fd, r;

	if (side_name(lk, SUFFIX_APPEND, name, sizeof(name)) == -1)
		return 0;
	fd = openat(lk->dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW |
	    O_NOCTTY | O_NONBLOCK);
	if (fd == -1)
		return errno == ENOENT ? 0 : -1;
	n = pread(fd, data, sizeof(data) - 1, 0);
	if (n <= 0) {
		(void)close(fd);
		return n == 0 ? 0 : -1;
	}
	data[n] = '\0';
	if (data[n - 1] == '\n')
		data[n - 1] = '\0';
	if (parse_u64(data, INT64_MAX, &off) != PARSE_OK ||
	    fstat(lk->fd, &st) == -1) {
		(void)close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size > off) {
		mbox_index_init(&tmp);
		c.idx = &tmp;
		r = scan_range(lk->fd, off, (uint64_t)st.st_size, &c,
		    &tail_ok);
		if (r == 0 && tmp.n <= 1) {
			log_warnx("mbox %s: removing a delivery that did not"
			    " finish (%llu octets at %llu)", lk->path,
			    (unsigned long long)((uint64_t)st.st_size - off),
			    (unsigned long long)off);
			if (ftruncate(lk->fd, (off_t)off) == -1 ||
			    fsync(lk->fd) == -1) {
				collect_free(&c);
				mbox_index_free(&tmp);
				(void)close(fd);
				return -1;
			}
		} else
			log_warnx("mbox %s: a delivery that did not finish is"
			    " followed by other mail; left in place",
			    lk->path);
		collect_free(&c);
		mbox_index_free(&tmp);
	}
	r = ftruncate(fd, 0) == -1 || fsync(fd) == -1 ? -1 : 0;
	(void)close(fd);
	return r;
}

/* ---- indexing under the lock ---- */

/*
 * Brings idx (loaded from the index file) in line with the locked mbox
 * lk->fd; *dirty_r: the index file must be written.
 */
static enum store_rc
sync_index(struct mbox_lock *lk, struct mbox_index *idx, bool *dirty_r,
    char *err, size_t errsize)
{
	struct mbox_index old;
	struct collect c = { 0 };
	struct stat st;
	char name[NAME_MAX + 32];
	uint8_t head[5];
	bool tail_ok = true, incremental = false;
	size_t i;
	int loaded, r, saved;

	*dirty_r = false;
	mbox_index_init(idx);
	if (recover_append(lk) == -1) {
		saved = errno;
		errf(err, errsize, "mbox %s: recovering an append: %s",
		    lk->path, strerror(saved));
		return store_errno_rc(saved);
	}
	/* A rewrite that died left its copy: under the locks, nobody
	 * writes it now. */
	if (side_name(lk, SUFFIX_NEW, name, sizeof(name)) == 0 &&
	    unlinkat(lk->dirfd, name, 0) == 0)
		log_warnx("mbox %s: removed %s of a rewrite that did not"
		    " finish", lk->path, name);
	if ((loaded = load_index(lk, &old, err, errsize)) == -1)
		return STORE_TEMP;
	if (fstat(lk->fd, &st) == -1) {
		saved = errno;
		mbox_index_free(&old);
		errf(err, errsize, "mbox %s: %s", lk->path, strerror(saved));
		return store_errno_rc(saved);
	}
	if (loaded == 1 && same_file(&old, &st) &&
	    old.size == (uint64_t)st.st_size &&
	    old.mtime_sec == (int64_t)st.st_mtim.tv_sec &&
	    old.mtime_nsec == st.st_mtim.tv_nsec) {
		*idx = old;
		return STORE_OK;	/* unchanged */
	}
	if (loaded == 1 && same_file(&old, &st) &&
	    (uint64_t)st.st_size >= old.size &&
	    (old.tail_ok || old.size == (uint64_t)st.st_size)) {
		incremental = true;
		for (i = 0; i < old.n && incremental; i++)
			if (!from_line_ok(lk->fd, &old.v[i]))
				incremental = false;
		if (incremental && (uint64_t)st.st_size > old.size &&
		    (pread_full(lk->fd, head, 5, old.size) == -1 ||
		    (uint64_t)st.st_size - old.size < 5 ||
		    memcmp(head, "From ", 5) != 0))
			incremental = false;
	}
	c.idx = idx;
	if (incremental) {
		*idx = old;
		mbox_index_init(&old);
		c.first = idx->n;
		tail_ok = idx->tail_ok;
		r = idx->size == (uint64_t)st.st_size ? 0 : scan_range(lk->fd,
		    idx->size, (uint64_t)st.st_size, &c, &tail_ok);
	} else {
		if (loaded == 1) {
			log_warnx("mbox %s: changed by another program,"
			    " indexing it again", lk->path);
			memcpy(idx->prefix, old.prefix, sizeof(idx->prefix));
			idx->next_uid = old.next_uid;
		} else if (new_prefix(idx) == -1) {
			errf(err, errsize, "mbox %s: UIDL prefix", lk->path);
			return STORE_TEMP;
		}
		c.first = 0;
		r = scan_range(lk->fd, 0, (uint64_t)st.st_size, &c, &tail_ok);
	}
	if (r == 0 && !incremental && inherit_uidls(idx, &old) == -1)
		r = -1;
	mbox_index_free(&old);
	if (r == 1) {
		collect_free(&c);
		mbox_index_free(idx);
		errf(err, errsize, "mbox %s: not an mbox file (it does not"
		    " start with a \"From \" line)", lk->path);
		return STORE_PERM;
	}
	if (r == 0 && assign_uidls(idx, &c) == -1)
		r = -1;
	collect_free(&c);
	if (r == -1) {
		saved = errno;
		mbox_index_free(idx);
		errf(err, errsize, "mbox %s: indexing: %s", lk->path,
		    strerror(saved));
		return saved == EMSGSIZE ? STORE_PERM : STORE_TEMP;
	}
	set_file_id(idx, &st);
	idx->tail_ok = tail_ok;
	*dirty_r = true;
	return STORE_OK;
}

/* ---- the snapshot ---- */

static void
mbox_free(struct mbox *mb)
{
	if (mb->lk.fd != -1) {
		mb->fd = -1;	/* the same descriptor */
		lock_release(&mb->lk);
	}
	close_fd(&mb->fd);
	close_fd(&mb->session_fd);
	free(mb->info);
	mbox_index_free(&mb->idx);
	lock_names_free(&mb->lk);
	free(mb);
}

/* Drops both locks but keeps the descriptor as the snapshot's. */
static void
lock_drop_keep_fd(struct mbox_lock *lk, int *fd_r)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_UNLCK;
	fl.l_whence = SEEK_SET;
	dotlock_release(lk);
	(void)fcntl(lk->fd, F_OFD_SETLK, &fl);
	*fd_r = lk->fd;
	lk->fd = -1;
}

enum store_rc
mbox_open(const char *path, const struct mailbox_opts *opts,
    struct mbox **mb_r, char *err, size_t errsize)
{
	char name[NAME_MAX + 32];
	struct mbox *mb;
	enum store_rc rc;
	bool dirty;
	size_t i;
	int saved;

	*mb_r = NULL;
	if ((mb = calloc(1, sizeof(*mb))) == NULL) {
		errf(err, errsize, "mbox %s: out of memory", path);
		return STORE_TEMP;
	}
	mb->fd = mb->session_fd = -1;
	mbox_index_init(&mb->idx);
	if ((rc = lock_names(&mb->lk, path, err, errsize)) != STORE_OK) {
		free(mb);
		return rc;
	}
	if (opts->lock_session) {
		if (side_name(&mb->lk, SUFFIX_SESSION, name, sizeof(name)) ==
		    -1) {
			errf(err, errsize, "mbox %s: name too long", path);
			rc = STORE_PERM;
			goto fail;
		}
		mb->session_fd = openat(mb->lk.dirfd, name, O_RDWR | O_CREAT |
		    O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
		if (mb->session_fd == -1 || ofd_lock(mb->session_fd, false) ==
		    -1) {
			saved = errno;
			if (saved == EAGAIN) {
				errf(err, errsize, "mbox %s: locked by another"
				    " session", path);
				rc = STORE_IN_USE;
			} else {
				errf(err, errsize, "mbox %s: %s: %s", path,
				    name, strerror(saved));
				rc = store_errno_rc(saved);
			}
			goto fail;
		}
	}
	rc = lock_take(&mb->lk, false, err, errsize);
	if (rc == STORE_GONE) {
		*mb_r = mb;		/* no file: an empty mailbox */
		return STORE_OK;
	}
	if (rc != STORE_OK)
		goto fail;
	if ((rc = sync_index(&mb->lk, &mb->idx, &dirty, err, errsize)) !=
	    STORE_OK)
		goto fail;
	/* UIDLs shown must be on disk first (invariant 3). */
	if (dirty && (rc = write_index(&mb->lk, &mb->idx, err, errsize)) !=
	    STORE_OK)
		goto fail;
	if (opts->lock_session)
		mb->fd = mb->lk.fd;
	else
		lock_drop_keep_fd(&mb->lk, &mb->fd);
	mb->snap_size = mb->idx.size;
	if ((mb->info = calloc(mb->idx.n + 1, sizeof(*mb->info))) == NULL) {
		errf(err, errsize, "mbox %s: out of memory", path);
		rc = STORE_TEMP;
		goto fail;
	}
	for (i = 0; i < mb->idx.n; i++) {
		const struct mbox_entry *e = &mb->idx.v[i];

		mb->info[i].uidl = e->uidl;
		mb->info[i].name = mb->lk.name;
		mb->info[i].size = e->wire;
		mb->info[i].stored_size = e->stored;
		mb->info[i].retr_time = e->retr_time;
		mb->info[i].flags = MSG_MBOXRD;
	}
	mb->count = (uint32_t)mb->idx.n;
	*mb_r = mb;
	return STORE_OK;
fail:
	mbox_free(mb);
	return rc;
}

uint32_t
mbox_count(const struct mbox *mb)
{
	return mb->count;
}

const struct msg_info *
mbox_msg(const struct mbox *mb, uint32_t idx)
{
	if (idx >= mb->count)
		return NULL;
	return &mb->info[idx];
}

enum store_rc
mbox_msg_open(struct mbox *mb, uint32_t idx, int *fd_r)
{
	const struct mbox_entry *e;
	struct stat st;
	int fd, saved;

	*fd_r = -1;
	if (idx >= mb->count || mb->fd == -1)
		return STORE_GONE;
	e = &mb->idx.v[idx];
	dotlock_refresh(&mb->lk);
	if (fstat(mb->fd, &st) == -1) {
		saved = errno;
		log_warn("mbox %s: fstat", mb->lk.path);
		return store_errno_rc(saved);
	}
	/* Cut or rewritten in place by another program. */
	if ((uint64_t)st.st_size < mb->snap_size || !from_line_ok(mb->fd, e))
		return STORE_GONE;
	/* The session reads with read(): a descriptor of its own whose
	 * offset it moves (this code only uses pread on mb->fd). */
	if ((fd = fcntl(mb->fd, F_DUPFD_CLOEXEC, 0)) == -1) {
		saved = errno;
		log_warn("mbox %s: dup", mb->lk.path);
		return store_errno_rc(saved);
	}
	if (lseek(fd, (off_t)e->data_off, SEEK_SET) == -1) {
		saved = errno;
		(void)close(fd);
		log_warn("mbox %s: lseek", mb->lk.path);
		return store_errno_rc(saved);
	}
	*fd_r = fd;
	return STORE_OK;
}

void
mbox_close(struct mbox **mbp)
{
	if (*mbp == NULL)
		return;
	mbox_free(*mbp);
	*mbp = NULL;
}

/* ---- UPDATE ---- */

static int
copy_range(int from, uint64_t off, uint64_t len, int to)
{
	static uint8_t chunk[COPY_BUF];
	size_t n;

	while (len > 0) {
		n = len < sizeof(chunk) ? (size_t)len : sizeof(chunk);
		if (pread_full(from, chunk, n, off) == -1 ||
		    write_full(to, chunk, n) == -1)
			return -1;
		off += n;
		len -= n;
	}
	return 0;
}

/*
 * Writes the messages of cur not in drop into .FILE.postern-new, fsyncs
 * it, renames it over FILE and fsyncs the directory; then writes the
 * index of the new file.  The new file is fcntl-locked before the rename
 * and becomes lk->fd.  Before the rename any failure leaves FILE as it
 * was.
 */
static enum store_rc
rewrite(struct mbox_lock *lk, const struct mbox_index *cur, const bool *drop,
    char *err, size_t errsize)
{
	char tmpname[NAME_MAX + 32];
	struct mbox_index nidx;
	struct stat st, nst;
	uint64_t pos = 0, end;
	size_t i, last_kept = SIZE_MAX;
	enum store_rc rc;
	int tfd = -1, saved;

	mbox_index_init(&nidx);
	memcpy(nidx.prefix, cur->prefix, sizeof(nidx.prefix));
	nidx.next_uid = cur->next_uid;
	if (side_name(lk, SUFFIX_NEW, tmpname, sizeof(tmpname)) == -1) {
		errf(err, errsize, "mbox %s: name too long", lk->path);
		return STORE_PERM;
	}
	if (fstat(lk->fd, &st) == -1)
		goto ioerr;
	/* Left by a rewrite that died: we hold the locks now. */
	if (unlinkat(lk->dirfd, tmpname, 0) == -1 && errno != ENOENT)
		goto ioerr;
	tfd = openat(lk->dirfd, tmpname, O_RDWR | O_CREAT | O_EXCL |
	    O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (tfd == -1 || ofd_lock(tfd, false) == -1 ||
	    fchmod(tfd, st.st_mode & 07777) == -1)
		goto ioerr;
	if ((st.st_uid != geteuid() || st.st_gid != getegid()) &&
	    fchown(tfd, st.st_uid, st.st_gid) == -1)
		log_warn("mbox %s: keeping the owner", lk->path);
	for (i = 0; i < cur->n; i++) {
		const struct mbox_entry *e = &cur->v[i];
		struct mbox_found f;
		char *u;

		if (drop[i])
			continue;
		end = i + 1 < cur->n ? cur->v[i + 1].from_off : cur->size;
		if (copy_range(lk->fd, e->from_off, end - e->from_off, tfd) ==
		    -1)
			goto ioerr;
		memset(&f, 0, sizeof(f));
		f.from_off = pos;
		f.from_len = e->from_len;
		f.from_hash = e->from_hash;
		f.data_off = pos + (e->data_off - e->from_off);
		f.stored = e->stored;
		f.wire = e->wire;
		f.head_hash = e->head_hash;
		if ((u = strdup(e->uidl)) == NULL)
			goto ioerr;
		if (mbox_index_append(&nidx, &f, e->retr_time, u) == -1) {
			free(u);
			goto ioerr;
		}
		pos += end - e->from_off;
		last_kept = i;
	}
	nidx.tail_ok = last_kept == SIZE_MAX || last_kept + 1 < cur->n ||
	    cur->tail_ok;
	if (fsync(tfd) == -1 || fstat(tfd, &nst) == -1)
		goto ioerr;
	set_file_id(&nidx, &nst);
	if (renameat(lk->dirfd, tmpname, lk->dirfd, lk->name) == -1)
		goto ioerr;
	close_fd(&lk->fd);
	lk->fd = tfd;
	tfd = -1;
	if (fsync(lk->dirfd) == -1) {
		saved = errno;
		errf(err, errsize, "mbox %s: fsync of the directory: %s",
		    lk->path, strerror(saved));
		mbox_index_free(&nidx);
		return STORE_TEMP;
	}
	rc = write_index(lk, &nidx, err, errsize);
	mbox_index_free(&nidx);
	return rc;
ioerr:
	saved = errno;
	errf(err, errsize, "mbox %s: rewriting: %s", lk->path,
	    strerror(saved));
	if (tfd != -1) {
		(void)unlinkat(lk->dirfd, tmpname, 0);
		(void)close(tfd);
	}
	mbox_index_free(&nidx);
	return store_errno_rc(saved);
}

enum store_rc
mbox_commit(struct mbox *mb, const bool *deleted, const bool *retrieved,
    int64_t expire_days, time_t now, uint32_t *removed_r, char *err,
    size_t errsize)
{
	struct index_map byuidl = { 0 };
	struct mbox_index cur;
	bool *drop = NULL, dirty, any_drop = false, held;
	uint32_t removed = 0, failed = 0, v;
	enum store_rc rc;
	size_t i, it;

	*removed_r = 0;
	mbox_index_init(&cur);
	if (mb->count == 0)
		return STORE_OK;
	held = mb->lk.fd != -1;		/* lock_session */
	if (!held) {
		rc = lock_take(&mb->lk, false, err, errsize);
		if (rc == STORE_GONE) {
			/* The file is gone, and every message with it. */
			for (i = 0; i < mb->count; i++)
				if (deleted != NULL && deleted[i])
					removed++;
			*removed_r = removed;
			return STORE_OK;
		}
		if (rc != STORE_OK)
			return rc;
	}
	/* Revalidate: the file as it is now, with mail that came since. */
	if ((rc = sync_index(&mb->lk, &cur, &dirty, err, errsize)) !=
	    STORE_OK)
		goto out;
	if ((drop = calloc(cur.n + 1, sizeof(*drop))) == NULL ||
	    index_map_init(&byuidl, cur.n) == -1) {
		errf(err, errsize, "mbox %s: out of memory", mb->lk.path);
		rc = STORE_TEMP;
		goto out;
	}
	for (i = 0; i < cur.n; i++)
		if (index_map_add(&byuidl, cur.v[i].uidl,
		    strlen(cur.v[i].uidl), (uint32_t)i) == -1) {
			errf(err, errsize, "mbox %s: out of memory",
			    mb->lk.path);
			rc = STORE_TEMP;
			goto out;
		}
	for (i = 0; i < mb->count; i++) {
		const struct mbox_entry *s = &mb->idx.v[i];
		struct mbox_entry *e = NULL;
		int64_t rt = s->retr_time;
		bool del = deleted != NULL && deleted[i];

		it = 0;
		if (index_map_find(&byuidl, s->uidl, strlen(s->uidl), &it,
		    &v)) {
			e = &cur.v[v];
			if (cmp_key(e, s) != 0) {
				/* Another message under that UIDL: leave
				 * it alone. */
				if (del)
					failed++;
				continue;
			}
			if (e->retr_time != 0)
				rt = e->retr_time;
		}
		if (rt == 0 && retrieved != NULL && retrieved[i])
			rt = (int64_t)now;
		if (!del && !store_expired(rt, expire_days, now)) {
			if (e != NULL && e->retr_time == 0 && rt != 0) {
				e->retr_time = rt;
				dirty = true;
			}
			continue;
		}
		removed++;
		if (e != NULL && !drop[v]) {
			drop[v] = true;
			any_drop = true;
		}
	}
	if (any_drop)
		rc = rewrite(&mb->lk, &cur, drop, err, errsize);
	else if (dirty)
		rc = write_index(&mb->lk, &cur, err, errsize);
	else
		rc = STORE_OK;
	if (rc != STORE_OK)
		removed = 0;
	else if (failed > 0) {
		errf(err, errsize, "mbox %s: %u message(s) changed by another"
		    " program, not removed", mb->lk.path, failed);
		rc = STORE_TEMP;
	}
out:
	*removed_r = removed;
	index_map_free(&byuidl);
	free(drop);
	mbox_index_free(&cur);
	if (!held)
		lock_release(&mb->lk);
	else if (mb->lk.fd != mb->fd) {
		/* The rewrite put the new file under the lock. */
		mb->fd = -1;
	}
	return rc;
}

/* ---- delivery ---- */

struct mbox_delivery {
	struct mbox_lock lk;
	struct mbox_index idx;		/* the mbox before the append */
	int		 appfd;		/* .FILE.postern-append */
	uint64_t	 start;		/* the size before the append */
	uint64_t	 max_size;
	uint64_t	 written;	/* octets given to write */
	struct mbox_found f;		/* the new message */
	int		 nfound;
	struct mbox_quote q;
	struct mbox_scan scan;		/* what a reader will find */
	size_t		 skip;		/* octets of out before the From_ */
	struct buf	 out;		/* octets not yet written */
	unsigned char	 last;		/* last octet given */
	bool		 failed;
};

static void
delivery_free(struct mbox_delivery *d)
{
	buf_clear(&d->out);
	mbox_index_free(&d->idx);
	close_fd(&d->appfd);
	lock_release(&d->lk);
	lock_names_free(&d->lk);
	free(d);
}

/* Records (or with off UINT64_MAX clears) the append under way.  0/-1. */
static int
append_mark(struct mbox_delivery *d, uint64_t off)
{
	char text[32];
	int n = 0;

	if (off != UINT64_MAX &&
	    (n = snprintf(text, sizeof(text), "%llu\n",
	    (unsigned long long)off)) < 0)
		return -1;
	if (ftruncate(d->appfd, 0) == -1 ||
	    (n > 0 && pwrite(d->appfd, text, (size_t)n, 0) != n) ||
	    fsync(d->appfd) == -1)
		return -1;
	return 0;
}

/* Cuts the mbox back to its size before the append. */
static void
deliver_undo(struct mbox_delivery *d)
{
	int saved = errno;

	if (d->lk.fd != -1 && d->appfd != -1) {
		if (ftruncate(d->lk.fd, (off_t)d->start) == -1 ||
		    fsync(d->lk.fd) == -1)
			log_warn("mbox %s: cutting back a failed delivery",
			    d->lk.path);
		else if (append_mark(d, UINT64_MAX) == -1)
			log_warn("mbox %s: %s", d->lk.path, SUFFIX_APPEND);
	}
	d->failed = true;
	errno = saved;
}

static enum store_rc
deliver_error(struct mbox_delivery *d, int e, const char *what, char *err,
    size_t errsize)
{
	errf(err, errsize, "mbox %s: %s: %s", d->lk.path, what, strerror(e));
	deliver_undo(d);
	return e == EFBIG ? STORE_TOO_BIG : store_errno_rc(e);
}

static int
scan_found(void *arg, const struct mbox_found *f)
{
	struct mbox_delivery *d = arg;

	if (d->nfound++ > 0) {
		errno = EIO;
		return -1;
	}
	d->f = *f;
	return 0;
}

/*
 * Writes out, and feeds it to the scanner that a reader would run over
 * these octets: its result is the index entry, so the two cannot
 * disagree.
 */
static int
deliver_flush(struct mbox_delivery *d)
{
	if (d->out.len == 0)
		return 0;
	if (write_full(d->lk.fd, d->out.data, d->out.len) == -1 ||
	    mbox_scan_feed(&d->scan, (const uint8_t *)d->out.data + d->skip,
	    d->out.len - d->skip, scan_found, d) == -1)
		return -1;
	d->skip = 0;
	buf_reset(&d->out);
	return 0;
}

/* "From SENDER DATE" (asctime's date, local time, as Postfix writes). */
static int
from_line(struct mbox_delivery *d, const char *sender)
{
	char date[64];
	struct tm tm;
	time_t now = time(NULL);
	size_t i, n;

	if (sender == NULL || sender[0] == '\0')
		sender = DEFAULT_SENDER;
	if (localtime_r(&now, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) == 0)
		return -1;
	if (buf_addstr(&d->out, "From ") == -1)
		return -1;
	n = strlen(sender);
	if (n > DELIVER_MAX_SENDER_LEN)
		n = DELIVER_MAX_SENDER_LEN;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)sender[i];

		if (buf_addc(&d->out, c > 0x20 && c < 0x7f ? (char)c : '_') ==
		    -1)
			return -1;
	}
	if (buf_addf(&d->out, " %s", date) == -1)
		return -1;
	return buf_addc(&d->out, '\n');
}

enum store_rc
mbox_deliver_begin(const char *path, uint64_t max_size, const char *sender,
    struct mbox_delivery **d_r, char *err, size_t errsize)
{
	char name[NAME_MAX + 32], tail[2];
	struct mbox_delivery *d;
	struct stat st;
	enum store_rc rc;
	const char *sep;
	bool dirty, created = false;
	int saved;

	*d_r = NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		errf(err, errsize, "mbox %s: out of memory", path);
		return STORE_TEMP;
	}
	d->appfd = -1;
	d->max_size = max_size;
	mbox_index_init(&d->idx);
	buf_init(&d->out, 4 * COPY_BUF);
	mbox_quote_init(&d->q);
	if ((rc = lock_names(&d->lk, path, err, errsize)) != STORE_OK) {
		buf_clear(&d->out);
		free(d);
		return rc;
	}
	if ((rc = lock_take(&d->lk, true, err, errsize)) != STORE_OK)
		goto fail;
	/* The index as the file is now, so that the new entry can be
	 * added to it (and a half-written earlier append is cut away). */
	if ((rc = sync_index(&d->lk, &d->idx, &dirty, err, errsize)) !=
	    STORE_OK)
		goto fail;
	if (fstat(d->lk.fd, &st) == -1)
		goto ioerr;
	d->start = (uint64_t)st.st_size;
	if (side_name(&d->lk, SUFFIX_APPEND, name, sizeof(name)) == -1) {
		errno = ENAMETOOLONG;
		goto ioerr;
	}
	d->appfd = openat(d->lk.dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW |
	    O_NOCTTY | O_NONBLOCK);
	if (d->appfd == -1 && errno == ENOENT) {
		d->appfd = openat(d->lk.dirfd, name, O_RDWR | O_CREAT |
		    O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
		created = true;
	}
	if (d->appfd == -1 || append_mark(d, d->start) == -1 ||
	    (created && fsync(d->lk.dirfd) == -1))
		goto ioerr;
	/* An mbox that does not end with an empty line gets one, so that
	 * the From_ line starts a message. */
	sep = "";
	if (d->start > 0 && !d->idx.tail_ok) {
		if (pread_full(d->lk.fd, tail, 1, d->start - 1) == -1)
			goto ioerr;
		sep = tail[0] == '\n' ? "\n" : "\n\n";
	}
	if (lseek(d->lk.fd, (off_t)d->start, SEEK_SET) == -1 ||
	    buf_addstr(&d->out, sep) == -1)
		goto ioerr;
	d->skip = strlen(sep);
	mbox_scan_init(&d->scan, d->start + d->skip);
	if (from_line(d, sender) == -1)
		goto ioerr;
	*d_r = d;
	return STORE_OK;
ioerr:
	saved = errno;
	errf(err, errsize, "mbox %s: starting a delivery: %s", path,
	    strerror(saved));
	rc = store_errno_rc(saved);
fail:
	if (d->appfd != -1)
		(void)append_mark(d, UINT64_MAX);
	delivery_free(d);
	return rc;
}

enum store_rc
mbox_deliver_write(struct mbox_delivery *d, const void *data, size_t len,
    char *err, size_t errsize)
{
	if (d->failed) {
		errf(err, errsize, "mbox %s: the delivery failed before",
		    d->lk.path);
		return STORE_TEMP;
	}
	if (len == 0)
		return STORE_OK;
	if (len > d->max_size - d->written) {
		errf(err, errsize, "mbox %s: message over the size limit",
		    d->lk.path);
		deliver_undo(d);
		return STORE_TOO_BIG;
	}
	d->written += len;
	d->last = ((const unsigned char *)data)[len - 1];
	if (mbox_quote_feed(&d->q, data, len, &d->out) == -1)
		return deliver_error(d, errno, "quoting", err, errsize);
	if (d->out.len >= COPY_BUF && deliver_flush(d) == -1)
		return deliver_error(d, errno, "writing", err, errsize);
	return STORE_OK;
}

void
mbox_deliver_abort(struct mbox_delivery **dp)
{
	if (*dp == NULL)
		return;
	if (!(*dp)->failed)
		deliver_undo(*dp);
	delivery_free(*dp);
	*dp = NULL;
}

enum store_rc
mbox_deliver_commit(struct mbox_delivery **dp, struct delivery_info *info_r,
    char *err, size_t errsize)
{
	struct mbox_delivery *d = *dp;
	struct collect c = { 0 };
	struct stat st;
	enum store_rc rc;
	int saved;

	*dp = NULL;
	if (info_r != NULL)
		memset(info_r, 0, sizeof(*info_r));
	if (d->failed) {
		errf(err, errsize, "mbox %s: the delivery failed before",
		    d->lk.path);
		delivery_free(d);
		return STORE_TEMP;
	}
	if (mbox_quote_finish(&d->q, &d->out) == -1)
		goto ioerr;
	/* The last line gets its end (the same wire form: store.h). */
	if (d->written > 0 && d->last != '\n' && buf_addstr(&d->out,
	    d->last == '\r' ? "\r\n" : "\n") == -1)
		goto ioerr;
	/* The empty line that ends a message in an mbox. */
	if (buf_addc(&d->out, '\n') == -1 || deliver_flush(d) == -1 ||
	    mbox_scan_finish(&d->scan, scan_found, d) == -1 ||
	    fsync(d->lk.fd) == -1 || fstat(d->lk.fd, &st) == -1)
		goto ioerr;
	if (d->nfound != 1 || d->scan.garbage) {
		errno = EIO;	/* cannot happen: the From_ line is ours */
		goto ioerr;
	}
	/* The index learns the message, so the next session scans
	 * nothing; if it cannot be written, that session scans the new
	 * part. */
	c.idx = &d->idx;
	c.first = d->idx.n;
	if (collect_found(&c, &d->f) == -1 || assign_uidls(&d->idx, &c) ==
	    -1) {
		collect_free(&c);
		goto ioerr;
	}
	collect_free(&c);
	set_file_id(&d->idx, &st);
	d->idx.tail_ok = true;
	if (write_index(&d->lk, &d->idx, err, errsize) != STORE_OK)
		log_warnx("%s", err);
	if (append_mark(d, UINT64_MAX) == -1) {
		/* The mark would cut the message away later: undo now. */
		rc = deliver_error(d, errno, "clearing the append mark", err,
		    errsize);
		delivery_free(d);
		return rc;
	}
	if (info_r != NULL) {
		const char *u = d->idx.v[d->idx.n - 1].uidl;

		info_r->size = d->f.wire;
		info_r->stored_size = d->f.stored;
		if (str_fmt(info_r->name, sizeof(info_r->name), "%s", u) ==
		    -1)
			info_r->name[0] = '\0';
	}
	delivery_free(d);
	return STORE_OK;
ioerr:
	saved = errno;
	rc = deliver_error(d, saved, "appending", err, errsize);
	delivery_free(d);
	return rc;
}
