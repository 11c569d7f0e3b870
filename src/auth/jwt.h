/*
 * jwt.h: local verification of JSON Web Tokens (RFC 7519) signed as a
 * compact JWS (RFC 7515), for OAuth 2.0 bearer tokens (RFC 7628).
 *
 * Only the auth process includes this.  Nothing here touches the
 * network: the keys of the trusted issuers are public keys read from PEM
 * files when the keyring is built, and a token is accepted only if one
 * of its issuer's keys verifies it.
 *
 * Two algorithms, each tied to the key that verifies it (RFC 8725
 * section 3.1: the key decides the algorithm, never the token):
 *
 *	RSA key, 2048 bits or more	RS256 (RSASSA-PKCS1-v1_5, SHA-256)
 *	EC key on P-256			ES256 (ECDSA P-256, SHA-256)
 *
 * Anything else ("none", HS256, RS384, PS256, ...) is refused.
 */
#ifndef POSTERN_JWT_H
#define POSTERN_JWT_H

#include <stddef.h>
#include <time.h>

#include "lib/attrs.h"

/* A token longer than this is refused before any decoding.  Access
 * tokens from the common providers are 1-2 KB; 8 KB leaves room for
 * generous claims while bounding the work a peer can cause. */
#define JWT_MAX_TOKEN_LEN	8192

/* At most this many keys in one keyring (all issuers together). */
#define JWT_MAX_KEYS		64

struct jwt_keyring;

/* An empty keyring, or NULL (out of memory). */
struct jwt_keyring *jwt_keyring_new(void);

/*
 * Trusts the public key in the PEM file pem_path for tokens whose "iss"
 * is exactly issuer (byte for byte).  The file may hold a
 * SubjectPublicKeyInfo ("BEGIN PUBLIC KEY") or an X.509 certificate
 * ("BEGIN CERTIFICATE", whose key is used; its dates and chain are not
 * checked); the first such block counts.  An issuer may be given several
 * keys (key rollover): a token is then accepted if any of them verifies
 * it.  0, or -1 with one line in err ("PATH: reason"): unreadable file,
 * no key in it, an RSA key under 2048 bits, another key type or curve,
 * an empty issuer or one holding a control character, or more than
 * JWT_MAX_KEYS keys.
 */
int	jwt_keyring_add(struct jwt_keyring *, const char *issuer,
	    const char *pem_path, char *err, size_t errsize) ATTR_WARN_UNUSED;
/* Number of keys added. */
size_t	jwt_keyring_count(const struct jwt_keyring *);
/* Frees the keyring and its keys, then *krp = NULL. */
void	jwt_keyring_free(struct jwt_keyring **krp);

enum jwt_rc {
	JWT_OK,
	JWT_MALFORMED,		/* not a compact JWS of JSON objects */
	JWT_BAD_ALG,		/* alg not RS256/ES256, or not the key's */
	JWT_BAD_SIGNATURE,
	JWT_UNKNOWN_ISSUER,	/* "iss" absent or not in the keyring */
	JWT_EXPIRED,		/* "exp" absent, or past */
	JWT_NOT_YET_VALID,	/* "nbf" or "iat" in the future */
	JWT_BAD_AUDIENCE,
	JWT_NO_USER,		/* the user claim is absent or unusable */
};

/*
 * Verifies token (len octets, no NUL needed; the compact form
 * BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature),
 * without padding) and copies the user it names into user.
 *
 * In this order, the first failure deciding the result:
 *  - len at most JWT_MAX_TOKEN_LEN, three parts, strict base64url (no
 *    '=', no white space, canonical trailing bits), header and payload
 *    JSON objects without duplicate names, else JWT_MALFORMED;
 *  - header "alg" RS256 or ES256, else JWT_BAD_ALG; "typ", if present,
 *    "JWT" or "at+jwt" in any case, and no "crit", else JWT_MALFORMED;
 *  - payload "iss" a string naming an issuer of the keyring, else
 *    JWT_UNKNOWN_ISSUER; one of its keys of alg's type, else JWT_BAD_ALG;
 *  - the signature verifies with one of those keys (ES256: the 64-octet
 *    R || S of RFC 7518 section 3.4), else JWT_BAD_SIGNATURE;
 *  - "exp" present and exp > now - leeway_s, else JWT_EXPIRED (a token
 *    without "exp" would never expire: it is treated as expired);
 *  - "nbf" and "iat", if present, at most now + leeway_s, else
 *    JWT_NOT_YET_VALID;
 *  - "aud" a string equal to audience (non-empty), or an array holding
 *    one, else JWT_BAD_AUDIENCE;
 *  - the claim named user_claim (e.g. "sub", "email") a non-empty string
 *    without control characters that fits in usersize with its NUL, else
 *    JWT_NO_USER.
 * A time claim ("exp", "nbf", "iat") that is not a JSON number from 0 to
 * year 9999 makes the token JWT_MALFORMED.  Times are seconds since the
 * epoch; a fraction counts against the token (exp rounds down, nbf and
 * iat up).  The user name is otherwise unchecked: the caller applies its
 * own rules (username_valid()).  On any failure user is "" (if usersize
 * > 0).  The token is never logged nor copied into err strings; decoded
 * copies are wiped before they are freed.
 */
enum jwt_rc jwt_verify(const struct jwt_keyring *, const char *token,
	    size_t len, const char *audience, const char *user_claim,
	    time_t now, unsigned int leeway_s, char *user, size_t usersize)
	    ATTR_WARN_UNUSED;

/* A short fixed word for logs: "ok", "malformed", "bad-alg",
 * "bad-signature", "unknown-issuer", "expired", "not-yet-valid",
 * "wrong-audience", "no-user"; "unknown" for other values. */
const char *jwt_rc_str(enum jwt_rc);

#endif
