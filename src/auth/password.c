/*
 * password.c: stored password fields ("{SCHEME}value"): hashing new
 * passwords, checking candidates, recognising well-formed fields.
 *
 * Owns: the scheme table and the dummy hash for unknown users.
 * Trusts: the stored field only as far as its syntax goes (it comes from
 * the administrator's file, which userdb.c validated); the candidate
 * password is a peer's and is only ever handed to crypt(3) or a digest.
 * Every copy of a password or of crypt(3)'s work area is wiped here.
 */
#include <crypt.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/userdb.h"
#include "lib/buf.h"

enum stored_kind {
	KIND_YESCRYPT,
	KIND_SHA512_CRYPT,
	KIND_BLF_CRYPT,
	KIND_CRYPT,
	KIND_PLAIN,
};

/* Scheme names as written inside the braces (matched in any case). */
static const struct {
	const char		*name;
	enum stored_kind	 kind;
} stored_names[] = {
	{ "YESCRYPT",		KIND_YESCRYPT },
	{ "SHA512-CRYPT",	KIND_SHA512_CRYPT },
	{ "BLF-CRYPT",		KIND_BLF_CRYPT },
	{ "CRYPT",		KIND_CRYPT },
	{ "PLAIN",		KIND_PLAIN },
};

/* What pw_hash writes for each pw_scheme. */
static const struct {
	const char	*brace;		/* name in the stored field */
	const char	*prefix;	/* for crypt_gensalt; NULL: plain */
	unsigned long	 cost;		/* 0: libxcrypt's default */
} hash_defs[] = {
	[PW_YESCRYPT]		= { "YESCRYPT",	    "$y$",  0 },
	[PW_SHA512_CRYPT]	= { "SHA512-CRYPT", "$6$",  0 },
	/* libxcrypt's default bcrypt cost is 5, too cheap for an
	 * attacker with a stolen file: 10 is the common floor. */
	[PW_BCRYPT]		= { "BLF-CRYPT",    "$2b$", 10 },
	[PW_PLAIN]		= { "PLAIN",	    NULL,   0 },
};

/* The longest scheme name we know, braces excluded. */
#define SCHEME_NAME_MAX	16

/*
 * Used only if the dummy hash cannot be computed (no entropy, no memory):
 * a yescrypt hash of 64 random hex digits that were thrown away, so an
 * unknown user still costs one yescrypt computation.
 */
static const char dummy_fallback[] =
    "{YESCRYPT}$y$j9T$9CgONLe2V/TkbhDx2p.J30$"
    "VWq/PVrQHEktSjJ339qA/0voUCtDipe.8aNnhOaqRk/";

/* Splits stored into its kind and value.  0, or -1 if no scheme we know. */
static int
stored_parse(const char *stored, enum stored_kind *kind_r,
    const char **value_r)
{
	const char *end;
	size_t i, n;

	if (stored == NULL)
		return -1;
	if (stored[0] == '$') {
		/* userdb.h: a bare "$id$..." is CRYPT. */
		*kind_r = KIND_CRYPT;
		*value_r = stored;
		return 0;
	}
	if (stored[0] != '{')
		return -1;
	end = strchr(stored, '}');
	if (end == NULL)
		return -1;
	n = (size_t)(end - stored - 1);
	if (n == 0 || n > SCHEME_NAME_MAX)
		return -1;
	for (i = 0; i < N_ELEMENTS(stored_names); i++) {
		if (strlen(stored_names[i].name) == n &&
		    strncasecmp(stored + 1, stored_names[i].name, n) == 0) {
			*kind_r = stored_names[i].kind;
			*value_r = end + 1;
			return 0;
		}
	}
	return -1;
}

static bool
has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A PLAIN secret: anything but ':' (the field separator) and controls. */
static bool
plain_value_valid(const char *v)
{
	const unsigned char *p;

	if (*v == '\0')
		return false;
	for (p = (const unsigned char *)v; *p != '\0'; p++)
		if (*p == ':' || *p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* A crypt(3) string of the expected family, well enough formed that
 * crypt(3) can use it as a setting. */
static bool
crypt_value_valid(enum stored_kind kind, const char *v)
{
	const char *p;
	size_t dollars = 0;
	int rc;

	for (p = v; *p != '\0'; p++) {
		if (*p <= ' ' || *p > '~' || *p == ':')
			return false;
		if (*p == '$')
			dollars++;
	}
	switch (kind) {
	case KIND_YESCRYPT:
		if (!has_prefix(v, "$y$"))
			return false;
		break;
	case KIND_SHA512_CRYPT:
		if (!has_prefix(v, "$6$"))
			return false;
		break;
	case KIND_BLF_CRYPT:
		if (!has_prefix(v, "$2b$") && !has_prefix(v, "$2a$") &&
		    !has_prefix(v, "$2y$"))
			return false;
		break;
	case KIND_CRYPT:
		break;
	case KIND_PLAIN:
		return false;
	}
	rc = crypt_checksalt(v);
	if (rc != CRYPT_SALT_OK &&
	    !(kind == KIND_CRYPT && rc == CRYPT_SALT_METHOD_LEGACY))
		return false;
	if (v[0] != '$')
		return kind == KIND_CRYPT;	/* traditional DES */
	/* "$id$[params$]salt$hash": the hash part must be there. */
	return dollars >= 3 && p[-1] != '$';
}

bool
pw_stored_valid(const char *stored)
{
	enum stored_kind kind;
	const char *v;

	if (stored_parse(stored, &kind, &v) == -1)
		return false;
	if (kind == KIND_PLAIN)
		return plain_value_valid(v);
	return crypt_value_valid(kind, v);
}

int
pw_scheme_parse(const char *s, enum pw_scheme *r)
{
	static const struct {
		const char	*name;
		enum pw_scheme	 scheme;
	} names[] = {
		{ "yescrypt",		PW_YESCRYPT },
		{ "sha512-crypt",	PW_SHA512_CRYPT },
		{ "bcrypt",		PW_BCRYPT },
		{ "blf-crypt",		PW_BCRYPT },
		{ "plain",		PW_PLAIN },
	};
	size_t i;

	if (s == NULL)
		return -1;
	for (i = 0; i < N_ELEMENTS(names); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*r = names[i].scheme;
			return 0;
		}
	}
	return -1;
}

int
pw_hash(enum pw_scheme scheme, const char *pass, char *out, size_t outsize)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	const char *h;
	int rc = -1, saved = 0;

	if ((unsigned int)scheme >= N_ELEMENTS(hash_defs) || pass == NULL ||
	    pass[0] == '\0') {
		errno = EINVAL;
		return -1;
	}
	if (strlen(pass) > (scheme == PW_PLAIN ? (size_t)MAX_PASSWORD_LEN :
	    (size_t)PW_HASH_MAX_PASS)) {
		errno = ERANGE;
		return -1;
	}
	if (scheme == PW_PLAIN) {
		if (!plain_value_valid(pass)) {
			errno = EINVAL;
			return -1;
		}
		if (str_fmt(out, outsize, "{%s}%s", hash_defs[scheme].brace,
		    pass) == -1) {
			explicit_bzero(out, outsize);
			errno = ERANGE;
			return -1;
		}
		return 0;
	}

	/* Count 0: the library's default cost for the method; NULL random
	 * bytes: the library reads them from the kernel. */
	if (crypt_gensalt_rn(hash_defs[scheme].prefix, hash_defs[scheme].cost,
	    NULL, 0, setting,
	    (int)sizeof(setting)) == NULL)
		return -1;
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return -1;
	errno = 0;
	h = crypt_rn(pass, setting, cd, (int)sizeof(*cd));
	if (h == NULL || h[0] == '*') {
		saved = errno != 0 ? errno : EINVAL;
	} else if (str_fmt(out, outsize, "{%s}%s", hash_defs[scheme].brace,
	    h) == -1) {
		explicit_bzero(out, outsize);
		saved = ERANGE;
	} else
		rc = 0;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	if (rc == -1)
		errno = saved;
	return rc;
}

/*
 * Compares a candidate with a PLAIN secret without a timing signal about
 * the secret's content or length: both are reduced to SHA-256 digests of
 * fixed size, which are compared in constant time.
 */
static bool
plain_equal(const char *secret, const char *pass)
{
	unsigned char ds[EVP_MAX_MD_SIZE], dp[EVP_MAX_MD_SIZE];
	unsigned int ls = 0, lp = 0;
	bool ok = false;

	if (EVP_Digest(secret, strlen(secret), ds, &ls, EVP_sha256(),
	    NULL) == 1 &&
	    EVP_Digest(pass, strlen(pass), dp, &lp, EVP_sha256(), NULL) == 1 &&
	    ls == lp && ls > 0)
		ok = CRYPTO_memcmp(ds, dp, ls) == 0;
	explicit_bzero(ds, sizeof(ds));
	explicit_bzero(dp, sizeof(dp));
	return ok;
}

bool
pw_verify(const char *stored, const char *pass)
{
	struct crypt_data *cd;
	enum stored_kind kind;
	const char *v, *h;
	size_t n;
	bool ok = false;

	if (pass == NULL || stored_parse(stored, &kind, &v) == -1)
		return false;
	if (kind == KIND_PLAIN)
		return plain_value_valid(v) && plain_equal(v, pass);
	if (!crypt_value_valid(kind, v) || strlen(pass) > PW_HASH_MAX_PASS)
		return false;
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return false;
	/* The stored hash is its own setting: crypt(3) reads the method,
	 * cost and salt from it and ignores the hash part. */
	h = crypt_rn(pass, v, cd, (int)sizeof(*cd));
	if (h != NULL && h[0] != '*') {
		n = strlen(v);
		ok = strlen(h) == n && CRYPTO_memcmp(h, v, n) == 0;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

const char *
pw_dummy_hash(void)
{
	static char dummy[PW_HASH_OUT_SIZE];
	static bool done;
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[32];
	char pass[2 * sizeof(rnd) + 1];
	size_t got = 0, i;
	ssize_t n;

	if (done)
		return dummy[0] != '\0' ? dummy : dummy_fallback;
	done = true;
	while (got < sizeof(rnd)) {
		n = getrandom(rnd + got, sizeof(rnd) - got, 0);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			explicit_bzero(rnd, sizeof(rnd));
			return dummy_fallback;
		}
		got += (size_t)n;
	}
	for (i = 0; i < sizeof(rnd); i++) {
		pass[2 * i] = hex[rnd[i] >> 4];
		pass[2 * i + 1] = hex[rnd[i] & 0x0f];
	}
	pass[2 * sizeof(rnd)] = '\0';
	if (pw_hash(PW_YESCRYPT, pass, dummy, sizeof(dummy)) == -1)
		dummy[0] = '\0';
	explicit_bzero(rnd, sizeof(rnd));
	explicit_bzero(pass, sizeof(pass));
	return dummy[0] != '\0' ? dummy : dummy_fallback;
}

const char *
pw_plain_secret(const char *stored)
{
	enum stored_kind kind;
	const char *v;

	if (stored_parse(stored, &kind, &v) == -1 || kind != KIND_PLAIN ||
	    v[0] == '\0')
		return NULL;
	return v;
}
