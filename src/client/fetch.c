/*
 * fetch.c: one account's run of `postern fetch` (fetch.h): lock,
 * journal, login, UIDL, then RETR, store, journal, DELE for each message,
 * QUIT, and compaction of the journal.
 *
 * Owns: the lock and the journal of the account, the Maildir files it
 * writes.  Trusts: nothing the server sends (UIDLs are checked, bodies
 * bounded); the Maildir to be the user's.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/evp.h>

#include "client/fetch.h"
#include "client/journal.h"
#include "client/mda.h"
#include "client/report.h"
#include "client/pop3c.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/strnum.h"
#include "pop3/wire.h"
#include "store/store.h"

static void ferr(char *, size_t, const char *, ...) ATTR_PRINTF(3, 4);

static void
ferr(char *err, size_t errsize, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(err, errsize, fmt, ap);
	va_end(ap);
}

int
fetch_state_dir(char *out, size_t size)
{
	const char *s = getenv("XDG_STATE_HOME");

	if (s != NULL && s[0] == '/')
		return str_fmt(out, size, "%s/postern", s);
	s = getenv("HOME");
	if (s == NULL || s[0] != '/')
		return -1;
	return str_fmt(out, size, "%s/.local/state/postern", s);
}

int
fetch_base_name(const char *account, const char *uidl, char *out,
    size_t size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[33];
	int i;

	if (EVP_Digest(uidl, strlen(uidl), md, &mdlen, EVP_sha256(), NULL) !=
	    1 || mdlen < 16)
		return -1;
	for (i = 0; i < 16; i++)
		(void)snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return str_fmt(out, size, "%s.%s", account, hex);
}

/* One message of the server's UIDL list. */
struct msg {
	uint32_t	 num;
	char		*uidl;
	bool		 ambiguous;	/* its UIDL is listed more than once */
	bool		 wanted;	/* not in the journal, or only_new = no */
	bool		 again;		/* in the journal, fetched again */
	bool		 skip;		/* larger than max_size: left alone */
	bool		 headers;	/* larger: only its headers stored */
	char		*jid;		/* its journal identity: uidl, or
					 * FETCH_HEADERS_PREFIX... */
	uint64_t	 size;		/* LIST size (with max_size), else 0 */
	bool		 retr;		/* not in the Maildir either */
	bool		 dele;		/* to be deleted by this run */
	bool		 deleted;	/* DELE answered +OK */
	bool		 journaled;	/* by this run, at its delivery (mda) */
	bool		 refused;	/* by the mda: left on the server */
};

struct run {
	const struct account	*a;
	struct pop3c		*c;
	struct msg		*msgs;
	size_t			 count;
	char			**have;		/* base names in new/, cur/ */
	size_t			 nhave, caphave;
	int			 maildir_fd;
	int			 tmp_fd, new_fd;
	int64_t			 start;		/* time of the run */
	bool			 sized;		/* LIST was read */
	struct journal		*j;
	struct fetch_stats	*st;
	struct report		*rep;
	uint32_t		 refused;	/* messages the mda refused */
	char			*mbox_loc;	/* "mbox:" and the mbox target */
	int			 intent_fd;	/* the mbox intent file, or -1 */
};

static bool
uidl_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > FETCH_MAX_UIDL)
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* A new message numbered num at the end of r's list, or NULL (the
 * reason in r->c). */
static struct msg *
msg_append(struct run *r, uint32_t num)
{
	struct msg *m;

	if (r->count == FETCH_MAX_MESSAGES) {
		(void)pop3c_error(r->c, POP3C_TEMP, "%s: more than %d"
		    " messages", r->a->host, FETCH_MAX_MESSAGES);
		return NULL;
	}
	if ((m = realloc(r->msgs, (r->count + 1) * sizeof(*m))) == NULL) {
		(void)pop3c_error(r->c, POP3C_TEMP, "out of memory");
		return NULL;
	}
	r->msgs = m;
	m = &r->msgs[r->count++];
	memset(m, 0, sizeof(*m));
	m->num = num;
	return m;
}

/* "NUM SIZE", a line of LIST (RFC 1939 section 5).  0 or -1. */
static int
list_fields(char *line, uint32_t *num_r, uint64_t *size_r)
{
	char *sp;

	if ((sp = strchr(line, ' ')) == NULL)
		return -1;
	*sp++ = '\0';
	if (parse_u32(line, UINT32_MAX, num_r) != PARSE_OK || *num_r == 0 ||
	    parse_u64(sp, UINT64_MAX, size_r) != PARSE_OK)
		return -1;
	return 0;
}

static int
uidl_line(void *arg, char *line, size_t len)
{
	struct run *r = arg;
	struct msg *m;
	char *sp;
	uint32_t num;

	(void)len;
	if ((sp = strchr(line, ' ')) == NULL)
		goto bad;
	*sp++ = '\0';
	if (parse_u32(line, UINT32_MAX, &num) != PARSE_OK || num == 0 ||
	    !uidl_ok(sp))
		goto bad;
	if ((m = msg_append(r, num)) == NULL)
		return -1;
	if ((m->uidl = strdup(sp)) == NULL)
		return pop3c_error(r->c, POP3C_TEMP, "out of memory");
	return 0;
bad:
	return pop3c_error(r->c, POP3C_TEMP, "%s: malformed UIDL line",
	    r->a->host);
}

/* A line of the reply to LIST: "NUM SIZE" (RFC 1939 section 5). */
static int
list_line(void *arg, char *line, size_t len)
{
	struct run *r = arg;
	uint32_t num;
	uint64_t size;
	size_t i;

	(void)len;
	if (list_fields(line, &num, &size) == -1)
		goto bad;
	/* Usually message n is the n-th of the UIDL list. */
	if (num <= r->count && r->msgs[num - 1].num == num)
		r->msgs[num - 1].size = size;
	else
		for (i = 0; i < r->count; i++)
			if (r->msgs[i].num == num)
				r->msgs[i].size = size;
	return 0;
bad:
	return pop3c_error(r->c, POP3C_TEMP, "%s: malformed LIST line",
	    r->a->host);
}

/* A line of LIST on a server without UIDL: the messages themselves. */
static int
list_new_line(void *arg, char *line, size_t len)
{
	struct run *r = arg;
	struct msg *m;
	uint32_t num;
	uint64_t size;

	(void)len;
	if (list_fields(line, &num, &size) == -1)
		goto bad;
	if ((m = msg_append(r, num)) == NULL)
		return -1;
	m->size = size;
	return 0;
bad:
	return pop3c_error(r->c, POP3C_TEMP, "%s: malformed LIST line",
	    r->a->host);
}

static int
digest_data(void *arg, const uint8_t *data, size_t len)
{
	return EVP_DigestUpdate(arg, data, len) == 1 ? 0 : -1;
}

/* prefix and the 64 hex digits of the SHA-256 of what ctx was fed, as
 * a new string into *out.  0 or -1. */
static int
digest_id(EVP_MD_CTX *ctx, const char *prefix, char **out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	char id[FETCH_MAX_ID + 1];
	size_t n = strlen(prefix);

	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32 ||
	    n + 64 > FETCH_MAX_ID)
		return -1;
	memcpy(id, prefix, n);
	for (i = 0; i < mdlen; i++)
		(void)snprintf(id + n + 2 * i, 3, "%02x", md[i]);
	return (*out = strdup(id)) == NULL ? -1 : 0;
}

/*
 * A server without UIDL: every message is named by FETCH_DIGEST_PREFIX
 * and the SHA-256 of its LIST size and its headers (TOP n 0, in LF
 * form).  The TOPs go out a window at a time with PIPELINING.  0 or -1.
 */
static int
synthetic_ids(struct run *r)
{
	struct pop3c *c = r->c;
	char line[FETCH_MAX_LINE + 1], size[24];
	EVP_MD_CTX *ctx;
	size_t i, k, end;
	bool pipe = c->capa.pipelining;
	int rc, ret = -1;

	fprintf(stderr, "postern fetch: warning: %s: %s has no UIDL; its"
	    " messages are told apart by a digest of their headers and"
	    " size\n", r->a->name, r->a->host);
	if (pop3c_send(c, "LIST") == -1 ||
	    pop3c_status(c, "LIST", line, sizeof(line)) != 1 ||
	    pop3c_lines(c, list_new_line, r) == -1)
		return -1;
	r->sized = true;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return pop3c_error(c, POP3C_TEMP, "out of memory");
	for (i = 0; i < r->count; i = end) {
		end = r->count - i > FETCH_PIPELINE_WINDOW ?
		    i + FETCH_PIPELINE_WINDOW : r->count;
		for (k = i; pipe && k < end; k++)
			if (pop3c_send(c, "TOP %u 0", r->msgs[k].num) == -1)
				goto out;
		for (k = i; k < end; k++) {
			struct msg *m = &r->msgs[k];

			if (!pipe && pop3c_send(c, "TOP %u 0", m->num) == -1)
				goto out;
			if ((rc = pop3c_status(c, "TOP", line, sizeof(line))) ==
			    -1)
				goto out;
			if (rc == 0) {
				c->fail = POP3C_PERM;
				(void)snprintf(c->err + strlen(c->err),
				    sizeof(c->err) - strlen(c->err), " (without"
				    " UIDL, fetch needs TOP to tell messages"
				    " apart)");
				goto out;
			}
			(void)snprintf(size, sizeof(size), "%llu\n",
			    (unsigned long long)m->size);
			if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
			    EVP_DigestUpdate(ctx, size, strlen(size)) != 1) {
				(void)pop3c_error(c, POP3C_TEMP, "SHA-256"
				    " failed");
				goto out;
			}
			if (pop3c_body(c, FETCH_MAX_HEADER_SIZE, digest_data,
			    ctx) == -1)
				goto out;
			if (digest_id(ctx, FETCH_DIGEST_PREFIX, &m->uidl) ==
			    -1) {
				(void)pop3c_error(c, POP3C_TEMP, "SHA-256"
				    " failed");
				goto out;
			}
		}
	}
	ret = 0;
out:
	EVP_MD_CTX_free(ctx);
	return ret;
}

static int
cmp_ident(const void *x, const void *y)
{
	const struct msg *a = *(const struct msg *const *)x;
	const struct msg *b = *(const struct msg *const *)y;
	int d = strcmp(a->uidl, b->uidl);

	if (d != 0)
		return d;
	return a->num < b->num ? -1 : a->num > b->num;
}

/*
 * Messages listed under the same identity (a server's duplicate UIDLs,
 * or copies with the same headers and size on a server without UIDL)
 * are ambiguous: the first (lowest number) keeps the identity, the n-th
 * becomes FETCH_DUP_PREFIX and the SHA-256 of "identity\nn", so that
 * each has a journal record of its own.  0 or -1.
 */
static int
mark_duplicates(struct run *r)
{
	struct msg **v;
	EVP_MD_CTX *ctx = NULL;
	char nth[24], *id;
	size_t i, k, n, dups = 0;
	int ret = -1;

	if (r->count < 2)
		return 0;
	if ((v = malloc(r->count * sizeof(*v))) == NULL)
		return pop3c_error(r->c, POP3C_TEMP, "out of memory");
	for (i = 0; i < r->count; i++)
		v[i] = &r->msgs[i];
	qsort(v, r->count, sizeof(*v), cmp_ident);
	for (i = 0; i < r->count; i = k) {
		for (k = i + 1; k < r->count && strcmp(v[k]->uidl,
		    v[i]->uidl) == 0; k++)
			continue;
		if (k - i == 1)
			continue;
		if (ctx == NULL && (ctx = EVP_MD_CTX_new()) == NULL)
			goto oom;
		for (n = i; n < k; n++) {
			v[n]->ambiguous = true;
			if (n == i)
				continue;
			(void)snprintf(nth, sizeof(nth), "\n%zu", n - i + 1);
			if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
			    EVP_DigestUpdate(ctx, v[i]->uidl,
			    strlen(v[i]->uidl)) != 1 ||
			    EVP_DigestUpdate(ctx, nth, strlen(nth)) != 1 ||
			    digest_id(ctx, FETCH_DUP_PREFIX, &id) == -1)
				goto oom;
			dups++;
			free(v[n]->uidl);
			v[n]->uidl = id;
		}
	}
	if (dups > 0)
		fprintf(stderr, "postern fetch: warning: %s: %s lists %zu"
		    " message%s under an identity another message has too;"
		    " they are fetched, and deleted only once fetched by the"
		    " same run\n", r->a->name, r->a->host, dups,
		    dups == 1 ? "" : "s");
	ret = 0;
	goto out;
oom:
	(void)pop3c_error(r->c, POP3C_TEMP, "out of memory");
out:
	EVP_MD_CTX_free(ctx);
	free(v);
	return ret;
}

/* The journal identity of the headers of m (max_size_action =
 * headers): FETCH_HEADERS_PREFIX and the SHA-256 of its identity.  0 or
 * -1. */
static int
headers_id(struct msg *m)
{
	EVP_MD_CTX *ctx;
	int r;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	r = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, m->uidl, strlen(m->uidl)) == 1 &&
	    digest_id(ctx, FETCH_HEADERS_PREFIX, &m->jid) == 0 ? 0 : -1;
	EVP_MD_CTX_free(ctx);
	return r;
}

/* The server's messages and their identities: UIDL, or made up
 * (synthetic_ids) when the server has no UIDL.  0 or -1. */
static int
list_messages(struct run *r)
{
	struct pop3c *c = r->c;
	char line[FETCH_MAX_LINE + 1];
	int rc;

	if (pop3c_send(c, "UIDL") == -1 ||
	    (rc = pop3c_status(c, "UIDL", line, sizeof(line))) == -1)
		return -1;
	if (rc == 1) {
		if (pop3c_lines(c, uidl_line, r) == -1)
			return -1;
	} else {
		/* A plain -ERR: no UIDL.  One with a response code
		 * ([IN-USE], [SYS/TEMP]...) is a failure like any. */
		if (strncmp(line, "-ERR [", 6) == 0)
			return -1;
		c->fail = POP3C_OK;
		c->err[0] = '\0';
		if (synthetic_ids(r) == -1)
			return -1;
	}
	return mark_duplicates(r);
}

static int
cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

static int
cmp_msg(const void *x, const void *y)
{
	return strcmp(((const struct msg *)x)->jid,
	    ((const struct msg *)y)->jid);
}

/* The base name of m in the Maildir: from its UIDL, or, fetched again
 * (only_new = no), from its UIDL, the run's start and our pid, so that
 * each copy has a name of its own. */
static int
msg_base(const struct run *r, const struct msg *m, char *out, size_t size)
{
	char key[FETCH_MAX_UIDL + 48];

	if (!m->again)
		return fetch_base_name(r->a->name, m->jid, out, size);
	if (str_fmt(key, sizeof(key), "%s\n%lld.%ld", m->uidl,
	    (long long)r->start, (long)getpid()) == -1)
		return -1;
	return fetch_base_name(r->a->name, key, out, size);
}

static bool
have_base(const struct run *r, const char *base)
{
	return r->nhave > 0 && bsearch(&base, r->have, r->nhave,
	    sizeof(*r->have), cmp_str) != NULL;
}

/* True if name is "<account>.<32 hex>.<pid>", a tmp/ file of this
 * account (and not of one whose name starts with it). */
static bool
own_tmp_name(const char *account, const char *name)
{
	size_t plen = strlen(account), i;

	if (strncmp(name, account, plen) != 0 || name[plen] != '.')
		return false;
	name += plen + 1;
	for (i = 0; i < 32; i++)
		if (!isxdigit((unsigned char)name[i]))
			return false;
	if (name[32] != '.' || name[33] == '\0')
		return false;
	for (name += 33; *name != '\0'; name++)
		if (*name < '0' || *name > '9')
			return false;
	return true;
}

/* Opens (creating) the Maildir and lists the base names of new/ and
 * cur/ that this account wrote. */
static int
maildir_prepare(struct run *r, char *err, size_t errsize)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	size_t plen = strlen(r->a->name);
	struct dirent *de;
	char **n;
	size_t i, len;
	DIR *d;
	int fd;

	if (mkdir_p(r->a->maildir, 0700) == -1 ||
	    fsync_parent(r->a->maildir) == -1)
		goto fail;
	r->maildir_fd = open(r->a->maildir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC);
	if (r->maildir_fd == -1)
		goto fail;
	for (i = 0; i < N_ELEMENTS(sub); i++)
		if (mkdirat(r->maildir_fd, sub[i], 0700) == -1 &&
		    errno != EEXIST)
			goto fail;
	if (fsync(r->maildir_fd) == -1)
		goto fail;
	r->tmp_fd = openat(r->maildir_fd, "tmp", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC);
	r->new_fd = openat(r->maildir_fd, "new", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC);
	if (r->tmp_fd == -1 || r->new_fd == -1)
		goto fail;
	/* The lock is ours: any tmp/ file of this account is left over
	 * from a run that was killed. */
	if ((fd = dup(r->tmp_fd)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		goto fail;
	}
	while ((de = readdir(d)) != NULL)
		if (own_tmp_name(r->a->name, de->d_name))
			(void)unlinkat(r->tmp_fd, de->d_name, 0);
	closedir(d);
	for (i = 1; i < N_ELEMENTS(sub); i++) {
		if ((fd = openat(r->maildir_fd, sub[i], O_RDONLY |
		    O_DIRECTORY | O_CLOEXEC)) == -1 ||
		    (d = fdopendir(fd)) == NULL) {
			if (fd != -1)
				close(fd);
			goto fail;
		}
		while ((de = readdir(d)) != NULL) {
			if (strncmp(de->d_name, r->a->name, plen) != 0 ||
			    de->d_name[plen] != '.')
				continue;
			len = strcspn(de->d_name, ",:");
			if (r->nhave == r->caphave) {
				r->caphave = r->caphave ? 2 * r->caphave : 64;
				n = realloc(r->have, r->caphave * sizeof(*n));
				if (n == NULL) {
					closedir(d);
					goto fail;
				}
				r->have = n;
			}
			if ((r->have[r->nhave] = strndup(de->d_name, len)) ==
			    NULL) {
				closedir(d);
				goto fail;
			}
			r->nhave++;
		}
		closedir(d);
	}
	if (r->nhave > 0)
		qsort(r->have, r->nhave, sizeof(*r->have), cmp_str);
	return 0;
fail:
	ferr(err, errsize, "maildir %s: %s", r->a->maildir, strerror(errno));
	return -1;
}

/* A message on its way into tmp/. */
struct put {
	struct run	*r;
	int		 fd;
	uint64_t	 stored;
	struct wire_enc	 enc;		/* counts the wire size (W=) */
};

static int
put_data(void *arg, const uint8_t *data, size_t len)
{
	struct put *p = arg;

	if (write_full(p->fd, data, len) == -1)
		return pop3c_error(p->r->c, POP3C_TEMP, "maildir %s: writing:"
		    " %s", p->r->a->maildir, strerror(errno));
	(void)wire_enc_feed(&p->enc, data, len, NULL);
	p->stored += len;
	report_progress(p->r->rep, len);
	return 0;
}

/* A message of the window on its way into new/. */
struct pending {
	struct msg	*m;
	char		 tmpname[256];
	char		 name[300];	/* in new/, with S= and W= */
	int		 fd;		/* open in tmp/, -1 once closed */
	bool		 renamed;	/* in new/ */
	uint64_t	 stored;
};

/*
 * The reply to a RETR (sent already) into tmp/ as base.  The file stays
 * open and its writeback is started at once; window_commit makes it
 * durable.  0, or -1 (the reason in r->c) with nothing left in tmp/.
 */
static int
retr_recv(struct run *r, const char *base, const char *prefix,
    struct pending *pd)
{
	char line[FETCH_MAX_LINE + 1];
	struct put p = { .r = r, .fd = -1 };

	pd->fd = -1;
	pd->renamed = false;
	if (str_fmt(pd->tmpname, sizeof(pd->tmpname), "%s.%ld", base,
	    (long)getpid()) == -1)
		return pop3c_error(r->c, POP3C_TEMP, "file name too long");
	if (pop3c_status(r->c, prefix != NULL ? "TOP" : "RETR", line,
	    sizeof(line)) != 1)
		return -1;
	(void)unlinkat(r->tmp_fd, pd->tmpname, 0);
	p.fd = openat(r->tmp_fd, pd->tmpname, O_WRONLY | O_CREAT | O_EXCL |
	    O_CLOEXEC | O_NOFOLLOW, 0600);
	if (p.fd == -1)
		return pop3c_error(r->c, POP3C_TEMP, "maildir %s: tmp/%s: %s",
		    r->a->maildir, pd->tmpname, strerror(errno));
	wire_enc_init(&p.enc, false, WIRE_ALL_LINES);
	if ((prefix != NULL && put_data(&p, (const uint8_t *)prefix,
	    strlen(prefix)) == -1) ||
	    pop3c_body(r->c, FETCH_MAX_MESSAGE_SIZE, put_data, &p) == -1)
		goto fail;
	(void)wire_enc_finish(&p.enc, NULL);
	if (str_fmt(pd->name, sizeof(pd->name), "%s,S=%llu,W=%llu", base,
	    (unsigned long long)p.stored,
	    (unsigned long long)p.enc.octets) == -1) {
		(void)pop3c_error(r->c, POP3C_TEMP, "file name too long");
		goto fail;
	}
	/* Only a hint: the fsync in window_commit is what counts. */
	(void)sync_file_range(p.fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	pd->fd = p.fd;
	pd->stored = p.stored;
	return 0;
fail:
	close(p.fd);
	(void)unlinkat(r->tmp_fd, pd->tmpname, 0);
	return -1;
}

/* Forgets what of the window is not in new/: closes and removes its
 * tmp/ files. */
static void
window_drop(struct run *r, struct pending *pd, size_t n)
{
	size_t k;

	for (k = 0; k < n; k++) {
		if (pd[k].fd != -1)
			close(pd[k].fd);
		pd[k].fd = -1;
		if (!pd[k].renamed)
			(void)unlinkat(r->tmp_fd, pd[k].tmpname, 0);
	}
}

/*
 * Makes the n messages of a window durable in new/: fsync of each file,
 * rename into new/ (never over a file), one fsync of new/.  The journal
 * records come after, and the DELEs after them: the order of fetch.h,
 * one window at a time.  0, or -1 (the reason in r->c) with nothing of
 * the window known to be in new/.
 */
static int
window_commit(struct run *r, struct pending *pd, size_t n)
{
	size_t k;

	for (k = 0; k < n; k++) {
		if (fsync(pd[k].fd) == -1 || close(pd[k].fd) == -1) {
			pd[k].fd = -1;
			(void)pop3c_error(r->c, POP3C_TEMP, "maildir %s: fsync:"
			    " %s", r->a->maildir, strerror(errno));
			goto fail;
		}
		pd[k].fd = -1;
	}
	for (k = 0; k < n; k++) {
		if (renameat2(r->tmp_fd, pd[k].tmpname, r->new_fd, pd[k].name,
		    RENAME_NOREPLACE) == -1) {
			(void)pop3c_error(r->c, POP3C_TEMP, "maildir %s:"
			    " new/%s: %s", r->a->maildir, pd[k].name,
			    strerror(errno));
			goto fail;
		}
		pd[k].renamed = true;
	}
	if (n > 0 && fsync(r->new_fd) == -1) {
		(void)pop3c_error(r->c, POP3C_TEMP, "maildir %s: fsync of"
		    " new/: %s", r->a->maildir, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	/* Not known to be on disk: take back what was renamed, so that
	 * the next run stores it again. */
	for (k = 0; k < n; k++)
		if (pd[k].renamed) {
			(void)unlinkat(r->new_fd, pd[k].name, 0);
			pd[k].renamed = false;
		}
	window_drop(r, pd, n);
	return -1;
}

/* A message on its way to the mda. */
struct mda_put {
	struct run	*r;
	struct mda	 d;
	uint64_t	 stored;
};

static int
mda_data(void *arg, const uint8_t *data, size_t len)
{
	struct mda_put *p = arg;
	char err[512];

	if (mda_write(&p->d, data, len, err, sizeof(err)) == -1)
		return pop3c_error(p->r->c, POP3C_TEMP, "%s", err);
	p->stored += len;
	report_progress(p->r->rep, len);
	return 0;
}

/*
 * The reply to a RETR (sent already) through the account's mda, then,
 * once it is delivered, its journal record (a delivery through an mda
 * cannot be undone or recognised, so it is journaled at once, not with
 * its window).  0 delivered, 1 refused by the mda (left on the server,
 * counted in r->refused), -1 (the reason in r->c; exit 75 of the mda
 * too).
 */
static int
mda_recv(struct run *r, struct msg *m, const char *prefix)
{
	char line[FETCH_MAX_LINE + 1], err[512];
	struct mda_put p = { .r = r };

	if (pop3c_status(r->c, prefix != NULL ? "TOP" : "RETR", line,
	    sizeof(line)) != 1)
		return -1;
	if (mda_start(&p.d, r->a, err, sizeof(err)) == -1)
		return pop3c_error(r->c, POP3C_TEMP, "%s", err);
	if ((prefix != NULL && mda_data(&p, (const uint8_t *)prefix,
	    strlen(prefix)) == -1) ||
	    pop3c_body(r->c, FETCH_MAX_MESSAGE_SIZE, mda_data, &p) == -1) {
		mda_abort(&p.d);
		return -1;
	}
	switch (mda_finish(&p.d, err, sizeof(err))) {
	case MDA_DELIVERED:
		break;
	case MDA_TEMP:
		return pop3c_error(r->c, POP3C_TEMP, "message %s: %s; it"
		    " stays on the server", m->uidl, err);
	case MDA_REFUSED:
		fprintf(stderr, "postern fetch: %s: message %s: %s; left on"
		    " the server\n", r->a->name, m->uidl, err);
		report_refused(r->rep, m->uidl, err);
		m->refused = true;
		r->refused++;
		return 1;
	}
	r->st->fetched++;
	r->st->octets += p.stored;
	report_message(r->rep, m->uidl, p.stored);
	if (m->again)
		return 0;
	if (journal_append(r->j, m->jid, r->c->err, sizeof(r->c->err)) ==
	    -1) {
		r->c->fail = POP3C_TEMP;
		return -1;
	}
	m->journaled = true;
	return 0;
}

/*
 * The mbox target.  An append cannot be recognised by a file name as a
 * Maildir delivery can, so that a run killed between the append (which
 * the store fsyncs) and the journal record does not store the message a
 * second time, each message is first recorded in the account's intent
 * file (STATE/ACCOUNT.mbox-intent: "IDENTITY WIRESIZE SHA256" a line,
 * fsync'd), then appended, then journaled.  At the start of the next run,
 * an intent whose identity is not in the journal is looked for in the
 * mbox (a message of that wire size and digest, the mboxrd quoting
 * undone) and journaled when it is there; the intent file is then
 * emptied.  A half-written append is cut away by the store when it next
 * locks the mbox, so it is never found.
 */

/* SHA-256 of a message's wire form (CRLF, no byte-stuffing). */
struct wdigest {
	struct wire_enc	 enc;
	struct evbuffer	*buf;
	EVP_MD_CTX	*md;
};

static int
wdigest_init(struct wdigest *w, bool mboxrd)
{
	wire_enc_init(&w->enc, false, WIRE_ALL_LINES);
	if (mboxrd)
		wire_enc_mboxrd(&w->enc);
	w->buf = evbuffer_new();
	w->md = EVP_MD_CTX_new();
	if (w->buf == NULL || w->md == NULL ||
	    EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1)
		return -1;
	return 0;
}

static void
wdigest_free(struct wdigest *w)
{
	if (w->buf != NULL)
		evbuffer_free(w->buf);
	EVP_MD_CTX_free(w->md);
	w->buf = NULL;
	w->md = NULL;
}

static int
wdigest_drain(struct wdigest *w)
{
	struct evbuffer_iovec v[8];
	size_t len;
	int i, n;

	while ((len = evbuffer_get_length(w->buf)) > 0) {
		n = evbuffer_peek(w->buf, -1, NULL, v, 8);
		if (n > 8)
			n = 8;
		len = 0;
		for (i = 0; i < n; i++) {
			if (EVP_DigestUpdate(w->md, v[i].iov_base,
			    v[i].iov_len) != 1)
				return -1;
			len += v[i].iov_len;
		}
		if (evbuffer_drain(w->buf, len) == -1)
			return -1;
	}
	return 0;
}

static int
wdigest_feed(struct wdigest *w, const void *data, size_t len)
{
	if (wire_enc_feed(&w->enc, data, len, w->buf) == -1)
		return -1;
	return wdigest_drain(w);
}

/* hex gets 64 hex digits and a NUL. */
static int
wdigest_final(struct wdigest *w, char hex[65], uint64_t *size_r)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0, i;

	if (wire_enc_finish(&w->enc, w->buf) == -1 || wdigest_drain(w) == -1 ||
	    EVP_DigestFinal_ex(w->md, d, &dl) != 1 || dl != 32)
		return -1;
	for (i = 0; i < dl; i++)
		(void)snprintf(hex + 2 * i, 3, "%02x", d[i]);
	*size_r = w->enc.octets;
	return 0;
}

/* A message on its way into the mbox. */
struct mbox_put {
	struct run	*r;
	struct delivery	*d;
	struct wdigest	 w;
	uint64_t	 stored;
};

static int
mbox_data(void *arg, const uint8_t *data, size_t len)
{
	struct mbox_put *p = arg;
	char err[512];

	if (mailbox_deliver_write(p->d, data, len, err, sizeof(err)) !=
	    STORE_OK) {
		mailbox_deliver_abort(&p->d);
		return pop3c_error(p->r->c, POP3C_TEMP, "%s", err);
	}
	if (wdigest_feed(&p->w, data, len) == -1)
		return pop3c_error(p->r->c, POP3C_TEMP, "out of memory");
	p->stored += len;
	report_progress(p->r->rep, len);
	return 0;
}

static int
mbox_store_error(struct run *r, enum store_rc rc, const char *err)
{
	return pop3c_error(r->c, rc == STORE_PERM ? POP3C_PERM : POP3C_TEMP,
	    "%s%s", err, rc == STORE_IN_USE ? " (another program holds the"
	    " mbox's locks; try again later)" : "");
}

/*
 * The reply to a RETR (sent already) into the account's mbox: recorded
 * in the intent file, appended and fsync'd, then journaled at once.  0,
 * or -1 (the reason in r->c).
 */
static int
mbox_recv(struct run *r, struct msg *m, const char *prefix)
{
	char line[FETCH_MAX_LINE + 1], err[512], hex[65];
	char rec[FETCH_MAX_ID + 96];
	struct mbox_put p = { .r = r };
	struct delivery_info info;
	enum store_rc rc;
	uint64_t wsize;
	int n, ret = -1;

	if (pop3c_status(r->c, prefix != NULL ? "TOP" : "RETR", line,
	    sizeof(line)) != 1)
		return -1;
	if (wdigest_init(&p.w, false) == -1) {
		(void)pop3c_error(r->c, POP3C_TEMP, "out of memory");
		goto out;
	}
	if ((rc = mailbox_deliver_begin(r->mbox_loc, UINT64_MAX, &p.d, err,
	    sizeof(err))) != STORE_OK) {
		(void)mbox_store_error(r, rc, err);
		goto out;
	}
	if ((prefix != NULL && mbox_data(&p, (const uint8_t *)prefix,
	    strlen(prefix)) == -1) ||
	    pop3c_body(r->c, FETCH_MAX_MESSAGE_SIZE, mbox_data, &p) == -1)
		goto out;
	if (wdigest_final(&p.w, hex, &wsize) == -1) {
		(void)pop3c_error(r->c, POP3C_TEMP, "out of memory");
		goto out;
	}
	n = snprintf(rec, sizeof(rec), "%s %llu %s\n", m->jid,
	    (unsigned long long)wsize, hex);
	if (n < 0 || (size_t)n >= sizeof(rec) ||
	    write_full(r->intent_fd, rec, (size_t)n) == -1 ||
	    fdatasync(r->intent_fd) == -1) {
		(void)pop3c_error(r->c, POP3C_TEMP, "%s: writing the intent"
		    " file: %s", r->a->name, strerror(errno));
		goto out;
	}
	if ((rc = mailbox_deliver_commit(&p.d, &info, err, sizeof(err))) !=
	    STORE_OK) {
		(void)mbox_store_error(r, rc, err);
		goto out;
	}
	r->st->fetched++;
	r->st->octets += p.stored;
	report_message(r->rep, m->uidl, p.stored);
	ret = 0;
	if (!m->again) {
		if (journal_append(r->j, m->jid, r->c->err,
		    sizeof(r->c->err)) == -1) {
			r->c->fail = POP3C_TEMP;
			ret = -1;
		} else
			m->journaled = true;
	}
	/* The journal has it: the intent is done with.  (A truncation lost
	 * in a crash leaves a journaled intent, which is skipped.) */
	if (ret == 0 && ftruncate(r->intent_fd, 0) == -1) {
		(void)pop3c_error(r->c, POP3C_TEMP, "%s: the intent file: %s",
		    r->a->name, strerror(errno));
		ret = -1;
	}
out:
	mailbox_deliver_abort(&p.d);
	wdigest_free(&p.w);
	return ret;
}

/* The wire size and digest of message idx of mb into hex.  0, 1 gone,
 * -1 error (err set). */
static int
mbox_msg_digest(struct mailbox *mb, uint32_t idx, char hex[65],
    char *err, size_t errsize)
{
	const struct msg_info *mi = mailbox_msg(mb, idx);
	struct wdigest w = { 0 };
	uint8_t chunk[65536];
	uint64_t left = mi->stored_size, wsize;
	enum store_rc rc;
	ssize_t n;
	int fd, ret = -1;

	if ((rc = mailbox_msg_open(mb, idx, &fd)) == STORE_GONE)
		return 1;
	if (rc != STORE_OK) {
		ferr(err, errsize, "reading the mbox failed");
		return -1;
	}
	if (wdigest_init(&w, (mi->flags & MSG_MBOXRD) != 0) == -1)
		goto nomem;
	while (left > 0) {
		n = read(fd, chunk, left < sizeof(chunk) ? (size_t)left :
		    sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			ferr(err, errsize, "reading the mbox: %s", n == 0 ?
			    "short" : strerror(errno));
			goto out;
		}
		if (wdigest_feed(&w, chunk, (size_t)n) == -1)
			goto nomem;
		left -= (uint64_t)n;
	}
	if (wdigest_final(&w, hex, &wsize) == -1)
		goto nomem;
	ret = 0;
	goto out;
nomem:
	ferr(err, errsize, "out of memory");
out:
	(void)close(fd);
	wdigest_free(&w);
	return ret;
}

/*
 * Opens the intent file of the mbox target and settles what a killed
 * run left in it (see above).  0, or -1 with err set.
 */
static int
mbox_prepare(struct run *r, const char *state_dir, char *err,
    size_t errsize)
{
	char path[4096], why[256];
	struct mailbox_opts opts = { .create = false };
	struct mailbox *mb = NULL;
	struct buf b;
	enum store_rc rc;
	char *line, *next, *end, *jid, *sz, *hex, dhex[65];
	uint64_t wsize;
	uint32_t i, count;
	int ret = -1, g;

	if ((r->mbox_loc = malloc(strlen(r->a->mbox) + 6)) == NULL) {
		ferr(err, errsize, "out of memory");
		return -1;
	}
	(void)snprintf(r->mbox_loc, strlen(r->a->mbox) + 6, "mbox:%s",
	    r->a->mbox);
	if (str_fmt(path, sizeof(path), "%s/%s.mbox-intent", state_dir,
	    r->a->name) == -1) {
		ferr(err, errsize, "state directory path too long");
		return -1;
	}
	buf_init(&b, FETCH_MAX_INTENT_BYTES);
	if (read_file(path, FETCH_MAX_INTENT_BYTES, &b) == -1 &&
	    errno != ENOENT) {
		ferr(err, errsize, "%s: %s%s", path, strerror(errno),
		    errno == EFBIG ? " (not written by postern fetch?"
		    " remove it)" : "");
		goto out;
	}
	r->intent_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (r->intent_fd == -1) {
		ferr(err, errsize, "%s: %s", path, strerror(errno));
		goto out;
	}
	for (line = b.data; line != NULL && line < b.data + b.len;
	    line = next) {
		end = memchr(line, '\n', (size_t)(b.data + b.len - line));
		if (end == NULL)
			break;		/* cut short by a kill: never acted on */
		*end = '\0';
		next = end + 1;
		jid = line;
		if ((sz = strchr(jid, ' ')) == NULL)
			continue;
		*sz++ = '\0';
		if ((hex = strchr(sz, ' ')) == NULL)
			continue;
		*hex++ = '\0';
		if (strlen(hex) != 64 ||
		    parse_u64(sz, UINT64_MAX, &wsize) != PARSE_OK ||
		    journal_has(r->j, jid))
			continue;
		if (mb == NULL) {
			if ((rc = mailbox_open(r->mbox_loc, &opts, &mb, why,
			    sizeof(why))) != STORE_OK) {
				ferr(err, errsize, "%s%s", why,
				    rc == STORE_IN_USE ? " (the mbox is"
				    " locked; try again later)" : "");
				goto out;
			}
		}
		count = mailbox_count(mb);
		for (i = count; i-- > 0;) {
			if (mailbox_msg(mb, i)->size != wsize)
				continue;
			if ((g = mbox_msg_digest(mb, i, dhex, err, errsize)) ==
			    -1)
				goto out;
			if (g == 0 && strcmp(dhex, hex) == 0)
				break;
		}
		if (i == UINT32_MAX)
			continue;	/* not stored: fetched again */
		if (journal_append(r->j, jid, err, errsize) == -1)
			goto out;
		fprintf(stderr, "postern fetch: %s: message %s was stored in"
		    " %s before an interrupted run could record it; recorded"
		    " now, not stored again\n", r->a->name, jid, r->a->mbox);
	}
	/* Everything in it is settled: start afresh. */
	if (ftruncate(r->intent_fd, 0) == -1 || fsync(r->intent_fd) == -1) {
		ferr(err, errsize, "%s: %s", path, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (mb != NULL)
		mailbox_close(&mb);
	buf_clear(&b);
	return ret;
}

/* The end of the window that starts at message i. */
static size_t
window_end(const struct run *r, size_t i)
{
	return r->count - i > FETCH_PIPELINE_WINDOW ?
	    i + FETCH_PIPELINE_WINDOW : r->count;
}

/*
 * Decides what of messages [i, end) to retrieve (m->wanted, m->again,
 * m->retr) and, with PIPELINING, sends their RETRs (TOPs for headers)
 * at once.  0 or -1 (the reason in r->c).
 */
static int
window_send(struct run *r, size_t i, size_t end, bool pipe,
    int64_t expired)
{
	const struct account *a = r->a;
	char base[256];
	int64_t t;
	size_t k;

	for (k = i; k < end; k++) {
		struct msg *m = &r->msgs[k];

		/* Journaled: fetched again with only_new = no, or if
		 * ambiguous and to be deleted now (it is never deleted
		 * unless fetched by this very run). */
		t = journal_time_of(r->j, m->jid);
		m->again = t >= 0 && !m->headers && (!a->only_new ||
		    (m->ambiguous && (!a->keep || (a->keep_days > 0 &&
		    t <= expired))));
		m->wanted = !m->skip && (m->again || t < 0);
		m->retr = false;
		if (!m->wanted)
			continue;
		if (msg_base(r, m, base, sizeof(base)) == -1)
			return pop3c_error(r->c, POP3C_TEMP, "file name too"
			    " long");
		/* Stored by a run that died before its journal record: do
		 * not store it twice. */
		if (!m->again && have_base(r, base))
			continue;
		m->retr = true;
		if (pipe && pop3c_send(r->c, m->headers ? "TOP %u 0" :
		    "RETR %u", m->num) == -1)
			return -1;
	}
	return 0;
}

/* Reads the replies to the pipelined DELEs of messages [i, end). */
static int
deles_read(struct run *r, size_t i, size_t end)
{
	char line[FETCH_MAX_LINE + 1];
	size_t k;

	for (k = i; k < end; k++) {
		if (!r->msgs[k].dele)
			continue;
		if (pop3c_status(r->c, "DELE", line, sizeof(line)) != 1)
			return -1;
		r->msgs[k].deleted = true;
	}
	return 0;
}

static int
lock_account(const struct account *a, const char *dir, int *fd_r,
    char *err, size_t errsize)
{
	char path[4096];
	int fd;

	if (str_fmt(path, sizeof(path), "%s/%s.lock", dir, a->name) == -1) {
		ferr(err, errsize, "state directory path too long");
		return FETCH_EXIT_USAGE;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1) {
		ferr(err, errsize, "%s: %s", path, strerror(errno));
		return FETCH_EXIT_TEMP;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		int e = errno;

		close(fd);
		if (e == EWOULDBLOCK) {
			ferr(err, errsize, "account %s: another postern fetch"
			    " is running for it (lock %s)", a->name, path);
			return FETCH_EXIT_TEMP;
		}
		ferr(err, errsize, "%s: %s", path, strerror(e));
		return FETCH_EXIT_TEMP;
	}
	*fd_r = fd;
	return FETCH_EXIT_OK;
}

static int
status_of(const struct pop3c *c)
{
	return c->fail == POP3C_PERM ? FETCH_EXIT_PERM : FETCH_EXIT_TEMP;
}

int
fetch_account(const struct account *a, const char *state_dir,
    bool check_only, struct report *rep, struct fetch_stats *st, char *err,
    size_t errsize)
{
	char pass[FETCH_MAX_PASSWORD + 1], path[4096], base[256];
	char token[FETCH_MAX_TOKEN + 1];
	char line[FETCH_MAX_LINE + 1];
	struct run r = { .a = a, .maildir_fd = -1, .tmp_fd = -1,
	    .new_fd = -1, .intent_fd = -1, .start = (int64_t)time(NULL) };
	struct journal *j = NULL;
	struct pop3c *c = NULL;
	unsigned int dropped;
	bool quit_ok = false, *keep = NULL, changed;
	struct pending pd[FETCH_PIPELINE_WINDOW];
	char marker[128];
	const char *prefix;
	const char *ju[FETCH_PIPELINE_WINDOW];
	size_t i, k, end, np = 0, nj, dele_from = 0, dele_to = 0;
	bool pipe;
	int status, lockfd = -1;
	int64_t expired, t;

	memset(st, 0, sizeof(*st));
	if (mkdir_p(state_dir, 0700) == -1) {
		ferr(err, errsize, "%s: %s", state_dir, strerror(errno));
		return FETCH_EXIT_TEMP;
	}
	if ((status = lock_account(a, state_dir, &lockfd, err, errsize)) !=
	    FETCH_EXIT_OK)
		return status;
	status = FETCH_EXIT_TEMP;
	if (str_fmt(path, sizeof(path), "%s/%s.journal", state_dir,
	    a->name) == -1) {
		ferr(err, errsize, "state directory path too long");
		goto out;
	}
	if (journal_open(path, &j, &dropped, err, errsize) == -1)
		goto out;
	if (dropped > 0)
		fprintf(stderr, "postern fetch: warning: journal %s: %u"
		    " damaged line%s dropped (a run was interrupted while"
		    " writing it)\n", path, dropped, dropped == 1 ? "" : "s");
	r.j = j;
	r.st = st;
	r.rep = rep;
	if (!check_only && a->maildir != NULL && maildir_prepare(&r, err,
	    errsize) == -1)
		goto out;
	if (!check_only && a->mbox != NULL && mbox_prepare(&r, state_dir,
	    err, errsize) == -1)
		goto out;
	token[0] = '\0';
	if (account_password(a, pass, sizeof(pass), err, errsize) == -1 ||
	    (a->token_command != NULL && account_token(a, token,
	    sizeof(token), err, errsize) == -1)) {
		explicit_bzero(pass, sizeof(pass));
		explicit_bzero(token, sizeof(token));
		status = FETCH_EXIT_PERM;
		goto out;
	}
	if ((c = malloc(sizeof(*c))) == NULL) {
		explicit_bzero(pass, sizeof(pass));
		explicit_bzero(token, sizeof(token));
		ferr(err, errsize, "out of memory");
		goto out;
	}
	r.c = c;
	if (pop3c_connect(c, a) == -1) {
		explicit_bzero(pass, sizeof(pass));
		explicit_bzero(token, sizeof(token));
		goto net;
	}
	if (pop3c_login(c, pass, token) == -1)
		goto net;
	st->method = c->method;
	/* The user's own LOGIN-DELAY, when the site's was marked USER. */
	if (c->capa.login_delay_user && pop3c_capa(c) == -1)
		goto net;
	st->login_delay = c->capa.login_delay;
	st->login_ms = report_now_ms();
	if (list_messages(&r) == -1)
		goto net;
	for (k = 0; k < r.count; k++)
		r.msgs[k].jid = r.msgs[k].uidl;
	st->listed = (uint32_t)r.count;
	for (k = 0; k < r.count; k++)
		if (!journal_has(j, r.msgs[k].uidl))
			st->fresh++;
	if (check_only) {
		/* Counting only: nothing retrieved, deleted or forgotten. */
		if (pop3c_send(c, "QUIT") == -1 ||
		    pop3c_status(c, "QUIT", line, sizeof(line)) != 1)
			goto net;
		status = FETCH_EXIT_OK;
		err[0] = '\0';
		goto out;
	}
	/* RFC 2449 section 6.6: with PIPELINING, a window of RETRs (and
	 * then DELEs) goes out before their replies are read, in order. */
	if (a->max_size > 0) {
		if (!r.sized && (pop3c_send(c, "LIST") == -1 ||
		    pop3c_status(c, "LIST", line, sizeof(line)) != 1 ||
		    pop3c_lines(c, list_line, &r) == -1))
			goto net;
		for (k = 0; k < r.count; k++) {
			struct msg *m = &r.msgs[k];

			if (m->size <= a->max_size || (a->only_new &&
			    journal_has(j, m->uidl)))
				continue;
			if (a->max_size_headers) {
				/* Its headers, once, under an identity of
				 * their own; the message stays. */
				if (headers_id(m) == -1) {
					(void)pop3c_error(c, POP3C_TEMP, "out"
					    " of memory");
					goto net;
				}
				m->headers = true;
				if (!journal_has(j, m->jid))
					fprintf(stderr, "postern fetch:"
					    " warning: %s: message %s (%llu"
					    " octets) is larger than max_size"
					    " (%llu); only its headers are"
					    " stored, it stays on the"
					    " server\n", a->name, m->uidl,
					    (unsigned long long)m->size,
					    (unsigned long long)a->max_size);
				continue;
			}
			m->skip = true;
			report_skipped(rep, m->uidl, m->size, "max_size");
			fprintf(stderr, "postern fetch: warning: %s: message"
			    " %s (%llu octets) is larger than max_size (%llu);"
			    " left on the server\n", a->name, m->uidl,
			    (unsigned long long)m->size,
			    (unsigned long long)a->max_size);
		}
	}
	for (k = 0, nj = 0; k < r.count; k++)
		if (!r.msgs[k].skip && ((!a->only_new &&
		    !r.msgs[k].headers) || !journal_has(j, r.msgs[k].jid)))
			nj++;
	report_expect(rep, (uint32_t)nj);
	/* A window of messages is stored, journaled and deleted together;
	 * with PIPELINING its RETRs (and then its DELEs) go out at once,
	 * before their replies are read, in order. */
	pipe = c->capa.pipelining;
	/* keep_days: what was journaled before this is deleted. */
	expired = (int64_t)time(NULL) - (int64_t)a->keep_days * 86400;
	for (i = 0; i < r.count; i = end) {
		end = window_end(&r, i);
		/* With PIPELINING, the RETRs of every window but the first
		 * went out before the previous window was flushed. */
		if ((i == 0 || !pipe) && window_send(&r, i, end, pipe,
		    expired) == -1)
			goto net;
		np = 0;
		for (k = i; k < end; k++) {
			struct msg *m = &r.msgs[k];

			if (!m->retr)
				continue;
			if (!pipe && pop3c_send(c, m->headers ? "TOP %u 0" :
			    "RETR %u", m->num) == -1)
				goto salvage;
			prefix = NULL;
			if (m->headers) {
				(void)snprintf(marker, sizeof(marker),
				    "X-Postern-Headers-Only: %llu octets,"
				    " left on the server (max_size)\n",
				    (unsigned long long)m->size);
				prefix = marker;
			}
			if (a->mda != NULL || a->mbox != NULL) {
				if ((a->mda != NULL ? mda_recv(&r, m, prefix) :
				    mbox_recv(&r, m, prefix)) == -1)
					goto salvage;
				continue;
			}
			if (msg_base(&r, m, base, sizeof(base)) == -1 ||
			    retr_recv(&r, base, prefix, &pd[np]) == -1)
				goto salvage;
			pd[np++].m = m;
		}
		/* The previous window's DELE replies come after this
		 * window's RETR replies; then the next window's RETRs go
		 * out, so that the server sends while this one is
		 * flushed. */
		if (pipe && (deles_read(&r, dele_from, dele_to) == -1 ||
		    (end < r.count && window_send(&r, end, window_end(&r,
		    end), pipe, expired) == -1)))
			goto salvage;
		dele_from = dele_to = 0;
		if (window_commit(&r, pd, np) == -1)
			goto net;
		for (k = 0; k < np; k++) {
			st->fetched++;
			st->octets += pd[k].stored;
			report_message(rep, pd[k].m->uidl, pd[k].stored);
		}
		nj = 0;
		for (k = i; k < end; k++)
			if (r.msgs[k].wanted && !r.msgs[k].again &&
			    !r.msgs[k].journaled && !r.msgs[k].refused)
				ju[nj++] = r.msgs[k].jid;
		if (journal_append_all(j, ju, nj, c->err, sizeof(c->err)) ==
		    -1) {
			c->fail = POP3C_TEMP;
			goto net;
		}
		/* Every UIDL of the window is journaled: now DELE, all
		 * of them with keep = no, the expired ones with keep_days. */
		for (k = i; k < end; k++) {
			struct msg *m = &r.msgs[k];

			t = journal_time_of(j, m->uidl);
			m->dele = !m->skip && !m->headers && !m->refused &&
			    t >= 0 &&
			    (!a->keep || (a->keep_days > 0 && t <= expired));
			if (m->dele && pop3c_send(c, "DELE %u", m->num) == -1)
				goto net;
			if (m->dele && !pipe) {
				if (pop3c_status(c, "DELE", line,
				    sizeof(line)) != 1)
					goto net;
				m->deleted = true;
			}
		}
		if (pipe) {
			dele_from = i;
			dele_to = end;
		}
	}
	if (deles_read(&r, dele_from, dele_to) == -1)
		goto net;
	if (pop3c_send(c, "QUIT") == -1 ||
	    pop3c_status(c, "QUIT", line, sizeof(line)) != 1)
		goto net;
	quit_ok = true;
	status = FETCH_EXIT_OK;
	/* Compaction: keep the UIDLs the server still has. */
	if ((keep = calloc(journal_count(j) + 1, sizeof(*keep))) == NULL)
		goto out;
	changed = false;
	if (r.count > 0)
		qsort(r.msgs, r.count, sizeof(*r.msgs), cmp_msg);
	for (k = 0; k < journal_count(j); k++) {
		struct msg key = { .jid = (char *)(uintptr_t)
		    journal_uidl(j, k) }, *m;

		m = r.count > 0 ? bsearch(&key, r.msgs, r.count,
		    sizeof(*r.msgs), cmp_msg) : NULL;
		keep[k] = m != NULL && !(quit_ok && m->deleted);
		if (!keep[k])
			changed = true;
	}
	for (i = 0; i < r.count; i++)
		if (r.msgs[i].deleted)
			st->deleted++;
	if (changed && journal_compact(j, keep, err, errsize) == -1)
		fprintf(stderr, "postern fetch: warning: %s\n", err);
	err[0] = '\0';
	if (r.refused > 0) {
		/* Left on the server: fix the mda, the next run retries. */
		status = FETCH_EXIT_PERM;
		ferr(err, errsize, "the mda refused %u message%s (left on"
		    " the server)", r.refused, r.refused == 1 ? "" : "s");
	}
	goto out;
salvage:
	/* The connection failed inside a window: what came in whole is
	 * still stored and journaled (and not deleted), so that the next
	 * run need not retrieve it again. */
	if (window_commit(&r, pd, np) == 0) {
		char jerr[256];

		nj = 0;
		for (k = 0; k < np; k++)
			if (!pd[k].m->again)
				ju[nj++] = pd[k].m->jid;
		if (journal_append_all(j, ju, nj, jerr, sizeof(jerr)) == -1)
			fprintf(stderr, "postern fetch: warning: %s\n", jerr);
	}
net:
	status = status_of(c);
	ferr(err, errsize, "%s", c->err[0] != '\0' ? c->err :
	    "connection failed");
out:
	if (c != NULL) {
		pop3c_close(c);
		free(c);
	}
	free(keep);
	for (i = 0; i < r.count; i++) {
		if (r.msgs[i].jid != r.msgs[i].uidl)
			free(r.msgs[i].jid);
		free(r.msgs[i].uidl);
	}
	free(r.msgs);
	for (i = 0; i < r.nhave; i++)
		free(r.have[i]);
	free(r.have);
	if (r.tmp_fd != -1)
		close(r.tmp_fd);
	if (r.new_fd != -1)
		close(r.new_fd);
	if (r.maildir_fd != -1)
		close(r.maildir_fd);
	if (r.intent_fd != -1)
		close(r.intent_fd);
	free(r.mbox_loc);
	journal_close(&j);
	if (lockfd != -1)
		close(lockfd);
	return status;
}
