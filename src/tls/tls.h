/*
 * tls.h: OpenSSL contexts for the server (and later the client).
 *
 * The master builds the server contexts from the configuration before it
 * forks the pop3 workers, so that every worker of a generation shares the
 * same certificates and session-ticket keys (a client resumes on any
 * worker), and a SIGHUP swaps certificates by starting a new generation
 * while the old one finishes its sessions on the old ones.
 */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "lib/attrs.h"

struct config;
struct tls_server;

/*
 * Loads every certificate and key of c (tls_cert/tls_key, tls_sni),
 * checks that each key matches its certificate, and sets the protocol
 * floor, ciphers, session tickets and the optional client-certificate
 * request.  NULL with a one-line reason in err.  Returns NULL without
 * error (err = "") when c has no tls_cert.
 */
struct tls_server *tls_server_new(const struct config *c, char *err,
    size_t errsize);

/* A new SSL object for one accepted connection, or NULL. */
SSL	*tls_server_ssl(struct tls_server *);

void	tls_server_free(struct tls_server **);

/*
 * A client SSL object on the connected socket fd that verifies the peer
 * as host (the context must ask for verification): a name is sent as
 * SNI and checked against the certificate's names, without partial
 * wildcards; an IPv4 or IPv6 address is checked against its addresses.
 * NULL on failure (tls_last_error says why).
 */
SSL	*tls_client_ssl(SSL_CTX *ctx, int fd, const char *host);

/* The OpenSSL error queue (or errno for a syscall error) in one line,
 * and the queue cleared. */
const char *tls_last_error(char *buf, size_t size);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for the log. */
const char *tls_describe(SSL *, char *buf, size_t size);

#endif
