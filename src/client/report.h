/*
 * report.h: what `postern fetch` tells its user: a line per account
 * (text), one JSON object per line and event (--json), and a progress
 * bar on a terminal.
 *
 * JSON events, each one object on one line of standard output, with
 * "event" first (the schema is in postern(1)):
 *
 *	{"event":"account","account":A,"host":H}
 *	{"event":"message","account":A,"id":UIDL,"octets":N}
 *	{"event":"skipped","account":A,"id":UIDL,"octets":N,"reason":R}
 *	{"event":"refused","account":A,"id":UIDL,"reason":R}
 *	{"event":"done","account":A,"fetched":N,"octets":N,"deleted":N,
 *	    "listed":N,"new":N,"login":M,"seconds":S}
 *	{"event":"check","account":A,"new":N,"listed":N,"seconds":S}
 *	{"event":"error","account":A,"status":75|77,"reason":R}
 *	{"event":"summary","accounts":N,"failed":N,"fetched":N,
 *	    "octets":N,"deleted":N,"seconds":S,"status":N}
 *
 * The progress bar goes to standard error, only when it is a terminal
 * and neither --quiet nor --json is given: messages done of those to
 * retrieve, octets, and the rate, redrawn at most ten times a second
 * and erased when the account is done.
 */
#ifndef POSTERN_CLIENT_REPORT_H
#define POSTERN_CLIENT_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct fetch_stats;

struct report {
	bool		 json;
	bool		 quiet;
	bool		 bar;		/* draw the progress bar */
	const char	*account;	/* the account being fetched */
	/* The progress of the account being fetched. */
	uint32_t	 done, total;
	uint64_t	 octets;
	int64_t		 start_ms, drawn_ms;
	bool		 shown;		/* a bar is on the screen */
};

/* Sets r up; the bar only if stderr is a terminal and neither quiet
 * nor json. */
void	report_init(struct report *r, bool json, bool quiet);

int64_t	report_now_ms(void);

void	report_account(struct report *, const char *account,
	    const char *host);

/* The messages this run is about to retrieve (for the bar). */
void	report_expect(struct report *, uint32_t messages);

/* Octets of the message being retrieved, as they arrive (the bar). */
void	report_progress(struct report *, uint64_t octets);

void	report_message(struct report *, const char *id, uint64_t octets);
void	report_skipped(struct report *, const char *id, uint64_t octets,
	    const char *reason);
void	report_refused(struct report *, const char *id, const char *reason);

/* The end of an account: done/check, or error (status 75 or 77). */
void	report_done(struct report *, const struct fetch_stats *,
	    bool check, int64_t ms);
void	report_error(struct report *, int status, const char *reason);

/* The summary of the run (JSON only). */
void	report_summary(struct report *, size_t accounts, size_t failed,
	    uint64_t fetched, uint64_t octets, uint64_t deleted, int64_t ms,
	    int status);

/* Writes s as a JSON string (quoted, escaped) to fp. */
void	report_json_string(FILE *fp, const char *s);

#endif
