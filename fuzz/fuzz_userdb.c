/*
 * fuzz_userdb.c: passwd-file parsing on arbitrary files.  Whatever loads
 * must hand out only records that keep the promises of userdb.h, and
 * answer lookups without crashing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/userdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every record: a valid name, some credential, each one well formed. */
static int
check_one(const struct user_rec *u, void *arg)
{
	size_t *n = arg;

	if (user_rec_problem(u) != NULL)
		abort();
	if (u->secret != NULL && strlen(u->secret) > MAX_PASSWORD_LEN)
		abort();
	(*n)++;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct userdb *db;
	const struct user_rec *u;
	char err[512];
	size_t n = 0;
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
	if (userdb_open(path, USERDB_PASSWD_FILE, &db, err,
	    sizeof(err)) == -1) {
		if (strchr(err, ':') == NULL)
			abort();	/* every error names the file */
		return 0;
	}
	if (userdb_foreach(db, check_one, &n, err, sizeof(err)) != 0)
		abort();
	if (n == 0 && userdb_caps(db) != 0)
		abort();
	if ((u = userdb_lookup(db, "alice")) != NULL &&
	    strcmp(u->name, "alice") != 0)
		abort();
	(void)userdb_lookup(db, "");
	userdb_free(&db);
	return 0;
}
