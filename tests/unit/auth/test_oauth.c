/*
 * test_oauth.c: OAUTHBEARER (RFC 7628) and XOAUTH2 initial responses,
 * and the OAUTHBEARER error challenge.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "auth/oauth.h"

/* String literals may hold NULs: their length is sizeof - 1. */
#define LIT(s)		(s), (sizeof(s) - 1)

static char az[256], token[512];

static int
bearer(const char *msg, size_t len)
{
	memset(az, '#', sizeof(az));
	memset(token, '#', sizeof(token));
	return oauth_parse_bearer(msg, len, az, sizeof(az), token,
	    sizeof(token));
}

static int
xoauth2(const char *msg, size_t len)
{
	memset(az, '#', sizeof(az));
	memset(token, '#', sizeof(token));
	return oauth_parse_xoauth2(msg, len, az, sizeof(az), token,
	    sizeof(token));
}

/* Fails, leaving authzid empty and the whole token buffer wiped. */
static void
assert_bad_bearer(const char *msg, size_t len)
{
	size_t i;

	assert_int_equal(bearer(msg, len), -1);
	assert_string_equal(az, "");
	for (i = 0; i < sizeof(token); i++)
		assert_int_equal(token[i], '\0');
}

static void
test_bearer_valid(void **state)
{
	(void)state;
	/* RFC 7628 section 4.1. */
	assert_int_equal(bearer(LIT("n,a=user@example.com,\x01"
	    "host=server.example.com\x01port=143\x01"
	    "auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01")),
	    0);
	assert_string_equal(az, "user@example.com");
	assert_string_equal(token,
	    "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
	/* Without a=, with only auth, "y" taken as "n". */
	assert_int_equal(bearer(LIT("n,,\x01" "auth=Bearer abc.def-_~+/\x01"
	    "\x01")), 0);
	assert_string_equal(az, "");
	assert_string_equal(token, "abc.def-_~+/");
	assert_int_equal(bearer(LIT("y,,\x01" "auth=Bearer t\x01\x01")), 0);
	assert_string_equal(token, "t");
	/* The scheme in any case, several spaces; unknown keys skipped. */
	assert_int_equal(bearer(LIT("n,,\x01" "mfa=otp 123\x01"
	    "auth=bEARER   eyJ.eyJ.sig\x01" "x=\x01\x01")), 0);
	assert_string_equal(token, "eyJ.eyJ.sig");
	/* Values may hold HTAB, CR and LF. */
	assert_int_equal(bearer(LIT("n,,\x01" "host=a\tb\r\nc\x01"
	    "auth=Bearer t\x01\x01")), 0);
}

static void
test_bearer_authzid(void **state)
{
	char small[4], tk[16];

	(void)state;
	assert_int_equal(bearer(LIT("n,a=us=2Cer=3D=3Dx,\x01"
	    "auth=Bearer t\x01\x01")), 0);
	assert_string_equal(az, "us,er==x");
	/* Other escapes, lower case, truncated ones, raw '='. */
	assert_bad_bearer(LIT("n,a=u=41,\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("n,a=u=2c,\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("n,a=u=2,\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("n,a=u=,\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("n,a==,\x01" "auth=Bearer t\x01\x01"));
	/* Empty, control characters, NUL. */
	assert_bad_bearer(LIT("n,a=,\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("n,a=u\tx,\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("n,a=u\x7fx,\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("n,a=u\0x,\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("n,a=u\x01,\x01" "auth=Bearer t\x01\x01"));
	/* UTF-8 passes. */
	assert_int_equal(bearer(LIT("n,a=j\xc3\xb6rg,\x01"
	    "auth=Bearer t\x01\x01")), 0);
	assert_string_equal(az, "j\xc3\xb6rg");
	/* Fits exactly, then one octet too many. */
	assert_int_equal(oauth_parse_bearer(LIT("n,a=abc,\x01"
	    "auth=Bearer t\x01\x01"), small, sizeof(small), tk, sizeof(tk)),
	    0);
	assert_string_equal(small, "abc");
	assert_int_equal(oauth_parse_bearer(LIT("n,a=a=2Cbc,\x01"
	    "auth=Bearer t\x01\x01"), small, sizeof(small), tk, sizeof(tk)),
	    -1);
	assert_string_equal(small, "");
}

static void
test_bearer_malformed(void **state)
{
	char az2[16], tk[4];

	(void)state;
	/* Missing auth, or auth twice. */
	assert_bad_bearer(LIT("n,,\x01\x01"));
	assert_bad_bearer(LIT("n,,\x01" "host=h\x01\x01"));
	assert_bad_bearer(LIT("n,,\x01" "Auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("n,,\x01" "auth=Bearer t\x01"
	    "auth=Bearer u\x01\x01"));
	/* Terminators: none, one, three, junk after, a bare \x01. */
	assert_bad_bearer(LIT("n,,\x01" "auth=Bearer t"));
	assert_bad_bearer(LIT("n,,\x01" "auth=Bearer t\x01"));
	assert_bad_bearer(LIT("n,,\x01" "auth=Bearer t\x01\x01\x01"));
	assert_bad_bearer(LIT("n,,\x01" "auth=Bearer t\x01\x01x"));
	assert_bad_bearer(LIT("n,,\x01" "auth=Bearer t\x01\x01\0"));
	assert_bad_bearer(LIT("\x01"));
	assert_bad_bearer(LIT(""));
	assert_bad_bearer(LIT("n,,auth=Bearer t\x01\x01"));
	/* Channel binding and other gs2 headers. */
	assert_bad_bearer(LIT("p=tls-unique,,\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("p,,\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("N,,\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("n\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("n,\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("n,a=u\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("F,n,,\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("n,b=u,\x01" "auth=Bearer t\x01\x01"));
	/* Bad keys and values. */
	assert_bad_bearer(LIT("n,,\x01" "=v\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("n,,\x01" "ho-st=v\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("n,,\x01" "host\x01" "auth=Bearer t\x01\x01"));
	assert_bad_bearer(LIT("n,,\x01" "host=a\0b\x01" "auth=Bearer t\x01"
	    "\x01"));
	assert_bad_bearer(LIT("n,,\x01" "host=a\x1b" "b\x01"
	    "auth=Bearer t\x01\x01"));
	/* Bad auth values. */
	assert_bad_bearer(LIT("n,,\x01" "auth=Bearer\x01\x01"));
	assert_bad_bearer(LIT("n,,\x01" "auth=Bearer \x01\x01"));
	assert_bad_bearer(LIT("n,,\x01" "auth=Bearert\x01\x01"));
	assert_bad_bearer(LIT("n,,\x01" "auth=Basic dTpw\x01\x01"));
	assert_bad_bearer(LIT("n,,\x01" "auth=Bearer\tt\x01\x01"));
	assert_bad_bearer(LIT("n,,\x01" "auth=Bearer t \x01\x01"));
	assert_bad_bearer(LIT("n,,\x01" "auth=Bearer t u\x01\x01"));
	assert_bad_bearer(LIT("n,,\x01" "auth=Bearer t=u\x01\x01"));
	assert_bad_bearer(LIT("n,,\x01" "auth=Bearer =\x01\x01"));
	assert_bad_bearer(LIT("n,,\x01" "auth=Bearer t!\x01\x01"));
	assert_bad_bearer(LIT("n,,\x01" "auth= Bearer t\x01\x01"));
	/* A token that does not fit (3 octets and the NUL do). */
	assert_int_equal(oauth_parse_bearer(LIT("n,,\x01" "auth=Bearer abc"
	    "\x01\x01"), az2, sizeof(az2), tk, sizeof(tk)), 0);
	assert_string_equal(tk, "abc");
	assert_int_equal(oauth_parse_bearer(LIT("n,,\x01" "auth=Bearer abcd"
	    "\x01\x01"), az2, sizeof(az2), tk, sizeof(tk)), -1);
	assert_string_equal(tk, "");
	/* NULL and zero-sized outputs. */
	assert_int_equal(oauth_parse_bearer(NULL, 0, az2, sizeof(az2), tk,
	    sizeof(tk)), -1);
	assert_int_equal(oauth_parse_bearer(LIT("n,,\x01" "auth=Bearer a"
	    "\x01\x01"), az2, 0, tk, sizeof(tk)), -1);
	assert_int_equal(oauth_parse_bearer(LIT("n,,\x01" "auth=Bearer a"
	    "\x01\x01"), az2, sizeof(az2), NULL, 0), -1);
}

static void
test_xoauth2(void **state)
{
	char u[4], tk[8];

	(void)state;
	assert_int_equal(xoauth2(LIT("user=someuser@example.com\x01"
	    "auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdGF2aXN0YS5jb20K\x01"
	    "\x01")), 0);
	assert_string_equal(az, "someuser@example.com");
	assert_string_equal(token,
	    "ya29.vF9dft4qmTc2Nvb3RlckBhdGF2aXN0YS5jb20K");
	assert_int_equal(xoauth2(LIT("user=a\x01" "auth=bearer  t==\x01\x01")),
	    0);
	assert_string_equal(az, "a");
	assert_string_equal(token, "t==");

	assert_int_equal(xoauth2(LIT("user=\x01" "auth=Bearer t\x01\x01")), -1);
	assert_string_equal(az, "");
	assert_string_equal(token, "");
	assert_int_equal(xoauth2(LIT("user=a\x01" "auth=Bearer t\x01")), -1);
	assert_int_equal(xoauth2(LIT("user=a\x01" "auth=Bearer t")), -1);
	assert_int_equal(xoauth2(LIT("user=a\x01" "auth=Bearer t\x01\x01\x01")),
	    -1);
	assert_int_equal(xoauth2(LIT("user=a\x01" "auth=Bearer t\x01\x01\0")),
	    -1);
	assert_int_equal(xoauth2(LIT("user=a\x01" "auth=Bearer\x01\x01")), -1);
	assert_int_equal(xoauth2(LIT("user=a\x01" "auth=Basic t\x01\x01")), -1);
	assert_int_equal(xoauth2(LIT("user=a\x01" "Auth=Bearer t\x01\x01")),
	    -1);
	assert_int_equal(xoauth2(LIT("User=a\x01" "auth=Bearer t\x01\x01")),
	    -1);
	assert_int_equal(xoauth2(LIT("user=a\x01\x01" "auth=Bearer t\x01\x01")),
	    -1);
	assert_int_equal(xoauth2(LIT("user=a\x01" "host=h\x01"
	    "auth=Bearer t\x01\x01")), -1);
	assert_int_equal(xoauth2(LIT("user=a\0b\x01" "auth=Bearer t\x01\x01")),
	    -1);
	assert_int_equal(xoauth2(LIT("user=a\rb\x01" "auth=Bearer t\x01\x01")),
	    -1);
	assert_int_equal(xoauth2(LIT("user=a\x01" "auth=Bearer t\0\x01\x01")),
	    -1);
	assert_int_equal(xoauth2(LIT("n,,\x01" "auth=Bearer t\x01\x01")), -1);
	assert_int_equal(xoauth2(LIT("")), -1);
	assert_int_equal(xoauth2(LIT("user=")), -1);
	assert_int_equal(xoauth2(LIT("\x01\x01")), -1);
	/* Sizes: exact fits, then one octet too many. */
	assert_int_equal(oauth_parse_xoauth2(LIT("user=abc\x01"
	    "auth=Bearer 1234567\x01\x01"), u, sizeof(u), tk, sizeof(tk)), 0);
	assert_string_equal(u, "abc");
	assert_string_equal(tk, "1234567");
	assert_int_equal(oauth_parse_xoauth2(LIT("user=abcd\x01"
	    "auth=Bearer 1234567\x01\x01"), u, sizeof(u), tk, sizeof(tk)), -1);
	assert_int_equal(oauth_parse_xoauth2(LIT("user=abc\x01"
	    "auth=Bearer 12345678\x01\x01"), u, sizeof(u), tk, sizeof(tk)),
	    -1);
	assert_string_equal(u, "");
	assert_string_equal(tk, "");
}

static void
test_challenge(void **state)
{
	char out[128], small[27];

	(void)state;
	assert_int_equal(oauth_error_challenge("invalid_token", NULL, out,
	    sizeof(out)), 0);
	assert_string_equal(out, "{\"status\":\"invalid_token\"}");
	assert_int_equal(oauth_error_challenge("invalid_token",
	    "https://mail.google.com/", out, sizeof(out)), 0);
	assert_string_equal(out, "{\"status\":\"invalid_token\","
	    "\"scope\":\"https://mail.google.com/\"}");
	/* Quotes and backslashes are escaped. */
	assert_int_equal(oauth_error_challenge("invalid_request", "a\"b\\c",
	    out, sizeof(out)), 0);
	assert_string_equal(out, "{\"status\":\"invalid_request\","
	    "\"scope\":\"a\\\"b\\\\c\"}");
	/* 26 octets and the NUL fit; one octet less does not. */
	assert_int_equal(oauth_error_challenge("invalid_token", NULL, small,
	    sizeof(small)), 0);
	assert_string_equal(small, "{\"status\":\"invalid_token\"}");
	assert_int_equal(oauth_error_challenge("invalid_token", NULL, small,
	    sizeof(small) - 1), -1);
	assert_string_equal(small, "");
	/* No status, or text that is not UTF-8. */
	assert_int_equal(oauth_error_challenge(NULL, NULL, out, sizeof(out)),
	    -1);
	assert_int_equal(oauth_error_challenge("", "s", out, sizeof(out)), -1);
	assert_int_equal(oauth_error_challenge("invalid_token", "\xff", out,
	    sizeof(out)), -1);
	assert_string_equal(out, "");
	assert_int_equal(oauth_error_challenge("invalid_token", NULL, NULL,
	    0), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bearer_valid),
		cmocka_unit_test(test_bearer_authzid),
		cmocka_unit_test(test_bearer_malformed),
		cmocka_unit_test(test_xoauth2),
		cmocka_unit_test(test_challenge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
