/*
 * cmd_deliver.c: `postern deliver [-c FILE] [-f SENDER] [--max-size N]
 * -u USER`, a local delivery agent for MTA pipes (Postfix's pipe(8) and
 * mailbox_command, .forward files): one message on standard input into
 * the mailbox (Maildir or mbox) of a user of the configured user
 * database.
 *
 * The message gets "Return-Path: <SENDER>" and "Delivered-To: USER" in
 * front and is otherwise stored as it came, with LF or CRLF line ends
 * (the header lines take the ends of the message's first line); only a
 * leading mbox "From " envelope line, which Postfix's local(8) puts in
 * front of a piped message and which is not part of the message, is
 * dropped.  The store completes a last line without a newline.  Exit 0
 * means the message is on disk (doc/design.md, storage invariant 1):
 * mailbox_deliver returns only after the fsync of new/.
 *
 * Exit statuses follow sysexits(3), which MTAs read: 0 delivered,
 * EX_USAGE (64) a bad command line, EX_NOUSER (67) no such user or a
 * disabled one, EX_CANTCREAT (73) a message over the size limit (these
 * two bounce), EX_TEMPFAIL (75) anything the MTA should retry: a full
 * disk, an I/O error, an unreadable configuration or user database.
 * A mailbox over its quota (quota_bytes, quota_messages: the user's,
 * else the site's) is EX_CANTCREAT, or EX_TEMPFAIL with quota_temporary
 * = yes.  The byte quota bounds the octets stored (header lines
 * included) against the wire sizes already in the mailbox.
 * Each failure prints one line on standard error, which the MTA puts in
 * its log or the bounce.
 *
 * Run as root, it reads the configuration and the user database as root,
 * then drops to mail_user (setgroups, setresgid, setresuid, as posternd
 * does for its workers) before it touches the mail root, so that every
 * file it creates belongs to the account the pop3 workers run as.  Run
 * as another user, it stays that user.
 *
 * Owns: one parsed configuration and the first chunk of the message.
 * Trusts: the configuration file; nothing in the message, the sender
 * (-f or $SENDER: control characters refused) or the user name
 * (username_valid, then config_mailbox_path).
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "auth/userdb.h"
#include "cli/cli.h"
#include "lib/config.h"
#include "lib/limits.h"
#include "lib/strnum.h"
#include "store/store.h"

/* The first chunk of the message, read before the header lines are
 * written: it decides their line ends and holds a "From " line. */
#define DELIVER_FIRST_CHUNK	65536

#define SENDER_ENV		"SENDER"

enum {
	OPT_MAX_SIZE = 256,
};

static void
deliver_usage(FILE *fp)
{
	fputs("usage: postern deliver [-c FILE] [-f SENDER] "
	    "[--max-size OCTETS] -u USER\n"
	    "Delivers one message, read on standard input, into the Maildir"
	    " of USER.\n"
	    "  -c, --config FILE   the configuration (else $" CLI_CONFIG_ENV
	    ", else\n"
	    "                      " CLI_DEFAULT_CONFIG ")\n"
	    "  -f, --from SENDER   the envelope sender for Return-Path (else"
	    " $" SENDER_ENV ",\n"
	    "                      else <>)\n"
	    "  -u, --user USER     the recipient, a user of user_db\n"
	    "  --max-size OCTETS   refuse a bigger message (k, M, G allowed;"
	    " default 64M)\n"
	    "Exit status: 0 delivered, 64 usage, 67 no such user, 73 message"
	    " too big\n"
	    "or over quota, 75 temporary failure (the MTA should retry; also"
	    " over quota\n"
	    "with quota_temporary = yes).\n", fp);
}

/* Every usage error of this command, with its hint and status. */
#define usage_error(...)						\
	cli_usage_error("deliver", "postern deliver -h", EX_USAGE,		\
	    __VA_ARGS__)

static int fail(int, const char *, ...) ATTR_PRINTF(2, 3);

/* One line on stderr, then the exit status. */
static int
fail(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("postern deliver: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

/*
 * The envelope sender as Return-Path shows it, without the angle
 * brackets: s itself, or s without one pair around it.  NULL if s holds
 * a control character (a header injection) or is too long.
 */
static const char *
sender_clean(const char *s, char *out, size_t outsize)
{
	size_t i, len = strlen(s);

	if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
		s++;
		len -= 2;
	}
	if (len > DELIVER_MAX_SENDER_LEN || len >= outsize)
		return NULL;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
			return NULL;
	memcpy(out, s, len);
	out[len] = '\0';
	return out;
}

/* The user of user_db: 1 an enabled user (its quotas in *q_bytes_r and
 * *q_msgs_r, 0 unlimited, the site's applied), 0 none (or disabled:
 * *disabled_r), -1 the store could not be read (err set). */
static int
user_lookup(const struct config *c, const char *name, bool *disabled_r,
    uint64_t *q_bytes_r, uint64_t *q_msgs_r, char *err, size_t errsize)
{
	const struct user_rec *u;
	struct userdb *db;
	int rc;

	*disabled_r = false;
	if (userdb_open(c->user_db, c->user_db_type, &db, err, errsize) ==
	    -1)
		return -1;
	rc = userdb_lookup_checked(db, name, &u, err, errsize);
	if (rc == 1) {
		*disabled_r = u->disabled;
		*q_bytes_r = u->quota_bytes > 0 ? u->quota_bytes :
		    c->quota_bytes;
		*q_msgs_r = u->quota_messages > 0 ? u->quota_messages :
		    c->quota_messages;
		if (u->disabled)
			rc = 0;
	}
	userdb_free(&db);
	return rc;
}

/* Becomes mail_user for good.  0, or -1 after a line on stderr. */
static int
drop_privileges(const struct config *c)
{
	struct passwd *pw;
	uid_t uid;
	gid_t gid;

	errno = 0;
	if ((pw = getpwnam(c->mail_user)) == NULL) {
		fail(EX_TEMPFAIL, "mail_user '%s' does not exist; create it"
		    " or set mail_user in %s", c->mail_user, c->path);
		return -1;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (uid == 0) {
		fail(EX_TEMPFAIL, "refusing to deliver as root (mail_user '%s'"
		    " has uid 0); set mail_user to the account posternd's"
		    " workers run as", c->mail_user);
		return -1;
	}
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1) {
		fail(EX_TEMPFAIL, "cannot become mail_user '%s': %s",
		    c->mail_user, strerror(errno));
		return -1;
	}
	if (setuid(0) != -1) {
		fail(EX_TEMPFAIL, "root privileges could be regained after"
		    " becoming mail_user '%s'", c->mail_user);
		return -1;
	}
	return 0;
}

/*
 * Reads the first chunk of the message into buf: until it holds two LFs
 * (a "From " line and the first real line), the end of input, or size
 * octets.  *len_r gets the octets read.  0, or -1 on a read error.
 */
static int
read_first(int fd, char *buf, size_t size, size_t *len_r)
{
	size_t len = 0, lfs = 0;
	ssize_t n;

	while (len < size && lfs < 2) {
		n = read(fd, buf + len, size - len);
		if (n == -1) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };

			if (errno == EINTR)
				continue;
			/* A non-blocking descriptor: wait for it. */
			if (errno == EAGAIN && (poll(&pfd, 1, -1) != -1 ||
			    errno == EINTR))
				continue;
			return -1;
		}
		if (n == 0)
			break;
		for (const char *p = buf + len; p < buf + len + n; p++)
			if (*p == '\n')
				lfs++;
		len += (size_t)n;
	}
	*len_r = len;
	return 0;
}

/* The length of a leading mbox envelope line ("From sender date", LF
 * included) in buf, or 0.  "From:" and "From :" are header fields. */
static size_t
from_line_len(const char *buf, size_t len)
{
	const char *lf;

	if (len < 6 || memcmp(buf, "From ", 5) != 0 || buf[5] == ' ' ||
	    buf[5] == '\t' || buf[5] == ':' || buf[5] == '\r' ||
	    buf[5] == '\n')
		return 0;
	if ((lf = memchr(buf, '\n', len)) == NULL)
		return 0;
	return (size_t)(lf - buf) + 1;
}

/* True if the first line of buf ends with CRLF. */
static bool
first_line_crlf(const char *buf, size_t len)
{
	const char *lf = memchr(buf, '\n', len);

	return lf != NULL && lf > buf && lf[-1] == '\r';
}

int
cmd_deliver(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config",	required_argument,	NULL, 'c' },
		{ "from",	required_argument,	NULL, 'f' },
		{ "user",	required_argument,	NULL, 'u' },
		{ "max-size",	required_argument,	NULL,
		    OPT_MAX_SIZE },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 },
	};
	const char *opt_c = NULL, *opt_f = NULL, *user = NULL, *sender;
	const char *eol;
	char senderbuf[DELIVER_MAX_SENDER_LEN + 1], err[1024];
	char path[MAX_PATH_LEN];
	char *head = NULL, *first = NULL;
	struct config c;
	struct delivery_info info;
	struct delivery *d = NULL;
	uint64_t max_size = DEFAULT_DELIVER_MAX_SIZE;
	bool max_size_given = false;
	size_t firstlen, fromlen, hlen, headlen;
	enum store_rc rc;
	uint64_t q_bytes = 0, q_msgs = 0, used = 0, limit;
	uint32_t count = 0;
	bool disabled, quota_bound = false;
	int ch, r, status, quota_status;

	/* A file size limit (Postfix sets one for commands) must fail the
	 * write with EFBIG, not kill the process with SIGXFSZ. */
	(void)signal(SIGXFSZ, SIG_IGN);

	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":c:f:u:h", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'c':
			opt_c = optarg;
			break;
		case 'f':
			opt_f = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		case OPT_MAX_SIZE:
			if (parse_size(optarg, HARD_DELIVER_MAX_SIZE,
			    &max_size) != PARSE_OK)
				return usage_error("--max-size wants octets "
				    "(k, M or G allowed) up to %llu",
				    (unsigned long long)HARD_DELIVER_MAX_SIZE);
			max_size_given = true;
			break;
		case 'h':
			deliver_usage(stdout);
			return fflush(stdout) == 0 ? EX_OK : EX_TEMPFAIL;
		case ':':
			return usage_error("option '%s' needs a value",
			    argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'",
			    argv[optind - 1]);
		}
	}
	if (optind != argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (user == NULL)
		return usage_error("no recipient: give -u USER");
	sender = opt_f;
	if (sender == NULL)
		sender = getenv(SENDER_ENV);
	if (sender == NULL)
		sender = "";
	if ((sender = sender_clean(sender, senderbuf, sizeof(senderbuf))) ==
	    NULL)
		return usage_error("the sender (%s) holds a control character"
		    " or is longer than %d octets", opt_f != NULL ? "-f" :
		    "$" SENDER_ENV, DELIVER_MAX_SENDER_LEN);

	if (config_load(cli_config_path(opt_c), &c, err, sizeof(err)) == -1)
		return fail(EX_TEMPFAIL, "%s; fix the configuration, the"
		    " message stays queued", err[0] != '\0' ? err :
		    "configuration rejected");
	if (!max_size_given)
		max_size = c.deliver_max_size;
	status = EX_TEMPFAIL;
	if (!username_valid(user)) {
		status = fail(EX_NOUSER, "no such user: the name is not one"
		    " a user can have");
		goto out;
	}
	quota_status = c.quota_temporary ? EX_TEMPFAIL : EX_CANTCREAT;
	r = user_lookup(&c, user, &disabled, &q_bytes, &q_msgs, err,
	    sizeof(err));
	if (r == -1) {
		status = fail(EX_TEMPFAIL, "user_db: %s; check it with"
		    " 'postern check', the message stays queued", err);
		goto out;
	}
	if (r == 0 && disabled) {
		status = fail(EX_NOUSER, "user %s is disabled; 'postern user"
		    " set --enable %s' enables it", user, user);
		goto out;
	}
	if (r == 0) {
		status = fail(EX_NOUSER, "no such user %s in %s", user,
		    c.user_db);
		goto out;
	}
	if (config_mailbox_path(&c, user, path, sizeof(path)) == -1) {
		status = fail(EX_TEMPFAIL, "no mailbox path for %s under"
		    " mail_root: %s", user, strerror(errno));
		goto out;
	}
	if (geteuid() == 0 && drop_privileges(&c) == -1)
		goto out;
	if ((q_bytes > 0 || q_msgs > 0) && mailbox_usage(path, &used, &count,
	    err, sizeof(err)) != STORE_OK) {
		status = fail(EX_TEMPFAIL, "cannot tell the usage of %s's"
		    " mailbox for its quota: %s; the message stays queued",
		    user, err);
		goto out;
	}
	if ((q_msgs > 0 && count >= q_msgs) ||
	    (q_bytes > 0 && used >= q_bytes)) {
		status = fail(quota_status, "mailbox of %s is over its quota"
		    " (%llu octets in %lu messages; quota %llu octets, %llu"
		    " messages, 0 unlimited)", user,
		    (unsigned long long)used, (unsigned long)count,
		    (unsigned long long)q_bytes, (unsigned long long)q_msgs);
		goto out;
	}

	/* The first chunk decides the header lines' line ends and holds
	 * the "From " line to drop. */
	if ((first = malloc(DELIVER_FIRST_CHUNK)) == NULL) {
		status = fail(EX_TEMPFAIL, "out of memory");
		goto out;
	}
	if (read_first(STDIN_FILENO, first, DELIVER_FIRST_CHUNK,
	    &firstlen) == -1) {
		status = fail(EX_TEMPFAIL, "reading the message: %s",
		    strerror(errno));
		goto out;
	}
	if (firstlen > max_size) {
		status = fail(EX_CANTCREAT, "message larger than %llu octets;"
		    " deliver_max_size or --max-size sets the limit",
		    (unsigned long long)max_size);
		goto out;
	}
	fromlen = from_line_len(first, firstlen);
	eol = first_line_crlf(first + fromlen, firstlen - fromlen) ? "\r\n" :
	    "\n";
	hlen = strlen("Return-Path: <>") + strlen(sender) +
	    strlen("Delivered-To: ") + strlen(user) + 2 * strlen(eol);
	headlen = hlen + firstlen - fromlen;
	if ((head = malloc(headlen + 1)) == NULL) {
		status = fail(EX_TEMPFAIL, "out of memory");
		goto out;
	}
	r = snprintf(head, hlen + 1, "Return-Path: <%s>%sDelivered-To: %s%s",
	    sender, eol, user, eol);
	if (r < 0 || (size_t)r != hlen) {
		status = fail(EX_TEMPFAIL, "formatting the header lines");
		goto out;
	}
	memcpy(head + hlen, first + fromlen, firstlen - fromlen);
	/* The limit is on standard input: the header lines are ours and
	 * the "From " line is not stored. */
	limit = max_size - fromlen + hlen;
	/* The quota bounds the octets stored, header lines included. */
	if (q_bytes > 0 && q_bytes - used < limit) {
		limit = q_bytes - used;
		quota_bound = true;
	}
	if (headlen > limit) {
		status = quota_bound ? fail(quota_status, "message for %s"
		    " over its quota (%llu of %llu octets used)", user,
		    (unsigned long long)used, (unsigned long long)q_bytes) :
		    fail(EX_CANTCREAT, "message larger than %llu octets;"
		    " deliver_max_size or --max-size sets the limit",
		    (unsigned long long)max_size);
		goto out;
	}
	store_set_mbox_limits(c.mbox_lock_timeout_ms,
	    c.mbox_dotlock_stale_ms / 1000);
	rc = mailbox_deliver_begin(path, limit, &d, err, sizeof(err));
	if (rc == STORE_OK) {
		/* The envelope sender of an mbox's From_ line. */
		mailbox_deliver_set_sender(d, sender);
		rc = mailbox_deliver_write(d, head, headlen, err,
		    sizeof(err));
		if (rc == STORE_OK)
			rc = mailbox_deliver_fd(&d, STDIN_FILENO, &info, err,
			    sizeof(err));
		else
			mailbox_deliver_abort(&d);
	}
	switch (rc) {
	case STORE_OK:
		status = EX_OK;
		break;
	case STORE_TOO_BIG:
		if (quota_bound) {
			status = fail(quota_status, "message for %s over its"
			    " quota (%llu of %llu octets used)", user,
			    (unsigned long long)used,
			    (unsigned long long)q_bytes);
			break;
		}
		status = fail(EX_CANTCREAT, "message for %s over the limit of"
		    " %llu octets (--max-size) or the file size limit: %s",
		    user, (unsigned long long)max_size, err);
		break;
	default:
		status = fail(EX_TEMPFAIL, "cannot deliver to %s: %s; the"
		    " message stays queued", user, err);
		break;
	}
out:
	free(head);
	free(first);
	config_free(&c);
	return status;
}
