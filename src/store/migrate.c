/*
 * migrate.c: the parsers of postern migrate-uidl's sources (migrate.h).
 *
 * Owns: the records of a struct migrate_list and their strings.  Trusts
 * nothing in a source file: it was written by another server, may be
 * truncated, of another version, or edited by hand, so every line goes
 * through the bounded line reader (MIGRATE_MAX_LINE), every number
 * through strict parsing, and anything unexpected refuses the file.
 *
 * Facts taken from the other servers (their documentation and the
 * behaviour of their code, checked against a real Dovecot by
 * tests/interop/test_migrate_dovecot.py):
 *
 *   - Dovecot matches a uidlist record to a file by the name up to the
 *     first ':' (the Maildir info separator); the uidlist stores names
 *     without the ":2,<flags>" part.  Its P extension overrides
 *     pop3_uidl_format, an empty P meaning the base name.  Its %X
 *     modifier turns the decimal value into lower-case hex, a width with
 *     a leading 0 pads with zeros, a width without one cuts.
 *   - Courier's pop3d reads only list versions 2 and 3 and shows
 *     "UID<n>-<uidv>" (or "UID<n>" with uidv 0); matching is again by
 *     the name up to ':'.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/limits.h"
#include "lib/linebuf.h"
#include "lib/strnum.h"
#include "store/index.h"
#include "store/migrate.h"

/* Room for an expanded UIDL: longer ones are invalid anyway, and are
 * kept cut to this size for the report. */
#define EXPAND_MAX	(UIDL_MAX_LEN * 2 + 2)

/* ---- the list ---- */

void
migrate_list_init(struct migrate_list *l)
{
	memset(l, 0, sizeof(*l));
}

void
migrate_list_free(struct migrate_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].base);
		free(l->v[i].uidl);
	}
	free(l->v);
	migrate_list_init(l);
}

int
migrate_list_add(struct migrate_list *l, const char *base, size_t blen,
    const char *uidl, size_t ulen)
{
	struct uidl_import *nv;
	char *b, *u;

	if (l->n >= MAX_MESSAGES_PER_MAILBOX) {
		errno = EMSGSIZE;
		return -1;
	}
	if (l->n == l->cap) {
		size_t ncap = l->cap == 0 ? 64 : l->cap * 2;

		if ((nv = reallocarray(l->v, ncap, sizeof(*nv))) == NULL)
			return -1;
		l->v = nv;
		l->cap = ncap;
	}
	if (ulen > EXPAND_MAX)
		ulen = EXPAND_MAX;	/* invalid anyway: for the report */
	if ((b = strndup(base, blen)) == NULL)
		return -1;
	if ((u = strndup(uidl, ulen)) == NULL) {
		free(b);
		return -1;
	}
	l->v[l->n].base = b;
	l->v[l->n].uidl = u;
	l->v[l->n].status = IMPORT_PENDING;
	l->n++;
	return 0;
}

/* ---- lines ---- */

struct lines {
	const char	*p;
	size_t		 left;
	size_t		 lineno;
	struct linebuf	 lb;
};

static void
lines_init(struct lines *l, const char *data, size_t len)
{
	l->p = data;
	l->left = len;
	l->lineno = 0;
	linebuf_init(&l->lb, MIGRATE_MAX_LINE);
}

/* 1: a line in *line_r, *len_r; 0: the end; -1: *why_r says what. */
static int
next_line(struct lines *l, const char **line_r, size_t *len_r,
    const char **why_r)
{
	size_t ll, consumed;

	if (l->left == 0)
		return 0;
	l->lineno++;
	switch (linebuf_scan(&l->lb, (const uint8_t *)l->p, l->left, &ll,
	    &consumed)) {
	case LINE_OK:
		*line_r = l->p;
		*len_r = ll;
		l->p += consumed;
		l->left -= consumed;
		return 1;
	case LINE_MORE:
		*why_r = "the last line has no newline (a truncated file?)";
		return -1;
	case LINE_TOO_LONG:
		*why_r = "line too long";
		return -1;
	case LINE_HAS_NUL:
	default:
		*why_r = "NUL octet in a line";
		return -1;
	}
}

/* Digits only, no sign, at most max. */
static bool
num_field(const char *s, size_t len, uint64_t max, uint64_t *v_r)
{
	char tmp[24];

	if (len == 0 || len >= sizeof(tmp))
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	return parse_u64(tmp, max, v_r) == PARSE_OK;
}

/* The base name as Dovecot and Courier take it: up to the first ':'. */
static size_t
base_len(const char *name, size_t len)
{
	const char *c = memchr(name, ':', len);

	return c != NULL ? (size_t)(c - name) : len;
}

/* ---- pop3_uidl_format ---- */

enum fmt_var { VAR_NONE, VAR_UID, VAR_UIDV, VAR_GUID, VAR_FILE,
    VAR_PERCENT };

struct fmt_item {
	enum fmt_var	 var;
	bool		 zero;		/* width pads with zeros */
	unsigned int	 width;		/* 0: none */
	char		 mods[4];	/* X, U, L in order, NUL-ended */
	size_t		 used;		/* octets of fmt taken */
};

/* Parses one "%..." at fmt[0] == '%'.  NULL, or the reason. */
static const char *
fmt_item(const char *fmt, struct fmt_item *it)
{
	static const struct {
		const char	*name;
		enum fmt_var	 var;
	} longs[] = {
		{ "uid", VAR_UID },
		{ "uidvalidity", VAR_UIDV },
		{ "guid", VAR_GUID },
		{ "filename", VAR_FILE },
	};
	const char *p = fmt + 1, *end;
	size_t nmods = 0, i, len;

	memset(it, 0, sizeof(*it));
	if (*p == '%') {
		it->var = VAR_PERCENT;
		it->used = 2;
		return NULL;
	}
	if (*p == '-')
		return "offsets (%-N.) are not supported";
	if (*p == '0') {
		it->zero = true;
		p++;
	}
	while (*p >= '0' && *p <= '9') {
		it->width = it->width * 10 + (unsigned int)(*p - '0');
		if (it->width > UIDL_MAX_LEN)
			return "a width over 70 (the longest UIDL)";
		p++;
	}
	if (*p == '.')
		return "offsets (%N.M) are not supported";
	while (*p == 'X' || *p == 'U' || *p == 'L') {
		if (nmods == sizeof(it->mods) - 1)
			return "too many modifiers";
		it->mods[nmods++] = *p++;
	}
	switch (*p) {
	case 'u':
		it->var = VAR_UID;
		break;
	case 'v':
		it->var = VAR_UIDV;
		break;
	case 'g':
		it->var = VAR_GUID;
		break;
	case 'f':
		it->var = VAR_FILE;
		break;
	case 'm':
		return "%m (an MD5 sum of the header, which Dovecot computes"
		    " for mbox only) cannot be reproduced";
	case '{':
		if ((end = strchr(p, '}')) == NULL)
			return "a %{ without }";
		len = (size_t)(end - p - 1);
		for (i = 0; i < N_ELEMENTS(longs); i++)
			if (strlen(longs[i].name) == len &&
			    memcmp(longs[i].name, p + 1, len) == 0)
				break;
		if (i == N_ELEMENTS(longs)) {
			if (len == 3 && memcmp(p + 1, "md5", 3) == 0)
				return "%{md5} (an MD5 sum of the header, which"
				    " Dovecot computes for mbox only) cannot be"
				    " reproduced";
			return "an unknown %{variable} (known: uid,"
			    " uidvalidity, guid, filename)";
		}
		it->var = longs[i].var;
		p = end;
		break;
	case '\0':
		return "a % at the end";
	default:
		return "an unknown variable (known: %u %v %g %f %%)";
	}
	for (i = 0; i < nmods; i++)
		if (it->mods[i] == 'X' && it->var != VAR_UID &&
		    it->var != VAR_UIDV)
			return "X (hex) applies to %u and %v only";
	it->used = (size_t)(p + 1 - fmt);
	return NULL;
}

int
migrate_format_check(const char *fmt, char *err, size_t errsize)
{
	struct fmt_item it;
	const char *why;
	size_t i = 0;

	if (fmt[0] == '\0') {
		errf(err, errsize, "pop3_uidl_format is empty");
		return -1;
	}
	while (fmt[i] != '\0') {
		if (fmt[i] != '%') {
			if ((unsigned char)fmt[i] < 0x21 ||
			    (unsigned char)fmt[i] > 0x7e) {
				errf(err, errsize, "pop3_uidl_format '%s': a"
				    " space or control character cannot be in"
				    " a UIDL", fmt);
				return -1;
			}
			i++;
			continue;
		}
		if ((why = fmt_item(fmt + i, &it)) != NULL) {
			errf(err, errsize, "pop3_uidl_format '%s': %s", fmt,
			    why);
			return -1;
		}
		i += it.used;
	}
	return 0;
}

/* Appends s (slen octets) to out[*o..size-1) as far as it fits; false
 * if it did not. */
static bool
put(char *out, size_t size, size_t *o, const char *s, size_t slen)
{
	size_t room = size - 1 - *o;
	bool fits = slen <= room;

	if (!fits)
		slen = room;
	memcpy(out + *o, s, slen);
	*o += slen;
	return fits;
}

int
migrate_format_expand(const char *fmt, uint32_t uid, uint32_t uidvalidity,
    const char *guid, const char *filename, char *out, size_t outsize)
{
	struct fmt_item it;
	char val[EXPAND_MAX + 1], num[16];
	size_t i = 0, o = 0, k, vl;
	bool fits = true;

	if (outsize == 0)
		return -1;
	while (fmt[i] != '\0') {
		const char *v;

		if (fmt[i] != '%') {
			fits &= put(out, outsize, &o, fmt + i, 1);
			i++;
			continue;
		}
		if (fmt_item(fmt + i, &it) != NULL) {
			out[o] = '\0';
			return -1;
		}
		i += it.used;
		switch (it.var) {
		case VAR_PERCENT:
			v = "%";
			break;
		case VAR_UID:
		case VAR_UIDV:
			(void)snprintf(num, sizeof(num), "%u", it.var ==
			    VAR_UID ? uid : uidvalidity);
			v = num;
			break;
		case VAR_GUID:
			v = guid;
			break;
		case VAR_FILE:
		default:
			v = filename;
			break;
		}
		vl = strlen(v);
		if (vl > EXPAND_MAX)
			vl = EXPAND_MAX;
		memcpy(val, v, vl);
		val[vl] = '\0';
		for (k = 0; it.mods[k] != '\0'; k++) {
			size_t j;

			if (it.mods[k] == 'X') {
				uint64_t n = 0;

				/* Dovecot: a value that is not a number
				 * counts as 0. */
				if (parse_u64(val, UINT64_MAX, &n) !=
				    PARSE_OK)
					n = 0;
				(void)snprintf(val, sizeof(val), "%llx",
				    (unsigned long long)n);
			} else
				for (j = 0; val[j] != '\0'; j++)
					val[j] = (char)(it.mods[k] == 'U' ?
					    (val[j] >= 'a' && val[j] <= 'z' ?
					    val[j] - 32 : val[j]) :
					    (val[j] >= 'A' && val[j] <= 'Z' ?
					    val[j] + 32 : val[j]));
		}
		vl = strlen(val);
		if (it.width > 0 && it.zero) {
			for (k = vl; k < it.width; k++)
				fits &= put(out, outsize, &o, "0", 1);
		} else if (it.width > 0 && vl > it.width)
			vl = it.width;
		fits &= put(out, outsize, &o, val, vl);
	}
	out[o] = '\0';
	return fits ? 0 : -1;
}

/* ---- dovecot-uidlist ---- */

/* Splits at single spaces: the next field of line[*pos..len). */
static bool
next_field(const char *line, size_t len, size_t *pos, const char **f_r,
    size_t *flen_r)
{
	size_t start = *pos, i;

	if (start >= len)
		return false;
	for (i = start; i < len && line[i] != ' '; i++)
		;
	*f_r = line + start;
	*flen_r = i - start;
	*pos = i < len ? i + 1 : i;
	return true;
}

static const char *
dovecot_header(const char *line, size_t len, uint32_t *uidv_r)
{
	const char *f;
	size_t pos = 0, flen;
	uint64_t v;
	bool have_v = false;

	if (!next_field(line, len, &pos, &f, &flen))
		return "empty header line";
	if (flen != 1 || f[0] != '3')
		return flen == 1 && (f[0] == '1' || f[0] == '2') ?
		    "version 1 or 2 (Dovecot before 1.0) is not supported;"
		    " let Dovecot 1.0 or later open the mailbox once to"
		    " write version 3" : "not a dovecot-uidlist of version 3";
	while (next_field(line, len, &pos, &f, &flen)) {
		if (flen == 0)
			return "two spaces in the header";
		if (f[0] != 'V')
			continue;	/* N, G and later additions */
		if (!num_field(f + 1, flen - 1, UINT32_MAX, &v) || v == 0)
			return "bad UIDVALIDITY (V) in the header";
		have_v = true;
		*uidv_r = (uint32_t)v;
	}
	return have_v ? NULL : "no UIDVALIDITY (V) in the header";
}

static const char *
dovecot_record(const char *line, size_t len, uint32_t uidv, const char *fmt,
    struct migrate_list *out)
{
	const char *f, *p_val = NULL, *g_val = NULL, *name = NULL;
	size_t pos = 0, flen, p_len = 0, g_len = 0, nlen = 0, blen;
	char base[INDEX_NAME_MAX + 1], guid[INDEX_NAME_MAX + 1];
	char uidl[EXPAND_MAX + 1];
	uint64_t uid;

	if (!next_field(line, len, &pos, &f, &flen) ||
	    !num_field(f, flen, UINT32_MAX, &uid) || uid == 0)
		return "bad UID";
	while (next_field(line, len, &pos, &f, &flen)) {
		if (flen == 0)
			return "two spaces in a record";
		if (f[0] == ':') {
			/* The file name is the rest of the line. */
			name = f + 1;
			nlen = (size_t)(line + len - name);
			break;
		}
		if (f[0] < 'A' || f[0] > 'Z')
			return "bad extension field";
		if (f[0] == 'P') {
			p_val = f + 1;
			p_len = flen - 1;
		} else if (f[0] == 'G') {
			g_val = f + 1;
			g_len = flen - 1;
		}
	}
	if (name == NULL || nlen == 0)
		return "no file name";
	blen = base_len(name, nlen);
	if (blen == 0 || blen > INDEX_NAME_MAX)
		return "bad file name";
	memcpy(base, name, blen);
	base[blen] = '\0';
	if (p_val != NULL) {
		if (p_len == 0) {
			p_val = base;
			p_len = blen;
		}
		if (migrate_list_add(out, base, blen, p_val, p_len) == -1)
			return "out of memory";
		return NULL;
	}
	if (g_val != NULL && g_len > 0 && g_len <= INDEX_NAME_MAX) {
		memcpy(guid, g_val, g_len);
		guid[g_len] = '\0';
	} else
		memcpy(guid, base, blen + 1);
	/* Too long a result is kept cut: the import reports it invalid. */
	(void)migrate_format_expand(fmt, (uint32_t)uid, uidv, guid, base,
	    uidl, sizeof(uidl));
	if (migrate_list_add(out, base, blen, uidl, strlen(uidl)) == -1)
		return "out of memory";
	return NULL;
}

int
migrate_parse_dovecot(const char *data, size_t len, const char *fmt,
    struct migrate_list *out, char *err, size_t errsize)
{
	struct lines l;
	const char *line, *why = NULL;
	size_t ll;
	uint32_t uidv = 0;
	int r;

	if (migrate_format_check(fmt, err, errsize) == -1)
		return -1;
	lines_init(&l, data, len);
	if ((r = next_line(&l, &line, &ll, &why)) != 1) {
		errf(err, errsize, "dovecot-uidlist: %s", r == 0 ?
		    "empty file" : why);
		return -1;
	}
	if ((why = dovecot_header(line, ll, &uidv)) != NULL) {
		errf(err, errsize, "dovecot-uidlist: %s", why);
		return -1;
	}
	while ((r = next_line(&l, &line, &ll, &why)) == 1) {
		if ((why = dovecot_record(line, ll, uidv, fmt, out)) != NULL)
			break;
	}
	if (r == 0)
		return 0;
	errf(err, errsize, "dovecot-uidlist line %zu: %s", l.lineno, why);
	return -1;
}

/* ---- courierpop3dsizelist ---- */

/* Courier's UIDL for uid 0: the base name, octets it cannot show as
 * +XX. */
static const char *
courier_v0_uidl(const char *base, size_t blen, struct migrate_list *out)
{
	static const char hex[] = "0123456789ABCDEF";
	char u[EXPAND_MAX + 1];
	size_t i, o = 0;

	for (i = 0; i < blen && o + 3 < sizeof(u); i++) {
		unsigned char c = (unsigned char)base[i];

		if (c < 0x21 || c > 0x7e || c == '\'' || c == '"' ||
		    c == '+') {
			u[o++] = '+';
			u[o++] = hex[c >> 4];
			u[o++] = hex[c & 0xf];
		} else
			u[o++] = (char)c;
	}
	if (migrate_list_add(out, base, blen, u, o) == -1)
		return "out of memory";
	return NULL;
}

static const char *
courier_record(const char *line, size_t len, struct migrate_list *out)
{
	const char *sp1, *sp2, *ids, *c1, *c2;
	size_t idlen, blen;
	uint64_t size, uid, uidv, utf8;
	char u[64];
	int n;

	/* The name may hold spaces: split off the last two fields. */
	for (sp2 = line + len; sp2 > line && sp2[-1] != ' '; sp2--)
		;
	if (sp2 == line)
		return "malformed line";
	sp2--;
	for (sp1 = sp2; sp1 > line && sp1[-1] != ' '; sp1--)
		;
	if (sp1 == line)
		return "malformed line";
	sp1--;
	if (sp1 == line)
		return "no file name";
	if (!num_field(sp1 + 1, (size_t)(sp2 - sp1 - 1), UINT64_MAX, &size))
		return "bad size";
	ids = sp2 + 1;
	idlen = (size_t)(line + len - ids);
	if ((c1 = memchr(ids, ':', idlen)) == NULL)
		return "bad UID field (not <uid>:<uidv>)";
	c2 = memchr(c1 + 1, ':', (size_t)(ids + idlen - c1 - 1));
	if (!num_field(ids, (size_t)(c1 - ids), UINT64_MAX, &uid) ||
	    !num_field(c1 + 1, (size_t)((c2 != NULL ? c2 : ids + idlen) -
	    c1 - 1), UINT64_MAX, &uidv) ||
	    (c2 != NULL && (!num_field(c2 + 1, (size_t)(ids + idlen - c2 -
	    1), 1, &utf8))))
		return "bad UID field (not <uid>:<uidv>[:<utf8>])";
	blen = base_len(line, (size_t)(sp1 - line));
	if (blen == 0 || blen > INDEX_NAME_MAX)
		return "bad file name";
	if (uid == 0)
		return courier_v0_uidl(line, blen, out);
	if (uidv != 0)
		n = snprintf(u, sizeof(u), "UID%llu-%llu",
		    (unsigned long long)uid, (unsigned long long)uidv);
	else
		n = snprintf(u, sizeof(u), "UID%llu", (unsigned long long)uid);
	if (n < 0 || (size_t)n >= sizeof(u))
		return "bad UID field";
	if (migrate_list_add(out, line, blen, u, (size_t)n) == -1)
		return "out of memory";
	return NULL;
}

int
migrate_parse_courier(const char *data, size_t len,
    struct migrate_list *out, char *err, size_t errsize)
{
	struct lines l;
	const char *line, *why = NULL, *f;
	size_t ll, pos = 1, flen;
	uint64_t v;
	int r;

	lines_init(&l, data, len);
	if ((r = next_line(&l, &line, &ll, &why)) != 1) {
		errf(err, errsize, "courierpop3dsizelist: %s", r == 0 ?
		    "empty file" : why);
		return -1;
	}
	if (ll == 0 || line[0] != '/') {
		errf(err, errsize, "courierpop3dsizelist: no '/<version>'"
		    " header line: a version 1 file (Courier before 0.43),"
		    " which holds no UIDLs, or not a courierpop3dsizelist");
		return -1;
	}
	if (!next_field(line, ll, &pos, &f, &flen) ||
	    !num_field(f, flen, 1000, &v)) {
		errf(err, errsize, "courierpop3dsizelist: bad header line");
		return -1;
	}
	if (v != 2 && v != 3) {
		errf(err, errsize, "courierpop3dsizelist: version %llu is not"
		    " supported (2 and 3 are)", (unsigned long long)v);
		return -1;
	}
	if (!next_field(line, ll, &pos, &f, &flen) ||
	    !num_field(f, flen, UINT64_MAX, &v) ||
	    (next_field(line, ll, &pos, &f, &flen) &&
	    !num_field(f, flen, UINT64_MAX, &v)) || pos < ll) {
		errf(err, errsize, "courierpop3dsizelist: bad header line");
		return -1;
	}
	while ((r = next_line(&l, &line, &ll, &why)) == 1) {
		if ((why = courier_record(line, ll, out)) != NULL)
			break;
	}
	if (r == 0)
		return 0;
	errf(err, errsize, "courierpop3dsizelist line %zu: %s", l.lineno, why);
	return -1;
}

/* ---- X-UIDL ---- */

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* line is "X-UIDL" [WSP] ":" ...: the offset of the value, or 0. */
static size_t
xuidl_field(const char *line, size_t len)
{
	static const char name[] = "x-uidl";
	size_t i, n = sizeof(name) - 1;

	if (len < n + 1)
		return 0;
	for (i = 0; i < n; i++) {
		char c = line[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (c != name[i])
			return 0;
	}
	while (i < len && is_wsp(line[i]))
		i++;
	return i < len && line[i] == ':' ? i + 1 : 0;
}

int
migrate_xuidl(const char *data, size_t len, char **uidl_r)
{
	struct linebuf lb;
	struct buf val;
	const char *p = data, *s;
	size_t left = len, ll, consumed, off, vl;
	bool in_field = false;

	*uidl_r = NULL;
	if (left > MIGRATE_MAX_HEADER)
		left = MIGRATE_MAX_HEADER;
	linebuf_init(&lb, MIGRATE_MAX_LINE);
	buf_init(&val, MIGRATE_MAX_LINE);
	while (left > 0) {
		enum line_rc r = linebuf_scan(&lb, (const uint8_t *)p, left,
		    &ll, &consumed);
		const char *line = p;

		p += consumed;
		left -= consumed;
		if (r == LINE_MORE) {
			if (consumed == 0)
				break;	/* the header goes on past our bound */
			continue;	/* the rest of an overlong line */
		}
		if (r != LINE_OK) {
			if (in_field)
				break;	/* an overlong or NUL continuation */
			continue;
		}
		if (ll == 0)
			break;		/* the end of the header */
		if (in_field) {
			if (!is_wsp(line[0]))
				break;
			if (buf_add(&val, line, ll) == -1)
				break;	/* folded past the bound: ends here */
			continue;
		}
		if ((off = xuidl_field(line, ll)) == 0)
			continue;
		if (buf_add(&val, line + off, ll - off) == -1)
			break;
		in_field = true;
	}
	if (!in_field) {
		buf_clear(&val);
		return 0;
	}
	s = val.data != NULL ? val.data : "";
	vl = val.len;
	while (vl > 0 && is_wsp(*s)) {
		s++;
		vl--;
	}
	while (vl > 0 && is_wsp(s[vl - 1]))
		vl--;
	*uidl_r = strndup(s, vl);
	buf_clear(&val);
	return *uidl_r != NULL ? 1 : -1;
}

/* The X-UIDL of one message file (fd open on it); see migrate_xuidl. */
static int
xuidl_of_file(int fd, char **uidl_r)
{
	char *head;
	size_t have = 0;
	ssize_t n;
	int r, saved;

	*uidl_r = NULL;
	if ((head = malloc(MIGRATE_MAX_HEADER)) == NULL)
		return -1;
	while (have < MIGRATE_MAX_HEADER) {
		n = read(fd, head + have, MIGRATE_MAX_HEADER - have);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			saved = errno;
			free(head);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		have += (size_t)n;
	}
	r = migrate_xuidl(head, have, uidl_r);
	free(head);
	if (r == -1)
		errno = ENOMEM;
	return r;
}

static int
scan_dir(const char *path, const char *sub, struct migrate_list *out,
    size_t *without, char *err, size_t errsize)
{
	char dir[MAX_PATH_LEN];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd, r, saved;

	if (str_fmt(dir, sizeof(dir), "%s/%s", path, sub) == -1) {
		errf(err, errsize, "%s: path too long", path);
		return -1;
	}
	if ((d = opendir(dir)) == NULL) {
		errf(err, errsize, "%s: %s", dir, strerror(errno));
		return -1;
	}
	for (;;) {
		char *uidl = NULL;

		errno = 0;
		if ((de = readdir(d)) == NULL)
			break;
		if (de->d_name[0] == '.')
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC |
		    O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
		if (fd == -1) {
			if (errno == ENOENT || errno == ELOOP ||
			    errno == ENXIO)
				continue;	/* gone, or not a file */
			goto fail;
		}
		if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
			(void)close(fd);
			continue;
		}
		r = xuidl_of_file(fd, &uidl);
		saved = errno;
		(void)close(fd);
		errno = saved;
		if (r == -1)
			goto fail;
		if (r == 0) {
			(*without)++;
			continue;
		}
		r = migrate_list_add(out, de->d_name, base_len(de->d_name,
		    strlen(de->d_name)), uidl, strlen(uidl));
		free(uidl);
		if (r == -1)
			goto fail;
	}
	if (errno != 0)
		goto fail;
	(void)closedir(d);
	return 0;
fail:
	saved = errno;
	errf(err, errsize, "%s: reading the messages: %s", dir,
	    strerror(saved));
	(void)closedir(d);
	return -1;
}

int
migrate_scan_xuidl(const char *path, struct migrate_list *out,
    size_t *without_r, char *err, size_t errsize)
{
	*without_r = 0;
	if (scan_dir(path, "cur", out, without_r, err, errsize) == -1 ||
	    scan_dir(path, "new", out, without_r, err, errsize) == -1)
		return -1;
	return 0;
}
