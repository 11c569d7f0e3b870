/*
 * journal.h: the UIDLs of one account that are safely delivered.
 *
 * A text file: the header line "postern-fetch-journal 2", then one
 * record a line, "UIDL TIME CHECKSUM" (UIDL: 1 to FETCH_MAX_ID octets in
 * 0x21..0x7e, a server's UIDL or an identity of fetch.h), TIME being
 * when the record was appended (Unix seconds, decimal) and CHECKSUM the
 * FNV-1a 32-bit hash of "UIDL TIME" in 8 lower-case hex digits.
 * Version 1 files (header "postern-fetch-journal 1", records "UIDL
 * CHECKSUM", the hash of the UIDL) are read too: their records take the
 * time they are read, and the file is rewritten as version 2 at once.  A
 * record is appended and fsync'd after the message is on disk and before
 * it is deleted on the server.  A line that is cut short (a crash during
 * the append) or whose checksum does not match is dropped with a
 * warning, and the file rewritten without it.  Rewrites (that one, and
 * compaction) write a temporary file, fsync it, rename it over the
 * journal and fsync the directory, so a crash leaves the old or the new
 * journal, never half.
 */
#ifndef POSTERN_CLIENT_JOURNAL_H
#define POSTERN_CLIENT_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/attrs.h"

#define JOURNAL_HEADER	"postern-fetch-journal 2"

struct journal;

/*
 * Opens (creating it if missing) the journal at path and reads it.
 * Records it had to drop are counted in *dropped_r.  0, or -1 with a
 * reason in err (an unknown header is an error: not our file).
 */
int	journal_open(const char *path, struct journal **j_r,
	    unsigned int *dropped_r, char *err, size_t errsize)
	    ATTR_WARN_UNUSED;

bool	journal_has(const struct journal *, const char *uidl);
size_t	journal_count(const struct journal *);

/* Appends uidl and fsyncs.  0 or -1 with err. */
int	journal_append(struct journal *, const char *uidl, char *err,
	    size_t errsize) ATTR_WARN_UNUSED;

/* Appends the n UIDLs with one write and one fsync (a batch of
 * deliveries).  All are valid or none is written.  0 or -1 with err;
 * after a failed write the records may be on disk in part, which the
 * next journal_open sees as a damaged tail. */
int	journal_append_all(struct journal *, const char *const *uidls,
	    size_t n, char *err, size_t errsize) ATTR_WARN_UNUSED;

/* Rewrites the journal with only the records whose UIDL keep[i] says
 * to keep (keep has journal_count entries, in the order of
 * journal_uidl).  0 or -1 with err; the old journal stays on error. */
int	journal_compact(struct journal *, const bool *keep, char *err,
	    size_t errsize) ATTR_WARN_UNUSED;

/* The i-th UIDL, in sorted order. */
const char *journal_uidl(const struct journal *, size_t i);

/* When the i-th UIDL was journaled (Unix seconds). */
int64_t	journal_time(const struct journal *, size_t i);

/* When uidl was journaled, or -1 if it is not in the journal. */
int64_t	journal_time_of(const struct journal *, const char *uidl);

void	journal_close(struct journal **);

/* The record checksum. */
uint32_t journal_hash(const char *s, size_t len);

#endif
