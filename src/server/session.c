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
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/net.h"
#include "session.h"
#include "tls/tls.h"

/* One line of input: a command, or a SASL response. */
#define LINE_BUF_SIZE							\
	((HARD_MAX_SASL_LINE_LENGTH > HARD_MAX_LINE_LENGTH ?		\
	HARD_MAX_SASL_LINE_LENGTH : HARD_MAX_LINE_LENGTH) + 2)

/* The line reader needs the whole line in the input buffer. */
_Static_assert(INPUT_HIGH_WATERMARK >= LINE_BUF_SIZE,
    "INPUT_HIGH_WATERMARK cannot hold the longest line");

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
	(void)bufferevent_set_max_single_write(s->bev, OUTPUT_MAX_SINGLE_WRITE);
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
	s->retr_next = NO_MSG;
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
	s->trusted = cidr_match(cfg->trusted_networks,
	    cfg->n_trusted_networks, (struct sockaddr *)&s->peer);
	s->login_delay_s = cfg->login_delay_s;
	s->expire_days = cfg->expire_days;
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
	xmit_free(s);
	pop3_sasl_abort(s);
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
	/* A step of a streamed reply may close its session; the loop that
	 * runs the steps frees it (session_run_cont). */
	if ((session_output_len(s) == 0 || s->handshaking) && !s->in_cont) {
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

/* An overlong line or one with a NUL. */
static void
bad_line(struct session *s, enum line_rc rc)
{
	session_reply(s, rc == LINE_TOO_LONG ? "-ERR Line too long." :
	    "-ERR Line contains a NUL octet.");
	if (++s->bad_cmds >= cfg->max_bad_commands) {
		session_reply(s, "-ERR Too many bad commands.");
		session_close(s, "bad-commands");
	}
}

/*
 * PIPELINING: may one more command be taken?  At most
 * max_pipelined_commands while replies are queued; the count starts over
 * once the output has drained, and the write callback (which libevent
 * calls when a write leaves the output at or below its low watermark,
 * so also when it empties) takes the next batch.
 */
static bool
pipeline_open(struct session *s, struct evbuffer *in)
{
	size_t out = session_output_len(s);

	if (out == 0)
		s->pipelined = 0;
	if (s->pipelined < cfg->max_pipelined_commands)
		return true;
	if (!s->throttle_logged && evbuffer_get_length(in) > 0) {
		s->throttle_logged = true;
		log_debug("pop3 session=%016" PRIx64 " pipelining throttled"
		    " commands=%u queued=%zu max_pipelined_commands=%u",
		    s->conn_id, s->pipelined, out,
		    cfg->max_pipelined_commands);
	}
	return false;
}

void
session_input(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	char line[LINE_BUF_SIZE];

	while (!s->closing && !s->waiting && !s->delaying && s->cont == NULL &&
	    !s->stls_pending && !s->handshaking && !s->xmit_waiting &&
	    session_output_len(s) < OUTPUT_HIGH_WATERMARK &&
	    pipeline_open(s, in)) {
		size_t len = 0;
		enum line_rc rc;

		/* RFC 5034 section 4: SASL responses are not commands, and
		 * OAuth tokens are longer than any command; some clients
		 * put a whole token on the AUTH line, so AUTHORIZATION
		 * reads that far, and only AUTH may use it. */
		s->lb.max = s->xmit != NULL ? XMIT_MAX_LINE_LENGTH :
		    s->sasl || s->state == STATE_AUTHORIZATION ?
		    cfg->max_sasl_line_length : cfg->max_line_length;
		rc = linebuf_next(&s->lb, in, line, sizeof(line), &len);
		if (rc == LINE_MORE)
			break;
		idle_reset(s);
		if (s->xmit != NULL) {
			/* A line of an XTND XMIT message, not a command. */
			xmit_line(s, line, len, rc);
			continue;
		}
		s->pipelined++;
		if (evbuffer_get_length(in) > 0)
			s->pipelines = true;	/* sent more without waiting */
		if (rc == LINE_OK && !s->sasl && len > cfg->max_line_length &&
		    strncasecmp(line, "AUTH ", 5) != 0) {
			explicit_bzero(line, len);
			rc = LINE_TOO_LONG;
		}
		if (s->sasl) {
			if (rc == LINE_OK)
				commands_sasl_line(s, line);
			else {
				pop3_sasl_abort(s);
				bad_line(s, rc);
			}
			explicit_bzero(line, len);
			continue;
		}
		if (rc == LINE_TOO_LONG || rc == LINE_HAS_NUL) {
			bad_line(s, rc);
			continue;
		}
		commands_dispatch(s, line);
		explicit_bzero(line, len);
	}
	/* All sent (by the write callback, or straight to the socket),
	 * nothing more asked: a client that reads one message at a time is
	 * busy with it now, and most ask for the next one. */
	if (s->retr_next != NO_MSG && !s->closing && s->cont == NULL &&
	    session_output_len(s) == 0 && evbuffer_get_length(in) == 0)
		commands_prefetch(s);
}

/*
 * Runs the steps of the multi-line reply in progress until it is complete
 * or OUTPUT_FILL_MARK octets are queued.  False when a step closed the
 * session and it is gone.
 */
static bool
session_run_cont(struct session *s)
{
	while (s->cont != NULL && session_output_len(s) < OUTPUT_FILL_MARK) {
		int done;

		s->in_cont = true;
		done = s->cont(s);
		s->in_cont = false;
		if (s->closing) {
			if (session_output_len(s) > 0)
				return true;	/* freed once that is out */
			session_free(s);
			return false;
		}
		if (done == 1) {
			s->cont = NULL;
			s->in_multiline = false;
		}
	}
	return true;
}

void
session_start_cont(struct session *s, session_cont_fn *fn)
{
	s->in_multiline = true;
	s->cont = fn;
	/* The status line is queued, so a step that closes the session
	 * leaves it to the write callback to free. */
	(void)session_run_cont(s);
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
	if (!session_run_cont(s) || s->closing)
		return;
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
	/* A long reply that is still moving is not idleness, nor is an
	 * XTND XMIT submission (bounded by xmit_timeout). */
	if (s->xmit_waiting || (out > 0 && out != s->last_out_len)) {
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
session_auth_reply(struct session *s, enum auth_status st,
    const struct auth_result *r)
{
	const char *reason = r != NULL && r->reason != NULL &&
	    r->reason[0] != '\0' ? r->reason : "bad-credentials";

	s->waiting = false;
	s->sasl = false;
	switch (st) {
	case AUTH_STATUS_TEMPFAIL:
		log_warnx("pop3 session=%016" PRIx64 " login failed user=%s"
		    " method=%s reason=auth-unavailable", s->conn_id, s->user,
		    s->method != NULL ? s->method : "USER");
		session_reply(s, "-ERR [SYS/TEMP] Authentication is"
		    " temporarily unavailable.");
		s->have_user = false;
		session_input(s);
		return;
	case AUTH_STATUS_BAD_INPUT:
		log_info("pop3 session=%016" PRIx64 " login failed"
		    " method=%s reason=%s", s->conn_id,
		    s->method != NULL ? s->method : "?", reason);
		session_reply(s, "-ERR Malformed authentication data.");
		if (++s->bad_cmds >= cfg->max_bad_commands) {
			session_reply(s, "-ERR Too many bad commands.");
			session_close(s, "bad-commands");
			return;
		}
		session_input(s);
		return;
	case AUTH_STATUS_FAIL: {
		unsigned int n, shift;
		uint64_t delay;
		struct timeval tv;

		s->auth_failures++;
		n = s->ip_failures + s->auth_failures;
		shift = n > 16 ? 16 : n - 1;
		delay = cfg->auth_fail_delay_ms << shift;
		if (delay > cfg->auth_fail_delay_max_ms)
			delay = cfg->auth_fail_delay_max_ms;
		if (s->trusted)
			delay = 0;
		log_info("pop3 session=%016" PRIx64 " login failed user=%s"
		    " method=%s reason=%s delay=%" PRIu64 "ms", s->conn_id,
		    s->user, s->method != NULL ? s->method : "USER", reason,
		    delay);
		if (!s->trusted)
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
	case AUTH_STATUS_OK:
	default:
		break;
	}
	if (r != NULL && r->user != NULL && r->user[0] != '\0')
		(void)snprintf(s->user, sizeof(s->user), "%s", r->user);
	if (r != NULL && r->login_delay != AUTH_USER_DEFAULT)
		s->login_delay_s = r->login_delay;
	if (r != NULL && r->expire != AUTH_USER_DEFAULT)
		s->expire_days = r->expire == AUTH_EXPIRE_NEVER ? -1 :
		    (int64_t)r->expire;
	pop3_login_result(s, false);
	if (pop3_user_claim(s) == 0) {
		/* The master answers with session_user_claimed(). */
		s->waiting = true;
		s->claiming = true;
		return;
	}
	commands_login_ok(s);
	session_input(s);
}

void
session_user_claimed(struct session *s, bool ok)
{
	s->waiting = false;
	s->claiming = false;
	if (ok) {
		s->user_claimed = true;
		commands_login_ok(s);
	} else {
		log_info("pop3 session=%016" PRIx64 " login refused user=%s"
		    " reason=too-many-sessions", s->conn_id, s->user);
		session_reply(s, "-ERR [IN-USE] Too many sessions for this"
		    " user; close one and try again.");
		s->have_user = false;
	}
	session_input(s);
}

/* base64 of n octets into out (size > 4 * ((n + 2) / 3)). */
static void
b64(const unsigned char *in, size_t n, char *out, size_t size)
{
	if (size < 4 * ((n + 2) / 3) + 1) {
		out[0] = '\0';
		return;
	}
	(void)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

void
session_tls_bindings(struct session *s, char *unique, char *exporter,
    size_t size)
{
	unsigned char fin[EVP_MAX_MD_SIZE], ekm[32];
	SSL *ssl;
	size_t n;

	unique[0] = exporter[0] = '\0';
	if (!s->tls || s->handshaking ||
	    (ssl = bufferevent_openssl_get_ssl(s->bev)) == NULL)
		return;
	/* RFC 9266: tls-exporter; on TLS 1.2 only with the extended
	 * master secret (RFC 7627), without which it is not unique. */
	if ((SSL_version(ssl) >= TLS1_3_VERSION ||
	    SSL_get_extms_support(ssl) == 1) &&
	    SSL_export_keying_material(ssl, ekm, sizeof(ekm),
	    "EXPORTER-Channel-Binding", 24, NULL, 0, 0) == 1)
		b64(ekm, sizeof(ekm), exporter, size);
	/* RFC 5929 section 3: tls-unique is the first Finished message of
	 * the handshake: the client's in a full one, ours in a resumed
	 * one.  TLS 1.3 has none (RFC 8446 section C.5). */
	if (SSL_version(ssl) == TLS1_2_VERSION) {
		n = SSL_session_reused(ssl) ?
		    SSL_get_finished(ssl, fin, sizeof(fin)) :
		    SSL_get_peer_finished(ssl, fin, sizeof(fin));
		if (n > 0 && n <= sizeof(fin))
			b64(fin, n, unique, size);
	}
	explicit_bzero(ekm, sizeof(ekm));
}

void
session_tls_identity(struct session *s, char *id, size_t size)
{
	GENERAL_NAMES *sans;
	X509_NAME *subj;
	X509 *cert;
	SSL *ssl;
	int i, n;

	id[0] = '\0';
	if (!s->tls || s->handshaking ||
	    (ssl = bufferevent_openssl_get_ssl(s->bev)) == NULL ||
	    (cert = SSL_get0_peer_certificate(ssl)) == NULL ||
	    SSL_get_verify_result(ssl) != X509_V_OK)
		return;
	if (cfg->external_user == EXTERNAL_USER_EMAIL) {
		sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL,
		    NULL);
		n = sans != NULL ? sk_GENERAL_NAME_num(sans) : 0;
		for (i = 0; i < n && id[0] == '\0'; i++) {
			const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
			const unsigned char *d;
			int len;

			if (g->type != GEN_EMAIL)
				continue;
			d = ASN1_STRING_get0_data(g->d.rfc822Name);
			len = ASN1_STRING_length(g->d.rfc822Name);
			if (len > 0 && (size_t)len < size &&
			    memchr(d, '\0', (size_t)len) == NULL) {
				memcpy(id, d, (size_t)len);
				id[len] = '\0';
			}
		}
		GENERAL_NAMES_free(sans);
		return;
	}
	subj = X509_get_subject_name(cert);
	n = subj != NULL ? X509_NAME_get_text_by_NID(subj, NID_commonName,
	    NULL, 0) : -1;
	/* One printable name that fits, or nothing. */
	if (n <= 0 || (size_t)n >= size ||
	    X509_NAME_get_text_by_NID(subj, NID_commonName, id,
	    (int)size) != n || strlen(id) != (size_t)n)
		id[0] = '\0';
}
