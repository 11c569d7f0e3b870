/*
 * fuzz_pop3c.c: postern fetch's reader of server replies
 * (src/client/pop3c.c) on arbitrary bytes from a hostile server: status
 * lines, a multi-line listing and a streamed, dot-unstuffed message body,
 * read through a socketpair exactly as from a network socket.  The reader
 * must end with a result or an error, never read out of bounds, and hand
 * out no more body octets than its limit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/pop3c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BODY_MAX	(256 * 1024)

struct sink {
	uint64_t	total;
};

static int
on_line(void *arg, char *line, size_t len)
{
	if (strlen(line) != len || len > FETCH_MAX_LINE)
		abort();
	return 0;
}

static int
on_body(void *arg, const uint8_t *p, size_t n)
{
	struct sink *k = arg;

	k->total += n;
	if (k->total > BODY_MAX)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct account acct;
	static struct pop3c c;
	char line[FETCH_MAX_LINE + 1];
	struct sink k = { 0 };
	int sv[2];

	/* What fits in the socket's buffer without a reader. */
	if (size > 64 * 1024)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		abort();
	if (size > 0 && write(sv[1], data, size) != (ssize_t)size)
		abort();
	close(sv[1]);
	acct.host = (char *)"fuzz";
	acct.timeout_ms = 1000;
	memset(&c, 0, sizeof(c));
	c.acct = &acct;
	c.fd = sv[0];
	linebuf_init(&c.lb, FETCH_MAX_LINE);
	/* A greeting, a listing, a message, in that order, as in a run. */
	if (pop3c_status(&c, "greeting", line, sizeof(line)) == 1 &&
	    pop3c_lines(&c, on_line, NULL) == 0 &&
	    pop3c_status(&c, "RETR", line, sizeof(line)) == 1)
		(void)pop3c_body(&c, BODY_MAX, on_body, &k);
	close(sv[0]);
	return 0;
}
