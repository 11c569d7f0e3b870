/*
 * sasl.c: the server side of SASL for the auth process (sasl.h).
 *
 * GNU SASL runs the mechanisms it has and asks for what it needs through
 * one callback: this file answers from the user database.  An unknown or
 * disabled user is answered with credentials that cannot match (a dummy
 * password hash, a random CRAM-MD5 secret, SCRAM keys under a salt that
 * looks real), so that neither the replies nor their timing tell which
 * users exist.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsasl.h>
#include <jansson.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth/jwt.h"
#include "auth/oauth.h"
#include "auth/sasl.h"
#include "auth/userdb.h"
#include "lib/log.h"

/* A decoded client response is at most this long (a SASL line of
 * HARD_MAX_SASL_LINE_LENGTH base64 octets decodes to less). */
#define SASL_MAX_DECODED	(HARD_MAX_SASL_LINE_LENGTH / 4 * 3)
#define CB_B64_MAX		128

enum phase {
	PHASE_RUNNING,
	PHASE_SUCCESS_PENDING,	/* server-final sent; want an empty line */
	PHASE_FAILING,		/* RFC 7628 error sent; want the dummy */
};

struct sasl_xchg {
	struct sasl_env		*env;
	enum sasl_mech		 mech;
	bool			 plus_offered;
	char			 cb_unique[CB_B64_MAX];
	char			 cb_exporter[CB_B64_MAX];
	char			 external_id[MAX_USERNAME_LEN + 1];
	Gsasl_session		*gs;		/* NULL for OAuth */
	enum phase		 phase;
	bool			 first;		/* no response seen yet */
	struct sasl_outcome	 res;		/* being decided */

	/* SCRAM: the keys answered to GNU SASL, looked up once. */
	bool			 scram_loaded;
	bool			 scram_fake;
	struct scram_cred	 scram;
	/* CRAM-MD5: the secret was a random one. */
	bool			 fake_secret;
};

static Gsasl *gctx;

static bool
is_scram(enum sasl_mech m)
{
	return m == MECH_SCRAM_SHA_1 || m == MECH_SCRAM_SHA_1_PLUS ||
	    m == MECH_SCRAM_SHA_256 || m == MECH_SCRAM_SHA_256_PLUS;
}

static bool
is_sha256(enum sasl_mech m)
{
	return m == MECH_SCRAM_SHA_256 || m == MECH_SCRAM_SHA_256_PLUS;
}

static bool
is_master(const struct config *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n_master_users; i++)
		if (strcmp(c->master_users[i], name) == 0)
			return true;
	return false;
}

static const struct user_rec *
lookup(struct sasl_xchg *x, const char *name)
{
	if (x->env->db == NULL || name == NULL || !username_valid(name))
		return NULL;
	return userdb_lookup(x->env->db, name);
}

/* Takes the per-user settings of u for the outcome. */
static void
take_user(struct sasl_xchg *x, const struct user_rec *u, const char *name)
{
	(void)snprintf(x->res.user, sizeof(x->res.user), "%s", name);
	x->res.login_delay_s = u != NULL ? u->login_delay_s : -1;
	x->res.expire_days = u != NULL ? u->expire_days : USER_EXPIRE_DEFAULT;
}

/*
 * The identity authid (whose credentials were just verified) acts as
 * authzid ("" or NULL: as itself).  Only the site's master users may act
 * as somebody else, and that somebody must exist and be enabled.
 */
static bool
authorize(struct sasl_xchg *x, const char *authid, const char *authzid)
{
	const struct user_rec *u;

	if (authzid == NULL || authzid[0] == '\0' ||
	    strcmp(authzid, authid) == 0) {
		u = lookup(x, authid);
		if (u == NULL || u->disabled) {
			x->res.reason = u == NULL ? "unknown-user" : "disabled";
			return false;
		}
		take_user(x, u, authid);
		return true;
	}
	if (!is_master(x->env->cfg, authid)) {
		x->res.reason = "authzid-refused";
		return false;
	}
	u = lookup(x, authzid);
	if (u == NULL || u->disabled) {
		x->res.reason = "authzid-unknown";
		return false;
	}
	log_info("auth: master user %s acts as %s", authid, authzid);
	take_user(x, u, authzid);
	return true;
}

/* Constant-time check of pass against what u stores; an unknown user
 * costs one dummy hash. */
bool
user_password_ok(const struct user_rec *u, const char *pass)
{
	size_t a, b;

	if (u == NULL) {
		(void)pw_verify(pw_dummy_hash(), pass);
		return false;
	}
	if (u->password != NULL)
		return pw_verify(u->password, pass);
	if (u->secret != NULL) {
		/* The same hash as any other check, so timing does not tell
		 * a secret-only account from the rest. */
		(void)pw_verify(pw_dummy_hash(), pass);
		a = strlen(u->secret);
		b = strlen(pass);
		return a == b && CRYPTO_memcmp(u->secret, pass, a) == 0;
	}
	(void)pw_verify(pw_dummy_hash(), pass);
	return false;
}

static int
validate_simple(struct sasl_xchg *x, Gsasl_session *gs)
{
	const char *authid = gsasl_property_fast(gs, GSASL_AUTHID);
	const char *authzid = gsasl_property_fast(gs, GSASL_AUTHZID);
	const char *pass = gsasl_property_fast(gs, GSASL_PASSWORD);
	const struct user_rec *u;
	bool ok;

	if (authid == NULL || pass == NULL)
		return GSASL_AUTHENTICATION_ERROR;
	u = lookup(x, authid);
	ok = user_password_ok(u, pass);
	if (!ok) {
		x->res.reason = u == NULL ? "unknown-user" : "bad-credentials";
		return GSASL_AUTHENTICATION_ERROR;
	}
	return authorize(x, authid, authzid) ? GSASL_OK :
	    GSASL_AUTHENTICATION_ERROR;
}

/* CRAM-MD5 asks for the secret of the user named in the response. */
static int
give_password(struct sasl_xchg *x, Gsasl_session *gs)
{
	const char *authid = gsasl_property_fast(gs, GSASL_AUTHID);
	const struct user_rec *u = lookup(x, authid);
	unsigned char rnd[18];
	char fake[40];

	if (x->mech != MECH_CRAM_MD5)
		return GSASL_NO_CALLBACK;
	if (u != NULL && u->secret != NULL && !u->disabled) {
		gsasl_property_set(gs, GSASL_PASSWORD, u->secret);
		return GSASL_OK;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return GSASL_AUTHENTICATION_ERROR;
	(void)EVP_EncodeBlock((unsigned char *)fake, rnd, sizeof(rnd));
	gsasl_property_set(gs, GSASL_PASSWORD, fake);
	explicit_bzero(fake, sizeof(fake));
	x->fake_secret = true;
	x->res.reason = u == NULL ? "unknown-user" : u->disabled ?
	    "disabled" : "no-secret";
	return GSASL_OK;
}

/* SCRAM credentials that cannot match, under a salt derived from the
 * name, so that asking twice gives the same answer a real user would. */
static int
fake_scram(struct sasl_xchg *x, const char *name)
{
	unsigned char mac[EVP_MAX_MD_SIZE], key[32];
	unsigned int maclen = 0;
	size_t klen = is_sha256(x->mech) ? 32 : 20;
	char in[MAX_USERNAME_LEN + 16];
	int n;

	n = snprintf(in, sizeof(in), "%s\n%s", is_sha256(x->mech) ?
	    "256" : "1", name != NULL ? name : "");
	if (n < 0 || HMAC(EVP_sha256(), x->env->fake_key,
	    sizeof(x->env->fake_key), (const unsigned char *)in,
	    (size_t)n, mac, &maclen) == NULL || maclen < 16)
		return -1;
	x->scram.set = true;
	x->scram.iter = x->env->cfg->scram_iterations;
	(void)EVP_EncodeBlock((unsigned char *)x->scram.salt, mac, 16);
	if (RAND_bytes(key, (int)klen) != 1)
		return -1;
	(void)EVP_EncodeBlock((unsigned char *)x->scram.stored_key, key,
	    (int)klen);
	if (RAND_bytes(key, (int)klen) != 1)
		return -1;
	(void)EVP_EncodeBlock((unsigned char *)x->scram.server_key, key,
	    (int)klen);
	explicit_bzero(key, sizeof(key));
	x->scram_fake = true;
	return 0;
}

static int
give_scram(struct sasl_xchg *x, Gsasl_session *gs, Gsasl_property prop)
{
	char iter[16];

	if (!is_scram(x->mech))
		return GSASL_NO_CALLBACK;
	if (!x->scram_loaded) {
		const char *authid = gsasl_property_fast(gs, GSASL_AUTHID);
		const struct user_rec *u = lookup(x, authid);
		const struct scram_cred *c = u == NULL ? NULL :
		    is_sha256(x->mech) ? &u->scram_sha256 : &u->scram_sha1;

		x->scram_loaded = true;
		if (c != NULL && c->set && !u->disabled)
			x->scram = *c;
		else {
			x->res.reason = u == NULL ? "unknown-user" :
			    u->disabled ? "disabled" : "no-scram-keys";
			if (fake_scram(x, authid) == -1)
				return GSASL_AUTHENTICATION_ERROR;
		}
	}
	switch (prop) {
	case GSASL_SCRAM_ITER:
		(void)snprintf(iter, sizeof(iter), "%u",
		    (unsigned int)x->scram.iter);
		gsasl_property_set(gs, prop, iter);
		break;
	case GSASL_SCRAM_SALT:
		gsasl_property_set(gs, prop, x->scram.salt);
		break;
	case GSASL_SCRAM_STOREDKEY:
		/* GNU SASL 2.2 takes these in base64, whatever its header
		 * says about hex. */
		gsasl_property_set(gs, prop, x->scram.stored_key);
		break;
	case GSASL_SCRAM_SERVERKEY:
		gsasl_property_set(gs, prop, x->scram.server_key);
		break;
	default:
		return GSASL_NO_CALLBACK;
	}
	return GSASL_OK;
}

static int
validate_external(struct sasl_xchg *x, Gsasl_session *gs)
{
	const char *authzid = gsasl_property_fast(gs, GSASL_AUTHZID);

	if (x->external_id[0] == '\0') {
		x->res.reason = "no-client-certificate";
		return GSASL_AUTHENTICATION_ERROR;
	}
	/* The certificate names one user: no master-user switch here. */
	if (authzid != NULL && authzid[0] != '\0' &&
	    strcmp(authzid, x->external_id) != 0) {
		x->res.reason = "authzid-refused";
		return GSASL_AUTHENTICATION_ERROR;
	}
	return authorize(x, x->external_id, NULL) ? GSASL_OK :
	    GSASL_AUTHENTICATION_ERROR;
}

static int
callback(Gsasl *ctx, Gsasl_session *gs, Gsasl_property prop)
{
	struct sasl_xchg *x = gsasl_session_hook_get(gs);

	if (x == NULL)
		return GSASL_NO_CALLBACK;
	switch (prop) {
	case GSASL_VALIDATE_SIMPLE:
		return validate_simple(x, gs);
	case GSASL_PASSWORD:
		return give_password(x, gs);
	case GSASL_SCRAM_ITER:
	case GSASL_SCRAM_SALT:
	case GSASL_SCRAM_STOREDKEY:
	case GSASL_SCRAM_SERVERKEY:
		return give_scram(x, gs, prop);
	case GSASL_VALIDATE_EXTERNAL:
		return validate_external(x, gs);
	default:
		return GSASL_NO_CALLBACK;
	}
}

/* jansson keeps its own copies of a token's claims: wipe them on free. */
static void
wiping_free(void *p)
{
	if (p == NULL)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

int
sasl_init(void)
{
	if (gctx != NULL)
		return 0;
	json_set_alloc_funcs(malloc, wiping_free);
	if (gsasl_init(&gctx) != GSASL_OK) {
		gctx = NULL;
		return -1;
	}
	gsasl_callback_set(gctx, callback);
	return 0;
}

struct sasl_xchg *
sasl_new(struct sasl_env *env, const struct sasl_req *req)
{
	struct sasl_xchg *x;
	bool plus = req->mech == MECH_SCRAM_SHA_1_PLUS ||
	    req->mech == MECH_SCRAM_SHA_256_PLUS;

	if (gctx == NULL || (x = calloc(1, sizeof(*x))) == NULL)
		return NULL;
	x->env = env;
	x->mech = req->mech;
	x->plus_offered = req->plus_offered;
	x->first = true;
	x->res.login_delay_s = -1;
	x->res.expire_days = USER_EXPIRE_DEFAULT;
	(void)snprintf(x->cb_unique, sizeof(x->cb_unique), "%s",
	    req->cb_unique);
	(void)snprintf(x->cb_exporter, sizeof(x->cb_exporter), "%s",
	    req->cb_exporter);
	(void)snprintf(x->external_id, sizeof(x->external_id), "%s",
	    req->external_id);
	if (req->mech == MECH_OAUTHBEARER || req->mech == MECH_XOAUTH2)
		return x;
	if (gsasl_server_start(gctx, config_mech_name(req->mech),
	    &x->gs) != GSASL_OK) {
		free(x);
		return NULL;
	}
	gsasl_session_hook_set(x->gs, x);
	/* Channel bindings only for -PLUS: a plain SCRAM must not check
	 * them, and its "y" downgrade test is done in sasl_step. */
	if (plus && x->cb_unique[0] != '\0')
		gsasl_property_set(x->gs, GSASL_CB_TLS_UNIQUE, x->cb_unique);
	if (plus && x->cb_exporter[0] != '\0')
		gsasl_property_set(x->gs, GSASL_CB_TLS_EXPORTER,
		    x->cb_exporter);
	return x;
}

void
sasl_free(struct sasl_xchg **xp)
{
	struct sasl_xchg *x = *xp;

	if (x == NULL)
		return;
	if (x->gs != NULL)
		gsasl_finish(x->gs);
	explicit_bzero(x, sizeof(*x));
	free(x);
	*xp = NULL;
}

/* Decodes base64 in (strictly) into a malloc'ed buffer (NUL-terminated,
 * *len without it).  -1 on bad base64 or no memory. */
static int
decode(const char *in, char **out, size_t *len)
{
	size_t n = strlen(in);

	*out = NULL;
	*len = 0;
	if (n == 0) {
		if ((*out = calloc(1, 1)) == NULL)
			return -1;
		return 0;
	}
	if (n > HARD_MAX_SASL_LINE_LENGTH ||
	    gsasl_base64_from(in, n, out, len) != GSASL_OK)
		return -1;
	return 0;
}

static enum sasl_status
finish(struct sasl_xchg *x, enum sasl_status st, struct sasl_outcome *out)
{
	*out = x->res;
	if (st == SASL_OK)
		out->reason = "ok";
	else if (out->reason == NULL)
		out->reason = st == SASL_BAD_INPUT ? "bad-base64" :
		    st == SASL_TEMPFAIL ? "tempfail" : "bad-credentials";
	if (st != SASL_OK)
		out->user[0] = '\0';
	return st;
}

/* The RFC 7628 section 3.2.2 failure: a JSON error as challenge; the
 * client's next response (its dummy) ends the exchange. */
static enum sasl_status
oauth_fail(struct sasl_xchg *x, const char *reason, char **challenge,
    struct sasl_outcome *out)
{
	char json[256];

	x->res.reason = reason;
	x->phase = PHASE_FAILING;
	if (oauth_error_challenge("invalid_token", NULL, json,
	    sizeof(json)) == -1 ||
	    gsasl_base64_to(json, strlen(json), challenge, NULL) != GSASL_OK)
		return finish(x, SASL_FAIL, out);
	return SASL_CONTINUE;
}

static enum sasl_status
oauth_step(struct sasl_xchg *x, const char *in, char **challenge,
    struct sasl_outcome *out)
{
	char authzid[MAX_USERNAME_LEN + 1], user[MAX_USERNAME_LEN + 1];
	char *msg, *token;
	const struct user_rec *u;
	enum jwt_rc rc;
	size_t len;
	int prc;

	if (x->phase == PHASE_FAILING)
		return finish(x, SASL_FAIL, out);
	if (in == NULL) {
		/* No initial response: an empty challenge asks for it. */
		if ((*challenge = strdup("")) == NULL)
			return finish(x, SASL_TEMPFAIL, out);
		return SASL_CONTINUE;
	}
	if (decode(in, &msg, &len) == -1) {
		x->res.reason = "bad-base64";
		return finish(x, SASL_BAD_INPUT, out);
	}
	if ((token = malloc(JWT_MAX_TOKEN_LEN + 1)) == NULL) {
		explicit_bzero(msg, len);
		free(msg);
		return finish(x, SASL_TEMPFAIL, out);
	}
	prc = x->mech == MECH_OAUTHBEARER ?
	    oauth_parse_bearer(msg, len, authzid, sizeof(authzid), token,
	    JWT_MAX_TOKEN_LEN + 1) :
	    oauth_parse_xoauth2(msg, len, authzid, sizeof(authzid), token,
	    JWT_MAX_TOKEN_LEN + 1);
	explicit_bzero(msg, len);
	free(msg);
	if (prc == -1) {
		free(token);
		x->res.reason = "malformed";
		return finish(x, SASL_FAIL, out);
	}
	rc = x->env->keys == NULL ? JWT_UNKNOWN_ISSUER :
	    jwt_verify(x->env->keys, token, strlen(token),
	    x->env->cfg->oauth_audience, x->env->cfg->oauth_user_claim,
	    time(NULL), OAUTH_LEEWAY_SEC, user, sizeof(user));
	explicit_bzero(token, JWT_MAX_TOKEN_LEN + 1);
	free(token);
	if (rc != JWT_OK)
		return oauth_fail(x, jwt_rc_str(rc), challenge, out);
	/* The name the client gave must be the one the token proves. */
	if ((authzid[0] != '\0' || x->mech == MECH_XOAUTH2) &&
	    strcmp(authzid, user) != 0)
		return oauth_fail(x, "token-user-mismatch", challenge, out);
	if (!username_valid(user))
		return oauth_fail(x, "token-user-invalid", challenge, out);
	if (x->env->db == NULL)
		return finish(x, SASL_TEMPFAIL, out);
	/* The issuer vouches for the user; the database may still hold
	 * settings for it, or disable it. */
	u = userdb_lookup(x->env->db, user);
	if (u != NULL && u->disabled)
		return oauth_fail(x, "disabled", challenge, out);
	take_user(x, u, user);
	return finish(x, SASL_OK, out);
}

static enum sasl_status
gsasl_fail(struct sasl_xchg *x, int rc, struct sasl_outcome *out)
{
	switch (rc) {
	case GSASL_BASE64_ERROR:
		x->res.reason = "bad-base64";
		return finish(x, SASL_BAD_INPUT, out);
	case GSASL_MECHANISM_PARSE_ERROR:
		x->res.reason = "malformed";
		break;
	case GSASL_NO_CB_TLS_UNIQUE:
	case GSASL_NO_CB_TLS_EXPORTER:
		x->res.reason = "channel-binding-unavailable";
		break;
	case GSASL_AUTHENTICATION_ERROR:
		if (x->res.reason == NULL)
			x->res.reason = is_scram(x->mech) ?
			    "bad-proof-or-binding" : "bad-credentials";
		break;
	case GSASL_MALLOC_ERROR:
		return finish(x, SASL_TEMPFAIL, out);
	default:
		if (x->res.reason == NULL)
			x->res.reason = "mechanism-error";
		break;
	}
	return finish(x, SASL_FAIL, out);
}

enum sasl_status
sasl_step(struct sasl_xchg *x, const char *in, char **challenge,
    struct sasl_outcome *out)
{
	char *data = NULL, *output = NULL;
	size_t len = 0, outlen = 0;
	const char *authid;
	int rc;

	*challenge = NULL;
	if (x->env->db == NULL && x->mech != MECH_OAUTHBEARER &&
	    x->mech != MECH_XOAUTH2)
		return finish(x, SASL_TEMPFAIL, out);
	if (x->gs == NULL)
		return oauth_step(x, in, challenge, out);
	if (x->phase == PHASE_SUCCESS_PENDING) {
		/* RFC 5034 section 4: POP3 has no success data; it went as
		 * a challenge, and the answer must be empty. */
		if (in == NULL || in[0] != '\0') {
			x->res.reason = "data-after-success";
			return finish(x, SASL_FAIL, out);
		}
		return finish(x, SASL_OK, out);
	}
	/* "=" on the AUTH line is an empty initial response, which only
	 * EXTERNAL can use (no authorization identity); GNU SASL would
	 * take it for none and ask again. */
	if (x->first && in != NULL && in[0] == '\0' &&
	    x->mech != MECH_EXTERNAL) {
		x->res.reason = "empty-initial-response";
		return finish(x, SASL_FAIL, out);
	}
	if (in != NULL && decode(in, &data, &len) == -1) {
		x->res.reason = "bad-base64";
		return finish(x, SASL_BAD_INPUT, out);
	}
	/* RFC 5802 section 6: a client that supports channel binding but
	 * thinks we do not ("y") has been shown a CAPA without -PLUS by
	 * somebody in between. */
	if (is_scram(x->mech) && data != NULL && len >= 2 && x->first &&
	    x->plus_offered && data[0] == 'y' && data[1] == ',') {
		explicit_bzero(data, len);
		free(data);
		x->res.reason = "channel-binding-downgrade";
		return finish(x, SASL_FAIL, out);
	}
	if (data != NULL)
		x->first = false;
	rc = gsasl_step(x->gs, data, len, &output, &outlen);
	if (data != NULL) {
		explicit_bzero(data, len);
		free(data);
	}
	if (rc == GSASL_NEEDS_MORE || rc == GSASL_OK) {
		bool success = rc == GSASL_OK;

		if (success && (x->mech == MECH_CRAM_MD5 ||
		    is_scram(x->mech))) {
			/* The proof was checked; now the identity. */
			authid = gsasl_property_fast(x->gs, GSASL_AUTHID);
			if (x->fake_secret || x->scram_fake ||
			    authid == NULL || !authorize(x, authid,
			    x->mech == MECH_CRAM_MD5 ? NULL :
			    gsasl_property_fast(x->gs, GSASL_AUTHZID))) {
				free(output);
				return finish(x, SASL_FAIL, out);
			}
		}
		if (success && outlen == 0) {
			free(output);
			return finish(x, SASL_OK, out);
		}
		rc = gsasl_base64_to(output != NULL ? output : "", outlen,
		    challenge, NULL);
		free(output);
		if (rc != GSASL_OK)
			return finish(x, SASL_TEMPFAIL, out);
		if (success)
			x->phase = PHASE_SUCCESS_PENDING;
		return SASL_CONTINUE;
	}
	free(output);
	return gsasl_fail(x, rc, out);
}
