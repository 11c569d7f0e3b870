/*
 * test_jwt.c: JWT verification (RS256, ES256), time and audience
 * claims, strict decoding, and loading issuer keys.
 *
 * The keys are made when the group starts (no key material in the
 * tree): two RSA 2048 and two P-256 key pairs.  The tests sign their
 * own tokens with the private halves; jwt.c only ever sees the public
 * halves, written as PEM files into one temporary directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "auth/jwt.h"
#include "lib/buf.h"

#define NOW		((time_t)1700000000)
#define LEEWAY		60
#define AUD		"postern"
#define ISS_RSA		"https://rsa.example"
#define ISS_EC		"https://ec.example"
#define ISS_ROLL	"https://roll.example"
#define HDR_RS		"{\"alg\":\"RS256\",\"typ\":\"JWT\"}"
#define HDR_ES		"{\"alg\":\"ES256\",\"typ\":\"JWT\"}"

static char tmpdir[] = "/tmp/test_jwt.XXXXXX";
static EVP_PKEY *rsa_a, *rsa_b, *ec_a, *ec_b;
static struct jwt_keyring *kr;
static char tok[2 * JWT_MAX_TOKEN_LEN];
static char user[256];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
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

/* Writes the public half of pkey to tmpdir/name; returns the path. */
static const char *
put_pubkey(EVP_PKEY *pkey, const char *name)
{
	const char *path = tpath(name);
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(PEM_write_PUBKEY(fp, pkey), 1);
	assert_int_equal(fclose(fp), 0);
	return path;
}

/* Writes a self-signed certificate for pkey to tmpdir/name. */
static const char *
put_cert(EVP_PKEY *pkey, const char *name)
{
	const char *path = tpath(name);
	X509_NAME *xn;
	X509 *x;
	FILE *fp;

	assert_non_null(x = X509_new());
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	assert_int_equal(X509_set_pubkey(x, pkey), 1);
	xn = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(xn, "CN", MBSTRING_ASC,
	    (const unsigned char *)"issuer", -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, xn), 1);
	assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(PEM_write_X509(fp, x), 1);
	assert_int_equal(fclose(fp), 0);
	X509_free(x);
	return path;
}

static void
add_key(const char *issuer, const char *path)
{
	char err[512];

	if (jwt_keyring_add(kr, issuer, path, err, sizeof(err)) == -1)
		fail_msg("%s", err);
}

static int
group_setup(void **state)
{
	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	rsa_a = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	rsa_b = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ec_a = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ec_b = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (rsa_a == NULL || rsa_b == NULL || ec_a == NULL || ec_b == NULL ||
	    (kr = jwt_keyring_new()) == NULL)
		return -1;
	add_key(ISS_RSA, put_pubkey(rsa_a, "rsa_a.pem"));
	add_key(ISS_EC, put_cert(ec_a, "ec_a.crt"));	/* a certificate */
	add_key(ISS_ROLL, put_pubkey(rsa_b, "rsa_b.pem"));
	add_key(ISS_ROLL, put_pubkey(ec_b, "ec_b.pem"));
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	jwt_keyring_free(&kr);
	EVP_PKEY_free(rsa_a);
	EVP_PKEY_free(rsa_b);
	EVP_PKEY_free(ec_a);
	EVP_PKEY_free(ec_b);
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Appends base64url of in (no padding) to out at *pos. */
static void
b64url_put(const void *in, size_t n, char *out, size_t outsize, size_t *pos)
{
	static const char al[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_";
	const unsigned char *p = in;
	uint32_t acc = 0;
	unsigned int bits = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		acc = acc << 8 | p[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			assert_true(*pos + 1 < outsize);
			out[(*pos)++] = al[(acc >> bits) & 63];
		}
	}
	if (bits > 0) {
		assert_true(*pos + 1 < outsize);
		out[(*pos)++] = al[(acc << (6 - bits)) & 63];
	}
	out[*pos] = '\0';
}

/*
 * tok = b64url(hdr) "." b64url(payload) "." b64url(signature by signer,
 * RS256 or ES256 after its key type; ES256 as R || S unless der).  No
 * signer: an empty signature.
 */
static const char *
make_token_ex(EVP_PKEY *signer, const char *hdr, const char *payload,
    bool der)
{
	unsigned char *sig = NULL, raw[64];
	const unsigned char *p;
	const BIGNUM *r, *s;
	ECDSA_SIG *es;
	EVP_MD_CTX *ctx;
	size_t pos = 0, siglen = 0;

	b64url_put(hdr, strlen(hdr), tok, sizeof(tok), &pos);
	tok[pos++] = '.';
	b64url_put(payload, strlen(payload), tok, sizeof(tok), &pos);
	if (signer != NULL) {
		assert_non_null(ctx = EVP_MD_CTX_new());
		assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, "SHA256",
		    NULL, NULL, signer, NULL), 1);
		assert_int_equal(EVP_DigestSign(ctx, NULL, &siglen,
		    (unsigned char *)tok, pos), 1);
		assert_non_null(sig = malloc(siglen));
		assert_int_equal(EVP_DigestSign(ctx, sig, &siglen,
		    (unsigned char *)tok, pos), 1);
		EVP_MD_CTX_free(ctx);
	}
	tok[pos++] = '.';
	tok[pos] = '\0';
	if (signer == NULL)
		return tok;
	if (EVP_PKEY_is_a(signer, "EC") && !der) {
		p = sig;
		assert_non_null(es = d2i_ECDSA_SIG(NULL, &p, (long)siglen));
		ECDSA_SIG_get0(es, &r, &s);
		assert_int_equal(BN_bn2binpad(r, raw, 32), 32);
		assert_int_equal(BN_bn2binpad(s, raw + 32, 32), 32);
		ECDSA_SIG_free(es);
		b64url_put(raw, sizeof(raw), tok, sizeof(tok), &pos);
	} else
		b64url_put(sig, siglen, tok, sizeof(tok), &pos);
	free(sig);
	return tok;
}

static const char *
make_token(EVP_PKEY *signer, const char *hdr, const char *payload)
{
	return make_token_ex(signer, hdr, payload, false);
}

/* A payload: iss, sub "alice", aud AUD, exp NOW + 300, then extra
 * (",\"name\":value..." or ""). */
static const char *
claims(const char *iss, const char *extra)
{
	static char p[JWT_MAX_TOKEN_LEN];

	assert_int_equal(str_fmt(p, sizeof(p), "{\"iss\":\"%s\","
	    "\"sub\":\"alice\",\"aud\":\"" AUD "\",\"exp\":%lld%s}", iss,
	    (long long)NOW + 300, extra), 0);
	return p;
}

/* A payload of exactly the given claims (no defaults). */
static const char *
claims_only(const char *fmt, ...) ATTR_PRINTF(1, 2);

static const char *
claims_only(const char *fmt, ...)
{
	static char p[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(p, sizeof(p), fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(p));
	return p;
}

static enum jwt_rc
verify_len(const char *t, size_t len)
{
	return jwt_verify(kr, t, len, AUD, "sub", NOW, LEEWAY, user,
	    sizeof(user));
}

static enum jwt_rc
verify(const char *t)
{
	return verify_len(t, strlen(t));
}

static void
test_rs256_valid(void **state)
{
	(void)state;
	assert_int_equal(verify(make_token(rsa_a, HDR_RS,
	    claims(ISS_RSA, ",\"iat\":1700000000"))), JWT_OK);
	assert_string_equal(user, "alice");
	/* typ is optional and compared in any case. */
	assert_int_equal(verify(make_token(rsa_a, "{\"alg\":\"RS256\"}",
	    claims(ISS_RSA, ""))), JWT_OK);
	assert_int_equal(verify(make_token(rsa_a,
	    "{\"typ\":\"AT+JWT\",\"alg\":\"RS256\",\"kid\":\"k1\"}",
	    claims(ISS_RSA, ""))), JWT_OK);
	assert_int_equal(verify(make_token(rsa_a,
	    "{\"alg\":\"RS256\",\"typ\":\"jwt\"}", claims(ISS_RSA, ""))),
	    JWT_OK);
	/* Another user claim. */
	make_token(rsa_a, HDR_RS,
	    claims(ISS_RSA, ",\"email\":\"alice@example.org\""));
	assert_int_equal(jwt_verify(kr, tok, strlen(tok), AUD, "email", NOW,
	    0, user, sizeof(user)), JWT_OK);
	assert_string_equal(user, "alice@example.org");
}

static void
test_es256_valid(void **state)
{
	(void)state;
	assert_int_equal(verify(make_token(ec_a, HDR_ES,
	    claims(ISS_EC, ""))), JWT_OK);
	assert_string_equal(user, "alice");
	/* Many signatures: R or S with leading zero octets must work. */
	for (int i = 0; i < 32; i++) {
		char extra[64];

		assert_int_equal(str_fmt(extra, sizeof(extra),
		    ",\"jti\":\"%d\"", i), 0);
		assert_int_equal(verify(make_token(ec_a, HDR_ES,
		    claims(ISS_EC, extra))), JWT_OK);
	}
	/* The DER form OpenSSL produces is not a JWS signature. */
	assert_int_equal(verify(make_token_ex(ec_a, HDR_ES,
	    claims(ISS_EC, ""), true)), JWT_BAD_SIGNATURE);
	assert_string_equal(user, "");
}

static void
test_rollover(void **state)
{
	(void)state;
	/* One issuer with an RSA and an EC key: both verify. */
	assert_int_equal(verify(make_token(rsa_b, HDR_RS,
	    claims(ISS_ROLL, ""))), JWT_OK);
	assert_int_equal(verify(make_token(ec_b, HDR_ES,
	    claims(ISS_ROLL, ""))), JWT_OK);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS,
	    claims(ISS_ROLL, ""))), JWT_BAD_SIGNATURE);
	assert_int_equal(jwt_keyring_count(kr), 4);
}

static void
test_audience(void **state)
{
	(void)state;
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"exp\":%lld,"
	    "\"aud\":[\"other\",\"" AUD "\"]}", (long long)NOW + 10))),
	    JWT_OK);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"exp\":%lld,"
	    "\"aud\":[\"other\",1,null]}", (long long)NOW + 10))),
	    JWT_BAD_AUDIENCE);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"exp\":%lld,"
	    "\"aud\":[]}", (long long)NOW + 10))), JWT_BAD_AUDIENCE);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"exp\":%lld,"
	    "\"aud\":\"imap\"}", (long long)NOW + 10))), JWT_BAD_AUDIENCE);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"exp\":%lld,"
	    "\"aud\":\"" AUD "x\"}", (long long)NOW + 10))),
	    JWT_BAD_AUDIENCE);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"exp\":%lld}",
	    (long long)NOW + 10))), JWT_BAD_AUDIENCE);
	/* No audience from the caller: nothing matches. */
	make_token(rsa_a, HDR_RS, claims(ISS_RSA, ""));
	assert_int_equal(jwt_verify(kr, tok, strlen(tok), NULL, "sub", NOW,
	    LEEWAY, user, sizeof(user)), JWT_BAD_AUDIENCE);
	make_token(rsa_a, HDR_RS, claims_only("{\"iss\":\"" ISS_RSA "\","
	    "\"sub\":\"alice\",\"exp\":%lld,\"aud\":\"\"}",
	    (long long)NOW + 10));
	assert_int_equal(jwt_verify(kr, tok, strlen(tok), "", "sub", NOW,
	    LEEWAY, user, sizeof(user)), JWT_BAD_AUDIENCE);
}

/* Changes the lowest bit of the value of the base64url character at
 * tok[i], which must not be the last of its part. */
static void
flip(size_t i)
{
	static const char al[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_";
	const char *p = strchr(al, tok[i]);

	assert_true(p != NULL && tok[i] != '\0');
	tok[i] = al[(p - al) ^ 1];
}

static void
test_bad_signature(void **state)
{
	char sig[1024];
	const char *dot;
	size_t n;

	(void)state;
	/* One bit of the signature, in its middle. */
	n = strlen(make_token(rsa_a, HDR_RS, claims(ISS_RSA, "")));
	dot = strrchr(tok, '.');
	flip((size_t)(dot - tok) + (n - (size_t)(dot - tok)) / 2);
	assert_int_equal(verify(tok), JWT_BAD_SIGNATURE);
	n = strlen(make_token(ec_a, HDR_ES, claims(ISS_EC, "")));
	dot = strrchr(tok, '.');
	flip((size_t)(dot - tok) + (n - (size_t)(dot - tok)) / 2);
	assert_int_equal(verify(tok), JWT_BAD_SIGNATURE);
	/* One bit of the payload ("alice" to "alicd"), the signature kept. */
	make_token(rsa_a, HDR_RS, claims(ISS_RSA, ""));
	assert_int_equal(str_fmt(sig, sizeof(sig), "%s", strrchr(tok, '.')),
	    0);
	make_token(NULL, HDR_RS, claims(ISS_RSA, ""));
	tok[strlen(tok) - 1] = '\0';
	assert_true(strlen(tok) + strlen(sig) < sizeof(tok));
	strcat(tok, sig);
	assert_int_equal(verify(tok), JWT_OK);
	make_token(NULL, HDR_RS, claims_only("{\"iss\":\"" ISS_RSA "\","
	    "\"sub\":\"alicd\",\"aud\":\"" AUD "\",\"exp\":%lld}",
	    (long long)NOW + 300));
	tok[strlen(tok) - 1] = '\0';
	strcat(tok, sig);
	assert_int_equal(verify(tok), JWT_BAD_SIGNATURE);
	/* Signed by another key of the same type. */
	assert_int_equal(verify(make_token(rsa_b, HDR_RS,
	    claims(ISS_RSA, ""))), JWT_BAD_SIGNATURE);
	assert_int_equal(verify(make_token(ec_b, HDR_ES,
	    claims(ISS_EC, ""))), JWT_BAD_SIGNATURE);
	/* Empty or truncated signatures. */
	assert_int_equal(verify(make_token(NULL, HDR_RS,
	    claims(ISS_RSA, ""))), JWT_BAD_SIGNATURE);
	n = strlen(make_token(ec_a, HDR_ES, claims(ISS_EC, "")));
	tok[n - 5] = 'A';	/* 61 octets, canonically encoded */
	tok[n - 4] = '\0';
	assert_int_equal(verify(tok), JWT_BAD_SIGNATURE);
	assert_string_equal(user, "");
}

static void
test_bad_alg(void **state)
{
	(void)state;
	/* "none", with and without a signature. */
	assert_int_equal(verify(make_token(NULL, "{\"alg\":\"none\"}",
	    claims(ISS_RSA, ""))), JWT_BAD_ALG);
	assert_int_equal(verify(make_token(rsa_a, "{\"alg\":\"none\"}",
	    claims(ISS_RSA, ""))), JWT_BAD_ALG);
	/* HS256 (the "public key as HMAC secret" attack) and others. */
	assert_int_equal(verify(make_token(rsa_a, "{\"alg\":\"HS256\"}",
	    claims(ISS_RSA, ""))), JWT_BAD_ALG);
	assert_int_equal(verify(make_token(rsa_a, "{\"alg\":\"PS256\"}",
	    claims(ISS_RSA, ""))), JWT_BAD_ALG);
	assert_int_equal(verify(make_token(rsa_a, "{\"alg\":\"rs256\"}",
	    claims(ISS_RSA, ""))), JWT_BAD_ALG);
	assert_int_equal(verify(make_token(rsa_a, "{\"typ\":\"JWT\"}",
	    claims(ISS_RSA, ""))), JWT_BAD_ALG);
	assert_int_equal(verify(make_token(rsa_a, "{\"alg\":256}",
	    claims(ISS_RSA, ""))), JWT_BAD_ALG);
	/* An algorithm that does not match the issuer's key type. */
	assert_int_equal(verify(make_token(rsa_a, HDR_RS,
	    claims(ISS_EC, ""))), JWT_BAD_ALG);
	assert_int_equal(verify(make_token(ec_a, HDR_ES,
	    claims(ISS_RSA, ""))), JWT_BAD_ALG);
}

static void
test_header(void **state)
{
	(void)state;
	assert_int_equal(verify(make_token(rsa_a,
	    "{\"alg\":\"RS256\",\"typ\":\"JOSE\"}", claims(ISS_RSA, ""))),
	    JWT_MALFORMED);
	assert_int_equal(verify(make_token(rsa_a,
	    "{\"alg\":\"RS256\",\"typ\":1}", claims(ISS_RSA, ""))),
	    JWT_MALFORMED);
	assert_int_equal(verify(make_token(rsa_a,
	    "{\"alg\":\"RS256\",\"crit\":[\"exp\"]}", claims(ISS_RSA, ""))),
	    JWT_MALFORMED);
	assert_int_equal(verify(make_token(rsa_a,
	    "{\"alg\":\"RS256\",\"alg\":\"RS256\"}", claims(ISS_RSA, ""))),
	    JWT_MALFORMED);
	assert_int_equal(verify(make_token(rsa_a, "[\"RS256\"]",
	    claims(ISS_RSA, ""))), JWT_MALFORMED);
}

static void
test_times(void **state)
{
	(void)state;
	/* exp: past the leeway, within it, at its edge. */
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"aud\":\"" AUD "\","
	    "\"exp\":%lld}", (long long)NOW - LEEWAY - 1))), JWT_EXPIRED);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"aud\":\"" AUD "\","
	    "\"exp\":%lld}", (long long)NOW - LEEWAY))), JWT_EXPIRED);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"aud\":\"" AUD "\","
	    "\"exp\":%lld}", (long long)NOW - LEEWAY + 1))), JWT_OK);
	/* The same token without leeway. */
	assert_int_equal(jwt_verify(kr, tok, strlen(tok), AUD, "sub", NOW, 0,
	    user, sizeof(user)), JWT_EXPIRED);
	assert_int_equal(jwt_verify(kr, tok, strlen(tok), AUD, "sub",
	    NOW - LEEWAY, 0, user, sizeof(user)), JWT_OK);
	/* exp missing: a token that never expires is refused. */
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"aud\":\"" AUD
	    "\"}"))), JWT_EXPIRED);
	/* exp of the wrong type or out of range. */
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"aud\":\"" AUD "\","
	    "\"exp\":\"%lld\"}", (long long)NOW + 10))), JWT_MALFORMED);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"aud\":\"" AUD "\","
	    "\"exp\":-1}"))), JWT_MALFORMED);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"aud\":\"" AUD "\","
	    "\"exp\":1e300}"))), JWT_MALFORMED);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"aud\":\"" AUD "\","
	    "\"exp\":253402300800}"))), JWT_MALFORMED);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"aud\":\"" AUD "\","
	    "\"exp\":true}"))), JWT_MALFORMED);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"aud\":\"" AUD "\","
	    "\"exp\":99999999999999999999999}"))), JWT_MALFORMED);
	/* A real exp: the fraction counts against the token. */
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"aud\":\"" AUD "\","
	    "\"exp\":%lld.5}", (long long)NOW + 100))), JWT_OK);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"alice\",\"aud\":\"" AUD "\","
	    "\"exp\":%lld.9}", (long long)NOW - LEEWAY))), JWT_EXPIRED);
	/* nbf and iat: in the future beyond the leeway, within it. */
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims(ISS_RSA,
	    ",\"nbf\":1700000061"))), JWT_NOT_YET_VALID);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims(ISS_RSA,
	    ",\"nbf\":1700000060"))), JWT_OK);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims(ISS_RSA,
	    ",\"nbf\":1700000060.1"))), JWT_NOT_YET_VALID);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims(ISS_RSA,
	    ",\"iat\":1700000120"))), JWT_NOT_YET_VALID);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims(ISS_RSA,
	    ",\"iat\":1700000030,\"nbf\":1699999000"))), JWT_OK);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims(ISS_RSA,
	    ",\"nbf\":null"))), JWT_MALFORMED);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims(ISS_RSA,
	    ",\"iat\":\"now\""))), JWT_MALFORMED);
}

static void
test_issuer(void **state)
{
	(void)state;
	assert_int_equal(verify(make_token(rsa_a, HDR_RS,
	    claims("https://evil.example", ""))), JWT_UNKNOWN_ISSUER);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS,
	    claims(ISS_RSA "/", ""))), JWT_UNKNOWN_ISSUER);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS,
	    claims("https://RSA.example", ""))), JWT_UNKNOWN_ISSUER);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"sub\":\"alice\",\"aud\":\"" AUD "\",\"exp\":%lld}",
	    (long long)NOW + 10))), JWT_UNKNOWN_ISSUER);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":[\"" ISS_RSA "\"],\"sub\":\"alice\",\"aud\":\"" AUD
	    "\",\"exp\":%lld}", (long long)NOW + 10))), JWT_UNKNOWN_ISSUER);
	/* A duplicate claim is refused, whichever value comes first. */
	assert_int_equal(verify(make_token(rsa_a, HDR_RS,
	    claims(ISS_RSA, ",\"iss\":\"https://evil.example\""))),
	    JWT_MALFORMED);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS,
	    claims(ISS_RSA, ",\"sub\":\"root\""))), JWT_MALFORMED);
}

static void
test_user_claim(void **state)
{
	char small[6];

	(void)state;
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"aud\":\"" AUD "\",\"exp\":%lld}",
	    (long long)NOW + 10))), JWT_NO_USER);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":42,\"aud\":\"" AUD "\","
	    "\"exp\":%lld}", (long long)NOW + 10))), JWT_NO_USER);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":[\"alice\"],\"aud\":\"" AUD
	    "\",\"exp\":%lld}", (long long)NOW + 10))), JWT_NO_USER);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"\",\"aud\":\"" AUD "\","
	    "\"exp\":%lld}", (long long)NOW + 10))), JWT_NO_USER);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"al\\nice\",\"aud\":\"" AUD
	    "\",\"exp\":%lld}", (long long)NOW + 10))), JWT_NO_USER);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"al\\u007fice\",\"aud\":\""
	    AUD "\",\"exp\":%lld}", (long long)NOW + 10))), JWT_NO_USER);
	/* \u0000 is not even JSON that jansson accepts by default. */
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"al\\u0000ice\",\"aud\":\""
	    AUD "\",\"exp\":%lld}", (long long)NOW + 10))), JWT_MALFORMED);
	/* Too long for the caller's buffer (5 octets and a NUL fit). */
	make_token(rsa_a, HDR_RS, claims(ISS_RSA, ""));
	assert_int_equal(jwt_verify(kr, tok, strlen(tok), AUD, "sub", NOW,
	    LEEWAY, small, 5), JWT_NO_USER);
	assert_string_equal(small, "");
	assert_int_equal(jwt_verify(kr, tok, strlen(tok), AUD, "sub", NOW,
	    LEEWAY, small, 6), JWT_OK);
	assert_string_equal(small, "alice");
	assert_int_equal(jwt_verify(kr, tok, strlen(tok), AUD, NULL, NOW,
	    LEEWAY, user, sizeof(user)), JWT_NO_USER);
	assert_int_equal(jwt_verify(kr, tok, strlen(tok), AUD, "email", NOW,
	    LEEWAY, user, sizeof(user)), JWT_NO_USER);
	/* UTF-8 is passed on; the caller applies its own name rules. */
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, claims_only(
	    "{\"iss\":\"" ISS_RSA "\",\"sub\":\"j\\u00f6rg\",\"aud\":\"" AUD
	    "\",\"exp\":%lld}", (long long)NOW + 10))), JWT_OK);
	assert_string_equal(user, "j\xc3\xb6rg");
}

static void
test_encoding(void **state)
{
	char copy[sizeof(tok) + 8];
	char *dot;
	size_t n;

	(void)state;
	/* The reference token first, so that each change below is the
	 * only reason for its failure. */
	make_token(rsa_a, "{\"alg\":\"RS256\"} ", claims(ISS_RSA, ""));
	assert_int_equal(verify(tok), JWT_OK);
	/* The 16-octet header ends in 2 characters carrying 4 unused
	 * bits: setting one is a non-canonical encoding of the same
	 * octets. */
	dot = strchr(tok, '.');
	assert_int_equal((dot - tok) % 4, 2);
	assert_non_null(strchr("AQgw", dot[-1]));
	dot[-1]++;
	assert_int_equal(verify(tok), JWT_MALFORMED);
	/* Padding after the header, or after the signature. */
	make_token(rsa_a, "{\"alg\":\"RS256\"} ", claims(ISS_RSA, ""));
	dot = strchr(tok, '.');
	assert_int_equal(str_fmt(copy, sizeof(copy), "%.*s==%s",
	    (int)(dot - tok), tok, dot), 0);
	assert_int_equal(verify(copy), JWT_MALFORMED);
	make_token(rsa_a, HDR_RS, claims(ISS_RSA, ""));
	assert_int_equal(str_fmt(copy, sizeof(copy), "%s=", tok), 0);
	assert_int_equal(verify(copy), JWT_MALFORMED);
	/* Standard base64 characters, white space. */
	make_token(rsa_a, HDR_RS, claims(ISS_RSA, ""));
	tok[3] = '+';
	assert_int_equal(verify(tok), JWT_MALFORMED);
	make_token(rsa_a, HDR_RS, claims(ISS_RSA, ""));
	tok[strlen(tok) - 10] = '/';
	assert_int_equal(verify(tok), JWT_MALFORMED);
	make_token(rsa_a, HDR_RS, claims(ISS_RSA, ""));
	tok[strchr(tok, '.') - tok + 8] = ' ';
	assert_int_equal(verify(tok), JWT_MALFORMED);
	make_token(rsa_a, HDR_RS, claims(ISS_RSA, ""));
	strcat(tok, "\n");
	assert_int_equal(verify(tok), JWT_MALFORMED);
	/* A NUL inside the given length. */
	n = strlen(make_token(rsa_a, HDR_RS, claims(ISS_RSA, "")));
	tok[n - 5] = '\0';
	assert_int_equal(verify_len(tok, n), JWT_MALFORMED);
	/* A length that no base64 string has (4k + 1), even when the
	 * extra character holds no bits. */
	make_token(rsa_a, HDR_RS, claims(ISS_RSA, ""));
	dot = strchr(tok, '.');
	assert_int_equal((dot - tok) % 4, 0);
	assert_int_equal(str_fmt(copy, sizeof(copy), "%.*sA%s",
	    (int)(dot - tok), tok, dot), 0);
	assert_int_equal(verify(copy), JWT_MALFORMED);

	/* Part counts. */
	assert_int_equal(verify(""), JWT_MALFORMED);
	assert_int_equal(verify("."), JWT_MALFORMED);
	assert_int_equal(verify(".."), JWT_MALFORMED);
	assert_int_equal(verify("eyJhbGciOiJSUzI1NiJ9"), JWT_MALFORMED);
	assert_int_equal(verify("eyJhbGciOiJSUzI1NiJ9.e30"), JWT_MALFORMED);
	make_token(rsa_a, HDR_RS, claims(ISS_RSA, ""));
	strcat(tok, ".AAAA");
	assert_int_equal(verify(tok), JWT_MALFORMED);
	/* Payload not an object, or not JSON, or JSON with trailing junk. */
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, "[1,2]")),
	    JWT_MALFORMED);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, "\"alice\"")),
	    JWT_MALFORMED);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS, "alice")),
	    JWT_MALFORMED);
	assert_int_equal(verify(make_token(rsa_a, HDR_RS,
	    claims_only("%s{}", claims(ISS_RSA, "")))), JWT_MALFORMED);
	/* NULL and empty arguments. */
	assert_int_equal(jwt_verify(kr, NULL, 0, AUD, "sub", NOW, 0, user,
	    sizeof(user)), JWT_MALFORMED);
	assert_int_equal(jwt_verify(NULL, tok, strlen(tok), AUD, "sub", NOW,
	    0, user, sizeof(user)), JWT_MALFORMED);
}

static void
test_too_long(void **state)
{
	static char pad[JWT_MAX_TOKEN_LEN];
	static char extra[JWT_MAX_TOKEN_LEN];
	char hdr[64];
	size_t base, n, fill, sp;
	bool at_max = false, past_max = false;

	(void)state;
	/* Valid tokens of exactly JWT_MAX_TOKEN_LEN and one octet more,
	 * found by growing a claim and white space after the header: the
	 * first verifies, the second is refused for its length alone. */
	base = strlen(make_token(rsa_a, HDR_RS,
	    claims(ISS_RSA, ",\"x\":\"\"")));
	for (sp = 0; sp < 3 && !(at_max && past_max); sp++) {
		assert_int_equal(str_fmt(hdr, sizeof(hdr), "%s%*s", HDR_RS,
		    (int)sp, ""), 0);
		for (fill = (JWT_MAX_TOKEN_LEN - base) / 4 * 3 - 6;; fill++) {
			memset(pad, 'x', fill);
			pad[fill] = '\0';
			assert_int_equal(str_fmt(extra, sizeof(extra),
			    ",\"x\":\"%s\"", pad), 0);
			n = strlen(make_token(rsa_a, hdr,
			    claims(ISS_RSA, extra)));
			if (n == JWT_MAX_TOKEN_LEN) {
				assert_int_equal(verify(tok), JWT_OK);
				at_max = true;
			} else if (n == JWT_MAX_TOKEN_LEN + 1) {
				assert_int_equal(verify(tok), JWT_MALFORMED);
				past_max = true;
			} else if (n > JWT_MAX_TOKEN_LEN)
				break;
		}
	}
	assert_true(at_max && past_max);
	memset(tok, 'A', JWT_MAX_TOKEN_LEN + 1);
	assert_int_equal(verify_len(tok, JWT_MAX_TOKEN_LEN + 1),
	    JWT_MALFORMED);
}

static void
test_load(void **state)
{
	struct jwt_keyring *k;
	EVP_PKEY *pk;
	char err[512];
	const char *path;

	(void)state;
	assert_non_null(k = jwt_keyring_new());
	/* RSA under 2048 bits. */
	assert_non_null(pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
	    (size_t)1024));
	path = put_pubkey(pk, "rsa1024.pem");
	assert_int_equal(jwt_keyring_add(k, "i", path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "rsa1024.pem: RSA key of 1024 bits is "
	    "too short"));
	EVP_PKEY_free(pk);
	/* Ed25519 and P-384: not our algorithms. */
	assert_non_null(pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
	path = put_pubkey(pk, "ed25519.pem");
	assert_int_equal(jwt_keyring_add(k, "i", path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "ed25519.pem: unsupported key type; use "
	    "an RSA (RS256) or P-256 (ES256) public key"));
	EVP_PKEY_free(pk);
	assert_non_null(pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"));
	path = put_pubkey(pk, "p384.pem");
	assert_int_equal(jwt_keyring_add(k, "i", path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "p384.pem: unsupported key type"));
	EVP_PKEY_free(pk);
	/* A private key is refused, even a good one. */
	path = tpath("private.pem");
	{
		FILE *fp = fopen(path, "w");

		assert_non_null(fp);
		assert_int_equal(PEM_write_PrivateKey(fp, ec_a, NULL, NULL,
		    0, NULL, NULL), 1);
		assert_int_equal(fclose(fp), 0);
	}
	assert_int_equal(jwt_keyring_add(k, "i", path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "private.pem: holds a private key"));
	/* Garbage, a damaged block, an empty file, no file. */
	path = tpath("garbage.pem");
	put(path, "hello, world\n");
	assert_int_equal(jwt_keyring_add(k, "i", path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "garbage.pem: no PUBLIC KEY or "
	    "CERTIFICATE block"));
	path = tpath("damaged.pem");
	put(path, "-----BEGIN PUBLIC KEY-----\nAAAAAAAAAAAAAAAA\n"
	    "-----END PUBLIC KEY-----\n");
	assert_int_equal(jwt_keyring_add(k, "i", path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "damaged.pem: bad PUBLIC KEY block"));
	path = tpath("empty.pem");
	put(path, "");
	assert_int_equal(jwt_keyring_add(k, "i", path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "empty.pem: "));
	assert_int_equal(jwt_keyring_add(k, "i", tpath("missing.pem"), err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "missing.pem: No such file"));
	/* Bad issuers. */
	path = put_pubkey(ec_a, "ec_ok.pem");
	assert_int_equal(jwt_keyring_add(k, "", path, err, sizeof(err)), -1);
	assert_int_equal(jwt_keyring_add(k, "a\nb", path, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "control character"));
	assert_int_equal(jwt_keyring_count(k), 0);
	/* A key after comments and another block; then the limit. */
	{
		FILE *fp = fopen(tpath("mixed.pem"), "w");

		assert_non_null(fp);
		fputs("# issuer key\n-----BEGIN X509 CRL-----\nAAAA\n"
		    "-----END X509 CRL-----\n", fp);
		assert_int_equal(PEM_write_PUBKEY(fp, rsa_a), 1);
		assert_int_equal(fclose(fp), 0);
	}
	assert_int_equal(jwt_keyring_add(k, "i", tpath("mixed.pem"), err,
	    sizeof(err)), 0);
	for (size_t i = 1; i < JWT_MAX_KEYS; i++)
		assert_int_equal(jwt_keyring_add(k, "i", path, err,
		    sizeof(err)), 0);
	assert_int_equal(jwt_keyring_count(k), JWT_MAX_KEYS);
	assert_int_equal(jwt_keyring_add(k, "i", path, err, sizeof(err)), -1);
	jwt_keyring_free(&k);
	assert_null(k);
	jwt_keyring_free(&k);
}

static void
test_rc_str(void **state)
{
	(void)state;
	assert_string_equal(jwt_rc_str(JWT_OK), "ok");
	assert_string_equal(jwt_rc_str(JWT_MALFORMED), "malformed");
	assert_string_equal(jwt_rc_str(JWT_BAD_ALG), "bad-alg");
	assert_string_equal(jwt_rc_str(JWT_BAD_SIGNATURE), "bad-signature");
	assert_string_equal(jwt_rc_str(JWT_UNKNOWN_ISSUER),
	    "unknown-issuer");
	assert_string_equal(jwt_rc_str(JWT_EXPIRED), "expired");
	assert_string_equal(jwt_rc_str(JWT_NOT_YET_VALID), "not-yet-valid");
	assert_string_equal(jwt_rc_str(JWT_BAD_AUDIENCE), "wrong-audience");
	assert_string_equal(jwt_rc_str(JWT_NO_USER), "no-user");
	assert_string_equal(jwt_rc_str((enum jwt_rc)99), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rs256_valid),
		cmocka_unit_test(test_es256_valid),
		cmocka_unit_test(test_rollover),
		cmocka_unit_test(test_audience),
		cmocka_unit_test(test_bad_signature),
		cmocka_unit_test(test_bad_alg),
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_issuer),
		cmocka_unit_test(test_user_claim),
		cmocka_unit_test(test_encoding),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_rc_str),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
