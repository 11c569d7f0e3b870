/*
 * posternd.h: what the processes of posternd share: message types on
 * their socketpairs and the entry points of each process.
 *
 *   master   binds listeners, accepts, enforces connection limits, keeps
 *            per-IP login-failure counts, passes each connection to a
 *            pop3 worker, restarts dead children
 *   pop3     libevent loops carrying the sessions; mail user
 *   auth     reads the user database and verifies passwords; nothing else
 *   lmtp     the LMTP listener (RFC 2033): delivers into the store; mail
 *            user; asks the auth workers whether recipients exist
 */
#ifndef POSTERND_H
#define POSTERND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/config.h"

enum msg_type {
	/* master -> pop3: a client connection (fd); fields: peer ip,
	 * peer port, local ip, local port, recent login failures of the
	 * peer's IP, listener TLS mode (enum listener_tls). */
	MSG_CONN = 1,
	/* pop3 -> master: the connection with this id is closed. */
	MSG_CONN_DONE,
	/* pop3 -> master: a login failed (u32 1) or succeeded (u32 0)
	 * from ip (str). */
	MSG_LOGIN_RESULT,
	/* master -> pop3 and -> auth: one end of a pop3<->auth channel
	 * (fd); field: auth slot (u32). */
	MSG_AUTH_CHAN,
	/* master -> pop3: finish the open sessions, take no more, exit. */
	MSG_DRAIN,
	/* auth -> pop3: u32 flags (AUTH_HELLO_*) on a new channel. */
	MSG_AUTH_HELLO,
	/* pop3 -> auth: USER/PASS; id = session id; fields: user, password */
	MSG_AUTH_PASS,
	/* pop3 -> auth: APOP; fields: user, timestamp, digest */
	MSG_AUTH_APOP,
	/* auth -> pop3: the outcome; id = session id; fields: u32
	 * auth_status, str user (on OK: the user logged in), u32 the
	 * user's login delay in seconds, u32 the user's expire in days
	 * (both AUTH_USER_DEFAULT: the site's; expire AUTH_EXPIRE_NEVER),
	 * str reason (a word for the log: "bad-credentials", "disabled",
	 * "expired-token", ...). */
	MSG_AUTH_REPLY,
	/* pop3 -> auth: AUTH (RFC 5034) begins; id = session id; fields:
	 * str mechanism, u32 SASL_F_* flags, str tls-unique and str
	 * tls-exporter channel bindings (base64, "" if none), str the
	 * identity of the verified client certificate ("" if none),
	 * str the initial response as sent (base64; "" with
	 * SASL_F_IR for "="), str peer ip. */
	MSG_SASL_START,
	/* pop3 -> auth: the client's next response line (base64). */
	MSG_SASL_STEP,
	/* pop3 -> auth: the client cancelled, or the session ended. */
	MSG_SASL_ABORT,
	/* auth -> pop3: send "+ " and this challenge (base64, maybe ""),
	 * then pass on the client's answer with MSG_SASL_STEP. */
	MSG_SASL_CHALLENGE,
	/* pop3 -> master: may this user hold one more session?  id =
	 * connection id; field: str user. */
	MSG_USER_CLAIM,
	/* master -> pop3: id = connection id; u32 1 yes, 0 at its cap. */
	MSG_USER_CLAIMED,
	/* master -> lmtp: an LMTP connection (fd); id = connection id;
	 * field: str peer ("unix" or the ip).  lmtp -> master:
	 * MSG_CONN_DONE when it is closed. */
	MSG_LMTP_CONN,
	/* lmtp -> auth: is this a recipient?  id = request id; fields: u32
	 * n (1..LMTP_MAX_CANDIDATES), then n str names, tried in order. */
	MSG_USER_LOOKUP,
	/* auth -> lmtp: id = request id; fields: u32 enum lmtp_user, str
	 * the name found ("" if none), u64 quota_bytes, u64
	 * quota_messages (the user's; 0: the site's). */
	MSG_USER_INFO,
	/* pop3 -> master: XTND XMIT, send this message; id = session id;
	 * fd = the spooled message (LF line ends, no Bcc); fields: str
	 * user, str envelope sender, str Message-ID (for the log, "" if
	 * none), u64 size, u32 count, then count str recipients. */
	MSG_XMIT_SUBMIT,
	/* master -> pop3: id = session id; u32 enum xmit_status. */
	MSG_XMIT_RESULT,
};

/* MSG_AUTH_CHAN to an auth worker: the peer is the lmtp process, which
 * may only look users up. */
#define AUTH_PEER_LMTP		UINT32_MAX

/* The outcome of one XTND XMIT submission (MSG_XMIT_RESULT). */
enum xmit_status {
	XMIT_SENT = 0,		/* the command or relay accepted it */
	XMIT_TEMPFAIL = 1,	/* exit 75, 4xx, timeout, busy */
	XMIT_PERMFAIL = 2,	/* any other exit status, 5xx */
	XMIT_RATE_LIMITED = 3,	/* xmit_max_per_hour reached */
};
#define XMIT_STATUS_MAX		XMIT_RATE_LIMITED

/* What the user database of an auth worker can verify (MSG_AUTH_HELLO;
 * sent again when it changes). */
#define AUTH_HELLO_HAS_SECRET	0x01u	/* plaintext-equivalent secrets */
#define AUTH_HELLO_HAS_CRYPT	0x02u	/* passwords (USER, PLAIN, LOGIN) */
#define AUTH_HELLO_HAS_SCRAM1	0x04u	/* SCRAM-SHA-1 keys */
#define AUTH_HELLO_HAS_SCRAM256	0x08u	/* SCRAM-SHA-256 keys */
#define AUTH_HELLO_HAS_OAUTH	0x10u	/* token issuers loaded */

/* MSG_SASL_START flags. */
#define SASL_F_IR		0x01u	/* an initial response was given */
#define SASL_F_PLUS_OFFERED	0x02u	/* CAPA listed a -PLUS mechanism:
					 * a SCRAM "y" flag is a downgrade */

#define AUTH_USER_DEFAULT	UINT32_MAX
#define AUTH_EXPIRE_NEVER	(UINT32_MAX - 1)

enum auth_status {
	AUTH_STATUS_OK = 0,
	AUTH_STATUS_FAIL = 1,		/* wrong credentials, unknown user */
	AUTH_STATUS_TEMPFAIL = 2,	/* database unreadable */
	AUTH_STATUS_BAD_INPUT = 3,	/* not base64, or not the mechanism's
					 * syntax: -ERR, not a failed login */
};
#define AUTH_STATUS_MAX		AUTH_STATUS_BAD_INPUT

/* The configuration in force in this process. */
extern struct config *cfg;

/* The TLS contexts of this generation (NULL without tls_cert); built by
 * the master before it forks the pop3 workers. */
struct tls_server;
extern struct tls_server *tls_srv;

/* Keys the fake SCRAM salts of unknown users; drawn by the master at
 * start, inherited by every auth worker, so all answer alike. */
extern uint8_t auth_fake_key[32];

/* main.c */
extern volatile int posternd_debug;

/* master.c */
int	master_run(struct config *c, const char *config_path);

/* pop3.c: the pop3 worker process; never returns. */
ATTR_NORETURN void pop3_worker_main(int master_fd);

/* lmtp.c: the lmtp process; never returns. */
ATTR_NORETURN void lmtp_main(int master_fd);

/* authd.c: the auth worker process; never returns. */
ATTR_NORETURN void auth_worker_main(int master_fd, unsigned int slot);

/* privsep.c */
/* Looks up the accounts the children will run as (when root). */
int	privsep_resolve(const struct config *c, char *err, size_t errsize);
/* Gives path to mail_user (and its group) when run as root; 0 or -1. */
int	privsep_chown_mail(const char *path);
/* In a child: drop to the account for the role ("pop3", "lmtp" or
 * "auth"); lmtp is confined as pop3 is. */
void	privsep_drop(const struct config *c, const char *role);
/* In a submission child: drop to mail_user; with relay also confine
 * it (no files, no execve, TCP sockets allowed). */
void	privsep_drop_submit(const struct config *c, bool relay);

/* submit.c: XTND XMIT submissions, in the master. */
struct ipc_chan;
struct ipc_in;
struct event_base;
void	submit_init(struct event_base *base);
/* MSG_XMIT_SUBMIT from the pop3 worker tag, answered over ch; takes
 * in->fd. */
void	submit_request(struct ipc_chan *ch, const void *tag,
	    struct ipc_in *in);
/* A child exited: true if it was a submission (then handled). */
bool	submit_reaped(pid_t pid, int status);
/* The pop3 worker tag is gone: its submissions answer nobody. */
void	submit_worker_gone(const void *tag);
/* Shutdown: stop every running submission. */
void	submit_shutdown(void);

#endif
