/*
 * session.c: the life of one POP3 session: its socket, the bounded line
 * reader, pipelined input, long replies that resume when output drains,
 * timers, and the hand-off to the auth workers.  Everything the client
 * sends is hostile; every buffer here is bounded.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/net.h"
#include "session.h"
#include "tls/tls.h"

/* Stop taking pipelined commands while this much output is queued. */
#define OUTPUT_HIGH_WATERMARK	(256 * 1024)
/* Input the socket may buffer before reading pauses. */
#define INPUT_HIGH_WATERMARK	(64 * 1024)

static void	on_read(struct bufferevent *, void *);
static void	on_write(struct bufferevent *, void *);
static void	on_event(struct bufferevent *, short, void *);
static void	on_idle(evutil_socket_t, short, void *);

/* A libevent "common timeout" for ms: thousands of sessions with the
 * same timeout share one queue instead of the timer heap. */
static const struct timeval *
common_tv(uint64_t ms)
{
	static struct {
		uint64_t		 ms;
		const struct timeval	*tv;
		struct timeval		 plain;
	} cache[2];
	size_t i, slot = 0;

	for (i = 0; i < N_ELEMENTS(cache); i++) {
		if (cache[i].tv != NULL && cache[i].ms == ms)
			return cache[i].tv;
		if (cache[i].tv == NULL)
			slot = i;
	}
	if (cache[slot].tv != NULL)
		slot = ms % N_ELEMENTS(cache);
	cache[slot].ms = ms;
	cache[slot].plain.tv_sec = (time_t)(ms / 1000);
	cache[slot].plain.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	cache[slot].tv = event_base_init_common_timeout(pop3_base,
	    &cache[slot].plain);
	if (cache[slot].tv == NULL)
		cache[slot].tv = &cache[slot].plain;
	return cache[slot].tv;
}

/* The idle timer; during a TLS handshake, the handshake timeout. */
static void
idle_reset(struct session *s)
{
	evtimer_add(s->ev_idle, common_tv(s->handshaking ?
	    cfg->tls_handshake_timeout_ms : cfg->idle_timeout_ms));
}

static void
make_apop_timestamp(struct session *s)
{
	uint64_t r;
	struct timespec ts;

	if (getentropy(&r, sizeof(r)) == -1)
		r = (uint64_t)random();
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(s->apop_ts, sizeof(s->apop_ts), "<%ld.%016" PRIx64
	    ".%lld@%s>", (long)getpid(), r, (long long)ts.tv_sec,
	    cfg->hostname);
}

/* Callbacks and limits of the session's current bufferevent. */
static void
setup_bev(struct session *s)
{
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_HIGH_WATERMARK);
	bufferevent_setwatermark(s->bev, EV_WRITE, OUTPUT_LOW_WATERMARK, 0);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* Wraps fd in a TLS bufferevent that owns it from now on. */
static int
tls_wrap(struct session *s)
{
	SSL *ssl = tls_server_ssl(tls_srv);

	if (ssl == NULL)
		return -1;
	s->bev = bufferevent_openssl_socket_new(pop3_base, s->fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		SSL_free(ssl);
		return -1;
	}
	/* A client that closes without close_notify has ended its
	 * session, not attacked it. */
	bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	s->tls = true;
	s->handshaking = true;
	return 0;
}

struct session *
session_new(int fd, uint64_t conn_id, uint64_t id, const char *peer_ip,
    unsigned int peer_port, unsigned int ip_failures, bool implicit_tls)
{
	struct session *s;
	int on = 1;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		close(fd);
		return NULL;
	}
	s->fd = fd;
	s->conn_id = conn_id;
	s->id = id;
	s->msg_fd = -1;
	s->auth_slot = -1;
	s->ip_failures = ip_failures;
	s->peer_port = peer_port;
	s->start_ms = pop3_now_ms();
	snprintf(s->peer_ip, sizeof(s->peer_ip), "%s", peer_ip);
	{
		struct sockaddr_in *s4 = (struct sockaddr_in *)&s->peer;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&s->peer;

		if (inet_pton(AF_INET, peer_ip, &s4->sin_addr) == 1)
			s->peer.ss_family = AF_INET;
		else if (inet_pton(AF_INET6, peer_ip, &s6->sin6_addr) == 1)
			s->peer.ss_family = AF_INET6;
	}
	s->plaintext_net = cidr_match(cfg->plaintext_networks,
	    cfg->n_plaintext_networks, (struct sockaddr *)&s->peer);
	linebuf_init(&s->lb, cfg->max_line_length);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	s->ev_idle = evtimer_new(pop3_base, on_idle, s);
	if (s->ev_idle == NULL)
		goto fail;
	if (implicit_tls) {
		if (tls_wrap(s) == -1)
			goto fail;
	} else if ((s->bev = bufferevent_socket_new(pop3_base, fd, 0)) == NULL)
		goto fail;
	s->plaintext_ok = cfg->plaintext == PLAINTEXT_ALLOWED ||
	    s->plaintext_net || s->tls;
	setup_bev(s);
	idle_reset(s);
	log_info("pop3 session=%016" PRIx64 " connect ip=%s port=%u%s",
	    s->conn_id, s->peer_ip, s->peer_port, s->tls ? " tls=implicit" :
	    "");
	/* On implicit TLS this goes out once the handshake is done. */
	if (pop3_apop_available) {
		make_apop_timestamp(s);
		session_reply(s, "+OK %s %s", cfg->greeting, s->apop_ts);
	} else
		session_reply(s, "+OK %s", cfg->greeting);
	return s;
fail:
	if (s->bev != NULL)
		bufferevent_free(s->bev);	/* closes fd if TLS owns it */
	if (!s->tls || s->bev == NULL)
		close(fd);
	if (s->ev_idle != NULL)
		event_free(s->ev_idle);
	free(s);
	return NULL;
}

void
session_start_tls(struct session *s)
{
	/* The plain bufferevent does not own the descriptor. */
	bufferevent_free(s->bev);
	s->bev = NULL;
	s->stls_pending = false;
	if (tls_wrap(s) == -1) {
		log_warnx("pop3 session=%016" PRIx64 " cannot start TLS",
		    s->conn_id);
		s->close_reason = "tls-setup";
		close(s->fd);
		s->bev = NULL;
		session_free(s);
		return;
	}
	/* RFC 2595 section 4: forget what came before the negotiation. */
	s->have_user = false;
	s->user[0] = '\0';
	s->plaintext_ok = true;
	linebuf_init(&s->lb, cfg->max_line_length);
	setup_bev(s);
	idle_reset(s);
}

size_t
session_output_len(const struct session *s)
{
	return evbuffer_get_length(bufferevent_get_output(s->bev));
}

void
session_reply(struct session *s, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

void
session_raw(struct session *s, const void *data, size_t len)
{
	evbuffer_add(bufferevent_get_output(s->bev), data, len);
}

void
session_free(struct session *s)
{
	if (s->state != STATE_AUTHORIZATION || s->mb != NULL)
		log_info("pop3 session=%016" PRIx64 " logout user=%s"
		    " reason=%s retr=%u bytes=%" PRIu64 " dele=%u"
		    " duration=%" PRIu64 "ms", s->conn_id, s->user,
		    s->close_reason != NULL ? s->close_reason : "disconnect",
		    s->n_retr, s->bytes_out, s->n_dele,
		    pop3_now_ms() - s->start_ms);
	else
		log_info("pop3 session=%016" PRIx64 " disconnect reason=%s"
		    " duration=%" PRIu64 "ms", s->conn_id,
		    s->close_reason != NULL ? s->close_reason : "disconnect",
		    pop3_now_ms() - s->start_ms);
	if (s->msg_fd >= 0)
		close(s->msg_fd);
	commands_release_mailbox(s);
	if (s->ev_delay != NULL)
		event_free(s->ev_delay);
	event_free(s->ev_idle);
	if (s->bev != NULL) {
		if (s->tls && !s->handshaking) {
			/* RFC 8446 section 6.1: close_notify before the
			 * close, best effort (the socket is non-blocking). */
			SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

			if (ssl != NULL && SSL_shutdown(ssl) < 0)
				ERR_clear_error();
		}
		bufferevent_free(s->bev);
		if (!s->tls)
			close(s->fd);	/* a TLS bufferevent closed it */
	}
	pop3_session_gone(s);
	explicit_bzero(s->user, sizeof(s->user));
	free(s);
}

void
session_close(struct session *s, const char *reason)
{
	if (s->closing)
		return;
	s->closing = true;
	s->close_reason = reason;
	s->cont = NULL;
	bufferevent_disable(s->bev, EV_READ);
	if (session_output_len(s) == 0 || s->handshaking) {
		session_free(s);
		return;
	}
	/* Free once the last reply is out: the write callback fires when
	 * the output is empty. */
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
}

void
session_shutdown(struct session *s)
{
	if (s->closing)
		return;
	if (!s->in_multiline)
		session_reply(s, "-ERR [SYS/TEMP] Server shutting down.");
	session_close(s, "shutdown");
}

void
session_input(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	char line[HARD_MAX_LINE_LENGTH + 2];

	while (!s->closing && !s->waiting && !s->delaying && s->cont == NULL &&
	    !s->stls_pending && !s->handshaking &&
	    session_output_len(s) < OUTPUT_HIGH_WATERMARK) {
		size_t len;
		enum line_rc rc = linebuf_next(&s->lb, in, line, sizeof(line),
		    &len);

		if (rc == LINE_MORE)
			break;
		idle_reset(s);
		if (rc == LINE_TOO_LONG || rc == LINE_HAS_NUL) {
			session_reply(s, rc == LINE_TOO_LONG ?
			    "-ERR Line too long." :
			    "-ERR Line contains a NUL octet.");
			if (++s->bad_cmds >= cfg->max_bad_commands) {
				session_reply(s, "-ERR Too many bad commands.");
				session_close(s, "bad-commands");
			}
			continue;
		}
		commands_dispatch(s, line);
		explicit_bzero(line, len);
	}
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	session_input(arg);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if (s->closing) {
		if (session_output_len(s) == 0)
			session_free(s);
		return;
	}
	if (s->stls_pending) {
		if (session_output_len(s) == 0)
			session_start_tls(s);
		return;
	}
	while (s->cont != NULL &&
	    session_output_len(s) < OUTPUT_LOW_WATERMARK) {
		if (s->cont(s) == 1) {
			s->cont = NULL;
			s->in_multiline = false;
		}
		if (s->closing)
			return;
	}
	session_input(s);
}

/* The TLS layer's reason for a failure, in one line. */
static const char *
tls_reason(struct session *s, short what, char *buf, size_t size)
{
	unsigned long e, last = 0, code = 0;

	/* libevent queues OpenSSL's errors, and where there were none the
	 * bare SSL_get_error() code: the first say more. */
	while ((e = bufferevent_get_openssl_error(s->bev)) != 0) {
		if (ERR_GET_LIB(e) != 0)
			last = e;
		else if (code == 0)
			code = e;
	}
	if (last != 0) {
		ERR_error_string_n(last, buf, size);
		return buf;
	}
	if (code == SSL_ERROR_SYSCALL || (what & BEV_EVENT_EOF))
		return "connection closed or reset by the peer";
	if (code == SSL_ERROR_SSL)
		return "protocol error";
	return evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;
	char why[256];

	if (what & BEV_EVENT_CONNECTED) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);

		s->handshaking = false;
		log_info("pop3 session=%016" PRIx64 " tls established"
		    " version=%s cipher=%s%s", s->conn_id,
		    SSL_get_version(ssl), SSL_get_cipher_name(ssl),
		    SSL_session_reused(ssl) ? " resumed=yes" : "");
		idle_reset(s);
		session_input(s);
		return;
	}
	if (s->handshaking) {
		log_info("pop3 session=%016" PRIx64 " tls handshake failed"
		    " ip=%s reason=%s", s->conn_id, s->peer_ip,
		    tls_reason(s, what, why, sizeof(why)));
		s->close_reason = "tls-handshake";
		session_free(s);
		return;
	}
	/* EOF, error or a write that made no progress: no UPDATE. */
	if (s->closing) {
		session_free(s);
		return;
	}
	if (s->tls && (what & BEV_EVENT_ERROR))
		log_info("pop3 session=%016" PRIx64 " tls error ip=%s"
		    " reason=%s", s->conn_id, s->peer_ip,
		    tls_reason(s, what, why, sizeof(why)));
	s->close_reason = (what & BEV_EVENT_EOF) ? "disconnect" :
	    (what & BEV_EVENT_TIMEOUT) ? "write-timeout" : "io-error";
	session_free(s);
}

static void
on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	size_t out = session_output_len(s);

	if (s->handshaking) {
		log_info("pop3 session=%016" PRIx64 " tls handshake failed"
		    " ip=%s reason=timeout", s->conn_id, s->peer_ip);
		s->close_reason = "tls-handshake";
		session_free(s);
		return;
	}
	/* A long reply that is still moving is not idleness. */
	if (out > 0 && out != s->last_out_len) {
		s->last_out_len = out;
		idle_reset(s);
		return;
	}
	if (s->closing) {
		session_free(s);
		return;
	}
	if (!s->in_multiline)
		session_reply(s, "-ERR Autologout; idle for too long.");
	session_close(s, "idle-timeout");
	if (s->closing)
		idle_reset(s);	/* frees it if the client never reads */
}

static void
on_delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	s->delaying = false;
	session_reply(s, "-ERR [AUTH] Authentication failed.");
	if (s->auth_failures >= cfg->max_auth_failures) {
		session_reply(s, "-ERR Too many failed logins.");
		session_close(s, "auth-failures");
		return;
	}
	session_input(s);
}

void
session_auth_reply(struct session *s, enum auth_status st)
{
	s->waiting = false;
	if (st == AUTH_STATUS_TEMPFAIL) {
		log_warnx("pop3 session=%016" PRIx64 " login failed user=%s"
		    " reason=auth-unavailable", s->conn_id, s->user);
		session_reply(s, "-ERR [SYS/TEMP] Authentication is"
		    " temporarily unavailable.");
		s->have_user = false;
		session_input(s);
		return;
	}
	if (st == AUTH_STATUS_FAIL) {
		unsigned int n, shift;
		uint64_t delay;
		struct timeval tv;

		s->auth_failures++;
		n = s->ip_failures + s->auth_failures;
		shift = n > 16 ? 16 : n - 1;
		delay = cfg->auth_fail_delay_ms << shift;
		if (delay > cfg->auth_fail_delay_max_ms)
			delay = cfg->auth_fail_delay_max_ms;
		log_info("pop3 session=%016" PRIx64 " login failed user=%s"
		    " reason=bad-credentials delay=%" PRIu64 "ms", s->conn_id,
		    s->user, delay);
		pop3_login_result(s, true);
		s->have_user = false;
		if (s->ev_delay == NULL)
			s->ev_delay = evtimer_new(pop3_base, on_delay_done, s);
		if (s->ev_delay == NULL) {
			session_close(s, "no-memory");
			return;
		}
		tv.tv_sec = (time_t)(delay / 1000);
		tv.tv_usec = (suseconds_t)(delay % 1000) * 1000;
		s->delaying = true;
		evtimer_add(s->ev_delay, &tv);
		return;
	}
	pop3_login_result(s, false);
	commands_login_ok(s);
	session_input(s);
}
