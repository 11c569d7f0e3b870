/*
 * authd.c: the auth worker process.
 *
 * The only process that reads the user database and runs password
 * hashing, so that a 20 ms yescrypt check never stalls a session loop.
 * Its peers are pop3 workers and the lmtp process (which may only ask
 * whether a recipient exists, and its quotas), which it does not trust:
 * every request is length-checked, and a malformed one closes that
 * channel.  An unknown user costs the same hash as a known one, and the
 * reply never tells which of the two failed.  Secrets are wiped as soon
 * as they are used.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth/jwt.h"
#include "auth/sasl.h"
#include "auth/userdb.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lmtp/lmtp_session.h"
#include "posternd.h"

/* Open SASL exchanges of one pop3 worker, by session id. */
#define XCHG_BUCKETS	256

struct xchg {
	struct xchg		*next;
	uint64_t		 id;
	uint64_t		 started_ms;
	struct sasl_xchg	*sx;
	char			 mech[24];
};

struct peer {
	struct peer	*next;
	struct ipc_chan	*chan;
	bool		 lmtp;		/* the lmtp process: lookups only */
	struct xchg	*xchg[XCHG_BUCKETS];
};

static struct event_base *base;
static struct userdb *db;
static struct peer *peers;
static bool draining;
static unsigned int n_peers;
static unsigned int n_xchg;
static uint32_t caps;
static struct sasl_env env;
static struct event *ev_reap;

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint32_t
current_caps(void)
{
	unsigned int c = db != NULL ? userdb_caps(db) : 0;
	uint32_t f = 0;

	if (c & USERDB_CAP_CRYPT)
		f |= AUTH_HELLO_HAS_CRYPT;
	if (c & USERDB_CAP_SECRET)
		f |= AUTH_HELLO_HAS_SECRET;
	if (c & USERDB_CAP_SCRAM_SHA1)
		f |= AUTH_HELLO_HAS_SCRAM1;
	if (c & USERDB_CAP_SCRAM_SHA256)
		f |= AUTH_HELLO_HAS_SCRAM256;
	if (env.keys != NULL && jwt_keyring_count(env.keys) > 0)
		f |= AUTH_HELLO_HAS_OAUTH;
	return f;
}

static void
send_hello(struct peer *p)
{
	struct ipc_msg *m = malloc(sizeof(*m));

	if (m == NULL)
		fatal("malloc");
	ipc_msg_init(m, MSG_AUTH_HELLO, 0);
	ipc_put_u32(m, caps);
	(void)ipc_send(p->chan, m);
	free(m);
}

static void
db_refresh(void)
{
	char err[512];
	uint32_t now;
	struct peer *p;

	if (db == NULL) {
		if (userdb_open(cfg->user_db, cfg->user_db_type, &db, err,
		    sizeof(err)) == -1) {
			log_warnx("auth: %s", err);
			db = NULL;
		}
	} else if (userdb_refresh(db, err, sizeof(err)) == -1)
		log_warnx("auth: %s (keeping the previous contents)", err);
	env.db = db;
	/* What the pop3 workers offer follows the database. */
	if ((now = current_caps()) != caps) {
		caps = now;
		for (p = peers; p != NULL; p = p->next)
			send_hello(p);
	}
}

static uint32_t
wire_delay(int64_t v)
{
	return v < 0 || v > UINT32_MAX - 2 ? AUTH_USER_DEFAULT : (uint32_t)v;
}

static uint32_t
wire_expire(int64_t v)
{
	if (v == -1)
		return AUTH_EXPIRE_NEVER;
	return v < 0 || v > UINT32_MAX - 2 ? AUTH_USER_DEFAULT : (uint32_t)v;
}

static void
reply(struct ipc_chan *ch, uint64_t id, enum auth_status st, const char *user,
    int64_t login_delay, int64_t expire, const char *reason)
{
	struct ipc_msg *m = malloc(sizeof(*m));

	if (m == NULL)
		fatal("malloc");
	ipc_msg_init(m, MSG_AUTH_REPLY, id);
	ipc_put_u32(m, (uint32_t)st);
	ipc_put_str(m, user);
	ipc_put_u32(m, wire_delay(login_delay));
	ipc_put_u32(m, wire_expire(expire));
	ipc_put_str(m, reason);
	(void)ipc_send(ch, m);
	free(m);
}

static void
check_pass(struct ipc_chan *ch, uint64_t id, const char *user,
    const char *pass)
{
	const struct user_rec *u;

	if (db == NULL) {
		reply(ch, id, AUTH_STATUS_TEMPFAIL, user, -1, -2, "no-userdb");
		return;
	}
	u = username_valid(user) ? userdb_lookup(db, user) : NULL;
	if (!user_password_ok(u, pass))
		reply(ch, id, AUTH_STATUS_FAIL, user, -1, -2,
		    u == NULL ? "unknown-user" : "bad-credentials");
	else if (u->disabled)
		reply(ch, id, AUTH_STATUS_FAIL, user, -1, -2, "disabled");
	else
		reply(ch, id, AUTH_STATUS_OK, user, u->login_delay_s,
		    u->expire_days, "ok");
}

static void
check_apop(struct ipc_chan *ch, uint64_t id, const char *user,
    const char *timestamp, const char *digest)
{
	const struct user_rec *u;
	const char *secret;

	if (db == NULL) {
		reply(ch, id, AUTH_STATUS_TEMPFAIL, user, -1, -2, "no-userdb");
		return;
	}
	u = username_valid(user) ? userdb_lookup(db, user) : NULL;
	secret = u != NULL ? u->secret : NULL;
	/* Compare against something either way, so timing says nothing. */
	if (!apop_verify(secret != NULL ? secret : "", timestamp, digest) ||
	    secret == NULL)
		reply(ch, id, AUTH_STATUS_FAIL, user, -1, -2,
		    u == NULL ? "unknown-user" : secret == NULL ?
		    "no-secret" : "bad-credentials");
	else if (u->disabled)
		reply(ch, id, AUTH_STATUS_FAIL, user, -1, -2, "disabled");
	else
		reply(ch, id, AUTH_STATUS_OK, user, u->login_delay_s,
		    u->expire_days, "ok");
}

/*
 * MSG_USER_LOOKUP from the lmtp process: the first of the names that is
 * a user, whether it is disabled, and its quotas.  No credential leaves
 * this process.
 */
static bool
user_lookup_msg(struct ipc_chan *ch, struct ipc_in *in)
{
	const char *names[LMTP_MAX_CANDIDATES];
	const struct user_rec *u = NULL;
	enum lmtp_user st = LMTP_USER_UNKNOWN;
	uint32_t n = ipc_get_u32(in), i;
	struct ipc_msg *m;
	char err[512];
	int rc;

	if (n == 0 || n > LMTP_MAX_CANDIDATES)
		return false;
	for (i = 0; i < n; i++)
		names[i] = ipc_get_str(in, MAX_USERNAME_LEN);
	if (!ipc_done(in))
		return false;
	db_refresh();
	if (db == NULL)
		st = LMTP_USER_TEMPFAIL;
	for (i = 0; i < n && db != NULL; i++) {
		if (!username_valid(names[i]))
			continue;
		rc = userdb_lookup_checked(db, names[i], &u, err,
		    sizeof(err));
		if (rc == -1) {
			log_warnx("auth: %s", err);
			st = LMTP_USER_TEMPFAIL;
			break;
		}
		if (rc == 1) {
			st = u->disabled ? LMTP_USER_DISABLED : LMTP_USER_OK;
			break;
		}
	}
	if ((m = malloc(sizeof(*m))) == NULL)
		fatal("malloc");
	ipc_msg_init(m, MSG_USER_INFO, in->id);
	ipc_put_u32(m, (uint32_t)st);
	ipc_put_str(m, st == LMTP_USER_OK || st == LMTP_USER_DISABLED ?
	    u->name : "");
	ipc_put_u64(m, st == LMTP_USER_OK ? u->quota_bytes : 0);
	ipc_put_u64(m, st == LMTP_USER_OK ? u->quota_messages : 0);
	(void)ipc_send(ch, m);
	free(m);
	return true;
}

/* ---- SASL exchanges ----------------------------------------------- */

static struct xchg **
xchg_find(struct peer *p, uint64_t id)
{
	struct xchg **pp;

	for (pp = &p->xchg[id % XCHG_BUCKETS]; *pp != NULL;
	    pp = &(*pp)->next)
		if ((*pp)->id == id)
			return pp;
	return NULL;
}

static void
xchg_drop(struct xchg **pp)
{
	struct xchg *e = *pp;

	*pp = e->next;
	sasl_free(&e->sx);
	free(e);
	n_xchg--;
}

/* Runs one step of e and answers; the exchange ends unless it
 * continues. */
static void
xchg_step(struct peer *p, struct xchg **pp, const char *in)
{
	struct xchg *e = *pp;
	struct sasl_outcome out;
	enum sasl_status st;
	enum auth_status ast;
	char *challenge = NULL;
	struct ipc_msg *m;

	db_refresh();
	st = sasl_step(e->sx, in, &challenge, &out);
	if (st == SASL_CONTINUE) {
		if ((m = malloc(sizeof(*m))) == NULL)
			fatal("malloc");
		ipc_msg_init(m, MSG_SASL_CHALLENGE, e->id);
		ipc_put_str(m, challenge);
		(void)ipc_send(p->chan, m);
		ipc_msg_wipe(m);
		free(m);
		free(challenge);
		return;
	}
	switch (st) {
	case SASL_OK:
		ast = AUTH_STATUS_OK;
		break;
	case SASL_TEMPFAIL:
		ast = AUTH_STATUS_TEMPFAIL;
		break;
	case SASL_BAD_INPUT:
		ast = AUTH_STATUS_BAD_INPUT;
		break;
	case SASL_FAIL:
	default:
		ast = AUTH_STATUS_FAIL;
		break;
	}
	if (st != SASL_OK)
		log_debug("auth: %s failed: %s", e->mech, out.reason);
	reply(p->chan, e->id, ast, out.user, out.login_delay_s,
	    out.expire_days, out.reason);
	xchg_drop(pp);
}

static bool
sasl_start_msg(struct peer *p, struct ipc_in *in)
{
	struct sasl_req req;
	struct xchg *e, **pp;
	const char *mech, *ir;
	uint32_t flags;
	int mi;

	mech = ipc_get_str(in, 32);
	flags = ipc_get_u32(in);
	req.cb_unique = ipc_get_str(in, 127);
	req.cb_exporter = ipc_get_str(in, 127);
	req.external_id = ipc_get_str(in, MAX_USERNAME_LEN);
	ir = ipc_get_str(in, HARD_MAX_SASL_LINE_LENGTH);
	(void)ipc_get_str(in, 63);	/* peer ip */
	if (!ipc_done(in) || (mi = config_mech_find(mech)) < 0)
		return false;
	req.mech = (enum sasl_mech)mi;
	req.plus_offered = (flags & SASL_F_PLUS_OFFERED) != 0;
	if ((pp = xchg_find(p, in->id)) != NULL)
		xchg_drop(pp);
	if (n_xchg >= SASL_MAX_OPEN || (e = calloc(1, sizeof(*e))) == NULL) {
		log_warnx("auth: %u SASL exchanges open, refusing more",
		    n_xchg);
		reply(p->chan, in->id, AUTH_STATUS_TEMPFAIL, "", -1, -2,
		    "too-many-exchanges");
		return true;
	}
	db_refresh();
	if ((e->sx = sasl_new(&env, &req)) == NULL) {
		free(e);
		reply(p->chan, in->id, AUTH_STATUS_TEMPFAIL, "", -1, -2,
		    "sasl-start");
		return true;
	}
	e->id = in->id;
	e->started_ms = mono_ms();
	(void)snprintf(e->mech, sizeof(e->mech), "%s", config_mech_name(mi));
	e->next = p->xchg[e->id % XCHG_BUCKETS];
	p->xchg[e->id % XCHG_BUCKETS] = e;
	n_xchg++;
	xchg_step(p, &p->xchg[e->id % XCHG_BUCKETS],
	    (flags & SASL_F_IR) ? ir : NULL);
	return true;
}

/* Exchanges the pop3 worker forgot (it aborts every one it ends, so
 * this is a safety net, not a path). */
static void
on_reap(evutil_socket_t fd, short what, void *arg)
{
	uint64_t now = mono_ms(), max = cfg->idle_timeout_ms * 2;
	struct peer *p;
	size_t i;

	for (p = peers; p != NULL; p = p->next)
		for (i = 0; i < XCHG_BUCKETS; i++) {
			struct xchg **pp = &p->xchg[i];

			while (*pp != NULL) {
				if (now - (*pp)->started_ms > max)
					xchg_drop(pp);
				else
					pp = &(*pp)->next;
			}
		}
}

static void peer_closed(struct ipc_chan *, void *);

static void
peer_msg(struct ipc_chan *ch, struct ipc_in *in, void *arg)
{
	struct peer *p = arg;
	struct xchg **pp;
	const char *user;

	if (in->fd >= 0) {
		close(in->fd);
		in->fd = -1;
	}
	/* The lmtp process may look users up, and do nothing else; a
	 * pop3 worker may not. */
	if (p->lmtp != (in->type == MSG_USER_LOOKUP))
		goto malformed;
	switch (in->type) {
	case MSG_USER_LOOKUP:
		if (!user_lookup_msg(ch, in))
			break;
		return;
	case MSG_AUTH_PASS: {
		const char *pass;

		user = ipc_get_str(in, MAX_USERNAME_LEN);
		pass = ipc_get_str(in, MAX_PASSWORD_LEN);
		if (!ipc_done(in))
			break;
		db_refresh();
		check_pass(ch, in->id, user, pass);
		explicit_bzero((void *)(uintptr_t)pass, strlen(pass));
		return;
	}
	case MSG_AUTH_APOP: {
		const char *ts, *digest;

		user = ipc_get_str(in, MAX_USERNAME_LEN);
		ts = ipc_get_str(in, 512);
		digest = ipc_get_str(in, 64);
		if (!ipc_done(in))
			break;
		db_refresh();
		check_apop(ch, in->id, user, ts, digest);
		return;
	}
	case MSG_SASL_START:
		if (!sasl_start_msg(p, in))
			break;
		return;
	case MSG_SASL_STEP: {
		const char *data = ipc_get_str(in, HARD_MAX_SASL_LINE_LENGTH);

		if (!ipc_done(in))
			break;
		if ((pp = xchg_find(p, in->id)) == NULL)
			reply(ch, in->id, AUTH_STATUS_FAIL, "", -1, -2,
			    "no-exchange");
		else
			xchg_step(p, pp, data);
		return;
	}
	case MSG_SASL_ABORT:
		if (!ipc_done(in))
			break;
		if ((pp = xchg_find(p, in->id)) != NULL)
			xchg_drop(pp);
		return;
	default:
		break;
	}
malformed:
	log_warnx("auth: malformed request from %s, closing its channel",
	    p->lmtp ? "the lmtp process" : "a pop3 worker");
	peer_closed(ch, arg);
}

static void
peer_closed(struct ipc_chan *ch, void *arg)
{
	struct peer **pp, *p = arg;

	size_t i;

	for (pp = &peers; *pp != NULL; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	for (i = 0; i < XCHG_BUCKETS; i++)
		while (p->xchg[i] != NULL)
			xchg_drop(&p->xchg[i]);
	ipc_chan_free(&p->chan);
	free(p);
	n_peers--;
	if (draining && n_peers == 0)
		event_base_loopbreak(base);
}

static void
add_peer(int fd, bool lmtp)
{
	struct peer *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		fatal("calloc");
	p->lmtp = lmtp;
	p->chan = ipc_chan_new(base, fd, peer_msg, peer_closed, p);
	if (p->chan == NULL)
		fatalx("auth: cannot watch a channel");
	p->next = peers;
	peers = p;
	n_peers++;
	send_hello(p);
}

static void
master_msg(struct ipc_chan *ch, struct ipc_in *in, void *arg)
{
	switch (in->type) {
	case MSG_AUTH_CHAN: {
		uint32_t slot = ipc_get_u32(in);

		if (ipc_done(in) && in->fd >= 0) {
			add_peer(in->fd, slot == AUTH_PEER_LMTP);
			return;
		}
		break;
	}
	case MSG_DRAIN:
		draining = true;
		if (n_peers == 0)
			event_base_loopbreak(base);
		break;
	default:
		log_warnx("auth: unexpected message %u from the master",
		    in->type);
	}
	if (in->fd >= 0)
		close(in->fd);
}

static void
master_closed(struct ipc_chan *ch, void *arg)
{
	event_base_loopbreak(base);
}

static void
on_term(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(base);
}

void
auth_worker_main(int master_fd, unsigned int slot)
{
	struct ipc_chan *master;
	struct event *ev_term, *ev_int;

	struct timeval reap_tv = { 60, 0 };
	char err[512];
	size_t i;

	log_set_ident("posternd/auth");
	/* Token issuers' keys are read before the sandbox closes. */
	env.cfg = cfg;
	memcpy(env.fake_key, auth_fake_key, sizeof(env.fake_key));
	if (cfg->n_oauth_issuers > 0 &&
	    (env.keys = jwt_keyring_new()) == NULL)
		fatalx("auth: out of memory");
	for (i = 0; i < cfg->n_oauth_issuers; i++)
		if (jwt_keyring_add(env.keys, cfg->oauth_issuers[i].issuer,
		    cfg->oauth_issuers[i].key, err, sizeof(err)) == -1)
			log_warnx("auth: oauth_issuer %s: %s",
			    cfg->oauth_issuers[i].issuer, err);
	if (sasl_init() == -1)
		fatalx("auth: GNU SASL cannot start");
	privsep_drop(cfg, "auth");
	if ((base = event_base_new()) == NULL)
		fatalx("auth: cannot create the event loop");
	db_refresh();
	(void)pw_dummy_hash();
	if ((ev_reap = event_new(base, -1, EV_PERSIST, on_reap, NULL)) ==
	    NULL || event_add(ev_reap, &reap_tv) == -1)
		fatalx("auth: cannot set up the event loop");
	master = ipc_chan_new(base, master_fd, master_msg, master_closed,
	    NULL);
	ev_term = evsignal_new(base, SIGTERM, on_term, NULL);
	ev_int = evsignal_new(base, SIGINT, on_term, NULL);
	if (master == NULL || ev_term == NULL || ev_int == NULL ||
	    evsignal_add(ev_term, NULL) == -1 ||
	    evsignal_add(ev_int, NULL) == -1)
		fatalx("auth: cannot set up the event loop");
	event_base_dispatch(base);
	_exit(0);
}
