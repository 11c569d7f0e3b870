/*
 * apop.c: the APOP digest check (RFC 1939 section 7).
 *
 * Owns: nothing beyond one call.  Trusts: nothing in digest_hex (a
 * peer's text, checked for exactly 32 hex digits) nor in the timestamp;
 * the secret is the {PLAIN} value from the user database.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/userdb.h"

#define MD5_LEN		16

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Exactly 2 * MD5_LEN hex digits, either case.  0 or -1. */
static int
hex_decode(const char *hex, unsigned char out[MD5_LEN])
{
	size_t i;
	int hi, lo;

	if (strlen(hex) != 2 * MD5_LEN)
		return -1;
	for (i = 0; i < MD5_LEN; i++) {
		hi = hex_value(hex[2 * i]);
		lo = hex_value(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

bool
apop_verify(const char *secret, const char *timestamp, const char *digest_hex)
{
	unsigned char want[EVP_MAX_MD_SIZE], got[MD5_LEN];
	unsigned int len = 0;
	EVP_MD_CTX *ctx;
	bool ok = false;

	/* An empty secret (a caller with no {PLAIN} secret for this user)
	 * still costs the digest, so that timing does not tell. */
	if (secret == NULL || timestamp == NULL || digest_hex == NULL ||
	    hex_decode(digest_hex, got) == -1)
		return false;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return false;
	/* The digest is MD5(timestamp || secret), the timestamp including
	 * its angle brackets as sent in the greeting. */
	if (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, timestamp, strlen(timestamp)) == 1 &&
	    EVP_DigestUpdate(ctx, secret, strlen(secret)) == 1 &&
	    EVP_DigestFinal_ex(ctx, want, &len) == 1 && len == MD5_LEN)
		ok = CRYPTO_memcmp(want, got, MD5_LEN) == 0 &&
		    secret[0] != '\0' && timestamp[0] != '\0';
	EVP_MD_CTX_free(ctx);	/* cleanses the MD5 state */
	explicit_bzero(want, sizeof(want));
	explicit_bzero(got, sizeof(got));
	return ok;
}
