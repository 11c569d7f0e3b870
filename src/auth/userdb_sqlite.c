/*
 * userdb_sqlite.c: the SQLite user store (user_db_type = sqlite).
 *
 * The auth process reads it through one read-only connection and
 * prepared statements; `postern user` writes it through a short-lived
 * read-write connection, one transaction per change.  The file stays in
 * journal_mode DELETE: a WAL database would make every reader write its
 * -shm file, and the auth process may only read the database's
 * directory (Landlock) and has no business writing anything.
 *
 * Owns: the connections and statements, the record that lookups hand
 * out (its strings live here and are wiped when it is reused or freed),
 * the cached caps and the names of bad rows already reported.
 * Trusts: nothing in a row: every value is checked as the passwd-file's
 * are; a bad row counts as absent and is logged once, by user name only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "auth/userdb.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/log.h"

/* Readers wait this long for a writer's lock before a lookup fails. */
#define READ_BUSY_MS	1000
/* Bad rows reported, remembered by name until the file changes. */
#define WARNED_MAX	256

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS users (\n"
    "  name TEXT PRIMARY KEY NOT NULL,\n"
    "  password TEXT,\n"
    "  scram_sha1 TEXT,\n"
    "  scram_sha256 TEXT,\n"
    "  secret TEXT,\n"
    "  login_delay INTEGER,\n"
    "  expire_days INTEGER,\n"
    "  disabled INTEGER NOT NULL DEFAULT 0,\n"
    "  quota_bytes INTEGER,\n"
    "  quota_messages INTEGER\n"
    ")";

#define COLUMNS_BASE	"name, password, scram_sha1, scram_sha256, secret, " \
		"login_delay, expire_days, disabled"
#define COLUMNS	COLUMNS_BASE ", quota_bytes, quota_messages"
/* A database made before the quota columns: read them as NULL. */
#define COLUMNS_OLD	COLUMNS_BASE ", NULL, NULL"
enum column {
	COL_NAME, COL_PASSWORD, COL_SCRAM1, COL_SCRAM256, COL_SECRET,
	COL_LOGIN_DELAY, COL_EXPIRE, COL_DISABLED, COL_QUOTA_BYTES,
	COL_QUOTA_MESSAGES
};

static const char lookup_sql[] =
    "SELECT " COLUMNS " FROM users WHERE name = ?1";
static const char all_sql[] =
    "SELECT " COLUMNS " FROM users ORDER BY name";
static const char lookup_old_sql[] =
    "SELECT " COLUMNS_OLD " FROM users WHERE name = ?1";
static const char all_old_sql[] =
    "SELECT " COLUMNS_OLD " FROM users ORDER BY name";
static const char quota_probe_sql[] =
    "SELECT quota_bytes, quota_messages FROM users LIMIT 0";
/* USERDB_CAP_* in column order; a {PLAIN} password is a secret too. */
static const char caps_sql[] =
    "SELECT"
    " EXISTS (SELECT 1 FROM users WHERE disabled = 0 AND"
    "  (password IS NOT NULL OR secret IS NOT NULL)),"
    " EXISTS (SELECT 1 FROM users WHERE disabled = 0 AND"
    "  (secret IS NOT NULL OR password LIKE '{PLAIN}%')),"
    " EXISTS (SELECT 1 FROM users WHERE disabled = 0 AND"
    "  scram_sha1 IS NOT NULL),"
    " EXISTS (SELECT 1 FROM users WHERE disabled = 0 AND"
    "  scram_sha256 IS NOT NULL)";

struct userdb_sqlite {
	char		*path;
	sqlite3		*db;
	sqlite3_stmt	*q_lookup;
	sqlite3_stmt	*q_all;
	sqlite3_stmt	*q_caps;
	bool		 quota_cols;	/* the table has the quota columns */
	struct file_id	 id;		/* the version caps were computed on */
	struct file_id	 bad_id;	/* the last version that failed */
	bool		 have_bad;
	bool		 caps_valid;
	unsigned int	 caps;

	/* The record handed out, and the storage of its strings. */
	struct user_rec	 rec;
	char		 name[MAX_USERNAME_LEN + 1];
	char		 password[PW_HASH_OUT_SIZE];
	char		 secret[USER_SECRET_SIZE];

	uint64_t	 warned[WARNED_MAX];	/* hashes of reported names */
	size_t		 n_warned;
};

/* The errno that best says what an SQLite result code means. */
static int
sq_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return EBUSY;
	case SQLITE_PERM:
	case SQLITE_READONLY:
	case SQLITE_AUTH:
	case SQLITE_CANTOPEN:
		return EACCES;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
	case SQLITE_SCHEMA:
	case SQLITE_ERROR:
		return EINVAL;
	case SQLITE_FULL:
		return ENOSPC;
	case SQLITE_NOMEM:
		return ENOMEM;
	default:
		return EIO;
	}
}

/* "PATH: reason" from the connection's last error; errno set; -1. */
static int
sq_fail(sqlite3 *db, int rc, const char *path, char *err, size_t errsize)
{
	int e = sq_errno(rc);

	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		errf(err, errsize, "%s: locked by another writer for %u s",
		    path, USERDB_LOCK_WAIT_MS / 1000);
	else if ((rc & 0xff) == SQLITE_NOTADB)
		errf(err, errsize, "%s: not an SQLite database", path);
	else if ((rc & 0xff) == SQLITE_ERROR && db != NULL)
		errf(err, errsize, "%s: not a Postern user database (%s)",
		    path, sqlite3_errmsg(db));
	else
		errf(err, errsize, "%s: %s", path, db != NULL ?
		    sqlite3_errmsg(db) : sqlite3_errstr(rc));
	errno = e;
	return -1;
}

/* ---- reading --------------------------------------------------------- */

/* Whether the users table has the quota columns. */
static bool
has_quota_cols(sqlite3 *db)
{
	sqlite3_stmt *probe = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db, quota_probe_sql, -1, &probe, NULL);
	sqlite3_finalize(probe);
	return rc == SQLITE_OK;
}

/* The connection and statements of a reader, or -1 with err set. */
static int
reader_open(const char *path, sqlite3 **db_r, sqlite3_stmt **lookup_r,
    sqlite3_stmt **all_r, sqlite3_stmt **caps_r, struct file_id *id_r,
    char *err, size_t errsize)
{
	sqlite3 *db = NULL;
	struct stat st;
	bool quota_cols;
	int fd, rc, saved;

	*db_r = NULL;
	*lookup_r = *all_r = *caps_r = NULL;
	/* Say plainly why a file cannot be read; SQLite would only say
	 * "unable to open database file". */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1 ||
	    fstat(fd, &st) == -1) {
		saved = errno;
		errf(err, errsize, "%s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	if (!S_ISREG(st.st_mode)) {
		errf(err, errsize, "%s: not a regular file", path);
		errno = EINVAL;
		return -1;
	}
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	(void)sqlite3_extended_result_codes(db, 1);
	(void)sqlite3_busy_timeout(db, READ_BUSY_MS);
	/* The file is data, not code: no functions from its schema. */
	(void)sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	(void)sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	/* Never a temporary file: the sandbox has nowhere to put one. */
	if ((rc = sqlite3_exec(db, "PRAGMA temp_store = MEMORY", NULL, NULL,
	    NULL)) != SQLITE_OK)
		goto fail;
	quota_cols = has_quota_cols(db);
	if ((rc = sqlite3_prepare_v2(db, quota_cols ? lookup_sql :
	    lookup_old_sql, -1, lookup_r, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(db, quota_cols ? all_sql : all_old_sql,
	    -1, all_r, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(db, caps_sql, -1, caps_r,
	    NULL)) != SQLITE_OK)
		goto fail;
	*db_r = db;
	file_id_from_stat(id_r, &st);
	return 0;
fail:
	(void)sq_fail(db, rc, path, err, errsize);
	saved = errno;
	sqlite3_finalize(*lookup_r);
	sqlite3_finalize(*all_r);
	sqlite3_finalize(*caps_r);
	*lookup_r = *all_r = *caps_r = NULL;
	sqlite3_close(db);
	errno = saved;
	return -1;
}

static void
reader_close(struct userdb_sqlite *sq)
{
	sqlite3_finalize(sq->q_lookup);
	sqlite3_finalize(sq->q_all);
	sqlite3_finalize(sq->q_caps);
	sqlite3_close(sq->db);
	sq->q_lookup = sq->q_all = sq->q_caps = NULL;
	sq->db = NULL;
}

static void
rec_wipe(struct userdb_sqlite *sq)
{
	explicit_bzero(&sq->rec, sizeof(sq->rec));
	explicit_bzero(sq->name, sizeof(sq->name));
	explicit_bzero(sq->password, sizeof(sq->password));
	explicit_bzero(sq->secret, sizeof(sq->secret));
}

int
usq_open(const char *path, struct userdb_sqlite **r, char *err,
    size_t errsize)
{
	struct userdb_sqlite *sq;
	int saved;

	*r = NULL;
	if ((sq = calloc(1, sizeof(*sq))) == NULL ||
	    (sq->path = strdup(path)) == NULL) {
		saved = errno;
		errf(err, errsize, "%s: %s", path, strerror(errno));
		free(sq);
		errno = saved;
		return -1;
	}
	if (reader_open(path, &sq->db, &sq->q_lookup, &sq->q_all,
	    &sq->q_caps, &sq->id, err, errsize) == -1) {
		saved = errno;
		free(sq->path);
		free(sq);
		errno = saved;
		return -1;
	}
	sq->quota_cols = has_quota_cols(sq->db);
	*r = sq;
	return 0;
}

int
usq_refresh(struct userdb_sqlite *sq, char *err, size_t errsize)
{
	sqlite3 *db;
	sqlite3_stmt *ql, *qa, *qc;
	struct file_id cur, fresh;
	struct stat st;

	memset(&cur, 0, sizeof(cur));
	if (stat(sq->path, &st) == -1)
		cur.err = errno != 0 ? errno : EIO;
	else
		file_id_from_stat(&cur, &st);
	if (cur.err == 0 && file_id_equal(&cur, &sq->id))
		return 0;
	if (sq->have_bad && file_id_equal(&cur, &sq->bad_id))
		return 0;	/* reported already */
	if (cur.err != 0) {
		errf(err, errsize, "%s: %s (keeping the database opened "
		    "before)", sq->path, strerror(cur.err));
		sq->bad_id = cur;
		sq->have_bad = true;
		return -1;
	}
	rec_wipe(sq);
	sq->caps_valid = false;
	sq->n_warned = 0;
	sq->have_bad = false;
	if (cur.dev == sq->id.dev && cur.ino == sq->id.ino &&
	    (sq->quota_cols || !has_quota_cols(sq->db))) {
		/* Written in place: the connection sees the new rows (a
		 * table that gained the quota columns is opened again, so
		 * that the queries read them). */
		sq->id = cur;
		return 0;
	}
	/* A new file at the path (restored, or moved into place). */
	if (reader_open(sq->path, &db, &ql, &qa, &qc, &fresh, err,
	    errsize) == -1) {
		sq->bad_id = cur;
		sq->have_bad = true;
		return -1;
	}
	reader_close(sq);
	sq->db = db;
	sq->quota_cols = has_quota_cols(db);
	sq->q_lookup = ql;
	sq->q_all = qa;
	sq->q_caps = qc;
	sq->id = fresh;
	return 0;
}

/* The text of a TEXT column (NULL if NULL), its length in *n_r; false
 * if the column holds another type or a NUL. */
static bool
col_text(sqlite3_stmt *st, int col, const char **s_r, size_t *n_r)
{
	*s_r = NULL;
	*n_r = 0;
	switch (sqlite3_column_type(st, col)) {
	case SQLITE_NULL:
		return true;
	case SQLITE_TEXT:
		*s_r = (const char *)sqlite3_column_text(st, col);
		*n_r = (size_t)sqlite3_column_bytes(st, col);
		return *s_r != NULL && memchr(*s_r, '\0', *n_r) == NULL;
	default:
		return false;
	}
}

/* An INTEGER column: -2 for NULL (in *v_r), else its value; false if
 * the column holds another type. */
static bool
col_int(sqlite3_stmt *st, int col, bool *null_r, int64_t *v_r)
{
	*null_r = false;
	*v_r = 0;
	switch (sqlite3_column_type(st, col)) {
	case SQLITE_NULL:
		*null_r = true;
		return true;
	case SQLITE_INTEGER:
		*v_r = sqlite3_column_int64(st, col);
		return true;
	default:
		return false;
	}
}

/*
 * Fills sq->rec from the row st is on.  0, or -1 with *why_r set (the
 * record wiped).  The name is copied first so that a bad row can be
 * reported by it.
 */
static int
row_fill(struct userdb_sqlite *sq, sqlite3_stmt *st, const char **why_r)
{
	struct user_rec *u = &sq->rec;
	const char *s, *plain;
	size_t n;
	int64_t v;
	bool null;

	rec_wipe(sq);
	if (!col_text(st, COL_NAME, &s, &n) || s == NULL ||
	    n > MAX_USERNAME_LEN) {
		*why_r = "bad name";
		goto bad;
	}
	memcpy(sq->name, s, n);
	sq->name[n] = '\0';
	u->name = sq->name;
	if (!username_valid(sq->name)) {
		*why_r = "invalid user name";
		goto bad;
	}
	if (!col_text(st, COL_PASSWORD, &s, &n) || n >= sizeof(sq->password)) {
		*why_r = "password is not text";
		goto bad;
	}
	if (s != NULL) {
		memcpy(sq->password, s, n);
		sq->password[n] = '\0';
		u->password = sq->password;
		if (!pw_stored_valid(u->password)) {
			*why_r = "bad password (want {SCHEME}hash)";
			goto bad;
		}
	}
	if (!col_text(st, COL_SCRAM1, &s, &n) || (s != NULL &&
	    scram_cred_parse(s, n, false, &u->scram_sha1, why_r) == -1)) {
		if (s == NULL)
			*why_r = "scram_sha1 is not text";
		goto bad;
	}
	if (!col_text(st, COL_SCRAM256, &s, &n) || (s != NULL &&
	    scram_cred_parse(s, n, true, &u->scram_sha256, why_r) == -1)) {
		if (s == NULL)
			*why_r = "scram_sha256 is not text";
		goto bad;
	}
	if (!col_text(st, COL_SECRET, &s, &n) || (s != NULL &&
	    user_secret_decode(s, n, sq->secret, sizeof(sq->secret),
	    why_r) == -1)) {
		if (s == NULL)
			*why_r = "secret is not text";
		goto bad;
	}
	plain = pw_plain_secret(u->password);
	if (s != NULL && plain != NULL) {
		*why_r = "secret and a {PLAIN} password both given";
		goto bad;
	}
	if (s != NULL)
		u->secret = sq->secret;
	else if (plain != NULL)
		u->secret = u->password + (plain - u->password);
	if (!col_int(st, COL_LOGIN_DELAY, &null, &v) ||
	    (!null && (v < 0 || v > USER_MAX_LOGIN_DELAY))) {
		*why_r = "login_delay is not a number from 0 to 2592000";
		goto bad;
	}
	u->login_delay_s = null ? -1 : v;
	if (!col_int(st, COL_EXPIRE, &null, &v) ||
	    (!null && (v < -1 || v > USER_MAX_EXPIRE_DAYS))) {
		*why_r = "expire_days is not -1 or a number from 0 to 100000";
		goto bad;
	}
	u->expire_days = null ? USER_EXPIRE_DEFAULT : v;
	if (!col_int(st, COL_DISABLED, &null, &v) || null ||
	    (v != 0 && v != 1)) {
		*why_r = "disabled is not 0 or 1";
		goto bad;
	}
	u->disabled = v == 1;
	if (!col_int(st, COL_QUOTA_BYTES, &null, &v) ||
	    (!null && (v < 0 || (uint64_t)v > HARD_QUOTA_BYTES))) {
		*why_r = "quota_bytes is not a number from 0 to 2^50";
		goto bad;
	}
	u->quota_bytes = null ? 0 : (uint64_t)v;
	if (!col_int(st, COL_QUOTA_MESSAGES, &null, &v) ||
	    (!null && (v < 0 || (uint64_t)v > HARD_QUOTA_MESSAGES))) {
		*why_r = "quota_messages is not a number from 0 to 2^32-1";
		goto bad;
	}
	u->quota_messages = null ? 0 : (uint64_t)v;
	if (u->password == NULL && u->secret == NULL && !u->scram_sha1.set &&
	    !u->scram_sha256.set) {
		*why_r = "no credential (password, scram_sha1, scram_sha256 "
		    "and secret are all NULL)";
		goto bad;
	}
	return 0;
bad:
	/* Keep the name for the report; wipe everything else. */
	explicit_bzero(&sq->rec, sizeof(sq->rec));
	explicit_bzero(sq->password, sizeof(sq->password));
	explicit_bzero(sq->secret, sizeof(sq->secret));
	return -1;
}

static uint64_t
name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Logs a bad row once per version of the file: its name and why, never
 * a value. */
static void
report_bad(struct userdb_sqlite *sq, const char *why)
{
	char safe[MAX_USERNAME_LEN + 8];
	uint64_t h = name_hash(sq->name);
	size_t i;

	for (i = 0; i < sq->n_warned; i++)
		if (sq->warned[i] == h)
			return;
	if (sq->n_warned < WARNED_MAX)
		sq->warned[sq->n_warned++] = h;
	log_warnx("%s: user '%s': %s; the user cannot log in until the row "
	    "is fixed", sq->path, log_safe(safe, sizeof(safe), sq->name),
	    why);
	explicit_bzero(sq->name, sizeof(sq->name));
}

int
usq_lookup_checked(struct userdb_sqlite *sq, const char *name,
    const struct user_rec **u_r, char *err, size_t errsize)
{
	const char *why = NULL;
	int rc, found = -1;

	*u_r = NULL;
	rec_wipe(sq);
	if (sqlite3_bind_text(sq->q_lookup, 1, name, -1,
	    SQLITE_STATIC) != SQLITE_OK) {
		errf(err, errsize, "%s: %s", sq->path, sqlite3_errmsg(sq->db));
		goto out;
	}
	rc = sqlite3_step(sq->q_lookup);
	if (rc == SQLITE_ROW) {
		found = 0;
		if (row_fill(sq, sq->q_lookup, &why) == 0) {
			*u_r = &sq->rec;
			found = 1;
		} else
			report_bad(sq, why);
	} else if (rc == SQLITE_DONE)
		found = 0;
	else
		errf(err, errsize, "%s: lookup failed: %s", sq->path,
		    sqlite3_errmsg(sq->db));
out:
	(void)sqlite3_reset(sq->q_lookup);
	(void)sqlite3_clear_bindings(sq->q_lookup);
	return found;
}

const struct user_rec *
usq_lookup(struct userdb_sqlite *sq, const char *name)
{
	const struct user_rec *u;
	char err[512];

	if (usq_lookup_checked(sq, name, &u, err, sizeof(err)) == -1)
		log_warnx("%s", err);
	return u;
}

unsigned int
usq_caps(struct userdb_sqlite *sq)
{
	static const unsigned int bits[] = {
		USERDB_CAP_CRYPT, USERDB_CAP_SECRET, USERDB_CAP_SCRAM_SHA1,
		USERDB_CAP_SCRAM_SHA256,
	};
	unsigned int caps = 0;
	size_t i;
	int rc;

	if (sq->caps_valid)
		return sq->caps;
	rc = sqlite3_step(sq->q_caps);
	if (rc == SQLITE_ROW) {
		for (i = 0; i < N_ELEMENTS(bits); i++)
			if (sqlite3_column_int(sq->q_caps, (int)i) != 0)
				caps |= bits[i];
		sq->caps = caps;
		sq->caps_valid = true;
	} else
		log_warnx("%s: cannot read what the users can log in with: "
		    "%s", sq->path, sqlite3_errmsg(sq->db));
	(void)sqlite3_reset(sq->q_caps);
	return caps;
}

int
usq_foreach(struct userdb_sqlite *sq, int (*fn)(const struct user_rec *,
    void *), void *arg, char *err, size_t errsize)
{
	const char *why;
	int rc, ret = 0;

	while ((rc = sqlite3_step(sq->q_all)) == SQLITE_ROW) {
		if (row_fill(sq, sq->q_all, &why) == -1) {
			report_bad(sq, why);
			continue;
		}
		if ((ret = fn(&sq->rec, arg)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = sq_fail(sq->db, rc, sq->path, err, errsize);
	(void)sqlite3_reset(sq->q_all);
	rec_wipe(sq);
	return ret;
}

void
usq_free(struct userdb_sqlite **sqp)
{
	struct userdb_sqlite *sq = *sqp;

	if (sq == NULL)
		return;
	reader_close(sq);
	rec_wipe(sq);
	free(sq->path);
	free(sq);
	*sqp = NULL;
}

/* ---- writing --------------------------------------------------------- */

/* A database made before quotas gets their columns (inside the
 * writer's transaction); readers take either form. */
static int
add_quota_columns(sqlite3 *db)
{
	int rc;

	if (has_quota_cols(db))
		return SQLITE_OK;
	if ((rc = sqlite3_exec(db, "ALTER TABLE users ADD COLUMN quota_bytes "
	    "INTEGER", NULL, NULL, NULL)) != SQLITE_OK)
		return rc;
	return sqlite3_exec(db, "ALTER TABLE users ADD COLUMN quota_messages "
	    "INTEGER", NULL, NULL, NULL);
}

/*
 * A read-write connection for one change, inside BEGIN IMMEDIATE.  With
 * create, a missing file is made (0600, so the secrets it will hold are
 * never readable by others) with the users table; *created_r says so.
 * Without, a missing file is ENOENT with err unset.
 */
static int
writer_open(const char *path, bool create, sqlite3 **db_r, bool *created_r,
    char *err, size_t errsize)
{
	sqlite3 *db = NULL;
	struct stat st;
	int fd, rc, saved;

	*db_r = NULL;
	*created_r = false;
	if (create) {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
		    O_NOCTTY, 0600);
		if (fd != -1) {
			close(fd);
			*created_r = true;
		} else if (errno != EEXIST) {
			saved = errno;
			errf(err, errsize, "%s: %s", path, strerror(errno));
			errno = saved;
			return -1;
		}
	} else if (stat(path, &st) == -1) {
		saved = errno;
		if (errno != ENOENT)
			errf(err, errsize, "%s: %s", path,
			    strerror(errno));
		errno = saved;
		return -1;
	}
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	(void)sqlite3_extended_result_codes(db, 1);
	(void)sqlite3_busy_timeout(db, USERDB_LOCK_WAIT_MS);
	(void)sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	(void)sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	/*
	 * DELETE, never WAL: in WAL mode readers need to write the -shm
	 * file, and the auth process may only read this directory.
	 * FULL: a change is on disk when `postern user` says so.
	 * secure_delete: a replaced secret does not linger in free pages.
	 */
	if ((rc = sqlite3_exec(db, "PRAGMA journal_mode = DELETE", NULL, NULL,
	    NULL)) != SQLITE_OK ||
	    (rc = sqlite3_exec(db, "PRAGMA synchronous = FULL", NULL, NULL,
	    NULL)) != SQLITE_OK ||
	    (rc = sqlite3_exec(db, "PRAGMA secure_delete = ON", NULL, NULL,
	    NULL)) != SQLITE_OK ||
	    (rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL,
	    NULL)) != SQLITE_OK)
		goto fail;
	if (create && (rc = sqlite3_exec(db, schema_sql, NULL, NULL,
	    NULL)) != SQLITE_OK) {
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		goto fail;
	}
	if ((rc = add_quota_columns(db)) != SQLITE_OK) {
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		goto fail;
	}
	*db_r = db;
	return 0;
fail:
	(void)sq_fail(db, rc, path, err, errsize);
	saved = errno;
	sqlite3_close(db);
	if (*created_r)
		(void)unlink(path);
	*created_r = false;
	errno = saved;
	return -1;
}

/* Commits (0) or rolls back; closes.  -1 with err set if the commit
 * failed. */
static int
writer_close(sqlite3 *db, bool commit, bool created, const char *path,
    char *err, size_t errsize)
{
	int rc = SQLITE_OK, saved;

	if (commit)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (!commit || rc != SQLITE_OK) {
		if (rc != SQLITE_OK)
			(void)sq_fail(db, rc, path, err, errsize);
		saved = errno;
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close(db);
		if (created)
			(void)unlink(path);
		errno = saved;
		return -1;
	}
	sqlite3_close(db);
	return 0;
}

/* The column values of a record's credentials, as text to bind. */
struct cred_text {
	char		 s1[SCRAM_TEXT_MAX];
	char		 s256[SCRAM_TEXT_MAX];
	char		 secret[USER_SECRET_B64_SIZE];
	bool		 has_s1, has_s256, has_secret;
};

static int
cred_text_make(const struct user_rec *u, struct cred_text *t)
{
	memset(t, 0, sizeof(*t));
	if (u->scram_sha1.set) {
		if (scram_cred_format(&u->scram_sha1, t->s1,
		    sizeof(t->s1)) == -1)
			return -1;
		t->has_s1 = true;
	}
	if (u->scram_sha256.set) {
		if (scram_cred_format(&u->scram_sha256, t->s256,
		    sizeof(t->s256)) == -1)
			return -1;
		t->has_s256 = true;
	}
	/* The value of a {PLAIN} password is the secret already. */
	if (u->secret != NULL && pw_plain_secret(u->password) == NULL) {
		if (user_secret_encode(u->secret, t->secret,
		    sizeof(t->secret)) == -1)
			return -1;
		t->has_secret = true;
	}
	return 0;
}

static int
bind_opt_text(sqlite3_stmt *st, int i, const char *s, bool present)
{
	if (!present || s == NULL)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* Binds password, scram_sha1, scram_sha256, secret at first..first+3. */
static int
bind_creds(sqlite3_stmt *st, int first, const struct user_rec *u,
    const struct cred_text *t)
{
	int rc;

	if ((rc = bind_opt_text(st, first, u->password,
	    u->password != NULL)) != SQLITE_OK ||
	    (rc = bind_opt_text(st, first + 1, t->s1, t->has_s1)) !=
	    SQLITE_OK ||
	    (rc = bind_opt_text(st, first + 2, t->s256, t->has_s256)) !=
	    SQLITE_OK)
		return rc;
	return bind_opt_text(st, first + 3, t->secret, t->has_secret);
}

/* login_delay as stored: NULL for the site's. */
static int
bind_delay(sqlite3_stmt *st, int i, int64_t v)
{
	return v < 0 ? sqlite3_bind_null(st, i) : sqlite3_bind_int64(st, i, v);
}

/* expire_days as stored: NULL for the site's, -1 never. */
static int
bind_expire(sqlite3_stmt *st, int i, int64_t v)
{
	if (v == USER_EXPIRE_DEFAULT)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_int64(st, i, v == USER_EXPIRE_NEVER ? -1 : v);
}

/* A quota as stored: NULL for the site's (0). */
static int
bind_quota(sqlite3_stmt *st, int i, int64_t v)
{
	return v <= 0 ? sqlite3_bind_null(st, i) :
	    sqlite3_bind_int64(st, i, v);
}

/*
 * Runs one statement (sql, bound by bind_fn) on a fresh writer and
 * commits.  want_change: a statement that changes no row means no such
 * user (ENOENT).
 */
struct write_job {
	const char		*sql;
	const char		*name;
	const struct user_rec	*u;
	const struct cred_text	*t;
	int64_t			 login_delay_s;
	int64_t			 expire_days;
	int			 disabled;
	int64_t			 quota_bytes;
	int64_t			 quota_messages;
	bool			 create;
	enum { JOB_ADD, JOB_CREDS, JOB_OPTS, JOB_QUOTA, JOB_DEL } kind;
};

static int
job_bind(sqlite3_stmt *st, const struct write_job *j)
{
	int rc, i = 1;

	if ((rc = sqlite3_bind_text(st, i++, j->name, -1, SQLITE_STATIC)) !=
	    SQLITE_OK)
		return rc;
	switch (j->kind) {
	case JOB_ADD:
		if ((rc = bind_creds(st, i, j->u, j->t)) != SQLITE_OK ||
		    (rc = bind_delay(st, i + 4, j->u->login_delay_s)) !=
		    SQLITE_OK ||
		    (rc = bind_expire(st, i + 5, j->u->expire_days)) !=
		    SQLITE_OK ||
		    (rc = bind_quota(st, i + 7, (int64_t)j->u->quota_bytes)) !=
		    SQLITE_OK ||
		    (rc = bind_quota(st, i + 8,
		    (int64_t)j->u->quota_messages)) != SQLITE_OK)
			return rc;
		return sqlite3_bind_int(st, i + 6, j->u->disabled ? 1 : 0);
	case JOB_QUOTA:
		/* ?2 ?3: set quota_bytes and its value; ?4 ?5 messages. */
		if ((rc = sqlite3_bind_int(st, 2, j->quota_bytes !=
		    USERDB_KEEP)) != SQLITE_OK ||
		    (rc = bind_quota(st, 3, j->quota_bytes)) != SQLITE_OK ||
		    (rc = sqlite3_bind_int(st, 4, j->quota_messages !=
		    USERDB_KEEP)) != SQLITE_OK)
			return rc;
		return bind_quota(st, 5, j->quota_messages);
	case JOB_CREDS:
		return bind_creds(st, i, j->u, j->t);
	case JOB_OPTS:
		/* ?2 ?3: set login_delay and its value; ?4 ?5 expire; ?6 ?7
		 * disabled. */
		if ((rc = sqlite3_bind_int(st, 2, j->login_delay_s !=
		    USERDB_KEEP)) != SQLITE_OK ||
		    (rc = bind_delay(st, 3, j->login_delay_s == USERDB_KEEP ?
		    -1 : j->login_delay_s)) != SQLITE_OK ||
		    (rc = sqlite3_bind_int(st, 4, j->expire_days !=
		    USERDB_KEEP)) != SQLITE_OK ||
		    (rc = bind_expire(st, 5, j->expire_days == USERDB_KEEP ?
		    USER_EXPIRE_DEFAULT : j->expire_days)) != SQLITE_OK ||
		    (rc = sqlite3_bind_int(st, 6, j->disabled >= 0)) !=
		    SQLITE_OK)
			return rc;
		return sqlite3_bind_int(st, 7, j->disabled > 0);
	case JOB_DEL:
		return SQLITE_OK;
	}
	return SQLITE_MISUSE;
}

static int
job_run(const char *path, const struct write_job *j, char *err,
    size_t errsize)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	bool created;
	int rc, saved;

	if (writer_open(path, j->create, &db, &created, err, errsize) == -1) {
		if (errno == ENOENT && !j->create)
			errf(err, errsize, "no user '%s' in %s (the file "
			    "does not exist)", j->name, path);
		return -1;
	}
	if ((rc = sqlite3_prepare_v2(db, j->sql, -1, &st, NULL)) !=
	    SQLITE_OK || (rc = job_bind(st, j)) != SQLITE_OK)
		goto fail;
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
		errf(err, errsize, "user '%s' already exists in %s",
		    j->name, path);
		saved = EEXIST;
		goto fail_saved;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	if (j->kind != JOB_ADD && sqlite3_changes(db) == 0) {
		errf(err, errsize, "no user '%s' in %s", j->name, path);
		saved = ENOENT;
		goto fail_saved;
	}
	sqlite3_finalize(st);
	return writer_close(db, true, created, path, err, errsize);
fail:
	(void)sq_fail(db, rc, path, err, errsize);
	saved = errno;
fail_saved:
	sqlite3_finalize(st);
	(void)writer_close(db, false, created, path, NULL, 0);
	errno = saved;
	return -1;
}

int
usq_edit_add(const char *path, const struct user_rec *u, char *err,
    size_t errsize)
{
	struct write_job j;
	struct cred_text t;
	int rc, saved;

	if (cred_text_make(u, &t) == -1) {
		explicit_bzero(&t, sizeof(t));
		errf(err, errsize, "user '%s': a credential does not fit",
		    u->name);
		errno = EINVAL;
		return -1;
	}
	memset(&j, 0, sizeof(j));
	j.kind = JOB_ADD;
	j.sql = "INSERT INTO users (" COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, "
	    "?6, ?7, ?8, ?9, ?10)";
	j.name = u->name;
	j.u = u;
	j.t = &t;
	j.create = true;
	rc = job_run(path, &j, err, errsize);
	saved = errno;
	explicit_bzero(&t, sizeof(t));
	errno = saved;
	return rc;
}

int
usq_edit_set_credentials(const char *path, const char *name,
    const struct user_rec *creds, char *err, size_t errsize)
{
	struct write_job j;
	struct cred_text t;
	int rc, saved;

	if (cred_text_make(creds, &t) == -1) {
		explicit_bzero(&t, sizeof(t));
		errf(err, errsize, "user '%s': a credential does not fit",
		    name);
		errno = EINVAL;
		return -1;
	}
	memset(&j, 0, sizeof(j));
	j.kind = JOB_CREDS;
	j.sql = "UPDATE users SET password = ?2, scram_sha1 = ?3, "
	    "scram_sha256 = ?4, secret = ?5 WHERE name = ?1";
	j.name = name;
	j.u = creds;
	j.t = &t;
	rc = job_run(path, &j, err, errsize);
	saved = errno;
	explicit_bzero(&t, sizeof(t));
	errno = saved;
	return rc;
}

int
usq_edit_set_options(const char *path, const char *name,
    int64_t login_delay_s, int64_t expire_days, int disabled, char *err,
    size_t errsize)
{
	struct write_job j;

	memset(&j, 0, sizeof(j));
	j.kind = JOB_OPTS;
	/* Every column is set, to itself when it is kept, so that the
	 * statement changes the row, and changes() tells whether the user
	 * exists. */
	j.sql = "UPDATE users SET"
	    " login_delay = CASE WHEN ?2 THEN ?3 ELSE login_delay END,"
	    " expire_days = CASE WHEN ?4 THEN ?5 ELSE expire_days END,"
	    " disabled = CASE WHEN ?6 THEN ?7 ELSE disabled END"
	    " WHERE name = ?1";
	j.name = name;
	j.login_delay_s = login_delay_s;
	j.expire_days = expire_days;
	j.disabled = disabled;
	return job_run(path, &j, err, errsize);
}

int
usq_edit_set_quota(const char *path, const char *name, int64_t quota_bytes,
    int64_t quota_messages, char *err, size_t errsize)
{
	struct write_job j;

	memset(&j, 0, sizeof(j));
	j.kind = JOB_QUOTA;
	j.sql = "UPDATE users SET"
	    " quota_bytes = CASE WHEN ?2 THEN ?3 ELSE quota_bytes END,"
	    " quota_messages = CASE WHEN ?4 THEN ?5 ELSE quota_messages END"
	    " WHERE name = ?1";
	j.name = name;
	j.quota_bytes = quota_bytes;
	j.quota_messages = quota_messages;
	return job_run(path, &j, err, errsize);
}

int
usq_edit_delete(const char *path, const char *name, char *err,
    size_t errsize)
{
	struct write_job j;

	memset(&j, 0, sizeof(j));
	j.kind = JOB_DEL;
	j.sql = "DELETE FROM users WHERE name = ?1";
	j.name = name;
	return job_run(path, &j, err, errsize);
}
