/*
 * limits.h: every numeric limit of Postern, with its reason.
 *
 * Each DEFAULT_* value can be overridden in postern.conf (see
 * postern.conf(5)); the HARD_* values are compile-time ceilings that keep
 * a hostile peer or a bad configuration from growing a buffer without
 * bound.
 */
#ifndef POSTERN_LIMITS_H
#define POSTERN_LIMITS_H

/* RFC 2449 section 4: a command line is at most 255 octets including the
 * CRLF.  We accept up to max_line_length (default 512) as a tolerance for
 * clients that send long user names; longer lines get -ERR. */
#define POP3_RFC_LINE_MAX		255
#define DEFAULT_MAX_LINE_LENGTH		512
#define HARD_MAX_LINE_LENGTH		8192

/* RFC 1939 section 3: the autologout timer must be at least 10 minutes. */
#define DEFAULT_IDLE_TIMEOUT_SEC	600

#define DEFAULT_MAX_CONNECTIONS		10000
#define DEFAULT_MAX_CONNECTIONS_PER_IP	50
#define DEFAULT_MAX_BAD_COMMANDS	10
#define DEFAULT_MAX_AUTH_FAILURES	3	/* per session, then close */

/* Failed logins: delay = base * 2^(failures-1), at most max.  Failures
 * of one IP are forgotten after AUTH_PENALTY_FORGET_SEC without one. */
#define DEFAULT_AUTH_FAIL_DELAY_MS	2000
#define DEFAULT_AUTH_FAIL_DELAY_MAX_MS	15000
#define AUTH_PENALTY_FORGET_SEC		300
#define AUTH_PENALTY_MAX_IPS		65536

#define DEFAULT_AUTH_WORKERS		2
#define MAX_WORKERS			256
#define MAX_LISTENERS			32
#define MAX_NETWORKS			64
#define MAX_TLS_SNI			64
#define MAX_MASTER_USERS		16
#define MAX_OAUTH_ISSUERS		16

/* One user may hold this many sessions at once (all workers). */
#define DEFAULT_MAX_CONNECTIONS_PER_USER	10

/* SASL: a client response line during AUTH may be this long (OAuth
 * tokens run to kilobytes; RFC 5034 section 4 exempts the responses from
 * the 255-octet command limit); at most this many exchanges in one AUTH,
 * and this many exchanges open in one auth process. */
#define DEFAULT_MAX_SASL_LINE_LENGTH	16384
#define HARD_MAX_SASL_LINE_LENGTH	32768
#define SASL_MAX_STEPS			8
#define SASL_MAX_OPEN			4096

/* SCRAM (RFC 5802, RFC 7677): iterations of the stored keys. */
#define SCRAM_MIN_ITERATIONS		4096
#define DEFAULT_SCRAM_ITERATIONS	10000
#define SCRAM_MAX_ITERATIONS		10000000

/* OAuth: clock skew tolerated on exp/nbf/iat. */
#define OAUTH_LEEWAY_SEC		60

/* A TLS handshake must finish in this time (slowloris). */
#define DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS	(30 * 1000)

/* Protocol fields. */
#define MAX_USERNAME_LEN		255
#define MAX_PASSWORD_LEN		1024
#define UIDL_MAX_LEN			70	/* RFC 1939 section 7 */

/* IPC: one framed message between our own processes. */
#define IPC_MAX_MSG			(64 * 1024)

/* Storage. */
#define MAILDIR_TMP_STALE_SEC		(36 * 3600)	/* Maildir convention */
#define INDEX_MAX_BYTES			(512u * 1024 * 1024)
#define MAX_MESSAGES_PER_MAILBOX	10000000u
#define MAX_PATH_LEN			4096

/*
 * index_cache_size: what a pop3 worker keeps of parsed index files of
 * big Maildirs for later sessions (store/index_cache.c).  A Maildir of
 * 100,000 messages takes about 15 MiB there and opens in a few
 * milliseconds instead of about 150; one of fewer than
 * INDEX_CACHE_MIN_MESSAGES messages is never kept (it parses in under a
 * millisecond), so many small mailboxes cost nothing.  At most
 * INDEX_CACHE_MAX_ENTRIES mailboxes are kept, the one used longest ago
 * going first.
 */
#define DEFAULT_INDEX_CACHE_SIZE	(64ull * 1024 * 1024)
#define INDEX_CACHE_SIZE_MAX		(64ull * 1024 * 1024 * 1024)
#define INDEX_CACHE_MIN_MESSAGES	1000
#define INDEX_CACHE_MAX_ENTRIES		64

/* The UIDL guard (uidl_guard_share, uidl_guard_min): when more than this
 * share of a mailbox's messages, and at least this many, would change
 * their UIDL in one reconciliation of the index (a lost or damaged
 * index, files renamed by another program), the log says so.  Half: a
 * normal session delivers or deletes some messages, never replaces most
 * of them at once.  10: below that a lost index costs little. */
#define DEFAULT_UIDL_GUARD_SHARE	50	/* percent */
#define DEFAULT_UIDL_GUARD_MIN		10
/* postern migrate-uidl: source files (dovecot-uidlist,
 * courierpop3dsizelist) are read whole up to this size, a message's
 * header up to MIGRATE_MAX_HEADER octets for its X-UIDL, and a line of
 * a source file up to MIGRATE_MAX_LINE octets. */
#define MIGRATE_MAX_SOURCE_BYTES	(256u * 1024 * 1024)
#define MIGRATE_MAX_HEADER		(256u * 1024)
#define MIGRATE_MAX_LINE		8192

/* postern deliver: the largest message it reads on standard input (the
 * default of --max-size: above Postfix's default message_size_limit of
 * 10 MB with room for sites that raise it), and the most --max-size may
 * say.  Over the limit is EX_CANTCREAT (73), a permanent failure. */
#define DEFAULT_DELIVER_MAX_SIZE	(64ull * 1024 * 1024)
#define HARD_DELIVER_MAX_SIZE		(1ull << 40)
/* The longest envelope sender written into Return-Path.  RFC 5321
 * section 4.5.3.1.3 allows a path of 256 octets, but VERP and SRS
 * addresses run longer; this keeps the header line within the 998
 * octets of RFC 5322 section 2.1.1. */
#define DELIVER_MAX_SENDER_LEN		900

/*
 * LMTP (RFC 2033) and quotas.  A command line is at most 512 octets with
 * its CRLF (RFC 5321 section 4.5.3.1.4), more with the parameters of
 * extensions (same section): we take 1024, which holds MAIL FROM with a
 * sender of LMTP_MAX_ADDR octets, SIZE= and BODY=.  A text line of a
 * message is at most 1000 (section 4.5.3.1.6), but real mail breaks
 * that, so DATA accepts lines up to lmtp_max_line_length and rejects
 * the message beyond.  At least
 * 100 recipients per transaction (section 4.5.3.1.8), then 452 4.5.3.
 * RFC 5321 section 4.5.3.2.7 asks a server to wait 5 minutes for a
 * command.  LMTP_MAX_ADDR bounds a path (section 4.5.3.1.3: 256) with
 * room for the VERP and SRS addresses DELIVER_MAX_SENDER_LEN allows.
 */
#define LMTP_CMD_LINE_MAX		1024
#define DEFAULT_LMTP_MAX_LINE_LENGTH	(64 * 1024)
#define LMTP_MIN_LINE_LENGTH		998
#define HARD_LMTP_MAX_LINE_LENGTH	(1024 * 1024)
#define DEFAULT_LMTP_MAX_RECIPIENTS	100
#define HARD_LMTP_MAX_RECIPIENTS	10000
#define DEFAULT_LMTP_MAX_CONNECTIONS	100
#define DEFAULT_LMTP_IDLE_TIMEOUT_SEC	300
#define DEFAULT_LMTP_SOCKET_MODE	0660
#define LMTP_MAX_ADDR			DELIVER_MAX_SENDER_LEN
#define MAX_LMTP_LISTENERS		8
/* A quota may be this large: 2^50 octets (a pebibyte), 2^32 - 1
 * messages (the count is a 32-bit field of the store). */
#define HARD_QUOTA_BYTES		(1ull << 50)
#define HARD_QUOTA_MESSAGES		4294967295ull

/* RETR streaming: the stored octets read and encoded in one step. */
#define RETR_CHUNK			(64 * 1024)
/* LIST and UIDL: the output one step of the listing writes at most. */
#define LISTING_STEP			(64 * 1024)
/* The messages (by wire size) read and encoded ahead of their RETR
 * while the client reads the one before (commands_prefetch); a smaller
 * one is read in a few microseconds anyway. */
#define RETR_PREFETCH_MIN		(16 * 1024)
#define RETR_PREFETCH_MAX		(128 * 1024)
/* A message stored in wire form goes out by sendfile in runs between the
 * lines that start with '.' (pop3/wire.h wire_dot_lines); one with more
 * such lines than this goes through the encoder instead. */
#define SENDFILE_MAX_DOT_LINES		64
/* The write callback runs once a write leaves at most this much queued. */
#define OUTPUT_LOW_WATERMARK		(64 * 1024)
/*
 * A multi-line reply (RETR, TOP, LIST, UIDL) is produced step by step
 * until this much output is queued, then waits for the socket to take
 * it.  With a quarter of a megabyte queued in all (one more step, at
 * most 2 * RETR_CHUNK + 8 octets, lands on top of the mark), one write
 * carries a whole 100 KB message or more, instead of one write and one
 * pass of the event loop for each 64 KiB.
 */
#define OUTPUT_FILL_MARK		(OUTPUT_HIGH_WATERMARK - 2 * RETR_CHUNK)

/* Pipelined commands are taken only while less than this much output is
 * queued. */
#define OUTPUT_HIGH_WATERMARK		(256 * 1024)
/* The most one write to a client's socket (or one round of TLS records)
 * takes from the output buffer; libevent's own default is 16 KiB, which
 * cut every streamed reply into many write calls. */
#define OUTPUT_MAX_SINGLE_WRITE		OUTPUT_HIGH_WATERMARK

/* Input a session may buffer before reading from the socket pauses.  Not
 * a setting: the line reader needs a whole line in the buffer, so this
 * must hold the longest line (HARD_MAX_SASL_LINE_LENGTH and its CRLF),
 * and nothing is gained by making it larger. */
#define INPUT_HIGH_WATERMARK		(64 * 1024)

/*
 * PIPELINING (RFC 2449 section 6.6), max_pipelined_commands: a session
 * takes at most this many commands from its input while replies are
 * still queued; then it reads no command until its output has drained.
 * This is throttling, never an error: the client sees its replies in
 * order, only later.  64 because a one-line reply is under 512 octets,
 * so a full batch (under 32 KiB) leaves in one write below
 * OUTPUT_LOW_WATERMARK; because one wake-up of a session then does a
 * bounded amount of work, so a client that pipelines thousands of
 * commands cannot hold up the other sessions of its worker for long;
 * and because clients pipeline a window of a few commands (RETR and
 * DELE pairs, a LIST and a UIDL), far below 64, so none of them waits.
 */
#define DEFAULT_MAX_PIPELINED_COMMANDS	64
#define HARD_MAX_PIPELINED_COMMANDS	10000

/*
 * session_memory_limit: what one session may hold, estimated at login
 * (commands.c) as SESSION_MEM_FIXED plus, for each message of the
 * mailbox, SESSION_MEM_PER_MESSAGE, the length of its UIDL and twice the
 * length of its name.  A login over the limit is refused and the session
 * stays in AUTHORIZATION.
 *
 * SESSION_MEM_FIXED is the most a session holds apart from its mailbox:
 * input up to INPUT_HIGH_WATERMARK, output up to OUTPUT_HIGH_WATERMARK
 * plus the largest step of a reply (a RETR chunk, at most doubled by CRLF
 * and byte-stuffing), a prefetched message (RETR_PREFETCH_MAX and half
 * as much again: byte-stuffing adds at most one octet to every three,
 * and the buffer its overhead), the line buffer (the longest line), and
 * 128 KiB for the session itself and the TLS layer's records and state.  The I/O
 * part is a constant, not derived from the limit: it is smaller than the
 * smallest limit allowed (checked at compile time in commands.c), so
 * every limit leaves room for it.
 *
 * SESSION_MEM_PER_MESSAGE covers what the Maildir store and the session
 * keep per message besides the strings themselves: the snapshot's
 * message record and path pointer (56 octets), the index entry (56, up
 * to twice that while the index array grows by doubling), the session's
 * deleted and retrieved flags (2), and the allocator's overhead and
 * terminators of the three strings (about 60): 230, rounded up.  The
 * strings are the UIDL (at most UIDL_MAX_LEN) and the file name, kept
 * twice (the index's name and the snapshot's path, "cur/" + name).
 *
 * The default, 1 GiB, never refuses a normal mailbox of 1,000,000
 * messages: with the usual Maildir names of about 65 octets it needs
 * about 430 MiB, and with names of the longest kind (255 octets) about
 * 810 MiB.  It does refuse the mailboxes that would make one session
 * take gigabytes (MAX_MESSAGES_PER_MAILBOX of them need 4 GiB and more).
 */
#define DEFAULT_SESSION_MEMORY_LIMIT	(1024ull * 1024 * 1024)
#define SESSION_MEMORY_LIMIT_MIN	(1024ull * 1024)
#define SESSION_MEMORY_LIMIT_MAX	(4096ull * 1024 * 1024)
#define SESSION_MEM_FIXED						\
	(1ull * INPUT_HIGH_WATERMARK + OUTPUT_HIGH_WATERMARK +		\
	2 * RETR_CHUNK + RETR_PREFETCH_MAX + RETR_PREFETCH_MAX / 2 +	\
	HARD_MAX_SASL_LINE_LENGTH + 128 * 1024)
#define SESSION_MEM_PER_MESSAGE		256

/* Config and user-database files are read whole, bounded. */
#define CONFIG_MAX_BYTES		(1024 * 1024)
#define USERDB_MAX_BYTES		(256u * 1024 * 1024)
#define CONFIG_MAX_LINE			4096

/* The master restarts a dead child, at most this often (restart_interval,
 * 10 ms to 60 s). */
#define RESTART_MIN_INTERVAL_MS		1000

/* Shutdown: how long sessions get to receive their last reply. */
#define SHUTDOWN_GRACE_MS		2000

/* mbox locking (mbox_lock_timeout, mbox_dotlock_stale): how long to try
 * for the fcntl lock and FILE.lock before [IN-USE] (a pop3 worker waits
 * in the store, so keep it short), and the age at which a dotlock is
 * taken as left behind (procmail and mutt use about 5 minutes; Postfix
 * local holds one for seconds). */
#define DEFAULT_MBOX_LOCK_TIMEOUT_MS	(10ull * 1000)
#define MBOX_LOCK_TIMEOUT_MAX_MS	(300ull * 1000)
#define DEFAULT_MBOX_DOTLOCK_STALE_SEC	300
#define MBOX_DOTLOCK_STALE_MIN_SEC	10
#define MBOX_DOTLOCK_STALE_MAX_SEC	(24 * 3600)

/*
 * XTND XMIT (sending mail through POP3).  xmit_max_size bounds a message
 * as the client sent it (CRLF line ends, without byte-stuffing); a line
 * longer than XMIT_MAX_LINE_LENGTH or a header block over
 * XMIT_MAX_HEADER_BYTES refuses the message (RFC 5322 section 2.1.1
 * allows 998 octets a line).  The envelope travels to the master in one
 * IPC message, which bounds the recipients: HARD_XMIT_MAX_RECIPIENTS
 * addresses of XMIT_MAX_ADDR_LEN octets (RFC 5321 section 4.5.3.1.3: a
 * path is 256 octets with its angle brackets) fit in IPC_MAX_MSG.
 * xmit_max_per_hour is a token bucket per user, kept by the master for
 * all pop3 workers.  A submission command or relay conversation is
 * killed after xmit_timeout.
 */
#define DEFAULT_XMIT_MAX_SIZE		(10ull * 1024 * 1024)
#define HARD_XMIT_MAX_SIZE		(1ull << 30)
#define XMIT_MAX_LINE_LENGTH		16384
#define XMIT_MAX_HEADER_BYTES		(256 * 1024)
#define XMIT_MAX_ADDR_LEN		254
#define XMIT_MAX_FROM			16
#define XMIT_MAX_MSGID_LEN		250
#define DEFAULT_XMIT_MAX_RECIPIENTS	100
#define HARD_XMIT_MAX_RECIPIENTS	200
#define DEFAULT_XMIT_MAX_PER_HOUR	100
#define HARD_XMIT_MAX_PER_HOUR		100000
#define DEFAULT_XMIT_TIMEOUT_MS		(120 * 1000)
#define XMIT_TIMEOUT_MIN_MS		1000ull
#define XMIT_TIMEOUT_MAX_MS		(3600 * 1000ull)
#define MAX_XMIT_DOMAINS		64
#define XMIT_MAX_COMMAND_WORDS		32
/* Submissions running at once (each is a process). */
#define XMIT_MAX_RUNNING		64

#endif
