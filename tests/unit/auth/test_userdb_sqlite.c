/*
 * test_userdb_sqlite.c: the SQLite user store: creating it through the
 * edit functions, lookups, caps, bad rows, missing and foreign files,
 * and what the read-only reader leaves alone.
 *
 * Rows the edit functions would never write are put in with the
 * sqlite3 library itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "auth/userdb.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/limits.h"

#define SQ	USERDB_SQLITE

#define H_SHA	"$6$A1cRxFiKeZ4XfY.1$0PkwWIhOU.xgg7Bk8QehJa3QZh16xu" \
		"bExdXwSuLSkbeWL2rwusVHjx5HkzrAL3WoluKCgeZL6BN//ZI4ri0Q0/"
/* RFC 5802 and RFC 7677 examples ("pencil", i=4096). */
#define S1	"4096,QSXCR+Q6sek8bf92,6dlGYMOdZcOPutkcNY8U2g7vK9Y=," \
		"D+CSWLOshSulAsxiupA+qs2/fTE="
#define S256	"4096,W22ZaJ0SNY7soEsUEjb6gQ==," \
		"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=," \
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static char tmpdir[] = "/tmp/test_userdb_sqlite.XXXXXX";

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static int
group_setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* tmpdir/name in p (size 512). */
static void
tpath(char *p, const char *name)
{
	assert_int_equal(str_fmt(p, 512, "%s/%s", tmpdir, name), 0);
}

/* A record with the given credentials and the site's options. */
static struct user_rec
rec(const char *name, const char *pw, const char *s1, const char *s256,
    const char *secret)
{
	struct user_rec u;
	const char *why;

	memset(&u, 0, sizeof(u));
	u.name = (char *)(uintptr_t)name;
	u.password = (char *)(uintptr_t)pw;
	u.secret = (char *)(uintptr_t)secret;
	u.login_delay_s = -1;
	u.expire_days = USER_EXPIRE_DEFAULT;
	if (s1 != NULL)
		assert_int_equal(scram_cred_parse(s1, strlen(s1), false,
		    &u.scram_sha1, &why), 0);
	if (s256 != NULL)
		assert_int_equal(scram_cred_parse(s256, strlen(s256), true,
		    &u.scram_sha256, &why), 0);
	return u;
}

static void
add(const char *path, const struct user_rec *u)
{
	char err[256];

	if (userdb_edit_add(SQ, path, u, err, sizeof(err)) != 0)
		fail_msg("add %s: %s", u->name, err);
}

/* Runs SQL on the file directly. */
static void
sql(const char *path, const char *text)
{
	sqlite3 *db;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, text, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", text, msg);
	sqlite3_close(db);
}

/* The journal mode the file is in. */
static const char *
journal_mode(const char *path)
{
	static char mode[32];
	sqlite3 *db;
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1,
	    &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(str_fmt(mode, sizeof(mode), "%s",
	    (const char *)sqlite3_column_text(st, 0)), 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return mode;
}

/* Whether path with suffix exists. */
static bool
sibling_exists(const char *path, const char *suffix)
{
	char p[600];

	assert_int_equal(str_fmt(p, sizeof(p), "%s%s", path, suffix), 0);
	return access(p, F_OK) == 0;
}

static void
put(const char *path, const char *content)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fwrite(content, 1, strlen(content), fp),
	    strlen(content));
	assert_int_equal(fclose(fp), 0);
}

static int
collect(const struct user_rec *u, void *arg)
{
	struct buf *b = arg;

	assert_int_equal(buf_addf(b, "%s%s,", u->name, u->disabled ? "-" :
	    ""), 0);
	return 0;
}

/* The names foreach hands out, "a,b-,c," (- disabled). */
static char *
names(struct userdb *db)
{
	static char out[1024];
	struct buf b;
	char err[256];

	buf_init(&b, sizeof(out) - 1);
	assert_int_equal(userdb_foreach(db, collect, &b, err, sizeof(err)), 0);
	assert_int_equal(str_fmt(out, sizeof(out), "%s",
	    buf_str(&b) != NULL ? buf_str(&b) : ""), 0);
	buf_clear(&b);
	return out;
}

static void
test_create_lookup(void **state)
{
	char path[512], err[256];
	const struct user_rec *u;
	struct user_rec r;
	struct userdb *db;
	struct stat st;

	(void)state;
	tpath(path, "users.db");
	r = rec("zoe", "{SHA512-CRYPT}" H_SHA, S1, S256, "s:e c\001");
	r.login_delay_s = 60;
	r.expire_days = USER_EXPIRE_NEVER;
	add(path, &r);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	r = rec("amy", "{PLAIN}tanstaaf", NULL, NULL, "tanstaaf");
	r.expire_days = 30;
	r.disabled = true;
	add(path, &r);
	r = rec("bob", NULL, NULL, S256, NULL);
	add(path, &r);

	assert_int_equal(userdb_open(path, SQ, &db, err, sizeof(err)), 0);
	u = userdb_lookup(db, "zoe");
	assert_non_null(u);
	assert_string_equal(u->name, "zoe");
	assert_string_equal(u->password, "{SHA512-CRYPT}" H_SHA);
	assert_string_equal(u->secret, "s:e c\001");
	assert_true(u->scram_sha1.set);
	assert_string_equal(u->scram_sha1.stored_key,
	    "6dlGYMOdZcOPutkcNY8U2g7vK9Y=");
	assert_true(u->scram_sha256.set);
	assert_int_equal(u->scram_sha256.iter, 4096);
	assert_int_equal(u->login_delay_s, 60);
	assert_int_equal(u->expire_days, USER_EXPIRE_NEVER);
	assert_false(u->disabled);
	assert_true(pw_verify(u->password, "sha-pass"));

	u = userdb_lookup(db, "amy");
	assert_non_null(u);
	assert_string_equal(u->secret, "tanstaaf");	/* from {PLAIN} */
	assert_int_equal(u->login_delay_s, -1);
	assert_int_equal(u->expire_days, 30);
	assert_true(u->disabled);
	u = userdb_lookup(db, "bob");
	assert_non_null(u);
	assert_null(u->password);
	assert_null(u->secret);
	assert_false(u->scram_sha1.set);
	assert_true(u->scram_sha256.set);
	assert_int_equal(u->expire_days, USER_EXPIRE_DEFAULT);

	assert_null(userdb_lookup(db, "Zoe"));
	assert_null(userdb_lookup(db, "nobody"));
	assert_null(userdb_lookup(db, "zoe' OR '1'='1"));
	assert_null(userdb_lookup(db, ""));
	assert_string_equal(names(db), "amy-,bob,zoe,");
	assert_int_equal(userdb_caps(db), USERDB_CAP_CRYPT |
	    USERDB_CAP_SECRET | USERDB_CAP_SCRAM_SHA1 |
	    USERDB_CAP_SCRAM_SHA256);
	userdb_free(&db);
	assert_null(db);

	/* The schema of userdb.h, and no WAL. */
	sql(path, "SELECT name, password, scram_sha1, scram_sha256, secret, "
	    "login_delay, expire_days, disabled FROM users");
	assert_string_equal(journal_mode(path), "delete");
}

static void
test_edit(void **state)
{
	char path[512], other[512], err[256];
	const struct user_rec *u;
	struct user_rec r;
	struct userdb *db;
	struct stat st;

	(void)state;
	tpath(path, "edit.db");
	r = rec("zoe", "{SHA512-CRYPT}" H_SHA, S1, S256, NULL);
	r.login_delay_s = 60;
	r.expire_days = USER_EXPIRE_NEVER;
	add(path, &r);
	r = rec("amy", NULL, S1, NULL, NULL);
	add(path, &r);

	/* Add twice. */
	r = rec("zoe", "{PLAIN}x", NULL, NULL, NULL);
	assert_int_equal(userdb_edit_add(SQ, path, &r, err, sizeof(err)), -1);
	assert_int_equal(errno, EEXIST);
	assert_non_null(strstr(err, "user 'zoe' already exists in "));

	/* New credentials; the options stay. */
	r = rec(NULL, "{PLAIN}x", NULL, NULL, NULL);
	assert_int_equal(userdb_edit_set_credentials(SQ, path, "zoe", &r, err,
	    sizeof(err)), 0);
	assert_int_equal(userdb_open(path, SQ, &db, err, sizeof(err)), 0);
	u = userdb_lookup(db, "zoe");
	assert_non_null(u);
	assert_string_equal(u->password, "{PLAIN}x");
	assert_string_equal(u->secret, "x");
	assert_false(u->scram_sha1.set);
	assert_false(u->scram_sha256.set);
	assert_int_equal(u->login_delay_s, 60);
	assert_int_equal(u->expire_days, USER_EXPIRE_NEVER);
	userdb_free(&db);

	/* Options: kept, set, back to the site's. */
	assert_int_equal(userdb_edit_set_options(SQ, path, "zoe", -1,
	    USERDB_KEEP, 1, err, sizeof(err)), 0);
	assert_int_equal(userdb_edit_set_options(SQ, path, "amy", 5, 7, -1,
	    err, sizeof(err)), 0);
	assert_int_equal(userdb_open(path, SQ, &db, err, sizeof(err)), 0);
	u = userdb_lookup(db, "zoe");
	assert_non_null(u);
	assert_int_equal(u->login_delay_s, -1);
	assert_int_equal(u->expire_days, USER_EXPIRE_NEVER);
	assert_true(u->disabled);
	u = userdb_lookup(db, "amy");
	assert_non_null(u);
	assert_int_equal(u->login_delay_s, 5);
	assert_int_equal(u->expire_days, 7);
	assert_false(u->disabled);
	userdb_free(&db);
	assert_int_equal(userdb_edit_set_options(SQ, path, "amy", USERDB_KEEP,
	    USER_EXPIRE_DEFAULT, 0, err, sizeof(err)), 0);
	assert_int_equal(userdb_edit_set_options(SQ, path, "amy", USERDB_KEEP,
	    USERDB_KEEP, -1, err, sizeof(err)), 0);
	assert_int_equal(userdb_open(path, SQ, &db, err, sizeof(err)), 0);
	u = userdb_lookup(db, "amy");
	assert_int_equal(u->login_delay_s, 5);
	assert_int_equal(u->expire_days, USER_EXPIRE_DEFAULT);
	userdb_free(&db);

	/* No such user. */
	assert_int_equal(userdb_edit_set_options(SQ, path, "nobody", 1,
	    USERDB_KEEP, -1, err, sizeof(err)), -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(err, "no user 'nobody' in "));
	assert_int_equal(userdb_edit_set_credentials(SQ, path, "nobody", &r,
	    err, sizeof(err)), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(userdb_edit_delete(SQ, path, "amy", err,
	    sizeof(err)), 0);
	assert_int_equal(userdb_edit_delete(SQ, path, "amy", err,
	    sizeof(err)), -1);
	assert_int_equal(errno, ENOENT);

	/* Refused before the store is touched. */
	r = rec("bad", NULL, NULL, NULL, NULL);
	assert_int_equal(userdb_edit_add(SQ, path, &r, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(err, "no credential"));
	r = rec("a b", "{PLAIN}x", NULL, NULL, NULL);
	assert_int_equal(userdb_edit_add(SQ, path, &r, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);

	/* No file: only add creates one. */
	tpath(other, "none.db");
	assert_int_equal(userdb_edit_delete(SQ, other, "zoe", err,
	    sizeof(err)), -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(err, "(the file does not exist)"));
	assert_int_equal(userdb_edit_set_options(SQ, other, "zoe", 1,
	    USERDB_KEEP, -1, err, sizeof(err)), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(stat(other, &st), -1);
	r = rec("bad", NULL, NULL, NULL, NULL);
	assert_int_equal(userdb_edit_add(SQ, other, &r, err, sizeof(err)), -1);
	assert_int_equal(stat(other, &st), -1);

	/* Not an SQLite file, or not ours: refused, left alone. */
	tpath(other, "text.db");
	put(other, "alice:{PLAIN}x\n");
	r = rec("zed", "{PLAIN}z", NULL, NULL, NULL);
	assert_int_equal(userdb_edit_add(SQ, other, &r, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(err, "not an SQLite database"));
	assert_int_equal(stat(other, &st), 0);
	assert_int_equal(st.st_size, strlen("alice:{PLAIN}x\n"));
	tpath(other, "foreign.db");
	sql(other, "CREATE TABLE t (x)");
	assert_int_equal(userdb_edit_delete(SQ, other, "zed", err,
	    sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(err, "not a Postern user database"));

	/* A database someone put in WAL mode goes back to DELETE. */
	sql(path, "PRAGMA journal_mode = WAL");
	assert_string_equal(journal_mode(path), "wal");
	r = rec("wal", "{PLAIN}w", NULL, NULL, NULL);
	add(path, &r);
	assert_string_equal(journal_mode(path), "delete");
	assert_false(sibling_exists(path, "-wal"));
}

static void
test_bad_rows(void **state)
{
	char path[512], logp[512], err[256];
	struct userdb *db;
	struct user_rec r;
	char *log;
	size_t i;
	int fd, saved;
	static const char *const bad[] = {
		"badscram", "badsecret", "nulsecret", "baddelay", "textdelay",
		"bigexpire", "expire2", "disabled2", "nocred", "badpw",
		"intpw", "blobpw", "plainsecret", "bad name", "negquota",
		"bigquota", "textquota",
	};

	(void)state;
	tpath(path, "bad.db");
	tpath(logp, "bad.log");
	r = rec("good", "{PLAIN}g", NULL, NULL, NULL);
	add(path, &r);
	sql(path,
	    "INSERT INTO users (name, password, scram_sha1, scram_sha256, "
	    "secret, login_delay, expire_days, disabled) VALUES "
	    "('badscram', NULL, '4096,abc', NULL, NULL, NULL, NULL, 0),"
	    "('badsecret', NULL, NULL, NULL, 'YR==', NULL, NULL, 0),"
	    "('nulsecret', NULL, NULL, NULL, 'AA==', NULL, NULL, 0),"
	    "('baddelay', '{PLAIN}x', NULL, NULL, NULL, -5, NULL, 0),"
	    "('textdelay', '{PLAIN}x', NULL, NULL, NULL, 'soon', NULL, 0),"
	    "('bigexpire', '{PLAIN}x', NULL, NULL, NULL, NULL, 100001, 0),"
	    "('expire2', '{PLAIN}x', NULL, NULL, NULL, NULL, -2, 0),"
	    "('disabled2', '{PLAIN}x', NULL, NULL, NULL, NULL, NULL, 2),"
	    "('nocred', NULL, NULL, NULL, NULL, NULL, NULL, 0),"
	    "('badpw', '{MD5}abc', NULL, NULL, NULL, NULL, NULL, 0),"
	    "('intpw', 12345, NULL, NULL, NULL, NULL, NULL, 0),"
	    "('blobpw', x'7b504c41494e7d78', NULL, NULL, NULL, NULL, NULL, 0),"
	    "('plainsecret', '{PLAIN}x', NULL, NULL, 'eA==', NULL, NULL, 0),"
	    "('bad name', '{PLAIN}x', NULL, NULL, NULL, NULL, NULL, 0)");
	sql(path,
	    "INSERT INTO users (name, password, quota_bytes, quota_messages) "
	    "VALUES ('negquota', '{PLAIN}x', -1, NULL),"
	    "('bigquota', '{PLAIN}x', NULL, 4294967296),"
	    "('textquota', '{PLAIN}x', 'lots', NULL)");
	assert_int_equal(userdb_open(path, SQ, &db, err, sizeof(err)), 0);

	/* Reported on stderr (log_warnx), once each. */
	fflush(stderr);
	saved = dup(2);
	fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0 && saved >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	close(fd);
	for (i = 0; i < N_ELEMENTS(bad); i++) {
		if (userdb_lookup(db, bad[i]) != NULL)
			fail_msg("bad row '%s' found", bad[i]);
		assert_null(userdb_lookup(db, bad[i]));
	}
	assert_non_null(userdb_lookup(db, "good"));
	assert_string_equal(names(db), "good,");
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	userdb_free(&db);

	log = NULL;
	{
		struct buf b;

		buf_init(&b, 1 << 20);
		assert_int_equal(read_file(logp, 1 << 20, &b), 0);
		log = strdup(buf_str(&b) != NULL ? buf_str(&b) : "");
		buf_clear(&b);
	}
	for (i = 0; i < N_ELEMENTS(bad); i++) {
		char want[64];
		const char *p;

		assert_int_equal(str_fmt(want, sizeof(want), "user '%s': ",
		    bad[i]), 0);
		p = strstr(log, want);
		if (p == NULL)
			fail_msg("'%s' not reported: %s", bad[i], log);
		if (strstr(p + 1, want) != NULL)
			fail_msg("'%s' reported twice: %s", bad[i], log);
	}
	/* Names and reasons only, never a value. */
	assert_null(strstr(log, "YR=="));
	assert_null(strstr(log, "{MD5}"));
	assert_null(strstr(log, "12345"));
	assert_non_null(strstr(log, "the user cannot log in"));
	free(log);
}

static void
test_open_errors(void **state)
{
	char path[512], err[256];
	struct userdb *db;

	(void)state;
	tpath(path, "missing.db");
	db = (struct userdb *)(uintptr_t)1;
	assert_int_equal(userdb_open(path, SQ, &db, err, sizeof(err)), -1);
	assert_null(db);
	assert_int_equal(errno, ENOENT);
	assert_memory_equal(err, path, strlen(path));
	assert_non_null(strstr(err, "No such file"));

	tpath(path, "text");
	put(path, "alice:{PLAIN}x\n");
	assert_int_equal(userdb_open(path, SQ, &db, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(err, "not an SQLite database"));

	tpath(path, "empty.db");
	put(path, "");
	assert_int_equal(userdb_open(path, SQ, &db, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(err, "not a Postern user database (no such "
	    "table: users)"));

	tpath(path, "short.db");
	sql(path, "CREATE TABLE users (name TEXT PRIMARY KEY, password TEXT)");
	assert_int_equal(userdb_open(path, SQ, &db, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(err, "no such column"));

	assert_int_equal(userdb_open(tmpdir, SQ, &db, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(err, "not a regular file"));

	if (geteuid() != 0) {
		tpath(path, "users.db");
		assert_int_equal(chmod(path, 0), 0);
		assert_int_equal(userdb_open(path, SQ, &db, err, sizeof(err)),
		    -1);
		assert_int_equal(errno, EACCES);
		assert_int_equal(chmod(path, 0600), 0);
	}
}

static void
test_readonly_refresh(void **state)
{
	char path[512], next[512], err[256];
	struct user_rec r;
	struct userdb *db;
	struct stat before, after;
	sqlite3 *w;

	(void)state;
	tpath(path, "ro.db");
	r = rec("alice", "{SHA512-CRYPT}" H_SHA, NULL, NULL, NULL);
	add(path, &r);
	assert_int_equal(userdb_open(path, SQ, &db, err, sizeof(err)), 0);
	assert_int_equal(userdb_caps(db), USERDB_CAP_CRYPT);

	/* Reading writes nothing: the file, no journal, no WAL files. */
	assert_int_equal(stat(path, &before), 0);
	assert_non_null(userdb_lookup(db, "alice"));
	assert_null(userdb_lookup(db, "bob"));
	assert_string_equal(names(db), "alice,");
	assert_int_equal(userdb_refresh(db, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(after.st_size, before.st_size);
	assert_int_equal(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
	assert_int_equal(after.st_ino, before.st_ino);
	assert_false(sibling_exists(path, "-journal"));
	assert_false(sibling_exists(path, "-wal"));
	assert_false(sibling_exists(path, "-shm"));

	/* A reader holds no lock between lookups: writers get through, and
	 * the next lookup sees their rows. */
	r = rec("bob", NULL, NULL, S256, NULL);
	add(path, &r);
	assert_non_null(userdb_lookup(db, "bob"));
	/* The caps are cached until refresh notices the change. */
	assert_int_equal(userdb_caps(db), USERDB_CAP_CRYPT);
	assert_int_equal(userdb_refresh(db, err, sizeof(err)), 0);
	assert_int_equal(userdb_caps(db), USERDB_CAP_CRYPT |
	    USERDB_CAP_SCRAM_SHA256);
	r = rec("carol", NULL, NULL, NULL, "c");
	add(path, &r);
	assert_int_equal(userdb_refresh(db, err, sizeof(err)), 0);
	assert_int_equal(userdb_caps(db), USERDB_CAP_CRYPT |
	    USERDB_CAP_SECRET | USERDB_CAP_SCRAM_SHA256);
	assert_int_equal(userdb_edit_set_options(SQ, path, "carol",
	    USERDB_KEEP, USERDB_KEEP, 1, err, sizeof(err)), 0);
	assert_int_equal(userdb_refresh(db, err, sizeof(err)), 0);
	assert_int_equal(userdb_caps(db), USERDB_CAP_CRYPT |
	    USERDB_CAP_SCRAM_SHA256);

	/* A writer that holds the lock: the lookup gives up after about a
	 * second (logged) instead of hanging the auth process. */
	assert_int_equal(sqlite3_open(path, &w), SQLITE_OK);
	assert_int_equal(sqlite3_exec(w, "BEGIN EXCLUSIVE", NULL, NULL, NULL),
	    SQLITE_OK);
	assert_null(userdb_lookup(db, "alice"));
	assert_int_equal(sqlite3_exec(w, "ROLLBACK", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(w);
	assert_non_null(userdb_lookup(db, "alice"));

	/* A new file moved into place is opened. */
	tpath(next, "ro.db.new");
	r = rec("dave", "{PLAIN}d", NULL, NULL, NULL);
	add(next, &r);
	assert_int_equal(rename(next, path), 0);
	assert_int_equal(userdb_refresh(db, err, sizeof(err)), 0);
	assert_null(userdb_lookup(db, "alice"));
	assert_non_null(userdb_lookup(db, "dave"));
	assert_int_equal(userdb_caps(db), USERDB_CAP_CRYPT |
	    USERDB_CAP_SECRET);

	/* Gone, or replaced by garbage: reported once, the open database
	 * keeps serving. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(userdb_refresh(db, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(userdb_refresh(db, err, sizeof(err)), 0);
	assert_non_null(userdb_lookup(db, "dave"));
	put(path, "not a database\n");
	assert_int_equal(userdb_refresh(db, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not an SQLite database"));
	assert_int_equal(userdb_refresh(db, err, sizeof(err)), 0);
	assert_non_null(userdb_lookup(db, "dave"));
	userdb_free(&db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_lookup),
		cmocka_unit_test(test_edit),
		cmocka_unit_test(test_bad_rows),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_readonly_refresh),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
