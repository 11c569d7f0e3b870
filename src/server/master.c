/*
 * master.c: the posternd master process.
 *
 * Owns the listening sockets, the configuration and the children.  It
 * accepts every connection itself so that the limits on connections (in
 * total and per IP) and the per-IP count of failed logins are exact
 * across workers, then passes the descriptor to the least loaded pop3
 * worker.  It restarts a child that dies, and on SIGHUP starts a new
 * generation of children with the new configuration while the old one
 * drains.  It trusts its children no more than it must: a malformed
 * message closes that child's channel.
 *
 * With lmtp_listen, it also binds the LMTP sockets (a Unix socket is
 * created here, before any privilege is dropped, with lmtp_socket_mode
 * and owned by mail_user) and passes each LMTP connection, up to
 * lmtp_max_connections, to the one lmtp process.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/net.h"
#include "posternd.h"
#include "tls/tls.h"

enum child_kind { CHILD_POP3, CHILD_AUTH, CHILD_LMTP };

struct child {
	struct child	*next;
	enum child_kind	 kind;
	pid_t		 pid;
	unsigned int	 slot;
	unsigned int	 gen;
	struct ipc_chan	*chan;
	unsigned int	 sessions;
	bool		 draining;
	uint64_t	 started_ms;
};

struct listener {
	int		 fd;
	struct event	*ev;
	char		 text[128];
	enum listener_tls tls;
};

/* An LMTP listener; a Unix socket is removed when it is closed. */
struct lmtp_listener {
	int		 fd;
	struct event	*ev;
	char		 text[128];
	char		 path[108];	/* unix: the socket file, else "" */
};

/* Per-IP state: open connections and recent login failures. */
struct ip_ent {
	struct ip_ent	*next;
	uint8_t		 key[16];
	unsigned int	 conns;
	unsigned int	 failures;
	uint64_t	 last_fail_ms;
};

/* Sessions of one logged-in user, for max_connections_per_user. */
struct user_ent {
	struct user_ent	*next;
	unsigned int	 conns;
	char		 name[];
};

struct conn_ent {
	struct conn_ent	*next;
	uint64_t	 id;
	struct child	*worker;
	struct ip_ent	*ip;
	struct user_ent	*user;		/* once logged in */
};

#define IP_BUCKETS	4096
#define CONN_BUCKETS	4096
#define USER_BUCKETS	4096

static struct event_base *base;
static struct child *children;
static struct listener listeners[MAX_LISTENERS];
static size_t n_listeners;
static struct lmtp_listener lmtp_lsn[MAX_LMTP_LISTENERS];
static size_t n_lmtp_lsn;
static unsigned int generation;
static unsigned int n_ips;
static struct ip_ent *ip_tab[IP_BUCKETS];
static struct conn_ent *conn_tab[CONN_BUCKETS];
static struct user_ent *user_tab[USER_BUCKETS];
static unsigned int total_conns;
static uint64_t next_conn_id = 1;
static bool shutting_down;
static const char *conf_path;
static struct event *ev_shutdown_timer;
static struct event *ev_respawn;
/* The master takes its signals through a signalfd, so that no signal
 * state of its event loop leaks into the children it forks. */
static sigset_t master_sigs;

struct config *cfg;
struct tls_server *tls_srv;
uint8_t auth_fake_key[32];

static void	spawn(enum child_kind, unsigned int slot);

static const char *
kind_name(enum child_kind k)
{
	return k == CHILD_POP3 ? "pop3" : k == CHILD_AUTH ? "auth" : "lmtp";
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
ip_key(const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)(const void *)
		    sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6)
		memcpy(key, &((const struct sockaddr_in6 *)(const void *)
		    sa)->sin6_addr, 16);
}

static unsigned int
hash16(const uint8_t key[16])
{
	uint32_t h = 2166136261u;
	int i;

	for (i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % IP_BUCKETS;
}

static struct ip_ent *
ip_get(const uint8_t key[16], bool create)
{
	struct ip_ent **pp = &ip_tab[hash16(key)], *e;

	for (e = *pp; e != NULL; e = e->next)
		if (memcmp(e->key, key, 16) == 0)
			return e;
	if (!create || n_ips >= cfg->max_connections + AUTH_PENALTY_MAX_IPS)
		return NULL;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	memcpy(e->key, key, 16);
	e->next = *pp;
	*pp = e;
	n_ips++;
	return e;
}

/* Frees an entry that holds neither connections nor fresh failures. */
static void
ip_maybe_free(struct ip_ent *e)
{
	struct ip_ent **pp;

	if (e->conns > 0 || (e->failures > 0 &&
	    now_ms() - e->last_fail_ms < AUTH_PENALTY_FORGET_SEC * 1000ull))
		return;
	for (pp = &ip_tab[hash16(e->key)]; *pp != NULL; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			free(e);
			n_ips--;
			return;
		}
}

static unsigned int
ip_failures(struct ip_ent *e)
{
	if (e->failures > 0 &&
	    now_ms() - e->last_fail_ms >= AUTH_PENALTY_FORGET_SEC * 1000ull)
		e->failures = 0;
	return e->failures;
}

static void
conn_add(uint64_t id, struct child *w, struct ip_ent *ip)
{
	struct conn_ent *c = calloc(1, sizeof(*c));

	if (c == NULL)
		fatal("calloc");
	c->id = id;
	c->worker = w;
	c->ip = ip;
	c->next = conn_tab[id % CONN_BUCKETS];
	conn_tab[id % CONN_BUCKETS] = c;
	ip->conns++;
	w->sessions++;
	total_conns++;
}

static size_t
user_hash(const char *name)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (; *name != '\0'; name++)
		h = (h ^ (uint8_t)*name) * 16777619u;
	return h % USER_BUCKETS;
}

static void
user_release(struct user_ent *u)
{
	struct user_ent **pp;

	if (--u->conns > 0)
		return;
	for (pp = &user_tab[user_hash(u->name)]; *pp != NULL;
	    pp = &(*pp)->next)
		if (*pp == u) {
			*pp = u->next;
			free(u);
			return;
		}
}

/* Counts connection id of worker w against user: true if under the
 * cap (or already counted). */
static bool
user_claim(struct child *w, uint64_t id, const char *name)
{
	struct conn_ent *c;
	struct user_ent *u;
	size_t h = user_hash(name), len = strlen(name);

	for (c = conn_tab[id % CONN_BUCKETS]; c != NULL; c = c->next)
		if (c->id == id && c->worker == w)
			break;
	if (c == NULL)
		return false;		/* already closed */
	if (c->user != NULL) {
		if (strcmp(c->user->name, name) == 0)
			return true;
		/* A refused login (LOGIN-DELAY, IN-USE, size) followed by
		 * another user's on the same connection: count that one. */
		user_release(c->user);
		c->user = NULL;
	}
	for (u = user_tab[h]; u != NULL; u = u->next)
		if (strcmp(u->name, name) == 0)
			break;
	if (u != NULL && u->conns >= cfg->max_connections_per_user)
		return false;
	if (u == NULL) {
		if ((u = calloc(1, sizeof(*u) + len + 1)) == NULL)
			return false;
		memcpy(u->name, name, len + 1);
		u->next = user_tab[h];
		user_tab[h] = u;
	}
	u->conns++;
	c->user = u;
	return true;
}

static void
conn_release(struct conn_ent **pp)
{
	struct conn_ent *c = *pp;

	*pp = c->next;
	if (c->user != NULL)
		user_release(c->user);
	c->ip->conns--;
	c->worker->sessions--;
	total_conns--;
	ip_maybe_free(c->ip);
	free(c);
}

static void
conn_done(struct child *w, uint64_t id)
{
	struct conn_ent **pp;

	for (pp = &conn_tab[id % CONN_BUCKETS]; *pp != NULL;
	    pp = &(*pp)->next)
		if ((*pp)->id == id && (*pp)->worker == w) {
			conn_release(pp);
			return;
		}
}

/* A worker died: release every connection it carried. */
static void
conn_release_worker(struct child *w)
{
	size_t i;

	for (i = 0; i < CONN_BUCKETS; i++) {
		struct conn_ent **pp = &conn_tab[i];

		while (*pp != NULL) {
			if ((*pp)->worker == w)
				conn_release(pp);
			else
				pp = &(*pp)->next;
		}
	}
}

static void
login_result(const char *ip, bool failed)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	uint8_t key[16];
	struct ip_ent *e;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		return;
	ip_key((struct sockaddr *)&ss, key);
	e = ip_get(key, failed);
	if (e == NULL)
		return;
	if (failed) {
		ip_failures(e);
		if (e->failures < 64)
			e->failures++;
		e->last_fail_ms = now_ms();
	} else {
		e->failures = 0;
		ip_maybe_free(e);
	}
}

static void
reject(int fd, const char *line)
{
	ssize_t n = write(fd, line, strlen(line));

	(void)n;
	close(fd);
}

static struct child *
pick_worker(void)
{
	struct child *c, *best = NULL;

	for (c = children; c != NULL; c = c->next)
		if (c->kind == CHILD_POP3 && !c->draining && c->chan != NULL &&
		    ipc_chan_is_open(c->chan) &&
		    (best == NULL || c->sessions < best->sessions))
			best = c;
	return best;
}

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	enum listener_tls mode = LISTEN_STARTTLS;
	size_t li;
	int budget;

	for (li = 0; li < n_listeners; li++)
		if (listeners[li].fd == lfd)
			mode = listeners[li].tls;

	for (budget = 0; budget < 128; budget++) {
		struct sockaddr_storage peer, local;
		socklen_t plen = sizeof(peer), llen = sizeof(local);
		char pip[64], lip[64];
		struct ipc_msg *m;
		struct ip_ent *ip;
		struct child *w;
		uint8_t key[16];
		uint64_t id;
		int fd;

		fd = accept4(lfd, (struct sockaddr *)&peer, &plen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE)
				log_warn("accept");
			return;
		}
		if (getsockname(fd, (struct sockaddr *)&local, &llen) == -1) {
			close(fd);
			continue;
		}
		addr_str((struct sockaddr *)&peer, pip, sizeof(pip));
		if (shutting_down) {
			reject(fd, "-ERR [SYS/TEMP] Server shutting down.\r\n");
			continue;
		}
		if (total_conns >= cfg->max_connections) {
			log_warnx("connection from %s refused: max_connections"
			    " (%u) reached", pip, cfg->max_connections);
			reject(fd, "-ERR [SYS/TEMP] Too many connections,"
			    " try again later.\r\n");
			continue;
		}
		ip_key((struct sockaddr *)&peer, key);
		ip = ip_get(key, true);
		if (ip == NULL || ip->conns >= cfg->max_connections_per_ip) {
			log_warnx("connection from %s refused:"
			    " max_connections_per_ip (%u) reached", pip,
			    cfg->max_connections_per_ip);
			reject(fd, "-ERR [SYS/TEMP] Too many connections from"
			    " your address.\r\n");
			continue;
		}
		if ((w = pick_worker()) == NULL) {
			log_warnx("connection from %s refused: no pop3 worker"
			    " is running", pip);
			reject(fd, "-ERR [SYS/TEMP] Server is restarting, try"
			    " again later.\r\n");
			ip_maybe_free(ip);
			continue;
		}
		id = next_conn_id++;
		if ((m = malloc(sizeof(*m))) == NULL) {
			close(fd);
			continue;
		}
		ipc_msg_init(m, MSG_CONN, id);
		ipc_put_str(m, pip);
		ipc_put_u32(m, addr_port((struct sockaddr *)&peer));
		ipc_put_str(m, addr_str((struct sockaddr *)&local, lip,
		    sizeof(lip)));
		ipc_put_u32(m, addr_port((struct sockaddr *)&local));
		ipc_put_u32(m, ip_failures(ip));
		ipc_put_u32(m, (uint32_t)mode);
		m->fd = fd;
		if (ipc_send(w->chan, m) == -1) {
			log_warnx("cannot pass connection from %s to worker"
			    " %ld", pip, (long)w->pid);
			free(m);
			ip_maybe_free(ip);
			continue;
		}
		free(m);
		conn_add(id, w, ip);
	}
}

/* The running lmtp process of this generation, or NULL. */
static struct child *
lmtp_child(void)
{
	struct child *c;

	for (c = children; c != NULL; c = c->next)
		if (c->kind == CHILD_LMTP && !c->draining && c->chan != NULL &&
		    ipc_chan_is_open(c->chan))
			return c;
	return NULL;
}

/* LMTP connections open in every lmtp process (a draining one too). */
static unsigned int
lmtp_conns(void)
{
	struct child *c;
	unsigned int n = 0;

	for (c = children; c != NULL; c = c->next)
		if (c->kind == CHILD_LMTP)
			n += c->sessions;
	return n;
}

static void
on_accept_lmtp(evutil_socket_t lfd, short what, void *arg)
{
	int budget;

	for (budget = 0; budget < 128; budget++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		char pip[64];
		struct ipc_msg *m;
		struct child *w;
		int fd;

		fd = accept4(lfd, (struct sockaddr *)&peer, &plen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE)
				log_warn("accept");
			return;
		}
		if (peer.ss_family == AF_UNIX)
			(void)snprintf(pip, sizeof(pip), "unix");
		else
			addr_str((struct sockaddr *)&peer, pip, sizeof(pip));
		if (shutting_down) {
			reject(fd, "421 4.3.2 Server shutting down\r\n");
			continue;
		}
		if (lmtp_conns() >= cfg->lmtp_max_connections) {
			log_warnx("lmtp connection from %s refused:"
			    " lmtp_max_connections (%u) reached", pip,
			    cfg->lmtp_max_connections);
			reject(fd, "421 4.3.2 Too many connections, try again"
			    " later\r\n");
			continue;
		}
		if ((w = lmtp_child()) == NULL) {
			log_warnx("lmtp connection from %s refused: the lmtp"
			    " process is not running", pip);
			reject(fd, "421 4.3.2 Server is restarting, try again"
			    " later\r\n");
			continue;
		}
		if ((m = malloc(sizeof(*m))) == NULL) {
			close(fd);
			continue;
		}
		ipc_msg_init(m, MSG_LMTP_CONN, next_conn_id++);
		ipc_put_str(m, pip);
		m->fd = fd;
		if (ipc_send(w->chan, m) == -1) {
			log_warnx("cannot pass lmtp connection from %s to"
			    " pid %ld", pip, (long)w->pid);
			free(m);
			continue;
		}
		free(m);
		w->sessions++;
	}
}

static void
on_child_msg(struct ipc_chan *ch, struct ipc_in *in, void *arg)
{
	struct child *c = arg;

	if (in->type == MSG_XMIT_SUBMIT && c->kind == CHILD_POP3) {
		submit_request(ch, c, in);	/* takes the spool fd */
		return;
	}
	if (in->fd >= 0) {
		close(in->fd);
		in->fd = -1;
	}
	switch (in->type) {
	case MSG_CONN_DONE:
		if (c->kind == CHILD_POP3 && ipc_done(in))
			conn_done(c, in->id);
		if (c->kind == CHILD_LMTP && ipc_done(in) && c->sessions > 0)
			c->sessions--;
		return;
	case MSG_USER_CLAIM: {
		uint64_t conn = ipc_get_u64(in);
		const char *user = ipc_get_str(in, MAX_USERNAME_LEN);
		struct ipc_msg *m;
		bool ok;

		if (c->kind != CHILD_POP3)
			break;
		ok = ipc_done(in) && user[0] != '\0' &&
		    user_claim(c, conn, user);
		if (!ok)
			log_info("master: user %s is at max_connections_per_user"
			    " (%u)", user, cfg->max_connections_per_user);
		if ((m = malloc(sizeof(*m))) == NULL)
			return;
		ipc_msg_init(m, MSG_USER_CLAIMED, in->id);
		ipc_put_u32(m, ok ? 1 : 0);
		(void)ipc_send(ch, m);
		free(m);
		return;
	}
	case MSG_LOGIN_RESULT: {
		uint32_t failed = ipc_get_u32(in);
		const char *ip = ipc_get_str(in, 63);

		if (c->kind == CHILD_POP3 && ipc_done(in))
			login_result(ip, failed != 0);
		return;
	}
	default:
		log_warnx("unexpected message %u from child %ld", in->type,
		    (long)c->pid);
	}
}

static void
on_child_closed(struct ipc_chan *ch, void *arg)
{
	/* The child is gone or broke the protocol: SIGCHLD does the rest. */
	struct child *c = arg;

	if (c->pid > 0 && !shutting_down)
		kill(c->pid, SIGTERM);
}

/* Links a pop3 worker or the lmtp process with an auth worker. */
static void
link_pair(struct child *pop3, struct child *auth)
{
	struct ipc_msg *m;
	int sv[2];

	if (pop3->chan == NULL || auth->chan == NULL)
		return;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("socketpair");
		return;
	}
	if ((m = malloc(sizeof(*m))) == NULL)
		fatal("malloc");
	ipc_msg_init(m, MSG_AUTH_CHAN, 0);
	ipc_put_u32(m, auth->slot);
	m->fd = sv[0];
	(void)ipc_send(pop3->chan, m);
	ipc_msg_init(m, MSG_AUTH_CHAN, 0);
	ipc_put_u32(m, pop3->kind == CHILD_LMTP ? AUTH_PEER_LMTP :
	    pop3->slot);
	m->fd = sv[1];
	(void)ipc_send(auth->chan, m);
	free(m);
}

static void
link_new_child(struct child *n)
{
	struct child *c;

	for (c = children; c != NULL; c = c->next) {
		if (c == n || c->gen != n->gen ||
		    (c->kind == CHILD_AUTH) == (n->kind == CHILD_AUTH))
			continue;
		if (n->kind != CHILD_AUTH)
			link_pair(n, c);
		else
			link_pair(c, n);
	}
}

static void
spawn(enum child_kind kind, unsigned int slot)
{
	struct child *c;
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("socketpair");
		return;
	}
	pid = fork();
	if (pid == -1) {
		log_warn("fork");
		close(sv[0]);
		close(sv[1]);
		return;
	}
	if (pid == 0) {
		/* Child: keep stdio and the channel to the master only. */
		if (dup2(sv[1], 3) == -1)
			_exit(1);
		if (close_range(4, ~0U, 0) == -1) {
			int fd;

			for (fd = 4; fd < 65536; fd++)
				(void)close(fd);
		}
		signal(SIGHUP, SIG_IGN);
		sigprocmask(SIG_UNBLOCK, &master_sigs, NULL);
		if (kind == CHILD_POP3)
			pop3_worker_main(3);
		if (kind == CHILD_LMTP)
			lmtp_main(3);
		auth_worker_main(3, slot);
	}
	close(sv[1]);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatal("calloc");
	c->kind = kind;
	c->pid = pid;
	c->slot = slot;
	c->gen = generation;
	c->started_ms = now_ms();
	c->chan = ipc_chan_new(base, sv[0], on_child_msg, on_child_closed, c);
	if (c->chan == NULL)
		fatalx("cannot watch child channel");
	c->next = children;
	children = c;
	log_info("started %s worker pid=%ld", kind_name(kind), (long)pid);
	link_new_child(c);
}

static unsigned int
want_workers(void)
{
	long n;

	if (cfg->workers > 0)
		return cfg->workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (unsigned int)n;
}

static bool
slot_running(enum child_kind kind, unsigned int slot)
{
	struct child *c;

	for (c = children; c != NULL; c = c->next)
		if (c->kind == kind && c->slot == slot &&
		    c->gen == generation && !c->draining)
			return true;
	return false;
}

/* Starts every child of the current generation that is not running. */
static void
fill_slots(void)
{
	unsigned int i, np = want_workers();

	if (shutting_down)
		return;
	for (i = 0; i < cfg->auth_workers; i++)
		if (!slot_running(CHILD_AUTH, i))
			spawn(CHILD_AUTH, i);
	for (i = 0; i < np; i++)
		if (!slot_running(CHILD_POP3, i))
			spawn(CHILD_POP3, i);
	if (cfg->n_lmtp_listeners > 0 && !slot_running(CHILD_LMTP, 0))
		spawn(CHILD_LMTP, 0);
}

static void
on_respawn(evutil_socket_t fd, short what, void *arg)
{
	fill_slots();
}

static void
child_exited(struct child *c, int status)
{
	struct child **pp;
	bool crashed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	bool restart = !shutting_down && !c->draining && c->gen == generation;
	uint64_t age = now_ms() - c->started_ms;

	if (crashed && restart)
		log_warnx("%s worker pid=%ld died (%s %d), restarting",
		    kind_name(c->kind), (long)c->pid,
		    WIFSIGNALED(status) ? "signal" : "exit status",
		    WIFSIGNALED(status) ? WTERMSIG(status) :
		    WEXITSTATUS(status));
	else
		log_info("%s worker pid=%ld exited", kind_name(c->kind),
		    (long)c->pid);
	if (c->kind == CHILD_POP3) {
		conn_release_worker(c);
		submit_worker_gone(c);
	}
	for (pp = &children; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	if (c->chan != NULL)
		ipc_chan_free(&c->chan);
	free(c);
	if (restart) {
		/* A child that keeps dying at once is restarted at most
		 * every restart_interval. */
		struct timeval tv = { 0, 0 };

		if (age < cfg->restart_interval_ms) {
			uint64_t wait = cfg->restart_interval_ms - age;

			tv.tv_sec = (time_t)(wait / 1000);
			tv.tv_usec = (suseconds_t)(wait % 1000) * 1000;
		}
		evtimer_add(ev_respawn, &tv);
	}
}

static void
on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	for (;;) {
		struct child *c;
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid <= 0)
			break;
		for (c = children; c != NULL; c = c->next)
			if (c->pid == pid)
				break;
		if (c != NULL)
			child_exited(c, status);
		else
			(void)submit_reaped(pid, status);
	}
	if (shutting_down && children == NULL)
		event_base_loopbreak(base);
}

static void
on_shutdown_timer(evutil_socket_t fd, short what, void *arg)
{
	struct child *c;

	for (c = children; c != NULL; c = c->next) {
		log_warnx("%s worker pid=%ld did not stop, killing it",
		    kind_name(c->kind), (long)c->pid);
		kill(c->pid, SIGKILL);
	}
}

static void
lmtp_listener_close(struct lmtp_listener *l)
{
	if (l->ev != NULL)
		event_free(l->ev);
	l->ev = NULL;
	if (l->fd != -1)
		close(l->fd);
	l->fd = -1;
	if (l->path[0] != '\0')
		(void)unlink(l->path);
}

/*
 * A listening Unix socket at path with the given mode, owned by
 * mail_user when run as root.  A stale socket there is replaced; any
 * other file is left alone (an error).  -1 with err set.
 */
static int
listen_unix(const char *path, unsigned int mode, char *err, size_t errsize)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errsize, "lmtp_listen: unix:%s: path too long",
		    path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errsize, "lmtp_listen: %s exists and is"
			    " not a socket (remove it or choose another path)",
			    path);
			return -1;
		}
		(void)unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    chmod(path, (mode_t)mode) == -1 ||
	    privsep_chown_mail(path) == -1 || listen(fd, 1024) == -1) {
		snprintf(err, errsize, "cannot listen on unix:%s: %s", path,
		    strerror(errno));
		if (fd != -1) {
			close(fd);
			(void)unlink(path);
		}
		return -1;
	}
	return fd;
}

/* Makes the LMTP listeners match nc, as apply_listeners does. */
static int
apply_lmtp_listeners(const struct config *nc, char *err, size_t errsize)
{
	struct lmtp_listener nl[MAX_LMTP_LISTENERS];
	bool kept[MAX_LMTP_LISTENERS] = { false };
	size_t i, j;

	for (i = 0; i < nc->n_lmtp_listeners; i++) {
		const struct lmtp_listen_conf *lc = &nc->lmtp_listeners[i];

		memset(&nl[i], 0, sizeof(nl[i]));
		nl[i].fd = -1;
		snprintf(nl[i].text, sizeof(nl[i].text), "%s", lc->text);
		for (j = 0; j < n_lmtp_lsn; j++)
			if (!kept[j] && strcmp(lmtp_lsn[j].text, lc->text) == 0)
				break;
		if (j < n_lmtp_lsn) {
			kept[j] = true;
			nl[i] = lmtp_lsn[j];
			if (lc->is_unix)
				(void)chmod(lc->path,
				    (mode_t)nc->lmtp_socket_mode);
			continue;
		}
		if (lc->is_unix) {
			nl[i].fd = listen_unix(lc->path, nc->lmtp_socket_mode,
			    err, errsize);
			snprintf(nl[i].path, sizeof(nl[i].path), "%s",
			    lc->path);
		} else {
			nl[i].fd = listen_tcp((const struct sockaddr *)
			    &lc->addr, lc->addrlen, 1024);
			if (nl[i].fd == -1)
				snprintf(err, errsize, "cannot listen on %s:"
				    " %s", lc->text, strerror(errno));
		}
		if (nl[i].fd == -1) {
			while (i-- > 0)
				if (nl[i].ev == NULL)
					lmtp_listener_close(&nl[i]);
			return -1;
		}
	}
	for (j = 0; j < n_lmtp_lsn; j++)
		if (!kept[j])
			lmtp_listener_close(&lmtp_lsn[j]);
	for (i = 0; i < nc->n_lmtp_listeners; i++) {
		if (nl[i].ev == NULL) {
			nl[i].ev = event_new(base, nl[i].fd,
			    EV_READ | EV_PERSIST, on_accept_lmtp, NULL);
			if (nl[i].ev == NULL || event_add(nl[i].ev, NULL) == -1)
				fatalx("cannot watch listener %s", nl[i].text);
		}
		lmtp_lsn[i] = nl[i];
	}
	n_lmtp_lsn = nc->n_lmtp_listeners;
	return 0;
}

static void
on_sigterm(evutil_socket_t sig, short what, void *arg)
{
	struct timeval tv = { 10, 0 };
	struct child *c;
	size_t i;

	if (shutting_down)
		return;
	shutting_down = true;
	log_info("received %s, shutting down", sig == SIGINT ? "SIGINT" :
	    "SIGTERM");
	for (i = 0; i < n_listeners; i++) {
		event_free(listeners[i].ev);
		close(listeners[i].fd);
	}
	n_listeners = 0;
	for (i = 0; i < n_lmtp_lsn; i++)
		lmtp_listener_close(&lmtp_lsn[i]);
	n_lmtp_lsn = 0;
	for (c = children; c != NULL; c = c->next)
		kill(c->pid, SIGTERM);
	submit_shutdown();
	if (children == NULL)
		event_base_loopbreak(base);
	ev_shutdown_timer = evtimer_new(base, on_shutdown_timer, NULL);
	evtimer_add(ev_shutdown_timer, &tv);
}

/* Makes the listeners match cfg: keeps the ones still wanted, closes the
 * others, binds the new ones.  On a bind failure nothing changes. */
static int
apply_listeners(const struct config *nc, char *err, size_t errsize)
{
	struct listener nl[MAX_LISTENERS];
	bool kept[MAX_LISTENERS] = { false };
	size_t i, j;

	for (i = 0; i < nc->n_listeners; i++) {
		const struct listener_conf *lc = &nc->listeners[i];

		nl[i].fd = -1;
		nl[i].ev = NULL;
		nl[i].tls = lc->tls;
		snprintf(nl[i].text, sizeof(nl[i].text), "%s", lc->text);
		for (j = 0; j < n_listeners; j++)
			if (!kept[j] && strcmp(listeners[j].text, lc->text) == 0)
				break;
		if (j < n_listeners) {
			kept[j] = true;
			nl[i] = listeners[j];
			nl[i].tls = lc->tls;
			continue;
		}
		nl[i].fd = listen_tcp((const struct sockaddr *)&lc->addr,
		    lc->addrlen, 1024);
		if (nl[i].fd == -1) {
			snprintf(err, errsize, "cannot listen on %s: %s",
			    lc->text, strerror(errno));
			while (i-- > 0)
				if (nl[i].ev == NULL && nl[i].fd != -1)
					close(nl[i].fd);
			return -1;
		}
	}
	for (j = 0; j < n_listeners; j++)
		if (!kept[j]) {
			event_free(listeners[j].ev);
			close(listeners[j].fd);
		}
	for (i = 0; i < nc->n_listeners; i++) {
		if (nl[i].ev == NULL) {
			nl[i].ev = event_new(base, nl[i].fd,
			    EV_READ | EV_PERSIST, on_accept, NULL);
			if (nl[i].ev == NULL || event_add(nl[i].ev, NULL) == -1)
				fatalx("cannot watch listener %s", nl[i].text);
		}
		listeners[i] = nl[i];
	}
	n_listeners = nc->n_listeners;
	return 0;
}

/* What a child needs at start must exist before it is forked. */
static int
check_dirs(const struct config *c, char *err, size_t errsize)
{
	struct stat st;

	if (stat(c->mail_root, &st) == -1 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errsize, "mail_root %s is not a directory;"
		    " create it and give it to the user '%s'", c->mail_root,
		    c->mail_user);
		return -1;
	}
	return 0;
}

static void
warn_config(const struct config *c)
{
	size_t i;

	if (c->idle_timeout_ms < 600000)
		log_warnx("idle_timeout is below the 10 minutes RFC 1939"
		    " asks for");
	for (i = 0; i < c->n_lmtp_listeners; i++)
		if (!c->lmtp_listeners[i].is_unix &&
		    !addr_is_loopback((const struct sockaddr *)
		    &c->lmtp_listeners[i].addr))
			log_warnx("lmtp_listen %s: LMTP has no authentication;"
			    " whoever reaches this address can deliver mail"
			    " (lmtp_allow_remote = yes)",
			    c->lmtp_listeners[i].text);
	if (c->xmit && c->xmit_check_from && c->n_xmit_domains == 0)
		log_warnx("xmit: no xmit_domain: only users whose login names"
		    " are mail addresses can send with XTND XMIT");
	if (c->plaintext != PLAINTEXT_ALLOWED)
		return;
	for (i = 0; i < c->n_listeners; i++)
		if (!addr_is_loopback((const struct sockaddr *)
		    &c->listeners[i].addr)) {
			log_warnx("disable_plaintext_auth = no: passwords"
			    " travel in clear text on %s",
			    c->listeners[i].text);
			break;
		}
}

static void
on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct config *nc, *old = cfg;
	struct tls_server *nts = NULL;
	struct child *c;
	char err[512];

	if (shutting_down)
		return;
	log_info("received SIGHUP, reloading %s", conf_path);
	if ((nc = calloc(1, sizeof(*nc))) == NULL) {
		log_warn("reload");
		return;
	}
	if (config_load(conf_path, nc, err, sizeof(err)) == -1 ||
	    check_dirs(nc, err, sizeof(err)) == -1 ||
	    ((nts = tls_server_new(nc, err, sizeof(err))) == NULL &&
	    err[0] != '\0') ||
	    privsep_resolve(nc, err, sizeof(err)) == -1 ||
	    apply_listeners(nc, err, sizeof(err)) == -1 ||
	    apply_lmtp_listeners(nc, err, sizeof(err)) == -1) {
		tls_server_free(&nts);
		log_warnx("reload failed, keeping the running configuration:"
		    " %s", err);
		config_free(nc);
		free(nc);
		(void)privsep_resolve(cfg, err, sizeof(err));
		return;
	}
	log_set_debug(nc->log_debug);
	warn_config(nc);
	/* The old generation finishes its sessions; new ones go to the
	 * new generation, forked with the new configuration. */
	for (c = children; c != NULL; c = c->next) {
		struct ipc_msg *m;

		if (c->draining)
			continue;
		c->draining = true;
		if ((m = malloc(sizeof(*m))) == NULL)
			fatal("malloc");
		ipc_msg_init(m, MSG_DRAIN, 0);
		(void)ipc_send(c->chan, m);
		free(m);
	}
	cfg = nc;
	/* The old contexts live on in the old children's copies. */
	tls_server_free(&tls_srv);
	tls_srv = nts;
	generation++;
	fill_slots();
	log_info("configuration reloaded");
	/* The old struct is still the one the old children were forked
	 * with; the master itself no longer needs it. */
	config_free(old);
	free(old);
}

static void on_sigchld(evutil_socket_t, short, void *);

static void
on_signalfd(evutil_socket_t fd, short what, void *arg)
{
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			on_sigterm((evutil_socket_t)si.ssi_signo, 0, NULL);
			break;
		case SIGHUP:
			on_sighup(SIGHUP, 0, NULL);
			break;
		case SIGCHLD:
			on_sigchld(SIGCHLD, 0, NULL);
			break;
		default:
			break;
		}
	}
}

int
master_run(struct config *c, const char *path)
{
	struct event *ev_sig;
	char err[512];
	int sfd;

	cfg = c;
	conf_path = path;
	signal(SIGPIPE, SIG_IGN);
	if (getentropy(auth_fake_key, sizeof(auth_fake_key)) == -1)
		fatal("getentropy");
	if (privsep_resolve(cfg, err, sizeof(err)) == -1 ||
	    check_dirs(cfg, err, sizeof(err)) == -1)
		fatalx("%s", err);
	sigemptyset(&master_sigs);
	sigaddset(&master_sigs, SIGTERM);
	sigaddset(&master_sigs, SIGINT);
	sigaddset(&master_sigs, SIGHUP);
	sigaddset(&master_sigs, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &master_sigs, NULL) == -1 ||
	    (sfd = signalfd(-1, &master_sigs, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		fatal("signalfd");
	tls_srv = tls_server_new(cfg, err, sizeof(err));
	if (tls_srv == NULL && err[0] != '\0')
		fatalx("%s", err);
	if ((base = event_base_new()) == NULL)
		fatalx("cannot create the event loop");
	submit_init(base);
	if (apply_listeners(cfg, err, sizeof(err)) == -1 ||
	    apply_lmtp_listeners(cfg, err, sizeof(err)) == -1)
		fatalx("%s", err);
	warn_config(cfg);
	ev_sig = event_new(base, sfd, EV_READ | EV_PERSIST, on_signalfd, NULL);
	ev_respawn = evtimer_new(base, on_respawn, NULL);
	if (ev_sig == NULL || ev_respawn == NULL ||
	    event_add(ev_sig, NULL) == -1)
		fatalx("cannot watch signals");
	fill_slots();
	log_info("ready: %zu listener%s, %u pop3 workers, %u auth workers,"
	    " %zu lmtp listener%s", n_listeners, n_listeners == 1 ? "" : "s",
	    want_workers(), cfg->auth_workers, n_lmtp_lsn,
	    n_lmtp_lsn == 1 ? "" : "s");
	event_base_dispatch(base);
	log_info("stopped");
	event_free(ev_sig);
	close(sfd);
	event_free(ev_respawn);
	if (ev_shutdown_timer != NULL)
		event_free(ev_shutdown_timer);
	event_base_free(base);
	tls_server_free(&tls_srv);
	return 0;
}
