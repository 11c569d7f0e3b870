/*
 * mime.c: list, show and save through GMime (see mime.h).  Owns the
 * parsed message for the time of one call.  Trusts nothing in it:
 * every string shown is cleaned for the terminal (text.h), every count
 * and length is bounded (reader_limits.h), and files are only created
 * inside the directory given, by name, with O_EXCL.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "lib/buf.h"
#include "reader/mime.h"
#include "reader/reader_limits.h"
#include "reader/render.h"
#include "reader/text.h"

/* ------------------------------------------------------------ warnings */

static struct {
	const char	*cmd;
	const char	*label;
	unsigned int	 count;
} warns;

void
rd_warn_begin(const char *cmd, const char *label)
{
	warns.cmd = cmd;
	warns.label = label;
	warns.count = 0;
}

void
rd_warn(const char *fmt, ...)
{
	va_list ap;

	if (warns.count++ >= READER_MAX_WARNINGS || warns.cmd == NULL)
		return;
	fprintf(stderr, "postern %s: %s: warning: ", warns.cmd,
	    warns.label != NULL ? warns.label : "-");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

unsigned int
rd_warn_end(void)
{
	unsigned int n = warns.count;

	if (n > READER_MAX_WARNINGS && warns.cmd != NULL)
		fprintf(stderr, "postern %s: %s: %u more warnings\n",
		    warns.cmd, warns.label != NULL ? warns.label : "-",
		    n - READER_MAX_WARNINGS);
	warns.count = 0;
	return n;
}

/* s cleaned to one line of at most max octets, for a warning. */
static const char *
clean_short(const char *s, char *out, size_t outsize)
{
	struct buf b;
	size_t n;

	if (s == NULL)
		return "";
	buf_init(&b, outsize - 1);
	n = strlen(s);
	if (n > outsize / 4)
		n = rd_utf8_prefix(s, n, outsize / 4);
	if (rd_clean_text(&b, s, n, true) == -1 || buf_str(&b) == NULL)
		memcpy(out, "?", 2);
	else
		memcpy(out, b.data, b.len + 1);
	buf_clear(&b);
	return out;
}

/* ------------------------------------------------------------ parsing */

struct node {
	GMimeObject	*obj;
	unsigned int	 num;		/* 0 for a multipart */
	unsigned int	 depth;
	bool		 shown;		/* shown as text by show */
	bool		 hidden;	/* an alternative not chosen */
};

struct msgctx {
	GMimeStream		*stream;
	GMimeParser		*parser;
	GMimeParserOptions	*opts;
	GMimeMessage		*msg;
	struct node		*nodes;
	size_t			 n;
	unsigned int		 nums;
	bool			 warned_depth;
	bool			 warned_parts;
};

void
rd_mime_init(void)
{
	g_mime_init();
}

void
rd_mime_shutdown(void)
{
	g_mime_shutdown();
}

static const char *
gmime_warning(GMimeParserWarning code)
{
	switch (code) {
	case GMIME_WARN_INVALID_CONTENT_TYPE:
		return "invalid Content-Type, taken as"
		    " application/octet-stream";
	case GMIME_WARN_INVALID_RFC2047_HEADER_VALUE:
		return "invalid RFC 2047 encoded header value";
	case GMIME_WARN_MALFORMED_MULTIPART:
		return "multipart without parts";
	case GMIME_WARN_TRUNCATED_MESSAGE:
		return "message truncated";
	case GMIME_WARN_MALFORMED_MESSAGE:
		return "malformed message";
	case GMIME_CRIT_INVALID_HEADER_NAME:
		return "invalid header name";
	case GMIME_CRIT_CONFLICTING_HEADER:
		return "conflicting header";
	case GMIME_CRIT_CONFLICTING_PARAMETER:
		return "conflicting header parameter";
	case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
		return "multipart without a boundary, shown as one part";
	case GMIME_WARN_INVALID_PARAMETER:
		return "invalid header parameter";
	case GMIME_WARN_INVALID_ADDRESS_LIST:
		return "invalid address list";
	case GMIME_CRIT_NESTING_OVERFLOW:
		return "MIME parts nested too deep for the parser";
	case GMIME_WARN_PART_WITHOUT_CONTENT:
		return "part without content";
	case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
		return "part without headers or content";
	default:
		return NULL;
	}
}

static void
on_gmime_warning(gint64 offset, GMimeParserWarning code, const gchar *item,
    gpointer data)
{
	const char *what = gmime_warning(code);
	char it[128];

	(void)data;
	/* Duplicated headers and parameters and raw 8-bit headers are
	 * common and harmless: not worth a warning. */
	if (what == NULL)
		return;
	if (item != NULL && item[0] != '\0')
		rd_warn("octet %lld: %s: %s", (long long)offset, what,
		    clean_short(item, it, sizeof(it)));
	else
		rd_warn("octet %lld: %s", (long long)offset, what);
}

static int
add_node(struct msgctx *c, GMimeObject *obj, unsigned int depth)
{
	struct node *n;

	if (c->n >= READER_MAX_PARTS) {
		if (!c->warned_parts)
			rd_warn("more than %d MIME parts: the rest is"
			    " skipped", READER_MAX_PARTS);
		c->warned_parts = true;
		return -1;
	}
	if (c->nodes == NULL &&
	    (c->nodes = calloc(READER_MAX_PARTS, sizeof(*n))) == NULL)
		return -1;
	n = &c->nodes[c->n++];
	n->obj = obj;
	n->depth = depth;
	n->num = GMIME_IS_MULTIPART(obj) ? 0 : ++c->nums;
	n->shown = false;
	n->hidden = false;
	return 0;
}

static void
walk(struct msgctx *c, GMimeObject *obj, unsigned int depth)
{
	GMimeMessage *m;
	GMimeObject *sub;
	int i, count;

	if (obj == NULL)
		return;
	if (depth > READER_MAX_DEPTH) {
		if (!c->warned_depth)
			rd_warn("MIME parts nested deeper than %d levels:"
			    " the deeper ones are skipped", READER_MAX_DEPTH);
		c->warned_depth = true;
		return;
	}
	if (add_node(c, obj, depth) == -1)
		return;
	if (GMIME_IS_MULTIPART(obj)) {
		count = g_mime_multipart_get_count(GMIME_MULTIPART(obj));
		for (i = 0; i < count; i++) {
			sub = g_mime_multipart_get_part(GMIME_MULTIPART(obj),
			    i);
			walk(c, sub, depth + 1);
		}
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (m != NULL)
			walk(c, g_mime_message_get_mime_part(m), depth + 1);
	}
}

static struct node *
find_node(struct msgctx *c, GMimeObject *obj)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (c->nodes[i].obj == obj)
			return &c->nodes[i];
	return NULL;
}

static void
msg_close(struct msgctx *c)
{
	if (c->msg != NULL)
		g_object_unref(c->msg);
	if (c->parser != NULL)
		g_object_unref(c->parser);
	if (c->stream != NULL)
		g_object_unref(c->stream);
	if (c->opts != NULL)
		g_mime_parser_options_free(c->opts);
	free(c->nodes);
	memset(c, 0, sizeof(*c));
}

/* Parses the message in fd, which stays the caller's.  0; 1 (with a
 * warning) when GMime finds no message in it at all; -1 on error. */
static int
msg_open(int fd, struct msgctx *c, char *err, size_t errsize)
{
	memset(c, 0, sizeof(*c));
	if (lseek(fd, 0, SEEK_SET) == -1) {
		errf(err, errsize, "%s", strerror(errno));
		return -1;
	}
	c->stream = g_mime_stream_fs_new(fd);
	g_mime_stream_fs_set_owner(GMIME_STREAM_FS(c->stream), FALSE);
	c->parser = g_mime_parser_new_with_stream(c->stream);
	g_mime_parser_set_format(c->parser, GMIME_FORMAT_MESSAGE);
	/* The parts keep reading the file instead of a copy in memory. */
	g_mime_parser_set_persist_stream(c->parser, TRUE);
	c->opts = g_mime_parser_options_new();
	g_mime_parser_options_set_warning_callback(c->opts, on_gmime_warning,
	    NULL);
	c->msg = g_mime_parser_construct_message(c->parser, c->opts);
	if (c->msg == NULL) {
		rd_warn("no mail message could be parsed: shown as text");
		msg_close(c);
		return 1;
	}
	walk(c, g_mime_message_get_mime_part(c->msg), 1);
	return 0;
}

/* ------------------------------------------------------------ helpers */

static bool
ct_is(GMimeObject *obj, const char *type, const char *subtype)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);

	return ct != NULL && g_mime_content_type_is_type(ct, type, subtype);
}

static bool
is_encrypted(GMimeObject *obj)
{
	const char *st;

	if (ct_is(obj, "multipart", "encrypted"))
		return true;
	if (ct_is(obj, "application", "pkcs7-mime") ||
	    ct_is(obj, "application", "x-pkcs7-mime")) {
		st = g_mime_object_get_content_type_parameter(obj,
		    "smime-type");
		return st == NULL || strcasecmp(st, "signed-data") != 0;
	}
	return false;
}

static bool
is_signed(GMimeObject *obj)
{
	const char *st;

	if (ct_is(obj, "multipart", "signed"))
		return true;
	if (ct_is(obj, "application", "pkcs7-mime") ||
	    ct_is(obj, "application", "x-pkcs7-mime")) {
		st = g_mime_object_get_content_type_parameter(obj,
		    "smime-type");
		return st != NULL && strcasecmp(st, "signed-data") == 0;
	}
	return false;
}

/* Parts that carry a signature or encryption control data, not
 * attachments. */
static bool
is_crypto_control(GMimeObject *obj)
{
	return ct_is(obj, "application", "pgp-signature") ||
	    ct_is(obj, "application", "pkcs7-signature") ||
	    ct_is(obj, "application", "x-pkcs7-signature") ||
	    ct_is(obj, "application", "pgp-encrypted");
}

static bool
is_attachment(GMimeObject *obj)
{
	return GMIME_IS_PART(obj) && g_mime_part_is_attachment(
	    GMIME_PART(obj));
}

/* Appends s, cut to READER_MAX_HEADER_LEN octets (a warning naming
 * what), cleaned; one line. */
static int
add_field(struct buf *b, const char *what, const char *s)
{
	size_t n;

	if (s == NULL)
		return 0;
	n = strlen(s);
	if (n > READER_MAX_HEADER_LEN) {
		rd_warn("%s is %zu octets long: cut to %d", what, n,
		    READER_MAX_HEADER_LEN);
		n = rd_utf8_prefix(s, READER_MAX_HEADER_LEN,
		    READER_MAX_HEADER_LEN);
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	return rd_clean_text(b, s, n, true);
}

/* A string to keep: s as add_field makes it, or NULL. */
static char *
field_dup(const char *what, const char *s)
{
	struct buf b;
	char *r = NULL;

	if (s == NULL)
		return NULL;
	buf_init(&b, READER_MAX_HEADER_LEN * 4 + 16);
	if (add_field(&b, what, s) == 0 && buf_str(&b) != NULL)
		r = strdup(b.data);
	buf_clear(&b);
	return r;
}

/* The decoded form of an address list header, or NULL. */
static char *
addresses(GMimeMessage *msg, GMimeAddressType type)
{
	InternetAddressList *l = g_mime_message_get_addresses(msg, type);

	if (l == NULL || internet_address_list_length(l) == 0)
		return NULL;
	return internet_address_list_to_string(l, NULL, FALSE);
}

/* ------------------------------------------------------------ summary */

/* An address fit for a From_ line and JSON as it is: 1..254 printable
 * ASCII octets, without blanks, quotes, brackets or parentheses. */
static bool
plain_address(const char *a)
{
	size_t i;

	if (a == NULL || a[0] == '\0' || strlen(a) > 254)
		return false;
	for (i = 0; a[i] != '\0'; i++)
		if (a[i] < 0x21 || a[i] > 0x7e || strchr("\"()<>", a[i]) !=
		    NULL)
			return false;
	return true;
}

static int show_msg(struct msgctx *, FILE *, bool, bool *);

int
rd_summarize(int fd, struct rd_summary *s, char *err, size_t errsize)
{
	struct msgctx c;
	InternetAddressList *from;
	InternetAddress *ia;
	GDateTime *d;
	const char *name, *addr, *status, *all;
	size_t i;
	int rc;

	memset(s, 0, sizeof(*s));
	if ((rc = msg_open(fd, &c, err, errsize)) != 0)
		return rc == 1 ? 0 : -1;
	s->subject = field_dup("Subject", g_mime_message_get_subject(c.msg));
	from = g_mime_message_get_from(c.msg);
	if (from != NULL && internet_address_list_length(from) > 0) {
		ia = internet_address_list_get_address(from, 0);
		name = internet_address_get_name(ia);
		addr = INTERNET_ADDRESS_IS_MAILBOX(ia) ?
		    internet_address_mailbox_get_addr(
		    INTERNET_ADDRESS_MAILBOX(ia)) : NULL;
		s->from = field_dup("From", name != NULL && name[0] != '\0' ?
		    name : addr);
		if (plain_address(addr))
			s->from_addr = strdup(addr);
	} else if ((all = g_mime_object_get_header(
	    GMIME_OBJECT(c.msg), "From")) != NULL)
		s->from = field_dup("From", all);
	if ((d = g_mime_message_get_date(c.msg)) != NULL) {
		s->date = g_date_time_to_unix(d);
		s->has_date = true;
	}
	status = g_mime_object_get_header(GMIME_OBJECT(c.msg), "Status");
	s->status_read = status != NULL && strchr(status, 'R') != NULL;
	for (i = 0; i < c.n; i++) {
		GMimeObject *o = c.nodes[i].obj;

		if (is_encrypted(o))
			s->encrypted = true;
		if (is_signed(o))
			s->is_signed = true;
	}
	/* Attachments are what show would list: found by a dry run. */
	(void)show_msg(&c, NULL, false, &s->attachments);
	msg_close(&c);
	return 0;
}

void
rd_summary_free(struct rd_summary *s)
{
	free(s->from);
	free(s->from_addr);
	free(s->subject);
	memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------ text */

/* Warns about octets outside the base64 alphabet in the encoded stream
 * of part num (GMime skips them). */
static void
check_base64(GMimeStream *src, unsigned int num)
{
	char chunk[8192];
	ssize_t n, i;
	size_t bad = 0;

	if (g_mime_stream_reset(src) == -1)
		return;
	while ((n = g_mime_stream_read(src, chunk, sizeof(chunk))) > 0)
		for (i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)chunk[i];
			if (!((ch >= 'A' && ch <= 'Z') ||
			    (ch >= 'a' && ch <= 'z') ||
			    (ch >= '0' && ch <= '9') || ch == '+' ||
			    ch == '/' || ch == '=' || ch == '\r' ||
			    ch == '\n' || ch == ' ' || ch == '\t'))
				bad++;
		}
	(void)g_mime_stream_reset(src);
	if (bad > 0)
		rd_warn("part %u: %zu octets that are not base64 skipped",
		    num, bad);
}

/* The decoded text of part p (number num) in UTF-8, into b, cut to
 * READER_MAX_TEXT octets of its encoded form. */
static int
part_text(GMimePart *p, unsigned int num, struct buf *b)
{
	GMimeDataWrapper *w = g_mime_part_get_content(p), *cut = NULL;
	GMimeStream *src, *mem, *sub = NULL;
	GByteArray *ba;
	const char *cs;
	char safe[96], *conv = NULL;
	iconv_t cd;
	gint64 len;
	int rc;

	if (w == NULL)
		return 0;
	src = g_mime_data_wrapper_get_stream(w);
	if (g_mime_data_wrapper_get_encoding(w) ==
	    GMIME_CONTENT_ENCODING_BASE64)
		check_base64(src, num);
	len = g_mime_stream_length(src);
	if (len > READER_MAX_TEXT) {
		rd_warn("part %u: %lld octets of text: only the first %d"
		    " shown", num, (long long)len, READER_MAX_TEXT);
		sub = g_mime_stream_substream(src, src->bound_start,
		    src->bound_start + READER_MAX_TEXT);
		cut = g_mime_data_wrapper_new_with_stream(sub,
		    g_mime_data_wrapper_get_encoding(w));
		w = cut;
	}
	mem = g_mime_stream_mem_new();
	rc = g_mime_data_wrapper_write_to_stream(w, mem) == -1 ? -1 : 0;
	if (cut != NULL) {
		g_object_unref(cut);
		g_object_unref(sub);
	}
	if (rc == -1) {
		rd_warn("part %u: cannot be decoded", num);
		g_object_unref(mem);
		return 0;
	}
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	cs = g_mime_object_get_content_type_parameter(GMIME_OBJECT(p),
	    "charset");
	if (cs != NULL && strcasecmp(cs, "utf-8") != 0 &&
	    strcasecmp(cs, "us-ascii") != 0) {
		cd = g_mime_iconv_open("UTF-8", g_mime_charset_iconv_name(cs));
		if (cd == (iconv_t)-1)
			rd_warn("part %u: unknown charset '%s': shown as"
			    " UTF-8", num, clean_short(cs, safe,
			    sizeof(safe)));
		else {
			conv = g_mime_iconv_strndup(cd, (const char *)ba->data,
			    ba->len);
			g_mime_iconv_close(cd);
			if (conv == NULL)
				rd_warn("part %u: text not valid in charset"
				    " '%s': shown as UTF-8", num,
				    clean_short(cs, safe, sizeof(safe)));
		}
	}
	if (conv != NULL) {
		rc = buf_add(b, conv, strlen(conv));
		g_free(conv);
	} else
		rc = buf_add(b, ba->data, ba->len);
	g_object_unref(mem);
	return rc;
}

/* ------------------------------------------------------------ show */

struct show {
	struct msgctx	*c;
	FILE		*out;		/* NULL: only find the parts */
	struct buf	 text;
	bool		 any;		/* text written already */
};

static int
put(struct show *sh, const char *s, size_t len, bool one_line)
{
	struct buf b;
	int rc = 0;

	buf_init(&b, len * 3 + 16);
	if (rd_clean_text(&b, s, len, one_line) == -1 ||
	    (b.len > 0 && fwrite(b.data, 1, b.len, sh->out) != b.len))
		rc = -1;
	buf_clear(&b);
	return rc;
}

static int
show_field(struct show *sh, const char *name, const char *value)
{
	struct buf b;
	int rc = 0;

	if (value == NULL)
		return 0;
	buf_init(&b, READER_MAX_HEADER_LEN * 4 + 16);
	if (add_field(&b, name, value) == -1)
		rc = -1;
	else if (fprintf(sh->out, "%s: ", name) < 0 ||
	    fwrite(b.data, 1, b.len, sh->out) != b.len ||
	    fputc('\n', sh->out) == EOF)
		rc = -1;
	buf_clear(&b);
	return rc;
}

static int
show_headers(struct show *sh, GMimeMessage *msg, bool all)
{
	static const struct {
		const char	*name;
		int		 type;	/* -1: not addresses */
	} main_fields[] = {
		{ "From", GMIME_ADDRESS_TYPE_FROM },
		{ "To", GMIME_ADDRESS_TYPE_TO },
		{ "Cc", GMIME_ADDRESS_TYPE_CC },
		{ "Date", -1 },
		{ "Subject", -1 },
	};
	GMimeHeaderList *hl;
	GMimeHeader *h;
	char *v, name[1024];
	size_t i;
	int count, j, k, shown = 0, rc = 0;

	if (sh->out == NULL)
		return 0;
	if (all) {
		/* GMime keeps the Content-* fields of the message with its
		 * top part: both lists, in that order. */
		for (j = 0; j < 2 && rc == 0; j++) {
			GMimeObject *o = j == 0 ? GMIME_OBJECT(msg) :
			    g_mime_message_get_mime_part(msg);

			if (o == NULL)
				break;
			hl = g_mime_object_get_header_list(o);
			count = g_mime_header_list_get_count(hl);
			for (k = 0; k < count && rc == 0; k++, shown++) {
				if (shown == READER_MAX_HEADERS) {
					rd_warn("more than %d header fields:"
					    " the rest is not shown",
					    READER_MAX_HEADERS);
					return 0;
				}
				h = g_mime_header_list_get_header_at(hl, k);
				rc = show_field(sh, clean_short(
				    g_mime_header_get_name(h), name,
				    sizeof(name)), g_mime_header_get_value(h));
			}
		}
		return rc;
	}
	for (i = 0; i < sizeof(main_fields) / sizeof(main_fields[0]) &&
	    rc == 0; i++) {
		if (main_fields[i].type >= 0) {
			v = addresses(msg, (GMimeAddressType)
			    main_fields[i].type);
			rc = show_field(sh, main_fields[i].name, v);
			g_free(v);
		} else if (strcmp(main_fields[i].name, "Subject") == 0)
			rc = show_field(sh, "Subject",
			    g_mime_message_get_subject(msg));
		else
			rc = show_field(sh, main_fields[i].name,
			    g_mime_object_get_header(GMIME_OBJECT(msg),
			    main_fields[i].name));
	}
	return rc;
}

static int show_obj(struct show *, GMimeObject *);

/* A text part (plain or HTML) shown as the body. */
static int
show_text(struct show *sh, struct node *n, bool html)
{
	struct buf raw, rendered;
	char why[256];
	enum rd_render_rc rrc;
	int rc = 0;

	n->shown = true;
	if (sh->out == NULL)
		return 0;
	buf_init(&raw, READER_MAX_TEXT * 4 + 16);
	if (part_text(GMIME_PART(n->obj), n->num, &raw) == -1) {
		buf_clear(&raw);
		return -1;
	}
	if (sh->any && fputc('\n', sh->out) == EOF)
		rc = -1;
	sh->any = true;
	if (html) {
		buf_init(&rendered, raw.len * 2 + READER_RENDER_MAX_OUTPUT +
		    16);
		rrc = rd_render_html(raw.data != NULL ? raw.data : "",
		    raw.len, &rendered, why, sizeof(why));
		if (rrc == RD_RENDER_FAILED)
			rd_warn("part %u: the HTML renderer failed (%s): tags"
			    " stripped instead", n->num, why);
		if (rrc != RD_RENDERED &&
		    rd_strip_tags(&rendered, raw.data != NULL ? raw.data :
		    "", raw.len) == -1)
			rc = -1;
		if (rc == 0)
			rc = put(sh, rendered.data != NULL ? rendered.data :
			    "", rendered.len, false);
		buf_clear(&rendered);
	} else if (rc == 0)
		rc = put(sh, raw.data != NULL ? raw.data : "", raw.len,
		    false);
	if (rc == 0 && (raw.len == 0 || raw.data[raw.len - 1] != '\n') &&
	    fputc('\n', sh->out) == EOF)
		rc = -1;
	buf_clear(&raw);
	return rc;
}

static GMimeObject *
best_alternative(GMimeMultipart *mp)
{
	int i, count = g_mime_multipart_get_count(mp);
	GMimeObject *o, *html = NULL;

	for (i = 0; i < count; i++) {
		o = g_mime_multipart_get_part(mp, i);
		if (ct_is(o, "text", "plain") && !is_attachment(o))
			return o;
		if (html == NULL && ct_is(o, "text", "html") &&
		    !is_attachment(o))
			html = o;
	}
	if (html != NULL)
		return html;
	return count > 0 ? g_mime_multipart_get_part(mp, count - 1) : NULL;
}

/* Marks obj and the parts inside it hidden (the nodes are in
 * depth-first order: its subtree follows it, deeper). */
static void
hide_subtree(struct msgctx *c, GMimeObject *obj)
{
	struct node *n = find_node(c, obj);
	size_t i;

	if (n == NULL)
		return;
	n->hidden = true;
	for (i = (size_t)(n - c->nodes) + 1; i < c->n &&
	    c->nodes[i].depth > n->depth; i++)
		c->nodes[i].hidden = true;
}

static int
show_obj(struct show *sh, GMimeObject *obj)
{
	struct node *n = obj != NULL ? find_node(sh->c, obj) : NULL;
	GMimeObject *best;
	GMimeMultipart *mp;
	GMimeMessage *m;
	int i, count, rc = 0;

	if (n == NULL)
		return 0;	/* past a limit (warned) */
	if (GMIME_IS_MULTIPART_ENCRYPTED(obj) || (GMIME_IS_PART(obj) &&
	    is_encrypted(obj))) {
		if (sh->out != NULL && fprintf(sh->out, "%s[encrypted part:"
		    " not decrypted]\n", sh->any ? "\n" : "") < 0)
			return -1;
		sh->any = true;
		return 0;
	}
	if (GMIME_IS_MULTIPART(obj)) {
		mp = GMIME_MULTIPART(obj);
		if (ct_is(obj, "multipart", "alternative")) {
			best = best_alternative(mp);
			/* The other versions of the text are not
			 * attachments (they keep their numbers). */
			count = g_mime_multipart_get_count(mp);
			for (i = 0; i < count; i++)
				if (g_mime_multipart_get_part(mp, i) != best)
					hide_subtree(sh->c,
					    g_mime_multipart_get_part(mp, i));
			return show_obj(sh, best);
		}
		count = g_mime_multipart_get_count(mp);
		if (GMIME_IS_MULTIPART_SIGNED(obj) && count > 1)
			count = 1;	/* the signature is listed */
		for (i = 0; i < count && rc == 0; i++)
			rc = show_obj(sh, g_mime_multipart_get_part(mp, i));
		return rc;
	}
	if (GMIME_IS_MESSAGE_PART(obj)) {
		m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (m == NULL || is_attachment(obj))
			return 0;
		if (sh->out != NULL) {
			if (fprintf(sh->out, "%s---------- message (part %u)"
			    " ----------\n", sh->any ? "\n" : "", n->num) < 0
			    || show_headers(sh, m, false) == -1 ||
			    fputc('\n', sh->out) == EOF)
				return -1;
		}
		sh->any = false;	/* the blank line is there */
		return show_obj(sh, g_mime_message_get_mime_part(m));
	}
	if (!GMIME_IS_PART(obj) || is_attachment(obj))
		return 0;
	if (ct_is(obj, "text", "plain"))
		return show_text(sh, n, false);
	if (ct_is(obj, "text", "html"))
		return show_text(sh, n, true);
	return 0;
}

/* The octets part n decodes to (a message part: its whole form). */
static gint64
decoded_size(struct node *n)
{
	GMimeStream *null = g_mime_stream_null_new();
	GMimeDataWrapper *w;
	gint64 size = -1;

	if (GMIME_IS_PART(n->obj)) {
		w = g_mime_part_get_content(GMIME_PART(n->obj));
		size = w == NULL ? 0 :
		    g_mime_data_wrapper_write_to_stream(w, null) == -1 ? -1 :
		    (gint64)GMIME_STREAM_NULL(null)->written;
	} else if (GMIME_IS_MESSAGE_PART(n->obj))
		size = g_mime_object_write_content_to_stream(n->obj, NULL,
		    null) == -1 ? -1 :
		    (gint64)GMIME_STREAM_NULL(null)->written;
	g_object_unref(null);
	return size;
}

/* True for the parts show lists as attachments (after show_obj). */
static bool
listed(const struct node *n)
{
	return n->num > 0 && !n->shown && !n->hidden &&
	    !is_crypto_control(n->obj);
}

static const char *
part_filename(GMimeObject *obj)
{
	const char *name = NULL;

	if (GMIME_IS_PART(obj))
		name = g_mime_part_get_filename(GMIME_PART(obj));
	else
		name = g_mime_object_get_content_disposition_parameter(obj,
		    "filename");
	return name;
}

static int
show_attachments(struct show *sh)
{
	char type[128], *mt;
	struct buf b;
	bool head = false;
	size_t i;
	gint64 size;
	int rc = 0;

	for (i = 0; i < sh->c->n && rc == 0; i++) {
		struct node *n = &sh->c->nodes[i];

		if (!listed(n))
			continue;
		if (!head && fprintf(sh->out, "\nAttachments:\n") < 0)
			return -1;
		head = true;
		mt = g_mime_content_type_get_mime_type(
		    g_mime_object_get_content_type(n->obj));
		(void)clean_short(mt, type, sizeof(type));
		g_free(mt);
		size = decoded_size(n);
		buf_init(&b, READER_MAX_HEADER_LEN * 4 + 16);
		if (add_field(&b, "file name", part_filename(n->obj)) == -1 ||
		    buf_str(&b) == NULL)
			rc = -1;
		else if (fprintf(sh->out, "  %3u  %s  %s  (%lld octets)\n",
		    n->num, type, b.len > 0 ? b.data : "-",
		    (long long)size) < 0)
			rc = -1;
		buf_clear(&b);
	}
	return rc;
}

static int
show_msg(struct msgctx *c, FILE *out, bool all_headers, bool *attachments)
{
	struct show sh = { .c = c, .out = out };
	unsigned int enc_depth = 0;
	size_t i;
	int rc;

	rc = show_headers(&sh, c->msg, all_headers);
	if (rc == 0 && out != NULL && fputc('\n', out) == EOF)
		rc = -1;
	if (rc == 0)
		rc = show_obj(&sh, g_mime_message_get_mime_part(c->msg));
	if (rc == 0 && out != NULL)
		rc = show_attachments(&sh);
	/* Attachments for list's marker: what is listed, but not the
	 * contents of an encrypted part. */
	*attachments = false;
	for (i = 0; i < c->n; i++) {
		if (enc_depth != 0 && c->nodes[i].depth > enc_depth)
			continue;
		enc_depth = 0;
		if (is_encrypted(c->nodes[i].obj))
			enc_depth = c->nodes[i].depth;
		else if (listed(&c->nodes[i]))
			*attachments = true;
	}
	return rc;
}

/* What GMime could not parse, cleaned, up to READER_MAX_TEXT octets. */
static int
show_unparsed(int fd, FILE *out, char *err, size_t errsize)
{
	struct buf raw, clean;
	char chunk[16384];
	ssize_t n;
	int rc = 0;

	buf_init(&raw, READER_MAX_TEXT);
	buf_init(&clean, READER_MAX_TEXT * 3 + 16);
	if (lseek(fd, 0, SEEK_SET) == -1)
		rc = -1;
	while (rc == 0 && raw.len < READER_MAX_TEXT) {
		n = read(fd, chunk, sizeof(chunk) < READER_MAX_TEXT - raw.len ?
		    sizeof(chunk) : READER_MAX_TEXT - raw.len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = (int)n;
			break;
		}
		rc = buf_add(&raw, chunk, (size_t)n);
	}
	if (rc == 0 && (rd_clean_text(&clean, raw.data != NULL ? raw.data :
	    "", raw.len, false) == -1 || (clean.len > 0 &&
	    fwrite(clean.data, 1, clean.len, out) != clean.len)))
		rc = -1;
	if (rc == -1)
		errf(err, errsize, "%s", strerror(errno));
	buf_clear(&raw);
	buf_clear(&clean);
	return rc;
}

int
rd_show(int fd, FILE *out, bool all_headers, char *err, size_t errsize)
{
	struct msgctx c;
	bool att;
	int rc;

	if ((rc = msg_open(fd, &c, err, errsize)) == 1)
		return out != NULL ? show_unparsed(fd, out, err, errsize) : 0;
	if (rc == -1)
		return -1;
	rc = show_msg(&c, out, all_headers, &att);
	if (rc == -1)
		errf(err, errsize, "writing: %s", strerror(errno));
	msg_close(&c);
	return rc;
}

/* ------------------------------------------------------------ save */

/* Writes part n, decoded (a message part: as it is), to fd. */
static int
write_part(struct node *n, int fd)
{
	GMimeStream *os;
	GMimeDataWrapper *w;
	GMimeStream *src;
	ssize_t r = 0;

	/* A pipe or terminal cannot seek, which a file stream does. */
	if (lseek(fd, 0, SEEK_CUR) == -1) {
		os = g_mime_stream_pipe_new(fd);
		g_mime_stream_pipe_set_owner(GMIME_STREAM_PIPE(os), FALSE);
	} else {
		os = g_mime_stream_fs_new(fd);
		g_mime_stream_fs_set_owner(GMIME_STREAM_FS(os), FALSE);
	}
	if (GMIME_IS_PART(n->obj)) {
		w = g_mime_part_get_content(GMIME_PART(n->obj));
		if (w != NULL) {
			src = g_mime_data_wrapper_get_stream(w);
			if (g_mime_data_wrapper_get_encoding(w) ==
			    GMIME_CONTENT_ENCODING_BASE64)
				check_base64(src, n->num);
			r = g_mime_data_wrapper_write_to_stream(w, os);
		}
	} else
		r = g_mime_object_write_content_to_stream(n->obj, NULL, os);
	if (r != -1 && g_mime_stream_flush(os) == -1)
		r = -1;
	g_object_unref(os);
	return r == -1 ? -1 : 0;
}

/* Saves part n into dirfd under its safe name, numbered if taken. */
static int
save_one(struct node *n, const struct rd_save_opts *o, char *err,
    size_t errsize)
{
	char base[READER_MAX_FILENAME + 64], name[READER_MAX_FILENAME + 64];
	const char *given = part_filename(n->obj);
	unsigned int k;
	int fd = -1;

	if (given == NULL && GMIME_IS_MESSAGE_PART(n->obj)) {
		if (str_fmt(base, sizeof(base), "message-%u.eml", n->num) ==
		    -1)
			goto toolong;
	} else if (rd_safe_filename(given, n->num, base, sizeof(base)) == -1)
		goto toolong;
	memcpy(name, base, sizeof(name));
	for (k = 0; k <= READER_MAX_DUPLICATES; k++) {
		if (k > 0 && rd_numbered_name(base, k, name, sizeof(name)) ==
		    -1)
			goto toolong;
		fd = openat(o->dirfd, name, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
		if (fd != -1 || errno != EEXIST)
			break;
	}
	if (fd == -1) {
		errf(err, errsize, "part %u: %s: %s", n->num, name,
		    errno == EEXIST ? "taken, and so are its numbered names" :
		    strerror(errno));
		return -1;
	}
	if (write_part(n, fd) == -1 || fsync(fd) == -1) {
		errf(err, errsize, "part %u: %s: %s", n->num, name,
		    strerror(errno));
		close(fd);
		(void)unlinkat(o->dirfd, name, 0);
		return -1;
	}
	if (close(fd) == -1) {
		errf(err, errsize, "part %u: %s: %s", n->num, name,
		    strerror(errno));
		(void)unlinkat(o->dirfd, name, 0);
		return -1;
	}
	if (o->report != NULL)
		fprintf(o->report, "part %u saved as %s\n", n->num, name);
	return 0;
toolong:
	errf(err, errsize, "part %u: file name too long", n->num);
	return -1;
}

int
rd_save(int fd, const struct rd_save_opts *o, char *err, size_t errsize)
{
	struct msgctx c;
	struct node *n = NULL;
	bool att;
	size_t i;
	int rc = 0, saved = 0;

	if ((rc = msg_open(fd, &c, err, errsize)) == 1) {
		if (o->part > 0) {
			errf(err, errsize, "no part %u (the message has none)",
			    o->part);
			return RD_NO_PART;
		}
		if (o->report != NULL)
			fprintf(o->report, "no attachment to save\n");
		return 0;
	}
	if (rc == -1)
		return -1;
	/* What show lists is what is saved by default. */
	(void)show_msg(&c, NULL, false, &att);
	if (o->part > 0) {
		for (i = 0; i < c.n; i++)
			if (c.nodes[i].num == o->part)
				n = &c.nodes[i];
		if (n == NULL) {
			errf(err, errsize, "no part %u (the message has parts"
			    " 1 to %u)", o->part, c.nums);
			msg_close(&c);
			return RD_NO_PART;
		}
		if (o->out_fd >= 0) {
			if (write_part(n, o->out_fd) == -1) {
				errf(err, errsize, "part %u: writing: %s",
				    n->num, strerror(errno));
				rc = -1;
			}
		} else
			rc = save_one(n, o, err, errsize);
		saved = rc == 0;
	} else {
		for (i = 0; i < c.n && rc == 0; i++)
			if (listed(&c.nodes[i])) {
				rc = save_one(&c.nodes[i], o, err, errsize);
				saved += rc == 0;
			}
	}
	if (saved > 0 && o->out_fd < 0 && fsync(o->dirfd) == -1 && rc == 0) {
		errf(err, errsize, "fsync: %s", strerror(errno));
		rc = -1;
	}
	if (rc == 0 && saved == 0 && o->report != NULL)
		fprintf(o->report, "no attachment to save\n");
	msg_close(&c);
	return rc;
}
