/*
 * index.c: the per-mailbox index file, postern.index, and UIDLs.
 *
 * Owns: the in-memory struct index and the strings of its entries.
 * Trusts nothing in an index file: it may have been truncated by a full
 * disk, edited by hand or written by a hostile local user, so every byte
 * is checked and any fault rejects the whole file (the caller then
 * rebuilds from the Maildir, which gives the same UIDLs because they are
 * a function of the file names, or recorded in the UIDL map, whose
 * parser and serializer are here too).
 *
 * File format, version 1.  Text, lines end with LF, fields are separated
 * by exactly one space, every octet is in 0x20..0x7e except the LFs.
 * Numbers are decimal without sign or leading zeros.
 *
 *	postern-index 1
 *	state <mtime-sec> <mtime-nsec> <scanned-sec> <scanned-nsec> <next-seq>
 *	<seq> <uidl> <size> <stored-size> <retr-time> <flags> <name>
 *	...			(one line per message, seq increasing)
 *	end <count> <checksum>
 *
 * state: cur/'s mtime when its listing was taken, the clock just before
 * that, and the next arrival sequence number (above every seq).  uidl:
 * 1..70 octets in 0x21..0x7e, unique.  size: wire size; stored-size:
 * octets in the file; retr-time: unix time of the first RETR or 0; flags:
 * MSG_* bits of store.h.  name: the file name in cur/, with every octet
 * outside 0x21..0x7e and every '%' written as %XX (upper-case hex, and
 * only those), unique.  count: the number of message lines.  checksum: 16
 * lower-case hex digits of FNV-1a 64 over every octet before "end".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "lib/buf.h"
#include "lib/strnum.h"
#include "store/index.h"
#include "store/store.h"

#define INDEX_MAGIC		"postern-index"
#define INDEX_KNOWN_FLAGS	MSG_WIRE_CLEAN
/* The shortest message line: "1 a 0 0 0 0 n\n". */
#define INDEX_MIN_LINE		14
#define FIELD_MAX		(INDEX_NAME_MAX * 3)
#define UIDL_MAX_ATTEMPTS	1000

#define FNV64_OFFSET		0xcbf29ce484222325ull
#define FNV64_PRIME		0x100000001b3ull

/* 24 octets: the table is probed at random, so its size is cache
 * misses.  An empty slot has key NULL. */
struct index_map_slot {
	const char	*key;
	uint32_t	 len;
	uint32_t	 val;
	uint32_t	 hash;	/* high half of map_hash */
};

uint64_t
index_fnv1a64(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= FNV64_PRIME;
	}
	return h;
}

/*
 * The map's hash: eight octets at a time (then the rest), each word mixed
 * in with a multiplication, and a 64-bit finalizer (MurmurHash3 fmix64)
 * so that the low bits, which pick the slot, depend on every octet:
 * names that differ only in a few digits must not build long runs under
 * linear probing.  Not stored anywhere, so it may change.
 */
static uint64_t
map_hash(const char *key, size_t len)
{
	uint64_t h = FNV64_OFFSET ^ len, w;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		memcpy(&w, key + i, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	if (i < len) {
		w = 0;
		memcpy(&w, key + i, len - i);
		h = (h ^ w) * 0x9e3779b97f4a7c15ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

/* ---- entries ---- */

void
index_init(struct index *idx)
{
	memset(idx, 0, sizeof(*idx));
	idx->next_seq = 1;
}

/* Whether s lies in idx's block of strings (it is not freed alone). */
static bool
in_block(const struct index *idx, const char *s)
{
	uintptr_t p = (uintptr_t)s, b = (uintptr_t)idx->strings;

	return idx->strings != NULL && p >= b && p - b < idx->strings_len;
}

static void
str_free(const struct index *idx, char *s)
{
	if (!in_block(idx, s))
		free(s);
}

static void
entry_free(const struct index *idx, struct index_entry *e)
{
	str_free(idx, e->uidl);
	str_free(idx, e->name);
	e->uidl = NULL;
	e->name = NULL;
}

void
index_free(struct index *idx)
{
	size_t i;

	for (i = 0; i < idx->n; i++)
		entry_free(idx, &idx->v[i]);
	free(idx->v);
	free(idx->strings);
	index_init(idx);
}

void
index_set_name(struct index *idx, size_t i, char *name)
{
	str_free(idx, idx->v[i].name);
	idx->v[i].name = name;
}

void
index_set_uidl(struct index *idx, size_t i, char *uidl)
{
	str_free(idx, idx->v[i].uidl);
	idx->v[i].uidl = uidl;
}

size_t
index_bytes(const struct index *idx)
{
	size_t i, n = idx->cap * sizeof(*idx->v) + idx->strings_len;

	for (i = 0; i < idx->n; i++) {
		const struct index_entry *e = &idx->v[i];

		if (e->uidl != NULL && !in_block(idx, e->uidl))
			n += strlen(e->uidl) + 1;
		if (e->name != NULL && !in_block(idx, e->name))
			n += strlen(e->name) + 1;
	}
	return n;
}

/* Copies s (may be NULL) to *at in the block; advances *at. */
static char *
block_put(char **at, const char *s)
{
	char *p = *at;
	size_t len;

	if (s == NULL)
		return NULL;
	len = strlen(s) + 1;
	memcpy(p, s, len);
	*at += len;
	return p;
}

int
index_copy(struct index *dst, const struct index *src)
{
	size_t i, len = 0;
	char *at;

	index_init(dst);
	for (i = 0; i < src->n; i++) {
		const struct index_entry *e = &src->v[i];

		len += (e->uidl != NULL ? strlen(e->uidl) + 1 : 0) +
		    (e->name != NULL ? strlen(e->name) + 1 : 0);
	}
	if (src->n > 0 && ((dst->v = calloc(src->n, sizeof(*dst->v))) ==
	    NULL || (dst->strings = malloc(len + 1)) == NULL)) {
		free(dst->v);
		index_init(dst);
		return -1;
	}
	dst->cap = dst->n = src->n;
	dst->strings_len = len;
	dst->next_seq = src->next_seq;
	dst->cur_mtime = src->cur_mtime;
	dst->scanned = src->scanned;
	at = dst->strings;
	for (i = 0; i < src->n; i++) {
		dst->v[i] = src->v[i];
		dst->v[i].uidl = block_put(&at, src->v[i].uidl);
		dst->v[i].name = block_put(&at, src->v[i].name);
	}
	return 0;
}

static int
index_reserve(struct index *idx, size_t want)
{
	struct index_entry *v;
	size_t ncap;

	if (want <= idx->cap)
		return 0;
	if (want > MAX_MESSAGES_PER_MAILBOX) {
		errno = EMSGSIZE;
		return -1;
	}
	ncap = idx->cap == 0 ? 64 : idx->cap;
	while (ncap < want)
		ncap *= 2;
	if (ncap > MAX_MESSAGES_PER_MAILBOX)
		ncap = MAX_MESSAGES_PER_MAILBOX;
	v = reallocarray(idx->v, ncap, sizeof(*v));
	if (v == NULL)
		return -1;
	idx->v = v;
	idx->cap = ncap;
	return 0;
}

int
index_append(struct index *idx, uint64_t seq, uint64_t size,
    uint64_t stored_size, int64_t retr_time, unsigned int flags, char *uidl,
    char *name)
{
	struct index_entry *e;

	if (index_reserve(idx, idx->n + 1) == -1)
		return -1;
	e = &idx->v[idx->n++];
	e->seq = seq;
	e->size = size;
	e->stored_size = stored_size;
	e->retr_time = retr_time;
	e->flags = flags;
	e->uidl = uidl;
	e->name = name;
	if (seq >= idx->next_seq)
		idx->next_seq = seq + 1;
	return 0;
}

void
index_compact(struct index *idx, const bool *drop)
{
	size_t i, o = 0;

	for (i = 0; i < idx->n; i++) {
		if (drop[i]) {
			entry_free(idx, &idx->v[i]);
			continue;
		}
		idx->v[o++] = idx->v[i];
	}
	idx->n = o;
}

/* ---- names and UIDLs ---- */

size_t
index_base_len(const char *name)
{
	const char *info = strstr(name, ":2,");

	return info != NULL ? (size_t)(info - name) : strlen(name);
}

bool
index_uidl_valid(const char *s, size_t len)
{
	size_t i;

	if (len < 1 || len > UIDL_MAX_LEN)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

bool
index_name_valid(const char *s, size_t len)
{
	if (len < 1 || len > INDEX_NAME_MAX || s[0] == '.')
		return false;
	return memchr(s, '/', len) == NULL && memchr(s, '\0', len) == NULL;
}

/* A decimal field value: digits only, no leading zero (but "0"), at
 * most INDEX_MAX_MSG_OCTETS. */
static bool
size_field(const char *s, size_t len, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 20 || (s[0] == '0' && len > 1))
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > INDEX_MAX_MSG_OCTETS)
			return false;
	}
	*v_r = v;
	return true;
}

bool
index_name_sizes(const char *base, size_t len, uint64_t *stored_r,
    uint64_t *wire_r)
{
	const char *p = base, *end = base + len, *f, *fend;
	bool have_s = false, have_w = false;
	uint64_t v;

	while ((f = memchr(p, ',', (size_t)(end - p))) != NULL) {
		f++;
		fend = memchr(f, ',', (size_t)(end - f));
		if (fend == NULL)
			fend = end;
		p = fend;
		if (fend - f < 2 || f[1] != '=' || (f[0] != 'S' &&
		    f[0] != 'W'))
			continue;	/* another program's field */
		if (!size_field(f + 2, (size_t)(fend - f - 2), &v))
			return false;
		if (f[0] == 'S') {
			if (have_s)
				return false;
			have_s = true;
			*stored_r = v;
		} else {
			if (have_w)
				return false;
			have_w = true;
			*wire_r = v;
		}
	}
	return have_s && have_w;
}

int
index_uidl_for(const char *base, size_t len, unsigned int attempt, char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	char num[16];
	EVP_MD_CTX *ctx;
	int ok, n;

	if (attempt == 0 && index_uidl_valid(base, len)) {
		memcpy(out, base, len);
		out[len] = '\0';
		return 0;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, base, len) == 1;
	if (ok && attempt > 0) {
		n = snprintf(num, sizeof(num), "%u", attempt);
		ok = n > 0 && (size_t)n < sizeof(num) &&
		    EVP_DigestUpdate(ctx, "", 1) == 1 &&
		    EVP_DigestUpdate(ctx, num, (size_t)n) == 1;
	}
	ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= 16;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return -1;
	for (i = 0; i < 16; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[32] = '\0';
	return 0;
}

int
index_assign_uidls(struct index *idx)
{
	return index_assign_uidls_map(idx, NULL, NULL);
}

/* The set of the UIDLs idx holds, for collision checks. */
static int
uidl_set(const struct index *idx, struct index_map *set)
{
	size_t i;

	if (index_map_init(set, idx->n) == -1)
		return -1;
	for (i = 0; i < idx->n; i++) {
		const char *u = idx->v[i].uidl;

		if (u != NULL && index_map_add(set, u, strlen(u),
		    (uint32_t)i) == -1) {
			index_map_free(set);
			return -1;
		}
	}
	return 0;
}

static bool
uidl_held(const struct index_map *set, const char *u)
{
	size_t it = 0;
	uint32_t v;

	return index_map_find(set, u, strlen(u), &it, &v);
}

int
index_assign_uidls_map(struct index *idx, const struct uidl_map *map,
    struct uidl_assign_stats *st)
{
	struct index_map set;
	char cand[UIDL_MAX_LEN + 1];
	size_t i;
	unsigned int attempt;

	if (st != NULL)
		memset(st, 0, sizeof(*st));
	if (uidl_set(idx, &set) == -1)
		return -1;
	/* Recorded UIDLs first, so that no derived one takes them. */
	for (i = 0; map != NULL && i < idx->n; i++) {
		struct index_entry *e = &idx->v[i];
		size_t blen;
		const char *u;

		if (e->uidl != NULL)
			continue;
		blen = index_base_len(e->name);
		if ((u = uidl_map_get(map, e->name, blen)) == NULL)
			continue;
		if (uidl_held(&set, u)) {
			if (st != NULL)
				st->map_taken++;
			continue;
		}
		if ((e->uidl = strdup(u)) == NULL)
			goto fail;
		if (index_map_add(&set, e->uidl, strlen(e->uidl),
		    (uint32_t)i) == -1)
			goto fail;
		if (st != NULL) {
			st->from_map++;
			if (index_uidl_for(e->name, blen, 0, cand) == -1 ||
			    strcmp(cand, u) != 0)
				st->map_differ++;
		}
	}
	for (i = 0; i < idx->n; i++) {
		struct index_entry *e = &idx->v[i];
		size_t blen;

		if (e->uidl != NULL)
			continue;
		blen = index_base_len(e->name);
		for (attempt = 0; attempt < UIDL_MAX_ATTEMPTS; attempt++) {
			if (index_uidl_for(e->name, blen, attempt,
			    cand) == -1) {
				errno = EIO;
				goto fail;
			}
			if (!uidl_held(&set, cand))
				break;
		}
		if (attempt == UIDL_MAX_ATTEMPTS) {
			errno = EIO;
			goto fail;
		}
		if ((e->uidl = strdup(cand)) == NULL)
			goto fail;
		if (index_map_add(&set, e->uidl, strlen(e->uidl),
		    (uint32_t)i) == -1)
			goto fail;
		if (st != NULL)
			st->derived++;
	}
	index_map_free(&set);
	return 0;
fail:
	index_map_free(&set);
	return -1;
}

/* ---- hash map ---- */

int
index_map_init(struct index_map *m, size_t expected)
{
	size_t cap = 16;

	while (cap < expected * 2 && cap < ((size_t)1 << 40))
		cap *= 2;
	m->slots = calloc(cap, sizeof(*m->slots));
	if (m->slots == NULL)
		return -1;
	m->mask = cap - 1;
	m->n = 0;
	return 0;
}

void
index_map_free(struct index_map *m)
{
	free(m->slots);
	m->slots = NULL;
	m->mask = 0;
	m->n = 0;
}

static void
map_put(struct index_map_slot *slots, size_t mask, size_t start,
    const struct index_map_slot *s)
{
	size_t i = start & mask;

	while (slots[i].key != NULL)
		i = (i + 1) & mask;
	slots[i] = *s;
}

/* Doubles the table when one more key would fill more than half. */
static int
map_room(struct index_map *m)
{
	if ((m->n + 1) * 2 > m->mask + 1) {
		size_t ncap = (m->mask + 1) * 2, i;
		struct index_map_slot *ns = calloc(ncap, sizeof(*ns));

		if (ns == NULL)
			return -1;
		for (i = 0; i <= m->mask; i++)
			if (m->slots[i].key != NULL)
				map_put(ns, ncap - 1, (size_t)map_hash(
				    m->slots[i].key, m->slots[i].len),
				    &m->slots[i]);
		free(m->slots);
		m->slots = ns;
		m->mask = ncap - 1;
	}
	return 0;
}

/* Room for one more key of len octets, and its hash in *h.  0 or -1. */
static int
map_prepare(struct index_map *m, const char *key, size_t len, uint64_t *h)
{
	if (len > UINT32_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (map_room(m) == -1)
		return -1;
	*h = map_hash(key, len);
	return 0;
}

int
index_map_add(struct index_map *m, const char *key, size_t len, uint32_t val)
{
	struct index_map_slot s;
	uint64_t h;

	if (map_prepare(m, key, len, &h) == -1)
		return -1;
	s.key = key;
	s.len = (uint32_t)len;
	s.val = val;
	s.hash = (uint32_t)(h >> 32);
	map_put(m->slots, m->mask, (size_t)h, &s);
	m->n++;
	return 0;
}

int
index_map_add_unique(struct index_map *m, const char *key, size_t len,
    uint32_t val)
{
	struct index_map_slot *s;
	uint64_t h;
	uint32_t hi;
	size_t i;

	if (map_prepare(m, key, len, &h) == -1)
		return -1;
	hi = (uint32_t)(h >> 32);
	/* At most half full: the probe ends on an empty slot. */
	for (i = (size_t)h & m->mask;; i = (i + 1) & m->mask) {
		s = &m->slots[i];
		if (s->key == NULL)
			break;
		if (s->hash == hi && s->len == len &&
		    memcmp(s->key, key, len) == 0)
			return 0;
	}
	s->key = key;
	s->len = (uint32_t)len;
	s->val = val;
	s->hash = hi;
	m->n++;
	return 1;
}

bool
index_map_find(const struct index_map *m, const char *key, size_t len,
    size_t *it, uint32_t *val_r)
{
	uint64_t h = map_hash(key, len);
	uint32_t hi = (uint32_t)(h >> 32);

	while (*it <= m->mask) {
		const struct index_map_slot *s =
		    &m->slots[((size_t)h + *it) & m->mask];

		(*it)++;
		if (s->key == NULL)
			return false;
		if (s->hash == hi && s->len == len &&
		    memcmp(s->key, key, len) == 0) {
			*val_r = s->val;
			return true;
		}
	}
	return false;
}

/* ---- parsing ---- */

struct field {
	const char	*p;
	size_t		 len;
};

/* Splits line[0..len) at single spaces into exactly n non-empty fields. */
static int
split_fields(const char *line, size_t len, struct field *f, size_t n)
{
	size_t k = 0, i, start = 0;

	for (i = 0; i <= len; i++) {
		if (i < len && line[i] != ' ')
			continue;
		if (i == start || k == n)
			return -1;
		f[k].p = line + start;
		f[k].len = i - start;
		k++;
		start = i + 1;
	}
	return k == n ? 0 : -1;
}

static bool
field_is(const struct field *f, const char *s)
{
	return f->len == strlen(s) && memcmp(f->p, s, f->len) == 0;
}

static int
field_u64(const struct field *f, uint64_t max, uint64_t *v_r)
{
	char tmp[24];

	if (f->len == 0 || f->len >= sizeof(tmp))
		return -1;
	if (f->len > 1 && f->p[0] == '0')
		return -1;		/* not the form we write */
	memcpy(tmp, f->p, f->len);
	tmp[f->len] = '\0';
	return parse_u64(tmp, max, v_r) == PARSE_OK ? 0 : -1;
}

static bool
needs_escape(unsigned char c)
{
	return c < 0x21 || c > 0x7e || c == '%';
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decodes a name field into out (which has room for f->len + 1 octets;
 * the decoded name is never longer); only the canonical form is
 * accepted.  The length, or -1.
 */
static ssize_t
name_decode(const struct field *f, char *out)
{
	size_t i, o = 0;

	if (f->len > FIELD_MAX)
		return -1;
	for (i = 0; i < f->len; i++) {
		unsigned char c = (unsigned char)f->p[i];

		if (o == INDEX_NAME_MAX)
			return -1;
		if (c == '%') {
			int hi, lo;

			if (i + 2 >= f->len)
				return -1;
			hi = hexval(f->p[i + 1]);
			lo = hexval(f->p[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi << 4 | lo);
			if (!needs_escape(c))
				return -1;
			i += 2;
		} else if (needs_escape(c))
			return -1;
		out[o++] = (char)c;
	}
	if (!index_name_valid(out, o))
		return -1;
	out[o] = '\0';
	return (ssize_t)o;
}

static void
set_err(char *err, size_t errsize, const char *what, size_t lineno)
{
	if (err == NULL || errsize == 0)
		return;
	if (lineno > 0)
		snprintf(err, errsize, "index line %zu: %s", lineno, what);
	else
		snprintf(err, errsize, "index: %s", what);
}

static int
parse_state(const char *line, size_t len, struct index *idx)
{
	struct field f[6];
	uint64_t ms, mn, ss, sn, next;

	if (split_fields(line, len, f, 6) == -1 || !field_is(&f[0], "state"))
		return -1;
	if (field_u64(&f[1], INDEX_MAX_TIME, &ms) == -1 ||
	    field_u64(&f[2], 999999999, &mn) == -1 ||
	    field_u64(&f[3], INDEX_MAX_TIME, &ss) == -1 ||
	    field_u64(&f[4], 999999999, &sn) == -1 ||
	    field_u64(&f[5], UINT64_MAX - 1, &next) == -1 || next == 0)
		return -1;
	idx->cur_mtime.sec = (int64_t)ms;
	idx->cur_mtime.nsec = (long)mn;
	idx->scanned.sec = (int64_t)ss;
	idx->scanned.nsec = (long)sn;
	idx->next_seq = next;
	return 0;
}

/*
 * One message line; checks it against the previous ones through maps.
 * Its UIDL and name go to *at in idx's block of strings, which has room
 * for the line and its LF.
 */
static const char *
parse_entry(const char *line, size_t len, struct index *idx,
    uint64_t next_seq, struct index_map *uidls, struct index_map *names,
    char **at)
{
	struct field f[7];
	uint64_t seq, size, stored, rt, flags;
	char *uidl = *at, *name;
	ssize_t nlen;
	uint32_t v;

	if (split_fields(line, len, f, 7) == -1)
		return "malformed message line";
	if (field_u64(&f[0], UINT64_MAX, &seq) == -1 || seq >= next_seq ||
	    (idx->n > 0 && seq <= idx->v[idx->n - 1].seq))
		return "bad sequence number";
	if (!index_uidl_valid(f[1].p, f[1].len))
		return "bad UIDL";
	if (field_u64(&f[2], 2 * INDEX_MAX_MSG_OCTETS + 2, &size) == -1 ||
	    field_u64(&f[3], INDEX_MAX_MSG_OCTETS, &stored) == -1 ||
	    size > 2 * stored + 2 || (size == 0) != (stored == 0))
		return "bad size";
	if (field_u64(&f[4], INDEX_MAX_TIME, &rt) == -1)
		return "bad retrieval time";
	if (field_u64(&f[5], INDEX_KNOWN_FLAGS, &flags) == -1 ||
	    (flags & ~(uint64_t)INDEX_KNOWN_FLAGS) != 0 ||
	    ((flags & MSG_WIRE_CLEAN) && size != stored))
		return "bad flags";
	/* The maps' keys: the UIDL in the file's text, which outlives
	 * them, and the decoded name in the block (on a failure the parse
	 * ends and the maps are freed unread). */
	v = (uint32_t)idx->n;
	switch (index_map_add_unique(uidls, f[1].p, f[1].len, v)) {
	case 0:
		return "duplicate UIDL";
	case -1:
		return "out of memory";
	}
	memcpy(uidl, f[1].p, f[1].len);
	uidl[f[1].len] = '\0';
	name = uidl + f[1].len + 1;
	if ((nlen = name_decode(&f[6], name)) == -1)
		return "bad file name";
	switch (index_map_add_unique(names, name, (size_t)nlen, v)) {
	case 0:
		return "duplicate file name";
	case -1:
		return "out of memory";
	}
	/* The capacity was reserved for the count. */
	if (index_append(idx, seq, size, stored, (int64_t)rt,
	    (unsigned int)flags, uidl, name) == -1)
		return "out of memory";
	*at = name + nlen + 1;
	return NULL;
}

int
index_parse(const char *data, size_t len, struct index *idx, char *err,
    size_t errsize)
{
	struct index_map uidls = { 0 }, names = { 0 };
	struct field f[3];
	const char *why = NULL, *trailer, *p, *end, *nl;
	size_t body_len, i, lineno, used;
	uint64_t count, sum, next_seq;
	char want[17], *at, *block;

	index_init(idx);
	if (len == 0 || len > INDEX_MAX_BYTES || data[len - 1] != '\n') {
		set_err(err, errsize, "empty, too large or truncated", 0);
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)data[i];

		if ((c < 0x20 || c > 0x7e) && c != '\n') {
			set_err(err, errsize, "bad octet", 0);
			return -1;
		}
	}
	/* The trailer is the last line; the checksum covers all before it. */
	for (body_len = len - 1; body_len > 0 && data[body_len - 1] != '\n';)
		body_len--;
	trailer = data + body_len;
	if (split_fields(trailer, len - 1 - body_len, f, 3) == -1 ||
	    !field_is(&f[0], "end") ||
	    field_u64(&f[1], MAX_MESSAGES_PER_MAILBOX, &count) == -1 ||
	    f[2].len != 16) {
		set_err(err, errsize, "bad or missing trailer", 0);
		return -1;
	}
	sum = index_fnv1a64(FNV64_OFFSET, data, body_len);
	snprintf(want, sizeof(want), "%016llx", (unsigned long long)sum);
	if (memcmp(want, f[2].p, 16) != 0) {
		set_err(err, errsize, "checksum mismatch", 0);
		return -1;
	}
	if (count > body_len / INDEX_MIN_LINE) {
		set_err(err, errsize, "count does not fit the file", 0);
		return -1;
	}
	/* Each entry's UIDL and name, with their NULs, take no more octets
	 * than its line with the separators and LF. */
	if (index_map_init(&uidls, (size_t)count) == -1 ||
	    index_map_init(&names, (size_t)count) == -1 ||
	    index_reserve(idx, (size_t)count) == -1 ||
	    (idx->strings = malloc(body_len + 1)) == NULL) {
		why = "out of memory";
		lineno = 0;
		goto fail;
	}
	idx->strings_len = body_len + 1;
	at = idx->strings;

	p = data;
	end = data + body_len;
	next_seq = 0;
	for (lineno = 1; p < end; lineno++) {
		size_t ll;

		nl = memchr(p, '\n', (size_t)(end - p));
		ll = (size_t)(nl - p);
		if (lineno == 1) {
			char magic[32];

			snprintf(magic, sizeof(magic), "%s %d", INDEX_MAGIC,
			    INDEX_VERSION);
			if (ll != strlen(magic) || memcmp(p, magic, ll) != 0)
				why = "unknown header or version";
		} else if (lineno == 2) {
			if (parse_state(p, ll, idx) == -1)
				why = "bad state line";
			next_seq = idx->next_seq;
		} else if (idx->n >= count) {
			why = "more message lines than the count";
		} else
			why = parse_entry(p, ll, idx, next_seq, &uidls, &names,
			    &at);
		if (why != NULL)
			goto fail;
		p = nl + 1;
	}
	lineno = 0;
	if (next_seq == 0)
		why = "missing state line";
	else if (idx->n != count)
		why = "fewer message lines than the count";
	if (why != NULL)
		goto fail;
	idx->next_seq = next_seq;
	index_map_free(&uidls);
	index_map_free(&names);
	/* The strings move to a block of their size: the one sized for
	 * the whole file is a third larger. */
	used = (size_t)(at - idx->strings);
	if ((block = malloc(used + 1)) != NULL) {
		memcpy(block, idx->strings, used);
		for (i = 0; i < idx->n; i++) {
			idx->v[i].uidl = block + (idx->v[i].uidl -
			    idx->strings);
			idx->v[i].name = block + (idx->v[i].name -
			    idx->strings);
		}
		free(idx->strings);
		idx->strings = block;
		idx->strings_len = used + 1;
	}
	return 0;
fail:
	set_err(err, errsize, why, lineno);
	index_map_free(&uidls);
	index_map_free(&names);
	index_free(idx);
	return -1;
}

/* ---- serializing ---- */

static size_t
name_encode(char *out, const char *name)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *name != '\0'; name++) {
		unsigned char c = (unsigned char)*name;

		if (needs_escape(c)) {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		} else
			out[o++] = (char)c;
	}
	return o;
}

static bool
time_ok(const struct index_time *t)
{
	return t->sec >= 0 && t->sec <= INDEX_MAX_TIME && t->nsec >= 0 &&
	    t->nsec <= 999999999;
}

/* The last line of postern.index and postern.uidls: the record count
 * and the checksum of everything from offset start.  0 or -1. */
static int
end_line(struct buf *out, size_t start, size_t n)
{
	uint64_t sum = index_fnv1a64(FNV64_OFFSET, out->data + start,
	    out->len - start);

	return buf_addf(out, "end %zu %016llx\n", n, (unsigned long long)sum);
}

int
index_serialize(const struct index *idx, struct buf *out)
{
	char line[32 + UIDL_MAX_LEN + 5 * 24 + FIELD_MAX];
	struct index_time mt = idx->cur_mtime, sc = idx->scanned;
	size_t start = out->len, i, o;

	if (!time_ok(&mt) || !time_ok(&sc)) {
		/* Never trusted: the readdir shortcut needs real values. */
		mt.sec = sc.sec = 0;
		mt.nsec = sc.nsec = 0;
	}
	if (idx->n > MAX_MESSAGES_PER_MAILBOX || idx->next_seq == 0 ||
	    idx->next_seq == UINT64_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (buf_addf(out, "%s %d\nstate %lld %ld %lld %ld %llu\n",
	    INDEX_MAGIC, INDEX_VERSION, (long long)mt.sec, mt.nsec,
	    (long long)sc.sec, sc.nsec,
	    (unsigned long long)idx->next_seq) == -1)
		return -1;
	for (i = 0; i < idx->n; i++) {
		const struct index_entry *e = &idx->v[i];
		size_t ul;

		if (e->uidl == NULL || e->name == NULL ||
		    !index_uidl_valid(e->uidl, (ul = strlen(e->uidl))) ||
		    !index_name_valid(e->name, strlen(e->name)) ||
		    e->seq >= idx->next_seq ||
		    (i > 0 && e->seq <= idx->v[i - 1].seq) ||
		    e->retr_time < 0 || e->retr_time > INDEX_MAX_TIME ||
		    e->stored_size > INDEX_MAX_MSG_OCTETS ||
		    e->size > 2 * e->stored_size + 2 ||
		    (e->size == 0) != (e->stored_size == 0) ||
		    (e->flags & ~(unsigned int)INDEX_KNOWN_FLAGS) != 0 ||
		    ((e->flags & MSG_WIRE_CLEAN) &&
		    e->size != e->stored_size)) {
			errno = EINVAL;
			goto fail;
		}
		o = fmt_u64(line, e->seq);
		line[o++] = ' ';
		memcpy(line + o, e->uidl, ul);
		o += ul;
		line[o++] = ' ';
		o += fmt_u64(line + o, e->size);
		line[o++] = ' ';
		o += fmt_u64(line + o, e->stored_size);
		line[o++] = ' ';
		o += fmt_u64(line + o, (uint64_t)e->retr_time);
		line[o++] = ' ';
		o += fmt_u64(line + o, e->flags);
		line[o++] = ' ';
		o += name_encode(line + o, e->name);
		line[o++] = '\n';
		if (buf_add(out, line, o) == -1)
			goto fail;
	}
	if (end_line(out, start, idx->n) == 0)
		return 0;
fail:
	out->len = start;
	return -1;
}

/* ---- the UIDL map, postern.uidls ---- */

void
uidl_map_init(struct uidl_map *m)
{
	memset(m, 0, sizeof(*m));
}

void
uidl_map_free(struct uidl_map *m)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		free(m->v[i].base);
		free(m->v[i].uidl);
	}
	free(m->v);
	index_map_free(&m->bybase);
	index_map_free(&m->byuidl);
	uidl_map_init(m);
}

/* The position of base in m, or -1. */
static long
map_find_base(const struct uidl_map *m, const char *base, size_t blen)
{
	size_t it = 0;
	uint32_t v;

	if (m->bybase.slots == NULL ||
	    !index_map_find(&m->bybase, base, blen, &it, &v))
		return -1;
	return (long)v;
}

const char *
uidl_map_get(const struct uidl_map *m, const char *base, size_t blen)
{
	long i = map_find_base(m, base, blen);

	return i < 0 ? NULL : m->v[i].uidl;
}

bool
uidl_map_has_uidl(const struct uidl_map *m, const char *uidl)
{
	size_t it = 0;
	uint32_t v;

	return m->byuidl.slots != NULL &&
	    index_map_find(&m->byuidl, uidl, strlen(uidl), &it, &v);
}

int
uidl_map_put(struct uidl_map *m, const char *base, size_t blen,
    const char *uidl)
{
	struct uidl_map_rec *nv;
	size_t ul = strlen(uidl);
	char *b, *u;
	long i;

	if (!index_name_valid(base, blen) || index_base_len(base) < blen ||
	    !index_uidl_valid(uidl, ul)) {
		errno = EINVAL;
		return -1;
	}
	if ((i = map_find_base(m, base, blen)) >= 0) {
		if (strcmp(m->v[i].uidl, uidl) == 0)
			return 0;
		errno = EEXIST;	/* a recorded UIDL never changes */
		return -1;
	}
	if (uidl_map_has_uidl(m, uidl)) {
		errno = EEXIST;
		return -1;
	}
	if (m->n >= MAX_MESSAGES_PER_MAILBOX) {
		errno = EMSGSIZE;
		return -1;
	}
	if ((m->bybase.slots == NULL && index_map_init(&m->bybase, 16) == -1) ||
	    (m->byuidl.slots == NULL && index_map_init(&m->byuidl, 16) == -1))
		return -1;
	if (m->n == m->cap) {
		size_t ncap = m->cap == 0 ? 64 : m->cap * 2;

		if ((nv = reallocarray(m->v, ncap, sizeof(*nv))) == NULL)
			return -1;
		m->v = nv;
		m->cap = ncap;
	}
	if ((b = strndup(base, blen)) == NULL)
		return -1;
	if ((u = strdup(uidl)) == NULL) {
		free(b);
		return -1;
	}
	/* The keys live in the records, which never move their strings. */
	if (index_map_add(&m->bybase, b, blen, (uint32_t)m->n) == -1 ||
	    index_map_add(&m->byuidl, u, ul, (uint32_t)m->n) == -1) {
		/* The maps may hold b now: keep the record, consistent. */
		m->v[m->n].base = b;
		m->v[m->n].uidl = u;
		m->n++;
		uidl_map_free(m);
		errno = ENOMEM;
		return -1;
	}
	m->v[m->n].base = b;
	m->v[m->n].uidl = u;
	m->n++;
	return 0;
}

int
uidl_map_parse(const char *data, size_t len, struct uidl_map *m, char *err,
    size_t errsize)
{
	struct field f[3];
	const char *why = NULL, *trailer, *p, *end, *nl;
	size_t body_len, i, lineno = 0;
	uint64_t count, sum;
	char want[17], magic[32];

	uidl_map_init(m);
	if (len == 0 || len > INDEX_MAX_BYTES || data[len - 1] != '\n') {
		errf(err, errsize, "uidl map: empty, too large or truncated");
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)data[i];

		if ((c < 0x20 || c > 0x7e) && c != '\n') {
			errf(err, errsize, "uidl map: bad octet");
			return -1;
		}
	}
	for (body_len = len - 1; body_len > 0 && data[body_len - 1] != '\n';)
		body_len--;
	trailer = data + body_len;
	if (split_fields(trailer, len - 1 - body_len, f, 3) == -1 ||
	    !field_is(&f[0], "end") ||
	    field_u64(&f[1], MAX_MESSAGES_PER_MAILBOX, &count) == -1 ||
	    f[2].len != 16) {
		errf(err, errsize, "uidl map: bad or missing trailer");
		return -1;
	}
	sum = index_fnv1a64(FNV64_OFFSET, data, body_len);
	snprintf(want, sizeof(want), "%016llx", (unsigned long long)sum);
	if (memcmp(want, f[2].p, 16) != 0) {
		errf(err, errsize, "uidl map: checksum mismatch");
		return -1;
	}
	snprintf(magic, sizeof(magic), "%s %d", UIDL_MAP_MAGIC,
	    UIDL_MAP_VERSION);
	p = data;
	end = data + body_len;
	for (lineno = 1; p < end; lineno++) {
		char base[FIELD_MAX + 1], u[UIDL_MAX_LEN + 1];
		ssize_t blen;
		size_t ll;

		nl = memchr(p, '\n', (size_t)(end - p));
		ll = (size_t)(nl - p);
		if (lineno == 1) {
			if (ll != strlen(magic) || memcmp(p, magic, ll) != 0) {
				why = "unknown header or version";
				goto fail;
			}
			p = nl + 1;
			continue;
		}
		if (m->n >= count) {
			why = "more lines than the count";
			goto fail;
		}
		if (split_fields(p, ll, f, 2) == -1) {
			why = "malformed line";
			goto fail;
		}
		if (!index_uidl_valid(f[0].p, f[0].len)) {
			why = "bad UIDL";
			goto fail;
		}
		if ((blen = name_decode(&f[1], base)) == -1) {
			why = "bad base name";
			goto fail;
		}
		memcpy(u, f[0].p, f[0].len);
		u[f[0].len] = '\0';
		if (uidl_map_put(m, base, (size_t)blen, u) == -1) {
			why = errno == EEXIST ? "duplicate base name or UIDL" :
			    errno == EINVAL ? "bad base name" : "out of memory";
			goto fail;
		}
		p = nl + 1;
	}
	if (lineno == 1) {
		why = "missing header";
		lineno = 0;
		goto fail;
	}
	if (m->n != count) {
		why = "fewer lines than the count";
		lineno = 0;
		goto fail;
	}
	return 0;
fail:
	if (lineno > 0)
		errf(err, errsize, "uidl map line %zu: %s", lineno, why);
	else
		errf(err, errsize, "uidl map: %s", why);
	uidl_map_free(m);
	return -1;
}

int
index_salvage(const char *data, size_t len, struct uidl_map *out)
{
	struct field f[7];
	const char *p = data, *end = data + len, *nl;
	char u[UIDL_MAX_LEN + 1], name[FIELD_MAX + 1];

	if (len > INDEX_MAX_BYTES)
		return 0;
	for (; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			break;		/* a cut last line tells nothing */
		if (split_fields(p, (size_t)(nl - p), f, 7) == -1 ||
		    !index_uidl_valid(f[1].p, f[1].len))
			continue;
		if (name_decode(&f[6], name) == -1)
			continue;
		memcpy(u, f[1].p, f[1].len);
		u[f[1].len] = '\0';
		if (uidl_map_put(out, name, index_base_len(name), u) == -1 &&
		    errno != EEXIST && errno != EINVAL)
			return -1;
	}
	return 0;
}

int
uidl_map_serialize(const struct uidl_map *m, struct buf *out)
{
	char line[UIDL_MAX_LEN + 2 + FIELD_MAX + 1];
	size_t start = out->len, i, o, ul;

	if (buf_addf(out, "%s %d\n", UIDL_MAP_MAGIC, UIDL_MAP_VERSION) == -1)
		return -1;
	for (i = 0; i < m->n; i++) {
		ul = strlen(m->v[i].uidl);
		o = 0;
		memcpy(line, m->v[i].uidl, ul);
		o += ul;
		line[o++] = ' ';
		o += name_encode(line + o, m->v[i].base);
		line[o++] = '\n';
		if (buf_add(out, line, o) == -1)
			goto fail;
	}
	if (end_line(out, start, m->n) == 0)
		return 0;
fail:
	out->len = start;
	return -1;
}
