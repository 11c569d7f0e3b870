/*
 * commands.c: the POP3 commands (RFC 1939, RFC 2449, RFC 3206 response
 * codes).  One table lists every command with the states it is valid in;
 * dispatch looks a command up once and checks the state there.  Handlers
 * parse their arguments completely before they change anything.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/strnum.h"
#include "session.h"
#include "store/store.h"

#define MAX_ARGS	3

/* Every session_memory_limit leaves room for the I/O buffers. */
_Static_assert(SESSION_MEM_FIXED < SESSION_MEMORY_LIMIT_MIN,
    "SESSION_MEMORY_LIMIT_MIN is below what the I/O buffers may hold");

enum cmd_flag {
	CMD_AUTHZ	= 1u << 0,	/* valid in AUTHORIZATION */
	CMD_TRANS	= 1u << 1,	/* valid in TRANSACTION */
	CMD_RAW		= 1u << 2,	/* takes the rest of the line whole */
};

struct pop3_cmd {
	const char	*name;
	unsigned int	 flags;
	unsigned int	 min_args, max_args;
	void		(*run)(struct session *, char **argv, int argc);
};

static void cmd_apop(struct session *, char **, int);
static void cmd_auth(struct session *, char **, int);
static void cmd_capa(struct session *, char **, int);
static void cmd_dele(struct session *, char **, int);
static void cmd_list(struct session *, char **, int);
static void cmd_noop(struct session *, char **, int);
static void cmd_pass(struct session *, char **, int);
static void cmd_quit(struct session *, char **, int);
static void cmd_retr(struct session *, char **, int);
static void cmd_rset(struct session *, char **, int);
static void cmd_stat(struct session *, char **, int);
static void cmd_stls(struct session *, char **, int);
static void cmd_top(struct session *, char **, int);
static void cmd_uidl(struct session *, char **, int);
static void cmd_user(struct session *, char **, int);

static const struct pop3_cmd commands[] = {
	{ "APOP", CMD_AUTHZ,		  2, 2, cmd_apop },
	{ "AUTH", CMD_AUTHZ,		  0, 2, cmd_auth },
	{ "CAPA", CMD_AUTHZ | CMD_TRANS,  0, 0, cmd_capa },
	{ "DELE", CMD_TRANS,		  1, 1, cmd_dele },
	{ "LIST", CMD_TRANS,		  0, 1, cmd_list },
	{ "NOOP", CMD_TRANS,		  0, 0, cmd_noop },
	{ "PASS", CMD_AUTHZ | CMD_RAW,	  1, 1, cmd_pass },
	{ "QUIT", CMD_AUTHZ | CMD_TRANS,  0, 0, cmd_quit },
	{ "RETR", CMD_TRANS,		  1, 1, cmd_retr },
	{ "RSET", CMD_TRANS,		  0, 0, cmd_rset },
	{ "STAT", CMD_TRANS,		  0, 0, cmd_stat },
	{ "STLS", CMD_AUTHZ,		  0, 0, cmd_stls },
	{ "TOP",  CMD_TRANS,		  2, 2, cmd_top },
	{ "UIDL", CMD_TRANS,		  0, 1, cmd_uidl },
	{ "USER", CMD_AUTHZ,		  1, 1, cmd_user },
	/* qpopper's extensions; xmit.c checks the state, so that XTND
	 * is an unknown command in every state while xmit = no. */
	{ "XTND", CMD_AUTHZ | CMD_TRANS,  0, 3, xmit_command },
};

static void
bad_command(struct session *s, const char *reply)
{
	session_reply(s, "%s", reply);
	if (++s->bad_cmds >= cfg->max_bad_commands) {
		session_reply(s, "-ERR Too many bad commands.");
		session_close(s, "bad-commands");
	}
}

void
commands_dispatch(struct session *s, char *line)
{
	const struct pop3_cmd *cmd = NULL;
	char *argv[MAX_ARGS + 1];
	char *p = line, *name;
	unsigned int want;
	size_t i;
	int argc = 0;

	name = p;
	while (*p != '\0' && *p != ' ')
		p++;
	if (*p == ' ')
		*p++ = '\0';
	for (i = 0; i < N_ELEMENTS(commands); i++)
		if (strcasecmp(name, commands[i].name) == 0) {
			cmd = &commands[i];
			break;
		}
	if (cmd == NULL) {
		bad_command(s, "-ERR Unknown command.");
		return;
	}
	want = s->state == STATE_AUTHORIZATION ? CMD_AUTHZ : CMD_TRANS;
	if ((cmd->flags & want) == 0) {
		bad_command(s, "-ERR Command not valid in this state.");
		return;
	}
	if (cmd->flags & CMD_RAW) {
		/* RFC 1939 section 7: PASS may contain spaces. */
		if (*p != '\0')
			argv[argc++] = p;
	} else {
		for (;;) {
			while (*p == ' ')
				p++;
			if (*p == '\0')
				break;
			if (argc == MAX_ARGS) {
				argc++;
				break;
			}
			argv[argc++] = p;
			while (*p != '\0' && *p != ' ')
				p++;
			if (*p == ' ')
				*p++ = '\0';
		}
	}
	if ((unsigned int)argc < cmd->min_args ||
	    (unsigned int)argc > cmd->max_args) {
		bad_command(s, argc < (int)cmd->min_args ?
		    "-ERR Missing argument." : "-ERR Too many arguments.");
		return;
	}
	argv[argc < MAX_ARGS ? argc : MAX_ARGS] = NULL;
	cmd->run(s, argv, argc);
}

void
commands_bad(struct session *s, const char *reply)
{
	bad_command(s, reply);
}

/* A message number that names a message not deleted; one -ERR if not. */
static bool
get_msg(struct session *s, const char *arg, uint32_t *idx_r)
{
	switch (parse_msgnum(arg, s->count, idx_r)) {
	case PARSE_OK:
		if (!s->deleted[*idx_r])
			return true;
		session_reply(s, "-ERR Message %" PRIu32 " is deleted.",
		    *idx_r + 1);
		return false;
	case PARSE_RANGE:
		session_reply(s, "-ERR No such message.");
		return false;
	default:
		bad_command(s, "-ERR Invalid message number.");
		return false;
	}
}

static bool
valid_user_arg(const char *u)
{
	size_t n = strlen(u);

	if (n == 0 || n > MAX_USERNAME_LEN)
		return false;
	for (; *u != '\0'; u++)
		if ((unsigned char)*u <= 0x20 || (unsigned char)*u >= 0x7f)
			return false;
	return true;
}

/* STLS can still be done on this connection. */
static bool
stls_offered(const struct session *s)
{
	return tls_srv != NULL && !s->tls &&
	    s->state == STATE_AUTHORIZATION;
}

static void
refuse_plaintext(struct session *s)
{
	session_reply(s, "-ERR [AUTH] Plaintext authentication is not allowed"
	    " on this connection%s", stls_offered(s) ? "; use STLS." : ".");
}

static void
cmd_user(struct session *s, char **argv, int argc)
{
	if (!s->plaintext_ok) {
		refuse_plaintext(s);
		return;
	}
	if (!valid_user_arg(argv[0])) {
		bad_command(s, "-ERR Invalid user name.");
		return;
	}
	snprintf(s->user, sizeof(s->user), "%s", argv[0]);
	s->have_user = true;
	session_reply(s, "+OK");
}

static void
start_auth(struct session *s, struct ipc_msg *m, const char *method)
{
	if (pop3_auth_request(s, m) == -1) {
		log_warnx("pop3 session=%016" PRIx64 " login failed user=%s"
		    " reason=auth-unavailable", s->conn_id, s->user);
		session_reply(s, "-ERR [SYS/TEMP] Authentication is"
		    " temporarily unavailable.");
		s->have_user = false;
		return;
	}
	log_debug("pop3 session=%016" PRIx64 " auth request user=%s"
	    " method=%s", s->conn_id, s->user, method);
	s->method = method;
	s->waiting = true;
}

static void
cmd_pass(struct session *s, char **argv, int argc)
{
	struct ipc_msg *m;
	size_t n = strlen(argv[0]);

	if (!s->plaintext_ok) {
		refuse_plaintext(s);
		goto out;
	}
	if (!s->have_user) {
		bad_command(s, "-ERR Send USER first.");
		goto out;
	}
	if (n > MAX_PASSWORD_LEN) {
		s->have_user = false;
		session_reply(s, "-ERR [AUTH] Authentication failed.");
		goto out;
	}
	if ((m = malloc(sizeof(*m))) == NULL) {
		session_close(s, "no-memory");
		goto out;
	}
	ipc_msg_init(m, MSG_AUTH_PASS, s->id);
	ipc_put_str(m, s->user);
	ipc_put_str(m, argv[0]);
	start_auth(s, m, "USER");
	ipc_msg_wipe(m);
	free(m);
out:
	explicit_bzero(argv[0], n);
}

static bool
is_hex32(const char *p)
{
	size_t i;

	for (i = 0; i < 32; i++)
		if (!isxdigit((unsigned char)p[i]))
			return false;
	return p[32] == '\0';
}

static void
cmd_apop(struct session *s, char **argv, int argc)
{
	struct ipc_msg *m;

	if (!valid_user_arg(argv[0]) || !is_hex32(argv[1])) {
		bad_command(s, "-ERR Usage: APOP name digest.");
		return;
	}
	snprintf(s->user, sizeof(s->user), "%s", argv[0]);
	s->have_user = false;
	if (s->apop_ts[0] == '\0') {
		/* Not offered in the greeting: it cannot succeed, but it
		 * costs the same as any failure. */
		session_auth_reply(s, AUTH_STATUS_FAIL, NULL);
		return;
	}
	if ((m = malloc(sizeof(*m))) == NULL) {
		session_close(s, "no-memory");
		return;
	}
	ipc_msg_init(m, MSG_AUTH_APOP, s->id);
	ipc_put_str(m, s->user);
	ipc_put_str(m, s->apop_ts);
	ipc_put_str(m, argv[1]);
	start_auth(s, m, "APOP");
	free(m);
}

/*
 * The SASL mechanisms this session can succeed with: each needs the
 * credential form it verifies in the user database, the plaintext policy
 * for those that send a reusable secret (PLAIN, LOGIN, bearer tokens),
 * TLS for channel binding, and a verified client certificate for
 * EXTERNAL.
 */
static unsigned int
mechs_offered(struct session *s)
{
	uint32_t caps = pop3_auth_caps;
	unsigned int m = 0;
	char id[MAX_USERNAME_LEN + 1];
	bool cb = s->tls && !s->handshaking;

	if (s->plaintext_ok &&
	    (caps & (AUTH_HELLO_HAS_CRYPT | AUTH_HELLO_HAS_SECRET)))
		m |= MECH_BIT(MECH_PLAIN) | MECH_BIT(MECH_LOGIN);
	if (caps & AUTH_HELLO_HAS_SECRET)
		m |= MECH_BIT(MECH_CRAM_MD5);
	if (caps & AUTH_HELLO_HAS_SCRAM1)
		m |= MECH_BIT(MECH_SCRAM_SHA_1) |
		    (cb ? MECH_BIT(MECH_SCRAM_SHA_1_PLUS) : 0);
	if (caps & AUTH_HELLO_HAS_SCRAM256)
		m |= MECH_BIT(MECH_SCRAM_SHA_256) |
		    (cb ? MECH_BIT(MECH_SCRAM_SHA_256_PLUS) : 0);
	if (s->plaintext_ok && (caps & AUTH_HELLO_HAS_OAUTH))
		m |= MECH_BIT(MECH_OAUTHBEARER) | MECH_BIT(MECH_XOAUTH2);
	if (cb && (cfg->mechanisms & MECH_BIT(MECH_EXTERNAL))) {
		session_tls_identity(s, id, sizeof(id));
		if (id[0] != '\0')
			m |= MECH_BIT(MECH_EXTERNAL);
	}
	return m & cfg->mechanisms;
}

/* " NAME NAME..." of the mechanisms in m, or -1 if out of memory. */
static int
add_mechs(struct buf *b, unsigned int m, const char *sep)
{
	int i;

	for (i = 0; i < MECH_COUNT; i++)
		if ((m & MECH_BIT(i)) &&
		    buf_addf(b, "%s%s", sep, config_mech_name(i)) == -1)
			return -1;
	return 0;
}

static int
add_policy(struct buf *b, const struct session *s)
{
	/* RFC 2449 sections 6.5 and 6.7: before login the site's values,
	 * marked USER because the user database may set others; after
	 * it, this user's. */
	const char *user = s->state == STATE_AUTHORIZATION ? " USER" : "";

	if ((s->expire_days < 0 ? buf_addf(b, "EXPIRE NEVER%s\r\n", user) :
	    buf_addf(b, "EXPIRE %" PRId64 "%s\r\n", s->expire_days,
	    user)) == -1)
		return -1;
	return buf_addf(b, "LOGIN-DELAY %" PRIu64 "%s\r\n", s->login_delay_s,
	    user);
}

static void
cmd_capa(struct session *s, char **argv, int argc)
{
	unsigned int mechs = s->state == STATE_AUTHORIZATION ?
	    mechs_offered(s) : 0;
	struct buf b;

	buf_init(&b, 4096);
	if (buf_addstr(&b, "+OK Capability list follows\r\nTOP\r\n") == -1 ||
	    (s->state == STATE_AUTHORIZATION && s->plaintext_ok &&
	    buf_addstr(&b, "USER\r\n") == -1) ||
	    (mechs != 0 && (buf_addstr(&b, "SASL") == -1 ||
	    add_mechs(&b, mechs, " ") == -1 ||
	    buf_addstr(&b, "\r\n") == -1)) ||
	    (stls_offered(s) && buf_addstr(&b, "STLS\r\n") == -1) ||
	    buf_addstr(&b, "UIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
	    "PIPELINING\r\n") == -1 ||
	    add_policy(&b, s) == -1 ||
	    (xmit_offered(s) && buf_addstr(&b, "XTND XMIT\r\n") == -1) ||
	    buf_addf(&b, "IMPLEMENTATION Postern-%s\r\n.\r\n",
	    POSTERN_VERSION) == -1) {
		buf_clear(&b);
		session_reply(s, "-ERR [SYS/TEMP] Out of memory.");
		return;
	}
	session_raw(s, b.data, b.len);
	buf_clear(&b);
}

/* RFC 4648 base64 with padding, or "" (an empty response). */
static bool
b64_syntax_ok(const char *p)
{
	size_t n = strlen(p), i, pad = 0;

	if (n % 4 != 0)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '=') {
			pad++;
			continue;
		}
		if (pad > 0 || !(isalnum(c) || c == '+' || c == '/'))
			return false;
	}
	return pad <= 2;
}

static void
sasl_end_bad(struct session *s, const char *reply)
{
	pop3_sasl_abort(s);
	log_info("pop3 session=%016" PRIx64 " login failed method=%s"
	    " reason=bad-base64", s->conn_id, s->method);
	bad_command(s, reply);
}

/* RFC 5034: AUTH [mechanism [initial-response]]. */
static void
cmd_auth(struct session *s, char **argv, int argc)
{
	char unique[128], exporter[128], id[MAX_USERNAME_LEN + 1];
	unsigned int offered = mechs_offered(s);
	const char *ir = argc > 1 ? argv[1] : NULL;
	struct ipc_msg *m;
	uint32_t flags = 0;
	struct buf b;
	int mech;

	if (argc == 0) {
		/* RFC 1734's listing, which clients still probe. */
		buf_init(&b, 1024);
		if (buf_addstr(&b, "+OK Mechanisms follow") == -1 ||
		    add_mechs(&b, offered, "\r\n") == -1 ||
		    buf_addstr(&b, "\r\n.\r\n") == -1) {
			buf_clear(&b);
			session_reply(s, "-ERR [SYS/TEMP] Out of memory.");
			return;
		}
		session_raw(s, b.data, b.len);
		buf_clear(&b);
		return;
	}
	mech = config_mech_find(argv[0]);
	if (mech < 0 || !(offered & MECH_BIT(mech))) {
		if (mech >= 0 && !s->plaintext_ok &&
		    (cfg->mechanisms & MECH_BIT(mech)) &&
		    (mech == MECH_PLAIN || mech == MECH_LOGIN ||
		    mech == MECH_OAUTHBEARER || mech == MECH_XOAUTH2)) {
			refuse_plaintext(s);
			return;
		}
		bad_command(s, "-ERR Unsupported authentication mechanism.");
		return;
	}
	if (ir != NULL) {
		flags |= SASL_F_IR;
		if (strcmp(ir, "=") == 0)
			ir = "";
		else if (ir[0] == '\0' || !b64_syntax_ok(ir)) {
			bad_command(s, "-ERR Invalid base64 data.");
			return;
		}
	}
	if (offered & (MECH_BIT(MECH_SCRAM_SHA_1_PLUS) |
	    MECH_BIT(MECH_SCRAM_SHA_256_PLUS)))
		flags |= SASL_F_PLUS_OFFERED;
	if ((m = malloc(sizeof(*m))) == NULL) {
		session_close(s, "no-memory");
		return;
	}
	session_tls_bindings(s, unique, exporter, sizeof(unique));
	if (mech == MECH_EXTERNAL)
		session_tls_identity(s, id, sizeof(id));
	else
		id[0] = '\0';
	ipc_msg_init(m, MSG_SASL_START, s->id);
	ipc_put_str(m, config_mech_name(mech));
	ipc_put_u32(m, flags);
	ipc_put_str(m, unique);
	ipc_put_str(m, exporter);
	ipc_put_str(m, id);
	ipc_put_str(m, ir != NULL ? ir : "");
	ipc_put_str(m, s->peer_ip);
	s->user[0] = '\0';
	s->have_user = false;
	s->sasl_steps = 0;
	s->sasl = true;
	start_auth(s, m, config_mech_name(mech));
	if (!s->waiting)
		s->sasl = false;
	ipc_msg_wipe(m);
	free(m);
	explicit_bzero(unique, sizeof(unique));
	explicit_bzero(exporter, sizeof(exporter));
}

void
commands_sasl_challenge(struct session *s, const char *b64)
{
	s->waiting = false;
	session_reply(s, "+ %s", b64);
	session_input(s);
}

void
commands_sasl_line(struct session *s, char *line)
{
	struct ipc_msg *m;

	if (strcmp(line, "*") == 0) {
		/* RFC 5034 section 4: the client cancels. */
		pop3_sasl_abort(s);
		log_info("pop3 session=%016" PRIx64 " login cancelled"
		    " method=%s", s->conn_id, s->method);
		session_reply(s, "-ERR Authentication cancelled.");
		return;
	}
	if (!b64_syntax_ok(line)) {
		sasl_end_bad(s, "-ERR Invalid base64 data.");
		return;
	}
	if (++s->sasl_steps > SASL_MAX_STEPS) {
		pop3_sasl_abort(s);
		session_auth_reply(s, AUTH_STATUS_FAIL, NULL);
		return;
	}
	if ((m = malloc(sizeof(*m))) == NULL) {
		session_close(s, "no-memory");
		return;
	}
	ipc_msg_init(m, MSG_SASL_STEP, s->id);
	ipc_put_str(m, line);
	if (pop3_auth_continue(s, m) == -1) {
		s->sasl = false;
		session_auth_reply(s, AUTH_STATUS_TEMPFAIL, NULL);
	} else
		s->waiting = true;
	ipc_msg_wipe(m);
	free(m);
}

/* RFC 2595 section 4. */
static void
cmd_stls(struct session *s, char **argv, int argc)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);

	if (tls_srv == NULL) {
		session_reply(s, "-ERR TLS is not available.");
		return;
	}
	if (s->tls) {
		session_reply(s, "-ERR TLS is already active.");
		return;
	}
	session_reply(s, "+OK Begin TLS negotiation now.");
	/* Whatever the client pipelined after STLS was sent in the clear
	 * and could have been injected: it is dropped, never run inside
	 * TLS (CVE-2011-0411). */
	evbuffer_drain(in, evbuffer_get_length(in));
	s->stls_pending = true;
	bufferevent_disable(s->bev, EV_READ);
	/* The switch happens when the output is empty. */
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
}

static void
cmd_quit(struct session *s, char **argv, int argc)
{
	uint32_t removed = 0;
	char err[512];
	enum store_rc rc;

	if (s->state == STATE_AUTHORIZATION) {
		session_reply(s, "+OK Bye.");
		session_close(s, "quit");
		return;
	}
	/* RFC 1939 section 6: the UPDATE state.  Retrieval times matter
	 * only to EXPIRE; without it and without DELE there is nothing to
	 * write, and a read-only session costs no fsync. */
	s->state = STATE_UPDATE;
	if (s->n_dele == 0 && s->expire_days < 0)
		rc = STORE_OK;
	else
		rc = mailbox_commit(s->mb, s->deleted, s->expire_days < 0 ?
		    NULL : s->retrieved, s->expire_days, time(NULL),
		    &removed, err, sizeof(err));
	if (rc != STORE_OK) {
		log_warnx("pop3 session=%016" PRIx64 " user=%s update failed:"
		    " %s", s->conn_id, s->user, err);
		session_reply(s, "-ERR [SYS/TEMP] Some deleted messages were"
		    " not removed.");
	} else
		session_reply(s, "+OK Bye, %" PRIu32 " message%s deleted.",
		    removed, removed == 1 ? "" : "s");
	session_close(s, "quit");
}

static void
cmd_noop(struct session *s, char **argv, int argc)
{
	session_reply(s, "+OK");
}

static void
cmd_stat(struct session *s, char **argv, int argc)
{
	session_reply(s, "+OK %" PRIu32 " %" PRIu64, s->live_count,
	    s->live_octets);
}

/*
 * One step of a LIST or UIDL listing: "N SIZE" or "N UIDL" lines for the
 * messages not deleted, written straight into LISTING_STEP octets
 * reserved in the output, and the terminator after the last.  1 when
 * done.
 */
static int
listing_cont(struct session *s, bool uidl)
{
	/* A line: a message number, a space, a UIDL (longer than a size),
	 * CRLF; then room for the terminator. */
	enum { LINE_MAX = 10 + 1 + UIDL_MAX_LEN + 2, END = 3 };
	struct evbuffer *out = bufferevent_get_output(s->bev);
	struct evbuffer_iovec v;
	char *p, *end;

	if (evbuffer_reserve_space(out, LISTING_STEP, &v, 1) < 1 ||
	    v.iov_len < LINE_MAX + END) {
		session_close(s, "no-memory");
		return 0;
	}
	p = v.iov_base;
	end = p + v.iov_len - END;
	for (; s->next_idx < s->count && end - p >= LINE_MAX; s->next_idx++) {
		const struct msg_info *mi;

		if (s->deleted[s->next_idx])
			continue;
		mi = mailbox_msg(s->mb, s->next_idx);
		p += fmt_u64(p, s->next_idx + 1);
		*p++ = ' ';
		if (uidl) {
			size_t n = strlen(mi->uidl);

			memcpy(p, mi->uidl, n);
			p += n;
		} else
			p += fmt_u64(p, mi->size);
		*p++ = '\r';
		*p++ = '\n';
	}
	if (s->next_idx == s->count) {
		memcpy(p, ".\r\n", END);
		p += END;
	}
	v.iov_len = (size_t)(p - (char *)v.iov_base);
	if (evbuffer_commit_space(out, &v, 1) == -1) {
		session_close(s, "no-memory");
		return 0;
	}
	return s->next_idx == s->count;
}

static int
list_cont(struct session *s)
{
	return listing_cont(s, false);
}

static int
uidl_cont(struct session *s)
{
	return listing_cont(s, true);
}

static void
cmd_list(struct session *s, char **argv, int argc)
{
	uint32_t idx;

	if (argc == 1) {
		if (get_msg(s, argv[0], &idx))
			session_reply(s, "+OK %" PRIu32 " %" PRIu64, idx + 1,
			    mailbox_msg(s->mb, idx)->size);
		return;
	}
	session_reply(s, "+OK %" PRIu32 " messages (%" PRIu64 " octets)",
	    s->live_count, s->live_octets);
	s->next_idx = 0;
	session_start_cont(s, list_cont);
}

static void
cmd_uidl(struct session *s, char **argv, int argc)
{
	uint32_t idx;

	if (argc == 1) {
		if (get_msg(s, argv[0], &idx))
			session_reply(s, "+OK %" PRIu32 " %s", idx + 1,
			    mailbox_msg(s->mb, idx)->uidl);
		return;
	}
	session_reply(s, "+OK");
	s->next_idx = 0;
	session_start_cont(s, uidl_cont);
}

static int
msg_finish(struct session *s)
{
	close(s->msg_fd);
	s->msg_fd = -1;
	session_raw(s, ".\r\n", 3);
	return 1;
}

/* Message octets on their way to the wire encoder (retr_cont,
 * commands_prefetch); the process serves one call at a time. */
static uint8_t chunk[RETR_CHUNK];

/* Streams the message through the wire encoder, one chunk a call. */
static int
retr_cont(struct session *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	uint64_t before = s->enc.octets;
	ssize_t n;

	if (wire_enc_done(&s->enc))
		return msg_finish(s);
	/* Read exactly the octets the size was computed from: a file that
	 * grows meanwhile must not make RETR send more than it said. */
	n = s->msg_left == 0 ? 0 : read(s->msg_fd, chunk,
	    s->msg_left < sizeof(chunk) ? (size_t)s->msg_left : sizeof(chunk));
	if (n == -1 && errno == EINTR)
		return 0;
	if (n == 0 && s->msg_left > 0) {
		errno = EIO;
		n = -1;		/* it shrank: never end a short message */
	}
	if (n == -1) {
		/* Cannot finish the reply: the client must not take a
		 * truncated message for a whole one. */
		log_warn("pop3 session=%016" PRIx64 " user=%s read of message"
		    " %" PRIu32 " failed", s->conn_id, s->user, s->next_idx + 1);
		close(s->msg_fd);
		s->msg_fd = -1;
		session_close(s, "io-error");
		return 0;
	}
	if (n == 0) {
		if (wire_enc_finish(&s->enc, out) == -1)
			goto nomem;
		s->bytes_out += s->enc.octets - before;
		return msg_finish(s);
	}
	s->msg_left -= (uint64_t)n;
	if (wire_enc_feed(&s->enc, chunk, (size_t)n, out) == -1)
		goto nomem;
	if (s->msg_left == 0) {
		/* All read: end the reply now, so that a small message and
		 * its terminator leave in one write. */
		if (wire_enc_finish(&s->enc, out) == -1)
			goto nomem;
		s->bytes_out += s->enc.octets - before;
		return msg_finish(s);
	}
	s->bytes_out += s->enc.octets - before;
	return 0;
nomem:
	close(s->msg_fd);
	s->msg_fd = -1;
	session_close(s, "no-memory");
	return 0;
}

/*
 * Finds the lines of a message stored in wire form (but for byte-
 * stuffing) that start with '.'.  The file is read once, which also
 * checks the form, so a file that is not what its sizes say goes through
 * the encoder.  The count, or -1.
 */
static long
stored_dot_lines(int fd, uint64_t size, uint64_t *dots, size_t max)
{
	static uint8_t buf[RETR_CHUNK];
	struct wire_dots d;
	uint64_t off = 0;
	ssize_t n;

	wire_dots_init(&d, dots, max);
	while (off < size && !d.bad) {
		n = pread(fd, buf, size - off < sizeof(buf) ?
		    (size_t)(size - off) : sizeof(buf), (off_t)off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		wire_dots_feed(&d, buf, (size_t)n);
		off += (uint64_t)n;
	}
	return wire_dots_end(&d);
}

/*
 * A stored-wire reply (send_stored_wire) in progress.  Its parts: runs
 * of the file, [0, dots[0]), [dots[0], dots[1]), ..., [dots[ndots - 1],
 * size), each but the first preceded by one stuffed '.'.  The
 * terminator follows.
 */
struct wire_reply {
	int		 fd;
	uint64_t	 size;
	const uint64_t	*dots;
	long		 ndots;
	long		 part;		/* the next run */
	uint64_t	 from;		/* the next octet of the file */
	bool		 dot_due;	/* run part's '.' not yet sent */
};

static ssize_t
try_send(int sock, const void *p, size_t n, bool more)
{
	ssize_t r;

	do {
		r = send(sock, p, n, MSG_NOSIGNAL | MSG_DONTWAIT |
		    (more ? MSG_MORE : 0));
	} while (r == -1 && errno == EINTR);
	return r;
}

/* Sends parts on the socket while it takes them, without waiting. */
static void
reply_direct(struct wire_reply *w, int sock)
{
	ssize_t r;

	for (; w->part <= w->ndots; w->part++, w->dot_due = true) {
		uint64_t to = w->part < w->ndots ? w->dots[w->part] : w->size;

		if (w->dot_due) {
			if (try_send(sock, ".", 1, true) != 1)
				return;
			w->dot_due = false;
		}
		while (w->from < to) {
			off_t o = (off_t)w->from;

			r = sendfile(sock, w->fd, &o, (size_t)(to - w->from));
			if (r == -1 && errno == EINTR)
				continue;
			if (r <= 0)
				return;	/* full, or an error the queue meets */
			w->from += (uint64_t)r;
		}
	}
}

/* Queues the parts not yet sent as file segments (which own the fd
 * from now on).  0, or -1 when the output buffer cannot take them. */
static int
reply_queue(struct wire_reply *w, struct evbuffer *out)
{
	struct evbuffer_file_segment *seg;
	int rc = 0;

	seg = evbuffer_file_segment_new(w->fd, 0, (ev_off_t)w->size,
	    EVBUF_FS_CLOSE_ON_FREE);
	if (seg == NULL) {
		(void)close(w->fd);
		return -1;
	}
	for (; w->part <= w->ndots; w->part++, w->dot_due = true) {
		uint64_t to = w->part < w->ndots ? w->dots[w->part] : w->size;

		if (w->dot_due && evbuffer_add(out, ".", 1) == -1)
			rc = -1;
		if (rc == 0 && to > w->from && evbuffer_add_file_segment(out,
		    seg, (ev_off_t)w->from, (ev_off_t)(to - w->from)) == -1)
			rc = -1;
		if (rc == -1)
			break;
		w->from = to;
	}
	evbuffer_file_segment_free(seg);
	return rc;
}

/*
 * RETR of a message whose stored octets are its wire form before
 * byte-stuffing (its wire size equals its stored size, mbox quoting
 * aside; the descriptor reads a Maildir file from offset 0): the status
 * line, the file by sendfile in runs between the lines that start with
 * '.', a '.' before each of those lines, and the terminator.  When no
 * earlier reply is waiting, the parts go straight to the socket, the
 * status line held back (MSG_MORE) to leave with the first run; what the
 * socket does not take is queued.  1: sent or queued, fd is consumed;
 * 0: not that form, nothing sent, fd is still the caller's; -1: out of
 * memory half-way, the session is closed (s may be gone).
 */
static int
send_stored_wire(struct session *s, const struct msg_info *mi, int fd)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	uint64_t dots[SENDFILE_MAX_DOT_LINES];
	struct wire_reply w;
	char line[64];
	int len;
	ssize_t r;

	if (mi->size != mi->stored_size || mi->stored_size == 0 ||
	    (mi->flags & MSG_MBOXRD) ||
	    mi->stored_size > (uint64_t)EV_SSIZE_MAX)
		return 0;
	w.fd = fd;
	w.size = mi->stored_size;
	w.dots = dots;
	w.part = 0;
	w.from = 0;
	w.dot_due = false;
	if (mi->flags & MSG_WIRE_CLEAN)
		w.ndots = 0;	/* checked when it was indexed */
	else if ((w.ndots = stored_dot_lines(fd, mi->stored_size, dots,
	    SENDFILE_MAX_DOT_LINES)) < 0)
		return 0;
	len = snprintf(line, sizeof(line), "+OK %" PRIu64 " octets\r\n",
	    mi->size);
	r = 0;
	if (evbuffer_get_length(out) == 0 && !s->closing) {
		r = try_send(s->fd, line, (size_t)len, true);
		if (r == len)
			reply_direct(&w, s->fd);
		else if (r < 0)
			r = 0;
	}
	if (r < len && evbuffer_add(out, line + r, (size_t)(len - r)) == -1)
		goto nomem;
	s->bytes_out += mi->stored_size;
	if (w.part > w.ndots) {
		/* All of the message went out: so may the terminator. */
		r = try_send(s->fd, ".\r\n", 3, false);
		(void)close(fd);
		if (r < 0)
			r = 0;
		if (r < 3 && evbuffer_add(out, &".\r\n"[r], (size_t)(3 - r)) ==
		    -1)
			goto closed;
		return 1;
	}
	if (reply_queue(&w, out) == -1 || evbuffer_add(out, ".\r\n", 3) == -1)
		goto closed;
	return 1;
nomem:
	(void)close(fd);
closed:
	/* Part of the reply may be out: it cannot be taken back. */
	session_close(s, "no-memory");
	return -1;
}

/*
 * Reads and encodes the message after the last one sent by RETR into
 * s->prefetch, while the client reads that one: a client that fetches
 * one message at a time asks for it next, and its RETR is then answered
 * at once.  Only for a client that waits for each reply (one that
 * pipelines keeps the server busy anyway), and only a message of
 * RETR_PREFETCH_MIN to RETR_PREFETCH_MAX octets, in wire form or not;
 * anything unusual (a file gone or changed, a short read) leaves
 * nothing, and the RETR, if it comes, takes the usual path.  The
 * octets are the ones RETR would send: the file does not change in
 * between (Maildir files are written once; an mbox append goes after
 * the snapshot's messages).
 */
void
commands_prefetch(struct session *s)
{
	const struct msg_info *mi;
	struct wire_enc enc;
	uint32_t idx = s->retr_next;
	uint64_t left;
	ssize_t n;
	int fd;

	s->retr_next = NO_MSG;
	if (s->pipelines || s->state != STATE_TRANSACTION ||
	    idx >= s->count || s->deleted[idx] || (s->prefetch != NULL &&
	    evbuffer_get_length(s->prefetch) > 0))
		return;
	mi = mailbox_msg(s->mb, idx);
	if (mi->size < RETR_PREFETCH_MIN || mi->size > RETR_PREFETCH_MAX)
		return;
	if (s->prefetch == NULL && (s->prefetch = evbuffer_new()) == NULL)
		return;
	if (mailbox_msg_open(s->mb, idx, &fd) != STORE_OK)
		return;
	wire_enc_init(&enc, true, WIRE_ALL_LINES);
	if (mi->flags & MSG_MBOXRD)
		wire_enc_mboxrd(&enc);
	for (left = mi->stored_size; left > 0; left -= (uint64_t)n) {
		n = read(fd, chunk, left < sizeof(chunk) ? (size_t)left :
		    sizeof(chunk));
		if (n == -1 && errno == EINTR)
			n = 0;
		else if (n <= 0 || wire_enc_feed(&enc, chunk, (size_t)n,
		    s->prefetch) == -1)
			break;
	}
	(void)close(fd);
	if (left > 0 || wire_enc_finish(&enc, s->prefetch) == -1 ||
	    enc.octets != mi->size) {
		(void)evbuffer_drain(s->prefetch,
		    evbuffer_get_length(s->prefetch));
		return;
	}
	s->prefetch_idx = idx;
}

/* RETR of the prefetched message: 1 when it was sent so. */
static int
send_prefetched(struct session *s, uint32_t idx)
{
	const struct msg_info *mi = mailbox_msg(s->mb, idx);

	if (s->prefetch == NULL || evbuffer_get_length(s->prefetch) == 0)
		return 0;
	if (s->prefetch_idx != idx) {
		(void)evbuffer_drain(s->prefetch,
		    evbuffer_get_length(s->prefetch));
		return 0;
	}
	session_reply(s, "+OK %" PRIu64 " octets", mi->size);
	if (evbuffer_add_buffer(bufferevent_get_output(s->bev),
	    s->prefetch) == -1) {
		session_close(s, "no-memory");
		return 1;
	}
	session_raw(s, ".\r\n", 3);
	s->bytes_out += mi->size;
	return 1;
}

static void
send_message(struct session *s, uint32_t idx, uint64_t top_lines)
{
	const struct msg_info *mi = mailbox_msg(s->mb, idx);
	enum store_rc rc;
	int fd;

	if (top_lines == WIRE_ALL_LINES) {
		s->retr_next = idx + 1;
		if (send_prefetched(s, idx)) {
			s->retrieved[idx] = true;
			s->n_retr++;
			return;
		}
	}
	rc = mailbox_msg_open(s->mb, idx, &fd);
	if (rc == STORE_GONE) {
		session_reply(s, "-ERR [SYS/TEMP] Message was removed.");
		return;
	}
	if (rc != STORE_OK) {
		session_reply(s, "-ERR [SYS/TEMP] Cannot read the message.");
		return;
	}
	if (top_lines == WIRE_ALL_LINES) {
		s->retrieved[idx] = true;
		s->n_retr++;
		if (!s->tls && send_stored_wire(s, mi, fd) != 0)
			return;
		session_reply(s, "+OK %" PRIu64 " octets", mi->size);
	} else
		session_reply(s, "+OK");
	s->msg_fd = fd;
	s->msg_left = mi->stored_size;
	s->next_idx = idx;
	wire_enc_init(&s->enc, true, top_lines);
	if (mi->flags & MSG_MBOXRD)
		wire_enc_mboxrd(&s->enc);
	session_start_cont(s, retr_cont);
}

static void
cmd_retr(struct session *s, char **argv, int argc)
{
	uint32_t idx;

	if (get_msg(s, argv[0], &idx))
		send_message(s, idx, WIRE_ALL_LINES);
}

static void
cmd_top(struct session *s, char **argv, int argc)
{
	uint64_t lines;
	uint32_t idx;

	switch (parse_u64(argv[1], WIRE_ALL_LINES - 1, &lines)) {
	case PARSE_OK:
		break;
	case PARSE_RANGE:
		lines = WIRE_ALL_LINES - 1;	/* more than any message */
		break;
	default:
		bad_command(s, "-ERR Invalid line count.");
		return;
	}
	if (get_msg(s, argv[0], &idx))
		send_message(s, idx, lines);
}

static void
cmd_dele(struct session *s, char **argv, int argc)
{
	uint32_t idx;

	if (!get_msg(s, argv[0], &idx))
		return;
	s->deleted[idx] = true;
	s->live_count--;
	s->live_octets -= mailbox_msg(s->mb, idx)->size;
	s->n_dele++;
	session_reply(s, "+OK Message %" PRIu32 " deleted.", idx + 1);
}

static void
cmd_rset(struct session *s, char **argv, int argc)
{
	uint32_t i;

	for (i = 0; i < s->count; i++)
		if (s->deleted[i]) {
			s->deleted[i] = false;
			s->live_count++;
			s->live_octets += mailbox_msg(s->mb, i)->size;
		}
	s->n_dele = 0;
	session_reply(s, "+OK %" PRIu32 " messages (%" PRIu64 " octets).",
	    s->live_count, s->live_octets);
}

void
commands_release_mailbox(struct session *s)
{
	if (s->prefetch != NULL)
		evbuffer_free(s->prefetch);
	s->prefetch = NULL;
	s->retr_next = NO_MSG;
	if (s->mb != NULL)
		mailbox_close(&s->mb);
	free(s->deleted);
	free(s->retrieved);
	s->deleted = s->retrieved = NULL;
	s->count = 0;
}

/* LOGIN-DELAY (RFC 2449 section 6.5): enforced per mailbox, and only
 * after valid credentials, so the reply tells an attacker nothing. */
static bool
login_too_soon(const struct session *s, const char *path, time_t now)
{
	time_t prev;

	if (s->login_delay_s == 0)
		return false;
	if (mailbox_last_login(path, &prev) != STORE_OK)
		return false;
	return prev != 0 && now >= prev &&
	    (uint64_t)(now - prev) < s->login_delay_s;
}

/*
 * What the session would hold with its mailbox open, by the estimate of
 * limits.h (session_memory_limit); the mailbox's octets into *octets_r.
 * At most MAX_MESSAGES_PER_MAILBOX messages of bounded strings: no
 * overflow.
 */
static uint64_t
session_memory(const struct session *s, uint64_t *octets_r)
{
	uint64_t mem = SESSION_MEM_FIXED, octets = 0;
	uint32_t i;

	for (i = 0; i < s->count; i++) {
		const struct msg_info *mi = mailbox_msg(s->mb, i);

		mem += SESSION_MEM_PER_MESSAGE + strlen(mi->uidl) +
		    2 * strlen(mi->name);
		octets += mi->size;
	}
	*octets_r = octets;
	return mem;
}

void
commands_login_ok(struct session *s)
{
	struct mailbox_opts opts = { cfg->lock_session, true,
	    cfg->uidl_guard_share, cfg->uidl_guard_min };
	char path[MAX_PATH_LEN];
	time_t now = time(NULL), prev;
	uint64_t mem, octets;
	enum store_rc rc;
	char err[512];

	s->have_user = false;
	if (config_mailbox_path(cfg, s->user, path, sizeof(path)) == -1) {
		log_warnx("pop3 session=%016" PRIx64 " login failed user=%s"
		    " reason=bad-mailbox-path", s->conn_id, s->user);
		session_reply(s, "-ERR [SYS/PERM] No mailbox for this user.");
		return;
	}
	if (login_too_soon(s, path, now)) {
		log_info("pop3 session=%016" PRIx64 " login refused user=%s"
		    " reason=login-delay", s->conn_id, s->user);
		session_reply(s, "-ERR [LOGIN-DELAY] Minimum time between"
		    " logins is %" PRIu64 " seconds.", s->login_delay_s);
		return;
	}
	/* mailbox_open creates a missing Maildir (opts.create). */
	store_set_mbox_limits(cfg->mbox_lock_timeout_ms,
	    cfg->mbox_dotlock_stale_ms / 1000);
	rc = mailbox_open(path, &opts, &s->mb, err, sizeof(err));
	switch (rc) {
	case STORE_OK:
		break;
	case STORE_IN_USE:
		log_info("pop3 session=%016" PRIx64 " login refused user=%s"
		    " reason=in-use", s->conn_id, s->user);
		session_reply(s, "-ERR [IN-USE] Mailbox is locked by another"
		    " session.");
		return;
	default:
		log_warnx("pop3 session=%016" PRIx64 " user=%s mailbox: %s",
		    s->conn_id, s->user, err);
		session_reply(s, rc == STORE_PERM ?
		    "-ERR [SYS/PERM] The mailbox is damaged; contact the"
		    " administrator." :
		    "-ERR [SYS/TEMP] Cannot open the mailbox, try later.");
		return;
	}
	s->count = mailbox_count(s->mb);
	/* Before the session allocates anything per message. */
	if ((mem = session_memory(s, &octets)) > cfg->session_memory_limit) {
		log_warnx("pop3 session=%016" PRIx64 " login refused user=%s"
		    " reason=session-memory-limit messages=%" PRIu32
		    " estimated_bytes=%" PRIu64 " session_memory_limit=%"
		    PRIu64, s->conn_id, s->user, s->count, mem,
		    cfg->session_memory_limit);
		commands_release_mailbox(s);
		session_reply(s, "-ERR [SYS/PERM] The mailbox is too large for"
		    " this server (session_memory_limit); contact the"
		    " administrator.");
		return;
	}
	s->deleted = calloc(s->count + 1, sizeof(bool));
	s->retrieved = calloc(s->count + 1, sizeof(bool));
	if (s->deleted == NULL || s->retrieved == NULL) {
		commands_release_mailbox(s);
		session_reply(s, "-ERR [SYS/TEMP] Out of memory.");
		return;
	}
	if (s->login_delay_s > 0 &&
	    mailbox_login_stamp(path, now, &prev) != STORE_OK)
		log_warnx("pop3 session=%016" PRIx64 " user=%s cannot record"
		    " the login time", s->conn_id, s->user);
	s->live_count = s->count;
	s->live_octets = octets;
	s->state = STATE_TRANSACTION;
	log_info("pop3 session=%016" PRIx64 " login user=%s method=%s"
	    " messages=%" PRIu32 " estimated_bytes=%" PRIu64, s->conn_id,
	    s->user, s->method != NULL ? s->method : "USER", s->count, mem);
	session_reply(s, "+OK Logged in, %" PRIu32 " messages (%" PRIu64
	    " octets).", s->live_count, s->live_octets);
}
