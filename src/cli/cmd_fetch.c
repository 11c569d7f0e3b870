/*
 * cmd_fetch.c: `postern fetch [-f FILE] [--quiet] [--json] [--check]
 * [--no-mail-status] [--every DURATION] [NAME...]`:
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
#include <time.h>

#include "cli/cli.h"
#include "client/account.h"
#include "client/client_limits.h"
#include "client/fetch.h"
#include "client/report.h"
#include "lib/strnum.h"
#include "lib/buf.h"

static void
fetch_usage(FILE *fp)
{
	fputs("usage: postern fetch [-f FILE] [--quiet] [--json] [--check]"
	    " [--no-mail-status]\n"
	    "                     [--every DURATION] [NAME...]\n"
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
	    "  -e, --every DURATION\n"
	    "                   fetch again every DURATION (1s to 7d) until"
	    " SIGINT or\n"
	    "                   SIGTERM, never before a server's LOGIN-DELAY"
	    "\n"
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

int
cli_fetch_conf_default(char *out, size_t size)
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
    struct report *rep, struct totals *tot, struct fetch_stats *stp)
{
	struct fetch_stats mine, *sp = stp != NULL ? stp : &mine;
	char err[1024];
	int64_t t0 = report_now_ms();
	int status;

	err[0] = '\0';
	report_account(rep, a->name, a->host);
	status = fetch_account(a, state_dir, check, rep, sp, err,
	    sizeof(err));
	tot->accounts++;
	tot->fetched += sp->fetched;
	tot->octets += sp->octets;
	tot->deleted += sp->deleted;
	tot->fresh += sp->fresh;
	if (status != FETCH_EXIT_OK) {
		tot->failed++;
		report_error(rep, status, err);
		return status;
	}
	report_done(rep, sp, check, report_now_ms() - t0);
	return fflush(stdout) == 0 ? FETCH_EXIT_OK : FETCH_EXIT_TEMP;
}

/* The passwords asked for on the terminal, by account, so that --every
 * asks once; wiped before exit. */
struct asked {
	const struct account	*a;
	char			 pass[FETCH_MAX_PASSWORD + 1];
};
static struct asked *asked;
static size_t nasked;

static int
prompt_password(const struct account *a, char *pass, size_t size)
{
	char prompt[FETCH_MAX_NAME + FETCH_MAX_VALUE + 64];
	struct asked *n;
	size_t i;

	for (i = 0; i < nasked; i++)
		if (asked[i].a == a)
			return str_fmt(pass, size, "%s", asked[i].pass);
	(void)snprintf(prompt, sizeof(prompt), "Password for %s@%s (account"
	    " %s): ", a->user, a->host, a->name);
	if (cli_prompt_secret(prompt, pass, size) == -1)
		return -1;
	if ((n = realloc(asked, (nasked + 1) * sizeof(*n))) != NULL) {
		asked = n;
		asked[nasked].a = a;
		if (str_fmt(asked[nasked].pass, sizeof(asked[nasked].pass),
		    "%s", pass) == 0)
			nasked++;
	}
	return 0;
}

static void
forget_passwords(void)
{
	if (asked != NULL)
		explicit_bzero(asked, nasked * sizeof(*asked));
	free(asked);
	asked = NULL;
	nasked = 0;
}

/* --every: the signal that stops the polling, or 0. */
static volatile sig_atomic_t stop_signal;

static void
on_stop(int sig)
{
	stop_signal = sig;
}

/*
 * --every: fetches the accounts sel[0..n) every every_ms until SIGINT or
 * SIGTERM (the account being fetched is finished first; a second signal
 * acts as usual).  An account is not logged in to again before its
 * server's LOGIN-DELAY has passed; one that fails permanently (77) is
 * not polled again.  FETCH_EXIT_OK once stopped, FETCH_EXIT_PERM if no
 * account is left to poll.
 */
static int
poll_accounts(const struct account **sel, size_t n, const char *state_dir,
    bool check, uint64_t every_ms, struct report *rep, struct totals *tot)
{
	struct sigaction sa;
	struct fetch_stats st;
	struct timespec ts;
	int64_t *not_before, start, left;
	bool *dropped;
	size_t k, ndropped = 0;
	int status = FETCH_EXIT_OK;

	not_before = calloc(n, sizeof(*not_before));
	dropped = calloc(n, sizeof(*dropped));
	if (not_before == NULL || dropped == NULL) {
		free(not_before);
		free(dropped);
		fprintf(stderr, "postern fetch: out of memory\n");
		return FETCH_EXIT_TEMP;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sa.sa_flags = SA_RESETHAND;	/* no SA_RESTART: sleeps end */
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	while (stop_signal == 0) {
		start = report_now_ms();
		for (k = 0; k < n && stop_signal == 0; k++) {
			if (dropped[k] || report_now_ms() < not_before[k])
				continue;
			if (run_one(sel[k], state_dir, check, rep, tot, &st) ==
			    FETCH_EXIT_PERM) {
				dropped[k] = true;
				ndropped++;
				fprintf(stderr, "postern fetch: %s: not polled"
				    " again until restarted\n", sel[k]->name);
			}
			if (st.login_ms > 0 && st.login_delay > 0)
				not_before[k] = st.login_ms +
				    ((int64_t)st.login_delay + 1) * 1000;
		}
		if (ndropped == n) {
			status = FETCH_EXIT_PERM;
			break;
		}
		while (stop_signal == 0 && (left = start + (int64_t)every_ms -
		    report_now_ms()) > 0) {
			ts.tv_sec = left / 1000;
			ts.tv_nsec = (left % 1000) * 1000000;
			(void)nanosleep(&ts, NULL);
		}
	}
	free(not_before);
	free(dropped);
	return status;
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
		{ "every",	required_argument,	NULL, 'e' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 },
	};
	char confbuf[4096], state_dir[4096], err[1024];
	const char *conf = NULL;
	struct fetch_conf fc;
	bool quiet = false, check = false, json = false, nomail = false;
	struct totals tot = { 0 };
	const struct account **sel = NULL;
	uint64_t every_ms = 0;
	size_t nsel = 0;
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
	while ((ch = getopt_long(argc, argv, ":f:qcjne:h", longopts, NULL)) !=
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
		case 'e':
			if (parse_duration_ms(optarg, FETCH_MAX_EVERY_MS,
			    &every_ms) != PARSE_OK || every_ms <
			    FETCH_MIN_EVERY_MS)
				return usage_error("--every wants a duration"
				    " from 1s to 7d (e.g. 30s, 5m, 1h), not"
				    " '%s'", optarg);
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
	if (every_ms > 0 && nomail)
		return usage_error("--every and --no-mail-status exclude each"
		    " other");
	if (conf == NULL) {
		if (cli_fetch_conf_default(confbuf, sizeof(confbuf)) == -1)
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
	account_set_prompt(prompt_password);
	if ((sel = calloc(fc.count, sizeof(*sel))) == NULL) {
		fprintf(stderr, "postern fetch: out of memory\n");
		fetch_conf_free(&fc);
		return FETCH_EXIT_TEMP;
	}
	if (optind < argc)
		for (i = optind; i < argc && nsel < fc.count; i++)
			sel[nsel++] = fetch_conf_find(&fc, argv[i]);
	else
		for (k = 0; k < fc.count; k++)
			sel[nsel++] = &fc.accounts[k];
	if (every_ms > 0)
		status = poll_accounts(sel, nsel, state_dir, check, every_ms,
		    &rep, &tot);
	else
		for (k = 0; k < nsel; k++)
			status = worse(status, run_one(sel[k], state_dir,
			    check, &rep, &tot, NULL));
	free(sel);
	forget_passwords();
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
