/*
 * test_lmtp_session.c: the LMTP state machine with in-memory operations:
 * the names tried for a recipient, the replies of a whole transaction
 * (one per recipient after DATA, in RCPT order), dot-unstuffing and CRLF
 * line ends in the spool, the size and line limits, SIZE= against a
 * quota at RCPT, and a lookup answered later holding the next command.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtp/lmtp_session.h"

struct t {
	struct lmtp_session	*s;
	char			 out[8192];	/* every reply */
	size_t			 outlen;
	char			 spool[8192];
	size_t			 spoollen;
	char			 looked[512];	/* names of the last lookup */
	bool			 defer;
	bool			 pending;
	enum lmtp_result	 result;
	unsigned int		 spool_ended;
};

static void
o_reply(void *ctx, const char *text, size_t len)
{
	struct t *t = ctx;

	assert_true(t->outlen + len < sizeof(t->out));
	memcpy(t->out + t->outlen, text, len);
	t->outlen += len;
	t->out[t->outlen] = '\0';
}

static int
o_lookup(void *ctx, const char *const *names, size_t n)
{
	struct t *t = ctx;
	size_t i;

	t->looked[0] = '\0';
	for (i = 0; i < n; i++) {
		strcat(t->looked, names[i]);
		strcat(t->looked, ";");
	}
	if (t->defer) {
		t->pending = true;
		return 0;
	}
	if (strncmp(names[0], "nobody", 6) == 0)
		lmtp_rcpt_answer(t->s, LMTP_USER_UNKNOWN, "", 0, 0);
	else if (strncmp(names[0], "small", 5) == 0)
		lmtp_rcpt_answer(t->s, LMTP_USER_OK, names[n - 1], 50, 0);
	else
		lmtp_rcpt_answer(t->s, LMTP_USER_OK, names[n - 1], 0, 0);
	return 0;
}

static int
o_spool_begin(void *ctx)
{
	struct t *t = ctx;

	t->spoollen = 0;
	return 0;
}

static int
o_spool_write(void *ctx, const void *d, size_t len)
{
	struct t *t = ctx;

	assert_true(t->spoollen + len < sizeof(t->spool));
	memcpy(t->spool + t->spoollen, d, len);
	t->spoollen += len;
	return 0;
}

static enum lmtp_result
o_deliver(void *ctx, const struct lmtp_session *s, const struct lmtp_rcpt *r)
{
	struct t *t = ctx;

	assert_int_equal(lmtp_session_size(s), t->spoollen);
	return strcmp(r->user, "full") == 0 ? LMTP_R_QUOTA : t->result;
}

static bool
o_over_quota(void *ctx, const struct lmtp_rcpt *r, uint64_t size)
{
	return r->quota_bytes > 0 && size > r->quota_bytes;
}

static void
o_spool_end(void *ctx)
{
	struct t *t = ctx;

	t->spool_ended++;
}

static const struct lmtp_ops ops = {
	.reply = o_reply,
	.lookup = o_lookup,
	.spool_begin = o_spool_begin,
	.spool_write = o_spool_write,
	.spool_end = o_spool_end,
	.deliver = o_deliver,
	.over_quota = o_over_quota,
};

static const struct lmtp_params params = {
	.hostname = "mx.test",
	.max_size = 200,
	.max_recipients = 3,
	.max_bad_commands = 10,
	.max_line_length = 40,
	.quota_temporary = false,
	.delimiter = '+',
};

/* Feeds the lines of text (LF separated) as the line reader would. */
static void
feed(struct t *t, const char *text)
{
	struct linebuf cmd, data;
	size_t off = 0, len = strlen(text);

	linebuf_init(&cmd, LMTP_CMD_LINE_MAX);
	linebuf_init(&data, params.max_line_length);
	while (off < len) {
		struct linebuf *lb = lmtp_session_in_data(t->s) ? &data : &cmd;
		size_t ll = 0, used = 0;
		enum line_rc rc;

		assert_false(lmtp_session_waiting(t->s));
		rc = linebuf_scan(lb, (const uint8_t *)text + off, len - off,
		    &ll, &used);
		assert_true(rc != LINE_MORE || used > 0);
		if (rc != LINE_MORE)
			lmtp_session_line(t->s, rc, text + off, ll);
		off += used;
	}
}

static int
setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->result = LMTP_R_OK;
	t->s = lmtp_session_new(&params, &ops, t);
	assert_non_null(t->s);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct t *t = *state;

	lmtp_session_free(&t->s);
	assert_null(t->s);
	free(t);
	return 0;
}

static void
test_candidates(void **state)
{
	char b[LMTP_MAX_CANDIDATES][MAX_USERNAME_LEN + 1];

	(void)state;
	assert_int_equal(lmtp_candidates("Bob+x@Example.ORG", '+', b), 3);
	assert_string_equal(b[0], "Bob@example.org");
	assert_string_equal(b[1], "Bob");
	assert_string_equal(b[2], "bob");
	assert_int_equal(lmtp_candidates("alice", '\0', b), 1);
	assert_string_equal(b[0], "alice");
	assert_int_equal(lmtp_candidates("a+b@x", '\0', b), 2);
	assert_string_equal(b[0], "a+b@x");
	assert_string_equal(b[1], "a+b");
	/* "+tag" alone is a name. */
	assert_int_equal(lmtp_candidates("+tag@x", '+', b), 2);
	assert_string_equal(b[1], "+tag");
	assert_int_equal(lmtp_candidates("", '+', b), 0);
}

static void
test_transaction(void **state)
{
	struct t *t = *state;

	feed(t, "LHLO client\r\nMAIL FROM:<s@x> BODY=8BITMIME\r\n"
	    "RCPT TO:<a+list@X.Test>\r\nRCPT TO:<nobody>\r\n"
	    "RCPT TO:<full>\r\nDATA\r\n"
	    "Subject: t\r\n\r\n..dot\nbare lf\r\n.\r\nQUIT\r\n");
	assert_string_equal(t->out,
	    "220 mx.test LMTP Postern ready\r\n"
	    "250-mx.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n"
	    "250-8BITMIME\r\n250 SIZE 200\r\n"
	    "250 2.1.0 Sender ok\r\n"
	    "250 2.1.5 <a+list@X.Test> Recipient ok\r\n"
	    "550 5.1.1 <nobody> User unknown\r\n"
	    "250 2.1.5 <full> Recipient ok\r\n"
	    "354 Start mail input; end with <CRLF>.<CRLF>\r\n"
	    "250 2.0.0 <a+list@X.Test> Delivered\r\n"
	    "552 5.2.2 <full> Mailbox over quota\r\n"
	    "221 2.0.0 mx.test closing connection\r\n");
	assert_int_equal(t->spoollen, strlen("Subject: t\r\n\r\n.dot\r\n"
	    "bare lf\r\n"));
	assert_memory_equal(t->spool, "Subject: t\r\n\r\n.dot\r\nbare lf\r\n",
	    t->spoollen);
	assert_int_equal(t->spool_ended, 1);
	assert_true(lmtp_session_done(t->s));
}

static void
test_limits(void **state)
{
	struct t *t = *state;
	char big[400];
	int i;

	/* 8 lines of 30 octets and CRLF: 256 octets, over max_size. */
	for (i = 0; i < 8; i++) {
		memset(big + i * 32, 'b', 30);
		memcpy(big + i * 32 + 30, "\r\n", 2);
	}
	big[8 * 32] = '\0';
	feed(t, "LHLO c\r\nMAIL FROM:<s@x> SIZE=201\r\n");
	assert_non_null(strstr(t->out, "552 5.3.4 Message size exceeds"));
	t->outlen = 0;
	/* SIZE= over a recipient's quota: refused at RCPT. */
	feed(t, "MAIL FROM:<s@x> SIZE=60\r\nRCPT TO:<small>\r\n"
	    "RCPT TO:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nRCPT TO:<d>\r\n");
	assert_string_equal(t->out, "250 2.1.0 Sender ok\r\n"
	    "552 5.2.2 <small> Mailbox over quota\r\n"
	    "250 2.1.5 <a> Recipient ok\r\n250 2.1.5 <b> Recipient ok\r\n"
	    "250 2.1.5 <c> Recipient ok\r\n"
	    "452 4.5.3 Too many recipients\r\n");
	t->outlen = 0;
	/* A line over max_line_length: 554 for each recipient. */
	feed(t, "DATA\r\n0123456789012345678901234567890123456789X\r\n.\r\n");
	assert_non_null(strstr(t->out, "554 5.6.0 <a> Message has a line"));
	assert_non_null(strstr(t->out, "554 5.6.0 <c> Message has a line"));
	t->outlen = 0;
	/* Over max_size in DATA: 552 5.3.4. */
	feed(t, "MAIL FROM:<>\r\nRCPT TO:<a>\r\nDATA\r\n");
	feed(t, big);
	feed(t, ".\r\n");
	assert_non_null(strstr(t->out, "552 5.3.4 <a> Message size"));
	t->outlen = 0;
	/* Sequence errors. */
	feed(t, "DATA\r\nRCPT TO:<a>\r\nRSET\r\nNOOP\r\nVRFY a\r\nHELO x\r\n");
	assert_string_equal(t->out, "503 5.5.1 Send MAIL first\r\n"
	    "503 5.5.1 Send MAIL first\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"
	    "252 2.5.2 Cannot VRFY user, but will accept the message and "
	    "attempt delivery\r\n500 5.5.1 This is LMTP: use LHLO\r\n");
}

static void
test_deferred_lookup_holds_commands(void **state)
{
	struct t *t = *state;

	t->defer = true;
	feed(t, "LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<Carol@Y.test>\r\n");
	assert_true(lmtp_session_waiting(t->s));
	assert_string_equal(t->looked, "Carol@y.test;Carol;carol;");
	/* A line fed while waiting is ignored by the session; the process
	 * does not feed one. */
	lmtp_rcpt_answer(t->s, LMTP_USER_TEMPFAIL, "", 0, 0);
	assert_false(lmtp_session_waiting(t->s));
	assert_non_null(strstr(t->out, "451 4.3.0 <Carol@Y.test>"));
	t->pending = false;
	feed(t, "RCPT TO:<d>\r\n");
	lmtp_rcpt_answer(t->s, LMTP_USER_DISABLED, "d", 0, 0);
	assert_non_null(strstr(t->out, "550 5.2.1 <d> Mailbox disabled"));
	/* The answer to nothing is ignored. */
	lmtp_rcpt_answer(t->s, LMTP_USER_OK, "x", 0, 0);
	feed(t, "DATA\r\n");
	assert_non_null(strstr(t->out, "503 5.5.1 No valid recipients"));
}

static void
test_temp_failure_and_abort(void **state)
{
	struct t *t = *state;

	t->result = LMTP_R_TEMP;
	feed(t, "LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a>\r\nDATA\r\nx\r\n"
	    ".\r\n");
	assert_non_null(strstr(t->out, "451 4.3.0 <a> Temporary failure"));
	lmtp_session_abort(t->s, "Idle timeout, closing connection");
	assert_non_null(strstr(t->out, "421 4.4.2 mx.test Idle timeout"));
	assert_true(lmtp_session_done(t->s));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_candidates),
		T(test_transaction),
		T(test_limits),
		T(test_deferred_lookup_holds_commands),
		T(test_temp_failure_and_abort),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
