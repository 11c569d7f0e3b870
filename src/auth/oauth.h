/*
 * oauth.h: the SASL messages of OAuth 2.0 bearer token logins: RFC 7628
 * OAUTHBEARER and Google's XOAUTH2.
 *
 * Only the auth process includes this.  These functions parse messages
 * already base64-decoded by the caller and build the error challenge
 * the caller base64-encodes; the token itself is checked by jwt.h.
 * Nothing here logs: a message holds a bearer credential.
 */
#ifndef POSTERN_OAUTH_H
#define POSTERN_OAUTH_H

#include <stddef.h>

#include "lib/attrs.h"

/*
 * An OAUTHBEARER client initial response (RFC 7628 section 3.1) of len
 * octets (NULs in it make it malformed):
 *
 *	gs2-header %x01 *(key "=" value %x01) %x01
 *
 * with gs2-header "n,," or "n,a=AUTHZID," ("y" is taken as "n"; "p=",
 * channel binding, is refused: OAUTHBEARER here has none).  AUTHZID is a
 * GS2 saslname: "=2C" and "=3D" decode to ',' and '=', any other '=' is
 * malformed.  Keys are letters, values printable ASCII, space, HTAB, CR
 * or LF.  "auth" is required, once, as "Bearer" (any case), one or more
 * spaces and a b64token (RFC 6750 section 2.1); "host", "port" and other
 * keys are skipped.  The lone %x01 a client sends after an error
 * challenge is not an initial response and is malformed here.
 *
 * 0, or -1 if malformed or if a field does not fit its buffer with its
 * NUL.  On 0, authzid is the decoded authorization identity ("" when
 * absent; non-empty, no control characters otherwise) and token the
 * bearer token.  On -1 authzid is "" and the token buffer is wiped
 * (when their size is > 0).
 */
int	oauth_parse_bearer(const char *msg, size_t len, char *authzid,
	    size_t azsize, char *token, size_t toksize) ATTR_WARN_UNUSED;

/*
 * A decoded XOAUTH2 initial response, exactly
 *
 *	"user=" USER %x01 "auth=" "Bearer" 1*SP TOKEN %x01 %x01
 *
 * ("Bearer" in any case, TOKEN a b64token).  USER is 1 or more octets
 * without control characters.  0, or -1 (malformed, or a field too long
 * for its buffer; user is "" and the token buffer wiped then).
 */
int	oauth_parse_xoauth2(const char *msg, size_t len, char *user,
	    size_t usize, char *token, size_t toksize) ATTR_WARN_UNUSED;

/*
 * The JSON error of a failed OAUTHBEARER exchange (RFC 7628 section
 * 3.2.2), compact, NUL-terminated, in out, for example
 *
 *	{"status":"invalid_token","scope":"mail"}
 *
 * status is an RFC 6749 error code, non-empty; scope is omitted when
 * NULL.  The caller base64-encodes it for the challenge.  0, or -1 (an
 * empty status or NULL, text not UTF-8, out too small, no memory).
 */
int	oauth_error_challenge(const char *status, const char *scope,
	    char *out, size_t outsize) ATTR_WARN_UNUSED;

#endif
