/*
 * index.h: the per-mailbox index (postern.index) in memory, its parser
 * and serializer, UIDL derivation, and a small string-keyed hash map.
 * Internal to src/store; protocol code uses store.h.
 *
 * The parser takes the file's bytes as hostile input and needs no file
 * system, so unit tests and fuzz targets call it directly.  The format is
 * documented in index.c.
 */
#ifndef POSTERN_STORE_INDEX_H
#define POSTERN_STORE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/attrs.h"
#include "lib/limits.h"

struct buf;

#define INDEX_VERSION		1
/* Its name in the mailbox directory. */
#define INDEX_FILE		"postern.index"
/* Largest stored message the index accepts (1 PiB); a bigger number in
 * the file is corruption, not mail. */
#define INDEX_MAX_MSG_OCTETS	(1ull << 50)
/* Longest file name in cur/ (NAME_MAX on Linux). */
#define INDEX_NAME_MAX		255
/* Largest time value accepted (9999-12-31T23:59:59Z). */
#define INDEX_MAX_TIME		253402300799ll

struct index_entry {
	uint64_t	 seq;		/* arrival order, increasing */
	uint64_t	 size;		/* wire size */
	uint64_t	 stored_size;	/* octets in the file */
	int64_t		 retr_time;	/* first RETR, or 0 */
	unsigned int	 flags;		/* MSG_* of store.h */
	char		*uidl;		/* owned; NUL-terminated */
	char		*name;		/* owned; file name in cur/ */
};

struct index_time {
	int64_t		 sec;
	long		 nsec;		/* 0..999999999 */
};

struct index {
	struct index_entry *v;		/* owned, sorted by seq */
	size_t		 n;
	size_t		 cap;
	uint64_t	 next_seq;	/* greater than every seq in v */
	/* cur/'s mtime when its listing was last taken, and the clock
	 * just before that (see the readdir shortcut in maildir.c). */
	struct index_time cur_mtime;
	struct index_time scanned;
	/* The strings of the entries that index_parse or index_copy made,
	 * in one block; a uidl or name outside it is an allocation of its
	 * own. */
	char		*strings;
	size_t		 strings_len;
};

void	index_init(struct index *);
/* Frees the entries and their strings; the index is empty afterwards. */
void	index_free(struct index *);

/*
 * Appends an entry, taking ownership of uidl (may be NULL until
 * index_assign_uidls) and name, both malloc'd.  On failure frees neither
 * and returns -1 (ENOMEM, or EMSGSIZE past MAX_MESSAGES_PER_MAILBOX).
 */
int	index_append(struct index *, uint64_t seq, uint64_t size,
	    uint64_t stored_size, int64_t retr_time, unsigned int flags,
	    char *uidl, char *name) ATTR_WARN_UNUSED;

/* Removes the entries with drop[i] set (frees them), keeping the order. */
void	index_compact(struct index *, const bool *drop);

/* Give entry i the name name or the UIDL uidl (malloc'd, taken over),
 * freeing the old one. */
void	index_set_name(struct index *, size_t i, char *name);
void	index_set_uidl(struct index *, size_t i, char *uidl);

/* dst (initialised here) becomes a copy of src, its strings in one
 * block.  0, or -1 (ENOMEM; dst is empty). */
int	index_copy(struct index *dst, const struct index *src)
	    ATTR_WARN_UNUSED;

/* The octets idx holds: its entry array and strings. */
size_t	index_bytes(const struct index *);

/*
 * Parses the bytes of an index file into idx (which it initialises).
 * Every field is checked; any fault returns -1 with a one-line reason in
 * err and leaves idx empty.  0 on success.
 */
int	index_parse(const char *data, size_t len, struct index *idx,
	    char *err, size_t errsize) ATTR_WARN_UNUSED;

/*
 * Appends the file form of idx to out (whose max bounds it).  Every
 * entry must have a valid UIDL and name; index_parse accepts the result.
 * 0, or -1 with errno (EINVAL for an invalid entry, ENOMEM, EMSGSIZE).
 */
int	index_serialize(const struct index *, struct buf *out)
	    ATTR_WARN_UNUSED;

/* FNV-1a 64 of data, continuing from h (start with INDEX_FNV64_OFFSET):
 * the checksum of index files, not a cryptographic hash. */
#define INDEX_FNV64_OFFSET	0xcbf29ce484222325ull
uint64_t index_fnv1a64(uint64_t h, const void *data, size_t len);

/* The length of the base name: name up to ":2," (all of it if none). */
size_t	index_base_len(const char *name);

/* True for 1..UIDL_MAX_LEN octets, each in 0x21..0x7e. */
bool	index_uidl_valid(const char *s, size_t len);

/* True for a name we keep in cur/: 1..INDEX_NAME_MAX octets, no '/',
 * no NUL, not starting with '.'. */
bool	index_name_valid(const char *s, size_t len);

/*
 * The sizes a delivery agent wrote into a Maildir base name as the
 * fields ",S=<stored octets>" and ",W=<wire octets>" (the convention
 * Dovecot shares; mailbox_deliver writes them).  True only if both are
 * there exactly once, each decimal digits without a leading zero (or
 * "0") and at most INDEX_MAX_MSG_OCTETS; other ",X=" fields are
 * ignored.  The caller still checks them against the file (maildir.c):
 * a name is a hint, not a proof.
 */
bool	index_name_sizes(const char *base, size_t len, uint64_t *stored_r,
	    uint64_t *wire_r);

/*
 * The UIDL of a base name (SPEC, "Maildir store"): the base name itself
 * if index_uidl_valid, else 32 lowercase hex digits of SHA-256(base)
 * truncated to 16 bytes.  With attempt > 0 (a collision), 32 hex digits
 * of SHA-256(base, NUL, decimal attempt) instead, so the result stays a
 * function of the name.  out must hold UIDL_MAX_LEN + 1 octets.  0, or -1
 * if the hash failed.
 */
int	index_uidl_for(const char *base, size_t len, unsigned int attempt,
	    char *out) ATTR_WARN_UNUSED;

/*
 * Gives every entry whose uidl is NULL a UIDL from its base name that no
 * other entry holds, in index order (index_uidl_for with attempt 0, 1,
 * ...).  Existing UIDLs never change.  0, or -1 (ENOMEM, or EIO if the
 * hash failed).
 */
int	index_assign_uidls(struct index *) ATTR_WARN_UNUSED;

/*
 * Parsed index files of big Maildirs, kept by the process for later
 * sessions (index_cache.c).  A file is known by its path and by what
 * changes with every new version of it.
 */
struct index_file_id {
	uint64_t	 dev;
	uint64_t	 ino;
	uint64_t	 size;
	int64_t		 mtime_sec;
	long		 mtime_nsec;
	int64_t		 ctime_sec;
	long		 ctime_nsec;
};

/* Octets the cache may hold; 0 (the start) turns it off and empties it. */
void	index_cache_budget(size_t bytes);
/* A copy of the index parsed from the Maildir's index file when it was
 * id, into out (initialised here): true, else false and out untouched. */
bool	index_cache_get(const char *maildir, const struct index_file_id *id,
	    struct index *out);
/* Keeps a copy of idx as the index file of maildir, which is id now
 * (what the cache had for maildir goes); only a big enough index is
 * kept, and nothing when out of budget or memory. */
void	index_cache_put(const char *maildir, const struct index_file_id *id,
	    const struct index *idx);

/*
 * A multimap from strings to uint32_t values, open addressing.  Keys are
 * not copied: they must outlive the map.
 */
struct index_map_slot;
struct index_map {
	struct index_map_slot	*slots;
	size_t			 mask;	/* slot count - 1 */
	size_t			 n;
};

int	index_map_init(struct index_map *, size_t expected) ATTR_WARN_UNUSED;
int	index_map_add(struct index_map *, const char *key, size_t len,
	    uint32_t val) ATTR_WARN_UNUSED;
/* Adds key unless it is there already: 1 added, 0 there (nothing
 * added), -1 out of memory. */
int	index_map_add_unique(struct index_map *, const char *key, size_t len,
	    uint32_t val) ATTR_WARN_UNUSED;
/* Values stored under key: start with *it = 0; false when no more. */
bool	index_map_find(const struct index_map *, const char *key,
	    size_t len, size_t *it, uint32_t *val_r);
void	index_map_free(struct index_map *);

/*
 * The UIDL map (postern.uidls in the Maildir root): base names whose
 * UIDL is not index_uidl_for's (UIDLs imported by postern migrate-uidl),
 * kept apart from the index so that a lost or damaged index is rebuilt
 * with the same UIDLs.  A base name maps to one UIDL and a UIDL to one
 * base name; a recorded pair never changes.
 *
 * File format, version 1, in the index's conventions (text, single
 * spaces, 0x20..0x7e and LF only, the name escaped as in the index, the
 * same trailer and checksum):
 *
 *	postern-uidls 1
 *	<uidl> <base name>
 *	...
 *	end <count> <checksum>
 */
#define UIDL_MAP_MAGIC		"postern-uidls"
#define UIDL_MAP_VERSION	1

struct uidl_map_rec {
	char		*base;		/* owned */
	char		*uidl;		/* owned */
};

struct uidl_map {
	struct uidl_map_rec *v;		/* in the order put */
	size_t		 n;
	size_t		 cap;
	struct index_map bybase;	/* keys are the records' strings */
	struct index_map byuidl;
};

void	uidl_map_init(struct uidl_map *);
void	uidl_map_free(struct uidl_map *);
/* The UIDL recorded for base[0..blen), or NULL. */
const char *uidl_map_get(const struct uidl_map *, const char *base,
	    size_t blen);
bool	uidl_map_has_uidl(const struct uidl_map *, const char *uidl);
/*
 * Records base[0..blen) -> uidl (copied).  0 also when exactly this pair
 * is there; -1 with errno EINVAL (base not a valid base name, uidl not a
 * valid UIDL), EEXIST (base or uidl already recorded with another),
 * EMSGSIZE (MAX_MESSAGES_PER_MAILBOX records), ENOMEM (the map is then
 * emptied).
 */
int	uidl_map_put(struct uidl_map *, const char *base, size_t blen,
	    const char *uidl) ATTR_WARN_UNUSED;
/* Parses a map file into m (which it initialises); any fault is -1 with
 * a one-line reason in err and m empty. */
int	uidl_map_parse(const char *data, size_t len, struct uidl_map *m,
	    char *err, size_t errsize) ATTR_WARN_UNUSED;
/* Appends the file form of m to out; 0, or -1 (ENOMEM, EMSGSIZE). */
int	uidl_map_serialize(const struct uidl_map *, struct buf *out)
	    ATTR_WARN_UNUSED;

/*
 * What can still be read of an index file index_parse rejected: the
 * base name and UIDL of every message line that is well formed on its
 * own, put into out (the first of two lines with one base name or one
 * UIDL wins).  The store gives those UIDLs again to the messages that
 * postern.uidls does not name, so that a damaged index loses as few
 * UIDLs as it can.  0, or -1 (ENOMEM).
 */
int	index_salvage(const char *data, size_t len, struct uidl_map *out)
	    ATTR_WARN_UNUSED;

/* What index_assign_uidls_map did. */
struct uidl_assign_stats {
	size_t		 from_map;	/* UIDLs taken from the map */
	size_t		 map_differ;	/* of those, unlike index_uidl_for's */
	size_t		 map_taken;	/* map UIDL held by another entry */
	size_t		 derived;	/* UIDLs from index_uidl_for */
};

/*
 * index_assign_uidls, but an entry whose base name map records gets that
 * UIDL when no other entry holds it (all of those first, in index
 * order), and the others index_uidl_for's.  map may be NULL; st may be
 * NULL.  0 or -1 as index_assign_uidls.
 */
int	index_assign_uidls_map(struct index *, const struct uidl_map *map,
	    struct uidl_assign_stats *st) ATTR_WARN_UNUSED;

#endif
