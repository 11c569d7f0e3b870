/*
 * test_lib.c: the bounded line reader, strict number parsing, bounded
 * buffers, address matching and IPC message encoding.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <event2/buffer.h>

#include "lib/buf.h"
#include "lib/ipc.h"
#include "lib/linebuf.h"
#include "lib/net.h"
#include "lib/strnum.h"

static enum line_rc
scan(struct linebuf *lb, const char *s, size_t *len_r, size_t *used_r)
{
	return linebuf_scan(lb, (const uint8_t *)s, strlen(s), len_r, used_r);
}

static void
test_linebuf_crlf_and_lf(void **state)
{
	struct linebuf lb;
	size_t len, used;

	linebuf_init(&lb, 10);
	assert_int_equal(scan(&lb, "STAT\r\nNOOP", &len, &used), LINE_OK);
	assert_int_equal(len, 4);
	assert_int_equal(used, 6);
	assert_int_equal(scan(&lb, "STAT\nX", &len, &used), LINE_OK);
	assert_int_equal(len, 4);
	assert_int_equal(used, 5);
	/* A bare CR is not a line end. */
	assert_int_equal(scan(&lb, "ST\rAT", &len, &used), LINE_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(scan(&lb, "ST\rAT\n", &len, &used), LINE_OK);
	assert_int_equal(len, 5);
}

static void
test_linebuf_exact_limit(void **state)
{
	struct linebuf lb;
	size_t len, used;

	linebuf_init(&lb, 4);
	assert_int_equal(scan(&lb, "ABCD\r\n", &len, &used), LINE_OK);
	assert_int_equal(len, 4);
	assert_int_equal(scan(&lb, "ABCD\n", &len, &used), LINE_OK);
	assert_int_equal(scan(&lb, "ABCDE\n", &len, &used), LINE_TOO_LONG);
	assert_int_equal(used, 6);
	assert_false(lb.discarding);
	/* Still incomplete but could fit: wait. */
	assert_int_equal(scan(&lb, "ABCD\r", &len, &used), LINE_MORE);
}

static void
test_linebuf_unterminated_overflow(void **state)
{
	struct linebuf lb;
	size_t len, used;

	linebuf_init(&lb, 4);
	assert_int_equal(scan(&lb, "ABCDEFGH", &len, &used), LINE_TOO_LONG);
	assert_int_equal(used, 6);
	assert_true(lb.discarding);
	/* The rest of the line is discarded without another report. */
	assert_int_equal(scan(&lb, "GH", &len, &used), LINE_MORE);
	assert_int_equal(used, 2);
	assert_int_equal(scan(&lb, "xx\nNOOP\n", &len, &used), LINE_MORE);
	assert_int_equal(used, 3);
	assert_false(lb.discarding);
	assert_int_equal(scan(&lb, "NOOP\n", &len, &used), LINE_OK);
}

static void
test_linebuf_nul(void **state)
{
	struct linebuf lb;
	size_t len, used;
	const uint8_t line[] = { 'A', 0, 'B', '\r', '\n' };

	linebuf_init(&lb, 10);
	assert_int_equal(linebuf_scan(&lb, line, sizeof(line), &len, &used),
	    LINE_HAS_NUL);
	assert_int_equal(used, sizeof(line));
}

static void
test_linebuf_evbuffer(void **state)
{
	struct evbuffer *in = evbuffer_new();
	struct linebuf lb;
	char out[64];
	size_t len, i;
	char big[100000];

	linebuf_init(&lb, 16);
	evbuffer_add(in, "USER a\r\nPA", 10);
	assert_int_equal(linebuf_next(&lb, in, out, sizeof(out), &len),
	    LINE_OK);
	assert_string_equal(out, "USER a");
	assert_int_equal(linebuf_next(&lb, in, out, sizeof(out), &len),
	    LINE_MORE);
	evbuffer_add(in, "SS b\n", 5);
	assert_int_equal(linebuf_next(&lb, in, out, sizeof(out), &len),
	    LINE_OK);
	assert_string_equal(out, "PASS b");
	/* 100000 octets without LF never grow the buffer past the limit. */
	memset(big, 'x', sizeof(big));
	evbuffer_add(in, big, sizeof(big));
	assert_int_equal(linebuf_next(&lb, in, out, sizeof(out), &len),
	    LINE_TOO_LONG);
	assert_int_equal(linebuf_next(&lb, in, out, sizeof(out), &len),
	    LINE_MORE);
	assert_int_equal(evbuffer_get_length(in), 0);
	for (i = 0; i < 10; i++)
		evbuffer_add(in, big, sizeof(big));
	assert_int_equal(linebuf_next(&lb, in, out, sizeof(out), &len),
	    LINE_MORE);
	assert_int_equal(evbuffer_get_length(in), 0);
	evbuffer_add(in, "tail\nNOOP\n", 10);
	assert_int_equal(linebuf_next(&lb, in, out, sizeof(out), &len),
	    LINE_OK);
	assert_string_equal(out, "NOOP");
	evbuffer_free(in);
}

static void
test_strnum_strict(void **state)
{
	uint32_t idx, v;
	uint64_t w;

	assert_int_equal(parse_msgnum("1", 5, &idx), PARSE_OK);
	assert_int_equal(idx, 0);
	assert_int_equal(parse_msgnum("5", 5, &idx), PARSE_OK);
	assert_int_equal(idx, 4);
	assert_int_equal(parse_msgnum("6", 5, &idx), PARSE_RANGE);
	assert_int_equal(parse_msgnum("0", 5, &idx), PARSE_RANGE);
	assert_int_equal(parse_msgnum("4294967297", 5, &idx), PARSE_RANGE);
	assert_int_equal(parse_msgnum("18446744073709551617", 5, &idx),
	    PARSE_RANGE);
	assert_int_equal(parse_msgnum("+1", 5, &idx), PARSE_SYNTAX);
	assert_int_equal(parse_msgnum("-1", 5, &idx), PARSE_SYNTAX);
	assert_int_equal(parse_msgnum(" 1", 5, &idx), PARSE_SYNTAX);
	assert_int_equal(parse_msgnum("1x", 5, &idx), PARSE_SYNTAX);
	assert_int_equal(parse_msgnum("", 5, &idx), PARSE_SYNTAX);
	assert_int_equal(parse_msgnum("0x1", 5, &idx), PARSE_SYNTAX);
	assert_int_equal(parse_u32("4294967295", UINT32_MAX, &v), PARSE_OK);
	assert_int_equal(v, UINT32_MAX);
	assert_int_equal(parse_u32("4294967296", UINT32_MAX, &v), PARSE_RANGE);
	assert_int_equal(parse_u64("18446744073709551615", UINT64_MAX, &w),
	    PARSE_OK);
	assert_int_equal(parse_u64("18446744073709551616", UINT64_MAX, &w),
	    PARSE_RANGE);
	assert_int_equal(parse_u64("007", 10, &w), PARSE_OK);
	assert_int_equal(w, 7);
}

static void
test_strnum_units(void **state)
{
	uint64_t v;

	assert_int_equal(parse_duration_ms("10m", UINT64_MAX, &v), PARSE_OK);
	assert_int_equal(v, 600000);
	assert_int_equal(parse_duration_ms("600", UINT64_MAX, &v), PARSE_OK);
	assert_int_equal(v, 600000);
	assert_int_equal(parse_duration_ms("250ms", UINT64_MAX, &v), PARSE_OK);
	assert_int_equal(v, 250);
	assert_int_equal(parse_duration_ms("2d", UINT64_MAX, &v), PARSE_OK);
	assert_int_equal(v, 172800000);
	assert_int_equal(parse_duration_ms("5x", UINT64_MAX, &v), PARSE_SYNTAX);
	assert_int_equal(parse_duration_ms("1h", 1000, &v), PARSE_RANGE);
	assert_int_equal(parse_duration_ms("99999999999999999999d", UINT64_MAX,
	    &v), PARSE_RANGE);
	assert_int_equal(parse_size("4M", UINT64_MAX, &v), PARSE_OK);
	assert_int_equal(v, 4194304);
	assert_int_equal(parse_size("4 M", UINT64_MAX, &v), PARSE_SYNTAX);
}

static void
test_buf_ceiling(void **state)
{
	struct buf b;

	buf_init(&b, 8);
	assert_int_equal(buf_addstr(&b, "abcd"), 0);
	assert_int_equal(buf_addf(&b, "%d", 1234), 0);
	assert_int_equal(b.len, 8);
	assert_int_equal(buf_addc(&b, 'x'), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_int_equal(b.len, 8);
	assert_string_equal(buf_str(&b), "abcd1234");
	buf_clear_secret(&b);
	assert_null(b.data);
}

static void
test_cidr(void **state)
{
	struct cidr nets[2];
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };

	assert_int_equal(cidr_parse("127.0.0.1/32", &nets[0]), 0);
	assert_int_equal(cidr_parse("2001:db8::/32", &nets[1]), 0);
	assert_int_equal(cidr_parse("10.0.0.0/33", &nets[0]), -1);
	assert_int_equal(cidr_parse("10.0.0.0/", &nets[0]), -1);
	assert_int_equal(cidr_parse("nonsense", &nets[0]), -1);
	assert_int_equal(cidr_parse("127.0.0.1/32", &nets[0]), 0);
	inet_pton(AF_INET, "127.0.0.1", &a4.sin_addr);
	assert_true(cidr_match(nets, 2, (struct sockaddr *)&a4));
	inet_pton(AF_INET, "127.0.0.2", &a4.sin_addr);
	assert_false(cidr_match(nets, 2, (struct sockaddr *)&a4));
	assert_true(addr_is_loopback((struct sockaddr *)&a4));
	inet_pton(AF_INET6, "2001:db8:1::5", &a6.sin6_addr);
	assert_true(cidr_match(nets, 2, (struct sockaddr *)&a6));
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &a6.sin6_addr);
	assert_true(cidr_match(nets, 2, (struct sockaddr *)&a6));
	inet_pton(AF_INET6, "2001:db9::1", &a6.sin6_addr);
	assert_false(cidr_match(nets, 2, (struct sockaddr *)&a6));
	assert_false(addr_is_loopback((struct sockaddr *)&a6));
}

static void
test_ipc_roundtrip_and_hostile(void **state)
{
	static struct ipc_msg m;
	struct ipc_in in;
	uint8_t bad[64];
	uint32_t n;

	ipc_msg_init(&m, 7, 0x1122334455667788ull);
	ipc_put_u32(&m, 42);
	ipc_put_str(&m, "alice");
	ipc_put_u64(&m, 99);
	assert_false(m.bad);
	assert_true(ipc_in_init(&in, m.data, m.len, -1));
	assert_int_equal(in.type, 7);
	assert_true(in.id == 0x1122334455667788ull);
	assert_int_equal(ipc_get_u32(&in), 42);
	assert_string_equal(ipc_get_str(&in, 10), "alice");
	assert_int_equal(ipc_get_u64(&in), 99);
	assert_true(ipc_done(&in));

	/* Too long for the reader's bound. */
	assert_true(ipc_in_init(&in, m.data, m.len, -1));
	(void)ipc_get_u32(&in);
	assert_string_equal(ipc_get_str(&in, 4), "");
	assert_false(ipc_done(&in));

	/* Trailing octets are a protocol error. */
	assert_true(ipc_in_init(&in, m.data, m.len, -1));
	(void)ipc_get_u32(&in);
	(void)ipc_get_str(&in, 10);
	assert_false(ipc_done(&in));

	/* A truncated message: the missing field is an error. */
	assert_true(ipc_in_init(&in, m.data, m.len - 8, -1));
	(void)ipc_get_u32(&in);
	(void)ipc_get_str(&in, 10);
	assert_true(ipc_done(&in));
	assert_int_equal(ipc_get_u64(&in), 0);
	assert_false(ipc_done(&in));

	/* A string length past the end, or without its NUL. */
	memcpy(bad, m.data, 12);
	n = 1000;
	memcpy(bad + 12, &n, 4);
	memcpy(bad + 16, "abcd", 4);
	assert_true(ipc_in_init(&in, bad, 20, -1));
	assert_string_equal(ipc_get_str(&in, 5000), "");
	assert_false(ipc_done(&in));
	n = 4;
	memcpy(bad + 12, &n, 4);
	assert_true(ipc_in_init(&in, bad, 20, -1));
	assert_string_equal(ipc_get_str(&in, 5000), "");
	assert_false(ipc_done(&in));
	/* Shorter than a header. */
	assert_false(ipc_in_init(&in, bad, 5, -1));

	/* Building past the maximum marks the message bad. */
	ipc_msg_init(&m, 1, 1);
	for (n = 0; n < IPC_MAX_MSG / 4 + 1; n++)
		ipc_put_u32(&m, n);
	assert_true(m.bad);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_linebuf_crlf_and_lf),
		cmocka_unit_test(test_linebuf_exact_limit),
		cmocka_unit_test(test_linebuf_unterminated_overflow),
		cmocka_unit_test(test_linebuf_nul),
		cmocka_unit_test(test_linebuf_evbuffer),
		cmocka_unit_test(test_strnum_strict),
		cmocka_unit_test(test_strnum_units),
		cmocka_unit_test(test_buf_ceiling),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_ipc_roundtrip_and_hostile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
