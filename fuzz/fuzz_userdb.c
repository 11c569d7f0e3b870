/*
 * fuzz_userdb.c: passwd-file parsing on arbitrary files.  Whatever loads
 * must answer lookups of its own users without crashing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/userdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct userdb *db;
	char err[512];
	FILE *f;

	if (path[0] == '\0')
		snprintf(path, sizeof(path), "/tmp/postern-fuzz-%ld.users",
		    (long)getpid());
	if ((f = fopen(path, "w")) == NULL)
		return 0;
	if (fwrite(data, 1, size, f) != size) {
		fclose(f);
		return 0;
	}
	fclose(f);
	if (userdb_open(path, &db, err, sizeof(err)) == -1) {
		if (strchr(err, ':') == NULL)
			abort();	/* every error names the file */
		return 0;
	}
	(void)userdb_lookup(db, "alice");
	(void)userdb_lookup(db, "");
	(void)userdb_has_plain(db);
	userdb_free(&db);
	return 0;
}
