/*
 * loadgen.c: the benchmark's POP3 load generator.
 *
 * One process, one epoll loop per thread (-j), many non-blocking
 * connections per loop, OpenSSL for implicit TLS.  Every reply is
 * checked: a RETR counts only if its un-stuffed octets equal the LIST
 * size of that message and it ends with a correct ".", so a fast wrong
 * answer is an error, never a result.  Prints one line of key=value
 * results on stdout; errors are also described on stderr (the first
 * few of them).
 *
 * Owns: its sockets and the ceiling server thread.  Trusts: nothing the
 * server sends.  Connects only to loopback addresses.
 *
 * Modes:
 *   storm       each client loops: connect, greeting, USER, PASS, STAT,
 *               UIDL, LIST, RETR of every message, QUIT
 *   storm-pipe  the same, with STAT, UIDL, LIST, all RETRs and QUIT
 *               sent in one write after the login (needs -M)
 *   bulk        one session: STAT, LIST, then RETR of every message with
 *               -w commands in flight (1: sequential)
 *   idle        -c sessions log in and are held until SIGUSR1 or -d
 *               seconds, then all QUIT
 *   login       -c clients loop connect, USER, PASS, QUIT (slow hashes)
 *               while -K other logged-in sessions send NOOP every -I ms
 *   bigbox      one session: PASS, STAT, UIDL timed separately
 *   ceiling     a trivial server thread sends -F FILE -n times over one
 *               loopback TCP connection; the client reads and counts
 *
 * User names: with -U N > 0, PREFIX followed by a 4-digit number
 * (0000..N-1) taken round-robin; with -U 0, -u is the name itself.  The
 * password of user NAME is always "pw-NAME".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_THREADS	16
#define MAX_ERR_LOG	10
#define LAT_MAX		(4u * 1024 * 1024)	/* samples kept per thread */
#define LINE_MAX_IN	4096

enum mode {
	M_STORM, M_STORM_PIPE, M_BULK, M_IDLE, M_LOGIN, M_BIGBOX, M_CEILING
};

static const char *const mode_names[] = {
	"storm", "storm-pipe", "bulk", "idle", "login", "bigbox", "ceiling"
};

/* What the next reply answers. */
enum ex {
	EX_GREET, EX_USER, EX_PASS, EX_STAT, EX_UIDL, EX_LIST, EX_RETR,
	EX_NOOP, EX_QUIT
};

enum cstate {
	C_FREE, C_CONNECTING, C_HANDSHAKE, C_RUN, C_HOLD, C_CLOSING
};

enum role { R_MAIN, R_NOOP };

struct expect {
	enum ex		 kind;
	uint32_t	 arg;
};

struct lat {
	uint32_t	*v;	/* microseconds */
	size_t		 n, cap;
};

struct worker;

struct conn {
	struct worker	*w;
	int		 fd;
	SSL		*ssl;
	SSL_SESSION	*sess;
	enum cstate	 st;
	enum role	 role;
	uint32_t	 evmask;
	bool		 want_write;	/* TLS needs the socket writable */
	char		 user[64];

	char		*in;
	size_t		 in_cap, in_off, in_len;
	char		*out;
	size_t		 out_cap, out_off, out_len;

	struct expect	*q;
	size_t		 q_cap, q_head, q_n;

	bool		 in_body;	/* inside a multi-line reply */
	bool		 bol;		/* RETR body: at the start of a line */
	char		 last;		/* RETR body: last octet seen */
	uint64_t	 octets;	/* RETR body: un-stuffed octets */
	uint32_t	 lines;		/* UIDL/LIST lines */

	uint32_t	 nmsg;
	uint32_t	*sizes;
	uint32_t	 sizes_cap;
	uint32_t	 next_retr;	/* next message number to ask for */
	uint32_t	 retr_last;	/* last message number to ask for */
	uint32_t	 retr_done;

	uint64_t	 t_sess, t_pass, t_cmd, t_io, next_noop;
};

struct worker {
	int		 id;
	int		 ep;
	pthread_t	 th;
	struct conn	*conns;
	uint32_t	 nconn;
	uint32_t	 nlogin;	/* login role conns first, then noop */
	struct lat	 sess_lat;
	struct lat	 noop_lat;
	struct lat	 base_lat;
	uint64_t	 sessions, sessions_win, errors, msgs, msgs_win;
	uint64_t	 bytes, bytes_win, logged_in, closed, started;
	uint64_t	 t_first_retr, t_last_retr;
	double		 stat_ms, uidl_ms, pass_ms, total_ms;
	atomic_int	 done;
};

struct opts {
	enum mode	 mode;
	const char	*host;
	int		 port;
	bool		 tls, resume;
	uint32_t	 conc;
	double		 duration;
	uint64_t	 count;
	const char	*user;
	uint32_t	 nusers;
	uint32_t	 expect_msgs;
	uint32_t	 window;
	int		 threads;
	size_t		 bufsize;
	double		 timeout;
	const char	*ready_file;
	const char	*noop_prefix;
	uint32_t	 noop_users;
	uint32_t	 noop_conc;
	double		 noop_ms;
	double		 baseline;
	uint32_t	 max_pending;
	const char	*file;
};

static struct opts o = {
	.mode = M_STORM, .host = "127.0.0.1", .port = 110, .conc = 50,
	.duration = 10, .user = "s", .nusers = 1000, .window = 1,
	.threads = 1, .bufsize = 65536, .timeout = 60, .noop_prefix = "s",
	.noop_users = 1000, .noop_conc = 20, .noop_ms = 20, .baseline = 2,
	.max_pending = 100
};

static SSL_CTX *ssl_ctx;
static struct sockaddr_in dst;
static struct worker workers[MAX_THREADS];
static atomic_uint_fast64_t user_ctr, noop_user_ctr, sessions_started;
static atomic_int err_logged;
static atomic_int stopping;	/* no new sessions */
static atomic_int hard_stop;	/* abandon everything */
static volatile sig_atomic_t got_usr1;
static atomic_uint_fast64_t idle_ready;	/* conns logged in or failed */
static uint64_t t_start, t_deadline, t_win_start, t_win_end;
static atomic_int phase;	/* login mode: 0 baseline, 1 storm, 2 end */

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("loadgen: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void *
xrealloc(void *p, size_t n)
{
	if ((p = realloc(p, n)) == NULL)
		die("out of memory");
	return p;
}

static void
lat_add(struct lat *l, uint64_t us)
{
	if (l->n == l->cap) {
		if (l->cap >= LAT_MAX)
			return;
		l->cap = l->cap ? l->cap * 2 : 4096;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void
lat_free(struct lat *l)
{
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Merges every worker's samples of one kind; percentiles in ms. */
static void
lat_pct(size_t off, double *p50, double *p99, double *max, size_t *n_r)
{
	struct lat all = { 0 };
	int i;

	for (i = 0; i < o.threads; i++) {
		struct lat *l = (struct lat *)((char *)&workers[i] + off);

		if (l->n == 0)
			continue;
		all.v = xrealloc(all.v, (all.n + l->n) * sizeof(*all.v));
		memcpy(all.v + all.n, l->v, l->n * sizeof(*l->v));
		all.n += l->n;
	}
	*n_r = all.n;
	*p50 = *p99 = *max = 0;
	if (all.n == 0)
		return;
	qsort(all.v, all.n, sizeof(*all.v), cmp_u32);
	*p50 = all.v[(all.n - 1) / 2] / 1000.0;
	*p99 = all.v[(size_t)((double)(all.n - 1) * 0.99)] / 1000.0;
	*max = all.v[all.n - 1] / 1000.0;
	free(all.v);
}

static void conn_close(struct conn *);
static void conn_start(struct conn *);

static void
conn_error(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	c->w->errors++;
	if (atomic_fetch_add(&err_logged, 1) < MAX_ERR_LOG) {
		char msg[512];

		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		fprintf(stderr, "loadgen: error: %s user=%s: %s\n",
		    mode_names[o.mode], c->user, msg);
	}
	if (o.mode == M_IDLE && c->st != C_HOLD && c->st != C_CLOSING)
		atomic_fetch_add(&idle_ready, 1);
	conn_close(c);
}

static void
set_events(struct conn *c)
{
	struct epoll_event ev;
	uint32_t m = EPOLLIN;

	if (c->st == C_CONNECTING || c->want_write ||
	    c->out_off < c->out_len)
		m |= EPOLLOUT;
	if (m == c->evmask)
		return;
	ev.events = m;
	ev.data.ptr = c;
	if (epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev) == -1)
		die("epoll_ctl: %s", strerror(errno));
	c->evmask = m;
}

static void
q_push(struct conn *c, enum ex kind, uint32_t arg)
{
	if (c->q_n == c->q_cap) {
		struct expect *nq;
		size_t i;

		nq = xrealloc(NULL, (c->q_cap ? c->q_cap * 2 : 16) *
		    sizeof(*nq));
		for (i = 0; i < c->q_n; i++)
			nq[i] = c->q[(c->q_head + i) % c->q_cap];
		free(c->q);
		c->q = nq;
		c->q_head = 0;
		c->q_cap = c->q_cap ? c->q_cap * 2 : 16;
	}
	c->q[(c->q_head + c->q_n) % c->q_cap] = (struct expect){ kind, arg };
	c->q_n++;
}

static void
send_cmd(struct conn *c, enum ex kind, uint32_t arg, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	for (;;) {
		size_t room = c->out_cap - c->out_len;

		va_start(ap, fmt);
		n = vsnprintf(c->out + c->out_len, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			die("vsnprintf");
		if ((size_t)n < room)
			break;
		c->out_cap = c->out_cap * 2 + (size_t)n + 64;
		c->out = xrealloc(c->out, c->out_cap);
	}
	c->out_len += (size_t)n;
	q_push(c, kind, arg);
	c->t_cmd = now_us();
}

static const char *
pick_user(char *buf, size_t len, const char *prefix, uint32_t n,
    atomic_uint_fast64_t *ctr)
{
	if (n == 0)
		snprintf(buf, len, "%s", prefix);
	else
		snprintf(buf, len, "%s%04u", prefix,
		    (unsigned)(atomic_fetch_add(ctr, 1) % n));
	return buf;
}

/* After a successful login. */
static void
logged_in(struct conn *c)
{
	uint32_t i;

	c->w->logged_in++;
	if (c->role == R_NOOP) {
		c->st = C_HOLD;
		c->next_noop = now_us() + (uint64_t)(o.noop_ms * 1000);
		return;
	}
	switch (o.mode) {
	case M_STORM:
	case M_BULK:
	case M_BIGBOX:
		send_cmd(c, EX_STAT, 0, "STAT\r\n");
		break;
	case M_STORM_PIPE:
		send_cmd(c, EX_STAT, 0, "STAT\r\n");
		send_cmd(c, EX_UIDL, 0, "UIDL\r\n");
		send_cmd(c, EX_LIST, 0, "LIST\r\n");
		for (i = 1; i <= o.expect_msgs; i++)
			send_cmd(c, EX_RETR, i, "RETR %u\r\n", i);
		send_cmd(c, EX_QUIT, 0, "QUIT\r\n");
		break;
	case M_IDLE:
		c->st = C_HOLD;
		atomic_fetch_add(&idle_ready, 1);
		break;
	case M_LOGIN:
		send_cmd(c, EX_QUIT, 0, "QUIT\r\n");
		break;
	case M_CEILING:
		break;
	}
}

static void
retr_more(struct conn *c)
{
	uint32_t inflight = c->next_retr - 1 - c->retr_done;

	while (c->next_retr <= c->retr_last && inflight < o.window) {
		if (c->w->t_first_retr == 0)
			c->w->t_first_retr = now_us();
		send_cmd(c, EX_RETR, c->next_retr, "RETR %u\r\n",
		    c->next_retr);
		c->next_retr++;
		inflight++;
	}
}

/* A complete reply (single line, or the end of a multi-line one). */
static int
reply_done(struct conn *c, struct expect e)
{
	uint64_t t = now_us();
	bool in_win = t >= t_win_start && t <= t_win_end;

	c->t_io = t;
	switch (e.kind) {
	case EX_GREET:
		send_cmd(c, EX_USER, 0, "USER %s\r\n", c->user);
		break;
	case EX_USER:
		c->t_pass = now_us();
		send_cmd(c, EX_PASS, 0, "PASS pw-%s\r\n", c->user);
		break;
	case EX_PASS:
		if (o.mode == M_BIGBOX)
			c->w->pass_ms = (double)(t - c->t_pass) / 1000.0;
		logged_in(c);
		break;
	case EX_STAT:
		if (o.mode == M_BIGBOX)
			c->w->stat_ms = (double)(t - c->t_pass) / 1000.0 -
			    c->w->pass_ms;
		if (o.mode == M_STORM)
			send_cmd(c, EX_UIDL, 0, "UIDL\r\n");
		else if (o.mode == M_BULK)
			send_cmd(c, EX_LIST, 0, "LIST\r\n");
		else if (o.mode == M_BIGBOX)
			send_cmd(c, EX_UIDL, 0, "UIDL\r\n");
		break;
	case EX_UIDL:
		if (c->lines != c->nmsg) {
			conn_error(c, "UIDL listed %u messages, STAT %u",
			    c->lines, c->nmsg);
			return -1;
		}
		if (o.mode == M_STORM)
			send_cmd(c, EX_LIST, 0, "LIST\r\n");
		else if (o.mode == M_BIGBOX) {
			c->w->total_ms = (double)(t - c->t_pass) / 1000.0;
			c->w->uidl_ms = c->w->total_ms - c->w->pass_ms -
			    c->w->stat_ms;
			send_cmd(c, EX_QUIT, 0, "QUIT\r\n");
		}
		break;
	case EX_LIST:
		if (c->lines != c->nmsg) {
			conn_error(c, "LIST listed %u messages, STAT %u",
			    c->lines, c->nmsg);
			return -1;
		}
		if (o.mode == M_STORM) {
			if (c->nmsg > 0)
				send_cmd(c, EX_RETR, 1, "RETR 1\r\n");
			else
				send_cmd(c, EX_QUIT, 0, "QUIT\r\n");
		} else if (o.mode == M_BULK) {
			c->next_retr = 1;
			c->retr_done = 0;
			c->retr_last = c->nmsg;
			if (o.count > 0 && o.count < c->nmsg)
				c->retr_last = (uint32_t)o.count;
			if (c->retr_last == 0)
				send_cmd(c, EX_QUIT, 0, "QUIT\r\n");
			else
				retr_more(c);
		}
		break;
	case EX_RETR:
		c->retr_done++;
		c->w->msgs++;
		c->w->bytes += c->octets;
		if (in_win) {
			c->w->msgs_win++;
			c->w->bytes_win += c->octets;
		}
		if (o.mode == M_STORM) {
			if (e.arg < c->nmsg)
				send_cmd(c, EX_RETR, e.arg + 1, "RETR %u\r\n",
				    e.arg + 1);
			else
				send_cmd(c, EX_QUIT, 0, "QUIT\r\n");
		} else if (o.mode == M_BULK) {
			if (c->retr_done == c->retr_last) {
				c->w->t_last_retr = t;
				send_cmd(c, EX_QUIT, 0, "QUIT\r\n");
			} else
				retr_more(c);
		}
		break;
	case EX_NOOP:
		if (atomic_load(&phase) == 0)
			lat_add(&c->w->base_lat, t - c->t_cmd);
		else if (atomic_load(&phase) == 1)
			lat_add(&c->w->noop_lat, t - c->t_cmd);
		c->st = C_HOLD;
		c->next_noop = t + (uint64_t)(o.noop_ms * 1000);
		break;
	case EX_QUIT:
		if (c->role == R_MAIN) {
			c->w->sessions++;
			if (in_win)
				c->w->sessions_win++;
			lat_add(&c->w->sess_lat, t - c->t_sess);
		}
		c->st = C_CLOSING;
		break;
	}
	return 0;
}

/* A "+OK" or "-ERR" status line has arrived for e. */
static int
status_line(struct conn *c, struct expect e, const char *line, size_t len)
{
	static const char *const names[] = {
		"greeting", "USER", "PASS", "STAT", "UIDL", "LIST", "RETR",
		"NOOP", "QUIT"
	};

	if (len < 3 || memcmp(line, "+OK", 3) != 0) {
		conn_error(c, "%s: %.*s", names[e.kind],
		    (int)(len > 200 ? 200 : len), line);
		return -1;
	}
	switch (e.kind) {
	case EX_STAT: {
		unsigned long n;
		char *end;

		errno = 0;
		n = strtoul(line + 3, &end, 10);
		if (errno != 0 || end == line + 3 || n > 10000000) {
			conn_error(c, "bad STAT reply");
			return -1;
		}
		if (o.expect_msgs > 0 && n != o.expect_msgs &&
		    o.mode != M_BULK) {
			conn_error(c, "STAT says %lu messages, expected %u",
			    n, o.expect_msgs);
			return -1;
		}
		c->nmsg = (uint32_t)n;
		if (c->nmsg > c->sizes_cap) {
			c->sizes_cap = c->nmsg;
			c->sizes = xrealloc(c->sizes, c->sizes_cap *
			    sizeof(*c->sizes));
		}
		return reply_done(c, e);
	}
	case EX_UIDL:
	case EX_LIST:
		c->in_body = true;
		c->lines = 0;
		return 0;
	case EX_RETR:
		if (e.arg > c->nmsg) {
			conn_error(c, "RETR %u beyond STAT %u", e.arg, c->nmsg);
			return -1;
		}
		c->in_body = true;
		c->bol = true;
		c->last = '\n';
		c->octets = 0;
		return 0;
	default:
		return reply_done(c, e);
	}
}

/* One line of a UIDL or LIST body (without CRLF). */
static int
list_line(struct conn *c, struct expect e, const char *line, size_t len)
{
	unsigned long i, v;
	char *end;
	const char *p;

	if (c->lines >= c->nmsg) {
		conn_error(c, "more listing lines than STAT said");
		return -1;
	}
	errno = 0;
	i = strtoul(line, &end, 10);
	if (errno != 0 || end == line || *end != ' ' || i != c->lines + 1u) {
		conn_error(c, "bad listing line %.*s", (int)len, line);
		return -1;
	}
	p = end + 1;
	if (e.kind == EX_LIST) {
		v = strtoul(p, &end, 10);
		if (end == p || end != line + len || v > UINT32_MAX) {
			conn_error(c, "bad LIST line %.*s", (int)len, line);
			return -1;
		}
		c->sizes[c->lines] = (uint32_t)v;
	} else if (p >= line + len) {
		conn_error(c, "empty UIDL");
		return -1;
	}
	c->lines++;
	return 0;
}

#if defined(__SSE2__)
/*
 * Checks whole lines from p on sixteen octets at a time: every LF must
 * follow a CR (the octet before p is c->last).  Stops just after an LF
 * whose next line starts with '.' (the caller checks the stuffing), at a
 * bare LF (*bad), or at a block edge when fewer than 17 octets are left
 * (the next octet after an LF must be readable).  Needs end - p >= 17.
 */
static char *
retr_lines(const struct conn *c, char *p, char *end, bool *bad)
{
	const __m128i nl = _mm_set1_epi8('\n');
	char *q = p;

	for (; end - q >= 17; q += 16) {
		unsigned int m = (unsigned int)_mm_movemask_epi8(_mm_cmpeq_epi8(
		    _mm_loadu_si128((const __m128i *)(const void *)q), nl));

		while (m != 0) {
			char *lf = q + __builtin_ctz(m);

			m &= m - 1;
			if ((lf > p ? lf[-1] : c->last) != '\r') {
				*bad = true;
				return lf;
			}
			if (lf[1] == '.')
				return lf + 1;
		}
	}
	return q;
}
#endif

/*
 * Consumes a RETR body from in[in_off..in_len): counts un-stuffed octets
 * line by line, any line length.  1 at the terminator, 0 for more input,
 * -1 on error (connection closed).
 */
static int
retr_body(struct conn *c, struct expect e)
{
	char *p = c->in + c->in_off, *end = c->in + c->in_len, *lf;

	while (p < end) {
		if (c->bol) {
			if (*p == '.') {
				if (end - p < 3)
					break;	/* need ".\r\n" or ".x" */
				if (p[1] == '\r' && p[2] == '\n') {
					p += 3;
					c->in_off = (size_t)(p - c->in);
					c->in_body = false;
					if (c->octets != c->sizes[e.arg - 1]) {
						conn_error(c, "RETR %u: %" PRIu64
						    " octets, LIST said %u",
						    e.arg, c->octets,
						    c->sizes[e.arg - 1]);
						return -1;
					}
					return 1;
				}
				if (p[1] != '.') {
					conn_error(c, "RETR %u: unstuffed "
					    "line starting with '.'", e.arg);
					return -1;
				}
				p++;	/* the stuffed dot */
			}
			c->bol = false;
		}
#if defined(__SSE2__)
		if (end - p >= 17) {
			bool bad = false;
			char *q = retr_lines(c, p, end, &bad);

			if (bad) {
				conn_error(c, "RETR %u: bare LF", e.arg);
				return -1;
			}
			c->octets += (uint64_t)(q - p);
			c->last = q[-1];
			c->bol = q[-1] == '\n';
			p = q;
			continue;
		}
#endif
		lf = memchr(p, '\n', (size_t)(end - p));
		if (lf == NULL) {
			c->octets += (uint64_t)(end - p);
			c->last = end[-1];
			p = end;
			break;
		}
		if ((lf > p ? lf[-1] : c->last) != '\r') {
			conn_error(c, "RETR %u: bare LF", e.arg);
			return -1;
		}
		c->octets += (uint64_t)(lf + 1 - p);
		c->last = '\n';
		c->bol = true;
		p = lf + 1;
	}
	c->in_off = (size_t)(p - c->in);
	return 0;
}

/* Handles whatever complete input there is.  -1 if c was closed. */
static int
process_input(struct conn *c)
{
	while (c->in_off < c->in_len) {
		struct expect e;
		char *line, *lf;
		size_t len;
		int r;

		if (c->st == C_CLOSING) {
			c->in_off = c->in_len;	/* ignore anything after */
			return 0;
		}
		if (c->q_n == 0) {
			conn_error(c, "unexpected input: %.*s",
			    (int)(c->in_len - c->in_off > 80 ? 80 :
			    c->in_len - c->in_off), c->in + c->in_off);
			return -1;
		}
		e = c->q[c->q_head];
		if (c->in_body && e.kind == EX_RETR) {
			if ((r = retr_body(c, e)) < 0)
				return -1;
			if (r == 0)
				return 0;
			c->q_head = (c->q_head + 1) % c->q_cap;
			c->q_n--;
			if (reply_done(c, e) == -1)
				return -1;
			continue;
		}
		line = c->in + c->in_off;
		lf = memchr(line, '\n', c->in_len - c->in_off);
		if (lf == NULL)
			return 0;
		if (lf == line || lf[-1] != '\r') {
			conn_error(c, "line without CRLF");
			return -1;
		}
		len = (size_t)(lf - 1 - line);
		c->in_off = (size_t)(lf + 1 - c->in);
		if (c->in_body) {
			if (len == 1 && line[0] == '.') {
				c->in_body = false;
				c->q_head = (c->q_head + 1) % c->q_cap;
				c->q_n--;
				if (reply_done(c, e) == -1)
					return -1;
				continue;
			}
			if (list_line(c, e, line, len) == -1)
				return -1;
			continue;
		}
		if (e.kind != EX_UIDL && e.kind != EX_LIST &&
		    e.kind != EX_RETR) {
			c->q_head = (c->q_head + 1) % c->q_cap;
			c->q_n--;
		}
		if (status_line(c, e, line, len) == -1)
			return -1;
	}
	return 0;
}

static int
flush_out(struct conn *c)
{
	while (c->out_off < c->out_len) {
		size_t len = c->out_len - c->out_off;
		ssize_t n;

		if (c->ssl != NULL) {
			int r = SSL_write(c->ssl, c->out + c->out_off,
			    (int)len);

			if (r <= 0) {
				int err = SSL_get_error(c->ssl, r);

				if (err == SSL_ERROR_WANT_WRITE) {
					c->want_write = true;
					return 0;
				}
				if (err == SSL_ERROR_WANT_READ)
					return 0;
				conn_error(c, "SSL_write failed");
				return -1;
			}
			c->want_write = false;
			n = r;
		} else {
			n = write(c->fd, c->out + c->out_off, len);
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR)
					return 0;
				conn_error(c, "write: %s", strerror(errno));
				return -1;
			}
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	return 0;
}

/* Reads until the socket would block.  -1 if c was closed. */
static int
read_input(struct conn *c)
{
	int rounds = 0;

	for (;;) {
		ssize_t n;

		if (c->in_off == c->in_len)
			c->in_off = c->in_len = 0;
		else if (c->in_off > 0 && (c->in_len == c->in_cap ||
		    c->in_off > c->in_cap / 2)) {
			memmove(c->in, c->in + c->in_off,
			    c->in_len - c->in_off);
			c->in_len -= c->in_off;
			c->in_off = 0;
		}
		if (c->in_len == c->in_cap) {
			conn_error(c, "input line longer than %zu octets",
			    c->in_cap);
			return -1;
		}
		if (c->ssl != NULL) {
			int r = SSL_read(c->ssl, c->in + c->in_len,
			    (int)(c->in_cap - c->in_len));

			if (r <= 0) {
				int err = SSL_get_error(c->ssl, r);

				if (err == SSL_ERROR_WANT_READ)
					return 0;
				if (err == SSL_ERROR_WANT_WRITE) {
					c->want_write = true;
					return 0;
				}
				if (c->st == C_CLOSING &&
				    (err == SSL_ERROR_ZERO_RETURN ||
				    err == SSL_ERROR_SYSCALL)) {
					conn_close(c);
					return -1;
				}
				conn_error(c, "TLS read: connection ended "
				    "(%s)", err == SSL_ERROR_ZERO_RETURN ?
				    "close_notify" : "error or EOF");
				return -1;
			}
			n = r;
		} else {
			n = read(c->fd, c->in + c->in_len,
			    c->in_cap - c->in_len);
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR)
					return 0;
				if (c->st == C_CLOSING) {
					conn_close(c);
					return -1;
				}
				conn_error(c, "read: %s", strerror(errno));
				return -1;
			}
			if (n == 0) {
				if (c->st == C_CLOSING) {
					conn_close(c);
					return -1;
				}
				conn_error(c, "connection closed by server");
				return -1;
			}
		}
		c->in_len += (size_t)n;
		c->t_io = now_us();
		if (process_input(c) == -1)
			return -1;
		if (flush_out(c) == -1)
			return -1;
		/* Plain sockets: let other connections run now and then;
		 * level-triggered epoll brings us back. */
		if (c->ssl == NULL && ++rounds >= 8)
			return 0;
	}
}

static void
conn_free_bufs(struct conn *c)
{
	free(c->in);
	free(c->out);
	free(c->q);
	free(c->sizes);
	c->in = c->out = NULL;
	c->q = NULL;
	c->sizes = NULL;
	c->in_cap = c->out_cap = c->q_cap = c->sizes_cap = 0;
}

/* Closes the socket; loop modes start the next session. */
static void
conn_close(struct conn *c)
{
	if (c->st == C_FREE)
		return;
	if (c->ssl != NULL) {
		if (o.resume) {
			SSL_SESSION *s = SSL_get1_session(c->ssl);

			if (s != NULL) {
				if (c->sess != NULL)
					SSL_SESSION_free(c->sess);
				c->sess = s;
			}
		}
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd != -1) {
		(void)epoll_ctl(c->w->ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	c->st = C_FREE;
	c->w->closed++;
	if (c->role == R_MAIN && !atomic_load(&stopping) &&
	    !atomic_load(&hard_stop) &&
	    (o.mode == M_STORM || o.mode == M_STORM_PIPE ||
	    o.mode == M_LOGIN))
		conn_start(c);
	else
		conn_free_bufs(c);
}

static void
conn_start(struct conn *c)
{
	struct epoll_event ev;
	int fd, on = 1;

	if (c->role == R_MAIN && o.count > 0 && o.mode != M_BULK &&
	    o.mode != M_IDLE &&
	    atomic_fetch_add(&sessions_started, 1) >= o.count) {
		conn_free_bufs(c);
		return;
	}
	if (c->in == NULL) {
		c->in_cap = o.bufsize;
		c->in = xrealloc(NULL, c->in_cap);
		c->out_cap = 256;
		c->out = xrealloc(NULL, c->out_cap);
	}
	c->in_off = c->in_len = c->out_off = c->out_len = 0;
	c->q_head = c->q_n = 0;
	c->in_body = false;
	c->nmsg = 0;
	c->want_write = false;
	if (c->role == R_NOOP)
		pick_user(c->user, sizeof(c->user), o.noop_prefix,
		    o.noop_users, &noop_user_ctr);
	else
		pick_user(c->user, sizeof(c->user), o.user, o.nusers,
		    &user_ctr);
	c->t_sess = c->t_io = now_us();
	c->w->started++;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		c->st = C_CONNECTING;
		c->fd = -1;
		conn_error(c, "socket: %s", strerror(errno));
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	c->fd = fd;
	c->st = C_CONNECTING;
	c->evmask = EPOLLOUT | EPOLLIN;
	ev.events = c->evmask;
	ev.data.ptr = c;
	if (epoll_ctl(c->w->ep, EPOLL_CTL_ADD, fd, &ev) == -1)
		die("epoll_ctl add: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) == -1 &&
	    errno != EINPROGRESS) {
		conn_error(c, "connect: %s", strerror(errno));
		return;
	}
}

static void
conn_event(struct conn *c, uint32_t events)
{
	if (c->st == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) ==
		    -1 || err != 0) {
			conn_error(c, "connect: %s", strerror(err ? err :
			    errno));
			return;
		}
		q_push(c, EX_GREET, 0);
		c->t_io = now_us();
		if (o.tls) {
			if ((c->ssl = SSL_new(ssl_ctx)) == NULL)
				die("SSL_new");
			SSL_set_fd(c->ssl, c->fd);
			SSL_set_connect_state(c->ssl);
			if (c->sess != NULL)
				SSL_set_session(c->ssl, c->sess);
			c->st = C_HANDSHAKE;
		} else
			c->st = C_RUN;
	}
	if (c->st == C_HANDSHAKE) {
		int r = SSL_do_handshake(c->ssl);

		if (r != 1) {
			int err = SSL_get_error(c->ssl, r);

			if (err == SSL_ERROR_WANT_READ) {
				c->want_write = false;
				set_events(c);
				return;
			}
			if (err == SSL_ERROR_WANT_WRITE) {
				c->want_write = true;
				set_events(c);
				return;
			}
			{
				const char *why = ERR_reason_error_string(
				    ERR_get_error());

				conn_error(c, "TLS handshake failed: %s",
				    why != NULL ? why : "connection closed");
			}
			return;
		}
		c->want_write = false;
		c->st = C_RUN;
	}
	if (flush_out(c) == -1)
		return;
	if (read_input(c) == -1)
		return;
	if (flush_out(c) == -1)
		return;
	set_events(c);
}

/* Sends QUIT on a held session (idle end, noop end). */
static void
conn_quit(struct conn *c)
{
	if (c->st != C_HOLD)
		return;
	c->st = C_RUN;
	send_cmd(c, EX_QUIT, 0, "QUIT\r\n");
	if (flush_out(c) == -1)
		return;
	set_events(c);
}

static void
sweep(struct worker *w, uint64_t t)
{
	uint64_t limit = (uint64_t)(o.timeout * 1e6);
	uint32_t i;

	for (i = 0; i < w->nconn; i++) {
		struct conn *c = &w->conns[i];

		if (c->st == C_FREE || c->st == C_HOLD)
			continue;
		if (t - c->t_io > limit) {
			if (c->st == C_CLOSING)
				conn_close(c);
			else
				conn_error(c, "no progress for %.0f s "
				    "(state %d, %zu replies pending)",
				    o.timeout, (int)c->st, c->q_n);
		}
	}
}

static uint32_t
live_conns(struct worker *w)
{
	uint32_t i, n = 0;

	for (i = 0; i < w->nconn; i++)
		if (w->conns[i].st != C_FREE)
			n++;
	return n;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[256];
	uint64_t last_sweep = now_us();
	uint32_t i, next_idle = 0;
	bool quitting = false;

	if (o.mode != M_IDLE)
		for (i = 0; i < w->nconn; i++)
			conn_start(&w->conns[i]);
	for (;;) {
		uint64_t t = now_us();
		int n, k, wait_ms = 100;

		if (atomic_load(&hard_stop))
			break;
		/* idle: keep at most max_pending logins in flight. */
		if (o.mode == M_IDLE && !quitting) {
			uint32_t pending = 0;

			for (i = 0; i < next_idle; i++) {
				enum cstate st = w->conns[i].st;

				if (st != C_HOLD && st != C_FREE)
					pending++;
			}
			while (next_idle < w->nconn &&
			    pending < o.max_pending / (uint32_t)o.threads +
			    1) {
				conn_start(&w->conns[next_idle++]);
				pending++;
			}
			if (got_usr1 || t >= t_deadline ||
			    atomic_load(&stopping)) {
				quitting = true;
				for (i = 0; i < w->nconn; i++)
					conn_quit(&w->conns[i]);
			}
		}
		if (o.mode == M_LOGIN) {
			for (i = w->nlogin; i < w->nconn; i++) {
				struct conn *c = &w->conns[i];

				if (atomic_load(&phase) == 2) {
					conn_quit(c);
					continue;
				}
				if (c->st != C_HOLD)
					continue;
				if (c->next_noop <= t) {
					c->st = C_RUN;
					send_cmd(c, EX_NOOP, 0, "NOOP\r\n");
					if (flush_out(c) == 0)
						set_events(c);
				} else if ((c->next_noop - t) / 1000 <
				    (uint64_t)wait_ms)
					wait_ms = (int)((c->next_noop - t) /
					    1000);
			}
			if (wait_ms < 1)
				wait_ms = 1;
		}
		if (live_conns(w) == 0 && (o.mode != M_IDLE || quitting))
			break;
		n = epoll_wait(w->ep, evs, 256, wait_ms);
		if (n == -1 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (k = 0; k < n; k++)
			conn_event(evs[k].data.ptr, evs[k].events);
		t = now_us();
		if (t - last_sweep > 1000000) {
			sweep(w, t);
			last_sweep = t;
		}
	}
	atomic_store(&stopping, 1);
	for (i = 0; i < w->nconn; i++)
		if (w->conns[i].st != C_FREE) {
			if (w->conns[i].st != C_CLOSING &&
			    w->conns[i].st != C_HOLD)
				conn_error(&w->conns[i], "unfinished when "
				    "the run ended");
			else
				conn_close(&w->conns[i]);
		}
	atomic_store(&w->done, 1);
	return NULL;
}

static void
on_usr1(int sig)
{
	(void)sig;
	got_usr1 = 1;
}

/* The ceiling: a trivial server that sends a file over loopback TCP. */
struct ceil_arg {
	int		 lfd;
	const char	*file;
	uint64_t	 repeat;
};

static void *
ceiling_server(void *arg)
{
	struct ceil_arg *a = arg;
	int cfd, fd;
	uint64_t r;
	struct stat sb;

	if ((cfd = accept(a->lfd, NULL, NULL)) == -1)
		die("accept: %s", strerror(errno));
	if ((fd = open(a->file, O_RDONLY)) == -1 || fstat(fd, &sb) == -1)
		die("%s: %s", a->file, strerror(errno));
	for (r = 0; r < a->repeat; r++) {
		off_t off = 0;

		while (off < sb.st_size) {
			ssize_t n = sendfile(cfd, fd, &off,
			    (size_t)(sb.st_size - off));

			if (n <= 0)
				die("sendfile: %s", n == 0 ? "EOF" :
				    strerror(errno));
		}
	}
	close(fd);
	close(cfd);
	return NULL;
}

static void
run_ceiling(void)
{
	struct ceil_arg a;
	struct sockaddr_in sin = dst;
	pthread_t th;
	int lfd, cfd, on = 1;
	uint64_t total = 0, t0, t1;
	char *buf = xrealloc(NULL, o.bufsize);
	struct rusage ru;
	ssize_t n;

	if (o.file == NULL)
		die("ceiling needs -F FILE");
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	(void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (lfd == -1 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) ==
	    -1 || listen(lfd, 1) == -1)
		die("ceiling listen %s:%d: %s", o.host, o.port,
		    strerror(errno));
	a.lfd = lfd;
	a.file = o.file;
	a.repeat = o.count ? o.count : 1;
	if (pthread_create(&th, NULL, ceiling_server, &a) != 0)
		die("pthread_create");
	if ((cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(cfd, (struct sockaddr *)&dst, sizeof(dst)) == -1)
		die("ceiling connect: %s", strerror(errno));
	t0 = now_us();
	while ((n = read(cfd, buf, o.bufsize)) > 0)
		total += (uint64_t)n;
	t1 = now_us();
	if (n == -1)
		die("ceiling read: %s", strerror(errno));
	pthread_join(th, NULL);
	close(cfd);
	close(lfd);
	getrusage(RUSAGE_SELF, &ru);
	printf("mode=ceiling bytes=%" PRIu64 " wall_s=%.3f mb_per_s=%.1f "
	    "errors=0 cpu_s=%.3f\n", total, (double)(t1 - t0) / 1e6,
	    (double)total / ((double)(t1 - t0) / 1e6) / 1e6,
	    (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	free(buf);
}

static void
usage(void)
{
	fputs("usage: loadgen -m storm|storm-pipe|bulk|idle|login|bigbox|"
	    "ceiling\n"
	    "  [-H 127.0.0.1] [-p PORT] [-s (implicit TLS)] [-r (resume)]\n"
	    "  [-c CONC] [-d SECONDS] [-n COUNT] [-u USER|PREFIX] [-U NUSERS]\n"
	    "  [-M MSGS] [-w WINDOW] [-j THREADS] [-B BUFSIZE] [-T TIMEOUT]\n"
	    "  [-R READYFILE] [-k NOOP_PREFIX] [-Q NOOP_USERS] [-K NOOP_CONC]\n"
	    "  [-I NOOP_MS] [-b BASELINE_S] [-a MAX_PENDING] [-F FILE]\n",
	    stderr);
	exit(1);
}

static double
arg_num(const char *s, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		die("bad number: %s", s);
	return v;
}

static void
parse_args(int argc, char **argv)
{
	int ch;
	size_t i;

	while ((ch = getopt(argc, argv,
	    "m:H:p:src:d:n:u:U:M:w:j:B:T:R:k:Q:K:I:b:a:F:")) != -1) {
		switch (ch) {
		case 'm':
			for (i = 0; i < sizeof(mode_names) /
			    sizeof(mode_names[0]); i++)
				if (strcmp(optarg, mode_names[i]) == 0)
					break;
			if (i == sizeof(mode_names) / sizeof(mode_names[0]))
				usage();
			o.mode = (enum mode)i;
			break;
		case 'H': o.host = optarg; break;
		case 'p': o.port = (int)arg_num(optarg, 1, 65535); break;
		case 's': o.tls = true; break;
		case 'r': o.resume = true; break;
		case 'c': o.conc = (uint32_t)arg_num(optarg, 1, 100000); break;
		case 'd': o.duration = arg_num(optarg, 0.1, 3600); break;
		case 'n': o.count = (uint64_t)arg_num(optarg, 0, 1e12); break;
		case 'u': o.user = optarg; break;
		case 'U': o.nusers = (uint32_t)arg_num(optarg, 0, 10000); break;
		case 'M': o.expect_msgs = (uint32_t)arg_num(optarg, 0, 1e7);
			break;
		case 'w': o.window = (uint32_t)arg_num(optarg, 1, 100000);
			break;
		case 'j': o.threads = (int)arg_num(optarg, 1, MAX_THREADS);
			break;
		case 'B': o.bufsize = (size_t)arg_num(optarg, 1024, 1 << 26);
			break;
		case 'T': o.timeout = arg_num(optarg, 1, 3600); break;
		case 'R': o.ready_file = optarg; break;
		case 'k': o.noop_prefix = optarg; break;
		case 'Q': o.noop_users = (uint32_t)arg_num(optarg, 0, 10000);
			break;
		case 'K': o.noop_conc = (uint32_t)arg_num(optarg, 0, 10000);
			break;
		case 'I': o.noop_ms = arg_num(optarg, 1, 10000); break;
		case 'b': o.baseline = arg_num(optarg, 0, 3600); break;
		case 'a': o.max_pending = (uint32_t)arg_num(optarg, 1, 100000);
			break;
		case 'F': o.file = optarg; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	memset(&dst, 0, sizeof(dst));
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)o.port);
	if (inet_pton(AF_INET, o.host, &dst.sin_addr) != 1)
		die("bad address %s", o.host);
	/* Loopback only: this program must never load another host. */
	if ((ntohl(dst.sin_addr.s_addr) >> 24) != 127)
		die("%s is not a loopback address", o.host);
	if (o.mode == M_STORM_PIPE && o.expect_msgs == 0)
		die("storm-pipe needs -M (messages per mailbox)");
	if (o.mode == M_BULK || o.mode == M_BIGBOX)
		o.conc = 1;
	if ((uint32_t)o.threads > o.conc)
		o.threads = (int)o.conc;
}

static double
cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void
write_ready(uint64_t ok, uint64_t errs, double login_s)
{
	FILE *f;
	char tmp[4096];

	if (o.ready_file == NULL) {
		fprintf(stderr, "loadgen: ready logged_in=%" PRIu64
		    " errors=%" PRIu64 "\n", ok, errs);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", o.ready_file);
	if ((f = fopen(tmp, "w")) == NULL)
		die("%s: %s", tmp, strerror(errno));
	fprintf(f, "logged_in=%" PRIu64 " errors=%" PRIu64 " login_s=%.3f\n",
	    ok, errs, login_s);
	if (fclose(f) != 0 || rename(tmp, o.ready_file) == -1)
		die("%s: %s", o.ready_file, strerror(errno));
}

/* Spreads nmain main-role and nnoop NOOP-role connections over ws[]. */
static void
setup_workers(struct worker *ws, uint32_t nmain, uint32_t nnoop)
{
	int t;
	uint32_t i;

	for (t = 0; t < o.threads; t++) {
		struct worker *w = &ws[t];
		uint32_t m = nmain / (uint32_t)o.threads +
		    ((uint32_t)t < nmain % (uint32_t)o.threads);
		uint32_t k = nnoop / (uint32_t)o.threads +
		    ((uint32_t)t < nnoop % (uint32_t)o.threads);

		w->id = t;
		if ((w->ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
			die("epoll_create1: %s", strerror(errno));
		w->nconn = m + k;
		w->nlogin = m;
		w->conns = calloc(w->nconn + 1, sizeof(*w->conns));
		if (w->conns == NULL)
			die("out of memory");
		for (i = 0; i < w->nconn; i++) {
			w->conns[i].w = w;
			w->conns[i].fd = -1;
			w->conns[i].role = i < m ? R_MAIN : R_NOOP;
		}
	}
}

static void
start_workers(struct worker *ws)
{
	int t;

	for (t = 0; t < o.threads; t++)
		if (pthread_create(&ws[t].th, NULL, worker_main, &ws[t]) != 0)
			die("pthread_create");
}

/* Joins ws[]; past hard_at (0: never) the workers are told to give up. */
static void
join_workers(struct worker *ws, uint64_t hard_at)
{
	int t;

	for (;;) {
		int done = 0;

		for (t = 0; t < o.threads; t++)
			done += atomic_load(&ws[t].done);
		if (done == o.threads)
			break;
		if (hard_at != 0 && now_us() > hard_at)
			atomic_store(&hard_stop, 1);
		usleep(5000);
	}
	for (t = 0; t < o.threads; t++)
		pthread_join(ws[t].th, NULL);
}

int
main(int argc, char **argv)
{
	static struct worker lworkers[MAX_THREADS];
	struct sigaction sa;
	uint64_t sessions = 0, sessions_win = 0, errors = 0, msgs = 0;
	uint64_t msgs_win = 0, bytes = 0, bytes_win = 0, logged = 0;
	uint64_t t_end, first_retr = 0, last_retr = 0;
	double p50, p99, mx, wall, win;
	size_t nlat;
	uint32_t i;
	int t;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	if (o.mode == M_CEILING) {
		run_ceiling();
		return 0;
	}
	if (o.tls) {
		ssl_ctx = SSL_CTX_new(TLS_client_method());
		if (ssl_ctx == NULL)
			die("SSL_CTX_new");
		SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_session_cache_mode(ssl_ctx, o.resume ?
		    SSL_SESS_CACHE_CLIENT : SSL_SESS_CACHE_OFF);
		SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
		    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
		    (o.mode == M_IDLE ? SSL_MODE_RELEASE_BUFFERS : 0));
	}
	t_start = now_us();
	t_deadline = t_start + (uint64_t)(o.duration * 1e6);
	t_win_start = t_start;
	t_win_end = o.mode == M_STORM || o.mode == M_STORM_PIPE ?
	    t_deadline : UINT64_MAX;

	if (o.mode == M_LOGIN) {
		uint64_t limit = now_us() + (uint64_t)(o.timeout * 1e6);

		/* The NOOP sessions log in first; a baseline of their
		 * latency; then the login clients run alongside them. */
		setup_workers(workers, 0, o.noop_conc);
		setup_workers(lworkers, o.conc, 0);
		t_deadline = UINT64_MAX;
		start_workers(workers);
		for (;;) {
			logged = 0;
			for (t = 0; t < o.threads; t++)
				logged += workers[t].logged_in;
			if (logged >= o.noop_conc || now_us() > limit)
				break;
			usleep(10000);
		}
		atomic_store(&phase, 0);
		usleep((useconds_t)(o.baseline * 1e6));
		t_win_start = now_us();
		t_win_end = t_win_start + (uint64_t)(o.duration * 1e6);
		atomic_store(&phase, 1);
		start_workers(lworkers);
		while (now_us() < t_win_end)
			usleep(10000);
		atomic_store(&stopping, 1);
		join_workers(lworkers, t_win_end +
		    (uint64_t)(o.timeout * 1e6));
		atomic_store(&phase, 2);
		join_workers(workers, now_us() + (uint64_t)(o.timeout * 1e6));
		for (t = 0; t < o.threads; t++) {
			struct worker *w = &workers[t], *l = &lworkers[t];

			w->sessions += l->sessions;
			w->sessions_win += l->sessions_win;
			w->errors += l->errors;
			lat_free(&w->sess_lat);
			w->sess_lat = l->sess_lat;
		}
	} else if (o.mode == M_IDLE) {
		uint64_t limit = now_us() + (uint64_t)(o.timeout * 1e6) *
		    (1 + o.conc / 1000);
		double login_s;

		setup_workers(workers, o.conc, 0);
		t_deadline = UINT64_MAX;	/* set once all are in */
		start_workers(workers);
		while (atomic_load(&idle_ready) < o.conc && now_us() < limit &&
		    !got_usr1)
			usleep(10000);
		login_s = (double)(now_us() - t_start) / 1e6;
		for (t = 0; t < o.threads; t++)
			logged += workers[t].logged_in;
		write_ready(logged, o.conc - logged, login_s);
		t_deadline = now_us() + (uint64_t)(o.duration * 1e6);
		if (logged < o.conc)
			atomic_store(&stopping, 1);
		join_workers(workers, 0);
	} else {
		setup_workers(workers, o.conc, 0);
		start_workers(workers);
		if (o.mode == M_STORM || o.mode == M_STORM_PIPE) {
			/* Stop starting sessions at the deadline (or once
			 * -n sessions were started); bound the drain. */
			for (;;) {
				int done = 0;

				for (t = 0; t < o.threads; t++)
					done += atomic_load(&workers[t].done);
				if (done == o.threads || now_us() >= t_deadline)
					break;
				usleep(5000);
			}
			atomic_store(&stopping, 1);
			join_workers(workers, now_us() +
			    (uint64_t)(o.timeout * 1e6));
		} else
			join_workers(workers, 0);
	}
	t_end = now_us();

	for (t = 0; t < o.threads; t++) {
		struct worker *w = &workers[t];

		sessions += w->sessions;
		sessions_win += w->sessions_win;
		errors += w->errors;
		msgs += w->msgs;
		msgs_win += w->msgs_win;
		bytes += w->bytes;
		bytes_win += w->bytes_win;
		if (w->t_first_retr != 0 && (first_retr == 0 ||
		    w->t_first_retr < first_retr))
			first_retr = w->t_first_retr;
		if (w->t_last_retr > last_retr)
			last_retr = w->t_last_retr;
	}
	wall = (double)(t_end - t_start) / 1e6;
	printf("mode=%s tls=%d", mode_names[o.mode], o.tls);
	switch (o.mode) {
	case M_STORM:
	case M_STORM_PIPE:
		/* Rates count what completed inside the fixed window, or
		 * everything when -n ended the run before it. */
		win = (double)(t_win_end - t_win_start) / 1e6;
		if (o.count > 0 && t_end < t_win_end) {
			win = wall;
			sessions_win = sessions;
			msgs_win = msgs;
			bytes_win = bytes;
		}
		lat_pct(offsetof(struct worker, sess_lat), &p50, &p99, &mx,
		    &nlat);
		printf(" sessions=%" PRIu64 " sess_per_s=%.1f msgs=%" PRIu64
		    " msg_per_s=%.1f mb_per_s=%.2f p50_ms=%.2f p99_ms=%.2f"
		    " max_ms=%.2f", sessions, (double)sessions_win / win, msgs,
		    (double)msgs_win / win, (double)bytes_win / win / 1e6,
		    p50, p99, mx);
		break;
	case M_BULK:
		win = last_retr > first_retr ?
		    (double)(last_retr - first_retr) / 1e6 : 0;
		printf(" msgs=%" PRIu64 " bytes=%" PRIu64 " retr_s=%.3f"
		    " mb_per_s=%.1f", msgs, bytes, win,
		    win > 0 ? (double)bytes / win / 1e6 : 0);
		if ((msgs == 0 || sessions != 1) && errors == 0)
			errors = 1;
		break;
	case M_IDLE:
		printf(" sessions=%u logged_in=%" PRIu64 " closed_ok=%" PRIu64,
		    o.conc, logged, sessions);
		if (sessions != o.conc && errors == 0)
			errors = o.conc - sessions;
		break;
	case M_LOGIN: {
		double b50, b99, bmx;
		size_t bn;

		win = (double)(t_win_end - t_win_start) / 1e6;
		lat_pct(offsetof(struct worker, sess_lat), &p50, &p99, &mx,
		    &nlat);
		printf(" logins=%" PRIu64 " logins_per_s=%.1f"
		    " login_p50_ms=%.1f login_p99_ms=%.1f", sessions_win,
		    (double)sessions_win / win, p50, p99);
		lat_pct(offsetof(struct worker, noop_lat), &p50, &p99, &mx,
		    &nlat);
		lat_pct(offsetof(struct worker, base_lat), &b50, &b99, &bmx,
		    &bn);
		printf(" noop_n=%zu noop_p50_ms=%.2f noop_p99_ms=%.2f"
		    " noop_max_ms=%.2f base_n=%zu base_p50_ms=%.2f"
		    " base_p99_ms=%.2f", nlat, p50, p99, mx, bn, b50, b99);
		break;
	}
	case M_BIGBOX:
		printf(" pass_ms=%.2f stat_ms=%.2f uidl_ms=%.2f"
		    " total_ms=%.2f", workers[0].pass_ms, workers[0].stat_ms,
		    workers[0].uidl_ms, workers[0].total_ms);
		if (sessions != 1 && errors == 0)
			errors = 1;
		break;
	case M_CEILING:
		break;
	}
	(void)i;
	printf(" errors=%" PRIu64 " wall_s=%.3f cpu_s=%.3f\n", errors, wall,
	    cpu_seconds());
	return errors > 0 ? 3 : 0;
}
