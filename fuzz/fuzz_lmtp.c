/*
 * fuzz_lmtp.c: the LMTP session state machine (src/lmtp/lmtp_session.c)
 * fed arbitrary client bytes through the bounded line reader, as the
 * lmtp process feeds it, with in-memory operations: recipients exist or
 * not by their first letter, lookups are answered at once or before the
 * next line, deliveries succeed or fail by the recipient.  Checks that
 * every reply is one well-formed line (three digits, a space or '-',
 * CRLF), that a lookup is never started while one is out, that no line
 * is fed while the session waits, and that the spool holds exactly the
 * octets the session counted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/linebuf.h"
#include "lmtp/lmtp_session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fctx {
	struct lmtp_session	*s;
	bool			 deferred;	/* a lookup waits for us */
	bool			 defer_next;
	enum lmtp_user		 answer;
	char			 user[MAX_USERNAME_LEN + 1];
	uint64_t		 spooled;
	unsigned int		 replies;
};

static void
f_reply(void *ctx, const char *text, size_t len)
{
	struct fctx *f = ctx;

	if (len < 6 || text[len - 2] != '\r' || text[len - 1] != '\n' ||
	    text[0] < '2' || text[0] > '5' || text[1] < '0' ||
	    text[1] > '9' || text[2] < '0' || text[2] > '9' ||
	    (text[3] != ' ' && text[3] != '-') ||
	    memchr(text, '\n', len - 1) != NULL ||
	    memchr(text, '\0', len) != NULL)
		abort();
	f->replies++;
}

static int
f_lookup(void *ctx, const char *const *names, size_t n)
{
	struct fctx *f = ctx;
	size_t i;

	if (f->deferred || n == 0 || n > LMTP_MAX_CANDIDATES)
		abort();
	for (i = 0; i < n; i++)
		if (strlen(names[i]) == 0 ||
		    strlen(names[i]) > MAX_USERNAME_LEN)
			abort();
	switch (names[0][0]) {
	case 'u':
		f->answer = LMTP_USER_UNKNOWN;
		break;
	case 'd':
		f->answer = LMTP_USER_DISABLED;
		break;
	case 't':
		f->answer = LMTP_USER_TEMPFAIL;
		break;
	case 'f':
		return -1;
	default:
		f->answer = LMTP_USER_OK;
		break;
	}
	memcpy(f->user, names[n - 1], strlen(names[n - 1]) + 1);
	if (f->defer_next) {
		f->deferred = true;
		return 0;
	}
	lmtp_rcpt_answer(f->s, f->answer, f->user, names[0][0] == 'q' ?
	    10 : 0, 0);
	return 0;
}

static int
f_spool_begin(void *ctx)
{
	struct fctx *f = ctx;

	f->spooled = 0;
	return 0;
}

static int
f_spool_write(void *ctx, const void *d, size_t len)
{
	struct fctx *f = ctx;

	f->spooled += len;
	return f->spooled > (1u << 20) ? -1 : 0;
}

static enum lmtp_result
f_deliver(void *ctx, const struct lmtp_session *s, const struct lmtp_rcpt *r)
{
	struct fctx *f = ctx;

	if (f->spooled != lmtp_session_size(s))
		abort();
	if (strlen(r->user) == 0 || r->addr == NULL)
		abort();
	switch (r->user[strlen(r->user) - 1] % 4) {
	case 0:
		return LMTP_R_TEMP;
	case 1:
		return LMTP_R_TOO_BIG;
	case 2:
		return LMTP_R_QUOTA;
	default:
		return LMTP_R_OK;
	}
}

static bool
f_over_quota(void *ctx, const struct lmtp_rcpt *r, uint64_t size)
{
	return size > r->quota_bytes;
}

static const struct lmtp_ops fops = {
	.reply = f_reply,
	.lookup = f_lookup,
	.spool_begin = f_spool_begin,
	.spool_write = f_spool_write,
	.spool_end = NULL,
	.deliver = f_deliver,
	.over_quota = f_over_quota,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lmtp_params p = {
		.hostname = "fuzz.example",
		.max_size = 4096,
		.max_recipients = 5,
		.max_bad_commands = 20,
		.max_line_length = 2000,
		.quota_temporary = false,
		.delimiter = '+',
		.site_quota_bytes = 0,
		.site_quota_messages = 0,
	};
	struct linebuf cmd, text;
	struct fctx f;
	size_t off = 0;
	unsigned int step = 0;

	if (size < 1)
		return 0;
	memset(&f, 0, sizeof(f));
	p.quota_temporary = (data[0] & 1) != 0;
	p.site_quota_bytes = (data[0] & 2) ? 100 : 0;
	data++;
	size--;
	linebuf_init(&cmd, LMTP_CMD_LINE_MAX);
	linebuf_init(&text, p.max_line_length);
	if ((f.s = lmtp_session_new(&p, &fops, &f)) == NULL)
		return 0;
	while (off < size && !lmtp_session_done(f.s)) {
		struct linebuf *lb = lmtp_session_in_data(f.s) ? &text : &cmd;
		size_t len = 0, used = 0;
		enum line_rc rc;

		if (f.deferred) {
			f.deferred = false;
			lmtp_rcpt_answer(f.s, f.answer, f.user, 0, 0);
		}
		if (lmtp_session_waiting(f.s))
			abort();
		rc = linebuf_scan(lb, data + off, size - off, &len, &used);
		if (used > size - off)
			abort();
		if (rc == LINE_MORE && used == 0)
			break;
		f.defer_next = (++step % 3) == 0;
		if (rc != LINE_MORE)
			lmtp_session_line(f.s, rc, (const char *)data + off,
			    len);
		off += used;
	}
	if (f.deferred)
		lmtp_rcpt_answer(f.s, f.answer, f.user, 0, 0);
	if (f.replies == 0)
		abort();	/* the greeting at least */
	lmtp_session_free(&f.s);
	return 0;
}
