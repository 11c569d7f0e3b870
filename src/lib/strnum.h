/*
 * strnum.h: strict number parsing.  No sign, no leading or trailing
 * space, no wrap-around: "4294967297" is out of range, never 1.
 */
#ifndef POSTERN_STRNUM_H
#define POSTERN_STRNUM_H

#include <stddef.h>
#include <stdint.h>
#include "attrs.h"

enum parse_rc { PARSE_OK = 0, PARSE_SYNTAX = -1, PARSE_RANGE = -2 };

/* Decimal digits only, the whole string, value <= max. */
enum parse_rc parse_u64(const char *s, uint64_t max, uint64_t *v_r) ATTR_WARN_UNUSED;
enum parse_rc parse_u32(const char *s, uint32_t max, uint32_t *v_r) ATTR_WARN_UNUSED;

/* A POP3 message number: 1..count, returned 0-based. */
enum parse_rc parse_msgnum(const char *s, uint32_t count, uint32_t *idx_r) ATTR_WARN_UNUSED;

/* A duration: digits with an optional unit ms, s, m, h or d (default
 * seconds), returned in milliseconds, at most max_ms. */
enum parse_rc parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *ms_r) ATTR_WARN_UNUSED;

/* A size: digits with an optional unit k, M or G (powers of 1024). */
enum parse_rc parse_size(const char *s, uint64_t max, uint64_t *v_r) ATTR_WARN_UNUSED;

/* Writes v in decimal, without a NUL, to out (room for 20 octets);
 * returns the number of digits. */
size_t	fmt_u64(char *out, uint64_t v);

#endif
