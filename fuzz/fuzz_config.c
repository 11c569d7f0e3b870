/*
 * fuzz_config.c: postern.conf parsing on arbitrary files.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct config c;
	char err[512];

	if (path[0] == '\0')
		snprintf(path, sizeof(path), "/tmp/postern-fuzz-%ld.conf",
		    (long)getpid());
	{
		/* No fsync: the file only has to exist for this run. */
		FILE *f = fopen(path, "w");

		if (f == NULL)
			return 0;
		if (fwrite(data, 1, size, f) != size) {
			fclose(f);
			return 0;
		}
		fclose(f);
	}
	memset(&c, 0, sizeof(c));
	if (config_load(path, &c, err, sizeof(err)) == 0) {
		char out[MAX_PATH_LEN];

		(void)config_mailbox_path(&c, "user@example.org", out,
		    sizeof(out));
		config_free(&c);
	} else if (strchr(err, ':') == NULL)
		abort();	/* every error names the file */
	return 0;
}
