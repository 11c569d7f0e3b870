/*
 * maildir.c: the Maildir backend of store.h, with the per-mailbox index.
 *
 * Owns: struct maildir (the snapshot a session works on), the files
 * postern.index, postern.uidls, postern.lock and postern.session.lock in
 * the Maildir root, the moves new/ -> cur/, and deliveries (struct
 * maildir_delivery: tmp/, fsync, rename into new/, fsync of new/).  Trusts: the directory it is given (the caller built it from
 * the configuration).
 * Does not trust: the index file (parsed strictly by index.c, rebuilt
 * from the files on any fault), file names in the Maildir (any octet but
 * '/' and NUL; dot files are skipped), or other programs working on the
 * Maildir at the same time (files may vanish or be renamed at any
 * moment).
 *
 * store.c dispatches the functions of store.h here (maildir_*, declared
 * in backend.h) or to mbox.c.
 *
 * Locking: postern.lock is taken with an exclusive OFD lock (blocking)
 * around every read-modify-write of the index, so that sessions of any
 * process, and several sessions in one process, take turns.  With
 * lock_session, postern.session.lock is locked the same way but without
 * waiting, for the whole session.  OFD locks belong to the open file
 * description, so two sessions in one process conflict as they should,
 * and closing the descriptor releases the lock.
 *
 * The readdir shortcut: STAT on a mailbox of 100,000 messages must read
 * one file.  The index records cur/'s mtime (with nanoseconds) when its
 * listing was taken, and the clock just before that.  If cur/'s mtime is
 * still the same, the recorded mtime was more than 2 seconds older than
 * that clock, and new/ had nothing to move, the index is exactly cur/'s
 * content: any later change of cur/ would have given it a different
 * mtime, because the change happened more than 2 seconds (more than any
 * timestamp granularity) after the recorded one.  Otherwise cur/ is
 * listed and reconciled.  The clock taken before the listing, not the
 * time of writing the index, is what counts: sizing new files may take
 * seconds between the two.
 *
 * UIDLs are a function of the base name (index.c), or recorded for it
 * in postern.uidls when imported from another server (postern
 * migrate-uidl, mailbox_import_uidls below), so a rebuilt index gives
 * the same UIDLs; an entry's UIDL is never changed, also when another
 * program renames the file to change its flags.  The UIDL guard
 * (guard_check) logs when many of them would change at once.
 *
 * Sizes come from reading each new file, except when its name carries
 * ",S=<stored>,W=<wire>" (mailbox_deliver writes them) and the file
 * bears them out (trusted_name_size), with W != S: then the first
 * session after a delivery reads no message at all.  A file in wire form
 * (W = S, as LMTP stores mail) is read once, to learn whether any line
 * starts with '.'; one without such a line is marked MSG_WIRE_CLEAN and
 * RETR sends it with sendfile as it is.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include "store/index.h"
#include "store/backend.h"
#include "store/store.h"

#define LOCK_FILE		"postern.lock"
#define SESSION_LOCK_FILE	"postern.session.lock"
#define UIDL_MAP_FILE		"postern.uidls"
#define NEW_SUFFIX		".new"	/* the next INDEX_FILE, UIDL_MAP_FILE */
#define INFO_SUFFIX		":2,"
#define TRUST_MARGIN_SEC	2

struct maildir {
	char		*path;
	int		 dirfd;		/* the Maildir root */
	int		 curfd;		/* cur/ */
	int		 session_fd;	/* postern.session.lock, or -1 */
	struct index	 idx;		/* the snapshot, by seq */
	struct msg_info	*info;		/* one per entry of idx */
	char		**relpath;	/* "cur/<name>" per entry */
	char		*relpaths;	/* their block (a renamed one's path
					 * is an allocation of its own) */
	size_t		 relpaths_len;
	uint32_t	 count;
	unsigned int	 guard_share;	/* uidl_guard_share, percent */
	unsigned int	 guard_min;	/* uidl_guard_min */
	bool		 guard_quiet;	/* an import asked for the changes */
};

/* What one reconciliation did to the UIDL set, for the guard. */
struct guard_stats {
	size_t		 old;		/* entries of the loaded index */
	size_t		 gone;		/* of those, dropped: file gone */
	size_t		 fresh;		/* entries new to the index */
	size_t		 kept;		/* of those, given their recorded
					 * UIDL where the name gives another */
	size_t		 taken;		/* recorded UIDL held by another */
	int		 map;		/* load_uidl_map's result; -2: not
					 * read */
	const struct uidl_map *salvage;	/* of a damaged index, or NULL */
};

/* A file found in cur/ that the index does not know yet. */
struct newfile {
	char		*name;
	uint64_t	 order;		/* leading number, or mtime */
	uint64_t	 size;
	uint64_t	 stored;
	bool		 clean;
};

/* Errors that retrying will not cure are PERM; the rest are TEMP. */
static enum store_rc
errno_rc(int e)
{
	return store_errno_rc(e);
}

static void
close_fd(int *fd)
{
	if (*fd != -1) {
		(void)close(*fd);
		*fd = -1;
	}
}

/* ---- locks ---- */

/*
 * Opens (creating) name in dirfd and locks it exclusively with an OFD
 * lock, waiting if wait is set.  0, or -1 with errno (EAGAIN when the
 * lock is held elsewhere and wait is not set).
 */
static int
lock_file(int dirfd, const char *name, bool wait, int *fd_r)
{
	struct flock fl;
	int fd, saved;

	fd = openat(dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
	    O_NOCTTY, 0600);
	if (fd == -1)
		return -1;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = 0;
	fl.l_len = 0;
	while (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == -1) {
		if (errno == EINTR)
			continue;
		saved = errno == EACCES ? EAGAIN : errno;
		(void)close(fd);
		errno = saved;
		return -1;
	}
	*fd_r = fd;
	return 0;
}

/* ---- directories ---- */

static DIR *
open_dir(int dirfd, const char *name)
{
	DIR *d;
	int fd;

	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC |
	    O_NOFOLLOW);
	if (fd == -1)
		return NULL;
	if ((d = fdopendir(fd)) == NULL) {
		int saved = errno;

		(void)close(fd);
		errno = saved;
	}
	return d;
}

/* A regular file (not a symlink, directory or device). */
static bool
is_regular(DIR *d, const struct dirent *de)
{
	struct stat st;

	if (de->d_type == DT_REG)
		return true;
	if (de->d_type != DT_UNKNOWN)
		return false;
	if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return false;
	return S_ISREG(st.st_mode);
}

/*
 * Next directory entry that names a regular, non-dot file, or NULL at
 * the end (errno 0) or on error (errno set).
 */
static const struct dirent *
next_file(DIR *d)
{
	const struct dirent *de;

	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL)
			return NULL;
		if (de->d_name[0] == '.')
			continue;
		if (is_regular(d, de))
			return de;
	}
}

/* rename without replacing, where RENAME_NOREPLACE is not supported:
 * link() never replaces.  0 or -1. */
static int
link_move(int fromfd, const char *from, int tofd, const char *to)
{
	int saved;

	if (linkat(fromfd, from, tofd, to, 0) == -1)
		return -1;
	if (unlinkat(fromfd, from, 0) == -1 && errno != ENOENT) {
		saved = errno;
		(void)unlinkat(tofd, to, 0);
		errno = saved;
		return -1;
	}
	return 0;
}

/*
 * new/ -> cur/: each file becomes cur/<name>:2, (a name that already
 * carries ":2," keeps it).  Never replaces a file in cur/.
 */
static enum store_rc
move_new(struct maildir *mb, size_t *moved_r, char *err, size_t errsize)
{
	const struct dirent *de;
	char dst[INDEX_NAME_MAX + 1];
	size_t moved = 0;
	DIR *d;
	int saved;

	*moved_r = 0;
	if ((d = open_dir(mb->dirfd, "new")) == NULL) {
		saved = errno;
		errf(err, errsize, "mailbox %s: new/: %s", mb->path,
		    strerror(saved));
		return errno_rc(saved);
	}
	while ((de = next_file(d)) != NULL) {
		const char *name = de->d_name;
		int r;

		if (moved >= MAX_MESSAGES_PER_MAILBOX) {
			errno = 0;	/* the rest waits for the next session */
			break;
		}
		if (strstr(name, INFO_SUFFIX) != NULL)
			r = str_fmt(dst, sizeof(dst), "%s", name);
		else
			r = str_fmt(dst, sizeof(dst), "%s%s", name,
			    INFO_SUFFIX);
		if (r == -1) {
			log_warnx("mailbox %s: new/ file name too long, left"
			    " in new/", mb->path);
			continue;
		}
		r = renameat2(dirfd(d), name, mb->curfd, dst,
		    RENAME_NOREPLACE);
		if (r == -1 && (errno == EINVAL || errno == ENOSYS))
			r = link_move(dirfd(d), name, mb->curfd, dst);
		if (r == 0) {
			moved++;
			continue;
		}
		if (errno == ENOENT)
			continue;	/* another session moved it first */
		if (errno == EEXIST) {
			log_warnx("mailbox %s: cur/%s exists, new/%s left in"
			    " new/", mb->path, dst, name);
			continue;
		}
		saved = errno;
		errf(err, errsize, "mailbox %s: moving new/ to cur/: %s",
		    mb->path, strerror(saved));
		(void)closedir(d);
		return errno_rc(saved);
	}
	saved = errno;
	if (saved != 0) {
		errf(err, errsize, "mailbox %s: reading new/: %s", mb->path,
		    strerror(saved));
		(void)closedir(d);
		return errno_rc(saved);
	}
	if (moved > 0 && (fsync(dirfd(d)) == -1 || fsync(mb->curfd) == -1)) {
		saved = errno;
		errf(err, errsize, "mailbox %s: fsync: %s", mb->path,
		    strerror(saved));
		(void)closedir(d);
		return STORE_TEMP;
	}
	(void)closedir(d);
	*moved_r = moved;
	return STORE_OK;
}

/* Removes files in tmp/ older than MAILDIR_TMP_STALE_SEC.  Best effort:
 * a failure here is logged and does not stop the session. */
static void
clean_tmp(struct maildir *mb, time_t now)
{
	const struct dirent *de;
	struct stat st;
	DIR *d;

	if ((d = open_dir(mb->dirfd, "tmp")) == NULL) {
		log_warn("mailbox %s: tmp/", mb->path);
		return;
	}
	while ((de = next_file(d)) != NULL) {
		if (fstatat(dirfd(d), de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == -1 || !S_ISREG(st.st_mode))
			continue;
		if (st.st_mtime >= now - MAILDIR_TMP_STALE_SEC)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == -1 &&
		    errno != ENOENT)
			log_warn("mailbox %s: removing a stale tmp/ file",
			    mb->path);
	}
	if (errno != 0)
		log_warn("mailbox %s: reading tmp/", mb->path);
	(void)closedir(d);
}

/* ---- the index file ---- */

/*
 * Opens the file name of the Maildir root: *fd_r and *st_r.  1: open;
 * 0: missing, or not a regular file or larger than max (logged); -1: I/O
 * error (err set).
 */
static int
open_root_file(struct maildir *mb, const char *name, size_t max,
    int *fd_r, struct stat *st_r, char *err, size_t errsize)
{
	struct stat st;
	int fd, saved;

	*fd_r = -1;
	fd = openat(mb->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
	    O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		saved = errno;
		if (saved == ELOOP || saved == ENXIO) {
			log_warnx("mailbox %s: %s is not a file, ignored",
			    mb->path, name);
			return 0;
		}
		errf(err, errsize, "mailbox %s: %s: %s", mb->path, name,
		    strerror(saved));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		saved = errno;
		(void)close(fd);
		errf(err, errsize, "mailbox %s: %s: %s", mb->path, name,
		    strerror(saved));
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < 0 ||
	    (uint64_t)st.st_size > max) {
		(void)close(fd);
		log_warnx("mailbox %s: %s is not a file or too large,"
		    " ignored", mb->path, name);
		return 0;
	}
	*fd_r = fd;
	*st_r = st;
	return 1;
}

/* Reads fd (open_root_file's) into b, bounded by max, and closes it.
 * 1: read; 0: over max after all (logged, ignored); -1: I/O error. */
static int
read_root_fd(struct maildir *mb, const char *name, int fd, size_t max,
    struct buf *b, char *err, size_t errsize)
{
	int saved;

	buf_init(b, max);
	for (;;) {
		char chunk[65536];
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n == -1) {
			if (errno == EINTR)
				continue;
			goto ioerr;
		}
		if (n == 0)
			break;
		if (buf_add(b, chunk, (size_t)n) == -1) {
			if (errno != EMSGSIZE)
				goto ioerr;
			buf_clear(b);
			(void)close(fd);
			log_warnx("mailbox %s: %s too large, ignored",
			    mb->path, name);
			return 0;
		}
	}
	(void)close(fd);
	return 1;
ioerr:
	saved = errno;
	buf_clear(b);
	(void)close(fd);
	errf(err, errsize, "mailbox %s: reading %s: %s", mb->path, name,
	    strerror(saved));
	return -1;
}

/*
 * Reads the regular file name of the Maildir root into b, bounded by
 * max.  1: read; 0: missing, not a regular file or too large (logged,
 * ignored); -1: I/O error, with a reason in err.
 */
static int
read_root_file(struct maildir *mb, const char *name, size_t max,
    struct buf *b, char *err, size_t errsize)
{
	struct stat st;
	int fd, r;

	buf_init(b, max);
	if ((r = open_root_file(mb, name, max, &fd, &st, err, errsize)) != 1)
		return r;
	return read_root_fd(mb, name, fd, max, b, err, errsize);
}

/* What tells one version of a file from another (index_cache.c). */
static void
file_id(const struct stat *st, struct index_file_id *id)
{
	memset(id, 0, sizeof(*id));
	id->dev = (uint64_t)st->st_dev;
	id->ino = (uint64_t)st->st_ino;
	id->size = (uint64_t)st->st_size;
	id->mtime_sec = (int64_t)st->st_mtim.tv_sec;
	id->mtime_nsec = st->st_mtim.tv_nsec;
	id->ctime_sec = (int64_t)st->st_ctim.tv_sec;
	id->ctime_nsec = st->st_ctim.tv_nsec;
}

/*
 * Reads and parses postern.index into idx.  1: loaded; 0: missing or
 * corrupt (logged; idx is empty and must be rebuilt; salvage, if not
 * NULL, gets what can be read of a corrupt one: index_salvage); -1: I/O
 * error.
 */
static int
load_index(struct maildir *mb, struct index *idx, struct uidl_map *salvage,
    char *err, size_t errsize)
{
	struct index_file_id id;
	struct stat st;
	char why[256];
	struct buf b;
	int fd, r;

	index_init(idx);
	if ((r = open_root_file(mb, INDEX_FILE, INDEX_MAX_BYTES, &fd, &st, err,
	    errsize)) != 1)
		return r;
	file_id(&st, &id);
	if (index_cache_get(mb->path, &id, idx)) {
		(void)close(fd);
		log_debug("mailbox %s: index from the cache, %zu messages",
		    mb->path, idx->n);
		return 1;
	}
	if ((r = read_root_fd(mb, INDEX_FILE, fd, INDEX_MAX_BYTES, &b, err,
	    errsize)) != 1)
		return r;
	if (index_parse(b.data != NULL ? b.data : "", b.len, idx, why,
	    sizeof(why)) == -1) {
		log_warnx("mailbox %s: %s, rebuilding", mb->path, why);
		if (salvage != NULL && b.data != NULL &&
		    index_salvage(b.data, b.len, salvage) == -1) {
			buf_clear(&b);
			errf(err, errsize, "mailbox %s: out of memory",
			    mb->path);
			return -1;
		}
		buf_clear(&b);
		return 0;
	}
	buf_clear(&b);
	index_cache_put(mb->path, &id, idx);
	return 1;
}

/*
 * Reads and parses postern.uidls into map.  1: loaded; 0: missing;
 * 2: damaged (logged: the index keeps the UIDLs it has, but a rebuilt
 * index would not); -1: I/O error.
 */
static int
load_uidl_map(struct maildir *mb, struct uidl_map *map, char *err,
    size_t errsize)
{
	char why[256];
	struct buf b;
	int r;

	uidl_map_init(map);
	if ((r = read_root_file(mb, UIDL_MAP_FILE, INDEX_MAX_BYTES, &b, err,
	    errsize)) != 1)
		return r;
	if (uidl_map_parse(b.data != NULL ? b.data : "", b.len, map, why,
	    sizeof(why)) == -1) {
		buf_clear(&b);
		log_warnx("mailbox %s: %s: %s; its UIDLs are not used; restore"
		    " it from a backup or run postern migrate-uidl again",
		    mb->path, UIDL_MAP_FILE, why);
		return 2;
	}
	buf_clear(&b);
	return 1;
}

static enum store_rc
write_index(struct maildir *mb, const struct index *idx, char *err,
    size_t errsize)
{
	char path[MAX_PATH_LEN], tmp[MAX_PATH_LEN];
	struct index_file_id id;
	struct stat st;
	struct buf b;
	int saved;

	buf_init(&b, INDEX_MAX_BYTES);
	if (str_fmt(path, sizeof(path), "%s/%s", mb->path, INDEX_FILE) == -1 ||
	    str_fmt(tmp, sizeof(tmp), "%s%s", path, NEW_SUFFIX) == -1) {
		errf(err, errsize, "mailbox %s: path too long", mb->path);
		return STORE_PERM;
	}
	/* Under LOCK_FILE, so one fixed temporary name. */
	if (index_serialize(idx, &b) == -1 ||
	    write_atomic_via(path, tmp, b.data, b.len, 0600) == -1) {
		saved = errno;
		buf_clear(&b);
		errf(err, errsize, "mailbox %s: writing %s: %s", mb->path,
		    INDEX_FILE, strerror(saved));
		return errno_rc(saved);
	}
	buf_clear(&b);
	/* Still under LOCK_FILE: the file is the one just written. */
	if (fstatat(mb->dirfd, INDEX_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		file_id(&st, &id);
		index_cache_put(mb->path, &id, idx);
	}
	return STORE_OK;
}

/* ---- reconciling the index with cur/ ---- */

static struct index_time
stat_mtime(const struct stat *st)
{
	struct index_time t;

	t.sec = (int64_t)st->st_mtim.tv_sec;
	t.nsec = st->st_mtim.tv_nsec;
	return t;
}

static bool
time_eq(struct index_time a, struct index_time b)
{
	return a.sec == b.sec && a.nsec == b.nsec;
}

/* a is more than TRUST_MARGIN_SEC before b. */
static bool
time_older(struct index_time a, struct index_time b)
{
	if (a.sec > INT64_MAX - TRUST_MARGIN_SEC)
		return false;
	a.sec += TRUST_MARGIN_SEC;
	return a.sec < b.sec || (a.sec == b.sec && a.nsec < b.nsec);
}

/* The leading decimal timestamp of a Maildir name, if it has one. */
static bool
leading_number(const char *name, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; name[i] >= '0' && name[i] <= '9'; i++) {
		if (i == 19)
			return false;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	*v_r = v;
	return i > 0;
}

static int
newfile_cmp(const void *a, const void *b)
{
	const struct newfile *x = a, *y = b;

	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return strcmp(x->name, y->name);
}

/*
 * The wire size recorded in the file's name (",S=...,W=...", written by
 * mailbox_deliver and by Dovecot), if the file bears it out: S= is the
 * file's size, W= lies between S= and twice S= (each stored LF adds at
 * most one octet), and the file ends with LF or is empty.  The last
 * check matters because the wire form completes a last line that lacks
 * its LF, which Dovecot's W= does not count; with a final LF both
 * definitions agree.  False: the caller reads the file.
 */
static bool
trusted_name_size(const char *name, int fd, const struct stat *st,
    uint64_t *size_r)
{
	uint64_t s, w;
	ssize_t n;
	char last;

	if (!index_name_sizes(name, index_base_len(name), &s, &w) ||
	    st->st_size < 0 || s != (uint64_t)st->st_size)
		return false;
	if (s == 0) {
		if (w != 0)
			return false;
	} else {
		if (w < s || w > 2 * s)	/* s <= INDEX_MAX_MSG_OCTETS */
			return false;
		do {
			n = pread(fd, &last, 1, (off_t)(s - 1));
		} while (n == -1 && errno == EINTR);
		if (n != 1 || last != '\n')
			return false;
	}
	*size_r = w;
	return true;
}

/*
 * Sizes a file of cur/ for the index: from its name when the name bears
 * trustworthy sizes (a file mailbox_deliver wrote: no need to read it),
 * else by reading it.  1: done; 0: skip it (vanished or not a readable
 * regular file, logged if unexpected); -1: error that must stop the scan
 * (errno set).
 */
static int
size_file(struct maildir *mb, struct newfile *nf)
{
	struct stat st;
	int fd, saved;

	fd = openat(mb->curfd, nf->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
	    O_NOCTTY | O_NONBLOCK);
	if (fd == -1)
		goto fail;
	if (fstat(fd, &st) == -1)
		goto fail_close;
	if (!S_ISREG(st.st_mode)) {
		(void)close(fd);
		return 0;
	}
	if (trusted_name_size(nf->name, fd, &st, &nf->size) &&
	    nf->size != (uint64_t)st.st_size) {
		/* Not in wire form (its LFs become CRLF): RETR goes through
		 * the encoder, and nothing else needs reading.  A name that
		 * says wire form (W = S) is read all the same, to learn
		 * whether any line starts with '.': without one, RETR sends
		 * the file as it is. */
		nf->stored = (uint64_t)st.st_size;
		nf->clean = false;
	} else if (wire_size_fd(fd, &nf->size, &nf->stored, &nf->clean) ==
	    -1)
		goto fail_close;
	(void)close(fd);
	if (nf->stored > INDEX_MAX_MSG_OCTETS) {
		log_warnx("mailbox %s: cur/ file too large, skipped",
		    mb->path);
		return 0;
	}
	if (!leading_number(nf->name, &nf->order))
		nf->order = st.st_mtim.tv_sec < 0 ? 0 :
		    (uint64_t)st.st_mtim.tv_sec;
	return 1;
fail_close:
	saved = errno;
	(void)close(fd);
	errno = saved;
fail:
	if (errno == ENOENT)
		return 0;
	if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
		return -1;
	log_warn("mailbox %s: skipping a file of cur/", mb->path);
	return 0;
}

static void
free_names(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Lists the regular non-dot files of sub (cur or new) into a malloc'd
 * array. */
static enum store_rc
list_dir(struct maildir *mb, const char *sub, char ***names_r, size_t *n_r,
    char *err, size_t errsize)
{
	const struct dirent *de;
	char **names = NULL, **nn;
	size_t n = 0, cap = 0;
	DIR *d;
	int saved;

	if ((d = open_dir(mb->dirfd, sub)) == NULL) {
		saved = errno;
		errf(err, errsize, "mailbox %s: %s/: %s", mb->path, sub,
		    strerror(saved));
		return errno_rc(saved);
	}
	while ((de = next_file(d)) != NULL) {
		if (n == MAX_MESSAGES_PER_MAILBOX) {
			errf(err, errsize, "mailbox %s: more than %u messages",
			    mb->path, MAX_MESSAGES_PER_MAILBOX);
			free_names(names, n);
			(void)closedir(d);
			return STORE_PERM;
		}
		if (n == cap) {
			cap = cap == 0 ? 256 : cap * 2;
			if ((nn = reallocarray(names, cap, sizeof(*nn))) ==
			    NULL)
				goto nomem;
			names = nn;
		}
		if ((names[n] = strdup(de->d_name)) == NULL)
			goto nomem;
		n++;
	}
	if (errno != 0) {
		saved = errno;
		errf(err, errsize, "mailbox %s: reading %s/: %s", mb->path,
		    sub, strerror(saved));
		free_names(names, n);
		(void)closedir(d);
		return errno_rc(saved);
	}
	(void)closedir(d);
	*names_r = names;
	*n_r = n;
	return STORE_OK;
nomem:
	errf(err, errsize, "mailbox %s: out of memory", mb->path);
	free_names(names, n);
	(void)closedir(d);
	return STORE_TEMP;
}

/*
 * Brings idx in line with the files of cur/: entries whose file is gone
 * are dropped, a file renamed to other flags (same base name) keeps its
 * entry and UIDL, new files get entries in delivery order.  *changed_r
 * says whether idx changed.
 */
/*
 * Gives the entries without a UIDL theirs: the one postern.uidls records
 * for the base name, else the name's (index_assign_uidls_map).  The map
 * is read only when an entry needs a UIDL.
 */
static enum store_rc
assign_uidls(struct maildir *mb, struct index *idx, struct guard_stats *g,
    char *err, size_t errsize)
{
	struct uidl_assign_stats st;
	struct uidl_map map;
	size_t i, fresh = 0;
	int r;

	for (i = 0; i < idx->n; i++)
		if (idx->v[i].uidl == NULL)
			fresh++;
	g->fresh = fresh;
	if (fresh == 0)
		return STORE_OK;
	if ((g->map = load_uidl_map(mb, &map, err, errsize)) == -1)
		return STORE_TEMP;
	if (g->map != 1)
		uidl_map_free(&map);	/* a damaged one counts as none */
	/* What a damaged index still says, where the map says nothing. */
	for (i = 0; g->salvage != NULL && i < g->salvage->n; i++) {
		const struct uidl_map_rec *rec = &g->salvage->v[i];

		if (uidl_map_put(&map, rec->base, strlen(rec->base),
		    rec->uidl) == -1 && errno != EEXIST) {
			uidl_map_free(&map);
			errf(err, errsize, "mailbox %s: out of memory",
			    mb->path);
			return STORE_TEMP;
		}
	}
	r = index_assign_uidls_map(idx, &map, &st);
	uidl_map_free(&map);
	if (r == -1) {
		errf(err, errsize, "mailbox %s: out of memory or hash failure",
		    mb->path);
		return STORE_TEMP;
	}
	g->kept = st.map_differ;
	g->taken = st.map_taken;
	return STORE_OK;
}

/*
 * The UIDL guard: a share of the mailbox's UIDLs changing at once means
 * a lost or damaged index, or files renamed behind our back, and clients
 * would download those messages again.  The recorded UIDLs were kept
 * (assign_uidls); this says so in the log, with what to do.
 */
static void
guard_check(const struct maildir *mb, bool rebuilt, size_t total,
    const struct guard_stats *g)
{
	unsigned int share = mb->guard_share, min = mb->guard_min;

	if (mb->guard_quiet)
		return;
	if (g->kept >= min && g->kept * 100 > (size_t)share * total)
		log_warnx("mailbox %s: UIDL guard: %s; %zu of %zu messages"
		    " would have changed their UIDL, kept the UIDLs recorded"
		    " in %s%s; find out what %s %s", mb->path, rebuilt ?
		    INDEX_FILE " was missing or damaged" :
		    "messages came back under their old names", g->kept,
		    total, UIDL_MAP_FILE, g->salvage != NULL &&
		    g->salvage->n > 0 ? " or readable in the damaged index" :
		    "", rebuilt ? "removed or damaged" : "moved the files",
		    rebuilt ? INDEX_FILE : "away");
	if (g->taken > 0 && g->taken >= min && g->taken * 100 >
	    (size_t)share * total)
		log_warnx("mailbox %s: UIDL guard: %zu of %zu messages could"
		    " not keep the UIDL recorded in %s (another message holds"
		    " it); clients will download them again", mb->path,
		    g->taken, total, UIDL_MAP_FILE);
	if (!rebuilt && g->gone >= min && g->gone * 100 > (size_t)share *
	    g->old && g->fresh > 0)
		log_warnx("mailbox %s: UIDL guard: %zu of %zu indexed messages"
		    " vanished and %zu new files appeared at once; if the"
		    " files were renamed, clients see them as new mail; put"
		    " them back under their old names (the part before"
		    " \":2,\") to keep their UIDLs", mb->path, g->gone, g->old,
		    g->fresh);
	if (rebuilt && g->map == 2 && g->fresh >= min)
		log_warnx("mailbox %s: UIDL guard: the index was rebuilt"
		    " without %s (damaged); imported UIDLs of %zu messages"
		    " may have changed; restore it from a backup and remove"
		    " %s", mb->path, UIDL_MAP_FILE, g->fresh, INDEX_FILE);
}

static enum store_rc
reconcile(struct maildir *mb, struct index *idx, bool *changed_r,
    struct guard_stats *g, char *err, size_t errsize)
{
	struct index_map byname = { 0 }, bybase = { 0 };
	struct newfile *nf = NULL;
	char **names = NULL;
	size_t *rename_to = NULL, n = 0, i, it, nnew = 0, nold = idx->n;
	bool *seen = NULL, *used = NULL, changed = false;
	enum store_rc rc;
	uint32_t v;

	if ((rc = list_dir(mb, "cur", &names, &n, err, errsize)) != STORE_OK)
		return rc;
	seen = calloc(nold + 1, sizeof(*seen));
	used = calloc(n + 1, sizeof(*used));
	rename_to = calloc(nold + 1, sizeof(*rename_to));
	if (seen == NULL || used == NULL || rename_to == NULL ||
	    index_map_init(&byname, nold) == -1 ||
	    index_map_init(&bybase, nold) == -1)
		goto nomem;
	for (i = 0; i < nold; i++) {
		const char *nm = idx->v[i].name;

		if (index_map_add(&byname, nm, strlen(nm), (uint32_t)i) == -1 ||
		    index_map_add(&bybase, nm, index_base_len(nm),
		    (uint32_t)i) == -1)
			goto nomem;
	}
	/* The same name: nothing to do. */
	for (i = 0; i < n; i++) {
		it = 0;
		if (index_map_find(&byname, names[i], strlen(names[i]), &it,
		    &v) && !seen[v]) {
			seen[v] = true;
			used[i] = true;
		}
	}
	/* The same base name under other flags: the entry follows it. */
	for (i = 0; i < n; i++) {
		if (used[i])
			continue;
		it = 0;
		while (index_map_find(&bybase, names[i],
		    index_base_len(names[i]), &it, &v)) {
			if (seen[v])
				continue;
			seen[v] = true;
			used[i] = true;
			rename_to[v] = i + 1;
			break;
		}
	}
	index_map_free(&byname);
	index_map_free(&bybase);
	for (i = 0; i < nold; i++) {
		if (rename_to[i] == 0)
			continue;
		index_set_name(idx, i, names[rename_to[i] - 1]);
		names[rename_to[i] - 1] = NULL;
		changed = true;
	}
	/* Entries whose file is gone. */
	for (i = 0; i < nold; i++)
		if (!seen[i])
			break;
	if (i < nold) {
		for (i = 0; i < nold; i++) {
			seen[i] = !seen[i];
			if (seen[i])
				g->gone++;
		}
		index_compact(idx, seen);
		changed = true;
	}
	/* Files the index does not know, in delivery order. */
	if ((nf = calloc(n + 1, sizeof(*nf))) == NULL)
		goto nomem;
	for (i = 0; i < n; i++) {
		int r;

		if (used[i])
			continue;
		nf[nnew].name = names[i];
		if ((r = size_file(mb, &nf[nnew])) == -1) {
			int saved = errno;

			errf(err, errsize, "mailbox %s: sizing cur/ files: %s",
			    mb->path, strerror(saved));
			rc = STORE_TEMP;
			goto out;
		}
		if (r == 1) {
			names[i] = NULL;
			nnew++;
		}
	}
	qsort(nf, nnew, sizeof(*nf), newfile_cmp);
	for (i = 0; i < nnew; i++) {
		if (index_append(idx, idx->next_seq, nf[i].size, nf[i].stored,
		    0, nf[i].clean ? MSG_WIRE_CLEAN : 0, NULL,
		    nf[i].name) == -1)
			goto nomem;
		nf[i].name = NULL;
		changed = true;
	}
	rc = assign_uidls(mb, idx, g, err, errsize);
	goto out;
nomem:
	errf(err, errsize, "mailbox %s: out of memory or hash failure",
	    mb->path);
	rc = STORE_TEMP;
out:
	index_map_free(&byname);
	index_map_free(&bybase);
	if (nf != NULL)
		for (i = 0; i < nnew; i++)
			free(nf[i].name);
	free(nf);
	free_names(names, n);
	free(seen);
	free(used);
	free(rename_to);
	*changed_r = changed;
	return rc;
}

/*
 * Loads the index and makes it match cur/ (under the index lock).
 * *dirty_r: the file must be rewritten.
 */
static enum store_rc
sync_index(struct maildir *mb, struct index *idx, bool moved_any,
    bool *dirty_r, char *err, size_t errsize)
{
	struct index_time before, mtime, old_mtime, old_scanned;
	struct guard_stats g;
	struct uidl_map salvage;
	struct timespec ts;
	struct stat st;
	enum store_rc rc;
	bool changed;
	int loaded;

	*dirty_r = false;
	uidl_map_init(&salvage);
	if ((loaded = load_index(mb, idx, &salvage, err, errsize)) == -1) {
		uidl_map_free(&salvage);
		return STORE_TEMP;
	}
	if (clock_gettime(CLOCK_REALTIME, &ts) == -1 ||
	    fstat(mb->curfd, &st) == -1) {
		errf(err, errsize, "mailbox %s: cur/: %s", mb->path,
		    strerror(errno));
		uidl_map_free(&salvage);
		return STORE_TEMP;
	}
	before.sec = (int64_t)ts.tv_sec;
	before.nsec = ts.tv_nsec;
	mtime = stat_mtime(&st);
	old_mtime = idx->cur_mtime;
	old_scanned = idx->scanned;
	if (loaded == 1 && !moved_any && time_eq(mtime, old_mtime) &&
	    time_older(old_mtime, old_scanned))
		return STORE_OK;	/* the index is exactly cur/ */
	memset(&g, 0, sizeof(g));
	g.old = idx->n;
	g.map = -2;
	g.salvage = &salvage;
	rc = reconcile(mb, idx, &changed, &g, err, errsize);
	if (rc == STORE_OK)
		guard_check(mb, loaded != 1, idx->n, &g);
	uidl_map_free(&salvage);
	if (rc != STORE_OK)
		return rc;
	idx->cur_mtime = mtime;
	idx->scanned = before;
	/* Also write when only the state changed, if that state lets the
	 * next session skip the listing. */
	*dirty_r = loaded != 1 || changed ||
	    (time_older(mtime, before) && (!time_eq(mtime, old_mtime) ||
	    !time_eq(before, old_scanned)));
	return STORE_OK;
}

/* ---- the snapshot ---- */

static void
relpath_free(const struct maildir *mb, char *p)
{
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)mb->relpaths;

	if (mb->relpaths == NULL || a < b || a - b >= mb->relpaths_len)
		free(p);
}

static enum store_rc
build_snapshot(struct maildir *mb, char *err, size_t errsize)
{
	size_t i, len = 0, n = mb->idx.n;
	char *at;

	for (i = 0; i < n; i++)
		len += sizeof("cur/") + strlen(mb->idx.v[i].name);
	mb->info = calloc(n + 1, sizeof(*mb->info));
	mb->relpath = calloc(n + 1, sizeof(*mb->relpath));
	mb->relpaths = malloc(len + 1);
	if (mb->info == NULL || mb->relpath == NULL || mb->relpaths == NULL)
		goto nomem;
	mb->relpaths_len = len + 1;
	at = mb->relpaths;
	for (i = 0; i < n; i++) {
		const struct index_entry *e = &mb->idx.v[i];
		size_t nl = strlen(e->name) + 1;

		mb->relpath[i] = at;
		memcpy(at, "cur/", 4);
		memcpy(at + 4, e->name, nl);
		at += 4 + nl;
		mb->info[i].uidl = e->uidl;
		mb->info[i].name = mb->relpath[i];
		mb->info[i].size = e->size;
		mb->info[i].stored_size = e->stored_size;
		mb->info[i].retr_time = e->retr_time;
		mb->info[i].flags = e->flags;
	}
	mb->count = (uint32_t)n;
	return STORE_OK;
nomem:
	errf(err, errsize, "mailbox %s: out of memory", mb->path);
	return STORE_TEMP;
}

static void
mailbox_free(struct maildir *mb)
{
	size_t i;

	if (mb->relpath != NULL)
		for (i = 0; i < mb->idx.n; i++)
			relpath_free(mb, mb->relpath[i]);
	free(mb->relpath);
	free(mb->relpaths);
	free(mb->info);
	index_free(&mb->idx);
	close_fd(&mb->curfd);
	close_fd(&mb->dirfd);
	close_fd(&mb->session_fd);
	free(mb->path);
	free(mb);
}

static enum store_rc
open_dirs(struct maildir *mb, bool create, char *err, size_t errsize)
{
	static const char *const sub[] = { "cur", "new", "tmp" };
	struct stat st;
	size_t i;
	int saved;

	if (create && mkdir_p(mb->path, 0700) == -1) {
		saved = errno;
		errf(err, errsize, "mailbox %s: mkdir: %s", mb->path,
		    strerror(saved));
		return errno_rc(saved);
	}
	mb->dirfd = open(mb->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mb->dirfd == -1) {
		saved = errno;
		errf(err, errsize, "mailbox %s: %s", mb->path,
		    strerror(saved));
		return errno_rc(saved);
	}
	for (i = 0; i < N_ELEMENTS(sub); i++) {
		if (create && mkdirat(mb->dirfd, sub[i], 0700) == -1 &&
		    errno != EEXIST) {
			saved = errno;
			errf(err, errsize, "mailbox %s: mkdir %s/: %s",
			    mb->path, sub[i], strerror(saved));
			return errno_rc(saved);
		}
		if (fstatat(mb->dirfd, sub[i], &st, AT_SYMLINK_NOFOLLOW) ==
		    -1 || !S_ISDIR(st.st_mode)) {
			saved = errno;
			errf(err, errsize, "mailbox %s: %s/ is missing or not a"
			    " directory", mb->path, sub[i]);
			return create ? errno_rc(saved) : STORE_PERM;
		}
	}
	mb->curfd = openat(mb->dirfd, "cur", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC | O_NOFOLLOW);
	if (mb->curfd == -1) {
		saved = errno;
		errf(err, errsize, "mailbox %s: cur/: %s", mb->path,
		    strerror(saved));
		return errno_rc(saved);
	}
	return STORE_OK;
}

enum store_rc
maildir_open(const char *path, const struct mailbox_opts *opts,
    struct maildir **mb_r, char *err, size_t errsize)
{
	struct maildir *mb;
	enum store_rc rc;
	size_t moved;
	bool dirty;
	int lockfd = -1, saved;

	*mb_r = NULL;
	if (path == NULL || path[0] == '\0' || strlen(path) >= MAX_PATH_LEN -
	    64) {
		errf(err, errsize, "mailbox path empty or too long");
		return STORE_PERM;
	}
	if ((mb = calloc(1, sizeof(*mb))) == NULL ||
	    (mb->path = strdup(path)) == NULL) {
		free(mb);
		errf(err, errsize, "mailbox %s: out of memory", path);
		return STORE_TEMP;
	}
	mb->dirfd = mb->curfd = mb->session_fd = -1;
	mb->guard_share = opts->uidl_guard_share != 0 ?
	    opts->uidl_guard_share : DEFAULT_UIDL_GUARD_SHARE;
	mb->guard_min = opts->uidl_guard_min != 0 ? opts->uidl_guard_min :
	    DEFAULT_UIDL_GUARD_MIN;
	index_init(&mb->idx);
	if ((rc = open_dirs(mb, opts->create, err, errsize)) != STORE_OK)
		goto fail;
	if (opts->lock_session && lock_file(mb->dirfd, SESSION_LOCK_FILE,
	    false, &mb->session_fd) == -1) {
		saved = errno;
		if (saved == EAGAIN) {
			errf(err, errsize, "mailbox %s: locked by another"
			    " session", mb->path);
			rc = STORE_IN_USE;
		} else {
			errf(err, errsize, "mailbox %s: %s: %s", mb->path,
			    SESSION_LOCK_FILE, strerror(saved));
			rc = errno_rc(saved);
		}
		goto fail;
	}
	if (lock_file(mb->dirfd, LOCK_FILE, true, &lockfd) == -1) {
		saved = errno;
		errf(err, errsize, "mailbox %s: %s: %s", mb->path, LOCK_FILE,
		    strerror(saved));
		rc = errno_rc(saved);
		goto fail;
	}
	if ((rc = move_new(mb, &moved, err, errsize)) != STORE_OK)
		goto fail;
	clean_tmp(mb, time(NULL));
	if ((rc = sync_index(mb, &mb->idx, moved > 0, &dirty, err,
	    errsize)) != STORE_OK)
		goto fail;
	if (dirty && (rc = write_index(mb, &mb->idx, err, errsize)) !=
	    STORE_OK)
		goto fail;
	close_fd(&lockfd);
	if ((rc = build_snapshot(mb, err, errsize)) != STORE_OK)
		goto fail;
	*mb_r = mb;
	return STORE_OK;
fail:
	close_fd(&lockfd);
	mailbox_free(mb);
	return rc;
}

uint32_t
maildir_count(const struct maildir *mb)
{
	return mb->count;
}

const struct msg_info *
maildir_msg(const struct maildir *mb, uint32_t idx)
{
	if (idx >= mb->count)
		return NULL;
	return &mb->info[idx];
}

/*
 * Finds a file of cur/ with the given base name (another program may
 * have renamed it to change its flags).  Returns a malloc'd name, or
 * NULL with errno 0 if there is none, or NULL with errno set on error.
 */
static char *
find_by_base(struct maildir *mb, const char *base, size_t blen)
{
	const struct dirent *de;
	char *found = NULL;
	DIR *d;
	int saved;

	if ((d = open_dir(mb->dirfd, "cur")) == NULL)
		return NULL;
	while ((de = next_file(d)) != NULL) {
		if (index_base_len(de->d_name) == blen &&
		    memcmp(de->d_name, base, blen) == 0) {
			found = strdup(de->d_name);
			saved = found == NULL ? errno : 0;
			(void)closedir(d);
			errno = saved;
			return found;
		}
	}
	saved = errno;
	(void)closedir(d);
	errno = saved;
	return NULL;
}

/*
 * A file of cur/ changed its content under the same name (Maildir files
 * should not, but an editor or a broken MUA may do it).  This session
 * reports the message as gone, since the client saw the old size; the
 * index learns the new size so that the next session can read it.  Best
 * effort: failures are logged.
 */
static void
resize_entry(struct maildir *mb, const char *name, int fd)
{
	struct index cur;
	char err[256];
	uint64_t size, stored;
	size_t i;
	bool clean, dirty;
	int lockfd = -1;

	if (wire_size_fd(fd, &size, &stored, &clean) == -1) {
		log_warn("mailbox %s: sizing a changed message", mb->path);
		return;
	}
	if (stored > INDEX_MAX_MSG_OCTETS)
		return;
	if (lock_file(mb->dirfd, LOCK_FILE, true, &lockfd) == -1) {
		log_warn("mailbox %s: %s", mb->path, LOCK_FILE);
		return;
	}
	index_init(&cur);
	if (sync_index(mb, &cur, false, &dirty, err, sizeof(err)) !=
	    STORE_OK) {
		log_warnx("%s", err);
		goto out;
	}
	for (i = 0; i < cur.n; i++) {
		struct index_entry *e = &cur.v[i];

		if (strcmp(e->name, name) != 0)
			continue;
		if (e->stored_size != stored || e->size != size) {
			log_warnx("mailbox %s: message %s changed size,"
			    " re-indexed", mb->path, e->uidl);
			e->stored_size = stored;
			e->size = size;
			e->flags = clean ? e->flags | MSG_WIRE_CLEAN :
			    e->flags & ~MSG_WIRE_CLEAN;
			dirty = true;
		}
		break;
	}
	if (dirty && write_index(mb, &cur, err, sizeof(err)) != STORE_OK)
		log_warnx("%s", err);
out:
	index_free(&cur);
	close_fd(&lockfd);
}

enum store_rc
maildir_msg_open(struct maildir *mb, uint32_t idx, int *fd_r)
{
	struct index_entry *e;
	struct stat st;
	char *other, *rel;
	int fd, saved;

	*fd_r = -1;
	if (idx >= mb->count)
		return STORE_GONE;
	e = &mb->idx.v[idx];
	fd = openat(mb->curfd, e->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
	    O_NOCTTY | O_NONBLOCK);
	if (fd == -1 && errno == ENOENT) {
		other = find_by_base(mb, e->name, index_base_len(e->name));
		if (other == NULL) {
			if (errno == 0)
				return STORE_GONE;
			log_warn("mailbox %s: looking for a renamed message",
			    mb->path);
			return STORE_TEMP;
		}
		if (asprintf(&rel, "cur/%s", other) == -1) {
			free(other);
			return STORE_TEMP;
		}
		/* Later opens and the commit use the new name. */
		index_set_name(&mb->idx, idx, other);
		relpath_free(mb, mb->relpath[idx]);
		mb->relpath[idx] = rel;
		mb->info[idx].name = rel;
		fd = openat(mb->curfd, e->name, O_RDONLY | O_CLOEXEC |
		    O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	}
	if (fd == -1) {
		if (errno == ENOENT)
			return STORE_GONE;
		saved = errno;
		log_warn("mailbox %s: opening a message", mb->path);
		return errno_rc(saved);
	}
	if (fstat(fd, &st) == -1) {
		saved = errno;
		(void)close(fd);
		log_warn("mailbox %s: fstat of a message", mb->path);
		return errno_rc(saved);
	}
	if (!S_ISREG(st.st_mode) || st.st_size < 0) {
		(void)close(fd);
		return STORE_GONE;
	}
	if ((uint64_t)st.st_size != e->stored_size) {
		resize_entry(mb, e->name, fd);
		(void)close(fd);
		return STORE_GONE;
	}
	/* O_NONBLOCK only guarded the open against a FIFO put in place of
	 * the file; the reader gets an ordinary descriptor. */
	if (fcntl(fd, F_SETFL, 0) == -1) {
		saved = errno;
		(void)close(fd);
		log_warn("mailbox %s: fcntl", mb->path);
		return errno_rc(saved);
	}
	*fd_r = fd;
	return STORE_OK;
}

/* ---- UPDATE ---- */

static bool
expired(int64_t retr_time, int64_t expire_days, time_t now)
{
	return store_expired(retr_time, expire_days, now);
}

/*
 * The entry of the current index that is snapshot entry s: the same base
 * name (the identity of a Maildir file), and the same UIDL when several
 * files share a base name.  -1: none (the file is gone); -2: ambiguous.
 */
static long
match_entry(const struct index *cur, const struct index_map *bybase,
    const struct index_entry *s)
{
	size_t it = 0, hits = 0;
	uint32_t v;
	long first = -1;

	while (index_map_find(bybase, s->name, index_base_len(s->name), &it,
	    &v)) {
		if (strcmp(cur->v[v].uidl, s->uidl) == 0)
			return (long)v;
		if (hits++ == 0)
			first = (long)v;
	}
	if (hits > 1)
		return -2;
	return first;
}

/* Orders file names by their base names. */
static int
cmp_base(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	size_t lx = index_base_len(x), ly = index_base_len(y);
	int r = memcmp(x, y, lx < ly ? lx : ly);

	if (r != 0)
		return r;
	return lx < ly ? -1 : lx > ly;
}

/*
 * Unlinks the files of cur/ that have the base name of one of names
 * (sorted with cmp_base): messages renamed since the listing.  A file
 * that is another entry of the index (byname, not dropped) is a
 * different message with the same base name and stays.  0 or -1.
 */
static int
unlink_by_base(struct maildir *mb, const char **names, size_t n,
    const struct index_map *byname, const bool *drop)
{
	const struct dirent *de;
	const char *key;
	size_t it;
	uint32_t v;
	bool other;
	DIR *d;
	int saved;

	if ((d = open_dir(mb->dirfd, "cur")) == NULL)
		return -1;
	while ((de = next_file(d)) != NULL) {
		key = de->d_name;
		if (bsearch(&key, names, n, sizeof(*names), cmp_base) == NULL)
			continue;
		other = false;
		it = 0;
		while (index_map_find(byname, key, strlen(key), &it, &v))
			if (!drop[v])
				other = true;
		if (other)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == -1 &&
		    errno != ENOENT) {
			saved = errno;
			(void)closedir(d);
			errno = saved;
			return -1;
		}
	}
	saved = errno;
	(void)closedir(d);
	errno = saved;
	return saved == 0 ? 0 : -1;
}

enum store_rc
maildir_commit(struct maildir *mb, const bool *deleted,
    const bool *retrieved, int64_t expire_days, time_t now,
    uint32_t *removed_r, char *err, size_t errsize)
{
	struct index cur;
	struct index_map bybase = { 0 }, byname = { 0 };
	struct stat st;
	const char **renamed = NULL;
	size_t *renamed_j = NULL, i, nrenamed = 0;
	bool *drop = NULL, dirty, unlinked = false;
	uint32_t removed = 0, failed = 0;
	enum store_rc rc;
	int lockfd = -1, first_errno = 0;

	*removed_r = 0;
	index_init(&cur);
	if (lock_file(mb->dirfd, LOCK_FILE, true, &lockfd) == -1) {
		first_errno = errno;
		errf(err, errsize, "mailbox %s: %s: %s", mb->path, LOCK_FILE,
		    strerror(first_errno));
		return errno_rc(first_errno);
	}
	/* Merge with what other sessions did since our snapshot. */
	if ((rc = sync_index(mb, &cur, false, &dirty, err, errsize)) !=
	    STORE_OK)
		goto out;
	/* Every allocation before the first unlink: after it, the index
	 * must be written whatever happens. */
	drop = calloc(cur.n + 1, sizeof(*drop));
	renamed = calloc(mb->count + 1, sizeof(*renamed));
	renamed_j = calloc(mb->count + 1, sizeof(*renamed_j));
	if (drop == NULL || renamed == NULL || renamed_j == NULL ||
	    index_map_init(&bybase, cur.n) == -1 ||
	    index_map_init(&byname, cur.n) == -1) {
		errf(err, errsize, "mailbox %s: out of memory", mb->path);
		rc = STORE_TEMP;
		goto out;
	}
	for (i = 0; i < cur.n; i++)
		if (index_map_add(&bybase, cur.v[i].name,
		    index_base_len(cur.v[i].name), (uint32_t)i) == -1 ||
		    index_map_add(&byname, cur.v[i].name,
		    strlen(cur.v[i].name), (uint32_t)i) == -1) {
			errf(err, errsize, "mailbox %s: out of memory",
			    mb->path);
			rc = STORE_TEMP;
			goto out;
		}

	for (i = 0; i < mb->count; i++) {
		const struct index_entry *s = &mb->idx.v[i];
		struct index_entry *e;
		int64_t rt = s->retr_time;
		long j = match_entry(&cur, &bybase, s);

		if (j == -2) {
			log_warnx("mailbox %s: several files for message %zu,"
			    " left alone", mb->path, i + 1);
			if (deleted != NULL && deleted[i])
				failed++;
			continue;
		}
		e = j >= 0 ? &cur.v[j] : NULL;
		if (e != NULL && e->retr_time != 0)
			rt = e->retr_time;
		if (rt == 0 && retrieved != NULL && retrieved[i])
			rt = (int64_t)now;
		if (!(deleted != NULL && deleted[i]) &&
		    !expired(rt, expire_days, now)) {
			if (e != NULL && e->retr_time == 0 && rt != 0) {
				e->retr_time = rt;
				dirty = true;
			}
			continue;
		}
		if (e == NULL || drop[j]) {
			removed++;	/* already gone */
			continue;
		}
		if (unlinkat(mb->curfd, e->name, 0) == 0) {
			drop[j] = true;
			unlinked = true;
			removed++;
		} else if (errno == ENOENT) {
			/* Renamed since the listing: find it by base name. */
			renamed[nrenamed] = e->name;
			renamed_j[nrenamed++] = (size_t)j;
			drop[j] = true;
			removed++;
		} else {
			if (first_errno == 0)
				first_errno = errno;
			failed++;
		}
	}
	if (nrenamed > 0) {
		qsort(renamed, nrenamed, sizeof(*renamed), cmp_base);
		if (unlink_by_base(mb, renamed, nrenamed, &byname,
		    drop) == -1) {
			/* Which of them went is unknown: keep their entries;
			 * the next listing settles it. */
			if (first_errno == 0)
				first_errno = errno;
			for (i = 0; i < nrenamed; i++)
				drop[renamed_j[i]] = false;
			failed += (uint32_t)nrenamed;
			removed -= (uint32_t)nrenamed;
		}
		unlinked = true;
	}
	rc = STORE_OK;
	if (unlinked) {
		/* Invariant 1 the other way round: a removal the client was
		 * told about must not come back after a crash. */
		if (fsync(mb->curfd) == -1) {
			first_errno = errno;
			errf(err, errsize, "mailbox %s: fsync cur/: %s",
			    mb->path, strerror(first_errno));
			rc = STORE_TEMP;
		}
		/* Our unlinks make this mtime newer than the recorded scan
		 * time, so the next open lists cur/ again. */
		if (fstat(mb->curfd, &st) == 0)
			cur.cur_mtime = stat_mtime(&st);
		dirty = true;
	}
	/* Files that were unlinked leave the index even if fsync failed. */
	index_compact(&cur, drop);
	if (dirty) {
		enum store_rc wrc = write_index(mb, &cur,
		    rc == STORE_OK ? err : NULL, errsize);

		if (rc == STORE_OK)
			rc = wrc;
	}
	if (rc == STORE_OK && failed > 0) {
		errf(err, errsize, "mailbox %s: %u message(s) not removed: %s",
		    mb->path, failed, first_errno != 0 ?
		    strerror(first_errno) : "ambiguous file names");
		rc = STORE_TEMP;
	}
out:
	*removed_r = removed;
	free(renamed);
	free(renamed_j);
	free(drop);
	index_map_free(&bybase);
	index_map_free(&byname);
	index_free(&cur);
	close_fd(&lockfd);
	return rc;
}

void
maildir_close(struct maildir **mbp)
{
	if (*mbp == NULL)
		return;
	mailbox_free(*mbp);
	*mbp = NULL;
}

/* ---- importing UIDLs (postern migrate-uidl) ---- */

const char *
uidl_import_status_text(enum uidl_import_status s)
{
	switch (s) {
	case IMPORT_PENDING:
		return "not looked at";
	case IMPORT_DONE:
		return "imported";
	case IMPORT_ALREADY:
		return "already has this UIDL";
	case IMPORT_NO_FILE:
		return "no such file";
	case IMPORT_INVALID:
		return "invalid UIDL";
	case IMPORT_DUPLICATE:
		return "duplicate UIDL";
	case IMPORT_DUPLICATE_FILE:
		return "duplicate record for the file";
	case IMPORT_COLLISION:
		return "another message has this UIDL";
	case IMPORT_CONFLICT:
		return "already shown with another UIDL (--force replaces it)";
	}
	return "?";
}

/* The length of a Maildir base name as other servers take it: up to the
 * first ':' (Dovecot's and Courier's rule). */
static size_t
import_base_len(const char *name)
{
	const char *c = strchr(name, ':');

	return c != NULL ? (size_t)(c - name) : strlen(name);
}

/* The state an import works on: the files, the index and the map. */
struct import_ctx {
	struct maildir	*mb;
	char		**files;	/* cur/ then new/ */
	size_t		 nfiles;
	struct index_map byfile;	/* import_base_len key -> file */
	struct index	 idx;
	struct index_map idxbase;	/* index base -> entry */
	struct uidl_map	 map;
	long		*file_of;	/* per record: file, or -1 */
	bool		*imported;	/* per file: a record is imported */
};

static void
import_ctx_free(struct import_ctx *c)
{
	size_t i;

	for (i = 0; i < c->nfiles; i++)
		free(c->files[i]);
	free(c->files);
	index_map_free(&c->byfile);
	index_map_free(&c->idxbase);
	index_free(&c->idx);
	uidl_map_free(&c->map);
	free(c->file_of);
	free(c->imported);
}

/* The UIDL file f has now (index, else map, else its name's) into out;
 * *how_r: 'i', 'm' or 'n'.  0 or -1. */
static int
import_current(const struct import_ctx *c, size_t f, char *out, char *how_r)
{
	const char *name = c->files[f], *u;
	size_t blen = index_base_len(name), it = 0;
	uint32_t v;

	if (index_map_find(&c->idxbase, name, blen, &it, &v)) {
		u = c->idx.v[v].uidl;
		*how_r = 'i';
	} else if ((u = uidl_map_get(&c->map, name, blen)) != NULL)
		*how_r = 'm';
	else {
		*how_r = 'n';
		return index_uidl_for(name, blen, 0, out);
	}
	memcpy(out, u, strlen(u) + 1);
	return 0;
}

static enum store_rc
import_load(struct import_ctx *c, char *err, size_t errsize)
{
	char **cur = NULL, **nw = NULL, **all;
	size_t ncur = 0, nnew = 0, i;
	enum store_rc rc;
	int r;

	if ((rc = list_dir(c->mb, "cur", &cur, &ncur, err, errsize)) !=
	    STORE_OK)
		return rc;
	if ((rc = list_dir(c->mb, "new", &nw, &nnew, err, errsize)) !=
	    STORE_OK) {
		free_names(cur, ncur);
		return rc;
	}
	if ((all = reallocarray(cur, ncur + nnew + 1, sizeof(*all))) ==
	    NULL) {
		free_names(cur, ncur);
		free_names(nw, nnew);
		goto nomem;
	}
	if (nnew > 0)
		memcpy(all + ncur, nw, nnew * sizeof(*nw));
	free(nw);
	c->files = all;
	c->nfiles = ncur + nnew;
	if (index_map_init(&c->byfile, c->nfiles) == -1)
		goto nomem;
	for (i = 0; i < c->nfiles; i++)
		if (index_map_add(&c->byfile, c->files[i],
		    import_base_len(c->files[i]), (uint32_t)i) == -1)
			goto nomem;
	if ((r = load_index(c->mb, &c->idx, NULL, err, errsize)) == -1)
		return STORE_TEMP;
	if (index_map_init(&c->idxbase, c->idx.n) == -1)
		goto nomem;
	for (i = 0; i < c->idx.n; i++)
		if (index_map_add(&c->idxbase, c->idx.v[i].name,
		    index_base_len(c->idx.v[i].name), (uint32_t)i) == -1)
			goto nomem;
	if ((r = load_uidl_map(c->mb, &c->map, err, errsize)) == -1)
		return STORE_TEMP;
	if (r == 2) {
		errf(err, errsize, "mailbox %s: %s is damaged; restore it from"
		    " a backup, or remove it and %s and import again",
		    c->mb->path, UIDL_MAP_FILE, INDEX_FILE);
		return STORE_PERM;
	}
	return STORE_OK;
nomem:
	errf(err, errsize, "mailbox %s: out of memory", c->mb->path);
	return STORE_TEMP;
}

/* Adds the UIDL file f shows now (the index's, the map's or its
 * name's) to set; kept[f] keeps the string.  0 or -1. */
static int
import_add_current(const struct import_ctx *c, size_t f, char **kept,
    struct index_map *set)
{
	char cur[UIDL_MAX_LEN + 1], how;

	if (kept[f] != NULL)
		return 0;
	if (import_current(c, f, cur, &how) == -1)
		return -1;
	if ((kept[f] = strdup(cur)) == NULL)
		return -1;
	return index_map_add(set, kept[f], strlen(kept[f]), 0);
}

/* Sorts out every record's status (see store.h); nothing is written. */
static enum store_rc
import_classify(struct import_ctx *c, struct uidl_import *v, size_t n,
    unsigned int flags, char *err, size_t errsize)
{
	struct index_map byuidl = { 0 }, others = { 0 }, recfile = { 0 };
	char cur[UIDL_MAX_LEN + 1], how, **derived = NULL;
	bool *imported, changed;	/* derived: import_add_current's */
	size_t i, it;
	uint32_t x;
	enum store_rc rc = STORE_TEMP;

	imported = NULL;
	if ((c->file_of = calloc(n + 1, sizeof(*c->file_of))) == NULL ||
	    (c->imported = calloc(c->nfiles + 1, sizeof(*c->imported))) ==
	    NULL ||
	    index_map_init(&byuidl, n) == -1 ||
	    index_map_init(&recfile, n) == -1 ||
	    index_map_init(&others, c->nfiles + c->idx.n + c->map.n) == -1)
		goto nomem;
	imported = c->imported;
	/* Missing files, invalid UIDLs, a second record for one file. */
	for (i = 0; i < n; i++) {
		size_t blen = import_base_len(v[i].base);

		c->file_of[i] = -1;
		v[i].status = IMPORT_PENDING;
		it = 0;
		if (!index_map_find(&c->byfile, v[i].base, blen, &it, &x)) {
			v[i].status = IMPORT_NO_FILE;
			continue;
		}
		c->file_of[i] = (long)x;
		if (!index_uidl_valid(v[i].uidl, strlen(v[i].uidl))) {
			v[i].status = IMPORT_INVALID;
			continue;
		}
		it = 0;
		if (index_map_find(&recfile, v[i].base, blen, &it, &x)) {
			v[i].status = IMPORT_DUPLICATE_FILE;
			continue;
		}
		if (index_map_add(&recfile, v[i].base, blen, (uint32_t)i) ==
		    -1 || index_map_add(&byuidl, v[i].uidl,
		    strlen(v[i].uidl), (uint32_t)i) == -1)
			goto nomem;
	}
	/* A UIDL two records give: neither message gets it, so that no
	 * message is taken for another one the client has. */
	for (i = 0; i < n; i++) {
		size_t hits = 0;

		if (v[i].status != IMPORT_PENDING)
			continue;
		it = 0;
		while (index_map_find(&byuidl, v[i].uidl, strlen(v[i].uidl),
		    &it, &x))
			hits++;
		if (hits > 1)
			v[i].status = IMPORT_DUPLICATE;
	}
	/* What each message shows now. */
	for (i = 0; i < n; i++) {
		if (v[i].status != IMPORT_PENDING)
			continue;
		if (import_current(c, (size_t)c->file_of[i], cur, &how) == -1)
			goto nomem;
		if (strcmp(cur, v[i].uidl) == 0)
			v[i].status = IMPORT_ALREADY;
		else if (how != 'n' && !(flags & IMPORT_FORCE))
			v[i].status = IMPORT_CONFLICT;
		else
			imported[c->file_of[i]] = true;
	}
	/* UIDLs no import may take: every one the index and the map hold
	 * (also those --force replaces: a client may have seen them for
	 * their message, so no other message may show them), and what the
	 * messages not imported show.  An import that collides stays out,
	 * and what its message shows then stays too: again until nothing
	 * changes (each round takes at least one import out). */
	for (i = 0; i < c->idx.n; i++)
		if (index_map_add(&others, c->idx.v[i].uidl,
		    strlen(c->idx.v[i].uidl), 0) == -1)
			goto nomem;
	for (i = 0; i < c->map.n; i++)
		if (index_map_add(&others, c->map.v[i].uidl,
		    strlen(c->map.v[i].uidl), 0) == -1)
			goto nomem;
	if ((derived = calloc(c->nfiles + 1, sizeof(*derived))) == NULL)
		goto nomem;
	for (i = 0; i < c->nfiles; i++)
		if (!imported[i] && import_add_current(c, i, derived,
		    &others) == -1)
			goto nomem;
	do {
		changed = false;
		for (i = 0; i < n; i++) {
			if (v[i].status != IMPORT_PENDING)
				continue;
			it = 0;
			if (!index_map_find(&others, v[i].uidl,
			    strlen(v[i].uidl), &it, &x))
				continue;
			v[i].status = IMPORT_COLLISION;
			imported[c->file_of[i]] = false;
			if (import_add_current(c, (size_t)c->file_of[i],
			    derived, &others) == -1)
				goto nomem;
			changed = true;
		}
	} while (changed);
	for (i = 0; i < n; i++)
		if (v[i].status == IMPORT_PENDING)
			v[i].status = IMPORT_DONE;
	rc = STORE_OK;
	goto out;
nomem:
	errf(err, errsize, "mailbox %s: out of memory or hash failure",
	    c->mb->path);
out:
	index_map_free(&byuidl);
	index_map_free(&others);
	index_map_free(&recfile);
	if (derived != NULL)
		free_names(derived, c->nfiles);
	return rc;
}

/* The map after the import: the records of the files still there (but
 * those replaced with --force) and the imported UIDLs that the names
 * would not give.  *changed_r: it differs from c->map. */
static int
import_new_map(const struct import_ctx *c, const struct uidl_import *v,
    size_t n, struct uidl_map *out, bool *changed_r)
{
	char cand[UIDL_MAX_LEN + 1];
	size_t i, it;
	uint32_t x;

	uidl_map_init(out);
	*changed_r = false;
	for (i = 0; i < c->map.n; i++) {
		const char *b = c->map.v[i].base;
		bool keep;

		it = 0;
		keep = index_map_find(&c->byfile, b, strlen(b), &it, &x) &&
		    !c->imported[x];
		if (!keep) {
			*changed_r = true;
			continue;
		}
		if (uidl_map_put(out, b, strlen(b), c->map.v[i].uidl) == -1)
			return -1;
	}
	for (i = 0; i < n; i++) {
		const char *name;
		size_t blen;

		if (v[i].status != IMPORT_DONE)
			continue;
		name = c->files[c->file_of[i]];
		blen = index_base_len(name);
		if (index_uidl_for(name, blen, 0, cand) == -1)
			return -1;
		if (strcmp(cand, v[i].uidl) == 0)
			continue;	/* the name gives it */
		if (uidl_map_put(out, name, blen, v[i].uidl) == -1)
			return -1;
		*changed_r = true;
	}
	return 0;
}

static enum store_rc
write_uidl_map(struct maildir *mb, const struct uidl_map *map, char *err,
    size_t errsize)
{
	char path[MAX_PATH_LEN], tmp[MAX_PATH_LEN];
	struct buf b;
	int saved;

	if (str_fmt(path, sizeof(path), "%s/%s", mb->path, UIDL_MAP_FILE) ==
	    -1 || str_fmt(tmp, sizeof(tmp), "%s%s", path, NEW_SUFFIX) == -1) {
		errf(err, errsize, "mailbox %s: path too long", mb->path);
		return STORE_PERM;
	}
	buf_init(&b, INDEX_MAX_BYTES);
	/* Under LOCK_FILE, so one fixed temporary name. */
	if (uidl_map_serialize(map, &b) == -1 ||
	    write_atomic_via(path, tmp, b.data, b.len, 0600) == -1) {
		saved = errno;
		buf_clear(&b);
		errf(err, errsize, "mailbox %s: writing %s: %s", mb->path,
		    UIDL_MAP_FILE, strerror(saved));
		return errno_rc(saved);
	}
	buf_clear(&b);
	return STORE_OK;
}

/* With --force: the index entries of imported messages take the
 * imported UIDL (import_classify made sure no other entry has it). */
static void
import_force(struct maildir *mb, struct index *idx,
    const struct uidl_import *v, size_t n, const struct import_ctx *c,
    bool *dirty)
{
	struct index_map byname;
	size_t i, it;
	uint32_t x;

	if (index_map_init(&byname, idx->n) == -1)
		return;
	for (i = 0; i < idx->n; i++)
		if (index_map_add(&byname, idx->v[i].name,
		    index_base_len(idx->v[i].name), (uint32_t)i) == -1)
			goto out;
	for (i = 0; i < n; i++) {
		const char *name;
		char *u;

		if (v[i].status != IMPORT_DONE)
			continue;
		name = c->files[c->file_of[i]];
		it = 0;
		if (!index_map_find(&byname, name, index_base_len(name), &it,
		    &x) || strcmp(idx->v[x].uidl, v[i].uidl) == 0)
			continue;
		if ((u = strdup(v[i].uidl)) == NULL)
			continue;
		log_warnx("mailbox %s: message UIDL %s replaced by the"
		    " imported %s", mb->path, idx->v[x].uidl, u);
		index_set_uidl(idx, x, u);
		*dirty = true;
	}
out:
	index_map_free(&byname);
}

enum store_rc
maildir_import_uidls(const char *path, struct uidl_import *v, size_t n,
    unsigned int flags, char *err, size_t errsize)
{
	struct import_ctx c;
	struct uidl_map nmap;
	struct index idx;
	enum store_rc rc;
	size_t moved;
	bool map_changed = false, dirty;
	int lockfd = -1, saved;

	memset(&c, 0, sizeof(c));
	index_init(&c.idx);
	index_init(&idx);
	uidl_map_init(&c.map);
	uidl_map_init(&nmap);
	if (path == NULL || path[0] == '\0' || strlen(path) >= MAX_PATH_LEN -
	    64) {
		errf(err, errsize, "mailbox path empty or too long");
		return STORE_PERM;
	}
	if ((c.mb = calloc(1, sizeof(*c.mb))) == NULL ||
	    (c.mb->path = strdup(path)) == NULL) {
		free(c.mb);
		errf(err, errsize, "mailbox %s: out of memory", path);
		return STORE_TEMP;
	}
	c.mb->dirfd = c.mb->curfd = c.mb->session_fd = -1;
	c.mb->guard_quiet = true;
	index_init(&c.mb->idx);
	if ((rc = open_dirs(c.mb, false, err, errsize)) != STORE_OK)
		goto out;
	/* A dry run writes nothing, not even the lock file: the index and
	 * the map are only ever replaced whole, so reading is safe. */
	if (!(flags & IMPORT_DRY_RUN) && lock_file(c.mb->dirfd, LOCK_FILE,
	    true, &lockfd) == -1) {
		saved = errno;
		errf(err, errsize, "mailbox %s: %s: %s", path, LOCK_FILE,
		    strerror(saved));
		rc = errno_rc(saved);
		goto out;
	}
	if ((rc = import_load(&c, err, errsize)) != STORE_OK ||
	    (rc = import_classify(&c, v, n, flags, err, errsize)) !=
	    STORE_OK || (flags & IMPORT_DRY_RUN))
		goto out;
	if (import_new_map(&c, v, n, &nmap, &map_changed) == -1) {
		errf(err, errsize, "mailbox %s: building %s: %s", path,
		    UIDL_MAP_FILE, strerror(errno));
		rc = STORE_TEMP;
		goto out;
	}
	/* The map first: an index written later, or rebuilt after a crash
	 * here, takes its UIDLs from it. */
	if (map_changed && (rc = write_uidl_map(c.mb, &nmap, err,
	    errsize)) != STORE_OK)
		goto out;
	if ((rc = move_new(c.mb, &moved, err, errsize)) != STORE_OK ||
	    (rc = sync_index(c.mb, &idx, moved > 0, &dirty, err,
	    errsize)) != STORE_OK)
		goto out;
	if (flags & IMPORT_FORCE)
		import_force(c.mb, &idx, v, n, &c, &dirty);
	if (dirty)
		rc = write_index(c.mb, &idx, err, errsize);
out:
	close_fd(&lockfd);
	import_ctx_free(&c);
	uidl_map_free(&nmap);
	index_free(&idx);
	mailbox_free(c.mb);
	return rc;
}

/* ---- delivery ---- */

#define DELIVER_BUF		65536
#define DELIVER_HOST_MAX	100	/* octets of the escaped host name */
#define DELIVER_BASE_MAX	200
#define DELIVER_NAME_TRIES	8

struct maildir_delivery {
	char		*path;
	int		 dirfd;		/* the Maildir root */
	int		 tmpfd;		/* tmp/ */
	int		 newfd;		/* new/ */
	int		 fd;		/* the file in tmp/, or -1 */
	char		 base[DELIVER_BASE_MAX];	/* name in tmp/ */
	uint64_t	 max_size;
	uint64_t	 written;	/* octets given to write */
	uint64_t	 stored;	/* octets put in the file */
	struct wire_enc	 enc;		/* counts the wire size */
	bool		 failed;
	bool		 style_known;	/* the first LF was seen */
	bool		 crlf;		/* and a CR came before it */
	unsigned char	 last;		/* the last octet given */
	size_t		 buflen;
	unsigned char	 buf[DELIVER_BUF];
};

/*
 * The host part of Maildir names: gethostname() with '/' and ':' written
 * as \057 and \072 (the Maildir convention), and ',' and '\', which
 * would confuse the ",S=" fields, and any octet outside 0x21..0x7e in
 * the same octal form.  Cut at DELIVER_HOST_MAX octets.
 */
static const char *
deliver_host(void)
{
	static char host[DELIVER_HOST_MAX + 1];
	char raw[256];
	size_t i, o = 0;

	if (host[0] != '\0')
		return host;
	if (gethostname(raw, sizeof(raw)) == -1 || raw[0] == '\0')
		(void)strcpy(raw, "localhost");
	raw[sizeof(raw) - 1] = '\0';
	for (i = 0; raw[i] != '\0'; i++) {
		unsigned char c = (unsigned char)raw[i];

		if (c > 0x20 && c < 0x7f && c != '/' && c != ':' &&
		    c != ',' && c != '\\') {
			if (o + 1 > DELIVER_HOST_MAX)
				break;
			host[o++] = (char)c;
		} else {
			if (o + 4 > DELIVER_HOST_MAX)
				break;
			(void)snprintf(host + o, 5, "\\%03o", c);
			o += 4;
		}
	}
	host[o] = '\0';
	return host;
}

/* A base name no other delivery has: time, pid, a per-process counter
 * and 64 random bits (the counter alone keeps one process's names apart
 * should the random source fail; O_EXCL and RENAME_NOREPLACE catch the
 * rest). */
static int
deliver_base(char *out, size_t size)
{
	static unsigned int seq;
	struct timespec ts;
	uint64_t rnd;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return -1;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
		rnd = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^
		    (uint64_t)seq;
	seq++;
	return str_fmt(out, size, "%lld.M%06ldP%ldQ%uR%016llx.%s",
	    (long long)ts.tv_sec, ts.tv_nsec / 1000, (long)getpid(), seq,
	    (unsigned long long)rnd, deliver_host());
}

/*
 * mkdir -p with mode 0700 that fsyncs the parent of every directory it
 * creates: a message fsync'd into new/ of a new Maildir must not vanish
 * with a directory entry that was never written.  0 or -1.
 */
static int
mkdir_durable(const char *path)
{
	char tmp[MAX_PATH_LEN];
	struct stat st;
	char *p, c;

	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		errno = ENOTDIR;
		return -1;
	}
	if (errno != ENOENT)
		return -1;
	if (str_fmt(tmp, sizeof(tmp), "%s", path) == -1)
		return -1;
	for (p = tmp + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		c = *p;
		*p = '\0';
		if (mkdir(tmp, 0700) == 0) {
			if (fsync_parent(tmp) == -1)
				return -1;
		} else if (errno != EEXIST)
			return -1;
		*p = c;
		if (c == '\0')
			return 0;
	}
}

/* Creates what is missing of the Maildir and opens tmp/ and new/. */
static enum store_rc
deliver_dirs(struct maildir_delivery *d, char *err, size_t errsize)
{
	static const char *const sub[] = { "cur", "new", "tmp" };
	struct stat st;
	bool created = false;
	size_t i;
	int saved;

	if (mkdir_durable(d->path) == -1)
		goto fail;
	d->dirfd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->dirfd == -1)
		goto fail;
	for (i = 0; i < N_ELEMENTS(sub); i++) {
		if (mkdirat(d->dirfd, sub[i], 0700) == 0)
			created = true;
		else if (errno != EEXIST)
			goto fail;
		if (fstatat(d->dirfd, sub[i], &st, AT_SYMLINK_NOFOLLOW) == -1)
			goto fail;
		if (!S_ISDIR(st.st_mode)) {
			errf(err, errsize, "mailbox %s: %s/ is not a directory",
			    d->path, sub[i]);
			return STORE_PERM;
		}
	}
	if (created && fsync(d->dirfd) == -1)
		goto fail;
	d->tmpfd = openat(d->dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC |
	    O_NOFOLLOW);
	if (d->tmpfd == -1)
		goto fail;
	d->newfd = openat(d->dirfd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC |
	    O_NOFOLLOW);
	if (d->newfd == -1)
		goto fail;
	return STORE_OK;
fail:
	saved = errno;
	errf(err, errsize, "mailbox %s: creating or opening the Maildir: %s",
	    d->path, strerror(saved));
	return errno_rc(saved);
}

static void
delivery_free(struct maildir_delivery *d)
{
	close_fd(&d->fd);
	close_fd(&d->newfd);
	close_fd(&d->tmpfd);
	close_fd(&d->dirfd);
	free(d->path);
	free(d);
}

/* Removes the tmp/ file; the delivery accepts nothing more. */
static void
deliver_discard(struct maildir_delivery *d)
{
	int saved = errno;

	close_fd(&d->fd);
	if (d->base[0] != '\0' && d->tmpfd != -1)
		(void)unlinkat(d->tmpfd, d->base, 0);
	d->failed = true;
	errno = saved;
}

/* A failed write of the file: EFBIG is the file size limit. */
static enum store_rc
deliver_write_error(struct maildir_delivery *d, int e, const char *what, char *err,
    size_t errsize)
{
	errf(err, errsize, "mailbox %s: %s tmp/%s: %s", d->path, what,
	    d->base, strerror(e));
	deliver_discard(d);
	return e == EFBIG ? STORE_TOO_BIG : errno_rc(e);
}

static int
deliver_flush(struct maildir_delivery *d)
{
	if (d->buflen == 0)
		return 0;
	if (write_full(d->fd, d->buf, d->buflen) == -1)
		return -1;
	d->buflen = 0;
	return 0;
}

/* Puts octets into the file (through the buffer) and the size count. */
static int
deliver_put(struct maildir_delivery *d, const unsigned char *p, size_t len)
{
	size_t n;

	(void)wire_enc_feed(&d->enc, p, len, NULL);	/* counts only */
	d->stored += len;
	while (len > 0) {
		if (d->buflen == 0 && len >= sizeof(d->buf))
			return write_full(d->fd, p, len);
		n = sizeof(d->buf) - d->buflen;
		if (n > len)
			n = len;
		memcpy(d->buf + d->buflen, p, n);
		d->buflen += n;
		p += n;
		len -= n;
		if (d->buflen == sizeof(d->buf) && deliver_flush(d) == -1)
			return -1;
	}
	return 0;
}

enum store_rc
maildir_deliver_begin(const char *path, uint64_t max_size,
    struct maildir_delivery **d_r, char *err, size_t errsize)
{
	struct maildir_delivery *d;
	enum store_rc rc;
	int i, saved;

	*d_r = NULL;
	if (path == NULL || path[0] == '\0' || strlen(path) >= MAX_PATH_LEN -
	    64) {
		errf(err, errsize, "mailbox path empty or too long");
		return STORE_PERM;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL ||
	    (d->path = strdup(path)) == NULL) {
		free(d);
		errf(err, errsize, "mailbox %s: out of memory", path);
		return STORE_TEMP;
	}
	d->dirfd = d->tmpfd = d->newfd = d->fd = -1;
	d->max_size = max_size;
	wire_enc_init(&d->enc, false, WIRE_ALL_LINES);
	if ((rc = deliver_dirs(d, err, errsize)) != STORE_OK) {
		delivery_free(d);
		return rc;
	}
	for (i = 0; i < DELIVER_NAME_TRIES; i++) {
		if (deliver_base(d->base, sizeof(d->base)) == -1) {
			saved = errno;
			d->base[0] = '\0';
			errf(err, errsize, "mailbox %s: making a file name: %s",
			    path, strerror(saved));
			delivery_free(d);
			return STORE_TEMP;
		}
		d->fd = openat(d->tmpfd, d->base, O_WRONLY | O_CREAT | O_EXCL |
		    O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
		if (d->fd != -1 || errno != EEXIST)
			break;
	}
	if (d->fd == -1) {
		saved = errno;
		errf(err, errsize, "mailbox %s: creating a file in tmp/: %s",
		    path, strerror(saved));
		d->base[0] = '\0';
		delivery_free(d);
		return errno_rc(saved);
	}
	*d_r = d;
	return STORE_OK;
}

enum store_rc
maildir_deliver_write(struct maildir_delivery *d, const void *data, size_t len,
    char *err, size_t errsize)
{
	const unsigned char *p = data, *lf;

	if (d->failed) {
		errf(err, errsize, "mailbox %s: the delivery failed before",
		    d->path);
		return STORE_TEMP;
	}
	if (len == 0)
		return STORE_OK;
	if (len > d->max_size - d->written) {
		errf(err, errsize, "mailbox %s: message over the size"
		    " limit", d->path);
		deliver_discard(d);
		return STORE_TOO_BIG;
	}
	if (!d->style_known && (lf = memchr(p, '\n', len)) != NULL) {
		d->style_known = true;
		d->crlf = lf > p ? lf[-1] == '\r' :
		    d->written > 0 && d->last == '\r';
	}
	d->written += len;
	d->last = p[len - 1];
	if (deliver_put(d, p, len) == -1)
		return deliver_write_error(d, errno, "writing", err, errsize);
	return STORE_OK;
}

void
maildir_deliver_abort(struct maildir_delivery **dp)
{
	if (*dp == NULL)
		return;
	deliver_discard(*dp);
	delivery_free(*dp);
	*dp = NULL;
}

/* new/name -> gone again, or cur/name:2, if a session took it. */
static void
deliver_unpublish(struct maildir_delivery *d, const char *name)
{
	char cur[INDEX_NAME_MAX + 8];

	if (unlinkat(d->newfd, name, 0) == 0 || errno != ENOENT)
		return;
	if (str_fmt(cur, sizeof(cur), "cur/%s%s", name, INFO_SUFFIX) == 0)
		(void)unlinkat(d->dirfd, cur, 0);
}

enum store_rc
maildir_deliver_commit(struct maildir_delivery **dp, struct delivery_info *info_r,
    char *err, size_t errsize)
{
	struct maildir_delivery *d = *dp;
	char base[DELIVER_BASE_MAX], name[INDEX_NAME_MAX + 1];
	enum store_rc rc;
	int i, r, saved;

	*dp = NULL;
	if (info_r != NULL)
		memset(info_r, 0, sizeof(*info_r));
	if (d->failed) {
		errf(err, errsize, "mailbox %s: the delivery failed before",
		    d->path);
		delivery_free(d);
		return STORE_TEMP;
	}
	if (d->written > 0 && d->last != '\n') {
		/* The same wire form: see store.h. */
		bool crlf = d->last == '\r' || d->crlf;

		if (deliver_put(d, (const unsigned char *)(crlf ? "\r\n" :
		    "\n"), crlf ? 2 : 1) == -1) {
			rc = deliver_write_error(d, errno, "writing", err,
			    errsize);
			goto out;
		}
	}
	(void)wire_enc_finish(&d->enc, NULL);
	if (deliver_flush(d) == -1) {
		rc = deliver_write_error(d, errno, "writing", err, errsize);
		goto out;
	}
	if (fsync(d->fd) == -1) {
		rc = deliver_write_error(d, errno, "fsync of", err, errsize);
		goto out;
	}
	r = close(d->fd);
	d->fd = -1;
	if (r == -1) {
		rc = deliver_write_error(d, errno, "closing", err, errsize);
		goto out;
	}
	/* Into new/ under a name that records both sizes; never over
	 * another file (a clash would take a fresh base name). */
	(void)memcpy(base, d->base, sizeof(base));
	for (i = 0;; i++) {
		if (str_fmt(name, sizeof(name) - strlen(INFO_SUFFIX),
		    "%s,S=%llu,W=%llu", base, (unsigned long long)d->stored,
		    (unsigned long long)d->enc.octets) == -1) {
			errf(err, errsize, "mailbox %s: file name too long",
			    d->path);
			deliver_discard(d);
			rc = STORE_PERM;
			goto out;
		}
		r = renameat2(d->tmpfd, d->base, d->newfd, name,
		    RENAME_NOREPLACE);
		if (r == -1 && (errno == EINVAL || errno == ENOSYS))
			r = link_move(d->tmpfd, d->base, d->newfd, name);
		if (r == 0)
			break;
		saved = errno;
		if (saved != EEXIST || i + 1 == DELIVER_NAME_TRIES ||
		    deliver_base(base, sizeof(base)) == -1) {
			errf(err, errsize, "mailbox %s: moving tmp/%s to new/:"
			    " %s", d->path, d->base, strerror(saved));
			deliver_discard(d);
			rc = errno_rc(saved);
			goto out;
		}
	}
	if (fsync(d->newfd) == -1) {
		saved = errno;
		errf(err, errsize, "mailbox %s: fsync of new/: %s", d->path,
		    strerror(saved));
		deliver_unpublish(d, name);
		d->failed = true;
		rc = STORE_TEMP;
		goto out;
	}
	if (info_r != NULL) {
		_Static_assert(sizeof(info_r->name) >= sizeof(name),
		    "delivery_info.name holds a file name");
		info_r->size = d->enc.octets;
		info_r->stored_size = d->stored;
		(void)memcpy(info_r->name, name, sizeof(name));
	}
	rc = STORE_OK;
out:
	delivery_free(d);
	return rc;
}
