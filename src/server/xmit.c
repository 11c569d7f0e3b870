/*
 * xmit.c: XTND XMIT, qpopper's way of sending mail through POP3, on the
 * pop3 side.  After "+OK Start sending message." the client sends a
 * byte-stuffed message ending with a lone "."; it is read through the
 * session's bounded line reader, unstuffed, spooled with LF line ends to
 * an unnamed file (without its Bcc fields), and handed with its envelope
 * to the master, which runs the submission (submit.c) and answers.
 *
 * The message is hostile input: the header parser bounds everything,
 * and a message refused for any reason is still read to its end, so the
 * session stays in step with the client.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/mailhdr.h"
#include "lib/net.h"
#include "session.h"

/* Body octets gathered before a write to the spool. */
#define XMIT_WRITE_CHUNK	(32 * 1024)

/* The line buffer of session.c holds a whole message line. */
_Static_assert(XMIT_MAX_LINE_LENGTH <= HARD_MAX_SASL_LINE_LENGTH,
    "session.c's line buffer cannot hold an XTND XMIT line");
_Static_assert(HARD_XMIT_MAX_RECIPIENTS * (XMIT_MAX_ADDR_LEN + 5) +
    XMIT_MAX_ADDR_LEN + XMIT_MAX_MSGID_LEN + MAX_USERNAME_LEN + 256 <
    IPC_MAX_MSG, "an XTND XMIT envelope does not fit in one IPC message");

struct xmit {
	int		 fd;		/* the spool */
	bool		 in_body;
	struct buf	 hdr;		/* the header, until its end */
	struct buf	 wbuf;		/* body octets not yet written */
	uint64_t	 size;		/* as sent: CRLF, unstuffed */
	char		 err[200];	/* the refusal, "" while none */
	const char	*reason;	/* the refusal, a word for the log */
	struct mailhdr	 mh;
};

static bool
tls_ok(const struct session *s)
{
	switch (cfg->xmit_require_tls) {
	case XMIT_TLS_NEVER:
		return true;
	case XMIT_TLS_ALWAYS:
		return s->tls;
	case XMIT_TLS_UNLESS_LOOPBACK:
	default:
		return s->tls ||
		    addr_is_loopback((const struct sockaddr *)&s->peer);
	}
}

bool
xmit_offered(const struct session *s)
{
	if (!cfg->xmit)
		return false;
	/* Before login an STLS still to come may make it usable: listed
	 * once it is. */
	return tls_ok(s);
}

void
xmit_free(struct session *s)
{
	struct xmit *x = s->xmit;

	if (x == NULL)
		return;
	if (x->fd >= 0)
		close(x->fd);
	buf_clear(&x->hdr);
	buf_clear(&x->wbuf);
	mailhdr_free(&x->mh);
	free(x);
	s->xmit = NULL;
}

/* An unnamed file beneath mail_root (the only place a pop3 worker may
 * write), or, where the file system has no O_TMPFILE, one in memory. */
static int
spool_open(void)
{
	int fd = open(cfg->mail_root, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd == -1 && (errno == EOPNOTSUPP || errno == EISDIR ||
	    errno == EINVAL))
		fd = memfd_create("postern-xmit", MFD_CLOEXEC);
	return fd;
}

void
xmit_command(struct session *s, char **argv, int argc)
{
	struct xmit *x;

	if (!cfg->xmit || argc != 1 || strcasecmp(argv[0], "XMIT") != 0) {
		commands_bad(s, "-ERR Unknown command.");
		return;
	}
	if (s->state != STATE_TRANSACTION) {
		commands_bad(s, "-ERR Command not valid in this state.");
		return;
	}
	if (!tls_ok(s)) {
		session_reply(s, "-ERR XTND XMIT needs TLS on this"
		    " connection.");
		return;
	}
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		session_reply(s, "-ERR [SYS/TEMP] Out of memory.");
		return;
	}
	buf_init(&x->hdr, XMIT_MAX_HEADER_BYTES);
	buf_init(&x->wbuf, XMIT_WRITE_CHUNK + XMIT_MAX_LINE_LENGTH + 1);
	mailhdr_init(&x->mh, cfg->xmit_max_recipients);
	if ((x->fd = spool_open()) == -1) {
		log_warn("pop3 session=%016" PRIx64 " user=%s xmit: cannot"
		    " create a spool file", s->conn_id, s->user);
		s->xmit = x;
		xmit_free(s);
		session_reply(s, "-ERR [SYS/TEMP] Cannot accept a message now,"
		    " try later.");
		return;
	}
	s->xmit = x;
	session_reply(s, "+OK Start sending message.");
}

/* The first refusal counts; the rest of the message is read and
 * dropped. */
static void
refuse(struct xmit *x, const char *reason, const char *fmt, ...)
	ATTR_PRINTF(3, 4);

static void
refuse(struct xmit *x, const char *reason, const char *fmt, ...)
{
	va_list ap;

	if (x->err[0] != '\0')
		return;
	x->reason = reason;
	va_start(ap, fmt);
	vsnprintf(x->err, sizeof(x->err), fmt, ap);
	va_end(ap);
	buf_clear(&x->hdr);
	buf_clear(&x->wbuf);
}

static void
flush(struct xmit *x)
{
	if (x->err[0] == '\0' && x->wbuf.len > 0 &&
	    write_full(x->fd, x->wbuf.data, x->wbuf.len) == -1) {
		log_warn("xmit: writing the spool file");
		refuse(x, "spool-error", "[SYS/TEMP] Cannot spool the message,"
		    " try later.");
	}
	buf_reset(&x->wbuf);
}

/* The header is complete: parse it, write it without Bcc. */
static void
header_done(struct xmit *x)
{
	if (x->err[0] != '\0')
		return;
	if (mailhdr_parse(&x->mh, x->hdr.data != NULL ? x->hdr.data : "",
	    x->hdr.len) == -1) {
		refuse(x, "bad-header", "%s", x->mh.err);
		return;
	}
	buf_clear(&x->hdr);
	if (buf_add(&x->wbuf, x->mh.out.data != NULL ? x->mh.out.data : "",
	    x->mh.out.len) == -1)
		refuse(x, "no-memory", "[SYS/TEMP] Out of memory.");
}

static void
log_refusal(struct session *s, const struct xmit *x)
{
	char id[XMIT_MAX_MSGID_LEN + 1];

	log_info("pop3 session=%016" PRIx64 " xmit refused user=%s"
	    " msgid=%s rcpts=%u size=%" PRIu64 " reason=%s", s->conn_id,
	    s->user, x->mh.msgid[0] != '\0' ? log_safe(id, sizeof(id),
	    x->mh.msgid) : "-", x->mh.n_rcpt, x->size, x->reason);
}

/* The checks on the envelope; the sender into sender_r. */
static void
check_envelope(struct session *s, struct xmit *x, const char **sender_r)
{
	struct mailhdr *mh = &x->mh;
	size_t pos = 0;
	const char *a;

	*sender_r = NULL;
	if (x->err[0] != '\0')
		return;
	if (mh->n_rcpt == 0) {
		refuse(x, "no-recipients", "No recipients: give them in To, Cc"
		    " or Bcc.");
		return;
	}
	if (mh->n_from == 0) {
		refuse(x, "no-from", "The message has no From address.");
		return;
	}
	if (cfg->xmit_check_from) {
		while ((a = mailhdr_next(&mh->froms, &pos)) != NULL)
			if (!mailhdr_addr_owned(a, s->user, cfg->xmit_domains,
			    cfg->n_xmit_domains))
				break;
		if (a != NULL || (mh->sender[0] != '\0' &&
		    !mailhdr_addr_owned(mh->sender, s->user,
		    cfg->xmit_domains, cfg->n_xmit_domains))) {
			refuse(x, "foreign-from", "The From address is not"
			    " one of yours.");
			return;
		}
	}
	pos = 0;
	*sender_r = mh->sender[0] != '\0' ? mh->sender :
	    mailhdr_next(&mh->froms, &pos);
}

/* The lone ".": refuse, or hand the message to the master. */
static void
message_end(struct session *s)
{
	struct xmit *x = s->xmit;
	struct ipc_msg *m;
	const char *sender, *a;
	size_t pos = 0;

	if (!x->in_body)
		header_done(x);
	flush(x);
	check_envelope(s, x, &sender);
	if (x->err[0] == '\0' && lseek(x->fd, 0, SEEK_SET) == -1)
		refuse(x, "spool-error", "[SYS/TEMP] Cannot spool the message,"
		    " try later.");
	if (x->err[0] != '\0') {
		log_refusal(s, x);
		session_reply(s, "-ERR %s", x->err);
		xmit_free(s);
		return;
	}
	if ((m = malloc(sizeof(*m))) == NULL) {
		session_reply(s, "-ERR [SYS/TEMP] Out of memory.");
		xmit_free(s);
		return;
	}
	ipc_msg_init(m, MSG_XMIT_SUBMIT, s->id);
	ipc_put_str(m, s->user);
	ipc_put_str(m, sender);
	ipc_put_str(m, x->mh.msgid);
	ipc_put_u64(m, x->size);
	ipc_put_u32(m, x->mh.n_rcpt);
	while ((a = mailhdr_next(&x->mh.rcpts, &pos)) != NULL)
		ipc_put_str(m, a);
	m->fd = x->fd;
	x->fd = -1;		/* the channel sends and closes it */
	if (m->bad || pop3_xmit_submit(m) == -1) {
		if (m->fd >= 0)
			close(m->fd);
		log_warnx("pop3 session=%016" PRIx64 " user=%s xmit: cannot"
		    " reach the master", s->conn_id, s->user);
		session_reply(s, "-ERR [SYS/TEMP] Cannot send mail now, try"
		    " later.");
	} else
		s->xmit_waiting = true;
	free(m);
	xmit_free(s);
}

void
xmit_line(struct session *s, char *line, size_t len, enum line_rc rc)
{
	struct xmit *x = s->xmit;
	const char *p = line;

	if (rc == LINE_TOO_LONG) {
		refuse(x, "line-too-long", "A line of the message is longer"
		    " than %d octets.", XMIT_MAX_LINE_LENGTH);
		return;
	}
	if (rc == LINE_HAS_NUL) {
		refuse(x, "nul", "The message contains a NUL octet.");
		return;
	}
	if (len == 1 && line[0] == '.') {
		message_end(s);
		return;
	}
	/* RFC 1939 section 3: a line that starts with "." was stuffed. */
	if (len > 0 && line[0] == '.') {
		p++;
		len--;
	}
	x->size += len + 2;
	if (x->size > cfg->xmit_max_size)
		refuse(x, "too-large", "Message too large (at most %" PRIu64
		    " octets).", cfg->xmit_max_size);
	if (x->err[0] != '\0')
		return;
	if (!x->in_body) {
		if (len == 0) {
			x->in_body = true;
			header_done(x);
			if (x->err[0] == '\0' && buf_addc(&x->wbuf, '\n') == -1)
				refuse(x, "no-memory", "[SYS/TEMP] Out of"
				    " memory.");
			return;
		}
		if (buf_add(&x->hdr, p, len) == -1 ||
		    buf_addc(&x->hdr, '\n') == -1)
			refuse(x, "header-too-large", "The header is larger"
			    " than %d octets.", XMIT_MAX_HEADER_BYTES);
		return;
	}
	if (buf_add(&x->wbuf, p, len) == -1 || buf_addc(&x->wbuf, '\n') == -1) {
		refuse(x, "no-memory", "[SYS/TEMP] Out of memory.");
		return;
	}
	if (x->wbuf.len >= XMIT_WRITE_CHUNK)
		flush(x);
}

void
xmit_result(struct session *s, enum xmit_status st)
{
	s->xmit_waiting = false;
	switch (st) {
	case XMIT_SENT:
		session_reply(s, "+OK Message sent successfully");
		break;
	case XMIT_RATE_LIMITED:
		session_reply(s, "-ERR [SYS/TEMP] Too many messages sent; at"
		    " most %u an hour.", cfg->xmit_max_per_hour);
		break;
	case XMIT_PERMFAIL:
		session_reply(s, "-ERR [SYS/PERM] The mail system refused the"
		    " message.");
		break;
	case XMIT_TEMPFAIL:
	default:
		session_reply(s, "-ERR [SYS/TEMP] The message was not sent,"
		    " try later.");
		break;
	}
	session_input(s);
}

void
xmit_abandon(struct session *s)
{
	if (!s->xmit_waiting)
		return;
	s->xmit_waiting = false;
	session_reply(s, "-ERR [SYS/TEMP] The message may not have been"
	    " sent; check before sending it again.");
	session_input(s);
}
