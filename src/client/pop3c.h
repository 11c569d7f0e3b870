/*
 * pop3c.h: a blocking POP3 client connection with poll(2) timeouts,
 * over plain TCP, implicit TLS or STLS, for `postern fetch`.
 *
 * Every failure leaves a one-line reason in c->err and a class in
 * c->fail: POP3C_TEMP (worth retrying: network, timeouts, [SYS/TEMP],
 * [IN-USE], [LOGIN-DELAY], a protocol error) or POP3C_PERM (a failed TLS
 * verification, failed authentication, a server that cannot give what
 * the account demands).  After a failure the connection is only good for
 * pop3c_close.
 */
#ifndef POSTERN_CLIENT_POP3C_H
#define POSTERN_CLIENT_POP3C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "client/account.h"
#include "client/client_limits.h"
#include "lib/attrs.h"
#include "lib/linebuf.h"

enum pop3c_fail {
	POP3C_OK = 0,
	POP3C_TEMP = 1,
	POP3C_PERM = 2,
};

struct pop3c_capa {
	bool	 known;		/* CAPA answered +OK */
	bool	 stls, user, uidl, pipelining;
	/* RFC 2449 section 6.5: seconds between logins; USER: another
	 * value may follow after login. */
	uint32_t login_delay;
	bool	 login_delay_user;
	char	 sasl[512];	/* the SASL line's mechanisms, or "" */
};

struct pop3c {
	const struct account *acct;
	int		 fd;
	SSL_CTX		*ctx;
	SSL		*ssl;
	bool		 loopback;	/* the peer is 127/8 or ::1 */
	struct linebuf	 lb;
	struct pop3c_capa capa;
	enum pop3c_fail	 fail;
	char		 err[512];
	const char	*method;	/* how it logged in, for the summary */
	char		 apop_stamp[FETCH_MAX_LINE + 1]; /* <...>, or "" */
	size_t		 rpos, rlen;
	uint8_t		 rbuf[FETCH_READ_CHUNK];
};

/*
 * Connects to the account's server, does TLS as its tls = says (STLS
 * only if CAPA offers it: never a fall-back to plain text), reads the
 * greeting and CAPA.  c is initialised here.  0 or -1.
 */
int	pop3c_connect(struct pop3c *c, const struct account *a)
	    ATTR_WARN_UNUSED;

/*
 * Logs in with the first method of the account's auth list (else, the
 * strongest first: EXTERNAL with tls_cert, OAUTHBEARER and XOAUTH2 with
 * a token, SCRAM-SHA-256-PLUS, SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5,
 * APOP, PLAIN, USER/PASS) that the server offers and the account can use:
 * PLAIN, USER/PASS and the bearer tokens only over TLS, or to loopback
 * with insecure = yes.  pass and token ("" when there is none) are wiped
 * before return.  0 or -1.
 */
int	pop3c_login(struct pop3c *c, char *pass, char *token)
	    ATTR_WARN_UNUSED;

/* Sends one command line (CRLF added). 0 or -1. */
int	pop3c_send(struct pop3c *c, const char *fmt, ...) ATTR_PRINTF(2, 3)
	    ATTR_WARN_UNUSED;

/*
 * Reads one status line into line (size > FETCH_MAX_SASL_LINE is never
 * needed: max bounds it).  1 for +OK, 0 for -ERR (c->fail and c->err
 * set from it, as for a failure of what), -1 on an I/O or protocol
 * error.
 */
int	pop3c_status(struct pop3c *c, const char *what, char *line,
	    size_t size) ATTR_WARN_UNUSED;

/* Reads a line of at most max octets (no CRLF, NUL-terminated). 0/-1. */
int	pop3c_line(struct pop3c *c, char *line, size_t size, size_t max)
	    ATTR_WARN_UNUSED;

/*
 * Reads the lines of a multi-line response after its +OK, dot-unstuffed,
 * each at most FETCH_MAX_LINE octets, calling fn on each: fn returns 0 to
 * go on, -1 to fail (having set c->err).  0 or -1.
 */
int	pop3c_lines(struct pop3c *c, int (*fn)(void *, char *, size_t),
	    void *arg) ATTR_WARN_UNUSED;

/*
 * Streams a multi-line body (RETR) after its +OK: dot-unstuffed, CRLF
 * line ends turned into LF (a CR elsewhere is kept), handed to fn in
 * chunks; no line length limit, at most max octets.  fn returns 0 or -1
 * (having set c->err).  0 or -1.
 */
int	pop3c_body(struct pop3c *c, uint64_t max,
	    int (*fn)(void *, const uint8_t *, size_t), void *arg)
	    ATTR_WARN_UNUSED;

/* Sets c->fail and c->err. Returns -1. */
int	pop3c_error(struct pop3c *c, enum pop3c_fail, const char *fmt, ...)
	    ATTR_PRINTF(3, 4);

/* Reads CAPA again (after STLS or login). 0 or -1. */
int	pop3c_capa(struct pop3c *c) ATTR_WARN_UNUSED;

void	pop3c_close(struct pop3c *c);

#endif
