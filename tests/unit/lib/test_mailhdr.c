/*
 * test_mailhdr.c: the XTND XMIT header parser: address lists (RFC 5322
 * section 3.4 and the obsolete forms of 4.4), unfolding, Bcc removal,
 * the limits, and who owns an address.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lib/mailhdr.h"

/* The recipients as one string "a b c". */
static const char *
joined(const struct buf *list, char *out, size_t size)
{
	size_t pos = 0, n = 0;
	const char *a;

	out[0] = '\0';
	while ((a = mailhdr_next(list, &pos)) != NULL) {
		n += (size_t)snprintf(out + n, size - n, "%s%s", n > 0 ? " " :
		    "", a);
		assert_true(n < size);
	}
	return out;
}

static int
parse(struct mailhdr *h, unsigned int max, const char *text)
{
	mailhdr_init(h, max);
	return mailhdr_parse(h, text, strlen(text));
}

static void
expect_rcpts(const char *text, const char *want)
{
	struct mailhdr h;
	char got[4096];

	if (parse(&h, 200, text) != 0)
		fail_msg("parse failed: %s (%s)", h.err, text);
	assert_string_equal(joined(&h.rcpts, got, sizeof(got)), want);
	mailhdr_free(&h);
}

static void
expect_error(const char *text, const char *err)
{
	struct mailhdr h;

	assert_int_equal(parse(&h, 3, text), -1);
	assert_string_equal(h.err, err);
	mailhdr_free(&h);
}

static void
test_address_forms(void **state)
{
	expect_rcpts("To: a@example.org\n", "a@example.org");
	expect_rcpts("To: A <a@example.org>, b@example.org\n",
	    "a@example.org b@example.org");
	expect_rcpts("To: \"Doe, John\" <j@example.org>\n", "j@example.org");
	expect_rcpts("To: \"x y\"@example.org\n", "\"x y\"@example.org");
	expect_rcpts("To: \"a\\\"b\"@example.org\n", "\"a\\\"b\"@example.org");
	expect_rcpts("To: (c (nested) ) a@example.org (trailing, comma)\n",
	    "a@example.org");
	expect_rcpts("To: Group: a@example.org, B <b@example.org>;\n",
	    "a@example.org b@example.org");
	expect_rcpts("To: empty:;, a@example.org\n", "a@example.org");
	expect_rcpts("To: open: a@example.org\n", "a@example.org");
	expect_rcpts("To: <@r1.example,@r2.example:a@example.org>\n",
	    "a@example.org");
	expect_rcpts("To: a@[192.0.2.1]\n", "a@[192.0.2.1]");
	expect_rcpts("To: , a@example.org,, ,b@example.org,\n",
	    "a@example.org b@example.org");
	expect_rcpts("To: a.b+tag@sub.example.org\n",
	    "a.b+tag@sub.example.org");
	/* Folded fields, and every recipient field; repeats once. */
	expect_rcpts("To: a@example.org,\n b@example.org\nCc: c@example.org,"
	    "\n\ta@example.org\nBcc: d@example.org\n",
	    "a@example.org b@example.org c@example.org d@example.org");
	/* Field names in any case; CRLF line ends too. */
	expect_rcpts("tO: a@example.org\r\nBCC: b@example.org\r\n",
	    "a@example.org b@example.org");
	/* White space before the colon (obs-optional). */
	expect_rcpts("To : a@example.org\nBcc\t: b@example.org\n",
	    "a@example.org b@example.org");
	/* Other fields do not give recipients. */
	expect_rcpts("Reply-To: r@example.org\nTo: a@example.org\n",
	    "a@example.org");
	expect_rcpts("Subject: x\n", "");
}

static void
test_bad_addresses(void **state)
{
	static const char *const bad[] = {
		"To: bob\n",
		"To: <bob@example.org\n",
		"To: bob@example.org>\n",
		"To: a@example.org b@example.org\n",
		"To: a@@example.org\n",
		"To: @example.org\n",
		"To: a@\n",
		"To: .a@example.org\n",
		"To: a.@example.org\n",
		"To: a..b@example.org\n",
		"To: a@example..org\n",
		"To: -f@example.org\n",
		"To: \"unterminated@example.org\n",
		"To: (unterminated a@example.org\n",
		"To: a@[1.2.3.4\n",
		"To: x: y: a@example.org;;\n",
		"To: a@example.org;\n",
		"To: \"a\\\x01\"@example.org\n",
		"To: a\x01@example.org\n",
		"To: <>\n",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mailhdr h;

		if (parse(&h, 200, bad[i]) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_string_equal(h.err, "Bad address in the To field.");
		mailhdr_free(&h);
	}
}

static void
test_bcc_removed(void **state)
{
	struct mailhdr h;
	const char *in =
	    "From: a@example.org\r\n"
	    "Bcc: hidden@example.org,\r\n"
	    "  other@example.org\r\n"
	    "To: b@example.org\r\n"
	    "bcc : more@example.org\r\n"
	    "Subject: folded\r\n"
	    "\tline\r\n"
	    "X-Last: no newline";

	assert_int_equal(parse(&h, 200, in), 0);
	assert_int_equal(h.n_rcpt, 4);
	assert_int_equal(h.out.len, strlen(buf_str(&h.out)));
	assert_string_equal(buf_str(&h.out),
	    "From: a@example.org\n"
	    "To: b@example.org\n"
	    "Subject: folded\n"
	    "\tline\n"
	    "X-Last: no newline\n");
	mailhdr_free(&h);
}

static void
test_from_sender_msgid(void **state)
{
	struct mailhdr h;
	char got[1024];

	assert_int_equal(parse(&h, 200, "From: A <a@example.org>, "
	    "b@example.org\nSender: s@example.org\nMessage-ID:  "
	    "<id@example.org> \nTo: x@example.org\n"), 0);
	assert_int_equal(h.n_from, 2);
	assert_string_equal(joined(&h.froms, got, sizeof(got)),
	    "a@example.org b@example.org");
	assert_string_equal(h.sender, "s@example.org");
	assert_string_equal(h.msgid, "<id@example.org>");
	mailhdr_free(&h);
	expect_error("Sender: a@example.org, b@example.org\n",
	    "More than one Sender address.");
}

static void
test_limits_and_malformed(void **state)
{
	expect_error("To: a@x.org, b@x.org, c@x.org, d@x.org\n",
	    "Too many recipients (at most 3).");
	expect_error("no colon\n", "Malformed header line.");
	expect_error(": empty name\n", "Malformed header line.");
	expect_error("Bad Name: x\n", "Malformed header line.");
	expect_error(" leading space: x\n", "Malformed header line.");
	expect_error("Cc: bad\n", "Bad address in the Cc field.");
	expect_error("Bcc: bad\n", "Bad address in the Bcc field.");
	expect_error("From: bad\n", "Bad address in the From field.");
	{
		struct mailhdr h;
		char text[64];

		memcpy(text, "To: a@x.org\nX: a\0b\n", 20);
		mailhdr_init(&h, 10);
		assert_int_equal(mailhdr_parse(&h, text, 19), -1);
		assert_string_equal(h.err, "Header contains a NUL octet.");
		mailhdr_free(&h);
	}
	/* Exactly at the limit, with a repeat that does not count. */
	expect_rcpts("To: a@x.org, b@x.org, c@x.org, a@x.org\n",
	    "a@x.org b@x.org c@x.org");
}

static void
test_owned(void **state)
{
	char *doms[] = { "example.org", "example.net" };

	assert_true(mailhdr_addr_owned("alice@example.org", "alice", doms, 2));
	assert_true(mailhdr_addr_owned("alice@EXAMPLE.net", "alice", doms, 2));
	assert_false(mailhdr_addr_owned("Alice@example.org", "alice", doms,
	    2));
	assert_false(mailhdr_addr_owned("alice@example.com", "alice", doms,
	    2));
	assert_false(mailhdr_addr_owned("alice@example.org", "alice", doms,
	    0));
	assert_false(mailhdr_addr_owned("alicex@example.org", "alice", doms,
	    2));
	assert_false(mailhdr_addr_owned("alic@example.org", "alice", doms,
	    2));
	assert_true(mailhdr_addr_owned("bob@Example.COM", "bob@example.com",
	    doms, 2));
	assert_false(mailhdr_addr_owned("bob@example.org", "bob@example.com",
	    doms, 2));
	assert_false(mailhdr_addr_owned("Bob@example.com", "bob@example.com",
	    doms, 2));
	assert_false(mailhdr_addr_owned("nobody", "alice", doms, 2));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address_forms),
		cmocka_unit_test(test_bad_addresses),
		cmocka_unit_test(test_bcc_removed),
		cmocka_unit_test(test_from_sender_msgid),
		cmocka_unit_test(test_limits_and_malformed),
		cmocka_unit_test(test_owned),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
