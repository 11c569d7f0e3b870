/*
 * tls.c: server TLS contexts.  Trusts the files named by the (root-owned)
 * configuration, and nothing a client sends: the SNI name is only
 * compared against the configured domains.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/buf.h"
#include "lib/config.h"
#include "tls/tls.h"

struct sni_ctx {
	char	*domain;	/* "example.org" or "*.example.org" */
	SSL_CTX	*ctx;
};

struct tls_server {
	SSL_CTX		*dflt;
	struct sni_ctx	*sni;
	size_t		 n_sni;
};

const char *
tls_last_error(char *buf, size_t size)
{
	unsigned long e = ERR_get_error();
	char one[256];

	if (e == 0) {
		snprintf(buf, size, "%s", errno != 0 ? strerror(errno) :
		    "connection closed");
		return buf;
	}
	ERR_error_string_n(e, one, sizeof(one));
	snprintf(buf, size, "%s", one);
	ERR_clear_error();
	return buf;
}

SSL *
tls_client_ssl(SSL_CTX *ctx, int fd, const char *host)
{
	unsigned char addr[16];
	X509_VERIFY_PARAM *param;
	char name[256];		/* OpenSSL's macro takes no const */
	SSL *ssl;
	int ok;

	if ((ssl = SSL_new(ctx)) == NULL)
		return NULL;
	param = SSL_get0_param(ssl);
	X509_VERIFY_PARAM_set_hostflags(param,
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (inet_pton(AF_INET, host, addr) == 1 ||
	    inet_pton(AF_INET6, host, addr) == 1)
		ok = X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1;
	else
		ok = str_fmt(name, sizeof(name), "%s", host) == 0 &&
		    SSL_set_tlsext_host_name(ssl, name) == 1 &&
		    X509_VERIFY_PARAM_set1_host(param, host, 0) == 1;
	if (!ok || SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

const char *
tls_describe(SSL *ssl, char *buf, size_t size)
{
	snprintf(buf, size, "%s %s", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl));
	return buf;
}

static bool
sni_matches(const char *pattern, const char *name)
{
	if (strncmp(pattern, "*.", 2) == 0) {
		const char *dot = strchr(name, '.');

		/* One label for the star, as RFC 6125 6.4.3 does. */
		return dot != NULL && dot != name &&
		    strcasecmp(dot + 1, pattern + 2) == 0;
	}
	return strcasecmp(pattern, name) == 0;
}

static int
on_servername(SSL *ssl, int *alert, void *arg)
{
	struct tls_server *ts = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	size_t i;

	if (name == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	/* Exact names first, then wildcards. */
	for (i = 0; i < ts->n_sni; i++)
		if (ts->sni[i].domain[0] != '*' &&
		    sni_matches(ts->sni[i].domain, name)) {
			SSL_set_SSL_CTX(ssl, ts->sni[i].ctx);
			return SSL_TLSEXT_ERR_OK;
		}
	for (i = 0; i < ts->n_sni; i++)
		if (ts->sni[i].domain[0] == '*' &&
		    sni_matches(ts->sni[i].domain, name)) {
			SSL_set_SSL_CTX(ssl, ts->sni[i].ctx);
			return SSL_TLSEXT_ERR_OK;
		}
	return SSL_TLSEXT_ERR_OK;	/* the default certificate */
}

/* A client certificate is optional: a failed verification is kept in
 * SSL_get_verify_result() for whoever wants to trust the certificate,
 * and never ends the handshake. */
static int
keep_verify_result(int ok, X509_STORE_CTX *x)
{
	return 1;
}

static SSL_CTX *
ctx_new(const struct config *c, const char *cert, const char *key,
    char *err, size_t errsize)
{
	char e[256];
	SSL_CTX *ctx;

	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		snprintf(err, errsize, "TLS: %s", tls_last_error(e, sizeof(e)));
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, c->tls_min_version == 13 ?
	    TLS1_3_VERSION : TLS1_2_VERSION) != 1) {
		snprintf(err, errsize, "TLS: cannot set the minimum version");
		goto fail;
	}
	if (c->tls_ciphers != NULL &&
	    SSL_CTX_set_cipher_list(ctx, c->tls_ciphers) != 1) {
		snprintf(err, errsize, "tls_ciphers: no usable cipher in '%s'",
		    c->tls_ciphers);
		goto fail;
	}
	if (c->tls_ciphersuites != NULL &&
	    SSL_CTX_set_ciphersuites(ctx, c->tls_ciphersuites) != 1) {
		snprintf(err, errsize, "tls_ciphersuites: no usable suite in"
		    " '%s'", c->tls_ciphersuites);
		goto fail;
	}
	/* The server picks, and no renegotiation (CVE-2009-3555 class,
	 * and a cheap CPU attack). */
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	/* Idle sessions give their 34 KiB of record buffers back. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* Stateless tickets: resumption works on every worker of a
	 * generation, which all inherit the ticket keys. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"postern",
	    7);
	SSL_CTX_set_num_tickets(ctx, 2);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, errsize, "cannot load the certificate %s: %s",
		    cert, tls_last_error(e, sizeof(e)));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) ==
		    X509_R_KEY_VALUES_MISMATCH) {
			snprintf(err, errsize, "the private key %s does not"
			    " match the certificate %s", key, cert);
			goto fail;
		}
		snprintf(err, errsize, "cannot load the private key %s: %s",
		    key, tls_last_error(e, sizeof(e)));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errsize, "the private key %s does not match the"
		    " certificate %s", key, cert);
		goto fail;
	}
	if (c->tls_client_cert) {
		if (c->tls_client_ca == NULL ||
		    SSL_CTX_load_verify_locations(ctx, c->tls_client_ca,
		    NULL) != 1) {
			snprintf(err, errsize, "cannot load tls_client_ca %s:"
			    " %s", c->tls_client_ca != NULL ?
			    c->tls_client_ca : "(unset)",
			    tls_last_error(e, sizeof(e)));
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx,
		    SSL_load_client_CA_file(c->tls_client_ca));
		/* Asked for, not required: a session without one simply
		 * cannot use EXTERNAL.  Verification failures are kept in
		 * the verify result, not fatal to the handshake. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, keep_verify_result);
		SSL_CTX_set_verify_depth(ctx, 5);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return NULL;
}

struct tls_server *
tls_server_new(const struct config *c, char *err, size_t errsize)
{
	struct tls_server *ts;
	size_t i;

	err[0] = '\0';
	if (c->tls_cert == NULL)
		return NULL;
	if ((ts = calloc(1, sizeof(*ts))) == NULL) {
		snprintf(err, errsize, "TLS: out of memory");
		return NULL;
	}
	if ((ts->dflt = ctx_new(c, c->tls_cert, c->tls_key, err,
	    errsize)) == NULL)
		goto fail;
	if (c->n_tls_sni > 0 &&
	    (ts->sni = calloc(c->n_tls_sni, sizeof(*ts->sni))) == NULL) {
		snprintf(err, errsize, "TLS: out of memory");
		goto fail;
	}
	for (i = 0; i < c->n_tls_sni; i++) {
		const struct tls_sni_conf *sc = &c->tls_sni[i];

		ts->sni[i].ctx = ctx_new(c, sc->cert, sc->key, err, errsize);
		if (ts->sni[i].ctx == NULL)
			goto fail;
		ts->n_sni = i + 1;
		if ((ts->sni[i].domain = strdup(sc->domain)) == NULL) {
			snprintf(err, errsize, "TLS: out of memory");
			goto fail;
		}
		/* Tickets from one context open sessions on the others. */
		{
			unsigned char keys[80];

			if (SSL_CTX_get_tlsext_ticket_keys(ts->dflt, keys,
			    sizeof(keys)) == 1)
				(void)SSL_CTX_set_tlsext_ticket_keys(
				    ts->sni[i].ctx, keys, sizeof(keys));
			OPENSSL_cleanse(keys, sizeof(keys));
		}
	}
	SSL_CTX_set_tlsext_servername_callback(ts->dflt, on_servername);
	SSL_CTX_set_tlsext_servername_arg(ts->dflt, ts);
	return ts;
fail:
	tls_server_free(&ts);
	return NULL;
}

SSL *
tls_server_ssl(struct tls_server *ts)
{
	return SSL_new(ts->dflt);
}

void
tls_server_free(struct tls_server **tsp)
{
	struct tls_server *ts = *tsp;
	size_t i;

	if (ts == NULL)
		return;
	*tsp = NULL;
	for (i = 0; i < ts->n_sni; i++) {
		SSL_CTX_free(ts->sni[i].ctx);
		free(ts->sni[i].domain);
	}
	free(ts->sni);
	SSL_CTX_free(ts->dflt);
	free(ts);
}
