/*
 * account.c: fetch.conf, the accounts of `postern fetch`, and reading
 * their passwords.
 *
 * Owns: the parsed accounts.  Trusts: nothing in the file; the password
 * file only if no one else may read it; password_command's output only
 * as one bounded line.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "client/account.h"
#include "client/client_limits.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/strnum.h"

static void errmsg(char *, size_t, const char *, ...) ATTR_PRINTF(3, 4);

static void
errmsg(char *err, size_t errsize, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(err, errsize, fmt, ap);
	va_end(ap);
}

static bool
name_valid(const char *s)
{
	size_t i, len = strlen(s);

	if (len == 0 || len > FETCH_MAX_NAME || s[0] == '.')
		return false;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' &&
		    s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/* "~/x" becomes "$HOME/x"; anything else is copied.  NULL on error. */
static char *
expand_path(const char *v)
{
	const char *home;
	char *out;
	size_t len;

	if (strncmp(v, "~/", 2) != 0)
		return strdup(v);
	home = getenv("HOME");
	if (home == NULL || home[0] != '/')
		return NULL;
	len = strlen(home) + strlen(v);
	if ((out = malloc(len)) == NULL)
		return NULL;
	(void)snprintf(out, len, "%s%s", home, v + 1);
	return out;
}

static void
account_clear(struct account *a)
{
	free(a->name);
	free(a->host);
	free(a->ca_file);
	free(a->user);
	free(a->password_file);
	free(a->password_command);
	free(a->mda);
	free(a->tls_cert);
	free(a->tls_key);
	free(a->token_command);
	free(a->maildir);
	free(a->mbox);
	memset(a, 0, sizeof(*a));
}

void
fetch_conf_free(struct fetch_conf *fc)
{
	size_t i;

	for (i = 0; i < fc->count; i++)
		account_clear(&fc->accounts[i]);
	free(fc->accounts);
	free(fc->path);
	memset(fc, 0, sizeof(*fc));
}

const struct account *
fetch_conf_find(const struct fetch_conf *fc, const char *name)
{
	size_t i;

	for (i = 0; i < fc->count; i++)
		if (strcmp(fc->accounts[i].name, name) == 0)
			return &fc->accounts[i];
	return NULL;
}

/* Keys seen in the current section, to refuse one given twice. */
enum {
	K_HOST = 1u << 0, K_PORT = 1u << 1, K_TLS = 1u << 2,
	K_INSECURE = 1u << 3, K_CA = 1u << 4, K_USER = 1u << 5,
	K_PWFILE = 1u << 6, K_PWCMD = 1u << 7, K_KEEP = 1u << 8,
	K_MAILDIR = 1u << 9, K_TIMEOUT = 1u << 10, K_KEEPDAYS = 1u << 11,
	K_ONLYNEW = 1u << 12, K_MAXSIZE = 1u << 13, K_MDA = 1u << 14,
	K_PIN = 1u << 15, K_TLSMIN = 1u << 16, K_TLSCERT = 1u << 17,
	K_TLSKEY = 1u << 18, K_AUTH = 1u << 19, K_TOKENCMD = 1u << 20,
	K_MAXACTION = 1u << 21, K_MBOX = 1u << 22,
};

/* Keys that may be given more than once. */
#define K_REPEATABLE	K_PIN

/* The delivery targets: an account has exactly one. */
#define K_TARGETS	(K_MAILDIR | K_MBOX | K_MDA)

static const struct {
	const char	*name;
	unsigned int	 bit;
} keys[] = {
	{ "host", K_HOST }, { "port", K_PORT }, { "tls", K_TLS },
	{ "insecure", K_INSECURE }, { "ca_file", K_CA }, { "user", K_USER },
	{ "password_file", K_PWFILE }, { "password_command", K_PWCMD },
	{ "keep", K_KEEP }, { "maildir", K_MAILDIR }, { "mbox", K_MBOX },
	{ "timeout", K_TIMEOUT }, { "keep_days", K_KEEPDAYS },
	{ "only_new", K_ONLYNEW }, { "max_size", K_MAXSIZE },
	{ "mda", K_MDA }, { "tls_pin", K_PIN },
	{ "tls_min_version", K_TLSMIN }, { "tls_cert", K_TLSCERT },
	{ "tls_key", K_TLSKEY }, { "auth", K_AUTH },
	{ "token_command", K_TOKENCMD }, { "max_size_action", K_MAXACTION },
};

static const char *const auth_names[ACCOUNT_AUTH_COUNT] = {
	[ACCOUNT_AUTH_EXTERNAL] = "EXTERNAL",
	[ACCOUNT_AUTH_OAUTHBEARER] = "OAUTHBEARER",
	[ACCOUNT_AUTH_XOAUTH2] = "XOAUTH2",
	[ACCOUNT_AUTH_SCRAM_SHA_256_PLUS] = "SCRAM-SHA-256-PLUS",
	[ACCOUNT_AUTH_SCRAM_SHA_256] = "SCRAM-SHA-256",
	[ACCOUNT_AUTH_SCRAM_SHA_1] = "SCRAM-SHA-1",
	[ACCOUNT_AUTH_CRAM_MD5] = "CRAM-MD5",
	[ACCOUNT_AUTH_APOP] = "APOP",
	[ACCOUNT_AUTH_PLAIN] = "PLAIN",
	[ACCOUNT_AUTH_USER] = "USER",
};

const char *
account_auth_name(enum account_auth m)
{
	return m < ACCOUNT_AUTH_COUNT ? auth_names[m] : "?";
}

/* auth = NAME...: each a known method, none twice.  0 or -1. */
static int
parse_auth(struct account *a, const char *v, char *err, size_t errsize)
{
	char *copy, *tok, *save = NULL;
	size_t i, k;

	if ((copy = strdup(v)) == NULL) {
		errmsg(err, errsize, "out of memory");
		return -1;
	}
	for (tok = strtok_r(copy, " \t", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t", &save)) {
		for (i = 0; i < ACCOUNT_AUTH_COUNT; i++)
			if (strcasecmp(tok, auth_names[i]) == 0)
				break;
		for (k = 0; k < a->nauth && i < ACCOUNT_AUTH_COUNT; k++)
			if (a->auth[k] == i)
				break;
		if (i == ACCOUNT_AUTH_COUNT || k < a->nauth) {
			errmsg(err, errsize, "auth: '%.40s' is unknown or"
			    " given twice (known: EXTERNAL OAUTHBEARER XOAUTH2"
			    " SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1"
			    " CRAM-MD5 APOP PLAIN USER)", tok);
			free(copy);
			return -1;
		}
		a->auth[a->nauth++] = (uint8_t)i;
	}
	free(copy);
	return 0;
}

static int
parse_bool(const char *v, bool *b_r)
{
	if (strcmp(v, "yes") == 0)
		*b_r = true;
	else if (strcmp(v, "no") == 0)
		*b_r = false;
	else
		return -1;
	return 0;
}

/* True if every % of an mda command starts %a, %u or %%. */
static bool
mda_percents_ok(const char *v)
{
	for (; *v != '\0'; v++)
		if (*v == '%' && (*++v == '\0' || strchr("au%", *v) == NULL))
			return false;
	return true;
}

/* tls_pin = sha256:BASE64 (the 32 octets of a SHA-256).  0 or -1. */
static int
parse_pin(struct account *a, const char *v, char *err, size_t errsize)
{
	unsigned char out[48];
	size_t len = strlen(v) - (sizeof("sha256:") - 1);
	int n;

	if (a->npins == FETCH_MAX_PINS) {
		errmsg(err, errsize, "more than %d tls_pin lines",
		    FETCH_MAX_PINS);
		return -1;
	}
	/* 32 octets are 44 base64 characters, the last one '='. */
	if (strncmp(v, "sha256:", 7) != 0 || len != 44 || v[7 + 43] != '=' ||
	    strchr(v + 7, '=') != v + 7 + 43 ||
	    (n = EVP_DecodeBlock(out, (const unsigned char *)v + 7, 44)) !=
	    33) {
		errmsg(err, errsize, "tls_pin wants sha256: and the base64"
		    " of a SHA-256 (44 characters)");
		return -1;
	}
	memcpy(a->pins[a->npins++], out, 32);
	return 0;
}

/* Sets one key of a.  0, or -1 with the reason (no location) in err. */
static int
set_key(struct account *a, unsigned int bit, const char *v, char *err,
    size_t errsize)
{
	uint32_t port;
	char **dst = NULL;

	switch (bit) {
	case K_HOST:
		dst = &a->host;
		break;
	case K_USER:
		dst = &a->user;
		break;
	case K_PWCMD:
	case K_MDA:
	case K_TOKENCMD:
		if (account_command_split(v, NULL, NULL) == -1) {
			errmsg(err, errsize, "%s wants 1..%d words",
			    bit == K_MDA ? "mda" : bit == K_PWCMD ?
			    "password_command" : "token_command",
			    FETCH_MAX_COMMAND_ARGS);
			return -1;
		}
		if (bit == K_MDA && !mda_percents_ok(v)) {
			errmsg(err, errsize, "mda: %% must be followed by a"
			    " (the account), u (the user) or %%");
			return -1;
		}
		dst = bit == K_MDA ? &a->mda : bit == K_PWCMD ?
		    &a->password_command : &a->token_command;
		break;
	case K_PORT:
		if (parse_u32(v, 65535, &port) != PARSE_OK || port == 0) {
			errmsg(err, errsize, "port wants 1..65535");
			return -1;
		}
		a->port = (uint16_t)port;
		return 0;
	case K_TLS:
		if (strcmp(v, "implicit") == 0)
			a->tls = ACCOUNT_TLS_IMPLICIT;
		else if (strcmp(v, "starttls") == 0)
			a->tls = ACCOUNT_TLS_STARTTLS;
		else if (strcmp(v, "none") == 0)
			a->tls = ACCOUNT_TLS_NONE;
		else {
			errmsg(err, errsize, "tls wants implicit, starttls"
			    " or none");
			return -1;
		}
		return 0;
	case K_INSECURE:
	case K_KEEP:
		if (parse_bool(v, bit == K_KEEP ? &a->keep : &a->insecure) ==
		    -1) {
			errmsg(err, errsize, "%s wants yes or no",
			    bit == K_KEEP ? "keep" : "insecure");
			return -1;
		}
		return 0;
	case K_MAXSIZE:
		if (parse_size(v, FETCH_MAX_MESSAGE_SIZE, &a->max_size) !=
		    PARSE_OK || a->max_size == 0) {
			errmsg(err, errsize, "max_size wants a size from 1 to"
			    " 1G (octets, or with k, M or G)");
			return -1;
		}
		return 0;
	case K_ONLYNEW:
		if (parse_bool(v, &a->only_new) == -1) {
			errmsg(err, errsize, "only_new wants yes or no");
			return -1;
		}
		return 0;
	case K_KEEPDAYS:
		if (parse_u32(v, FETCH_MAX_KEEP_DAYS, &a->keep_days) !=
		    PARSE_OK || a->keep_days == 0) {
			errmsg(err, errsize, "keep_days wants a number of"
			    " days from 1 to %d", FETCH_MAX_KEEP_DAYS);
			return -1;
		}
		return 0;
	case K_TIMEOUT:
		if (parse_duration_ms(v, FETCH_MAX_TIMEOUT_MS,
		    &a->timeout_ms) != PARSE_OK || a->timeout_ms < 1000) {
			errmsg(err, errsize, "timeout wants a duration from"
			    " 1s to 1h (e.g. 30s, 2m)");
			return -1;
		}
		return 0;
	case K_PIN:
		return parse_pin(a, v, err, errsize);
	case K_AUTH:
		return parse_auth(a, v, err, errsize);
	case K_MAXACTION:
		if (strcmp(v, "skip") == 0)
			a->max_size_headers = false;
		else if (strcmp(v, "headers") == 0)
			a->max_size_headers = true;
		else {
			errmsg(err, errsize, "max_size_action wants skip or"
			    " headers");
			return -1;
		}
		return 0;
	case K_TLSMIN:
		if (strcmp(v, "1.2") == 0)
			a->tls_min = TLS1_2_VERSION;
		else if (strcmp(v, "1.3") == 0)
			a->tls_min = TLS1_3_VERSION;
		else {
			errmsg(err, errsize, "tls_min_version wants 1.2 or"
			    " 1.3");
			return -1;
		}
		return 0;
	case K_CA:
	case K_PWFILE:
	case K_MAILDIR:
	case K_MBOX:
	case K_TLSCERT:
	case K_TLSKEY:
		dst = bit == K_CA ? &a->ca_file : bit == K_PWFILE ?
		    &a->password_file : bit == K_TLSCERT ? &a->tls_cert :
		    bit == K_TLSKEY ? &a->tls_key : bit == K_MBOX ? &a->mbox :
		    &a->maildir;
		if (v[0] != '/' && strncmp(v, "~/", 2) != 0) {
			errmsg(err, errsize, "a path must be absolute or"
			    " start with ~/");
			return -1;
		}
		if ((*dst = expand_path(v)) == NULL) {
			errmsg(err, errsize, "cannot expand ~/ (is $HOME"
			    " set?)");
			return -1;
		}
		return 0;
	default:
		break;
	}
	if ((*dst = strdup(v)) == NULL) {
		errmsg(err, errsize, "out of memory");
		return -1;
	}
	return 0;
}

/* The checks at the end of a section.  0 or -1 with err. */
static int
account_finish(struct account *a, unsigned int seen, char *err,
    size_t errsize)
{
	static const struct {
		unsigned int	 bit;
		const char	*name;
	} required[] = {
		{ K_HOST, "host" }, { K_USER, "user" },
	};
	size_t i;

	if ((seen & K_KEEPDAYS) != 0 && !a->keep) {
		errmsg(err, errsize, "account %s: keep_days needs keep = yes",
		    a->name);
		return -1;
	}
	for (i = 0; i < N_ELEMENTS(required); i++)
		if ((seen & required[i].bit) == 0) {
			errmsg(err, errsize, "account %s has no %s", a->name,
			    required[i].name);
			return -1;
		}
	if ((seen & K_TARGETS) == 0 || (seen & K_TARGETS & ((seen &
	    K_TARGETS) - 1)) != 0) {
		errmsg(err, errsize, "account %s needs exactly one delivery"
		    " target: maildir, mbox or mda", a->name);
		return -1;
	}
	if ((seen & (K_PWFILE | K_PWCMD)) == (K_PWFILE | K_PWCMD)) {
		errmsg(err, errsize, "account %s: password_file and"
		    " password_command exclude each other", a->name);
		return -1;
	}
	if ((seen & K_MAXACTION) != 0 && (seen & K_MAXSIZE) == 0) {
		errmsg(err, errsize, "account %s: max_size_action needs"
		    " max_size", a->name);
		return -1;
	}
	if (((seen & K_TLSCERT) == 0) != ((seen & K_TLSKEY) == 0)) {
		errmsg(err, errsize, "account %s: tls_cert and tls_key go"
		    " together", a->name);
		return -1;
	}
	if ((seen & (K_PIN | K_TLSMIN | K_TLSCERT)) != 0 &&
	    a->tls == ACCOUNT_TLS_NONE) {
		errmsg(err, errsize, "account %s: tls_pin, tls_min_version"
		    " and tls_cert need TLS", a->name);
		return -1;
	}
	if (a->tls == ACCOUNT_TLS_NONE && !a->insecure) {
		errmsg(err, errsize, "account %s: tls = none sends the"
		    " password in clear text; add insecure = yes to allow"
		    " it", a->name);
		return -1;
	}
	if ((seen & K_PORT) == 0)
		a->port = a->tls == ACCOUNT_TLS_IMPLICIT ? 995 : 110;
	return 0;
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

int
fetch_conf_parse(const char *path, const char *text, size_t len,
    struct fetch_conf *fc, char *err, size_t errsize)
{
	struct account *a = NULL;
	unsigned int lineno = 0, seen = 0;
	char line[FETCH_MAX_VALUE + 64], why[256];
	const char *p = text, *end = text + len, *nl;
	char *s, *eq, *key, *val;
	size_t i, n;

	memset(fc, 0, sizeof(*fc));
	if ((fc->path = strdup(path)) == NULL) {
		errmsg(err, errsize, "%s: out of memory", path);
		return -1;
	}
	while (p < end) {
		lineno++;
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (n >= sizeof(line)) {
			snprintf(why, sizeof(why), "line longer than %zu"
			    " octets", sizeof(line) - 1);
			goto bad;
		}
		if (memchr(p, '\0', n) != NULL) {
			snprintf(why, sizeof(why), "NUL octet");
			goto bad;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		p += n + (nl != NULL);
		s = trim(line);
		if (s[0] == '\0' || s[0] == '#')
			continue;
		if (strncmp(s, "account", 7) == 0 && (s[7] == ' ' ||
		    s[7] == '\t')) {
			if (a != NULL && account_finish(a, seen, why,
			    sizeof(why)) == -1) {
				errmsg(err, errsize, "%s:%u: %s", path,
				    a->line, why);
				fetch_conf_free(fc);
				return -1;
			}
			s = trim(s + 7);
			if (!name_valid(s)) {
				snprintf(why, sizeof(why), "account name wants"
				    " 1..%d of A-Z a-z 0-9 . _ - (not"
				    " starting with .)", FETCH_MAX_NAME);
				goto bad;
			}
			if (fetch_conf_find(fc, s) != NULL) {
				snprintf(why, sizeof(why), "account %s given"
				    " twice", s);
				goto bad;
			}
			if (fc->count == FETCH_MAX_ACCOUNTS) {
				snprintf(why, sizeof(why), "more than %d"
				    " accounts", FETCH_MAX_ACCOUNTS);
				goto bad;
			}
			a = realloc(fc->accounts, (fc->count + 1) *
			    sizeof(*a));
			if (a == NULL) {
				snprintf(why, sizeof(why), "out of memory");
				goto bad;
			}
			fc->accounts = a;
			a = &fc->accounts[fc->count++];
			memset(a, 0, sizeof(*a));
			a->line = lineno;
			a->keep = true;
			a->only_new = true;
			a->tls = ACCOUNT_TLS_IMPLICIT;
			a->timeout_ms = FETCH_DEFAULT_TIMEOUT_MS;
			a->tls_min = TLS1_2_VERSION;
			seen = 0;
			if ((a->name = strdup(s)) == NULL) {
				snprintf(why, sizeof(why), "out of memory");
				goto bad;
			}
			continue;
		}
		if ((eq = strchr(s, '=')) == NULL) {
			snprintf(why, sizeof(why), "expected \"key = value\""
			    " or \"account NAME\"");
			goto bad;
		}
		*eq = '\0';
		key = trim(s);
		val = trim(eq + 1);
		for (i = 0; i < N_ELEMENTS(keys); i++)
			if (strcmp(key, keys[i].name) == 0)
				break;
		if (i == N_ELEMENTS(keys)) {
			snprintf(why, sizeof(why), "unknown key '%.64s'", key);
			goto bad;
		}
		if (a == NULL) {
			snprintf(why, sizeof(why), "%s outside an account"
			    " section", key);
			goto bad;
		}
		if (seen & keys[i].bit & ~(unsigned int)K_REPEATABLE) {
			snprintf(why, sizeof(why), "%s given twice", key);
			goto bad;
		}
		if (val[0] == '\0') {
			snprintf(why, sizeof(why), "%s has no value", key);
			goto bad;
		}
		seen |= keys[i].bit;
		if (set_key(a, keys[i].bit, val, why, sizeof(why)) == -1)
			goto bad;
	}
	if (a != NULL && account_finish(a, seen, why, sizeof(why)) == -1) {
		errmsg(err, errsize, "%s:%u: %s", path, a->line, why);
		fetch_conf_free(fc);
		return -1;
	}
	return 0;
bad:
	errmsg(err, errsize, "%s:%u: %s", path, lineno, why);
	fetch_conf_free(fc);
	return -1;
}

int
fetch_conf_load(const char *path, struct fetch_conf *fc, char *err,
    size_t errsize)
{
	struct buf b;
	int r;

	memset(fc, 0, sizeof(*fc));
	buf_init(&b, FETCH_MAX_CONFIG_SIZE);
	if (read_file(path, FETCH_MAX_CONFIG_SIZE, &b) == -1) {
		errmsg(err, errsize, "%s: %s", path, errno == EFBIG ?
		    "file too large" : strerror(errno));
		buf_clear(&b);
		return -1;
	}
	r = fetch_conf_parse(path, b.data != NULL ? b.data : "", b.len, fc,
	    err, errsize);
	buf_clear(&b);
	return r;
}

/* Keeps the first line of buf (len octets) in pass.  0 or -1. */
static int
first_line(const char *buf, size_t len, char *pass, size_t size)
{
	const char *nl = memchr(buf, '\n', len);
	size_t n = nl != NULL ? (size_t)(nl - buf) : len;

	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n == 0 || n >= size || memchr(buf, '\0', n) != NULL)
		return -1;
	memcpy(pass, buf, n);
	pass[n] = '\0';
	return 0;
}

static int
password_from_file(const struct account *a, char *pass, size_t size,
    char *err, size_t errsize)
{
	char data[FETCH_MAX_PASSWORD + 2];
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd, r;

	fd = open(a->password_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1) {
		errmsg(err, errsize, "password_file %s: %s", a->password_file,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (st.st_mode & 077) != 0) {
		errmsg(err, errsize, "password_file %s: must be a regular"
		    " file that group and others cannot access (chmod 600)",
		    a->password_file);
		close(fd);
		return -1;
	}
	while (len < sizeof(data) && (n = read(fd, data + len,
	    sizeof(data) - len)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			errmsg(err, errsize, "password_file %s: %s",
			    a->password_file, strerror(errno));
			close(fd);
			explicit_bzero(data, sizeof(data));
			return -1;
		}
		len += (size_t)n;
	}
	close(fd);
	r = first_line(data, len, pass, size);
	explicit_bzero(data, sizeof(data));
	if (r == -1)
		errmsg(err, errsize, "password_file %s: the first line must"
		    " hold a password of 1..%zu octets", a->password_file,
		    size - 1);
	return r;
}

int
account_command_split(const char *cmd, char **copy_r, char **argv)
{
	char *copy, *tok, *save = NULL;
	int argc = 0;

	if ((copy = strdup(cmd)) == NULL)
		return -1;
	for (tok = strtok_r(copy, " \t", &save); tok != NULL &&
	    argc < FETCH_MAX_COMMAND_ARGS; tok = strtok_r(NULL, " \t",
	    &save)) {
		if (argv != NULL)
			argv[argc] = tok;
		argc++;
	}
	if (argc == 0 || tok != NULL) {
		free(copy);
		return -1;
	}
	if (argv != NULL)
		argv[argc] = NULL;
	if (copy_r != NULL)
		*copy_r = copy;
	else
		free(copy);
	return argc;
}

/* The first line of what cmd (key: password_command or token_command)
 * prints, into out.  0, or -1 with err. */
static int
first_line_of_command(const char *key, const char *cmd, char *out,
    size_t size, char *err, size_t errsize)
{
	char *argv[FETCH_MAX_COMMAND_ARGS + 1], *copy;
	char data[FETCH_MAX_TOKEN + 2];
	char *pass = out;
	size_t argc, len = 0;
	int pfd[2], status, r;
	ssize_t n;
	pid_t pid;

	if ((argc = (size_t)account_command_split(cmd, &copy,
	    argv)) == (size_t)-1) {
		errmsg(err, errsize, "%s: empty or more than %d words",
		    key, FETCH_MAX_COMMAND_ARGS);
		return -1;
	}
	if (pipe2(pfd, O_CLOEXEC) == -1 || (pid = fork()) == -1) {
		errmsg(err, errsize, "%s: %s", key, strerror(errno));
		free(copy);
		return -1;
	}
	if (pid == 0) {
		/* Ignored signals stay ignored across exec: not ours to
		 * pass on. */
		(void)signal(SIGPIPE, SIG_DFL);
		(void)signal(SIGXFSZ, SIG_DFL);
		if (dup2(pfd[1], STDOUT_FILENO) == -1)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, "postern fetch: %s %s: %s\n", key,
		    argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		n = read(pfd[0], data + len, sizeof(data) - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(data))
			break;	/* more is not a secret: stop reading */
	}
	close(pfd[0]);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	free(copy);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		explicit_bzero(data, sizeof(data));
		errmsg(err, errsize, "%s %s failed (%s %d)", key,
		    cmd, WIFEXITED(status) ? "exit status" :
		    "signal", WIFEXITED(status) ? WEXITSTATUS(status) :
		    WTERMSIG(status));
		return -1;
	}
	r = first_line(data, len, pass, size);
	explicit_bzero(data, sizeof(data));
	if (r == -1)
		errmsg(err, errsize, "%s %s: the first line of its output"
		    " must hold 1..%zu octets", key, cmd, size - 1);
	return r;
}

static int
password_from_command(const struct account *a, char *pass, size_t size,
    char *err, size_t errsize)
{
	return first_line_of_command("password_command", a->password_command,
	    pass, size, err, errsize);
}

int
account_token(const struct account *a, char *token, size_t size,
    char *err, size_t errsize)
{
	return first_line_of_command("token_command", a->token_command,
	    token, size, err, errsize);
}

static int (*prompt_fn)(const struct account *, char *, size_t);

void
account_set_prompt(int (*fn)(const struct account *, char *, size_t))
{
	prompt_fn = fn;
}

int
account_password(const struct account *a, char *pass, size_t size,
    char *err, size_t errsize)
{
	if (a->password_file == NULL && a->password_command == NULL &&
	    (a->tls_cert != NULL || a->token_command != NULL)) {
		pass[0] = '\0';	/* EXTERNAL, or a bearer token */
		return 0;
	}
	if (a->password_file == NULL && a->password_command == NULL) {
		if (prompt_fn != NULL && prompt_fn(a, pass, size) == 0)
			return 0;
		errmsg(err, errsize, "no password: the account has no"
		    " password_file or password_command, and it could not be"
		    " asked for on a terminal");
		return -1;
	}
	if (a->password_file != NULL)
		return password_from_file(a, pass, size, err, errsize);
	return password_from_command(a, pass, size, err, errsize);
}
