/*
 * fuzz_xmit.c: the XTND XMIT header parser (src/lib/mailhdr.h) on
 * arbitrary bytes.  The first octet picks the recipient limit.  Checks
 * what posternd relies on: every address it returns is bounded, holds
 * an '@', no control octet and no leading '-'; the counts match the
 * lists and respect the limit; the header it gives back is no longer
 * than the input and holds no Bcc field.
 */
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/mailhdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned int
check_list(const struct buf *list)
{
	size_t pos = 0;
	unsigned int n = 0;
	const char *a, *p;

	while ((a = mailhdr_next(list, &pos)) != NULL) {
		assert(strlen(a) > 0 && strlen(a) <= XMIT_MAX_ADDR_LEN);
		assert(strchr(a, '@') != NULL && a[0] != '-');
		for (p = a; *p != '\0'; p++)
			assert((unsigned char)*p >= 0x20 && *p != 0x7f);
		n++;
	}
	assert(pos == list->len);
	return n;
}

/* A line that starts a Bcc field: "Bcc", white space, ':'. */
static bool
is_bcc(const char *p, size_t len)
{
	size_t i = 3;

	if (len < 4 || strncasecmp(p, "Bcc", 3) != 0)
		return false;
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i < len && p[i] == ':';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mailhdr h;
	unsigned int max;
	size_t i;

	if (size < 1)
		return 0;
	max = 1 + data[0] % HARD_XMIT_MAX_RECIPIENTS;
	mailhdr_init(&h, max);
	if (mailhdr_parse(&h, (const char *)data + 1, size - 1) == 0) {
		assert(check_list(&h.rcpts) == h.n_rcpt && h.n_rcpt <= max);
		assert(check_list(&h.froms) == h.n_from &&
		    h.n_from <= XMIT_MAX_FROM);
		assert(strlen(h.msgid) <= XMIT_MAX_MSGID_LEN);
		assert(h.out.len <= size);
		for (i = 0; i < h.out.len; i++)
			if (i == 0 || h.out.data[i - 1] == '\n')
				assert(!is_bcc(h.out.data + i,
				    h.out.len - i));
	} else
		assert(h.err[0] != '\0');
	mailhdr_free(&h);
	return 0;
}
