/*
 * sasl.h: the server side of SASL (RFC 4422) for AUTH (RFC 5034), as the
 * auth process runs it.
 *
 * GNU SASL carries PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1(-PLUS),
 * SCRAM-SHA-256(-PLUS) and EXTERNAL; OAUTHBEARER (RFC 7628) and XOAUTH2
 * are done here, with tokens verified locally (jwt.h).  Nothing here
 * touches the network: an exchange takes the client's base64 responses
 * and gives base64 challenges and an outcome.  Every response is
 * hostile; secrets are wiped after use and never logged.
 */
#ifndef POSTERN_SASL_H
#define POSTERN_SASL_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/attrs.h"
#include "lib/config.h"
#include "lib/limits.h"

struct userdb;
struct jwt_keyring;

/* What every exchange of a process shares. */
struct sasl_env {
	const struct config	*cfg;
	struct userdb		*db;		/* NULL: unreadable: TEMPFAIL */
	struct jwt_keyring	*keys;		/* token issuers, or NULL */
	/* Keys the fake SCRAM salts of unknown users, so that they look
	 * like those of real users and stay the same between tries. */
	uint8_t			 fake_key[32];
};

/* One AUTH as the pop3 worker describes it. */
struct sasl_req {
	enum sasl_mech	 mech;
	bool		 plus_offered;	/* CAPA listed a -PLUS mechanism */
	const char	*cb_unique;	/* base64 tls-unique, or "" */
	const char	*cb_exporter;	/* base64 tls-exporter, or "" */
	const char	*external_id;	/* verified certificate's user, "" */
};

enum sasl_status {
	SASL_CONTINUE,		/* send the challenge, await a response */
	SASL_OK,
	SASL_FAIL,		/* wrong credentials, refused identity */
	SASL_TEMPFAIL,		/* no user database, out of memory */
	SASL_BAD_INPUT,		/* not base64 */
};

struct sasl_outcome {
	char		 user[MAX_USERNAME_LEN + 1];	/* on SASL_OK */
	int64_t		 login_delay_s;	/* -1: the site's */
	int64_t		 expire_days;	/* -2: the site's, -1: never */
	const char	*reason;	/* a word for the log */
};

struct sasl_xchg;

/* Once per process: 0, or -1 if GNU SASL cannot start. */
int	sasl_init(void) ATTR_WARN_UNUSED;

/* A new exchange, or NULL (out of memory, or a mechanism GNU SASL
 * lacks). */
struct sasl_xchg *sasl_new(struct sasl_env *, const struct sasl_req *);

/*
 * Feeds one client response: in is base64 as sent ("" for an empty one),
 * or NULL when AUTH carried no initial response.  SASL_CONTINUE sets
 * *challenge (base64, malloc'ed; the caller frees it); any other status
 * ends the exchange and fills out (out->reason always).
 */
enum sasl_status sasl_step(struct sasl_xchg *, const char *in,
	    char **challenge, struct sasl_outcome *out);

void	sasl_free(struct sasl_xchg **);

/* Constant-time check of a password against what u stores (its crypt
 * hash, else its plaintext-equivalent secret); u NULL (no such user)
 * costs one dummy hash and fails. */
struct user_rec;
bool	user_password_ok(const struct user_rec *u, const char *pass);

#endif
