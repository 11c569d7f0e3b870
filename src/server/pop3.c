/*
 * pop3.c: the pop3 worker process: one libevent loop carrying many
 * sessions.  It receives client connections from the master and reaches
 * the auth workers over channels the master hands it.  It never reads
 * the user database; it trusts the auth workers' answers and nothing
 * that arrives from a client.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/ipc.h"
#include "lib/log.h"
#include "session.h"
#include "store/store.h"

struct auth_link {
	struct ipc_chan	*chan;
	bool		 hello;
	uint32_t	 caps;		/* AUTH_HELLO_* */
};

struct event_base *pop3_base;
bool pop3_apop_available;
uint32_t pop3_auth_caps;

static struct ipc_chan *master;
static struct auth_link auth_links[64];
static unsigned int auth_rr;
static struct session **slots;
static uint32_t n_slots, n_used;
static uint32_t *free_slots;
static uint32_t n_free;
static uint32_t slot_gen;
static bool draining, stopping;
static struct event *ev_stop_timer;

/*
 * The greeting (APOP) and CAPA's SASL line depend on the user database,
 * which only the auth workers see: connections that arrive before the
 * first auth worker has said hello wait for it (bounded in count and
 * time), so that the first greeting and CAPA already tell the truth.
 */
#define HELLO_WAIT_MS		2000
#define HELLO_WAIT_MAX		1024
struct pending_conn {
	int		fd;
	uint64_t	conn_id;
	char		ip[64];
	uint32_t	port;
	uint32_t	fails;
	bool		implicit_tls;
};
static struct pending_conn pending[HELLO_WAIT_MAX];
static size_t n_pending;
static bool hello_seen;
static struct event *ev_hello_wait;

static void conn_done(uint64_t);

uint64_t
pop3_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
maybe_exit(void)
{
	if ((draining || stopping) && n_used == 0)
		event_base_loopbreak(pop3_base);
}

static int
slot_alloc(uint32_t *slot_r)
{
	if (n_free > 0) {
		*slot_r = free_slots[--n_free];
		return 0;
	}
	if (n_slots == UINT32_MAX / 2)
		return -1;
	{
		uint32_t n = n_slots == 0 ? 256 : n_slots * 2, i;
		struct session **ns = realloc(slots, n * sizeof(*ns));
		uint32_t *nf;

		if (ns == NULL)
			return -1;
		slots = ns;
		nf = realloc(free_slots, n * sizeof(*nf));
		if (nf == NULL)
			return -1;
		free_slots = nf;
		for (i = n; i > n_slots + 1; i--)
			free_slots[n_free++] = i - 1;
		for (i = n_slots; i < n; i++)
			slots[i] = NULL;
		*slot_r = n_slots;
		n_slots = n;
	}
	return 0;
}

struct session *
pop3_session_lookup(uint64_t id)
{
	uint32_t slot = (uint32_t)id;
	struct session *s;

	if (slot >= n_slots || (s = slots[slot]) == NULL || s->id != id)
		return NULL;
	return s;
}

void
pop3_session_gone(struct session *s)
{
	uint32_t slot = (uint32_t)s->id;

	if (slot < n_slots && slots[slot] == s) {
		slots[slot] = NULL;
		free_slots[n_free++] = slot;
		n_used--;
	}
	conn_done(s->conn_id);
	maybe_exit();
}

int
pop3_auth_request(struct session *s, struct ipc_msg *m)
{
	unsigned int i, n = N_ELEMENTS(auth_links);

	for (i = 0; i < n; i++) {
		unsigned int k = (auth_rr + i) % n;

		if (auth_links[k].chan == NULL ||
		    !ipc_chan_is_open(auth_links[k].chan))
			continue;
		if (ipc_send(auth_links[k].chan, m) == -1)
			continue;
		auth_rr = k + 1;
		s->auth_slot = (int)k;
		return 0;
	}
	return -1;
}

int
pop3_auth_continue(struct session *s, struct ipc_msg *m)
{
	struct auth_link *l;

	if (s->auth_slot < 0 || s->auth_slot >= (int)N_ELEMENTS(auth_links))
		return -1;
	l = &auth_links[s->auth_slot];
	if (l->chan == NULL || !ipc_chan_is_open(l->chan))
		return -1;
	return ipc_send(l->chan, m);
}

void
pop3_sasl_abort(struct session *s)
{
	struct ipc_msg *m;

	if (!s->sasl)
		return;
	s->sasl = false;
	if ((m = malloc(sizeof(*m))) == NULL)
		return;
	ipc_msg_init(m, MSG_SASL_ABORT, s->id);
	(void)pop3_auth_continue(s, m);
	free(m);
}

int
pop3_user_claim(struct session *s)
{
	struct ipc_msg *m;
	int rc;

	if (master == NULL || (m = malloc(sizeof(*m))) == NULL)
		return -1;
	ipc_msg_init(m, MSG_USER_CLAIM, s->id);
	ipc_put_u64(m, s->conn_id);
	ipc_put_str(m, s->user);
	rc = ipc_send(master, m);
	free(m);
	return rc;
}

int
pop3_xmit_submit(struct ipc_msg *m)
{
	if (master == NULL)
		return -1;
	return ipc_send(master, m);
}

void
pop3_login_result(const struct session *s, bool failed)
{
	struct ipc_msg *m;

	if (master == NULL || (m = malloc(sizeof(*m))) == NULL)
		return;
	ipc_msg_init(m, MSG_LOGIN_RESULT, s->conn_id);
	ipc_put_u32(m, failed ? 1 : 0);
	ipc_put_str(m, s->peer_ip);
	(void)ipc_send(master, m);
	free(m);
}

/* What the connected auth workers can verify; APOP needs secrets. */
static void
update_caps(void)
{
	size_t i;

	pop3_auth_caps = 0;
	for (i = 0; i < N_ELEMENTS(auth_links); i++)
		if (auth_links[i].chan != NULL && auth_links[i].hello)
			pop3_auth_caps |= auth_links[i].caps;
	pop3_apop_available = cfg->apop &&
	    (pop3_auth_caps & AUTH_HELLO_HAS_SECRET) != 0;
}

static void
flush_pending(void)
{
	size_t i, n = n_pending;

	hello_seen = true;
	n_pending = 0;
	if (ev_hello_wait != NULL)
		evtimer_del(ev_hello_wait);
	for (i = 0; i < n; i++)
		pop3_start_session(pending[i].fd, pending[i].conn_id,
		    pending[i].ip, pending[i].port, pending[i].fails,
		    pending[i].implicit_tls);
}

static void
on_hello_wait(evutil_socket_t fd, short what, void *arg)
{
	log_warnx("pop3: no auth worker answered within %d ms; greeting"
	    " without APOP", HELLO_WAIT_MS);
	flush_pending();
}

static void auth_closed(struct ipc_chan *, void *);

static void
auth_msg(struct ipc_chan *ch, struct ipc_in *in, void *arg)
{
	struct auth_link *l = arg;
	struct session *s;

	if (in->fd >= 0) {
		close(in->fd);
		in->fd = -1;
	}
	switch (in->type) {
	case MSG_AUTH_HELLO: {
		uint32_t flags = ipc_get_u32(in);

		if (!ipc_done(in))
			break;
		l->hello = true;
		l->caps = flags;
		update_caps();
		flush_pending();
		return;
	}
	case MSG_AUTH_REPLY: {
		struct auth_result r;
		uint32_t st = ipc_get_u32(in);

		r.user = ipc_get_str(in, MAX_USERNAME_LEN);
		r.login_delay = ipc_get_u32(in);
		r.expire = ipc_get_u32(in);
		r.reason = ipc_get_str(in, 64);
		if (!ipc_done(in) || st > AUTH_STATUS_MAX)
			break;
		s = pop3_session_lookup(in->id);
		if (s != NULL && s->waiting &&
		    s->auth_slot == (int)(l - auth_links))
			session_auth_reply(s, (enum auth_status)st, &r);
		return;
	}
	case MSG_SASL_CHALLENGE: {
		const char *ch64 = ipc_get_str(in, IPC_MAX_MSG - 64);

		if (!ipc_done(in))
			break;
		s = pop3_session_lookup(in->id);
		if (s != NULL && s->waiting && s->sasl &&
		    s->auth_slot == (int)(l - auth_links))
			commands_sasl_challenge(s, ch64);
		return;
	}
	default:
		break;
	}
	log_warnx("pop3: malformed message from an auth worker, dropping"
	    " the channel");
	auth_closed(ch, arg);
}

static void
auth_closed(struct ipc_chan *ch, void *arg)
{
	struct auth_link *l = arg;
	int k = (int)(l - auth_links);
	uint32_t i;

	ipc_chan_free(&l->chan);
	l->hello = false;
	l->caps = 0;
	update_caps();
	/* Sessions waiting on that worker get a temporary failure; an
	 * exchange it held is lost with it. */
	for (i = 0; i < n_slots; i++) {
		struct session *s = slots[i];

		if (s == NULL || s->auth_slot != k)
			continue;
		if ((s->waiting && !s->claiming) || s->sasl)
			session_auth_reply(s, AUTH_STATUS_TEMPFAIL, NULL);
	}
}

static void
conn_done(uint64_t conn_id)
{
	struct ipc_msg *m;

	if (master == NULL || (m = malloc(sizeof(*m))) == NULL)
		return;
	ipc_msg_init(m, MSG_CONN_DONE, conn_id);
	(void)ipc_send(master, m);
	free(m);
}

void
pop3_start_session(int fd, uint64_t conn_id, const char *ip, uint32_t port,
    uint32_t fails, bool implicit_tls)
{
	struct session *s;
	uint32_t slot;
	uint64_t id;

	if (draining || stopping || slot_alloc(&slot) == -1) {
		close(fd);
		conn_done(conn_id);
		return;
	}
	id = ((uint64_t)++slot_gen << 32) | slot;
	s = session_new(fd, conn_id, id, ip, port, fails, implicit_tls);
	if (s == NULL) {
		free_slots[n_free++] = slot;
		conn_done(conn_id);
		return;
	}
	slots[slot] = s;
	n_used++;
}

static void
new_connection(struct ipc_in *in)
{
	const char *pip, *lip;
	uint32_t pport, lport, fails, mode;

	pip = ipc_get_str(in, 63);
	pport = ipc_get_u32(in);
	lip = ipc_get_str(in, 63);
	lport = ipc_get_u32(in);
	fails = ipc_get_u32(in);
	mode = ipc_get_u32(in);
	(void)lip;
	(void)lport;
	if (!ipc_done(in) || in->fd < 0 || mode > LISTEN_IMPLICIT ||
	    (mode == LISTEN_IMPLICIT && tls_srv == NULL)) {
		log_warnx("pop3: malformed connection message");
		if (in->fd >= 0)
			close(in->fd);
		in->fd = -1;
		conn_done(in->id);
		return;
	}
	if (!hello_seen && n_pending < HELLO_WAIT_MAX) {
		struct timeval tv = { HELLO_WAIT_MS / 1000,
		    (HELLO_WAIT_MS % 1000) * 1000 };
		struct pending_conn *p = &pending[n_pending++];

		p->fd = in->fd;
		p->conn_id = in->id;
		snprintf(p->ip, sizeof(p->ip), "%s", pip);
		p->port = pport;
		p->fails = fails;
		p->implicit_tls = mode == LISTEN_IMPLICIT;
		in->fd = -1;
		if (ev_hello_wait == NULL)
			ev_hello_wait = evtimer_new(pop3_base, on_hello_wait,
			    NULL);
		if (ev_hello_wait != NULL &&
		    !evtimer_pending(ev_hello_wait, NULL))
			evtimer_add(ev_hello_wait, &tv);
		return;
	}
	pop3_start_session(in->fd, in->id, pip, pport, fails,
	    mode == LISTEN_IMPLICIT);
	in->fd = -1;
}

void
pop3_attach_auth(unsigned int slot, int fd)
{
	struct auth_link *l = &auth_links[slot];

	if (l->chan != NULL)
		ipc_chan_free(&l->chan);
	l->hello = false;
	l->caps = 0;
	l->chan = ipc_chan_new(pop3_base, fd, auth_msg, auth_closed, l);
	if (l->chan == NULL)
		close(fd);
}

static void
master_msg(struct ipc_chan *ch, struct ipc_in *in, void *arg)
{
	switch (in->type) {
	case MSG_CONN:
		new_connection(in);
		break;
	case MSG_AUTH_CHAN: {
		uint32_t k = ipc_get_u32(in);

		if (!ipc_done(in) || in->fd < 0 ||
		    k >= N_ELEMENTS(auth_links)) {
			log_warnx("pop3: malformed auth channel message");
			break;
		}
		pop3_attach_auth(k, in->fd);
		in->fd = -1;
		break;
	}
	case MSG_USER_CLAIMED: {
		uint32_t ok = ipc_get_u32(in);
		struct session *s;

		if (!ipc_done(in)) {
			log_warnx("pop3: malformed user claim answer");
			break;
		}
		s = pop3_session_lookup(in->id);
		if (s != NULL && s->claiming)
			session_user_claimed(s, ok != 0);
		break;
	}
	case MSG_XMIT_RESULT: {
		uint32_t st = ipc_get_u32(in);
		struct session *s;

		if (!ipc_done(in) || st > XMIT_STATUS_MAX) {
			log_warnx("pop3: malformed XTND XMIT answer");
			break;
		}
		s = pop3_session_lookup(in->id);
		if (s != NULL && s->xmit_waiting)
			xmit_result(s, (enum xmit_status)st);
		break;
	}
	case MSG_DRAIN:
		draining = true;
		maybe_exit();
		break;
	default:
		log_warnx("pop3: unexpected message %u from the master",
		    in->type);
	}
	if (in->fd >= 0) {
		close(in->fd);
		in->fd = -1;
	}
}

static void
master_closed(struct ipc_chan *ch, void *arg)
{
	/* The master is gone: nobody can account for our connections. */
	uint32_t i;

	ipc_chan_free(&master);
	for (i = 0; i < n_slots; i++)
		if (slots[i] != NULL)
			xmit_abandon(slots[i]);
	stopping = true;
	event_base_loopbreak(pop3_base);
}

static void
on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(pop3_base);
}

static void
on_term(evutil_socket_t sig, short what, void *arg)
{
	struct timeval tv = { SHUTDOWN_GRACE_MS / 1000,
	    (SHUTDOWN_GRACE_MS % 1000) * 1000 };
	uint32_t i;

	if (stopping)
		return;
	stopping = true;
	for (i = 0; i < n_slots; i++)
		if (slots[i] != NULL)
			session_shutdown(slots[i]);
	ev_stop_timer = evtimer_new(pop3_base, on_stop_timer, NULL);
	if (ev_stop_timer != NULL)
		evtimer_add(ev_stop_timer, &tv);
	maybe_exit();
}

void
pop3_worker_main(int master_fd)
{
	struct event *ev_term, *ev_int;
	uint32_t i;

	log_set_ident("posternd/pop3");
	privsep_drop(cfg, "pop3");
	store_set_index_cache(cfg->index_cache_size);
	signal(SIGPIPE, SIG_IGN);
	if ((pop3_base = event_base_new()) == NULL)
		fatalx("pop3: cannot create the event loop");
	master = ipc_chan_new(pop3_base, master_fd, master_msg, master_closed,
	    NULL);
	ev_term = evsignal_new(pop3_base, SIGTERM, on_term, NULL);
	ev_int = evsignal_new(pop3_base, SIGINT, on_term, NULL);
	if (master == NULL || ev_term == NULL || ev_int == NULL ||
	    evsignal_add(ev_term, NULL) == -1 ||
	    evsignal_add(ev_int, NULL) == -1)
		fatalx("pop3: cannot set up the event loop");
	event_base_dispatch(pop3_base);
	/* Whatever is still open now is closed without UPDATE. */
	for (i = 0; i < n_slots; i++)
		if (slots[i] != NULL)
			session_free(slots[i]);
	_exit(0);
}
