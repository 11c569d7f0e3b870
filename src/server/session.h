/*
 * session.h: one POP3 session inside a pop3 worker, shared by the
 * session life cycle (session.c), the commands (commands.c) and the
 * worker process (pop3.c).
 */
#ifndef POSTERND_SESSION_H
#define POSTERND_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/linebuf.h"
#include "lib/limits.h"
#include "pop3/wire.h"
#include "posternd.h"

struct bufferevent;
struct event;
struct evbuffer;
struct event_base;
struct ipc_chan;
struct ipc_msg;
struct mailbox;
struct xmit;

enum session_state {
	STATE_AUTHORIZATION,
	STATE_TRANSACTION,
	STATE_UPDATE,
};

struct session;

/* No message: retr_next when there is nothing to prefetch. */
#define NO_MSG	UINT32_MAX

/* A long reply in progress: called whenever output has drained;
 * returns 1 when the reply is complete, 0 to be called again. */
typedef int session_cont_fn(struct session *);

struct session {
	uint64_t		 conn_id;	/* from the master; logs */
	uint64_t		 id;		/* slot | generation; auth */
	struct bufferevent	*bev;
	struct linebuf		 lb;
	enum session_state	 state;

	char			 peer_ip[64];
	unsigned int		 peer_port;
	struct sockaddr_storage	 peer;
	int			 fd;
	bool			 plaintext_ok;	/* USER/PASS allowed here */
	bool			 plaintext_net;	/* peer in plaintext_networks */
	bool			 trusted;	/* peer in trusted_networks:
						 * no failed-login delay */
	bool			 tls;		/* TLS is (being) set up */
	bool			 handshaking;	/* TLS handshake not done */
	bool			 stls_pending;	/* +OK sent, switch when out */
	char			 apop_ts[160];	/* "" when APOP not offered */

	char			 user[MAX_USERNAME_LEN + 1];
	bool			 have_user;	/* USER was accepted */
	bool			 waiting;	/* for an auth reply */
	bool			 delaying;	/* in a failed-login delay */
	int			 auth_slot;	/* channel of the request */
	const char		*method;	/* "USER", "APOP" or the SASL
						 * mechanism */
	bool			 sasl;		/* inside AUTH: lines are
						 * responses */
	unsigned int		 sasl_steps;
	bool			 claiming;	/* waiting for the master's
						 * per-user cap */
	bool			 user_claimed;	/* counted against it */
	/* This user's LOGIN-DELAY (seconds) and EXPIRE (days, -1 never):
	 * the site's until an auth worker says otherwise. */
	uint64_t		 login_delay_s;
	int64_t			 expire_days;
	unsigned int		 bad_cmds;
	/* PIPELINING: commands taken since the output was last empty. */
	unsigned int		 pipelined;
	bool			 throttle_logged;
	unsigned int		 auth_failures;
	unsigned int		 ip_failures;	/* at connect, from master */
	struct event		*ev_delay;
	struct event		*ev_idle;
	bool			 closing;	/* flush, then free */
	const char		*close_reason;

	/* TRANSACTION */
	struct mailbox		*mb;
	uint32_t		 count;
	bool			*deleted;
	bool			*retrieved;
	uint32_t		 live_count;
	uint64_t		 live_octets;

	/* The reply in progress. */
	session_cont_fn		*cont;
	bool			 in_multiline;	/* started, '.' not yet sent */
	bool			 in_cont;	/* a step of cont is running */
	uint32_t		 next_idx;	/* LIST, UIDL */
	int			 msg_fd;	/* RETR, TOP */
	uint64_t		 msg_left;	/* stored octets still to read */
	struct wire_enc		 enc;
	/* The message after the last RETR, read and encoded while the
	 * client was busy with that one (commands_prefetch). */
	uint32_t		 retr_next;	/* its index, or NO_MSG */
	bool			 pipelines;	/* the client sends commands
						 * without waiting: no prefetch */
	uint32_t		 prefetch_idx;
	struct evbuffer		*prefetch;	/* its body, or empty */

	/* XTND XMIT: a message being received, or sent and awaiting the
	 * master's answer. */
	struct xmit		*xmit;
	bool			 xmit_waiting;

	/* For the logout line. */
	unsigned int		 n_retr;
	unsigned int		 n_dele;
	uint64_t		 bytes_out;
	uint64_t		 start_ms;
	size_t			 last_out_len;
};

/* pop3.c */
extern struct event_base *pop3_base;
/* A connection becomes a session (the descriptor is the session's,
 * or closed on failure). */
void	pop3_start_session(int fd, uint64_t conn_id, const char *ip,
	    uint32_t port, uint32_t fails, bool implicit_tls);
/* Takes fd as the channel to auth worker slot (< 64). */
void	pop3_attach_auth(unsigned int slot, int fd);
extern bool pop3_apop_available;
/* Sends a request for s to an auth worker: 0, or -1 if none is up. */
int	pop3_auth_request(struct session *s, struct ipc_msg *m);
/* Sends the next message of a SASL exchange to the worker that has it
 * (s->auth_slot): 0 or -1. */
int	pop3_auth_continue(struct session *s, struct ipc_msg *m);
/* Tells that worker the exchange of s is over. */
void	pop3_sasl_abort(struct session *s);
/* AUTH_HELLO_* bits some connected auth worker has. */
extern uint32_t pop3_auth_caps;
/* Asks the master to count s against its user's session cap; the
 * answer comes to session_user_claimed(). */
int	pop3_user_claim(struct session *s);
void	pop3_login_result(const struct session *s, bool failed);
void	pop3_session_gone(struct session *s);
struct session *pop3_session_lookup(uint64_t id);
uint64_t pop3_now_ms(void);

/* session.c */
struct session *session_new(int fd, uint64_t conn_id, uint64_t id,
    const char *peer_ip, unsigned int peer_port, unsigned int ip_failures,
    bool implicit_tls);
/* STLS: after the +OK is out, the connection becomes TLS. */
void	session_start_tls(struct session *s);
void	session_reply(struct session *s, const char *fmt, ...)
	    ATTR_PRINTF(2, 3);
void	session_raw(struct session *s, const void *data, size_t len);
void	session_close(struct session *s, const char *reason);
void	session_free(struct session *s);
/* Processes buffered input as far as the session allows. */
void	session_input(struct session *s);
/* Starts a multi-line reply whose status line is queued: runs fn now
 * and later, from the write callback, as session_run_cont says. */
void	session_start_cont(struct session *s, session_cont_fn *fn);
/* What an auth worker said of a login that succeeded. */
struct auth_result {
	const char	*user;		/* the user logged in */
	uint32_t	 login_delay;	/* AUTH_USER_DEFAULT: the site's */
	uint32_t	 expire;	/* ... or AUTH_EXPIRE_NEVER */
	const char	*reason;	/* for the log of a failure */
};
/* An auth worker answered (r NULL when it became unavailable, st
 * TEMPFAIL). */
void	session_auth_reply(struct session *s, enum auth_status st,
	    const struct auth_result *r);
/* The master allowed (or refused, at max_connections_per_user) one more
 * session for the user. */
void	session_user_claimed(struct session *s, bool ok);
/* TLS facts for SASL: channel bindings (base64, "" when the connection
 * has none of that kind) and the identity of a verified client
 * certificate ("" if none). */
void	session_tls_bindings(struct session *s, char *unique, char *exporter,
	    size_t size);
void	session_tls_identity(struct session *s, char *id, size_t size);
/* Shutdown: tell the client and close without UPDATE. */
void	session_shutdown(struct session *s);
size_t	session_output_len(const struct session *s);

/* commands.c */
void	commands_dispatch(struct session *s, char *line);
/* A line of the client inside AUTH. */
void	commands_sasl_line(struct session *s, char *line);
/* The challenge of an auth worker for s (base64). */
void	commands_sasl_challenge(struct session *s, const char *b64);
void	commands_login_ok(struct session *s);
void	commands_release_mailbox(struct session *s);
/* While the session waits for its next command: reads and encodes the
 * message after the one it last sent by RETR (commands.c). */
void	commands_prefetch(struct session *s);
/* "-ERR ..." for a command the client should not have sent. */
void	commands_bad(struct session *s, const char *reply);

/* xmit.c: XTND XMIT (qpopper's), the pop3 side. */
/* Whether CAPA lists XTND XMIT: enabled, and usable on this connection
 * once logged in. */
bool	xmit_offered(const struct session *s);
/* XTND with its arguments (argv[0] the subcommand). */
void	xmit_command(struct session *s, char **argv, int argc);
/* A line of the message (rc: what the line reader said). */
void	xmit_line(struct session *s, char *line, size_t len,
	    enum line_rc rc);
/* The master's answer for the message sent. */
void	xmit_result(struct session *s, enum xmit_status st);
/* The master is gone: the sent message's fate is unknown. */
void	xmit_abandon(struct session *s);
void	xmit_free(struct session *s);
/* Hands the message to the master (pop3.c): 0 or -1. */
int	pop3_xmit_submit(struct ipc_msg *m);

#endif
