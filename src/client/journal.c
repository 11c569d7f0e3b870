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
#include <time.h>
#include <unistd.h>

#include "client/client_limits.h"
#include "client/journal.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/strnum.h"

#define JOURNAL_HEADER_V1	"postern-fetch-journal 1"

struct journal {
	char	 *path;
	int	  fd;		/* open for appending */
	char	**uidls;	/* sorted */
	int64_t	 *times;	/* when each was journaled */
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

int64_t
journal_time(const struct journal *j, size_t i)
{
	return i < j->count ? j->times[i] : 0;
}

int64_t
journal_time_of(const struct journal *j, const char *uidl)
{
	bool found;
	size_t i = find(j, uidl, &found);

	return found ? j->times[i] : -1;
}

/* Adds uidl, journaled at t, to the set (a duplicate is ignored).  0 or
 * -1. */
static int
insert(struct journal *j, const char *uidl, size_t len, int64_t t)
{
	char *copy, **n;
	int64_t *nt;
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
		if ((nt = realloc(j->times, cap * sizeof(*nt))) == NULL) {
			free(copy);
			return -1;
		}
		j->times = nt;
		j->cap = cap;
	}
	memmove(j->uidls + at + 1, j->uidls + at, (j->count - at) *
	    sizeof(*j->uidls));
	memmove(j->times + at + 1, j->times + at, (j->count - at) *
	    sizeof(*j->times));
	j->uidls[at] = copy;
	j->times[at] = t;
	j->count++;
	return 0;
}

static bool
uidl_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > FETCH_MAX_ID)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/*
 * One record line (without LF): 1 good, 0 bad.  Version 1 is "UIDL
 * CHECKSUM" (no time: *time_r is left alone), version 2 "UIDL TIME
 * CHECKSUM"; in both the checksum covers what comes before its space.
 */
static int
parse_record(int version, const char *line, size_t len, size_t *uidl_len_r,
    int64_t *time_r)
{
	const char *sp = memchr(line, ' ', len), *sp2 = NULL;
	char hex[9], num[24];
	uint64_t t = 0;
	size_t ulen, body;

	if (sp == NULL || len < 9 || line[len - 9] != ' ')
		return 0;
	body = len - 9;
	ulen = (size_t)(sp - line);
	if (!uidl_valid(line, ulen))
		return 0;
	if (version == 1 ? body != ulen : body <= ulen + 1)
		return 0;
	if (version == 2) {
		sp2 = line + ulen + 1;
		if (body - ulen - 1 >= sizeof(num))
			return 0;
		memcpy(num, sp2, body - ulen - 1);
		num[body - ulen - 1] = '\0';
		if (parse_u64(num, INT64_MAX, &t) != PARSE_OK ||
		    (num[0] == '0' && num[1] != '\0'))
			return 0;
	}
	(void)snprintf(hex, sizeof(hex), "%08x", journal_hash(line, body));
	if (memcmp(line + body + 1, hex, 8) != 0)
		return 0;
	*uidl_len_r = ulen;
	if (version == 2)
		*time_r = (int64_t)t;
	return 1;
}

/* The record of uidl journaled at t, with its LF, into out. */
static int
format_record(const char *uidl, int64_t t, char *out, size_t size)
{
	char body[FETCH_JOURNAL_MAX_LINE];

	if (str_fmt(body, sizeof(body), "%s %lld", uidl, (long long)t) == -1)
		return -1;
	return str_fmt(out, size, "%s %08x\n", body, journal_hash(body,
	    strlen(body)));
}

/* The whole journal as text into b. */
static int
render(const struct journal *j, const bool *keep, struct buf *b)
{
	size_t i;

	if (buf_addf(b, "%s\n", JOURNAL_HEADER) == -1)
		return -1;
	for (i = 0; i < j->count; i++) {
		char line[FETCH_JOURNAL_MAX_LINE];

		if (keep != NULL && !keep[i])
			continue;
		if (format_record(j->uidls[i], j->times[i], line,
		    sizeof(line)) == -1 || buf_add(b, line, strlen(line)) == -1)
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
	free(j->times);
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
	int version;
	int64_t now = (int64_t)time(NULL), t;

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
	/* Both headers have the same length. */
	if (b.len >= hlen + 1 && memcmp(p, JOURNAL_HEADER, hlen) == 0 &&
	    p[hlen] == '\n')
		version = 2;
	else if (b.len >= hlen + 1 && memcmp(p, JOURNAL_HEADER_V1, hlen) ==
	    0 && p[hlen] == '\n')
		version = 1;
	else {
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
		/* A version 1 record has no time: it counts from now,
		 * when the file becomes version 2. */
		t = now;
		if (!parse_record(version, p, len, &ulen, &t)) {
			dropped++;
			continue;
		}
		if (insert(j, p, ulen, t) == -1) {
			jerr(err, errsize, "journal %s: out of memory", path);
			goto fail;
		}
	}
	buf_clear(&b);
	/* Appending after a cut-short line would glue the next record
	 * to it, and a version 2 record must not follow a version 1
	 * header: rewrite the good records first. */
	if (dropped > 0 || version == 1 ? rewrite(j, NULL, err, errsize) ==
	    -1 :
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
	return journal_append_all(j, &uidl, 1, err, errsize);
}

int
journal_append_all(struct journal *j, const char *const *uidls, size_t n,
    char *err, size_t errsize)
{
	char line[FETCH_JOURNAL_MAX_LINE];
	int64_t now = (int64_t)time(NULL);
	struct buf b;
	size_t i;
	int r = 0;

	if (n == 0)
		return 0;
	buf_init(&b, FETCH_JOURNAL_MAX_SIZE);
	for (i = 0; i < n && r == 0; i++) {
		if (!uidl_valid(uidls[i], strlen(uidls[i])) ||
		    format_record(uidls[i], now, line, sizeof(line)) == -1) {
			jerr(err, errsize, "journal %s: invalid UIDL",
			    j->path);
			r = -1;
		} else if (buf_add(&b, line, strlen(line)) == -1) {
			jerr(err, errsize, "journal %s: out of memory",
			    j->path);
			r = -1;
		}
	}
	if (r == 0 && (write_full(j->fd, b.data, b.len) == -1 ||
	    fdatasync(j->fd) == -1)) {
		jerr(err, errsize, "journal %s: appending: %s", j->path,
		    strerror(errno));
		r = -1;
	}
	buf_clear(&b);
	for (i = 0; i < n && r == 0; i++)
		if (insert(j, uidls[i], strlen(uidls[i]), now) == -1) {
			jerr(err, errsize, "journal %s: out of memory",
			    j->path);
			r = -1;
		}
	return r;
}

int
journal_compact(struct journal *j, const bool *keep, char *err,
    size_t errsize)
{
	size_t i, o = 0;

	if (rewrite(j, keep, err, errsize) == -1)
		return -1;
	for (i = 0; i < j->count; i++) {
		if (keep[i]) {
			j->times[o] = j->times[i];
			j->uidls[o++] = j->uidls[i];
		} else
			free(j->uidls[i]);
	}
	j->count = o;
	return 0;
}
