/*
 * text.c: safe file names, terminal-safe text and the HTML tag stripper
 * of the offline reader (see text.h).  Owns nothing.  Trusts nothing:
 * every input comes from a message.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "reader/reader_limits.h"
#include "reader/text.h"

#define BAD_CP	0xfffdu

/* Decodes one UTF-8 character of s (len > 0): returns its octets (1 for
 * an invalid one, with *cp = BAD_CP). */
static size_t
utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t n, i;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		c &= 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		c &= 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		c &= 0x07;
		min = 0x10000;
	} else {
		*cp = BAD_CP;
		return 1;
	}
	if (len < n) {
		*cp = BAD_CP;
		return 1;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			*cp = BAD_CP;
			return 1;
		}
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
		*cp = BAD_CP;
		return 1;
	}
	*cp = c;
	return n;
}

static bool
is_control(uint32_t cp)
{
	return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f);
}

size_t
rd_utf8_width(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, w = 0;
	uint32_t cp;

	while (i < len) {
		i += utf8_next(p + i, len - i, &cp);
		w++;
	}
	return w;
}

size_t
rd_utf8_prefix(const char *s, size_t len, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	uint32_t cp;

	while (i < len && n > 0) {
		i += utf8_next(p + i, len - i, &cp);
		n--;
	}
	return i;
}

/* The extension of a name: from its last '.' (not the first octet),
 * if 1..READER_MAX_EXTENSION letters and digits follow; else NULL. */
static const char *
extension(const char *name)
{
	const char *dot = strrchr(name, '.'), *p;

	if (dot == NULL || dot == name || dot[1] == '\0' ||
	    strlen(dot + 1) > READER_MAX_EXTENSION)
		return NULL;
	for (p = dot + 1; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9')))
			return NULL;
	return dot;
}

int
rd_safe_filename(const char *name, unsigned int partno, char *out,
    size_t outsize)
{
	char tmp[READER_MAX_FILENAME * 4 + 8];
	const unsigned char *p;
	const char *ext;
	size_t len, i, o = 0, n, start, end, extlen, keep;
	uint32_t cp;

	if (outsize <= READER_MAX_FILENAME)
		return -1;
	if (name == NULL)
		name = "";
	p = (const unsigned char *)name;
	len = strlen(name);
	/* Clean into tmp, which holds READER_MAX_FILENAME * 4 octets: more
	 * than any name cut to READER_MAX_FILENAME needs.  Leading dots and
	 * blanks are skipped before anything is copied. */
	for (i = 0; i < len && o < sizeof(tmp) - 4; i += n) {
		n = utf8_next(p + i, len - i, &cp);
		if (o == 0 && (cp == '.' || cp == ' ' || cp == '\t'))
			continue;
		if (cp == '/' || cp == '\\' || cp == BAD_CP || is_control(cp)) {
			tmp[o++] = '_';
			continue;
		}
		memcpy(tmp + o, p + i, n);
		o += n;
	}
	/* Trailing blanks and dots. */
	while (o > 0 && (tmp[o - 1] == ' ' || tmp[o - 1] == '.'))
		o--;
	if (o == 0)
		return str_fmt(out, outsize, "part-%u", partno);
	if (o <= READER_MAX_FILENAME) {
		memcpy(out, tmp, o);
		out[o] = '\0';
		return 0;
	}
	/* Too long: keep a short extension, cut the stem on a character
	 * boundary. */
	tmp[o] = '\0';
	ext = extension(tmp);
	extlen = ext != NULL ? strlen(ext) : 0;
	end = READER_MAX_FILENAME - extlen;
	/* Back to the start of a character. */
	start = end;
	while (start > 0 && ((unsigned char)tmp[start] & 0xc0) == 0x80)
		start--;
	keep = start;
	memcpy(out, tmp, keep);
	if (extlen > 0)
		memcpy(out + keep, tmp + o - extlen, extlen);
	out[keep + extlen] = '\0';
	return 0;
}

int
rd_numbered_name(const char *name, unsigned int n, char *out,
    size_t outsize)
{
	const char *dot = extension(name);

	if (dot == NULL)
		return str_fmt(out, outsize, "%s (%u)", name, n);
	return str_fmt(out, outsize, "%.*s (%u)%s", (int)(dot - name), name,
	    n, dot);
}

int
rd_clean_text(struct buf *b, const char *text, size_t len, bool one_line)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t i, n;
	uint32_t cp;
	bool blank = false;

	for (i = 0; i < len; i += n) {
		n = utf8_next(p + i, len - i, &cp);
		if (one_line && (cp == '\n' || cp == '\t' || cp == ' ' ||
		    cp == '\r')) {
			if (!blank && buf_addc(b, ' ') == -1)
				return -1;
			blank = true;
			continue;
		}
		blank = false;
		if (cp == '\r' && i + 1 < len && p[i + 1] == '\n')
			continue;
		if (cp == BAD_CP && n == 1) {
			if (buf_add(b, "\xef\xbf\xbd", 3) == -1)
				return -1;
		} else if (is_control(cp) && cp != '\n' && cp != '\t') {
			if (buf_addc(b, '?') == -1)
				return -1;
		} else if (buf_add(b, p + i, n) == -1)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ HTML */

static const struct {
	const char	*name;
	const char	*utf8;
} entities[] = {
	{ "amp", "&" }, { "lt", "<" }, { "gt", ">" }, { "quot", "\"" },
	{ "apos", "'" }, { "nbsp", " " }, { "copy", "\xc2\xa9" },
	{ "reg", "\xc2\xae" }, { "hellip", "\xe2\x80\xa6" },
	{ "mdash", "\xe2\x80\x94" }, { "ndash", "\xe2\x80\x93" },
	{ "laquo", "\xc2\xab" }, { "raquo", "\xc2\xbb" },
	{ "euro", "\xe2\x82\xac" },
};

static int
add_cp(struct buf *b, uint32_t cp)
{
	char u[4];

	if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		cp = BAD_CP;
	if (cp < 0x80) {
		u[0] = (char)cp;
		return buf_add(b, u, 1);
	}
	if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		return buf_add(b, u, 2);
	}
	if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		return buf_add(b, u, 3);
	}
	u[0] = (char)(0xf0 | (cp >> 18));
	u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	u[3] = (char)(0x80 | (cp & 0x3f));
	return buf_add(b, u, 4);
}

/* Decodes the entity at s[0] == '&'; returns the octets used, or 0 if
 * it is not one (the '&' is then copied as is). */
static size_t
entity(struct buf *b, const char *s, size_t len, int *rc)
{
	size_t i, n;
	uint32_t cp = 0;
	bool hex;

	*rc = 0;
	if (len >= 3 && s[1] == '#') {
		hex = s[2] == 'x' || s[2] == 'X';
		for (i = hex ? 3 : 2, n = 0; i < len && n < 8; i++, n++) {
			char c = s[i];
			if (c >= '0' && c <= '9')
				cp = cp * (hex ? 16 : 10) + (uint32_t)(c - '0');
			else if (hex && c >= 'a' && c <= 'f')
				cp = cp * 16 + (uint32_t)(c - 'a' + 10);
			else if (hex && c >= 'A' && c <= 'F')
				cp = cp * 16 + (uint32_t)(c - 'A' + 10);
			else
				break;
		}
		if (n == 0 || n == 8)
			return 0;
		*rc = add_cp(b, cp);
		return i < len && s[i] == ';' ? i + 1 : i;
	}
	for (i = 0; i < sizeof(entities) / sizeof(entities[0]); i++) {
		n = strlen(entities[i].name);
		if (len > n + 1 && strncmp(s + 1, entities[i].name, n) == 0 &&
		    s[n + 1] == ';') {
			*rc = buf_addstr(b, entities[i].utf8);
			return n + 2;
		}
	}
	return 0;
}

/* True if the tag at s (after '<', and '/' for an end tag) is name. */
static bool
tag_is(const char *s, size_t len, const char *name)
{
	size_t n = strlen(name);

	return len >= n && strncasecmp(s, name, n) == 0 &&
	    (len == n || s[n] == '>' || s[n] == ' ' || s[n] == '/' ||
	    s[n] == '\t' || s[n] == '\n' || s[n] == '\r');
}

static const char *const breaking_tags[] = {
	"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
	"table", "ul", "ol", "blockquote", "pre", "hr", "title",
};

/* A line break, without the blank before it. */
static int
add_break(struct buf *b, size_t start)
{
	if (b->len > start && b->data[b->len - 1] == ' ')
		b->len--;
	return buf_addc(b, '\n');
}

int
rd_strip_tags(struct buf *b, const char *html, size_t len)
{
	size_t start = b->len;
	size_t i = 0, j, k, n;
	int rc;
	bool space = true, nl = true;
	const char *skip_to = NULL;

	while (i < len) {
		char c = html[i];

		if (c == '<') {
			const char *t = html + i + 1;
			size_t tl = len - i - 1;
			bool end = tl > 0 && t[0] == '/';

			if (skip_to != NULL) {
				if (end && tag_is(t + 1, tl - 1, skip_to))
					skip_to = NULL;
				else {
					i++;
					continue;
				}
			} else if (!end && tag_is(t, tl, "script"))
				skip_to = "script";
			else if (!end && tag_is(t, tl, "style"))
				skip_to = "style";
			if (tl >= 3 && strncmp(t, "!--", 3) == 0) {
				/* A comment: to its "-->". */
				for (j = i + 4; j + 2 < len; j++)
					if (strncmp(html + j, "-->", 3) == 0)
						break;
				i = j + 3 > len ? len : j + 3;
				continue;
			}
			for (k = 0; k < sizeof(breaking_tags) /
			    sizeof(breaking_tags[0]); k++)
				if (tag_is(end ? t + 1 : t, end ? tl - 1 : tl,
				    breaking_tags[k]))
					break;
			j = i + 1;
			while (j < len && html[j] != '>')
				j++;
			i = j < len ? j + 1 : len;
			if (k < sizeof(breaking_tags) / sizeof(breaking_tags[0])
			    && !nl) {
				if (add_break(b, start) == -1)
					return -1;
				nl = space = true;
			}
			continue;
		}
		if (skip_to != NULL) {
			i++;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			if (!space && buf_addc(b, ' ') == -1)
				return -1;
			space = true;
			i++;
			continue;
		}
		if (c == '&' && (n = entity(b, html + i, len - i, &rc)) > 0) {
			if (rc == -1)
				return -1;
			i += n;
		} else {
			if (buf_addc(b, c) == -1)
				return -1;
			i++;
		}
		space = nl = false;
	}
	if (!nl && add_break(b, start) == -1)
		return -1;
	return 0;
}
