/*
 * userdb.h: the user database (a passwd-file) and password checks.
 *
 * Only the auth process and the `postern user` command include this.
 *
 * passwd-file format, one user a line, close to Dovecot's so that sites
 * can migrate:
 *
 *	name:{SCHEME}hash[:uid:gid:gecos:home:shell:extra]
 *
 * Fields after the password are optional; uid, gid, gecos, home and
 * shell are accepted and ignored (virtual users share the mail uid).
 * extra is space-separated key=value pairs; known keys: disabled=yes.
 * Schemes: YESCRYPT, SHA512-CRYPT, BLF-CRYPT, CRYPT (any crypt(3) form
 * libxcrypt knows) and PLAIN (a plaintext-equivalent secret, needed for
 * APOP).  A hash written as "$y$..." without a scheme is CRYPT.
 * Blank lines and lines starting with '#' are ignored.
 */
#ifndef POSTERN_USERDB_H
#define POSTERN_USERDB_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/attrs.h"
#include "lib/limits.h"

/* A user line longer than this is refused: a name (MAX_USERNAME_LEN),
 * a secret (MAX_PASSWORD_LEN as {PLAIN}) and extra fields fit easily. */
#define USERDB_MAX_LINE		8192

struct user_rec {
	char	*name;
	char	*password;	/* "{SCHEME}..." as stored */
	bool	 disabled;
};

struct userdb;

/*
 * Loads the file.  -1 with "PATH:LINE: reason" in err on a bad file
 * (errno EINVAL), or "PATH: reason" if it cannot be read (errno from the
 * failing call, e.g. ENOENT, EACCES, EFBIG past USERDB_MAX_BYTES).
 * The whole file is rejected if any line is bad: a user name that
 * username_valid() refuses, a duplicate user, an empty or unknown
 * password field, an extra field without '=', a line longer than
 * USERDB_MAX_LINE octets or one holding a control character (CR
 * included).  Lookups are O(1) (a hash table built at load).
 */
int	userdb_open(const char *path, struct userdb **db_r, char *err,
	    size_t errsize) ATTR_WARN_UNUSED;
/* Reloads if the file changed (inode, size or mtime).  0 unchanged or
 * reloaded, -1 (err set, old contents kept) if the new file is bad.
 * A bad file is reported once: until it changes again, later calls
 * return 0 and keep serving the old contents.  Costs one stat(2), so it
 * may be called before every lookup.  Reloading invalidates every
 * user_rec pointer returned before. */
int	userdb_refresh(struct userdb *, char *err, size_t errsize);
/* The user named name, or NULL.  Names are compared byte for byte.  The
 * record lives in the userdb until the next reload or userdb_free. */
const struct user_rec *userdb_lookup(const struct userdb *, const char *name);
/* True if some enabled user has a plaintext-equivalent secret. */
bool	userdb_has_plain(const struct userdb *);
/* Number of users, and the i-th one (0-based, in file order). */
size_t	userdb_count(const struct userdb *);
const struct user_rec *userdb_get(const struct userdb *, size_t i);
/* Frees and wipes (the file holds secrets), then *dbp = NULL. */
void	userdb_free(struct userdb **);

/* True if name may be a user name: 1..MAX_USERNAME_LEN octets of
 * [A-Za-z0-9._@+-], not starting with '.' or '-', no "..". */
bool	username_valid(const char *name);

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
 * {PLAIN} secret for the user may pass "" to keep the timing alike. */
bool	apop_verify(const char *secret, const char *timestamp,
	    const char *digest_hex);

/*
 * Editing the file for `postern user` (all atomic: lock, read, write a
 * temporary file, fsync, rename).  -1 with a one-line reason in err:
 * user exists (add), no such user (passwd, del), bad name, I/O.
 *
 * The lock is flock(2) on the sibling file PATH.lock (created 0600),
 * waited for at most USERDB_LOCK_WAIT_MS.  Every other line is
 * kept byte for byte; a symbolic link at path is followed, and the file
 * keeps its mode (and its owner, when run as root).  A new file is 0600.
 * errno after -1: EEXIST user exists (add); ENOENT no such user, or no
 * file (passwd, del); EINVAL bad name, bad password field or a file that
 * userdb_open would reject; EBUSY lock not obtained; else I/O.
 */
#define USERDB_LOCK_WAIT_MS	10000
int	userdb_file_add(const char *path, const char *name,
	    const char *password_field, char *err, size_t errsize);
int	userdb_file_set_password(const char *path, const char *name,
	    const char *password_field, char *err, size_t errsize);
int	userdb_file_delete(const char *path, const char *name, char *err,
	    size_t errsize);

#endif
