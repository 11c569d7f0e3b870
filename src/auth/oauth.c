/*
 * oauth.c: parsing of OAUTHBEARER (RFC 7628) and XOAUTH2 initial
 * responses, and the OAUTHBEARER error challenge.
 *
 * Owns: nothing beyond one call.  Trusts: nothing in a message (a peer's
 * bytes, decoded from base64 by the caller, possibly holding NULs): each
 * field is checked against its grammar and its output buffer before it
 * is copied, and a failure leaves the outputs empty, the token wiped.
 */
#include <stdbool.h>
#include <string.h>

#include <jansson.h>

#include "auth/oauth.h"

#define KVSEP		'\x01'

static bool
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static bool
is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" /
 * "~" / "+" / "/" ) *"=" */
static bool
is_b64token(unsigned char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9') || c == '-' ||
	    c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

/* RFC 7628 section 3.1: value = *(VCHAR / SP / HTAB / CR / LF) */
static bool
is_value(unsigned char c)
{
	return (c >= 0x21 && c <= 0x7e) || c == ' ' || c == '\t' ||
	    c == '\r' || c == '\n';
}

/* v (vlen octets) is "Bearer" (any case), 1*SP, a b64token: copies the
 * token into token.  0 or -1. */
static int
parse_auth_value(const char *v, size_t vlen, char *token, size_t toksize)
{
	static const char scheme[] = "bearer";
	size_t i, start;

	if (vlen < sizeof(scheme))	/* the scheme and one space */
		return -1;
	for (i = 0; i < sizeof(scheme) - 1; i++)
		if ((v[i] | 0x20) != scheme[i])
			return -1;
	if (v[i] != ' ')
		return -1;
	while (i < vlen && v[i] == ' ')
		i++;
	start = i;
	while (i < vlen && is_b64token((unsigned char)v[i]))
		i++;
	if (i == start)
		return -1;
	while (i < vlen && v[i] == '=')
		i++;
	if (i != vlen || vlen - start >= toksize)
		return -1;
	memcpy(token, v + start, vlen - start);
	token[vlen - start] = '\0';
	return 0;
}

/* A GS2 saslname (RFC 5801 section 4) of n octets, decoded into out:
 * "=2C" is ',', "=3D" is '='; no other '=', no control character, not
 * empty.  0 or -1. */
static int
parse_saslname(const char *p, size_t n, char *out, size_t outsize)
{
	size_t i, o = 0;
	char c;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		c = p[i];
		if (c == '=') {
			if (n - i < 3)
				return -1;
			if (p[i + 1] == '2' && p[i + 2] == 'C')
				c = ',';
			else if (p[i + 1] == '3' && p[i + 2] == 'D')
				c = '=';
			else
				return -1;
			i += 2;
		} else if (is_ctl((unsigned char)c))
			return -1;		/* NUL included */
		if (o + 1 >= outsize)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

static void
fail_outputs(char *name, size_t namesize, char *token, size_t toksize)
{
	if (name != NULL && namesize > 0)
		name[0] = '\0';
	if (token != NULL && toksize > 0)
		explicit_bzero(token, toksize);
}

int
oauth_parse_bearer(const char *msg, size_t len, char *authzid,
    size_t azsize, char *token, size_t toksize)
{
	const char *comma, *key, *val;
	size_t i = 0, klen, vlen;
	bool have_auth = false;

	if (msg == NULL || authzid == NULL || azsize == 0 ||
	    token == NULL || toksize == 0)
		goto bad;
	authzid[0] = '\0';
	token[0] = '\0';

	/* gs2-header: cbind flag "," [ "a=" saslname ] "," */
	if (len < 1 || (msg[0] != 'n' && msg[0] != 'y'))
		goto bad;			/* "p=" included */
	i = 1;
	if (i >= len || msg[i] != ',')
		goto bad;
	i++;
	if (len - i >= 2 && msg[i] == 'a' && msg[i + 1] == '=') {
		i += 2;
		if ((comma = memchr(msg + i, ',', len - i)) == NULL ||
		    parse_saslname(msg + i, (size_t)(comma - (msg + i)),
		    authzid, azsize) == -1)
			goto bad;
		i = (size_t)(comma - msg);
	}
	if (i >= len || msg[i] != ',')
		goto bad;
	i++;
	if (i >= len || msg[i] != KVSEP)
		goto bad;
	i++;

	/* *(key "=" value kvsep) kvsep, and nothing after. */
	for (;;) {
		if (i >= len)
			goto bad;
		if (msg[i] == KVSEP) {
			if (i + 1 != len)
				goto bad;
			break;
		}
		key = msg + i;
		while (i < len && is_alpha((unsigned char)msg[i]))
			i++;
		klen = (size_t)(msg + i - key);
		if (klen == 0 || i >= len || msg[i] != '=')
			goto bad;
		val = msg + ++i;
		while (i < len && msg[i] != KVSEP) {
			if (!is_value((unsigned char)msg[i]))
				goto bad;
			i++;
		}
		if (i >= len)
			goto bad;
		vlen = (size_t)(msg + i - val);
		i++;
		if (klen == 4 && memcmp(key, "auth", 4) == 0) {
			if (have_auth || parse_auth_value(val, vlen, token,
			    toksize) == -1)
				goto bad;
			have_auth = true;
		}
	}
	if (!have_auth)
		goto bad;
	return 0;
bad:
	fail_outputs(authzid, azsize, token, toksize);
	return -1;
}

int
oauth_parse_xoauth2(const char *msg, size_t len, char *user, size_t usize,
    char *token, size_t toksize)
{
	const char *p, *end, *sep;
	size_t n, i;

	if (msg == NULL || user == NULL || usize == 0 || token == NULL ||
	    toksize == 0)
		goto bad;
	user[0] = '\0';
	token[0] = '\0';
	end = msg + len;
	if (len < 5 || memcmp(msg, "user=", 5) != 0)
		goto bad;
	p = msg + 5;
	if ((sep = memchr(p, KVSEP, (size_t)(end - p))) == NULL)
		goto bad;
	n = (size_t)(sep - p);
	if (n == 0 || n >= usize)
		goto bad;
	for (i = 0; i < n; i++)
		if (is_ctl((unsigned char)p[i]))
			goto bad;
	memcpy(user, p, n);
	user[n] = '\0';
	p = sep + 1;
	if ((size_t)(end - p) < 5 || memcmp(p, "auth=", 5) != 0)
		goto bad;
	p += 5;
	/* The value, then exactly two separators. */
	if ((sep = memchr(p, KVSEP, (size_t)(end - p))) == NULL ||
	    end - sep != 2 || sep[1] != KVSEP ||
	    parse_auth_value(p, (size_t)(sep - p), token, toksize) == -1)
		goto bad;
	return 0;
bad:
	fail_outputs(user, usize, token, toksize);
	return -1;
}

int
oauth_error_challenge(const char *status, const char *scope, char *out,
    size_t outsize)
{
	json_t *o;
	size_t n;
	int rc = -1;

	if (out == NULL || outsize == 0)
		return -1;
	out[0] = '\0';
	if (status == NULL || status[0] == '\0' || (o = json_object()) == NULL)
		return -1;
	/* json_string() is NULL for text that is not UTF-8, and setting a
	 * NULL value fails. */
	if (json_object_set_new(o, "status", json_string(status)) == 0 &&
	    (scope == NULL ||
	    json_object_set_new(o, "scope", json_string(scope)) == 0)) {
		/* Insertion order is kept: "status" comes first. */
		n = json_dumpb(o, out, outsize, JSON_COMPACT);
		if (n > 0 && n < outsize) {
			out[n] = '\0';
			rc = 0;
		} else
			out[0] = '\0';
	}
	json_decref(o);
	return rc;
}
