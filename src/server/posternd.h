/*
 * posternd.h: what the processes of posternd share: message types on
 * their socketpairs and the entry points of each process.
 *
 *   master   binds listeners, accepts, enforces connection limits, keeps
 *            per-IP login-failure counts, passes each connection to a
 *            pop3 worker, restarts dead children
 *   pop3     libevent loops carrying the sessions; mail user
 *   auth     reads the user database and verifies passwords; nothing else
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
	/* auth -> pop3: id = session id; u32 auth_status, str user */
	MSG_AUTH_REPLY,
};

#define AUTH_HELLO_HAS_PLAIN	0x1u	/* some user has a {PLAIN} secret */

enum auth_status {
	AUTH_STATUS_OK = 0,
	AUTH_STATUS_FAIL = 1,		/* wrong credentials, unknown user */
	AUTH_STATUS_TEMPFAIL = 2,	/* database unreadable */
};

/* The configuration in force in this process. */
extern struct config *cfg;

/* The TLS contexts of this generation (NULL without tls_cert); built by
 * the master before it forks the pop3 workers. */
struct tls_server;
extern struct tls_server *tls_srv;

/* main.c */
extern volatile int posternd_debug;

/* master.c */
int	master_run(struct config *c, const char *config_path);

/* pop3.c: the pop3 worker process; never returns. */
ATTR_NORETURN void pop3_worker_main(int master_fd);

/* authd.c: the auth worker process; never returns. */
ATTR_NORETURN void auth_worker_main(int master_fd, unsigned int slot);

/* privsep.c */
/* Looks up the accounts the children will run as (when root). */
int	privsep_resolve(const struct config *c, char *err, size_t errsize);
/* In a child: drop to the account for the role ("pop3" or "auth"). */
void	privsep_drop(const struct config *c, const char *role);

#endif
