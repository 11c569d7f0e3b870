/*
 * fuzz_journal.c: postern fetch's UIDL journal (src/client/journal.c)
 * read from arbitrary file contents, as a crash or a full disk may leave
 * it.  What it keeps must be well formed: appending and compacting
 * still work, and reading the result back gives the same UIDLs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char dir[] = "/tmp/fuzz-journal-XXXXXX";
	static char path[64];
	struct journal *j, *again;
	unsigned int dropped;
	char err[512];
	bool *keep;
	size_t i, n;
	FILE *f;

	if (path[0] == '\0') {
		if (mkdtemp(dir) == NULL)
			abort();
		(void)snprintf(path, sizeof(path), "%s/j", dir);
	}
	if ((f = fopen(path, "w")) == NULL)
		abort();
	if (size > 0 && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
	if (journal_open(path, &j, &dropped, err, sizeof(err)) == -1)
		return 0;
	n = journal_count(j);
	for (i = 0; i < n; i++)
		if (!journal_has(j, journal_uidl(j, i)))
			abort();
	if (journal_append(j, "fuzz-new-uidl", err, sizeof(err)) == -1 ||
	    !journal_has(j, "fuzz-new-uidl"))
		abort();
	n = journal_count(j);
	if ((keep = calloc(n + 1, sizeof(bool))) == NULL)
		abort();
	for (i = 0; i < n; i++)
		keep[i] = (i % 2) == 0;
	if (journal_compact(j, keep, err, sizeof(err)) == -1)
		abort();
	free(keep);
	if (journal_open(path, &again, &dropped, err, sizeof(err)) == -1 ||
	    dropped != 0 || journal_count(again) != journal_count(j))
		abort();
	for (i = 0; i < journal_count(j); i++)
		if (strcmp(journal_uidl(j, i), journal_uidl(again, i)) != 0)
			abort();
	journal_close(&again);
	journal_close(&j);
	return 0;
}
