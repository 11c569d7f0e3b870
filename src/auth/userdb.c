/*
 * userdb.c: the passwd-file user database: strict loading, constant-time
 * (hash table) lookups, reloading when the file changes, and the
 * one-line edits behind `postern user`.
 *
 * Owns: one in-memory copy of the file per userdb, cut into
 * NUL-terminated fields in place and wiped when freed (it holds
 * secrets), and the hash table over its user names.
 * Trusts: nothing in the file until every line has passed the checks
 * below (an administrator writes it, often by hand, so errors name the
 * line); lookup names come from peers and are only hashed and compared.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/userdb.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/limits.h"

/* One user line, as offsets into the file. */
struct urec {
	size_t		 line_off;	/* the line (name first) */
	uint32_t	 line_len;	/* without the LF */
	uint32_t	 pass_len;	/* password field, after "name:" */
	uint32_t	 lineno;
	uint16_t	 name_len;
	bool		 disabled;
};

/* The users of one file and an open-addressing table over their names. */
struct table {
	struct urec	*recs;
	size_t		 n;
	size_t		 cap;
	uint32_t	*slots;		/* 0: empty, else 1 + index */
	size_t		 mask;		/* number of slots - 1 */
};

/* What identifies one version of the file (or the failure to stat it). */
struct file_id {
	int		 err;		/* 0, or the errno of stat */
	dev_t		 dev;
	ino_t		 ino;
	off_t		 size;
	struct timespec	 mtime;
	struct timespec	 ctime;
};

struct userdb {
	char		*path;
	char		*data;		/* the file, cut with NULs */
	size_t		 size;
	struct table	 t;
	struct user_rec	*users;		/* parallel to t.recs */
	bool		 has_plain;
	struct file_id	 id;		/* the version loaded */
	struct file_id	 bad_id;	/* the last version that failed */
	bool		 have_bad;
};

enum edit_op { EDIT_ADD, EDIT_SET, EDIT_DEL };

#define LOCK_POLL_MS	50

static const char name_rules[] = "1-255 characters of A-Z a-z 0-9 . _ @ + -, "
    "not starting with '.' or '-', no '..'";

static void
err_set(char *err, size_t errsize, const char *fmt, ...) ATTR_PRINTF(3, 4);

static void
err_set(char *err, size_t errsize, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errsize == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(err, errsize, fmt, ap);
	va_end(ap);
}

/* "PATH:LINE: reason", errno EINVAL, -1. */
static int
line_fail(char *err, size_t errsize, const char *path, unsigned long lineno,
    const char *fmt, ...) ATTR_PRINTF(5, 6);

static int
line_fail(char *err, size_t errsize, const char *path, unsigned long lineno,
    const char *fmt, ...)
{
	char reason[256];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	err_set(err, errsize, "%s:%lu: %s", path, lineno, reason);
	errno = EINVAL;
	return -1;
}

static bool
name_valid_n(const char *p, size_t n)
{
	size_t i;

	if (n == 0 || n > MAX_USERNAME_LEN || p[0] == '.' || p[0] == '-')
		return false;
	for (i = 0; i < n; i++) {
		char c = p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '@' || c == '+' || c == '-'))
			return false;
		if (c == '.' && i > 0 && p[i - 1] == '.')
			return false;
	}
	return true;
}

bool
username_valid(const char *name)
{
	if (name == NULL)
		return false;
	return name_valid_n(name, strnlen(name, MAX_USERNAME_LEN + 1));
}

/* FNV-1a: the table holds the administrator's names only, so a peer
 * cannot choose colliding keys; lookups just probe. */
static uint64_t
name_hash(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static int
table_init(struct table *t, size_t max_users)
{
	size_t nslots = 16;

	memset(t, 0, sizeof(*t));
	while (nslots < 2 * max_users)
		nslots *= 2;
	if ((t->slots = calloc(nslots, sizeof(*t->slots))) == NULL)
		return -1;
	t->mask = nslots - 1;
	return 0;
}

static void
table_free(struct table *t)
{
	free(t->recs);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

/* The record of name in t (over data), or NULL; *slot_r: where it is or
 * where it would go. */
static struct urec *
table_find(const struct table *t, const char *data, const char *name,
    size_t n, size_t *slot_r)
{
	size_t i = (size_t)name_hash(name, n) & t->mask;
	struct urec *r;

	for (;; i = (i + 1) & t->mask) {
		if (t->slots[i] == 0) {
			if (slot_r != NULL)
				*slot_r = i;
			return NULL;
		}
		r = &t->recs[t->slots[i] - 1];
		if (r->name_len == n &&
		    memcmp(data + r->line_off, name, n) == 0)
			return r;
	}
}

static int
table_add(struct table *t, const struct urec *r, size_t slot)
{
	struct urec *n;
	size_t ncap;

	if (t->n == t->cap) {
		ncap = t->cap == 0 ? 64 : t->cap * 2;
		if ((n = reallocarray(t->recs, ncap, sizeof(*n))) == NULL)
			return -1;
		t->recs = n;
		t->cap = ncap;
	}
	t->recs[t->n++] = *r;
	t->slots[slot] = (uint32_t)t->n;
	return 0;
}

/* uid and gid: empty or a decimal number that fits 32 bits. */
static bool
id_field_valid(const char *p, size_t n)
{
	uint64_t v = 0;
	size_t i;

	if (n > 10)
		return false;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	return v <= UINT32_MAX;
}

static bool
bool_value(const char *p, size_t n, bool *v_r)
{
	static const struct {
		const char	*s;
		bool		 v;
	} words[] = {
		{ "yes", true }, { "no", false }, { "true", true },
		{ "false", false }, { "on", true }, { "off", false },
	};
	size_t i;

	for (i = 0; i < N_ELEMENTS(words); i++) {
		if (strlen(words[i].s) == n && memcmp(words[i].s, p, n) == 0) {
			*v_r = words[i].v;
			return true;
		}
	}
	return false;
}

/* Extra fields: space-separated key=value; unknown keys are ignored. */
static int
parse_extra(const char *p, const char *end, struct urec *r, const char *path,
    char *err, size_t errsize)
{
	const char *tok, *eq;
	bool seen_disabled = false;
	size_t n;

	while (p < end) {
		if (*p == ' ' || *p == '\t') {
			p++;
			continue;
		}
		tok = p;
		while (p < end && *p != ' ' && *p != '\t')
			p++;
		n = (size_t)(p - tok);
		eq = memchr(tok, '=', n);
		if (eq == NULL || eq == tok)
			return line_fail(err, errsize, path, r->lineno,
			    "malformed extra field '%.*s' (want key=value)",
			    (int)(n > 40 ? 40 : n), tok);
		if ((size_t)(eq - tok) == strlen("disabled") &&
		    memcmp(tok, "disabled", strlen("disabled")) == 0) {
			if (seen_disabled)
				return line_fail(err, errsize, path, r->lineno,
				    "disabled= given twice");
			seen_disabled = true;
			if (!bool_value(eq + 1, (size_t)(p - eq - 1),
			    &r->disabled))
				return line_fail(err, errsize, path, r->lineno,
				    "disabled= wants yes or no");
		}
	}
	return 0;
}

/*
 * Checks one line (line_len octets at data + off, not counting its LF)
 * and adds its user to t.  Cuts the name and password fields out with
 * NULs in place.  Blank and comment lines are skipped.
 */
static int
parse_line(char *data, size_t off, size_t line_len, unsigned long lineno,
    const char *path, struct table *t, char *err, size_t errsize)
{
	char *line = data + off, *end = line + line_len;
	char *colon, *pass, *p, *q;
	const struct urec *first;
	struct urec r;
	size_t i, slot, nlen, plen;
	int field;

	if (line_len > USERDB_MAX_LINE)
		return line_fail(err, errsize, path, lineno,
		    "line longer than %d octets", USERDB_MAX_LINE);
	for (i = 0; i < line_len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c == '\r')
			return line_fail(err, errsize, path, lineno,
			    "carriage return in line (the file needs Unix "
			    "line endings)");
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return line_fail(err, errsize, path, lineno,
			    "control character in line");
	}
	for (i = 0; i < line_len && (line[i] == ' ' || line[i] == '\t'); i++)
		continue;
	if (i == line_len || line[0] == '#')
		return 0;

	if ((colon = memchr(line, ':', line_len)) == NULL)
		return line_fail(err, errsize, path, lineno,
		    "no ':' after the user name (want name:{SCHEME}hash)");
	nlen = (size_t)(colon - line);
	if (!name_valid_n(line, nlen))
		return line_fail(err, errsize, path, lineno,
		    "invalid user name (allowed: %s)", name_rules);
	pass = colon + 1;
	q = memchr(pass, ':', (size_t)(end - pass));
	plen = (size_t)((q != NULL ? q : end) - pass);
	if (plen == 0)
		return line_fail(err, errsize, path, lineno,
		    "empty password field");

	memset(&r, 0, sizeof(r));
	r.line_off = off;
	r.line_len = (uint32_t)line_len;
	r.name_len = (uint16_t)nlen;
	r.pass_len = (uint32_t)plen;
	r.lineno = (uint32_t)lineno;

	/* uid, gid, gecos, home and shell are accepted and ignored (but a
	 * uid or gid that is not a number is a shifted line); extra fields
	 * are the rest of the line, ':' included. */
	p = q != NULL ? q + 1 : end;
	for (field = 0; q != NULL && field < 5; field++) {
		q = memchr(p, ':', (size_t)(end - p));
		if (field < 2 && !id_field_valid(p,
		    (size_t)((q != NULL ? q : end) - p)))
			return line_fail(err, errsize, path, lineno,
			    "%s field is not a number (fields: name:password:"
			    "uid:gid:gecos:home:shell:extra)",
			    field == 0 ? "uid" : "gid");
		p = q != NULL ? q + 1 : end;
	}
	if (q != NULL && parse_extra(p, end, &r, path, err, errsize) == -1)
		return -1;

	*end = '\0';
	pass[plen] = '\0';
	*colon = '\0';
	if (!pw_stored_valid(pass))
		return line_fail(err, errsize, path, lineno,
		    "bad password field (want {YESCRYPT}, {SHA512-CRYPT}, "
		    "{BLF-CRYPT}, {CRYPT} or {PLAIN} and a value of that "
		    "scheme)");
	if ((first = table_find(t, data, line, nlen, &slot)) != NULL)
		return line_fail(err, errsize, path, lineno,
		    "duplicate user '%s' (first on line %lu)", line,
		    (unsigned long)first->lineno);
	if (table_add(t, &r, slot) == -1) {
		err_set(err, errsize, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Parses len octets at data (data[len] must be NUL) into t, cutting the
 * fields in place.  -1 with "PATH:LINE: reason" in err.
 */
static int
parse_file(char *data, size_t len, const char *path, struct table *t,
    char *err, size_t errsize)
{
	size_t off = 0, lines = 1, ll;
	unsigned long lineno = 0;
	const char *p;
	char *nl;

	for (p = data; (p = memchr(p, '\n', len - (size_t)(p - data))) != NULL;
	    p++)
		lines++;
	if (table_init(t, lines) == -1) {
		err_set(err, errsize, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (off < len) {
		nl = memchr(data + off, '\n', len - off);
		ll = nl != NULL ? (size_t)(nl - (data + off)) : len - off;
		if (parse_line(data, off, ll, ++lineno, path, t, err,
		    errsize) == -1) {
			table_free(t);
			return -1;
		}
		off += ll + (nl != NULL ? 1 : 0);
	}
	return 0;
}

static void
free_secret(char *p, size_t n)
{
	if (p == NULL)
		return;
	explicit_bzero(p, n);
	free(p);
}

/*
 * Reads the regular file at path whole, at most USERDB_MAX_BYTES, into a
 * fresh allocation that ends with a NUL (not counted in *len_r).  Memory
 * that held file contents is wiped before it is freed.  -1 with
 * "PATH: reason" in err and errno set.
 */
static int
read_db(const char *path, char **data_r, size_t *len_r, struct stat *st_r,
    char *err, size_t errsize)
{
	char *data = NULL, *n;
	size_t len = 0, cap = 0;
	ssize_t got;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1)
		goto fail;
	if (fstat(fd, st_r) == -1)
		goto fail;
	if (!S_ISREG(st_r->st_mode)) {
		errno = EINVAL;
		err_set(err, errsize, "%s: not a regular file", path);
		goto fail_msg;
	}
	if ((uintmax_t)st_r->st_size > USERDB_MAX_BYTES) {
		errno = EFBIG;
		goto fail;
	}
	cap = (size_t)st_r->st_size + 1;
	if (cap < 4096)
		cap = 4096;
	if ((data = malloc(cap)) == NULL)
		goto fail;
	for (;;) {
		if (len + 1 == cap) {
			/* The file grew while we read it. */
			if (cap > USERDB_MAX_BYTES) {
				errno = EFBIG;
				goto fail;
			}
			if ((n = malloc(cap * 2)) == NULL)
				goto fail;
			memcpy(n, data, len);
			free_secret(data, cap);
			data = n;
			cap *= 2;
		}
		got = read(fd, data + len, cap - 1 - len);
		if (got == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (got == 0)
			break;
		len += (size_t)got;
		if (len > USERDB_MAX_BYTES) {
			errno = EFBIG;
			goto fail;
		}
	}
	close(fd);
	data[len] = '\0';
	*data_r = data;
	*len_r = len;
	return 0;
fail:
	if (errno == EFBIG)
		err_set(err, errsize, "%s: larger than %u octets", path,
		    USERDB_MAX_BYTES);
	else
		err_set(err, errsize, "%s: %s", path, strerror(errno));
fail_msg:
	saved = errno;
	if (fd != -1)
		close(fd);
	free_secret(data, data != NULL ? cap : 0);
	errno = saved;
	return -1;
}

static void
id_from_stat(struct file_id *id, const struct stat *st)
{
	memset(id, 0, sizeof(*id));
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtime = st->st_mtim;
	id->ctime = st->st_ctim;
}

static bool
id_equal(const struct file_id *a, const struct file_id *b)
{
	if (a->err != 0 || b->err != 0)
		return a->err == b->err;
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->mtime.tv_sec == b->mtime.tv_sec &&
	    a->mtime.tv_nsec == b->mtime.tv_nsec &&
	    a->ctime.tv_sec == b->ctime.tv_sec &&
	    a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Releases what db_load filled in, wiping the file copy. */
static void
db_clear(struct userdb *db)
{
	free_secret(db->data, db->size + 1);
	db->data = NULL;
	db->size = 0;
	table_free(&db->t);
	free(db->users);
	db->users = NULL;
	db->has_plain = false;
}

/* Loads db->path into the empty db.  -1 with err set. */
static int
db_load(struct userdb *db, char *err, size_t errsize)
{
	struct stat st;
	size_t i;

	if (read_db(db->path, &db->data, &db->size, &st, err, errsize) == -1)
		return -1;
	if (parse_file(db->data, db->size, db->path, &db->t, err,
	    errsize) == -1)
		goto fail;
	if ((db->users = calloc(db->t.n + 1, sizeof(*db->users))) == NULL) {
		err_set(err, errsize, "%s: %s", db->path, strerror(errno));
		goto fail;
	}
	for (i = 0; i < db->t.n; i++) {
		const struct urec *r = &db->t.recs[i];
		struct user_rec *u = &db->users[i];

		u->name = db->data + r->line_off;
		u->password = u->name + r->name_len + 1;
		u->disabled = r->disabled;
		if (!u->disabled && pw_plain_secret(u->password) != NULL)
			db->has_plain = true;
	}
	id_from_stat(&db->id, &st);
	return 0;
fail:
	db_clear(db);
	errno = EINVAL;
	return -1;
}

int
userdb_open(const char *path, struct userdb **db_r, char *err, size_t errsize)
{
	struct userdb *db;
	int saved;

	*db_r = NULL;
	if ((db = calloc(1, sizeof(*db))) == NULL ||
	    (db->path = strdup(path)) == NULL) {
		saved = errno;
		err_set(err, errsize, "%s: %s", path, strerror(errno));
		free(db);
		errno = saved;
		return -1;
	}
	if (db_load(db, err, errsize) == -1) {
		saved = errno;
		free(db->path);
		free(db);
		errno = saved;
		return -1;
	}
	*db_r = db;
	return 0;
}

int
userdb_refresh(struct userdb *db, char *err, size_t errsize)
{
	struct userdb fresh;
	struct file_id cur;
	struct stat st;

	memset(&cur, 0, sizeof(cur));
	if (stat(db->path, &st) == -1)
		cur.err = errno != 0 ? errno : EIO;
	else
		id_from_stat(&cur, &st);
	if (cur.err == 0 && id_equal(&cur, &db->id))
		return 0;
	if (db->have_bad && id_equal(&cur, &db->bad_id))
		return 0;	/* reported already; keep the old contents */
	if (cur.err != 0) {
		err_set(err, errsize, "%s: %s (keeping the users loaded "
		    "before)", db->path, strerror(cur.err));
		db->bad_id = cur;
		db->have_bad = true;
		return -1;
	}

	memset(&fresh, 0, sizeof(fresh));
	fresh.path = db->path;
	if (db_load(&fresh, err, errsize) == -1) {
		db->bad_id = cur;
		db->have_bad = true;
		return -1;
	}
	db_clear(db);
	db->data = fresh.data;
	db->size = fresh.size;
	db->t = fresh.t;
	db->users = fresh.users;
	db->has_plain = fresh.has_plain;
	db->id = fresh.id;
	db->have_bad = false;
	return 0;
}

const struct user_rec *
userdb_lookup(const struct userdb *db, const char *name)
{
	const struct urec *r;
	size_t n;

	if (db == NULL || name == NULL)
		return NULL;
	n = strnlen(name, MAX_USERNAME_LEN + 1);
	if (n == 0 || n > MAX_USERNAME_LEN)
		return NULL;
	r = table_find(&db->t, db->data, name, n, NULL);
	if (r == NULL)
		return NULL;
	return &db->users[r - db->t.recs];
}

bool
userdb_has_plain(const struct userdb *db)
{
	return db != NULL && db->has_plain;
}

size_t
userdb_count(const struct userdb *db)
{
	return db != NULL ? db->t.n : 0;
}

const struct user_rec *
userdb_get(const struct userdb *db, size_t i)
{
	if (db == NULL || i >= db->t.n)
		return NULL;
	return &db->users[i];
}

void
userdb_free(struct userdb **dbp)
{
	struct userdb *db = *dbp;

	if (db == NULL)
		return;
	db_clear(db);
	free(db->path);
	free(db);
	*dbp = NULL;
}

/*
 * Editing.  The lock is a separate file so that the database itself can
 * be replaced by rename while the lock is held.
 */

static int
lock_take(const char *target, const char *path, int *fd_r, char *err,
    size_t errsize)
{
	const struct timespec nap = { 0, LOCK_POLL_MS * 1000000L };
	char lockpath[MAX_PATH_LEN];
	unsigned int waited = 0;
	int fd, saved;

	if (str_fmt(lockpath, sizeof(lockpath), "%s.lock", target) == -1) {
		errno = ENAMETOOLONG;
		err_set(err, errsize, "%s: path too long", path);
		return -1;
	}
	fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
	    O_NOCTTY, 0600);
	if (fd == -1) {
		saved = errno;
		err_set(err, errsize, "%s: %s", lockpath, strerror(errno));
		errno = saved;
		return -1;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK || waited >= USERDB_LOCK_WAIT_MS) {
			saved = errno == EWOULDBLOCK ? EBUSY : errno;
			if (saved == EBUSY)
				err_set(err, errsize, "%s: held by another "
				    "process for %u s", lockpath,
				    USERDB_LOCK_WAIT_MS / 1000);
			else
				err_set(err, errsize, "%s: %s", lockpath,
				    strerror(saved));
			close(fd);
			errno = saved;
			return -1;
		}
		(void)nanosleep(&nap, NULL);
		waited += LOCK_POLL_MS;
	}
	*fd_r = fd;
	return 0;
}

/*
 * write_atomic creates a new file, so give it back the mode (and, when
 * we can, the owner) of the one it replaced: the auth process, running
 * as auth_user, must still be able to read it.
 */
static int
restore_attrs(const char *target, const char *path, const struct stat *old,
    mode_t mode, char *err, size_t errsize)
{
	struct stat st;
	int fd, saved;

	fd = open(target, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd == -1 || fstat(fd, &st) == -1)
		goto fail;
	if (old != NULL && geteuid() == 0 &&
	    (st.st_uid != old->st_uid || st.st_gid != old->st_gid) &&
	    fchown(fd, old->st_uid, old->st_gid) == -1)
		goto fail;
	if ((st.st_mode & 07777) != mode && fchmod(fd, mode) == -1)
		goto fail;
	close(fd);
	return 0;
fail:
	saved = errno;
	err_set(err, errsize, "%s: written, but its owner and mode could not "
	    "be restored: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	errno = saved;
	return -1;
}

/* Builds the edited file in out from the original orig (olen octets). */
static int
edit_build(enum edit_op op, const char *orig, size_t olen,
    const struct urec *r, const char *name, const char *field,
    struct buf *out)
{
	size_t pass_off, line_end;

	switch (op) {
	case EDIT_ADD:
		if (buf_add(out, orig, olen) == -1 ||
		    (olen > 0 && orig[olen - 1] != '\n' &&
		    buf_addc(out, '\n') == -1) ||
		    buf_addf(out, "%s:%s\n", name, field) == -1)
			return -1;
		return 0;
	case EDIT_SET:
		pass_off = r->line_off + r->name_len + 1;
		if (buf_add(out, orig, pass_off) == -1 ||
		    buf_addstr(out, field) == -1 ||
		    buf_add(out, orig + pass_off + r->pass_len,
		    olen - pass_off - r->pass_len) == -1)
			return -1;
		return 0;
	case EDIT_DEL:
		line_end = r->line_off + r->line_len;
		if (line_end < olen)
			line_end++;	/* its LF */
		if (buf_add(out, orig, r->line_off) == -1 ||
		    buf_add(out, orig + line_end, olen - line_end) == -1)
			return -1;
		return 0;
	}
	errno = EINVAL;
	return -1;
}

static int
file_edit(const char *path, enum edit_op op, const char *name,
    const char *field, char *err, size_t errsize)
{
	char *real = NULL, *orig = NULL, *copy = NULL;
	const char *target = path;
	struct table t;
	struct stat st;
	struct buf out;
	const struct urec *r;
	size_t olen = 0, newlen;
	mode_t mode = 0600;
	bool exists = true;
	int lockfd = -1, rc = -1, saved = 0;

	memset(&t, 0, sizeof(t));
	buf_init(&out, USERDB_MAX_BYTES);
	if (!username_valid(name)) {
		err_set(err, errsize, "invalid user name (allowed: %s)",
		    name_rules);
		errno = EINVAL;
		return -1;
	}
	if (op != EDIT_DEL && !pw_stored_valid(field)) {
		err_set(err, errsize, "invalid password field");
		errno = EINVAL;
		return -1;
	}

	/* Edit the file a symbolic link points to, not the link. */
	if ((real = realpath(path, NULL)) != NULL)
		target = real;
	else if (errno != ENOENT) {
		saved = errno;
		err_set(err, errsize, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (lock_take(target, path, &lockfd, err, errsize) == -1) {
		saved = errno;
		goto out;
	}

	if (read_db(target, &orig, &olen, &st, err, errsize) == -1) {
		if (errno != ENOENT) {
			saved = errno;
			goto out;
		}
		if (op != EDIT_ADD) {
			err_set(err, errsize, "no user '%s' in %s (the file "
			    "does not exist)", name, path);
			saved = ENOENT;
			goto out;
		}
		exists = false;
		if ((orig = calloc(1, 1)) == NULL) {
			saved = errno;
			err_set(err, errsize, "%s: %s", path, strerror(errno));
			goto out;
		}
	} else
		mode = st.st_mode & 07777;

	/* Refuse to edit a file the server would refuse to load: the
	 * administrator fixes it first, and we never hide a bad line. */
	if ((copy = malloc(olen + 1)) == NULL) {
		saved = errno;
		err_set(err, errsize, "%s: %s", path, strerror(errno));
		goto out;
	}
	memcpy(copy, orig, olen + 1);
	if (parse_file(copy, olen, path, &t, err, errsize) == -1) {
		saved = errno;
		goto out;
	}
	r = table_find(&t, copy, name, strlen(name), NULL);
	if (op == EDIT_ADD && r != NULL) {
		err_set(err, errsize, "user '%s' already exists in %s", name,
		    path);
		saved = EEXIST;
		goto out;
	}
	if (op != EDIT_ADD && r == NULL) {
		err_set(err, errsize, "no user '%s' in %s", name, path);
		saved = ENOENT;
		goto out;
	}
	if (op == EDIT_ADD)
		newlen = strlen(name) + 1 + strlen(field);
	else if (op == EDIT_SET)
		newlen = r->line_len - r->pass_len + strlen(field);
	else
		newlen = 0;
	if (newlen > USERDB_MAX_LINE) {
		err_set(err, errsize, "the line of '%s' would be longer than "
		    "%d octets", name, USERDB_MAX_LINE);
		saved = EINVAL;
		goto out;
	}
	if (edit_build(op, orig, olen, r, name, field, &out) == -1) {
		saved = errno;
		if (errno == EMSGSIZE)
			err_set(err, errsize, "%s: would grow past %u octets",
			    path, USERDB_MAX_BYTES);
		else
			err_set(err, errsize, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (write_atomic(target, out.data != NULL ? out.data : "", out.len,
	    mode) == -1) {
		saved = errno;
		err_set(err, errsize, "%s: %s (nothing changed)", path,
		    strerror(errno));
		goto out;
	}
	if (restore_attrs(target, path, exists ? &st : NULL, mode, err,
	    errsize) == -1) {
		saved = errno;
		goto out;
	}
	rc = 0;
out:
	table_free(&t);
	buf_clear_secret(&out);
	free_secret(copy, copy != NULL ? olen + 1 : 0);
	free_secret(orig, orig != NULL ? olen + 1 : 0);
	if (lockfd != -1)
		close(lockfd);
	free(real);
	if (rc == -1)
		errno = saved;
	return rc;
}

int
userdb_file_add(const char *path, const char *name,
    const char *password_field, char *err, size_t errsize)
{
	return file_edit(path, EDIT_ADD, name, password_field, err, errsize);
}

int
userdb_file_set_password(const char *path, const char *name,
    const char *password_field, char *err, size_t errsize)
{
	return file_edit(path, EDIT_SET, name, password_field, err, errsize);
}

int
userdb_file_delete(const char *path, const char *name, char *err,
    size_t errsize)
{
	return file_edit(path, EDIT_DEL, name, NULL, err, errsize);
}
