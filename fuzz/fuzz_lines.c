/*
 * fuzz_lines.c: the bounded line reader on arbitrary input, fed in
 * arbitrary chunk sizes.  Checks that every line it returns is within
 * the limit, holds no NUL and no LF, and that it never consumes more
 * than it was given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/linebuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct linebuf lb;
	size_t max, off = 0, pending = 0;
	uint8_t *acc;

	if (size < 2)
		return 0;
	max = 1 + data[0] % 64;
	linebuf_init(&lb, max);
	data++;
	size--;
	if ((acc = malloc(size + 1)) == NULL)
		return 0;
	while (off < size) {
		size_t chunk = 1 + data[off] % 17, len, used;
		enum line_rc rc;

		if (chunk > size - off)
			chunk = size - off;
		memcpy(acc + pending, data + off, chunk);
		pending += chunk;
		off += chunk;
		for (;;) {
			rc = linebuf_scan(&lb, acc, pending, &len, &used);
			if (used > pending)
				abort();
			if (rc == LINE_OK && (len > max ||
			    memchr(acc, '\n', len) != NULL ||
			    memchr(acc, '\0', len) != NULL))
				abort();
			memmove(acc, acc + used, pending - used);
			pending -= used;
			if (rc == LINE_MORE && used == 0)
				break;
			if (pending == 0)
				break;
		}
		if (pending > max + 2)
			abort();	/* the reader must never let input pile up */
	}
	free(acc);
	return 0;
}
