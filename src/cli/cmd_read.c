/*
 * cmd_read.c: offline reading and managing of fetched mail:
 *
 *   postern list   [BOX] [FILTERS] [--json] [ACCOUNT]
 *   postern show   [BOX] [--raw | --headers] ID
 *   postern save   [BOX] [--dir DIR] [--part N [--stdout]] ID
 *   postern mark   [BOX] read|unread ID...
 *   postern delete [BOX] [--purge] ID...
 *   postern move   [BOX] ID... FOLDER
 *   postern export [BOX] [FILTERS] [-o FILE [--force]] [ID...]
 *
 * BOX is -a ACCOUNT (its maildir in fetch.conf, -f FILE), --maildir DIR
 * or --mbox FILE (read-only), and --folder NAME for a Maildir++ folder;
 * without any, the first account of fetch.conf.  The ids are those of
 * reader/folder.h.
 *
 * Exit status: 0 done, 1 usage error, 2 failed (I/O, a mailbox that
 * cannot be read, a change refused), 3 no such message or part.
 *
 * Owns: the mailbox opened for the command, the pager.  Trusts nothing
 * on the command line or in the mailbox.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "client/account.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/limits.h"
#include "lib/strnum.h"
#include "reader/folder.h"
#include "reader/mboxrd.h"
#include "reader/mime.h"
#include "reader/reader_limits.h"
#include "reader/render.h"
#include "reader/text.h"

#define READ_EXIT_OK		0
#define READ_EXIT_USAGE		1
#define READ_EXIT_FAIL		2
#define READ_EXIT_NOMSG		3

#define PAGER_MAX_ARGS		16
#define DEFAULT_PAGER		"less"

/* The options each command takes. */
enum {
	OPT_BOX		= 1u << 0,	/* -a, -f, --maildir... */
	OPT_FILTER	= 1u << 1,	/* --from ... --attachments */
	OPT_JSON	= 1u << 2,
	OPT_RAW		= 1u << 3,	/* --raw --headers */
	OPT_SAVE	= 1u << 4,	/* --dir --part --stdout */
	OPT_PURGE	= 1u << 5,
	OPT_OUTPUT	= 1u << 6,	/* -o --force */
};

enum {
	LO_MAILDIR = 256, LO_MBOX, LO_FOLDER, LO_FROM, LO_SUBJECT, LO_SINCE,
	LO_BEFORE, LO_UNREAD, LO_ATTACH, LO_JSON, LO_RAW, LO_HEADERS, LO_DIR,
	LO_PART, LO_STDOUT, LO_PURGE, LO_FORCE,
};

struct opts {
	const char	*cmd;
	const char	*conf;
	const char	*account;
	const char	*maildir;
	const char	*mbox;
	const char	*folder;
	const char	*from;
	const char	*subject;
	bool		 has_since, has_before;
	time_t		 since, before;
	bool		 unread, attachments, json, raw, headers, to_stdout;
	bool		 purge, force;
	const char	*dir;
	uint32_t	 part;
	const char	*output;
	int		 argc;		/* the operands */
	char		**argv;
};

struct item {
	struct rd_entry	*e;
	struct rd_summary s;
	int64_t		 when;		/* Date, else the file's */
	bool		 unread;
};

static const struct {
	const char	*name;
	unsigned int	 opts;
	const char	*synopsis;
} usages[] = {
	{ "list", OPT_BOX | OPT_FILTER | OPT_JSON,
	    "list [BOX] [FILTERS] [--json] [ACCOUNT]" },
	{ "show", OPT_BOX | OPT_RAW,
	    "show [BOX] [--raw | --headers] ID" },
	{ "save", OPT_BOX | OPT_SAVE,
	    "save [BOX] [--dir DIR] [--part N [--stdout]] ID" },
	{ "mark", OPT_BOX, "mark [BOX] read|unread ID..." },
	{ "delete", OPT_BOX | OPT_PURGE, "delete [BOX] [--purge] ID..." },
	{ "move", OPT_BOX, "move [BOX] ID... FOLDER" },
	{ "export", OPT_BOX | OPT_FILTER | OPT_OUTPUT,
	    "export [BOX] [FILTERS] [-o FILE [--force]] [ID...]" },
};

static void
read_usage(FILE *fp, const char *cmd)
{
	size_t i;

	for (i = 0; i < N_ELEMENTS(usages); i++)
		if (strcmp(usages[i].name, cmd) == 0)
			fprintf(fp, "usage: postern %s\n", usages[i].synopsis);
	fputs("BOX: -a ACCOUNT [-f FETCH.CONF] | --maildir DIR | --mbox FILE,"
	    " and\n"
	    "     --folder NAME for a Maildir++ folder (Trash: deleted"
	    " mail);\n"
	    "     default: the first account of fetch.conf\n"
	    "FILTERS: --from TEXT --subject TEXT --since YYYY-MM-DD\n"
	    "         --before YYYY-MM-DD --unread --attachments\n"
	    "Exit status: 0 done, 1 usage error, 2 failed, 3 no such message"
	    " or part.\n", fp);
}

/* "postern CMD -h", the hint of a usage error. */
static const char *
read_hint(const char *cmd)
{
	static char hint[64];

	(void)snprintf(hint, sizeof(hint), "postern %s -h", cmd);
	return hint;
}

/* Every usage error of these commands, with its hint and status. */
#define usage_error(cmd, ...)						\
	cli_usage_error(cmd, read_hint(cmd), READ_EXIT_USAGE, __VA_ARGS__)

/* YYYY-MM-DD as the local midnight that starts it. */
static int
parse_day(const char *s, time_t *t)
{
	char y[5], m[3], d[3];
	uint32_t yy, mm, dd;
	struct tm tm;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	memcpy(y, s, 4);
	y[4] = '\0';
	memcpy(m, s + 5, 2);
	m[2] = '\0';
	memcpy(d, s + 8, 2);
	d[2] = '\0';
	if (parse_u32(y, 9999, &yy) != PARSE_OK || yy < 1970 ||
	    parse_u32(m, 12, &mm) != PARSE_OK || mm < 1 ||
	    parse_u32(d, 31, &dd) != PARSE_OK || dd < 1)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = (int)yy - 1900;
	tm.tm_mon = (int)mm - 1;
	tm.tm_mday = (int)dd;
	tm.tm_isdst = -1;
	if ((*t = mktime(&tm)) == (time_t)-1 || tm.tm_mday != (int)dd)
		return -1;	/* 2024-02-30 */
	return 0;
}

static int
parse_opts(const char *cmd, int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "file",	required_argument,	NULL, 'f' },
		{ "account",	required_argument,	NULL, 'a' },
		{ "maildir",	required_argument, NULL, LO_MAILDIR },
		{ "mbox",	required_argument,	NULL, LO_MBOX },
		{ "folder",	required_argument,	NULL, LO_FOLDER },
		{ "from",	required_argument,	NULL, LO_FROM },
		{ "subject",	required_argument, NULL, LO_SUBJECT },
		{ "since",	required_argument,	NULL, LO_SINCE },
		{ "before",	required_argument,	NULL, LO_BEFORE },
		{ "unread",	no_argument,	NULL, LO_UNREAD },
		{ "attachments", no_argument,		NULL, LO_ATTACH },
		{ "json",	no_argument,		NULL, LO_JSON },
		{ "raw",	no_argument,		NULL, LO_RAW },
		{ "headers",	no_argument,	NULL, LO_HEADERS },
		{ "dir",	required_argument,	NULL, LO_DIR },
		{ "part",	required_argument,	NULL, LO_PART },
		{ "stdout",	no_argument,	NULL, LO_STDOUT },
		{ "purge",	no_argument,		NULL, LO_PURGE },
		{ "output",	required_argument,	NULL, 'o' },
		{ "force",	no_argument,		NULL, LO_FORCE },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 },
	};
	unsigned int allowed = 0, need;
	size_t i;
	int ch;

	memset(o, 0, sizeof(*o));
	o->cmd = cmd;
	for (i = 0; i < N_ELEMENTS(usages); i++)
		if (strcmp(usages[i].name, cmd) == 0)
			allowed = usages[i].opts;
	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":f:a:o:h", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'f': case 'a': case LO_MAILDIR: case LO_MBOX:
		case LO_FOLDER:
			need = OPT_BOX;
			break;
		case LO_FROM: case LO_SUBJECT: case LO_SINCE: case LO_BEFORE:
		case LO_UNREAD: case LO_ATTACH:
			need = OPT_FILTER;
			break;
		case LO_JSON:
			need = OPT_JSON;
			break;
		case LO_RAW: case LO_HEADERS:
			need = OPT_RAW;
			break;
		case LO_DIR: case LO_PART: case LO_STDOUT:
			need = OPT_SAVE;
			break;
		case LO_PURGE:
			need = OPT_PURGE;
			break;
		case 'o': case LO_FORCE:
			need = OPT_OUTPUT;
			break;
		case 'h':
			read_usage(stdout, cmd);
			return fflush(stdout) == 0 ? READ_EXIT_OK :
			    READ_EXIT_FAIL;
		case ':':
			return usage_error(cmd, "option '%s' needs a value",
			    argv[optind - 1]);
		default:
			return usage_error(cmd, "unknown option '%s'",
			    argv[optind - 1]);
		}
		if ((allowed & need) == 0)
			return usage_error(cmd, "option '%s' does not apply"
			    " here", argv[optind - 1]);
		switch (ch) {
		case 'f': o->conf = optarg; break;
		case 'a': o->account = optarg; break;
		case LO_MAILDIR: o->maildir = optarg; break;
		case LO_MBOX: o->mbox = optarg; break;
		case LO_FOLDER: o->folder = optarg; break;
		case LO_FROM: o->from = optarg; break;
		case LO_SUBJECT: o->subject = optarg; break;
		case LO_SINCE:
			if (parse_day(optarg, &o->since) == -1)
				return usage_error(cmd, "bad date '%s' (want"
				    " YYYY-MM-DD)", optarg);
			o->has_since = true;
			break;
		case LO_BEFORE:
			if (parse_day(optarg, &o->before) == -1)
				return usage_error(cmd, "bad date '%s' (want"
				    " YYYY-MM-DD)", optarg);
			o->has_before = true;
			break;
		case LO_UNREAD: o->unread = true; break;
		case LO_ATTACH: o->attachments = true; break;
		case LO_JSON: o->json = true; break;
		case LO_RAW: o->raw = true; break;
		case LO_HEADERS: o->headers = true; break;
		case LO_DIR: o->dir = optarg; break;
		case LO_PART:
			if (parse_u32(optarg, READER_MAX_PARTS, &o->part) !=
			    PARSE_OK || o->part == 0)
				return usage_error(cmd, "bad part number '%s'",
				    optarg);
			break;
		case LO_STDOUT: o->to_stdout = true; break;
		case LO_PURGE: o->purge = true; break;
		case 'o': o->output = optarg; break;
		case LO_FORCE: o->force = true; break;
		}
	}
	o->argc = argc - optind;
	o->argv = argv + optind;
	if ((o->maildir != NULL) + (o->mbox != NULL) + (o->account != NULL)
	    > 1)
		return usage_error(cmd, "give one of -a, --maildir and"
		    " --mbox");
	if (o->folder != NULL && o->mbox != NULL)
		return usage_error(cmd, "--folder is for a Maildir, not"
		    " --mbox");
	if (o->raw && o->headers)
		return usage_error(cmd, "--raw and --headers exclude"
		    " each other");
	if (o->to_stdout && o->part == 0)
		return usage_error(cmd, "--stdout needs --part N");
	if (o->to_stdout && o->dir != NULL)
		return usage_error(cmd, "--stdout and --dir exclude"
		    " each other");
	if (o->force && o->output == NULL)
		return usage_error(cmd, "--force needs -o FILE");
	return -1;	/* go on */
}

/* Opens the mailbox the options name. */
static int
open_box(struct opts *o, struct rd_box *box)
{
	char confbuf[MAX_PATH_LEN], err[1024];
	const struct account *a;
	struct fetch_conf fc;
	int rc;

	if (o->mbox != NULL)
		rc = rd_box_open_mbox(box, o->mbox, err, sizeof(err));
	else if (o->maildir != NULL)
		rc = rd_box_open_maildir(box, o->maildir, o->folder, err,
		    sizeof(err));
	else {
		if (o->conf == NULL) {
			if (cli_fetch_conf_default(confbuf, sizeof(confbuf))
			    == -1)
				return usage_error(o->cmd, "no mailbox:"
				    " give --maildir, --mbox or -f FILE");
			o->conf = confbuf;
		}
		if (fetch_conf_load(o->conf, &fc, err, sizeof(err)) == -1) {
			fprintf(stderr, "postern %s: %s\n", o->cmd, err);
			return READ_EXIT_USAGE;
		}
		a = o->account != NULL ? fetch_conf_find(&fc, o->account) :
		    fc.count > 0 ? &fc.accounts[0] : NULL;
		if (a == NULL) {
			fprintf(stderr, "postern %s: %s %s in %s\n", o->cmd,
			    o->account != NULL ? "no account" : "no account",
			    o->account != NULL ? o->account : "at all",
			    o->conf);
			fetch_conf_free(&fc);
			return READ_EXIT_USAGE;
		}
		rc = rd_box_open_maildir(box, a->maildir, o->folder, err,
		    sizeof(err));
		fetch_conf_free(&fc);
	}
	if (rc == -1) {
		fprintf(stderr, "postern %s: %s\n", o->cmd, err);
		return READ_EXIT_FAIL;
	}
	return -1;	/* go on */
}

static void
shown_id(const struct rd_entry *e, char *out)
{
	memcpy(out, e->hash, e->idlen);
	out[e->idlen] = '\0';
}

/* Summarizes e into it; 0, or -1 after a message on stderr. */
static int
summarize(const char *cmd, struct rd_box *box, struct rd_entry *e,
    struct item *it)
{
	char err[512], id[RD_HASH_HEX + 1];
	uint64_t size;
	int fd, rc;

	memset(it, 0, sizeof(*it));
	it->e = e;
	shown_id(e, id);
	if ((fd = rd_box_message_fd(box, e, &size, err, sizeof(err))) == -1) {
		fprintf(stderr, "postern %s: %s: %s\n", cmd, id, err);
		return -1;
	}
	rd_warn_begin(cmd, id);
	rc = rd_summarize(fd, &it->s, err, sizeof(err));
	(void)rd_warn_end();
	close(fd);
	if (rc == -1) {
		fprintf(stderr, "postern %s: %s: %s\n", cmd, id, err);
		return -1;
	}
	e->size = size;
	it->when = it->s.has_date ? it->s.date : (int64_t)e->mtime;
	it->unread = box->kind == RD_MAILDIR ? !e->seen : !it->s.status_read;
	return 0;
}

static bool
matches(const struct opts *o, const struct item *it)
{
	if (o->from != NULL && !((it->s.from != NULL &&
	    strcasestr(it->s.from, o->from) != NULL) ||
	    (it->s.from_addr != NULL &&
	    strcasestr(it->s.from_addr, o->from) != NULL)))
		return false;
	if (o->subject != NULL && (it->s.subject == NULL ||
	    strcasestr(it->s.subject, o->subject) == NULL))
		return false;
	if (o->has_since && it->when < (int64_t)o->since)
		return false;
	if (o->has_before && it->when >= (int64_t)o->before)
		return false;
	if (o->unread && !it->unread)
		return false;
	if (o->attachments && !it->s.attachments)
		return false;
	return true;
}

static int
cmp_items(const void *a, const void *b)
{
	const struct item *x = a, *y = b;

	if (x->when != y->when)
		return x->when < y->when ? -1 : 1;
	if (x->e->mbox != NULL && y->e->mbox != NULL &&
	    x->e->mbox->from_off != y->e->mbox->from_off)
		return x->e->mbox->from_off < y->e->mbox->from_off ? -1 : 1;
	return strcmp(x->e->hash, y->e->hash);
}

static void
free_items(struct item *items, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		rd_summary_free(&items[i].s);
	free(items);
}

/*
 * The messages of box selected by the operands (ids) or, without any,
 * by the filters, sorted by date.  Returns an exit status, or -1 to go
 * on with *items_r and *n_r.
 */
static int
select_items(struct opts *o, struct rd_box *box, int ids, char **idv,
    struct item **items_r, size_t *n_r)
{
	struct item *items;
	struct rd_entry *e;
	char err[512];
	size_t n = 0, i;
	int k, status = -1;

	*items_r = NULL;
	*n_r = 0;
	if ((items = calloc(box->count + (size_t)ids + 1, sizeof(*items))) ==
	    NULL) {
		fprintf(stderr, "postern %s: %s\n", o->cmd, strerror(errno));
		return READ_EXIT_FAIL;
	}
	if (ids > 0) {
		for (k = 0; k < ids; k++) {
			if ((e = rd_box_find(box, idv[k], err, sizeof(err))) ==
			    NULL) {
				fprintf(stderr, "postern %s: %s\n", o->cmd,
				    err);
				free_items(items, n);
				return READ_EXIT_NOMSG;
			}
			if (summarize(o->cmd, box, e, &items[n]) == -1)
				status = READ_EXIT_FAIL;
			else
				n++;
		}
	} else {
		for (i = 0; i < box->count; i++) {
			if (summarize(o->cmd, box, &box->entries[i],
			    &items[n]) == -1) {
				status = READ_EXIT_FAIL;
				continue;
			}
			if (matches(o, &items[n]))
				n++;
			else
				rd_summary_free(&items[n].s);
		}
	}
	qsort(items, n, sizeof(*items), cmp_items);
	*items_r = items;
	*n_r = n;
	return status;
}

/* when as local "YYYY-MM-DD HH:MM". */
static void
local_time(int64_t when, char *out, size_t size)
{
	time_t t = (time_t)when;
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(out, size, "%Y-%m-%d %H:%M", &tm) == 0)
		(void)snprintf(out, size, "?");
}

/* s padded or cut to width characters. */
static void
put_width(FILE *fp, const char *s, size_t width, bool pad)
{
	size_t len = s != NULL ? strlen(s) : 0, w, n;

	if (s == NULL)
		s = "";
	n = rd_utf8_prefix(s, len, width);
	w = rd_utf8_width(s, n);
	fwrite(s, 1, n, fp);
	while (pad && w++ < width)
		fputc(' ', fp);
}

static int
print_json(const struct item *it)
{
	char id[RD_HASH_HEX + 1], date[40];
	json_t *j;
	char *s;
	int rc;
	time_t t = (time_t)it->when;
	struct tm tm;

	shown_id(it->e, id);
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		date[0] = '\0';
	j = json_pack("{s:s, s:s, s:I, s:s?, s:s?, s:s?, s:I, s:b, s:b, s:b,"
	    " s:b}",
	    "id", id, "date", date, "timestamp", (json_int_t)it->when,
	    "from", it->s.from, "from_address", it->s.from_addr,
	    "subject", it->s.subject, "size", (json_int_t)it->e->size,
	    "unread", it->unread, "attachments", it->s.attachments,
	    "encrypted", it->s.encrypted, "signed", it->s.is_signed);
	if (j == NULL)
		return -1;
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (s == NULL)
		return -1;
	rc = puts(s) == EOF ? -1 : 0;
	free(s);
	return rc;
}

int
cmd_list(int argc, char **argv)
{
	struct opts o;
	struct rd_box box;
	struct item *items;
	char id[RD_HASH_HEX + 1], date[32], size[24];
	size_t n, i;
	unsigned int idw = RD_ID_MIN;
	int status, st;

	if ((status = parse_opts("list", argc, argv, &o)) != -1)
		return status;
	if (o.argc > 1)
		return usage_error("list", "unexpected '%s'", o.argv[1]);
	if (o.argc == 1) {
		if (o.maildir != NULL || o.mbox != NULL || o.account != NULL)
			return usage_error("list", "unexpected '%s'",
			    o.argv[0]);
		o.account = o.argv[0];
	}
	rd_mime_init();
	if ((status = open_box(&o, &box)) != -1) {
		rd_mime_shutdown();
		return status;
	}
	st = select_items(&o, &box, 0, NULL, &items, &n);
	status = st == -1 ? READ_EXIT_OK : st;
	for (i = 0; i < n; i++)
		if (items[i].e->idlen > idw)
			idw = items[i].e->idlen;
	for (i = 0; i < n; i++) {
		const struct item *it = &items[i];

		if (o.json) {
			if (print_json(it) == -1)
				status = READ_EXIT_FAIL;
			continue;
		}
		shown_id(it->e, id);
		local_time(it->when, date, sizeof(date));
		(void)snprintf(size, sizeof(size), "%llu",
		    (unsigned long long)it->e->size);
		printf("%-*s  %s  %c%c%c%c  %9s  ", (int)idw, id, date,
		    it->unread ? 'N' : '-', it->s.attachments ? 'A' : '-',
		    it->s.encrypted ? 'E' : '-', it->s.is_signed ? 'S' : '-',
		    size);
		put_width(stdout, it->s.from, READER_LIST_FROM_WIDTH, true);
		fputs("  ", stdout);
		put_width(stdout, it->s.subject, READER_LIST_SUBJECT_WIDTH,
		    false);
		fputc('\n', stdout);
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "postern list: writing: %s\n",
		    strerror(errno));
		status = READ_EXIT_FAIL;
	}
	free_items(items, n);
	rd_box_close(&box);
	rd_mime_shutdown();
	return status;
}

/* Opens box and finds the one message of the single operand. */
static int
one_message(struct opts *o, struct rd_box *box, struct rd_entry **e_r)
{
	char err[512];
	int status;

	if (o->argc != 1)
		return usage_error(o->cmd, "%s", o->argc == 0 ?
		    "no message id" : "one message id only");
	if ((status = open_box(o, box)) != -1)
		return status;
	if ((*e_r = rd_box_find(box, o->argv[0], err, sizeof(err))) == NULL) {
		fprintf(stderr, "postern %s: %s\n", o->cmd, err);
		rd_box_close(box);
		return READ_EXIT_NOMSG;
	}
	return -1;
}

/* Starts $PAGER (split on blanks, no shell) reading a pipe; *out is
 * stdout when standard output is not a terminal or PAGER is empty. */
static pid_t
pager_start(FILE **out)
{
	char *argv[PAGER_MAX_ARGS + 1], *copy, *tok, *save = NULL;
	char path[MAX_PATH_LEN];
	const char *pager = getenv("PAGER");
	size_t argc = 0;
	int pfd[2];
	pid_t pid;

	*out = stdout;
	if (!isatty(STDOUT_FILENO))
		return -1;
	if (pager == NULL)
		pager = DEFAULT_PAGER;
	if ((copy = strdup(pager)) == NULL)
		return -1;
	for (tok = strtok_r(copy, " \t", &save); tok != NULL &&
	    argc < PAGER_MAX_ARGS; tok = strtok_r(NULL, " \t", &save))
		argv[argc++] = tok;
	argv[argc] = NULL;
	/* A pager that is not there means no pager, not lost text. */
	if (argc == 0 || (strchr(argv[0], '/') != NULL ?
	    access(argv[0], X_OK) : rd_find_program(argv[0], path,
	    sizeof(path))) == -1 || pipe2(pfd, O_CLOEXEC) == -1) {
		free(copy);
		return -1;
	}
	if ((pid = fork()) == -1) {
		close(pfd[0]);
		close(pfd[1]);
		free(copy);
		return -1;
	}
	if (pid == 0) {
		(void)signal(SIGPIPE, SIG_DFL);
		(void)signal(SIGXFSZ, SIG_DFL);
		if (dup2(pfd[0], STDIN_FILENO) == -1)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, "postern show: pager %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	free(copy);
	close(pfd[0]);
	if ((*out = fdopen(pfd[1], "w")) == NULL) {
		close(pfd[1]);
		*out = stdout;
		(void)kill(pid, SIGTERM);
		while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
			;
		return -1;
	}
	return pid;
}

static void
pager_wait(pid_t pid, FILE *out)
{
	if (pid == -1)
		return;
	(void)fclose(out);
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
}

/* Copies len octets of fd to standard output. */
static int
copy_out(int fd)
{
	char chunk[65536];
	ssize_t n;

	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return (int)n;
		if (write_full(STDOUT_FILENO, chunk, (size_t)n) == -1)
			return -1;
	}
}

int
cmd_show(int argc, char **argv)
{
	struct opts o;
	struct rd_box box;
	struct rd_entry *e;
	char err[512], id[RD_HASH_HEX + 1];
	uint64_t size;
	FILE *out;
	pid_t pager;
	int status, fd, rc, saved;

	(void)signal(SIGPIPE, SIG_IGN);
	if ((status = parse_opts("show", argc, argv, &o)) != -1)
		return status;
	rd_mime_init();
	if ((status = one_message(&o, &box, &e)) != -1) {
		rd_mime_shutdown();
		return status;
	}
	shown_id(e, id);
	status = READ_EXIT_OK;
	if ((fd = rd_box_message_fd(&box, e, &size, err, sizeof(err))) == -1) {
		fprintf(stderr, "postern show: %s\n", err);
		status = READ_EXIT_FAIL;
	} else if (o.raw) {
		if (copy_out(fd) == -1) {
			fprintf(stderr, "postern show: %s: %s\n", id,
			    strerror(errno));
			status = READ_EXIT_FAIL;
		}
		close(fd);
	} else {
		pager = pager_start(&out);
		rd_warn_begin("show", id);
		rc = rd_show(fd, out, o.headers, err, sizeof(err));
		saved = errno;
		(void)rd_warn_end();
		if (rc == 0 && fflush(out) != 0) {
			saved = errno;
			errf(err, sizeof(err), "writing: %s", strerror(errno));
			rc = -1;
		}
		/* A pager that quit early is not a failure; a reader of a
		 * pipe that went away needs no message. */
		if (rc == -1 && !(pager != -1 && saved == EPIPE)) {
			if (saved != EPIPE)
				fprintf(stderr, "postern show: %s: %s\n", id,
				    err);
			status = READ_EXIT_FAIL;
		}
		pager_wait(pager, out);
		close(fd);
	}
	rd_box_close(&box);
	rd_mime_shutdown();
	return status;
}

int
cmd_save(int argc, char **argv)
{
	struct opts o;
	struct rd_box box;
	struct rd_entry *e;
	struct rd_save_opts so;
	char err[512], id[RD_HASH_HEX + 1];
	uint64_t size;
	int status, fd, dirfd = -1, rc;

	(void)signal(SIGPIPE, SIG_IGN);
	if ((status = parse_opts("save", argc, argv, &o)) != -1)
		return status;
	if (!o.to_stdout) {
		dirfd = open(o.dir != NULL ? o.dir : ".", O_RDONLY |
		    O_DIRECTORY | O_CLOEXEC);
		if (dirfd == -1) {
			fprintf(stderr, "postern save: %s: %s\n", o.dir != NULL
			    ? o.dir : ".", strerror(errno));
			return READ_EXIT_FAIL;
		}
	}
	rd_mime_init();
	if ((status = one_message(&o, &box, &e)) != -1) {
		if (dirfd != -1)
			close(dirfd);
		rd_mime_shutdown();
		return status;
	}
	shown_id(e, id);
	status = READ_EXIT_OK;
	if ((fd = rd_box_message_fd(&box, e, &size, err, sizeof(err))) == -1) {
		fprintf(stderr, "postern save: %s\n", err);
		status = READ_EXIT_FAIL;
	} else {
		so.dirfd = dirfd;
		so.part = o.part;
		so.out_fd = o.to_stdout ? STDOUT_FILENO : -1;
		so.report = o.to_stdout ? NULL : stdout;
		rd_warn_begin("save", id);
		rc = rd_save(fd, &so, err, sizeof(err));
		(void)rd_warn_end();
		if (rc != 0) {
			fprintf(stderr, "postern save: %s: %s\n", id, err);
			status = rc == RD_NO_PART ? READ_EXIT_NOMSG :
			    READ_EXIT_FAIL;
		}
		close(fd);
	}
	if (fflush(stdout) != 0 && status == READ_EXIT_OK)
		status = READ_EXIT_FAIL;
	if (dirfd != -1)
		close(dirfd);
	rd_box_close(&box);
	rd_mime_shutdown();
	return status;
}

/*
 * mark, delete and move: each id is looked up first (an unknown one
 * changes nothing), then each message changed in turn.
 */
enum change { CH_SEEN, CH_UNSEEN, CH_DELETE, CH_PURGE, CH_MOVE };

static int
change(struct opts *o, enum change what, int ids, char **idv,
    const char *folder)
{
	struct rd_entry **sel;
	struct rd_box box;
	char err[512];
	int status, k, j;

	if (ids == 0)
		return usage_error(o->cmd, "no message id");
	if ((status = open_box(o, &box)) != -1)
		return status;
	if (box.kind != RD_MAILDIR) {
		fprintf(stderr, "postern %s: %s: an mbox is only read by"
		    " postern; give a Maildir\n", o->cmd, box.path);
		rd_box_close(&box);
		return READ_EXIT_FAIL;
	}
	if (what == CH_DELETE && box.is_trash) {
		fprintf(stderr, "postern delete: %s is the trash already;"
		    " use --purge\n", box.path);
		rd_box_close(&box);
		return READ_EXIT_FAIL;
	}
	if ((sel = calloc((size_t)ids, sizeof(*sel))) == NULL) {
		rd_box_close(&box);
		return READ_EXIT_FAIL;
	}
	for (k = 0; k < ids; k++) {
		if ((sel[k] = rd_box_find(&box, idv[k], err, sizeof(err))) ==
		    NULL) {
			fprintf(stderr, "postern %s: %s\n", o->cmd, err);
			free(sel);
			rd_box_close(&box);
			return READ_EXIT_NOMSG;
		}
		for (j = 0; j < k; j++)
			if (sel[j] == sel[k]) {
				fprintf(stderr, "postern %s: %s names a"
				    " message twice\n", o->cmd, idv[k]);
				free(sel);
				rd_box_close(&box);
				return READ_EXIT_USAGE;
			}
	}
	status = READ_EXIT_OK;
	for (k = 0; k < ids; k++) {
		int rc;

		switch (what) {
		case CH_SEEN:
		case CH_UNSEEN:
			rc = rd_set_seen(&box, sel[k], what == CH_SEEN, err,
			    sizeof(err));
			break;
		case CH_DELETE:
			rc = rd_move(&box, sel[k], RD_TRASH, err, sizeof(err));
			break;
		case CH_PURGE:
			rc = rd_purge(&box, sel[k], err, sizeof(err));
			break;
		default:
			rc = rd_move(&box, sel[k], folder, err, sizeof(err));
			break;
		}
		if (rc == -1) {
			fprintf(stderr, "postern %s: %s\n", o->cmd, err);
			status = READ_EXIT_FAIL;
		}
	}
	free(sel);
	rd_box_close(&box);
	return status;
}

int
cmd_mark(int argc, char **argv)
{
	struct opts o;
	int status;

	if ((status = parse_opts("mark", argc, argv, &o)) != -1)
		return status;
	if (o.argc == 0 || (strcmp(o.argv[0], "read") != 0 &&
	    strcmp(o.argv[0], "unread") != 0))
		return usage_error("mark", "say 'read' or 'unread'");
	return change(&o, strcmp(o.argv[0], "read") == 0 ? CH_SEEN :
	    CH_UNSEEN, o.argc - 1, o.argv + 1, NULL);
}

int
cmd_delete(int argc, char **argv)
{
	struct opts o;
	int status;

	if ((status = parse_opts("delete", argc, argv, &o)) != -1)
		return status;
	return change(&o, o.purge ? CH_PURGE : CH_DELETE, o.argc, o.argv,
	    NULL);
}

int
cmd_move(int argc, char **argv)
{
	struct opts o;
	const char *folder;
	int status;

	if ((status = parse_opts("move", argc, argv, &o)) != -1)
		return status;
	if (o.argc < 2)
		return usage_error("move", "give ID... FOLDER");
	folder = o.argv[o.argc - 1];
	if (strcmp(folder, RD_INBOX) != 0 && !rd_folder_name_ok(folder))
		return usage_error("move", "bad folder name '%s' (letters,"
		    " digits, '.', '_', '-')", folder);
	return change(&o, CH_MOVE, o.argc - 1, o.argv, folder);
}

/* The From_ line of an exported message: its sender and date. */
static void
from_line(const struct item *it, char *out, size_t size)
{
	char date[40];
	time_t t = (time_t)it->when;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) == 0)
		(void)snprintf(date, sizeof(date),
		    "Thu Jan  1 00:00:00 1970");
	(void)snprintf(out, size, "From %s %s", it->s.from_addr != NULL ?
	    it->s.from_addr : "MAILER-DAEMON", date);
}

int
cmd_export(int argc, char **argv)
{
	struct opts o;
	struct rd_box box;
	struct item *items;
	char err[512], line[READER_MBOX_FROM_LINE + 64];
	char tmp[MAX_PATH_LEN];
	const char *target = NULL;
	uint64_t size;
	size_t n, i;
	int status, st, outfd = STDOUT_FILENO, fd;

	(void)signal(SIGPIPE, SIG_IGN);
	if ((status = parse_opts("export", argc, argv, &o)) != -1)
		return status;
	if (o.argc > 0 && (o.from != NULL || o.subject != NULL ||
	    o.has_since || o.has_before || o.unread || o.attachments))
		return usage_error("export", "give ids or filters, not"
		    " both");
	if (o.output != NULL && strcmp(o.output, "-") != 0)
		target = o.output;
	rd_mime_init();
	if ((status = open_box(&o, &box)) != -1) {
		rd_mime_shutdown();
		return status;
	}
	st = select_items(&o, &box, o.argc, o.argv, &items, &n);
	if (st == READ_EXIT_NOMSG || st == READ_EXIT_USAGE ||
	    (st != -1 && o.argc > 0)) {
		rd_box_close(&box);
		rd_mime_shutdown();
		free_items(items, n);
		return st;
	}
	status = st == -1 ? READ_EXIT_OK : st;
	if (target != NULL) {
		/* Never over a file unless --force, and then by rename, so
		 * that the old file stays whole until the new one is. */
		if (o.force) {
			if (str_fmt(tmp, sizeof(tmp), "%s.tmp.%ld", target,
			    (long)getpid()) == -1) {
				fprintf(stderr, "postern export: %s: name too"
				    " long\n", target);
				goto fail;
			}
			outfd = open(tmp, O_WRONLY | O_CREAT | O_EXCL |
			    O_CLOEXEC | O_NOFOLLOW, 0600);
		} else
			outfd = open(target, O_WRONLY | O_CREAT | O_EXCL |
			    O_CLOEXEC | O_NOFOLLOW, 0600);
		if (outfd == -1) {
			fprintf(stderr, "postern export: %s: %s%s\n", target,
			    strerror(errno), errno == EEXIST && !o.force ?
			    " (--force replaces it)" : "");
			goto fail;
		}
	}
	for (i = 0; i < n; i++) {
		if ((fd = rd_box_message_fd(&box, items[i].e, &size, err,
		    sizeof(err))) == -1) {
			fprintf(stderr, "postern export: %s\n", err);
			goto fail_out;
		}
		from_line(&items[i], line, sizeof(line));
		if (mbox_write_message(outfd, line, fd, size) == -1) {
			fprintf(stderr, "postern export: writing: %s\n",
			    strerror(errno));
			close(fd);
			goto fail_out;
		}
		close(fd);
	}
	if (target != NULL) {
		if (fsync(outfd) == -1 || close(outfd) == -1) {
			outfd = -1;
			fprintf(stderr, "postern export: %s: %s\n", target,
			    strerror(errno));
			goto fail_out;
		}
		outfd = -1;
		if (o.force && rename(tmp, target) == -1) {
			fprintf(stderr, "postern export: %s: %s\n", target,
			    strerror(errno));
			goto fail_out;
		}
		if (fsync_parent(target) == -1) {
			fprintf(stderr, "postern export: %s: fsync: %s\n",
			    target, strerror(errno));
			status = READ_EXIT_FAIL;
		}
	}
	free_items(items, n);
	rd_box_close(&box);
	rd_mime_shutdown();
	return status;
fail_out:
	if (target != NULL) {
		if (outfd != -1)
			close(outfd);
		(void)unlink(o.force ? tmp : target);
	}
fail:
	free_items(items, n);
	rd_box_close(&box);
	rd_mime_shutdown();
	return READ_EXIT_FAIL;
}
