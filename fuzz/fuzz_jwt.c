/*
 * fuzz_jwt.c: bearer-token logins on arbitrary bytes.
 *
 * An input starting with '{' is "HEADER-JSON\nPAYLOAD-JSON": the target
 * encodes both and signs them with the ES256 key it trusts, so that the
 * fuzzer reaches the claim checks behind the signature.  Any other input
 * goes as it is to jwt_verify and to both SASL parsers.  The keyring (a
 * P-256 and an RSA 2048 key, made at the first call) never changes.
 * Whatever is accepted must have produced a usable user name and token.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auth/jwt.h"
#include "auth/oauth.h"

#define NOW		((time_t)1700000000)
#define ISS_EC		"https://ec.example"
#define ISS_RSA		"https://rsa.example"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct jwt_keyring *kr;
static EVP_PKEY *ec_key;

/* Adds the public half of pkey to the keyring for issuer. */
static void
trust(EVP_PKEY *pkey, const char *issuer)
{
	char path[64], err[512];
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/postern-fuzz-%ld.pem",
	    (long)getpid());
	if ((f = fopen(path, "w")) == NULL || PEM_write_PUBKEY(f, pkey) != 1)
		abort();
	fclose(f);
	if (jwt_keyring_add(kr, issuer, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	unlink(path);
}

static void
setup(void)
{
	EVP_PKEY *rsa;

	if ((kr = jwt_keyring_new()) == NULL ||
	    (ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
	    (rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)) == NULL)
		abort();
	trust(ec_key, ISS_EC);
	trust(rsa, ISS_RSA);
	EVP_PKEY_free(rsa);
}

static size_t
b64url_put(const void *in, size_t n, char *out)
{
	static const char al[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_";
	const unsigned char *p = in;
	uint32_t acc = 0;
	unsigned int bits = 0;
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		acc = acc << 8 | p[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = al[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = al[(acc << (6 - bits)) & 63];
	return o;
}

/* Signs the first len octets of tok (ES256, R || S) and appends the
 * signature; the new length, or 0. */
static size_t
sign_es256(char *tok, size_t len)
{
	unsigned char der[128], raw[64];
	const unsigned char *p = der;
	const BIGNUM *r, *s;
	size_t derlen = sizeof(der);
	ECDSA_SIG *es;
	EVP_MD_CTX *ctx;
	int ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return 0;
	ok = EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, ec_key,
	    NULL) == 1 && EVP_DigestSign(ctx, der, &derlen,
	    (unsigned char *)tok, len) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok || (es = d2i_ECDSA_SIG(NULL, &p, (long)derlen)) == NULL)
		return 0;
	ECDSA_SIG_get0(es, &r, &s);
	ok = BN_bn2binpad(r, raw, 32) == 32 &&
	    BN_bn2binpad(s, raw + 32, 32) == 32;
	ECDSA_SIG_free(es);
	if (!ok)
		return 0;
	tok[len++] = '.';
	return len + b64url_put(raw, sizeof(raw), tok + len);
}

static void
check_user(const char *user)
{
	size_t i, n = strlen(user);

	if (n == 0)
		abort();
	for (i = 0; i < n; i++)
		if ((unsigned char)user[i] < 0x20 || user[i] == 0x7f)
			abort();
}

static void
verify(const char *tok, size_t len)
{
	char user[256];
	enum jwt_rc rc;

	rc = jwt_verify(kr, tok, len, "postern", "sub", NOW, 60, user,
	    sizeof(user));
	if (rc == JWT_OK)
		check_user(user);
	else if (user[0] != '\0')
		abort();
	if (jwt_rc_str(rc) == NULL)
		abort();
}

static void
parse_sasl(const uint8_t *data, size_t size)
{
	char name[256], token[JWT_MAX_TOKEN_LEN + 1];

	if (oauth_parse_bearer((const char *)data, size, name, sizeof(name),
	    token, sizeof(token)) == 0) {
		if (name[0] != '\0')
			check_user(name);
		if (token[0] == '\0')
			abort();
		verify(token, strlen(token));
	} else if (name[0] != '\0' || token[0] != '\0')
		abort();
	if (oauth_parse_xoauth2((const char *)data, size, name, sizeof(name),
	    token, sizeof(token)) == 0) {
		check_user(name);
		if (token[0] == '\0')
			abort();
	} else if (name[0] != '\0' || token[0] != '\0')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char tok[2 * JWT_MAX_TOKEN_LEN];
	const uint8_t *nl;
	size_t len;

	if (kr == NULL)
		setup();
	if (size > 0 && data[0] == '{' && size < JWT_MAX_TOKEN_LEN &&
	    (nl = memchr(data, '\n', size)) != NULL) {
		len = b64url_put(data, (size_t)(nl - data), tok);
		tok[len++] = '.';
		len += b64url_put(nl + 1, size - (size_t)(nl + 1 - data),
		    tok + len);
		if ((len = sign_es256(tok, len)) > 0)
			verify(tok, len);
		return 0;
	}
	verify((const char *)data, size);
	parse_sasl(data, size);
	return 0;
}
