/*
 * cmd_fetch.c: `postern fetch [-f FILE] [--quiet] [--json] [--check]
 * [--no-mail-status] [NAME...]`:
 * retrieves the mail of the named accounts of fetch.conf (all of them
 * without a name) into their Maildirs or MDAs, each message exactly once
 * (client/fetch.h); with --check, only counts the new messages.
 *
 * Exit status: 0 every account done (or nothing new), 1 a bad command
 * line or fetch.conf, 2 nothing new (only with --no-mail-status), 75 a
 * temporary failure of some account (network, the server busy or
 * failing, the account locked by another run), 77 a permanent one
 * (authentication or TLS verification failed, the mda refused a
 * message).  When accounts fail differently, 77 wins over 75.
 *
 * Owns: the parsed fetch.conf.  Trusts: nothing on the command line.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "client/account.h"
#include "client/fetch.h"
#include "client/report.h"
#include "lib/buf.h"

static void
fetch_usage(FILE *fp)
{
	fputs("usage: postern fetch [-f FILE] [--quiet] [--json] [--check]"
	    " [--no-mail-status]\n"
	    "                     [NAME...]\n"
	    "Retrieves the mail of the accounts NAME of FILE (all of them"
	    " without NAME)\n"
	    "into their Maildirs (or through their MDAs), each message"
	    " once.\n"
	    "  -f, --file FILE  the accounts (else $XDG_CONFIG_HOME/postern/"
	    "fetch.conf,\n"
	    "                   else ~/.config/postern/fetch.conf)\n"
	    "  -q, --quiet      no summary line per account, no progress"
	    " bar\n"
	    "  -j, --json       one JSON object per line and event on"
	    " standard output\n"
	    "  -c, --check      only count the new messages of each account;"
	    "\n"
	    "                   retrieve and delete nothing\n"
	    "  -n, --no-mail-status\n"
	    "                   exit 2 when all went well and no message was"
	    " new\n"
	    "Exit status: 0 done, 1 usage or configuration error, 2 no new"
	    " mail (only\n"
	    "with --no-mail-status), 75 try again later, 77 authentication,"
	    " TLS\n"
	    "verification or delivery refused.\n", fp);
}

/* Every usage error of this command, with its hint and status. */
#define usage_error(...)						\
	cli_usage_error("fetch", "postern fetch -h", FETCH_EXIT_USAGE,		\
	    __VA_ARGS__)

static int
default_conf(char *out, size_t size)
{
	const char *s = getenv("XDG_CONFIG_HOME");

	if (s != NULL && s[0] == '/')
		return str_fmt(out, size, "%s/postern/fetch.conf", s);
	s = getenv("HOME");
	if (s == NULL || s[0] != '/')
		return -1;
	return str_fmt(out, size, "%s/.config/postern/fetch.conf", s);
}

static int
worse(int a, int b)
{
	if (a == FETCH_EXIT_PERM || b == FETCH_EXIT_PERM)
		return FETCH_EXIT_PERM;
	if (a == FETCH_EXIT_TEMP || b == FETCH_EXIT_TEMP)
		return FETCH_EXIT_TEMP;
	return a > b ? a : b;
}

/* What the run did, for --json's summary and --no-mail-status. */
struct totals {
	size_t		 accounts, failed;
	uint64_t	 fetched, octets, deleted, fresh;
};

static int
run_one(const struct account *a, const char *state_dir, bool check,
    struct report *rep, struct totals *tot)
{
	struct fetch_stats st;
	char err[1024];
	int64_t t0 = report_now_ms();
	int status;

	err[0] = '\0';
	report_account(rep, a->name, a->host);
	status = fetch_account(a, state_dir, check, rep, &st, err,
	    sizeof(err));
	tot->accounts++;
	tot->fetched += st.fetched;
	tot->octets += st.octets;
	tot->deleted += st.deleted;
	tot->fresh += st.fresh;
	if (status != FETCH_EXIT_OK) {
		tot->failed++;
		report_error(rep, status, err);
		return status;
	}
	report_done(rep, &st, check, report_now_ms() - t0);
	return fflush(stdout) == 0 ? FETCH_EXIT_OK : FETCH_EXIT_TEMP;
}

int
cmd_fetch(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "file",	required_argument,	NULL, 'f' },
		{ "quiet",	no_argument,		NULL, 'q' },
		{ "check",	no_argument,		NULL, 'c' },
		{ "json",	no_argument,		NULL, 'j' },
		{ "no-mail-status", no_argument,	NULL, 'n' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 },
	};
	char confbuf[4096], state_dir[4096], err[1024];
	const char *conf = NULL;
	struct fetch_conf fc;
	bool quiet = false, check = false, json = false, nomail = false;
	struct totals tot = { 0 };
	struct report rep;
	int64_t t0 = report_now_ms();
	int ch, i, status = FETCH_EXIT_OK;
	size_t k;

	/* A server that closes the connection must fail a write with
	 * EPIPE (OpenSSL writes to the socket with write(2)), and a file
	 * size limit must fail a write with EFBIG; neither may kill us. */
	(void)signal(SIGPIPE, SIG_IGN);
	(void)signal(SIGXFSZ, SIG_IGN);

	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":f:qcjnh", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'f':
			conf = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case 'c':
			check = true;
			break;
		case 'j':
			json = true;
			break;
		case 'n':
			nomail = true;
			break;
		case 'h':
			fetch_usage(stdout);
			return fflush(stdout) == 0 ? FETCH_EXIT_OK :
			    FETCH_EXIT_USAGE;
		case ':':
			return usage_error("option '%s' needs a value",
			    argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'",
			    argv[optind - 1]);
		}
	}
	if (conf == NULL) {
		if (default_conf(confbuf, sizeof(confbuf)) == -1)
			return usage_error("no -f FILE and no $HOME to find"
			    " fetch.conf in");
		conf = confbuf;
	}
	if (fetch_state_dir(state_dir, sizeof(state_dir)) == -1)
		return usage_error("neither $XDG_STATE_HOME nor $HOME is set:"
		    " no place for the journals");
	if (fetch_conf_load(conf, &fc, err, sizeof(err)) == -1) {
		fprintf(stderr, "postern fetch: %s\n", err);
		return FETCH_EXIT_USAGE;
	}
	for (i = optind; i < argc; i++)
		if (fetch_conf_find(&fc, argv[i]) == NULL) {
			fprintf(stderr, "postern fetch: no account '%s' in"
			    " %s\n", argv[i], conf);
			fetch_conf_free(&fc);
			return FETCH_EXIT_USAGE;
		}
	if (optind == argc && fc.count == 0) {
		fprintf(stderr, "postern fetch: %s has no account\n", conf);
		fetch_conf_free(&fc);
		return FETCH_EXIT_USAGE;
	}
	report_init(&rep, json, quiet);
	if (optind < argc)
		for (i = optind; i < argc; i++)
			status = worse(status, run_one(fetch_conf_find(&fc,
			    argv[i]), state_dir, check, &rep, &tot));
	else
		for (k = 0; k < fc.count; k++)
			status = worse(status, run_one(&fc.accounts[k],
			    state_dir, check, &rep, &tot));
	fetch_conf_free(&fc);
	/* Opt-in, so that cron jobs are not confused: nothing new is
	 * told apart from success. */
	if (nomail && status == FETCH_EXIT_OK && (check ? tot.fresh :
	    tot.fetched) == 0)
		status = FETCH_EXIT_NO_MAIL;
	report_summary(&rep, tot.accounts, tot.failed, tot.fetched,
	    tot.octets, tot.deleted, report_now_ms() - t0, status);
	return status;
}
