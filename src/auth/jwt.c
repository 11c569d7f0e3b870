/*
 * jwt.c: JWT (RFC 7519) verification against a keyring of trusted
 * issuers' public keys: RS256 and ES256 only (RFC 7518 sections 3.3 and
 * 3.4), with the algorithm fixed by the key (RFC 8725).
 *
 * Owns: the keyring (issuer strings and OpenSSL public keys), and for one
 * call the decoded header, payload and signature, wiped before freeing.
 * Trusts: the PEM files (the administrator's); nothing in a token, which
 * comes from a peer: every part is bounded, strictly decoded and checked
 * before use, and the signature is verified before any claim other than
 * "iss" (needed to pick the key) is believed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "auth/jwt.h"
#include "lib/buf.h"

#define RSA_MIN_BITS		2048
#define ES256_COORD_LEN		32		/* octets of R, of S */
#define MAX_ISSUER_LEN		1024
/* 9999-12-31T23:59:59Z: later times are nonsense, and the bound keeps
 * every comparison far from overflow. */
#define JWT_TIME_MAX		INT64_C(253402300799)

enum jwt_alg { ALG_RS256, ALG_ES256 };

struct jwt_key {
	char		*issuer;
	size_t		 issuer_len;
	EVP_PKEY	*pkey;
	enum jwt_alg	 alg;
};

struct jwt_keyring {
	struct jwt_key	 keys[JWT_MAX_KEYS];
	size_t		 n;
};

struct jwt_keyring *
jwt_keyring_new(void)
{
	return calloc(1, sizeof(struct jwt_keyring));
}

size_t
jwt_keyring_count(const struct jwt_keyring *kr)
{
	return kr == NULL ? 0 : kr->n;
}

void
jwt_keyring_free(struct jwt_keyring **krp)
{
	struct jwt_keyring *kr;
	size_t i;

	if (krp == NULL || (kr = *krp) == NULL)
		return;
	for (i = 0; i < kr->n; i++) {
		free(kr->keys[i].issuer);
		EVP_PKEY_free(kr->keys[i].pkey);
	}
	free(kr);
	*krp = NULL;
}

/* The key of one DER block named name, or NULL. */
static EVP_PKEY *
der_to_key(const char *name, const unsigned char *der, long len)
{
	const unsigned char *p = der;
	EVP_PKEY *pkey = NULL;
	X509 *x;

	if (strcmp(name, PEM_STRING_PUBLIC) == 0) {
		pkey = d2i_PUBKEY(NULL, &p, len);
	} else {
		if ((x = d2i_X509(NULL, &p, len)) == NULL)
			return NULL;
		pkey = X509_get_pubkey(x);	/* a new reference */
		X509_free(x);
	}
	if (pkey != NULL && p != der + len) {	/* trailing junk */
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	return pkey;
}

/*
 * The first PUBLIC KEY or CERTIFICATE block of path, as a key; NULL with
 * err set.  A private key is refused outright: it has no business in the
 * auth process.
 */
static EVP_PKEY *
load_pem(const char *path, char *err, size_t errsize)
{
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	EVP_PKEY *pkey = NULL;
	bool found = false;
	long len = 0;
	FILE *fp;
	BIO *bio;

	if ((fp = fopen(path, "re")) == NULL) {
		errf(err, errsize, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((bio = BIO_new_fp(fp, BIO_CLOSE)) == NULL) {
		fclose(fp);
		errf(err, errsize, "%s: out of memory", path);
		return NULL;
	}
	while (!found && PEM_read_bio(bio, &name, &header, &data, &len) == 1) {
		if (strcmp(name, PEM_STRING_PUBLIC) == 0 ||
		    strcmp(name, PEM_STRING_X509) == 0) {
			found = true;
			if ((pkey = der_to_key(name, data, len)) == NULL)
				errf(err, errsize, "%s: bad %s block",
				    path, name);
		} else if (strstr(name, "PRIVATE KEY") != NULL) {
			errf(err, errsize, "%s: holds a private key; give "
			    "the issuer's public key or certificate", path);
			found = true;
		}
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_clear_free(data, (size_t)len);
		name = header = NULL;
		data = NULL;
	}
	if (!found)
		errf(err, errsize, "%s: no PUBLIC KEY or CERTIFICATE "
		    "block", path);
	BIO_free(bio);
	ERR_clear_error();
	return pkey;
}

/* The algorithm pkey is for; -1 with err set if the key is refused. */
static int
key_alg(EVP_PKEY *pkey, const char *path, enum jwt_alg *alg_r, char *err,
    size_t errsize)
{
	char group[64];
	size_t glen = 0;
	int bits;

	if (EVP_PKEY_is_a(pkey, "RSA")) {
		if ((bits = EVP_PKEY_get_bits(pkey)) < RSA_MIN_BITS) {
			errf(err, errsize, "%s: RSA key of %d bits is too "
			    "short; use at least %d", path, bits,
			    RSA_MIN_BITS);
			return -1;
		}
		*alg_r = ALG_RS256;
		return 0;
	}
	if (EVP_PKEY_is_a(pkey, "EC") &&
	    EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
	    group, sizeof(group), &glen) == 1 &&
	    strcmp(group, SN_X9_62_prime256v1) == 0) {
		*alg_r = ALG_ES256;
		return 0;
	}
	ERR_clear_error();
	errf(err, errsize, "%s: unsupported key type; use an RSA (RS256) "
	    "or P-256 (ES256) public key", path);
	return -1;
}

int
jwt_keyring_add(struct jwt_keyring *kr, const char *issuer,
    const char *pem_path, char *err, size_t errsize)
{
	struct jwt_key *k;
	EVP_PKEY *pkey;
	enum jwt_alg alg;
	size_t i, n;

	if (kr == NULL || issuer == NULL || pem_path == NULL) {
		errf(err, errsize, "jwt_keyring_add: missing argument");
		return -1;
	}
	n = strlen(issuer);
	if (n == 0 || n > MAX_ISSUER_LEN) {
		errf(err, errsize, "%s: the issuer must be 1 to %d octets",
		    pem_path, MAX_ISSUER_LEN);
		return -1;
	}
	for (i = 0; i < n; i++)
		if ((unsigned char)issuer[i] < 0x20 || issuer[i] == 0x7f) {
			errf(err, errsize, "%s: the issuer holds a "
			    "control character", pem_path);
			return -1;
		}
	if (kr->n == JWT_MAX_KEYS) {
		errf(err, errsize, "%s: more than %d issuer keys",
		    pem_path, JWT_MAX_KEYS);
		return -1;
	}
	if ((pkey = load_pem(pem_path, err, errsize)) == NULL)
		return -1;
	if (key_alg(pkey, pem_path, &alg, err, errsize) == -1) {
		EVP_PKEY_free(pkey);
		return -1;
	}
	k = &kr->keys[kr->n];
	if ((k->issuer = strdup(issuer)) == NULL) {
		EVP_PKEY_free(pkey);
		errf(err, errsize, "%s: out of memory", pem_path);
		return -1;
	}
	k->issuer_len = n;
	k->pkey = pkey;
	k->alg = alg;
	kr->n++;
	return 0;
}

static int
b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/*
 * Strict base64url (RFC 4648 section 5, RFC 7515 section 2): the URL
 * alphabet only, no padding, no white space, and the unused low bits of
 * the last character zero so that each value has one encoding.  A
 * malloc'ed buffer of *len_r octets (plus a NUL not counted), or NULL.
 */
static unsigned char *
b64url_decode(const char *s, size_t len, size_t *len_r)
{
	unsigned char *out;
	uint32_t acc = 0;
	unsigned int bits = 0;
	size_t i, n = 0;
	int v;

	if (len % 4 == 1)
		return NULL;
	if ((out = malloc(len / 4 * 3 + 3)) == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		if ((v = b64url_value((unsigned char)s[i])) < 0)
			goto bad;
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	if ((acc & ((1u << bits) - 1)) != 0)
		goto bad;
	out[n] = '\0';
	*len_r = n;
	return out;
bad:
	explicit_bzero(out, len / 4 * 3 + 3);
	free(out);
	return NULL;
}

static void
free_wiped(unsigned char *p, size_t len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, len);
	free(p);
}

/* One JSON object of exactly len octets, names unique; NULL if not. */
static json_t *
json_object_parse(const unsigned char *p, size_t len)
{
	json_error_t jerr;
	json_t *v;

	v = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &jerr);
	if (v != NULL && !json_is_object(v)) {
		json_decref(v);
		v = NULL;
	}
	return v;
}

/* True if v is the JSON string s (no NUL, same length). */
static bool
json_str_eq(const json_t *v, const char *s, size_t slen)
{
	return json_is_string(v) && json_string_length(v) == slen &&
	    memcmp(json_string_value(v), s, slen) == 0;
}

static enum jwt_rc
check_header(const json_t *hdr, enum jwt_alg *alg_r)
{
	const json_t *alg, *typ;
	const char *t;

	alg = json_object_get(hdr, "alg");
	if (json_str_eq(alg, "RS256", 5))
		*alg_r = ALG_RS256;
	else if (json_str_eq(alg, "ES256", 5))
		*alg_r = ALG_ES256;
	else
		return JWT_BAD_ALG;	/* "none", HS256, absent, ... */
	if ((typ = json_object_get(hdr, "typ")) != NULL) {
		if (!json_is_string(typ))
			return JWT_MALFORMED;
		t = json_string_value(typ);
		if (strcasecmp(t, "JWT") != 0 && strcasecmp(t, "at+jwt") != 0)
			return JWT_MALFORMED;
	}
	/* RFC 7515 section 4.1.11: we understand no extension, so a token
	 * that requires one is refused. */
	if (json_object_get(hdr, "crit") != NULL)
		return JWT_MALFORMED;
	return JWT_OK;
}

/* ES256 signatures are R || S (RFC 7518 section 3.4); OpenSSL wants the
 * DER ECDSA-Sig-Value.  Length of the malloc'ed DER in *der_r, or -1. */
static int
es256_to_der(const unsigned char *sig, unsigned char **der_r)
{
	ECDSA_SIG *es;
	BIGNUM *r, *s;
	int len;

	*der_r = NULL;
	if ((es = ECDSA_SIG_new()) == NULL)
		return -1;
	r = BN_bin2bn(sig, ES256_COORD_LEN, NULL);
	s = BN_bin2bn(sig + ES256_COORD_LEN, ES256_COORD_LEN, NULL);
	if (r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(es);
		return -1;
	}
	len = i2d_ECDSA_SIG(es, der_r);
	ECDSA_SIG_free(es);
	return len > 0 ? len : -1;
}

/* True if sig is a valid signature of msg under k. */
static bool
sig_verify(const struct jwt_key *k, const char *msg, size_t msglen,
    const unsigned char *sig, size_t siglen)
{
	unsigned char *der = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *ctx;
	bool ok = false;
	int derlen;

	if (k->alg == ALG_ES256) {
		if (siglen != 2 * ES256_COORD_LEN ||
		    (derlen = es256_to_der(sig, &der)) == -1)
			return false;
		sig = der;
		siglen = (size_t)derlen;
	} else if (siglen != (size_t)EVP_PKEY_get_size(k->pkey))
		return false;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		goto out;
	if (EVP_DigestVerifyInit_ex(ctx, &pctx, "SHA256", NULL, NULL,
	    k->pkey, NULL) == 1 &&
	    (k->alg != ALG_RS256 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1) &&
	    EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)msg,
	    msglen) == 1)
		ok = true;
	EVP_MD_CTX_free(ctx);
out:
	OPENSSL_free(der);
	ERR_clear_error();
	return ok;
}

/* A time claim as whole seconds; a fraction rounds down, or up if
 * round_up.  0, or -1 if v is not a number in [0, JWT_TIME_MAX]. */
static int
claim_time(const json_t *v, bool round_up, int64_t *t_r)
{
	json_int_t i;
	double d;
	int64_t t;

	if (json_is_integer(v)) {
		i = json_integer_value(v);
		if (i < 0 || i > JWT_TIME_MAX)
			return -1;
		*t_r = (int64_t)i;
		return 0;
	}
	if (!json_is_real(v))
		return -1;
	d = json_real_value(v);
	if (!(d >= 0 && d <= (double)JWT_TIME_MAX))	/* NaN fails too */
		return -1;
	t = (int64_t)d;
	if (round_up && (double)t < d)
		t++;
	*t_r = t;
	return 0;
}

static enum jwt_rc
check_times(const json_t *pl, time_t now, unsigned int leeway_s)
{
	const json_t *v;
	int64_t t;

	if ((v = json_object_get(pl, "exp")) == NULL)
		return JWT_EXPIRED;
	if (claim_time(v, false, &t) == -1)
		return JWT_MALFORMED;
	if (t <= (int64_t)now - (int64_t)leeway_s)
		return JWT_EXPIRED;
	if ((v = json_object_get(pl, "nbf")) != NULL) {
		if (claim_time(v, true, &t) == -1)
			return JWT_MALFORMED;
		if (t > (int64_t)now + (int64_t)leeway_s)
			return JWT_NOT_YET_VALID;
	}
	if ((v = json_object_get(pl, "iat")) != NULL) {
		if (claim_time(v, true, &t) == -1)
			return JWT_MALFORMED;
		if (t > (int64_t)now + (int64_t)leeway_s)
			return JWT_NOT_YET_VALID;
	}
	return JWT_OK;
}

static bool
audience_ok(const json_t *pl, const char *audience)
{
	const json_t *aud, *v;
	size_t alen, i;

	if (audience == NULL || audience[0] == '\0')
		return false;
	alen = strlen(audience);
	aud = json_object_get(pl, "aud");
	if (json_is_array(aud)) {
		json_array_foreach(aud, i, v)
			if (json_str_eq(v, audience, alen))
				return true;
		return false;
	}
	return json_str_eq(aud, audience, alen);
}

static enum jwt_rc
copy_user(const json_t *pl, const char *user_claim, char *user,
    size_t usersize)
{
	const json_t *v;
	const char *s;
	size_t i, n;

	if (user_claim == NULL || user == NULL ||
	    !json_is_string(v = json_object_get(pl, user_claim)))
		return JWT_NO_USER;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0 || n >= usersize)
		return JWT_NO_USER;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return JWT_NO_USER;	/* NUL included */
	memcpy(user, s, n);
	user[n] = '\0';
	return JWT_OK;
}

enum jwt_rc
jwt_verify(const struct jwt_keyring *kr, const char *token, size_t len,
    const char *audience, const char *user_claim, time_t now,
    unsigned int leeway_s, char *user, size_t usersize)
{
	unsigned char *hraw = NULL, *praw = NULL, *sig = NULL;
	size_t hlen = 0, plen = 0, siglen = 0, i;
	const char *dot1, *dot2;
	const json_t *iss;
	json_t *hdr = NULL, *pl = NULL;
	bool issuer_known = false, alg_known = false, verified = false;
	enum jwt_alg alg;
	enum jwt_rc rc = JWT_MALFORMED;

	if (user != NULL && usersize > 0)
		user[0] = '\0';
	if (kr == NULL || token == NULL || len == 0 ||
	    len > JWT_MAX_TOKEN_LEN)
		return JWT_MALFORMED;
	/* header "." payload "." signature; a third '.' fails decoding. */
	if ((dot1 = memchr(token, '.', len)) == NULL ||
	    (dot2 = memchr(dot1 + 1, '.',
	    len - (size_t)(dot1 + 1 - token))) == NULL)
		return JWT_MALFORMED;
	if ((hraw = b64url_decode(token, (size_t)(dot1 - token),
	    &hlen)) == NULL ||
	    (praw = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1),
	    &plen)) == NULL ||
	    (sig = b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token),
	    &siglen)) == NULL ||
	    (hdr = json_object_parse(hraw, hlen)) == NULL ||
	    (pl = json_object_parse(praw, plen)) == NULL)
		goto out;

	if ((rc = check_header(hdr, &alg)) != JWT_OK)
		goto out;
	iss = json_object_get(pl, "iss");
	for (i = 0; i < kr->n && !verified; i++) {
		if (!json_str_eq(iss, kr->keys[i].issuer,
		    kr->keys[i].issuer_len))
			continue;
		issuer_known = true;
		if (kr->keys[i].alg != alg)
			continue;
		alg_known = true;
		/* The signing input is the token up to its second '.'. */
		verified = sig_verify(&kr->keys[i], token,
		    (size_t)(dot2 - token), sig, siglen);
	}
	if (!issuer_known)
		rc = JWT_UNKNOWN_ISSUER;
	else if (!alg_known)
		rc = JWT_BAD_ALG;
	else if (!verified)
		rc = JWT_BAD_SIGNATURE;
	else if ((rc = check_times(pl, now, leeway_s)) == JWT_OK) {
		if (!audience_ok(pl, audience))
			rc = JWT_BAD_AUDIENCE;
		else
			rc = copy_user(pl, user_claim, user, usersize);
	}
out:
	json_decref(hdr);
	json_decref(pl);
	free_wiped(hraw, hlen);
	free_wiped(praw, plen);
	free_wiped(sig, siglen);
	return rc;
}

const char *
jwt_rc_str(enum jwt_rc rc)
{
	switch (rc) {
	case JWT_OK:			return "ok";
	case JWT_MALFORMED:		return "malformed";
	case JWT_BAD_ALG:		return "bad-alg";
	case JWT_BAD_SIGNATURE:		return "bad-signature";
	case JWT_UNKNOWN_ISSUER:	return "unknown-issuer";
	case JWT_EXPIRED:		return "expired";
	case JWT_NOT_YET_VALID:		return "not-yet-valid";
	case JWT_BAD_AUDIENCE:		return "wrong-audience";
	case JWT_NO_USER:		return "no-user";
	}
	return "unknown";
}
