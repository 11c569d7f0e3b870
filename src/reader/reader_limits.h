/*
 * reader_limits.h: the limits of the offline reader (`postern list`,
 * `show`, `save` and the commands that move messages), with their
 * reasons.  Like client/client_limits.h, for the client only: every
 * message and mailbox it reads is hostile.
 */
#ifndef POSTERN_READER_LIMITS_H
#define POSTERN_READER_LIMITS_H

/* Messages of one Maildir or mbox looked at in one run: a bigger
 * mailbox is an error, never an unbounded array. */
#define READER_MAX_MESSAGES		1000000

/* MIME nesting the reader follows (multiparts and message/rfc822 inside
 * each other).  Real mail nests a handful of levels (a forwarded
 * message, signed, with alternatives: 5 or 6); anything deeper is shown
 * as far as this depth, with a warning.  GMime has its own, deeper
 * ceiling for its parser, which also ends in a warning. */
#define READER_MAX_DEPTH		32

/* MIME parts (leaves and containers) the reader follows in one message;
 * past it the rest is skipped with a warning. */
#define READER_MAX_PARTS		1000

/* Header fields shown by --headers, and the longest value shown of one
 * field once unfolded (RFC 5322 section 2.1.1 allows 998 octets a line,
 * and folding makes a field as long as its sender wants: a Subject
 * folded 10,000 times is cut here, with a warning). */
#define READER_MAX_HEADERS		1000
#define READER_MAX_HEADER_LEN		(16 * 1024)

/* The decoded text of one part shown by `show`: longer text is cut with
 * a warning (an attachment is saved whole by `save`, never cut). */
#define READER_MAX_TEXT			(16 * 1024 * 1024)

/* The HTML renderer (w3m or lynx): how long it may run and how much
 * text it may print for one part before it is killed and the tag
 * stripper is used instead. */
#define READER_RENDER_TIMEOUT_MS	10000
#define READER_RENDER_MAX_OUTPUT	(16 * 1024 * 1024)

/* A saved file name, in octets of UTF-8 (most file systems allow 255;
 * room is left for " (NNN)" before the extension), the longest
 * extension kept when a long name is cut, and the numbered names tried
 * when the name is taken. */
#define READER_MAX_FILENAME		200
#define READER_MAX_EXTENSION		16
#define READER_MAX_DUPLICATES		1000

/* A Maildir++ folder name (move, --folder), in octets. */
#define READER_MAX_FOLDER		64

/* The sender and subject in a `list` line, in characters. */
#define READER_LIST_FROM_WIDTH		28
#define READER_LIST_SUBJECT_WIDTH	200

/* The From_ line of an mbox message kept for its date, in octets. */
#define READER_MBOX_FROM_LINE		256

/* Warnings printed for one message; the rest are counted. */
#define READER_MAX_WARNINGS		20

/* How long `--mbox` waits for another program's write lock. */
#define READER_MBOX_LOCK_TIMEOUT_MS	10000

#endif
