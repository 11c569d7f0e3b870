/*
 * index_cache.c: parsed index files of big Maildirs, kept by a process
 * between sessions.
 *
 * Owns: a copy of each cached index and the mailbox path it belongs to.
 * Trusts: nothing it did not make itself; an entry is only ever a copy of
 * an index that index_parse accepted from the file it is filed under, or
 * that this process wrote to that file (write_index).
 *
 * Opening a Maildir of 100,000 messages means parsing an index of about
 * 14 MB: checking every octet and its checksum, every field, and every
 * UIDL and name against all the others.  The result depends on the
 * file's content alone, so a process that parsed a file once can hand
 * out copies of the result for as long as the file is unchanged.  A file
 * is unchanged while its device, inode, size, mtime and ctime are: the
 * index is only ever replaced by a rename (a new inode), and the kernel
 * sets the ctime on any change to an inode, which no user can set back.
 *
 * Only indexes of INDEX_CACHE_MIN_MESSAGES and more are kept (a small
 * one parses in microseconds), within a budget of octets
 * (index_cache_size); the entry used longest ago goes first.  The cache
 * is off (budget 0) until index_cache_budget is called: posternd's pop3
 * workers turn it on, the postern command does not.
 */
#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "lib/limits.h"
#include "store/index.h"

struct cache_entry {
	char			*path;		/* the Maildir, as opened */
	struct index_file_id	 id;
	struct index		 idx;
	size_t			 bytes;
	uint64_t		 used;		/* tick of the last use */
};

static struct {
	struct cache_entry	 v[INDEX_CACHE_MAX_ENTRIES];
	size_t			 n;
	size_t			 bytes;
	size_t			 budget;
	uint64_t		 tick;
} cache;

static bool
id_eq(const struct index_file_id *a, const struct index_file_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec &&
	    a->ctime_sec == b->ctime_sec && a->ctime_nsec == b->ctime_nsec;
}

static void
drop(size_t i)
{
	struct cache_entry *e = &cache.v[i];

	cache.bytes -= e->bytes;
	free(e->path);
	index_free(&e->idx);
	cache.v[i] = cache.v[--cache.n];
}

static ssize_t
find(const char *path)
{
	size_t i;

	for (i = 0; i < cache.n; i++)
		if (strcmp(cache.v[i].path, path) == 0)
			return (ssize_t)i;
	return -1;
}

void
index_cache_budget(size_t bytes)
{
	cache.budget = bytes;
	while (cache.n > 0 && cache.bytes > cache.budget)
		drop(cache.n - 1);
}

bool
index_cache_get(const char *path, const struct index_file_id *id,
    struct index *out)
{
	ssize_t i;

	if (cache.budget == 0 || (i = find(path)) < 0)
		return false;
	if (!id_eq(&cache.v[i].id, id)) {
		drop((size_t)i);	/* the file was replaced */
		return false;
	}
	if (index_copy(out, &cache.v[i].idx) == -1)
		return false;
	cache.v[i].used = ++cache.tick;
	return true;
}

void
index_cache_put(const char *path, const struct index_file_id *id,
    const struct index *idx)
{
	struct cache_entry e;
	ssize_t i;
	size_t k, oldest;

	if (cache.budget == 0)
		return;
	if ((i = find(path)) >= 0)
		drop((size_t)i);
	if (idx->n < INDEX_CACHE_MIN_MESSAGES)
		return;
	memset(&e, 0, sizeof(e));
	if (index_copy(&e.idx, idx) == -1)
		return;
	e.bytes = index_bytes(&e.idx) + strlen(path) + 1 + sizeof(e);
	if (e.bytes > cache.budget || (e.path = strdup(path)) == NULL) {
		index_free(&e.idx);
		return;
	}
	e.id = *id;
	e.used = ++cache.tick;
	while (cache.n > 0 && (cache.n == INDEX_CACHE_MAX_ENTRIES ||
	    cache.bytes + e.bytes > cache.budget)) {
		for (oldest = 0, k = 1; k < cache.n; k++)
			if (cache.v[k].used < cache.v[oldest].used)
				oldest = k;
		drop(oldest);
	}
	cache.v[cache.n++] = e;
	cache.bytes += e.bytes;
}
