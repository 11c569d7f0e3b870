/*
 * mbox_parse.c: the mboxrd scanner, quoting for appends, and the mbox
 * index file.  No file system: mbox.c feeds it.
 *
 * Owns: the entries of struct mbox_index and their UIDL strings.
 * Trusts nothing: mbox octets are any octets (NUL, bare CR, lines of
 * any length), and the index file may be cut by a full disk, edited by
 * hand or written by a hostile local user; any fault in it rejects the
 * whole file and mbox.c scans the mailbox again.
 *
 * The scanner keeps at most MBOX_HEAD_MAX octets of a line, so memory
 * does not grow with line length.  A line's first octets are held back
 * until it is known whether the line is a From_ line (five octets, or
 * its end), and an empty line is held back until the next line shows
 * whether it was the separator.  Message octets go through the wire
 * encoder (in mboxrd mode), so the index's sizes are what RETR sends.
 *
 * Index file format, version 1.  Text, lines end with LF, fields are
 * separated by one space, numbers are decimal without leading zeros:
 *
 *	postern-mbox-index 1
 *	file <dev> <ino> <size> <mtime-sec> <mtime-nsec> <tail-ok>
 *	uid <prefix> <next-uid>
 *	m <from-off> <from-len> <from-hash> <data-off> <stored> <wire>
 *	    <head-hash> <retr-time> <uidl>	(one line per message, in
 *					 file order)
 *	end <count> <checksum>
 *
 * file: the mbox the entries describe (st_dev, st_ino, st_size, st_mtim)
 * and whether a From_ line appended at its end starts a message (0/1).
 * uid: 16 lower-case hex digits chosen at random when the index is made,
 * and the number of the next UIDL to give.  from-hash, head-hash: 16
 * lower-case hex digits of FNV-1a 64 of the From_ line and of the
 * message's header lines (they tell messages apart when the mbox must
 * be indexed again).  retr-time: unix time of the first RETR, or 0.
 * checksum: 16 lower-case hex digits of FNV-1a 64 over every octet
 * before "end".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/strnum.h"
#include "store/index.h"
#include "store/mbox_parse.h"

#define MBOX_INDEX_MAGIC	"postern-mbox-index 1\n"
#define MBOX_FIELDS_MAX		11
#define MBOX_LINE_MAX		(UIDL_MAX_LEN + 200)
#define XUIDL_NAME		"X-UIDL:"

static const char from_[] = "From ";
#define FROM_LEN		(sizeof(from_) - 1)

/* ---- the scanner ---- */

void
mbox_scan_init(struct mbox_scan *s, uint64_t start)
{
	memset(s, 0, sizeof(*s));
	s->off = start;
	s->bol = true;
	s->first = true;
	s->tail_ok = true;
}

static void
feed_msg(struct mbox_scan *s, const uint8_t *p, size_t n)
{
	if (n == 0)
		return;
	(void)wire_enc_feed(&s->enc, p, n, NULL);	/* counts only */
	s->cur.stored += n;
	if (s->in_header)
		s->cur.head_hash = index_fnv1a64(s->cur.head_hash, p, n);
}

/* The held empty line belongs to the message after all. */
static void
release_held(struct mbox_scan *s)
{
	static const uint8_t crlf[] = "\r\n";

	if (s->held_len == 0)
		return;
	feed_msg(s, s->held_len == 2 ? crlf : crlf + 1, s->held_len);
	s->held_len = 0;
}

/* Ends the open message; a held empty line was its separator. */
static int
end_msg(struct mbox_scan *s, mbox_found_fn *found, void *arg)
{
	if (!s->in_msg)
		return 0;
	s->held_len = 0;
	(void)wire_enc_finish(&s->enc, NULL);
	s->cur.wire = s->enc.octets;
	s->in_msg = false;
	return found(arg, &s->cur);
}

/* A header line "X-UIDL: value" kept whole in head: the first valid one
 * is the message's. */
static void
header_line(struct mbox_scan *s)
{
	const uint8_t *v, *e;
	size_t n = strlen(XUIDL_NAME);

	if (s->cur.xuidl[0] != '\0' || s->head_len != s->line_len ||
	    s->head_len < n || strncasecmp((const char *)s->head, XUIDL_NAME,
	    n) != 0)
		return;
	v = s->head + n;
	e = s->head + s->head_len;
	if (e > v && e[-1] == '\r')
		e--;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (!index_uidl_valid((const char *)v, (size_t)(e - v)))
		return;
	memcpy(s->cur.xuidl, v, (size_t)(e - v));
	s->cur.xuidl[e - v] = '\0';
}

/*
 * The current line's kind is known (five octets seen, or its end):
 * a From_ line opens a message, a line before any From_ line is garbage,
 * a non-empty line releases a held empty line.  Empty lines are decided
 * at their LF, in line_end.
 */
static int
decide(struct mbox_scan *s, mbox_found_fn *found, void *arg)
{
	s->decided = true;
	s->is_from = (s->first || s->prev_blank) && s->head_len >= FROM_LEN &&
	    memcmp(s->head, from_, FROM_LEN) == 0;
	if (s->is_from) {
		if (end_msg(s, found, arg) == -1)
			return -1;
		memset(&s->cur, 0, sizeof(s->cur));
		s->cur.from_off = s->line_off;
		s->cur.from_hash = index_fnv1a64(INDEX_FNV64_OFFSET, s->head,
		    s->head_len);
		s->cur.from_len = s->head_len;
		s->cur.head_hash = INDEX_FNV64_OFFSET;
		wire_enc_init(&s->enc, false, WIRE_ALL_LINES);
		wire_enc_mboxrd(&s->enc);
		s->in_msg = true;
		s->in_header = true;
		return 0;
	}
	if (!s->in_msg) {
		s->garbage = true;
		return 0;
	}
	release_held(s);
	feed_msg(s, s->head, s->head_len);
	return 0;
}

/* The LF of the current line (at offset s->off - 1). */
static int
line_end(struct mbox_scan *s, mbox_found_fn *found, void *arg)
{
	static const uint8_t lf = '\n';
	bool empty = s->line_len == 0 || (s->line_len == 1 &&
	    s->head[0] == '\r');

	if (!s->decided && !empty && decide(s, found, arg) == -1)
		return -1;
	if (empty) {
		if (s->in_msg) {
			release_held(s);	/* two empty lines in a row */
			s->held_len = (uint8_t)(s->line_len + 1);
			s->in_header = false;
		}
	} else if (s->is_from) {
		s->cur.data_off = s->off;
	} else if (s->in_msg) {
		if (s->in_header)
			header_line(s);
		feed_msg(s, &lf, 1);
	}
	s->prev_blank = empty;
	s->first = false;
	s->bol = true;
	return 0;
}

int
mbox_scan_feed(struct mbox_scan *s, const uint8_t *data, size_t len,
    mbox_found_fn *found, void *arg)
{
	const uint8_t *p = data, *end = data + len, *nl, *seg_end;
	size_t n, k;

	while (p < end) {
		if (s->bol) {
			s->bol = false;
			s->line_off = s->off;
			s->line_len = 0;
			s->head_len = 0;
			s->decided = false;
			s->is_from = false;
		}
		nl = memchr(p, '\n', (size_t)(end - p));
		seg_end = nl != NULL ? nl : end;
		n = (size_t)(seg_end - p);
		/* Keep the line's start. */
		k = MBOX_HEAD_MAX - s->head_len;
		if (k > n)
			k = n;
		if (!s->decided) {
			/* Undecided octets live only in head until then. */
			size_t want = FROM_LEN - s->head_len;

			if (k > want && s->head_len < FROM_LEN) {
				/* Take up to the decision point first. */
				memcpy(s->head + s->head_len, p, want);
				s->head_len += want;
				s->line_len += want;
				s->off += want;
				p += want;
				if (decide(s, found, arg) == -1)
					return -1;
				continue;
			}
			memcpy(s->head + s->head_len, p, k);
			s->head_len += k;
			s->line_len += k;
			s->off += k;
			p += k;
			if (s->head_len >= FROM_LEN && decide(s, found, arg) ==
			    -1)
				return -1;
			if (p < seg_end)
				continue;
		} else {
			memcpy(s->head + s->head_len, p, k);
			s->head_len += k;
			if (s->is_from) {
				s->cur.from_hash = index_fnv1a64(
				    s->cur.from_hash, p, n);
				s->cur.from_len += n;
			} else if (s->in_msg)
				feed_msg(s, p, n);
			s->line_len += n;
			s->off += n;
			p = seg_end;
		}
		if (nl != NULL) {
			p++;
			s->off++;
			if (line_end(s, found, arg) == -1)
				return -1;
		}
	}
	return 0;
}

int
mbox_scan_finish(struct mbox_scan *s, mbox_found_fn *found, void *arg)
{
	if (!s->bol) {
		/* A last line without LF. */
		if (!s->decided && decide(s, found, arg) == -1)
			return -1;
		if (s->is_from)
			s->cur.data_off = s->off;
		s->tail_ok = false;
	} else
		s->tail_ok = s->first || s->prev_blank;
	return end_msg(s, found, arg);
}

/* ---- quoting ---- */

void
mbox_quote_init(struct mbox_quote *q)
{
	q->bol = true;
	q->held = 0;
}

/*
 * At a line start '>'s pass through and "From" is held while it
 * matches; on the space one '>' goes in before the held octets (all
 * '>'s of the run are alike, so adding it after them is the same).
 */
int
mbox_quote_feed(struct mbox_quote *q, const uint8_t *data, size_t len,
    struct buf *out)
{
	const uint8_t *p = data, *end = data + len, *run = data, *nl;

	while (p < end) {
		if (q->held > 0 || q->bol) {
			/* Matching (bol stays set through the '>'s, also
			 * across calls): run == p here. */
			while (p < end) {
				if (q->held == 0 && *p == '>') {
					p++;
					continue;
				}
				if (q->held < 4 &&
				    *p == (uint8_t)from_[q->held]) {
					/* Hold it: flush what passed before. */
					if (q->held == 0 && buf_add(out, run,
					    (size_t)(p - run)) == -1)
						return -1;
					q->held++;
					p++;
					run = p;
					continue;
				}
				if (q->held == 4 && *p == ' ') {
					if (buf_add(out, ">From", 5) == -1)
						return -1;
				} else if (q->held > 0 &&
				    buf_add(out, from_, q->held) == -1)
					return -1;
				if (q->held > 0)
					run = p;
				q->held = 0;
				q->bol = false;
				break;
			}
			if (p == end)
				break;
		}
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL) {
			p = end;
			break;
		}
		p = nl + 1;
		q->bol = true;
	}
	if (q->held == 0 && buf_add(out, run, (size_t)(p - run)) == -1)
		return -1;
	return 0;
}

int
mbox_quote_finish(struct mbox_quote *q, struct buf *out)
{
	if (q->held > 0 && buf_add(out, from_, q->held) == -1)
		return -1;
	q->held = 0;
	return 0;
}

/* ---- the index ---- */

void
mbox_index_init(struct mbox_index *idx)
{
	memset(idx, 0, sizeof(*idx));
	idx->tail_ok = true;
	idx->next_uid = 1;
}

void
mbox_index_free(struct mbox_index *idx)
{
	size_t i;

	for (i = 0; i < idx->n; i++)
		free(idx->v[i].uidl);
	free(idx->v);
	mbox_index_init(idx);
}

int
mbox_index_append(struct mbox_index *idx, const struct mbox_found *f,
    int64_t retr_time, char *uidl)
{
	struct mbox_entry *e;

	if (idx->n >= MAX_MESSAGES_PER_MAILBOX) {
		errno = EMSGSIZE;
		return -1;
	}
	if (idx->n == idx->cap) {
		size_t cap = idx->cap == 0 ? 64 : idx->cap * 2;

		if ((e = reallocarray(idx->v, cap, sizeof(*e))) == NULL)
			return -1;
		idx->v = e;
		idx->cap = cap;
	}
	e = &idx->v[idx->n++];
	e->from_off = f->from_off;
	e->from_len = f->from_len;
	e->from_hash = f->from_hash;
	e->data_off = f->data_off;
	e->stored = f->stored;
	e->wire = f->wire;
	e->head_hash = f->head_hash;
	e->retr_time = retr_time;
	e->uidl = uidl;
	return 0;
}

static bool
hex16(const char *s, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t i;

	if (strlen(s) != 16)
		return false;
	for (i = 0; i < 16; i++) {
		int d;

		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*v_r = v;
	return true;
}

/* Splits line (NUL-terminated, modified) at single spaces. */
static size_t
split(char *line, char **f, size_t max)
{
	size_t n = 0;
	char *p = line;

	for (;;) {
		if (n == max)
			return max + 1;
		f[n++] = p;
		if ((p = strchr(p, ' ')) == NULL)
			return n;
		*p++ = '\0';
	}
}

static bool
num(const char *s, uint64_t max, uint64_t *v_r)
{
	return parse_u64(s, max, v_r) == PARSE_OK;
}

#define BAD(...) do { errf(err, errsize, __VA_ARGS__); goto fail; } while (0)

int
mbox_index_parse(const char *data, size_t len, struct mbox_index *idx,
    char *err, size_t errsize)
{
	struct index_map uidls = { 0 };
	char line[MBOX_LINE_MAX + 1], *f[MBOX_FIELDS_MAX + 1];
	const char *p = data, *end = data + len, *nl, *endline = NULL;
	uint64_t v[8], sum, prev_end = 0, count;
	size_t nf, lineno = 0, i, it;
	uint32_t dummy;

	mbox_index_init(idx);
	if (len < strlen(MBOX_INDEX_MAGIC) || memcmp(data, MBOX_INDEX_MAGIC,
	    strlen(MBOX_INDEX_MAGIC)) != 0)
		BAD("mbox index: not an index of version 1");
	if (memchr(data, '\0', len) != NULL)
		BAD("mbox index: NUL octet");
	p += strlen(MBOX_INDEX_MAGIC);
	while (p < end) {
		lineno++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			BAD("mbox index: line %zu has no end", lineno);
		if ((size_t)(nl - p) > MBOX_LINE_MAX)
			BAD("mbox index: line %zu too long", lineno);
		memcpy(line, p, (size_t)(nl - p));
		line[nl - p] = '\0';
		if (strncmp(line, "end ", 4) == 0) {
			endline = p;
			p = nl + 1;
			break;
		}
		p = nl + 1;
		nf = split(line, f, MBOX_FIELDS_MAX);
		if (lineno == 1) {
			if (nf != 7 || strcmp(f[0], "file") != 0)
				BAD("mbox index: bad file line");
			for (i = 0; i < 6; i++)
				if (!num(f[i + 1], INT64_MAX, &v[i]))
					BAD("mbox index: bad file line");
			if (v[4] > 999999999 || v[5] > 1)
				BAD("mbox index: bad file line");
			idx->dev = v[0];
			idx->ino = v[1];
			idx->size = v[2];
			idx->mtime_sec = (int64_t)v[3];
			idx->mtime_nsec = (long)v[4];
			idx->tail_ok = v[5] == 1;
			continue;
		}
		if (lineno == 2) {
			if (nf != 3 || strcmp(f[0], "uid") != 0 ||
			    !hex16(f[1], &v[0]) ||
			    !num(f[2], INT64_MAX, &idx->next_uid) ||
			    idx->next_uid == 0)
				BAD("mbox index: bad uid line");
			memcpy(idx->prefix, f[1], MBOX_PREFIX_LEN + 1);
			continue;
		}
		if (nf != 10 || strcmp(f[0], "m") != 0)
			BAD("mbox index: bad message line %zu", lineno);
		for (i = 0; i < 8; i++) {
			if (i == 2 || i == 6) {
				if (!hex16(f[i + 1], &v[i]))
					BAD("mbox index: bad hash on line %zu",
					    lineno);
				continue;
			}
			if (!num(f[i + 1], INT64_MAX, &v[i]))
				BAD("mbox index: bad number on line %zu",
				    lineno);
		}
		/* From_ line, then the message, in order, inside the file. */
		if (v[0] < prev_end || v[1] < FROM_LEN ||
		    v[3] < v[0] + v[1] || v[3] > v[0] + v[1] + 1 ||
		    v[4] > idx->size || v[3] > idx->size - v[4] ||
		    v[5] > 2 * v[4] + 2 || v[7] > INDEX_MAX_TIME)
			BAD("mbox index: inconsistent message line %zu",
			    lineno);
		if (!index_uidl_valid(f[9], strlen(f[9])))
			BAD("mbox index: bad UIDL on line %zu", lineno);
		{
			struct mbox_found mf;
			char *u;

			memset(&mf, 0, sizeof(mf));
			mf.from_off = v[0];
			mf.from_len = v[1];
			mf.from_hash = v[2];
			mf.data_off = v[3];
			mf.stored = v[4];
			mf.wire = v[5];
			mf.head_hash = v[6];
			if ((u = strdup(f[9])) == NULL)
				BAD("mbox index: out of memory");
			if (mbox_index_append(idx, &mf, (int64_t)v[7], u) ==
			    -1) {
				free(u);
				BAD("mbox index: too many messages");
			}
		}
		prev_end = v[3] + v[4];
	}
	if (lineno < 2 || idx->prefix[0] == '\0' || endline == NULL)
		BAD("mbox index: incomplete");
	if (p != end)
		BAD("mbox index: data after the end line");
	{
		char tail[64];
		size_t tl = (size_t)(end - endline) - 1;

		if (tl >= sizeof(tail))
			BAD("mbox index: bad end line");
		memcpy(tail, endline, tl);
		tail[tl] = '\0';
		nf = split(tail, f, MBOX_FIELDS_MAX);
		if (nf != 3 || !num(f[1], MAX_MESSAGES_PER_MAILBOX, &count) ||
		    count != idx->n || !hex16(f[2], &v[0]))
			BAD("mbox index: bad end line");
		sum = index_fnv1a64(INDEX_FNV64_OFFSET, data,
		    (size_t)(endline - data));
		if (sum != v[0])
			BAD("mbox index: checksum mismatch");
	}
	if (idx->n > 0 && idx->v[idx->n - 1].data_off +
	    idx->v[idx->n - 1].stored > idx->size)
		BAD("mbox index: messages past the end of the file");
	if (index_map_init(&uidls, idx->n) == -1)
		BAD("mbox index: out of memory");
	for (i = 0; i < idx->n; i++) {
		const char *u = idx->v[i].uidl;

		it = 0;
		if (index_map_find(&uidls, u, strlen(u), &it, &dummy))
			BAD("mbox index: UIDL %s twice", u);
		if (index_map_add(&uidls, u, strlen(u), (uint32_t)i) == -1)
			BAD("mbox index: out of memory");
	}
	index_map_free(&uidls);
	return 0;
fail:
	index_map_free(&uidls);
	mbox_index_free(idx);
	return -1;
}

int
mbox_index_serialize(const struct mbox_index *idx, struct buf *out)
{
	size_t start = out->len, i;
	uint64_t sum;

	if (strlen(idx->prefix) != MBOX_PREFIX_LEN) {
		errno = EINVAL;
		return -1;
	}
	if (buf_addstr(out, MBOX_INDEX_MAGIC) == -1 ||
	    buf_addf(out, "file %llu %llu %llu %lld %ld %d\nuid %s %llu\n",
	    (unsigned long long)idx->dev, (unsigned long long)idx->ino,
	    (unsigned long long)idx->size, (long long)idx->mtime_sec,
	    idx->mtime_nsec, idx->tail_ok ? 1 : 0, idx->prefix,
	    (unsigned long long)idx->next_uid) == -1)
		return -1;
	for (i = 0; i < idx->n; i++) {
		const struct mbox_entry *e = &idx->v[i];

		if (e->uidl == NULL || !index_uidl_valid(e->uidl,
		    strlen(e->uidl))) {
			errno = EINVAL;
			return -1;
		}
		if (buf_addf(out, "m %llu %llu %016llx %llu %llu %llu %016llx"
		    " %lld %s\n", (unsigned long long)e->from_off,
		    (unsigned long long)e->from_len,
		    (unsigned long long)e->from_hash,
		    (unsigned long long)e->data_off,
		    (unsigned long long)e->stored,
		    (unsigned long long)e->wire,
		    (unsigned long long)e->head_hash, (long long)e->retr_time,
		    e->uidl) == -1)
			return -1;
	}
	sum = index_fnv1a64(INDEX_FNV64_OFFSET, out->data + start,
	    out->len - start);
	return buf_addf(out, "end %zu %016llx\n", idx->n,
	    (unsigned long long)sum);
}
