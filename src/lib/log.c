/*
 * log.c: logging to stderr or syslog.  Trusts nothing it prints: callers
 * pass peer text through log_safe().
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static char log_ident[32] = "postern";
static enum log_target log_target = LOG_TO_STDERR;
static bool log_debug_on;

void
log_init(const char *ident, enum log_target target)
{
	log_set_ident(ident);
	log_target = target;
	if (target == LOG_TO_SYSLOG)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_ident(const char *ident)
{
	snprintf(log_ident, sizeof(log_ident), "%s", ident);
}

void
log_set_debug(bool on)
{
	log_debug_on = on;
}

static void log_vline(int, const char *, const char *, va_list)
    __attribute__((format(printf, 3, 0)));

static void
log_vline(int prio, const char *errstr, const char *fmt, va_list ap)
{
	char msg[2048];
	int n;

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0 || (log_target == LOG_TO_NULL && prio != LOG_CRIT))
		return;
	if (errstr != NULL && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", errstr);
	if (log_target == LOG_TO_SYSLOG) {
		syslog(prio, "%s", msg);
		return;
	}
	{
		struct timespec ts;
		struct tm tm;
		char when[32];
		const char *lvl = prio == LOG_DEBUG ? "debug" :
		    prio == LOG_INFO ? "info" :
		    prio == LOG_WARNING ? "warning" : "error";

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %s[%ld] %s: %s\n", when,
		    ts.tv_nsec / 1000000, log_ident, (long)getpid(), lvl, msg);
	}
}

#define LOG_FN(name, prio, with_errno)				\
void								\
name(const char *fmt, ...)					\
{								\
	int saved = errno;					\
	va_list ap;						\
								\
	va_start(ap, fmt);					\
	log_vline(prio, with_errno ? strerror(saved) : NULL, fmt, ap); \
	va_end(ap);						\
	errno = saved;						\
}

LOG_FN(log_info, LOG_INFO, 0)
LOG_FN(log_warn, LOG_WARNING, 1)
LOG_FN(log_warnx, LOG_WARNING, 0)

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_debug_on)
		return;
	va_start(ap, fmt);
	log_vline(LOG_DEBUG, NULL, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_ERR, strerror(saved), fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_ERR, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

void
panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_CRIT, NULL, fmt, ap);
	va_end(ap);
	abort();
}

const char *
log_safe(char *buf, size_t size, const char *s)
{
	size_t i, o = 0;

	if (size == 0)
		return buf;
	if (s == NULL)
		s = "(null)";
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (o + 1 >= size) {
			if (size > 4)
				memcpy(buf + size - 4, "...", 3), o = size - 1;
			break;
		}
		buf[o++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	buf[o] = '\0';
	return buf;
}
