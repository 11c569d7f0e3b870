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

struct user_rec {
	char	*name;
	char	*password;	/* "{SCHEME}..." as stored */
	bool	 disabled;
};

struct userdb;

/* Loads the file.  -1 with "PATH:LINE: reason" in err on a bad file. */
int	userdb_open(const char *path, struct userdb **db_r, char *err,
	    size_t errsize) ATTR_WARN_UNUSED;
/* Reloads if the file changed (inode, size or mtime).  0 unchanged or
 * reloaded, -1 (err set, old contents kept) if the new file is bad. */
int	userdb_refresh(struct userdb *, char *err, size_t errsize);
const struct user_rec *userdb_lookup(const struct userdb *, const char *name);
/* True if some enabled user has a plaintext-equivalent secret. */
bool	userdb_has_plain(const struct userdb *);
void	userdb_free(struct userdb **);

/* True if name may be a user name: 1..MAX_USERNAME_LEN octets of
 * [A-Za-z0-9._@+-], not starting with '.' or '-', no "..". */
bool	username_valid(const char *name);

enum pw_scheme { PW_YESCRYPT, PW_SHA512_CRYPT, PW_BCRYPT, PW_PLAIN };

/* Parses "yescrypt", "sha512-crypt", "bcrypt", "plain".  0 or -1. */
int	pw_scheme_parse(const char *s, enum pw_scheme *r) ATTR_WARN_UNUSED;

/* Hashes pass into out as "{SCHEME}..." with a fresh random salt.  0 or -1. */
int	pw_hash(enum pw_scheme, const char *pass, char *out, size_t outsize)
	    ATTR_WARN_UNUSED;

/* Constant-time check of pass against a stored "{SCHEME}..." value.
 * Unknown schemes and malformed hashes never match. */
bool	pw_verify(const char *stored, const char *pass);

/* A hash of a random password, same scheme and cost as the default, so
 * that an unknown user costs the same time as a known one. */
const char *pw_dummy_hash(void);

/* If stored is {PLAIN}, returns the secret (inside stored), else NULL. */
const char *pw_plain_secret(const char *stored);

/* APOP (RFC 1939 section 7): digest_hex must be the lower- or upper-case
 * hex MD5 of timestamp followed by secret.  Constant-time. */
bool	apop_verify(const char *secret, const char *timestamp,
	    const char *digest_hex);

/*
 * Editing the file for `postern user` (all atomic: lock, read, write a
 * temporary file, fsync, rename).  -1 with a one-line reason in err:
 * user exists (add), no such user (passwd, del), bad name, I/O.
 */
int	userdb_file_add(const char *path, const char *name,
	    const char *password_field, char *err, size_t errsize);
int	userdb_file_set_password(const char *path, const char *name,
	    const char *password_field, char *err, size_t errsize);
int	userdb_file_delete(const char *path, const char *name, char *err,
	    size_t errsize);

#endif
