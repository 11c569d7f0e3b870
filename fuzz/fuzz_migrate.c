/*
 * fuzz_migrate.c: the sources of postern migrate-uidl on arbitrary
 * bytes: dovecot-uidlist (with the default pop3_uidl_format and with a
 * format taken from the input), courierpop3dsizelist, a message header
 * for X-UIDL, and the UIDL map postern.uidls, which must serialize and
 * parse back to the same records (what it refuses goes to
 * index_salvage, the reader of damaged index files, whose pairs must
 * hold valid UIDLs).  The first octet picks the parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/limits.h"
#include "store/index.h"
#include "store/migrate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every record the parsers keep has a base name and a UIDL string. */
static void
check_list(const struct migrate_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->v[i].base == NULL || l->v[i].uidl == NULL ||
		    strlen(l->v[i].base) > 255 ||
		    strlen(l->v[i].uidl) > 2 * UIDL_MAX_LEN + 2)
			abort();
}

static void
map_roundtrip(const char *p, size_t n)
{
	struct uidl_map a, b;
	struct buf out;
	char err[256];
	size_t i;

	if (uidl_map_parse(p, n, &a, err, sizeof(err)) == -1) {
		/* What the store reads of a damaged index: any pairs. */
		uidl_map_init(&a);
		if (index_salvage(p, n, &a) == -1)
			abort();
		for (i = 0; i < a.n; i++)
			if (!index_uidl_valid(a.v[i].uidl,
			    strlen(a.v[i].uidl)))
				abort();
		uidl_map_free(&a);
		return;
	}
	buf_init(&out, 64u * 1024 * 1024);
	if (uidl_map_serialize(&a, &out) == -1 ||
	    uidl_map_parse(out.data, out.len, &b, err, sizeof(err)) == -1 ||
	    a.n != b.n)
		abort();
	for (i = 0; i < a.n; i++)
		if (strcmp(a.v[i].base, b.v[i].base) != 0 ||
		    strcmp(a.v[i].uidl, b.v[i].uidl) != 0)
			abort();
	uidl_map_free(&a);
	uidl_map_free(&b);
	buf_clear(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct migrate_list l;
	const char *p = (const char *)data + 1, *nl;
	char err[256], fmt[64], *u = NULL;
	size_t n, fl;

	if (size < 1)
		return 0;
	n = size - 1;
	migrate_list_init(&l);
	switch (data[0] % 5) {
	case 0:
		(void)migrate_parse_dovecot(p, n, MIGRATE_DOVECOT_FORMAT, &l,
		    err, sizeof(err));
		break;
	case 1:
		/* The first line is the format, the rest the file. */
		if ((nl = memchr(p, '\n', n)) == NULL ||
		    (fl = (size_t)(nl - p)) >= sizeof(fmt))
			break;
		memcpy(fmt, p, fl);
		fmt[fl] = '\0';
		if (memchr(fmt, '\0', fl) != NULL ||
		    migrate_format_check(fmt, err, sizeof(err)) == -1)
			break;
		(void)migrate_parse_dovecot(nl + 1, n - fl - 1, fmt, &l, err,
		    sizeof(err));
		break;
	case 2:
		(void)migrate_parse_courier(p, n, &l, err, sizeof(err));
		break;
	case 3:
		if (migrate_xuidl(p, n, &u) == 1 && u == NULL)
			abort();
		free(u);
		break;
	default:
		map_roundtrip(p, n);
		break;
	}
	check_list(&l);
	migrate_list_free(&l);
	return 0;
}
