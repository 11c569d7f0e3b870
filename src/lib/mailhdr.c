/*
 * mailhdr.c: the header block of a message sent with XTND XMIT: fields,
 * unfolding, address lists (RFC 5322 sections 2.2 and 3.4), and the
 * header again without Bcc.  Trusts nothing of its input; every output
 * is bounded.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mailhdr.h"

/* Comments nest (RFC 5322 section 3.2.2); this deep and no deeper. */
#define COMMENT_MAX_DEPTH	32
/* Tokens of one mailbox: more is no address anyone writes. */
#define MAILBOX_MAX_TOKENS	128
/* The longest unfolded field considered: the whole header at most. */
#define FIELD_NAME_MAX		76

enum tok_kind {
	TOK_END,
	TOK_WORD,		/* atom or dot-atom, dots included */
	TOK_QSTR,		/* quoted string, quotes included */
	TOK_DLIT,		/* domain literal, brackets included */
	TOK_SPECIAL,		/* one of < > , : ; @ */
	TOK_BAD,
};

struct tok {
	enum tok_kind	 kind;
	const char	*p;
	size_t		 len;
};

struct lex {
	const char	*p, *end;
};

/* RFC 5322 section 3.2.3 atext, the dot, and octets of UTF-8 (RFC 6532). */
static bool
is_atext(unsigned char c)
{
	return isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL ||
	    c >= 0x80;
}

/* Skips white space and comments; false on an unterminated comment. */
static bool
skip_cfws(struct lex *l)
{
	while (l->p < l->end) {
		unsigned char c = (unsigned char)*l->p;
		int depth;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			l->p++;
			continue;
		}
		if (c != '(')
			return true;
		depth = 0;
		while (l->p < l->end) {
			c = (unsigned char)*l->p++;
			if (c == '\\') {
				if (l->p == l->end)
					return false;
				l->p++;
			} else if (c == '(') {
				if (++depth > COMMENT_MAX_DEPTH)
					return false;
			} else if (c == ')' && --depth == 0)
				break;
		}
		if (depth != 0)
			return false;
	}
	return true;
}

/* Scans a quoted string or domain literal closed by close. */
static bool
scan_quoted(struct lex *l, char close)
{
	l->p++;
	while (l->p < l->end) {
		char c = *l->p++;

		if (c == '\\') {
			if (l->p == l->end)
				return false;
			l->p++;
		} else if (c == close)
			return true;
		else if (close == ']' && (c == '[' || c == '\\'))
			return false;
	}
	return false;
}

static struct tok
lex_next(struct lex *l)
{
	struct tok t = { TOK_END, NULL, 0 };
	unsigned char c;

	if (!skip_cfws(l)) {
		t.kind = TOK_BAD;
		return t;
	}
	if (l->p == l->end)
		return t;
	t.p = l->p;
	c = (unsigned char)*l->p;
	if (strchr("<>,:;@", c) != NULL) {
		t.kind = TOK_SPECIAL;
		l->p++;
	} else if (c == '"' || c == '[') {
		t.kind = scan_quoted(l, c == '"' ? '"' : ']') ?
		    (c == '"' ? TOK_QSTR : TOK_DLIT) : TOK_BAD;
	} else if (is_atext(c)) {
		t.kind = TOK_WORD;
		while (l->p < l->end && is_atext((unsigned char)*l->p))
			l->p++;
	} else {
		t.kind = TOK_BAD;
		l->p++;
	}
	t.len = (size_t)(l->p - t.p);
	return t;
}

static bool
is_special(const struct tok *t, char c)
{
	return t->kind == TOK_SPECIAL && *t->p == c;
}

/* A word of a dot-atom: no leading, trailing or double dot. */
static bool
dot_atom_ok(const char *p, size_t len)
{
	size_t i;

	if (len == 0 || p[0] == '.' || p[len - 1] == '.')
		return false;
	for (i = 1; i < len; i++)
		if (p[i] == '.' && p[i - 1] == '.')
			return false;
	return true;
}

/* Appends s[0 .. len) to out (size XMIT_MAX_ADDR_LEN + 1) at *n. */
static bool
put(char *out, size_t *n, const char *s, size_t len)
{
	if (len > XMIT_MAX_ADDR_LEN - *n)
		return false;
	memcpy(out + *n, s, len);
	*n += len;
	out[*n] = '\0';
	return true;
}

/*
 * An addr-spec from tokens: local-part "@" domain.  The local part is a
 * dot-atom, or a quoted string (kept quoted, as it must travel); the
 * domain a dot-atom or a domain literal.  Octets below 0x20 and 0x7f are
 * refused anywhere (they could end an SMTP line or a log line), and so
 * is a leading '-' (the address becomes a command argument).
 */
static bool
addr_spec(const struct tok *t, size_t n, char *out)
{
	size_t len = 0, i;

	out[0] = '\0';
	if (n != 3 || !is_special(&t[1], '@'))
		return false;
	if (t[0].kind == TOK_WORD) {
		if (!dot_atom_ok(t[0].p, t[0].len))
			return false;
	} else if (t[0].kind != TOK_QSTR || t[0].len < 3)
		return false;
	if (t[2].kind == TOK_WORD) {
		if (!dot_atom_ok(t[2].p, t[2].len))
			return false;
	} else if (t[2].kind != TOK_DLIT)
		return false;
	if (!put(out, &len, t[0].p, t[0].len) || !put(out, &len, "@", 1) ||
	    !put(out, &len, t[2].p, t[2].len))
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			return false;
	return out[0] != '-';
}

typedef bool addr_fn(struct mailhdr *, const char *addr, void *arg);

/*
 * Walks an address list (RFC 5322 section 3.4, with the obsolete forms
 * of section 4.4: empty list elements, routes), calling fn for each
 * mailbox.  Groups may be empty; a group left open at the end of the
 * field is accepted.  false with h->err set on any fault.
 */
static bool
address_list(struct mailhdr *h, const char *name, const char *v, size_t vlen,
    addr_fn *fn, void *arg)
{
	struct lex l = { v, v + vlen };
	struct tok t[MAILBOX_MAX_TOKENS], cur;
	char addr[XMIT_MAX_ADDR_LEN + 1];
	bool in_group = false;
	size_t n;

	for (;;) {
		cur = lex_next(&l);
		if (cur.kind == TOK_END)
			return true;
		if (cur.kind == TOK_BAD)
			goto bad;
		if (is_special(&cur, ','))
			continue;
		if (is_special(&cur, ';') && in_group) {
			in_group = false;
			continue;
		}
		/* A display name or an addr-spec, up to what ends it. */
		n = 0;
		while (cur.kind == TOK_WORD || cur.kind == TOK_QSTR ||
		    cur.kind == TOK_DLIT || is_special(&cur, '@')) {
			if (n == MAILBOX_MAX_TOKENS)
				goto bad;
			t[n++] = cur;
			cur = lex_next(&l);
		}
		if (cur.kind == TOK_BAD)
			goto bad;
		if (is_special(&cur, ':')) {
			if (in_group || n == 0)
				goto bad;
			in_group = true;
			continue;
		}
		if (is_special(&cur, '<')) {
			/* The display name (t[0 .. n)) is only words. */
			size_t i, m = 0;

			for (i = 0; i < n; i++)
				if (t[i].kind != TOK_WORD &&
				    t[i].kind != TOK_QSTR)
					goto bad;
			cur = lex_next(&l);
			if (is_special(&cur, '@')) {
				/* obs-route: "@a,@b:" before the address */
				while (cur.kind != TOK_END &&
				    cur.kind != TOK_BAD &&
				    !is_special(&cur, ':') &&
				    !is_special(&cur, '>'))
					cur = lex_next(&l);
				if (!is_special(&cur, ':'))
					goto bad;
				cur = lex_next(&l);
			}
			while (cur.kind == TOK_WORD || cur.kind == TOK_QSTR ||
			    cur.kind == TOK_DLIT || is_special(&cur, '@')) {
				if (m == MAILBOX_MAX_TOKENS)
					goto bad;
				t[m++] = cur;
				cur = lex_next(&l);
			}
			if (!is_special(&cur, '>') || !addr_spec(t, m, addr))
				goto bad;
			cur = lex_next(&l);
		} else if (!addr_spec(t, n, addr))
			goto bad;
		if (!fn(h, addr, arg))
			return false;
		if (cur.kind == TOK_END)
			return true;
		if (is_special(&cur, ';') && in_group) {
			in_group = false;
			continue;
		}
		if (!is_special(&cur, ','))
			goto bad;
	}
bad:
	snprintf(h->err, sizeof(h->err), "Bad address in the %s field.",
	    name);
	return false;
}

static bool
list_has(const struct buf *list, const char *addr)
{
	size_t pos = 0;
	const char *a;

	while ((a = mailhdr_next(list, &pos)) != NULL)
		if (strcmp(a, addr) == 0)
			return true;
	return false;
}

static bool
add_rcpt(struct mailhdr *h, const char *addr, void *arg)
{
	if (list_has(&h->rcpts, addr))
		return true;
	if (h->n_rcpt >= h->max_rcpt) {
		snprintf(h->err, sizeof(h->err), "Too many recipients (at"
		    " most %u).", h->max_rcpt);
		return false;
	}
	if (buf_add(&h->rcpts, addr, strlen(addr) + 1) == -1) {
		snprintf(h->err, sizeof(h->err), "Out of memory.");
		return false;
	}
	h->n_rcpt++;
	return true;
}

static bool
add_from(struct mailhdr *h, const char *addr, void *arg)
{
	if (h->n_from >= XMIT_MAX_FROM) {
		snprintf(h->err, sizeof(h->err), "Too many From addresses.");
		return false;
	}
	if (buf_add(&h->froms, addr, strlen(addr) + 1) == -1) {
		snprintf(h->err, sizeof(h->err), "Out of memory.");
		return false;
	}
	h->n_from++;
	return true;
}

static bool
set_sender(struct mailhdr *h, const char *addr, void *arg)
{
	bool *seen = arg;

	if (*seen) {
		snprintf(h->err, sizeof(h->err), "More than one Sender"
		    " address.");
		return false;
	}
	*seen = true;
	snprintf(h->sender, sizeof(h->sender), "%s", addr);
	return true;
}

/* The Message-ID without surrounding space, cut to fit (it is only
 * logged). */
static void
set_msgid(struct mailhdr *h, const char *v, size_t len)
{
	while (len > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t' ||
	    v[len - 1] == '\r'))
		len--;
	if (len > XMIT_MAX_MSGID_LEN)
		len = XMIT_MAX_MSGID_LEN;
	memcpy(h->msgid, v, len);
	h->msgid[len] = '\0';
}

void
mailhdr_init(struct mailhdr *h, unsigned int max_rcpt)
{
	memset(h, 0, sizeof(*h));
	h->max_rcpt = max_rcpt;
	buf_init(&h->rcpts, (size_t)max_rcpt * (XMIT_MAX_ADDR_LEN + 1));
	buf_init(&h->froms, XMIT_MAX_FROM * (XMIT_MAX_ADDR_LEN + 1));
	buf_init(&h->out, XMIT_MAX_HEADER_BYTES);
}

void
mailhdr_free(struct mailhdr *h)
{
	buf_clear(&h->rcpts);
	buf_clear(&h->froms);
	buf_clear(&h->out);
}

const char *
mailhdr_next(const struct buf *list, size_t *pos)
{
	const char *a;

	if (*pos >= list->len)
		return NULL;
	a = list->data + *pos;
	*pos += strlen(a) + 1;
	return a;
}

/* One unfolded field: name[0 .. nlen), the value after the colon. */
static int
field(struct mailhdr *h, const char *name, size_t nlen, const char *v,
    size_t vlen, bool *sender_seen)
{
#define IS(s)	(nlen == sizeof(s) - 1 && strncasecmp(name, s, nlen) == 0)
	if (IS("To"))
		return address_list(h, "To", v, vlen, add_rcpt, NULL) ? 0 : -1;
	if (IS("Cc"))
		return address_list(h, "Cc", v, vlen, add_rcpt, NULL) ? 0 : -1;
	if (IS("Bcc"))
		return address_list(h, "Bcc", v, vlen, add_rcpt, NULL) ? 0 :
		    -1;
	if (IS("From"))
		return address_list(h, "From", v, vlen, add_from, NULL) ? 0 :
		    -1;
	if (IS("Sender"))
		return address_list(h, "Sender", v, vlen, set_sender,
		    sender_seen) ? 0 : -1;
	if (IS("Message-ID"))
		set_msgid(h, v, vlen);
	return 0;
#undef IS
}

int
mailhdr_parse(struct mailhdr *h, const char *hdr, size_t len)
{
	struct buf unf;
	const char *p = hdr, *end = hdr + len;
	bool sender_seen = false;
	int rc = -1;

	buf_init(&unf, XMIT_MAX_HEADER_BYTES);
	while (p < end) {
		const char *start = p, *colon, *eol;
		size_t nlen, i;
		bool bcc;

		/* The field's first line: "name:" */
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		colon = memchr(p, ':', (size_t)(eol - p));
		nlen = colon != NULL ? (size_t)(colon - p) : 0;
		/* Section 4.5.8 (obs-optional): white space may come
		 * before the colon. */
		while (nlen > 0 && (p[nlen - 1] == ' ' || p[nlen - 1] == '\t'))
			nlen--;
		if (nlen == 0 || nlen > FIELD_NAME_MAX) {
			snprintf(h->err, sizeof(h->err), "Malformed header"
			    " line.");
			goto out;
		}
		/* RFC 5322 section 3.6.8: printable, no colon, no space. */
		for (i = 0; i < nlen; i++)
			if ((unsigned char)p[i] <= 0x20 ||
			    (unsigned char)p[i] >= 0x7f) {
				snprintf(h->err, sizeof(h->err), "Malformed"
				    " header line.");
				goto out;
			}
		bcc = nlen == 3 && strncasecmp(p, "Bcc", 3) == 0;
		/* Unfold: the value runs on over lines that start with
		 * white space; the line ends go (section 2.2.3). */
		buf_reset(&unf);
		if (buf_add(&unf, colon + 1, (size_t)(eol - colon - 1)) == -1)
			goto nomem;
		p = eol < end ? eol + 1 : end;
		while (p < end && (*p == ' ' || *p == '\t')) {
			eol = memchr(p, '\n', (size_t)(end - p));
			if (eol == NULL)
				eol = end;
			if (buf_add(&unf, p, (size_t)(eol - p)) == -1)
				goto nomem;
			p = eol < end ? eol + 1 : end;
		}
		/* CRs before the LFs are not part of the value. */
		for (i = 0; i < unf.len; i++)
			if (unf.data[i] == '\r')
				unf.data[i] = ' ';
		if (memchr(unf.data != NULL ? unf.data : "", '\0',
		    unf.len) != NULL) {
			snprintf(h->err, sizeof(h->err), "Header contains a"
			    " NUL octet.");
			goto out;
		}
		if (field(h, start, nlen, unf.data != NULL ? unf.data : "",
		    unf.len, &sender_seen) == -1)
			goto out;
		/* Bcc is not sent (section 3.6.3); everything else is,
		 * with LF line ends. */
		if (!bcc) {
			const char *q;

			for (q = start; q < p; q++)
				if (*q != '\r' || (q + 1 < p && q[1] != '\n'))
					if (buf_addc(&h->out, *q) == -1)
						goto nomem;
			if (p == end && (p == start || p[-1] != '\n') &&
			    buf_addc(&h->out, '\n') == -1)
				goto nomem;
		}
	}
	rc = 0;
	goto out;
nomem:
	snprintf(h->err, sizeof(h->err), "Header too large.");
out:
	buf_clear(&unf);
	return rc;
}

bool
mailhdr_addr_owned(const char *addr, const char *user, char *const *domains,
    size_t n)
{
	const char *at = strrchr(addr, '@'), *uat = strrchr(user, '@');
	size_t llen, i;

	if (at == NULL)
		return false;
	llen = (size_t)(at - addr);
	if (uat != NULL)
		return (size_t)(uat - user) == llen &&
		    strncmp(addr, user, llen) == 0 &&
		    strcasecmp(at + 1, uat + 1) == 0;
	if (strlen(user) != llen || strncmp(addr, user, llen) != 0)
		return false;
	for (i = 0; i < n; i++)
		if (strcasecmp(at + 1, domains[i]) == 0)
			return true;
	return false;
}
