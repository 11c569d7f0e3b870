/*
 * strnum.c: strict decimal parsing for everything that comes from a peer
 * or a file.
 */
#include <string.h>

#include "strnum.h"

static enum parse_rc
parse_digits(const char **pp, uint64_t max, uint64_t *v_r)
{
	const char *p = *pp;
	uint64_t v = 0;

	if (*p < '0' || *p > '9')
		return PARSE_SYNTAX;
	for (; *p >= '0' && *p <= '9'; p++) {
		uint64_t d = (uint64_t)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return PARSE_RANGE;
		v = v * 10 + d;
		if (v > max)
			return PARSE_RANGE;
	}
	*pp = p;
	*v_r = v;
	return PARSE_OK;
}

enum parse_rc
parse_u64(const char *s, uint64_t max, uint64_t *v_r)
{
	uint64_t v;
	enum parse_rc rc;

	if ((rc = parse_digits(&s, max, &v)) != PARSE_OK)
		return rc;
	if (*s != '\0')
		return PARSE_SYNTAX;
	*v_r = v;
	return PARSE_OK;
}

enum parse_rc
parse_u32(const char *s, uint32_t max, uint32_t *v_r)
{
	uint64_t v;
	enum parse_rc rc;

	if ((rc = parse_u64(s, max, &v)) != PARSE_OK)
		return rc;
	*v_r = (uint32_t)v;
	return PARSE_OK;
}

enum parse_rc
parse_msgnum(const char *s, uint32_t count, uint32_t *idx_r)
{
	uint64_t v;
	enum parse_rc rc;

	if ((rc = parse_digits(&s, UINT32_MAX, &v)) != PARSE_OK)
		return rc;
	if (*s != '\0')
		return PARSE_SYNTAX;
	if (v == 0 || v > count)
		return PARSE_RANGE;
	*idx_r = (uint32_t)(v - 1);
	return PARSE_OK;
}

static enum parse_rc
parse_with_unit(const char *s, uint64_t max, uint64_t *v_r,
    const char *const *units, const uint64_t *mult, size_t nunits,
    uint64_t default_mult)
{
	uint64_t v, m = default_mult;
	enum parse_rc rc;
	size_t i;

	if ((rc = parse_digits(&s, UINT64_MAX, &v)) != PARSE_OK)
		return rc;
	if (*s != '\0') {
		for (i = 0; i < nunits; i++)
			if (strcmp(s, units[i]) == 0)
				break;
		if (i == nunits)
			return PARSE_SYNTAX;
		m = mult[i];
	}
	if (m != 0 && v > UINT64_MAX / m)
		return PARSE_RANGE;
	v *= m;
	if (v > max)
		return PARSE_RANGE;
	*v_r = v;
	return PARSE_OK;
}

enum parse_rc
parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *ms_r)
{
	static const char *const units[] = { "ms", "s", "m", "h", "d" };
	static const uint64_t mult[] = { 1, 1000, 60000, 3600000, 86400000 };

	return parse_with_unit(s, max_ms, ms_r, units, mult, 5, 1000);
}

enum parse_rc
parse_size(const char *s, uint64_t max, uint64_t *v_r)
{
	static const char *const units[] = { "k", "K", "M", "G" };
	static const uint64_t mult[] = { 1024, 1024, 1024 * 1024,
	    1024 * 1024 * 1024 };

	return parse_with_unit(s, max, v_r, units, mult, 4, 1);
}

size_t
fmt_u64(char *out, uint64_t v)
{
	char tmp[20];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}
