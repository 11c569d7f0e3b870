/*
 * lmtp.c: the lmtp process of posternd: one libevent loop carrying the
 * LMTP connections the master accepted on the lmtp_listen sockets.
 *
 * Runs as the mail user, confined like a pop3 worker (privsep.c).  It
 * cannot read the user database: each recipient is looked up by an auth
 * worker (MSG_USER_LOOKUP), whose answer also carries the user's
 * quotas.  A message is spooled (dot-unstuffed, CRLF line ends) into a
 * private unlinked file under the mail root, then stored for each
 * recipient through the store API, which writes tmp/, fsyncs, renames
 * into new/ and fsyncs new/ before it returns; only then does that
 * recipient's 250 go out (doc/design.md, storage invariant 1).  A crash
 * at any instant leaves either nothing or a whole message in new/, and
 * the MTA retries every recipient that got no 250.
 *
 * Trusts: the master and the auth workers' framing (checked); nothing a
 * client sends (lmtp_session.c parses it).  Logs one line per delivery:
 * sender, recipient, size, result; never message content.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lmtp_session.h"
#include "server/posternd.h"
#include "store/store.h"

/* Auth workers this process may be linked to (auth_workers' range). */
#define LMTP_AUTH_LINKS		64

struct auth_link {
	struct ipc_chan	*chan;
};

struct lconn {
	struct lconn		*next;
	uint64_t		 conn_id;	/* the master's */
	struct bufferevent	*bev;
	struct lmtp_session	*s;
	struct linebuf		 lb_cmd;
	struct linebuf		 lb_data;
	char			*line;
	size_t			 line_size;
	int			 spool_fd;
	uint64_t		 spool_len;
	uint64_t		 req_id;	/* lookup in progress, or 0 */
	int			 auth_slot;
	bool			 closing;
	char			 peer[64];
};

static struct event_base *base;
static struct ipc_chan *master;
static struct auth_link auth_links[LMTP_AUTH_LINKS];
static unsigned int auth_rr;
static struct lconn *conns;
static unsigned int n_conns;
static uint64_t next_req = 1;
static bool draining, stopping;
static struct lmtp_params params;

static void conn_process(struct lconn *);
static void conn_free(struct lconn *);

static void
maybe_exit(void)
{
	if ((draining || stopping) && n_conns == 0)
		event_base_loopbreak(base);
}

/* ---- the session's operations ---------------------------------------- */

static void
op_reply(void *ctx, const char *text, size_t len)
{
	struct lconn *c = ctx;

	if (bufferevent_write(c->bev, text, len) == -1)
		c->closing = true;
}

static int
op_lookup(void *ctx, const char *const *names, size_t n)
{
	struct lconn *c = ctx;
	unsigned int i, k;
	struct ipc_msg *m;
	size_t j;

	if ((m = malloc(sizeof(*m))) == NULL)
		return -1;
	for (i = 0; i < LMTP_AUTH_LINKS; i++) {
		k = (auth_rr + i) % LMTP_AUTH_LINKS;
		if (auth_links[k].chan == NULL ||
		    !ipc_chan_is_open(auth_links[k].chan))
			continue;
		ipc_msg_init(m, MSG_USER_LOOKUP, next_req);
		ipc_put_u32(m, (uint32_t)n);
		for (j = 0; j < n; j++)
			ipc_put_str(m, names[j]);
		if (m->bad || ipc_send(auth_links[k].chan, m) == -1)
			continue;
		auth_rr = k + 1;
		c->req_id = next_req++;
		c->auth_slot = (int)k;
		free(m);
		return 0;
	}
	free(m);
	log_warnx("lmtp: no auth worker to look a recipient up");
	return -1;
}

/*
 * A fresh spool: an unlinked file under the mail root (O_TMPFILE, or a
 * named file removed at once where the file system lacks it), so that
 * nothing of it is ever visible and a crash leaves nothing behind.
 */
static int
op_spool_begin(void *ctx)
{
	struct lconn *c = ctx;
	char path[MAX_PATH_LEN];

	c->spool_len = 0;
	if (c->spool_fd != -1) {
		if (ftruncate(c->spool_fd, 0) == 0 &&
		    lseek(c->spool_fd, 0, SEEK_SET) == 0)
			return 0;
		close(c->spool_fd);
		c->spool_fd = -1;
	}
	c->spool_fd = open(cfg->mail_root, O_TMPFILE | O_RDWR | O_CLOEXEC,
	    0600);
	if (c->spool_fd == -1 && (errno == EOPNOTSUPP || errno == EISDIR ||
	    errno == EINVAL)) {
		if (str_fmt(path, sizeof(path), "%s/.lmtp-spool-XXXXXX",
		    cfg->mail_root) == -1)
			return -1;
		c->spool_fd = mkostemp(path, O_CLOEXEC);
		if (c->spool_fd != -1)
			(void)unlink(path);
	}
	if (c->spool_fd == -1) {
		log_warn("lmtp: spool under %s", cfg->mail_root);
		return -1;
	}
	return 0;
}

static int
op_spool_write(void *ctx, const void *data, size_t len)
{
	struct lconn *c = ctx;

	if (c->spool_fd == -1 || write_full(c->spool_fd, data, len) == -1) {
		log_warn("lmtp: writing the spool");
		return -1;
	}
	c->spool_len += len;
	return 0;
}

/* The space of the last message goes back at once (a full disk above
 * all); the file stays open for the next one. */
static void
op_spool_end(void *ctx)
{
	struct lconn *c = ctx;

	if (c->spool_fd != -1 && ftruncate(c->spool_fd, 0) == -1) {
		close(c->spool_fd);
		c->spool_fd = -1;
	}
	c->spool_len = 0;
}

/* True if a message of size octets would take r over a quota; an
 * unreadable mailbox counts as not over (the delivery will tell). */
static bool
quota_exceeded(const struct lmtp_rcpt *r, const char *path, uint64_t size,
    bool *failed_r)
{
	uint64_t bytes;
	uint32_t count;
	char err[512];

	*failed_r = false;
	if (r->quota_bytes == 0 && r->quota_messages == 0)
		return false;
	if (mailbox_usage(path, &bytes, &count, err, sizeof(err)) !=
	    STORE_OK) {
		log_warnx("lmtp: quota of %s: %s", r->user, err);
		*failed_r = true;
		return false;
	}
	if (r->quota_messages > 0 && (uint64_t)count + 1 > r->quota_messages)
		return true;
	return r->quota_bytes > 0 && (bytes > r->quota_bytes ||
	    size > r->quota_bytes - bytes);
}

static bool
op_over_quota(void *ctx, const struct lmtp_rcpt *r, uint64_t size)
{
	char path[MAX_PATH_LEN];
	bool failed;

	if (config_mailbox_path(cfg, r->user, path, sizeof(path)) == -1)
		return false;
	return quota_exceeded(r, path, size, &failed);
}

static const char *
result_word(enum lmtp_result res)
{
	switch (res) {
	case LMTP_R_OK:
		return "delivered";
	case LMTP_R_TOO_BIG:
		return "too-big";
	case LMTP_R_QUOTA:
		return "over-quota";
	case LMTP_R_TEMP:
	default:
		return "temporary-failure";
	}
}

/* Copies the spool after the header lines into the delivery d. */
static enum store_rc
copy_spool(struct lconn *c, struct delivery *d, char *err, size_t errsize)
{
	char chunk[LMTP_SPOOL_CHUNK];
	uint64_t off = 0;
	enum store_rc rc;

	while (off < c->spool_len) {
		size_t want = c->spool_len - off < sizeof(chunk) ?
		    (size_t)(c->spool_len - off) : sizeof(chunk);
		ssize_t n = pread(c->spool_fd, chunk, want, (off_t)off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			errf(err, errsize, "reading the spool: %s",
			    n == 0 ? "short file" : strerror(errno));
			return STORE_TEMP;
		}
		if ((rc = mailbox_deliver_write(d, chunk, (size_t)n, err,
		    errsize)) != STORE_OK)
			return rc;
		off += (uint64_t)n;
	}
	return STORE_OK;
}

static enum lmtp_result
op_deliver(void *ctx, const struct lmtp_session *s,
    const struct lmtp_rcpt *r)
{
	struct lconn *c = ctx;
	char path[MAX_PATH_LEN], err[1024], head[2 * LMTP_MAX_ADDR + 64];
	struct delivery_info info;
	struct delivery *d = NULL;
	enum lmtp_result res = LMTP_R_TEMP;
	enum store_rc rc;
	uint64_t size;
	bool failed;
	int hlen;

	err[0] = '\0';
	memset(&info, 0, sizeof(info));
	hlen = snprintf(head, sizeof(head), "Return-Path: <%s>\r\n"
	    "Delivered-To: %s\r\n", lmtp_session_sender(s), r->addr);
	size = (uint64_t)hlen + c->spool_len;
	if (hlen < 0 || (size_t)hlen >= sizeof(head)) {
		errf(err, sizeof(err), "header lines too long");
		goto out;
	}
	if (config_mailbox_path(cfg, r->user, path, sizeof(path)) == -1) {
		errf(err, sizeof(err), "no mailbox path: %s", strerror(errno));
		goto out;
	}
	if (quota_exceeded(r, path, size, &failed)) {
		res = LMTP_R_QUOTA;
		goto out;
	}
	if (failed)
		goto out;
	/* The limit is on the message; the header lines are ours. */
	rc = mailbox_deliver_begin(path, cfg->deliver_max_size +
	    (uint64_t)hlen, &d, err, sizeof(err));
	if (rc == STORE_OK) {
		/* The envelope sender of an mbox's From_ line. */
		mailbox_deliver_set_sender(d, lmtp_session_sender(s));
		rc = mailbox_deliver_write(d, head, (size_t)hlen, err,
		    sizeof(err));
	}
	if (rc == STORE_OK)
		rc = copy_spool(c, d, err, sizeof(err));
	if (rc == STORE_OK)
		rc = mailbox_deliver_commit(&d, &info, err, sizeof(err));
	mailbox_deliver_abort(&d);
	if (rc == STORE_OK)
		res = LMTP_R_OK;
	else if (rc == STORE_TOO_BIG)
		res = LMTP_R_TOO_BIG;
out:
	if (res == LMTP_R_OK)
		log_info("lmtp: from=<%s> to=<%s> user=%s size=%" PRIu64
		    " peer=%s: delivered as %s", lmtp_session_sender(s),
		    r->addr, r->user, size, c->peer, info.name);
	else
		log_warnx("lmtp: from=<%s> to=<%s> user=%s size=%" PRIu64
		    " peer=%s: %s%s%s", lmtp_session_sender(s), r->addr,
		    r->user, size, c->peer, result_word(res),
		    err[0] != '\0' ? ": " : "", err);
	return res;
}

static const struct lmtp_ops ops = {
	.reply = op_reply,
	.lookup = op_lookup,
	.spool_begin = op_spool_begin,
	.spool_write = op_spool_write,
	.spool_end = op_spool_end,
	.deliver = op_deliver,
	.over_quota = op_over_quota,
};

/* ---- connections ------------------------------------------------------ */

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

static void
conn_free(struct lconn *c)
{
	struct lconn **pp;

	for (pp = &conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	lmtp_session_free(&c->s);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->spool_fd != -1)
		close(c->spool_fd);
	free(c->line);
	conn_done(c->conn_id);
	free(c);
	n_conns--;
	maybe_exit();
}

/* Takes lines while the session can use them and the client reads its
 * replies; closes after QUIT once the replies are out. */
static void
conn_process(struct lconn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer *out = bufferevent_get_output(c->bev);

	while (!c->closing && !lmtp_session_waiting(c->s) &&
	    !lmtp_session_done(c->s) &&
	    evbuffer_get_length(out) < OUTPUT_HIGH_WATERMARK) {
		struct linebuf *lb = lmtp_session_in_data(c->s) ?
		    &c->lb_data : &c->lb_cmd;
		size_t len = 0;
		enum line_rc rc;

		rc = linebuf_next(lb, in, c->line, c->line_size, &len);
		if (rc == LINE_MORE)
			break;
		lmtp_session_line(c->s, rc, c->line, len);
	}
	if (lmtp_session_done(c->s) || c->closing) {
		c->closing = true;
		bufferevent_disable(c->bev, EV_READ);
		if (evbuffer_get_length(out) == 0)
			conn_free(c);
	}
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	conn_process(arg);
}

/* The output drained: close after QUIT, or take the lines held back. */
static void
on_write(struct bufferevent *bev, void *arg)
{
	struct lconn *c = arg;

	if (c->closing) {
		conn_free(c);
		return;
	}
	conn_process(c);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct lconn *c = arg;

	/* A client that sends nothing gets 421; one that reads nothing
	 * (a write timeout, which stops writing) is dropped. */
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) &&
	    !c->closing) {
		lmtp_session_abort(c->s, "Idle timeout, closing connection");
		c->closing = true;
		bufferevent_disable(c->bev, EV_READ);
		bufferevent_enable(c->bev, EV_WRITE);
		return;
	}
	conn_free(c);
}

static void
new_connection(struct ipc_in *in)
{
	struct timeval tv;
	const char *peer = ipc_get_str(in, 63);
	struct lconn *c;
	int fd = in->fd;

	in->fd = -1;
	if (!ipc_done(in) || fd < 0) {
		log_warnx("lmtp: malformed connection message");
		if (fd >= 0)
			close(fd);
		conn_done(in->id);
		return;
	}
	if (stopping || draining || (c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		conn_done(in->id);
		return;
	}
	c->conn_id = in->id;
	c->spool_fd = -1;
	c->auth_slot = -1;
	(void)snprintf(c->peer, sizeof(c->peer), "%s", peer);
	linebuf_init(&c->lb_cmd, LMTP_CMD_LINE_MAX);
	linebuf_init(&c->lb_data, cfg->lmtp_max_line_length);
	c->line_size = (cfg->lmtp_max_line_length > LMTP_CMD_LINE_MAX ?
	    cfg->lmtp_max_line_length : LMTP_CMD_LINE_MAX) + 1;
	c->next = conns;
	conns = c;
	n_conns++;
	if ((c->line = malloc(c->line_size)) == NULL ||
	    (c->bev = bufferevent_socket_new(base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		if (c->bev == NULL)
			close(fd);
		conn_free(c);
		return;
	}
	/* The line reader needs a whole line in the buffer, and no more
	 * is read while a lookup is out. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, c->line_size + 4096);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	tv.tv_sec = (time_t)(cfg->lmtp_idle_timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(cfg->lmtp_idle_timeout_ms % 1000) * 1000;
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	if ((c->s = lmtp_session_new(&params, &ops, c)) == NULL ||
	    bufferevent_enable(c->bev, EV_READ | EV_WRITE) == -1) {
		conn_free(c);
		return;
	}
}

/* ---- the auth workers ------------------------------------------------- */

static struct lconn *
conn_by_request(uint64_t req, int slot)
{
	struct lconn *c;

	for (c = conns; c != NULL; c = c->next)
		if (c->req_id == req && c->auth_slot == slot)
			return c;
	return NULL;
}

static void auth_closed(struct ipc_chan *, void *);

static void
auth_msg(struct ipc_chan *ch, struct ipc_in *in, void *arg)
{
	struct auth_link *l = arg;
	struct lconn *c;

	if (in->fd >= 0) {
		close(in->fd);
		in->fd = -1;
	}
	switch (in->type) {
	case MSG_AUTH_HELLO:
		(void)ipc_get_u32(in);
		if (!ipc_done(in))
			break;
		return;
	case MSG_USER_INFO: {
		uint32_t st = ipc_get_u32(in);
		const char *user = ipc_get_str(in, MAX_USERNAME_LEN);
		uint64_t qb = ipc_get_u64(in), qm = ipc_get_u64(in);

		if (!ipc_done(in) || st > LMTP_USER_MAX)
			break;
		c = conn_by_request(in->id, (int)(l - auth_links));
		if (c == NULL)
			return;		/* the connection is gone */
		c->req_id = 0;
		c->auth_slot = -1;
		lmtp_rcpt_answer(c->s, (enum lmtp_user)st, user, qb, qm);
		conn_process(c);
		return;
	}
	default:
		break;
	}
	log_warnx("lmtp: malformed message from an auth worker, dropping the"
	    " channel");
	auth_closed(ch, arg);
}

static void
auth_closed(struct ipc_chan *ch, void *arg)
{
	struct auth_link *l = arg;
	int k = (int)(l - auth_links);
	struct lconn *c, *next;

	ipc_chan_free(&l->chan);
	/* Lookups that worker held get a temporary failure. */
	for (c = conns; c != NULL; c = next) {
		next = c->next;
		if (c->req_id != 0 && c->auth_slot == k) {
			c->req_id = 0;
			c->auth_slot = -1;
			lmtp_rcpt_answer(c->s, LMTP_USER_TEMPFAIL, "", 0, 0);
			conn_process(c);
		}
	}
}

/* ---- the master ------------------------------------------------------- */

static void
master_msg(struct ipc_chan *ch, struct ipc_in *in, void *arg)
{
	switch (in->type) {
	case MSG_LMTP_CONN:
		new_connection(in);
		break;
	case MSG_AUTH_CHAN: {
		uint32_t k = ipc_get_u32(in);

		if (!ipc_done(in) || in->fd < 0 || k >= LMTP_AUTH_LINKS) {
			log_warnx("lmtp: malformed auth channel message");
			break;
		}
		if (auth_links[k].chan != NULL)
			auth_closed(auth_links[k].chan, &auth_links[k]);
		auth_links[k].chan = ipc_chan_new(base, in->fd, auth_msg,
		    auth_closed, &auth_links[k]);
		if (auth_links[k].chan == NULL)
			close(in->fd);
		in->fd = -1;
		break;
	}
	case MSG_DRAIN:
		draining = true;
		maybe_exit();
		break;
	default:
		log_warnx("lmtp: unexpected message %u from the master",
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
	ipc_chan_free(&master);
	stopping = true;
	event_base_loopbreak(base);
}

static void
on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(base);
}

/* SIGTERM: every session gets 421 (a transaction in progress is
 * dropped, and the MTA retries it), then a grace period to send it. */
static void
on_term(evutil_socket_t sig, short what, void *arg)
{
	struct timeval tv = { SHUTDOWN_GRACE_MS / 1000,
	    (SHUTDOWN_GRACE_MS % 1000) * 1000 };
	struct lconn *c, *next;
	struct event *ev;

	if (stopping)
		return;
	stopping = true;
	for (c = conns; c != NULL; c = next) {
		next = c->next;
		lmtp_session_abort(c->s, "Service shutting down");
		conn_process(c);
	}
	if ((ev = evtimer_new(base, on_stop_timer, NULL)) != NULL)
		evtimer_add(ev, &tv);
	maybe_exit();
}

void
lmtp_main(int master_fd)
{
	struct event *ev_term, *ev_int;

	log_set_ident("posternd/lmtp");
	privsep_drop(cfg, "lmtp");
	store_set_mbox_limits(cfg->mbox_lock_timeout_ms,
	    cfg->mbox_dotlock_stale_ms / 1000);
	signal(SIGPIPE, SIG_IGN);
	/* A file size limit fails a write with EFBIG (a 451), it does not
	 * kill the process. */
	signal(SIGXFSZ, SIG_IGN);
	params.hostname = cfg->hostname;
	params.max_size = cfg->deliver_max_size;
	params.max_recipients = cfg->lmtp_max_recipients;
	params.max_bad_commands = cfg->max_bad_commands;
	params.max_line_length = cfg->lmtp_max_line_length;
	params.quota_temporary = cfg->quota_temporary;
	params.delimiter = cfg->lmtp_recipient_delimiter;
	params.site_quota_bytes = cfg->quota_bytes;
	params.site_quota_messages = cfg->quota_messages;
	if ((base = event_base_new()) == NULL)
		fatalx("lmtp: cannot create the event loop");
	master = ipc_chan_new(base, master_fd, master_msg, master_closed,
	    NULL);
	ev_term = evsignal_new(base, SIGTERM, on_term, NULL);
	ev_int = evsignal_new(base, SIGINT, on_term, NULL);
	if (master == NULL || ev_term == NULL || ev_int == NULL ||
	    evsignal_add(ev_term, NULL) == -1 ||
	    evsignal_add(ev_int, NULL) == -1)
		fatalx("lmtp: cannot set up the event loop");
	event_base_dispatch(base);
	_exit(0);
}
