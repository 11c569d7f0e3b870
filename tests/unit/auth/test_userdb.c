/*
 * test_userdb.c: the passwd-file (loading, lookups, reloading, editing),
 * password schemes, user names and APOP.
 *
 * Each test works in its own files under one temporary directory.
 * Hashing tests are few on purpose: a yescrypt hash costs ~20 ms.
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

#include "auth/userdb.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/limits.h"

/* Hashes made once with libxcrypt; the passwords are in the names. */
#define H_YES	"$y$j9T$L7pbD7zvJ7jCnQJcqVq/6/$" \
		"liQZj2xUIYqdll/Uu/t63TfhMXl8cAwTfhKU5rx1SB8"
#define H_SHA	"$6$A1cRxFiKeZ4XfY.1$0PkwWIhOU.xgg7Bk8QehJa3QZh16xu" \
		"bExdXwSuLSkbeWL2rwusVHjx5HkzrAL3WoluKCgeZL6BN//ZI4ri0Q0/"
#define H_BLF	"$2b$05$PIDNmhPUJcVvj/0SaSAawucxA" \
		"iN6b23MUAzNkXxx4vdtWIjxfeRS2"
#define H_MD5	"$1$AaUtUH8d$6S.aY3worz2EjYlUkKXLY."
#define H_DES	"abltkxdOx9si."

static char tmpdir[] = "/tmp/test_userdb.XXXXXX";

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

/* tmpdir/name, in a static buffer (one at a time). */
static const char *
tpath(const char *name)
{
	static char p[512];

	assert_int_equal(str_fmt(p, sizeof(p), "%s/%s", tmpdir, name), 0);
	return p;
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

/* Replaces path by a new file (a new inode), as editors and mv do. */
static void
replace(const char *path, const char *content)
{
	char tmp[600];

	assert_int_equal(str_fmt(tmp, sizeof(tmp), "%s.new", path), 0);
	put(tmp, content);
	assert_int_equal(rename(tmp, path), 0);
}

static char *
slurp(const char *path)
{
	struct buf b;
	char *s;

	buf_init(&b, 1 << 20);
	if (read_file(path, 1 << 20, &b) == -1)
		return NULL;
	s = strdup(buf_str(&b) != NULL ? buf_str(&b) : "");
	buf_clear(&b);
	return s;
}

static void
assert_file(const char *path, const char *want)
{
	char *got = slurp(path);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

/* Moves the file's mtime one second on. */
static void
later(const char *path)
{
	struct timespec ts[2];
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	ts[0] = st.st_atim;
	ts[1] = st.st_mtim;
	ts[1].tv_sec++;
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

#define PF	USERDB_PASSWD_FILE

static bool
has_secret(struct userdb *db)
{
	return (userdb_caps(db) & USERDB_CAP_SECRET) != 0;
}

static int
count_one(const struct user_rec *u, void *arg)
{
	(void)u;
	(*(size_t *)arg)++;
	return 0;
}

static size_t
count_users(struct userdb *db)
{
	char err[256];
	size_t n = 0;

	assert_int_equal(userdb_foreach(db, count_one, &n, err, sizeof(err)),
	    0);
	return n;
}

struct nth {
	size_t		 i;
	char		 name[MAX_USERNAME_LEN + 1];
};

static int
nth_one(const struct user_rec *u, void *arg)
{
	struct nth *w = arg;

	if (w->i-- > 0)
		return 0;
	memcpy(w->name, u->name, strlen(u->name) + 1);
	return 1;
}

/* The name of the i-th user in file order (a static copy), or NULL. */
static const char *
nth_name(struct userdb *db, size_t i)
{
	static struct nth w;
	char err[256];

	w.i = i;
	return userdb_foreach(db, nth_one, &w, err, sizeof(err)) == 1 ?
	    w.name : NULL;
}

/* A record with only a password field and the site's options. */
static struct user_rec
pw_rec(const char *name, const char *field)
{
	struct user_rec u;

	memset(&u, 0, sizeof(u));
	u.name = (char *)(uintptr_t)name;
	u.password = (char *)(uintptr_t)field;
	u.login_delay_s = -1;
	u.expire_days = USER_EXPIRE_DEFAULT;
	return u;
}

static int
add_pw(const char *path, const char *name, const char *field, char *err,
    size_t errsize)
{
	struct user_rec u = pw_rec(name, field);

	return userdb_edit_add(PF, path, &u, err, errsize);
}

static int
set_pw(const char *path, const char *name, const char *field, char *err,
    size_t errsize)
{
	struct user_rec u = pw_rec(NULL, field);

	return userdb_edit_set_credentials(PF, path, name, &u, err, errsize);
}

static int
del_user(const char *path, const char *name, char *err, size_t errsize)
{
	return userdb_edit_delete(PF, path, name, err, errsize);
}

/* ---- loading -------------------------------------------------------- */

static void
test_load_good(void **state)
{
	const char *path = tpath("good");
	const struct user_rec *u;
	struct userdb *db;
	char err[256];

	(void)state;
	put(path,
	    "# users\n"
	    "\n"
	    "   \t\n"
	    "alice:{YESCRYPT}" H_YES "\n"
	    "bob:{sha512-crypt}" H_SHA ":1000:1000:Bob B.:/home/bob:/bin/sh\n"
	    "carol:{BLF-CRYPT}" H_BLF "::::::disabled=yes quota=1G\n"
	    "dave:" H_SHA "\n"
	    "erin@example.org:{PLAIN}secret with spaces:::::: "
	    "userdb_mail=maildir:~/Mail  disabled=no\n"
	    "frank:{CRYPT}" H_MD5 ":::\n"
	    "gina:{PLAIN}apop::::::disabled=on\n"
	    "hank:{crypt}" H_DES);	/* no final newline */
	err[0] = '\0';
	assert_int_equal(userdb_open(path, PF, &db, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(count_users(db), 8);
	assert_string_equal(nth_name(db, 0), "alice");
	assert_string_equal(nth_name(db, 7), "hank");
	assert_null(nth_name(db, 8));

	u = userdb_lookup(db, "alice");
	assert_non_null(u);
	assert_string_equal(u->password, "{YESCRYPT}" H_YES);
	assert_false(u->disabled);
	u = userdb_lookup(db, "bob");
	assert_non_null(u);
	assert_string_equal(u->password, "{sha512-crypt}" H_SHA);
	u = userdb_lookup(db, "carol");
	assert_non_null(u);
	assert_true(u->disabled);
	assert_string_equal(userdb_lookup(db, "dave")->password, H_SHA);
	u = userdb_lookup(db, "erin@example.org");
	assert_non_null(u);
	assert_false(u->disabled);
	assert_string_equal(pw_plain_secret(u->password), "secret with spaces");
	assert_true(userdb_lookup(db, "gina")->disabled);
	assert_string_equal(userdb_lookup(db, "hank")->password,
	    "{crypt}" H_DES);

	assert_null(userdb_lookup(db, "nobody"));
	assert_null(userdb_lookup(db, "Alice"));
	assert_null(userdb_lookup(db, "alic"));
	assert_null(userdb_lookup(db, ""));
	assert_null(userdb_lookup(db, NULL));
	assert_true(has_secret(db));	/* erin; gina is disabled */
	userdb_free(&db);
	assert_null(db);

	/* Only a disabled user has a plain secret: no APOP. */
	put(path, "gina:{PLAIN}apop::::::disabled=yes\n"
	    "alice:{YESCRYPT}" H_YES "\n");
	assert_int_equal(userdb_open(path, PF, &db, err, sizeof(err)), 0);
	assert_false(has_secret(db));
	userdb_free(&db);

	/* An empty file is a valid file with no users. */
	put(path, "");
	assert_int_equal(userdb_open(path, PF, &db, err, sizeof(err)), 0);
	assert_int_equal(count_users(db), 0);
	assert_null(userdb_lookup(db, "alice"));
	userdb_free(&db);
}

static void
test_load_bad(void **state)
{
	static const struct {
		const char	*text;
		const char	*where;		/* ":LINE: " */
		const char	*why;		/* part of the reason */
	} cases[] = {
		{ "bad name:{PLAIN}x\n", ":1: ", "invalid user name" },
		{ "ok:{PLAIN}x\n.dot:{PLAIN}x\n", ":2: ", "invalid user name" },
		{ "-dash:{PLAIN}x\n", ":1: ", "invalid user name" },
		{ "a..b:{PLAIN}x\n", ":1: ", "invalid user name" },
		{ ":{PLAIN}x\n", ":1: ", "invalid user name" },
		{ "#c\nbob:{PLAIN}x\n\nbob:{PLAIN}y\n", ":4: ",
		    "duplicate user 'bob' (first on line 2)" },
		{ "bob:\n", ":1: ", "empty password field" },
		{ "a:{PLAIN}x\nbob::1:1\n", ":2: ", "empty password field" },
		{ "bob\n", ":1: ", "no ':'" },
		{ "bob:{PLAIN}x::::::disabled\n", ":1: ",
		    "malformed extra field 'disabled'" },
		{ "bob:{PLAIN}x::::::a=1 =2\n", ":1: ",
		    "malformed extra field '=2'" },
		{ "bob:{PLAIN}x::::::disabled=maybe\n", ":1: ",
		    "disabled= wants yes or no" },
		{ "bob:{PLAIN}x:disabled=yes\n", ":1: ", "uid field" },
		{ "bob:{PLAIN}x:1:g\n", ":1: ", "gid field" },
		{ "bob:{PLAIN}x\r\n", ":1: ", "carriage return" },
		{ "a:{PLAIN}x\nbob:{PLAIN}x\ty\n", ":2: ", "bad password" },
		{ "bob:{PLAIN}x\001\n", ":1: ", "control character" },
		{ "bob:{SSHA}abc\n", ":1: ", "bad password field" },
		{ "bob:{PLAIN}\n", ":1: ", "bad password field" },
		{ "bob:{YESCRYPT}" H_SHA "\n", ":1: ", "bad password field" },
		{ "bob:{YESCRYPT}$y$\n", ":1: ", "bad password field" },
		{ "bob:plaintext\n", ":1: ", "bad password field" },
		{ "bob:{PLAIN\n", ":1: ", "bad password field" },
		{ "a:{PLAIN}x\nb:{PLAIN}x\nc:*\n", ":3: ",
		    "bad password field" },
	};
	const char *path = tpath("bad");
	struct userdb *db;
	char err[512], want[64];
	size_t i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		put(path, cases[i].text);
		err[0] = '\0';
		db = (struct userdb *)(uintptr_t)1;	/* to be NULLed */
		if (userdb_open(path, PF, &db, err, sizeof(err)) != -1)
			fail_msg("case %zu accepted: %s", i, cases[i].text);
		assert_null(db);
		assert_int_equal(errno, EINVAL);
		assert_int_equal(str_fmt(want, sizeof(want), "%s%s", path,
		    cases[i].where), 0);
		if (strncmp(err, want, strlen(want)) != 0 ||
		    strstr(err, cases[i].why) == NULL)
			fail_msg("case %zu: got \"%s\", want \"%s...%s\"", i,
			    err, want, cases[i].why);
	}
}

static void
test_load_limits(void **state)
{
	const char *path = tpath("limits");
	struct userdb *db;
	char err[512], name[MAX_USERNAME_LEN + 2];
	struct buf b;
	FILE *fp;

	(void)state;
	/* The longest name loads; one more octet is refused. */
	memset(name, 'n', MAX_USERNAME_LEN);
	name[MAX_USERNAME_LEN] = '\0';
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "%s:{PLAIN}x\n", name);
	fclose(fp);
	assert_int_equal(userdb_open(path, PF, &db, err, sizeof(err)), 0);
	assert_non_null(userdb_lookup(db, name));
	userdb_free(&db);
	name[MAX_USERNAME_LEN] = 'n';
	name[MAX_USERNAME_LEN + 1] = '\0';
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "%s:{PLAIN}x\n", name);
	fclose(fp);
	assert_int_equal(userdb_open(path, PF, &db, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":1: invalid user name"));

	/* A line over USERDB_MAX_LINE, even a comment, is refused. */
	buf_init(&b, 1 << 20);
	assert_int_equal(buf_addstr(&b, "ok:{PLAIN}x\n#"), 0);
	while (b.len < USERDB_MAX_LINE + 20)
		assert_int_equal(buf_addc(&b, 'x'), 0);
	assert_int_equal(buf_addc(&b, '\n'), 0);
	put(path, buf_str(&b));
	buf_clear(&b);
	assert_int_equal(userdb_open(path, PF, &db, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2: line longer than"));

	/* Not there, not a file. */
	assert_int_equal(userdb_open(tpath("missing"), PF, &db, err,
	    sizeof(err)),
	    -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(err, "missing: "));
	assert_int_equal(userdb_open(tmpdir, PF, &db, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
}

/* 200,000 users: every one is found through the table. */
static void
test_lookup_many(void **state)
{
	const size_t n = 200000;
	const char *path = tpath("many");
	const struct user_rec *u;
	struct userdb *db;
	char err[256], name[32];
	size_t i;
	FILE *fp;

	(void)state;
	fp = fopen(path, "w");
	assert_non_null(fp);
	for (i = 0; i < n; i++)
		fprintf(fp, "user%zu:{PLAIN}pw%zu\n", i, i);
	fclose(fp);
	assert_int_equal(userdb_open(path, PF, &db, err, sizeof(err)), 0);
	assert_int_equal(count_users(db), n);
	for (i = 0; i < n; i += 7) {
		assert_int_equal(str_fmt(name, sizeof(name), "user%zu", i), 0);
		u = userdb_lookup(db, name);
		if (u == NULL || strcmp(u->name, name) != 0)
			fail_msg("%s not found", name);
	}
	assert_string_equal(pw_plain_secret(userdb_lookup(db,
	    "user199999")->password), "pw199999");
	assert_null(userdb_lookup(db, "user200000"));
	assert_null(userdb_lookup(db, "user"));
	userdb_free(&db);
}

static void
test_refresh(void **state)
{
	const char *path = tpath("refresh");
	const struct user_rec *u;
	struct userdb *db;
	char err[256];

	(void)state;
	put(path, "alice:{PLAIN}one\n");
	assert_int_equal(userdb_open(path, PF, &db, err, sizeof(err)), 0);
	assert_int_equal(userdb_refresh(db, err, sizeof(err)), 0);
	assert_string_equal(pw_plain_secret(userdb_lookup(db,
	    "alice")->password), "one");

	/* A new version is picked up. */
	replace(path, "alice:{PLAIN}two\nbob:{PLAIN}b\n");
	assert_int_equal(userdb_refresh(db, err, sizeof(err)), 0);
	u = userdb_lookup(db, "alice");
	assert_non_null(u);
	assert_string_equal(pw_plain_secret(u->password), "two");
	assert_non_null(userdb_lookup(db, "bob"));

	/* The same inode rewritten in place with the same size (and a
	 * later mtime: the clock may not have ticked since the rename). */
	put(path, "alice:{PLAIN}3wo\nbob:{PLAIN}b\n");
	later(path);
	assert_int_equal(userdb_refresh(db, err, sizeof(err)), 0);
	assert_string_equal(pw_plain_secret(userdb_lookup(db,
	    "alice")->password), "3wo");

	/* A bad version: reported once, the old users stay. */
	replace(path, "alice:{PLAIN}four\nalice:{PLAIN}x\n");
	err[0] = '\0';
	assert_int_equal(userdb_refresh(db, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2: duplicate user 'alice'"));
	assert_string_equal(pw_plain_secret(userdb_lookup(db,
	    "alice")->password), "3wo");
	assert_non_null(userdb_lookup(db, "bob"));
	assert_int_equal(userdb_refresh(db, err, sizeof(err)), 0);
	assert_string_equal(pw_plain_secret(userdb_lookup(db,
	    "alice")->password), "3wo");

	/* The file vanishes: same. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(userdb_refresh(db, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(userdb_refresh(db, err, sizeof(err)), 0);
	assert_non_null(userdb_lookup(db, "bob"));

	/* Fixed: loaded again. */
	put(path, "carol:{PLAIN}five\n");
	assert_int_equal(userdb_refresh(db, err, sizeof(err)), 0);
	assert_null(userdb_lookup(db, "alice"));
	assert_null(userdb_lookup(db, "bob"));
	assert_string_equal(pw_plain_secret(userdb_lookup(db,
	    "carol")->password), "five");
	assert_true(has_secret(db));
	userdb_free(&db);
}

/* ---- editing -------------------------------------------------------- */

#define ORIG \
	"# Postern users\n" \
	"alice:{PLAIN}a:1:2:Alice:/home/a:/bin/sh:quota=1G\n" \
	"\n" \
	"#bob:{PLAIN}commented out\n" \
	"carol:" H_SHA "::::::disabled=yes\n" \
	"   \n" \
	"dave:{YESCRYPT}" H_YES "\n"

static void
test_edit_add(void **state)
{
	const char *p;
	char path[512], err[256];
	struct userdb *db;
	struct stat st;

	(void)state;
	assert_int_equal(str_fmt(path, sizeof(path), "%s", tpath("edit-add")),
	    0);
	put(path, ORIG);
	assert_int_equal(add_pw(path, "erin", "{PLAIN}e", err,
	    sizeof(err)), 0);
	assert_file(path, ORIG "erin:{PLAIN}e\n");

	/* Adding an existing user fails and changes nothing. */
	assert_int_equal(add_pw(path, "alice", "{PLAIN}x", err,
	    sizeof(err)), -1);
	assert_int_equal(errno, EEXIST);
	assert_non_null(strstr(err, "user 'alice' already exists in "));
	assert_file(path, ORIG "erin:{PLAIN}e\n");

	/* A file without a final newline gets one before the new line. */
	put(path, "alice:{PLAIN}a");
	assert_int_equal(add_pw(path, "bob", "{BLF-CRYPT}" H_BLF, err,
	    sizeof(err)), 0);
	assert_file(path, "alice:{PLAIN}a\nbob:{BLF-CRYPT}" H_BLF "\n");
	assert_int_equal(userdb_open(path, PF, &db, err, sizeof(err)), 0);
	assert_int_equal(count_users(db), 2);
	userdb_free(&db);

	/* A new file is created 0600 (and its lock file too). */
	p = tpath("edit-new");
	assert_int_equal(add_pw(p, "zed", "{PLAIN}z", err,
	    sizeof(err)), 0);
	assert_file(p, "zed:{PLAIN}z\n");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(tpath("edit-new.lock"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* An existing file keeps its mode. */
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(add_pw(path, "carl", "{PLAIN}c", err,
	    sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
}

static void
test_edit_set_delete(void **state)
{
	char path[512], err[256], lnk[512];
	struct stat st;

	(void)state;
	assert_int_equal(str_fmt(path, sizeof(path), "%s", tpath("edit-set")),
	    0);
	put(path, ORIG);
	assert_int_equal(set_pw(path, "alice",
	    "{SHA512-CRYPT}" H_SHA, err, sizeof(err)), 0);
	assert_file(path,
	    "# Postern users\n"
	    "alice:{SHA512-CRYPT}" H_SHA ":1:2:Alice:/home/a:/bin/sh:quota=1G\n"
	    "\n"
	    "#bob:{PLAIN}commented out\n"
	    "carol:" H_SHA "::::::disabled=yes\n"
	    "   \n"
	    "dave:{YESCRYPT}" H_YES "\n");
	/* The last line, password the last field. */
	assert_int_equal(set_pw(path, "dave", "{PLAIN}d",
	    err, sizeof(err)), 0);
	/* disabled stays. */
	assert_int_equal(set_pw(path, "carol", "{PLAIN}c",
	    err, sizeof(err)), 0);
	assert_file(path,
	    "# Postern users\n"
	    "alice:{SHA512-CRYPT}" H_SHA ":1:2:Alice:/home/a:/bin/sh:quota=1G\n"
	    "\n"
	    "#bob:{PLAIN}commented out\n"
	    "carol:{PLAIN}c::::::disabled=yes\n"
	    "   \n"
	    "dave:{PLAIN}d\n");

	/* No such user: the commented-out one does not count. */
	assert_int_equal(set_pw(path, "bob", "{PLAIN}b",
	    err, sizeof(err)), -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(err, "no user 'bob' in "));

	assert_int_equal(del_user(path, "carol", err, sizeof(err)),
	    0);
	assert_int_equal(del_user(path, "dave", err, sizeof(err)),
	    0);
	assert_file(path,
	    "# Postern users\n"
	    "alice:{SHA512-CRYPT}" H_SHA ":1:2:Alice:/home/a:/bin/sh:quota=1G\n"
	    "\n"
	    "#bob:{PLAIN}commented out\n"
	    "   \n");
	assert_int_equal(del_user(path, "dave", err, sizeof(err)),
	    -1);
	assert_int_equal(errno, ENOENT);

	/* The last line without a newline. */
	put(path, "a:{PLAIN}a\nb:{PLAIN}b");
	assert_int_equal(del_user(path, "b", err, sizeof(err)), 0);
	assert_file(path, "a:{PLAIN}a\n");
	assert_int_equal(del_user(path, "a", err, sizeof(err)), 0);
	assert_file(path, "");

	/* Through a symbolic link: the target changes, the link stays. */
	put(path, "a:{PLAIN}a\n");
	assert_int_equal(str_fmt(lnk, sizeof(lnk), "%s",
	    tpath("edit-link")), 0);
	assert_int_equal(symlink(path, lnk), 0);
	assert_int_equal(set_pw(lnk, "a", "{PLAIN}b", err,
	    sizeof(err)), 0);
	assert_int_equal(lstat(lnk, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_file(path, "a:{PLAIN}b\n");
}

static void
test_edit_errors(void **state)
{
	char path[512], err[256];

	(void)state;
	assert_int_equal(str_fmt(path, sizeof(path), "%s", tpath("edit-err")),
	    0);

	/* passwd and del on a file that does not exist. */
	assert_int_equal(set_pw(path, "a", "{PLAIN}a", err,
	    sizeof(err)), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(del_user(path, "a", err, sizeof(err)), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(access(path, F_OK), -1);

	put(path, ORIG);
	/* Bad names and fields never reach the file. */
	assert_int_equal(add_pw(path, "a:b", "{PLAIN}x", err,
	    sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(add_pw(path, "", "{PLAIN}x", err,
	    sizeof(err)), -1);
	assert_int_equal(add_pw(path, "x\nroot", "{PLAIN}x", err,
	    sizeof(err)), -1);
	assert_int_equal(add_pw(path, "x", "{PLAIN}x\nroot:{PLAIN}r",
	    err, sizeof(err)), -1);
	assert_int_equal(add_pw(path, "x", "{PLAIN}a:b", err,
	    sizeof(err)), -1);
	assert_int_equal(add_pw(path, "x", "", err, sizeof(err)), -1);
	assert_int_equal(set_pw(path, "alice", "{FOO}bar",
	    err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_file(path, ORIG);

	/* A file the server would refuse is not edited. */
	put(path, "a:{PLAIN}a\nbad line\n");
	assert_int_equal(add_pw(path, "b", "{PLAIN}b", err,
	    sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(err, ":2: "));
	assert_file(path, "a:{PLAIN}a\nbad line\n");
}

/* ---- credential forms ----------------------------------------------- */

/* RFC 5802 section 5 and RFC 7677 section 3: "pencil", i=4096. */
#define S1_SALT	"QSXCR+Q6sek8bf92"
#define S1_SK	"6dlGYMOdZcOPutkcNY8U2g7vK9Y="
#define S1_SVK	"D+CSWLOshSulAsxiupA+qs2/fTE="
#define S1	"4096," S1_SALT "," S1_SK "," S1_SVK
#define S256_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define S256_SK	"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
#define S256_SVK "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define S256	"4096," S256_SALT "," S256_SK "," S256_SVK

static void
test_load_forms(void **state)
{
	const char *path = tpath("forms");
	const struct user_rec *u;
	struct userdb *db;
	char err[256];

	(void)state;
	put(path,
	    "alice:{YESCRYPT}" H_YES "::::::scram-sha-1=" S1
	    " scram-sha-256=" S256 " quota=1G\n"
	    "bob:::::::scram-sha-256=" S256 "\n"
	    "carol:::::::secret=dGFuOnN0YSBhZgE= login_delay=300 "
	    "expire=never\n"
	    "dave:{PLAIN}tanstaaf::::::expire=30 disabled=no login_delay=0\n"
	    "erin:{SHA512-CRYPT}" H_SHA "::::::disabled=yes scram-sha-1=" S1
	    " secret=cGVuY2ls\n"
	    "frank:{PLAIN}x::::::userdb_x=a:b:c scram=1 secretx=2 expire=0\n");
	assert_int_equal(userdb_open(path, PF, &db, err, sizeof(err)), 0);
	assert_int_equal(count_users(db), 6);

	u = userdb_lookup(db, "alice");
	assert_non_null(u);
	assert_string_equal(u->password, "{YESCRYPT}" H_YES);
	assert_null(u->secret);
	assert_true(u->scram_sha1.set);
	assert_int_equal(u->scram_sha1.iter, 4096);
	assert_string_equal(u->scram_sha1.salt, S1_SALT);
	assert_string_equal(u->scram_sha1.stored_key, S1_SK);
	assert_string_equal(u->scram_sha1.server_key, S1_SVK);
	assert_true(u->scram_sha256.set);
	assert_string_equal(u->scram_sha256.salt, S256_SALT);
	assert_string_equal(u->scram_sha256.stored_key, S256_SK);
	assert_string_equal(u->scram_sha256.server_key, S256_SVK);
	assert_int_equal(u->login_delay_s, -1);
	assert_int_equal(u->expire_days, USER_EXPIRE_DEFAULT);
	assert_false(u->disabled);

	u = userdb_lookup(db, "bob");
	assert_non_null(u);
	assert_null(u->password);
	assert_null(u->secret);
	assert_false(u->scram_sha1.set);
	assert_true(u->scram_sha256.set);
	assert_int_equal(u->scram_sha256.iter, 4096);

	u = userdb_lookup(db, "carol");
	assert_non_null(u);
	assert_null(u->password);
	assert_string_equal(u->secret, "tan:sta af\001");
	assert_int_equal(u->login_delay_s, 300);
	assert_int_equal(u->expire_days, USER_EXPIRE_NEVER);

	u = userdb_lookup(db, "dave");
	assert_non_null(u);
	assert_string_equal(u->password, "{PLAIN}tanstaaf");
	assert_string_equal(u->secret, "tanstaaf");
	assert_int_equal(u->login_delay_s, 0);
	assert_int_equal(u->expire_days, 30);
	assert_false(u->disabled);

	u = userdb_lookup(db, "erin");
	assert_non_null(u);
	assert_true(u->disabled);
	assert_string_equal(u->secret, "pencil");
	assert_true(u->scram_sha1.set);
	assert_false(u->scram_sha256.set);

	/* Unknown keys are ignored, even ones that look like ours. */
	u = userdb_lookup(db, "frank");
	assert_non_null(u);
	assert_string_equal(u->secret, "x");
	assert_false(u->scram_sha1.set);
	assert_int_equal(u->expire_days, 0);
	assert_int_equal(userdb_caps(db), USERDB_CAP_CRYPT |
	    USERDB_CAP_SECRET | USERDB_CAP_SCRAM_SHA1 |
	    USERDB_CAP_SCRAM_SHA256);
	userdb_free(&db);

	/* The caps count enabled users only. */
	put(path, "bob:::::::scram-sha-256=" S256 "\n"
	    "erin:{SHA512-CRYPT}" H_SHA "::::::disabled=yes scram-sha-1=" S1
	    " secret=cGVuY2ls\n");
	assert_int_equal(userdb_open(path, PF, &db, err, sizeof(err)), 0);
	assert_int_equal(userdb_caps(db), USERDB_CAP_SCRAM_SHA256);
	userdb_free(&db);
	put(path, "carol:::::::secret=cGVuY2ls\n");
	assert_int_equal(userdb_open(path, PF, &db, err, sizeof(err)), 0);
	assert_int_equal(userdb_caps(db), USERDB_CAP_CRYPT |
	    USERDB_CAP_SECRET);
	userdb_free(&db);
	put(path, "alice:" H_SHA "\n");
	assert_int_equal(userdb_open(path, PF, &db, err, sizeof(err)), 0);
	assert_int_equal(userdb_caps(db), USERDB_CAP_CRYPT);
	userdb_free(&db);
	put(path, "");
	assert_int_equal(userdb_open(path, PF, &db, err, sizeof(err)), 0);
	assert_int_equal(userdb_caps(db), 0);
	userdb_free(&db);
}

static void
test_load_bad_forms(void **state)
{
	static const struct {
		const char	*extra;		/* after "a:PASS::::::" */
		const char	*pass;
		const char	*why;
	} cases[] = {
		{ "scram-sha-1=4095," S1_SALT "," S1_SK "," S1_SVK, "",
		    "scram-sha-1=: the iteration count" },
		{ "scram-sha-1=10000001," S1_SALT "," S1_SK "," S1_SVK, "",
		    "scram-sha-1=: the iteration count" },
		{ "scram-sha-1=+4096," S1_SALT "," S1_SK "," S1_SVK, "",
		    "the iteration count" },
		{ "scram-sha-1=4096," S1_SALT "," S1_SK, "",
		    "scram-sha-1=: want ITER,SALT,STOREDKEY,SERVERKEY" },
		{ "scram-sha-1=" S1 ",x", "", "want ITER,SALT" },
		{ "scram-sha-1=", "", "want ITER,SALT" },
		{ "scram-sha-1=4096,AAAAAAAAAA==," S1_SK "," S1_SVK, "",
		    "the salt must be base64 of 8 to 64 octets" },
		{ "scram-sha-1=4096,QSXCR+Q6sek8bf9," S1_SK "," S1_SVK, "",
		    "the salt must be" },
		{ "scram-sha-1=4096,," S1_SK "," S1_SVK, "", "the salt" },
		{ "scram-sha-1=4096," S256_SALT "," S256_SK "," S256_SVK, "",
		    "scram-sha-1=: the keys must be base64 of 20 octets" },
		{ "scram-sha-256=" S1, "",
		    "scram-sha-256=: the keys must be base64 of 32 octets" },
		{ "scram-sha-1=4096," S1_SALT "," S1_SK ",D+CSWLOshSulAsxiup"
		    "A+qs2/fTF=", "", "keys must be base64 of 20" },
		{ "scram-sha-1=" S1 " scram-sha-1=" S1, "",
		    "scram-sha-1= given twice" },
		{ "secret=YR==", "", "secret=: want base64" },
		{ "secret=cGVuY2l", "", "secret=: want base64" },
		{ "secret=cGVu Y2ls", "", "malformed extra field 'Y2ls'" },
		{ "secret=", "", "secret=: the secret is empty" },
		{ "secret=AA==", "", "secret=: the secret holds a NUL" },
		{ "secret=YWJj secret=YWJj", "", "secret= given twice" },
		{ "secret=YWJj", "{PLAIN}abc", "secret= and a {PLAIN} password "
		    "both given" },
		{ "login_delay=-1", "{PLAIN}x", "login_delay= wants seconds "
		    "from 0 to 2592000" },
		{ "login_delay=2592001", "{PLAIN}x", "login_delay= wants" },
		{ "login_delay=1x", "{PLAIN}x", "login_delay= wants" },
		{ "login_delay=", "{PLAIN}x", "login_delay= wants" },
		{ "login_delay=1 login_delay=1", "{PLAIN}x",
		    "login_delay= given twice" },
		{ "expire=100001", "{PLAIN}x", "expire= wants days from 0 to "
		    "100000, or never" },
		{ "expire=NEVER", "{PLAIN}x", "expire= wants" },
		{ "expire=-1", "{PLAIN}x", "expire= wants" },
		{ "expire=", "{PLAIN}x", "expire= wants" },
		{ "expire=1 expire=never", "{PLAIN}x", "expire= given twice" },
		{ "disabled=", "{PLAIN}x", "disabled= wants yes or no" },
		{ "disabled=yes disabled=no", "{PLAIN}x",
		    "disabled= given twice" },
		{ "quota_bytes=1x", "{PLAIN}x", "quota_bytes= wants octets" },
		{ "quota_bytes=2P", "{PLAIN}x", "quota_bytes= wants octets" },
		{ "quota_bytes=", "{PLAIN}x", "quota_bytes= wants octets" },
		{ "quota_messages=4294967296", "{PLAIN}x",
		    "quota_messages= wants a number from 0 to 4294967295" },
		{ "quota_messages=1k", "{PLAIN}x", "quota_messages= wants" },
		{ "quota_messages=1 quota_messages=2", "{PLAIN}x",
		    "quota_messages= given twice" },
		{ "quota=1G", "", "empty password field and no scram-sha-1=" },
		{ "disabled=yes login_delay=5", "", "empty password field" },
		{ "", "", "empty password field" },
	};
	const char *path = tpath("bad-forms");
	struct userdb *db;
	char text[1024], err[512], want[300];
	size_t i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		assert_int_equal(str_fmt(text, sizeof(text),
		    "ok:{PLAIN}x\na:%s::::::%s\n", cases[i].pass,
		    cases[i].extra), 0);
		put(path, text);
		err[0] = '\0';
		if (userdb_open(path, PF, &db, err, sizeof(err)) != -1)
			fail_msg("case %zu accepted: %s", i, text);
		assert_null(db);
		assert_int_equal(errno, EINVAL);
		assert_int_equal(str_fmt(want, sizeof(want), "%s:2: ", path),
		    0);
		if (strncmp(err, want, strlen(want)) != 0 ||
		    strstr(err, cases[i].why) == NULL)
			fail_msg("case %zu: got \"%s\", want \"%s...%s\"", i,
			    err, want, cases[i].why);
	}
}

static void
test_quotas(void **state)
{
	const char *path = tpath("quotas");
	const struct user_rec *u;
	struct userdb *db;
	char err[512];

	(void)state;
	put(path, "a:{PLAIN}x::::::quota_bytes=10M quota_messages=7\n"
	    "b:{PLAIN}y:1:2:g:/h:/s:login_delay=5 userdb_x=1\n");
	assert_int_equal(userdb_open(path, PF, &db, err, sizeof(err)), 0);
	u = userdb_lookup(db, "a");
	assert_non_null(u);
	assert_int_equal(u->quota_bytes, 10 * 1024 * 1024);
	assert_int_equal(u->quota_messages, 7);
	u = userdb_lookup(db, "b");
	assert_non_null(u);
	assert_int_equal(u->quota_bytes, 0);
	assert_int_equal(u->quota_messages, 0);
	userdb_free(&db);
	/* Setting one keeps the other, and every other field. */
	assert_int_equal(userdb_edit_set_quota(PF, path, "b", 4096,
	    USERDB_KEEP, err, sizeof(err)), 0);
	assert_int_equal(userdb_edit_set_quota(PF, path, "a", USERDB_KEEP, 0,
	    err, sizeof(err)), 0);
	assert_file(path, "a:{PLAIN}x::::::quota_bytes=10485760\n"
	    "b:{PLAIN}y:1:2:g:/h:/s:userdb_x=1 quota_bytes=4096 "
	    "login_delay=5\n");
	/* Options keep the quotas. */
	assert_int_equal(userdb_edit_set_options(PF, path, "a", 9, USERDB_KEEP,
	    1, err, sizeof(err)), 0);
	assert_file(path, "a:{PLAIN}x::::::quota_bytes=10485760 "
	    "login_delay=9 disabled=yes\n"
	    "b:{PLAIN}y:1:2:g:/h:/s:userdb_x=1 quota_bytes=4096 "
	    "login_delay=5\n");
	assert_int_equal(userdb_edit_set_quota(PF, path, "a", -5, USERDB_KEEP,
	    err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(userdb_edit_set_quota(PF, path, "zz", 1, 1, err,
	    sizeof(err)), -1);
	assert_int_equal(errno, ENOENT);
}

static void
test_b64(void **state)
{
	/* RFC 4648 section 10. */
	static const char *const vec[][2] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" },
		{ "foo", "Zm9v" }, { "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	static const char *const bad[] = {
		"Zg=", "Zg", "Z===", "Zh==", "Zm9=", "Zm 8=", "Zm8=Zm8=",
		"====", "Zg==Zg==", "Zm9v\n", "Zm-v", "Zm_v", "=Zm9",
	};
	char out[64], dec[64];
	size_t i;
	ssize_t n;

	(void)state;
	for (i = 0; i < N_ELEMENTS(vec); i++) {
		n = userdb_b64_encode(vec[i][0], strlen(vec[i][0]), out,
		    sizeof(out));
		assert_int_equal(n, strlen(vec[i][1]));
		assert_string_equal(out, vec[i][1]);
		n = userdb_b64_decode(vec[i][1], strlen(vec[i][1]), dec,
		    sizeof(dec));
		assert_int_equal(n, strlen(vec[i][0]));
		assert_memory_equal(dec, vec[i][0], (size_t)n);
	}
	for (i = 0; i < N_ELEMENTS(bad); i++) {
		errno = 0;
		if (userdb_b64_decode(bad[i], strlen(bad[i]), dec,
		    sizeof(dec)) != -1 || errno != EINVAL)
			fail_msg("accepted: \"%s\"", bad[i]);
	}
	/* Too small an output. */
	assert_int_equal(userdb_b64_encode("foo", 3, out, 4), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(userdb_b64_encode("foo", 3, out, 5), 4);
	assert_int_equal(userdb_b64_decode("Zm9v", 4, dec, 2), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(userdb_b64_decode("Zm8=", 4, dec, 2), 2);

	/* Secrets: any octet but NUL, 1..MAX_PASSWORD_LEN. */
	assert_int_equal(user_secret_encode("a:b c\001", out, sizeof(out)), 0);
	assert_string_equal(out, "YTpiIGMB");
	assert_int_equal(user_secret_encode("", out, sizeof(out)), -1);
	assert_int_equal(user_secret_encode("abc", out, 4), -1);
}

static void
test_scram_fields(void **state)
{
	struct scram_cred c, d;
	char text[SCRAM_TEXT_MAX];
	const char *why = NULL;

	(void)state;
	assert_int_equal(scram_cred_parse(S256, strlen(S256), true, &c, &why),
	    0);
	assert_true(c.set);
	assert_int_equal(c.iter, 4096);
	assert_true(scram_cred_valid(&c, true));
	assert_false(scram_cred_valid(&c, false));
	assert_int_equal(scram_cred_format(&c, text, sizeof(text)), 0);
	assert_string_equal(text, S256);
	assert_int_equal(scram_cred_format(&c, text, 20), -1);

	/* Only n octets are read. */
	assert_int_equal(scram_cred_parse(S1 " trailing", strlen(S1), false,
	    &d, &why), 0);
	assert_string_equal(d.server_key, S1_SVK);
	assert_int_equal(scram_cred_parse(S1, strlen(S1) - 1, false, &d,
	    &why), -1);
	assert_false(d.set);
	assert_non_null(strstr(why, "20 octets"));

	c.iter = 100;
	assert_false(scram_cred_valid(&c, true));
	c.iter = 4096;
	memset(c.salt, 'A', sizeof(c.salt));	/* no NUL */
	assert_false(scram_cred_valid(&c, true));
	memset(&c, 0, sizeof(c));
	assert_false(scram_cred_valid(&c, true));
}

/* RFC 5802 section 5 (SHA-1) and RFC 7677 section 3 (SHA-256): the
 * keys GNU SASL derives must be those of the RFCs' examples. */
static void
test_scram_make(void **state)
{
	unsigned char salt[SCRAM_SALT_MAX];
	struct scram_cred c, d;
	ssize_t n;

	(void)state;
	n = userdb_b64_decode(S1_SALT, strlen(S1_SALT), salt, sizeof(salt));
	assert_int_equal(n, 12);
	assert_int_equal(scram_cred_make_salted(0, "pencil", 4096, salt,
	    (size_t)n, &c), 0);
	assert_true(c.set);
	assert_int_equal(c.iter, 4096);
	assert_string_equal(c.salt, S1_SALT);
	assert_string_equal(c.stored_key, S1_SK);
	assert_string_equal(c.server_key, S1_SVK);
	assert_true(scram_cred_valid(&c, false));

	n = userdb_b64_decode(S256_SALT, strlen(S256_SALT), salt,
	    sizeof(salt));
	assert_int_equal(n, 16);
	assert_int_equal(scram_cred_make_salted(1, "pencil", 4096, salt,
	    (size_t)n, &c), 0);
	assert_string_equal(c.salt, S256_SALT);
	assert_string_equal(c.stored_key, S256_SK);
	assert_string_equal(c.server_key, S256_SVK);
	assert_true(scram_cred_valid(&c, true));

	/* SASLprep (RFC 4013 section 3): a soft hyphen maps to nothing. */
	assert_int_equal(scram_cred_make_salted(1, "I\xc2\xadX", 4096, salt,
	    (size_t)n, &c), 0);
	assert_int_equal(scram_cred_make_salted(1, "IX", 4096, salt,
	    (size_t)n, &d), 0);
	assert_string_equal(c.stored_key, d.stored_key);
	/* ... and refuses a control character. */
	assert_int_equal(scram_cred_make_salted(1, "a\007b", 4096, salt,
	    (size_t)n, &c), -1);
	assert_int_equal(errno, EINVAL);
	assert_false(c.set);

	/* A fresh salt of SCRAM_SALT_LEN octets each time. */
	assert_int_equal(scram_cred_make(1, "pencil", 4096, &c), 0);
	assert_int_equal(scram_cred_make(1, "pencil", 4096, &d), 0);
	assert_string_not_equal(c.salt, d.salt);
	assert_string_not_equal(c.stored_key, d.stored_key);
	assert_int_equal(userdb_b64_decode(c.salt, strlen(c.salt), salt,
	    sizeof(salt)), SCRAM_SALT_LEN);
	assert_true(scram_cred_valid(&c, true));

	/* Refused: iterations out of range, no password, a short salt. */
	assert_int_equal(scram_cred_make(0, "pencil", SCRAM_MIN_ITERATIONS - 1,
	    &c), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(scram_cred_make(0, "pencil", SCRAM_MAX_ITERATIONS + 1,
	    &c), -1);
	assert_int_equal(scram_cred_make(0, "", 4096, &c), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(scram_cred_make_salted(0, "pencil", 4096, salt, 7,
	    &c), -1);
	assert_int_equal(errno, EINVAL);
}

/* A record made of the given parts; scram1/256 are field texts or NULL. */
static struct user_rec
rec(const char *name, const char *pw, const char *s1, const char *s256,
    const char *secret)
{
	struct user_rec u = pw_rec(name, pw);
	const char *why;

	u.secret = (char *)(uintptr_t)secret;
	if (s1 != NULL)
		assert_int_equal(scram_cred_parse(s1, strlen(s1), false,
		    &u.scram_sha1, &why), 0);
	if (s256 != NULL)
		assert_int_equal(scram_cred_parse(s256, strlen(s256), true,
		    &u.scram_sha256, &why), 0);
	return u;
}

static void
test_edit_forms(void **state)
{
	const char *line_zoe = "zoe:{SHA512-CRYPT}" H_SHA "::::::scram-sha-1="
	    S1 " scram-sha-256=" S256 " secret=czplIGM= login_delay=60 "
	    "expire=never disabled=yes\n";
	const char *amy = "amy:{PLAIN}a:1:2:Amy:/h:/bin/sh:quota=1G  expire=7 "
	    "scram-sha-1=" S1 "\tuserdb_mail=maildir:~/M\n";
	const struct user_rec *got;
	struct user_rec u;
	struct userdb *db;
	char path[512], err[256], want[2048];

	(void)state;
	assert_int_equal(str_fmt(path, sizeof(path), "%s",
	    tpath("edit-forms")), 0);
	unlink(path);

	/* Every form and option, in a fixed order. */
	u = rec("zoe", "{SHA512-CRYPT}" H_SHA, S1, S256, "s:e c");
	u.login_delay_s = 60;
	u.expire_days = USER_EXPIRE_NEVER;
	u.disabled = true;
	assert_int_equal(userdb_edit_add(PF, path, &u, err, sizeof(err)), 0);
	assert_file(path, line_zoe);
	assert_int_equal(userdb_open(path, PF, &db, err, sizeof(err)), 0);
	got = userdb_lookup(db, "zoe");
	assert_non_null(got);
	assert_string_equal(got->secret, "s:e c");
	assert_string_equal(got->scram_sha256.stored_key, S256_SK);
	assert_int_equal(got->login_delay_s, 60);
	assert_true(got->disabled);
	userdb_free(&db);

	/* New credentials replace the old ones; the other fields, the
	 * options and the unknown keys stay. */
	put(path, amy);
	u = rec(NULL, NULL, NULL, S256, NULL);
	assert_int_equal(userdb_edit_set_credentials(PF, path, "amy", &u, err,
	    sizeof(err)), 0);
	assert_file(path, "amy::1:2:Amy:/h:/bin/sh:quota=1G expire=7 "
	    "userdb_mail=maildir:~/M scram-sha-256=" S256 "\n");
	assert_int_equal(userdb_edit_set_options(PF, path, "amy", 120,
	    USER_EXPIRE_DEFAULT, 1, err, sizeof(err)), 0);
	assert_file(path, "amy::1:2:Amy:/h:/bin/sh:quota=1G "
	    "userdb_mail=maildir:~/M scram-sha-256=" S256 " login_delay=120 "
	    "disabled=yes\n");
	assert_int_equal(userdb_edit_set_options(PF, path, "amy", USERDB_KEEP,
	    USERDB_KEEP, 0, err, sizeof(err)), 0);
	assert_file(path, "amy::1:2:Amy:/h:/bin/sh:quota=1G "
	    "userdb_mail=maildir:~/M scram-sha-256=" S256 " login_delay=120\n");
	assert_int_equal(userdb_edit_set_options(PF, path, "amy", -1, 9, -1,
	    err, sizeof(err)), 0);
	assert_file(path, "amy::1:2:Amy:/h:/bin/sh:quota=1G "
	    "userdb_mail=maildir:~/M scram-sha-256=" S256 " expire=9\n");

	/* Short lines grow the empty fields they need. */
	put(path, "bo:{PLAIN}b\ncy:{PLAIN}c:5:6\ndd:{PLAIN}d\n");
	u = rec(NULL, "{SHA512-CRYPT}" H_SHA, NULL, NULL, "x");
	assert_int_equal(userdb_edit_set_credentials(PF, path, "bo", &u, err,
	    sizeof(err)), 0);
	u = rec(NULL, "{PLAIN}c", S1, NULL, "c");	/* the same secret */
	assert_int_equal(userdb_edit_set_credentials(PF, path, "cy", &u, err,
	    sizeof(err)), 0);
	assert_int_equal(userdb_edit_set_options(PF, path, "dd", -1,
	    USER_EXPIRE_DEFAULT, 0, err, sizeof(err)), 0);
	assert_file(path, "bo:{SHA512-CRYPT}" H_SHA "::::::secret=eA==\n"
	    "cy:{PLAIN}c:5:6::::scram-sha-1=" S1 "\ndd:{PLAIN}d\n");

	/* Refused, and nothing changes. */
	assert_int_equal(str_fmt(want, sizeof(want), "%s",
	    "bo:{SHA512-CRYPT}" H_SHA "::::::secret=eA==\n"
	    "cy:{PLAIN}c:5:6::::scram-sha-1=" S1 "\ndd:{PLAIN}d\n"), 0);
	u = rec(NULL, NULL, NULL, NULL, NULL);
	assert_int_equal(userdb_edit_set_credentials(PF, path, "bo", &u, err,
	    sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(err, "no credential"));
	u = rec("ee", "{PLAIN}x", NULL, NULL, "y");
	assert_int_equal(userdb_edit_add(PF, path, &u, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(err, "a {PLAIN} password and a different "
	    "secret"));
	u = rec("ee", NULL, S1, NULL, NULL);
	u.scram_sha1.iter = 100;
	assert_int_equal(userdb_edit_add(PF, path, &u, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	u = rec("ee", NULL, NULL, S256, NULL);
	u.login_delay_s = USER_MAX_LOGIN_DELAY + 1;
	assert_int_equal(userdb_edit_add(PF, path, &u, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(userdb_edit_set_options(PF, path, "bo", -2,
	    USERDB_KEEP, -1, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(userdb_edit_set_options(PF, path, "bo", USERDB_KEEP,
	    USER_MAX_EXPIRE_DAYS + 1, -1, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(userdb_edit_set_options(PF, path, "bo", USERDB_KEEP,
	    USERDB_KEEP, 2, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(userdb_edit_set_options(PF, path, "zz", 1,
	    USERDB_KEEP, -1, err, sizeof(err)), -1);
	assert_int_equal(errno, ENOENT);
	assert_file(path, want);
}

/* ---- passwords ------------------------------------------------------ */

static void
test_pw_hash_verify(void **state)
{
	static const struct {
		enum pw_scheme	 scheme;
		const char	*prefix;
	} cases[] = {
		{ PW_YESCRYPT,		"{YESCRYPT}$y$" },
		{ PW_SHA512_CRYPT,	"{SHA512-CRYPT}$6$" },
		{ PW_BCRYPT,		"{BLF-CRYPT}$2b$" },
		{ PW_PLAIN,		"{PLAIN}" },
	};
	char out[PW_HASH_OUT_SIZE], out2[PW_HASH_OUT_SIZE];
	size_t i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		assert_int_equal(pw_hash(cases[i].scheme, "correct horse", out,
		    sizeof(out)), 0);
		assert_memory_equal(out, cases[i].prefix,
		    strlen(cases[i].prefix));
		assert_true(pw_stored_valid(out));
		assert_true(pw_verify(out, "correct horse"));
		assert_false(pw_verify(out, "correct horsE"));
		if (cases[i].scheme != PW_YESCRYPT) {
			assert_false(pw_verify(out, "correct hors"));
			assert_false(pw_verify(out, ""));
		}
	}
	/* A fresh salt each time. */
	assert_int_equal(pw_hash(PW_SHA512_CRYPT, "pw", out, sizeof(out)), 0);
	assert_int_equal(pw_hash(PW_SHA512_CRYPT, "pw", out2, sizeof(out2)),
	    0);
	assert_string_not_equal(out, out2);
	assert_string_equal(pw_plain_secret("{PLAIN}correct horse"),
	    "correct horse");

	/* Refused: empty, too long, too small an output, bad plain. */
	assert_int_equal(pw_hash(PW_SHA512_CRYPT, "", out, sizeof(out)), -1);
	assert_int_equal(errno, EINVAL);
	memset(out2, 'x', PW_HASH_MAX_PASS + 1);
	out2[PW_HASH_MAX_PASS + 1] = '\0';
	assert_int_equal(pw_hash(PW_SHA512_CRYPT, out2, out, sizeof(out)), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(pw_hash(PW_SHA512_CRYPT, "pw", out, 20), -1);
	assert_int_equal(pw_hash(PW_PLAIN, "a:b", out, sizeof(out)), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(pw_hash(PW_PLAIN, "a\nb", out, sizeof(out)), -1);
}

static void
test_pw_verify_stored(void **state)
{
	(void)state;
	/* Scheme names in any case, and bare crypt strings. */
	assert_true(pw_verify("{SHA512-CRYPT}" H_SHA, "sha-pass"));
	assert_true(pw_verify("{sha512-crypt}" H_SHA, "sha-pass"));
	assert_true(pw_verify("{CRYPT}" H_SHA, "sha-pass"));
	assert_true(pw_verify(H_SHA, "sha-pass"));
	assert_false(pw_verify(H_SHA, "sha-pasS"));
	assert_true(pw_verify("{blf-crypt}" H_BLF, "blf-pass"));
	assert_false(pw_verify(H_BLF, "blf-pas"));
	assert_true(pw_verify("{CRYPT}" H_MD5, "md5-pass"));
	assert_true(pw_verify("{crypt}" H_DES, "des-pass"));
	assert_false(pw_verify("{crypt}" H_DES, "des-pasz"));
	assert_true(pw_verify(H_YES, "yes-pass"));
	assert_true(pw_verify("{Plain}tanstaaf", "tanstaaf"));
	assert_false(pw_verify("{PLAIN}tanstaaf", "tanstaa"));
	assert_false(pw_verify("{PLAIN}tanstaaf", "tanstaaff"));
	assert_false(pw_verify("{PLAIN}tanstaaf", ""));
}

static void
test_pw_malformed(void **state)
{
	static const char *const bad[] = {
		"", "{", "}", "{}", "{}x", "{PLAIN", "{PLAIN}", "PLAIN}x",
		"{FOO}pass", "{SSHA}pass", "{YESCRYPT}", "{YESCRYPT}$y$",
		"{YESCRYPT}" H_SHA, "{SHA512-CRYPT}" H_YES,
		"{SHA512-CRYPT}$6$salt$", "{BLF-CRYPT}" H_SHA, "{CRYPT}",
		"{CRYPT}*", "{CRYPT}!" H_SHA, "*", "!" H_SHA, "pass",
		"sha-pass", "{YESCRYPT} " H_YES, "{ YESCRYPT}" H_YES,
		"{PLAIN}sha-pass:x", "{PLAIN}a\tb",
	};
	size_t i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(bad); i++) {
		if (pw_stored_valid(bad[i]))
			fail_msg("accepted as valid: \"%s\"", bad[i]);
		if (pw_verify(bad[i], "") || pw_verify(bad[i], "sha-pass") ||
		    pw_verify(bad[i], "pass") || pw_verify(bad[i], "x"))
			fail_msg("matched: \"%s\"", bad[i]);
	}
	assert_false(pw_verify(NULL, "x"));
	assert_false(pw_verify("{PLAIN}x", NULL));
	assert_null(pw_plain_secret("{YESCRYPT}" H_YES));
	assert_null(pw_plain_secret("{PLAIN}"));
	assert_null(pw_plain_secret(NULL));
	assert_string_equal(pw_plain_secret("{plain}p"), "p");
}

static void
test_pw_misc(void **state)
{
	enum pw_scheme s;
	const char *d;

	(void)state;
	assert_int_equal(pw_scheme_parse("yescrypt", &s), 0);
	assert_int_equal(s, PW_YESCRYPT);
	assert_int_equal(pw_scheme_parse("SHA512-CRYPT", &s), 0);
	assert_int_equal(s, PW_SHA512_CRYPT);
	assert_int_equal(pw_scheme_parse("bcrypt", &s), 0);
	assert_int_equal(s, PW_BCRYPT);
	assert_int_equal(pw_scheme_parse("plain", &s), 0);
	assert_int_equal(s, PW_PLAIN);
	assert_int_equal(pw_scheme_parse("md5", &s), -1);
	assert_int_equal(pw_scheme_parse("", &s), -1);
	assert_int_equal(pw_scheme_parse("yescrypt ", &s), -1);
	assert_int_equal(pw_scheme_parse(NULL, &s), -1);

	d = pw_dummy_hash();
	assert_non_null(d);
	assert_memory_equal(d, "{YESCRYPT}$y$", 13);
	assert_true(pw_stored_valid(d));
	assert_ptr_equal(pw_dummy_hash(), d);
	assert_false(pw_verify(d, ""));
}

static void
test_username_valid(void **state)
{
	static const char *const good[] = {
		"a", "bob", "Bob_2", "j.doe", "j.doe@example.org", "a+tag",
		"x-y", "0", "a.b.c", "a-", "a.", "_x", "@x", "+x",
	};
	static const char *const bad[] = {
		"", ".x", "-x", "a..b", "..", ".", "a b", "a:b", "a/b",
		"a\\b", "a\tb", "a\nb", "a%b", "a*", "\xc3\xa9", "a\x7f",
	};
	char name[MAX_USERNAME_LEN + 2];
	size_t i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(good); i++)
		if (!username_valid(good[i]))
			fail_msg("refused: \"%s\"", good[i]);
	for (i = 0; i < N_ELEMENTS(bad); i++)
		if (username_valid(bad[i]))
			fail_msg("accepted: \"%s\"", bad[i]);
	assert_false(username_valid(NULL));
	memset(name, 'a', sizeof(name) - 1);
	name[MAX_USERNAME_LEN] = '\0';
	assert_true(username_valid(name));
	name[MAX_USERNAME_LEN] = 'a';
	name[MAX_USERNAME_LEN + 1] = '\0';
	assert_false(username_valid(name));
}

/* ---- APOP ----------------------------------------------------------- */

static void
test_apop(void **state)
{
	/* RFC 1939 section 7. */
	const char *ts = "<1896.697170952@dbc.mtview.ca.us>";

	(void)state;
	assert_true(apop_verify("tanstaaf", ts,
	    "c4c9334bac560ecc979e58001b3e22fb"));
	assert_true(apop_verify("tanstaaf", ts,
	    "C4C9334BAC560ECC979E58001B3E22FB"));
	assert_true(apop_verify("tanstaaf", ts,
	    "c4c9334BAC560ecc979e58001b3e22fB"));
	assert_false(apop_verify("tanstaaF", ts,
	    "c4c9334bac560ecc979e58001b3e22fb"));
	assert_false(apop_verify("tanstaaf",
	    "<1896.697170953@dbc.mtview.ca.us>",
	    "c4c9334bac560ecc979e58001b3e22fb"));
	assert_false(apop_verify("tanstaaf", ts,
	    "c4c9334bac560ecc979e58001b3e22fc"));
	assert_false(apop_verify("tanstaaf", ts,
	    "c4c9334bac560ecc979e58001b3e22f"));
	assert_false(apop_verify("tanstaaf", ts,
	    "c4c9334bac560ecc979e58001b3e22fb0"));
	assert_false(apop_verify("tanstaaf", ts,
	    "c4c9334bac560ecc979e58001b3e22fb "));
	assert_false(apop_verify("tanstaaf", ts,
	    " c4c9334bac560ecc979e58001b3e22fb"));
	assert_false(apop_verify("tanstaaf", ts,
	    "g4c9334bac560ecc979e58001b3e22fb"));
	assert_false(apop_verify("tanstaaf", ts,
	    "0xc9334bac560ecc979e58001b3e22fb"));
	assert_false(apop_verify("tanstaaf", ts, ""));
	assert_false(apop_verify("", ts, "c4c9334bac560ecc979e58001b3e22fb"));
	assert_false(apop_verify(NULL, ts, "c4c9334bac560ecc979e58001b3e22fb"));
	assert_false(apop_verify("tanstaaf", NULL,
	    "c4c9334bac560ecc979e58001b3e22fb"));
	assert_false(apop_verify("tanstaaf", ts, NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_good),
		cmocka_unit_test(test_load_bad),
		cmocka_unit_test(test_load_limits),
		cmocka_unit_test(test_lookup_many),
		cmocka_unit_test(test_refresh),
		cmocka_unit_test(test_edit_add),
		cmocka_unit_test(test_edit_set_delete),
		cmocka_unit_test(test_edit_errors),
		cmocka_unit_test(test_load_forms),
		cmocka_unit_test(test_load_bad_forms),
		cmocka_unit_test(test_b64),
		cmocka_unit_test(test_scram_fields),
		cmocka_unit_test(test_scram_make),
		cmocka_unit_test(test_edit_forms),
		cmocka_unit_test(test_pw_hash_verify),
		cmocka_unit_test(test_pw_verify_stored),
		cmocka_unit_test(test_pw_malformed),
		cmocka_unit_test(test_pw_misc),
		cmocka_unit_test(test_username_valid),
		cmocka_unit_test(test_apop),
		cmocka_unit_test(test_quotas),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
