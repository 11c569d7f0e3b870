/*
 * client_limits.h: the limits of `postern fetch`, with their reasons.
 * Like lib/limits.h, but for the client only, so that it never grows a
 * buffer for a hostile or broken server.
 */
#ifndef POSTERN_CLIENT_LIMITS_H
#define POSTERN_CLIENT_LIMITS_H

/* RFC 2449 section 4: a response line is at most 512 octets with its
 * CRLF.  We take twice that from servers that add long texts; a SASL
 * challenge (RFC 5034) may be longer. */
#define FETCH_MAX_LINE			1024
#define FETCH_MAX_SASL_LINE		16384

/* RFC 1939 section 7: a UIDL is 1 to 70 octets in 0x21..0x7e.  The
 * journal also holds the identities fetch makes up (fetch.h), which are
 * longer than any UIDL so that they never equal one. */
#define FETCH_MAX_UIDL			70
#define FETCH_MAX_ID			80

/* A server without UIDL: the headers (TOP n 0) of one message that go
 * into its digest. */
#define FETCH_MAX_HEADER_SIZE		(1024 * 1024)

/* Messages one run looks at, and the size of one message it stores:
 * a bigger mailbox or message is an error, never an unbounded array or
 * file. */
#define FETCH_MAX_MESSAGES		1000000
#define FETCH_MAX_MESSAGE_SIZE		(1024ull * 1024 * 1024)
/* The intent file of an mbox target holds the record of the message
 * being appended (one line of an identity, a size and a digest), more
 * only after a crash; a larger file is not ours. */
#define FETCH_MAX_INTENT_BYTES		(1024 * 1024)

/* The network timeout of one read or write (timeout = in fetch.conf),
 * and its ceiling. */
#define FETCH_DEFAULT_TIMEOUT_MS	60000
#define FETCH_MAX_TIMEOUT_MS		3600000

/* fetch.conf: its size, its accounts, the length of a name and of a
 * value. */
#define FETCH_MAX_CONFIG_SIZE		(1024 * 1024)
#define FETCH_MAX_ACCOUNTS		256
#define FETCH_MAX_NAME			64
#define FETCH_MAX_VALUE			1024

/* A password (password_file or the output of password_command), and
 * the words of password_command. */
#define FETCH_MAX_PASSWORD		1024
#define FETCH_MAX_COMMAND_ARGS		64

/* SASL: challenges one AUTH may take (SCRAM needs 2, CRAM-MD5 1). */
#define FETCH_SASL_MAX_STEPS		8

/* The journal of one account: a record is a UIDL and a checksum. */
/* keep_days: up to 100 years (0, the default, never deletes). */
#define FETCH_MAX_KEEP_DAYS		36500
#define FETCH_JOURNAL_MAX_LINE		128
#define FETCH_JOURNAL_MAX_SIZE		(256ull * 1024 * 1024)

/* RFC 2449 section 6.6 PIPELINING: commands sent before their replies
 * are read.  Bounded so that a window of replies never has to fit in
 * memory (each RETR is streamed to disk in order) and a failure wastes
 * little.  It is also the batch whose files, new/ and journal records
 * are flushed together (fetch.h), and so the files open at once. */
#define FETCH_PIPELINE_WINDOW		16

/* --every: the shortest and longest poll interval; and the longest
 * LOGIN-DELAY (RFC 2449) a server can make us wait, a value above it
 * (or malformed) counting as it. */
#define FETCH_MIN_EVERY_MS		1000
#define FETCH_MAX_EVERY_MS		(7ull * 24 * 3600 * 1000)
#define FETCH_MAX_LOGIN_DELAY		86400

/* The OAuth 2.0 bearer token token_command prints (a JWT is usually
 * well under 2 KiB). */
#define FETCH_MAX_TOKEN			8192

/* tls_pin lines of one account. */
#define FETCH_MAX_PINS			8

/* RETR reads the server in chunks of this size. */
#define FETCH_READ_CHUNK		65536

#endif
