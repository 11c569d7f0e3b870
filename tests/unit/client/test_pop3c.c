/*
 * test_pop3c.c: postern fetch's reader of RETR bodies (pop3c_body in
 * client/pop3c.c): dot-unstuffing, CRLF to LF with other CRs kept, the
 * end of the body, and the reply after it, each case fed once in one
 * write and once an octet at a time, so that every octet is at some
 * buffer's edge; a body cut short; and the size limit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/pop3c.h"

struct sink {
	uint8_t	*data;
	size_t	 len;
};

static int
collect(void *arg, const uint8_t *p, size_t n)
{
	struct sink *k = arg;
	uint8_t *d = realloc(k->data, k->len + n + 1);

	if (d == NULL)
		return -1;
	memcpy(d + k->len, p, n);
	k->data = d;
	k->len += n;
	return 0;
}

/* Feeds wire to a pop3c in a child (all at once, or an octet at a time
 * with a pause), runs pop3c_body with max; returns its result, the body
 * in *k and the line after it in after. */
static int
feed(const char *wire, size_t len, bool slow, uint64_t max,
    struct sink *k, char *after, size_t aftersize)
{
	static struct account acct;
	struct timespec pause = { 0, 100 * 1000 };
	struct pop3c *c;
	int sv[2], r, status;
	pid_t pid;
	size_t i;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		close(sv[0]);
		for (i = 0; i < len; i += slow ? 1 : len - i) {
			if (write(sv[1], wire + i, slow ? 1 : len - i) <= 0)
				_exit(1);
			if (slow)
				(void)nanosleep(&pause, NULL);
		}
		_exit(0);
	}
	close(sv[1]);
	acct.host = (char *)"test";
	acct.timeout_ms = 10000;
	c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->acct = &acct;
	c->fd = sv[0];
	linebuf_init(&c->lb, FETCH_MAX_LINE);
	k->data = NULL;
	k->len = 0;
	r = pop3c_body(c, max, collect, k);
	after[0] = '\0';
	if (r == 0)
		assert_int_equal(pop3c_line(c, after, aftersize,
		    aftersize - 1), 0);
	close(sv[0]);
	free(c);
	(void)kill(pid, SIGKILL);
	(void)waitpid(pid, &status, 0);
	return r;
}

static void
check(const char *wire, const char *want)
{
	char buf[4096], after[64];
	struct sink k;
	int slow;

	(void)snprintf(buf, sizeof(buf), "%s+OK next\r\n", wire);
	for (slow = 0; slow < 2; slow++) {
		assert_int_equal(feed(buf, strlen(buf), slow, 1 << 20, &k,
		    after, sizeof(after)), 0);
		if (k.len != strlen(want) || (k.len > 0 &&
		    memcmp(k.data, want, k.len) != 0))
			fail_msg("%s: got %zu octets, want \"%s\"",
			    slow ? "slow" : "fast", k.len, want);
		assert_string_equal(after, "+OK next");
		free(k.data);
	}
}

static void
test_unstuffing_and_line_ends(void **state)
{
	(void)state;
	check("a\r\nb\r\n.\r\n", "a\nb\n");
	check("..x\r\n...\r\n.\r\n", ".x\n..\n");
	check("a\rb\r\n.\r\n", "a\rb\n");
	check("a\r\r\n.\r\n", "a\r\n");
	check(".\rx\r\n.\r\n", "\rx\n");
	check("x\n.\n", "x\n");
	check("\r\n\r\n.\r\n", "\n\n");
	check(".\r\n", "");
	check("no dot.\r\n.x.\r\n.\r\n", "no dot.\nx.\n");
}

static void
test_cut_short(void **state)
{
	char after[64];
	struct sink k;

	(void)state;
	assert_int_equal(feed("abc\r\n..", 7, true, 1 << 20, &k, after,
	    sizeof(after)), -1);
	free(k.data);
}

static void
test_long_lines_cross_buffers(void **state)
{
	size_t n = 3 * FETCH_READ_CHUNK + 5, i;
	char *wire = malloc(n + 32), after[64];
	struct sink k;

	(void)state;
	assert_non_null(wire);
	for (i = 0; i < n; i++)
		wire[i] = i % 1000 == 999 ? '\r' : 'y';
	memcpy(wire + n, "\r\n.\r\n+OK next\r\n", 15);
	assert_int_equal(feed(wire, n + 15, false, 1 << 20, &k, after,
	    sizeof(after)), 0);
	assert_int_equal(k.len, n + 1);
	assert_memory_equal(k.data, wire, n);
	assert_int_equal(k.data[n], '\n');
	assert_string_equal(after, "+OK next");
	free(k.data);
	free(wire);
}

static void
test_size_limit(void **state)
{
	char wire[256], after[64];
	struct sink k;

	(void)state;
	memset(wire, 'z', 200);
	memcpy(wire + 200, "\r\n.\r\n", 5);
	assert_int_equal(feed(wire, 205, false, 100, &k, after,
	    sizeof(after)), -1);
	assert_true(k.len <= 100);
	free(k.data);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unstuffing_and_line_ends),
		cmocka_unit_test(test_long_lines_cross_buffers),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_cut_short),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
