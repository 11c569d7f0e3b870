/*
 * mailhdr.h: the header block of an RFC 5322 message as XTND XMIT needs
 * it: the envelope (From, Sender, the recipients of To, Cc and Bcc), the
 * Message-ID for the log, and the header again without its Bcc fields.
 *
 * The input is hostile: every field is bounded, and anything the parser
 * cannot read with certainty is an error, never a guess.
 */
#ifndef POSTERN_MAILHDR_H
#define POSTERN_MAILHDR_H

#include <stdbool.h>
#include <stddef.h>

#include "attrs.h"
#include "buf.h"
#include "limits.h"

struct mailhdr {
	unsigned int	 max_rcpt;	/* set by mailhdr_init */
	/* Addresses, each NUL-terminated, one after another: */
	struct buf	 rcpts;		/* To, Cc and Bcc, without repeats */
	unsigned int	 n_rcpt;
	struct buf	 froms;		/* the mailboxes of From */
	unsigned int	 n_from;
	char		 sender[XMIT_MAX_ADDR_LEN + 1];	/* "" if none */
	char		 msgid[XMIT_MAX_MSGID_LEN + 1];	/* "" if none */
	/* The header block without Bcc fields: LF line ends, no empty
	 * line at its end. */
	struct buf	 out;
	char		 err[160];	/* why mailhdr_parse failed */
};

void	mailhdr_init(struct mailhdr *, unsigned int max_rcpt);
void	mailhdr_free(struct mailhdr *);

/*
 * Parses the header block hdr[0 .. len): lines ending with LF (a CR
 * before it is allowed), the empty line that ends the header excluded.
 * Folded lines are unfolded; address lists (RFC 5322 section 3.4:
 * groups, display names, comments, quoted local parts, angle addresses
 * with obsolete routes, domain literals) give the addresses.  0, or -1
 * with h->err set: a malformed field, a bad address in an address
 * field, more than max_rcpt recipients or XMIT_MAX_FROM From mailboxes.
 */
int	mailhdr_parse(struct mailhdr *h, const char *hdr, size_t len)
	    ATTR_WARN_UNUSED;

/* The next address of a list (rcpts, froms) from *pos on, or NULL. */
const char *mailhdr_next(const struct buf *list, size_t *pos);

/*
 * Whether addr belongs to the user logged in as user: a user name with
 * '@' owns that address; any other owns user@D for each of the n
 * domains.  The local part must match exactly, the domain in any case.
 */
bool	mailhdr_addr_owned(const char *addr, const char *user,
	    char *const *domains, size_t n);

#endif
