/*
 * userdb.c: the user database behind one interface.  Here: the
 * passwd-file store (strict loading, constant-time (hash table)
 * lookups, reloading when the file changes, the one-line edits behind
 * `postern user`), the dispatch to the SQLite store (userdb_sqlite.c),
 * and the credential fields both stores share (SCRAM verifiers, base64
 * secrets).
 *
 * Owns: one in-memory copy of the file per userdb, cut into
 * NUL-terminated fields in place (secrets decoded in place) and wiped
 * when freed (it holds secrets), the hash table over its user names,
 * and the one record that lookups hand out.
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
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gsasl.h>

#include "auth/userdb.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/limits.h"
#include "lib/strnum.h"

/* One user line, as offsets into the file.  The offsets of values in
 * extra fields count from the line's start (a line is at most
 * USERDB_MAX_LINE octets); 0 means absent, as no value can start where
 * the name does. */
struct urec {
	size_t		 line_off;	/* the line (name first) */
	uint32_t	 line_len;	/* without the LF */
	uint32_t	 pass_len;	/* after "name:"; 0: no password */
	uint32_t	 lineno;
	uint16_t	 name_len;
	uint16_t	 scram1_off;	/* "ITER,SALT,..." cut with a NUL */
	uint16_t	 scram256_off;
	uint16_t	 secret_off;	/* the decoded secret, NUL-terminated */
	int32_t		 login_delay;	/* -1: the site's */
	int32_t		 expire;	/* USER_EXPIRE_DEFAULT, _NEVER, days */
	bool		 disabled;
	bool		 plain;		/* {PLAIN} password: also the secret */
	uint64_t	 quota_bytes;	/* 0: the site's */
	uint64_t	 quota_messages;
};

/* The users of one file and an open-addressing table over their names. */
struct table {
	struct urec	*recs;
	size_t		 n;
	size_t		 cap;
	uint32_t	*slots;		/* 0: empty, else 1 + index */
	size_t		 mask;		/* number of slots - 1 */
};

struct userdb {
	enum userdb_type type;
	struct userdb_sqlite *sq;	/* SQLite; the rest: passwd-file */
	char		*path;
	char		*data;		/* the file, cut with NULs */
	size_t		 size;
	struct table	 t;
	unsigned int	 caps;		/* USERDB_CAP_* */
	struct user_rec	 cur;		/* what the last lookup returned */
	struct file_id	 id;		/* the version loaded */
	struct file_id	 bad_id;	/* the last version that failed */
	bool		 have_bad;
};

/* The extra keys we know; every other key is kept and ignored. */
enum extra_key {
	EX_SCRAM1,
	EX_SCRAM256,
	EX_SECRET,
	EX_LOGIN_DELAY,
	EX_EXPIRE,
	EX_DISABLED,
	EX_QUOTA_BYTES,
	EX_QUOTA_MESSAGES,
	EX_COUNT
};

static const char *const extra_names[EX_COUNT] = {
	[EX_SCRAM1]		= "scram-sha-1",
	[EX_SCRAM256]		= "scram-sha-256",
	[EX_SECRET]		= "secret",
	[EX_LOGIN_DELAY]	= "login_delay",
	[EX_EXPIRE]		= "expire",
	[EX_DISABLED]		= "disabled",
	[EX_QUOTA_BYTES]	= "quota_bytes",
	[EX_QUOTA_MESSAGES]	= "quota_messages",
};

/* The known values of one line's extra field (NULL: absent). */
struct extra_vals {
	char		*v[EX_COUNT];
	size_t		 n[EX_COUNT];
};

enum edit_op { EDIT_ADD, EDIT_CREDS, EDIT_OPTS, EDIT_DEL };

/* The options of a line, as opt_tokens writes them. */
struct opt_vals {
	int64_t		 login_delay;
	int64_t		 expire;
	bool		 disabled;
	uint64_t	 quota_bytes;
	uint64_t	 quota_messages;
};

/* One change to the passwd-file. */
struct edit_req {
	enum edit_op	 op;
	const char	*name;
	const struct user_rec *u;	/* ADD: the user; CREDS: credentials */
	int64_t		 login_delay_s;	/* OPTS: USERDB_KEEP or the value */
	int64_t		 expire_days;
	int		 disabled;	/* OPTS: -1 keep, 0, 1 */
	int64_t		 quota_bytes;	/* OPTS: USERDB_KEEP or the value */
	int64_t		 quota_messages;
};

#define LOCK_POLL_MS	50

/* The lengths of the SHA-1 and SHA-256 outputs: SCRAM keys. */
#define SCRAM_SHA1_KEY		20
#define SCRAM_SHA256_KEY	32

static const char name_rules[] = "1-255 characters of A-Z a-z 0-9 . _ @ + -, "
    "not starting with '.' or '-', no '..'";
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
	errf(err, errsize, "%s:%lu: %s", path, lineno, reason);
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

/* ---- credential fields ---------------------------------------------- */

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

ssize_t
userdb_b64_encode(const void *in, size_t n, char *out, size_t outsize)
{
	const unsigned char *p = in;
	size_t i, o = 0;
	uint32_t v;

	if (n > (SIZE_MAX - 1) / 4 * 3 - 3 ||
	    ((n + 2) / 3) * 4 + 1 > outsize) {
		errno = ERANGE;
		return -1;
	}
	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = b64_chars[v >> 18];
		out[o++] = b64_chars[(v >> 12) & 63];
		out[o++] = b64_chars[(v >> 6) & 63];
		out[o++] = b64_chars[v & 63];
	}
	if (i < n) {
		v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		out[o++] = b64_chars[v >> 18];
		out[o++] = b64_chars[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64_chars[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return (ssize_t)o;
}

static int
b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

ssize_t
userdb_b64_decode(const char *in, size_t n, void *out, size_t outsize)
{
	unsigned char *o = out;
	size_t i, len = 0, pad = 0, k, octets;
	uint32_t v;
	int d;

	if (n % 4 != 0) {
		errno = EINVAL;
		return -1;
	}
	if (n > 0 && in[n - 1] == '=')
		pad = in[n - 2] == '=' ? 2 : 1;
	if (n / 4 * 3 - pad > outsize || n / 4 * 3 > SSIZE_MAX) {
		errno = ERANGE;
		return -1;
	}
	for (i = 0; i < n; i += 4) {
		octets = i + 4 == n ? 3 - pad : 3;
		v = 0;
		for (k = 0; k < 4; k++) {
			if (k > octets) {
				v <<= 6;	/* the '=' checked above */
				continue;
			}
			if ((d = b64_value(in[i + k])) < 0) {
				errno = EINVAL;
				return -1;
			}
			v = v << 6 | (uint32_t)d;
		}
		/* Bits past the last octet must be zero (one spelling
		 * per value). */
		if ((octets == 1 && (v & 0xffff) != 0) ||
		    (octets == 2 && (v & 0xff) != 0)) {
			errno = EINVAL;
			return -1;
		}
		o[len++] = (unsigned char)(v >> 16);
		if (octets > 1)
			o[len++] = (unsigned char)(v >> 8);
		if (octets > 2)
			o[len++] = (unsigned char)v;
	}
	return (ssize_t)len;
}

/* n octets of a size (digits, then k, M or G; see parse_size) worth at
 * most max. */
static bool
size_value(const char *p, size_t n, uint64_t max, uint64_t *v_r)
{
	char tmp[32];

	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	return parse_size(tmp, max, v_r) == PARSE_OK;
}

/* n octets of decimal digits (at most 10, so no overflow) worth at most
 * max. */
static bool
dec_value(const char *p, size_t n, uint64_t max, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 10)
		return false;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	if (v > max)
		return false;
	*v_r = v;
	return true;
}

int
scram_cred_parse(const char *text, size_t n, bool sha256,
    struct scram_cred *out, const char **why_r)
{
	unsigned char bin[SCRAM_B64_MAX];
	const char *part[4], *p = text, *end = text + n, *c;
	const size_t keylen = sha256 ? SCRAM_SHA256_KEY : SCRAM_SHA1_KEY;
	size_t plen[4];
	uint64_t iter;
	ssize_t got;
	int i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < 4; i++) {
		c = memchr(p, ',', (size_t)(end - p));
		if ((i < 3 && c == NULL) || (i == 3 && c != NULL)) {
			*why_r = "want ITER,SALT,STOREDKEY,SERVERKEY";
			return -1;
		}
		part[i] = p;
		plen[i] = (size_t)((c != NULL ? c : end) - p);
		p = c != NULL ? c + 1 : end;
	}
	if (!dec_value(part[0], plen[0], SCRAM_MAX_ITERATIONS, &iter) ||
	    iter < SCRAM_MIN_ITERATIONS) {
		*why_r = "the iteration count must be a number from 4096 to "
		    "10000000";
		return -1;
	}
	for (i = 1; i < 4; i++) {
		got = plen[i] < SCRAM_B64_MAX ?
		    userdb_b64_decode(part[i], plen[i], bin, sizeof(bin)) : -1;
		explicit_bzero(bin, sizeof(bin));
		if (i == 1 && (got < SCRAM_SALT_MIN || got > SCRAM_SALT_MAX)) {
			*why_r = "the salt must be base64 of 8 to 64 octets";
			return -1;
		}
		if (i > 1 && got != (ssize_t)keylen) {
			*why_r = sha256 ? "the keys must be base64 of 32 "
			    "octets" : "the keys must be base64 of 20 octets";
			memset(out, 0, sizeof(*out));
			return -1;
		}
	}
	out->iter = (uint32_t)iter;
	memcpy(out->salt, part[1], plen[1]);
	memcpy(out->stored_key, part[2], plen[2]);
	memcpy(out->server_key, part[3], plen[3]);
	out->set = true;
	return 0;
}

int
scram_cred_format(const struct scram_cred *c, char *out, size_t outsize)
{
	if (str_fmt(out, outsize, "%u,%s,%s,%s", (unsigned int)c->iter,
	    c->salt, c->stored_key, c->server_key) == -1) {
		errno = ERANGE;
		return -1;
	}
	return 0;
}

bool
scram_cred_valid(const struct scram_cred *c, bool sha256)
{
	char text[SCRAM_TEXT_MAX];
	struct scram_cred check;
	const char *why;
	bool ok;

	if (c == NULL || !c->set ||
	    memchr(c->salt, '\0', sizeof(c->salt)) == NULL ||
	    memchr(c->stored_key, '\0', sizeof(c->stored_key)) == NULL ||
	    memchr(c->server_key, '\0', sizeof(c->server_key)) == NULL ||
	    scram_cred_format(c, text, sizeof(text)) == -1)
		return false;
	ok = scram_cred_parse(text, strlen(text), sha256, &check, &why) == 0;
	explicit_bzero(text, sizeof(text));
	explicit_bzero(&check, sizeof(check));
	return ok;
}

int
scram_cred_make_salted(int sha256, const char *pass, uint32_t iter,
    const void *salt, size_t saltlen, struct scram_cred *out)
{
	char salted[GSASL_HASH_MAX_SIZE], client[GSASL_HASH_MAX_SIZE];
	char server[GSASL_HASH_MAX_SIZE], stored[GSASL_HASH_MAX_SIZE];
	const size_t keylen = sha256 ? SCRAM_SHA256_KEY : SCRAM_SHA1_KEY;
	int rc = -1, saved = EIO, grc;

	memset(out, 0, sizeof(*out));
	if (pass == NULL || pass[0] == '\0' || iter < SCRAM_MIN_ITERATIONS ||
	    iter > SCRAM_MAX_ITERATIONS || saltlen < SCRAM_SALT_MIN ||
	    saltlen > SCRAM_SALT_MAX) {
		errno = EINVAL;
		return -1;
	}
	/* GNU SASL applies SASLprep (RFC 4013) to the password first, as
	 * a client does before it derives the same keys. */
	grc = gsasl_scram_secrets_from_password(sha256 ? GSASL_HASH_SHA256 :
	    GSASL_HASH_SHA1, pass, iter, salt, saltlen, salted, client,
	    server, stored);
	if (grc != GSASL_OK) {
		saved = grc == GSASL_SASLPREP_ERROR ? EINVAL : EIO;
		goto out;
	}
	if (userdb_b64_encode(salt, saltlen, out->salt,
	    sizeof(out->salt)) == -1 ||
	    userdb_b64_encode(stored, keylen, out->stored_key,
	    sizeof(out->stored_key)) == -1 ||
	    userdb_b64_encode(server, keylen, out->server_key,
	    sizeof(out->server_key)) == -1)
		goto out;
	out->iter = iter;
	out->set = true;
	rc = 0;
out:
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(client, sizeof(client));
	explicit_bzero(server, sizeof(server));
	explicit_bzero(stored, sizeof(stored));
	if (rc == -1) {
		explicit_bzero(out, sizeof(*out));
		errno = saved;
	}
	return rc;
}

int
scram_cred_make(int sha256, const char *pass, uint32_t iter,
    struct scram_cred *out)
{
	unsigned char salt[SCRAM_SALT_LEN];
	size_t got = 0;
	ssize_t n;
	int rc;

	while (got < sizeof(salt)) {
		n = getrandom(salt + got, sizeof(salt) - got, 0);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			memset(out, 0, sizeof(*out));
			errno = EIO;
			return -1;
		}
		got += (size_t)n;
	}
	rc = scram_cred_make_salted(sha256, pass, iter, salt, sizeof(salt),
	    out);
	explicit_bzero(salt, sizeof(salt));
	return rc;
}

int
user_secret_decode(const char *b64, size_t n, char *out, size_t outsize,
    const char **why_r)
{
	ssize_t got;

	if (outsize == 0 || n >= USER_SECRET_B64_SIZE ||
	    (got = userdb_b64_decode(b64, n, out, outsize - 1)) == -1) {
		if (outsize > 0)
			explicit_bzero(out, outsize);
		*why_r = "want base64 (with padding) of 1 to 1024 octets";
		return -1;
	}
	if (got == 0 || got > MAX_PASSWORD_LEN ||
	    memchr(out, '\0', (size_t)got) != NULL) {
		explicit_bzero(out, outsize);
		*why_r = got == 0 ? "the secret is empty" :
		    "the secret holds a NUL octet";
		return -1;
	}
	out[got] = '\0';
	return 0;
}

int
user_secret_encode(const char *secret, char *out, size_t outsize)
{
	size_t n = secret != NULL ? strlen(secret) : 0;

	if (n == 0 || n > MAX_PASSWORD_LEN) {
		errno = EINVAL;
		return -1;
	}
	return userdb_b64_encode(secret, n, out, outsize) == -1 ? -1 : 0;
}

const char *
user_rec_problem(const struct user_rec *u)
{
	const char *plain;
	size_t n;

	if (u->name != NULL && !username_valid(u->name))
		return "invalid user name";
	if (u->password != NULL && !pw_stored_valid(u->password))
		return "bad password field (want {YESCRYPT}, {SHA512-CRYPT}, "
		    "{BLF-CRYPT}, {CRYPT} or {PLAIN} and a value of that "
		    "scheme)";
	if (u->secret != NULL) {
		n = strnlen(u->secret, MAX_PASSWORD_LEN + 1);
		if (n == 0 || n > MAX_PASSWORD_LEN)
			return "the secret must be 1 to 1024 octets";
		plain = pw_plain_secret(u->password);
		if (plain != NULL && strcmp(plain, u->secret) != 0)
			return "a {PLAIN} password and a different secret";
	}
	if (u->scram_sha1.set && !scram_cred_valid(&u->scram_sha1, false))
		return "bad SCRAM-SHA-1 verifier";
	if (u->scram_sha256.set && !scram_cred_valid(&u->scram_sha256, true))
		return "bad SCRAM-SHA-256 verifier";
	if (u->password == NULL && u->secret == NULL && !u->scram_sha1.set &&
	    !u->scram_sha256.set)
		return "no credential (the user could never log in)";
	if (u->login_delay_s != -1 &&
	    (u->login_delay_s < 0 || u->login_delay_s > USER_MAX_LOGIN_DELAY))
		return "login delay out of range (0 to 2592000 seconds)";
	if (u->expire_days != USER_EXPIRE_DEFAULT &&
	    u->expire_days != USER_EXPIRE_NEVER &&
	    (u->expire_days < 0 || u->expire_days > USER_MAX_EXPIRE_DAYS))
		return "expire out of range (0 to 100000 days, or never)";
	if (u->quota_bytes > HARD_QUOTA_BYTES)
		return "quota_bytes out of range (0 to 1P)";
	if (u->quota_messages > HARD_QUOTA_MESSAGES)
		return "quota_messages out of range (0 to 4294967295)";
	return NULL;
}

/* ---- passwd-file: parsing ------------------------------------------- */

/* The next token of an extra field in [*pp, end), or false at its end. */
static bool
extra_next(const char **pp, const char *end, const char **tok_r,
    size_t *n_r)
{
	const char *p = *pp;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == end) {
		*pp = p;
		return false;
	}
	*tok_r = p;
	while (p < end && *p != ' ' && *p != '\t')
		p++;
	*n_r = (size_t)(p - *tok_r);
	*pp = p;
	return true;
}

/* The known key a token starts with ("key=..."), or -1. */
static int
extra_key(const char *tok, size_t n)
{
	const char *eq = memchr(tok, '=', n);
	size_t klen;
	int i;

	if (eq == NULL)
		return -1;
	klen = (size_t)(eq - tok);
	for (i = 0; i < EX_COUNT; i++)
		if (strlen(extra_names[i]) == klen &&
		    memcmp(tok, extra_names[i], klen) == 0)
			return i;
	return -1;
}

/* Extra fields: space-separated key=value; collects the known keys'
 * values into ex, ignores the others. */
static int
parse_extra(char *base, const char *end, struct extra_vals *ex,
    unsigned long lineno, const char *path, char *err, size_t errsize)
{
	const char *p = base, *eq, *tok;
	size_t n;
	int k;

	while (extra_next(&p, end, &tok, &n)) {
		eq = memchr(tok, '=', n);
		if (eq == NULL || eq == tok)
			return line_fail(err, errsize, path, lineno,
			    "malformed extra field '%.*s' (want key=value)",
			    (int)(n > 40 ? 40 : n), tok);
		if ((k = extra_key(tok, n)) == -1)
			continue;
		if (ex->v[k] != NULL)
			return line_fail(err, errsize, path, lineno,
			    "%s= given twice", extra_names[k]);
		ex->v[k] = base + (eq + 1 - base);
		ex->n[k] = n - (size_t)(eq - tok) - 1;
	}
	return 0;
}

/*
 * Checks the known extra values of one line and records them in r.  The
 * secret is decoded into secret (USER_SECRET_SIZE octets).
 */
static int
check_extra(const char *line, const struct extra_vals *ex, struct urec *r,
    char *secret, unsigned long lineno, const char *path, char *err,
    size_t errsize)
{
	struct scram_cred sc;
	const char *why;
	uint64_t v;
	int k;

	for (k = EX_SCRAM1; k <= EX_SCRAM256; k++) {
		if (ex->v[k] == NULL)
			continue;
		if (scram_cred_parse(ex->v[k], ex->n[k], k == EX_SCRAM256,
		    &sc, &why) == -1)
			return line_fail(err, errsize, path, lineno, "%s=: %s",
			    extra_names[k], why);
		explicit_bzero(&sc, sizeof(sc));
		if (k == EX_SCRAM1)
			r->scram1_off = (uint16_t)(ex->v[k] - line);
		else
			r->scram256_off = (uint16_t)(ex->v[k] - line);
	}
	if (ex->v[EX_SECRET] != NULL) {
		if (user_secret_decode(ex->v[EX_SECRET], ex->n[EX_SECRET],
		    secret, USER_SECRET_SIZE, &why) == -1)
			return line_fail(err, errsize, path, lineno,
			    "secret=: %s", why);
		r->secret_off = (uint16_t)(ex->v[EX_SECRET] - line);
	}
	r->login_delay = -1;
	if (ex->v[EX_LOGIN_DELAY] != NULL) {
		if (!dec_value(ex->v[EX_LOGIN_DELAY], ex->n[EX_LOGIN_DELAY],
		    USER_MAX_LOGIN_DELAY, &v))
			return line_fail(err, errsize, path, lineno,
			    "login_delay= wants seconds from 0 to %d",
			    USER_MAX_LOGIN_DELAY);
		r->login_delay = (int32_t)v;
	}
	r->expire = USER_EXPIRE_DEFAULT;
	if (ex->v[EX_EXPIRE] != NULL) {
		if (ex->n[EX_EXPIRE] == 5 &&
		    memcmp(ex->v[EX_EXPIRE], "never", 5) == 0)
			r->expire = USER_EXPIRE_NEVER;
		else if (dec_value(ex->v[EX_EXPIRE], ex->n[EX_EXPIRE],
		    USER_MAX_EXPIRE_DAYS, &v))
			r->expire = (int32_t)v;
		else
			return line_fail(err, errsize, path, lineno,
			    "expire= wants days from 0 to %d, or never",
			    USER_MAX_EXPIRE_DAYS);
	}
	if (ex->v[EX_DISABLED] != NULL &&
	    !bool_value(ex->v[EX_DISABLED], ex->n[EX_DISABLED], &r->disabled))
		return line_fail(err, errsize, path, lineno,
		    "disabled= wants yes or no");
	if (ex->v[EX_QUOTA_BYTES] != NULL && !size_value(ex->v[EX_QUOTA_BYTES],
	    ex->n[EX_QUOTA_BYTES], HARD_QUOTA_BYTES, &r->quota_bytes))
		return line_fail(err, errsize, path, lineno,
		    "quota_bytes= wants octets (k, M or G allowed) up to %llu",
		    (unsigned long long)HARD_QUOTA_BYTES);
	if (ex->v[EX_QUOTA_MESSAGES] != NULL &&
	    !dec_value(ex->v[EX_QUOTA_MESSAGES], ex->n[EX_QUOTA_MESSAGES],
	    HARD_QUOTA_MESSAGES, &r->quota_messages))
		return line_fail(err, errsize, path, lineno,
		    "quota_messages= wants a number from 0 to %llu",
		    (unsigned long long)HARD_QUOTA_MESSAGES);
	return 0;
}

/*
 * Checks one line (line_len octets at data + off, not counting its LF)
 * and adds its user to t.  Cuts the name, the password and the known
 * credential values out with NULs in place, and decodes a secret= in
 * place.  Blank and comment lines are skipped.
 */
static int
parse_line(char *data, size_t off, size_t line_len, unsigned long lineno,
    const char *path, struct table *t, char *err, size_t errsize)
{
	char *line = data + off, *end = line + line_len;
	char *colon, *pass, *p, *q;
	char secret[USER_SECRET_SIZE];
	const struct urec *first;
	struct extra_vals ex;
	struct urec r;
	size_t i, slot, nlen, plen;
	int field, rc = -1;

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
	memset(&ex, 0, sizeof(ex));
	if (q != NULL && parse_extra(p, end, &ex, lineno, path, err,
	    errsize) == -1)
		return -1;
	if (check_extra(line, &ex, &r, secret, lineno, path, err,
	    errsize) == -1)
		goto out;

	if (plen == 0 && r.scram1_off == 0 && r.scram256_off == 0 &&
	    r.secret_off == 0) {
		line_fail(err, errsize, path, lineno, "empty password field "
		    "and no scram-sha-1=, scram-sha-256= or secret= (the user "
		    "could never log in)");
		goto out;
	}
	/* Cut the fields; extra values end at a blank or the line's end. */
	*end = '\0';
	pass[plen] = '\0';
	*colon = '\0';
	if (plen > 0 && !pw_stored_valid(pass)) {
		line_fail(err, errsize, path, lineno,
		    "bad password field (want {YESCRYPT}, {SHA512-CRYPT}, "
		    "{BLF-CRYPT}, {CRYPT} or {PLAIN} and a value of that "
		    "scheme)");
		goto out;
	}
	r.plain = plen > 0 && pw_plain_secret(pass) != NULL;
	if (r.plain && r.secret_off != 0) {
		line_fail(err, errsize, path, lineno, "secret= and a {PLAIN} "
		    "password both given (keep one)");
		goto out;
	}
	if ((first = table_find(t, data, line, nlen, &slot)) != NULL) {
		line_fail(err, errsize, path, lineno,
		    "duplicate user '%s' (first on line %lu)", line,
		    (unsigned long)first->lineno);
		goto out;
	}
	if (ex.v[EX_SCRAM1] != NULL)
		ex.v[EX_SCRAM1][ex.n[EX_SCRAM1]] = '\0';
	if (ex.v[EX_SCRAM256] != NULL)
		ex.v[EX_SCRAM256][ex.n[EX_SCRAM256]] = '\0';
	if (ex.v[EX_SECRET] != NULL) {
		/* Decoded, it is shorter than its base64 form. */
		memcpy(ex.v[EX_SECRET], secret, strlen(secret) + 1);
	}
	if (table_add(t, &r, slot) == -1) {
		errf(err, errsize, "%s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	explicit_bzero(secret, sizeof(secret));
	return rc;
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
		errf(err, errsize, "%s: %s", path, strerror(errno));
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
		errf(err, errsize, "%s: not a regular file", path);
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
		errf(err, errsize, "%s: larger than %u octets", path,
		    USERDB_MAX_BYTES);
	else
		errf(err, errsize, "%s: %s", path, strerror(errno));
fail_msg:
	saved = errno;
	if (fd != -1)
		close(fd);
	free_secret(data, data != NULL ? cap : 0);
	errno = saved;
	return -1;
}

/* Releases what db_load filled in, wiping the file copy. */
static void
db_clear(struct userdb *db)
{
	free_secret(db->data, db->size + 1);
	db->data = NULL;
	db->size = 0;
	table_free(&db->t);
	explicit_bzero(&db->cur, sizeof(db->cur));
	db->caps = 0;
}

/* What the enabled users of t can log in with. */
static unsigned int
table_caps(const struct table *t)
{
	unsigned int caps = 0;
	size_t i;

	for (i = 0; i < t->n; i++) {
		const struct urec *r = &t->recs[i];

		if (r->disabled)
			continue;
		if (r->pass_len > 0 || r->secret_off != 0)
			caps |= USERDB_CAP_CRYPT;
		if (r->plain || r->secret_off != 0)
			caps |= USERDB_CAP_SECRET;
		if (r->scram1_off != 0)
			caps |= USERDB_CAP_SCRAM_SHA1;
		if (r->scram256_off != 0)
			caps |= USERDB_CAP_SCRAM_SHA256;
	}
	return caps;
}

/* Loads db->path into the empty db.  -1 with err set. */
static int
db_load(struct userdb *db, char *err, size_t errsize)
{
	struct stat st;

	if (read_db(db->path, &db->data, &db->size, &st, err, errsize) == -1)
		return -1;
	if (parse_file(db->data, db->size, db->path, &db->t, err,
	    errsize) == -1) {
		db_clear(db);
		errno = EINVAL;
		return -1;
	}
	db->caps = table_caps(&db->t);
	file_id_from_stat(&db->id, &st);
	return 0;
}

/* Fills db->cur from r (checked at load) and returns it. */
static const struct user_rec *
fill_rec(struct userdb *db, const struct urec *r)
{
	struct user_rec *u = &db->cur;
	char *line = db->data + r->line_off;
	const char *plain, *why;

	explicit_bzero(u, sizeof(*u));
	u->name = line;
	if (r->pass_len > 0)
		u->password = line + r->name_len + 1;
	if (r->secret_off != 0)
		u->secret = line + r->secret_off;
	else if (r->plain && (plain = pw_plain_secret(u->password)) != NULL)
		u->secret = u->password + (plain - u->password);
	if (r->scram1_off != 0 && scram_cred_parse(line + r->scram1_off,
	    strlen(line + r->scram1_off), false, &u->scram_sha1, &why) == -1)
		u->scram_sha1.set = false;
	if (r->scram256_off != 0 && scram_cred_parse(line + r->scram256_off,
	    strlen(line + r->scram256_off), true, &u->scram_sha256,
	    &why) == -1)
		u->scram_sha256.set = false;
	u->login_delay_s = r->login_delay;
	u->expire_days = r->expire;
	u->disabled = r->disabled;
	u->quota_bytes = r->quota_bytes;
	u->quota_messages = r->quota_messages;
	return u;
}

int
userdb_open(const char *path, enum userdb_type type, struct userdb **db_r,
    char *err, size_t errsize)
{
	struct userdb *db;
	int saved;

	*db_r = NULL;
	if ((db = calloc(1, sizeof(*db))) == NULL ||
	    (db->path = strdup(path)) == NULL) {
		saved = errno;
		errf(err, errsize, "%s: %s", path, strerror(errno));
		free(db);
		errno = saved;
		return -1;
	}
	db->type = type;
	if (type == USERDB_SQLITE ? usq_open(path, &db->sq, err,
	    errsize) == -1 : db_load(db, err, errsize) == -1) {
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

	if (db->type == USERDB_SQLITE)
		return usq_refresh(db->sq, err, errsize);
	memset(&cur, 0, sizeof(cur));
	if (stat(db->path, &st) == -1)
		cur.err = errno != 0 ? errno : EIO;
	else
		file_id_from_stat(&cur, &st);
	if (cur.err == 0 && file_id_equal(&cur, &db->id))
		return 0;
	if (db->have_bad && file_id_equal(&cur, &db->bad_id))
		return 0;	/* reported already; keep the old contents */
	if (cur.err != 0) {
		errf(err, errsize, "%s: %s (keeping the users loaded "
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
	db->caps = fresh.caps;
	db->id = fresh.id;
	db->have_bad = false;
	return 0;
}

const struct user_rec *
userdb_lookup(struct userdb *db, const char *name)
{
	const struct urec *r;
	size_t n;

	if (db == NULL || name == NULL)
		return NULL;
	n = strnlen(name, MAX_USERNAME_LEN + 1);
	if (n == 0 || n > MAX_USERNAME_LEN)
		return NULL;
	if (db->type == USERDB_SQLITE)
		return usq_lookup(db->sq, name);
	r = table_find(&db->t, db->data, name, n, NULL);
	if (r == NULL)
		return NULL;
	return fill_rec(db, r);
}

int
userdb_lookup_checked(struct userdb *db, const char *name,
    const struct user_rec **u_r, char *err, size_t errsize)
{
	size_t n;

	*u_r = NULL;
	if (db == NULL || name == NULL)
		return 0;
	n = strnlen(name, MAX_USERNAME_LEN + 1);
	if (n == 0 || n > MAX_USERNAME_LEN)
		return 0;
	if (db->type == USERDB_SQLITE)
		return usq_lookup_checked(db->sq, name, u_r, err, errsize);
	*u_r = userdb_lookup(db, name);
	return *u_r != NULL ? 1 : 0;
}

unsigned int
userdb_caps(struct userdb *db)
{
	if (db == NULL)
		return 0;
	if (db->type == USERDB_SQLITE)
		return usq_caps(db->sq);
	return db->caps;
}

int
userdb_foreach(struct userdb *db, int (*fn)(const struct user_rec *, void *),
    void *arg, char *err, size_t errsize)
{
	size_t i;
	int rc = 0;

	if (db->type == USERDB_SQLITE)
		return usq_foreach(db->sq, fn, arg, err, errsize);
	for (i = 0; rc == 0 && i < db->t.n; i++)
		rc = fn(fill_rec(db, &db->t.recs[i]), arg);
	explicit_bzero(&db->cur, sizeof(db->cur));
	return rc;
}

void
userdb_free(struct userdb **dbp)
{
	struct userdb *db = *dbp;

	if (db == NULL)
		return;
	if (db->type == USERDB_SQLITE)
		usq_free(&db->sq);
	else
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
		errf(err, errsize, "%s: path too long", path);
		return -1;
	}
	fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
	    O_NOCTTY, 0600);
	if (fd == -1) {
		saved = errno;
		errf(err, errsize, "%s: %s", lockpath, strerror(errno));
		errno = saved;
		return -1;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK || waited >= USERDB_LOCK_WAIT_MS) {
			saved = errno == EWOULDBLOCK ? EBUSY : errno;
			if (saved == EBUSY)
				errf(err, errsize, "%s: held by another "
				    "process for %u s", lockpath,
				    USERDB_LOCK_WAIT_MS / 1000);
			else
				errf(err, errsize, "%s: %s", lockpath,
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
	errf(err, errsize, "%s: written, but its owner and mode could not "
	    "be restored: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	errno = saved;
	return -1;
}

/* Appends a blank before every token but the first. */
static int
tok_start(struct buf *b, bool *first)
{
	if (*first) {
		*first = false;
		return 0;
	}
	return buf_addc(b, ' ');
}

/* The extra tokens of u's credentials other than its password.  The
 * value of a {PLAIN} password is the secret already. */
static int
cred_tokens(struct buf *b, const struct user_rec *u, bool *first)
{
	char text[SCRAM_TEXT_MAX], sec[USER_SECRET_B64_SIZE];
	int rc = -1;

	if (u->scram_sha1.set && (scram_cred_format(&u->scram_sha1, text,
	    sizeof(text)) == -1 || tok_start(b, first) == -1 ||
	    buf_addf(b, "%s=%s", extra_names[EX_SCRAM1], text) == -1))
		goto out;
	if (u->scram_sha256.set && (scram_cred_format(&u->scram_sha256, text,
	    sizeof(text)) == -1 || tok_start(b, first) == -1 ||
	    buf_addf(b, "%s=%s", extra_names[EX_SCRAM256], text) == -1))
		goto out;
	if (u->secret != NULL && pw_plain_secret(u->password) == NULL &&
	    (user_secret_encode(u->secret, sec, sizeof(sec)) == -1 ||
	    tok_start(b, first) == -1 ||
	    buf_addf(b, "%s=%s", extra_names[EX_SECRET], sec) == -1))
		goto out;
	rc = 0;
out:
	explicit_bzero(text, sizeof(text));
	explicit_bzero(sec, sizeof(sec));
	return rc;
}

/* The extra tokens of options that differ from the site's defaults. */
static int
opt_tokens(struct buf *b, const struct opt_vals *o, bool *first)
{
	int64_t login_delay = o->login_delay, expire = o->expire;
	bool disabled = o->disabled;

	if (o->quota_bytes > 0 && (tok_start(b, first) == -1 ||
	    buf_addf(b, "%s=%llu", extra_names[EX_QUOTA_BYTES],
	    (unsigned long long)o->quota_bytes) == -1))
		return -1;
	if (o->quota_messages > 0 && (tok_start(b, first) == -1 ||
	    buf_addf(b, "%s=%llu", extra_names[EX_QUOTA_MESSAGES],
	    (unsigned long long)o->quota_messages) == -1))
		return -1;
	if (login_delay >= 0 && (tok_start(b, first) == -1 ||
	    buf_addf(b, "%s=%lld", extra_names[EX_LOGIN_DELAY],
	    (long long)login_delay) == -1))
		return -1;
	if (expire == USER_EXPIRE_NEVER && (tok_start(b, first) == -1 ||
	    buf_addf(b, "%s=never", extra_names[EX_EXPIRE]) == -1))
		return -1;
	if (expire >= 0 && (tok_start(b, first) == -1 ||
	    buf_addf(b, "%s=%lld", extra_names[EX_EXPIRE],
	    (long long)expire) == -1))
		return -1;
	if (disabled && (tok_start(b, first) == -1 ||
	    buf_addf(b, "%s=yes", extra_names[EX_DISABLED]) == -1))
		return -1;
	return 0;
}

/* Whether op rewrites the extra key k. */
static bool
key_replaced(enum edit_op op, int k)
{
	bool cred = k == EX_SCRAM1 || k == EX_SCRAM256 || k == EX_SECRET;

	if (k < 0)
		return false;
	return op == EDIT_CREDS ? cred : op == EDIT_OPTS ? !cred : false;
}

/*
 * The new text of the edited line (without its LF) into out: for
 * EDIT_ADD from req->u; else from the old line (len octets at line, r
 * its record) with the credentials (EDIT_CREDS) or the options
 * (EDIT_OPTS) replaced, its other fields and extra keys kept.
 */
static int
line_build(const struct edit_req *req, const char *line, size_t len,
    const struct urec *r, struct buf *out)
{
	const struct user_rec *u = req->u;
	const char *end = line + len, *p, *q, *tok;
	struct buf extra;
	size_t pass_end, pos, n;
	unsigned int colons = 0;
	bool first = true, has_extra = false;
	struct opt_vals ov;
	int rc = -1;

	buf_init(&extra, USERDB_MAX_BYTES);
	if (req->op == EDIT_ADD) {
		ov.login_delay = u->login_delay_s;
		ov.expire = u->expire_days;
		ov.disabled = u->disabled;
		ov.quota_bytes = u->quota_bytes;
		ov.quota_messages = u->quota_messages;
		if (cred_tokens(&extra, u, &first) == -1 ||
		    opt_tokens(&extra, &ov, &first) == -1 ||
		    buf_addf(out, "%s:%s", u->name, u->password != NULL ?
		    u->password : "") == -1 ||
		    (extra.len > 0 && (buf_addstr(out, "::::::") == -1 ||
		    buf_add(out, extra.data, extra.len) == -1)))
			goto out;
		rc = 0;
		goto out;
	}

	/* name:password, then up to six ':', the sixth opening extra. */
	pass_end = (size_t)r->name_len + 1 + r->pass_len;
	pos = pass_end;
	if (pos < len) {
		colons = 1;
		pos++;
		while (colons < 6 &&
		    (q = memchr(line + pos, ':', len - pos)) != NULL) {
			colons++;
			pos = (size_t)(q - line) + 1;
		}
		has_extra = colons == 6;
	}
	if (has_extra) {
		p = line + pos;
		while (extra_next(&p, end, &tok, &n)) {
			if (key_replaced(req->op, extra_key(tok, n)))
				continue;
			if (tok_start(&extra, &first) == -1 ||
			    buf_add(&extra, tok, n) == -1)
				goto out;
		}
	}
	if (req->op == EDIT_CREDS) {
		if (cred_tokens(&extra, u, &first) == -1)
			goto out;
	} else {
		ov.login_delay = req->login_delay_s == USERDB_KEEP ?
		    r->login_delay : req->login_delay_s;
		ov.expire = req->expire_days == USERDB_KEEP ? r->expire :
		    req->expire_days;
		ov.disabled = req->disabled < 0 ? r->disabled :
		    req->disabled != 0;
		ov.quota_bytes = req->quota_bytes == USERDB_KEEP ?
		    r->quota_bytes : (uint64_t)req->quota_bytes;
		ov.quota_messages = req->quota_messages == USERDB_KEEP ?
		    r->quota_messages : (uint64_t)req->quota_messages;
		if (opt_tokens(&extra, &ov, &first) == -1)
			goto out;
	}

	if (buf_add(out, line, (size_t)r->name_len + 1) == -1)
		goto out;
	if (req->op == EDIT_CREDS) {
		if (u->password != NULL && buf_addstr(out, u->password) == -1)
			goto out;
	} else if (buf_add(out, line + r->name_len + 1, r->pass_len) == -1)
		goto out;
	if (buf_add(out, line + pass_end, (has_extra ? pos : len) -
	    pass_end) == -1)
		goto out;
	for (; extra.len > 0 && colons < 6; colons++)
		if (buf_addc(out, ':') == -1)
			goto out;
	if (buf_add(out, extra.data, extra.len) == -1)
		goto out;
	rc = 0;
out:
	buf_clear_secret(&extra);
	return rc;
}

/* Builds the edited file in out from the original orig (olen octets);
 * line is the new text of the user's line (ADD, CREDS, OPTS). */
static int
edit_build(enum edit_op op, const char *orig, size_t olen,
    const struct urec *r, const struct buf *line, struct buf *out)
{
	size_t line_end;

	switch (op) {
	case EDIT_ADD:
		if (buf_add(out, orig, olen) == -1 ||
		    (olen > 0 && orig[olen - 1] != '\n' &&
		    buf_addc(out, '\n') == -1) ||
		    buf_add(out, line->data, line->len) == -1 ||
		    buf_addc(out, '\n') == -1)
			return -1;
		return 0;
	case EDIT_CREDS:
	case EDIT_OPTS:
		if (buf_add(out, orig, r->line_off) == -1 ||
		    buf_add(out, line->data, line->len) == -1 ||
		    buf_add(out, orig + r->line_off + r->line_len,
		    olen - r->line_off - r->line_len) == -1)
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

/* Parses a copy of the len octets at text as userdb_open would.  0, or
 * -1 with err set. */
static int
check_text(const char *text, size_t len, const char *path, char *err,
    size_t errsize)
{
	struct table t;
	char *copy;
	int rc;

	if ((copy = malloc(len + 1)) == NULL) {
		errf(err, errsize, "%s: %s", path, strerror(errno));
		return -1;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	rc = parse_file(copy, len, path, &t, err, errsize);
	if (rc == 0)
		table_free(&t);
	free_secret(copy, len + 1);
	return rc;
}

static int
file_edit(const char *path, const struct edit_req *req, char *err,
    size_t errsize)
{
	char *real = NULL, *orig = NULL, *copy = NULL;
	const char *target = path, *name = req->name;
	struct table t;
	struct stat st;
	struct buf out, line;
	const struct urec *r;
	size_t olen = 0;
	mode_t mode = 0600;
	bool exists = true;
	int lockfd = -1, rc = -1, saved = 0;

	memset(&t, 0, sizeof(t));
	buf_init(&out, USERDB_MAX_BYTES);
	buf_init(&line, USERDB_MAX_BYTES);

	/* Edit the file a symbolic link points to, not the link. */
	if ((real = realpath(path, NULL)) != NULL)
		target = real;
	else if (errno != ENOENT) {
		saved = errno;
		errf(err, errsize, "%s: %s", path, strerror(errno));
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
		if (req->op != EDIT_ADD) {
			errf(err, errsize, "no user '%s' in %s (the file "
			    "does not exist)", name, path);
			saved = ENOENT;
			goto out;
		}
		exists = false;
		if ((orig = calloc(1, 1)) == NULL) {
			saved = errno;
			errf(err, errsize, "%s: %s", path, strerror(errno));
			goto out;
		}
	} else
		mode = st.st_mode & 07777;

	/* Refuse to edit a file the server would refuse to load: the
	 * administrator fixes it first, and we never hide a bad line. */
	if ((copy = malloc(olen + 1)) == NULL) {
		saved = errno;
		errf(err, errsize, "%s: %s", path, strerror(errno));
		goto out;
	}
	memcpy(copy, orig, olen + 1);
	if (parse_file(copy, olen, path, &t, err, errsize) == -1) {
		saved = errno;
		goto out;
	}
	r = table_find(&t, copy, name, strlen(name), NULL);
	if (req->op == EDIT_ADD && r != NULL) {
		errf(err, errsize, "user '%s' already exists in %s", name,
		    path);
		saved = EEXIST;
		goto out;
	}
	if (req->op != EDIT_ADD && r == NULL) {
		errf(err, errsize, "no user '%s' in %s", name, path);
		saved = ENOENT;
		goto out;
	}
	if (req->op != EDIT_DEL && line_build(req, r != NULL ?
	    orig + r->line_off : NULL, r != NULL ? r->line_len : 0, r,
	    &line) == -1) {
		saved = errno;
		errf(err, errsize, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (line.len > USERDB_MAX_LINE) {
		errf(err, errsize, "the line of '%s' would be longer than "
		    "%d octets", name, USERDB_MAX_LINE);
		saved = EINVAL;
		goto out;
	}
	if (edit_build(req->op, orig, olen, r, &line, &out) == -1) {
		saved = errno;
		if (errno == EMSGSIZE)
			errf(err, errsize, "%s: would grow past %u octets",
			    path, USERDB_MAX_BYTES);
		else
			errf(err, errsize, "%s: %s", path, strerror(errno));
		goto out;
	}
	/* What we write must load: check it as the server will. */
	if (check_text(out.data != NULL ? out.data : "", out.len, path, err,
	    errsize) == -1) {
		saved = EINVAL;
		goto out;
	}
	if (write_atomic(target, out.data != NULL ? out.data : "", out.len,
	    mode) == -1) {
		saved = errno;
		errf(err, errsize, "%s: %s (nothing changed)", path,
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
	buf_clear_secret(&line);
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

/* Checks an edit before either store sees it.  0, or -1 (EINVAL) with
 * err set. */
static int
edit_check(const struct edit_req *req, char *err, size_t errsize)
{
	struct user_rec u;
	const char *why = NULL;

	if (!username_valid(req->name)) {
		errf(err, errsize, "invalid user name (allowed: %s)",
		    name_rules);
		errno = EINVAL;
		return -1;
	}
	switch (req->op) {
	case EDIT_ADD:
		why = user_rec_problem(req->u);
		break;
	case EDIT_CREDS:
		u = *req->u;
		u.name = NULL;
		u.login_delay_s = -1;
		u.expire_days = USER_EXPIRE_DEFAULT;
		why = user_rec_problem(&u);
		explicit_bzero(&u, sizeof(u));
		break;
	case EDIT_OPTS:
		if (req->login_delay_s != USERDB_KEEP &&
		    req->login_delay_s != -1 && (req->login_delay_s < 0 ||
		    req->login_delay_s > USER_MAX_LOGIN_DELAY))
			why = "login delay out of range (0 to 2592000 seconds)";
		else if (req->expire_days != USERDB_KEEP &&
		    req->expire_days != USER_EXPIRE_DEFAULT &&
		    req->expire_days != USER_EXPIRE_NEVER &&
		    (req->expire_days < 0 ||
		    req->expire_days > USER_MAX_EXPIRE_DAYS))
			why = "expire out of range (0 to 100000 days, or "
			    "never)";
		else if (req->disabled < -1 || req->disabled > 1)
			why = "disabled must be -1, 0 or 1";
		else if (req->quota_bytes != USERDB_KEEP &&
		    (req->quota_bytes < 0 ||
		    (uint64_t)req->quota_bytes > HARD_QUOTA_BYTES))
			why = "quota_bytes out of range (0 to 1P)";
		else if (req->quota_messages != USERDB_KEEP &&
		    (req->quota_messages < 0 ||
		    (uint64_t)req->quota_messages > HARD_QUOTA_MESSAGES))
			why = "quota_messages out of range (0 to 4294967295)";
		break;
	case EDIT_DEL:
		break;
	}
	if (why != NULL) {
		errf(err, errsize, "user '%s': %s", req->name, why);
		errno = EINVAL;
		return -1;
	}
	return 0;
}

int
userdb_edit_add(enum userdb_type type, const char *path,
    const struct user_rec *u, char *err, size_t errsize)
{
	struct edit_req req;

	memset(&req, 0, sizeof(req));
	req.op = EDIT_ADD;
	req.name = u->name;
	req.u = u;
	if (edit_check(&req, err, errsize) == -1)
		return -1;
	if (type == USERDB_SQLITE)
		return usq_edit_add(path, u, err, errsize);
	return file_edit(path, &req, err, errsize);
}

int
userdb_edit_set_credentials(enum userdb_type type, const char *path,
    const char *name, const struct user_rec *creds, char *err,
    size_t errsize)
{
	struct edit_req req;

	memset(&req, 0, sizeof(req));
	req.op = EDIT_CREDS;
	req.name = name;
	req.u = creds;
	if (edit_check(&req, err, errsize) == -1)
		return -1;
	if (type == USERDB_SQLITE)
		return usq_edit_set_credentials(path, name, creds, err,
		    errsize);
	return file_edit(path, &req, err, errsize);
}

int
userdb_edit_set_options(enum userdb_type type, const char *path,
    const char *name, int64_t login_delay_s, int64_t expire_days,
    int disabled, char *err, size_t errsize)
{
	struct edit_req req;

	memset(&req, 0, sizeof(req));
	req.op = EDIT_OPTS;
	req.name = name;
	req.login_delay_s = login_delay_s;
	req.expire_days = expire_days;
	req.disabled = disabled;
	req.quota_bytes = USERDB_KEEP;
	req.quota_messages = USERDB_KEEP;
	if (edit_check(&req, err, errsize) == -1)
		return -1;
	if (type == USERDB_SQLITE)
		return usq_edit_set_options(path, name, login_delay_s,
		    expire_days, disabled, err, errsize);
	return file_edit(path, &req, err, errsize);
}

int
userdb_edit_set_quota(enum userdb_type type, const char *path,
    const char *name, int64_t quota_bytes, int64_t quota_messages, char *err,
    size_t errsize)
{
	struct edit_req req;

	memset(&req, 0, sizeof(req));
	req.op = EDIT_OPTS;
	req.name = name;
	req.login_delay_s = USERDB_KEEP;
	req.expire_days = USERDB_KEEP;
	req.disabled = -1;
	req.quota_bytes = quota_bytes;
	req.quota_messages = quota_messages;
	if (edit_check(&req, err, errsize) == -1)
		return -1;
	if (type == USERDB_SQLITE)
		return usq_edit_set_quota(path, name, quota_bytes,
		    quota_messages, err, errsize);
	return file_edit(path, &req, err, errsize);
}

int
userdb_edit_delete(enum userdb_type type, const char *path, const char *name,
    char *err, size_t errsize)
{
	struct edit_req req;

	memset(&req, 0, sizeof(req));
	req.op = EDIT_DEL;
	req.name = name;
	if (edit_check(&req, err, errsize) == -1)
		return -1;
	if (type == USERDB_SQLITE)
		return usq_edit_delete(path, name, err, errsize);
	return file_edit(path, &req, err, errsize);
}
