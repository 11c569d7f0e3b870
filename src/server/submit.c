/*
 * submit.c: XTND XMIT submissions, in the master.
 *
 * A pop3 worker cannot execute programs nor open TCP sockets (its
 * seccomp filter), so it hands each message (an unnamed spool file) and
 * its envelope to the master.  The master checks the sender's hourly
 * rate (a token bucket per user: it sees every worker), then forks a
 * short-lived submission child per message, which drops to mail_user
 * and either runs xmit_command with the envelope as arguments and the
 * spool as standard input, or speaks SMTP to xmit_relay.  The child's
 * exit status is the outcome; a child still running after xmit_timeout
 * is killed.  The master answers the worker, which answers the client.
 *
 * The envelope is from a worker, hence hostile: every field is checked
 * again here before it becomes an argument or an SMTP command.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/buf.h"
#include "lib/ipc.h"
#include "lib/linebuf.h"
#include "lib/log.h"
#include "posternd.h"
#include "tls/tls.h"

/* SMTP reply lines (RFC 5321 section 4.5.3.1.5: 512 octets). */
#define SMTP_LINE_MAX		1000
/* Lines of one multi-line SMTP reply. */
#define SMTP_MAX_REPLY_LINES	100
/* Rate entries kept before full buckets are forgotten. */
#define RATE_SWEEP_AT		4096

struct rate_ent {
	struct rate_ent	*next;
	double		 tokens;
	uint64_t	 last_ms;
	char		 user[];
};

struct sub {
	struct sub	*next;
	pid_t		 pid;
	const void	*tag;		/* the pop3 worker, NULL once gone */
	struct ipc_chan	*chan;
	uint64_t	 session;
	char		 user[MAX_USERNAME_LEN + 1];
	char		 msgid[XMIT_MAX_MSGID_LEN + 1];
	unsigned int	 n_rcpt;
	uint64_t	 size;
	uint64_t	 start_ms;
	bool		 timed_out;
	struct event	*timer;
};

static struct event_base *sub_base;
static struct sub *subs;
static unsigned int n_subs;
static struct rate_ent *rates;
static unsigned int n_rates;

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
submit_init(struct event_base *base)
{
	sub_base = base;
}

/* Refills a bucket: xmit_max_per_hour tokens an hour, at most that
 * many held. */
static void
rate_refill(struct rate_ent *r, uint64_t now)
{
	double cap = cfg->xmit_max_per_hour;

	r->tokens += (double)(now - r->last_ms) * cap / 3600000.0;
	if (r->tokens > cap)
		r->tokens = cap;
	r->last_ms = now;
}

/* Forgets users whose bucket is full again. */
static void
rate_sweep(uint64_t now)
{
	struct rate_ent **pp = &rates, *r;

	while ((r = *pp) != NULL) {
		rate_refill(r, now);
		if (r->tokens >= cfg->xmit_max_per_hour) {
			*pp = r->next;
			free(r);
			n_rates--;
		} else
			pp = &r->next;
	}
}

/* Takes one token of user's bucket: false when it is empty. */
static bool
rate_take(const char *user)
{
	uint64_t now = mono_ms();
	struct rate_ent *r;
	size_t len = strlen(user);

	for (r = rates; r != NULL; r = r->next)
		if (strcmp(r->user, user) == 0)
			break;
	if (r == NULL) {
		if (n_rates >= RATE_SWEEP_AT)
			rate_sweep(now);
		if ((r = calloc(1, sizeof(*r) + len + 1)) == NULL)
			return false;
		memcpy(r->user, user, len + 1);
		r->tokens = cfg->xmit_max_per_hour;
		r->last_ms = now;
		r->next = rates;
		rates = r;
		n_rates++;
	}
	rate_refill(r, now);
	if (r->tokens < 1.0)
		return false;
	r->tokens -= 1.0;
	return true;
}

static void
rate_give_back(const char *user)
{
	struct rate_ent *r;

	for (r = rates; r != NULL; r = r->next)
		if (strcmp(r->user, user) == 0 &&
		    r->tokens + 1.0 <= cfg->xmit_max_per_hour)
			r->tokens += 1.0;
}

static void
answer(struct ipc_chan *ch, uint64_t session, enum xmit_status st)
{
	struct ipc_msg *m;

	if (ch == NULL || (m = malloc(sizeof(*m))) == NULL)
		return;
	ipc_msg_init(m, MSG_XMIT_RESULT, session);
	ipc_put_u32(m, (uint32_t)st);
	(void)ipc_send(ch, m);
	free(m);
}

/* An address the header parser could have produced, and that is safe
 * as an argument and inside an SMTP command. */
static bool
addr_ok(const char *a)
{
	const char *at = strrchr(a, '@');

	if (a[0] == '\0' || a[0] == '-' || at == NULL || at == a ||
	    at[1] == '\0' || strlen(a) > XMIT_MAX_ADDR_LEN)
		return false;
	for (; *a != '\0'; a++)
		if ((unsigned char)*a < 0x20 || *a == 0x7f)
			return false;
	return true;
}

/* ---- the SMTP relay (in the submission child) ---------------------- */

struct smtp {
	int		 fd;
	SSL		*ssl;		/* after STARTTLS */
	bool		 starttls;	/* the last EHLO offered it */
	bool		 eightbit;	/* ... and 8BITMIME (RFC 6152) */
	struct linebuf	 lb;
	uint8_t		 in[4096];
	size_t		 in_len;
	char		 last[SMTP_LINE_MAX + 1];	/* for the log */
	uint64_t	 deadline_ms;
};

/* Socket timeouts: what is left of the whole conversation's time. */
static int
smtp_timeouts(struct smtp *c)
{
	uint64_t now = mono_ms(), left;
	struct timeval tv;

	if (now >= c->deadline_ms)
		return -1;
	left = c->deadline_ms - now;
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1)
		return -1;
	return 0;
}

static int
smtp_write(struct smtp *c, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n;

		if (smtp_timeouts(c) == -1)
			return -1;
		if (c->ssl != NULL) {
			int w = SSL_write(c->ssl, p, len > INT_MAX ? INT_MAX :
			    (int)len);

			n = w > 0 ? w : -1;
		} else
			n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR && c->ssl == NULL)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One reply line into c->last; -1 on EOF, timeout or garbage. */
static int
smtp_line(struct smtp *c)
{
	for (;;) {
		size_t len, used;
		enum line_rc rc = linebuf_scan(&c->lb, c->in, c->in_len, &len,
		    &used);
		ssize_t n;

		if (rc == LINE_OK) {
			memcpy(c->last, c->in, len);
			c->last[len] = '\0';
		}
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
		if (rc == LINE_OK)
			return 0;
		if (rc != LINE_MORE)
			return -1;
		if (c->in_len == sizeof(c->in) || smtp_timeouts(c) == -1)
			return -1;
		if (c->ssl != NULL) {
			int r = SSL_read(c->ssl, c->in + c->in_len,
			    (int)(sizeof(c->in) - c->in_len));

			n = r > 0 ? r : -1;
		} else
			n = recv(c->fd, c->in + c->in_len,
			    sizeof(c->in) - c->in_len, 0);
		if (n == -1 && errno == EINTR && c->ssl == NULL)
			continue;
		if (n <= 0)
			return -1;
		c->in_len += (size_t)n;
	}
}

/* A whole reply (RFC 5321 section 4.2.1): its code, or -1. */
static int
smtp_reply(struct smtp *c)
{
	int i, code = -1;

	for (i = 0; i < SMTP_MAX_REPLY_LINES; i++) {
		const char *l = c->last;

		if (smtp_line(c) == -1)
			return -1;
		if (l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
		    l[2] < '0' || l[2] > '9' ||
		    (l[3] != '\0' && l[3] != ' ' && l[3] != '-'))
			return -1;
		if (code == -1)
			code = (l[0] - '0') * 100 + (l[1] - '0') * 10 +
			    (l[2] - '0');
		/* RFC 3207 section 4: the EHLO keyword. */
		if (code == 250 && strcasecmp(l + 4, "STARTTLS") == 0)
			c->starttls = true;
		if (code == 250 && strcasecmp(l + 4, "8BITMIME") == 0)
			c->eightbit = true;
		if (l[3] != '-')
			return code;
	}
	return -1;
}

/* Sends "verb arg close" and CRLF, reads the reply: its code or -1. */
static int
smtp_cmd(struct smtp *c, const char *verb, const char *arg,
    const char *close)
{
	char line[SMTP_LINE_MAX + 1];

	if (str_fmt(line, sizeof(line), "%s%s%s\r\n", verb, arg,
	    close) == -1 || smtp_write(c, line, strlen(line)) == -1)
		return -1;
	return smtp_reply(c);
}

/* The exit status of a code that is not what was wanted. */
static int
smtp_fail(struct smtp *c, const char *what, int code)
{
	char safe[SMTP_LINE_MAX + 1];

	if (code == -1) {
		log_warnx("submit: relay %s:%s: %s: no valid reply in time",
		    cfg->xmit_relay_host, cfg->xmit_relay_port, what);
		return EX_TEMPFAIL;
	}
	log_warnx("submit: relay %s:%s refused %s: %s", cfg->xmit_relay_host,
	    cfg->xmit_relay_port, what, log_safe(safe, sizeof(safe), c->last));
	(void)smtp_write(c, "QUIT\r\n", 6);
	return code >= 500 ? EX_UNAVAILABLE : EX_TEMPFAIL;
}

/* The spool (standard input, LF line ends) as DATA: CRLF, byte-stuffed
 * (RFC 5321 section 4.5.2), then the end mark. */
static int
smtp_data(struct smtp *c)
{
	static char in[16384];
	struct buf out;
	bool bol = true;
	ssize_t n;
	int rc = -1;

	buf_init(&out, 2 * sizeof(in) + 8);
	for (;;) {
		size_t i;

		n = read(0, in, sizeof(in));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		buf_reset(&out);
		for (i = 0; i < (size_t)n; i++) {
			if (bol && in[i] == '.' && buf_addc(&out, '.') == -1)
				goto out;
			bol = in[i] == '\n';
			if ((bol && buf_addc(&out, '\r') == -1) ||
			    buf_addc(&out, in[i]) == -1)
				goto out;
		}
		if (smtp_write(c, out.data, out.len) == -1)
			goto out;
	}
	if (n < 0)
		goto out;
	rc = smtp_write(c, bol ? ".\r\n" : "\r\n.\r\n", bol ? 3 : 5);
out:
	buf_clear(&out);
	return rc;
}

/* Whether the spool (standard input) holds an octet above 0x7f; it is
 * read from the start and left there. */
static bool
spool_is_8bit(void)
{
	static unsigned char in[16384];
	bool found = false;
	ssize_t n, i;

	while (!found && (n = read(0, in, sizeof(in))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (i = 0; i < n && !found; i++)
			found = in[i] > 0x7f;
	}
	(void)lseek(0, 0, SEEK_SET);
	return found;
}

/*
 * STARTTLS (RFC 3207) with the relay verified as xmit_relay_host: 0, or
 * the exit status.  Every failure is temporary, a refused STARTTLS too:
 * the message must not go in the clear, and the relay may be fixed.
 */
static int
smtp_starttls(struct smtp *c, SSL_CTX *ctx)
{
	char ebuf[256];
	long vr;
	int code;

	if (!c->starttls) {
		log_warnx("submit: relay %s:%s does not offer STARTTLS",
		    cfg->xmit_relay_host, cfg->xmit_relay_port);
		(void)smtp_write(c, "QUIT\r\n", 6);
		return EX_TEMPFAIL;
	}
	if ((code = smtp_cmd(c, "STARTTLS", "", "")) != 220) {
		if (code != -1)
			code = code < 500 ? code : 454;
		return smtp_fail(c, "STARTTLS", code);
	}
	/* Nothing the relay sent before the handshake may count as sent
	 * inside it. */
	if (c->in_len != 0) {
		log_warnx("submit: relay %s:%s sent data after its STARTTLS"
		    " reply", cfg->xmit_relay_host, cfg->xmit_relay_port);
		return EX_TEMPFAIL;
	}
	ERR_clear_error();
	if (smtp_timeouts(c) == -1 ||
	    (c->ssl = tls_client_ssl(ctx, c->fd, cfg->xmit_relay_host)) ==
	    NULL || SSL_connect(c->ssl) != 1) {
		vr = c->ssl != NULL ? SSL_get_verify_result(c->ssl) : X509_V_OK;
		if (vr != X509_V_OK)
			log_warnx("submit: TLS verification of relay %s"
			    " failed: %s", cfg->xmit_relay_host,
			    X509_verify_cert_error_string(vr));
		else
			log_warnx("submit: TLS handshake with relay %s:%s"
			    " failed: %s", cfg->xmit_relay_host,
			    cfg->xmit_relay_port, tls_last_error(ebuf,
			    sizeof(ebuf)));
		return EX_TEMPFAIL;
	}
	c->starttls = c->eightbit = false;
	log_info("submit: relay %s:%s TLS %s", cfg->xmit_relay_host,
	    cfg->xmit_relay_port, tls_describe(c->ssl, ebuf, sizeof(ebuf)));
	return 0;
}

/* The context for STARTTLS, made before the child is confined: the CA
 * file (xmit_relay_ca, or the system's bundle) is read now. */
static SSL_CTX *
relay_tls_ctx(void)
{
	const char *ca = cfg->xmit_relay_ca != NULL ? cfg->xmit_relay_ca :
	    X509_get_default_cert_file();
	char ebuf[256];
	SSL_CTX *ctx;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		log_warnx("submit: TLS for relay %s: CA file %s: %s",
		    cfg->xmit_relay_host, ca, tls_last_error(ebuf,
		    sizeof(ebuf)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

static int
relay_run(const struct addrinfo *ai, SSL_CTX *ctx, const char *sender,
    const char *const *rcpt, unsigned int n_rcpt)
{
	struct smtp c;
	unsigned int i;
	int code;

	memset(&c, 0, sizeof(c));
	c.deadline_ms = mono_ms() + cfg->xmit_timeout_ms;
	linebuf_init(&c.lb, SMTP_LINE_MAX);
	for (c.fd = -1; ai != NULL; ai = ai->ai_next) {
		c.fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (c.fd == -1)
			continue;
		if (smtp_timeouts(&c) == 0 &&
		    connect(c.fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(c.fd);
		c.fd = -1;
	}
	if (c.fd == -1) {
		log_warn("submit: cannot connect to relay %s:%s",
		    cfg->xmit_relay_host, cfg->xmit_relay_port);
		return EX_TEMPFAIL;
	}
	if ((code = smtp_reply(&c)) != 220)
		return smtp_fail(&c, "the connection", code);
	c.starttls = c.eightbit = false;
	code = smtp_cmd(&c, "EHLO ", cfg->hostname, "");
	if (code >= 500 && ctx == NULL)
		code = smtp_cmd(&c, "HELO ", cfg->hostname, "");
	if (code != 250)
		return smtp_fail(&c, "EHLO", code);
	if (ctx != NULL) {
		if ((code = smtp_starttls(&c, ctx)) != 0)
			return code;
		/* RFC 3207 section 4.2: start over, as if connected now. */
		if ((code = smtp_cmd(&c, "EHLO ", cfg->hostname, "")) != 250)
			return smtp_fail(&c, "EHLO", code);
	}
	/* RFC 6152: an 8-bit body is declared where the relay allows. */
	if ((code = smtp_cmd(&c, "MAIL FROM:<", sender, c.eightbit &&
	    spool_is_8bit() ? "> BODY=8BITMIME" : ">")) != 250)
		return smtp_fail(&c, "the sender", code);
	/* All or nothing: one refused recipient fails the message before
	 * DATA, so that a retry sends no copy twice. */
	for (i = 0; i < n_rcpt; i++)
		if ((code = smtp_cmd(&c, "RCPT TO:<", rcpt[i], ">")) != 250 &&
		    code != 251)
			return smtp_fail(&c, "a recipient", code);
	if ((code = smtp_cmd(&c, "DATA", "", "")) != 354)
		return smtp_fail(&c, "DATA", code);
	if (smtp_data(&c) == -1) {
		log_warn("submit: sending the message to relay %s:%s",
		    cfg->xmit_relay_host, cfg->xmit_relay_port);
		return EX_TEMPFAIL;
	}
	if ((code = smtp_reply(&c)) != 250)
		return smtp_fail(&c, "the message", code);
	(void)smtp_cmd(&c, "QUIT", "", "");
	if (c.ssl != NULL) {
		(void)SSL_shutdown(c.ssl);
		SSL_free(c.ssl);
	}
	close(c.fd);
	return 0;
}

/* ---- the submission child ------------------------------------------ */

ATTR_NORETURN static void
child_main(int spool, const char *sender, const char *const *rcpt,
    unsigned int n_rcpt)
{
	static char *const env[] = {
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL
	};
	struct addrinfo hints, *ai = NULL;
	SSL_CTX *ctx = NULL;
	sigset_t all;
	char **argv;
	size_t i, n;
	int fd, gai;

	log_set_ident("posternd/submit");
	sigfillset(&all);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	/* Standard input is the spool, output goes nowhere, errors to
	 * posternd's log; nothing else stays open. */
	if (dup2(spool, 0) == -1 || lseek(0, 0, SEEK_SET) == -1 ||
	    (fd = open("/dev/null", O_WRONLY)) == -1 || dup2(fd, 1) == -1)
		_exit(EX_TEMPFAIL);
	if (close_range(3, ~0U, 0) == -1)
		for (fd = 3; fd < 65536; fd++)
			(void)close(fd);
	if (cfg->xmit_relay_host != NULL) {
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_ADDRCONFIG;
		gai = getaddrinfo(cfg->xmit_relay_host, cfg->xmit_relay_port,
		    &hints, &ai);
		if (gai != 0) {
			log_warnx("submit: relay %s: %s", cfg->xmit_relay_host,
			    gai_strerror(gai));
			_exit(EX_TEMPFAIL);
		}
		if (cfg->xmit_relay_starttls &&
		    (ctx = relay_tls_ctx()) == NULL)
			_exit(EX_TEMPFAIL);
		privsep_drop_submit(cfg, true);
		_exit(relay_run(ai, ctx, sender, rcpt, n_rcpt));
	}
	privsep_drop_submit(cfg, false);
	/* The configured words, then -f SENDER, --, the recipients. */
	n = cfg->n_xmit_argv + 3 + n_rcpt + 1;
	if ((argv = calloc(n, sizeof(*argv))) == NULL)
		_exit(EX_TEMPFAIL);
	n = 0;
	for (i = 0; i < cfg->n_xmit_argv; i++)
		argv[n++] = cfg->xmit_argv[i];
	argv[n++] = strdup("-f");
	argv[n++] = strdup(sender);
	argv[n++] = strdup("--");
	for (i = 0; i < n_rcpt; i++)
		argv[n++] = strdup(rcpt[i]);
	argv[n] = NULL;
	for (i = 0; i < n; i++)
		if (argv[i] == NULL)
			_exit(EX_TEMPFAIL);
	execve(argv[0], argv, env);
	log_warn("submit: cannot run %s", argv[0]);
	_exit(EX_TEMPFAIL);
}

static void
sub_free(struct sub *sb)
{
	struct sub **pp;

	for (pp = &subs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == sb) {
			*pp = sb->next;
			break;
		}
	if (sb->timer != NULL)
		event_free(sb->timer);
	n_subs--;
	free(sb);
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct sub *sb = arg;

	sb->timed_out = true;
	(void)kill(sb->pid, SIGKILL);
}

void
submit_request(struct ipc_chan *ch, const void *tag, struct ipc_in *in)
{
	const char *rcpt[HARD_XMIT_MAX_RECIPIENTS];
	const char *user, *sender, *msgid;
	char safe_id[XMIT_MAX_MSGID_LEN + 1];
	char safe_user[MAX_USERNAME_LEN + 1];
	struct timeval tv;
	unsigned int i, n;
	struct sub *sb;
	uint64_t size;
	int spool = in->fd;
	pid_t pid;

	in->fd = -1;
	user = ipc_get_str(in, MAX_USERNAME_LEN);
	sender = ipc_get_str(in, XMIT_MAX_ADDR_LEN);
	msgid = ipc_get_str(in, XMIT_MAX_MSGID_LEN);
	size = ipc_get_u64(in);
	n = ipc_get_u32(in);
	if (n == 0 || n > cfg->xmit_max_recipients ||
	    n > HARD_XMIT_MAX_RECIPIENTS)
		in->bad = true;
	for (i = 0; !in->bad && i < n; i++) {
		rcpt[i] = ipc_get_str(in, XMIT_MAX_ADDR_LEN);
		if (!addr_ok(rcpt[i]))
			in->bad = true;
	}
	if (!ipc_done(in) || spool < 0 || user[0] == '\0' ||
	    !addr_ok(sender) || !cfg->xmit) {
		/* A worker of a generation before a reload that turned
		 * xmit off may still ask. */
		if (!cfg->xmit)
			log_info("xmit refused: xmit = no since the reload");
		else
			log_warnx("master: malformed XTND XMIT request");
		if (spool >= 0)
			close(spool);
		answer(ch, in->id, XMIT_PERMFAIL);
		return;
	}
	log_safe(safe_id, sizeof(safe_id), msgid[0] != '\0' ? msgid : "-");
	log_safe(safe_user, sizeof(safe_user), user);
	if (!rate_take(user)) {
		log_info("xmit user=%s msgid=%s rcpts=%u size=%" PRIu64
		    " outcome=rate-limited", safe_user, safe_id, n, size);
		close(spool);
		answer(ch, in->id, XMIT_RATE_LIMITED);
		return;
	}
	if (n_subs >= XMIT_MAX_RUNNING ||
	    (sb = calloc(1, sizeof(*sb))) == NULL) {
		log_warnx("xmit user=%s msgid=%s rcpts=%u size=%" PRIu64
		    " outcome=tempfail reason=busy", safe_user, safe_id, n,
		    size);
		rate_give_back(user);
		close(spool);
		answer(ch, in->id, XMIT_TEMPFAIL);
		return;
	}
	pid = fork();
	if (pid == 0)
		child_main(spool, sender, rcpt, n);
	close(spool);
	if (pid == -1) {
		log_warn("xmit user=%s msgid=%s outcome=tempfail: fork",
		    safe_user, safe_id);
		free(sb);
		rate_give_back(user);
		answer(ch, in->id, XMIT_TEMPFAIL);
		return;
	}
	sb->pid = pid;
	sb->tag = tag;
	sb->chan = ch;
	sb->session = in->id;
	snprintf(sb->user, sizeof(sb->user), "%s", safe_user);
	snprintf(sb->msgid, sizeof(sb->msgid), "%s", safe_id);
	sb->n_rcpt = n;
	sb->size = size;
	sb->start_ms = mono_ms();
	sb->next = subs;
	subs = sb;
	n_subs++;
	tv.tv_sec = (time_t)(cfg->xmit_timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(cfg->xmit_timeout_ms % 1000) * 1000;
	if ((sb->timer = evtimer_new(sub_base, on_timeout, sb)) == NULL ||
	    evtimer_add(sb->timer, &tv) == -1)
		log_warnx("xmit: no timer for submission pid=%ld",
		    (long)pid);
}

bool
submit_reaped(pid_t pid, int status)
{
	enum xmit_status st;
	const char *outcome;
	struct sub *sb;
	char how[48];

	for (sb = subs; sb != NULL; sb = sb->next)
		if (sb->pid == pid)
			break;
	if (sb == NULL)
		return false;
	if (WIFEXITED(status)) {
		snprintf(how, sizeof(how), "exit=%d", WEXITSTATUS(status));
		st = WEXITSTATUS(status) == 0 ? XMIT_SENT :
		    WEXITSTATUS(status) == EX_TEMPFAIL ? XMIT_TEMPFAIL :
		    XMIT_PERMFAIL;
	} else {
		snprintf(how, sizeof(how), "signal=%d%s",
		    WIFSIGNALED(status) ? WTERMSIG(status) : 0,
		    sb->timed_out ? " reason=timeout" : "");
		st = XMIT_TEMPFAIL;
	}
	outcome = st == XMIT_SENT ? "sent" : st == XMIT_TEMPFAIL ?
	    "tempfail" : "permfail";
	log_info("xmit user=%s msgid=%s rcpts=%u size=%" PRIu64 " outcome=%s"
	    " %s duration=%" PRIu64 "ms", sb->user, sb->msgid, sb->n_rcpt,
	    sb->size, outcome, how, mono_ms() - sb->start_ms);
	if (sb->tag != NULL)
		answer(sb->chan, sb->session, st);
	sub_free(sb);
	return true;
}

void
submit_worker_gone(const void *tag)
{
	struct sub *sb;

	for (sb = subs; sb != NULL; sb = sb->next)
		if (sb->tag == tag) {
			sb->tag = NULL;
			sb->chan = NULL;
		}
}

void
submit_shutdown(void)
{
	struct sub *sb;

	for (sb = subs; sb != NULL; sb = sb->next)
		(void)kill(sb->pid, SIGTERM);
}
