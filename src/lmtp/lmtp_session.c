/*
 * lmtp_session.c: the LMTP state machine (RFC 2033, with the SMTP
 * commands of RFC 5321 it inherits and the extensions PIPELINING (RFC
 * 2920), ENHANCEDSTATUSCODES (RFC 2034, codes of RFC 3463), 8BITMIME
 * (RFC 6152) and SIZE (RFC 1870)).
 *
 * Owns: the envelope (sender, recipients) and the spool buffer.  Trusts
 * nothing of the lines it is fed: every command is parsed strictly,
 * addresses are bounded by LMTP_MAX_ADDR and may hold no control
 * character, numbers go through strnum.  It never touches a socket or a
 * file; see lmtp_session.h for the operations it calls.
 *
 * One command is handled per line; replies go out in command order
 * (PIPELINING), so a RCPT whose lookup is in progress holds the
 * commands after it until it is answered.  After DATA, one reply per
 * accepted recipient, in RCPT order (RFC 2033 section 4.2).
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/strnum.h"
#include "lmtp_session.h"

struct lmtp_session {
	const struct lmtp_params *p;
	const struct lmtp_ops	*ops;
	void			*ctx;
	enum lmtp_state		 state;
	bool			 waiting;	/* a lookup is out */
	unsigned int		 bad_commands;

	/* The transaction. */
	char			 sender[LMTP_MAX_ADDR + 1];
	uint64_t		 size_declared;	/* SIZE=, or 0 */
	struct lmtp_rcpt	*rcpts;
	size_t			 n_rcpts;
	char			*pending_addr;	/* RCPT being looked up */

	/* DATA. */
	uint64_t		 size;		/* octets spooled (or not) */
	bool			 too_big;
	bool			 long_line;
	bool			 has_nul;
	bool			 spool_failed;
	size_t			 chunk_len;
	char			 chunk[LMTP_SPOOL_CHUNK];
};

static void reply(struct lmtp_session *, const char *, ...) ATTR_PRINTF(2, 3);

/* Queues one reply line ("CODE text"); CRLF is added. */
static void
reply(struct lmtp_session *s, const char *fmt, ...)
{
	char line[LMTP_MAX_ADDR + 256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)(sizeof(line) - 3);
	line[n++] = '\r';
	line[n++] = '\n';
	s->ops->reply(s->ctx, line, (size_t)n);
}

static void
txn_reset(struct lmtp_session *s)
{
	size_t i;

	if (s->state == LMTP_S_DATA && s->ops->spool_end != NULL)
		s->ops->spool_end(s->ctx);
	for (i = 0; i < s->n_rcpts; i++)
		free(s->rcpts[i].addr);
	free(s->rcpts);
	s->rcpts = NULL;
	s->n_rcpts = 0;
	free(s->pending_addr);
	s->pending_addr = NULL;
	s->sender[0] = '\0';
	s->size_declared = 0;
	s->size = 0;
	s->too_big = s->long_line = s->has_nul = s->spool_failed = false;
	s->chunk_len = 0;
	if (s->state == LMTP_S_MAIL || s->state == LMTP_S_DATA)
		s->state = LMTP_S_READY;
}

struct lmtp_session *
lmtp_session_new(const struct lmtp_params *p, const struct lmtp_ops *ops,
    void *ctx)
{
	struct lmtp_session *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->p = p;
	s->ops = ops;
	s->ctx = ctx;
	s->state = LMTP_S_START;
	reply(s, "220 %s LMTP Postern ready", p->hostname);
	return s;
}

void
lmtp_session_free(struct lmtp_session **sp)
{
	struct lmtp_session *s = *sp;

	if (s == NULL)
		return;
	txn_reset(s);
	free(s);
	*sp = NULL;
}

bool
lmtp_session_waiting(const struct lmtp_session *s)
{
	return s->waiting;
}

bool
lmtp_session_done(const struct lmtp_session *s)
{
	return s->state == LMTP_S_QUIT;
}

bool
lmtp_session_in_data(const struct lmtp_session *s)
{
	return s->state == LMTP_S_DATA;
}

const char *
lmtp_session_sender(const struct lmtp_session *s)
{
	return s->sender;
}

uint64_t
lmtp_session_size(const struct lmtp_session *s)
{
	return s->size;
}

void
lmtp_session_abort(struct lmtp_session *s, const char *why)
{
	if (s->state == LMTP_S_QUIT)
		return;
	reply(s, "421 4.4.2 %s %s", s->p->hostname, why);
	txn_reset(s);
	s->state = LMTP_S_QUIT;
}

/* A syntax or sequence error; too many of them end the session. */
static void
bad(struct lmtp_session *s, const char *text)
{
	reply(s, "%s", text);
	if (++s->bad_commands >= s->p->max_bad_commands)
		lmtp_session_abort(s, "Too many errors, closing connection");
}

/* ---- parsing -------------------------------------------------------- */

/* True if s[0..n) starts with the keyword kw, any case. */
static bool
keyword(const char *s, size_t n, const char *kw)
{
	size_t k = strlen(kw);

	return n >= k && strncasecmp(s, kw, k) == 0;
}

/*
 * The path of "MAIL FROM:<...>" or "RCPT TO:<...>": after the prefix
 * (matched by the caller), optional blanks, '<', the address, '>'.  A
 * source route ("@a,@b:") is dropped (RFC 5321 section 4.1.2).  The
 * address goes into out; *rest_r points after the '>'.  NULL-free,
 * control-free, at most LMTP_MAX_ADDR octets.  0, or -1 with *why_r.
 */
static int
parse_path(const char *p, char *out, size_t outsize, const char **rest_r,
    const char **why_r)
{
	const char *start, *end, *q;
	size_t len;

	while (*p == ' ')
		p++;
	if (*p != '<') {
		*why_r = "501 5.5.4 Syntax: the address must be in < >";
		return -1;
	}
	start = p + 1;
	/* A quoted local part may hold '>': skip quoted strings. */
	for (q = start; *q != '\0' && *q != '>'; q++) {
		if (*q == '"') {
			for (q++; *q != '\0' && *q != '"'; q++)
				if (*q == '\\' && q[1] != '\0')
					q++;
			if (*q == '\0')
				break;
		}
	}
	if (*q != '>') {
		*why_r = "501 5.5.4 Syntax: no closing '>'";
		return -1;
	}
	end = q;
	if (*start == '@') {
		const char *colon = memchr(start, ':', (size_t)(end - start));

		if (colon == NULL) {
			*why_r = "501 5.1.3 Bad source route";
			return -1;
		}
		start = colon + 1;
	}
	len = (size_t)(end - start);
	if (len > LMTP_MAX_ADDR || len >= outsize) {
		*why_r = "501 5.1.3 Address too long";
		return -1;
	}
	for (q = start; q < end; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f) {
			*why_r = "501 5.1.3 Control character in address";
			return -1;
		}
	memcpy(out, start, len);
	out[len] = '\0';
	*rest_r = end + 1;
	return 0;
}

/* The next "KEY=VALUE" parameter of MAIL or RCPT into key and val. */
static bool
next_param(const char **pp, char *key, size_t ksize, char *val,
    size_t vsize, bool *ok_r)
{
	const char *p = *pp, *tok, *eq;
	size_t n, klen;

	*ok_r = true;
	while (*p == ' ')
		p++;
	if (*p == '\0')
		return false;
	tok = p;
	while (*p != '\0' && *p != ' ')
		p++;
	n = (size_t)(p - tok);
	*pp = p;
	eq = memchr(tok, '=', n);
	klen = eq != NULL ? (size_t)(eq - tok) : n;
	if (klen == 0 || klen >= ksize || (eq != NULL &&
	    n - klen - 1 >= vsize)) {
		*ok_r = false;
		return true;
	}
	memcpy(key, tok, klen);
	key[klen] = '\0';
	if (eq != NULL) {
		memcpy(val, eq + 1, n - klen - 1);
		val[n - klen - 1] = '\0';
	} else
		val[0] = '\0';
	return true;
}

size_t
lmtp_candidates(const char *addr, char delimiter,
    char buf[LMTP_MAX_CANDIDATES][MAX_USERNAME_LEN + 1])
{
	char local[LMTP_MAX_ADDR + 1], full[LMTP_MAX_ADDR + 1];
	const char *at = strrchr(addr, '@');
	size_t llen, n = 0, i, k;
	const char *cand[LMTP_MAX_CANDIDATES];
	char lower[LMTP_MAX_ADDR + 1];

	llen = at != NULL ? (size_t)(at - addr) : strlen(addr);
	if (llen > LMTP_MAX_ADDR)
		return 0;
	memcpy(local, addr, llen);
	local[llen] = '\0';
	if (delimiter != '\0') {
		char *d = strchr(local, delimiter);

		/* "+tag" alone is a name, not a detail. */
		if (d != NULL && d != local)
			*d = '\0';
	}
	full[0] = '\0';
	if (at != NULL && strlen(local) + strlen(at) <= LMTP_MAX_ADDR) {
		size_t ll = strlen(local);

		memcpy(full, local, ll);
		for (i = 0; at[i] != '\0'; i++)
			full[ll + i] = (char)tolower((unsigned char)at[i]);
		full[ll + i] = '\0';
	}
	for (i = 0; local[i] != '\0'; i++)
		lower[i] = (char)tolower((unsigned char)local[i]);
	lower[i] = '\0';
	k = 0;
	if (full[0] != '\0')
		cand[k++] = full;
	cand[k++] = local;
	cand[k++] = lower;
	for (i = 0; i < k; i++) {
		size_t j, len = strlen(cand[i]);
		bool dup = false;

		if (len == 0 || len > MAX_USERNAME_LEN)
			continue;
		for (j = 0; j < n; j++)
			if (strcmp(buf[j], cand[i]) == 0)
				dup = true;
		if (dup)
			continue;
		memcpy(buf[n], cand[i], len + 1);
		n++;
	}
	return n;
}

/* ---- commands ------------------------------------------------------- */

static void
cmd_lhlo(struct lmtp_session *s, const char *arg)
{
	while (*arg == ' ')
		arg++;
	if (*arg == '\0') {
		bad(s, "501 5.5.4 Syntax: LHLO hostname");
		return;
	}
	txn_reset(s);
	s->state = LMTP_S_READY;
	reply(s, "250-%s", s->p->hostname);
	reply(s, "250-PIPELINING");
	reply(s, "250-ENHANCEDSTATUSCODES");
	reply(s, "250-8BITMIME");
	reply(s, "250 SIZE %" PRIu64, s->p->max_size);
}

static void
cmd_mail(struct lmtp_session *s, const char *arg)
{
	char key[16], val[32], sender[LMTP_MAX_ADDR + 1];
	const char *rest, *why;
	uint64_t size = 0;
	bool ok;

	if (s->state == LMTP_S_START) {
		bad(s, "503 5.5.1 Send LHLO first");
		return;
	}
	if (s->state != LMTP_S_READY) {
		bad(s, "503 5.5.1 Nested MAIL command");
		return;
	}
	if (parse_path(arg, sender, sizeof(sender), &rest, &why) == -1) {
		bad(s, why);
		return;
	}
	if (*rest != '\0' && *rest != ' ') {
		bad(s, "501 5.5.4 Syntax: MAIL FROM:<address> [SIZE=n]"
		    " [BODY=7BIT|8BITMIME]");
		return;
	}
	while (next_param(&rest, key, sizeof(key), val, sizeof(val), &ok)) {
		if (!ok) {
			bad(s, "555 5.5.4 Malformed parameter");
			return;
		}
		if (strcasecmp(key, "SIZE") == 0) {
			if (parse_u64(val, UINT64_MAX, &size) != PARSE_OK) {
				bad(s, "501 5.5.4 SIZE wants a number");
				return;
			}
		} else if (strcasecmp(key, "BODY") == 0) {
			if (strcasecmp(val, "7BIT") != 0 &&
			    strcasecmp(val, "8BITMIME") != 0) {
				bad(s, "501 5.5.4 BODY wants 7BIT or"
				    " 8BITMIME");
				return;
			}
		} else {
			bad(s, "555 5.5.4 Unsupported parameter");
			return;
		}
	}
	if (size > s->p->max_size) {
		reply(s, "552 5.3.4 Message size exceeds the limit of %"
		    PRIu64 " octets", s->p->max_size);
		return;
	}
	memcpy(s->sender, sender, strlen(sender) + 1);
	s->size_declared = size;
	s->state = LMTP_S_MAIL;
	reply(s, "250 2.1.0 Sender ok");
}

static void
cmd_rcpt(struct lmtp_session *s, const char *arg)
{
	char names[LMTP_MAX_CANDIDATES][MAX_USERNAME_LEN + 1];
	const char *ptrs[LMTP_MAX_CANDIDATES];
	char addr[LMTP_MAX_ADDR + 1];
	const char *rest, *why;
	size_t n, i;

	if (s->state != LMTP_S_MAIL) {
		bad(s, "503 5.5.1 Send MAIL first");
		return;
	}
	if (parse_path(arg, addr, sizeof(addr), &rest, &why) == -1) {
		bad(s, why);
		return;
	}
	while (*rest == ' ')
		rest++;
	if (*rest != '\0') {
		bad(s, "555 5.5.4 RCPT takes no parameters");
		return;
	}
	if (addr[0] == '\0') {
		bad(s, "501 5.1.3 Empty recipient address");
		return;
	}
	if (s->n_rcpts >= s->p->max_recipients) {
		reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	n = lmtp_candidates(addr, s->p->delimiter, names);
	if (n == 0) {
		reply(s, "550 5.1.1 <%s> User unknown", addr);
		return;
	}
	if ((s->pending_addr = strdup(addr)) == NULL) {
		reply(s, "451 4.3.0 Out of memory");
		return;
	}
	for (i = 0; i < n; i++)
		ptrs[i] = names[i];
	s->waiting = true;
	if (s->ops->lookup(s->ctx, ptrs, n) == -1 && s->waiting)
		lmtp_rcpt_answer(s, LMTP_USER_TEMPFAIL, "", 0, 0);
}

void
lmtp_rcpt_answer(struct lmtp_session *s, enum lmtp_user st,
    const char *user, uint64_t quota_bytes, uint64_t quota_messages)
{
	struct lmtp_rcpt *r, *nr;
	char *addr = s->pending_addr;

	if (!s->waiting || addr == NULL)
		return;
	s->waiting = false;
	s->pending_addr = NULL;
	switch (st) {
	case LMTP_USER_OK:
		break;
	case LMTP_USER_UNKNOWN:
		reply(s, "550 5.1.1 <%s> User unknown", addr);
		free(addr);
		return;
	case LMTP_USER_DISABLED:
		reply(s, "550 5.2.1 <%s> Mailbox disabled", addr);
		free(addr);
		return;
	case LMTP_USER_TEMPFAIL:
	default:
		reply(s, "451 4.3.0 <%s> Temporary failure looking the"
		    " user up", addr);
		free(addr);
		return;
	}
	if (strlen(user) == 0 || strlen(user) > MAX_USERNAME_LEN) {
		reply(s, "451 4.3.0 <%s> Bad answer from the user lookup",
		    addr);
		free(addr);
		return;
	}
	nr = realloc(s->rcpts, (s->n_rcpts + 1) * sizeof(*nr));
	if (nr == NULL) {
		reply(s, "451 4.3.0 Out of memory");
		free(addr);
		return;
	}
	s->rcpts = nr;
	r = &s->rcpts[s->n_rcpts];
	memset(r, 0, sizeof(*r));
	r->addr = addr;
	memcpy(r->user, user, strlen(user) + 1);
	r->quota_bytes = quota_bytes > 0 ? quota_bytes :
	    s->p->site_quota_bytes;
	r->quota_messages = quota_messages > 0 ? quota_messages :
	    s->p->site_quota_messages;
	/* With SIZE= the quota can be judged now (RFC 1870 section 6.2). */
	if (s->ops->over_quota != NULL && s->size_declared > 0 &&
	    (r->quota_bytes > 0 || r->quota_messages > 0) &&
	    s->ops->over_quota(s->ctx, r, s->size_declared)) {
		if (s->p->quota_temporary)
			reply(s, "452 4.2.2 <%s> Mailbox over quota", addr);
		else
			reply(s, "552 5.2.2 <%s> Mailbox over quota", addr);
		free(addr);
		return;
	}
	s->n_rcpts++;
	reply(s, "250 2.1.5 <%s> Recipient ok", addr);
}

static void
cmd_data(struct lmtp_session *s, const char *arg)
{
	if (*arg != '\0') {
		bad(s, "501 5.5.4 Syntax: DATA takes no argument");
		return;
	}
	if (s->state != LMTP_S_MAIL) {
		bad(s, "503 5.5.1 Send MAIL first");
		return;
	}
	if (s->n_rcpts == 0) {
		/* RFC 2033 section 4.2. */
		bad(s, "503 5.5.1 No valid recipients");
		return;
	}
	s->size = 0;
	s->chunk_len = 0;
	s->too_big = s->long_line = s->has_nul = false;
	s->spool_failed = s->ops->spool_begin(s->ctx) == -1;
	s->state = LMTP_S_DATA;
	reply(s, "354 Start mail input; end with <CRLF>.<CRLF>");
}

/* ---- DATA ----------------------------------------------------------- */

static void
spool_flush(struct lmtp_session *s)
{
	if (s->chunk_len > 0 && !s->spool_failed &&
	    s->ops->spool_write(s->ctx, s->chunk, s->chunk_len) == -1)
		s->spool_failed = true;
	s->chunk_len = 0;
}

static void
spool_add(struct lmtp_session *s, const char *data, size_t len)
{
	while (len > 0) {
		size_t room = sizeof(s->chunk) - s->chunk_len;
		size_t n = len < room ? len : room;

		memcpy(s->chunk + s->chunk_len, data, n);
		s->chunk_len += n;
		data += n;
		len -= n;
		if (s->chunk_len == sizeof(s->chunk))
			spool_flush(s);
	}
}

/* The end of the message: one reply per recipient, in RCPT order. */
static void
data_end(struct lmtp_session *s)
{
	size_t i;

	spool_flush(s);
	for (i = 0; i < s->n_rcpts; i++) {
		const struct lmtp_rcpt *r = &s->rcpts[i];

		if (s->spool_failed) {
			reply(s, "451 4.3.0 <%s> Temporary failure storing"
			    " the message", r->addr);
			continue;
		}
		if (s->too_big) {
			reply(s, "552 5.3.4 <%s> Message size exceeds the"
			    " limit of %" PRIu64 " octets", r->addr,
			    s->p->max_size);
			continue;
		}
		if (s->long_line) {
			reply(s, "554 5.6.0 <%s> Message has a line longer"
			    " than %u octets", r->addr,
			    s->p->max_line_length);
			continue;
		}
		if (s->has_nul) {
			reply(s, "554 5.6.0 <%s> Message holds a NUL octet",
			    r->addr);
			continue;
		}
		switch (s->ops->deliver(s->ctx, s, r)) {
		case LMTP_R_OK:
			reply(s, "250 2.0.0 <%s> Delivered", r->addr);
			break;
		case LMTP_R_TOO_BIG:
			reply(s, "552 5.3.4 <%s> Message too big for the"
			    " mailbox", r->addr);
			break;
		case LMTP_R_QUOTA:
			if (s->p->quota_temporary)
				reply(s, "452 4.2.2 <%s> Mailbox over quota",
				    r->addr);
			else
				reply(s, "552 5.2.2 <%s> Mailbox over quota",
				    r->addr);
			break;
		case LMTP_R_TEMP:
		default:
			reply(s, "451 4.3.0 <%s> Temporary failure storing"
			    " the message", r->addr);
			break;
		}
	}
	txn_reset(s);
}

static void
data_line(struct lmtp_session *s, enum line_rc rc, const char *line,
    size_t len)
{
	if (rc == LINE_TOO_LONG) {
		s->long_line = true;
		return;
	}
	if (rc == LINE_HAS_NUL) {
		s->has_nul = true;
		return;
	}
	if (len == 1 && line[0] == '.') {
		data_end(s);
		return;
	}
	/* RFC 5321 section 4.5.2: drop the first of leading dots. */
	if (len > 0 && line[0] == '.') {
		line++;
		len--;
	}
	if (s->too_big || s->long_line || s->has_nul)
		return;
	if (len + 2 > s->p->max_size - s->size) {
		s->too_big = true;
		return;
	}
	s->size += len + 2;
	spool_add(s, line, len);
	spool_add(s, "\r\n", 2);
}

/* ---- dispatch ------------------------------------------------------- */

void
lmtp_session_line(struct lmtp_session *s, enum line_rc rc, const char *line,
    size_t len)
{
	char cmd[LMTP_CMD_LINE_MAX + 1];

	if (s->state == LMTP_S_QUIT || s->waiting)
		return;
	if (s->state == LMTP_S_DATA) {
		data_line(s, rc, line, len);
		return;
	}
	if (rc == LINE_TOO_LONG || (rc == LINE_OK &&
	    len > LMTP_CMD_LINE_MAX)) {
		bad(s, "500 5.5.2 Line too long");
		return;
	}
	if (rc != LINE_OK || memchr(line, '\0', len) != NULL) {
		bad(s, "500 5.5.2 NUL octet in command");
		return;
	}
	/* The parsers below read a C string. */
	memcpy(cmd, line, len);
	cmd[len] = '\0';
	line = cmd;
	if (keyword(line, len, "LHLO") && (len == 4 || line[4] == ' '))
		cmd_lhlo(s, line + 4);
	else if (keyword(line, len, "MAIL FROM:"))
		cmd_mail(s, line + 10);
	else if (keyword(line, len, "RCPT TO:"))
		cmd_rcpt(s, line + 8);
	else if (keyword(line, len, "DATA") && (len == 4 || line[4] == ' '))
		cmd_data(s, line + 4);
	else if (keyword(line, len, "RSET") && len == 4) {
		txn_reset(s);
		reply(s, "250 2.0.0 Ok");
	} else if (keyword(line, len, "NOOP") && (len == 4 ||
	    line[4] == ' '))
		reply(s, "250 2.0.0 Ok");
	else if (keyword(line, len, "QUIT") && len == 4) {
		reply(s, "221 2.0.0 %s closing connection",
		    s->p->hostname);
		txn_reset(s);
		s->state = LMTP_S_QUIT;
	} else if (keyword(line, len, "VRFY") && (len == 4 ||
	    line[4] == ' '))
		reply(s, "252 2.5.2 Cannot VRFY user, but will accept the"
		    " message and attempt delivery");
	else if ((keyword(line, len, "HELO") || keyword(line, len, "EHLO")) &&
	    (len == 4 || line[4] == ' '))
		bad(s, "500 5.5.1 This is LMTP: use LHLO");
	else
		bad(s, "500 5.5.1 Command unrecognized");
}
