/*
 * fuzz_index.c: the Maildir index parser on arbitrary files.  Whatever
 * it accepts must serialize and parse back to the same entries.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "store/index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct index a, b;
	struct buf out;
	char err[256];
	size_t i;

	if (index_parse((const char *)data, size, &a, err, sizeof(err)) == -1)
		return 0;
	buf_init(&out, 64u * 1024 * 1024);
	if (index_serialize(&a, &out) == -1)
		abort();
	if (index_parse(out.data, out.len, &b, err, sizeof(err)) == -1)
		abort();
	if (a.n != b.n)
		abort();
	for (i = 0; i < a.n; i++)
		if (a.v[i].seq != b.v[i].seq || a.v[i].size != b.v[i].size ||
		    strcmp(a.v[i].uidl, b.v[i].uidl) != 0 ||
		    strcmp(a.v[i].name, b.v[i].name) != 0)
			abort();
	index_free(&a);
	index_free(&b);
	buf_clear(&out);
	return 0;
}
