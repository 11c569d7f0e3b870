/*
 * mime.h: the offline reader's use of GMime 3.2: a message parsed from
 * its file (GMime reads the parts from the file when it needs them, so
 * a 20 MB attachment is never held in memory), summarized for `list`,
 * shown as text for `show`, its parts written for `save`.
 *
 * Parts are numbered 1, 2, ... in depth-first order over every part but
 * the multipart containers; a message/rfc822 part has a number, and so
 * have the parts inside it.  What is malformed (GMime's warnings, a bad
 * charset, bad base64, nesting deeper than READER_MAX_DEPTH, more than
 * READER_MAX_PARTS parts, header fields longer than
 * READER_MAX_HEADER_LEN) is reported on standard error as a warning,
 * and the rest is shown as well as it can be.
 */
#ifndef POSTERN_READER_MIME_H
#define POSTERN_READER_MIME_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/attrs.h"

void	rd_mime_init(void);
void	rd_mime_shutdown(void);

/* Warnings go to standard error as "postern CMD: LABEL: warning: ...",
 * at most READER_MAX_WARNINGS per label (none with cmd NULL: they are
 * only counted); rd_warn_end prints how many more there were and
 * returns the number of warnings. */
void	rd_warn_begin(const char *cmd, const char *label);
void	rd_warn(const char *fmt, ...) ATTR_PRINTF(1, 2);
unsigned int rd_warn_end(void);

struct rd_summary {
	int64_t		 date;		/* seconds since 1970 */
	bool		 has_date;	/* false: no valid Date header */
	char		*from;		/* decoded, one line */
	char		*from_addr;	/* plain address, or NULL */
	char		*subject;	/* decoded, cleaned, one line */
	bool		 attachments;
	bool		 encrypted;	/* multipart/encrypted, S/MIME */
	bool		 is_signed;	/* multipart/signed, S/MIME */
	bool		 status_read;	/* mbox: "Status:" holds R */
};

/* Summarizes the message in fd.  0, or -1 with a reason in err. */
int	rd_summarize(int fd, struct rd_summary *, char *err, size_t errsize)
	    ATTR_WARN_UNUSED;
void	rd_summary_free(struct rd_summary *);

/* Writes the message in fd as text to out: its main header fields (all
 * of them with all_headers) decoded, the best text of its body, and the
 * list of its attachments with their part numbers.  0, or -1 with a
 * reason in err. */
int	rd_show(int fd, FILE *out, bool all_headers, char *err,
	    size_t errsize) ATTR_WARN_UNUSED;

/*
 * Saves parts of the message in fd: part (0: every attachment, the
 * parts show lists) decoded, into files of dirfd under their safe
 * names (text.h), created with O_EXCL and numbered when the name is
 * taken, fsynced; or, with out_fd >= 0, that one part (part must not
 * be 0) written to out_fd.  One line per file saved to report (may be
 * NULL).  0; RD_NO_PART with a reason in err for a part number that
 * does not exist; -1 with a reason in err.
 */
#define RD_NO_PART	(-2)

struct rd_save_opts {
	int		 dirfd;
	unsigned int	 part;
	int		 out_fd;
	FILE		*report;
};

int	rd_save(int fd, const struct rd_save_opts *, char *err,
	    size_t errsize) ATTR_WARN_UNUSED;

#endif
