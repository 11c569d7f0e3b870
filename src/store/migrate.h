/*
 * migrate.h: the sources of postern migrate-uidl, read into lists of
 * (base name, UIDL) records for mailbox_import_uidls (store.h):
 *
 *	Dovecot		dovecot-uidlist, version 3, with pop3_uidl_format
 *	Courier		courierpop3dsizelist, versions 2 and 3
 *	X-UIDL		the first X-UIDL header of each message (qpopper)
 *
 * The parsers take the files' bytes as hostile input and need no file
 * system, so unit tests and fuzz targets call them directly.  A file
 * they do not understand (another version, a malformed line) is
 * refused whole with a one-line reason: a guessed UIDL would show
 * clients the wrong message as already downloaded.  A record whose UIDL
 * is not valid is kept, so that the report names it.
 */
#ifndef POSTERN_STORE_MIGRATE_H
#define POSTERN_STORE_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/attrs.h"
#include "store/store.h"

/* Dovecot's default pop3_uidl_format. */
#define MIGRATE_DOVECOT_FORMAT	"%08Xu%08Xv"

/* Records with their strings, owned by the list. */
struct migrate_list {
	struct uidl_import *v;
	size_t		 n;
	size_t		 cap;
};

void	migrate_list_init(struct migrate_list *);
void	migrate_list_free(struct migrate_list *);
/* Appends copies of base[0..blen) and uidl[0..ulen) (a UIDL over twice
 * UIDL_MAX_LEN octets is kept cut: it is invalid either way).  0, or -1
 * (ENOMEM, EMSGSIZE past MAX_MESSAGES_PER_MAILBOX records). */
int	migrate_list_add(struct migrate_list *, const char *base, size_t blen,
	    const char *uidl, size_t ulen) ATTR_WARN_UNUSED;

/*
 * Checks a pop3_uidl_format: text and the variables %u (IMAP UID), %v
 * (UIDVALIDITY), %g (GUID), %f (file name), in long form %{uid},
 * %{uidvalidity}, %{guid}, %{filename}, and %%; each may carry a width
 * (with a leading 0: padded with zeros; without: cut to that width) and
 * the modifiers X (decimal to lower-case hex, as Dovecot's), U, L.  %m
 * (an MD5 of the header, which Dovecot computes only for mbox) and
 * everything else is refused.  0, or -1 with a reason in err.
 */
int	migrate_format_check(const char *fmt, char *err, size_t errsize)
	    ATTR_WARN_UNUSED;

/*
 * Expands fmt (checked) for one message into out (outsize octets, NUL
 * included; always NUL-terminated).  0, or -1 if it had to be cut (the
 * UIDL is then too long anyway) or fmt is not valid.
 */
int	migrate_format_expand(const char *fmt, uint32_t uid,
	    uint32_t uidvalidity, const char *guid, const char *filename,
	    char *out, size_t outsize);

/*
 * dovecot-uidlist: the header "3 V<uidvalidity> N<next uid> ..." and
 * record lines "<uid> [<key><value>...] :<file name>".  A record's UIDL
 * is its P field (an empty P: the base name), else fmt expanded with
 * its uid, the header's V, its G field (else the base name) and the
 * base name (the file name up to the first ':').  Appends to out; 0, or
 * -1 with a reason in err (out may then hold some records).
 */
int	migrate_parse_dovecot(const char *data, size_t len, const char *fmt,
	    struct migrate_list *out, char *err, size_t errsize)
	    ATTR_WARN_UNUSED;

/*
 * courierpop3dsizelist: the header "/<version> <next uid> [<uidv>]" with
 * version 2 or 3, and lines "<file name> <size> <uid>:<uidv>[:<utf8>]"
 * (the name may hold spaces: the last two fields are split off).  The
 * UIDL is Courier's: "UID<uid>-<uidv>", "UID<uid>" when uidv is 0, and
 * for uid 0 the base name with every octet outside 0x21..0x7e and ', "
 * and + written as +XX (upper-case hex).  Appends to out; 0 or -1.
 */
int	migrate_parse_courier(const char *data, size_t len,
	    struct migrate_list *out, char *err, size_t errsize)
	    ATTR_WARN_UNUSED;

/*
 * The value of the first X-UIDL header field in the header section of
 * a message (data: its first octets, at most MIGRATE_MAX_HEADER),
 * unfolded, without surrounding white space, as a malloc'd string in
 * *uidl_r.  1: found; 0: none; -1: ENOMEM.
 */
int	migrate_xuidl(const char *data, size_t len, char **uidl_r)
	    ATTR_WARN_UNUSED;

/*
 * The X-UIDL of every message file in cur/ and new/ of the Maildir at
 * path, appended to out; *without_r counts the files without one.  0,
 * or -1 with a reason in err.
 */
int	migrate_scan_xuidl(const char *path, struct migrate_list *out,
	    size_t *without_r, char *err, size_t errsize) ATTR_WARN_UNUSED;

#endif
