/*
 * cmd_migrate.c: `postern migrate-uidl --from dovecot|courier|x-uidl
 * [-c FILE] [--dry-run] [--force] [--uidl-format FMT] [--source FILE]
 * (-u USER | --all | --maildir PATH)`: imports the UIDLs another POP3
 * server showed, so that clients moving to posternd see the same UIDL
 * for the same message and download nothing again.
 *
 * The sources are read by store/migrate.c, the import is
 * mailbox_import_uidls (store.h), which records the UIDLs in the
 * Maildir's postern.uidls and index under the index lock, so it is safe
 * while posternd runs.  A UIDL posternd may have shown already is never
 * replaced without --force (doc/design.md, storage invariant 3).
 *
 * Run as root, each mailbox is worked on with the effective user and
 * group of the Maildir's owner, so that the files it writes belong to
 * the account posternd's workers run as.
 *
 * Exit statuses follow sysexits(3): 0 every mailbox done (records may
 * have been skipped: the report says which and why), 64 usage, 65 a
 * source file Postern does not understand, 66 no source file or no
 * Maildir, 67 no such user, 73 a mailbox that cannot take the import
 * (a damaged postern.uidls, permissions), 75 a temporary failure (I/O,
 * lock), 78 an unreadable configuration or user database.  With --all
 * the first failure's status is returned after every mailbox was tried.
 *
 * Owns: the configuration, the list of users and each mailbox's
 * records.  Trusts: the configuration file; nothing in the source
 * files or the messages (migrate.c parses them strictly).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "auth/userdb.h"
#include "cli/cli.h"
#include "lib/buf.h"
#include "lib/config.h"
#include "lib/fsutil.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "store/migrate.h"
#include "store/store.h"

#define DOVECOT_FILE	"dovecot-uidlist"
#define COURIER_FILE	"courierpop3dsizelist"

enum source { SRC_NONE, SRC_DOVECOT, SRC_COURIER, SRC_XUIDL };

enum {
	OPT_ALL = 256,
	OPT_MAILDIR,
	OPT_FORMAT,
	OPT_SOURCE,
	OPT_FORCE,
	OPT_FROM,
};

struct migrate_opts {
	enum source	 from;
	const char	*format;	/* pop3_uidl_format (dovecot) */
	const char	*source;	/* the source file, or NULL */
	unsigned int	 flags;		/* IMPORT_* */
};

static void
migrate_usage(FILE *fp)
{
	fputs("usage: postern migrate-uidl --from dovecot|courier|x-uidl"
	    " [-c FILE] [-n] [--force]\n"
	    "           [--uidl-format FMT] [--source FILE]"
	    " (-u USER | --all | --maildir PATH)\n"
	    "Imports the UIDLs another POP3 server showed, so that clients"
	    " see the same\nUIDL for the same message.\n"
	    "  --from dovecot      the Maildir's dovecot-uidlist (P records,"
	    " else --uidl-format)\n"
	    "  --from courier      the Maildir's courierpop3dsizelist\n"
	    "  --from x-uidl       the X-UIDL header of each message"
	    " (qpopper)\n"
	    "  -c, --config FILE   the configuration (else $" CLI_CONFIG_ENV
	    ", else\n"
	    "                      " CLI_DEFAULT_CONFIG ")\n"
	    "  -u, --user USER     the Maildir of USER, a user of user_db\n"
	    "  --all               the Maildir of every user of user_db\n"
	    "  --maildir PATH      the Maildir at PATH (no configuration"
	    " read)\n"
	    "  --uidl-format FMT   Dovecot's pop3_uidl_format (default "
	    MIGRATE_DOVECOT_FORMAT ")\n"
	    "  --source FILE       the source file, when it is not in the"
	    " Maildir\n"
	    "  -n, --dry-run       report what would be imported, change"
	    " nothing\n"
	    "  --force             replace UIDLs posternd may have shown"
	    " already\n"
	    "Exit status: 0 done, 64 usage, 65 source not understood, 66 no"
	    " source or\nMaildir, 67 no such user, 73 mailbox refuses the"
	    " import, 75 try again later,\n78 configuration.\n", fp);
}

#define usage_error(...)						\
	cli_usage_error("migrate-uidl", "postern migrate-uidl -h",	\
	    EX_USAGE, __VA_ARGS__)

static int fail(int, const char *, ...) ATTR_PRINTF(2, 3);

/* One line on stderr, then the exit status. */
static int
fail(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("postern migrate-uidl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

static int
store_status(enum store_rc rc)
{
	return rc == STORE_PERM ? EX_CANTCREAT : EX_TEMPFAIL;
}

/*
 * Works on path with the effective ids of its owner when root (so that
 * the index and map belong to the mail user), and back.  0, or -1 after
 * a line on stderr.
 */
static int
become_owner(const char *path, bool on)
{
	struct stat st;

	if (getuid() != 0)
		return 0;
	if (!on) {
		if (seteuid(0) == -1 || setegid(0) == -1) {
			fail(EX_TEMPFAIL, "cannot return to root: %s",
			    strerror(errno));
			return -1;
		}
		return 0;
	}
	if (stat(path, &st) == -1 || st.st_uid == 0)
		return 0;	/* open reports a missing Maildir */
	if (setegid(st.st_gid) == -1 || seteuid(st.st_uid) == -1) {
		fail(EX_TEMPFAIL, "%s: cannot act as its owner (uid %u): %s",
		    path, (unsigned int)st.st_uid, strerror(errno));
		(void)setegid(0);
		return -1;
	}
	return 0;
}

static void
print_report(const char *path, const struct migrate_list *l,
    const struct migrate_opts *o, size_t without)
{
	size_t count[IMPORT_CONFLICT + 1] = { 0 }, i, skipped;
	char b[128], u[128];
	bool dry = (o->flags & IMPORT_DRY_RUN) != 0;

	for (i = 0; i < l->n; i++)
		count[l->v[i].status]++;
	skipped = l->n - count[IMPORT_DONE] - count[IMPORT_ALREADY];
	printf("%s%s: %zu records, %zu matched, %zu %s, %zu already,"
	    " %zu skipped", dry ? "dry run: " : "", path, l->n,
	    l->n - count[IMPORT_NO_FILE], count[IMPORT_DONE],
	    dry ? "to import" : "imported", count[IMPORT_ALREADY], skipped);
	if (o->from == SRC_XUIDL)
		printf(", %zu messages without X-UIDL", without);
	printf("\n");
	for (i = 0; i < l->n; i++) {
		const struct uidl_import *r = &l->v[i];

		if (r->status == IMPORT_DONE || r->status == IMPORT_ALREADY)
			continue;
		printf("  skipped %s: %s (UIDL %s)\n",
		    log_safe(b, sizeof(b), r->base),
		    uidl_import_status_text(r->status),
		    log_safe(u, sizeof(u), r->uidl));
	}
}

/*
 * Reads the source of the Maildir at path into l.  0, or the exit
 * status after a line on stderr; *absent_r when the source file is
 * not there (only an error if the caller says so).
 */
static int
read_source(const char *path, const struct migrate_opts *o,
    struct migrate_list *l, size_t *without_r, bool *absent_r)
{
	char file[MAX_PATH_LEN], err[512];
	struct buf b;
	int r;

	*absent_r = false;
	*without_r = 0;
	if (o->from == SRC_XUIDL) {
		if (migrate_scan_xuidl(path, l, without_r, err,
		    sizeof(err)) == -1)
			return fail(errno == ENOENT ? EX_NOINPUT : EX_TEMPFAIL,
			    "%s", err);
		return 0;
	}
	if (o->source != NULL)
		r = str_fmt(file, sizeof(file), "%s", o->source);
	else
		r = str_fmt(file, sizeof(file), "%s/%s", path,
		    o->from == SRC_DOVECOT ? DOVECOT_FILE : COURIER_FILE);
	if (r == -1)
		return fail(EX_USAGE, "%s: path too long", path);
	buf_init(&b, MIGRATE_MAX_SOURCE_BYTES);
	if (read_file(file, MIGRATE_MAX_SOURCE_BYTES, &b) == -1) {
		int e = errno;

		buf_clear(&b);
		if (e == ENOENT) {
			*absent_r = true;
			return fail(EX_NOINPUT, "%s: no such file; is %s the"
			    " Maildir %s served?", file, path, o->from ==
			    SRC_DOVECOT ? "Dovecot" : "Courier");
		}
		return fail(e == EFBIG ? EX_DATAERR : EX_TEMPFAIL,
		    "%s: %s", file, strerror(e));
	}
	if (o->from == SRC_DOVECOT)
		r = migrate_parse_dovecot(b.data != NULL ? b.data : "", b.len,
		    o->format, l, err, sizeof(err));
	else
		r = migrate_parse_courier(b.data != NULL ? b.data : "", b.len,
		    l, err, sizeof(err));
	buf_clear(&b);
	if (r == -1)
		return fail(EX_DATAERR, "%s: %s; nothing imported", file, err);
	return 0;
}

/* One mailbox: read, import, report.  0 or an exit status. */
static int
migrate_one(const char *path, const struct migrate_opts *o,
    bool missing_ok)
{
	struct migrate_list l;
	struct stat st;
	enum store_rc rc;
	char err[512];
	size_t without;
	bool absent;
	int status;

	if (stat(path, &st) == -1 || !S_ISDIR(st.st_mode)) {
		if (missing_ok) {
			printf("%s: no Maildir, skipped\n", path);
			return 0;
		}
		return fail(EX_NOINPUT, "%s: no such Maildir; give the"
		    " directory that holds cur/, new/ and tmp/", path);
	}
	if (become_owner(path, true) == -1)
		return EX_TEMPFAIL;
	migrate_list_init(&l);
	if (missing_ok && o->from != SRC_XUIDL && o->source == NULL) {
		/* --all: a user without the file has nothing to import. */
		char file[MAX_PATH_LEN];

		if (str_fmt(file, sizeof(file), "%s/%s", path, o->from ==
		    SRC_DOVECOT ? DOVECOT_FILE : COURIER_FILE) == 0 &&
		    access(file, F_OK) == -1 && errno == ENOENT) {
			printf("%s: no %s, nothing to import\n", path,
			    o->from == SRC_DOVECOT ? DOVECOT_FILE :
			    COURIER_FILE);
			status = 0;
			goto out;
		}
	}
	if ((status = read_source(path, o, &l, &without, &absent)) != 0)
		goto out;
	rc = mailbox_import_uidls(path, l.v, l.n, o->flags, err, sizeof(err));
	if (rc != STORE_OK) {
		status = fail(store_status(rc), "%s; nothing imported", err);
		goto out;
	}
	print_report(path, &l, o, without);
	if (fflush(stdout) != 0)
		status = fail(EX_IOERR, "writing the report: %s",
		    strerror(errno));
out:
	migrate_list_free(&l);
	if (become_owner(path, false) == -1 && status == 0)
		status = EX_TEMPFAIL;
	return status;
}

struct names {
	char		**v;
	size_t		 n;
	size_t		 cap;
};

static int
collect_cb(const struct user_rec *u, void *arg)
{
	struct names *ns = arg;
	char **nv;

	if (ns->n == ns->cap) {
		size_t ncap = ns->cap == 0 ? 64 : ns->cap * 2;

		if ((nv = reallocarray(ns->v, ncap, sizeof(*nv))) == NULL)
			return -1;
		ns->v = nv;
		ns->cap = ncap;
	}
	if ((ns->v[ns->n] = strdup(u->name)) == NULL)
		return -1;
	ns->n++;
	return 0;
}

static void
names_free(struct names *ns)
{
	size_t i;

	for (i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
}

/* The users to migrate: one (checked) or all of user_db. */
static int
users_of(const struct config *c, const char *user, struct names *ns)
{
	struct userdb *db;
	char err[512];
	int r;

	if (userdb_open(c->user_db, c->user_db_type, &db, err,
	    sizeof(err)) == -1)
		return fail(EX_CONFIG, "%s", err);
	if (user != NULL) {
		if (userdb_lookup(db, user) == NULL) {
			userdb_free(&db);
			return fail(EX_NOUSER, "no user '%s' in %s; see"
			    " 'postern user list'", user, c->user_db);
		}
		userdb_free(&db);
		if ((ns->v = calloc(1, sizeof(*ns->v))) == NULL ||
		    (ns->v[0] = strdup(user)) == NULL)
			return fail(EX_TEMPFAIL, "out of memory");
		ns->n = ns->cap = 1;
		return 0;
	}
	r = userdb_foreach(db, collect_cb, ns, err, sizeof(err));
	userdb_free(&db);
	if (r == -1)
		return fail(EX_CONFIG, "%s", err);
	return 0;
}

static int
migrate_users(const char *config, const char *user,
    const struct migrate_opts *o)
{
	struct config c;
	struct names ns = { 0 };
	char err[512], path[MAX_PATH_LEN];
	size_t i;
	int status = 0, r;

	if (config_load(config, &c, err, sizeof(err)) == -1)
		return fail(EX_CONFIG, "%s; fix it, or give the Maildir with"
		    " --maildir PATH", err);
	if ((r = users_of(&c, user, &ns)) != 0) {
		config_free(&c);
		names_free(&ns);
		return r;
	}
	for (i = 0; i < ns.n; i++) {
		if (config_mailbox_path(&c, ns.v[i], path, sizeof(path)) ==
		    -1) {
			r = fail(EX_CANTCREAT, "user '%s': no mailbox path"
			    " (check mailbox_path in %s)", ns.v[i], c.path);
		} else
			r = migrate_one(path, o, user == NULL);
		if (r != 0 && status == 0)
			status = r;
	}
	config_free(&c);
	names_free(&ns);
	return status;
}

int
cmd_migrate(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "from",		required_argument, NULL, OPT_FROM },
		{ "config",		required_argument, NULL, 'c' },
		{ "user",		required_argument, NULL, 'u' },
		{ "all",		no_argument,	   NULL, OPT_ALL },
		{ "maildir",		required_argument, NULL, OPT_MAILDIR },
		{ "uidl-format",	required_argument, NULL, OPT_FORMAT },
		{ "source",		required_argument, NULL, OPT_SOURCE },
		{ "dry-run",		no_argument,	   NULL, 'n' },
		{ "force",		no_argument,	   NULL, OPT_FORCE },
		{ "help",		no_argument,	   NULL, 'h' },
		{ NULL,			0,		   NULL, 0 },
	};
	struct migrate_opts o = { SRC_NONE, NULL, NULL, 0 };
	const char *config = NULL, *user = NULL, *maildir = NULL;
	char err[256];
	bool all = false;
	int ch, targets;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":c:u:nh", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case OPT_FROM:
			if (strcmp(optarg, "dovecot") == 0)
				o.from = SRC_DOVECOT;
			else if (strcmp(optarg, "courier") == 0)
				o.from = SRC_COURIER;
			else if (strcmp(optarg, "x-uidl") == 0)
				o.from = SRC_XUIDL;
			else
				return usage_error("unknown source '%s' (use"
				    " dovecot, courier or x-uidl)", optarg);
			break;
		case 'c':
			config = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		case OPT_ALL:
			all = true;
			break;
		case OPT_MAILDIR:
			maildir = optarg;
			break;
		case OPT_FORMAT:
			o.format = optarg;
			break;
		case OPT_SOURCE:
			o.source = optarg;
			break;
		case 'n':
			o.flags |= IMPORT_DRY_RUN;
			break;
		case OPT_FORCE:
			o.flags |= IMPORT_FORCE;
			break;
		case 'h':
			migrate_usage(stdout);
			return fflush(stdout) == 0 ? EX_OK : EX_IOERR;
		case ':':
			return usage_error("%s needs a value",
			    argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'",
			    argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (o.from == SRC_NONE)
		return usage_error("say where the UIDLs come from with --from"
		    " dovecot, courier or x-uidl");
	targets = (user != NULL) + all + (maildir != NULL);
	if (targets != 1)
		return usage_error("give exactly one of --user USER, --all and"
		    " --maildir PATH");
	if (o.format != NULL && o.from != SRC_DOVECOT)
		return usage_error("--uidl-format applies to --from dovecot"
		    " only");
	if (o.source != NULL && (all || o.from == SRC_XUIDL))
		return usage_error("--source names one file: not with --all"
		    " or --from x-uidl");
	if (o.from == SRC_DOVECOT) {
		if (o.format == NULL)
			o.format = MIGRATE_DOVECOT_FORMAT;
		if (migrate_format_check(o.format, err, sizeof(err)) == -1)
			return usage_error("%s", err);
	}
	if (user != NULL && !username_valid(user))
		return usage_error("'%s' is not a valid user name", user);
	if (maildir != NULL)
		return migrate_one(maildir, &o, false);
	return migrate_users(cli_config_path(config), user, &o);
}
