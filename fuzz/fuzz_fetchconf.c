/*
 * fuzz_fetchconf.c: the parser of postern fetch's account file
 * (src/client/account.c) on arbitrary text.  It must accept or refuse
 * with a message, and what it accepts must be findable by name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/account.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fetch_conf fc;
	char err[512];
	size_t i;

	err[0] = '\0';
	if (fetch_conf_parse("fetch.conf", (const char *)data, size, &fc, err,
	    sizeof(err)) == -1) {
		if (err[0] == '\0' || fc.count != 0)
			abort();
		return 0;
	}
	for (i = 0; i < fc.count; i++)
		if (fetch_conf_find(&fc, fc.accounts[i].name) == NULL)
			abort();
	fetch_conf_free(&fc);
	return 0;
}
