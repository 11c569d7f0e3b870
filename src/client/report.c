/*
 * report.c: the output of `postern fetch` (report.h): text lines, JSON
 * events and the progress bar.
 *
 * Owns: nothing but the bar's state.  Trusts: nothing in the strings it
 * prints (server text, paths): JSON strings are escaped.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/fetch.h"
#include "client/report.h"

/* The bar is redrawn at most this often. */
#define BAR_INTERVAL_MS	100

int64_t
report_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
report_init(struct report *r, bool json, bool quiet)
{
	memset(r, 0, sizeof(*r));
	r->json = json;
	r->quiet = quiet;
	r->bar = !json && !quiet && isatty(STDERR_FILENO);
}

void
report_json_string(FILE *fp, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");

	putc('"', fp);
	for (; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(fp, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(fp, "\\u%04x", *p);
		else
			putc(*p, fp);
	}
	putc('"', fp);
}

static void
json_begin(struct report *r, const char *event)
{
	printf("{\"event\":\"%s\",\"account\":", event);
	report_json_string(stdout, r->account);
}

static void
json_end(void)
{
	fputs("}\n", stdout);
	(void)fflush(stdout);
}

static void
bar_draw(struct report *r, bool force)
{
	int64_t now, ms;
	double rate;

	if (!r->bar)
		return;
	now = report_now_ms();
	if (!force && now - r->drawn_ms < BAR_INTERVAL_MS)
		return;
	r->drawn_ms = now;
	ms = now - r->start_ms;
	rate = ms > 0 ? (double)r->octets / 1e6 / ((double)ms / 1000) : 0;
	fprintf(stderr, "\r%s: %u/%u messages, %.1f MB, %.1f MB/s\033[K",
	    r->account, r->done, r->total, (double)r->octets / 1e6, rate);
	(void)fflush(stderr);
	r->shown = true;
}

static void
bar_clear(struct report *r)
{
	if (!r->shown)
		return;
	fputs("\r\033[K", stderr);
	(void)fflush(stderr);
	r->shown = false;
}

void
report_account(struct report *r, const char *account, const char *host)
{
	r->account = account;
	r->done = r->total = 0;
	r->octets = 0;
	r->start_ms = report_now_ms();
	r->drawn_ms = 0;
	if (!r->json)
		return;
	json_begin(r, "account");
	fputs(",\"host\":", stdout);
	report_json_string(stdout, host);
	json_end();
}

void
report_expect(struct report *r, uint32_t messages)
{
	r->total = messages;
	r->start_ms = report_now_ms();
	if (messages > 0)
		bar_draw(r, true);
}

void
report_progress(struct report *r, uint64_t octets)
{
	r->octets += octets;
	bar_draw(r, false);
}

void
report_message(struct report *r, const char *id, uint64_t octets)
{
	r->done++;
	bar_draw(r, r->done == r->total);
	if (!r->json)
		return;
	json_begin(r, "message");
	fputs(",\"id\":", stdout);
	report_json_string(stdout, id);
	printf(",\"octets\":%llu", (unsigned long long)octets);
	json_end();
}

void
report_skipped(struct report *r, const char *id, uint64_t octets,
    const char *reason)
{
	if (!r->json)
		return;
	json_begin(r, "skipped");
	fputs(",\"id\":", stdout);
	report_json_string(stdout, id);
	printf(",\"octets\":%llu,\"reason\":", (unsigned long long)octets);
	report_json_string(stdout, reason);
	json_end();
}

void
report_refused(struct report *r, const char *id, const char *reason)
{
	if (!r->json)
		return;
	json_begin(r, "refused");
	fputs(",\"id\":", stdout);
	report_json_string(stdout, id);
	fputs(",\"reason\":", stdout);
	report_json_string(stdout, reason);
	json_end();
}

void
report_done(struct report *r, const struct fetch_stats *st, bool check,
    int64_t ms)
{
	bar_clear(r);
	if (r->json && check) {
		json_begin(r, "check");
		printf(",\"new\":%u,\"listed\":%u,\"seconds\":%.3f", st->fresh,
		    st->listed, (double)ms / 1000);
		json_end();
	} else if (r->json) {
		json_begin(r, "done");
		printf(",\"fetched\":%u,\"octets\":%llu,\"deleted\":%u,"
		    "\"listed\":%u,\"new\":%u,\"login\":", st->fetched,
		    (unsigned long long)st->octets, st->deleted, st->listed,
		    st->fresh);
		report_json_string(stdout, st->method != NULL ? st->method :
		    "-");
		printf(",\"seconds\":%.3f", (double)ms / 1000);
		json_end();
	} else if (r->quiet)
		return;
	else if (check)
		printf("%s: %u new message%s, %u on the server\n", r->account,
		    st->fresh, st->fresh == 1 ? "" : "s", st->listed);
	else
		printf("%s: %u message%s fetched (%llu octets), %u deleted,"
		    " %u on the server, login %s\n", r->account, st->fetched,
		    st->fetched == 1 ? "" : "s",
		    (unsigned long long)st->octets, st->deleted,
		    st->listed - st->deleted, st->method != NULL ? st->method :
		    "-");
}

void
report_error(struct report *r, int status, const char *reason)
{
	bar_clear(r);
	/* Errors always go to stderr, as one line; JSON adds an event. */
	fprintf(stderr, "postern fetch: %s: %s\n", r->account, reason);
	if (!r->json)
		return;
	json_begin(r, "error");
	printf(",\"status\":%d,\"reason\":", status);
	report_json_string(stdout, reason);
	json_end();
}

void
report_summary(struct report *r, size_t accounts, size_t failed,
    uint64_t fetched, uint64_t octets, uint64_t deleted, int64_t ms,
    int status)
{
	if (!r->json)
		return;
	printf("{\"event\":\"summary\",\"accounts\":%zu,\"failed\":%zu,"
	    "\"fetched\":%llu,\"octets\":%llu,\"deleted\":%llu,"
	    "\"seconds\":%.3f,\"status\":%d}\n", accounts, failed,
	    (unsigned long long)fetched, (unsigned long long)octets,
	    (unsigned long long)deleted, (double)ms / 1000, status);
	(void)fflush(stdout);
}
