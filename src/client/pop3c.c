/*
 * pop3c.c: the client side of a POP3 connection (pop3c.h): TCP with
 * poll(2) timeouts, TLS through OpenSSL with verification on, status
 * lines and multi-line responses through the bounded line reader, and
 * RETR bodies streamed with dot-unstuffing.
 *
 * Owns: the socket, the SSL objects and the read buffer.  Trusts:
 * nothing the server sends; a certificate only once OpenSSL has verified
 * it against the CAs and the host name.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "client/pop3c.h"
#include "lib/strnum.h"
#include "tls/tls.h"

int
pop3c_error(struct pop3c *c, enum pop3c_fail f, const char *fmt, ...)
{
	va_list ap;

	if (c->fail != POP3C_OK)
		return -1;	/* the first reason is the one that counts */
	c->fail = f;
	va_start(ap, fmt);
	(void)vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return -1;
}

/* Waits until fd is ready for events.  0, or -1 on timeout/error. */
static int
wait_fd(struct pop3c *c, short events)
{
	struct pollfd pfd = { .fd = c->fd, .events = events };
	int r;

	for (;;) {
		r = poll(&pfd, 1, (int)c->acct->timeout_ms);
		if (r > 0)
			return 0;
		if (r == 0)
			return pop3c_error(c, POP3C_TEMP, "%s: no answer"
			    " within %llu s", c->acct->host,
			    (unsigned long long)c->acct->timeout_ms / 1000);
		if (errno != EINTR)
			return pop3c_error(c, POP3C_TEMP, "%s: poll: %s",
			    c->acct->host, strerror(errno));
	}
}

/* Waits as an SSL_ call that returned ret asks.  0 to retry, -1. */
static int
ssl_wait(struct pop3c *c, int ret, const char *what)
{
	char ebuf[256];

	switch (SSL_get_error(c->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		return wait_fd(c, POLLIN);
	case SSL_ERROR_WANT_WRITE:
		return wait_fd(c, POLLOUT);
	case SSL_ERROR_ZERO_RETURN:
		return pop3c_error(c, POP3C_TEMP, "%s closed the connection",
		    c->acct->host);
	default:
		return pop3c_error(c, POP3C_TEMP, "%s: TLS %s: %s",
		    c->acct->host, what, tls_last_error(ebuf, sizeof(ebuf)));
	}
}

/* Reads some octets.  >0, or -1 (EOF included: a server never closes
 * first while we wait for an answer). */
static ssize_t
raw_read(struct pop3c *c, void *buf, size_t len)
{
	ssize_t n;
	int r;

	for (;;) {
		if (c->ssl != NULL) {
			ERR_clear_error();
			r = SSL_read(c->ssl, buf, (int)len);
			if (r > 0)
				return r;
			if (ssl_wait(c, r, "read") == -1)
				return -1;
			continue;
		}
		n = read(c->fd, buf, len);
		if (n > 0)
			return n;
		if (n == 0)
			return pop3c_error(c, POP3C_TEMP, "%s closed the"
			    " connection", c->acct->host);
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return pop3c_error(c, POP3C_TEMP, "%s: read: %s",
			    c->acct->host, strerror(errno));
		if (wait_fd(c, POLLIN) == -1)
			return -1;
	}
}

static int
raw_write(struct pop3c *c, const void *data, size_t len)
{
	const char *p = data;
	ssize_t n;
	int r;

	while (len > 0) {
		if (c->ssl != NULL) {
			ERR_clear_error();
			r = SSL_write(c->ssl, p, (int)len);
			if (r > 0) {
				p += r;
				len -= (size_t)r;
			} else if (ssl_wait(c, r, "write") == -1)
				return -1;
			continue;
		}
		n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n == -1 && errno == EINTR)
			continue;
		else if (n == -1 && errno == EAGAIN) {
			if (wait_fd(c, POLLOUT) == -1)
				return -1;
		} else
			return pop3c_error(c, POP3C_TEMP, "%s: write: %s",
			    c->acct->host, strerror(n == -1 ? errno : EIO));
	}
	return 0;
}

/* Reads more into the buffer.  0 or -1. */
static int
fill(struct pop3c *c)
{
	ssize_t n;

	if (c->rpos > 0) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen);
		c->rpos = 0;
	}
	if (c->rlen == sizeof(c->rbuf))
		return pop3c_error(c, POP3C_TEMP, "%s: line too long",
		    c->acct->host);
	if ((n = raw_read(c, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen)) ==
	    -1)
		return -1;
	c->rlen += (size_t)n;
	return 0;
}

int
pop3c_send(struct pop3c *c, const char *fmt, ...)
{
	char line[FETCH_MAX_SASL_LINE + 3];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		return pop3c_error(c, POP3C_TEMP, "command too long");
	line[n++] = '\r';
	line[n++] = '\n';
	n = raw_write(c, line, (size_t)n);
	explicit_bzero(line, sizeof(line));	/* it may hold a secret */
	return n;
}

int
pop3c_line(struct pop3c *c, char *line, size_t size, size_t max)
{
	size_t n, consumed;
	enum line_rc rc;

	if (max >= size)
		max = size - 1;
	c->lb.max = max;
	for (;;) {
		rc = linebuf_scan(&c->lb, c->rbuf + c->rpos, c->rlen, &n,
		    &consumed);
		c->rpos += consumed;
		c->rlen -= consumed;
		if (rc == LINE_OK) {
			memcpy(line, c->rbuf + c->rpos - consumed, n);
			line[n] = '\0';
			return 0;
		}
		if (rc == LINE_TOO_LONG)
			return pop3c_error(c, POP3C_TEMP, "%s sent a line"
			    " longer than %zu octets", c->acct->host, max);
		if (rc == LINE_HAS_NUL)
			return pop3c_error(c, POP3C_TEMP, "%s sent a NUL"
			    " octet", c->acct->host);
		if (fill(c) == -1)
			return -1;
	}
}

/* The server's text, printable and short, for a message. */
static void
printable(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			*s = '?';
}

int
pop3c_status(struct pop3c *c, const char *what, char *line, size_t size)
{
	enum pop3c_fail f = POP3C_TEMP;

	if (pop3c_line(c, line, size, size - 1) == -1)
		return -1;
	if (strncmp(line, "+OK", 3) == 0 && (line[3] == '\0' ||
	    line[3] == ' '))
		return 1;
	if (strncmp(line, "-ERR", 4) != 0 || (line[4] != '\0' &&
	    line[4] != ' ')) {
		printable(line);
		return pop3c_error(c, POP3C_TEMP, "%s: %s: not a POP3 reply:"
		    " %.100s", c->acct->host, what, line);
	}
	/* RFC 2449 section 8 and RFC 3206: the response codes. */
	if (strncasecmp(line, "-ERR [AUTH]", 11) == 0 ||
	    strncasecmp(line, "-ERR [SYS/PERM]", 15) == 0)
		f = POP3C_PERM;
	printable(line);
	(void)pop3c_error(c, f, "%s: %s: %.200s", c->acct->host, what, line);
	return 0;
}

int
pop3c_lines(struct pop3c *c, int (*fn)(void *, char *, size_t), void *arg)
{
	char line[FETCH_MAX_LINE + 1];
	size_t n;

	for (;;) {
		if (pop3c_line(c, line, sizeof(line), FETCH_MAX_LINE) == -1)
			return -1;
		if (strcmp(line, ".") == 0)
			return 0;
		n = strlen(line);
		if (line[0] == '.') {
			memmove(line, line + 1, n);
			n--;
		}
		if (fn(arg, line, n) == -1)
			return -1;
	}
}

enum body_state { B_BOL, B_DOT, B_DOT_CR, B_MID, B_CR };

/* The output of pop3c_body: LF-form octets gathered for fn. */
struct body_out {
	int		(*fn)(void *, const uint8_t *, size_t);
	void		*arg;
	uint64_t	 max, total;
	size_t		 o;
	uint8_t		 buf[FETCH_READ_CHUNK];
};

static int
body_flush(struct pop3c *c, struct body_out *b)
{
	if (b->o == 0)
		return 0;
	if ((b->total += b->o) > b->max)
		return pop3c_error(c, POP3C_TEMP, "%s: a message is larger"
		    " than %llu octets", c->acct->host,
		    (unsigned long long)b->max);
	if (b->fn(b->arg, b->buf, b->o) == -1)
		return -1;
	b->o = 0;
	return 0;
}

static int
body_put(struct pop3c *c, struct body_out *b, const uint8_t *p, size_t n)
{
	size_t k;

	while (n > 0) {
		if (b->o == sizeof(b->buf) && body_flush(c, b) == -1)
			return -1;
		k = sizeof(b->buf) - b->o;
		if (k > n)
			k = n;
		memcpy(b->buf + b->o, p, k);
		b->o += k;
		p += k;
		n -= k;
	}
	return 0;
}

/*
 * The body is read a buffer at a time.  Inside a line (B_MID) the next
 * LF is found with memchr and the octets before it are copied in one
 * piece; only the first octets of a line, where a dot may be stuffed or
 * end the body, and a CR at the end of a buffer go through the states
 * one octet at a time.
 */
int
pop3c_body(struct pop3c *c, uint64_t max,
    int (*fn)(void *, const uint8_t *, size_t), void *arg)
{
	static const uint8_t lf = '\n', cr = '\r';
	enum body_state st = B_BOL;
	struct body_out *b;
	const uint8_t *p, *q;
	size_t i, n, run;
	uint8_t ch;
	int ret = -1;

	if ((b = malloc(sizeof(*b))) == NULL)
		return pop3c_error(c, POP3C_TEMP, "out of memory");
	b->fn = fn;
	b->arg = arg;
	b->max = max;
	b->total = 0;
	b->o = 0;
	for (;;) {
		if (c->rlen == 0 && fill(c) == -1)
			goto out;
		p = c->rbuf + c->rpos;
		n = c->rlen;
		for (i = 0; i < n;) {
			if (st == B_MID) {
				q = memchr(p + i, '\n', n - i);
				if (q == NULL) {
					/* A CR last in the buffer may be the
					 * first half of a CRLF. */
					run = n - i;
					if (p[n - 1] == '\r') {
						run--;
						st = B_CR;
					}
					if (body_put(c, b, p + i, run) == -1)
						goto out;
					i = n;
					continue;
				}
				run = (size_t)(q - (p + i));
				if (run > 0 && q[-1] == '\r')
					run--;	/* CRLF becomes LF */
				if (body_put(c, b, p + i, run) == -1 ||
				    body_put(c, b, &lf, 1) == -1)
					goto out;
				i = (size_t)(q - p) + 1;
				st = B_BOL;
				continue;
			}
			ch = p[i++];
			switch (st) {
			case B_BOL:
				if (ch == '.') {
					st = B_DOT;
					continue;
				}
				break;
			case B_DOT:
				if (ch == '\r') {
					st = B_DOT_CR;
					continue;
				}
				if (ch == '\n')
					goto end;
				break;	/* the stuffed dot is dropped */
			case B_DOT_CR:
				if (ch == '\n')
					goto end;
				/* ".\rx": keep the CR */
				if (body_put(c, b, &cr, 1) == -1)
					goto out;
				break;
			case B_CR:
				if (ch == '\n') {
					if (body_put(c, b, &lf, 1) == -1)
						goto out;
					st = B_BOL;
					continue;
				}
				/* a bare CR is data */
				if (body_put(c, b, &cr, 1) == -1)
					goto out;
				break;
			case B_MID:
				break;
			}
			if (ch == '\r')
				st = B_CR;
			else if (ch == '\n') {
				if (body_put(c, b, &lf, 1) == -1)
					goto out;
				st = B_BOL;
			} else {
				if (body_put(c, b, &ch, 1) == -1)
					goto out;
				st = B_MID;
			}
		}
		c->rpos += n;
		c->rlen = 0;
	}
end:
	c->rpos += i;
	c->rlen -= i;
	ret = body_flush(c, b);
out:
	free(b);
	return ret;
}

static int
capa_line(void *arg, char *line, size_t len)
{
	struct pop3c_capa *k = arg;
	char *sp;

	(void)len;
	if ((sp = strchr(line, ' ')) != NULL)
		*sp++ = '\0';
	if (strcasecmp(line, "STLS") == 0)
		k->stls = true;
	else if (strcasecmp(line, "USER") == 0)
		k->user = true;
	else if (strcasecmp(line, "UIDL") == 0)
		k->uidl = true;
	else if (strcasecmp(line, "PIPELINING") == 0)
		k->pipelining = true;
	else if (strcasecmp(line, "LOGIN-DELAY") == 0 && sp != NULL) {
		char *sp2 = strchr(sp, ' ');

		if (sp2 != NULL)
			*sp2++ = '\0';
		/* A malformed value is not trusted to be small: the
		 * ceiling, not zero. */
		if (parse_u32(sp, FETCH_MAX_LOGIN_DELAY, &k->login_delay) !=
		    PARSE_OK)
			k->login_delay = FETCH_MAX_LOGIN_DELAY;
		k->login_delay_user = sp2 != NULL &&
		    strcasecmp(sp2, "USER") == 0;
	} else if (strcasecmp(line, "SASL") == 0 && sp != NULL)
		(void)snprintf(k->sasl, sizeof(k->sasl), "%s", sp);
	return 0;
}

int
pop3c_capa(struct pop3c *c)
{
	char line[FETCH_MAX_LINE + 1];
	int r;

	memset(&c->capa, 0, sizeof(c->capa));
	if (pop3c_send(c, "CAPA") == -1)
		return -1;
	if ((r = pop3c_status(c, "CAPA", line, sizeof(line))) == -1)
		return -1;
	if (r == 0) {
		/* An RFC 1939 server without CAPA: nothing to learn. */
		c->fail = POP3C_OK;
		c->err[0] = '\0';
		return 0;
	}
	c->capa.known = true;
	return pop3c_lines(c, capa_line, &c->capa);
}

static bool
is_loopback(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &len) == -1)
		return false;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)&ss;

		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)&ss;

		return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		    s6->sin6_addr.s6_addr[12] == 127);
	}
	return false;
}

static int
tcp_connect(struct pop3c *c)
{
	struct addrinfo hints, *res, *ai;
	char port[8];
	int r, e = ECONNREFUSED;
	socklen_t len;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	(void)snprintf(port, sizeof(port), "%u", c->acct->port);
	if ((r = getaddrinfo(c->acct->host, port, &hints, &res)) != 0)
		return pop3c_error(c, POP3C_TEMP, "%s: %s", c->acct->host,
		    gai_strerror(r));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (c->fd == -1) {
			e = errno;
			continue;
		}
		if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };

			do
				r = poll(&pfd, 1, (int)c->acct->timeout_ms);
			while (r == -1 && errno == EINTR);
			len = sizeof(e);
			if (r == 0)
				e = ETIMEDOUT;
			else if (r == -1)
				e = errno;
			else if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e,
			    &len) == -1)
				e = errno;
			if (r > 0 && e == 0)
				break;
		} else
			e = errno;
		close(c->fd);
		c->fd = -1;
	}
	freeaddrinfo(res);
	if (c->fd == -1)
		return pop3c_error(c, POP3C_TEMP, "connecting to %s port %u:"
		    " %s", c->acct->host, c->acct->port, strerror(e));
	c->loopback = is_loopback(c->fd);
	return 0;
}

/*
 * tls_pin: the SHA-256 of the server's certificate (DER) or of its
 * public key (SubjectPublicKeyInfo, DER) must be one of the account's
 * pins.  Checked after, not instead of, the verification.  0 or -1.
 */
static int
check_pins(struct pop3c *c)
{
	const struct account *a = c->acct;
	unsigned char md[2][EVP_MAX_MD_SIZE], *der = NULL;
	unsigned int mdlen[2] = { 0, 0 };
	X509 *cert;
	size_t i;
	int len;

	if (a->npins == 0)
		return 0;
	if ((cert = SSL_get1_peer_certificate(c->ssl)) == NULL)
		return pop3c_error(c, POP3C_PERM, "TLS: %s sent no"
		    " certificate", a->host);
	if (X509_digest(cert, EVP_sha256(), md[0], &mdlen[0]) != 1 ||
	    (len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der)) <= 0 ||
	    EVP_Digest(der, (size_t)len, md[1], &mdlen[1], EVP_sha256(),
	    NULL) != 1 || mdlen[0] != 32 || mdlen[1] != 32) {
		OPENSSL_free(der);
		X509_free(cert);
		return pop3c_error(c, POP3C_TEMP, "TLS: cannot hash the"
		    " certificate of %s", a->host);
	}
	OPENSSL_free(der);
	X509_free(cert);
	for (i = 0; i < a->npins; i++)
		if (memcmp(a->pins[i], md[0], 32) == 0 ||
		    memcmp(a->pins[i], md[1], 32) == 0)
			return 0;
	return pop3c_error(c, POP3C_PERM, "TLS verification of %s failed:"
	    " its certificate matches no tls_pin", a->host);
}

static int
tls_start(struct pop3c *c)
{
	const struct account *a = c->acct;
	char ebuf[256];
	long vr;
	int r;

	ERR_clear_error();
	if ((c->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(c->ctx, a->tls_min) != 1)
		return pop3c_error(c, POP3C_TEMP, "TLS: %s",
		    tls_last_error(ebuf, sizeof(ebuf)));
	if (a->tls_cert != NULL && (SSL_CTX_use_certificate_chain_file(c->ctx,
	    a->tls_cert) != 1 || SSL_CTX_use_PrivateKey_file(c->ctx,
	    a->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(c->ctx) != 1))
		return pop3c_error(c, POP3C_PERM, "tls_cert %s, tls_key %s:"
		    " %s", a->tls_cert, a->tls_key, tls_last_error(ebuf,
		    sizeof(ebuf)));
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	if (a->ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(c->ctx, a->ca_file, NULL) !=
		    1)
			return pop3c_error(c, POP3C_PERM, "ca_file %s: %s",
			    a->ca_file, tls_last_error(ebuf, sizeof(ebuf)));
	} else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1)
		return pop3c_error(c, POP3C_TEMP, "TLS: the system CAs: %s",
		    tls_last_error(ebuf, sizeof(ebuf)));
	if ((c->ssl = tls_client_ssl(c->ctx, c->fd, a->host)) == NULL)
		return pop3c_error(c, POP3C_TEMP, "TLS: setting up the"
		    " connection to %s: %s", a->host, tls_last_error(ebuf,
		    sizeof(ebuf)));
	for (;;) {
		ERR_clear_error();
		if ((r = SSL_connect(c->ssl)) == 1)
			return check_pins(c);
		vr = SSL_get_verify_result(c->ssl);
		if (vr != X509_V_OK)
			return pop3c_error(c, POP3C_PERM, "TLS verification"
			    " of %s failed: %s", a->host,
			    X509_verify_cert_error_string(vr));
		r = SSL_get_error(c->ssl, r);
		if (r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE) {
			if (wait_fd(c, r == SSL_ERROR_WANT_READ ? POLLIN :
			    POLLOUT) == -1)
				return -1;
			continue;
		}
		return pop3c_error(c, POP3C_TEMP, "TLS handshake with %s"
		    " failed: %s", a->host, tls_last_error(ebuf,
		    sizeof(ebuf)));
	}
}

/* RFC 1939 section 7: the greeting's timestamp "<...>" (no blank, no
 * angle bracket inside) for APOP, if it has one. */
static void
apop_stamp(struct pop3c *c, const char *greeting)
{
	const char *lt = strchr(greeting, '<'), *gt;
	size_t n;

	c->apop_stamp[0] = '\0';
	if (lt == NULL || (gt = strchr(lt, '>')) == NULL)
		return;
	n = (size_t)(gt - lt) + 1;
	if (n < 3 || strcspn(lt + 1, "< \t") < n - 2 ||
	    n >= sizeof(c->apop_stamp))
		return;
	memcpy(c->apop_stamp, lt, n);
	c->apop_stamp[n] = '\0';
}

int
pop3c_connect(struct pop3c *c, const struct account *a)
{
	char line[FETCH_MAX_LINE + 1];

	memset(c, 0, offsetof(struct pop3c, rbuf));
	c->acct = a;
	c->fd = -1;
	linebuf_init(&c->lb, FETCH_MAX_LINE);
	if (tcp_connect(c) == -1)
		return -1;
	if (a->tls == ACCOUNT_TLS_IMPLICIT && tls_start(c) == -1)
		return -1;
	if (pop3c_status(c, "greeting", line, sizeof(line)) != 1)
		return -1;
	apop_stamp(c, line);
	if (pop3c_capa(c) == -1)
		return -1;
	if (a->tls != ACCOUNT_TLS_STARTTLS)
		return 0;
	if (!c->capa.stls)
		return pop3c_error(c, POP3C_PERM, "%s does not offer STLS"
		    " (tls = starttls): not continuing without TLS", a->host);
	if (pop3c_send(c, "STLS") == -1 ||
	    pop3c_status(c, "STLS", line, sizeof(line)) != 1)
		return -1;
	/* RFC 2595 section 4: nothing may come between +OK and the
	 * handshake; octets here would be an injection. */
	if (c->rlen != 0)
		return pop3c_error(c, POP3C_TEMP, "%s sent data after its"
		    " STLS reply", a->host);
	if (tls_start(c) == -1)
		return -1;
	return pop3c_capa(c);
}

void
pop3c_close(struct pop3c *c)
{
	if (c->ssl != NULL) {
		if (c->fail == POP3C_OK)
			(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	SSL_CTX_free(c->ctx);
	c->ctx = NULL;
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
}
