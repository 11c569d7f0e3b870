/*
 * log.h: one line per event, to stderr or syslog.
 *
 * log_warn and fatal append strerror(errno); the x variants do not.
 * panic is for our own bugs and aborts.  Text that came from a peer must
 * go through log_safe() before it is logged.
 */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include "attrs.h"

/* LOG_TO_NULL discards everything but panic (fuzz targets). */
enum log_target { LOG_TO_STDERR, LOG_TO_SYSLOG, LOG_TO_NULL };

void	log_init(const char *ident, enum log_target target);
void	log_set_ident(const char *ident);
void	log_set_debug(bool on);

void	log_debug(const char *, ...) ATTR_PRINTF(1, 2);
void	log_info(const char *, ...) ATTR_PRINTF(1, 2);
void	log_warn(const char *, ...) ATTR_PRINTF(1, 2);
void	log_warnx(const char *, ...) ATTR_PRINTF(1, 2);
ATTR_NORETURN ATTR_COLD void fatal(const char *, ...) ATTR_PRINTF(1, 2);
ATTR_NORETURN ATTR_COLD void fatalx(const char *, ...) ATTR_PRINTF(1, 2);
ATTR_NORETURN ATTR_COLD void panic(const char *, ...) ATTR_PRINTF(1, 2);

/* Copies s into buf, replacing control and non-ASCII bytes by '?' and
 * truncating with "..." to fit.  Returns buf. */
const char *log_safe(char *buf, size_t size, const char *s);

#endif
