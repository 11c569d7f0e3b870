/*
 * authd.c: the auth worker process.
 *
 * The only process that reads the user database and runs password
 * hashing, so that a 20 ms yescrypt check never stalls a session loop.
 * Its peers are pop3 workers, which it does not trust: every request is
 * length-checked, and a malformed one closes that channel.  An unknown
 * user costs the same hash as a known one, and the reply never tells
 * which of the two failed.  Secrets are wiped as soon as they are used.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth/userdb.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "posternd.h"

struct peer {
	struct peer	*next;
	struct ipc_chan	*chan;
};

static struct event_base *base;
static struct userdb *db;
static struct peer *peers;
static bool draining;
static unsigned int n_peers;

static void
db_refresh(void)
{
	char err[512];

	if (db == NULL) {
		if (userdb_open(cfg->user_db, cfg->user_db_type, &db, err,
		    sizeof(err)) == -1) {
			log_warnx("auth: %s", err);
			db = NULL;
		}
		return;
	}
	if (userdb_refresh(db, err, sizeof(err)) == -1)
		log_warnx("auth: %s (keeping the previous contents)", err);
}

static void
reply(struct ipc_chan *ch, uint64_t id, enum auth_status st, const char *user)
{
	struct ipc_msg *m = malloc(sizeof(*m));

	if (m == NULL)
		fatal("malloc");
	ipc_msg_init(m, MSG_AUTH_REPLY, id);
	ipc_put_u32(m, (uint32_t)st);
	ipc_put_str(m, user);
	(void)ipc_send(ch, m);
	free(m);
}

static enum auth_status
check_pass(const char *user, const char *pass)
{
	const struct user_rec *u;
	bool ok;

	if (db == NULL)
		return AUTH_STATUS_TEMPFAIL;
	u = username_valid(user) ? userdb_lookup(db, user) : NULL;
	ok = pw_verify(u != NULL ? u->password : pw_dummy_hash(), pass);
	if (!ok || u == NULL || u->disabled)
		return AUTH_STATUS_FAIL;
	return AUTH_STATUS_OK;
}

static enum auth_status
check_apop(const char *user, const char *timestamp, const char *digest)
{
	const struct user_rec *u;
	const char *secret;

	if (db == NULL)
		return AUTH_STATUS_TEMPFAIL;
	u = username_valid(user) ? userdb_lookup(db, user) : NULL;
	secret = u != NULL ? pw_plain_secret(u->password) : NULL;
	/* Compare against something either way, so timing says nothing. */
	if (!apop_verify(secret != NULL ? secret : "", timestamp, digest) ||
	    secret == NULL || u->disabled)
		return AUTH_STATUS_FAIL;
	return AUTH_STATUS_OK;
}

static void peer_closed(struct ipc_chan *, void *);

static void
peer_msg(struct ipc_chan *ch, struct ipc_in *in, void *arg)
{
	enum auth_status st;
	const char *user;

	if (in->fd >= 0) {
		close(in->fd);
		in->fd = -1;
	}
	db_refresh();
	switch (in->type) {
	case MSG_AUTH_PASS: {
		const char *pass;

		user = ipc_get_str(in, MAX_USERNAME_LEN);
		pass = ipc_get_str(in, MAX_PASSWORD_LEN);
		if (!ipc_done(in))
			break;
		st = check_pass(user, pass);
		explicit_bzero((void *)(uintptr_t)pass, strlen(pass));
		reply(ch, in->id, st, user);
		return;
	}
	case MSG_AUTH_APOP: {
		const char *ts, *digest;

		user = ipc_get_str(in, MAX_USERNAME_LEN);
		ts = ipc_get_str(in, 512);
		digest = ipc_get_str(in, 64);
		if (!ipc_done(in))
			break;
		st = check_apop(user, ts, digest);
		reply(ch, in->id, st, user);
		return;
	}
	default:
		break;
	}
	log_warnx("auth: malformed request from a pop3 worker, closing its"
	    " channel");
	peer_closed(ch, arg);
}

static void
peer_closed(struct ipc_chan *ch, void *arg)
{
	struct peer **pp, *p = arg;

	for (pp = &peers; *pp != NULL; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	ipc_chan_free(&p->chan);
	free(p);
	n_peers--;
	if (draining && n_peers == 0)
		event_base_loopbreak(base);
}

static void
add_peer(int fd)
{
	struct ipc_msg *m;
	struct peer *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		fatal("calloc");
	p->chan = ipc_chan_new(base, fd, peer_msg, peer_closed, p);
	if (p->chan == NULL)
		fatalx("auth: cannot watch a channel");
	p->next = peers;
	peers = p;
	n_peers++;
	if ((m = malloc(sizeof(*m))) == NULL)
		fatal("malloc");
	ipc_msg_init(m, MSG_AUTH_HELLO, 0);
	ipc_put_u32(m, db != NULL &&
	    (userdb_caps(db) & USERDB_CAP_SECRET) != 0 ?
	    AUTH_HELLO_HAS_PLAIN : 0);
	(void)ipc_send(p->chan, m);
	free(m);
}

static void
master_msg(struct ipc_chan *ch, struct ipc_in *in, void *arg)
{
	switch (in->type) {
	case MSG_AUTH_CHAN:
		(void)ipc_get_u32(in);
		if (ipc_done(in) && in->fd >= 0) {
			add_peer(in->fd);
			return;
		}
		break;
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

	log_set_ident("posternd/auth");
	privsep_drop(cfg, "auth");
	if ((base = event_base_new()) == NULL)
		fatalx("auth: cannot create the event loop");
	db_refresh();
	(void)pw_dummy_hash();
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
