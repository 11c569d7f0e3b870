/*
 * journal.c: the per-account record of delivered UIDLs (journal.h).
 *
 * Owns: the journal file and its records in memory (a sorted array).
 * Trusts: nothing in the file beyond its checksums.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client_limits.h"
#include "client/journal.h"
#include "lib/buf.h"
#include "lib/fsutil.h"

struct journal {
	char	 *path;
	int	  fd;		/* open for appending */
	char	**uidls;	/* sorted */
	size_t	  count;
	size_t	  cap;
};

static void jerr(char *, size_t, const char *, ...) ATTR_PRINTF(3, 4);

static void
jerr(char *err, size_t errsize, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(err, errsize, fmt, ap);
	va_end(ap);
}

uint32_t
journal_hash(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

/* The index where uidl is or would go; *found_r says which. */
static size_t
find(const struct journal *j, const char *uidl, bool *found_r)
{
	size_t lo = 0, hi = j->count, mid;
	int c;

	*found_r = false;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcmp(j->uidls[mid], uidl);
		if (c == 0) {
			*found_r = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool
journal_has(const struct journal *j, const char *uidl)
{
	bool found;

	(void)find(j, uidl, &found);
	return found;
}

size_t
journal_count(const struct journal *j)
{
	return j->count;
}

const char *
journal_uidl(const struct journal *j, size_t i)
{
	return i < j->count ? j->uidls[i] : NULL;
}

/* Adds uidl to the set (a duplicate is ignored).  0 or -1. */
static int
insert(struct journal *j, const char *uidl, size_t len)
{
	char *copy, **n;
	bool found;
	size_t at;

	if ((copy = strndup(uidl, len)) == NULL)
		return -1;
	at = find(j, copy, &found);
	if (found) {
		free(copy);
		return 0;
	}
	if (j->count == j->cap) {
		size_t cap = j->cap == 0 ? 64 : j->cap * 2;

		if ((n = realloc(j->uidls, cap * sizeof(*n))) == NULL) {
			free(copy);
			return -1;
		}
		j->uidls = n;
		j->cap = cap;
	}
	memmove(j->uidls + at + 1, j->uidls + at, (j->count - at) *
	    sizeof(*j->uidls));
	j->uidls[at] = copy;
	j->count++;
	return 0;
}

static bool
uidl_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > FETCH_MAX_UIDL)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* One record line (without LF): 1 good, 0 bad. */
static int
parse_record(const char *line, size_t len, size_t *uidl_len_r)
{
	const char *sp = memchr(line, ' ', len);
	char hex[9];
	size_t ulen;

	if (sp == NULL)
		return 0;
	ulen = (size_t)(sp - line);
	if (!uidl_valid(line, ulen) || len - ulen - 1 != 8)
		return 0;
	(void)snprintf(hex, sizeof(hex), "%08x", journal_hash(line, ulen));
	if (memcmp(sp + 1, hex, 8) != 0)
		return 0;
	*uidl_len_r = ulen;
	return 1;
}

/* The whole journal as text into b. */
static int
render(const struct journal *j, const bool *keep, struct buf *b)
{
	size_t i;

	if (buf_addf(b, "%s\n", JOURNAL_HEADER) == -1)
		return -1;
	for (i = 0; i < j->count; i++) {
		if (keep != NULL && !keep[i])
			continue;
		if (buf_addf(b, "%s %08x\n", j->uidls[i],
		    journal_hash(j->uidls[i], strlen(j->uidls[i]))) == -1)
			return -1;
	}
	return 0;
}

static int
reopen(struct journal *j, char *err, size_t errsize)
{
	if (j->fd != -1)
		close(j->fd);
	j->fd = open(j->path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (j->fd == -1) {
		jerr(err, errsize, "journal %s: %s", j->path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Writes the records keep says (all with NULL) atomically. */
static int
rewrite(struct journal *j, const bool *keep, char *err, size_t errsize)
{
	struct buf b;
	int r;

	buf_init(&b, FETCH_JOURNAL_MAX_SIZE);
	r = render(j, keep, &b);
	if (r == 0)
		r = write_atomic(j->path, b.data, b.len, 0600);
	if (r == -1)
		jerr(err, errsize, "journal %s: rewriting: %s", j->path,
		    strerror(errno));
	buf_clear(&b);
	if (r == -1)
		return -1;
	return reopen(j, err, errsize);
}

void
journal_close(struct journal **jp)
{
	struct journal *j = *jp;
	size_t i;

	if (j == NULL)
		return;
	if (j->fd != -1)
		close(j->fd);
	for (i = 0; i < j->count; i++)
		free(j->uidls[i]);
	free(j->uidls);
	free(j->path);
	free(j);
	*jp = NULL;
}

int
journal_open(const char *path, struct journal **j_r, unsigned int *dropped_r,
    char *err, size_t errsize)
{
	struct journal *j;
	struct buf b;
	const char *p, *end, *nl;
	size_t hlen = strlen(JOURNAL_HEADER), len, ulen;
	unsigned int dropped = 0;

	*j_r = NULL;
	*dropped_r = 0;
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->path = strdup(path)) == NULL) {
		free(j);
		jerr(err, errsize, "journal %s: out of memory", path);
		return -1;
	}
	j->fd = -1;
	buf_init(&b, FETCH_JOURNAL_MAX_SIZE);
	if (read_file(path, FETCH_JOURNAL_MAX_SIZE, &b) == -1) {
		if (errno != ENOENT) {
			jerr(err, errsize, "journal %s: %s", path,
			    errno == EFBIG ? "too large" : strerror(errno));
			goto fail;
		}
		b.len = 0;
	}
	if (b.len == 0) {
		/* New, or cut short while it was being created. */
		if (rewrite(j, NULL, err, errsize) == -1)
			goto fail;
		buf_clear(&b);
		*j_r = j;
		return 0;
	}
	p = b.data;
	end = b.data + b.len;
	if (b.len < hlen + 1 || memcmp(p, JOURNAL_HEADER, hlen) != 0 ||
	    p[hlen] != '\n') {
		jerr(err, errsize, "journal %s: not a postern fetch journal"
		    " (the first line is not \"%s\")", path, JOURNAL_HEADER);
		goto fail;
	}
	for (p += hlen + 1; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			dropped++;	/* the tail of a cut-short append */
			break;
		}
		len = (size_t)(nl - p);
		if (!parse_record(p, len, &ulen)) {
			dropped++;
			continue;
		}
		if (insert(j, p, ulen) == -1) {
			jerr(err, errsize, "journal %s: out of memory", path);
			goto fail;
		}
	}
	buf_clear(&b);
	/* Appending after a cut-short line would glue the next record
	 * to it: rewrite the good records first. */
	if (dropped > 0 ? rewrite(j, NULL, err, errsize) == -1 :
	    reopen(j, err, errsize) == -1) {
		journal_close(&j);
		return -1;
	}
	*dropped_r = dropped;
	*j_r = j;
	return 0;
fail:
	buf_clear(&b);
	journal_close(&j);
	return -1;
}

int
journal_append(struct journal *j, const char *uidl, char *err,
    size_t errsize)
{
	char line[FETCH_JOURNAL_MAX_LINE];
	size_t len = strlen(uidl);

	if (!uidl_valid(uidl, len) || str_fmt(line, sizeof(line),
	    "%s %08x\n", uidl, journal_hash(uidl, len)) == -1) {
		jerr(err, errsize, "journal %s: invalid UIDL", j->path);
		return -1;
	}
	if (write_full(j->fd, line, strlen(line)) == -1 ||
	    fdatasync(j->fd) == -1) {
		jerr(err, errsize, "journal %s: appending: %s", j->path,
		    strerror(errno));
		return -1;
	}
	if (insert(j, uidl, len) == -1) {
		jerr(err, errsize, "journal %s: out of memory", j->path);
		return -1;
	}
	return 0;
}

int
journal_compact(struct journal *j, const bool *keep, char *err,
    size_t errsize)
{
	size_t i, o = 0;

	if (rewrite(j, keep, err, errsize) == -1)
		return -1;
	for (i = 0; i < j->count; i++) {
		if (keep[i])
			j->uidls[o++] = j->uidls[i];
		else
			free(j->uidls[i]);
	}
	j->count = o;
	return 0;
}
