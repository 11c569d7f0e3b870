/*
 * mda.h: delivering one message of `postern fetch` through the account's
 * mda command (mda = COMMAND ARGS... in fetch.conf).
 *
 * The command is split on blanks, %a (the account), %u (the user) and %%
 * are replaced in each word, and it is run with execvp, never through a
 * shell; the message goes to its standard input in LF form (as the
 * Maildir target stores it); its standard output goes to our standard
 * error.  Its exit status decides: 0 delivered, 75 (EX_TEMPFAIL) try
 * again later, anything else (or a signal, or not reading the whole
 * message) refused.  Every wait on it is bounded by the account's
 * timeout; an MDA that overruns it is killed.
 */
#ifndef POSTERN_CLIENT_MDA_H
#define POSTERN_CLIENT_MDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "client/account.h"
#include "lib/attrs.h"

enum mda_result {
	MDA_DELIVERED,
	MDA_TEMP,
	MDA_REFUSED,
};

struct mda {
	const struct account *acct;
	pid_t		 pid;
	int		 fd;		/* its standard input, or -1 */
	bool		 broken;	/* it stopped reading */
};

/* Starts the account's mda.  0, or -1 with err. */
int	mda_start(struct mda *, const struct account *, char *err,
	    size_t errsize) ATTR_WARN_UNUSED;

/* Hands it len octets.  An MDA that no longer reads is not an error
 * here (mda_finish refuses the message).  0, or -1 with err (a
 * timeout). */
int	mda_write(struct mda *, const uint8_t *data, size_t len, char *err,
	    size_t errsize) ATTR_WARN_UNUSED;

/* Ends its input and waits for it to exit; on every result but
 * MDA_DELIVERED, err says why. */
enum mda_result mda_finish(struct mda *, char *err, size_t errsize);

/* Kills (by its pid) and reaps an MDA that was started and not
 * finished. */
void	mda_abort(struct mda *);

#endif
