/*
 * userdb.h: the user database (a passwd-file or an SQLite file), the
 * credentials a user may carry, and password checks.
 *
 * Only the auth process and the `postern` command include this.
 *
 * A user carries any of these credential forms:
 *	password	a crypt(3) hash "{SCHEME}..." for USER/PASS, PLAIN
 *			and LOGIN (or a {PLAIN} secret, which is also the
 *			user's plaintext-equivalent secret)
 *	scram-sha-1,	RFC 5802 / RFC 7677 verifiers: iteration count,
 *	scram-sha-256	salt, StoredKey and ServerKey (base64)
 *	secret		a plaintext-equivalent secret for APOP and
 *			CRAM-MD5 (stored base64, so any octet but NUL fits)
 * and these options: login_delay (seconds between logins, overriding
 * the site's), expire (days messages stay, or never), disabled, and the
 * quotas quota_bytes and quota_messages (0: the site's).
 *
 * passwd-file (user_db_type = passwd-file), one user a line, close to
 * Dovecot's so that sites can migrate:
 *
 *	name:[{SCHEME}hash][:uid:gid:gecos:home:shell:extra]
 *
 * Fields after the password are optional; uid, gid, gecos, home and
 * shell are accepted and ignored (virtual users share the mail uid).
 * extra is space-separated key=value pairs; known keys:
 *	scram-sha-1=ITER,SALT,STOREDKEY,SERVERKEY
 *	scram-sha-256=ITER,SALT,STOREDKEY,SERVERKEY
 *	secret=BASE64
 *	login_delay=SECONDS	0..USER_MAX_LOGIN_DELAY
 *	expire=DAYS|never	0..USER_MAX_EXPIRE_DAYS
 *	disabled=yes|no
 *	quota_bytes=N[k|M|G]	0..HARD_QUOTA_BYTES, 0: the site's
 *	quota_messages=N	0..HARD_QUOTA_MESSAGES, 0: the site's
 * Other keys are kept and ignored (Dovecot's userdb_* and the like).
 * The password field may be empty when the user has a scram-* or a
 * secret; a user with no credential at all is a bad line.
 * Schemes: YESCRYPT, SHA512-CRYPT, BLF-CRYPT, CRYPT (any crypt(3) form
 * libxcrypt knows) and PLAIN (a plaintext-equivalent secret written as
 * it is).  A hash written as "$y$..." without a scheme is CRYPT.
 * Blank lines and lines starting with '#' are ignored.
 *
 * SQLite (user_db_type = sqlite), one row a user:
 *
 *	CREATE TABLE users (
 *	  name TEXT PRIMARY KEY NOT NULL,
 *	  password TEXT,	-- {SCHEME}hash, or NULL
 *	  scram_sha1 TEXT,	-- ITER,SALT,STOREDKEY,SERVERKEY, or NULL
 *	  scram_sha256 TEXT,
 *	  secret TEXT,		-- base64 of the secret, or NULL
 *	  login_delay INTEGER,	-- seconds, NULL: the site's
 *	  expire_days INTEGER,	-- days, -1 never, NULL: the site's
 *	  disabled INTEGER NOT NULL DEFAULT 0,
 *	  quota_bytes INTEGER,	-- octets, NULL or 0: the site's
 *	  quota_messages INTEGER	-- messages, NULL or 0: the site's
 *	);
 *
 * A database made before the quota columns existed is read as if they
 * were NULL; the first `postern user` change adds them.
 *
 * Values are checked as in the passwd-file; a row that fails is treated
 * as absent and logged (log_warnx, its user name only) once.
 */
#ifndef POSTERN_USERDB_H
#define POSTERN_USERDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/attrs.h"
#include "lib/config.h"
#include "lib/limits.h"

/* A user line longer than this is refused: a name (MAX_USERNAME_LEN),
 * a crypt hash, two SCRAM verifiers, a secret (MAX_PASSWORD_LEN octets,
 * base64) and options fit. */
#define USERDB_MAX_LINE		8192

/* Option ranges: 30 days; a little over 270 years. */
#define USER_MAX_LOGIN_DELAY	(30 * 24 * 3600)
#define USER_MAX_EXPIRE_DAYS	100000

/* SCRAM salts: 8..64 octets as stored; new ones are SCRAM_SALT_LEN. */
#define SCRAM_SALT_MIN		8
#define SCRAM_SALT_MAX		64
#define SCRAM_SALT_LEN		16

/* base64 of a salt (<= 64 octets) or key, with NUL */
#define SCRAM_B64_MAX	96
struct scram_cred {
	bool		set;
	uint32_t	iter;		/* >= SCRAM_MIN_ITERATIONS */
	char		salt[SCRAM_B64_MAX];		/* base64 */
	char		stored_key[SCRAM_B64_MAX];	/* base64 */
	char		server_key[SCRAM_B64_MAX];	/* base64 */
};

struct user_rec {
	char		*name;
	char		*password;	/* "{SCHEME}..." crypt hash (or
					 * {PLAIN}), or NULL */
	char		*secret;	/* plaintext-equivalent secret, or NULL
					 * (from a secret= field, or the value
					 * of a {PLAIN} password) */
	struct scram_cred scram_sha1, scram_sha256;
	int64_t		login_delay_s;	/* -1: the site's login_delay */
	int64_t		expire_days;	/* USER_EXPIRE_DEFAULT (-2): the site's
					 * expire; -1: never; else days */
	bool		disabled;
	uint64_t	quota_bytes;	/* 0: the site's quota_bytes */
	uint64_t	quota_messages;	/* 0: the site's quota_messages */
};
#define USER_EXPIRE_DEFAULT	(-2)
#define USER_EXPIRE_NEVER	(-1)

/* userdb_caps(): what the enabled users of a store can log in with. */
/* Some enabled user has a crypt hash or a secret usable by USER/PASS,
 * PLAIN, LOGIN. */
#define USERDB_CAP_CRYPT	0x01
/* ... a plaintext-equivalent secret (APOP, CRAM-MD5). */
#define USERDB_CAP_SECRET	0x02
#define USERDB_CAP_SCRAM_SHA1	0x04
#define USERDB_CAP_SCRAM_SHA256	0x08

struct userdb;

/*
 * Opens the store at path.  -1 with a one-line reason in err and errno:
 *
 * passwd-file: loads the whole file.  "PATH:LINE: reason" on a bad file
 * (errno EINVAL), or "PATH: reason" if it cannot be read (errno from the
 * failing call, e.g. ENOENT, EACCES, EFBIG past USERDB_MAX_BYTES).  The
 * whole file is rejected if any line is bad: a user name that
 * username_valid() refuses, a duplicate user, an unknown password
 * field, a user without any credential, a malformed known extra field
 * (or one given twice), an extra field without '=', a line longer than
 * USERDB_MAX_LINE octets or one holding a control character (CR
 * included).  Lookups are O(1) (a hash table built at load).
 *
 * SQLite: opens the file read-only (it is never created or written
 * here) and prepares the queries.  "PATH: reason": ENOENT no file,
 * EACCES unreadable, EINVAL not an SQLite database or no users table.
 * Lookups are one indexed query each.
 */
int	userdb_open(const char *path, enum userdb_type type,
	    struct userdb **db_r, char *err, size_t errsize) ATTR_WARN_UNUSED;
/*
 * Costs one stat(2), so it may be called before every lookup.  0 if
 * nothing changed or the change was taken; -1 (err set) if the new
 * version is bad: reported once, then 0 until the file changes again,
 * while the old contents keep being served.
 * passwd-file: reloads if the file changed (inode, size or times).
 * SQLite: rows are read at each lookup anyway; a change recomputes the
 * caps, and a new inode (the file replaced) reopens it.
 * Invalidates every user_rec pointer returned before.
 */
int	userdb_refresh(struct userdb *, char *err, size_t errsize);
/* The user named name, or NULL if absent (or, SQLite, if its row is
 * bad or the query failed: logged).  Names are compared byte for byte.
 * The record and its strings stay valid until the next lookup,
 * userdb_foreach, refresh or free of this userdb. */
const struct user_rec *userdb_lookup(struct userdb *, const char *name);
/* The same, telling an absent user from a store that could not answer
 * (userdb_lookup gives NULL for a failed SQLite query too): 1 with *u_r
 * set (valid as for userdb_lookup), 0 no such user (or a bad record),
 * -1 with err set.  One indexed query either way. */
int	userdb_lookup_checked(struct userdb *, const char *name,
	    const struct user_rec **u_r, char *err, size_t errsize)
	    ATTR_WARN_UNUSED;
/* USERDB_CAP_* over the enabled users. */
unsigned int userdb_caps(struct userdb *);
/* Calls fn for every (valid) user, in file order (passwd-file) or by
 * name (SQLite); the record is valid during the call only.  Stops at
 * the first non-zero return of fn and returns it; 0 when all were seen;
 * -1 with err set if the store could not be read. */
int	userdb_foreach(struct userdb *, int (*fn)(const struct user_rec *,
	    void *), void *arg, char *err, size_t errsize);
/* Frees and wipes (the store holds secrets), then *dbp = NULL. */
void	userdb_free(struct userdb **);

/* True if name may be a user name: 1..MAX_USERNAME_LEN octets of
 * [A-Za-z0-9._@+-], not starting with '.' or '-', no "..". */
bool	username_valid(const char *name);

/*
 * Credential fields, as both stores hold them.  Each parser returns 0,
 * or -1 with *why_r set to a short reason (a string constant) and the
 * output wiped.
 */
/* "ITER,SALT,STOREDKEY,SERVERKEY": ITER decimal in SCRAM_MIN_ITERATIONS
 * ..SCRAM_MAX_ITERATIONS, SALT strict base64 of SCRAM_SALT_MIN..
 * SCRAM_SALT_MAX octets, the keys of exactly 20 (SHA-1) or 32 (SHA-256)
 * octets.  n octets of text (it need not be NUL-terminated). */
int	scram_cred_parse(const char *text, size_t n, bool sha256,
	    struct scram_cred *out, const char **why_r) ATTR_WARN_UNUSED;
/* Checks a filled-in scram_cred as scram_cred_parse would. */
bool	scram_cred_valid(const struct scram_cred *, bool sha256);
/* Writes "ITER,SALT,STOREDKEY,SERVERKEY" into out; 0, or -1 (ERANGE)
 * if it does not fit.  SCRAM_TEXT_MAX always fits. */
#define SCRAM_TEXT_MAX	(12 + 3 * SCRAM_B64_MAX)
int	scram_cred_format(const struct scram_cred *, char *out,
	    size_t outsize) ATTR_WARN_UNUSED;
/*
 * Derives the SCRAM-SHA-1 or SCRAM-SHA-256 verifier of pass (SASLprep
 * applied, as GNU SASL does) with iter iterations and a fresh random
 * salt of SCRAM_SALT_LEN octets.  0, or -1 with errno EINVAL (iter out
 * of range, empty pass, or pass refused by SASLprep: e.g. control
 * characters) or EIO (no randomness, derivation failed).
 */
int	scram_cred_make(int sha256, const char *pass, uint32_t iter,
	    struct scram_cred *out) ATTR_WARN_UNUSED;
/* The same with the given salt (tests, RFC vectors). */
int	scram_cred_make_salted(int sha256, const char *pass, uint32_t iter,
	    const void *salt, size_t saltlen, struct scram_cred *out)
	    ATTR_WARN_UNUSED;

/* secret: strict base64 (with padding) of 1..MAX_PASSWORD_LEN octets
 * without NUL.  Decodes n octets of b64 into out (NUL-terminated);
 * USER_SECRET_SIZE always fits. */
#define USER_SECRET_SIZE	(MAX_PASSWORD_LEN + 1)
#define USER_SECRET_B64_SIZE	(((MAX_PASSWORD_LEN + 2) / 3) * 4 + 1)
int	user_secret_decode(const char *b64, size_t n, char *out,
	    size_t outsize, const char **why_r) ATTR_WARN_UNUSED;
/* The base64 form of secret into out; 0, or -1 (EINVAL: empty or
 * longer than MAX_PASSWORD_LEN; ERANGE: out too small). */
int	user_secret_encode(const char *secret, char *out, size_t outsize)
	    ATTR_WARN_UNUSED;

/* Strict base64 (RFC 4648 section 4, padded, no line breaks, unused
 * bits zero).  encode: out gets the text and a NUL, returns its length,
 * or -1 (ERANGE) if outsize is too small.  decode: n octets of in into
 * out, returns the octet count, or -1 (EINVAL malformed, ERANGE too
 * long for outsize). */
ssize_t	userdb_b64_encode(const void *in, size_t n, char *out,
	    size_t outsize);
ssize_t	userdb_b64_decode(const char *in, size_t n, void *out,
	    size_t outsize);

enum pw_scheme { PW_YESCRYPT, PW_SHA512_CRYPT, PW_BCRYPT, PW_PLAIN };

/* Parses "yescrypt", "sha512-crypt", "bcrypt", "plain".  0 or -1. */
int	pw_scheme_parse(const char *s, enum pw_scheme *r) ATTR_WARN_UNUSED;

/* Hashes pass into out as "{SCHEME}..." with a fresh random salt.  0 or -1
 * (errno EINVAL: empty pass, or a PLAIN secret holding ':' or a control
 * character, which the file format cannot carry; ERANGE: pass longer than
 * PW_HASH_MAX_PASS octets or out too small).  Use PW_HASH_OUT_SIZE. */
#define PW_HASH_MAX_PASS	511	/* crypt(3)'s limit, minus the NUL */
#define PW_HASH_OUT_SIZE	(MAX_PASSWORD_LEN + 32)
int	pw_hash(enum pw_scheme, const char *pass, char *out, size_t outsize)
	    ATTR_WARN_UNUSED;

/* Constant-time check of pass against a stored "{SCHEME}..." value.
 * Unknown schemes and malformed hashes never match.  A yescrypt check
 * costs tens of milliseconds of CPU: call it only in the auth process. */
bool	pw_verify(const char *stored, const char *pass);

/* A hash of a random password, same scheme and cost as the default, so
 * that an unknown user costs the same time as a known one.  Computed on
 * the first call (one hash, tens of milliseconds: call it once at start
 * so no client waits for it); not thread-safe. */
const char *pw_dummy_hash(void);

/* True if stored is a password field userdb_open accepts: a known
 * {SCHEME} (any case) followed by a non-empty value of that scheme's
 * form, or a bare "$id$..." crypt string; no ':' or control characters. */
bool	pw_stored_valid(const char *stored);

/* If stored is {PLAIN}, returns the secret (inside stored), else NULL. */
const char *pw_plain_secret(const char *stored);

/* APOP (RFC 1939 section 7): digest_hex must be the lower- or upper-case
 * hex MD5 of timestamp followed by secret.  Constant-time.  An empty
 * secret never matches but costs the same digest, so a caller without a
 * secret for the user may pass "" to keep the timing alike. */
bool	apop_verify(const char *secret, const char *timestamp,
	    const char *digest_hex);

/*
 * Editing, for `postern user`.  -1 with a one-line reason in err and
 * errno: EEXIST user exists (add); ENOENT no such user, or no store
 * (all but add); EINVAL bad name, bad credential or option, a record
 * without any credential, or a passwd-file that userdb_open would
 * reject; EBUSY the store stayed locked for USERDB_LOCK_WAIT_MS; else
 * I/O.  Nothing changes on failure.
 *
 * passwd-file: atomic (lock, read, write a temporary file, fsync,
 * rename).  The lock is flock(2) on the sibling file PATH.lock (created
 * 0600).  Every other line is kept byte for byte, and so are the other
 * fields of the edited line and its unknown extra keys; a symbolic link
 * at path is followed, and the file keeps its mode (and its owner, when
 * run as root).  A new file is 0600.
 *
 * SQLite: one IMMEDIATE transaction with journal_mode DELETE and
 * synchronous FULL (busy timeout USERDB_LOCK_WAIT_MS).  add creates a
 * missing file (0600) and the users table.
 */
#define USERDB_LOCK_WAIT_MS	10000
/* Adds u (name, credentials, options).  A {PLAIN} password and a secret
 * must agree; the secret is then not written twice. */
int	userdb_edit_add(enum userdb_type, const char *path,
	    const struct user_rec *u, char *err, size_t errsize)
	    ATTR_WARN_UNUSED;
/* Replaces the password, scram_sha1, scram_sha256 and secret of name
 * with those of creds (absent ones are removed); keeps the options. */
int	userdb_edit_set_credentials(enum userdb_type, const char *path,
	    const char *name, const struct user_rec *creds, char *err,
	    size_t errsize) ATTR_WARN_UNUSED;
/* Sets the options of name: USERDB_KEEP keeps one; login_delay_s -1
 * and expire_days USER_EXPIRE_DEFAULT give back the site's value;
 * disabled is -1 (keep), 0 or 1. */
#define USERDB_KEEP	INT64_MIN
int	userdb_edit_set_options(enum userdb_type, const char *path,
	    const char *name, int64_t login_delay_s, int64_t expire_days,
	    int disabled, char *err, size_t errsize) ATTR_WARN_UNUSED;
/* Sets the quotas of name: USERDB_KEEP keeps one; 0 gives back the
 * site's; at most HARD_QUOTA_BYTES and HARD_QUOTA_MESSAGES. */
int	userdb_edit_set_quota(enum userdb_type, const char *path,
	    const char *name, int64_t quota_bytes, int64_t quota_messages,
	    char *err, size_t errsize) ATTR_WARN_UNUSED;
int	userdb_edit_delete(enum userdb_type, const char *path,
	    const char *name, char *err, size_t errsize) ATTR_WARN_UNUSED;

/*
 * Between userdb.c and userdb_sqlite.c (the SQLite store); callers use
 * the functions above.
 */
struct userdb_sqlite;
int	usq_open(const char *path, struct userdb_sqlite **r, char *err,
	    size_t errsize);
int	usq_refresh(struct userdb_sqlite *, char *err, size_t errsize);
const struct user_rec *usq_lookup(struct userdb_sqlite *, const char *name);
/* 1 found (*u_r set), 0 no such row (or a bad one: reported), -1 the
 * query failed (err set). */
int	usq_lookup_checked(struct userdb_sqlite *, const char *name,
	    const struct user_rec **u_r, char *err, size_t errsize);
unsigned int usq_caps(struct userdb_sqlite *);
int	usq_foreach(struct userdb_sqlite *, int (*)(const struct user_rec *,
	    void *), void *, char *err, size_t errsize);
void	usq_free(struct userdb_sqlite **);
int	usq_edit_add(const char *path, const struct user_rec *u, char *err,
	    size_t errsize);
int	usq_edit_set_credentials(const char *path, const char *name,
	    const struct user_rec *creds, char *err, size_t errsize);
int	usq_edit_set_options(const char *path, const char *name,
	    int64_t login_delay_s, int64_t expire_days, int disabled,
	    char *err, size_t errsize);
int	usq_edit_set_quota(const char *path, const char *name,
	    int64_t quota_bytes, int64_t quota_messages, char *err,
	    size_t errsize);
int	usq_edit_delete(const char *path, const char *name, char *err,
	    size_t errsize);
/* Checks a record's credentials and options as both stores must (name
 * valid, at least one credential, each well formed, options in range).
 * NULL, or the reason. */
const char *user_rec_problem(const struct user_rec *);

#endif
