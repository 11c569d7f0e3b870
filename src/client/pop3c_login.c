/*
 * pop3c_login.c: logging in to a POP3 server (pop3c.h): SASL (RFC 5034)
 * through the GNU SASL client, or USER/PASS (RFC 1939 section 7).
 *
 * The strongest mechanism both sides have wins, in a fixed order.  A
 * password travels in a form an eavesdropper can use (PLAIN, USER/PASS)
 * only inside TLS, or to a loopback address with insecure = yes.
 * SCRAM's server signature is checked: a server that says +OK without
 * proving it knows the password is refused.
 *
 * Owns: the password (wiped before return) and the GNU SASL session.
 * Trusts: nothing the server sends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gsasl.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "client/pop3c.h"

/* Strongest first.  plain: sends the password itself. */
static const struct {
	const char	*name;
	bool		 plain;
	bool		 mutual;	/* the server proves itself */
	bool		 client_first;	/* has an initial response */
} mechs[] = {
	{ "SCRAM-SHA-256-PLUS",	false, true,  true },
	{ "SCRAM-SHA-256",	false, true,  true },
	{ "SCRAM-SHA-1",	false, true,  true },
	{ "CRAM-MD5",		false, false, false },
	{ "PLAIN",		true,  false, true },
};

/* True if the SASL list of CAPA holds name. */
static bool
offered(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p = list;

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (strncasecmp(p, name, n) == 0 && (p[n] == ' ' ||
		    p[n] == '\0'))
			return true;
		while (*p != '\0' && *p != ' ')
			p++;
	}
	return false;
}

static int
cb_none(Gsasl *ctx, Gsasl_session *s, Gsasl_property prop)
{
	(void)ctx;
	(void)s;
	(void)prop;
	return GSASL_NO_CALLBACK;
}

/* Sets the channel-binding data of the TLS connection: tls-exporter
 * (RFC 9266) where it is unique, else tls-unique (RFC 5929: the first
 * Finished of our full handshake).  false if there is none. */
static bool
set_bindings(struct pop3c *c, Gsasl_session *s)
{
	unsigned char data[EVP_MAX_MD_SIZE];
	char b64[2 * EVP_MAX_MD_SIZE + 4];
	size_t n;

	if (c->ssl == NULL)
		return false;
	if ((SSL_version(c->ssl) >= TLS1_3_VERSION ||
	    SSL_get_extms_support(c->ssl) == 1) &&
	    SSL_export_keying_material(c->ssl, data, 32,
	    "EXPORTER-Channel-Binding", 24, NULL, 0, 0) == 1) {
		(void)EVP_EncodeBlock((unsigned char *)b64, data, 32);
		gsasl_property_set(s, GSASL_CB_TLS_EXPORTER, b64);
		return true;
	}
	if (SSL_version(c->ssl) == TLS1_2_VERSION) {
		n = SSL_get_finished(c->ssl, data, sizeof(data));
		if (n > 0 && n <= sizeof(data)) {
			(void)EVP_EncodeBlock((unsigned char *)b64, data,
			    (int)n);
			gsasl_property_set(s, GSASL_CB_TLS_UNIQUE, b64);
			return true;
		}
	}
	return false;
}

/* An -ERR to a login: permanent unless the server says try later. */
static int
login_refused(struct pop3c *c, const char *line)
{
	if (strncasecmp(line, "-ERR [SYS/TEMP]", 15) == 0 ||
	    strncasecmp(line, "-ERR [IN-USE]", 13) == 0 ||
	    strncasecmp(line, "-ERR [LOGIN-DELAY]", 18) == 0)
		c->fail = POP3C_TEMP;
	else
		c->fail = POP3C_PERM;
	return -1;
}

static int
sasl_login(struct pop3c *c, Gsasl *ctx, size_t m, const char *pass)
{
	char line[FETCH_MAX_SASL_LINE + 1];
	Gsasl_session *s = NULL;
	char *out = NULL;
	int rc, r, steps = 0;

	if ((rc = gsasl_client_start(ctx, mechs[m].name, &s)) != GSASL_OK)
		return pop3c_error(c, POP3C_TEMP, "SASL %s: %s", mechs[m].name,
		    gsasl_strerror(rc));
	gsasl_property_set(s, GSASL_AUTHID, c->acct->user);
	gsasl_property_set(s, GSASL_PASSWORD, pass);
	if (strstr(mechs[m].name, "-PLUS") != NULL && !set_bindings(c, s)) {
		r = pop3c_error(c, POP3C_TEMP, "%s: no TLS channel binding",
		    mechs[m].name);
		goto out;
	}
	rc = GSASL_NEEDS_MORE;
	if (mechs[m].client_first) {
		rc = gsasl_step64(s, "", &out);
		if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
			r = pop3c_error(c, POP3C_TEMP, "SASL %s: %s",
			    mechs[m].name, gsasl_strerror(rc));
			goto out;
		}
		r = pop3c_send(c, "AUTH %s %s", mechs[m].name,
		    out[0] != '\0' ? out : "=");
		explicit_bzero(out, strlen(out));
		gsasl_free(out);
		out = NULL;
	} else
		r = pop3c_send(c, "AUTH %s", mechs[m].name);
	if (r == -1)
		goto out;
	for (;;) {
		r = -1;
		if (pop3c_line(c, line, sizeof(line), FETCH_MAX_SASL_LINE) ==
		    -1)
			goto out;
		if (strncmp(line, "+OK", 3) == 0) {
			if (mechs[m].mutual && rc != GSASL_OK)
				(void)pop3c_error(c, POP3C_PERM, "%s: %s"
				    " accepted the login without proving"
				    " that it knows the password",
				    c->acct->host, mechs[m].name);
			else
				r = 0;
			goto out;
		}
		if (strncmp(line, "-ERR", 4) == 0) {
			for (char *p = line; *p != '\0'; p++)
				if ((unsigned char)*p < 0x20 ||
				    (unsigned char)*p > 0x7e)
					*p = '?';
			(void)pop3c_error(c, POP3C_PERM, "%s: login as %s"
			    " (%s) refused: %.200s", c->acct->host,
			    c->acct->user, mechs[m].name, line);
			login_refused(c, line);
			goto out;
		}
		if (line[0] != '+' || (line[1] != ' ' && line[1] != '\0') ||
		    ++steps > FETCH_SASL_MAX_STEPS) {
			(void)pop3c_error(c, POP3C_TEMP, "%s: unexpected"
			    " reply during AUTH %s", c->acct->host,
			    mechs[m].name);
			goto out;
		}
		rc = gsasl_step64(s, line[1] == ' ' ? line + 2 : "", &out);
		if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
			if (pop3c_send(c, "*") == -1)	/* cancel */
				goto out;
			(void)pop3c_error(c, mechs[m].mutual ? POP3C_PERM :
			    POP3C_TEMP, "%s: SASL %s: %s", c->acct->host,
			    mechs[m].name, gsasl_strerror(rc));
			goto out;
		}
		r = pop3c_send(c, "%s", out);
		explicit_bzero(out, strlen(out));
		gsasl_free(out);
		out = NULL;
		if (r == -1)
			goto out;
	}
out:
	if (out != NULL) {
		explicit_bzero(out, strlen(out));
		gsasl_free(out);
	}
	gsasl_finish(s);
	if (r == 0)
		c->method = mechs[m].name;
	return r;
}

static int
userpass_login(struct pop3c *c, const char *pass)
{
	char line[FETCH_MAX_LINE + 1];
	int r;

	if (pop3c_send(c, "USER %s", c->acct->user) == -1)
		return -1;
	if ((r = pop3c_status(c, "USER", line, sizeof(line))) != 1)
		return r == 0 ? login_refused(c, line) : -1;
	if (pop3c_send(c, "PASS %s", pass) == -1)
		return -1;
	if ((r = pop3c_status(c, "login", line, sizeof(line))) != 1)
		return r == 0 ? login_refused(c, line) : -1;
	c->method = "USER";
	return 0;
}

static int
external_login(struct pop3c *c)
{
	char line[FETCH_MAX_LINE + 1], b64[4 * ((FETCH_MAX_VALUE + 2) / 3) +
	    1];
	size_t n = strlen(c->acct->user);
	int r;

	/* The authorisation identity is the account's user: the server
	 * must agree that the certificate is that user's. */
	if (n > FETCH_MAX_VALUE)
		return pop3c_error(c, POP3C_PERM, "user name too long");
	(void)EVP_EncodeBlock((unsigned char *)b64,
	    (const unsigned char *)c->acct->user, (int)n);
	if (pop3c_send(c, "AUTH EXTERNAL %s", b64) == -1)
		return -1;
	if ((r = pop3c_status(c, "login", line, sizeof(line))) != 1)
		return r == 0 ? login_refused(c, line) : -1;
	c->method = "EXTERNAL";
	return 0;
}

/*
 * OAUTHBEARER (RFC 7628) or XOAUTH2 with an OAuth 2.0 bearer token: one
 * initial response; a server that refuses sends an error challenge,
 * answered as each mechanism wants before its -ERR.  0 or -1.
 */
static int
bearer_login(struct pop3c *c, enum account_auth id, const char *token)
{
	char msg[FETCH_MAX_TOKEN + 2 * FETCH_MAX_VALUE + 64];
	char b64[4 * ((sizeof(msg) + 2) / 3) + 1];
	char line[FETCH_MAX_SASL_LINE + 1];
	const char *name = account_auth_name(id), *u;
	size_t n = 0;
	int r = -1;

	if (id == ACCOUNT_AUTH_OAUTHBEARER) {
		/* The GS2 header, with ',' and '=' of the user escaped. */
		n = (size_t)snprintf(msg, sizeof(msg), "n,a=");
		for (u = c->acct->user; *u != '\0' && n + 4 < sizeof(msg); u++)
			n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s",
			    *u == ',' ? "=2C" : *u == '=' ? "=3D" :
			    (char[]){ *u, '\0' });
		n += (size_t)snprintf(msg + n, sizeof(msg) - n,
		    ",\001auth=Bearer %s\001\001", token);
	} else
		n = (size_t)snprintf(msg, sizeof(msg),
		    "user=%s\001auth=Bearer %s\001\001", c->acct->user, token);
	if (n >= sizeof(msg)) {
		r = pop3c_error(c, POP3C_PERM, "token_command: token too"
		    " long");
		goto out;
	}
	(void)EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)msg,
	    (int)n);
	if (pop3c_send(c, "AUTH %s %s", name, b64) == -1)
		goto out;
	if (pop3c_line(c, line, sizeof(line), FETCH_MAX_SASL_LINE) == -1)
		goto out;
	if (line[0] == '+' && (line[1] == ' ' || line[1] == '\0')) {
		/* The error challenge: RFC 7628 section 3.2.3 wants %x01,
		 * XOAUTH2 an empty response. */
		if (pop3c_send(c, "%s", id == ACCOUNT_AUTH_OAUTHBEARER ?
		    "AQ==" : "") == -1 ||
		    pop3c_line(c, line, sizeof(line), FETCH_MAX_SASL_LINE) ==
		    -1)
			goto out;
	}
	if (strncmp(line, "+OK", 3) == 0) {
		c->method = name;
		r = 0;
		goto out;
	}
	for (char *p = line; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	(void)pop3c_error(c, POP3C_PERM, "%s: login as %s (%s) refused:"
	    " %.200s", c->acct->host, c->acct->user, name, line);
	r = login_refused(c, line);
out:
	explicit_bzero(msg, sizeof(msg));
	explicit_bzero(b64, sizeof(b64));
	return r;
}

/* APOP (RFC 1939 section 7): the MD5 of the greeting's timestamp and
 * the password; the password itself is never sent. */
static int
apop_login(struct pop3c *c, const char *pass)
{
	char line[FETCH_MAX_LINE + 1], hex[2 * 16 + 1];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	EVP_MD_CTX *ctx;
	int r;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return pop3c_error(c, POP3C_TEMP, "out of memory");
	r = EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, c->apop_stamp, strlen(c->apop_stamp)) ==
	    1 && EVP_DigestUpdate(ctx, pass, strlen(pass)) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 16;
	EVP_MD_CTX_free(ctx);
	if (!r)
		return pop3c_error(c, POP3C_TEMP, "APOP: MD5 failed");
	for (i = 0; i < 16; i++)
		(void)snprintf(hex + 2 * i, 3, "%02x", md[i]);
	explicit_bzero(md, sizeof(md));
	if (pop3c_send(c, "APOP %s %s", c->acct->user, hex) == -1)
		return -1;
	if ((r = pop3c_status(c, "login", line, sizeof(line))) != 1)
		return r == 0 ? login_refused(c, line) : -1;
	c->method = "APOP";
	return 0;
}

/* The mechs[] entry of a SASL login method, or -1. */
static int
mech_index(enum account_auth id)
{
	size_t m;

	for (m = 0; m < N_ELEMENTS(mechs); m++)
		if (strcmp(mechs[m].name, account_auth_name(id)) == 0)
			return (int)m;
	return -1;
}

int
pop3c_login(struct pop3c *c, char *pass, char *token)
{
	const struct account *a = c->acct;
	bool secure = c->ssl != NULL || (c->loopback && a->insecure);
	bool unsafe = false;	/* a method left out for want of TLS */
	uint8_t def[ACCOUNT_AUTH_COUNT];
	const uint8_t *order;
	Gsasl *ctx = NULL;
	size_t i, n = 0;
	int m, r = -1;

	if (strchr(a->user, ' ') != NULL || strpbrk(pass, "\r\n") != NULL ||
	    strpbrk(token, "\r\n\001") != NULL) {
		r = pop3c_error(c, POP3C_PERM, "the user name holds a blank"
		    " or the password or token a line break");
		goto out;
	}
	if (a->nauth > 0) {
		order = a->auth;
		n = a->nauth;
	} else {
		/* Strongest first, of what the account has. */
		if (a->tls_cert != NULL)
			def[n++] = ACCOUNT_AUTH_EXTERNAL;
		if (token[0] != '\0') {
			def[n++] = ACCOUNT_AUTH_OAUTHBEARER;
			def[n++] = ACCOUNT_AUTH_XOAUTH2;
		}
		for (i = ACCOUNT_AUTH_SCRAM_SHA_256_PLUS;
		    i < ACCOUNT_AUTH_COUNT; i++)
			def[n++] = (uint8_t)i;
		order = def;
	}
	for (i = 0; i < n; i++) {
		enum account_auth id = order[i];
		const char *name = account_auth_name(id);

		switch (id) {
		case ACCOUNT_AUTH_EXTERNAL:
			/* RFC 4422 appendix A: the client certificate. */
			if (a->tls_cert == NULL || c->ssl == NULL ||
			    !offered(c->capa.sasl, name))
				continue;
			r = external_login(c);
			goto out;
		case ACCOUNT_AUTH_OAUTHBEARER:
		case ACCOUNT_AUTH_XOAUTH2:
			if (token[0] == '\0' || !offered(c->capa.sasl, name))
				continue;
			if (!secure) {
				unsafe = true;
				continue;
			}
			r = bearer_login(c, id, token);
			goto out;
		case ACCOUNT_AUTH_APOP:
			if (pass[0] == '\0' || c->apop_stamp[0] == '\0')
				continue;
			r = apop_login(c, pass);
			goto out;
		case ACCOUNT_AUTH_USER:
			if (pass[0] == '\0' || (c->capa.known &&
			    !c->capa.user))
				continue;
			if (!secure) {
				unsafe = true;
				continue;
			}
			r = userpass_login(c, pass);
			goto out;
		default:
			if (pass[0] == '\0' || (m = mech_index(id)) == -1 ||
			    !offered(c->capa.sasl, name))
				continue;
			if (mechs[m].plain && !secure) {
				unsafe = true;
				continue;
			}
			if (gsasl_init(&ctx) != GSASL_OK) {
				r = pop3c_error(c, POP3C_TEMP, "GNU SASL:"
				    " cannot start");
				goto out;
			}
			gsasl_callback_set(ctx, cb_none);
			if (!gsasl_client_support_p(ctx, name)) {
				gsasl_done(ctx);
				ctx = NULL;
				continue;
			}
			r = sasl_login(c, ctx, (size_t)m, pass);
			goto out;
		}
	}
	if (unsafe)
		r = pop3c_error(c, POP3C_PERM, "%s offers no login that keeps"
		    " the password secret without TLS; use tls = implicit or"
		    " starttls", a->host);
	else
		r = pop3c_error(c, POP3C_PERM, "%s offers no login method"
		    " this account can use (SASL: %s%s)%s", a->host,
		    c->capa.sasl[0] != '\0' ? c->capa.sasl : "none",
		    c->capa.user ? ", USER" : "", a->nauth > 0 ?
		    " among its auth list" : "");
out:
	if (ctx != NULL)
		gsasl_done(ctx);
	explicit_bzero(pass, strlen(pass));
	explicit_bzero(token, strlen(token));
	return r;
}
