/*
 * text.h: the offline reader's text helpers that need no MIME parser:
 * safe file names for saved attachments, text made safe for a terminal,
 * and the plain tag stripper used for HTML when no renderer is
 * installed.  Pure functions of their input (unit-tested and fuzzed).
 */
#ifndef POSTERN_READER_TEXT_H
#define POSTERN_READER_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/attrs.h"

struct buf;

/*
 * Makes name (decoded, meant to be UTF-8, may be NULL) a safe base name
 * for a file in out (outsize > READER_MAX_FILENAME): '/', '\\', control
 * characters (C0, DEL, C1) and invalid UTF-8 become '_'; leading dots
 * and blanks and trailing blanks and dots are removed; a name longer
 * than READER_MAX_FILENAME octets is cut on a character boundary,
 * keeping an extension of up to READER_MAX_EXTENSION octets.  What is
 * left empty becomes "part-N" (N = partno).  0, or -1 if out is too
 * small.
 */
int	rd_safe_filename(const char *name, unsigned int partno, char *out,
	    size_t outsize) ATTR_WARN_UNUSED;

/* The n-th (n >= 1) alternative of a safe name: "stem (n).ext", or
 * "name (n)" without an extension.  0, or -1 if out is too small. */
int	rd_numbered_name(const char *name, unsigned int n, char *out,
	    size_t outsize) ATTR_WARN_UNUSED;

/*
 * Appends text (len octets, UTF-8) to b so that a terminal shows it
 * and does nothing else: invalid UTF-8 becomes U+FFFD, control
 * characters (C0 but LF and TAB, DEL, C1) become '?', CR is dropped
 * before LF.  With one_line, LF and TAB become spaces and runs of
 * blanks one space.  0, or -1 (the buffer's ceiling).
 */
int	rd_clean_text(struct buf *b, const char *text, size_t len,
	    bool one_line) ATTR_WARN_UNUSED;

/* The number of characters of UTF-8 text s (invalid octets count one
 * each); rd_utf8_prefix gives the octets of its first n characters. */
size_t	rd_utf8_width(const char *s, size_t len);
size_t	rd_utf8_prefix(const char *s, size_t len, size_t n);

/*
 * Plain text of HTML, for when no renderer is installed: tags removed,
 * script and style contents dropped, line breaks for <br>, <p>, <div>,
 * <li>, <tr> and headings, the common entities and numeric character
 * references decoded, blank runs collapsed.  0, or -1 (the ceiling).
 */
int	rd_strip_tags(struct buf *b, const char *html, size_t len)
	    ATTR_WARN_UNUSED;

#endif
